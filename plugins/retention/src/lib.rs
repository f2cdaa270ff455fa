//! The built-in `retention` component: `retention.sweep(dry_run=False, **ages)` on the
//! `retention` queue, a periodic clean-up of stored results, dead letters, datasets the
//! indexing plugin tombstoned, and old files in storage directories. Each run deletes at most
//! `batch_size` records per category and reports `more` when some remain, and running it
//! twice deletes nothing new. This file binds the call and assembles the report; the
//! categories live in [`options`], [`datasets`] and [`files`].

pub mod datasets;
pub mod files;
pub mod options;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use taskbox_sdk::housekeeping::{self, HousekeepingError, RecordKind};
use taskbox_sdk::{Kwargs, TaskError, export_plugin, log, task};

use datasets::DatasetsReport;
use files::FilesReport;
use options::Options;

/// What the host says when a category cannot exist here (`taskbox exec` has no broker), as
/// opposed to a store that is down and worth a retry.
const NO_BROKER: &str = "runs without a broker";

/// The result of `retention.sweep`; a category switched off is `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether this was a dry run (counts only, nothing deleted).
    pub dry_run: bool,
    /// Stored task results.
    pub results: Option<Section<RecordsReport>>,
    /// Dead-letter entries.
    pub dead_letters: Option<Section<RecordsReport>>,
    /// Datasets tombstoned by the indexing plugin.
    pub datasets: Option<Section<DatasetsReport>>,
    /// Files in the swept directories.
    pub files: Option<FilesReport>,
}

/// A category's outcome, or why it was skipped without failing the run (no broker under
/// `taskbox exec`, or a kv namespace the operator did not grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Section<T> {
    /// The category ran.
    Done(T),
    /// The category was skipped; serialized as `{"skipped": "<why>"}`.
    Skipped {
        /// The host's explanation.
        skipped: String,
    },
}

/// What a results or dead-letters sweep found and did, summed over its host calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordsReport {
    /// Old records found (on a dry run: those that would be deleted).
    pub matched: u64,
    /// Records deleted (0 on a dry run).
    pub deleted: u64,
    /// Whether more may remain for the next run.
    pub more: bool,
}

/// Deletes what is older than each category's age, bounded per run; with `dry_run`, reports
/// the counts it would delete and deletes nothing.
#[task(name = "retention.sweep")]
fn sweep(#[default(false)] dry_run: bool, #[kwargs] ages: Kwargs) -> Result<Report, TaskError> {
    let options = Options::from_kwargs(&ages).map_err(TaskError::reject)?;
    let batch = options.batch_size;
    let results = match options.results {
        Some(age) => Some(section(sweep_records(
            RecordKind::Results,
            age,
            batch,
            dry_run,
        ))?),
        None => None,
    };
    let dead_letters = match options.dead_letters {
        Some(age) => Some(section(sweep_records(
            RecordKind::DeadLetters,
            age,
            batch,
            dry_run,
        ))?),
        None => None,
    };
    let datasets = match options.datasets {
        Some(age) => Some(datasets_section(datasets::sweep(
            age,
            batch,
            dry_run,
            unix_now()?,
        ))?),
        None => None,
    };
    let files = options
        .files
        .map(|age| files::sweep(&options.paths, age, batch, dry_run, SystemTime::now()));
    let report = Report {
        dry_run,
        results,
        dead_letters,
        datasets,
        files,
    };
    log::info(format!(
        "retention: {}",
        serde_json::to_string(&report).unwrap_or_default()
    ));
    Ok(report)
}

export_plugin!(sweep);

/// Sweeps one kind of host record, calling again while the host reports `more` and the batch
/// is not used up. A dry run makes one call: nothing is deleted, so another would only count
/// the same records again.
fn sweep_records(
    kind: RecordKind,
    older_than: u64,
    batch: u32,
    dry_run: bool,
) -> Result<RecordsReport, HousekeepingError> {
    let mut report = RecordsReport::default();
    let mut budget = u64::from(batch);
    while budget > 0 {
        let limit = u32::try_from(budget).unwrap_or(batch);
        let outcome = housekeeping::sweep(kind, older_than, limit, dry_run)?;
        report.matched += outcome.matched;
        report.deleted += outcome.deleted;
        report.more = outcome.more;
        // Budgeted on `matched` (never below `deleted`), and stopping when a call found
        // nothing, so the loop always ends.
        budget = budget.saturating_sub(outcome.matched);
        if dry_run || !outcome.more || outcome.matched == 0 {
            break;
        }
    }
    Ok(report)
}

/// Maps a host failure for results or dead letters: skipped when there is no broker here,
/// a retry when the store is down, a failure when the capability was not granted.
fn section<T>(outcome: Result<T, HousekeepingError>) -> Result<Section<T>, TaskError> {
    match outcome {
        Ok(report) => Ok(Section::Done(report)),
        Err(HousekeepingError::Unavailable(m)) if m.contains(NO_BROKER) => {
            Ok(Section::Skipped { skipped: m })
        }
        Err(err @ HousekeepingError::Unavailable(_)) => Err(err.into()),
        Err(HousekeepingError::Denied(m)) => Err(TaskError::fail(format!(
            "retention.sweep needs the housekeeping capability; grant it to this plugin (the host said: {m})"
        ))),
    }
}

/// Like [`section`], but a denial of the indexing namespace alone (the operator did not grant
/// it) skips datasets instead of failing the run.
fn datasets_section(
    outcome: Result<DatasetsReport, HousekeepingError>,
) -> Result<Section<DatasetsReport>, TaskError> {
    match outcome {
        Err(HousekeepingError::Denied(m)) if m.contains("namespace") => {
            Ok(Section::Skipped { skipped: m })
        }
        other => section(other),
    }
}

fn unix_now() -> Result<f64, TaskError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .map_err(|_| TaskError::fail("the clock is before 1970; cannot tell what is old"))
}

#[cfg(test)]
mod tests;
