//! The worker's Prometheus metrics: what its tasks did (counted as they finish) and what waits
//! in Redis and in its slots (read when `/metrics` is scraped).
//!
//! Task names come from messages, so the number of distinct `task` label values is capped:
//! a flood of made-up names cannot grow the scrape without bound.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::broker::{Broker, QueueSizes};
use crate::results::RunInfo;

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for Redis before reporting the broker as down.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// Distinct task names tracked before further names are counted as [`OTHER_TASK`].
pub const MAX_TASK_LABELS: usize = 500;

/// The `task` label of names past [`MAX_TASK_LABELS`].
pub const OTHER_TASK: &str = "<other>";

/// How a task run ended, as the `state` label of `taskbox_tasks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// It returned a result.
    Success,
    /// It failed and a retry was scheduled.
    Retry,
    /// It failed for good (no retries left, or not retryable).
    Failure,
    /// It rejected its input (failed for good, never retried).
    Rejected,
    /// It was not run, or was stopped, and REVOKED was stored (expired, revoked).
    Revoked,
}

impl TaskState {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Success => "success",
            TaskState::Retry => "retry",
            TaskState::Failure => "failure",
            TaskState::Rejected => "rejected",
            TaskState::Revoked => "revoked",
        }
    }

    /// The state of a task that failed for good with sandbox error kind `kind`.
    pub fn gave_up(kind: &str) -> TaskState {
        if kind == "Reject" {
            TaskState::Rejected
        } else {
            TaskState::Failure
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
    queue: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskName {
    task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorKind {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueName {
    queue: String,
}

type HistogramFamily = Family<TaskName, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms … about 45 minutes.
    Histogram::new(exponential_buckets(0.005, 2.5, 15))
}

fn fuel_histogram() -> Histogram {
    // 100k (a trivial call) … 10^13 (minutes of CPU).
    Histogram::new(exponential_buckets(1e5, 10.0, 9))
}

fn memory_histogram() -> Histogram {
    // 64 KiB (one wasm page) … 16 GiB.
    Histogram::new(exponential_buckets(65_536.0, 4.0, 10))
}

/// Every metric of one worker, registered once. Recording is lock-free except for the first
/// sighting of a label set; held in the worker's shared state.
pub struct Metrics {
    registry: Registry,
    tasks: Family<TaskLabels, Counter>,
    duration: HistogramFamily,
    fuel: HistogramFamily,
    memory: HistogramFamily,
    sandbox_errors: Family<ErrorKind, Counter>,
    plugin_reloads: Counter,
    queue_depth: Family<QueueName, Gauge>,
    unacked: Gauge,
    delayed: Gauge,
    dead_letters: Gauge,
    slots_busy: Gauge,
    slots_total: Gauge,
    broker_up: Gauge,
    task_names: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `taskbox_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("taskbox");
        let tasks = Family::<TaskLabels, Counter>::default();
        registry.register(
            "tasks",
            "Tasks finished by this worker, by task name, queue and state",
            tasks.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "task_duration",
            "Wall time of each task run in the sandbox",
            Unit::Seconds,
            duration.clone(),
        );
        let fuel: HistogramFamily = Family::new_with_constructor(fuel_histogram);
        registry.register(
            "task_fuel_used",
            "Fuel (wasm instructions, roughly) each task run consumed",
            fuel.clone(),
        );
        let memory: HistogramFamily = Family::new_with_constructor(memory_histogram);
        registry.register_with_unit(
            "task_peak_memory",
            "Peak linear memory of each task run",
            Unit::Bytes,
            memory.clone(),
        );
        let sandbox_errors = Family::<ErrorKind, Counter>::default();
        registry.register(
            "sandbox_errors",
            "Task runs that ended in a sandbox error, by kind (Fail, Trap, OutOfFuel, ...)",
            sandbox_errors.clone(),
        );
        let plugin_reloads = Counter::default();
        registry.register(
            "plugin_reloads",
            "Plugin directory reloads that changed the loaded plugins",
            plugin_reloads.clone(),
        );
        let queue_depth = Family::<QueueName, Gauge>::default();
        registry.register(
            "queue_depth",
            "Messages waiting in each consumed queue (all priorities), read at scrape time",
            queue_depth.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let unacked = gauge(
            &mut registry,
            "queue_unacked",
            "Messages fetched by any worker and not yet acknowledged, read at scrape time",
        );
        let delayed = gauge(
            &mut registry,
            "queue_delayed",
            "Messages waiting for a countdown, ETA or retry backoff, read at scrape time",
        );
        let dead_letters = gauge(
            &mut registry,
            "dead_letters",
            "Entries in the dead-letter list, read at scrape time",
        );
        let slots_busy = gauge(
            &mut registry,
            "slots_busy",
            "Task slots of this worker running a task now",
        );
        let slots_total = gauge(
            &mut registry,
            "slots_total",
            "Task slots of this worker now (moves with autoscaling)",
        );
        let broker_up = gauge(
            &mut registry,
            "broker_up",
            "1 when the last scrape could read Redis; the queue gauges keep their last values otherwise",
        );
        Metrics {
            registry,
            tasks,
            duration,
            fuel,
            memory,
            sandbox_errors,
            plugin_reloads,
            queue_depth,
            unacked,
            delayed,
            dead_letters,
            slots_busy,
            slots_total,
            broker_up,
            task_names: Mutex::new(HashSet::new()),
        }
    }

    /// `task` as a label value: itself while fewer than [`MAX_TASK_LABELS`] names were seen,
    /// else [`OTHER_TASK`].
    fn task_label(&self, task: &str) -> String {
        // A set of names stays consistent whatever panicked while holding the lock.
        let mut names = self.task_names.lock().unwrap_or_else(|p| p.into_inner());
        if names.contains(task) {
            return task.to_string();
        }
        if names.len() < MAX_TASK_LABELS {
            names.insert(task.to_string());
            return task.to_string();
        }
        OTHER_TASK.to_string()
    }

    /// Counts one finished task run. `run` is what the sandbox measured, when the task ran;
    /// its error kind, if any, also counts as a sandbox error.
    pub fn record_task(&self, task: &str, queue: &str, state: TaskState, run: Option<&RunInfo>) {
        let task = self.task_label(task);
        self.tasks
            .get_or_create(&TaskLabels {
                task: task.clone(),
                queue: queue.to_string(),
                state: state.as_str().to_string(),
            })
            .inc();
        let Some(run) = run else { return };
        let name = TaskName { task };
        self.duration
            .get_or_create(&name)
            .observe(run.duration_ms / 1000.0);
        self.fuel.get_or_create(&name).observe(run.fuel_used as f64);
        self.memory
            .get_or_create(&name)
            .observe(run.peak_memory as f64);
        if let Some(kind) = &run.error_kind {
            self.sandbox_errors
                .get_or_create(&ErrorKind { kind: kind.clone() })
                .inc();
        }
    }

    /// Counts one plugin directory reload that changed something.
    pub fn record_plugin_reload(&self) {
        self.plugin_reloads.inc();
    }

    /// Sets the slot gauges.
    pub fn set_slots(&self, busy: usize, total: u32) {
        self.slots_busy.set(i64::try_from(busy).unwrap_or(i64::MAX));
        self.slots_total.set(i64::from(total));
    }

    /// Sets the queue gauges from a snapshot of Redis.
    pub fn set_queues(&self, sizes: &QueueSizes) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (queue, per_priority) in &sizes.depths {
            self.queue_depth
                .get_or_create(&QueueName {
                    queue: queue.clone(),
                })
                .set(clamp(per_priority.iter().sum()));
        }
        self.unacked.set(clamp(sizes.unacked));
        self.delayed.set(clamp(sizes.delayed));
        self.dead_letters.set(clamp(sizes.dead_letters));
    }

    /// Reads the queue gauges from Redis, waiting at most [`SCRAPE_TIMEOUT`] so a slow or
    /// unreachable Redis never hangs a scrape; then `taskbox_broker_up` is 0 and the queue
    /// gauges keep their last values.
    pub async fn refresh_queues(&self, broker: &Broker, queues: &[String]) {
        match tokio::time::timeout(SCRAPE_TIMEOUT, broker.sizes(queues)).await {
            Ok(Ok(sizes)) => {
                self.set_queues(&sizes);
                self.broker_up.set(1);
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %format_args!("{err:#}"), "metrics: could not read queue sizes");
                self.broker_up.set(0);
            }
            Err(_) => {
                tracing::debug!("metrics: reading queue sizes timed out");
                self.broker_up.set(0);
            }
        }
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|_| anyhow::anyhow!("could not encode the metrics as text"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(error_kind: Option<&str>) -> RunInfo {
        RunInfo {
            duration_ms: 1500.0,
            fuel_used: 2_000_000,
            peak_memory: 1 << 20,
            error_kind: error_kind.map(str::to_string),
            worker: "w".into(),
            attempt: 1,
        }
    }

    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn names_and_values_follow_the_recorded_tasks() {
        let m = Metrics::new();
        m.record_task("echo", "dataset", TaskState::Success, Some(&run(None)));
        m.record_task("echo", "dataset", TaskState::Success, Some(&run(None)));
        m.record_task(
            "hostile.run",
            "pipeline",
            TaskState::gave_up("Reject"),
            Some(&run(Some("Reject"))),
        );
        m.record_task("bad", "dataset", TaskState::Failure, None);
        m.record_plugin_reload();
        m.set_slots(1, 4);
        m.set_queues(&QueueSizes {
            depths: vec![("dataset".into(), [1, 2, 0, 3])],
            unacked: 5,
            delayed: 6,
            dead_letters: 7,
        });
        let text = m.encode().unwrap();
        let get = |series: &str| {
            value_of(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        };
        assert_eq!(
            get(r#"taskbox_tasks_total{task="echo",queue="dataset",state="success"}"#),
            2.0
        );
        assert_eq!(
            get(r#"taskbox_tasks_total{task="hostile.run",queue="pipeline",state="rejected"}"#),
            1.0
        );
        assert_eq!(
            get(r#"taskbox_tasks_total{task="bad",queue="dataset",state="failure"}"#),
            1.0
        );
        assert_eq!(get(r#"taskbox_sandbox_errors_total{kind="Reject"}"#), 1.0);
        assert_eq!(
            get(r#"taskbox_task_duration_seconds_count{task="echo"}"#),
            2.0
        );
        assert_eq!(
            get(r#"taskbox_task_duration_seconds_sum{task="echo"}"#),
            3.0
        );
        assert_eq!(get(r#"taskbox_task_fuel_used_sum{task="echo"}"#), 4e6);
        assert_eq!(
            get(r#"taskbox_task_peak_memory_bytes_count{task="hostile.run"}"#),
            1.0
        );
        assert_eq!(get("taskbox_plugin_reloads_total"), 1.0);
        assert_eq!(get(r#"taskbox_queue_depth{queue="dataset"}"#), 6.0);
        assert_eq!(get("taskbox_queue_unacked"), 5.0);
        assert_eq!(get("taskbox_queue_delayed"), 6.0);
        assert_eq!(get("taskbox_dead_letters"), 7.0);
        assert_eq!(get("taskbox_slots_busy"), 1.0);
        assert_eq!(get("taskbox_slots_total"), 4.0);
        assert!(
            text.contains("# TYPE taskbox_task_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn task_names_past_the_cap_share_one_label() {
        let m = Metrics::new();
        for i in 0..MAX_TASK_LABELS + 10 {
            m.record_task(&format!("t{i}"), "q", TaskState::Success, None);
        }
        m.record_task("t0", "q", TaskState::Success, None);
        let text = m.encode().unwrap();
        assert_eq!(
            value_of(
                &text,
                r#"taskbox_tasks_total{task="<other>",queue="q",state="success"}"#
            ),
            Some(10.0)
        );
        assert_eq!(
            value_of(
                &text,
                r#"taskbox_tasks_total{task="t0",queue="q",state="success"}"#
            ),
            Some(2.0)
        );
    }
}
