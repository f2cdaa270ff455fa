//! A third-party-style plugin for the plugin-directory tests. The build sets
//! `TASKBOX_GUEST_VERSION`, so two builds are two components with different digests whose
//! answers say which one ran: that is how a test proves each task ran on its own version.

use std::time::Duration;

use taskbox_sdk::{TaskError, Value, export_plugin, json, kv, task};

/// The version this component was built as.
const VERSION: &str = match option_env!("TASKBOX_GUEST_VERSION") {
    Some(v) => v,
    None => "1",
};

/// `versioned.info(sleep_ms=0)`: sleeps, then answers with its build version.
#[task(name = "versioned.info")]
fn info(#[default(0)] sleep_ms: u64) -> Value {
    std::thread::sleep(Duration::from_millis(sleep_ms));
    json!({ "version": VERSION })
}

/// `versioned.kv_set(key, value)`: writes into this plugin's own kv namespace.
#[task(name = "versioned.kv_set")]
fn kv_set(key: String, value: String) -> Result<Value, TaskError> {
    kv::set(&key, value.as_bytes())?;
    Ok(json!("set"))
}

/// `versioned.read_file(path)`: reads a file through the plugin's granted directories.
#[task(name = "versioned.read_file")]
fn read_file(path: String) -> Result<Value, TaskError> {
    std::fs::read_to_string(&path)
        .map(|s| json!(s))
        .map_err(|e| TaskError::fail(format!("read {path}: {e}")))
}

export_plugin!(info, kv_set, read_file);
