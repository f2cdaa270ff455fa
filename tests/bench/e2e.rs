//! `just bench`, end-to-end part: the release `taskbox worker` against a real Celery worker
//! (`examples/bench/celery_app.py`), side by side on one private `redis-server`, draining the
//! same Celery protocol v2 messages from the same queue.
//!
//! It measures, in one run:
//! - **throughput**: 20 000 no-op tasks LPUSHed (pipelined, encoded with
//!   `taskbox::broker::message::encode`) before the worker starts, then drained. Steady
//!   tasks/s = N / (done − first moment the queue got shorter); done = the four priority lists
//!   and `unacked` empty and, with results on, every `celery-task-meta-<id>` key present
//!   (checked with pipelined EXISTS only once drained, as the Celery baseline did). Results on
//!   and off (header `ignore_result: true`); taskbox at `-c 2/4/8`, Celery threads and prefork
//!   at `-c 2`. Worker and redis-server CPU time over the steady phase come from `/proc`.
//! - **round-trip latency**: 1000 sequential send-and-wait calls after 50 warm-ups, from a Rust
//!   client (SUBSCRIBE to the result key on a kept-open pub/sub connection, LPUSH, wait for the
//!   PUBLISH of a ready state, UNSUBSCRIBE after the timer stops) and from the Python Celery
//!   client (`examples/bench/latency.py`: `echo.apply_async(...).get()`), each against taskbox
//!   and against Celery. A floor row times the Rust client with no worker at all (it RPOPs and
//!   PUBLISHes itself): the Redis round trips any worker needs.
//! - **worker memory**: VmRSS (and Pss from `smaps_rollup`) summed over the worker and its
//!   children, idle (1 s after the worker said it was ready, before any task) and peak during
//!   the throughput runs (sampled every 20 ms).
//!
//! It builds nothing: `target/release/taskbox` (`just build`), the noop guest
//! (`just build-wasm`) and `target/celery-venv` (`just venv`) must exist. Every wait has a
//! timeout, and every process it starts runs in its own process group, which is stopped
//! (SIGTERM, then SIGKILL) when its handle drops. Writes a Markdown section to the path after
//! `--out` and prints it; other arguments (cargo's `--bench`) are ignored. Two quick modes
//! print one figure and write nothing: `--quick C` (throughput of `taskbox -c C`, results on
//! and off, with Redis command stats) and `--quick-latency` (the Rust client's round trips
//! against `taskbox -c 2`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use taskbox::broker::message::{NewTask, PRIORITY_STEPS, encode, queue_key};
use taskbox_tests::guests::guest_path;
use taskbox_tests::redis::RedisServer;

/// Tasks per throughput run.
const N: usize = 20_000;
/// The queue both workers consume.
const QUEUE: &str = "dataset";
/// Envelopes per pipelined round trip when enqueueing, and keys per EXISTS pipeline.
const CHUNK: usize = 1_000;
/// Latency: untimed calls first, then timed calls.
const LAT_WARMUP: usize = 50;
const LAT_CALLS: usize = 1_000;
/// taskbox throughput runs per row (they take about a second each); Celery rows run once.
const TASKBOX_REPS: usize = 3;
/// taskbox slot counts measured for throughput and idle memory.
const TASKBOX_SLOTS: [u32; 3] = [2, 4, 8];
/// How often the waiter polls queue depth, and how often memory is sampled.
const POLL: Duration = Duration::from_millis(5);
const SAMPLE: Duration = Duration::from_millis(20);
/// Bounds on every wait.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);
/// Idle memory is read this long after the worker reports ready.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// Targets stated in the section.
const TARGET_TASKS_PER_S: f64 = 30_000.0;
const TARGET_P50_MS: f64 = 0.5;
const TARGET_IDLE_RSS_MB: f64 = 30.0;

// ---------------------------------------------------------------------------------------------
// Workers and processes
// ---------------------------------------------------------------------------------------------

/// One worker configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Worker {
    Taskbox(u32),
    CeleryThreads,
    CeleryPrefork,
}

impl Worker {
    fn label(self) -> String {
        match self {
            Worker::Taskbox(c) => format!("taskbox -c {c}"),
            Worker::CeleryThreads => "Celery threads -c 2".into(),
            Worker::CeleryPrefork => "Celery prefork -c 2".into(),
        }
    }

    fn is_celery(self) -> bool {
        !matches!(self, Worker::Taskbox(_))
    }

    fn slug(self) -> String {
        match self {
            Worker::Taskbox(c) => format!("taskbox-c{c}"),
            Worker::CeleryThreads => "celery-threads-c2".into(),
            Worker::CeleryPrefork => "celery-prefork-c2".into(),
        }
    }
}

/// Paths to everything the bench runs, checked up front.
struct Env {
    taskbox: PathBuf,
    python: PathBuf,
    celery: PathBuf,
    app_dir: PathBuf,
    config: PathBuf,
    logs: PathBuf,
    celery_version: String,
}

impl Env {
    fn discover() -> Env {
        let target = taskbox_tests::target_dir();
        let target = std::fs::canonicalize(&target).unwrap_or(target);
        let taskbox = target.join("release").join("taskbox");
        assert!(
            taskbox.exists(),
            "{} is missing: run `just build` first (the bench measures the release binary and builds nothing itself)",
            taskbox.display()
        );
        let venv = target.join("celery-venv").join("bin");
        let (python, celery) = (venv.join("python"), venv.join("celery"));
        assert!(
            python.exists() && celery.exists(),
            "{} is missing: run `just venv` first (it installs Celery from PyPI)",
            venv.display()
        );
        let app_dir = workspace_root().join("examples").join("bench");
        assert!(
            app_dir.join("celery_app.py").exists() && app_dir.join("latency.py").exists(),
            "{} must hold celery_app.py and latency.py",
            app_dir.display()
        );
        let bench_dir = target.join("bench");
        let logs = bench_dir.join("e2e-logs");
        std::fs::create_dir_all(&logs).expect("create target/bench/e2e-logs");
        // Only the noop guest, with the capability it imports, and default worker settings.
        let config = bench_dir.join("e2e-taskbox.toml");
        let toml = format!(
            "[worker]\ncache_dir = {cache:?}\n\n[plugins.noop]\npath = {noop:?}\ncapabilities = [\"kv\"]\n",
            cache = bench_dir.join("e2e-component-cache").display().to_string(),
            noop = guest_path("taskbox_guest_noop").display().to_string(),
        );
        std::fs::write(&config, toml).expect("write the bench taskbox.toml");
        let version = Command::new(&python)
            .args([
                "-c",
                "import celery, kombu; print(celery.__version__, kombu.__version__)",
            ])
            .output()
            .expect("run the venv python");
        assert!(
            version.status.success(),
            "the Celery venv cannot import celery: {}",
            String::from_utf8_lossy(&version.stderr)
        );
        let text = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let mut parts = text.split_whitespace();
        let celery_version = format!(
            "Celery {} (kombu {})",
            parts.next().unwrap_or("?"),
            parts.next().unwrap_or("?")
        );
        Env {
            taskbox,
            python,
            celery,
            app_dir,
            config,
            logs,
            celery_version,
        }
    }
}

/// The workspace root (the parent of this package).
fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// A child process in its own process group, stopped when dropped.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
    name: String,
    launched: Instant,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create a log file");
        cmd.stdin(Stdio::null())
            .stderr(file.try_clone().expect("clone log file"))
            .stdout(file)
            .process_group(0);
        let launched = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        Proc {
            child: Some(child),
            log,
            name: name.to_string(),
            launched,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics with the log tail if the process has exited.
    fn check_alive(&mut self) {
        let child = self.child.as_mut().expect("process still owned");
        if let Some(status) = child.try_wait().expect("try_wait") {
            self.child = None;
            panic!(
                "{} exited unexpectedly ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
    }

    fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} within {timeout:?}; log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a clean exit within `timeout`; panics (after killing) otherwise.
    fn wait_success(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("process still owned");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                assert!(
                    status.success(),
                    "{} failed ({status}); log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
                return;
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "{} did not finish within {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM to the process group (warm shutdown), then SIGKILL if it is still there.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id();
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // The leader is gone; make sure no pool child outlives it.
                signal_group(pgid, "KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "{} ignored SIGTERM for {STOP_TIMEOUT:?}; killing it",
            self.name
        );
        signal_group(pgid, "KILL");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -<sig> -- -<pgid>` for a process group this bench created (no unsafe code).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Environment variables the worker would read as configuration; removed so the bench's own
/// flags are the whole configuration.
fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if ["CELERY_", "TASKBOX_", "BROKER_", "LOG_", "MAIL_", "SMTP_"]
            .iter()
            .any(|p| key.starts_with(p))
            || key == "IGNORE_RESULT"
        {
            cmd.env_remove(key);
        }
    }
}

fn start_worker(env: &Env, worker: Worker, url: &str, tag: &str) -> Proc {
    let log = env.logs.join(format!("{}-{tag}.log", worker.slug()));
    match worker {
        Worker::Taskbox(c) => {
            let mut cmd = Command::new(&env.taskbox);
            scrub(&mut cmd);
            cmd.arg("worker")
                .arg("--config")
                .arg(&env.config)
                .args(["--broker", url, "-Q", QUEUE, "-c", &c.to_string()])
                // "worker ready" is an info line of taskbox::worker; the executor's per-task
                // info line is silenced, matching Celery at --loglevel WARNING.
                .env(
                    "LOG_LEVEL",
                    "warn,taskbox::worker=info,taskbox::worker::executor=warn",
                );
            Proc::spawn(&worker.label(), cmd, log)
        }
        Worker::CeleryThreads | Worker::CeleryPrefork => {
            let pool = if worker == Worker::CeleryThreads {
                "threads"
            } else {
                "prefork"
            };
            let mut cmd = Command::new(&env.celery);
            scrub(&mut cmd);
            cmd.current_dir(&env.app_dir)
                .args(["-A", "celery_app", "worker", "-P", pool, "-c", "2"])
                .args(["-Q", QUEUE, "-n", "bench@%h", "--loglevel", "WARNING"])
                .env("BENCH_REDIS_URL", url);
            Proc::spawn(&worker.label(), cmd, log)
        }
    }
}

fn ready_line(worker: Worker) -> &'static str {
    if worker.is_celery() {
        "celery worker ready"
    } else {
        "worker ready"
    }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting
// ---------------------------------------------------------------------------------------------

/// `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is the state (field 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of one process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| {
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    })
}

fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn tree_cpu_ticks(pid: u32) -> u64 {
    process_tree(pid).into_iter().map(cpu_ticks).sum()
}

/// A `kB` field of a `/proc` key-value file (`VmRSS:` in status, `Pss:` in smaps_rollup).
fn kb_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Memory of a process tree: summed VmRSS and Pss (kB) and the process count.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kb: u64,
    pss_kb: u64,
    procs: usize,
}

impl Mem {
    fn of_tree(pid: u32) -> Mem {
        Mem::of_pids(&process_tree(pid))
    }

    fn of_pids(pids: &[u32]) -> Mem {
        Mem {
            rss_kb: pids
                .iter()
                .map(|p| kb_field(&format!("/proc/{p}/status"), "VmRSS:"))
                .sum(),
            pss_kb: pids
                .iter()
                .map(|p| kb_field(&format!("/proc/{p}/smaps_rollup"), "Pss:"))
                .sum(),
            procs: pids.len(),
        }
    }

    fn max(self, other: Mem) -> Mem {
        Mem {
            rss_kb: self.rss_kb.max(other.rss_kb),
            pss_kb: self.pss_kb.max(other.pss_kb),
            procs: self.procs.max(other.procs),
        }
    }
}

/// Samples a process tree's memory every [`SAMPLE`] until stopped; returns the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Mem>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = Mem::default();
            let mut pids = Vec::new();
            let mut n = 0u32;
            while !flag.load(Ordering::Relaxed) {
                // Walking /proc for the tree is the expensive part: refresh it every 0.5 s.
                if n.is_multiple_of(25) {
                    pids = process_tree(pid);
                }
                n += 1;
                peak = peak.max(Mem::of_pids(&pids));
                std::thread::sleep(SAMPLE);
            }
            peak.max(Mem::of_tree(pid))
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Mem {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("memory sampler")
    }
}

// ---------------------------------------------------------------------------------------------
// Redis helpers
// ---------------------------------------------------------------------------------------------

struct Broker {
    url: String,
    conn: redis::Connection,
    redis_pid: u32,
}

impl Broker {
    fn new(redis: &RedisServer) -> Broker {
        let url = redis.url();
        let mut conn = redis.conn();
        conn.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
        conn.set_write_timeout(Some(CALL_TIMEOUT)).unwrap();
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
        let redis_pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO server has process_id");
        Broker {
            url,
            conn,
            redis_pid,
        }
    }

    fn flush(&mut self) {
        redis::cmd("FLUSHDB").query::<()>(&mut self.conn).unwrap();
    }

    /// (messages waiting in the four priority lists, entries in `unacked`).
    fn depth(&mut self) -> (u64, u64) {
        let mut pipe = redis::pipe();
        for step in PRIORITY_STEPS {
            pipe.cmd("LLEN").arg(queue_key(QUEUE, step));
        }
        pipe.cmd("HLEN").arg("unacked");
        let v: Vec<u64> = pipe.query(&mut self.conn).unwrap();
        (v[..4].iter().sum(), v[4])
    }

    /// Drops from `ids` every id whose result key exists (pipelined EXISTS, [`CHUNK`] a trip).
    fn retain_missing_results(&mut self, ids: &mut Vec<String>) {
        let mut missing = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("EXISTS").arg(result_key(id));
            }
            let found: Vec<u8> = pipe.query(&mut self.conn).unwrap();
            missing.extend(
                chunk
                    .iter()
                    .zip(found)
                    .filter(|(_, f)| *f == 0)
                    .map(|(id, _)| id.clone()),
            );
        }
        *ids = missing;
    }

    fn result_status(&mut self, id: &str) -> Option<Value> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(result_key(id))
            .query(&mut self.conn)
            .unwrap();
        raw.map(|r| serde_json::from_str(&r).expect("result meta is JSON"))
    }

    fn dead_letters(&mut self) -> u64 {
        redis::cmd("LLEN")
            .arg("taskbox:dead_letter")
            .query(&mut self.conn)
            .unwrap()
    }
}

fn result_key(id: &str) -> String {
    format!("celery-task-meta-{id}")
}

fn envelope(task: &str, args: Vec<Value>, results: bool) -> (String, String, String) {
    let mut t = NewTask::new(task, QUEUE);
    t.args = args;
    t.ignore_result = Some(!results);
    t.origin = "bench@localhost".into();
    let (key, body) = encode(&t);
    (key, body, t.id)
}

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Throughput {
    encode: Duration,
    push: Duration,
    startup: Duration,
    steady: Duration,
    total: Duration,
    worker_cpu_s: f64,
    redis_cpu_s: f64,
    peak: Mem,
}

impl Throughput {
    fn steady_rate(&self) -> f64 {
        N as f64 / self.steady.as_secs_f64()
    }
    fn total_rate(&self) -> f64 {
        N as f64 / self.total.as_secs_f64()
    }
}

fn throughput(
    env: &Env,
    broker: &mut Broker,
    worker: Worker,
    results: bool,
    run: usize,
) -> Throughput {
    let tick = clock_ticks_per_s();
    broker.flush();

    // Enqueue N envelopes before the worker starts.
    let t = Instant::now();
    let msgs: Vec<(String, String, String)> = (0..N)
        .map(|_| envelope("noop", Vec::new(), results))
        .collect();
    let encode_time = t.elapsed();
    let t = Instant::now();
    for chunk in msgs.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for (key, body, _) in chunk {
            pipe.cmd("LPUSH").arg(key).arg(body).ignore();
        }
        pipe.query::<()>(&mut broker.conn).unwrap();
    }
    let push_time = t.elapsed();
    let probes: Vec<String> = [0, N / 2, N - 1]
        .iter()
        .map(|i| msgs[*i].2.clone())
        .collect();
    let mut missing: Vec<String> = if results {
        msgs.into_iter().map(|(_, _, id)| id).collect()
    } else {
        Vec::new()
    };
    assert_eq!(broker.depth(), (N as u64, 0), "queue holds the {N} tasks");

    let tag = format!("{}-{run}", if results { "results" } else { "noresults" });
    let mut proc = start_worker(env, worker, &broker.url.clone(), &tag);
    let pid = proc.pid();
    let sampler = Sampler::start(pid);
    let launched = proc.launched;
    let deadline = launched + DRAIN_TIMEOUT;
    let mut first: Option<(Instant, u64, u64)> = None;
    let done = loop {
        proc.check_alive();
        let (queued, unacked) = broker.depth();
        let seen = Instant::now();
        if first.is_none() && queued < N as u64 {
            first = Some((seen, tree_cpu_ticks(pid), cpu_ticks(broker.redis_pid)));
        }
        if queued == 0 && unacked == 0 {
            // With results on, the run is done once every result key exists. taskbox stores
            // results in the same atomic script that acks, so they exist when `unacked` empties;
            // Celery acks before running, so the last few may still be missing: poll again.
            broker.retain_missing_results(&mut missing);
            if missing.is_empty() {
                break seen;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: not drained within {DRAIN_TIMEOUT:?} (queued {queued}, unacked {unacked}, {} results missing); log {}:\n{}",
            worker.label(),
            missing.len(),
            proc.log.display(),
            proc.log_tail()
        );
        std::thread::sleep(POLL);
    };
    let worker_cpu_end = tree_cpu_ticks(pid);
    let redis_cpu_end = cpu_ticks(broker.redis_pid);
    let (first_at, worker_cpu_first, redis_cpu_first) = first.expect("the queue got shorter");
    let peak = sampler.finish();
    proc.stop();

    // Sanity: the tasks ran and succeeded.
    for id in &probes {
        match broker.result_status(id) {
            Some(meta) => assert_eq!(
                meta["status"],
                "SUCCESS",
                "{}: task {id}: {meta}",
                worker.label()
            ),
            None => assert!(!results, "{}: no result for task {id}", worker.label()),
        }
    }
    if !worker.is_celery() {
        assert_eq!(broker.dead_letters(), 0, "taskbox dead-lettered tasks");
    }

    Throughput {
        encode: encode_time,
        push: push_time,
        startup: first_at - launched,
        steady: done - first_at,
        total: done - launched,
        worker_cpu_s: worker_cpu_end.saturating_sub(worker_cpu_first) as f64 / tick,
        redis_cpu_s: redis_cpu_end.saturating_sub(redis_cpu_first) as f64 / tick,
        peak,
    }
}

// ---------------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------------

/// The Rust client: SUBSCRIBE to the result key, LPUSH the message, wait for the PUBLISH of a
/// ready state. The timer covers encode, SUBSCRIBE (acknowledged), LPUSH and the wait;
/// UNSUBSCRIBE follows after the timer stops. Both connections stay open across calls.
///
/// With `floor`, no worker runs: the client itself RPOPs the message and PUBLISHes a SUCCESS
/// result, i.e. the Redis round trips of the cheapest possible worker (one fetch, one finish)
/// without any worker process.
fn latency_rust(broker: &mut Broker, floor: bool) -> Vec<Duration> {
    let client = redis::Client::open(broker.url.as_str()).unwrap();
    let mut sub_conn = client.get_connection().unwrap();
    sub_conn.set_write_timeout(Some(CALL_TIMEOUT)).unwrap();
    let mut pubsub = sub_conn.as_pubsub();
    pubsub.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    let mut samples = Vec::with_capacity(LAT_CALLS);
    for i in 0..LAT_WARMUP + LAT_CALLS {
        let start = Instant::now();
        let (key, body, id) = envelope("echo", vec![Value::from(i)], true);
        let channel = result_key(&id);
        pubsub.subscribe(&channel).unwrap();
        redis::cmd("LPUSH")
            .arg(&key)
            .arg(&body)
            .query::<()>(&mut broker.conn)
            .unwrap();
        if floor {
            let _: Option<String> = redis::cmd("RPOP")
                .arg(&key)
                .query(&mut broker.conn)
                .unwrap();
            let meta = serde_json::json!({"status": "SUCCESS", "result": i, "task_id": id});
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(meta.to_string())
                .query::<()>(&mut broker.conn)
                .unwrap();
        }
        let meta: Value = loop {
            let msg = pubsub
                .get_message()
                .unwrap_or_else(|e| panic!("no result for echo({i}) within {CALL_TIMEOUT:?}: {e}"));
            if msg.get_channel_name() != channel {
                continue;
            }
            let payload: String = msg.get_payload().unwrap();
            let meta: Value = serde_json::from_str(&payload).unwrap();
            if matches!(
                meta["status"].as_str(),
                Some("SUCCESS" | "FAILURE" | "REVOKED")
            ) {
                break meta;
            }
        };
        let elapsed = start.elapsed();
        pubsub.unsubscribe(&channel).unwrap();
        assert_eq!(meta["status"], "SUCCESS", "echo({i}) failed: {meta}");
        assert_eq!(meta["result"], Value::from(i), "echo({i}) returned {meta}");
        if i >= LAT_WARMUP {
            samples.push(elapsed);
        }
    }
    samples
}

/// The Python Celery client (`examples/bench/latency.py`).
fn latency_python(env: &Env, broker: &Broker, worker: Worker) -> Vec<Duration> {
    let out = env.logs.join(format!("latency-py-{}.json", worker.slug()));
    let mut cmd = Command::new(&env.python);
    scrub(&mut cmd);
    cmd.current_dir(&env.app_dir)
        .arg("latency.py")
        .args(["--calls", &LAT_CALLS.to_string()])
        .args(["--warmup", &LAT_WARMUP.to_string()])
        .args(["--queue", QUEUE])
        .env("BENCH_REDIS_URL", &broker.url);
    let mut proc = Proc::spawn("python latency client", cmd, out.clone());
    proc.wait_success(CLIENT_TIMEOUT);
    let text = std::fs::read_to_string(&out).unwrap();
    let json_line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("latency.py printed no JSON:\n{text}"));
    let v: Value = serde_json::from_str(json_line).unwrap();
    let samples: Vec<Duration> = v["ms"]
        .as_array()
        .expect("ms array")
        .iter()
        .map(|ms| Duration::from_secs_f64(ms.as_f64().expect("number") / 1000.0))
        .collect();
    assert_eq!(samples.len(), LAT_CALLS, "latency.py timed every call");
    samples
}

#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// Nearest-rank percentiles in milliseconds.
fn percentiles(samples: &[Duration]) -> Percentiles {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Percentiles {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: ms[ms.len() - 1],
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn median_by<T: Clone>(runs: &[T], key: impl Fn(&T) -> f64) -> T {
    let mut sorted: Vec<T> = runs.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2].clone()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // cargo runs benches in the package directory; a relative --out is meant from the
    // workspace root, where `just bench` and the documented command run.
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        });

    let env = Env::discover();
    let redis = RedisServer::start();
    let mut broker = Broker::new(&redis);
    let redis_version: String = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut broker.conn)
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    // `--quick C`: one results-on throughput run of `taskbox -c C` and nothing else, printed
    // and not written anywhere; the loop for working on the worker's hot path (attach
    // `perf record -p` to the worker it starts).
    if let Some(c) = args
        .iter()
        .position(|a| a == "--quick")
        .and_then(|i| args.get(i + 1))
        .and_then(|c| c.parse::<u32>().ok())
    {
        for results in [true, false] {
            redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query::<()>(&mut broker.conn)
                .unwrap();
            let r = throughput(&env, &mut broker, Worker::Taskbox(c), results, 0);
            let stats: String = redis::cmd("INFO")
                .arg("commandstats")
                .query(&mut broker.conn)
                .unwrap();
            for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
                println!("  {line}");
            }
            println!(
                "taskbox -c {c} results {}: {:.0} tasks/s steady, worker {:.0} µs/task, redis {:.0} µs/task",
                if results { "on" } else { "off" },
                r.steady_rate(),
                r.worker_cpu_s * 1e6 / N as f64,
                r.redis_cpu_s * 1e6 / N as f64
            );
        }
        return;
    }
    // `--quick-latency`: the Rust client's round trips against `taskbox -c 2` only, started
    // and settled as in the full run, printed; the loop for working on the worker's latency.
    if args.iter().any(|a| a == "--quick-latency") {
        broker.flush();
        let mut w = start_worker(&env, Worker::Taskbox(2), &broker.url, "quick-latency");
        w.wait_for_log(ready_line(Worker::Taskbox(2)), READY_TIMEOUT);
        std::thread::sleep(IDLE_SETTLE);
        let p = percentiles(&latency_rust(&mut broker, false));
        w.stop();
        println!(
            "taskbox -c 2 round trip: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
            p.p50, p.p90, p.p99
        );
        return;
    }
    let celery_workers = [Worker::CeleryThreads, Worker::CeleryPrefork];
    let taskbox_workers: Vec<Worker> = TASKBOX_SLOTS.iter().map(|c| Worker::Taskbox(*c)).collect();

    // Prime the compiled-component cache, so no later start pays for Cranelift.
    eprintln!("e2e: priming the component cache");
    {
        broker.flush();
        let mut w = start_worker(&env, Worker::Taskbox(2), &broker.url, "prime");
        w.wait_for_log(ready_line(Worker::Taskbox(2)), READY_TIMEOUT);
        w.stop();
    }

    // Phase 1: idle memory for every configuration, and latency at -c 2.
    let mut idle: HashMap<Worker, Mem> = HashMap::new();
    let mut latency: Vec<(String, Option<Worker>, Percentiles)> = Vec::new();
    eprintln!("e2e: latency floor, no worker");
    broker.flush();
    let floor = latency_rust(&mut broker, true);
    latency.push(("Rust client".into(), None, percentiles(&floor)));
    for worker in taskbox_workers.iter().copied().chain(celery_workers) {
        eprintln!("e2e: idle memory and latency, {}", worker.label());
        broker.flush();
        let mut w = start_worker(&env, worker, &broker.url, "idle-latency");
        w.wait_for_log(ready_line(worker), READY_TIMEOUT);
        std::thread::sleep(IDLE_SETTLE);
        w.check_alive();
        idle.insert(worker, Mem::of_tree(w.pid()));
        if matches!(worker, Worker::Taskbox(2)) || worker.is_celery() {
            let rust = latency_rust(&mut broker, false);
            latency.push(("Rust client".into(), Some(worker), percentiles(&rust)));
            let py = latency_python(&env, &broker, worker);
            latency.push((
                "Python Celery client".into(),
                Some(worker),
                percentiles(&py),
            ));
        }
        w.check_alive();
        w.stop();
    }

    // Phase 2: throughput, results on then off.
    let mut tput: Vec<(Worker, bool, Vec<Throughput>)> = Vec::new();
    for results in [true, false] {
        for worker in celery_workers
            .iter()
            .copied()
            .chain(taskbox_workers.iter().copied())
        {
            let reps = if worker.is_celery() { 1 } else { TASKBOX_REPS };
            let mut runs = Vec::new();
            for run in 0..reps {
                eprintln!(
                    "e2e: throughput, {}, results {}, run {}",
                    worker.label(),
                    if results { "on" } else { "off" },
                    run + 1
                );
                let r = throughput(&env, &mut broker, worker, results, run);
                eprintln!(
                    "e2e:   {:.0} tasks/s steady, startup {:.2} s, peak RSS {:.1} MB",
                    r.steady_rate(),
                    r.startup.as_secs_f64(),
                    mb(r.peak.rss_kb)
                );
                runs.push(r);
            }
            tput.push((worker, results, runs));
        }
    }

    let md = report(&env, &redis_version, &idle, &latency, &tput);
    println!("{md}");
    if let Some(path) = out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, md).unwrap();
        eprintln!("e2e: wrote {}", path.display());
    }
}

fn report(
    env: &Env,
    redis_version: &str,
    idle: &HashMap<Worker, Mem>,
    latency: &[(String, Option<Worker>, Percentiles)],
    tput: &[(Worker, bool, Vec<Throughput>)],
) -> String {
    let mut md = String::new();
    let steady = |w: Worker, results: bool| -> Option<Throughput> {
        tput.iter()
            .find(|(tw, tr, _)| *tw == w && *tr == results)
            .map(|(_, _, runs)| median_by(runs, Throughput::steady_rate))
    };
    let best_celery = |results: bool| -> (Worker, f64) {
        [Worker::CeleryThreads, Worker::CeleryPrefork]
            .into_iter()
            .filter_map(|w| steady(w, results).map(|r| (w, r.steady_rate())))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("celery throughput rows")
    };

    md.push_str("## End to end: taskbox worker vs Celery worker on one Redis\n\n");
    let _ = writeln!(
        md,
        "The release `taskbox worker` (noop guest, default worker settings) and {} (`examples/bench/celery_app.py`, default settings, `--loglevel WARNING`) take turns on one private redis-server {redis_version} on loopback, draining identical Celery protocol v2 messages from queue `{QUEUE}`. The bench process (waiter, memory sampler, clients) shares the same cores. Ratios are taskbox ÷ Celery against the best Celery configuration of the row's kind, named in the cell.\n",
        env.celery_version
    );

    // Throughput.
    let _ = writeln!(
        md,
        "### Throughput: {N} no-op tasks queued before the worker starts (target ≥ {TARGET_TASKS_PER_S:.0} tasks/s with results on)\n"
    );
    let _ = writeln!(
        md,
        "Steady tasks/s = N ÷ (done − first moment the queue got shorter); done = queue and `unacked` empty and, with results on, every `celery-task-meta-<id>` key present (EXISTS, pipelined, checked once drained). Queue polled every {} ms. \"incl. startup\" counts from the worker's launch. CPU is user+system over the steady phase. taskbox rows: median of {TASKBOX_REPS} runs (range in brackets); Celery rows: one run.\n",
        POLL.as_millis()
    );
    md.push_str("| worker | results | steady tasks/s | incl. startup | startup (s) | worker CPU µs/task | redis CPU µs/task | peak RSS (MB) | peak PSS (MB) | taskbox/Celery |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let mut best_on_taskbox = 0.0f64;
    for (worker, results, runs) in tput {
        let m = median_by(runs, Throughput::steady_rate);
        let rate = if runs.len() > 1 {
            let lo = runs
                .iter()
                .map(Throughput::steady_rate)
                .fold(f64::MAX, f64::min);
            let hi = runs.iter().map(Throughput::steady_rate).fold(0.0, f64::max);
            format!("**{:.0}** ({lo:.0}–{hi:.0})", m.steady_rate())
        } else {
            format!("**{:.0}**", m.steady_rate())
        };
        let (cw, crate_) = best_celery(*results);
        let ratio = if worker.is_celery() {
            if *worker == cw {
                "best Celery".to_string()
            } else {
                "—".to_string()
            }
        } else {
            format!("**{:.1}×** vs {}", m.steady_rate() / crate_, cw.label())
        };
        if *results && !worker.is_celery() {
            best_on_taskbox = best_on_taskbox.max(m.steady_rate());
        }
        let _ = writeln!(
            md,
            "| {} | {} | {rate} | {:.0} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {ratio} |",
            worker.label(),
            if *results { "on" } else { "off" },
            m.total_rate(),
            m.startup.as_secs_f64(),
            m.worker_cpu_s * 1e6 / N as f64,
            m.redis_cpu_s * 1e6 / N as f64,
            mb(m.peak.rss_kb),
            mb(m.peak.pss_kb),
        );
    }
    let all: Vec<&Throughput> = tput.iter().flat_map(|(_, _, r)| r).collect();
    let enc = median_by(
        &all.iter()
            .map(|r| r.encode.as_secs_f64())
            .collect::<Vec<_>>(),
        |v| *v,
    );
    let push = median_by(
        &all.iter().map(|r| r.push.as_secs_f64()).collect::<Vec<_>>(),
        |v| *v,
    );
    let _ = writeln!(
        md,
        "\nEnqueue (median over all {} runs): encoding {N} envelopes with `taskbox::broker::message::encode` takes {:.0} ms, LPUSHing them ({CHUNK} per pipelined round trip) {:.0} ms, {:.0} msg/s end to end. The baseline's Python `apply_async` loop managed ≈ 2 700 msg/s.",
        all.len(),
        enc * 1e3,
        push * 1e3,
        N as f64 / (enc + push)
    );
    if best_on_taskbox < TARGET_TASKS_PER_S {
        let _ = writeln!(
            md,
            "\n**Target missed:** the best taskbox run with results on reached {best_on_taskbox:.0} tasks/s, below {TARGET_TASKS_PER_S:.0}."
        );
    }

    // Latency.
    let _ = writeln!(
        md,
        "\n### Round-trip latency: {LAT_CALLS} sequential calls after {LAT_WARMUP} warm-up, one client, `-c 2` workers (target p50 < {TARGET_P50_MS} ms)\n"
    );
    md.push_str("Rust client: SUBSCRIBE `celery-task-meta-<id>` (acknowledged) on a pub/sub connection kept open across calls, LPUSH an `echo(i)` envelope, wait for the PUBLISH of a ready state; the timer stops there and UNSUBSCRIBE follows. Python client: `echo.apply_async((i,), queue=...).get()` from `examples/bench/latency.py` (Celery's own subscribe-on-send result consumer), the same client against both workers. The floor row runs the Rust client with no worker: it RPOPs and PUBLISHes the result itself, i.e. the Redis round trips of one fetch and one finish. Nearest-rank percentiles, ms.\n\n");
    md.push_str("| client | worker | p50 | p90 | p99 | max | mean | p50 taskbox/Celery |\n|---|---|---|---|---|---|---|---|\n");
    let mut taskbox_p50 = f64::MAX;
    let mut sorted: Vec<&(String, Option<Worker>, Percentiles)> = latency.iter().collect();
    sorted.sort_by_key(|(c, w, _)| (c.starts_with("Python"), w.is_some_and(Worker::is_celery)));
    for (client, worker, p) in sorted {
        let ratio = match worker {
            Some(w) if !w.is_celery() => {
                taskbox_p50 = taskbox_p50.min(p.p50);
                let best = latency
                    .iter()
                    .filter(|(c, w, _)| c == client && w.is_some_and(Worker::is_celery))
                    .min_by(|a, b| a.2.p50.total_cmp(&b.2.p50));
                match best {
                    Some((_, Some(w), b)) => format!("**{:.2}** vs {}", p.p50 / b.p50, w.label()),
                    _ => "—".into(),
                }
            }
            _ => "—".to_string(),
        };
        let name = worker.map_or_else(
            || "none: the client RPOPs and PUBLISHes itself (Redis floor)".to_string(),
            Worker::label,
        );
        let _ = writeln!(
            md,
            "| {client} | {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {ratio} |",
            p.p50, p.p90, p.p99, p.max, p.mean
        );
    }
    if taskbox_p50 >= TARGET_P50_MS {
        let _ = writeln!(
            md,
            "\n**Target missed:** the best taskbox p50 is {taskbox_p50:.3} ms, not below {TARGET_P50_MS} ms."
        );
    }

    // Memory.
    let _ = writeln!(
        md,
        "\n### Worker memory (target idle RSS < {TARGET_IDLE_RSS_MB:.0} MB)\n"
    );
    let _ = writeln!(
        md,
        "Summed over the worker process and its children: idle = {} s after the worker reported ready, before any task; peak = highest sample (every {} ms) during its throughput runs, results on or off. Prefork's RSS sum double-counts pages shared between parent and children; compare PSS.\n",
        IDLE_SETTLE.as_secs(),
        SAMPLE.as_millis()
    );
    md.push_str("| worker | procs | idle RSS (MB) | idle PSS (MB) | peak RSS (MB) | peak PSS (MB) | idle PSS taskbox/Celery |\n|---|---|---|---|---|---|---|\n");
    let peak = |w: Worker| -> Mem {
        tput.iter()
            .filter(|(tw, _, _)| *tw == w)
            .flat_map(|(_, _, runs)| runs.iter().map(|r| r.peak))
            .fold(Mem::default(), Mem::max)
    };
    let best_idle = [Worker::CeleryThreads, Worker::CeleryPrefork]
        .into_iter()
        .filter_map(|w| idle.get(&w).map(|m| (w, *m)))
        .min_by_key(|(_, m)| m.pss_kb)
        .expect("celery idle rows");
    let mut worst_taskbox_idle = 0.0f64;
    let order: Vec<Worker> = TASKBOX_SLOTS
        .iter()
        .map(|c| Worker::Taskbox(*c))
        .chain([Worker::CeleryThreads, Worker::CeleryPrefork])
        .collect();
    for w in order {
        let Some(i) = idle.get(&w) else { continue };
        let p = peak(w);
        let ratio = if w.is_celery() {
            "—".to_string()
        } else {
            worst_taskbox_idle = worst_taskbox_idle.max(mb(i.rss_kb));
            format!(
                "**{:.2}** vs {}",
                i.pss_kb as f64 / best_idle.1.pss_kb as f64,
                best_idle.0.label()
            )
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {ratio} |",
            w.label(),
            i.procs.max(p.procs),
            mb(i.rss_kb),
            mb(i.pss_kb),
            mb(p.rss_kb),
            mb(p.pss_kb)
        );
    }
    if worst_taskbox_idle >= TARGET_IDLE_RSS_MB {
        let _ = writeln!(
            md,
            "\n**Target missed:** taskbox idle RSS reaches {worst_taskbox_idle:.1} MB, not below {TARGET_IDLE_RSS_MB:.0} MB."
        );
    }
    let _ = writeln!(md, "\nWorker logs of this run: `target/bench/e2e-logs/`.");
    md
}
