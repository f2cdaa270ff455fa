//! The smallest useful guest: `noop` does nothing (the per-task overhead benchmark) and `echo`
//! returns its argument (the "next task still works" probe in the conformance suite).

use taskbox_sdk::{Value, export_plugin, task};

/// Does nothing and returns `null`.
#[task(name = "noop")]
fn noop() {}

/// Returns its argument unchanged.
#[task(name = "echo")]
fn echo(value: Value) -> Value {
    value
}

export_plugin!(noop, echo);
