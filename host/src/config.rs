//! The operator's configuration: the [`Config`] tree, where each setting comes from, and the
//! checks that run once before anything connects or executes.
//!
//! Settings are layered defaults < `taskbox.toml` < environment (Celery/Dify names, then
//! `TASKBOX_*`) < command-line flags. Every mistake becomes a [`ConfigError`] that names the key,
//! the bad value (never a password), where it came from, and how to fix it. This file also owns
//! the human-friendly size and duration parsers and the serde helpers that every configurable
//! struct uses: sizes accept `bytesize` forms (`"64MiB"`, `"1GB"`, `"4096"`), durations accept
//! `humantime` forms (`"30s"`, `"5m"`, `"250ms"`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::capabilities::DirGrant;
use crate::runtime::limits::{Limits, LimitsOverride};

/// The largest `worker.keep_resident`: no linear memory is larger.
const MAX_KEEP_RESIDENT: u64 = 4 * 1024 * 1024 * 1024;

/// Parses a byte size such as `64MiB`, `1 GiB` or `4096`, naming the value when it is bad.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let trimmed = s.trim();
    if let Ok(n) = trimmed.parse::<u64>() {
        return Ok(n);
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!("'{s}' is not a size: use a number of bytes or a unit such as 64MiB or 1GiB")
        })
}

/// Parses a duration such as `30s`, `5m` or `250ms`, naming the value when it is bad.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("'{s}' is not a duration: use a number with a unit such as 30s, 5m or 250ms")
    })
}

/// Serde helper: an optional byte size written as a string (`"64MiB"`) or an integer.
pub mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    /// Reads `"64MiB"` or `67108864`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Int(n)) => Ok(Some(n)),
            Some(Raw::Text(s)) => super::parse_bytes(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes the size as an integer number of bytes.
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_some(n),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper: an optional duration written as a string (`"30s"`).
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads `"30s"`, `"5m"`, `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes the duration in humantime form.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// Parses a timeout given either as seconds (`"0.1"`, as Celery and Dify write
/// `CELERY_SENTINEL_SOCKET_TIMEOUT`) or as a duration (`"100ms"`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    match trimmed.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
            format!(
                "'{s}' is not a timeout: use a number of seconds such as 0.1, or a duration \
                 such as 100ms"
            )
        }),
        Err(_) => parse_duration(trimmed),
    }
}

/// Parses an autoscale range written `MAX,MIN` (`"10,3"`), the order Celery's `--autoscale`
/// uses, so a copied Celery command line keeps its meaning.
pub fn parse_autoscale(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not an autoscale range: write MAX,MIN such as 10,3");
    let (max, min) = s.split_once(',').ok_or_else(bad)?;
    let max = max.trim().parse::<u32>().map_err(|_| bad())?;
    let min = min.trim().parse::<u32>().map_err(|_| bad())?;
    Ok((max, min))
}

/// Parses a boolean as environment files write them (`true`/`false`, `1`/`0`, `yes`/`no`), so
/// Dify's `.env` values work unchanged.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "'{s}' is not a boolean: use true or false (1/0 and yes/no also work)"
        )),
    }
}

/// Serde helper: a required duration written as a string (`"30s"`); a bare number is refused
/// with a hint, because its unit would be a guess.
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\", \"5m\" or \"250ms\"")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            super::parse_duration(s).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} is not a duration: write it as a string with a unit, e.g. \"{n}s\""
            )))
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} is not a duration: write it as a string with a unit, e.g. \"{n}s\""
            )))
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "{n} is not a duration: write it as a string with a unit, e.g. \"{n}s\""
            )))
        }
    }

    /// Reads `"30s"`, `"5m"`, `"250ms"`, `"1day"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Visitor)
    }

    /// Writes the duration in humantime form (`"1day"`, `"30s"`, `"0s"`).
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }
}

/// Serde helper: an optional timeout written as seconds (`0.1`, `"0.1"`) or as a duration
/// (`"100ms"`), because Celery configurations give socket timeouts as float seconds.
pub mod opt_seconds {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserializer, Serializer, de};

    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("seconds such as 0.1, or a duration such as \"100ms\"")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            super::parse_seconds(s).map(Some).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            Duration::try_from_secs_f64(n).map(Some).map_err(|_| {
                E::custom(format!(
                    "{n} is not a timeout: use a positive number of seconds"
                ))
            })
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            u64::try_from(n)
                .map(|secs| Some(Duration::from_secs(secs)))
                .map_err(|_| {
                    E::custom(format!(
                        "{n} is not a timeout: use a positive number of seconds"
                    ))
                })
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_secs(n)))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Visitor)
        }
    }

    /// Reads `0.1`, `"0.1"` or `"100ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_any(Visitor)
    }

    /// Writes the timeout in humantime form (`"100ms"`).
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper: an optional autoscale range written `"10,3"` or `[10, 3]` (max first, as
/// Celery's `--autoscale` writes it).
pub mod opt_autoscale {
    use std::fmt;

    use serde::{Deserializer, Serialize, Serializer, de};

    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Option<(u32, u32)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an autoscale range written \"MAX,MIN\" or [MAX, MIN], e.g. \"10,3\"")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            super::parse_autoscale(s).map(Some).map_err(E::custom)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let wrong = || {
                de::Error::custom(
                    "an autoscale range has exactly two numbers: [MAX, MIN], e.g. [10, 3]",
                )
            };
            let max: u32 = seq.next_element()?.ok_or_else(wrong)?;
            let min: u32 = seq.next_element()?.ok_or_else(wrong)?;
            if seq.next_element::<u32>()?.is_some() {
                return Err(wrong());
            }
            Ok(Some((max, min)))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Visitor)
        }
    }

    /// Reads `"10,3"` or `[10, 3]`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(u32, u32)>, D::Error> {
        d.deserialize_any(Visitor)
    }

    /// Writes the range as `[max, min]`.
    pub fn serialize<S: Serializer>(v: &Option<(u32, u32)>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some((max, min)) => [*max, *min].serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// The queues a worker consumes when none are configured: Dify's Celery queues, so a taskbox
/// worker can replace `celery worker` without a `-Q` list.
pub const DEFAULT_QUEUES: [&str; 16] = [
    "priority_dataset",
    "priority_pipeline",
    "dataset",
    "pipeline",
    "mail",
    "ops_trace",
    "app_deletion",
    "plugin",
    "workflow_storage",
    "conversation",
    "workflow",
    "schedule_poller",
    "schedule_executor",
    "triggered_workflow_dispatcher",
    "trigger_refresh_executor",
    "retention",
];

/// The broker used when nothing is configured: a local Redis, database 0.
pub const DEFAULT_BROKER_URL: &str = "redis://127.0.0.1:6379/0";

/// The file [`Config::load`] reads from the current directory when no path is given.
pub const CONFIG_FILE_NAME: &str = "taskbox.toml";

/// Sandbox error kinds a [`RetryPolicy`] may retry; anything else in `retry_on` is a typo.
/// `Reject` is deliberately absent: a task that rejects its input would reject it again.
pub const RETRY_KINDS: [&str; 10] = [
    "Fail",
    "Retry",
    "OutOfFuel",
    "MemoryLimit",
    "Timeout",
    "StackOverflow",
    "Trap",
    "OutputTooLarge",
    "CapabilityDenied",
    "Terminated",
];

/// Capability names a plugin may be granted, as its `capabilities` list spells them (the WIT
/// interface names under `taskbox:task/`).
pub const CAPABILITIES: [&str; 6] = ["log", "progress", "kv", "mail", "queue", "housekeeping"];

/// Every environment variable [`Config::load`] reads, so documentation and `--help` can list
/// them and a test can prove each one is read.
pub const ENV_VARS: [&str; 58] = [
    "CELERY_BROKER_URL",
    "CELERY_BACKEND",
    "CELERY_RESULT_BACKEND",
    "BROKER_USE_SSL",
    "CELERY_USE_SENTINEL",
    "CELERY_SENTINEL_MASTER_NAME",
    "CELERY_SENTINEL_PASSWORD",
    "CELERY_SENTINEL_SOCKET_TIMEOUT",
    "CELERY_WORKER_AMOUNT",
    "CELERY_AUTO_SCALE",
    "CELERY_MAX_WORKERS",
    "CELERY_MIN_WORKERS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "LOG_FILE",
    "LOG_FILE_MAX_SIZE",
    "LOG_FILE_BACKUP_COUNT",
    "MAIL_TYPE",
    "SMTP_SERVER",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_USE_TLS",
    "SMTP_OPPORTUNISTIC_TLS",
    "MAIL_DEFAULT_SEND_FROM",
    "MAIL_OUTBOX_DIR",
    "TASKBOX_BROKER_URL",
    "TASKBOX_RESULT_BACKEND",
    "TASKBOX_QUEUES",
    "TASKBOX_CONCURRENCY",
    "TASKBOX_AUTOSCALE",
    "TASKBOX_WORKER_NAME",
    "TASKBOX_PLUGINS_DIR",
    "TASKBOX_CACHE_DIR",
    "TASKBOX_RESULT_EXPIRES",
    "TASKBOX_DEAD_AFTER",
    "TASKBOX_SHUTDOWN_GRACE",
    "TASKBOX_PLUGIN_POLL",
    "TASKBOX_UNREGISTERED_TIMEOUT",
    "TASKBOX_HTTP",
    "TASKBOX_KEEP_RESIDENT",
    "CELERY_BEAT_SCHEDULER_TIME",
    "ENABLE_CLEAN_EMBEDDING_CACHE_TASK",
    "ENABLE_CLEAN_UNUSED_DATASETS_TASK",
    "ENABLE_CREATE_TIDB_SERVERLESS_TASK",
    "ENABLE_UPDATE_TIDB_SERVERLESS_STATUS_TASK",
    "ENABLE_CLEAN_MESSAGES",
    "ENABLE_MAIL_CLEAN_DOCUMENT_NOTIFY_TASK",
    "ENABLE_DATASETS_QUEUE_MONITOR",
    "QUEUE_MONITOR_INTERVAL",
    "ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK",
    "MARKETPLACE_ENABLED",
    "ENABLE_WORKFLOW_RUN_CLEANUP_TASK",
    "ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK",
    "WORKFLOW_SCHEDULE_POLLER_INTERVAL",
    "QUEUE_MONITOR_THRESHOLD",
    "QUEUE_MONITOR_ALERT_EMAILS",
    "QUEUE_MONITOR_QUEUES",
];

/// Every flag [`Config::apply_flag`] understands, so the CLI can check it wires no other.
pub const FLAGS: [&str; 21] = [
    "--broker",
    "--result-backend",
    "-Q",
    "--queues",
    "-c",
    "--concurrency",
    "--autoscale",
    "-n",
    "--name",
    "--hostname",
    "--plugins",
    "--cache-dir",
    "--dead-after",
    "--shutdown-grace",
    "--heartbeat-interval",
    "--result-expires",
    "-l",
    "--log-level",
    "--log-format",
    "--log-file",
    "--http",
];

/// What replaces secrets in `Debug` output, errors and [`Config::redacted`].
const REDACTED: &str = "***";

/// Where every example of a key lives, for error fixes.
const EXAMPLE: &str = "examples/taskbox.toml";

/// The whole configuration; loaded once, validated, then passed by reference.
///
/// Built by [`Config::load`] (file, then environment) and [`Config::apply_flag`] (flags); the
/// worker never reads the environment itself, so this is the one place settings come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where tasks come from. Default: a local Redis (`redis://127.0.0.1:6379/0`).
    pub broker: BrokerConfig,
    /// Where results go. Default: the broker's Redis, kept for one day.
    pub results: ResultsConfig,
    /// How this worker consumes. Default: the 16 Dify queues, one slot per CPU.
    pub worker: WorkerConfig,
    /// Limits for every task, under plugin and task overrides. Default: none set, so the
    /// built-in [`Limits`] apply.
    pub limits: LimitsOverride,
    /// Per-task settings, keyed by Celery task name. Default: none.
    pub tasks: BTreeMap<String, TaskConfig>,
    /// Per-plugin grants and limits, keyed by plugin name. Default: none.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Outbound mail for the mail capability. Default: disabled.
    pub mail: MailConfig,
    /// Log level, format and file. Default: `info` as text on the console (stdout for
    /// `worker` and `beat`, stderr for other commands).
    pub log: LogConfig,
    /// Periodic tasks for `taskbox beat`. Default: Dify's schedule with Dify's switches.
    pub beat: BeatConfig,
    /// The queue-depth monitor task (`ops.queue_monitor`). Default: watch `dataset` over 200.
    pub monitor: MonitorConfig,
    /// Where each key was last set, so errors can say "from TASKBOX_DEAD_AFTER".
    #[serde(skip)]
    origins: Origins,
}

/// What `ops.queue_monitor` watches and whom it tells, as Dify configures its monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Queues watched. Default: `["dataset"]`. Env: `QUEUE_MONITOR_QUEUES` (comma-separated).
    pub queues: Vec<String>,
    /// A queue deeper than this is alerting. Default: `200`. Env: `QUEUE_MONITOR_THRESHOLD`.
    pub threshold: u64,
    /// Recipients of alerts and recovery notices. Default: none. Env:
    /// `QUEUE_MONITOR_ALERT_EMAILS` (comma-separated).
    pub alert_emails: Vec<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            queues: vec!["dataset".to_string()],
            threshold: 200,
            alert_emails: Vec::new(),
        }
    }
}

/// The broker connection. `Debug` redacts the URL's password and the sentinel password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Redis URL: `redis://[:password@]host[:port][/db]`, `rediss://…`, or a `;`-separated
    /// list of `sentinel://[:password@]host:port[/db]`. Default: `redis://127.0.0.1:6379/0`.
    /// Env: `TASKBOX_BROKER_URL`, `CELERY_BROKER_URL`; flag `--broker`.
    pub url: String,
    /// Connect with TLS: a `redis://` URL is used as `rediss://`. Default: `false`.
    /// Env: `BROKER_USE_SSL`.
    pub use_tls: bool,
    /// Sentinel master name; required with a `sentinel://` URL. Default: unset.
    /// Env: `CELERY_SENTINEL_MASTER_NAME`.
    pub sentinel_master: Option<String>,
    /// Password for the sentinels themselves (the master's is in the URL). Default: unset.
    /// Env: `CELERY_SENTINEL_PASSWORD`.
    pub sentinel_password: Option<String>,
    /// Socket timeout towards the sentinels, as seconds (`0.1`) or a duration (`"100ms"`).
    /// Default: unset (the client's own). Env: `CELERY_SENTINEL_SOCKET_TIMEOUT`.
    #[serde(with = "opt_seconds", skip_serializing_if = "Option::is_none")]
    pub sentinel_socket_timeout: Option<Duration>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: DEFAULT_BROKER_URL.to_string(),
            use_tls: false,
            sentinel_master: None,
            sentinel_password: None,
            sentinel_socket_timeout: None,
        }
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact_url(&self.url))
            .field("use_tls", &self.use_tls)
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| REDACTED),
            )
            .field("sentinel_socket_timeout", &self.sentinel_socket_timeout)
            .finish()
    }
}

/// The result backend (Celery's `celery-task-meta-<id>` keys). `Debug` redacts the URL.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResultsConfig {
    /// Redis URL for results; unset means the broker's Redis. Default: unset.
    /// Env: `TASKBOX_RESULT_BACKEND`, `CELERY_RESULT_BACKEND`, `CELERY_BACKEND=redis`; flag
    /// `--result-backend`.
    pub url: Option<String>,
    /// How long a result is kept; `"0s"` keeps it forever. Default: `"1day"`.
    /// Env: `TASKBOX_RESULT_EXPIRES`; flag `--result-expires`.
    #[serde(with = "duration")]
    pub expires: Duration,
    /// Record `STARTED` when a task begins, as Celery's `task_track_started`. Default: `false`.
    pub track_started: bool,
    /// Store results at all; `false` is Celery's `task_ignore_result` for every task.
    /// Default: `true`.
    pub enabled: bool,
}

impl Default for ResultsConfig {
    fn default() -> Self {
        ResultsConfig {
            url: None,
            expires: Duration::from_secs(24 * 60 * 60),
            track_started: false,
            enabled: true,
        }
    }
}

impl fmt::Debug for ResultsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultsConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("expires", &self.expires)
            .field("track_started", &self.track_started)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// How this worker consumes tasks and notices dead peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Worker name in heartbeats and `inspect`. Default: unset, which the caller fills as
    /// `taskbox@<hostname>`. Env: `TASKBOX_WORKER_NAME`; flags `-n`, `--name`.
    pub name: Option<String>,
    /// Queues consumed, highest priority first. Default: the 16 in [`DEFAULT_QUEUES`].
    /// Env: `TASKBOX_QUEUES` (comma list); flags `-Q`, `--queues`.
    pub queues: Vec<String>,
    /// Task slots; unset means one per CPU. Default: unset.
    /// Env: `TASKBOX_CONCURRENCY`, `CELERY_WORKER_AMOUNT`; flags `-c`, `--concurrency`.
    pub concurrency: Option<u32>,
    /// Scale slots between `(max, min)` with load, written `"10,3"` or `[10, 3]`. Default:
    /// unset (fixed concurrency). Env: `TASKBOX_AUTOSCALE`, `CELERY_AUTO_SCALE` with
    /// `CELERY_MAX_WORKERS`/`CELERY_MIN_WORKERS`; flag `--autoscale`.
    #[serde(with = "opt_autoscale", skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<(u32, u32)>,
    /// How often this worker writes its heartbeat. Default: `"2s"`. Flag
    /// `--heartbeat-interval`.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A worker whose heartbeat is older than this is dead and its unacked tasks are
    /// redelivered; must exceed `heartbeat_interval`. Default: `"10s"`.
    /// Env: `TASKBOX_DEAD_AFTER`; flag `--dead-after`.
    #[serde(with = "duration")]
    pub dead_after: Duration,
    /// On a warm shutdown, how long running tasks may finish before they are interrupted and
    /// requeued. Default: `"30s"`. Env: `TASKBOX_SHUTDOWN_GRACE`; flag `--shutdown-grace`.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// How often tasks with an ETA or countdown are checked for being due. Default: `"50ms"`.
    #[serde(with = "duration")]
    pub delayed_poll: Duration,
    /// Largest fraction of slots each named queue may occupy, `0 < share <= 1`, so one busy
    /// queue cannot starve the others. Default: none (no cap).
    pub queue_shares: BTreeMap<String, f64>,
    /// Where compiled components are cached between runs. Default: unset (the user cache
    /// directory). Env: `TASKBOX_CACHE_DIR`; flag `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// Directory scanned for plugin `.wasm` files and manifests. Default: unset (only
    /// `[plugins.*]` entries). Env: `TASKBOX_PLUGINS_DIR`; flag `--plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// How often the plugin directory is checked for changes when file-system events are
    /// missed or unavailable. Default: `"2s"`. Env: `TASKBOX_PLUGIN_POLL`.
    #[serde(with = "duration")]
    pub plugin_poll: Duration,
    /// How long a task whose plugin no worker has loaded waits (returned to its queue every
    /// few seconds for a worker that has it) before it is dead-lettered. Default: `"5m"`; `"0s"`
    /// dead-letters at once. Env: `TASKBOX_UNREGISTERED_TIMEOUT`.
    #[serde(with = "duration")]
    pub unregistered_timeout: Duration,
    /// Serve `/healthz`, `/readyz` and `/metrics` on this `host:port`, e.g.
    /// `"127.0.0.1:9808"`. Default: unset (no endpoint). Env: `TASKBOX_HTTP`; flag `--http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Redis list that receives messages which cannot be decoded or have no retries left.
    /// Default: `"taskbox:dead_letter"`.
    pub dead_letter_key: String,
    /// Guest memory each sandbox memory slot keeps resident between tasks, e.g. `"16MiB"`:
    /// tasks that stay below it reuse warm pages instead of faulting in fresh ones, at the cost
    /// of up to that much resident memory for each slot that has run such a task (the pool has
    /// `2 × (2 × max slots + 4)` memory slots). Lower it where memory is tight. Default: unset
    /// (16 MiB). Where the kernel lacks `PAGEMAP_SCAN`, at most 1 MiB is kept whatever is set.
    /// Env: `TASKBOX_KEEP_RESIDENT`.
    #[serde(with = "opt_bytes", skip_serializing_if = "Option::is_none")]
    pub keep_resident: Option<u64>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: None,
            queues: DEFAULT_QUEUES.iter().map(|q| q.to_string()).collect(),
            concurrency: None,
            autoscale: None,
            heartbeat_interval: Duration::from_secs(2),
            dead_after: Duration::from_secs(10),
            plugin_poll: Duration::from_secs(2),
            unregistered_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            delayed_poll: Duration::from_millis(50),
            queue_shares: BTreeMap::new(),
            cache_dir: None,
            plugins_dir: None,
            http: None,
            dead_letter_key: "taskbox:dead_letter".to_string(),
            keep_resident: None,
        }
    }
}

/// Operator settings for one task name, overriding what the task's plugin declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// Queue the task is routed to when enqueued by taskbox. Default: unset (the plugin's).
    pub queue: Option<String>,
    /// Acknowledge after the task finishes, so a crash redelivers it. Default when unset:
    /// `true`.
    pub acks_late: Option<bool>,
    /// Do not store this task's result. Default when unset: `false`.
    pub ignore_result: Option<bool>,
    /// Automatic retries on failure. Default: unset (only retries the task asks for).
    pub retry: Option<RetryPolicy>,
    /// Limits for this task, over the plugin's and the global ones. Default: none set.
    pub limits: LimitsOverride,
}

/// When and how often a failed task is retried, with exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries after the first attempt; past them the task fails for good. Default: `3`.
    pub max_retries: u32,
    /// Delay before the first retry; each further retry doubles it. Default: `"1s"`.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Longest delay between retries. Default: `"10m"`.
    #[serde(with = "duration")]
    pub backoff_max: Duration,
    /// Spread retries over `[delay/2, delay]` so failed tasks do not return in lockstep.
    /// Default: `true`.
    pub jitter: bool,
    /// Sandbox error kinds that are retried (see [`RETRY_KINDS`]); `Reject` is never allowed.
    /// Default: `["Fail"]`.
    pub retry_on: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            jitter: true,
            retry_on: vec!["Fail".to_string()],
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retries` (0-based): `min(backoff * 2^retries, backoff_max)`,
    /// spread uniformly over `[delay/2, delay]` when `jitter` is on. `rand_unit` in `[0, 1)` is
    /// passed in so the result is testable; values outside are clamped.
    pub fn delay(&self, retries: u32, rand_unit: f64) -> Duration {
        let doubled = 2u32
            .checked_pow(retries)
            .and_then(|factor| self.backoff.checked_mul(factor))
            .unwrap_or(self.backoff_max);
        let delay = doubled.min(self.backoff_max);
        if !self.jitter {
            return delay;
        }
        let unit = if rand_unit.is_finite() {
            rand_unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = delay / 2;
        half + (delay - half).mul_f64(unit)
    }

    /// Whether a failure of sandbox error kind `kind` (e.g. `"Timeout"`) is retried.
    pub fn retries_on(&self, kind: &str) -> bool {
        self.retry_on.iter().any(|k| k == kind)
    }
}

/// What the operator grants one plugin. `Debug` hides environment values, which are often
/// API keys.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The component's `.wasm` file, relative to the working directory. Unset for a plugin
    /// installed in the plugin directory (its manifest names the file) or a built-in: the entry
    /// then only grants. Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Host interfaces granted (see [`CAPABILITIES`]). Default: none.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Queues the plugin may enqueue follow-up tasks to; `"*"` means any. Default: none.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Other plugins' kv namespaces it may clean up through `housekeeping`; `"*"` means any.
    /// Default: none.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Host directories made visible, each `"HOST:GUEST[:ro]"`. Default: none.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Environment the guest sees: `"NAME"` passes the worker's value through,
    /// `"NAME=VALUE"` sets one. Default: none.
    #[serde(default)]
    pub env: Vec<String>,
    /// Limits for this plugin's tasks, over the global ones. Default: none set.
    #[serde(default)]
    pub limits: LimitsOverride,
    /// When an ungranted import is refused: `"load"` (refuse to load the plugin) or `"call"`
    /// (fail the call with `CapabilityDenied`). Default: unset, which is `"load"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<String>,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self.env.iter().map(|e| redact_env(e)).collect();
        f.debug_struct("PluginConfig")
            .field("path", &self.path)
            .field("capabilities", &self.capabilities)
            .field("queues", &self.queues)
            .field("namespaces", &self.namespaces)
            .field("dirs", &self.dirs)
            .field("env", &env)
            .field("limits", &self.limits)
            .field("enforcement", &self.enforcement)
            .finish()
    }
}

impl PluginConfig {
    /// The `dirs` entries as grants; [`Config::validate`] has already proved they parse.
    pub fn dir_grants(&self) -> Result<Vec<DirGrant>, String> {
        self.dirs.iter().map(|d| DirGrant::parse(d)).collect()
    }

    /// The guest's environment: `NAME=VALUE` entries as given, bare `NAME` entries with the
    /// worker's value from `host_env` (left out when the worker has none).
    pub fn guest_env(&self, host_env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|entry| match entry.split_once('=') {
                Some((name, value)) => Some((name.to_string(), value.to_string())),
                None => host_env(entry).map(|value| (entry.clone(), value)),
            })
            .collect()
    }
}

/// Outbound mail, as Dify configures it. `Debug` redacts the SMTP password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `"smtp"` to send, `"outbox"` to write `.eml` files to `outbox_dir`, unset to refuse
    /// mail. Default: unset. Env: `MAIL_TYPE`.
    pub kind: Option<String>,
    /// SMTP host; required for `smtp`. Default: unset. Env: `SMTP_SERVER`.
    pub smtp_server: Option<String>,
    /// SMTP port. Default when unset: 25, or 587 with opportunistic TLS (STARTTLS), or 465
    /// with implicit TLS. Env: `SMTP_PORT`.
    pub smtp_port: Option<u16>,
    /// SMTP login name. Default: unset (no authentication). Env: `SMTP_USERNAME`.
    pub smtp_username: Option<String>,
    /// SMTP password. Default: unset. Env: `SMTP_PASSWORD`.
    pub smtp_password: Option<String>,
    /// Use TLS: implicit TLS, or STARTTLS when `smtp_opportunistic_tls` is also set.
    /// Default: `false`. Env: `SMTP_USE_TLS`.
    pub smtp_use_tls: bool,
    /// Upgrade a plain connection with STARTTLS; needs `smtp_use_tls`. Default: `false`.
    /// Env: `SMTP_OPPORTUNISTIC_TLS`.
    pub smtp_opportunistic_tls: bool,
    /// Sender used when a task gives none. Default: unset. Env: `MAIL_DEFAULT_SEND_FROM`.
    pub default_from: Option<String>,
    /// Directory for `outbox` mail; required for `outbox`. Default: unset.
    /// Env: `MAIL_OUTBOX_DIR`.
    pub outbox_dir: Option<PathBuf>,
}

impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("kind", &self.kind)
            .field("smtp_server", &self.smtp_server)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_username", &self.smtp_username)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| REDACTED),
            )
            .field("smtp_use_tls", &self.smtp_use_tls)
            .field("smtp_opportunistic_tls", &self.smtp_opportunistic_tls)
            .field("default_from", &self.default_from)
            .field("outbox_dir", &self.outbox_dir)
            .finish()
    }
}

impl MailConfig {
    /// The SMTP port to dial: the configured one, else the standard port for the TLS mode
    /// (587 STARTTLS, 465 implicit TLS, 25 plain).
    pub fn port(&self) -> u16 {
        match (
            self.smtp_port,
            self.smtp_use_tls,
            self.smtp_opportunistic_tls,
        ) {
            (Some(port), _, _) => port,
            (None, true, true) => 587,
            (None, true, false) => 465,
            (None, false, _) => 25,
        }
    }
}

/// Logging: level filter, line format and an optional rotating file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Level (`trace`…`error`, case-insensitive; Python's `WARNING`/`CRITICAL` work) or
    /// `target=level` directives joined by commas. Default: `"info"`. Env: `LOG_LEVEL`; flags
    /// `-l`, `--log-level`.
    pub level: String,
    /// `"text"` or `"json"`. Default: `"text"`. Env: `LOG_FORMAT` (a Python logging format
    /// string there, as Dify's `.env` has, is ignored); flag `--log-format`.
    pub format: String,
    /// Also write the logs of `worker` (and other long-running commands) to this file, rotated
    /// by size. Default: unset (console only). Env: `LOG_FILE`; flag `--log-file`.
    pub file: Option<PathBuf>,
    /// Rotate the file once it passes this many megabytes (MiB); fractions such as `0.5` are
    /// allowed. Default: `20`. Env: `LOG_FILE_MAX_SIZE`.
    pub file_max_size_mb: f64,
    /// Rotated files kept beside the live one (`FILE.1` newest … `FILE.N`); `0` keeps none.
    /// Default: `5`. Env: `LOG_FILE_BACKUP_COUNT`.
    pub file_backup_count: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: "text".to_string(),
            file: None,
            file_max_size_mb: 20.0,
            file_backup_count: 5,
        }
    }
}

impl LogConfig {
    /// `level` as a `tracing` filter directive: lowercase, with Python's `warning`,
    /// `critical` and `fatal` mapped to `warn` and `error`.
    pub fn directive(&self) -> String {
        self.level
            .split(',')
            .map(|part| {
                let part = part.trim();
                match part.rsplit_once('=') {
                    Some((target, level)) => format!("{target}={}", tracing_level(level)),
                    None => tracing_level(part).to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The `tracing` spelling of a level name, or `None` for an unknown one.
fn known_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "critical" | "fatal" => Some("error"),
        "off" => Some("off"),
        _ => None,
    }
}

fn tracing_level(level: &str) -> &str {
    known_level(level).unwrap_or(level)
}

/// Periodic tasks (`taskbox beat`): how replicas share the work, Dify's default schedule and
/// the operator's own entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeatConfig {
    /// Longest sleep between two looks at the schedule; standby replicas try to take the lease
    /// this often. Default: `"1s"`.
    #[serde(with = "duration")]
    pub tick: Duration,
    /// How long the leader's lease lasts without renewal (it renews every third of it): a dead
    /// leader is replaced within this plus one tick. Default: `"10s"`.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Prefix of beat's Redis keys (lease, fencing counter, last runs). Default:
    /// `"taskbox:beat"`.
    pub key_prefix: String,
    /// Most catch-up runs of an entry with `missed = "all"`, unless the entry sets its own.
    /// Default: `100`.
    pub max_catch_up: u32,
    /// Switches and timings of the default schedule (Dify's periodic tasks).
    pub defaults: BeatDefaults,
    /// Schedule entries by name; a default entry's name changes only the fields given.
    /// Default: none.
    pub schedule: BTreeMap<String, BeatEntryConfig>,
}

impl Default for BeatConfig {
    fn default() -> Self {
        BeatConfig {
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            key_prefix: "taskbox:beat".to_string(),
            max_catch_up: 100,
            defaults: BeatDefaults::default(),
            schedule: BTreeMap::new(),
        }
    }
}

/// The default schedule's switches, read from the environment variables Dify uses, with
/// Dify's defaults; `crate::beat` documents which entry each one switches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeatDefaults {
    /// Env: `ENABLE_CLEAN_EMBEDDING_CACHE_TASK`. Default: `false`.
    pub clean_embedding_cache: bool,
    /// Env: `ENABLE_CLEAN_UNUSED_DATASETS_TASK`. Default: `false`.
    pub clean_unused_datasets: bool,
    /// Env: `ENABLE_CREATE_TIDB_SERVERLESS_TASK`. Default: `false`.
    pub create_tidb_serverless: bool,
    /// Env: `ENABLE_UPDATE_TIDB_SERVERLESS_STATUS_TASK`. Default: `false`.
    pub update_tidb_serverless_status: bool,
    /// Env: `ENABLE_CLEAN_MESSAGES`. Default: `false`.
    pub clean_messages: bool,
    /// Env: `ENABLE_MAIL_CLEAN_DOCUMENT_NOTIFY_TASK`. Default: `false`.
    pub mail_clean_document_notify: bool,
    /// The queue-depth monitor. Env: `ENABLE_DATASETS_QUEUE_MONITOR`. Default: `false`.
    pub datasets_queue_monitor: bool,
    /// Env: `ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK`. Default: `true`.
    pub check_upgradable_plugin: bool,
    /// Dify runs the plugin check only with the marketplace on. Env: `MARKETPLACE_ENABLED`.
    /// Default: `true`.
    pub marketplace: bool,
    /// Env: `ENABLE_WORKFLOW_RUN_CLEANUP_TASK`. Default: `false`.
    pub workflow_run_cleanup: bool,
    /// Env: `ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK`. Default: `true`.
    pub workflow_schedule_poller: bool,
    /// taskbox's own daily `retention.sweep` (no Dify variable). Default: `false`.
    pub retention_sweep: bool,
    /// Period of the queue monitor. Env: `QUEUE_MONITOR_INTERVAL` (minutes; 0 means 30, as in
    /// Dify). Default: `"30m"`.
    #[serde(with = "duration")]
    pub queue_monitor_interval: Duration,
    /// Period of the workflow schedule poller. Env: `WORKFLOW_SCHEDULE_POLLER_INTERVAL`
    /// (minutes). Default: `"1m"`.
    #[serde(with = "duration")]
    pub workflow_schedule_poller_interval: Duration,
    /// The daily clean-ups run every this many days (the day-of-month step `*/N`, as Dify
    /// uses it). Env: `CELERY_BEAT_SCHEDULER_TIME`. Default: `1`.
    pub scheduler_days: u32,
}

impl Default for BeatDefaults {
    fn default() -> Self {
        BeatDefaults {
            clean_embedding_cache: false,
            clean_unused_datasets: false,
            create_tidb_serverless: false,
            update_tidb_serverless_status: false,
            clean_messages: false,
            mail_clean_document_notify: false,
            datasets_queue_monitor: false,
            check_upgradable_plugin: true,
            marketplace: true,
            workflow_run_cleanup: false,
            workflow_schedule_poller: true,
            retention_sweep: false,
            queue_monitor_interval: Duration::from_secs(30 * 60),
            workflow_schedule_poller_interval: Duration::from_secs(60),
            scheduler_days: 1,
        }
    }
}

/// One `[beat.schedule.<name>]` entry. Every field is optional so that an entry named like a
/// default one can change just one field; a new entry needs `task` and `cron` or `every`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeatEntryConfig {
    /// Celery task name. Required for a new entry.
    pub task: Option<String>,
    /// Queue to send to. Default: the task's route (`[tasks.<task>] queue`, then the built-in
    /// routes).
    pub queue: Option<String>,
    /// Positional arguments. Default: none.
    pub args: Option<Vec<serde_json::Value>>,
    /// Keyword arguments. Default: none.
    pub kwargs: Option<serde_json::Map<String, serde_json::Value>>,
    /// A 5-field crontab (`"30 2 * * MON-FRI"`), read in `timezone`. Set this or `every`.
    pub cron: Option<String>,
    /// A fixed interval (`"30s"`, `"5m"`, `"1h"`), aligned to the Unix epoch. Set this or
    /// `cron`.
    pub every: Option<String>,
    /// IANA time zone of `cron` (`"Europe/Berlin"`). Default: `"UTC"`.
    pub timezone: Option<String>,
    /// Whether the entry runs. Default: `true`.
    pub enabled: Option<bool>,
    /// Occurrences missed while no beat ran: `"skip"`, `"once"` (one catch-up) or `"all"`.
    /// Default: `"once"`.
    pub missed: Option<crate::beat::MissedPolicy>,
    /// Most catch-up runs with `missed = "all"`. Default: `beat.max_catch_up`.
    pub max_catch_up: Option<u32>,
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as written (`--concurrency`).
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration mistake, naming the key, the value (never a password), where it came from
/// and the fix. Returned before anything connects, so a worker never starts half-configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error(
        "{}: cannot read the configuration file: check the path and its permissions, or \
         leave out --config to use ./{CONFIG_FILE_NAME} or the defaults",
        path.display()
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file has a key the configuration does not know (usually a typo).
    #[error(
        "{}:{line}: unknown key `{key}`: {expected}; fix the spelling or remove it \
         ({EXAMPLE} lists every key)",
        path.display()
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The key, dotted from the top (`worker.concurency`).
        key: String,
        /// The keys allowed there, as serde lists them.
        expected: String,
    },
    /// The file is not valid TOML, or a value has the wrong form.
    #[error(
        "{}:{line}: {}{message} (see {EXAMPLE} for the form of each key)",
        path.display(),
        key_prefix(key)
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// The dotted key at the problem, when one could be found.
        key: Option<String>,
        /// What is wrong, with the bad value unless it is a password.
        message: String,
    },
    /// A value is malformed or contradicts another setting.
    #[error("{source_of}: `{key}` = {value}: {fix}")]
    Invalid {
        /// The dotted key (`worker.concurrency`).
        key: String,
        /// The value as given, quoted, with passwords redacted.
        value: String,
        /// Where the value came from.
        source_of: Source,
        /// What is wrong with the value, then how to fix it.
        fix: String,
    },
    /// The CLI passed a flag this module does not map (a wiring bug, not an operator error).
    #[error("flag `{flag}` is not a configuration flag; known flags: {}", FLAGS.join(", "))]
    UnknownFlag {
        /// The flag.
        flag: String,
    },
}

/// Where each key was set; compares equal always, because provenance is not part of a
/// configuration's value.
#[derive(Clone, Default)]
struct Origins(BTreeMap<String, Source>);

impl PartialEq for Origins {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl Config {
    /// Reads `path` if given (else `taskbox.toml` in the current directory if it exists, else
    /// defaults), then applies `env` (a lookup function, so tests can pass a map instead of the
    /// process environment), then validates.
    ///
    /// Empty environment values count as unset, as Dify's `.env` leaves many of them blank.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => Some(path.to_path_buf()),
            None => {
                let implicit = PathBuf::from(CONFIG_FILE_NAME);
                implicit.is_file().then_some(implicit)
            }
        };
        let mut config = match &file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses one TOML file over the defaults, without environment or validation.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&text, path)
    }

    /// Parses TOML `text` over the defaults, without environment or validation; `path` is named
    /// in errors and recorded as the source of every key the text sets.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|err| file_error(text, path, &err))?;
        if let Ok(table) = toml::de::DeTable::parse(text) {
            record_origins(
                table.get_ref(),
                "",
                &Source::File(path.to_path_buf()),
                &mut config.origins,
            );
        }
        Ok(config)
    }

    /// Where `key` (dotted, e.g. `worker.concurrency`) was last set. A table key (such as
    /// `tasks.ingest`) reports where its first key inside was set; a key nobody set reports
    /// [`Source::Default`].
    pub fn source_of(&self, key: &str) -> Source {
        if let Some(source) = self.origins.0.get(key) {
            return source.clone();
        }
        let inside = format!("{key}.");
        self.origins
            .0
            .range(inside.clone()..)
            .next()
            .filter(|(k, _)| k.starts_with(&inside))
            .map_or(Source::Default, |(_, source)| source.clone())
    }

    /// The broker URL to connect to, with `use_tls` applied (`redis://` becomes `rediss://`).
    pub fn broker_url(&self) -> String {
        match self.broker.url.strip_prefix("redis://") {
            Some(rest) if self.broker.use_tls => format!("rediss://{rest}"),
            _ => self.broker.url.clone(),
        }
    }

    /// The result backend URL: `results.url`, or the broker's when unset.
    pub fn results_url(&self) -> String {
        self.results
            .url
            .clone()
            .unwrap_or_else(|| self.broker_url())
    }

    /// The limits one task runs under: built-in defaults, then `[limits]`, then the plugin
    /// manifest's `manifest`, then `[plugins.<plugin>.limits]`, then `[tasks.<task>.limits]`,
    /// so the operator's per-plugin and per-task settings beat what the plugin asks for.
    pub fn limits_for(
        &self,
        manifest: &LimitsOverride,
        plugin: Option<&str>,
        task: &str,
    ) -> Limits {
        let mut limits = Limits::default().with(&self.limits).with(manifest);
        if let Some(p) = plugin.and_then(|p| self.plugins.get(p)) {
            limits = limits.with(&p.limits);
        }
        if let Some(t) = self.tasks.get(task) {
            limits = limits.with(&t.limits);
        }
        limits
    }

    /// A copy safe to print or serialize for an operator (`taskbox config`): URL passwords,
    /// the sentinel and SMTP passwords and plugin environment values become `***`.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        copy.broker.url = redact_url(&copy.broker.url);
        if copy.broker.sentinel_password.is_some() {
            copy.broker.sentinel_password = Some(REDACTED.to_string());
        }
        copy.results.url = copy.results.url.as_deref().map(redact_url);
        if copy.mail.smtp_password.is_some() {
            copy.mail.smtp_password = Some(REDACTED.to_string());
        }
        for plugin in copy.plugins.values_mut() {
            plugin.env = plugin.env.iter().map(|e| redact_env(e)).collect();
        }
        copy
    }

    fn mark(&mut self, key: &str, source: &Source) {
        self.origins.0.insert(key.to_string(), source.clone());
    }

    /// Applies the Celery/Dify environment names, then the `TASKBOX_*` ones (which win).
    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (v, Source::Env(name.to_string())))
        };

        // Broker.
        if let Some((v, src)) = get("CELERY_BROKER_URL") {
            self.broker.url = v;
            self.mark("broker.url", &src);
        }
        if let Some((v, src)) = get("BROKER_USE_SSL") {
            self.broker.use_tls = to_bool("broker.use_tls", &v, &src)?;
            self.mark("broker.use_tls", &src);
        }
        let use_sentinel = match get("CELERY_USE_SENTINEL") {
            Some((v, src)) => to_bool("broker.url", &v, &src)?.then_some(src),
            None => None,
        };
        if let Some((v, src)) = get("CELERY_SENTINEL_MASTER_NAME") {
            self.broker.sentinel_master = Some(v);
            self.mark("broker.sentinel_master", &src);
        }
        if let Some((v, src)) = get("CELERY_SENTINEL_PASSWORD") {
            self.broker.sentinel_password = Some(v);
            self.mark("broker.sentinel_password", &src);
        }
        if let Some((v, src)) = get("CELERY_SENTINEL_SOCKET_TIMEOUT") {
            let timeout = parse_seconds(&v).map_err(|_| {
                invalid(
                    "broker.sentinel_socket_timeout",
                    quoted(&v),
                    src.clone(),
                    "not a timeout",
                    "use seconds such as 0.1, or a duration such as 100ms",
                )
            })?;
            self.broker.sentinel_socket_timeout = Some(timeout);
            self.mark("broker.sentinel_socket_timeout", &src);
        }

        // Results.
        let result_backend = get("CELERY_RESULT_BACKEND");
        if let Some((v, src)) = get("CELERY_BACKEND") {
            match v.to_ascii_lowercase().as_str() {
                "redis" => {
                    if result_backend.is_none() {
                        self.results.url = None;
                        self.mark("results.url", &src);
                    }
                }
                "database" => {
                    return Err(invalid(
                        "results.url",
                        quoted(&v),
                        src,
                        "taskbox stores results in Redis, not in a database",
                        "set CELERY_BACKEND=redis (results go to the broker's Redis) or set \
                         CELERY_RESULT_BACKEND to a redis:// URL",
                    ));
                }
                _ => {
                    return Err(invalid(
                        "results.url",
                        quoted(&v),
                        src,
                        "taskbox stores results in Redis only",
                        "set CELERY_BACKEND=redis, or leave it unset",
                    ));
                }
            }
        }
        if let Some((v, src)) = result_backend {
            if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                return Err(invalid(
                    "results.url",
                    quoted(&redact_url(&v)),
                    src,
                    "taskbox stores results in Redis, so the result backend must be a \
                     redis:// or rediss:// URL",
                    "set CELERY_RESULT_BACKEND to e.g. redis://:password@redis:6379/1, or \
                     unset it to use the broker's Redis",
                ));
            }
            self.results.url = Some(v);
            self.mark("results.url", &src);
        }

        // Worker (Celery names).
        if let Some((v, src)) = get("CELERY_WORKER_AMOUNT") {
            self.worker.concurrency = Some(to_u32("worker.concurrency", &v, &src)?);
            self.mark("worker.concurrency", &src);
        }
        let auto_scale = match get("CELERY_AUTO_SCALE") {
            Some((v, src)) => Some((to_bool("worker.autoscale", &v, &src)?, src)),
            None => None,
        };
        let max_workers = match get("CELERY_MAX_WORKERS") {
            Some((v, src)) => Some(to_u32("worker.autoscale", &v, &src)?),
            None => None,
        };
        let min_workers = match get("CELERY_MIN_WORKERS") {
            Some((v, src)) => Some(to_u32("worker.autoscale", &v, &src)?),
            None => None,
        };

        // Logging.
        if let Some((v, src)) = get("LOG_LEVEL") {
            self.log.level = v;
            self.mark("log.level", &src);
        }
        if let Some((v, src)) = get("LOG_FORMAT") {
            // Dify's LOG_FORMAT is a Python logging format string; it says nothing about
            // text or JSON, so it leaves the format alone.
            if !v.contains("%(") {
                self.log.format = v.to_ascii_lowercase();
                self.mark("log.format", &src);
            }
        }
        if let Some((v, src)) = get("LOG_FILE") {
            self.log.file = Some(PathBuf::from(v));
            self.mark("log.file", &src);
        }
        if let Some((v, src)) = get("LOG_FILE_MAX_SIZE") {
            self.log.file_max_size_mb = v.trim().parse().map_err(|_| {
                invalid(
                    "log.file_max_size_mb",
                    quoted(&v),
                    src.clone(),
                    "not a number of megabytes",
                    "write the size in MB, e.g. 20 (fractions such as 0.5 work)",
                )
            })?;
            self.mark("log.file_max_size_mb", &src);
        }
        if let Some((v, src)) = get("LOG_FILE_BACKUP_COUNT") {
            self.log.file_backup_count = to_u32("log.file_backup_count", &v, &src)?;
            self.mark("log.file_backup_count", &src);
        }

        // Mail.
        if let Some((v, src)) = get("MAIL_TYPE") {
            self.mail.kind = Some(v.to_ascii_lowercase());
            self.mark("mail.kind", &src);
        }
        if let Some((v, src)) = get("SMTP_SERVER") {
            self.mail.smtp_server = Some(v);
            self.mark("mail.smtp_server", &src);
        }
        if let Some((v, src)) = get("SMTP_PORT") {
            let port = v.parse::<u16>().map_err(|_| {
                invalid(
                    "mail.smtp_port",
                    quoted(&v),
                    src.clone(),
                    "not a port number",
                    "use a number from 1 to 65535, e.g. 587",
                )
            })?;
            self.mail.smtp_port = Some(port);
            self.mark("mail.smtp_port", &src);
        }
        if let Some((v, src)) = get("SMTP_USERNAME") {
            self.mail.smtp_username = Some(v);
            self.mark("mail.smtp_username", &src);
        }
        if let Some((v, src)) = get("SMTP_PASSWORD") {
            self.mail.smtp_password = Some(v);
            self.mark("mail.smtp_password", &src);
        }
        if let Some((v, src)) = get("SMTP_USE_TLS") {
            self.mail.smtp_use_tls = to_bool("mail.smtp_use_tls", &v, &src)?;
            self.mark("mail.smtp_use_tls", &src);
        }
        if let Some((v, src)) = get("SMTP_OPPORTUNISTIC_TLS") {
            self.mail.smtp_opportunistic_tls = to_bool("mail.smtp_opportunistic_tls", &v, &src)?;
            self.mark("mail.smtp_opportunistic_tls", &src);
        }
        if let Some((v, src)) = get("MAIL_DEFAULT_SEND_FROM") {
            self.mail.default_from = Some(v);
            self.mark("mail.default_from", &src);
        }
        if let Some((v, src)) = get("MAIL_OUTBOX_DIR") {
            self.mail.outbox_dir = Some(PathBuf::from(v));
            self.mark("mail.outbox_dir", &src);
        }
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some((v, src)) = get("QUEUE_MONITOR_QUEUES") {
            self.monitor.queues = list(&v);
            self.mark("monitor.queues", &src);
        }
        if let Some((v, src)) = get("QUEUE_MONITOR_ALERT_EMAILS") {
            self.monitor.alert_emails = list(&v);
            self.mark("monitor.alert_emails", &src);
        }
        if let Some((v, src)) = get("QUEUE_MONITOR_THRESHOLD") {
            self.monitor.threshold = v.trim().parse().map_err(|_| {
                invalid(
                    "monitor.threshold",
                    quoted(&v),
                    src.clone(),
                    "not a whole number",
                    "set QUEUE_MONITOR_THRESHOLD to a queue depth such as 200",
                )
            })?;
            self.mark("monitor.threshold", &src);
        }

        // Beat: Dify's periodic-task switches and timings.
        for (name, key) in [
            ("ENABLE_CLEAN_EMBEDDING_CACHE_TASK", "clean_embedding_cache"),
            ("ENABLE_CLEAN_UNUSED_DATASETS_TASK", "clean_unused_datasets"),
            (
                "ENABLE_CREATE_TIDB_SERVERLESS_TASK",
                "create_tidb_serverless",
            ),
            (
                "ENABLE_UPDATE_TIDB_SERVERLESS_STATUS_TASK",
                "update_tidb_serverless_status",
            ),
            ("ENABLE_CLEAN_MESSAGES", "clean_messages"),
            (
                "ENABLE_MAIL_CLEAN_DOCUMENT_NOTIFY_TASK",
                "mail_clean_document_notify",
            ),
            ("ENABLE_DATASETS_QUEUE_MONITOR", "datasets_queue_monitor"),
            (
                "ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK",
                "check_upgradable_plugin",
            ),
            ("MARKETPLACE_ENABLED", "marketplace"),
            ("ENABLE_WORKFLOW_RUN_CLEANUP_TASK", "workflow_run_cleanup"),
            (
                "ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK",
                "workflow_schedule_poller",
            ),
        ] {
            if let Some((v, src)) = get(name) {
                let full = format!("beat.defaults.{key}");
                let on = to_bool(&full, &v, &src)?;
                let d = &mut self.beat.defaults;
                let slot = match key {
                    "clean_embedding_cache" => &mut d.clean_embedding_cache,
                    "clean_unused_datasets" => &mut d.clean_unused_datasets,
                    "create_tidb_serverless" => &mut d.create_tidb_serverless,
                    "update_tidb_serverless_status" => &mut d.update_tidb_serverless_status,
                    "clean_messages" => &mut d.clean_messages,
                    "mail_clean_document_notify" => &mut d.mail_clean_document_notify,
                    "datasets_queue_monitor" => &mut d.datasets_queue_monitor,
                    "check_upgradable_plugin" => &mut d.check_upgradable_plugin,
                    "marketplace" => &mut d.marketplace,
                    "workflow_run_cleanup" => &mut d.workflow_run_cleanup,
                    _ => &mut d.workflow_schedule_poller,
                };
                *slot = on;
                self.mark(&full, &src);
            }
        }
        if let Some((v, src)) = get("QUEUE_MONITOR_INTERVAL") {
            let key = "beat.defaults.queue_monitor_interval";
            let interval = to_minutes(key, &v, &src)?;
            // Dify schedules `QUEUE_MONITOR_INTERVAL or 30`.
            self.beat.defaults.queue_monitor_interval = if interval.is_zero() {
                Duration::from_secs(30 * 60)
            } else {
                interval
            };
            self.mark(key, &src);
        }
        if let Some((v, src)) = get("WORKFLOW_SCHEDULE_POLLER_INTERVAL") {
            let key = "beat.defaults.workflow_schedule_poller_interval";
            self.beat.defaults.workflow_schedule_poller_interval = to_minutes(key, &v, &src)?;
            self.mark(key, &src);
        }
        if let Some((v, src)) = get("CELERY_BEAT_SCHEDULER_TIME") {
            let key = "beat.defaults.scheduler_days";
            self.beat.defaults.scheduler_days = to_u32(key, &v, &src)?;
            self.mark(key, &src);
        }

        // taskbox names, applied last so they win over the Celery ones.
        for (name, flag) in [
            ("TASKBOX_BROKER_URL", "--broker"),
            ("TASKBOX_RESULT_BACKEND", "--result-backend"),
            ("TASKBOX_QUEUES", "--queues"),
            ("TASKBOX_CONCURRENCY", "--concurrency"),
            ("TASKBOX_WORKER_NAME", "--name"),
            ("TASKBOX_PLUGINS_DIR", "--plugins"),
            ("TASKBOX_CACHE_DIR", "--cache-dir"),
            ("TASKBOX_RESULT_EXPIRES", "--result-expires"),
            ("TASKBOX_DEAD_AFTER", "--dead-after"),
            ("TASKBOX_SHUTDOWN_GRACE", "--shutdown-grace"),
            ("TASKBOX_HTTP", "--http"),
        ] {
            if let Some((v, src)) = get(name) {
                self.set(flag, &v, src)?;
            }
        }

        if let Some((v, src)) = get("TASKBOX_PLUGIN_POLL") {
            self.worker.plugin_poll = to_duration("worker.plugin_poll", &v, &src)?;
            self.mark("worker.plugin_poll", &src);
        }
        if let Some((v, src)) = get("TASKBOX_KEEP_RESIDENT") {
            self.worker.keep_resident = Some(to_bytes("worker.keep_resident", &v, &src)?);
            self.mark("worker.keep_resident", &src);
        }
        if let Some((v, src)) = get("TASKBOX_UNREGISTERED_TIMEOUT") {
            self.worker.unregistered_timeout =
                to_duration("worker.unregistered_timeout", &v, &src)?;
            self.mark("worker.unregistered_timeout", &src);
        }

        // Autoscale: TASKBOX_AUTOSCALE wins; otherwise CELERY_AUTO_SCALE decides, with
        // max from CELERY_MAX_WORKERS, else the concurrency, else the CPU count.
        if let Some((v, src)) = get("TASKBOX_AUTOSCALE") {
            self.set("--autoscale", &v, src)?;
        } else if let Some((enabled, src)) = auto_scale {
            self.worker.autoscale = enabled.then(|| {
                let max = max_workers
                    .or(self.worker.concurrency)
                    .unwrap_or_else(cpu_count);
                (max, min_workers.unwrap_or(1))
            });
            self.mark("worker.autoscale", &src);
        }

        if let Some(src) = use_sentinel
            && !self.broker.url.starts_with("sentinel://")
        {
            return Err(invalid(
                "broker.url",
                quoted(&redact_url(&self.broker.url)),
                src,
                "CELERY_USE_SENTINEL=true needs a sentinel:// broker URL",
                "set CELERY_BROKER_URL to \
                 sentinel://:password@host1:26379/1;sentinel://:password@host2:26379/1 (with \
                 CELERY_SENTINEL_MASTER_NAME), or set CELERY_USE_SENTINEL=false",
            ));
        }
        Ok(())
    }

    /// Applies one command-line flag over the file and environment (flags win). The CLI calls
    /// [`Config::validate`] again once every flag is applied.
    pub fn apply_flag(&mut self, flag: &str, value: &str) -> Result<(), ConfigError> {
        self.set(flag, value, Source::Flag(flag.to_string()))
    }

    /// Sets the key behind `flag` from `value`, recording `source`; shared by flags and the
    /// `TASKBOX_*` variables so both parse alike.
    fn set(&mut self, flag: &str, value: &str, source: Source) -> Result<(), ConfigError> {
        let value = value.trim();
        let key = match flag {
            "--broker" => {
                self.broker.url = value.to_string();
                "broker.url"
            }
            "--result-backend" => {
                self.results.url = Some(value.to_string());
                "results.url"
            }
            "-Q" | "--queues" => {
                self.worker.queues = value.split(',').map(|q| q.trim().to_string()).collect();
                "worker.queues"
            }
            "-c" | "--concurrency" => {
                self.worker.concurrency = Some(to_u32("worker.concurrency", value, &source)?);
                "worker.concurrency"
            }
            "--autoscale" => {
                let range = parse_autoscale(value).map_err(|_| {
                    invalid(
                        "worker.autoscale",
                        quoted(value),
                        source.clone(),
                        "not an autoscale range",
                        "write MAX,MIN such as 10,3",
                    )
                })?;
                self.worker.autoscale = Some(range);
                "worker.autoscale"
            }
            "-n" | "--name" | "--hostname" => {
                self.worker.name = Some(value.to_string());
                "worker.name"
            }
            "--plugins" => {
                self.worker.plugins_dir = Some(PathBuf::from(value));
                "worker.plugins_dir"
            }
            "--cache-dir" => {
                self.worker.cache_dir = Some(PathBuf::from(value));
                "worker.cache_dir"
            }
            "--dead-after" => {
                self.worker.dead_after = to_duration("worker.dead_after", value, &source)?;
                "worker.dead_after"
            }
            "--shutdown-grace" => {
                self.worker.shutdown_grace = to_duration("worker.shutdown_grace", value, &source)?;
                "worker.shutdown_grace"
            }
            "--heartbeat-interval" => {
                self.worker.heartbeat_interval =
                    to_duration("worker.heartbeat_interval", value, &source)?;
                "worker.heartbeat_interval"
            }
            "--result-expires" => {
                self.results.expires = to_duration("results.expires", value, &source)?;
                "results.expires"
            }
            "-l" | "--log-level" => {
                self.log.level = value.to_string();
                "log.level"
            }
            "--log-format" => {
                self.log.format = value.to_ascii_lowercase();
                "log.format"
            }
            "--http" => {
                self.worker.http = Some(value.to_string());
                "worker.http"
            }
            "--log-file" => {
                self.log.file = Some(PathBuf::from(value));
                "log.file"
            }
            _ => {
                return Err(ConfigError::UnknownFlag {
                    flag: flag.to_string(),
                });
            }
        };
        self.mark(key, &source);
        Ok(())
    }
}

/// One slot per CPU, as Celery defaults; 1 when the count is unknown.
fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
}

fn invalid(
    key: &str,
    value: String,
    source_of: Source,
    reason: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value,
        source_of,
        fix: format!("{}; {}", reason.into(), fix.into()),
    }
}

/// `` `key`: `` for a parse error that has a key, nothing otherwise.
fn key_prefix(key: &Option<String>) -> String {
    key.as_deref()
        .map(|k| format!("`{k}`: "))
        .unwrap_or_default()
}

/// A value quoted for an error message.
fn quoted(value: &str) -> String {
    format!("{value:?}")
}

fn to_bool(key: &str, value: &str, source: &Source) -> Result<bool, ConfigError> {
    parse_bool(value).map_err(|_| {
        invalid(
            key,
            quoted(value),
            source.clone(),
            "not a boolean",
            "use true or false (1/0 and yes/no also work)",
        )
    })
}

fn to_u32(key: &str, value: &str, source: &Source) -> Result<u32, ConfigError> {
    value.trim().parse::<u32>().map_err(|_| {
        invalid(
            key,
            quoted(value),
            source.clone(),
            "not a whole number",
            "use a whole number such as 4",
        )
    })
}

fn to_bytes(key: &str, value: &str, source: &Source) -> Result<u64, ConfigError> {
    parse_bytes(value).map_err(|_| {
        invalid(
            key,
            quoted(value),
            source.clone(),
            "not a size",
            "use a number of bytes or a unit such as 16MiB",
        )
    })
}

fn to_duration(key: &str, value: &str, source: &Source) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|_| {
        invalid(
            key,
            quoted(value),
            source.clone(),
            "not a duration",
            "use a number with a unit such as 30s, 5m or 250ms",
        )
    })
}

/// A number of minutes, as Dify's interval variables are written (`30`, `0.5`).
fn to_minutes(key: &str, value: &str, source: &Source) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|m| Duration::try_from_secs_f64(m * 60.0).ok())
        .ok_or_else(|| {
            invalid(
                key,
                quoted(value),
                source.clone(),
                "not a number of minutes",
                "use minutes such as 30 (or 0.5 for thirty seconds)",
            )
        })
}

/// `NAME=VALUE` with the value hidden; a bare `NAME` is shown as is.
fn redact_env(entry: &str) -> String {
    match entry.split_once('=') {
        Some((name, _)) => format!("{name}={REDACTED}"),
        None => entry.to_string(),
    }
}

/// Joins a dotted key, quoting a segment the way TOML would (`tasks."mail.send"`).
fn key_join(prefix: &str, segment: &str) -> String {
    let bare = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let segment = if bare {
        segment.to_string()
    } else {
        quoted(segment)
    };
    if prefix.is_empty() {
        segment
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Records `source` for every value (not table) that `table` sets, by dotted key.
fn record_origins(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    source: &Source,
    origins: &mut Origins,
) {
    for (key, value) in table.iter() {
        let path = key_join(prefix, key.get_ref());
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => record_origins(inner, &path, source, origins),
            _ => {
                origins.0.insert(path, source.clone());
            }
        }
    }
}

/// The dotted key whose name or value covers byte `offset` of the file, deepest first.
fn key_at(table: &toml::de::DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let path = key_join(prefix, key.get_ref());
        if key.span().contains(&offset) {
            return Some(path);
        }
        if let toml::de::DeValue::Table(inner) = value.get_ref()
            && let Some(found) = key_at(inner, offset, &path)
        {
            return Some(found);
        }
        if value.span().contains(&offset) {
            return Some(path);
        }
    }
    None
}

/// Turns a TOML error into [`ConfigError::UnknownKey`] or [`ConfigError::Parse`], with the
/// line and dotted key found from the error's span.
fn file_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map(|s| s.start).unwrap_or(0);
    let line = text
        .get(..offset)
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(1);
    let key = toml::de::DeTable::parse(text)
        .ok()
        .and_then(|table| key_at(table.get_ref(), offset, ""));
    let message = err.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, expected)) = rest.split_once('`')
    {
        return ConfigError::UnknownKey {
            path: path.to_path_buf(),
            line,
            key: key.unwrap_or_else(|| name.to_string()),
            expected: expected.trim_start_matches(',').trim().to_string(),
        };
    }
    // A wrongly typed password would otherwise be echoed by serde ("invalid type: integer").
    let message = if key.as_deref().is_some_and(|k| k.contains("password")) {
        "must be a string (value not shown)".to_string()
    } else {
        message
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        key,
        message,
    }
}

const URL_FIX: &str = "write redis://[:password@]host[:port][/db] (db 0-15), rediss://… for \
                       TLS, or sentinel://[:password@]host:port[/db] joined by `;` for Sentinel";

impl Config {
    /// Checks every setting and the ones that depend on each other, returning the first
    /// mistake; call it again after [`Config::apply_flag`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_broker()?;
        self.validate_results()?;
        self.validate_worker()?;
        self.validate_limits("limits", &self.limits)?;
        for (name, task) in &self.tasks {
            self.validate_task(name, task)?;
        }
        for (name, plugin) in &self.plugins {
            self.validate_plugin(name, plugin)?;
        }
        self.validate_mail()?;
        self.validate_beat()?;
        self.validate_log()
    }

    /// An [`ConfigError::Invalid`] for `key`, naming where `key` was set.
    fn bad(
        &self,
        key: &str,
        value: String,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        invalid(key, value, self.source_of(key), reason, fix)
    }

    fn validate_broker(&self) -> Result<(), ConfigError> {
        let b = &self.broker;
        let shown = || quoted(&redact_url(&b.url));
        check_redis_url(&b.url)
            .map_err(|reason| self.bad("broker.url", shown(), reason, URL_FIX))?;
        if b.url.starts_with("sentinel://") {
            if b.sentinel_master
                .as_deref()
                .is_none_or(|m| m.trim().is_empty())
            {
                return Err(invalid(
                    "broker.sentinel_master",
                    "(unset)".to_string(),
                    self.source_of("broker.url"),
                    format!(
                        "the broker URL {} is a Sentinel URL, which needs the name of the \
                         master to ask the sentinels for",
                        shown()
                    ),
                    "set broker.sentinel_master (CELERY_SENTINEL_MASTER_NAME), e.g. mymaster",
                ));
            }
            if b.use_tls {
                return Err(self.bad(
                    "broker.use_tls",
                    "true".to_string(),
                    "TLS applies to redis:// URLs; taskbox does not connect to Sentinel over TLS",
                    "set broker.use_tls = false (BROKER_USE_SSL=false), or use a rediss:// URL without Sentinel",
                ));
            }
        }
        if b.sentinel_socket_timeout.is_some_and(|t| t.is_zero()) {
            return Err(self.bad(
                "broker.sentinel_socket_timeout",
                quoted("0s"),
                "a zero timeout fails every call to the sentinels",
                "use a positive timeout such as 0.1 (seconds), or leave it unset",
            ));
        }
        Ok(())
    }

    fn validate_results(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.results.url {
            check_redis_url(url).map_err(|reason| {
                self.bad("results.url", quoted(&redact_url(url)), reason, URL_FIX)
            })?;
        }
        Ok(())
    }

    fn validate_worker(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        if let Some(name) = &w.name
            && name.trim().is_empty()
        {
            return Err(self.bad(
                "worker.name",
                quoted(name),
                "the worker name is empty",
                "set a name such as taskbox@host1, or leave it unset for taskbox@<hostname>",
            ));
        }
        if w.queues.is_empty() {
            return Err(self.bad(
                "worker.queues",
                "[]".to_string(),
                "the worker would consume no queue",
                "name at least one queue, e.g. queues = [\"dataset\"], or leave it unset for the 16 default queues",
            ));
        }
        for queue in &w.queues {
            self.check_queue("worker.queues", queue)?;
        }
        if let Some(bytes) = w.keep_resident
            && bytes > MAX_KEEP_RESIDENT
        {
            return Err(self.bad(
                "worker.keep_resident",
                bytes.to_string(),
                "more than any task's memory can be (4 GiB)",
                "use a size such as 16MiB; it is kept per sandbox slot",
            ));
        }
        if let Some(addr) = &w.http
            && !is_listen_address(addr)
        {
            return Err(self.bad(
                "worker.http",
                quoted(addr),
                "not an address to listen on",
                "write host:port, e.g. 127.0.0.1:9808 (or 0.0.0.0:9808 to serve every interface)",
            ));
        }
        if w.concurrency == Some(0) {
            return Err(self.bad(
                "worker.concurrency",
                "0".to_string(),
                "a worker needs at least one task slot",
                "set it to 1 or more, or leave it unset for one slot per CPU",
            ));
        }
        if let Some((max, min)) = w.autoscale {
            if min == 0 {
                return Err(self.bad(
                    "worker.autoscale",
                    format!("\"{max},{min}\""),
                    format!("the minimum ({min}) must be at least 1"),
                    format!("write MAX,MIN with MIN >= 1, e.g. {},1", max.max(1)),
                ));
            }
            if max < min {
                return Err(self.bad(
                    "worker.autoscale",
                    format!("\"{max},{min}\""),
                    format!("the maximum ({max}) is below the minimum ({min})"),
                    format!("write the maximum first: {min},{max}"),
                ));
            }
        }
        if w.heartbeat_interval.is_zero() {
            return Err(self.bad(
                "worker.heartbeat_interval",
                quoted(&human(w.heartbeat_interval)),
                "a zero interval would write heartbeats in a busy loop",
                "use a positive interval such as 2s",
            ));
        }
        if w.dead_after <= w.heartbeat_interval {
            return Err(self.bad(
                "worker.dead_after",
                quoted(&human(w.dead_after)),
                format!(
                    "must be longer than worker.heartbeat_interval ({}), or live workers \
                     would be declared dead between two heartbeats",
                    human(w.heartbeat_interval)
                ),
                format!(
                    "set dead_after to several heartbeats, e.g. {}, or shorten heartbeat_interval",
                    human(w.heartbeat_interval.saturating_mul(5))
                ),
            ));
        }
        if w.delayed_poll.is_zero() {
            return Err(self.bad(
                "worker.delayed_poll",
                quoted(&human(w.delayed_poll)),
                "a zero poll interval would check for due tasks in a busy loop",
                "use a positive interval such as 50ms",
            ));
        }
        for (queue, share) in &w.queue_shares {
            self.check_queue("worker.queue_shares", queue)?;
            if !(*share > 0.0 && *share <= 1.0) {
                let key = key_join("worker.queue_shares", queue);
                return Err(self.bad(
                    &key,
                    share.to_string(),
                    "a share is the largest fraction of slots the queue may occupy",
                    "use a number above 0 and at most 1, e.g. 0.5",
                ));
            }
        }
        if w.dead_letter_key.trim().is_empty() {
            return Err(self.bad(
                "worker.dead_letter_key",
                quoted(&w.dead_letter_key),
                "dead letters need a Redis key",
                "leave it unset for taskbox:dead_letter, or name a key",
            ));
        }
        Ok(())
    }

    fn check_queue(&self, key: &str, queue: &str) -> Result<(), ConfigError> {
        if queue.is_empty() {
            return Err(self.bad(
                key,
                quoted(queue),
                "a queue name is empty",
                "remove the empty entry (a stray comma in a -Q or TASKBOX_QUEUES list does this)",
            ));
        }
        if queue.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.bad(
                key,
                quoted(queue),
                "queue names cannot contain whitespace",
                "use names such as dataset or priority_pipeline, separated by commas in lists",
            ));
        }
        Ok(())
    }

    fn validate_limits(&self, key: &str, limits: &LimitsOverride) -> Result<(), ConfigError> {
        if limits.memory == Some(0) {
            return Err(self.bad(
                &format!("{key}.memory"),
                "0".to_string(),
                "no task can run in zero bytes of memory",
                "use a size such as \"256MiB\", or leave it unset",
            ));
        }
        if limits.timeout.is_some_and(|t| t.is_zero()) {
            return Err(self.bad(
                &format!("{key}.timeout"),
                quoted("0s"),
                "every task would be interrupted at once",
                "use a duration such as \"5m\", or leave it unset",
            ));
        }
        Ok(())
    }

    fn validate_task(&self, name: &str, task: &TaskConfig) -> Result<(), ConfigError> {
        let base = key_join("tasks", name);
        if name.trim().is_empty() {
            return Err(self.bad(
                &base,
                quoted(name),
                "a task name is empty",
                "use the Celery task name, e.g. [tasks.\"tasks.mail_task.send_email\"]",
            ));
        }
        if let Some(queue) = &task.queue {
            self.check_queue(&format!("{base}.queue"), queue)?;
        }
        if let Some(retry) = &task.retry {
            let key = format!("{base}.retry");
            if retry.backoff > retry.backoff_max {
                return Err(self.bad(
                    &format!("{key}.backoff_max"),
                    quoted(&human(retry.backoff_max)),
                    format!("below backoff ({}), so backoff could never grow", human(retry.backoff)),
                    "make backoff_max at least backoff, e.g. backoff = \"1s\", backoff_max = \"10m\"",
                ));
            }
            for kind in &retry.retry_on {
                if kind == "Reject" {
                    return Err(self.bad(
                        &format!("{key}.retry_on"),
                        quoted(kind),
                        "a task that rejects its input would reject it again, so Reject is never retried",
                        "remove \"Reject\" from retry_on",
                    ));
                }
                if !RETRY_KINDS.contains(&kind.as_str()) {
                    return Err(self.bad(
                        &format!("{key}.retry_on"),
                        quoted(kind),
                        "not a sandbox error kind",
                        format!("use some of {}", RETRY_KINDS.join(", ")),
                    ));
                }
            }
        }
        self.validate_limits(&format!("{base}.limits"), &task.limits)
    }

    fn validate_plugin(&self, name: &str, plugin: &PluginConfig) -> Result<(), ConfigError> {
        let base = key_join("plugins", name);
        if plugin
            .path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(self.bad(
                &format!("{base}.path"),
                quoted(""),
                "the plugin's component file is not named",
                "set path to the plugin's .wasm file, e.g. \"plugins/extract.wasm\"",
            ));
        }
        for cap in &plugin.capabilities {
            if !CAPABILITIES.contains(&cap.as_str()) {
                return Err(self.bad(
                    &format!("{base}.capabilities"),
                    quoted(cap),
                    "not a capability",
                    format!("use some of {}", CAPABILITIES.join(", ")),
                ));
            }
        }
        for queue in &plugin.queues {
            if queue != "*" {
                self.check_queue(&format!("{base}.queues"), queue)?;
            }
        }
        for dir in &plugin.dirs {
            DirGrant::parse(dir).map_err(|reason| {
                self.bad(
                    &format!("{base}.dirs"),
                    quoted(dir),
                    reason,
                    "write HOST:GUEST or HOST:GUEST:ro, e.g. \"./data:/data:ro\"",
                )
            })?;
        }
        for entry in &plugin.env {
            let var = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
            let valid = var
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.bad(
                    &format!("{base}.env"),
                    quoted(&redact_env(entry)),
                    format!("{var:?} is not a variable name"),
                    "write NAME or NAME=VALUE with NAME made of letters, digits and _",
                ));
            }
        }
        if let Some(mode) = &plugin.enforcement
            && mode != "load"
            && mode != "call"
        {
            return Err(self.bad(
                &format!("{base}.enforcement"),
                quoted(mode),
                "not an enforcement mode",
                "use \"load\" (refuse a plugin importing an ungranted capability) or \"call\" (fail only the calls)",
            ));
        }
        self.validate_limits(&format!("{base}.limits"), &plugin.limits)
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let m = &self.mail;
        match m.kind.as_deref() {
            None => Ok(()),
            Some("smtp") => {
                if m.smtp_server.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err(invalid(
                        "mail.smtp_server",
                        "(unset)".to_string(),
                        self.source_of("mail.kind"),
                        "mail.kind is smtp, which needs a server to send through",
                        "set mail.smtp_server (SMTP_SERVER), e.g. smtp.example.com",
                    ));
                }
                if m.smtp_port == Some(0) {
                    return Err(self.bad(
                        "mail.smtp_port",
                        "0".to_string(),
                        "not a port number",
                        "use 587 for STARTTLS, 465 for implicit TLS or 25 for plain SMTP",
                    ));
                }
                if m.smtp_opportunistic_tls && !m.smtp_use_tls {
                    return Err(self.bad(
                        "mail.smtp_opportunistic_tls",
                        "true".to_string(),
                        "opportunistic TLS (STARTTLS) only applies when smtp_use_tls is on; \
                         mail would go out unencrypted",
                        "set smtp_use_tls = true (SMTP_USE_TLS=true) for STARTTLS, or \
                         smtp_opportunistic_tls = false for plain SMTP",
                    ));
                }
                Ok(())
            }
            Some("outbox") => {
                if m.outbox_dir.is_none() {
                    return Err(invalid(
                        "mail.outbox_dir",
                        "(unset)".to_string(),
                        self.source_of("mail.kind"),
                        "mail.kind is outbox, which writes messages to a directory",
                        "set mail.outbox_dir (MAIL_OUTBOX_DIR), e.g. /var/spool/taskbox/outbox",
                    ));
                }
                Ok(())
            }
            Some(other) => Err(self.bad(
                "mail.kind",
                quoted(other),
                "taskbox sends mail over SMTP or writes it to an outbox directory",
                "set mail.kind (MAIL_TYPE) to smtp or outbox, or leave it unset to disable mail",
            )),
        }
    }

    fn validate_log(&self) -> Result<(), ConfigError> {
        let l = &self.log;
        for part in l.level.split(',') {
            let level = part.rsplit_once('=').map_or(part, |(_, level)| level);
            if known_level(level).is_none() {
                return Err(self.bad(
                    "log.level",
                    quoted(&l.level),
                    format!("{:?} is not a log level", level.trim()),
                    "use trace, debug, info, warn or error, optionally per target as taskbox=debug,info",
                ));
            }
        }
        if l.format != "text" && l.format != "json" {
            return Err(self.bad(
                "log.format",
                quoted(&l.format),
                "not a log format",
                "use text or json",
            ));
        }
        if !(l.file_max_size_mb.is_finite() && l.file_max_size_mb * 1_048_576.0 >= 1024.0) {
            return Err(self.bad(
                "log.file_max_size_mb",
                l.file_max_size_mb.to_string(),
                "the log file would rotate on every line (the smallest size is 1 KiB)",
                "use a size in MB such as 20",
            ));
        }
        Ok(())
    }

    fn validate_beat(&self) -> Result<(), ConfigError> {
        let b = &self.beat;
        if b.tick.is_zero() {
            return Err(self.bad(
                "beat.tick",
                quoted(&human(b.tick)),
                "a zero tick would look at the schedule in a busy loop",
                "use a positive interval such as 1s",
            ));
        }
        if b.lease < Duration::from_secs(1) {
            return Err(self.bad(
                "beat.lease",
                quoted(&human(b.lease)),
                "a lease under one second would expire between renewals on a busy host",
                "use 1s or more, e.g. 10s",
            ));
        }
        if b.key_prefix.trim().is_empty() {
            return Err(self.bad(
                "beat.key_prefix",
                quoted(&b.key_prefix),
                "beat's Redis keys need a prefix",
                "leave it unset for taskbox:beat, or name one",
            ));
        }
        if b.max_catch_up == 0 {
            return Err(self.bad(
                "beat.max_catch_up",
                "0".to_string(),
                "entries with missed = \"all\" could never catch up",
                "use 1 or more, e.g. 100",
            ));
        }
        let d = &b.defaults;
        if !(1..=31).contains(&d.scheduler_days) {
            return Err(self.bad(
                "beat.defaults.scheduler_days",
                d.scheduler_days.to_string(),
                "the daily clean-ups run every N days of the month, so N is 1 to 31",
                "use a number of days from 1 to 31, e.g. 1 (CELERY_BEAT_SCHEDULER_TIME=1)",
            ));
        }
        for (key, period) in [
            (
                "beat.defaults.queue_monitor_interval",
                d.queue_monitor_interval,
            ),
            (
                "beat.defaults.workflow_schedule_poller_interval",
                d.workflow_schedule_poller_interval,
            ),
        ] {
            if period < crate::beat::schedule::MIN_INTERVAL {
                return Err(self.bad(
                    key,
                    quoted(&human(period)),
                    "a periodic task needs at least a second between runs",
                    "use minutes such as 1 or 30",
                ));
            }
        }
        let entries =
            crate::beat::entries(self).map_err(|e| self.bad(&e.key, e.value, e.reason, e.fix))?;
        for entry in &entries {
            self.check_queue(&crate::beat::entry_key(&entry.name, "queue"), &entry.queue)?;
        }
        Ok(())
    }

    /// Adds the `[beat.schedule.*]` entries of another file (`taskbox beat --schedule FILE`)
    /// over this configuration's, entry by entry; the file may hold nothing else. Call
    /// [`Config::validate`] afterwards.
    pub fn add_schedule_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let mut file = Config::from_file(path)?;
        let entries = std::mem::take(&mut file.beat.schedule);
        if file != Config::default() {
            let first = file
                .origins
                .0
                .keys()
                .find(|k| !k.starts_with("beat.schedule."))
                .cloned()
                .unwrap_or_else(|| "(a setting)".to_string());
            return Err(invalid(
                &first,
                "(set)".to_string(),
                Source::File(path.to_path_buf()),
                "a schedule file holds only [beat.schedule.<name>] tables",
                "move other settings to taskbox.toml (or --config)",
            ));
        }
        for (key, source) in file.origins.0 {
            self.origins.0.insert(key, source);
        }
        self.beat.schedule.extend(entries);
        Ok(())
    }
}

/// Whether `addr` is `host:port` with a port number (an IP literal, `[v6]:port` or a name).
fn is_listen_address(addr: &str) -> bool {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':')
                && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// A duration as the configuration writes it (`"10s"`).
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A URL with any password replaced by `***`, for logs and errors (handles `redis://`,
/// `rediss://`, and `;`-separated `sentinel://` lists). Text that is not a URL but has an `@`
/// loses everything before it, so a malformed URL cannot leak its password either.
pub fn redact_url(url: &str) -> String {
    split_url_list(url)
        .into_iter()
        .map(redact_one_url)
        .collect::<Vec<_>>()
        .join(";")
}

fn redact_one_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL: whatever precedes an `@` may be a password.
        return match url.rfind('@') {
            Some(at) => format!("{REDACTED}{}", &url[at..]),
            None => url.to_string(),
        };
    };
    let (prefix, rest) = url.split_at(scheme_end + 3);
    // The last `@` ends the user info even when the password holds `@`, `/`, `?` or `#`.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.split_once(':') {
        Some((_, "")) => userinfo.to_string(),
        Some((user, _)) => format!("{user}:{REDACTED}"),
        // A lone user info may be a password (`redis://secret@host`): hide it too.
        None => REDACTED.to_string(),
    };
    format!("{prefix}{shown}{}", &rest[at..])
}

/// Splits a `;`-joined URL list at each `;` that starts another `scheme://`, so a password
/// containing `;` stays inside its URL.
fn split_url_list(url: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in url.match_indices(';') {
        let next = &url[i + 1..];
        let starts_url = next.find("://").is_some_and(|end| {
            end > 0
                && next[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        });
        if starts_url {
            parts.push(&url[start..i]);
            start = i + 1;
        }
    }
    parts.push(&url[start..]);
    parts
}

/// Checks a broker or result URL, returning what is wrong (never the password).
fn check_redis_url(url: &str) -> Result<(), String> {
    let parts = split_url_list(url);
    if parts.len() > 1 && !parts.iter().all(|p| p.starts_with("sentinel://")) {
        return Err("only sentinel:// URLs may be joined with `;`".to_string());
    }
    parts.into_iter().try_for_each(check_one_url)
}

fn check_one_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL".to_string());
    };
    if !matches!(scheme, "redis" | "rediss" | "sentinel") {
        return Err(format!(
            "the scheme `{scheme}` is not redis, rediss or sentinel"
        ));
    }
    let after_user = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let before_query = after_user.split(['?', '#']).next().unwrap_or_default();
    let (host_port, path) = match before_query.find('/') {
        Some(slash) => before_query.split_at(slash),
        None => (before_query, ""),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("the IPv6 host has no closing `]`".to_string());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after the IPv6 host")),
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("there is no host".to_string());
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!("the port `{port}` is not a number from 1 to 65535"));
    }
    let db = path.strip_prefix('/').unwrap_or(path);
    if !db.is_empty() && !db.parse::<u8>().is_ok_and(|n| n <= 15) {
        return Err(format!("the database `{db}` is not a number from 0 to 15"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_name_bad_values() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1 GiB"), Ok(1024 * 1024 * 1024));
        let err = parse_bytes("lots").unwrap_err();
        assert!(err.contains("'lots'"), "{err}");
    }

    #[test]
    fn durations_parse_and_name_bad_values() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
    }

    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// An environment lookup over fixed pairs, standing in for the process environment.
    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Writes `text` as `taskbox.toml` in a fresh directory, returning both.
    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskbox.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let (_dir, path) = file_with(text);
        Config::load(Some(&path), &env_of(env))
    }

    fn load_env(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_text("", env)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const EXAMPLE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/taskbox.toml");

    /// Every key set to a non-default value: the fixture for parsing and round-tripping.
    const FULL: &str = r#"
[broker]
url = "sentinel://:masterpw@s1:26379/1;sentinel://:masterpw@s2:26379/1"
use_tls = false
sentinel_master = "mymaster"
sentinel_password = "sentinelpw"
sentinel_socket_timeout = 0.25

[results]
url = "rediss://:resultpw@results:6380/2"
expires = "2h"
track_started = true
enabled = false

[worker]
name = "taskbox@w1"
queues = ["dataset", "mail"]
concurrency = 8
autoscale = "12,2"
heartbeat_interval = "1s"
dead_after = "5s"
shutdown_grace = "1m"
delayed_poll = "100ms"
cache_dir = "/var/cache/taskbox"
plugins_dir = "/opt/taskbox/plugins"
dead_letter_key = "tb:dead"

[worker.queue_shares]
dataset = 0.5
mail = 1.0

[limits]
fuel = 0
memory = "128MiB"
table_elements = 1000
instances = 8
timeout = "1m"
soft_timeout = "50s"
max_input = "1MiB"
max_output = 2048
max_log_bytes = "64KiB"
max_progress_reports = 10
max_enqueue = 5

[tasks."tasks.mail_task.send_email"]
queue = "mail"
acks_late = false
ignore_result = true
limits = { timeout = "20s" }

[tasks."tasks.mail_task.send_email".retry]
max_retries = 5
backoff = "2s"
backoff_max = "1m"
jitter = false
retry_on = ["Fail", "Timeout", "Trap"]

[plugins.mail]
path = "plugins/mail.wasm"
capabilities = ["log", "mail", "queue"]
queues = ["mail", "*"]
dirs = ["./templates:/templates:ro"]
env = ["TZ", "API_KEY=plugin-secret"]
limits = { memory = "64MiB" }
enforcement = "call"

[mail]
kind = "smtp"
smtp_server = "smtp.example.com"
smtp_port = 2525
smtp_username = "mailer"
smtp_password = "smtp-secret"
smtp_use_tls = true
smtp_opportunistic_tls = true
default_from = "no-reply@example.com"
outbox_dir = "/var/spool/outbox"

[log]
level = "taskbox=debug,WARNING"
format = "json"
file = "/var/log/taskbox.log"
file_max_size_mb = 50
file_backup_count = 2
"#;

    #[test]
    fn full_fixture_sets_every_key_and_round_trips() {
        let c = load_text(FULL, &[]).unwrap();
        assert_eq!(c.broker.sentinel_master.as_deref(), Some("mymaster"));
        assert_eq!(
            c.broker.sentinel_socket_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(c.results_url(), "rediss://:resultpw@results:6380/2");
        assert_eq!(c.results.expires, secs(7200));
        assert!(c.results.track_started && !c.results.enabled);
        assert_eq!(c.worker.name.as_deref(), Some("taskbox@w1"));
        assert_eq!(c.worker.queues, ["dataset", "mail"]);
        assert_eq!(c.worker.concurrency, Some(8));
        assert_eq!(c.worker.autoscale, Some((12, 2)));
        assert_eq!(c.worker.delayed_poll, Duration::from_millis(100));
        assert_eq!(c.worker.queue_shares.get("dataset"), Some(&0.5));
        assert_eq!(c.worker.dead_letter_key, "tb:dead");
        assert_eq!(c.limits.memory, Some(128 * 1024 * 1024));
        assert_eq!(c.limits.max_output, Some(2048));
        let task = &c.tasks["tasks.mail_task.send_email"];
        assert_eq!(task.queue.as_deref(), Some("mail"));
        assert_eq!(task.acks_late, Some(false));
        let retry = task.retry.as_ref().unwrap();
        assert_eq!(
            (retry.max_retries, retry.backoff, retry.jitter),
            (5, secs(2), false)
        );
        assert!(retry.retries_on("Trap") && !retry.retries_on("OutOfFuel"));
        let plugin = &c.plugins["mail"];
        assert_eq!(plugin.enforcement.as_deref(), Some("call"));
        assert_eq!(plugin.dir_grants().unwrap()[0].guest, "/templates");
        let host = env_of(&[("TZ", "UTC")]);
        assert_eq!(
            plugin.guest_env(&host),
            [
                ("TZ".to_string(), "UTC".to_string()),
                ("API_KEY".to_string(), "plugin-secret".to_string())
            ]
        );
        assert_eq!(c.mail.port(), 2525);
        assert_eq!(c.log.directive(), "taskbox=debug,warn");
        assert_eq!(c.log.file_backup_count, 2);

        let written = toml::to_string(&c).unwrap();
        let reread = Config::from_toml_str(&written, Path::new("written.toml")).unwrap();
        assert_eq!(reread, c, "{written}");
        let defaults = toml::to_string(&Config::default()).unwrap();
        let reread = Config::from_toml_str(&defaults, Path::new("defaults.toml")).unwrap();
        assert_eq!(reread, Config::default(), "{defaults}");
    }

    #[test]
    fn example_file_loads_and_its_values_are_the_defaults() {
        let c = Config::load(Some(Path::new(EXAMPLE_FILE)), &no_env).unwrap();
        let d = Config::default();
        assert_eq!(c.broker, d.broker);
        assert_eq!(c.results, d.results);
        assert_eq!(c.worker, d.worker);
        assert_eq!(c.mail, d.mail);
        assert_eq!(c.log, d.log);
        assert_eq!(
            c, d,
            "every uncommented value in the example is its default"
        );
    }

    #[test]
    fn example_file_commented_settings_are_real_keys_with_documented_defaults() {
        let text = std::fs::read_to_string(EXAMPLE_FILE).unwrap();
        // `#key = value` and `#[table]` lines are unset settings; `# ` lines are prose.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (_dir, path) = file_with(&uncommented);
        let c = Config::load(Some(&path), &no_env).unwrap();
        assert_eq!(c.mail.kind.as_deref(), Some("smtp"));
        assert_eq!(c.plugins["mail"].capabilities, ["log", "mail"]);
        assert_eq!(
            c.tasks["tasks.mail_task.send_email"].retry,
            Some(RetryPolicy {
                retry_on: vec!["Fail".into(), "Timeout".into()],
                ..RetryPolicy::default()
            }),
            "the example's retry values are the defaults except retry_on"
        );
        let mut limits = c.limits.clone();
        assert_eq!(limits.soft_timeout, Some(secs(240)));
        limits.soft_timeout = None;
        assert_eq!(
            Limits::default().with(&limits),
            Limits::default(),
            "the example's [limits] values are the built-in defaults"
        );
    }

    #[test]
    fn precedence_is_defaults_then_file_then_env_then_flags() {
        let file = "[broker]\nurl = \"redis://file:6379/0\"\n[worker]\nconcurrency = 2\ndead_after = \"20s\"\nqueues = [\"a\"]\n";
        let c = load_text(file, &[]).unwrap();
        assert_eq!(c.broker.url, "redis://file:6379/0");
        assert_eq!(c.worker.concurrency, Some(2));
        assert_eq!(
            c.worker.shutdown_grace,
            secs(30),
            "unset in the file: default"
        );
        assert!(matches!(c.source_of("worker.concurrency"), Source::File(_)));
        assert_eq!(c.source_of("worker.shutdown_grace"), Source::Default);

        let env = [
            ("CELERY_BROKER_URL", "redis://env:6379/0"),
            ("TASKBOX_CONCURRENCY", "3"),
            ("TASKBOX_DEAD_AFTER", "30s"),
        ];
        let mut c = load_text(file, &env).unwrap();
        assert_eq!(c.broker.url, "redis://env:6379/0");
        assert_eq!(c.worker.concurrency, Some(3));
        assert_eq!(c.worker.dead_after, secs(30));
        assert_eq!(
            c.worker.queues,
            ["a"],
            "env does not touch what it does not set"
        );
        assert_eq!(
            c.source_of("worker.dead_after"),
            Source::Env("TASKBOX_DEAD_AFTER".into())
        );

        c.apply_flag("--broker", "redis://flag:6379/0").unwrap();
        c.apply_flag("-c", "4").unwrap();
        c.apply_flag("-Q", "x, y").unwrap();
        c.validate().unwrap();
        assert_eq!(c.broker.url, "redis://flag:6379/0");
        assert_eq!(c.worker.concurrency, Some(4));
        assert_eq!(c.worker.queues, ["x", "y"]);
        assert_eq!(c.worker.dead_after, secs(30));
        assert_eq!(c.source_of("worker.concurrency"), Source::Flag("-c".into()));
    }

    #[test]
    fn celery_and_dify_env_names_map_to_their_keys() {
        let c = load_env(&[
            ("CELERY_BROKER_URL", "redis://:brokerpw@redis:6379/1"),
            ("CELERY_BACKEND", "redis"),
            ("BROKER_USE_SSL", "true"),
            ("CELERY_SENTINEL_MASTER_NAME", "mymaster"),
            ("CELERY_SENTINEL_PASSWORD", "sentinelpw"),
            ("CELERY_SENTINEL_SOCKET_TIMEOUT", "0.1"),
            ("CELERY_WORKER_AMOUNT", "6"),
            ("CELERY_AUTO_SCALE", "yes"),
            ("CELERY_MAX_WORKERS", "9"),
            ("CELERY_MIN_WORKERS", "2"),
            ("LOG_LEVEL", "DEBUG"),
            ("LOG_FORMAT", "JSON"),
            ("LOG_FILE", "/app/logs/server.log"),
            ("LOG_FILE_MAX_SIZE", "30"),
            ("LOG_FILE_BACKUP_COUNT", "7"),
            ("MAIL_TYPE", "SMTP"),
            ("SMTP_SERVER", "smtp.example.com"),
            ("SMTP_PORT", "465"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "smtppw"),
            ("SMTP_USE_TLS", "1"),
            ("SMTP_OPPORTUNISTIC_TLS", "0"),
            ("MAIL_DEFAULT_SEND_FROM", "Dify <no-reply@example.com>"),
            ("MAIL_OUTBOX_DIR", "/var/outbox"),
        ])
        .unwrap();
        assert_eq!(c.broker.url, "redis://:brokerpw@redis:6379/1");
        assert_eq!(c.broker_url(), "rediss://:brokerpw@redis:6379/1");
        assert_eq!(c.results.url, None);
        assert_eq!(c.results_url(), c.broker_url());
        assert_eq!(c.broker.sentinel_master.as_deref(), Some("mymaster"));
        assert_eq!(c.broker.sentinel_password.as_deref(), Some("sentinelpw"));
        assert_eq!(
            c.broker.sentinel_socket_timeout,
            Some(Duration::from_millis(100))
        );
        assert_eq!(c.worker.concurrency, Some(6));
        assert_eq!(c.worker.autoscale, Some((9, 2)));
        assert_eq!(c.log.level, "DEBUG");
        assert_eq!(c.log.directive(), "debug");
        assert_eq!(c.log.format, "json");
        assert_eq!(
            c.log.file.as_deref(),
            Some(Path::new("/app/logs/server.log"))
        );
        assert_eq!((c.log.file_max_size_mb, c.log.file_backup_count), (30.0, 7));
        assert_eq!(c.mail.kind.as_deref(), Some("smtp"));
        assert_eq!(c.mail.smtp_server.as_deref(), Some("smtp.example.com"));
        assert_eq!(c.mail.smtp_port, Some(465));
        assert_eq!(c.mail.smtp_username.as_deref(), Some("mailer"));
        assert_eq!(c.mail.smtp_password.as_deref(), Some("smtppw"));
        assert!(c.mail.smtp_use_tls && !c.mail.smtp_opportunistic_tls);
        assert_eq!(
            c.mail.default_from.as_deref(),
            Some("Dify <no-reply@example.com>")
        );
        assert_eq!(c.mail.outbox_dir.as_deref(), Some(Path::new("/var/outbox")));

        let c = load_env(&[("CELERY_RESULT_BACKEND", "redis://:resultpw@redis:6379/2")]).unwrap();
        assert_eq!(c.results_url(), "redis://:resultpw@redis:6379/2");
        assert_eq!(
            c.source_of("results.url"),
            Source::Env("CELERY_RESULT_BACKEND".into())
        );
    }

    #[test]
    fn taskbox_env_names_map_and_win_over_celery_names() {
        let c = load_env(&[
            ("CELERY_BROKER_URL", "redis://celery:6379/0"),
            ("TASKBOX_BROKER_URL", "redis://taskbox:6379/0"),
            ("CELERY_RESULT_BACKEND", "redis://celery:6379/1"),
            ("TASKBOX_RESULT_BACKEND", "redis://taskbox:6379/1"),
            ("CELERY_WORKER_AMOUNT", "2"),
            ("TASKBOX_CONCURRENCY", "5"),
            ("CELERY_AUTO_SCALE", "true"),
            ("TASKBOX_AUTOSCALE", "8,4"),
            ("TASKBOX_QUEUES", "dataset, mail"),
            ("TASKBOX_WORKER_NAME", "taskbox@w9"),
            ("TASKBOX_PLUGINS_DIR", "/plugins"),
            ("TASKBOX_CACHE_DIR", "/cache"),
            ("TASKBOX_RESULT_EXPIRES", "0s"),
            ("TASKBOX_DEAD_AFTER", "1m"),
            ("TASKBOX_SHUTDOWN_GRACE", "5s"),
        ])
        .unwrap();
        assert_eq!(c.broker.url, "redis://taskbox:6379/0");
        assert_eq!(c.results.url.as_deref(), Some("redis://taskbox:6379/1"));
        assert_eq!(c.worker.concurrency, Some(5));
        assert_eq!(c.worker.autoscale, Some((8, 4)));
        assert_eq!(c.worker.queues, ["dataset", "mail"]);
        assert_eq!(c.worker.name.as_deref(), Some("taskbox@w9"));
        assert_eq!(c.worker.plugins_dir.as_deref(), Some(Path::new("/plugins")));
        assert_eq!(c.worker.cache_dir.as_deref(), Some(Path::new("/cache")));
        assert_eq!(c.results.expires, Duration::ZERO);
        assert_eq!(c.worker.dead_after, secs(60));
        assert_eq!(c.worker.shutdown_grace, secs(5));
        assert_eq!(
            c.source_of("broker.url"),
            Source::Env("TASKBOX_BROKER_URL".into())
        );
    }

    #[test]
    fn every_listed_env_var_is_read_and_no_other() {
        let asked = RefCell::new(BTreeSet::new());
        let lookup = |name: &str| {
            asked.borrow_mut().insert(name.to_string());
            None
        };
        let (_dir, path) = file_with("");
        Config::load(Some(&path), &lookup).unwrap();
        let listed: BTreeSet<String> = ENV_VARS.iter().map(|v| v.to_string()).collect();
        assert_eq!(*asked.borrow(), listed);
    }

    #[test]
    fn celery_auto_scale_takes_max_from_workers_then_concurrency() {
        let c = load_env(&[("CELERY_AUTO_SCALE", "true"), ("CELERY_WORKER_AMOUNT", "4")]).unwrap();
        assert_eq!(c.worker.autoscale, Some((4, 1)));
        let c = load_env(&[("CELERY_AUTO_SCALE", "true")]).unwrap();
        assert_eq!(c.worker.autoscale, Some((cpu_count(), 1)));
        let c = load_text(
            "[worker]\nautoscale = [6, 2]\n",
            &[("CELERY_AUTO_SCALE", "false")],
        )
        .unwrap();
        assert_eq!(c.worker.autoscale, None, "the environment beats the file");
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        // Dify's .env ships many keys blank, e.g. `CELERY_WORKER_AMOUNT=`.
        let c = load_env(&[
            ("CELERY_WORKER_AMOUNT", ""),
            ("CELERY_MAX_WORKERS", " "),
            ("CELERY_SENTINEL_MASTER_NAME", ""),
            ("MAIL_TYPE", ""),
            ("SMTP_PORT", ""),
        ])
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn celery_backend_database_is_refused_with_the_fix() {
        let err = load_env(&[("CELERY_BACKEND", "database")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CELERY_BACKEND"), "{err}");
        assert!(err.contains("\"database\""), "{err}");
        assert!(err.contains("stores results in Redis"), "{err}");
        assert!(err.contains("CELERY_BACKEND=redis"), "{err}");
    }

    #[test]
    fn celery_result_backend_must_be_a_redis_url() {
        let err = load_env(&[("CELERY_RESULT_BACKEND", "db+postgresql://u:dbpw@pg/dify")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CELERY_RESULT_BACKEND"), "{err}");
        assert!(err.contains("redis://"), "{err}");
        assert!(!err.contains("dbpw"), "{err}");
    }

    #[test]
    fn unknown_toml_keys_name_the_key_and_the_file() {
        let (_dir, path) = file_with("[worker]\nconcurrency = 2\nconcurency = 3\n");
        let err = Config::load(Some(&path), &no_env).unwrap_err();
        assert!(
            matches!(err, ConfigError::UnknownKey { line: 3, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("worker.concurency"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("`concurrency`"),
            "lists the keys allowed: {msg}"
        );

        let err = load_text("[tasks.\"a.b\"]\nlimits = { memroy = \"1MiB\" }\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tasks.\"a.b\".limits.memroy"), "{err}");
        let err = load_text("colour = 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("`colour`"), "{err}");
    }

    #[test]
    fn keep_resident_reads_a_size_from_file_or_env() {
        assert_eq!(load_env(&[]).unwrap().worker.keep_resident, None);
        let c = load_text("[worker]\nkeep_resident = \"32MiB\"\n", &[]).unwrap();
        assert_eq!(c.worker.keep_resident, Some(32 * 1024 * 1024));
        let c = load_text(
            "[worker]\nkeep_resident = \"32MiB\"\n",
            &[("TASKBOX_KEEP_RESIDENT", "4194304")],
        )
        .unwrap();
        assert_eq!(c.worker.keep_resident, Some(4 * 1024 * 1024));
        assert_eq!(
            c.source_of("worker.keep_resident"),
            Source::Env("TASKBOX_KEEP_RESIDENT".into())
        );
        let err = load_env(&[("TASKBOX_KEEP_RESIDENT", "plenty")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"plenty\"") && err.contains("TASKBOX_KEEP_RESIDENT"),
            "{err}"
        );
        let err = load_env(&[("TASKBOX_KEEP_RESIDENT", "8GiB")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker.keep_resident") && err.contains("4 GiB"),
            "{err}"
        );
        let err = load_text("[worker]\nkeep_resident = \"plenty\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'plenty'") && err.contains("worker.keep_resident"),
            "{err}"
        );
    }

    #[test]
    fn bad_durations_sizes_and_autoscales_name_the_value() {
        let err = load_text("[worker]\ndead_after = \"soon\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'soon'") && err.contains("worker.dead_after"),
            "{err}"
        );
        assert!(err.contains(":2:"), "names the line: {err}");
        let err = load_text("[worker]\nshutdown_grace = 30\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"30s\""), "suggests a unit: {err}");
        let err = load_text("[limits]\nmemory = \"lots\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'lots'") && err.contains("limits.memory"),
            "{err}"
        );
        let err = load_text("[worker]\nautoscale = \"ten\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'ten'") && err.contains("MAX,MIN"), "{err}");
        let err = load_text("[worker]\nautoscale = [1, 2, 3]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly two"), "{err}");

        let err = load_env(&[("TASKBOX_DEAD_AFTER", "5 minutes-ish")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"5 minutes-ish\"") && err.contains("TASKBOX_DEAD_AFTER"),
            "{err}"
        );
        let err = load_env(&[("TASKBOX_AUTOSCALE", "3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"3\"") && err.contains("MAX,MIN"), "{err}");
        let err = load_env(&[("CELERY_WORKER_AMOUNT", "many")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"many\"") && err.contains("worker.concurrency"),
            "{err}"
        );
        let err = load_env(&[("BROKER_USE_SSL", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"maybe\"") && err.contains("true or false"),
            "{err}"
        );
        let err = load_env(&[("CELERY_SENTINEL_SOCKET_TIMEOUT", "-1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"-1\""), "{err}");

        let mut c = Config::default();
        let err = c.apply_flag("--autoscale", "2;1").unwrap_err().to_string();
        assert!(
            err.contains("flag --autoscale") && err.contains("\"2;1\""),
            "{err}"
        );
        let err = c
            .apply_flag("--shutdown-grace", "forever")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"forever\""), "{err}");
    }

    #[test]
    fn autoscale_and_heartbeat_errors_name_both_numbers() {
        let mut c = Config::default();
        c.apply_flag("--autoscale", "3,10").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("(3)") && err.contains("(10)") && err.contains("10,3"),
            "{err}"
        );
        assert!(err.contains("flag --autoscale"), "{err}");

        let err = load_text(
            "[worker]\nheartbeat_interval = \"5s\"\ndead_after = \"5s\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("worker.dead_after") && err.contains("heartbeat_interval (5s)"),
            "{err}"
        );
        assert!(
            err.contains("taskbox.toml"),
            "names the file it came from: {err}"
        );

        let err = load_env(&[("TASKBOX_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one task slot"), "{err}");
    }

    #[test]
    fn sentinel_urls_need_the_sentinel_form_and_a_master() {
        let list = "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1";
        let c = load_env(&[
            ("CELERY_USE_SENTINEL", "true"),
            ("CELERY_BROKER_URL", list),
            ("CELERY_SENTINEL_MASTER_NAME", "mymaster"),
        ])
        .unwrap();
        assert_eq!(c.broker_url(), list);

        let err = load_env(&[("CELERY_USE_SENTINEL", "true"), ("CELERY_BROKER_URL", list)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CELERY_SENTINEL_MASTER_NAME") && !err.contains(":pw@"),
            "{err}"
        );

        let err = load_env(&[
            ("CELERY_USE_SENTINEL", "true"),
            ("CELERY_BROKER_URL", "redis://:pw@redis:6379/1"),
            ("CELERY_SENTINEL_MASTER_NAME", "mymaster"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("needs a sentinel:// broker URL") && err.contains(":***@"),
            "{err}"
        );

        for (url, reason) in [
            ("sentinel://h1:26379;redis://h2:6379", "only sentinel://"),
            ("sentinel://h1:26379/16", "0 to 15"),
            ("sentinel://:pw@:26379/1", "no host"),
            ("redis://h1:notaport/0", "notaport"),
            ("http://h1/0", "`http`"),
        ] {
            let err = load_env(&[
                ("CELERY_BROKER_URL", url),
                ("CELERY_SENTINEL_MASTER_NAME", "m"),
            ])
            .unwrap_err()
            .to_string();
            assert!(err.contains(reason), "{url}: {err}");
        }
        let err = load_env(&[
            ("CELERY_BROKER_URL", list),
            ("CELERY_SENTINEL_MASTER_NAME", "m"),
            ("BROKER_USE_SSL", "true"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("broker.use_tls"), "{err}");
    }

    #[test]
    fn redact_url_hides_passwords_in_every_form() {
        assert_eq!(
            redact_url("redis://:s3cret@redis:6379/1"),
            "redis://:***@redis:6379/1"
        );
        assert_eq!(
            redact_url("rediss://user:s3cret@redis:6380/0"),
            "rediss://user:***@redis:6380/0"
        );
        assert_eq!(
            redact_url("sentinel://:s3cret@h1:26379/1;sentinel://:s3cret@h2:26379/1"),
            "sentinel://:***@h1:26379/1;sentinel://:***@h2:26379/1"
        );
        assert_eq!(redact_url("redis://redis:6379/0"), "redis://redis:6379/0");
        assert_eq!(
            redact_url("redis://s3cret@redis:6379"),
            "redis://***@redis:6379"
        );
        assert_eq!(
            redact_url("redis://:p@ss/w;rd#?@redis/0"),
            "redis://:***@redis/0"
        );
        assert_eq!(redact_url("redis:/:s3cret@redis"), "***@redis");
        assert_eq!(redact_url("redis://:pa;ss@h/0"), "redis://:***@h/0");
        assert_eq!(redact_url("redis://u:x@y@h:1/2"), "redis://u:***@h:1/2");
    }

    #[test]
    fn debug_output_never_contains_passwords() {
        let mut c = load_text(FULL, &[]).unwrap();
        c.apply_flag("--result-backend", "redis://:flagpw@r:6379/3")
            .unwrap();
        let shown = format!(
            "{c:?} {:?} {}",
            c.redacted(),
            toml::to_string(&c.redacted()).unwrap()
        );
        for secret in [
            "masterpw",
            "sentinelpw",
            "flagpw",
            "smtp-secret",
            "plugin-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(
            shown.contains("smtp.example.com") && shown.contains(":***@s1"),
            "{shown}"
        );
        let err = load_text("[mail]\nsmtp_password = 123456\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("123456") && err.contains("mail.smtp_password"),
            "{err}"
        );
    }

    #[test]
    fn retry_delay_doubles_caps_and_jitters() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = (0..5).map(|n| p.delay(n, 0.0).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16]);
        assert_eq!(p.delay(20, 0.0), secs(600), "capped at backoff_max");
        assert_eq!(p.delay(u32::MAX, 0.0), secs(600), "no overflow");

        let p = RetryPolicy::default();
        assert_eq!(p.delay(3, 0.0), secs(4), "jitter starts at half the delay");
        assert_eq!(p.delay(3, 0.5), secs(6));
        assert!(
            p.delay(3, 0.999_999) <= secs(8) && p.delay(3, 0.999_999) > Duration::from_millis(7990)
        );
        assert_eq!(p.delay(30, 1.0), secs(600), "the cap holds with jitter");
        assert_eq!(p.delay(3, f64::NAN), secs(4));
        assert_eq!(p.delay(3, 7.0), secs(8), "out-of-range units are clamped");
    }

    #[test]
    fn retry_on_refuses_reject_and_unknown_kinds() {
        let task = |kinds: &str| format!("[tasks.ingest.retry]\nretry_on = [{kinds}]\n");
        let err = load_text(&task("\"Fail\", \"Reject\""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tasks.ingest.retry.retry_on") && err.contains("\"Reject\""),
            "{err}"
        );
        assert!(err.contains("remove \"Reject\""), "{err}");
        let err = load_text(&task("\"Timeout\", \"Crash\""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"Crash\"") && err.contains("OutOfFuel"),
            "{err}"
        );
        let c = load_text(&task("\"Timeout\", \"MemoryLimit\""), &[]).unwrap();
        let retry = c.tasks["ingest"].retry.as_ref().unwrap();
        assert!(retry.retries_on("Timeout") && !retry.retries_on("Fail"));
        assert_eq!(retry.max_retries, 3, "other fields keep their defaults");
    }

    #[test]
    fn queue_names_must_be_non_empty_without_whitespace() {
        let err = load_env(&[("TASKBOX_QUEUES", "a,,b")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker.queues") && err.contains("empty"),
            "{err}"
        );
        let err = load_text("[worker]\nqueues = [\"data set\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"data set\"") && err.contains("whitespace"),
            "{err}"
        );
        let err = load_text("[worker]\nqueues = []\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no queue"), "{err}");
        let err = load_text("[tasks.t]\nqueue = \"\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tasks.t.queue"), "{err}");
        let err = load_text("[worker.queue_shares]\nmail = 1.5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker.queue_shares.mail") && err.contains("1.5"),
            "{err}"
        );
        let err = load_text("[worker.queue_shares]\nmail = 0.0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("above 0"), "{err}");
    }

    #[test]
    fn plugin_grants_are_checked() {
        let plugin = |extra: &str| format!("[plugins.p]\npath = \"p.wasm\"\n{extra}\n");
        assert!(load_text(&plugin(""), &[]).is_ok());
        // Without a path the entry only grants (a plugin-directory plugin or a built-in).
        assert!(load_text("[plugins.p]\ncapabilities = [\"kv\"]\n", &[]).is_ok());
        let err = load_text("[plugins.p]\npath = \"\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("path"), "{err}");
        let err = load_text(&plugin("capabilities = [\"net\"]"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plugins.p.capabilities") && err.contains("\"net\""),
            "{err}"
        );
        let err = load_text(&plugin("dirs = [\"/srv:relative\"]"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plugins.p.dirs") && err.contains("absolute"),
            "{err}"
        );
        let err = load_text(&plugin("env = [\"BAD NAME=topsecret\"]"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plugins.p.env") && !err.contains("topsecret"),
            "{err}"
        );
        let err = load_text(&plugin("enforcement = \"never\""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"never\"") && err.contains("\"load\""),
            "{err}"
        );
        let err = load_text(&plugin("limits = { timeout = \"0s\" }"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugins.p.limits.timeout"), "{err}");
    }

    #[test]
    fn mail_settings_are_checked_and_ports_default_by_tls_mode() {
        let smtp = [("MAIL_TYPE", "smtp"), ("SMTP_SERVER", "mx")];
        assert_eq!(load_env(&smtp).unwrap().mail.port(), 25);
        let tls = [smtp[0], smtp[1], ("SMTP_USE_TLS", "true")];
        assert_eq!(load_env(&tls).unwrap().mail.port(), 465);
        let starttls = [tls[0], tls[1], tls[2], ("SMTP_OPPORTUNISTIC_TLS", "true")];
        assert_eq!(load_env(&starttls).unwrap().mail.port(), 587);

        let err = load_env(&[("MAIL_TYPE", "smtp")]).unwrap_err().to_string();
        assert!(
            err.contains("mail.smtp_server") && err.contains("MAIL_TYPE"),
            "{err}"
        );
        let err = load_env(&[smtp[0], smtp[1], ("SMTP_OPPORTUNISTIC_TLS", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMTP_USE_TLS=true"), "{err}");
        let err = load_env(&[("MAIL_TYPE", "resend")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"resend\"") && err.contains("smtp or outbox"),
            "{err}"
        );
        let err = load_env(&[("MAIL_TYPE", "outbox")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAIL_OUTBOX_DIR"), "{err}");
    }

    #[test]
    fn log_settings_are_checked() {
        assert!(load_env(&[("LOG_LEVEL", "critical")]).is_ok());
        let c = load_env(&[("LOG_FORMAT", "%(asctime)s %(levelname)s %(message)s")]).unwrap();
        assert_eq!(
            c.log.format, "text",
            "a Python format string leaves the format alone"
        );
        let err = load_env(&[("LOG_LEVEL", "verbose")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"verbose\"") && err.contains("LOG_LEVEL"),
            "{err}"
        );
        let err = load_env(&[("LOG_FORMAT", "xml")]).unwrap_err().to_string();
        assert!(
            err.contains("\"xml\"") && err.contains("text or json"),
            "{err}"
        );
    }

    #[test]
    fn http_address_and_fractional_log_size_are_read_and_checked() {
        let c = load_env(&[
            ("TASKBOX_HTTP", "127.0.0.1:9808"),
            ("LOG_FILE_MAX_SIZE", "0.5"),
        ])
        .unwrap();
        assert_eq!(c.worker.http.as_deref(), Some("127.0.0.1:9808"));
        assert_eq!(
            c.source_of("worker.http"),
            Source::Env("TASKBOX_HTTP".into())
        );
        assert_eq!(c.log.file_max_size_mb, 0.5);
        let c = load_text(
            "[worker]\nhttp = \"localhost:9808\"\n[log]\nfile_max_size_mb = 50\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.worker.http.as_deref(), Some("localhost:9808"));
        assert_eq!(c.log.file_max_size_mb, 50.0);
        assert!(load_env(&[("TASKBOX_HTTP", "[::1]:9808")]).is_ok());
        for bad in ["9808", "127.0.0.1", "127.0.0.1:http", ":9808"] {
            let err = load_env(&[("TASKBOX_HTTP", bad)]).unwrap_err().to_string();
            assert!(
                err.contains("worker.http") && err.contains("TASKBOX_HTTP"),
                "{err}"
            );
        }
        for bad in ["0.0001", "-1", "NaN"] {
            let err = load_env(&[("LOG_FILE_MAX_SIZE", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("log.file_max_size_mb"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_cover_the_cli_and_refuse_others() {
        let mut c = Config::default();
        for flag in FLAGS {
            let value = match flag {
                "--broker" | "--result-backend" => "redis://h:6379/0",
                "-c" | "--concurrency" => "2",
                "--autoscale" => "4,1",
                "--dead-after" => "20s",
                "--shutdown-grace" | "--heartbeat-interval" | "--result-expires" => "3s",
                "-l" | "--log-level" => "warn",
                "--log-format" => "json",
                "--http" => "127.0.0.1:9808",
                _ => "value",
            };
            c.apply_flag(flag, value).unwrap();
        }
        c.validate().unwrap();
        assert_eq!(c.worker.name.as_deref(), Some("value"));
        assert_eq!(c.worker.plugins_dir.as_deref(), Some(Path::new("value")));
        let err = c.apply_flag("--concurency", "2").unwrap_err().to_string();
        assert!(
            err.contains("--concurency") && err.contains("--concurrency"),
            "{err}"
        );
    }

    #[test]
    fn missing_explicit_file_names_the_path_and_implicit_file_is_optional() {
        let err = Config::load(Some(Path::new("/nonexistent/taskbox.toml")), &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/taskbox.toml"),
            "{err}"
        );
        let err = load_text("[worker\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn sentinel_timeouts_accept_seconds_or_durations() {
        assert_eq!(parse_seconds("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_seconds("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_seconds("2"), Ok(secs(2)));
        assert!(parse_seconds("-1").unwrap_err().contains("'-1'"));
        let c = load_text("[broker]\nsentinel_socket_timeout = \"150ms\"\n", &[]).unwrap();
        assert_eq!(
            c.broker.sentinel_socket_timeout,
            Some(Duration::from_millis(150))
        );
        let c = load_text("[broker]\nsentinel_socket_timeout = 1\n", &[]).unwrap();
        assert_eq!(c.broker.sentinel_socket_timeout, Some(secs(1)));
    }

    #[test]
    fn task_limits_layer_global_manifest_plugin_then_task() {
        let c = load_text(
            "[limits]\nmemory = \"100MiB\"\ntimeout = \"10s\"\nmax_enqueue = 1\n\
             [plugins.p]\npath = \"p.wasm\"\nlimits = { timeout = \"20s\" }\n\
             [tasks.t.limits]\ntimeout = \"30s\"\n",
            &[],
        )
        .unwrap();
        let manifest = LimitsOverride {
            memory: Some(1),
            max_enqueue: Some(2),
            timeout: Some(secs(5)),
            ..LimitsOverride::default()
        };
        let l = c.limits_for(&manifest, Some("p"), "t");
        assert_eq!(l.memory, 1, "the manifest beats global defaults");
        assert_eq!(l.max_enqueue, 2);
        assert_eq!(
            l.timeout,
            secs(30),
            "the task beats the plugin, which beats the manifest"
        );
        assert_eq!(
            c.limits_for(&manifest, Some("p"), "other").timeout,
            secs(20)
        );
        let none = LimitsOverride::default();
        assert_eq!(c.limits_for(&none, None, "other").memory, 100 * 1024 * 1024);
    }
}
