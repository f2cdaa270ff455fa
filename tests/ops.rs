//! Operating a fleet: `taskbox inspect` and `taskbox control` against real workers on a private
//! Redis, and the queue-depth monitor alerting a real SMTP server once per episode.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use redis::Commands as _;
use serde_json::{Value, json};
use taskbox::broker::message::{self, NewTask};
use taskbox_tests::redis::{RedisServer, free_port};
use taskbox_tests::smtp::SmtpServer;
use taskbox_tests::tasks::{meta, send, wait_final, wait_success, wait_until};
use taskbox_tests::worker::{WorkerProcess, test_config};

const LONG: Duration = Duration::from_secs(30);

/// Runs `taskbox <args> --json` against the test Redis and parses its output.
fn taskbox_json(config: &Path, redis: &RedisServer, args: &[&str]) -> (Output, Value) {
    let out = Command::new(taskbox_tests::taskbox_bin())
        .args(args)
        .arg("--json")
        .arg("--config")
        .arg(config)
        .arg("--broker")
        .arg(redis.url())
        .env("LOG_LEVEL", "warn")
        .env_remove("CELERY_BROKER_URL")
        .output()
        .expect("run taskbox");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`taskbox {}` printed no JSON ({e}): {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, value)
}

fn replies_by_name(v: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = v["replies"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                r["reply"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn inspect_sees_both_workers_and_their_tasks_and_drops_a_killed_one() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_config(tmp.path(), "");
    let w1 = WorkerProcess::start(&redis, &cfg, &["-n", "one@test", "-Q", "celery", "-c", "2"]);
    let mut w2 = WorkerProcess::start(&redis, &cfg, &["-n", "two@test", "-Q", "celery", "-c", "2"]);

    let (out, ping) = taskbox_json(&cfg, &redis, &["inspect", "ping"]);
    assert!(out.status.success(), "{ping}");
    let names: Vec<String> = replies_by_name(&ping).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["one@test", "two@test"]);

    let (_, registered) = taskbox_json(&cfg, &redis, &["inspect", "registered", "-d", "one@test"]);
    let regs = replies_by_name(&registered);
    assert_eq!(regs.len(), 1, "only the named worker answers: {registered}");
    assert!(
        regs[0]
            .1
            .as_array()
            .unwrap()
            .contains(&json!("hostile.run"))
    );

    let (_, stats) = taskbox_json(&cfg, &redis, &["inspect", "stats"]);
    for (_, s) in replies_by_name(&stats) {
        assert_eq!(s["concurrency"], 2, "{s}");
        assert_eq!(s["queues"], json!(["celery"]));
        assert!(s["pid"].as_u64().unwrap() > 0);
        assert!(
            s["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "hostile")
        );
    }

    // A running task shows up in `active` on the worker that runs it.
    let id = send(
        &redis,
        "hostile.run",
        json!(["sleep", 3000]),
        json!({}),
        "celery",
    );
    wait_until("the task to be active", LONG, || {
        let (_, active) = taskbox_json(&cfg, &redis, &["inspect", "active"]);
        replies_by_name(&active).iter().any(|(_, tasks)| {
            tasks
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x["id"] == id.as_str()))
        })
    });

    // A worker killed outright stops answering: first marked as silent while its heartbeat
    // is still fresh, then dropped once the heartbeat lapses.
    w2.sigkill();
    let (out, ping) = taskbox_json(&cfg, &redis, &["inspect", "ping", "--timeout", "1s"]);
    let silent = ping["no_reply"].as_array().cloned().unwrap_or_default();
    if !silent.is_empty() {
        assert!(!out.status.success(), "a silent worker makes inspect fail");
        assert!(
            silent[0].as_str().unwrap().starts_with("two@test"),
            "{ping}"
        );
    }
    wait_until("the killed worker to drop out", LONG, || {
        let (out, ping) = taskbox_json(&cfg, &redis, &["inspect", "ping", "--timeout", "1s"]);
        out.status.success()
            && replies_by_name(&ping)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                == ["one@test"]
    });
    wait_success(&redis, &id, LONG);
    drop(w1);
}

#[test]
fn revoke_terminate_stops_a_spinning_task_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    // Fuel off for the hostile guest, so only the wall clock (a minute) would stop a spin.
    let cfg = test_config(
        tmp.path(),
        "[tasks.\"hostile.run\"]\nlimits = { fuel = 0, timeout = \"60s\" }\n",
    );
    let worker = WorkerProcess::start(&redis, &cfg, &["-Q", "celery", "-c", "2"]);
    let spin = send(&redis, "hostile.run", json!(["spin"]), json!({}), "celery");
    wait_until("the spin to start", LONG, || {
        redis.conn().hlen::<_, u64>("unacked").unwrap_or(0) > 0
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (out, reply) = taskbox_json(&cfg, &redis, &["control", "revoke", &spin, "--terminate"]);
    assert!(out.status.success(), "{reply}");
    let terminated = &replies_by_name(&reply)[0].1["terminated"];
    assert_eq!(terminated, &json!(["hostile.run"]), "{reply}");
    let meta = wait_final(&redis, &spin, LONG);
    assert_eq!(meta["status"], "REVOKED", "{meta}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "terminate took {:?}",
        started.elapsed()
    );

    // The worker carries on.
    let ok = send(&redis, "hostile.run", json!(["ok"]), json!({}), "celery");
    assert_eq!(wait_success(&redis, &ok, LONG), json!("ok"));

    // A task revoked before it is delivered never runs.
    let mut later = NewTask::new("hostile.run", "celery");
    later.args = vec![json!("ok")];
    let (out, _) = taskbox_json(&cfg, &redis, &["control", "revoke", &later.id]);
    assert!(out.status.success());
    let (key, envelope) = message::encode(&later);
    let _: () = redis.conn().lpush(key, envelope).unwrap();
    assert_eq!(wait_final(&redis, &later.id, LONG)["status"], "REVOKED");
    assert!(worker.logs().contains("task was revoked"));
}

#[test]
fn control_resizes_the_pool_and_shuts_a_worker_down() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_config(tmp.path(), "");
    let mut worker = WorkerProcess::start(
        &redis,
        &cfg,
        &["-n", "pool@test", "-Q", "celery", "-c", "2"],
    );
    let (_, grown) = taskbox_json(&cfg, &redis, &["control", "pool-grow", "2"]);
    assert_eq!(replies_by_name(&grown)[0].1["slots"], 4, "{grown}");
    let (_, shrunk) = taskbox_json(&cfg, &redis, &["control", "pool-shrink", "3"]);
    assert_eq!(replies_by_name(&shrunk)[0].1["slots"], 1, "{shrunk}");
    let (_, stats) = taskbox_json(&cfg, &redis, &["inspect", "stats"]);
    assert_eq!(replies_by_name(&stats)[0].1["concurrency"], 1);
    // Still serving with one slot.
    let ok = send(&redis, "hostile.run", json!(["ok"]), json!({}), "celery");
    wait_success(&redis, &ok, LONG);

    let (out, _) = taskbox_json(&cfg, &redis, &["control", "shutdown", "-d", "pool@test"]);
    assert!(out.status.success());
    assert!(worker.wait(LONG).success(), "{}", worker.logs());
}

#[test]
fn the_queue_monitor_alerts_once_per_episode_and_reports_recovery() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start(free_port(), None);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_config(
        tmp.path(),
        &format!(
            r#"
[mail]
kind = "smtp"
smtp_server = "127.0.0.1"
smtp_port = {port}
default_from = "taskbox@example.com"

[monitor]
queues = ["dataset"]
threshold = 3
alert_emails = ["ops@example.com"]
"#,
            port = smtp.port()
        ),
    );
    // This worker does not consume `dataset`, so its depth stays where the test puts it.
    let _worker = WorkerProcess::start(&redis, &cfg, &["-Q", "ops_trace,mail"]);
    let monitor = || {
        let id = send(
            &redis,
            "ops.queue_monitor",
            json!([]),
            json!({}),
            "ops_trace",
        );
        wait_success(&redis, &id, LONG)
    };
    for i in 0..5 {
        let _: () = redis
            .conn()
            .lpush("dataset", format!("placeholder {i}"))
            .unwrap();
    }
    // `inspect queues` reads the same depth the monitor will see.
    let (_, queues) = taskbox_json(&cfg, &redis, &["inspect", "queues"]);
    let dataset = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "dataset")
        .cloned()
        .unwrap();
    assert_eq!(dataset["depth"], 5, "{queues}");
    assert_eq!(dataset["by_priority"]["0"], 5, "{queues}");
    // Three runs while the queue stays over the threshold: one alert.
    let first = monitor();
    assert_eq!(first["checked"][0]["alerting"], true, "{first}");
    assert!(first["checked"][0]["sent"]["alert"].is_array(), "{first}");
    for _ in 0..2 {
        let again = monitor();
        assert_eq!(again["checked"][0]["sent"], Value::Null, "{again}");
    }
    wait_until("the alert mail", LONG, || smtp.messages().len() == 1);
    let alert = &smtp.messages()[0];
    assert!(
        alert.field("to").contains("ops@example.com"),
        "{:?}",
        alert.json
    );
    assert!(alert.field("text").contains("dataset"), "{:?}", alert.json);

    // Back under the threshold: one recovery notice, then quiet.
    let _: () = redis.conn().del("dataset").unwrap();
    let recovered = monitor();
    assert!(
        recovered["checked"][0]["sent"]["recovery"].is_array(),
        "{recovered}"
    );
    let quiet = monitor();
    assert_eq!(quiet["checked"][0]["sent"], Value::Null);
    wait_until("the recovery mail", LONG, || smtp.messages().len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        smtp.messages().len(),
        2,
        "exactly one alert and one recovery"
    );
    assert!(meta(&redis, "nonexistent").is_none());
}

#[test]
fn celerys_own_ping_and_revoke_reach_a_taskbox_worker() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_config(
        tmp.path(),
        "[tasks.\"hostile.run\"]\nlimits = { fuel = 0, timeout = \"60s\" }\n",
    );
    let _worker = WorkerProcess::start(&redis, &cfg, &["-n", "tb@test", "-Q", "celery"]);
    let spin = send(&redis, "hostile.run", json!(["spin"]), json!({}), "celery");
    wait_until("the spin to start", LONG, || {
        redis.conn().hlen::<_, u64>("unacked").unwrap_or(0) > 0
    });
    // A stock Celery client: `app.control.ping()` then `app.control.revoke(..., terminate=True)`.
    let script = r#"
import json, sys
from celery import Celery
app = Celery(broker=sys.argv[1])
print(json.dumps(app.control.ping(timeout=3.0)))
app.control.revoke(sys.argv[2], terminate=True)
"#;
    let out = Command::new(taskbox_tests::smtp::python())
        .arg("-c")
        .arg(script)
        .arg(redis.url())
        .arg(&spin)
        .output()
        .expect("run the Celery client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pongs: Value = serde_json::from_slice(&out.stdout).expect("ping replies are JSON");
    assert_eq!(pongs, json!([{"tb@test": {"ok": "pong"}}]));
    assert_eq!(wait_final(&redis, &spin, LONG)["status"], "REVOKED");
}
