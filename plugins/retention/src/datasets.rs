//! Removal of datasets the `indexing` plugin tombstoned: their `ds:<enc>:` keys first, then
//! the `tombstone:<enc>` key once nothing is left, through `housekeeping`'s kv access.
//!
//! The indexing plugin's contract: deleting a dataset writes `tombstone:<enc>` holding
//! `{"deleted_at": <unix seconds>, "dataset": "<name>"}`, and every key of that dataset starts
//! with `ds:<enc>:`. The encoding is already in the keys, so nothing here decodes it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use taskbox_sdk::housekeeping::{self, HousekeepingError};
use taskbox_sdk::log;

/// The kv namespace of the indexing plugin; the operator must grant it to this plugin.
pub const NAMESPACE: &str = "indexing";
const TOMBSTONE: &str = "tombstone:";
/// Keys per scan or delete call: well under the host's per-call limit.
const PAGE: usize = 500;

/// What a datasets sweep found and did (on a dry run: would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetsReport {
    /// Tombstones old enough that this run reached.
    pub matched: u64,
    /// Datasets fully removed, tombstone included.
    pub finished: u64,
    /// Dataset keys deleted (tombstones not counted).
    pub keys_deleted: u64,
    /// Whether the batch ran out before every old dataset was removed.
    pub more: bool,
}

#[derive(Deserialize)]
struct Tombstone {
    deleted_at: f64,
    #[serde(default)]
    dataset: String,
}

/// Removes datasets tombstoned more than `older_than` seconds before `now` (unix seconds),
/// deleting at most `batch` keys from the namespace (tombstones included) so a run stays
/// bounded; a later run continues where this one stopped.
pub fn sweep(
    older_than: u64,
    batch: u32,
    dry_run: bool,
    now: f64,
) -> Result<DatasetsReport, HousekeepingError> {
    let mut report = DatasetsReport::default();
    let mut budget = batch as usize;
    for tombstone in scan_all(TOMBSTONE)? {
        let Some(enc) = tombstone.strip_prefix(TOMBSTONE).filter(|e| !e.is_empty()) else {
            continue;
        };
        let Some(raw) = housekeeping::kv_get(NAMESPACE, &tombstone)? else {
            continue; // Removed since the scan, by another run.
        };
        let Ok(stone) = serde_json::from_slice::<Tombstone>(&raw) else {
            log::warn(format!(
                "retention: {tombstone} in '{NAMESPACE}' is not a valid tombstone; left alone"
            ));
            continue;
        };
        if !stone.deleted_at.is_finite() || now - stone.deleted_at <= older_than as f64 {
            continue;
        }
        if budget == 0 {
            report.more = true;
            break;
        }
        report.matched += 1;
        let prefix = format!("ds:{enc}:");
        let outcome = if dry_run {
            if would_remove(&prefix, &mut budget, &mut report)? {
                Removal::Done
            } else {
                Removal::OutOfBudget
            }
        } else {
            remove(&tombstone, &raw, &prefix, &mut budget, &mut report)?
        };
        match outcome {
            Removal::Done => {}
            Removal::OutOfBudget => {
                report.more = true;
                break;
            }
            Removal::Revived => {
                log::info(format!(
                    "retention: dataset '{}' was indexed again during the sweep; its new keys are left alone",
                    stone.dataset
                ));
                continue;
            }
        }
        report.finished += 1;
        if !dry_run {
            log::info(format!(
                "retention: removed dataset '{}' ({tombstone})",
                stone.dataset
            ));
        }
    }
    Ok(report)
}

/// How removing one dataset ended.
enum Removal {
    /// Every key and the tombstone are gone.
    Done,
    /// The batch ran out; a later run continues.
    OutOfBudget,
    /// The tombstone changed or vanished mid-sweep: the dataset is being indexed again, so its
    /// keys are no longer garbage.
    Revived,
}

/// Deletes the dataset's keys page by page, then its tombstone once a scan finds none. Before
/// each batch it re-reads the tombstone (`raw` is what the sweep saw), so a dataset re-indexed
/// meanwhile loses at most the batch in flight, never its new keys wholesale.
fn remove(
    tombstone: &str,
    raw: &[u8],
    prefix: &str,
    budget: &mut usize,
    report: &mut DatasetsReport,
) -> Result<Removal, HousekeepingError> {
    loop {
        if *budget == 0 {
            return Ok(Removal::OutOfBudget);
        }
        if housekeeping::kv_get(NAMESPACE, tombstone)?.as_deref() != Some(raw) {
            return Ok(Removal::Revived);
        }
        // Collect before deleting: a scan cursor is not guaranteed to survive deletions.
        let keys = collect(prefix, *budget)?;
        if keys.is_empty() {
            housekeeping::kv_delete(NAMESPACE, &[tombstone])?;
            *budget -= 1;
            return Ok(Removal::Done);
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for chunk in keys.chunks(PAGE) {
            report.keys_deleted += housekeeping::kv_delete(NAMESPACE, chunk)?;
        }
        *budget -= keys.len();
    }
}

/// The dry-run twin of [`remove`]: counts what it would delete against the same budget.
fn would_remove(
    prefix: &str,
    budget: &mut usize,
    report: &mut DatasetsReport,
) -> Result<bool, HousekeepingError> {
    let keys = collect(prefix, budget.saturating_add(1))?.len();
    if keys < *budget {
        report.keys_deleted += keys as u64;
        *budget -= keys + 1;
        Ok(true)
    } else {
        report.keys_deleted += *budget as u64;
        *budget = 0;
        Ok(false)
    }
}

/// Up to `want` distinct keys starting with `prefix`.
fn collect(prefix: &str, want: usize) -> Result<BTreeSet<String>, HousekeepingError> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0;
    let count = u32::try_from(want.clamp(1, PAGE)).unwrap_or(1);
    loop {
        let (next, page) = housekeeping::kv_scan(NAMESPACE, prefix, cursor, count)?;
        keys.extend(page);
        cursor = next;
        if cursor == 0 || keys.len() >= want {
            break;
        }
    }
    while keys.len() > want {
        keys.pop_last();
    }
    Ok(keys)
}

/// Every key starting with `prefix`, in key order (a scan may repeat keys; this does not).
fn scan_all(prefix: &str) -> Result<BTreeSet<String>, HousekeepingError> {
    collect(prefix, usize::MAX)
}
