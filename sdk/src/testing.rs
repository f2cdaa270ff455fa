//! Native test support: run tasks through argument binding, and inspect what they did with
//! the host capabilities, without building wasm.
//!
//! Natively, every capability is backed by per-thread in-memory state (each `#[test]` runs on
//! its own thread, so tests do not see each other's keys or mail).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

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
    let out = crate::__private::run_call(tasks, &ctx, &args.to_string(), &kwargs.to_string())?;
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
