//! Interop with a real, unmodified Python Celery 5 producer (installed from PyPI into
//! `target/celery-venv` by `just venv`): it sends to taskbox workers and reads results with
//! `AsyncResult.get()`, which exercises the result key, its expiry and the PUBLISH it waits on.

use std::process::Command;

use serde_json::{Value, json};
use taskbox_tests::redis::RedisServer;
use taskbox_tests::worker::{WorkerProcess, test_config};

fn python() -> std::path::PathBuf {
    let py = taskbox_tests::target_dir()
        .join("celery-venv")
        .join("bin")
        .join("python");
    assert!(
        py.exists(),
        "{} is missing: run `just venv` (it installs Celery from PyPI)",
        py.display()
    );
    py
}

#[test]
fn a_python_celery_producer_gets_results_and_failures_from_taskbox() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[tasks."hostile.run".limits]
fuel = 100000000
"#;
    let _worker = WorkerProcess::start(&redis, &test_config(dir.path(), extra), &["-c", "4"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("celery_interop")
        .join("client.py");
    let out = Command::new(python())
        .arg(script)
        .arg(redis.url_db(0))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "celery client failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(seen["echo"], json!({"a": 1, "b": [1, 2]}));
    assert_eq!(seen["kwargs"], json!("ok"));
    assert_eq!(seen["countdown"], json!(1));
    assert!(
        seen["countdown_waited"].as_f64().unwrap() >= 1.4,
        "countdown honoured: {}",
        seen["countdown_waited"]
    );
    assert_eq!(seen["expired"], "TaskRevokedError");
    assert_eq!(seen["expired_state"], "REVOKED");
    assert_eq!(
        seen["failure"][0], "OutOfFuel",
        "Python sees the sandbox error kind as the exception type"
    );
    assert_eq!(seen["failure_state"], "FAILURE");
    assert_eq!(
        seen["chain"],
        json!(1),
        "record ran with echo's result prepended"
    );
    assert_eq!(seen["chain_parent"], json!(5));
}
