//! `housekeeping`: lets a retention task clean up what the host keeps for tasks. The guest
//! chooses the age and the batch size; the host finds and deletes the records, so a plugin
//! never sees raw Redis keys, and reaches another plugin's kv namespace only when its grant
//! names that namespace.

use std::time::Duration;

use async_trait::async_trait;

use crate::runtime::bindings::housekeeping::{Host, HousekeepingError, RecordKind, SweepOutcome};
use crate::runtime::state::HostState;

use super::Capability;
use super::kv::{MAX_BATCH, MAX_KEY};

/// Largest batch one sweep call may ask for: bounded so a single call cannot hold the store
/// for long.
pub const MAX_SWEEP: u32 = 10_000;

/// Which host records a sweep covers (the WIT enum, host side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// Stored task results.
    Results,
    /// Dead-letter entries.
    DeadLetters,
}

/// What a sweep found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Records older than the cutoff that were looked at.
    pub matched: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Whether more may remain.
    pub more: bool,
}

/// Where results and dead letters live: Redis in the worker, nowhere under `taskbox exec`.
#[async_trait]
pub trait HousekeepingBackend: Send + Sync {
    /// Deletes (or with `dry_run` counts) up to `limit` records older than `older_than`.
    async fn sweep(
        &self,
        records: Records,
        older_than: Duration,
        limit: u32,
        dry_run: bool,
    ) -> anyhow::Result<Swept>;
}

/// No results or dead letters to sweep: `taskbox exec` runs without a broker.
#[derive(Debug, Default)]
pub struct NoRecords;

#[async_trait]
impl HousekeepingBackend for NoRecords {
    async fn sweep(
        &self,
        _records: Records,
        _older_than: Duration,
        _limit: u32,
        _dry_run: bool,
    ) -> anyhow::Result<Swept> {
        anyhow::bail!(
            "there are no stored results or dead letters here: this runs without a broker"
        )
    }
}

impl HostState {
    fn housekeeping_check(&mut self, namespace: Option<&str>) -> Result<(), HousekeepingError> {
        if !self.grants.allows(Capability::Housekeeping) {
            let detail = "the plugin was not granted housekeeping";
            self.record_denial("housekeeping", detail);
            return Err(HousekeepingError::Denied(detail.into()));
        }
        if let Some(ns) = namespace
            && !self.grants.allows_namespace(ns)
        {
            let detail = format!(
                "the plugin was not granted housekeeping of the kv namespace '{ns}'; add it to the plugin's `namespaces` grant"
            );
            self.record_denial("housekeeping", &detail);
            return Err(HousekeepingError::Denied(detail));
        }
        Ok(())
    }
}

fn check_keys<'a>(
    keys: impl Iterator<Item = &'a String>,
    count: usize,
) -> Result<(), HousekeepingError> {
    if count > MAX_BATCH {
        return Err(HousekeepingError::Denied(format!(
            "{count} keys in one call; the limit is {MAX_BATCH}"
        )));
    }
    for key in keys {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(HousekeepingError::Denied(format!(
                "a key of {} bytes; keys must be 1 to {MAX_KEY} bytes",
                key.len()
            )));
        }
    }
    Ok(())
}

fn unavailable(err: anyhow::Error) -> HousekeepingError {
    HousekeepingError::Unavailable(format!("{err:#}"))
}

impl Host for HostState {
    async fn sweep(
        &mut self,
        kind: RecordKind,
        older_than_secs: u64,
        limit: u32,
        dry_run: bool,
    ) -> wasmtime::Result<Result<SweepOutcome, HousekeepingError>> {
        self.charge_host_call()?;
        if let Err(e) = self.housekeeping_check(None) {
            return Ok(Err(e));
        }
        let records = match kind {
            RecordKind::Results => Records::Results,
            RecordKind::DeadLetters => Records::DeadLetters,
        };
        let limit = limit.clamp(1, MAX_SWEEP);
        let outcome = self
            .backends
            .housekeeping
            .sweep(
                records,
                Duration::from_secs(older_than_secs),
                limit,
                dry_run,
            )
            .await;
        if let Ok(swept) = &outcome {
            tracing::info!(parent: &self.span, ?records, older_than_secs, dry_run, matched = swept.matched, deleted = swept.deleted, "housekeeping sweep");
        }
        Ok(outcome
            .map(|s| SweepOutcome {
                matched: s.matched,
                deleted: s.deleted,
                more: s.more,
            })
            .map_err(unavailable))
    }

    async fn kv_scan(
        &mut self,
        namespace: String,
        prefix: String,
        cursor: u64,
        count: u32,
    ) -> wasmtime::Result<Result<(u64, Vec<String>), HousekeepingError>> {
        self.charge_host_call()?;
        if let Err(e) = self.housekeeping_check(Some(&namespace)) {
            return Ok(Err(e));
        }
        let count = count.clamp(1, MAX_BATCH as u32);
        Ok(self
            .backends
            .kv
            .scan(&namespace, &prefix, cursor, count)
            .await
            .map_err(unavailable))
    }

    async fn kv_get(
        &mut self,
        namespace: String,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, HousekeepingError>> {
        self.charge_host_call()?;
        if let Err(e) = self
            .housekeeping_check(Some(&namespace))
            .and_then(|()| check_keys(std::iter::once(&key), 1))
        {
            return Ok(Err(e));
        }
        Ok(self
            .backends
            .kv
            .get_many(&namespace, std::slice::from_ref(&key))
            .await
            .map(|mut v| v.pop().flatten())
            .map_err(unavailable))
    }

    async fn kv_delete(
        &mut self,
        namespace: String,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u64, HousekeepingError>> {
        self.charge_host_call()?;
        if let Err(e) = self
            .housekeeping_check(Some(&namespace))
            .and_then(|()| check_keys(keys.iter(), keys.len()))
        {
            return Ok(Err(e));
        }
        let deleted = self.backends.kv.delete(&namespace, &keys).await;
        if let Ok(n) = &deleted {
            tracing::info!(parent: &self.span, namespace, deleted = n, "housekeeping kv delete");
        }
        Ok(deleted.map_err(unavailable))
    }
}
