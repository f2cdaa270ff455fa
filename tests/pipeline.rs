//! The document pipeline end to end: every file of the example corpus goes through the Celery
//! chain `extract.text → chunking.split → indexing.index` (sent with `taskbox send --chain`)
//! on a real worker and Redis, across the `pipeline` and `dataset` queues; then searches prove
//! the corpus is retrievable: the document holding a query's rare words ranks first.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use taskbox_tests::redis::RedisServer;
use taskbox_tests::tasks::{send, wait_success};
use taskbox_tests::worker::{WorkerProcess, test_config};

const LONG: Duration = Duration::from_secs(60);

fn corpus() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/documents");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/documents exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("md" | "html" | "csv" | "json" | "docx" | "txt")
            )
        })
        .collect();
    files.sort();
    files
}

fn search(redis: &RedisServer, dataset: &str, query: &str) -> Vec<Value> {
    let id = send(
        redis,
        "indexing.search",
        json!([dataset, query]),
        json!({}),
        "dataset",
    );
    let found = wait_success(redis, &id, LONG);
    found["results"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_example_corpus_goes_through_the_chain_and_is_searchable() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = test_config(tmp.path(), "");
    let _worker = WorkerProcess::start(&redis, &cfg, &["-Q", "pipeline,dataset", "-c", "4"]);
    let files = corpus();
    assert!(
        files.len() >= 8,
        "the corpus has Markdown, HTML, CSV, JSON and DOCX files"
    );

    for (dataset, technique) in [("corpus", "economy"), ("corpus-hq", "high_quality")] {
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let document = json!({
                "id": name,
                "filename": name,
                "content_base64": base64::engine::general_purpose::STANDARD.encode(std::fs::read(file).unwrap()),
            });
            let out = Command::new(taskbox_tests::taskbox_bin())
                .args(["send", "extract.text", "--args"])
                .arg(json!([document]).to_string())
                .args(["--chain", "chunking.split", "--chain"])
                .arg(format!(
                    "indexing.index:{}",
                    json!({"dataset": dataset, "technique": technique})
                ))
                .args(["--wait", "60", "--config"])
                .arg(&cfg)
                .arg("--broker")
                .arg(redis.url())
                .env("LOG_LEVEL", "warn")
                .env_remove("CELERY_BROKER_URL")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let indexed: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
                panic!("{name}: the chain's result is not JSON ({e}): {stdout}")
            });
            assert_eq!(indexed["document_id"], name.as_str(), "{indexed}");
            assert!(
                indexed["segments"].as_u64().unwrap() > 0,
                "{name}: {indexed}"
            );
        }
    }

    // Economy (TF-IDF): the segment holding the query's rare words ranks first.
    let hits = search(&redis, "corpus", "bellwether canary");
    assert_eq!(hits[0]["document_id"], "worker-fleet.csv", "{hits:?}");
    assert!(hits[0]["content"].as_str().unwrap().contains("bellwether"));
    let hits = search(&redis, "corpus", "gnomon sundial");
    assert_eq!(hits[0]["document_id"], "backlog-runbook.docx", "{hits:?}");
    let hits = search(&redis, "corpus", "ambient authority capabilities");
    assert_eq!(hits[0]["document_id"], "wasm-capabilities.html", "{hits:?}");
    // High quality (the built-in hashed n-gram embedder, a stand-in for a real model): the
    // right document is among the first three.
    for (query, doc) in [
        ("bellwether canary", "worker-fleet.csv"),
        ("gnomon sundial", "backlog-runbook.docx"),
    ] {
        let hits = search(&redis, "corpus-hq", query);
        assert!(
            hits.iter().take(3).any(|h| h["document_id"] == doc),
            "{query}: {hits:?}"
        );
    }
}
