//! Broker, worker and results end to end: the real `taskbox worker` binary against a private
//! `redis-server`, tasks published in Celery's wire format, outcomes read back from Redis.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};
use taskbox::broker::message::{self, NewTask};
use taskbox_tests::redis::RedisServer;
use taskbox_tests::worker::{WorkerProcess, test_config};

/// Publishes a task as a Celery producer would (LPUSH of a protocol-v2 envelope).
fn publish(
    redis: &RedisServer,
    task: &str,
    args: Value,
    queue: &str,
    tweak: impl FnOnce(&mut NewTask),
) -> String {
    let mut new = NewTask::new(task, queue);
    new.args = args.as_array().cloned().unwrap_or_default();
    new.origin = "test@localhost".into();
    tweak(&mut new);
    let (key, envelope) = message::encode(&new);
    let _: () = redis.conn().lpush(key, envelope).unwrap();
    new.id
}

/// Waits for a ready state (SUCCESS, FAILURE, REVOKED) and returns the meta.
fn wait_result(redis: &RedisServer, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let mut conn = redis.conn();
    loop {
        let raw: Option<String> = conn.get(format!("celery-task-meta-{id}")).unwrap_or(None);
        if let Some(raw) = raw {
            let meta: Value = serde_json::from_str(&raw).unwrap();
            if matches!(
                meta["status"].as_str(),
                Some("SUCCESS" | "FAILURE" | "REVOKED")
            ) {
                return meta;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no final result for {id} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kv_list(redis: &RedisServer, plugin: &str, key: &str) -> Vec<Value> {
    let raw: Option<String> = redis
        .conn()
        .hget(format!("taskbox:kv:{plugin}"), key)
        .unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
        .unwrap_or_default()
}

fn dead_letters(redis: &RedisServer) -> Vec<Value> {
    let raw: Vec<String> = redis.conn().lrange("taskbox:dead_letter", 0, -1).unwrap();
    raw.iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

fn unacked_count(redis: &RedisServer) -> usize {
    redis.conn().hlen("unacked").unwrap()
}

#[test]
fn task_runs_and_its_result_is_stored_in_celery_format() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "2"]);
    let id = publish(
        &redis,
        "echo",
        json!([{"hello": "world"}]),
        "dataset",
        |_| {},
    );
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "SUCCESS");
    assert_eq!(meta["result"], json!({"hello": "world"}));
    assert_eq!(meta["task_id"], id);
    assert!(meta["date_done"].as_str().unwrap().ends_with("+00:00"));
    assert!(meta["taskbox"]["fuel_used"].as_u64().unwrap() > 0);
    let ttl: i64 = redis.conn().ttl(format!("celery-task-meta-{id}")).unwrap();
    assert!(
        ttl > 86_000 && ttl <= 86_400,
        "results expire after a day by default ({ttl})"
    );
    let bindings: bool = redis
        .conn()
        .sismember("_kombu.binding.dataset", "dataset\x06\x16\x06\x16dataset")
        .unwrap();
    assert!(bindings, "queues are declared the way kombu declares them");
    assert_eq!(unacked_count(&redis), 0, "acked");
}

#[test]
fn priority_queues_drain_first_and_lower_message_priority_runs_first() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Everything is queued before the worker starts, so the order is the worker's choice.
    let mut ids = Vec::new();
    for (label, queue, priority) in [
        ("retention", "retention", 0),
        ("dataset-p9", "dataset", 9),
        ("dataset-p0", "dataset", 0),
        ("priority-p6", "priority_dataset", 6),
        ("priority-p0", "priority_dataset", 0),
        ("dataset-p3", "dataset", 3),
    ] {
        ids.push(publish(&redis, "record", json!([label]), queue, |t| {
            t.priority = priority
        }));
    }
    let _worker = WorkerProcess::start(
        &redis,
        &test_config(dir.path(), ""),
        &["-c", "1", "-Q", "priority_dataset,dataset,retention"],
    );
    for id in &ids {
        assert_eq!(
            wait_result(&redis, id, Duration::from_secs(30))["status"],
            "SUCCESS"
        );
    }
    let order: Vec<String> = kv_list(&redis, "noop", "order")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "priority-p0",
            "priority-p6",
            "dataset-p0",
            "dataset-p3",
            "dataset-p9",
            "retention"
        ]
    );
}

#[test]
fn sigkill_in_the_middle_of_tasks_loses_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), "");
    let ids: Vec<String> = (0..120)
        .map(|_| {
            publish(
                &redis,
                "hostile.run",
                json!(["sleep", 25, ""]),
                "pipeline",
                |_| {},
            )
        })
        .collect();
    for round in 0..3 {
        let mut worker = WorkerProcess::start(&redis, &config, &["-c", "4"]);
        // Let it get into the middle of work, then kill it without warning.
        let done_before: usize = ids
            .iter()
            .filter(|id| {
                redis
                    .conn()
                    .exists::<_, bool>(format!("celery-task-meta-{id}"))
                    .unwrap()
            })
            .count();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done: usize = ids
                .iter()
                .filter(|id| {
                    redis
                        .conn()
                        .exists::<_, bool>(format!("celery-task-meta-{id}"))
                        .unwrap()
                })
                .count();
            if done >= done_before + 15 || done == ids.len() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        worker.sigkill();
        eprintln!(
            "round {round}: killed with {} unacked",
            unacked_count(&redis)
        );
    }
    // A last worker finishes the rest, including what the killed ones held (after their
    // heartbeat lapses, 2 s in the test config).
    let _worker = WorkerProcess::start(&redis, &config, &["-c", "4"]);
    for id in &ids {
        assert_eq!(
            wait_result(&redis, id, Duration::from_secs(60))["status"],
            "SUCCESS",
            "task {id}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while unacked_count(&redis) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(unacked_count(&redis), 0, "every message ended acked");
    let queued: usize = redis.conn().llen("pipeline").unwrap();
    assert_eq!(queued, 0);
}

#[test]
fn graceful_shutdown_finishes_running_tasks_and_leaves_the_rest_queued() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "1"]);
    let first = publish(
        &redis,
        "hostile.run",
        json!(["sleep", 1500, ""]),
        "pipeline",
        |_| {},
    );
    worker.wait_for_log("task started", Duration::from_secs(10));
    let rest: Vec<String> = (0..3)
        .map(|_| {
            publish(
                &redis,
                "hostile.run",
                json!(["sleep", 1500, ""]),
                "pipeline",
                |_| {},
            )
        })
        .collect();
    worker.sigterm();
    let status = worker.wait(Duration::from_secs(30));
    assert!(status.success(), "warm shutdown exits 0: {status:?}");
    assert_eq!(
        wait_result(&redis, &first, Duration::from_secs(1))["status"],
        "SUCCESS",
        "the running task finished"
    );
    let queued: usize = redis.conn().llen("pipeline").unwrap();
    assert_eq!(queued, rest.len(), "unstarted tasks stay queued");
    assert_eq!(unacked_count(&redis), 0);
}

#[test]
fn shutdown_grace_expiry_returns_the_running_task_to_its_queue() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut worker = WorkerProcess::start(
        &redis,
        &test_config(dir.path(), ""),
        &["-c", "1", "--shutdown-grace", "300ms"],
    );
    let id = publish(
        &redis,
        "hostile.run",
        json!(["sleep", 20000, ""]),
        "pipeline",
        |_| {},
    );
    worker.wait_for_log("task started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    worker.sigterm();
    worker.wait(Duration::from_secs(30));
    let queued: Vec<String> = redis.conn().lrange("pipeline", 0, -1).unwrap();
    assert_eq!(queued.len(), 1, "the interrupted task is back on its queue");
    assert!(queued[0].contains(&id));
    let result: Option<String> = redis.conn().get(format!("celery-task-meta-{id}")).unwrap();
    assert!(result.is_none(), "no result for a task that did not finish");
}

#[test]
fn countdown_task_survives_a_worker_restart_and_runs_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), "");
    let mut worker = WorkerProcess::start(&redis, &config, &["-c", "2"]);
    let id = publish(&redis, "record", json!(["eta"]), "dataset", |t| {
        t.eta = Some(jiff::Timestamp::now() + jiff::SignedDuration::from_millis(2500));
    });
    // The worker parks it in the delayed set (in Redis), then dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.conn().zcard::<_, usize>("taskbox:delayed").unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "task never parked:\n{}",
            worker.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.sigkill();
    let _second = WorkerProcess::start(&redis, &config, &["-c", "2"]);
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "SUCCESS");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        kv_list(&redis, "noop", "order"),
        vec![json!("eta")],
        "ran exactly once"
    );
}

#[test]
fn retries_back_off_then_fail_into_the_dead_letter_list() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[tasks."hostile.run".retry]
max_retries = 2
backoff = "50ms"
backoff_max = "1s"
jitter = false
retry_on = ["Fail"]
"#;
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), extra), &["-c", "2"]);
    let id = publish(
        &redis,
        "hostile.run",
        json!(["fail", 0, "always"]),
        "pipeline",
        |_| {},
    );
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "FAILURE");
    assert_eq!(meta["result"]["exc_type"], "Fail");
    assert_eq!(meta["taskbox"]["attempt"], 3, "first run plus two retries");
    let dlq = dead_letters(&redis);
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["task_id"], id);
    assert_eq!(dlq[0]["retries"], 2);
    assert!(
        dlq[0]["reason"]
            .as_str()
            .unwrap()
            .contains("failing on purpose")
    );

    // A reject is never retried.
    let rejected = publish(
        &redis,
        "hostile.run",
        json!(["reject", 0, "bad input"]),
        "pipeline",
        |_| {},
    );
    let meta = wait_result(&redis, &rejected, Duration::from_secs(30));
    assert_eq!(meta["result"]["exc_type"], "Reject");
    assert_eq!(meta["taskbox"]["attempt"], 1);
}

#[test]
fn hostile_tasks_through_redis_store_their_error_kind_and_the_worker_keeps_serving() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[tasks."hostile.run".limits]
fuel = 100000000
memory = "32MiB"
timeout = "2s"
max_output = "64KiB"
max_resources = 1000
"#;
    let worker = WorkerProcess::start(&redis, &test_config(dir.path(), extra), &["-c", "2"]);
    let worker_id = |conn: &mut redis::Connection| -> Vec<(String, f64)> {
        conn.zrange_withscores("taskbox:workers", 0, -1).unwrap()
    };
    let first_beat = worker_id(&mut redis.conn());
    assert_eq!(first_beat.len(), 1, "the worker registered");
    let cases: &[(&str, Value, &str)] = &[
        ("spin", json!(["spin"]), "OutOfFuel"),
        (
            "memory_grow_bomb",
            json!(["memory_grow_bomb"]),
            "MemoryLimit",
        ),
        ("alloc", json!(["alloc", 100_000_000]), "MemoryLimit"),
        ("resource_bomb", json!(["resource_bomb"]), "MemoryLimit"),
        ("recurse", json!(["recurse"]), "StackOverflow"),
        ("panic", json!(["panic"]), "Trap"),
        ("trap", json!(["trap"]), "Trap"),
        ("output", json!(["output", 1_000_000]), "OutputTooLarge"),
        ("sleep", json!(["sleep", 60_000]), "Timeout"),
        ("read_file", json!(["read_file", 0, "/etc/passwd"]), "Fail"),
        (
            "mail injection",
            json!(["mail", 1, "a@example.com\r\nBcc: v@example.com"]),
            "Reject",
        ),
    ];
    for (name, args, kind) in cases {
        let id = publish(&redis, "hostile.run", args.clone(), "pipeline", |_| {});
        let meta = wait_result(&redis, &id, Duration::from_secs(30));
        assert_eq!(meta["status"], "FAILURE", "{name}");
        assert_eq!(meta["result"]["exc_type"], *kind, "{name}: {meta}");
        assert_eq!(meta["taskbox"]["error_kind"], *kind);
        let ok = publish(&redis, "echo", json!([name]), "pipeline", |_| {});
        assert_eq!(
            wait_result(&redis, &ok, Duration::from_secs(30))["result"],
            json!(name),
            "the next task runs after {name}"
        );
    }
    // A result that is not JSON (a guest's own writer gone wrong) is a failure, not stored.
    let id = publish(&redis, "not_json", json!([]), "pipeline", |_| {});
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "FAILURE", "{meta}");
    assert_eq!(meta["result"]["exc_type"], "Trap", "{meta}");
    assert!(
        meta["result"]["exc_message"][0]
            .as_str()
            .is_some_and(|m| m.contains("the task's output is not JSON")),
        "{meta}"
    );
    let last_beat = worker_id(&mut redis.conn());
    assert_eq!(last_beat.len(), 1);
    assert!(
        last_beat[0].1 > first_beat[0].1,
        "the worker kept heartbeating:\n{}",
        worker.logs()
    );
}

#[test]
fn malformed_messages_are_dead_lettered_with_their_reason() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "2"]);
    // Each variant starts from a fresh envelope: its own task id and delivery tag.
    let variant = |f: &dyn Fn(&mut Value)| {
        let mut t = NewTask::new("echo", "dataset");
        t.args = vec![json!(1)];
        let mut v: Value = serde_json::from_str(&message::encode(&t).1).unwrap();
        f(&mut v);
        v
    };
    let pickle = variant(&|v| v["content-type"] = "application/x-python-serialize".into());
    let bad_b64 = variant(&|v| v["body"] = "***not base64***".into());
    let v1 = variant(&|v| {
        v["headers"].as_object_mut().unwrap().remove("task");
        v["body"] = base64_json(&json!({"task": "echo", "id": "v1-id", "args": [], "kwargs": {}}));
    });
    let unknown = variant(&|v| v["headers"]["task"] = "no.such.task".into());
    let bad_body = variant(&|v| v["body"] = base64_json(&json!({"not": "a list"})));
    let cases: Vec<(String, &str)> = vec![
        ("this is not json".to_string(), "NotJson"),
        (pickle.to_string(), "UnsupportedContentType"),
        (bad_b64.to_string(), "BadBase64"),
        (v1.to_string(), "ProtocolV1"),
        (unknown.to_string(), "NotRegistered"),
        (bad_body.to_string(), "BadBody"),
    ];
    for (raw, _) in &cases {
        let _: () = redis.conn().lpush("dataset", raw).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_letters(&redis).len() < cases.len() {
        assert!(
            Instant::now() < deadline,
            "only these dead letters: {:#?}",
            dead_letters(&redis)
                .iter()
                .map(|e| e["kind"].clone())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dlq = dead_letters(&redis);
    for (raw, kind) in &cases {
        let entry = dlq
            .iter()
            .find(|e| e["kind"] == *kind)
            .unwrap_or_else(|| panic!("no {kind} entry in {dlq:#?}"));
        assert_eq!(
            entry["raw"].as_str().unwrap(),
            raw,
            "the raw message is kept"
        );
        assert!(!entry["reason"].as_str().unwrap().is_empty());
    }
    // Where the id was readable, FAILURE is stored.
    let unknown_id = unknown["headers"]["id"].as_str().unwrap();
    assert_eq!(
        wait_result(&redis, unknown_id, Duration::from_secs(5))["result"]["exc_type"],
        "NotRegistered"
    );
    assert_eq!(
        wait_result(&redis, "v1-id", Duration::from_secs(5))["result"]["exc_type"],
        "ProtocolV1"
    );
    assert_eq!(unacked_count(&redis), 0);
}

fn base64_json(v: &Value) -> Value {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(v.to_string())
        .into()
}

#[test]
fn expired_task_is_revoked_not_run() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let id = publish(&redis, "record", json!(["expired"]), "dataset", |t| {
        t.expires = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1));
    });
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "1"]);
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "REVOKED");
    assert_eq!(meta["result"]["exc_type"], "TaskRevokedError");
    assert!(kv_list(&redis, "noop", "order").is_empty(), "not run");
}

#[test]
fn chain_runs_each_step_with_the_previous_result() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "2"]);
    let out = std::process::Command::new(taskbox_tests::taskbox_bin())
        .args([
            "send",
            "echo",
            "--args",
            "[\"first\"]",
            "--queue",
            "dataset",
            "--chain",
            "record:{\"log\": \"chain\"}",
            "--broker",
        ])
        .arg(redis.url())
        .args(["--wait", "30"])
        .env_remove("CELERY_BROKER_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // `record` got echo's result prepended as its first argument.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    assert_eq!(kv_list(&redis, "noop", "chain"), vec![json!("first")]);
}

#[test]
fn send_wait_reports_failures_with_a_nonzero_exit() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "1"]);
    let out = std::process::Command::new(taskbox_tests::taskbox_bin())
        .args([
            "send",
            "hostile.run",
            "--args",
            "[\"reject\", 0, \"nope\"]",
            "--queue",
            "pipeline",
            "--wait",
            "30",
            "--broker",
        ])
        .arg(redis.url())
        .env_remove("CELERY_BROKER_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FAILURE: Reject"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dead_letters_can_be_listed_and_requeued() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Unknown when sent, known after the requeue: the task is dead-lettered, then recovered.
    let id = publish(&redis, "record", json!(["late"]), "dataset", |t| {
        t.task = "later.record".into()
    });
    let worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead_letters(&redis).is_empty() {
        assert!(Instant::now() < deadline, "{}", worker.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let cli = |args: &[&str]| {
        std::process::Command::new(taskbox_tests::taskbox_bin())
            .args(args)
            .arg("--broker")
            .arg(redis.url())
            .env_remove("CELERY_BROKER_URL")
            .output()
            .unwrap()
    };
    let list = cli(&["dlq", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    let shown = cli(&["dlq", "show", &id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("NotRegistered"));
    let requeued = cli(&["dlq", "requeue", &id]);
    assert!(
        requeued.status.success(),
        "{}",
        String::from_utf8_lossy(&requeued.stderr)
    );
    assert!(
        dead_letters(&redis).len() <= 1,
        "the entry left the list (it may come back: still unknown)"
    );
    let purged = cli(&["dlq", "purge"]);
    assert!(purged.status.success());
}

#[test]
fn redis_restart_under_load_loses_no_task_and_runs_none_twice() {
    let mut redis = RedisServer::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(&redis, &test_config(dir.path(), ""), &["-c", "4"]);
    // Each task appends to its own kv list, so a task run twice shows up as a list of two.
    let ids: Vec<(String, String)> = (0..150)
        .map(|i| {
            let label = format!("t{i}");
            let id = publish(&redis, "record", json!([label.clone()]), "dataset", |t| {
                t.kwargs.insert("log".into(), json!(label.clone()));
            });
            (id, label)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    redis.kill();
    std::thread::sleep(Duration::from_millis(1500));
    redis.restart();
    for (id, _) in &ids {
        assert_eq!(
            wait_result(&redis, id, Duration::from_secs(60))["status"],
            "SUCCESS",
            "{id}:\n{}",
            worker.logs()
        );
    }
    for (_, label) in &ids {
        assert_eq!(
            kv_list(&redis, "noop", label).len(),
            1,
            "{label} ran exactly once"
        );
    }
}

#[test]
fn a_long_task_is_not_redelivered_while_its_worker_lives() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), "");
    // The task runs for twice the dead-after time (2 s); the second worker must not take it.
    let _a = WorkerProcess::start(&redis, &config, &["-c", "1", "-n", "taskbox@a"]);
    let id = publish(
        &redis,
        "hostile.run",
        json!(["sleep", 4500, ""]),
        "pipeline",
        |_| {},
    );
    std::thread::sleep(Duration::from_millis(300));
    let b = WorkerProcess::start(&redis, &config, &["-c", "1", "-n", "taskbox@b"]);
    let meta = wait_result(&redis, &id, Duration::from_secs(30));
    assert_eq!(meta["status"], "SUCCESS");
    assert_eq!(meta["taskbox"]["worker"], "taskbox@a");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !b.logs().contains("task started"),
        "worker b never ran it:\n{}",
        b.logs()
    );
}

#[test]
fn ignore_result_early_ack_and_track_started_follow_their_settings() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[results]
track_started = true

[tasks.noop]
ignore_result = true

[tasks.record]
acks_late = false
"#;
    let worker = WorkerProcess::start(
        &redis,
        &test_config(dir.path(), extra),
        &["-c", "2", "-n", "taskbox@started"],
    );
    // ignore_result from the header and from task config: nothing stored.
    let by_header = publish(&redis, "echo", json!([1]), "dataset", |t| {
        t.ignore_result = Some(true)
    });
    let by_config = publish(&redis, "noop", json!([]), "dataset", |_| {});
    // track_started: STARTED is visible while the task runs.
    let slow = publish(
        &redis,
        "hostile.run",
        json!(["sleep", 1500, ""]),
        "pipeline",
        |_| {},
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let raw: Option<String> = redis
            .conn()
            .get(format!("celery-task-meta-{slow}"))
            .unwrap();
        if let Some(raw) = raw {
            let meta: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(meta["status"], "STARTED", "seen before it finished");
            assert_eq!(meta["result"]["hostname"], "taskbox@started");
            break;
        }
        assert!(Instant::now() < deadline, "STARTED never stored");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        wait_result(&redis, &slow, Duration::from_secs(20))["status"],
        "SUCCESS"
    );
    // An early-acked task is gone from unacked while it runs.
    let early = publish(&redis, "record", json!(["early"]), "dataset", |_| {});
    assert_eq!(
        wait_result(&redis, &early, Duration::from_secs(20))["status"],
        "SUCCESS"
    );
    for id in [&by_header, &by_config] {
        let stored: bool = redis
            .conn()
            .exists(format!("celery-task-meta-{id}"))
            .unwrap();
        assert!(!stored, "no result stored for {id}");
    }
    assert!(worker.logs().contains("task succeeded"));
}
