//! The `taskbox` command line: flags mirror configuration, and each subcommand hands off to the
//! module that owns the work.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, parse_bytes, parse_duration};
use crate::exec::{self, ExecRequest};
use crate::runtime::{DirGrant, LimitsOverride};
use crate::telemetry::{self, Console, LogFormat};

/// Exit codes of `taskbox exec`, shown in its `--help` and the README.
pub const EXEC_EXIT_CODES: &str = "\
Exit codes:
   0  success: the output JSON is on stdout
   1  setup error (unreadable file, bad flag value, host failure)
   2  usage error (unknown flag, missing argument)
   3  Reject            the task rejected its input (never retried)
   4  Fail              the task failed
   5  Retry             the task asked to be retried
  10  OutOfFuel         the fuel budget ran out
  11  MemoryLimit       memory, table or instance limit hit
  12  Timeout           the wall-clock hard limit passed
  13  StackOverflow     the wasm call stack was exhausted
  14  Trap              a trap or panic in the guest (with backtrace)
  15  OutputTooLarge    the output exceeded --max-output
  16  CapabilityDenied  the task used something it was not granted
  17  InvalidComponent  not a usable taskbox component (version, exports, imports)
  18  InputTooLarge     args + kwargs exceeded --max-input
  19  Terminated        the task was stopped from outside";

/// taskbox: Celery-compatible tasks, each run as a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "taskbox", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `taskbox=debug,warn` (default: LOG_LEVEL, else info); `-l`
    /// as Celery's `--loglevel`.
    #[arg(short = 'l', long, global = true)]
    pub log_level: Option<String>,
    /// Log format (default: LOG_FORMAT, else text).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Also write the logs of `worker` and `beat` to this file, rotated by size
    /// (default: LOG_FILE; LOG_FILE_MAX_SIZE and LOG_FILE_BACKUP_COUNT size it).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one task locally under the full sandbox, without a broker.
    #[command(after_help = EXEC_EXIT_CODES)]
    Exec(ExecArgs),
    /// Consume tasks from Redis and run them in the sandbox.
    Worker(WorkerArgs),
    /// Send a task in Celery's format; prints its id, or its result with --wait.
    #[command(after_help = SEND_EXIT_CODES)]
    Send(SendArgs),
    /// Show a task's stored result.
    #[command(after_help = SEND_EXIT_CODES)]
    Result(ResultArgs),
    /// Work the dead-letter list.
    Dlq(DlqArgs),
    /// Delete every waiting message of the given queues.
    Purge(PurgeArgs),
    /// Enqueue periodic tasks on schedule; run several for availability, one leads.
    Beat(BeatArgs),
    /// Third-party plugins: list, inspect, verify, install, remove, scaffold.
    Plugin(PluginArgs),
    /// Ask the live workers what they are doing (or read queue state from Redis).
    Inspect(InspectArgs),
    /// Steer live workers: shut down, resize, revoke tasks.
    Control(ControlArgs),
}

/// Flags shared by `inspect` and `control`: which workers, how long to wait, output form.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Only these workers (name like taskbox@host, or worker id). Repeatable.
    #[arg(short = 'd', long = "destination", global = true)]
    pub destination: Vec<String>,
    /// How long to wait for replies.
    #[arg(long, default_value = "2s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `taskbox inspect` flags.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// What to ask.
    #[command(subcommand)]
    pub command: InspectCommand,
}

/// `taskbox inspect` subcommands.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum InspectCommand {
    /// Which workers answer.
    Ping,
    /// Tasks running now.
    Active,
    /// Tasks fetched but not started (always empty: slots fetch only what they start).
    Reserved,
    /// Tasks waiting for an ETA or retry countdown (read from Redis).
    Scheduled,
    /// Task names each worker serves.
    Registered,
    /// Each worker's description and counters.
    Stats,
    /// Per queue and priority: depth, unacked, delayed; and the dead-letter count (from Redis).
    Queues,
}

/// `taskbox control` flags.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ControlCommand,
}

/// `taskbox control` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ControlCommand {
    /// Warm shutdown: running tasks finish (within the grace period), then the worker exits.
    Shutdown,
    /// Add N task slots.
    PoolGrow {
        /// Slots to add.
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Remove N task slots (busy ones as their tasks finish).
    PoolShrink {
        /// Slots to remove.
        #[arg(default_value_t = 1)]
        n: u32,
    },
    /// Never run this task; with --terminate also stop it where it runs now. Stores REVOKED.
    Revoke {
        /// The task id.
        id: String,
        /// Interrupt the running task inside its sandbox.
        #[arg(long)]
        terminate: bool,
    },
}

/// `taskbox plugin` flags.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// `taskbox plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Every plugin of the plugin directory (checked here) and what each live worker loaded.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A component's imports, exports, WIT version, tasks, limits and manifest.
    Info {
        /// A built-in or installed plugin name, or a `.wasm` file.
        target: String,
        /// The manifest of a `.wasm` file (default: plugin.toml beside it, if any).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Run every load-time check of a component against its manifest and this configuration.
    Verify {
        /// The `.wasm` file.
        file: PathBuf,
        /// Its manifest.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Verify, then install into the plugin directory atomically (running workers pick it up).
    Add {
        /// The `.wasm` file.
        file: PathBuf,
        /// Its manifest.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Remove an installed plugin (running workers stop serving it; queued tasks wait).
    Remove {
        /// The plugin's name.
        name: String,
    },
    /// Write a ready-to-build plugin crate that depends only on taskbox-sdk.
    New {
        /// The plugin's name (also the crate directory).
        name: String,
        /// Where to create the crate directory (default: the current directory).
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Path to the taskbox-sdk crate (default: the SDK this taskbox was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Exit codes of `taskbox send --wait` and `taskbox result`.
pub const SEND_EXIT_CODES: &str = "\
Exit codes:
   0  SUCCESS (or, without --wait, the task was sent)
   1  error (broker unreachable, bad flag value)
   4  FAILURE: the task failed; the error is on stderr
   6  REVOKED: the task expired or was revoked
   7  still not ready when --wait ran out (or PENDING for `result`)";

/// Flags every broker-facing command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (default: ./taskbox.toml when it exists).
    #[arg(long, env = "TASKBOX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Broker URL, e.g. redis://127.0.0.1:6379/0 (overrides CELERY_BROKER_URL).
    #[arg(long, global = true)]
    pub broker: Option<String>,
    /// Result backend URL (default: the broker).
    #[arg(long, global = true)]
    pub result_backend: Option<String>,
    /// Plugin directory: `<DIR>/<name>/plugin.toml` beside each component
    /// (overrides TASKBOX_PLUGINS_DIR).
    #[arg(long = "plugins", global = true, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self, extra: &[(&str, Option<String>)]) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), &|k| std::env::var(k).ok())?;
        let flags = [
            ("--broker", self.broker.clone()),
            ("--result-backend", self.result_backend.clone()),
            (
                "--plugins",
                self.plugins_dir
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            ),
        ];
        for (flag, value) in flags.iter().chain(extra.iter()) {
            if let Some(v) = value {
                config.apply_flag(flag, v)?;
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// `taskbox worker` flags (each also settable in taskbox.toml and the environment).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Queues to consume, comma-separated (default: the 16 standard queues).
    #[arg(short = 'Q', long)]
    pub queues: Option<String>,
    /// Concurrent task slots (default: number of CPUs).
    #[arg(short = 'c', long)]
    pub concurrency: Option<String>,
    /// Grow slots up to MAX under backlog and shrink to MIN when idle: `MAX,MIN`.
    #[arg(long)]
    pub autoscale: Option<String>,
    /// Worker name (default taskbox@<hostname>).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// A worker whose heartbeat is older than this is dead; its tasks are redelivered.
    #[arg(long)]
    pub dead_after: Option<String>,
    /// How long a warm shutdown waits for running tasks.
    #[arg(long)]
    pub shutdown_grace: Option<String>,
    /// Serve /healthz, /readyz and /metrics on HOST:PORT, e.g. 127.0.0.1:9808.
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Also run the beat scheduler in this process (small deployments; it still competes
    /// for the lease with other beat replicas).
    #[arg(long)]
    pub beat: bool,
}

/// `taskbox send` flags.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Task name.
    pub task: String,
    /// Positional arguments as a JSON array, or `@FILE`.
    #[arg(long, default_value = "[]")]
    pub args: String,
    /// Keyword arguments as a JSON object, or `@FILE`.
    #[arg(long, default_value = "{}")]
    pub kwargs: String,
    /// Queue (default: the task's route).
    #[arg(long)]
    pub queue: Option<String>,
    /// Run no earlier than this many seconds from now.
    #[arg(long)]
    pub countdown: Option<f64>,
    /// Run no earlier than this ISO-8601 time (e.g. 2026-11-25T10:00:00Z).
    #[arg(long, conflicts_with = "countdown")]
    pub eta: Option<String>,
    /// Drop the task (storing REVOKED) if it has not started within this many seconds.
    #[arg(long)]
    pub expires: Option<f64>,
    /// Message priority 0-9 (on Redis, lower runs first, as in Celery).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub priority: Option<u8>,
    /// Then run TASK with the previous result prepended to its args: `TASK` or
    /// `TASK:{"kw": 1}` (keyword arguments as JSON). Repeatable, in order.
    #[arg(long = "chain")]
    pub chain: Vec<String>,
    /// Wait for the result (of the last task of a chain), up to SECS (default 60).
    #[arg(long, num_args = 0..=1, default_missing_value = "60")]
    pub wait: Option<f64>,
}

/// `taskbox result` flags.
#[derive(Debug, clap::Args)]
pub struct ResultArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Task id.
    pub id: String,
    /// Wait up to SECS for a final state.
    #[arg(long, num_args = 0..=1, default_missing_value = "60")]
    pub wait: Option<f64>,
}

/// `taskbox dlq` subcommands.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[command(subcommand)]
    pub action: DlqAction,
}

/// What to do with the dead-letter list.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// One line per entry, newest first: task id, task, queue, kind, reason.
    List {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: isize,
    },
    /// The whole entry (reason, raw message) of one task id.
    Show {
        /// Task id (or the raw message's delivery tag for undecodable ones).
        id: String,
    },
    /// Put entries back on their queues.
    Requeue {
        /// Task id to requeue.
        id: Option<String>,
        /// Requeue every entry.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete every entry.
    Purge,
}

/// `taskbox beat` flags.
#[derive(Debug, clap::Args)]
pub struct BeatArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// A TOML file of `[beat.schedule.<name>]` tables laid over the configuration's.
    #[arg(long, global = true, value_name = "FILE")]
    pub schedule: Option<PathBuf>,
    /// What to do (default: run the scheduler).
    #[command(subcommand)]
    pub action: Option<BeatAction>,
}

/// `taskbox beat` subcommands.
#[derive(Debug, Subcommand)]
pub enum BeatAction {
    /// Each entry with its enabled state, schedule, last run and next run, and the leader.
    List,
}

/// `taskbox purge` flags.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Queues to purge, comma-separated.
    #[arg(short = 'Q', long, required = true)]
    pub queues: String,
}

/// `taskbox exec` flags.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A component file (`.wasm`) or the name of a built-in (e.g. `chunking`).
    pub component: String,
    /// The task name; optional when the component serves exactly one task.
    #[arg(long)]
    pub task: Option<String>,
    /// Positional arguments as a JSON array, or `@FILE`.
    #[arg(long, default_value = "[]")]
    pub args: String,
    /// Keyword arguments as a JSON object, or `@FILE`.
    #[arg(long, default_value = "{}")]
    pub kwargs: String,
    /// Fuel budget (about 1.6e10 per second of CPU); 0 disables fuel.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Linear memory cap, e.g. `64MiB`.
    #[arg(long, value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// Wall-clock hard limit, e.g. `30s`.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Wall-clock soft limit: logged as a warning, the task continues.
    #[arg(long, value_parser = parse_duration)]
    pub soft_timeout: Option<Duration>,
    /// Largest accepted output, e.g. `1MiB`.
    #[arg(long, value_parser = parse_bytes)]
    pub max_output: Option<u64>,
    /// Largest accepted input (args + kwargs).
    #[arg(long, value_parser = parse_bytes)]
    pub max_input: Option<u64>,
    /// Grant a host directory as HOST:GUEST, read-only with a `:ro` suffix. Repeatable.
    #[arg(long = "dir", value_parser = DirGrant::parse)]
    pub dirs: Vec<DirGrant>,
    /// Grant an environment variable, NAME (its current value) or NAME=VALUE. Repeatable.
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// Keep the plugin's kv store in this JSON file between runs (default: memory).
    #[arg(long)]
    pub kv_file: Option<PathBuf>,
    /// Write mail as .eml files into this directory (default: summarised on stderr).
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Compiled-component cache directory.
    #[arg(long, env = "TASKBOX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache compiled components on disk.
    #[arg(long)]
    pub no_cache: bool,
    /// Guest memory the sandbox keeps resident between tasks, as the worker's
    /// `worker.keep_resident` (default 16MiB).
    #[arg(long, env = "TASKBOX_KEEP_RESIDENT", value_parser = parse_bytes)]
    pub keep_resident: Option<u64>,
}

/// Entry point of the binary: parses flags, runs the command, maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let console = log_console(&cli.command);
    let (log, log_problem) = log_settings(&cli, console);
    if let Err(err) = telemetry::init(&log, console) {
        eprintln!("error: {err:#}");
        return ExitCode::from(1);
    }
    if let Some(problem) = log_problem {
        tracing::warn!("{problem}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Exec(args) => run_exec(args).await,
            Command::Worker(args) => run_worker(args).await,
            Command::Send(args) => crate::ops::send(args).await,
            Command::Result(args) => crate::ops::result(args).await,
            Command::Dlq(args) => crate::ops::dlq(args).await,
            Command::Purge(args) => crate::ops::purge(args).await,
            Command::Beat(args) => run_beat(args).await,
            Command::Plugin(args) => crate::registry::commands::run(args).await,
            Command::Inspect(args) => crate::inspect::inspect(args).await,
            Command::Control(args) => crate::inspect::control(args).await,
        }
    });
    match code {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Long-running commands (`worker`, `beat` running the scheduler) log to stdout, which is what
/// container runtimes collect; every other command logs to stderr, keeping its stdout for its
/// own output.
fn log_console(command: &Command) -> Console {
    match command {
        Command::Worker(_) => Console::Stdout,
        Command::Beat(args) if args.action.is_none() => Console::Stdout,
        _ => Console::Stderr,
    }
}

/// The log settings of this run: the configuration file and environment as the command reads
/// them (`LOG_LEVEL`, `LOG_FORMAT`, `LOG_FILE`, ...), then the global `--log-*` flags. When the
/// configuration does not load, only the log variables apply (the command itself reports the
/// error). Commands that log to stderr never write the log file: a one-off command must not
/// rotate the file a running worker writes. Settings that do not validate give way to the
/// defaults, with the reason returned for a warning.
fn log_settings(cli: &Cli, console: Console) -> (crate::config::LogConfig, Option<String>) {
    let env = |name: &str| std::env::var(name).ok();
    let path = cli.command.config_args().and_then(|c| c.config.clone());
    let log_vars = [
        ("--log-level", "LOG_LEVEL"),
        ("--log-format", "LOG_FORMAT"),
        ("--log-file", "LOG_FILE"),
    ];
    let mut config = Config::load(path.as_deref(), &env).unwrap_or_else(|_| {
        let mut fallback = Config::default();
        for (flag, var) in log_vars {
            // A Python logging format string in LOG_FORMAT (Dify's .env) is not ours.
            if let Some(value) = env(var).filter(|v| !v.trim().is_empty() && !v.contains("%(")) {
                let _ = fallback.apply_flag(flag, &value);
            }
        }
        fallback
    });
    let format = cli.log_format.map(|f| match f {
        LogFormat::Text => "text".to_string(),
        LogFormat::Json => "json".to_string(),
    });
    let file = cli
        .log_file
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    for (flag, value) in [
        ("--log-level", cli.log_level.clone()),
        ("--log-format", format),
        ("--log-file", file),
    ] {
        if let Some(value) = value {
            // These flags only set a field; the result is validated below.
            let _ = config.apply_flag(flag, &value);
        }
    }
    let mut log = config.log;
    if console == Console::Stderr {
        log.file = None;
    }
    let mut check = Config::default();
    check.log = log.clone();
    match check.validate() {
        Ok(()) => (log, None),
        Err(err) => {
            // Where the value came from is lost on `check`, so only the value and fix are shown.
            let why = match err {
                crate::config::ConfigError::Invalid {
                    key, value, fix, ..
                } => format!("`{key}` = {value}: {fix}"),
                other => other.to_string(),
            };
            let fallback = crate::config::LogConfig {
                file: log.file,
                ..crate::config::LogConfig::default()
            };
            (
                fallback,
                Some(format!("{why}; logging at info as text instead")),
            )
        }
    }
}

impl Command {
    /// The configuration flags of every command that reads the configuration.
    fn config_args(&self) -> Option<&ConfigArgs> {
        match self {
            Command::Exec(_) => None,
            Command::Worker(a) => Some(&a.common),
            Command::Send(a) => Some(&a.common),
            Command::Result(a) => Some(&a.common),
            Command::Dlq(a) => Some(&a.common),
            Command::Purge(a) => Some(&a.common),
            Command::Beat(a) => Some(&a.common),
            Command::Plugin(a) => Some(&a.common),
            Command::Inspect(a) => Some(&a.fleet.common),
            Command::Control(a) => Some(&a.fleet.common),
        }
    }
}

/// The default compiled-component cache: `$XDG_CACHE_HOME/taskbox/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "taskbox").map(|d| d.cache_dir().join("components"))
}

fn parse_env(spec: &str) -> anyhow::Result<(String, String)> {
    match spec.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        Some(_) => anyhow::bail!("--env '{spec}': the variable name is empty"),
        None => match std::env::var(spec) {
            Ok(value) => Ok((spec.to_string(), value)),
            Err(_) => anyhow::bail!(
                "--env {spec}: no such variable in this environment; give a value with --env {spec}=VALUE"
            ),
        },
    }
}

async fn run_exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let request = ExecRequest {
        component: args.component,
        task: args.task,
        args: exec::read_json_arg("--args", &args.args)?,
        kwargs: exec::read_json_arg("--kwargs", &args.kwargs)?,
        limits: LimitsOverride {
            fuel: args.fuel,
            memory: args.memory,
            timeout: args.timeout,
            soft_timeout: args.soft_timeout,
            max_output: args.max_output,
            max_input: args.max_input,
            ..LimitsOverride::default()
        },
        dirs: args.dirs,
        env: args
            .env
            .iter()
            .map(|s| parse_env(s))
            .collect::<anyhow::Result<_>>()?,
        kv_file: args.kv_file,
        outbox: args.outbox,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.or_else(default_cache_dir)
        },
        keep_resident: args.keep_resident,
    };
    let result = match exec::run(request).await? {
        Ok(result) => result,
        Err(err) => return Ok(report_error(&err)),
    };
    for (to, subject) in &result.mail {
        eprintln!("mail: to {} subject {subject:?}", to.join(", "));
    }
    for (queue, task, id) in &result.enqueued {
        eprintln!("enqueued: {task} on {queue} as {id}");
    }
    let stats = &result.report.stats;
    tracing::debug!(
        task = %result.task,
        duration_ms = stats.duration.as_secs_f64() * 1000.0,
        fuel_used = stats.fuel_used,
        peak_memory = stats.peak_memory,
        "task finished"
    );
    match &result.report.outcome {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(output)?;
            stdout.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => Ok(report_error(err)),
    }
}

fn report_error(err: &crate::runtime::SandboxError) -> ExitCode {
    eprintln!("error: {}: {err}", err.kind());
    if let crate::runtime::SandboxError::Trap { backtrace, .. } = err
        && !backtrace.is_empty()
    {
        eprintln!("{backtrace}");
    }
    ExitCode::from(err.exit_code())
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.load(&[
        ("--queues", args.queues.clone()),
        ("--concurrency", args.concurrency.clone()),
        ("--autoscale", args.autoscale.clone()),
        ("--name", args.name.clone()),
        ("--dead-after", args.dead_after.clone()),
        ("--shutdown-grace", args.shutdown_grace.clone()),
        ("--http", args.http.clone()),
    ])?;
    // Checked before the worker starts, so a bad entry stops start-up.
    let beat = if args.beat {
        let entries = crate::beat::entries(&config)?;
        Some((std::sync::Arc::new(config.clone()), entries))
    } else {
        None
    };
    let shutdown = crate::shutdown::Shutdown::new();
    shutdown.listen_for_signals()?;
    let worker = crate::worker::Worker::start(config, shutdown.clone()).await?;
    let beat = beat.map(|(config, entries)| {
        let served = crate::beat::Served::Tasks(worker.shared().registry.current().task_names());
        tokio::spawn(crate::beat::run(config, entries, served, shutdown.clone()))
    });
    worker.run().await?;
    if let Some(beat) = beat {
        beat.await.map_err(|e| {
            anyhow::anyhow!("the embedded beat scheduler stopped abnormally: {e}")
        })??;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_beat(args: BeatArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.common.config()?;
    if let Some(file) = &args.schedule {
        config.add_schedule_file(file)?;
        config.validate()?;
    }
    let entries = crate::beat::entries(&config)?;
    match args.action {
        Some(BeatAction::List) => {
            print!("{}", crate::beat::list(&config, &entries).await?);
        }
        None => {
            let shutdown = crate::shutdown::Shutdown::new();
            shutdown.listen_for_signals()?;
            let served = crate::beat::Served::Builtins;
            crate::beat::run(std::sync::Arc::new(config), entries, served, shutdown).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl ConfigArgs {
    /// The validated configuration for a command that needs no extra flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        self.load(&[])
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn every_subcommand_parses_without_flag_conflicts() {
        // Clap checks names, shorts and globals of every subcommand here, not at run time.
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["taskbox", "-l", "debug", "inspect", "ping", "-d", "w@h"])
            .expect("parses");
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
        match cli.command {
            Command::Inspect(args) => assert_eq!(args.fleet.destination, ["w@h"]),
            other => panic!("parsed as {other:?}"),
        }
    }
}
