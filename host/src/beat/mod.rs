//! `taskbox beat`: enqueues periodic tasks on schedule. Unlike Celery beat, several replicas
//! may run against one Redis for availability and each occurrence is still enqueued once.
//!
//! # How it stays correct
//!
//! - **One leader.** Replicas compete for a lease key in Redis (set only if absent, with a
//!   time to live, renewed by compare-and-extend). Taking it hands out a fencing token from a
//!   counter that only grows. Followers retry every tick, so when the leader dies another
//!   replica leads within the lease time plus one tick. A leader releases the lease on
//!   SIGTERM/SIGINT.
//! - **Each occurrence once.** Occurrences are instants computed from the entry's schedule
//!   alone, so every replica agrees on them. The leader enqueues each one with one Lua script
//!   (`scripts/fire.lua`) that checks holder and token, refuses an occurrence at or before the
//!   newest one already handled for the entry, pushes the Celery message and records the last
//!   run, all atomically. A paused ex-leader is fenced off; a new leader never repeats an
//!   occurrence; a clock stepped backwards finds its occurrences already handled.
//! - **Missed occurrences.** Last runs live in Redis. An occurrence older than the lease plus
//!   two ticks when the leader looks at it was missed (every replica was down); a failover is
//!   faster than that and loses nothing. Missed occurrences follow the entry's
//!   [`MissedPolicy`]: `skip`, `once` (one catch-up run, the newest) or `all` (each, newest
//!   `max_catch_up` at most). Catch-up messages carry the header `taskbox_beat_catch_up: true`.
//! - **Time zones.** Crontabs are read in the entry's IANA zone; see [`schedule`] for how DST
//!   gaps and folds fire once. Intervals are aligned to the Unix epoch, independent of zones.
//!
//! Every message is a Celery protocol 2 message built by [`crate::broker::message::encode`],
//! with headers `taskbox_beat_entry` and `taskbox_beat_occurrence` (the scheduled instant).
//!
//! # The default schedule
//!
//! Dify's periodic tasks, each switched by Dify's own variable with Dify's default (only the
//! plugin check and the workflow poller are on). `D` is `CELERY_BEAT_SCHEDULER_TIME` (days,
//! default 1), which Dify applies as the day-of-month step of its daily clean-ups.
//!
//! | Entry | Switch (default) | When (UTC) | Task → queue |
//! |---|---|---|---|
//! | `clean_embedding_cache_task` | `ENABLE_CLEAN_EMBEDDING_CACHE_TASK` (off) | `0 2 */D * *` | Dify's, → `dataset` |
//! | `clean_unused_datasets_task` | `ENABLE_CLEAN_UNUSED_DATASETS_TASK` (off) | `0 3 */D * *` | Dify's, → `dataset` |
//! | `create_tidb_serverless_task` | `ENABLE_CREATE_TIDB_SERVERLESS_TASK` (off) | `0 * * * *` | Dify's, → `dataset` |
//! | `update_tidb_serverless_status_task` | `ENABLE_UPDATE_TIDB_SERVERLESS_STATUS_TASK` (off) | every 10m | Dify's, → `dataset` |
//! | `clean_messages` | `ENABLE_CLEAN_MESSAGES` (off) | `0 4 */D * *` | Dify's, → `dataset` |
//! | `mail_clean_document_notify_task` | `ENABLE_MAIL_CLEAN_DOCUMENT_NOTIFY_TASK` (off) | `0 10 * * 1` | Dify's, → `dataset` |
//! | `datasets-queue-monitor` | `ENABLE_DATASETS_QUEUE_MONITOR` (off) | every `QUEUE_MONITOR_INTERVAL` min (30) | `ops.queue_monitor` (run by every taskbox worker) → `retention` |
//! | `check_upgradable_plugin_task` | `ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK` (on) and `MARKETPLACE_ENABLED` (on) | `*/15 * * * *` | Dify's, → `plugin` |
//! | `clean_workflow_runs_task` | `ENABLE_WORKFLOW_RUN_CLEANUP_TASK` (off) | `0 0 * * *` | Dify's, → `retention` |
//! | `workflow_schedule_task` | `ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK` (on) | every `WORKFLOW_SCHEDULE_POLLER_INTERVAL` min (1) | Dify's `…poll_workflow_schedules` → `schedule_poller` |
//! | `retention-sweep` | `beat.defaults.retention_sweep` (off) | `0 5 */D * *` | built-in `retention.sweep` → `retention` |
//!
//! "Dify's" tasks are `schedule.<module>.<function>` Python tasks, which no taskbox component
//! serves: they stay on Dify's queues for a Celery worker. Dify's clean-ups delete rows of
//! Dify's database, which the retention sweep (taskbox's own results, dead letters, kv and
//! files) cannot stand in for; it is a separate entry. The queue monitor runs on `retention`,
//! a quiet queue every taskbox worker consumes, so a backed-up queue cannot delay its alarm.
//! At start-up, beat warns about every enabled entry whose task no component here serves.
//!
//! An entry in `[beat.schedule.<name>]` with a default's name changes only the fields it sets
//! (e.g. `enabled = false`, or another `timezone`).

pub mod defaults;
pub mod leader;
pub mod schedule;
pub mod store;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::broker::{self, message};
use crate::config::{BeatEntryConfig, Config};
use crate::shutdown::Shutdown;
pub use schedule::{Schedule, ScheduleError};
use store::{Outcome, Push, Store};

/// A beat failure the loop must tell apart: Redis trouble is retried, being fenced off ends
/// this replica's leadership.
#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    /// A Redis command failed (usually Redis is down and the client is reconnecting).
    #[error("beat could not {op} in Redis")]
    Redis {
        /// What beat was doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// The lease moved on: another replica leads, or the lease expired.
    #[error("fenced off: fencing token {token} no longer holds the beat lease")]
    Fenced {
        /// The token this replica led with.
        token: u64,
    },
}

/// What happens to occurrences missed while no beat replica ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissedPolicy {
    /// Drop them; the next on-time occurrence runs as usual.
    Skip,
    /// Run one catch-up: the newest missed occurrence (Celery beat's behaviour). The default.
    #[default]
    Once,
    /// Run each, oldest first, but at most the newest `max_catch_up`.
    All,
}

impl std::fmt::Display for MissedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::Once => "once",
            MissedPolicy::All => "all",
        })
    }
}

/// One schedule entry, resolved and checked: what to send where, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its name: the dedupe and last-run key in Redis.
    pub name: String,
    /// Celery task name.
    pub task: String,
    /// Queue the message goes to.
    pub queue: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// When it runs.
    pub schedule: Schedule,
    /// Whether it runs at all.
    pub enabled: bool,
    /// What happens to missed occurrences.
    pub missed: MissedPolicy,
    /// Most catch-up runs for [`MissedPolicy::All`].
    pub max_catch_up: u32,
    /// For a default entry, what switches it (e.g. `ENABLE_CLEAN_MESSAGES`).
    pub switch: Option<&'static str>,
}

/// A schedule entry that cannot be used, naming the entry's configuration key, the value and
/// the fix, so the configuration layer can report it like any other bad setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` = {value}: {reason}; {fix}")]
pub struct EntryError {
    /// The entry's name.
    pub entry: String,
    /// The dotted key (`beat.schedule.nightly.cron`).
    pub key: String,
    /// The offending value, quoted, or `(unset)`.
    pub value: String,
    /// What is wrong.
    pub reason: String,
    /// How to fix it.
    pub fix: String,
}

/// The dotted configuration key of an entry's field (`beat.schedule.nightly.cron`), quoting a
/// name TOML would quote, so errors point at the line to fix.
pub fn entry_key(name: &str, field: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("beat.schedule.{name}.{field}")
    } else {
        format!("beat.schedule.{name:?}.{field}")
    }
}

/// Overlays the fields `over` sets onto `base`; setting either `cron` or `every` replaces the
/// base's schedule.
fn overlay(base: &BeatEntryConfig, over: &BeatEntryConfig) -> BeatEntryConfig {
    let schedule_set = over.cron.is_some() || over.every.is_some();
    BeatEntryConfig {
        task: over.task.clone().or_else(|| base.task.clone()),
        queue: over.queue.clone().or_else(|| base.queue.clone()),
        args: over.args.clone().or_else(|| base.args.clone()),
        kwargs: over.kwargs.clone().or_else(|| base.kwargs.clone()),
        cron: if schedule_set {
            over.cron.clone()
        } else {
            base.cron.clone()
        },
        every: if schedule_set {
            over.every.clone()
        } else {
            base.every.clone()
        },
        timezone: over.timezone.clone().or_else(|| base.timezone.clone()),
        enabled: over.enabled.or(base.enabled),
        missed: over.missed.or(base.missed),
        max_catch_up: over.max_catch_up.or(base.max_catch_up),
    }
}

/// Every entry of the schedule: the defaults (switched by their variables) with
/// `[beat.schedule.*]` laid over them by name, then the operator's own entries, sorted by name.
/// The first unusable entry is an error naming it.
pub fn entries(config: &Config) -> Result<Vec<Entry>, EntryError> {
    let mut merged: BTreeMap<String, (BeatEntryConfig, Option<&'static str>)> = BTreeMap::new();
    for d in defaults::entries(&config.beat.defaults) {
        merged.insert(d.name.to_string(), (d.entry, Some(d.switch)));
    }
    for (name, over) in &config.beat.schedule {
        let slot = merged
            .entry(name.clone())
            .or_insert_with(|| (BeatEntryConfig::default(), None));
        slot.0 = overlay(&slot.0, over);
    }
    merged
        .into_iter()
        .map(|(name, (entry, switch))| resolve(config, &name, &entry, switch))
        .collect()
}

fn resolve(
    config: &Config,
    name: &str,
    e: &BeatEntryConfig,
    switch: Option<&'static str>,
) -> Result<Entry, EntryError> {
    let err = |field: &str, value: String, reason: String, fix: &str| EntryError {
        entry: name.to_string(),
        key: entry_key(name, field),
        value,
        reason,
        fix: fix.to_string(),
    };
    if name.trim().is_empty() {
        return Err(err(
            "task",
            format!("{name:?}"),
            "an entry name is empty".into(),
            "name the entry, e.g. [beat.schedule.nightly-report]",
        ));
    }
    let task = match e.task.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        other => {
            return Err(err(
                "task",
                other.map_or("(unset)".into(), |t| format!("{t:?}")),
                format!("entry {name:?} names no task to send"),
                "set task to a Celery task name, e.g. task = \"retention.sweep\"",
            ));
        }
    };
    let zone = e.timezone.as_deref().unwrap_or("UTC");
    let schedule = match (&e.cron, &e.every) {
        (Some(_), Some(every)) => {
            return Err(err(
                "every",
                format!("{every:?}"),
                format!("entry {name:?} sets both cron and every"),
                "keep one: cron = \"*/15 * * * *\" or every = \"15m\"",
            ));
        }
        (None, None) => {
            return Err(err(
                "cron",
                "(unset)".into(),
                format!("entry {name:?} has no schedule"),
                "set cron = \"0 2 * * *\" (a 5-field crontab) or every = \"30s\" (an interval)",
            ));
        }
        (Some(cron), None) => Schedule::cron(cron, zone).map_err(|e| match e {
            ScheduleError::TimeZone { name: zone, reason } => err(
                "timezone",
                format!("{zone:?}"),
                format!("entry {name:?}: {reason}"),
                "or leave timezone unset for UTC",
            ),
            other => err(
                "cron",
                format!("{cron:?}"),
                format!("entry {name:?}: {other}"),
                "fields: minute hour day-of-month month day-of-week, e.g. \"30 2 * * MON-FRI\"",
            ),
        })?,
        (None, Some(every)) => Schedule::every(every).map_err(|e| {
            err(
                "every",
                format!("{every:?}"),
                format!("entry {name:?}: {e}"),
                "write a duration such as \"30s\", \"5m\" or \"1h\"",
            )
        })?,
    };
    let queue = match &e.queue {
        Some(q) => q.trim().to_string(),
        None => crate::registry::default_queue(config, &task).ok_or_else(|| {
            err(
                "queue",
                "(unset)".into(),
                format!("entry {name:?}: task {task:?} has no default queue"),
                "set queue = \"...\", or route the task with [tasks.\"<task>\"] queue",
            )
        })?,
    };
    let max_catch_up = e.max_catch_up.unwrap_or(config.beat.max_catch_up);
    if max_catch_up == 0 {
        return Err(err(
            "max_catch_up",
            "0".into(),
            format!("entry {name:?} could never catch up"),
            "use 1 or more, or set missed = \"skip\"",
        ));
    }
    Ok(Entry {
        name: name.to_string(),
        task,
        queue,
        args: e.args.clone().unwrap_or_default(),
        kwargs: e.kwargs.clone().unwrap_or_default(),
        schedule,
        enabled: e.enabled.unwrap_or(true),
        missed: e.missed.unwrap_or_default(),
        max_catch_up,
        switch,
    })
}

/// One occurrence to enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The scheduled instant.
    pub at: Timestamp,
    /// Whether it was missed and runs as a catch-up.
    pub catch_up: bool,
}

/// What to do for one entry in one pass: what to enqueue, and what to mark as passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Occurrences to enqueue, oldest first.
    pub due: Vec<Due>,
    /// Missed occurrences found (counted up to [`MISSED_COUNT_CAP`]).
    pub missed: usize,
    /// Mark occurrences up to here as passed over (missed ones the policy does not run).
    pub skip_through: Option<Timestamp>,
}

/// Missed occurrences are counted up to this many for the log; an outage of a week on a
/// one-second interval is not worth counting exactly.
pub const MISSED_COUNT_CAP: usize = 10_000;

/// Most on-time occurrences taken in one pass; the grace window is seconds long, so this is
/// never reached by a sane schedule.
const ON_TIME_LIMIT: usize = 1_000;

/// Decides, for a schedule whose occurrences up to `baseline` are handled, what to enqueue at
/// `now`. Occurrences within `grace` of `now` are on time and all run; older ones were missed
/// and follow `policy`. Pure, so every policy is testable without Redis or clocks.
pub fn plan(
    schedule: &Schedule,
    baseline: Timestamp,
    now: Timestamp,
    grace: Duration,
    policy: MissedPolicy,
    max_catch_up: u32,
) -> Plan {
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    let cutoff = now.checked_sub(grace).unwrap_or(Timestamp::MIN);
    let mut plan = Plan::default();
    if baseline < cutoff {
        let limit = match policy {
            MissedPolicy::Skip | MissedPolicy::Once => 1,
            MissedPolicy::All => usize::try_from(max_catch_up).unwrap_or(usize::MAX),
        };
        let newest = schedule.newest(baseline, cutoff, limit);
        if let Some(last) = newest.last() {
            plan.missed = schedule.count(baseline, cutoff, MISSED_COUNT_CAP);
            match policy {
                MissedPolicy::Skip => plan.skip_through = Some(*last),
                MissedPolicy::Once | MissedPolicy::All => {
                    plan.due.extend(newest.iter().map(|at| Due {
                        at: *at,
                        catch_up: true,
                    }));
                }
            }
        }
    }
    let on_time = schedule.newest(baseline.max(cutoff), now, ON_TIME_LIMIT);
    if !on_time.is_empty() {
        // Enqueuing a newer occurrence supersedes the mark.
        plan.skip_through = None;
    }
    plan.due.extend(on_time.into_iter().map(|at| Due {
        at,
        catch_up: false,
    }));
    plan
}

/// The Celery message for one occurrence of `entry`.
pub fn message(entry: &Entry, due: Due, origin: &str) -> message::NewTask {
    let mut task = message::NewTask::new(entry.task.clone(), entry.queue.clone());
    task.args = entry.args.clone();
    task.kwargs = entry.kwargs.clone();
    task.origin = origin.to_string();
    task.extra_headers
        .insert("taskbox_beat_entry".into(), Value::from(entry.name.clone()));
    task.extra_headers.insert(
        "taskbox_beat_occurrence".into(),
        Value::from(message::format_timestamp(due.at)),
    );
    task.extra_headers
        .insert("taskbox_beat_catch_up".into(), Value::from(due.catch_up));
    task
}

/// Which task names something on this deployment serves, for the start-up report.
#[derive(Debug, Clone)]
pub enum Served {
    /// Exactly these (a worker's loaded registry).
    Tasks(Vec<String>),
    /// Whatever the built-in components embedded in this binary serve (a standalone beat
    /// loads no plugins).
    Builtins,
}

impl Served {
    fn serves(&self, task: &str) -> bool {
        // Every taskbox worker runs the queue monitor itself, outside any component.
        if task == crate::worker::monitor::TASK {
            return true;
        }
        match self {
            Served::Tasks(tasks) => tasks.iter().any(|t| t == task),
            Served::Builtins => task
                .split_once('.')
                .is_some_and(|(prefix, _)| crate::builtins::get(prefix).is_ok()),
        }
    }
}

/// Enabled entries whose task no component here serves.
pub fn unserved<'a>(entries: &'a [Entry], served: &Served) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.enabled && !served.serves(&e.task))
        .collect()
}

fn report_unserved(entries: &[Entry], served: &Served) {
    let missing = unserved(entries, served);
    if missing.is_empty() {
        return;
    }
    let list = missing
        .iter()
        .map(|e| match e.switch {
            Some(switch) => format!(
                "{} ({} on {}, switched by {switch})",
                e.name, e.task, e.queue
            ),
            None => format!("{} ({} on {})", e.name, e.task, e.queue),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let scope = match served {
        Served::Tasks(_) => "this worker's components",
        Served::Builtins => "the built-in components (a standalone beat loads no plugins)",
    };
    tracing::warn!(
        entries = %list,
        "no component among {scope} serves these scheduled tasks; they are still enqueued, for a \
         Celery (Python) worker consuming their queues; disable an entry with its switch or \
         [beat.schedule.<name>] enabled = false"
    );
}

/// Opens the Redis connection beat uses, like the worker's (reconnecting with backoff).
async fn connect(config: &Config) -> anyhow::Result<redis::aio::ConnectionManager> {
    let url = config.broker_url();
    let client =
        broker::client_for(&url, &broker::SentinelOptions::from_config(&config.broker)).await?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::aio::ConnectionManager::new_with_config(client, manager_config)
        .await
        .with_context(|| {
            format!(
                "beat failed to connect to the broker at {}",
                crate::config::redact_url(&url)
            )
        })
}

/// This replica's leadership while it leads.
#[derive(Debug, Clone, Copy)]
struct Leading {
    token: u64,
    renewed: Instant,
}

/// One replica's scheduler loop.
struct Beat {
    entries: Vec<Entry>,
    store: Store,
    lease: leader::Lease,
    tick: Duration,
    lease_time: Duration,
    origin: String,
}

/// Runs beat until `shutdown` begins: competes for the lease, enqueues due occurrences while
/// leading, and releases the lease on the way out. `served` decides the start-up warning about
/// tasks no component here serves.
pub async fn run(
    config: Arc<Config>,
    entries: Vec<Entry>,
    served: Served,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    report_unserved(&entries, &served);
    let conn = connect(&config).await?;
    let host = crate::worker::default_name();
    let holder = format!(
        "{}:{}:{}",
        host.trim_start_matches("taskbox@"),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let prefix = &config.beat.key_prefix;
    let beat = Beat {
        store: Store::new(conn.clone(), prefix),
        lease: leader::Lease::new(conn, prefix, &holder, config.beat.lease),
        tick: config.beat.tick,
        lease_time: config.beat.lease,
        origin: format!(
            "{}@{}",
            std::process::id(),
            host.trim_start_matches("taskbox@")
        ),
        entries,
    };
    let enabled = beat.entries.iter().filter(|e| e.enabled).count();
    tracing::info!(
        holder = %holder,
        entries = beat.entries.len(),
        enabled,
        tick_ms = beat.tick.as_millis() as u64,
        lease_ms = beat.lease_time.as_millis() as u64,
        "beat ready"
    );
    beat.run(shutdown).await;
    Ok(())
}

impl Beat {
    async fn run(&self, shutdown: Shutdown) {
        let renew_every = (self.lease_time / 3).max(Duration::from_millis(10));
        let mut leading: Option<Leading> = None;
        let mut down_since: Option<Instant> = None;
        while !shutdown.is_begun() {
            let mut failure: Option<BeatError> = None;
            leading = match leading {
                None => match self.lease.acquire().await {
                    Ok(Some(token)) => {
                        tracing::info!(
                            token,
                            holder = %self.lease.holder(),
                            "beat leading: this replica now enqueues the schedule"
                        );
                        Some(Leading {
                            token,
                            renewed: Instant::now(),
                        })
                    }
                    Ok(None) => None,
                    Err(err) => {
                        failure = Some(err);
                        None
                    }
                },
                Some(lead) if lead.renewed.elapsed() >= renew_every => {
                    match self.lease.renew(lead.token).await {
                        Ok(true) => Some(Leading {
                            token: lead.token,
                            renewed: Instant::now(),
                        }),
                        Ok(false) => {
                            tracing::warn!(
                                token = lead.token,
                                "beat lost its lease (it expired or another replica took it); following"
                            );
                            None
                        }
                        Err(err) => {
                            failure = Some(err);
                            // Past the lease time the lease is surely gone; fire.lua would
                            // refuse anyway, this only stops trying.
                            (lead.renewed.elapsed() < self.lease_time).then_some(lead)
                        }
                    }
                }
                keep => keep,
            };
            let mut wake = self.tick;
            if let Some(lead) = leading {
                match self.pass(lead.token).await {
                    Ok(next) => {
                        if let Some(next) = next {
                            let until = Timestamp::now().duration_until(next);
                            let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
                            wake = wake.min(until);
                        }
                    }
                    Err(BeatError::Fenced { token }) => {
                        tracing::warn!(
                            token,
                            "beat fenced off: another replica leads now; following"
                        );
                        leading = None;
                    }
                    Err(err) => failure = Some(err),
                }
                if let Some(lead) = leading {
                    wake = wake.min(renew_every.saturating_sub(lead.renewed.elapsed()));
                }
            }
            match (failure, down_since) {
                (Some(err), None) => {
                    let err = anyhow::Error::new(err);
                    tracing::warn!(error = %format_args!("{err:#}"), "beat cannot reach Redis; retrying every tick");
                    down_since = Some(Instant::now());
                }
                (None, Some(since)) => {
                    tracing::info!(
                        down_ms = since.elapsed().as_millis() as u64,
                        "beat reaches Redis again"
                    );
                    down_since = None;
                }
                _ => {}
            }
            tokio::select! {
                () = tokio::time::sleep(wake.max(Duration::from_millis(1))) => {}
                () = shutdown.begun() => {}
            }
        }
        if let Some(lead) = leading {
            match self.lease.release(lead.token).await {
                Ok(true) => tracing::info!(token = lead.token, "beat released its lease"),
                Ok(false) => {}
                Err(err) => tracing::warn!(
                    error = %format_args!("{:#}", anyhow::Error::new(err)),
                    "beat could not release its lease; a standby takes over when it expires"
                ),
            }
        }
        tracing::info!("beat stopped");
    }

    /// One look at the whole schedule as leader with `token`; returns the earliest upcoming
    /// occurrence.
    async fn pass(&self, token: u64) -> Result<Option<Timestamp>, BeatError> {
        let lease_value = self.lease.value(token);
        let state = self.store.state().await?;
        let now = Timestamp::now();
        // A failover takes at most the lease plus a tick; one more tick is margin.
        let grace = self.lease_time + self.tick * 2;
        let mut next: Option<Timestamp> = None;
        for entry in &self.entries {
            let mark = |at: Timestamp| self.store.fire(&lease_value, token, &entry.name, at, None);
            let Some(baseline) = state.baseline(&entry.name) else {
                // First sight: the entry runs from its next occurrence, not from the past.
                mark(now).await?;
                tracing::debug!(entry = %entry.name, "beat sees a new entry; it runs from its next occurrence");
                if entry.enabled {
                    next = earliest(next, entry.schedule.next_after(now));
                }
                continue;
            };
            if !entry.enabled {
                // Occurrences while disabled do not count as missed when it is enabled again.
                if let Some(passed) = entry.schedule.newest(baseline, now, 1).last() {
                    mark(*passed).await?;
                }
                continue;
            }
            let plan = plan(
                &entry.schedule,
                baseline,
                now,
                grace,
                entry.missed,
                entry.max_catch_up,
            );
            if plan.missed > 0 {
                let catching_up = plan.due.iter().filter(|d| d.catch_up).count();
                let more = if plan.missed >= MISSED_COUNT_CAP {
                    "+"
                } else {
                    ""
                };
                tracing::warn!(
                    entry = %entry.name,
                    missed = %format_args!("{}{more}", plan.missed),
                    since = %baseline,
                    policy = %entry.missed,
                    running = catching_up,
                    "beat missed occurrences while no replica was running"
                );
            }
            for due in &plan.due {
                let task = message(entry, *due, &self.origin);
                let (list_key, envelope) = message::encode(&task);
                let push = Push {
                    list_key,
                    queue: entry.queue.clone(),
                    envelope,
                };
                match self
                    .store
                    .fire(&lease_value, token, &entry.name, due.at, Some(&push))
                    .await?
                {
                    Outcome::Enqueued => tracing::info!(
                        entry = %entry.name,
                        task = %entry.task,
                        queue = %entry.queue,
                        task_id = %task.id,
                        occurrence = %due.at,
                        catch_up = due.catch_up,
                        "beat enqueued a periodic task"
                    ),
                    Outcome::AlreadyHandled | Outcome::Marked => tracing::debug!(
                        entry = %entry.name,
                        occurrence = %due.at,
                        "occurrence already handled"
                    ),
                }
            }
            if let Some(through) = plan.skip_through {
                mark(through).await?;
            }
            let handled = plan.due.last().map_or(baseline, |d| d.at).max(now);
            next = earliest(next, entry.schedule.next_after(handled));
        }
        Ok(next)
    }
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `taskbox beat list`: one row per entry (name, enabled, schedule, task, queue, missed
/// policy, last run, next run) and who leads, read from Redis.
pub async fn list(config: &Config, entries: &[Entry]) -> anyhow::Result<String> {
    let mut conn = connect(config).await?;
    let prefix = &config.beat.key_prefix;
    let state = Store::new(conn.clone(), prefix).state().await?;
    let leader = leader::current(&mut conn, prefix).await?;
    Ok(render_list(entries, &state, leader, Timestamp::now()))
}

/// The `beat list` table, from already-read state.
pub fn render_list(
    entries: &[Entry],
    state: &store::State,
    leader: Option<(u64, String)>,
    now: Timestamp,
) -> String {
    let seconds = |t: Timestamp| {
        Timestamp::from_second(t.as_second())
            .unwrap_or(t)
            .to_string()
    };
    let mut rows = vec![[
        "NAME".to_string(),
        "ENABLED".into(),
        "SCHEDULE".into(),
        "TASK".into(),
        "QUEUE".into(),
        "MISSED".into(),
        "LAST RUN".into(),
        "NEXT RUN".into(),
    ]];
    for e in entries {
        let last = state
            .last_run
            .get(&e.name)
            .map_or_else(|| "never".to_string(), |t| seconds(*t));
        let next = if e.enabled {
            e.schedule
                .next_after(now)
                .map_or_else(|| "never".to_string(), seconds)
        } else {
            "-".to_string()
        };
        rows.push([
            e.name.clone(),
            if e.enabled { "yes" } else { "no" }.into(),
            e.schedule.to_string(),
            e.task.clone(),
            e.queue.clone(),
            e.missed.to_string(),
            last,
            next,
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    match leader {
        Some((token, holder)) => {
            let _ = writeln!(out, "leader: {holder} (fencing token {token})");
        }
        None => out.push_str("leader: none (no beat replica holds the lease)\n"),
    }
    out
}

#[cfg(test)]
mod tests;
