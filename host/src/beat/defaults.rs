//! The default schedule: Dify's periodic Celery tasks (`api/extensions/ext_celery.py`), each
//! switched by the environment variable Dify uses, with Dify's defaults, task names, queues and
//! timings, so `taskbox beat` can replace `celery beat` without a schedule file. Entries that a
//! built-in component serves are pointed at it instead; the table is in [`super`]'s docs.

use std::time::Duration;

use crate::config::{BeatDefaults, BeatEntryConfig};

/// One entry of the default schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultEntry {
    /// The entry name (Dify's `beat_schedule` key).
    pub name: &'static str,
    /// What switches it on or off: an environment variable, or a `beat.defaults` key.
    pub switch: &'static str,
    /// The entry, every field set.
    pub entry: BeatEntryConfig,
}

/// Builds one entry; `schedule` is a crontab (five fields) or an interval.
fn entry(
    name: &'static str,
    switch: &'static str,
    enabled: bool,
    task: &str,
    queue: &str,
    schedule: Schedule,
) -> DefaultEntry {
    let (cron, every) = match schedule {
        Schedule::Cron(spec) => (Some(spec), None),
        Schedule::Every(period) => (None, Some(humantime::format_duration(period).to_string())),
    };
    DefaultEntry {
        name,
        switch,
        entry: BeatEntryConfig {
            task: Some(task.to_string()),
            queue: Some(queue.to_string()),
            args: Some(Vec::new()),
            kwargs: Some(serde_json::Map::new()),
            cron,
            every,
            timezone: Some("UTC".to_string()),
            enabled: Some(enabled),
            missed: None,
            max_catch_up: None,
        },
    }
}

enum Schedule {
    Cron(String),
    Every(Duration),
}

/// The default entries for these switches, in Dify's order, then taskbox's own.
pub fn entries(d: &BeatDefaults) -> Vec<DefaultEntry> {
    use Schedule::{Cron, Every};
    // Dify runs its daily clean-ups every CELERY_BEAT_SCHEDULER_TIME days (`*/N` day of month).
    let days = match d.scheduler_days {
        0 | 1 => "*".to_string(),
        n => format!("*/{n}"),
    };
    let daily_at = |hour: u8| Cron(format!("0 {hour} {days} * *"));
    vec![
        entry(
            "clean_embedding_cache_task",
            "ENABLE_CLEAN_EMBEDDING_CACHE_TASK",
            d.clean_embedding_cache,
            "schedule.clean_embedding_cache_task.clean_embedding_cache_task",
            "dataset",
            daily_at(2),
        ),
        entry(
            "clean_unused_datasets_task",
            "ENABLE_CLEAN_UNUSED_DATASETS_TASK",
            d.clean_unused_datasets,
            "schedule.clean_unused_datasets_task.clean_unused_datasets_task",
            "dataset",
            daily_at(3),
        ),
        entry(
            "create_tidb_serverless_task",
            "ENABLE_CREATE_TIDB_SERVERLESS_TASK",
            d.create_tidb_serverless,
            "schedule.create_tidb_serverless_task.create_tidb_serverless_task",
            "dataset",
            Cron("0 * * * *".to_string()),
        ),
        entry(
            "update_tidb_serverless_status_task",
            "ENABLE_UPDATE_TIDB_SERVERLESS_STATUS_TASK",
            d.update_tidb_serverless_status,
            "schedule.update_tidb_serverless_status_task.update_tidb_serverless_status_task",
            "dataset",
            Every(Duration::from_secs(10 * 60)),
        ),
        entry(
            "clean_messages",
            "ENABLE_CLEAN_MESSAGES",
            d.clean_messages,
            "schedule.clean_messages.clean_messages",
            "dataset",
            daily_at(4),
        ),
        entry(
            "mail_clean_document_notify_task",
            "ENABLE_MAIL_CLEAN_DOCUMENT_NOTIFY_TASK",
            d.mail_clean_document_notify,
            "schedule.mail_clean_document_notify_task.mail_clean_document_notify_task",
            "dataset",
            Cron("0 10 * * 1".to_string()),
        ),
        entry(
            "datasets-queue-monitor",
            "ENABLE_DATASETS_QUEUE_MONITOR",
            d.datasets_queue_monitor,
            "ops.queue_monitor",
            "retention",
            Every(d.queue_monitor_interval),
        ),
        entry(
            "check_upgradable_plugin_task",
            "ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK",
            d.check_upgradable_plugin && d.marketplace,
            "schedule.check_upgradable_plugin_task.check_upgradable_plugin_task",
            "plugin",
            Cron("*/15 * * * *".to_string()),
        ),
        entry(
            "clean_workflow_runs_task",
            "ENABLE_WORKFLOW_RUN_CLEANUP_TASK",
            d.workflow_run_cleanup,
            "schedule.clean_workflow_runs_task.clean_workflow_runs_task",
            "retention",
            Cron("0 0 * * *".to_string()),
        ),
        entry(
            "workflow_schedule_task",
            "ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK",
            d.workflow_schedule_poller,
            "schedule.workflow_schedule_task.poll_workflow_schedules",
            "schedule_poller",
            Every(d.workflow_schedule_poller_interval),
        ),
        entry(
            "retention-sweep",
            "beat.defaults.retention_sweep",
            d.retention_sweep,
            "retention.sweep",
            "retention",
            daily_at(5),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named<'a>(all: &'a [DefaultEntry], name: &str) -> &'a DefaultEntry {
        all.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn only_the_plugin_check_and_the_workflow_poller_are_on_by_default() {
        let all = entries(&BeatDefaults::default());
        let on: Vec<&str> = all
            .iter()
            .filter(|e| e.entry.enabled == Some(true))
            .map(|e| e.name)
            .collect();
        assert_eq!(
            on,
            ["check_upgradable_plugin_task", "workflow_schedule_task"]
        );
        let poller = named(&all, "workflow_schedule_task");
        assert_eq!(poller.entry.every.as_deref(), Some("1m"));
        assert_eq!(poller.entry.queue.as_deref(), Some("schedule_poller"));
        let monitor = named(&all, "datasets-queue-monitor");
        assert_eq!(monitor.entry.every.as_deref(), Some("30m"));
        assert_eq!(monitor.entry.task.as_deref(), Some("ops.queue_monitor"));
    }

    #[test]
    fn scheduler_days_steps_the_daily_clean_ups_like_dify() {
        let d = BeatDefaults {
            scheduler_days: 3,
            marketplace: false,
            ..BeatDefaults::default()
        };
        let all = entries(&d);
        assert_eq!(
            named(&all, "clean_messages").entry.cron.as_deref(),
            Some("0 4 */3 * *")
        );
        assert_eq!(
            named(&all, "check_upgradable_plugin_task").entry.enabled,
            Some(false),
            "Dify also needs MARKETPLACE_ENABLED for the plugin check"
        );
        let names: std::collections::BTreeSet<_> = all.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), all.len(), "entry names are unique");
    }
}
