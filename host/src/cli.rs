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
use crate::telemetry::{self, LogFormat};

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
    /// Log filter, e.g. `info` or `taskbox=debug,warn`.
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
}

impl ConfigArgs {
    fn load(&self, extra: &[(&str, Option<String>)]) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), &|k| std::env::var(k).ok())?;
        let flags = [
            ("--broker", self.broker.clone()),
            ("--result-backend", self.result_backend.clone()),
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
}

/// Entry point of the binary: parses flags, runs the command, maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log_level, cli.log_format);
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
    ])?;
    let shutdown = crate::shutdown::Shutdown::new();
    shutdown.listen_for_signals()?;
    let worker = crate::worker::Worker::start(config, shutdown).await?;
    worker.run().await?;
    Ok(ExitCode::SUCCESS)
}

impl ConfigArgs {
    /// The validated configuration for a command that needs no extra flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        self.load(&[])
    }
}
