//! Tracing setup (level, text or JSON lines, console stream, rotating log file), and the one
//! constructor of a task's span.
//!
//! Every task runs inside [`task_span`], so every event a task causes (the host's and the
//! guest's own log lines) carries the task id, name, queue and attempt.
//!
//! Where logs go: long-running commands (`worker`, `beat`) log to stdout, as a container
//! runtime expects, and also to `LOG_FILE` when it is set; every other command logs to stderr
//! only, so what it prints on stdout (a result, an id, a table) stays clean for pipes, and a
//! one-off command never rotates a file a running worker is writing.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogConfig;
use crate::runtime::TaskMeta;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the current span's fields under `span`.
    Json,
}

impl LogFormat {
    /// `text` or `json` (any case); anything else is text, since [`crate::config`] has already
    /// refused other values where they come from a setting.
    pub fn parse(format: &str) -> LogFormat {
        if format.trim().eq_ignore_ascii_case("json") {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// The console stream logs go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// For long-running commands, whose stdout is nothing but logs.
    Stdout,
    /// For commands whose stdout carries their output.
    Stderr,
}

impl Console {
    fn writer(self) -> BoxMakeWriter {
        match self {
            Console::Stdout => BoxMakeWriter::new(std::io::stdout),
            Console::Stderr => BoxMakeWriter::new(std::io::stderr),
        }
    }

    fn is_terminal(self) -> bool {
        use std::io::IsTerminal as _;
        match self {
            Console::Stdout => std::io::stdout().is_terminal(),
            Console::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Opens `path` for appending with size rotation: past `max_bytes` the file becomes `PATH.1`
/// (older backups shift up) and a new one starts; at most `backups` old files are kept. A
/// rotation happens between lines, never inside one.
pub fn rotating_file(
    path: &Path,
    max_bytes: usize,
    backups: usize,
) -> anyhow::Result<FileRotate<AppendCount>> {
    // file-rotate panics where it cannot create the directory or open the file; doing both
    // here first turns that into an error naming the path.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    Ok(FileRotate::new(
        path,
        AppendCount::new(backups),
        ContentLimit::BytesSurpassed(max_bytes.max(1)),
        Compression::None,
        None,
    ))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn format_layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}

/// Installs the global subscriber from `config`: its level filter (a bad one falls back to
/// `info` with a warning), its format on `console`, and its rotating file when set. Errors only
/// when the log file cannot be opened, naming it.
pub fn init(config: &LogConfig, console: Console) -> anyhow::Result<()> {
    let directive = config.directive();
    let (filter, bad) = match EnvFilter::try_new(&directive) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let format = LogFormat::parse(&config.format);
    let mut layers: Vec<BoxedLayer> = vec![format_layer(
        format,
        console.writer(),
        console.is_terminal(),
    )];
    if let Some(path) = &config.file {
        let max_bytes = (config.file_max_size_mb * 1024.0 * 1024.0) as usize;
        let backups = config.file_backup_count as usize;
        let file = rotating_file(path, max_bytes, backups)?;
        layers.push(format_layer(format, Mutex::new(file), false));
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
    if installed.is_ok()
        && let Some(err) = bad
    {
        tracing::warn!(
            "LOG_LEVEL '{}' is not a valid filter ({err}); using info",
            config.level
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_file_rotates_by_size_between_lines_and_keeps_the_configured_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("taskbox.log");
        let mut file = rotating_file(&path, 1000, 2).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..100 {
            file.write_all(line.as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let logs = dir.path().join("logs");
        assert_eq!(
            names(&logs),
            ["taskbox.log", "taskbox.log.1", "taskbox.log.2"]
        );
        for name in names(&logs) {
            let text = std::fs::read_to_string(logs.join(&name)).unwrap();
            assert!(text.len() <= 1000 + line.len(), "{name}: {}", text.len());
            assert!(
                text.lines().all(|l| l.len() == 99),
                "{name} has a split line"
            );
        }
    }

    #[test]
    fn an_unopenable_log_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("taskbox.log");
        let Err(err) = rotating_file(&path, 1000, 2) else {
            panic!("opened a log file under a regular file");
        };
        let err = format!("{err:#}");
        assert!(err.contains("not-a-dir"), "{err}");
    }

    #[test]
    fn log_format_parses_text_and_json() {
        assert_eq!(LogFormat::parse("JSON"), LogFormat::Json);
        assert_eq!(LogFormat::parse("text"), LogFormat::Text);
    }
}
