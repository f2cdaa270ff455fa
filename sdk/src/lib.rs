//! Write taskbox tasks in Rust and compile them to a sandboxed WebAssembly component.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. Each task is an ordinary Rust
//! function marked `#[task]`; its parameters are bound from a Celery call's positional `args`
//! and keyword `kwargs` exactly as Python binds a call, and its return value is serialized to
//! JSON as the task result. `export_plugin!` exports the tasks as the component's handler.
//!
//! ```
//! use taskbox_sdk::{Context, TaskError, export_plugin, kv, log, task};
//!
//! /// `greet.hello(name, greeting="Hello")`
//! #[task(name = "greet.hello")]
//! fn hello(ctx: &Context, name: String, #[default("Hello")] greeting: String) -> Result<String, TaskError> {
//!     if name.is_empty() {
//!         // Bad input: the host never retries a reject.
//!         return Err(TaskError::reject("name must not be empty"));
//!     }
//!     log::info(format!("greeting {name} on attempt {}", ctx.attempt));
//!     // A kv outage becomes a retry through `?`.
//!     kv::set(&format!("seen/{name}"), b"1")?;
//!     Ok(format!("{greeting}, {name}!"))
//! }
//!
//! export_plugin!(hello);
//!
//! // Plugin logic is plain Rust: test it natively with `cargo test`, no wasm needed.
//! # fn main() {
//! let ctx = Context::for_test("greet.hello");
//! assert_eq!(hello(&ctx, "Ada".into(), "Hi".into()).unwrap(), "Hi, Ada!");
//!
//! // Or go through argument binding, as the worker does.
//! use serde_json::json;
//! let out = taskbox_sdk::testing::call(TASKBOX_TASKS, "greet.hello", json!(["Ada"]), json!({})).unwrap();
//! assert_eq!(out, json!("Hello, Ada!"));
//! let err = taskbox_sdk::testing::call(TASKBOX_TASKS, "greet.hello", json!(["Ada"]), json!({"nme": "x"})).unwrap_err();
//! assert!(err.to_string().contains("unexpected keyword argument 'nme'"));
//! # }
//! ```
//!
//! # Binding rules
//! - Parameters are filled left to right from `args`, then by name from `kwargs`; a value given
//!   both ways, a missing required parameter, an unknown keyword or too many positional
//!   arguments is a [`TaskError::Reject`] that names the parameter.
//! - `Option<T>` parameters default to `None`; `#[default(expr)]` gives any other default (a
//!   string literal fills a `String`).
//! - A `&Context` (or `Context`) parameter receives the task's context and takes no argument.
//! - One `#[kwargs] rest: Kwargs` parameter collects the keywords no other parameter took, like
//!   Python's `**kwargs`.
//! - The return type is any `serde::Serialize` value, or `Result<T, E>` with `E: Into<TaskError>`.
//!   A [`RawJson`] is returned as the JSON text it holds, for a task that writes a large result
//!   with its own faster writer.
//!
//! # Host capabilities
//! [`log`], [`kv`], [`mail`], [`queue`], [`progress`] and [`housekeeping`] call into the host. The operator grants
//! each one per plugin; a component that imports one it was not granted is refused at load
//! time. Natively (in `cargo test`) they are backed by in-memory fakes that [`testing`] exposes.
//!
//! # Build
//! `cargo build --target wasm32-wasip2 --release` produces `target/wasm32-wasip2/release/<crate>.wasm`,
//! which `taskbox exec` runs directly.
#![deny(missing_docs)]

mod context;
mod error;
pub mod housekeeping;
pub mod kv;
pub mod log;
pub mod mail;
pub mod progress;
pub mod queue;
mod raw;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod __private;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(missing_docs, reason = "generated bindings; the public API wraps them")]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "taskbox:task/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_wit",
        default_bindings_module: "taskbox_sdk::wit",
    });
}

pub use context::Context;
pub use error::TaskError;
pub use raw::RawJson;
pub use serde_json::{Map, Value, json};
pub use taskbox_sdk_macro::{export_plugin, task};

/// The type of a `#[kwargs]` parameter: every keyword argument no named parameter took.
pub type Kwargs = serde_json::Map<String, serde_json::Value>;

/// One task of a plugin: its registered name and the glue `#[task]` generated for it.
#[derive(Clone, Copy)]
pub struct TaskDef {
    /// The registered task name (`#[task(name = ...)]`, or the function name).
    pub name: &'static str,
    /// Binds a call to the function's parameters, runs it and serializes the result.
    pub run: fn(&Context, __private::Call) -> Result<Vec<u8>, TaskError>,
}

impl std::fmt::Debug for TaskDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskDef").field("name", &self.name).finish()
    }
}
