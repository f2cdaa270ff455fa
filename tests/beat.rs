//! `taskbox beat` end to end: real `taskbox beat` processes against a private Redis, with the
//! messages they enqueue read back and decoded by the worker's own decoder.
//!
//! Three replicas must enqueue every occurrence exactly once, also when the leader is killed
//! with SIGKILL; with every replica down across several occurrences, each missed-occurrence
//! policy must do what it says; `taskbox beat list` must show the state; `taskbox worker
//! --beat` must schedule too and release the lease on SIGTERM.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use redis::Commands as _;
use taskbox::broker::message;
use taskbox_tests::redis::RedisServer;

/// The queue the test entry sends to; nothing consumes it.
const QUEUE: &str = "beat_test";

/// A `taskbox.toml` with fast beat timings, Dify's default entries off, and one entry `pulse`
/// sending `retention.sweep` every second with the given missed-occurrence policy.
fn beat_config(dir: &Path, missed: &str, lease: &str, tick: &str) -> PathBuf {
    let cache = taskbox_tests::target_dir().join("test-component-cache");
    let text = format!(
        r#"
[worker]
cache_dir = "{cache}"
heartbeat_interval = "300ms"
dead_after = "2s"

[beat]
tick = "{tick}"
lease = "{lease}"

[beat.defaults]
check_upgradable_plugin = false
workflow_schedule_poller = false

[beat.schedule.pulse]
task = "retention.sweep"
queue = "{QUEUE}"
every = "1s"
kwargs = {{ dry_run = true }}
missed = "{missed}"
"#,
        cache = cache.display(),
    );
    let path = dir.join("taskbox.toml");
    let mut f = std::fs::File::create(&path).expect("write taskbox.toml");
    f.write_all(text.as_bytes()).expect("write taskbox.toml");
    path
}

/// Dify's switches that could turn default entries on from the test's environment.
const SWITCHES: [&str; 4] = [
    "ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK",
    "ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK",
    "ENABLE_DATASETS_QUEUE_MONITOR",
    "CELERY_BROKER_URL",
];

/// A running `taskbox` process (beat or worker) with its log in a file.
struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(redis: &RedisServer, config: &Path, args: &[&str], ready: &str) -> Process {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let log =
            config.with_file_name(format!("taskbox-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(taskbox_tests::taskbox_bin());
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .arg("--broker")
            .arg(redis.url())
            .env("LOG_LEVEL", "info,taskbox=debug")
            // `beat` and `worker` log to stdout; errors before logging starts go to stderr.
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for name in SWITCHES {
            cmd.env_remove(name);
        }
        let process = Process {
            child: Some(cmd.spawn().expect("spawn taskbox")),
            log,
        };
        process.wait_for_log(ready, Duration::from_secs(60));
        process
    }

    fn beat(redis: &RedisServer, config: &Path) -> Process {
        Process::spawn(redis, config, &["beat"], "beat ready")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `kill` from the command line keeps this crate free of unsafe code.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                assert!(status.success(), "exit {status}:\n{}", self.logs());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// One enqueued message of the test entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Fired {
    /// The occurrence, as whole seconds since the epoch.
    at: i64,
    catch_up: bool,
}

/// Every message on the test queue, decoded with the worker's decoder, oldest first.
fn fired(redis: &RedisServer) -> Vec<Fired> {
    let raw: Vec<Vec<u8>> = redis.conn().lrange(QUEUE, 0, -1).expect("LRANGE");
    let mut out: Vec<Fired> = raw
        .iter()
        .rev()
        .map(|raw| {
            let msg = message::decode(raw).expect("beat messages decode");
            assert_eq!(msg.task, "retention.sweep");
            assert!(msg.args.is_empty());
            assert_eq!(
                msg.kwargs.get("dry_run"),
                Some(&serde_json::Value::Bool(true))
            );
            assert_eq!(msg.routing_key, QUEUE);
            assert_eq!(msg.headers["taskbox_beat_entry"], "pulse");
            let at = msg.headers["taskbox_beat_occurrence"]
                .as_str()
                .and_then(message::parse_timestamp)
                .expect("occurrence header");
            Fired {
                at: at.as_second(),
                catch_up: msg.headers["taskbox_beat_catch_up"] == true,
            }
        })
        .collect();
    out.sort();
    out
}

/// Occurrence instants that were enqueued more than once.
fn duplicates(fired: &[Fired]) -> Vec<i64> {
    let mut seen = BTreeMap::new();
    for f in fired {
        *seen.entry(f.at).or_insert(0) += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(at, _)| at)
        .collect()
}

/// Seconds between `from` and `to` (exclusive) with no message.
fn gaps(fired: &[Fired], from: i64, to: i64) -> Vec<i64> {
    (from + 1..to)
        .filter(|s| !fired.iter().any(|f| f.at == *s))
        .collect()
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The pid inside the lease holder id `<host>:<pid>:<nonce>`, and the fencing token.
fn lease_holder(redis: &RedisServer) -> Option<(u64, u32)> {
    let value: Option<String> = redis.conn().get("taskbox:beat:lease").expect("GET lease");
    let value = value?;
    let (token, holder) = value.split_once(':')?;
    let mut parts = holder.rsplitn(3, ':');
    let _nonce = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    Some((token.parse().ok()?, pid))
}

fn wait_for_leader(redis: &RedisServer, timeout: Duration) -> (u64, u32) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(holder) = lease_holder(redis) {
            return holder;
        }
        assert!(Instant::now() < deadline, "no replica took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_replicas_enqueue_each_occurrence_once_even_when_the_leader_is_killed() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = beat_config(dir.path(), "all", "2s", "200ms");
    let mut replicas: Vec<Process> = (0..3).map(|_| Process::beat(&redis, &config)).collect();
    let started = now_secs();
    let (token, leader_pid) = wait_for_leader(&redis, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(6));

    let before = fired(&redis);
    assert!(before.len() >= 4, "about one per second: {before:?}");
    assert_eq!(duplicates(&before), Vec::<i64>::new(), "{before:?}");
    let leading: Vec<usize> = (0..3)
        .filter(|i| replicas[*i].logs().contains("beat leading"))
        .collect();
    assert_eq!(leading.len(), 1, "exactly one replica leads");

    // Kill the leader outright: no lease release, no goodbye.
    let victim = replicas
        .iter()
        .position(|p| p.pid() == leader_pid)
        .expect("the lease names one of the replicas");
    let killed_at = now_secs();
    replicas[victim].sigkill();
    // Another replica takes over within the lease time (2s) plus a tick.
    let deadline = Instant::now() + Duration::from_secs(4);
    let (new_token, new_pid) = loop {
        if let Some((t, pid)) = lease_holder(&redis)
            && pid != leader_pid
        {
            break (t, pid);
        }
        assert!(
            Instant::now() < deadline,
            "no takeover within the lease time"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        new_token > token,
        "a takeover hands out a newer fencing token"
    );
    assert_ne!(new_pid, leader_pid);
    std::thread::sleep(Duration::from_secs(5));
    for (i, p) in replicas.iter_mut().enumerate() {
        if i != victim {
            p.stop();
        }
    }
    let stopped = now_secs();

    let all = fired(&redis);
    assert_eq!(
        duplicates(&all),
        Vec::<i64>::new(),
        "no occurrence twice: {all:?}"
    );
    let first = all.first().unwrap().at;
    let last = all.last().unwrap().at;
    assert!(first >= started - 1 && last <= stopped, "{all:?}");
    assert_eq!(
        gaps(&all, first, last),
        Vec::<i64>::new(),
        "every occurrence from {first} to {last} once, across the failover: {all:?}"
    );
    assert!(
        last >= killed_at + 4,
        "occurrences kept coming after the leader died: {all:?}"
    );
    assert_eq!(
        lease_holder(&redis),
        None,
        "the last leader released the lease on SIGTERM"
    );
    let bindings: Vec<String> = redis
        .conn()
        .smembers(format!("_kombu.binding.{QUEUE}"))
        .unwrap();
    assert_eq!(bindings, [format!("{QUEUE}\x06\x16\x06\x16{QUEUE}")]);
}

/// Runs one beat for a while, stops it, leaves every replica down for `down`, runs one again,
/// and returns the messages, the newest occurrence before the outage and the `beat list`
/// outputs (while running, after the stop).
fn outage(missed: &str, down: Duration) -> (Vec<Fired>, i64, String, String) {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = beat_config(dir.path(), missed, "1s", "100ms");
    let mut beat = Process::beat(&redis, &config);
    beat.wait_for_log("beat leading", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(3_500));
    let listed_running = list(&redis, &config);
    beat.stop();
    let before = fired(&redis);
    assert!(before.len() >= 2, "{missed}: {before:?}");
    let last_before = before.last().unwrap().at;
    let listed_stopped = list(&redis, &config);

    std::thread::sleep(down);
    let mut beat = Process::beat(&redis, &config);
    beat.wait_for_log("beat leading", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(3_500));
    beat.stop();
    let all = fired(&redis);
    assert_eq!(duplicates(&all), Vec::<i64>::new(), "{missed}: {all:?}");
    (all, last_before, listed_running, listed_stopped)
}

fn list(redis: &RedisServer, config: &Path) -> String {
    let out = Command::new(taskbox_tests::taskbox_bin())
        .args(["beat", "list", "--config"])
        .arg(config)
        .arg("--broker")
        .arg(redis.url())
        .env_remove("ENABLE_CHECK_UPGRADABLE_PLUGIN_TASK")
        .env_remove("ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK")
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("run taskbox beat list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_missed_occurrence_policy_does_what_it_says() {
    let down = Duration::from_secs(6);
    let ((skip, skip_last, running, stopped), (once, once_last, ..), (all, all_last, ..)) =
        std::thread::scope(|s| {
            let skip = s.spawn(|| outage("skip", down));
            let once = s.spawn(|| outage("once", down));
            let all = s.spawn(|| outage("all", down));
            (
                skip.join().unwrap(),
                once.join().unwrap(),
                all.join().unwrap(),
            )
        });

    // skip: nothing from the outage runs; the schedule resumes on time.
    assert!(
        skip.iter().all(|f| !f.catch_up),
        "skip runs no catch-up: {skip:?}"
    );
    let resumed = skip.iter().find(|f| f.at > skip_last).unwrap().at;
    assert!(
        gaps(&skip, skip_last, resumed).len() >= 3,
        "the outage's occurrences are skipped: {skip:?}"
    );
    let last = skip.last().unwrap().at;
    assert_eq!(gaps(&skip, resumed, last), Vec::<i64>::new(), "{skip:?}");

    // once: exactly one catch-up, the newest missed occurrence; older ones are dropped.
    let catch_ups: Vec<&Fired> = once.iter().filter(|f| f.catch_up).collect();
    assert_eq!(catch_ups.len(), 1, "once runs one catch-up: {once:?}");
    let caught = catch_ups[0].at;
    assert!(
        gaps(&once, once_last, caught).len() >= 2,
        "older missed occurrences are dropped: {once:?}"
    );
    let last = once.last().unwrap().at;
    assert_eq!(gaps(&once, caught, last), Vec::<i64>::new(), "{once:?}");

    // all: every missed occurrence runs, so nothing is missing at all.
    let caught_up = all.iter().filter(|f| f.catch_up).count();
    assert!(caught_up >= 3, "all runs each missed one: {all:?}");
    let (first, last) = (all.first().unwrap().at, all.last().unwrap().at);
    assert!(first <= all_last && last > all_last + 6);
    assert_eq!(gaps(&all, first, last), Vec::<i64>::new(), "{all:?}");

    // `beat list`: the entry, its schedule and policy, its last run, and who leads.
    let row = |text: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with("pulse "))
            .unwrap_or_else(|| panic!("no pulse row:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(running.starts_with("NAME"), "{running}");
    let pulse = row(&running);
    assert_eq!(
        pulse[1..7],
        ["yes", "every", "1s", "retention.sweep", QUEUE, "skip"],
        "{running}"
    );
    assert_ne!(pulse[7], "never", "{running}");
    let leader = running.lines().last().unwrap();
    assert!(
        leader.starts_with("leader: ") && leader.contains("(fencing token 1)"),
        "{running}"
    );
    let stopped_row = row(&stopped);
    let last_run: jiff::Timestamp = stopped_row[7].parse().unwrap();
    assert_eq!(last_run.as_second(), skip_last, "{stopped}");
    assert!(
        stopped.ends_with("leader: none (no beat replica holds the lease)\n"),
        "{stopped}"
    );
    let disabled = stopped
        .lines()
        .find(|l| l.starts_with("workflow_schedule_task "))
        .unwrap();
    assert!(
        disabled.split_whitespace().nth(1) == Some("no"),
        "{stopped}"
    );
}

#[test]
fn a_worker_with_beat_schedules_too_and_releases_the_lease() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = beat_config(dir.path(), "once", "2s", "200ms");
    let mut worker = Process::spawn(
        &redis,
        &config,
        &["worker", "--beat", "-Q", "beat_worker_idle", "-c", "1"],
        "worker ready",
    );
    worker.wait_for_log("beat leading", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert!(lease_holder(&redis).is_some());
    worker.stop();
    let all = fired(&redis);
    assert!(all.len() >= 2, "{all:?}\n{}", worker.logs());
    assert_eq!(duplicates(&all), Vec::<i64>::new());
    assert_eq!(lease_holder(&redis), None, "{}", worker.logs());
    assert!(
        worker.logs().contains("retention.sweep") || worker.logs().contains("beat enqueued"),
        "{}",
        worker.logs()
    );
}

#[test]
fn a_bad_entry_stops_start_up_naming_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("taskbox.toml");
    std::fs::write(
        &config,
        "[beat.schedule.broken]\ntask = \"retention.sweep\"\ncron = \"0 2 * *\"\n",
    )
    .unwrap();
    let out = Command::new(taskbox_tests::taskbox_bin())
        .args(["beat", "--config"])
        .arg(&config)
        .arg("--broker")
        .arg(redis.url())
        .output()
        .expect("run taskbox beat");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("beat.schedule.broken.cron") && err.contains("five"),
        "{err}"
    );
}
