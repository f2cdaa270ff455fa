//! The worker's operations surface: `/healthz`, `/readyz` and `/metrics` of a real worker on a
//! private Redis (including Redis going away), the rotating JSON log file with no secrets in
//! it, and a capturing subscriber proving every task span carries id, name, queue and attempt.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::Commands as _;
use serde_json::{Value, json};
use taskbox::broker::message::{self, NewTask};
use taskbox_tests::redis::{RedisServer, free_port};
use taskbox_tests::tasks::{send, wait_final};
use taskbox_tests::worker::{WorkerProcess, test_config};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

const LONG: Duration = Duration::from_secs(30);

/// `hostile.run` retries a `Fail` `max_retries` times, quickly.
fn fast_retries(max_retries: u32) -> String {
    format!("[tasks.\"hostile.run\".retry]\nmax_retries = {max_retries}\nbackoff = \"10ms\"\n")
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client and a strict Prometheus text parser.

/// One HTTP response: status, content type, body.
struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// `GET path` on `addr` with a fresh connection.
fn get(addr: &str, path: &str) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Response {
        status,
        content_type,
        body: body.to_string(),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses Prometheus/OpenMetrics text strictly: every `# HELP`/`# TYPE`/`# UNIT` line is
/// well-formed, every sample is `name{labels} value` with a numeric value and belongs to a
/// declared family, and `# EOF` ends it. Returns `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    const TYPES: [&str; 8] = [
        "counter",
        "gauge",
        "histogram",
        "summary",
        "unknown",
        "info",
        "stateset",
        "gaugehistogram",
    ];
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "text after # EOF: {line:?}");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("comment without a name: {line:?}"));
            assert!(is_metric_name(name), "bad metric name in {line:?}");
            match kind {
                Some("HELP") => assert!(rest.is_some_and(|h| !h.is_empty()), "{line:?}"),
                Some("TYPE") => {
                    let kind = rest.unwrap_or_default();
                    assert!(TYPES.contains(&kind), "unknown type in {line:?}");
                    families.insert(name.to_string(), kind.to_string());
                }
                Some("UNIT") => assert!(rest.is_some_and(|u| !u.is_empty()), "{line:?}"),
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "blank line in the exposition");
        let (series, value) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                let labels = &line[open + 1..close];
                check_labels(labels, line);
                (&line[..=close], line[close + 1..].trim())
            }
            None => line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no value: {line:?}")),
        };
        let name = series.split('{').next().unwrap_or_default();
        assert!(is_metric_name(name), "bad sample name in {line:?}");
        let value = value.split(' ').next().unwrap_or_default();
        let number: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("non-numeric value in {line:?}")),
        };
        let family = ["_total", "_bucket", "_sum", "_count", "_created", "_info"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.contains_key(*base))
            })
            .unwrap_or(name);
        assert!(
            families.contains_key(family),
            "sample {name} has no # TYPE line"
        );
        samples.insert(series.to_string(), number);
    }
    assert!(saw_eof, "no # EOF at the end:\n{text}");
    samples
}

/// `k="v",k2="v2"` with escaped quotes allowed inside values.
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(is_metric_name(name), "bad label name {name:?} in {line:?}");
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
}

/// Scrapes `/metrics` and parses it.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .content_type
            .starts_with("application/openmetrics-text")
            || response.content_type.starts_with("text/plain"),
        "content type {:?}",
        response.content_type
    );
    parse_metrics(&response.body)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The endpoint against a real worker.

#[test]
fn health_readiness_and_metrics_follow_tasks_and_redis() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let worker = WorkerProcess::start(
        &redis,
        &test_config(dir.path(), &fast_retries(1)),
        &["-c", "2", "--http", &addr],
    );
    worker.wait_for_log("serving /healthz", LONG);

    let health = get(&addr, "/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    let ready = get(&addr, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    let before = scrape(&addr);
    assert_eq!(value(&before, "taskbox_slots_total"), 2.0);
    assert_eq!(value(&before, "taskbox_broker_up"), 1.0);
    assert_eq!(
        value(
            &before,
            r#"taskbox_tasks_total{task="echo",queue="dataset",state="success"}"#
        ),
        0.0
    );

    // Three successes, a failure retried once, a rejection, one task parked for later.
    let ok: Vec<String> = (0..3)
        .map(|i| send(&redis, "echo", json!([i]), json!({}), "dataset"))
        .collect();
    let failed = send(
        &redis,
        "hostile.run",
        json!(["fail", 0, "metrics"]),
        json!({}),
        "pipeline",
    );
    let rejected = send(
        &redis,
        "hostile.run",
        json!(["reject", 0, "metrics"]),
        json!({}),
        "pipeline",
    );
    let mut later = NewTask::new("echo", "dataset");
    later.eta = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600));
    let (key, envelope) = message::encode(&later);
    let _: () = redis.conn().lpush(key, envelope).unwrap();
    for id in ok.iter().chain([&failed, &rejected]) {
        wait_final(&redis, id, LONG);
    }

    // Results are stored in the same step as the ack, so the counters have moved by now.
    let after = scrape(&addr);
    let echo_ok = r#"taskbox_tasks_total{task="echo",queue="dataset",state="success"}"#;
    assert_eq!(value(&after, echo_ok), 3.0, "{after:#?}");
    assert_eq!(
        value(
            &after,
            r#"taskbox_tasks_total{task="hostile.run",queue="pipeline",state="failure"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            r#"taskbox_tasks_total{task="hostile.run",queue="pipeline",state="rejected"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            r#"taskbox_tasks_total{task="hostile.run",queue="pipeline",state="retry"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&after, r#"taskbox_sandbox_errors_total{kind="Fail"}"#)
            - value(&before, r#"taskbox_sandbox_errors_total{kind="Fail"}"#),
        2.0,
        "both attempts of the failing task"
    );
    assert_eq!(
        value(&after, r#"taskbox_sandbox_errors_total{kind="Reject"}"#),
        1.0
    );
    assert_eq!(
        value(
            &after,
            r#"taskbox_task_duration_seconds_count{task="echo"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            r#"taskbox_task_duration_seconds_bucket{le="+Inf",task="echo"}"#
        ),
        3.0
    );
    assert!(value(&after, r#"taskbox_task_fuel_used_sum{task="echo"}"#) > 0.0);
    assert!(value(&after, r#"taskbox_task_peak_memory_bytes_sum{task="echo"}"#) > 0.0);
    assert_eq!(value(&after, "taskbox_dead_letters"), 2.0, "{after:#?}");
    assert_eq!(value(&after, "taskbox_queue_delayed"), 1.0);
    assert_eq!(
        value(&after, r#"taskbox_queue_depth{queue="dataset"}"#),
        0.0
    );
    assert!(after.contains_key(r#"taskbox_queue_depth{queue="pipeline"}"#));
    assert_eq!(value(&after, "taskbox_slots_busy"), 0.0);

    // Redis goes away: not ready, still alive, and a scrape still answers promptly.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let unready = loop {
        let ready = get(&addr, "/readyz");
        if ready.status == 503 {
            break ready;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {}", ready.status);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(unready.body.contains("redis"), "{}", unready.body);
    // Several heartbeat intervals (300ms in tests) pass with Redis down: liveness holds.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(4) {
        let health = get(&addr, "/healthz");
        assert_eq!(
            health.status, 200,
            "liveness must not depend on Redis: {}",
            health.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    let down = scrape(&addr);
    assert!(started.elapsed() < Duration::from_secs(5), "scrape hung");
    assert_eq!(value(&down, "taskbox_broker_up"), 0.0);
    assert_eq!(value(&down, echo_ok), 3.0, "counters survive an outage");
}

#[test]
fn a_taken_http_port_stops_start_up_naming_the_address() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(taskbox_tests::taskbox_bin())
        .arg("worker")
        .arg("--config")
        .arg(test_config(dir.path(), ""))
        .args(["--broker", &redis.url(), "--http", &addr])
        .env_remove("CELERY_BROKER_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Logging: rotation, JSON lines, secrets.

/// A worker process with a given environment, its stdout captured to a file.
struct LoggingWorker {
    child: Child,
    stdout: PathBuf,
}

impl LoggingWorker {
    fn start(config: &Path, broker: &str, env: &[(&str, &str)]) -> LoggingWorker {
        let stdout = config.with_file_name("stdout.log");
        let file = std::fs::File::create(&stdout).unwrap();
        let child = Command::new(taskbox_tests::taskbox_bin())
            .arg("worker")
            .arg("--config")
            .arg(config)
            .args(["--broker", broker, "-c", "2"])
            .env_remove("CELERY_BROKER_URL")
            .env_remove("LOG_FORMAT")
            .envs(env.iter().copied())
            .stdout(file)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let worker = LoggingWorker { child, stdout };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !worker.console().contains("worker ready") {
            assert!(
                Instant::now() < deadline,
                "worker never ready:\n{}",
                worker.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worker
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + LONG;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "worker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LoggingWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON object of each line, panicking with the line when one is not JSON.
fn json_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: not a JSON line ({e}): {line:?}"))
        })
        .collect()
}

#[test]
fn log_file_rotates_keeps_two_backups_and_json_lines_carry_the_task_span_without_secrets() {
    const PASSWORD: &str = "s3cret-broker-pw";
    const SMTP_PASSWORD: &str = "s3cret-smtp-pw";
    let redis = RedisServer::start();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query(&mut redis.conn())
        .unwrap();
    let broker = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port());
    let mut conn = redis::Client::open(broker.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let log_file = logs.join("taskbox.log");
    let outbox = dir.path().join("outbox");
    let config = test_config(dir.path(), "");
    // 0.004 MB is about 4 KiB: a few tasks' worth of debug lines per file.
    let mut worker = LoggingWorker::start(
        &config,
        &broker,
        &[
            ("LOG_LEVEL", "info,taskbox=debug"),
            ("LOG_FORMAT", "json"),
            ("LOG_FILE", log_file.to_str().unwrap()),
            ("LOG_FILE_MAX_SIZE", "0.004"),
            ("LOG_FILE_BACKUP_COUNT", "2"),
            ("MAIL_TYPE", "outbox"),
            ("MAIL_OUTBOX_DIR", outbox.to_str().unwrap()),
            ("SMTP_USERNAME", "taskbox"),
            ("SMTP_PASSWORD", SMTP_PASSWORD),
        ],
    );
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut task = if i % 4 == 0 {
            let mut t = NewTask::new("hostile.run", "pipeline");
            t.args = vec![json!("log_flood"), json!(2)];
            t
        } else {
            let mut t = NewTask::new("echo", "dataset");
            t.args = vec![json!(i)];
            t
        };
        task.origin = "test@localhost".into();
        let (key, envelope) = message::encode(&task);
        let _: () = conn.lpush(key, envelope).unwrap();
        ids.push(task.id);
    }
    let deadline = Instant::now() + LONG;
    for id in &ids {
        loop {
            let raw: Option<String> = conn.get(format!("celery-task-meta-{id}")).unwrap();
            if raw.is_some_and(|r| r.contains("\"SUCCESS\"")) {
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    worker.stop();

    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["taskbox.log", "taskbox.log.1", "taskbox.log.2"]);

    let mut task_lines = 0;
    let mut task_ids = std::collections::BTreeSet::new();
    let mut guest_lines = 0;
    for name in &names {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(
            text.len() <= 4194 + longest + 1,
            "{name} is {} bytes, past the limit by more than a line",
            text.len()
        );
        for line in json_lines(&text, name) {
            assert!(
                line["level"].is_string() && line["target"].is_string(),
                "{line}"
            );
            let Some(span) = line.get("span").filter(|s| s["name"] == "task") else {
                continue;
            };
            task_lines += 1;
            for field in ["task.id", "task.name", "queue", "worker"] {
                assert!(
                    span[field].as_str().is_some_and(|v| !v.is_empty()),
                    "{field} missing from {line}"
                );
            }
            assert!(span["attempt"].as_u64().is_some_and(|a| a >= 1), "{line}");
            task_ids.insert(span["task.id"].as_str().unwrap_or_default().to_string());
            if line["target"] == "taskbox::guest" {
                guest_lines += 1;
                assert_eq!(line["fields"]["plugin"], "hostile", "{line}");
                assert_eq!(span["task.name"], "hostile.run");
            }
        }
    }
    assert!(task_lines > 0 && guest_lines > 0, "no task lines kept");
    assert!(
        task_ids.iter().all(|id| ids.contains(id)),
        "spans name tasks that were sent"
    );

    // The console got the same JSON lines, and no secret appears anywhere.
    let console = worker.console();
    let console_lines = json_lines(&console, "stdout");
    assert!(
        console_lines
            .iter()
            .any(|l| l["fields"]["message"] == "worker ready"),
        "{console}"
    );
    let mut everything = console;
    for name in &names {
        everything.push_str(&std::fs::read_to_string(logs.join(name)).unwrap());
    }
    assert!(!everything.contains(PASSWORD), "the broker password leaked");
    assert!(
        !everything.contains(SMTP_PASSWORD),
        "the SMTP password leaked"
    );
    assert!(
        everything.contains(":***@127.0.0.1"),
        "the broker URL is shown redacted"
    );
}

#[test]
fn one_off_commands_keep_stdout_for_their_output_and_leave_the_log_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("taskbox.log");
    let out = Command::new(taskbox_tests::taskbox_bin())
        .arg("exec")
        .arg(taskbox_tests::guests::guest_path("taskbox_guest_noop"))
        .args(["--task", "echo", "--args", "[7]"])
        .env("LOG_LEVEL", "debug")
        .env("LOG_FORMAT", "json")
        .env("LOG_FILE", &log_file)
        .env_remove("CELERY_BROKER_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
    assert!(
        json_lines(&stderr, "stderr")
            .iter()
            .any(|l| l["fields"]["message"] == "task finished"),
        "{stderr}"
    );
    assert!(!log_file.exists(), "a one-off command wrote the log file");
}

// ---------------------------------------------------------------------------------------------
// A capturing subscriber over the real executor path.

/// Field name → value, as the capturing layer saw them.
#[derive(Debug, Clone, Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// A span as created.
#[derive(Debug, Clone)]
struct SpanSeen {
    name: String,
    fields: Fields,
}

/// An event with its fields and the spans it was inside (root first).
#[derive(Debug, Clone)]
struct EventSeen {
    target: String,
    fields: Fields,
    scope: Vec<SpanSeen>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    events: Vec<EventSeen>,
}

/// Records every `taskbox` span and event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields.clone());
        }
        self.0.lock().unwrap().spans.push(SpanSeen {
            name: attrs.metadata().name().to_string(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| SpanSeen {
                        name: span.name().to_string(),
                        fields: span
                            .extensions()
                            .get::<Fields>()
                            .cloned()
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().events.push(EventSeen {
            target: event.metadata().target().to_string(),
            fields,
            scope,
        });
    }
}

/// The process-wide capture (a global subscriber reaches the worker's runtime threads).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let only_taskbox = tracing_subscriber::filter::Targets::new()
            .with_target("taskbox", tracing::Level::TRACE);
        let subscriber =
            tracing_subscriber::registry().with(capture.clone().with_filter(only_taskbox));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        capture.clone()
    })
}

#[test]
fn every_task_span_of_the_real_executor_carries_id_name_queue_and_attempt() {
    let capture = capture();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = test_config(dir.path(), &fast_retries(3));
    let mut config = taskbox::config::Config::load(Some(&path), &|_| None).unwrap();
    config.apply_flag("--broker", &redis.url()).unwrap();
    config.apply_flag("--concurrency", "2").unwrap();
    config.validate().unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = taskbox::shutdown::Shutdown::new();
    let worker = runtime
        .block_on(taskbox::worker::Worker::start(config, shutdown.clone()))
        .unwrap();
    let running = runtime.spawn(worker.run());

    // A success, a guest that logs, a failure retried to the end, a rejection, and a task that
    // asks to be retried until it runs out of retries.
    let sent = [
        ("echo", json!([1]), "dataset"),
        ("hostile.run", json!(["log_flood", 3]), "pipeline"),
        ("hostile.run", json!(["fail", 0, "span"]), "pipeline"),
        (
            "hostile.run",
            json!(["reject", 0, "span"]),
            "priority_pipeline",
        ),
        ("hostile.run", json!(["retry", 5]), "dataset"),
    ];
    let ids: Vec<(String, &str, &str)> = sent
        .iter()
        .map(|(task, args, queue)| {
            (
                send(&redis, task, args.clone(), json!({}), queue),
                *task,
                *queue,
            )
        })
        .collect();
    for (id, _, _) in &ids {
        wait_final(&redis, id, LONG);
    }
    shutdown.begin();
    runtime.block_on(running).unwrap().unwrap();

    let seen = capture.0.lock().unwrap();
    let ours = |span: &SpanSeen| {
        span.fields
            .0
            .get("task.id")
            .is_some_and(|id| ids.iter().any(|(sent, _, _)| sent == id))
    };
    let task_spans: Vec<&SpanSeen> = seen
        .spans
        .iter()
        .filter(|s| s.name == "task" && ours(s))
        .collect();
    // Every task span has all four fields, non-empty.
    for span in seen.spans.iter().filter(|s| s.name == "task") {
        for field in ["task.id", "task.name", "queue", "attempt"] {
            assert!(
                span.fields.0.get(field).is_some_and(|v| !v.is_empty()),
                "{field} missing on {span:?}"
            );
        }
    }
    // Each sent task got a span naming it, its queue and its attempt; the retried one has one
    // span per attempt, numbered from 1.
    for (id, task, queue) in &ids {
        let mut attempts: Vec<u32> = task_spans
            .iter()
            .filter(|s| s.fields.0.get("task.id") == Some(id))
            .map(|s| {
                assert_eq!(s.fields.0.get("task.name").map(String::as_str), Some(*task));
                assert_eq!(s.fields.0.get("queue").map(String::as_str), Some(*queue));
                s.fields.0["attempt"].parse().unwrap()
            })
            .collect();
        attempts.sort_unstable();
        let expected: Vec<u32> = if id == &ids[2].0 || id == &ids[4].0 {
            vec![1, 2, 3, 4]
        } else {
            vec![1]
        };
        assert_eq!(attempts, expected, "attempts of {task} {id}");
    }
    // The executor's outcome lines and the guest's own lines happen inside the task span.
    let in_task_span = |e: &EventSeen| e.scope.iter().any(|s| s.name == "task" && ours(s));
    let outcomes: Vec<&EventSeen> = seen
        .events
        .iter()
        .filter(|e| {
            e.fields
                .0
                .get("message")
                .is_some_and(|m| m == "task succeeded" || m.starts_with("task failed"))
        })
        .collect();
    assert!(outcomes.len() >= 11, "{} outcome lines", outcomes.len());
    assert!(
        outcomes.iter().all(|e| in_task_span(e)),
        "an outcome line outside its span"
    );
    let guest: Vec<&EventSeen> = seen
        .events
        .iter()
        .filter(|e| e.target == "taskbox::guest")
        .collect();
    assert_eq!(guest.len(), 3, "the guest's three log lines");
    for event in guest {
        assert!(in_task_span(event), "{event:?}");
        assert_eq!(
            event.fields.0.get("plugin").map(String::as_str),
            Some("hostile")
        );
    }
}
