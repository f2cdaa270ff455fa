//! The smallest useful guest: `noop` does nothing (the per-task overhead benchmark), `echo`
//! returns its argument (the "next task still works" probe), and `record` appends a label to a
//! list in kv so integration tests can see the order tasks ran in and how often; `not_json`
//! returns bytes that are not JSON (the worker must fail it).

use taskbox_sdk::{RawJson, TaskError, Value, export_plugin, kv, task};

/// Does nothing and returns `null`.
#[task(name = "noop")]
fn noop() {}

/// Returns its argument unchanged.
#[task(name = "echo")]
fn echo(value: Value) -> Value {
    value
}

/// Appends `label` to the JSON list under kv key `log` (default `order`) and returns the list's
/// new length. Not atomic across concurrent tasks: tests that read the order run one slot.
#[task(name = "record")]
fn record(label: Value, #[default("order")] log: String) -> Result<usize, TaskError> {
    let mut list: Vec<Value> = kv::get_json(&log)?.unwrap_or_default();
    list.push(label);
    kv::set_json(&log, &list)?;
    Ok(list.len())
}

/// Returns bytes that are not JSON through `RawJson`, which the SDK passes on unchecked: the
/// worker must fail the task, not store a broken result.
#[task(name = "not_json")]
fn not_json() -> RawJson {
    RawJson::new(b"{not json".to_vec())
}

export_plugin!(noop, echo, record, not_json);
