//! The built-in retention component end to end: a real worker and Redis holding results, dead
//! letters, kv entries and files of mixed ages; a dry run counts without deleting, a real run
//! deletes exactly what is old and granted, and nothing outside its grants is touched.

use std::path::Path;
use std::time::{Duration, SystemTime};

use redis::Commands as _;
use serde_json::json;
use taskbox::broker::message::format_timestamp;
use taskbox_tests::redis::RedisServer;
use taskbox_tests::tasks::{send, wait_success};
use taskbox_tests::worker::{WorkerProcess, test_config};

const LONG: Duration = Duration::from_secs(30);
const DAY: u64 = 24 * 3600;

fn ago(secs: u64) -> jiff::Timestamp {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(secs as i64))
        .unwrap()
}

fn write_aged(path: &Path, age_secs: u64) {
    std::fs::write(path, b"data").unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
        .unwrap();
}

#[test]
fn retention_sweeps_only_what_is_old_and_granted() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(storage.join("nested")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    write_aged(&storage.join("old.bin"), 40 * DAY);
    write_aged(&storage.join("nested/old.bin"), 40 * DAY);
    write_aged(&storage.join("new.bin"), 60);
    write_aged(&outside.join("old-outside.bin"), 40 * DAY);
    std::os::unix::fs::symlink(outside.join("old-outside.bin"), storage.join("link")).unwrap();

    let mut conn = redis.conn();
    // Results: two old, one new, one still running (no date_done).
    for (id, done) in [
        ("old-1", Some(10 * DAY)),
        ("old-2", Some(9 * DAY)),
        ("new-1", Some(60)),
        ("running", None),
    ] {
        let meta = match done {
            Some(age) => {
                json!({"status": "SUCCESS", "task_id": id, "date_done": format_timestamp(ago(age))})
            }
            None => json!({"status": "STARTED", "task_id": id}),
        };
        let _: () = conn
            .set(format!("celery-task-meta-{id}"), meta.to_string())
            .unwrap();
    }
    // Dead letters: newest at the head, as the worker pushes them.
    for (n, age) in [(1, 40 * DAY), (2, 35 * DAY), (3, 60)] {
        let entry = json!({"reason": format!("dead {n}"), "at": format_timestamp(ago(age))});
        let _: () = conn
            .lpush("taskbox:dead_letter", entry.to_string())
            .unwrap();
    }
    // The indexing namespace: a dataset deleted two days ago, a live one; and another
    // plugin's namespace retention was never granted.
    let deleted = json!({"deleted_at": ago(2 * DAY).as_second(), "dataset": "gone"}).to_string();
    let _: () = conn
        .hset_multiple(
            "taskbox:kv:indexing",
            &[
                ("tombstone:gone", deleted.as_str()),
                ("ds:gone:seg:1", "x"),
                ("ds:gone:term:queue", "x"),
                ("ds:live:meta", "x"),
                ("ds:live:seg:1", "x"),
            ],
        )
        .unwrap();
    let _: () = conn
        .hset("taskbox:kv:hostile", "ds:gone:seg:1", "x")
        .unwrap();

    let cfg = test_config(
        tmp.path(),
        &format!(
            "\n[plugins.retention]\ndirs = [\"{}:/storage\"]\n",
            storage.display()
        ),
    );
    let _worker = WorkerProcess::start(&redis, &cfg, &["-Q", "retention"]);
    let ages = json!({"results": "7d", "dead_letters": "30d", "datasets": "1d", "files": "30d"});

    // Dry run: counts, deletes nothing.
    let mut dry = ages.clone();
    dry["dry_run"] = json!(true);
    let id = send(&redis, "retention.sweep", json!([]), dry, "retention");
    let report = wait_success(&redis, &id, LONG);
    assert_eq!(report["results"]["matched"], 2, "{report}");
    assert_eq!(report["dead_letters"]["matched"], 2, "{report}");
    assert_eq!(report["files"]["matched"], 2, "{report}");
    assert_eq!(report["results"]["deleted"], 0, "{report}");
    assert!(storage.join("old.bin").exists());
    let kept: u64 = conn.llen("taskbox:dead_letter").unwrap();
    assert_eq!(kept, 3);

    // Real run.
    let id = send(
        &redis,
        "retention.sweep",
        json!([]),
        ages.clone(),
        "retention",
    );
    let report = wait_success(&redis, &id, LONG);
    assert_eq!(report["results"]["deleted"], 2, "{report}");
    assert_eq!(report["dead_letters"]["deleted"], 2, "{report}");
    assert_eq!(report["datasets"]["finished"], 1, "{report}");
    assert_eq!(report["files"]["deleted"], 2, "{report}");
    for id in ["old-1", "old-2"] {
        assert!(
            !conn
                .exists::<_, bool>(format!("celery-task-meta-{id}"))
                .unwrap(),
            "{id}"
        );
    }
    for id in ["new-1", "running"] {
        assert!(
            conn.exists::<_, bool>(format!("celery-task-meta-{id}"))
                .unwrap(),
            "{id}"
        );
    }
    let left: Vec<String> = conn.lrange("taskbox:dead_letter", 0, -1).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("dead 3"));
    let indexing: Vec<String> = conn.hkeys("taskbox:kv:indexing").unwrap();
    let mut indexing = indexing;
    indexing.sort();
    assert_eq!(indexing, ["ds:live:meta", "ds:live:seg:1"]);
    assert!(
        conn.hexists::<_, _, bool>("taskbox:kv:hostile", "ds:gone:seg:1")
            .unwrap(),
        "an ungranted namespace was touched"
    );
    assert!(!storage.join("old.bin").exists());
    assert!(
        !storage.join("nested").exists(),
        "the emptied directory is removed"
    );
    assert!(storage.join("new.bin").exists());
    assert!(
        outside.join("old-outside.bin").exists(),
        "a file outside the grant was touched"
    );
    assert!(
        storage.join("link").symlink_metadata().is_ok(),
        "symlinks are left alone"
    );

    // Idempotent: a second run deletes nothing.
    let id = send(&redis, "retention.sweep", json!([]), ages, "retention");
    let report = wait_success(&redis, &id, LONG);
    assert_eq!(report["results"]["deleted"], 0, "{report}");
    assert_eq!(report["files"]["deleted"], 0, "{report}");
}
