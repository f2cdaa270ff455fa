//! Native test support: run tasks through argument binding, and inspect what they did with
//! the host capabilities, without building wasm.
//!
//! Natively, every capability is backed by per-thread in-memory state (each `#[test]` runs on
//! its own thread, so tests do not see each other's keys or mail).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::housekeeping::{HousekeepingError, RecordKind};
use crate::kv::KvError;
use crate::log::Level;
use crate::mail::{MailError, Message};
use crate::queue::Enqueue;
use crate::{Context, TaskDef, TaskError};

/// A log record a task wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, String)>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) progress: Vec<(u64, u64, Option<String>)>,
    pub(crate) kv: BTreeMap<String, Vec<u8>>,
    pub(crate) mail: Vec<Message>,
    pub(crate) enqueued: Vec<Enqueue>,
    pub(crate) deny_kv: bool,
    pub(crate) deny_mail: bool,
    pub(crate) records: BTreeMap<RecordKind, Vec<u64>>,
    pub(crate) foreign_kv: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub(crate) housekeeping_namespaces: Option<Vec<String>>,
    pub(crate) deny_housekeeping: bool,
}

impl State {
    pub(crate) fn kv_check(&self) -> Result<&BTreeMap<String, Vec<u8>>, KvError> {
        if self.deny_kv {
            return Err(KvError::Denied(
                "kv was not granted (testing::deny_kv)".into(),
            ));
        }
        Ok(&self.kv)
    }

    pub(crate) fn housekeeping_check(
        &self,
        namespace: Option<&str>,
    ) -> Result<(), HousekeepingError> {
        if self.deny_housekeeping {
            return Err(HousekeepingError::Denied(
                "housekeeping was not granted (testing::deny_housekeeping)".into(),
            ));
        }
        if let (Some(ns), Some(granted)) = (namespace, &self.housekeeping_namespaces)
            && !granted.iter().any(|g| g == "*" || g == ns)
        {
            return Err(HousekeepingError::Denied(format!(
                "the kv namespace '{ns}' was not granted (testing::grant_namespaces)"
            )));
        }
        Ok(())
    }

    pub(crate) fn mail_check(&self) -> Result<(), MailError> {
        if self.deny_mail {
            return Err(MailError::Denied(
                "mail was not granted (testing::deny_mail)".into(),
            ));
        }
        Ok(())
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

pub(crate) fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Runs task `name` of a plugin the way the worker does: binds the JSON `args` and `kwargs`,
/// calls the function, and parses its JSON result.
pub fn call(tasks: &[TaskDef], name: &str, args: Value, kwargs: Value) -> Result<Value, TaskError> {
    let ctx = Context::for_test(name);
    let out = crate::__private::run_call(tasks, &ctx, args.to_string(), kwargs.to_string())?;
    serde_json::from_slice(&out)
        .map_err(|err| TaskError::fail(format!("task returned invalid JSON: {err}")))
}

/// Clears this thread's kv store, mail, queue, logs and progress, and lifts denials.
pub fn reset() {
    with_state(|s| *s = State::default());
}

/// Log records written so far.
pub fn logs() -> Vec<LogRecord> {
    with_state(|s| s.logs.clone())
}

/// Progress reports made so far, as `(current, total, message)`.
pub fn progress() -> Vec<(u64, u64, Option<String>)> {
    with_state(|s| s.progress.clone())
}

/// Every kv entry, sorted by key.
pub fn kv_entries() -> BTreeMap<String, Vec<u8>> {
    with_state(|s| s.kv.clone())
}

/// Mail sent so far.
pub fn sent_mail() -> Vec<Message> {
    with_state(|s| s.mail.clone())
}

/// Tasks enqueued so far.
pub fn enqueued() -> Vec<Enqueue> {
    with_state(|s| s.enqueued.clone())
}

/// Makes kv calls fail with `Denied`, as on a worker that did not grant `kv`.
pub fn deny_kv() {
    with_state(|s| s.deny_kv = true);
}

/// Makes mail calls fail with `Denied`, as on a worker that did not grant `mail`.
pub fn deny_mail() {
    with_state(|s| s.deny_mail = true);
}

/// Adds host records of `kind` (results or dead letters) with the given ages in seconds, for
/// `housekeeping::sweep` to find.
pub fn add_records(kind: RecordKind, ages_secs: &[u64]) {
    with_state(|s| {
        s.records
            .entry(kind)
            .or_default()
            .extend_from_slice(ages_secs)
    });
}

/// The ages of the records of `kind` still kept.
pub fn records(kind: RecordKind) -> Vec<u64> {
    with_state(|s| s.records.get(&kind).cloned().unwrap_or_default())
}

/// Writes a key into another plugin's kv namespace, as that plugin would have.
pub fn set_foreign_kv(namespace: &str, key: &str, value: &[u8]) {
    with_state(|s| {
        s.foreign_kv
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_vec());
    });
}

/// Every entry of another plugin's kv namespace.
pub fn foreign_kv(namespace: &str) -> BTreeMap<String, Vec<u8>> {
    with_state(|s| s.foreign_kv.get(namespace).cloned().unwrap_or_default())
}

/// Limits `housekeeping`'s kv calls to these namespaces (by default every namespace is
/// reachable natively), so a test can prove a plugin stays inside its grant.
pub fn grant_namespaces(namespaces: &[&str]) {
    with_state(|s| {
        s.housekeeping_namespaces = Some(namespaces.iter().map(|n| n.to_string()).collect());
    });
}

/// Makes every `housekeeping` call fail with `Denied`, as an ungranted capability would.
pub fn deny_housekeeping() {
    with_state(|s| s.deny_housekeeping = true);
}
