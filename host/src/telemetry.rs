//! Tracing setup, and the one constructor of a task's span.
//!
//! Every task runs inside [`task_span`], so every event a task causes (the host's and the
//! guest's own log lines) carries the task id, name, queue and attempt.

use tracing_subscriber::EnvFilter;

use crate::runtime::TaskMeta;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber writing to stderr. `level` is a `tracing` filter such as
/// `info` or `taskbox=debug,warn`; a bad filter falls back to `info` with a warning.
pub fn init(level: &str, format: LogFormat) {
    let (filter, bad) = match EnvFilter::try_new(level) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if result.is_ok()
        && let Some(err) = bad
    {
        tracing::warn!("LOG_LEVEL '{level}' is not a valid filter ({err}); using info");
    }
}

/// The span of one task. Fields follow OpenTelemetry's messaging conventions.
pub fn task_span(meta: &TaskMeta, worker: &str) -> tracing::Span {
    tracing::info_span!(
        "task",
        task.id = %meta.id,
        task.name = %meta.name,
        queue = %meta.queue,
        attempt = meta.attempt,
        plugin = %meta.plugin,
        worker = %worker,
        messaging.system = "redis",
    )
}
