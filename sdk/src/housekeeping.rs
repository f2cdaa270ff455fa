//! Clean-up of what the host keeps for tasks (`housekeeping` capability): finished results,
//! dead-letter entries, and other plugins' kv namespaces.
//!
//! A retention task decides what is old and how much to delete per call; the host finds and
//! deletes the records, so the plugin never handles raw broker keys. The operator grants this
//! capability only to plugins trusted with deletion, and kv access only to the namespaces the
//! grant names. Natively the records and foreign namespaces are in-memory fakes that
//! [`crate::testing`] fills and inspects.

use crate::TaskError;

/// Records the host keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// Stored task results, aged by their completion time.
    Results,
    /// Dead-letter entries, aged by when they were dead-lettered.
    DeadLetters,
}

/// What one sweep found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Records older than the cutoff that this call looked at.
    pub matched: u64,
    /// Records deleted (0 on a dry run).
    pub deleted: u64,
    /// Whether more may remain: call again to continue.
    pub more: bool,
}

/// Why a housekeeping call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HousekeepingError {
    /// Not granted: the capability, or that kv namespace.
    Denied(String),
    /// The store could not be reached, or holds no such records here.
    Unavailable(String),
}

impl std::fmt::Display for HousekeepingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HousekeepingError::Denied(m) => write!(f, "housekeeping denied: {m}"),
            HousekeepingError::Unavailable(m) => write!(f, "housekeeping unavailable: {m}"),
        }
    }
}

impl std::error::Error for HousekeepingError {}

impl From<HousekeepingError> for TaskError {
    fn from(err: HousekeepingError) -> Self {
        match err {
            HousekeepingError::Unavailable(_) => TaskError::retry(err.to_string()),
            HousekeepingError::Denied(_) => TaskError::fail(err.to_string()),
        }
    }
}

/// Deletes up to `limit` records of `kind` older than `older_than_secs`, or with `dry_run`
/// only counts them. Call again while [`SweepOutcome::more`] is set.
pub fn sweep(
    kind: RecordKind,
    older_than_secs: u64,
    limit: u32,
    dry_run: bool,
) -> Result<SweepOutcome, HousekeepingError> {
    imp::sweep(kind, older_than_secs, limit, dry_run)
}

/// One page of keys starting with `prefix` in another plugin's kv namespace; start with
/// cursor 0 and pass back the returned cursor until it is 0.
pub fn kv_scan(
    namespace: &str,
    prefix: &str,
    cursor: u64,
    count: u32,
) -> Result<(u64, Vec<String>), HousekeepingError> {
    imp::kv_scan(namespace, prefix, cursor, count)
}

/// Reads one key of another plugin's kv namespace.
pub fn kv_get(namespace: &str, key: &str) -> Result<Option<Vec<u8>>, HousekeepingError> {
    imp::kv_get(namespace, key)
}

/// Deletes keys of another plugin's kv namespace; returns how many existed.
pub fn kv_delete(namespace: &str, keys: &[&str]) -> Result<u64, HousekeepingError> {
    imp::kv_delete(namespace, keys)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HousekeepingError, RecordKind, SweepOutcome};
    use crate::wit::taskbox::task::housekeeping as wit;

    fn convert(err: wit::HousekeepingError) -> HousekeepingError {
        match err {
            wit::HousekeepingError::Denied(m) => HousekeepingError::Denied(m),
            wit::HousekeepingError::Unavailable(m) => HousekeepingError::Unavailable(m),
        }
    }

    pub fn sweep(
        kind: RecordKind,
        older_than_secs: u64,
        limit: u32,
        dry_run: bool,
    ) -> Result<SweepOutcome, HousekeepingError> {
        let kind = match kind {
            RecordKind::Results => wit::RecordKind::Results,
            RecordKind::DeadLetters => wit::RecordKind::DeadLetters,
        };
        wit::sweep(kind, older_than_secs, limit, dry_run)
            .map(|o| SweepOutcome {
                matched: o.matched,
                deleted: o.deleted,
                more: o.more,
            })
            .map_err(convert)
    }

    pub fn kv_scan(
        namespace: &str,
        prefix: &str,
        cursor: u64,
        count: u32,
    ) -> Result<(u64, Vec<String>), HousekeepingError> {
        wit::kv_scan(namespace, prefix, cursor, count).map_err(convert)
    }

    pub fn kv_get(namespace: &str, key: &str) -> Result<Option<Vec<u8>>, HousekeepingError> {
        wit::kv_get(namespace, key).map_err(convert)
    }

    pub fn kv_delete(namespace: &str, keys: &[&str]) -> Result<u64, HousekeepingError> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        wit::kv_delete(namespace, &keys).map_err(convert)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HousekeepingError, RecordKind, SweepOutcome};
    use crate::testing::with_state;

    pub fn sweep(
        kind: RecordKind,
        older_than_secs: u64,
        limit: u32,
        dry_run: bool,
    ) -> Result<SweepOutcome, HousekeepingError> {
        with_state(|s| {
            s.housekeeping_check(None)?;
            let records = s.records.entry(kind).or_default();
            let old: Vec<usize> = records
                .iter()
                .enumerate()
                .filter(|(_, age)| **age > older_than_secs)
                .map(|(i, _)| i)
                .collect();
            let limit = limit.max(1) as usize;
            let take = old.len().min(limit);
            let mut deleted = 0;
            if !dry_run {
                for i in old[..take].iter().rev() {
                    records.remove(*i);
                    deleted += 1;
                }
            }
            Ok(SweepOutcome {
                matched: take as u64,
                deleted,
                more: old.len() > take,
            })
        })
    }

    pub fn kv_scan(
        namespace: &str,
        prefix: &str,
        cursor: u64,
        count: u32,
    ) -> Result<(u64, Vec<String>), HousekeepingError> {
        with_state(|s| {
            s.housekeeping_check(Some(namespace))?;
            let Some(ns) = s.foreign_kv.get(namespace) else {
                return Ok((0, Vec::new()));
            };
            let matching: Vec<&String> = ns.keys().filter(|k| k.starts_with(prefix)).collect();
            let start = usize::try_from(cursor)
                .unwrap_or(usize::MAX)
                .min(matching.len());
            let end = start
                .saturating_add(count.max(1) as usize)
                .min(matching.len());
            let page = matching[start..end].iter().map(|k| k.to_string()).collect();
            let next = if end >= matching.len() { 0 } else { end as u64 };
            Ok((next, page))
        })
    }

    pub fn kv_get(namespace: &str, key: &str) -> Result<Option<Vec<u8>>, HousekeepingError> {
        with_state(|s| {
            s.housekeeping_check(Some(namespace))?;
            Ok(s.foreign_kv
                .get(namespace)
                .and_then(|ns| ns.get(key))
                .cloned())
        })
    }

    pub fn kv_delete(namespace: &str, keys: &[&str]) -> Result<u64, HousekeepingError> {
        with_state(|s| {
            s.housekeeping_check(Some(namespace))?;
            let Some(ns) = s.foreign_kv.get_mut(namespace) else {
                return Ok(0);
            };
            Ok(keys.iter().filter(|k| ns.remove(**k).is_some()).count() as u64)
        })
    }
}
