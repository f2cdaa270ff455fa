//! Glue used by the code `#[task]` and `export_plugin!` generate. Not a public API: it may
//! change in any release.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Context, TaskDef, TaskError};

/// A decoded call: positional and keyword arguments.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
}

impl Call {
    /// Parses the JSON the host passes; anything but an array and an object is a reject.
    pub fn from_json(args: &str, kwargs: &str) -> Result<Self, TaskError> {
        let args = if args.trim().is_empty() {
            Vec::new()
        } else {
            match serde_json::from_str::<Value>(args) {
                Ok(Value::Array(items)) => items,
                Ok(Value::Null) => Vec::new(),
                Ok(other) => {
                    return Err(TaskError::reject(format!(
                        "args must be a JSON array, got {}",
                        kind(&other)
                    )));
                }
                Err(err) => {
                    return Err(TaskError::reject(format!("args is not valid JSON: {err}")));
                }
            }
        };
        let kwargs = if kwargs.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(kwargs) {
                Ok(Value::Object(map)) => map,
                Ok(Value::Null) => Map::new(),
                Ok(other) => {
                    return Err(TaskError::reject(format!(
                        "kwargs must be a JSON object, got {}",
                        kind(&other)
                    )));
                }
                Err(err) => {
                    return Err(TaskError::reject(format!(
                        "kwargs is not valid JSON: {err}"
                    )));
                }
            }
        };
        Ok(Call { args, kwargs })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Binds a call to parameters the way Python binds `f(*args, **kwargs)`.
#[derive(Debug)]
pub struct Binder {
    args: Vec<Option<Value>>,
    kwargs: Map<String, Value>,
}

impl Binder {
    /// Starts binding; too many positional arguments is a reject unless `has_rest` (Python's
    /// `**kwargs` does not absorb positionals, so it does not matter here either).
    pub fn new(call: Call, positional: usize, _has_rest: bool) -> Result<Self, TaskError> {
        if call.args.len() > positional {
            return Err(TaskError::reject(format!(
                "takes {positional} positional argument{} but {} were given",
                if positional == 1 { "" } else { "s" },
                call.args.len()
            )));
        }
        Ok(Binder {
            args: call.args.into_iter().map(Some).collect(),
            kwargs: call.kwargs,
        })
    }

    /// The value for parameter `name` at `position`, if the call gave one.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        position: usize,
        name: &str,
    ) -> Result<Option<T>, TaskError> {
        let positional = self.args.get_mut(position).and_then(Option::take);
        let keyword = self.kwargs.remove(name);
        let value = match (positional, keyword) {
            (Some(_), Some(_)) => {
                return Err(TaskError::reject(format!(
                    "got multiple values for argument '{name}'"
                )));
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => return Ok(None),
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|err| TaskError::reject(format!("argument '{name}': {err}")))
    }

    /// Like [`Binder::take`], but a missing value is a reject naming the parameter.
    pub fn required<T: DeserializeOwned>(
        &mut self,
        position: usize,
        name: &str,
    ) -> Result<T, TaskError> {
        self.take(position, name)?
            .ok_or_else(|| TaskError::reject(format!("missing required argument '{name}'")))
    }

    /// Every keyword argument not taken yet (Python's `**kwargs`).
    pub fn rest_kwargs<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, TaskError> {
        let rest = std::mem::take(&mut self.kwargs);
        serde_json::from_value(Value::Object(rest))
            .map_err(|err| TaskError::reject(format!("argument '**{name}': {err}")))
    }

    /// Ends binding: a keyword nobody took is a reject naming it.
    pub fn finish(self) -> Result<(), TaskError> {
        match self.kwargs.keys().next() {
            Some(key) => Err(TaskError::reject(format!(
                "unexpected keyword argument '{key}'"
            ))),
            None => Ok(()),
        }
    }
}

/// A task's return value as the JSON result: serialized with serde_json, or taken as it is
/// when it is already JSON text ([`RawJson`](crate::RawJson)).
pub trait IntoOutput {
    /// The JSON bytes of the result.
    fn into_output(self) -> Result<Vec<u8>, TaskError>;
}

impl<T: Serialize> IntoOutput for T {
    fn into_output(self) -> Result<Vec<u8>, TaskError> {
        serde_json::to_vec(&self).map_err(|err| {
            TaskError::fail(format!("result could not be serialized as JSON: {err}"))
        })
    }
}

impl IntoOutput for crate::RawJson {
    fn into_output(self) -> Result<Vec<u8>, TaskError> {
        Ok(self.into_bytes())
    }
}

/// The names of the tasks a plugin serves.
pub fn task_names(defs: &[TaskDef]) -> Vec<String> {
    defs.iter().map(|d| d.name.to_string()).collect()
}

/// Finds the task for `ctx.name` and runs it on the JSON call.
///
/// The JSON text is taken by value and dropped once parsed, so a task with a large argument
/// reuses that memory instead of growing the instance's (each fresh page of guest memory costs
/// a page fault).
pub fn run_call(
    defs: &[TaskDef],
    ctx: &Context,
    args: String,
    kwargs: String,
) -> Result<Vec<u8>, TaskError> {
    let Some(def) = defs.iter().find(|d| d.name == ctx.name) else {
        return Err(TaskError::reject(format!(
            "task '{}' is not served by this plugin (it serves: {})",
            ctx.name,
            task_names(defs).join(", ")
        )));
    };
    reserve_heap(args.len().saturating_add(kwargs.len()));
    let call = Call::from_json(&args, &kwargs)?;
    drop((args, kwargs));
    (def.run)(ctx, call)
}

/// Grows the guest's heap by `bytes` in one step and hands the space back to the allocator
/// untouched. The JSON parser's buffer for a large string then grows in place inside it:
/// without this, each doubling of that buffer is a fresh allocation further up, a copy, and a
/// page fault for every page it lands on. The reserved space counts against the task's memory
/// cap like any growth, so it is kept to the size of the JSON text, which parsing a large
/// string needs anyway for its copy.
fn reserve_heap(bytes: usize) {
    const WORTH_IT: usize = 256 * 1024;
    if cfg!(target_arch = "wasm32") && bytes >= WORTH_IT {
        // `black_box`: an allocation nothing uses is otherwise optimised away.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(bytes)));
    }
}

#[cfg(target_arch = "wasm32")]
pub use crate::wit::exports::taskbox::task::handler::Guest;
#[cfg(target_arch = "wasm32")]
pub use crate::wit::taskbox::task::types::{
    Call as WitCall, TaskContext as WitContext, TaskError as WitTaskError,
};

/// The body of the exported `handler.run`.
#[cfg(target_arch = "wasm32")]
pub fn dispatch(defs: &[TaskDef], ctx: WitContext, call: WitCall) -> Result<Vec<u8>, WitTaskError> {
    use crate::wit::taskbox::task::types::RetrySpec;
    let ctx = Context {
        id: ctx.id,
        name: ctx.name,
        queue: ctx.queue,
        attempt: ctx.attempt,
        deadline_ms: ctx.deadline_ms,
    };
    run_call(defs, &ctx, call.args, call.kwargs).map_err(|err| match err {
        TaskError::Retry { reason, countdown } => WitTaskError::Retry(RetrySpec {
            reason,
            countdown_ms: countdown.map(|d| d.as_millis().min(u64::MAX as u128) as u64),
        }),
        TaskError::Reject(message) => WitTaskError::Reject(message),
        TaskError::Fail(message) => WitTaskError::Fail(message),
    })
}
