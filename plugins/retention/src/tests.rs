//! Native tests of `retention.sweep` against the SDK's in-memory housekeeping fakes and a
//! real temporary directory.

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskbox_sdk::housekeeping::{HousekeepingError, RecordKind};
use taskbox_sdk::testing::{self, call};
use taskbox_sdk::{TaskError, Value, json};

use super::*;

const DAY: u64 = 86_400;

fn run(kwargs: Value) -> Result<Value, TaskError> {
    call(TASKBOX_TASKS, "retention.sweep", json!([]), kwargs)
}

/// Only the record categories, so a test does not depend on `/storage` or the kv fakes.
fn records_only(extra: Value) -> Value {
    let mut kw = json!({"datasets": null, "files": null});
    if let (Value::Object(base), Value::Object(extra)) = (&mut kw, extra) {
        base.extend(extra);
    }
    kw
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn tombstone(enc: &str, age_secs: u64) {
    let value = json!({"deleted_at": now_secs() - age_secs, "dataset": enc.to_uppercase()});
    testing::set_foreign_kv(
        datasets::NAMESPACE,
        &format!("tombstone:{enc}"),
        value.to_string().as_bytes(),
    );
}

fn ds_keys(enc: &str, n: usize) {
    for i in 0..n {
        testing::set_foreign_kv(datasets::NAMESPACE, &format!("ds:{enc}:k{i}"), b"v");
    }
}

fn indexing_keys() -> Vec<String> {
    testing::foreign_kv(datasets::NAMESPACE)
        .into_keys()
        .collect()
}

fn write_file(path: &Path, bytes: usize, age: Duration) {
    fs::write(path, vec![b'x'; bytes]).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn old_results_and_dead_letters_are_deleted() {
    testing::add_records(RecordKind::Results, &[10, 8 * DAY, 3600, 9 * DAY]);
    testing::add_records(RecordKind::DeadLetters, &[8 * DAY, 31 * DAY]);
    let out = run(records_only(json!({}))).unwrap();
    assert_eq!(out["dry_run"], false);
    assert_eq!(
        out["results"],
        json!({"matched": 2, "deleted": 2, "more": false})
    );
    assert_eq!(
        out["dead_letters"],
        json!({"matched": 1, "deleted": 1, "more": false})
    );
    assert_eq!(out["datasets"], Value::Null);
    assert_eq!(out["files"], Value::Null);
    assert_eq!(testing::records(RecordKind::Results), [10, 3600]);
    assert_eq!(testing::records(RecordKind::DeadLetters), [8 * DAY]);
}

#[test]
fn ages_are_taken_from_the_keywords() {
    testing::add_records(RecordKind::Results, &[30, 90, 4000]);
    testing::add_records(RecordKind::DeadLetters, &[30 * DAY + 5]);
    let out = run(records_only(
        json!({"results": "1m", "dead_letters": "off"}),
    ))
    .unwrap();
    assert_eq!(out["results"]["deleted"], 2);
    assert_eq!(out["dead_letters"], Value::Null);
    assert_eq!(testing::records(RecordKind::Results), [30]);
    assert_eq!(testing::records(RecordKind::DeadLetters), [30 * DAY + 5]);
}

#[test]
fn dry_run_counts_records_and_deletes_nothing() {
    testing::add_records(RecordKind::Results, &[8 * DAY, 9 * DAY, 1]);
    let out = run(records_only(json!({"dry_run": true}))).unwrap();
    assert_eq!(out["dry_run"], true);
    assert_eq!(
        out["results"],
        json!({"matched": 2, "deleted": 0, "more": false})
    );
    assert_eq!(testing::records(RecordKind::Results).len(), 3);
}

#[test]
fn batch_size_bounds_each_run_and_reports_more() {
    testing::add_records(RecordKind::Results, &[8 * DAY; 5]);
    let out = run(records_only(json!({"batch_size": 3}))).unwrap();
    assert_eq!(
        out["results"],
        json!({"matched": 3, "deleted": 3, "more": true})
    );
    assert_eq!(testing::records(RecordKind::Results).len(), 2);
    let out = run(records_only(json!({"batch_size": 3}))).unwrap();
    assert_eq!(
        out["results"],
        json!({"matched": 2, "deleted": 2, "more": false})
    );
    assert!(testing::records(RecordKind::Results).is_empty());
}

#[test]
fn tombstoned_datasets_are_removed_and_live_ones_stay() {
    tombstone("old", 2 * DAY);
    ds_keys("old", 5);
    tombstone("young", 3600);
    ds_keys("young", 2);
    // A live dataset, including one whose name merely starts like the tombstoned one.
    ds_keys("live", 2);
    ds_keys("oldx", 1);
    let out = run(records_only(json!({"datasets": "1d"}))).unwrap();
    assert_eq!(
        out["datasets"],
        json!({"matched": 1, "finished": 1, "keys_deleted": 5, "more": false})
    );
    assert_eq!(
        indexing_keys(),
        [
            "ds:live:k0",
            "ds:live:k1",
            "ds:oldx:k0",
            "ds:young:k0",
            "ds:young:k1",
            "tombstone:young"
        ]
    );
}

#[test]
fn dataset_removal_is_bounded_and_resumes() {
    tombstone("a", 3 * DAY);
    ds_keys("a", 5);
    tombstone("b", 3 * DAY);
    ds_keys("b", 1);
    let kw = records_only(json!({"datasets": "1d", "batch_size": 3}));

    let dry = run(json!({"dry_run": true, "datasets": "1d", "batch_size": 3, "results": null, "dead_letters": null, "files": null})).unwrap();
    let first = run(kw.clone()).unwrap();
    assert_eq!(
        dry["datasets"], first["datasets"],
        "a dry run predicts the run"
    );
    assert_eq!(
        first["datasets"],
        json!({"matched": 1, "finished": 0, "keys_deleted": 3, "more": true})
    );
    let second = run(kw.clone()).unwrap();
    // Two keys and the tombstone of `a` use the batch of three; `b` waits.
    assert_eq!(
        second["datasets"],
        json!({"matched": 1, "finished": 1, "keys_deleted": 2, "more": true})
    );
    let third = run(kw.clone()).unwrap();
    assert_eq!(
        third["datasets"],
        json!({"matched": 1, "finished": 1, "keys_deleted": 1, "more": false})
    );
    assert!(indexing_keys().is_empty());
    let fourth = run(kw).unwrap();
    assert_eq!(
        fourth["datasets"],
        json!({"matched": 0, "finished": 0, "keys_deleted": 0, "more": false})
    );
}

#[test]
fn dataset_dry_run_deletes_nothing() {
    tombstone("old", 2 * DAY);
    ds_keys("old", 4);
    let before = indexing_keys();
    let out = run(json!({"dry_run": true, "results": null, "dead_letters": null, "files": null}))
        .unwrap();
    assert_eq!(
        out["datasets"],
        json!({"matched": 1, "finished": 1, "keys_deleted": 4, "more": false})
    );
    assert_eq!(indexing_keys(), before);
}

#[test]
fn malformed_tombstones_are_left_alone() {
    testing::set_foreign_kv(datasets::NAMESPACE, "tombstone:bad", b"not json");
    ds_keys("bad", 1);
    let out = run(records_only(json!({"datasets": 0}))).unwrap();
    assert_eq!(out["datasets"]["matched"], 0);
    assert_eq!(indexing_keys(), ["ds:bad:k0", "tombstone:bad"]);
}

#[test]
fn ungranted_namespace_skips_datasets_only() {
    testing::grant_namespaces(&[]);
    testing::add_records(RecordKind::Results, &[8 * DAY]);
    tombstone("old", 2 * DAY);
    ds_keys("old", 1);
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("old.bin"),
        3,
        Duration::from_secs(40 * DAY),
    );
    let out = run(json!({"paths": [dir.path().to_string_lossy()]})).unwrap();
    let skipped = out["datasets"]["skipped"].as_str().unwrap();
    assert!(skipped.contains("indexing"), "{skipped}");
    assert_eq!(out["results"]["deleted"], 1);
    assert_eq!(out["files"]["deleted"], 1);
    assert_eq!(indexing_keys(), ["ds:old:k0", "tombstone:old"]);
}

#[test]
fn denied_capability_fails_the_run() {
    testing::deny_housekeeping();
    let err = run(records_only(json!({}))).unwrap_err();
    assert!(
        matches!(&err, TaskError::Fail(m) if m.contains("housekeeping capability")),
        "{err}"
    );
    // Not a namespace problem either when only datasets run.
    let err = run(json!({"results": null, "dead_letters": null, "files": null})).unwrap_err();
    assert!(matches!(err, TaskError::Fail(_)), "{err}");
}

#[test]
fn no_broker_skips_a_category_but_an_outage_retries() {
    let no_broker = HousekeepingError::Unavailable(
        "there are no stored results or dead letters here: this runs without a broker".into(),
    );
    assert!(matches!(
        section::<RecordsReport>(Err(no_broker)),
        Ok(Section::Skipped { skipped }) if skipped.contains("without a broker")
    ));
    let down = HousekeepingError::Unavailable("connection refused".into());
    assert!(matches!(
        section::<RecordsReport>(Err(down.clone())),
        Err(TaskError::Retry { .. })
    ));
    assert!(matches!(
        datasets_section(Err(down)),
        Err(TaskError::Retry { .. })
    ));
    let skipped = serde_json::to_value(Section::<RecordsReport>::Skipped {
        skipped: "why".into(),
    })
    .unwrap();
    assert_eq!(skipped, json!({"skipped": "why"}));
}

#[cfg(unix)]
#[test]
fn old_files_are_deleted_and_symlinks_left_alone() {
    let old = Duration::from_secs(40 * DAY);
    let fresh = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(&root.join("old.txt"), 10, old);
    write_file(&root.join("new.txt"), 20, fresh);
    fs::create_dir_all(root.join("nested/deeper")).unwrap();
    write_file(&root.join("nested/deeper/old.log"), 7, old);
    fs::create_dir(root.join("mixed")).unwrap();
    write_file(&root.join("mixed/old.log"), 5, old);
    write_file(&root.join("mixed/new.log"), 5, fresh);
    fs::create_dir(root.join("already-empty")).unwrap();
    // A symlink to an old file outside the tree, and one to an outside directory.
    let target = outside.path().join("target.txt");
    write_file(&target, 4, old);
    write_file(&outside.path().join("inside-linked-dir.txt"), 4, old);
    std::os::unix::fs::symlink(&target, root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("linkdir")).unwrap();
    let kw = json!({
        "results": null, "dead_letters": null, "datasets": null,
        "files": "30d", "paths": [root.to_string_lossy()],
    });

    let mut dry_kw = kw.clone();
    dry_kw["dry_run"] = json!(true);
    let dry = run(dry_kw).unwrap();
    assert_eq!(dry["files"]["matched"], 3);
    assert_eq!(dry["files"]["deleted"], 0);
    assert_eq!(dry["files"]["bytes"], 22);
    assert!(root.join("old.txt").exists());
    assert!(root.join("nested/deeper/old.log").exists());

    let out = run(kw.clone()).unwrap();
    let files = &out["files"];
    assert_eq!(files["matched"], 3);
    assert_eq!(files["deleted"], 3);
    assert_eq!(files["bytes"], 22);
    assert_eq!(files["more"], false);
    let skipped: Vec<&str> = files["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2, "{files}");
    assert!(
        skipped
            .iter()
            .all(|p| p.ends_with("link.txt") || p.ends_with("linkdir"))
    );

    assert!(!root.join("old.txt").exists());
    assert!(root.join("new.txt").exists());
    assert!(
        !root.join("nested").exists(),
        "emptied directories are removed"
    );
    assert!(root.join("mixed/new.log").exists());
    assert!(!root.join("mixed/old.log").exists());
    assert!(
        root.join("already-empty").exists(),
        "only what the sweep emptied goes"
    );
    assert!(root.exists());
    assert!(fs::symlink_metadata(root.join("link.txt")).is_ok());
    assert!(target.exists());
    assert!(outside.path().join("inside-linked-dir.txt").exists());

    let again = run(kw).unwrap();
    assert_eq!(again["files"]["deleted"], 0);
    assert_eq!(again["files"]["matched"], 0);
}

#[test]
fn the_root_itself_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("only.txt"),
        1,
        Duration::from_secs(2 * DAY),
    );
    let out = run(json!({
        "results": null, "dead_letters": null, "datasets": null,
        "files": "1d", "paths": [dir.path().to_string_lossy()],
    }))
    .unwrap();
    assert_eq!(out["files"]["deleted"], 1);
    assert!(dir.path().exists());
}

#[test]
fn file_batches_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write_file(
            &dir.path().join(format!("f{i}")),
            1,
            Duration::from_secs(2 * DAY),
        );
    }
    let kw = json!({
        "results": null, "dead_letters": null, "datasets": null,
        "files": "1d", "batch_size": 2, "paths": [dir.path().to_string_lossy()],
    });
    let out = run(kw.clone()).unwrap();
    assert_eq!(out["files"]["deleted"], 2);
    assert_eq!(out["files"]["more"], true);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    run(kw.clone()).unwrap();
    let out = run(kw).unwrap();
    assert_eq!(out["files"]["deleted"], 1);
    assert_eq!(out["files"]["more"], false);
}

#[test]
fn missing_paths_are_skipped_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    write_file(&file, 1, Duration::from_secs(60));
    let missing = dir.path().join("nope");
    let out = run(json!({
        "results": null, "dead_letters": null, "datasets": null,
        "paths": [missing.to_string_lossy(), file.to_string_lossy()],
    }))
    .unwrap();
    let skipped = out["files"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0]["path"], missing.to_string_lossy().as_ref());
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(skipped[1]["reason"], "not a directory");
}

#[test]
fn everything_is_idempotent() {
    testing::add_records(RecordKind::Results, &[8 * DAY, 1]);
    testing::add_records(RecordKind::DeadLetters, &[31 * DAY]);
    tombstone("gone", 2 * DAY);
    ds_keys("gone", 3);
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("old"), 1, Duration::from_secs(31 * DAY));
    let kw = json!({"paths": [dir.path().to_string_lossy()]});
    let first = run(kw.clone()).unwrap();
    assert_eq!(first["results"]["deleted"], 1);
    assert_eq!(first["dead_letters"]["deleted"], 1);
    assert_eq!(first["datasets"]["finished"], 1);
    assert_eq!(first["files"]["deleted"], 1);
    let second = run(kw).unwrap();
    assert_eq!(second["results"]["deleted"], 0);
    assert_eq!(second["dead_letters"]["deleted"], 0);
    assert_eq!(second["datasets"]["keys_deleted"], 0);
    assert_eq!(second["datasets"]["finished"], 0);
    assert_eq!(second["files"]["deleted"], 0);
}

#[test]
fn bad_arguments_are_rejected_by_name() {
    for (kw, name) in [
        (json!({"results": "7 days"}), "results"),
        (json!({"files": "-1d"}), "files"),
        (json!({"batch_size": 0}), "batch_size"),
        (json!({"paths": "/storage"}), "paths"),
        (json!({"dry_run": "yes"}), "dry_run"),
        (json!({"logs": "1d"}), "logs"),
    ] {
        let err = run(kw.clone()).unwrap_err();
        assert!(
            matches!(&err, TaskError::Reject(m) if m.contains(name)),
            "{kw}: {err}"
        );
    }
    let err = run(json!({"logs": "1d"})).unwrap_err();
    assert!(err.to_string().contains("dead_letters"), "{err}");
}
