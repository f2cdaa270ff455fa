//! Running the real `taskbox worker` binary against a test Redis: configuration written to a
//! temp dir (the test guests as plugins, short heartbeats), logs captured to a file, and
//! signals (SIGTERM, SIGKILL) delivered the way an operator or the OOM killer would.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::guests::guest_path;
use crate::redis::RedisServer;

/// A `taskbox.toml` for tests: the hostile and noop guests as plugins with every capability,
/// a shared compiled-component cache, fast heartbeats, unknown tasks dead-lettered at once,
/// and `extra` appended verbatim.
pub fn test_config(dir: &Path, extra: &str) -> PathBuf {
    let cache = crate::target_dir().join("test-component-cache");
    let toml = format!(
        r#"
[worker]
heartbeat_interval = "300ms"
dead_after = "2s"
delayed_poll = "20ms"
shutdown_grace = "10s"
cache_dir = "{cache}"
# No other worker will ever serve an unknown task here: dead-letter it at once.
unregistered_timeout = "0s"

[plugins.hostile]
path = "{hostile}"
capabilities = ["log", "progress", "kv", "mail", "queue"]
queues = ["*"]

[plugins.noop]
path = "{noop}"
capabilities = ["kv"]

{extra}
"#,
        cache = cache.display(),
        hostile = guest_path("taskbox_guest_hostile").display(),
        noop = guest_path("taskbox_guest_noop").display(),
    );
    let path = dir.join("taskbox.toml");
    let mut f = std::fs::File::create(&path).expect("write taskbox.toml");
    f.write_all(toml.as_bytes()).expect("write taskbox.toml");
    path
}

/// A worker process.
pub struct WorkerProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `taskbox worker` with `config` against `redis`, plus `args`, and waits until it
    /// reports ready.
    pub fn start(redis: &RedisServer, config: &Path, args: &[&str]) -> WorkerProcess {
        let log = config.with_file_name(format!("worker-{}.log", uuid_suffix()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(crate::taskbox_bin())
            .arg("worker")
            .arg("--config")
            .arg(config)
            .arg("--broker")
            .arg(redis.url())
            .args(args)
            .env("LOG_LEVEL", "info,taskbox=debug")
            .env_remove("CELERY_BROKER_URL")
            // Logs may go to either stream (worker logs default to stdout); keep both.
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn taskbox worker");
        let worker = WorkerProcess {
            child: Some(child),
            log,
        };
        worker.wait_for_log("worker ready", Duration::from_secs(60));
        worker
    }

    /// The worker's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log on timeout or early exit.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker log never showed {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends SIGTERM (warm shutdown).
    pub fn sigterm(&self) {
        // SAFETY-free: kill(2) on our own child's pid.
        unsafe_free_kill(self.pid(), libc::SIGTERM);
    }

    /// Kills the worker with SIGKILL and reaps it.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("worker still owned");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit in time:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

fn unsafe_free_kill(pid: i32, signal: i32) {
    // `kill` through the command line keeps the test crate free of unsafe code.
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

fn uuid_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
