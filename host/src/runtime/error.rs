//! `SandboxError`: every way a task component can fail, as one type callers match on.
//!
//! Classification happens once, in [`classify`], while the failure is still a
//! `wasmtime::Error`: a trap code, our limiter's typed error or a capability's typed error
//! decides the variant. Nothing downstream inspects message strings.

use std::time::Duration;

use thiserror::Error;

/// A task's own failure, as returned through the WIT `task-error` variant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskError {
    /// Run again later; `countdown` is the delay the task asked for, if any.
    Retry {
        /// Why the task wants a retry.
        reason: String,
        /// The delay the task asked for; `None` lets the retry policy choose.
        countdown: Option<Duration>,
    },
    /// Bad input: never retried.
    Reject {
        /// What was wrong with the input.
        message: String,
    },
    /// A failure the retry policy decides about.
    Fail {
        /// What failed.
        message: String,
    },
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Retry {
                reason,
                countdown: Some(d),
            } => write!(
                f,
                "task asked for a retry in {}: {reason}",
                humantime::format_duration(*d)
            ),
            TaskError::Retry {
                reason,
                countdown: None,
            } => write!(f, "task asked for a retry: {reason}"),
            TaskError::Reject { message } => write!(f, "task rejected its input: {message}"),
            TaskError::Fail { message } => write!(f, "task failed: {message}"),
        }
    }
}

/// Why a task did not produce output. Each variant is one distinct cause; the worker's retry
/// policy and `taskbox exec`'s exit code are chosen from the variant alone.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The task used its whole fuel budget (deterministic CPU limit).
    #[error("out of fuel: the task used its whole budget of {budget} fuel units")]
    OutOfFuel {
        /// The budget the task had.
        budget: u64,
    },
    /// The task tried to grow memory (or tables, or instances) past its cap.
    #[error("memory limit: the task asked for {requested} {resource}, the limit is {limit}")]
    MemoryLimit {
        /// Which resource tripped: `bytes of linear memory`, `table elements`, `instances`...
        resource: &'static str,
        /// What the task asked for.
        requested: u64,
        /// The cap it hit.
        limit: u64,
    },
    /// The task ran past its wall-clock hard limit and was interrupted.
    #[error("timeout: the task ran longer than its hard limit of {}", humantime::format_duration(*.limit))]
    Timeout {
        /// The hard limit.
        limit: Duration,
    },
    /// The task overflowed the wasm call stack (unbounded recursion).
    #[error("stack overflow: the task exhausted its wasm call stack")]
    StackOverflow,
    /// The task trapped: a panic, `unreachable`, an out-of-bounds access, a division by zero.
    #[error("{message}")]
    Trap {
        /// The trap and, for a panic, the panic message the guest printed.
        message: String,
        /// The wasm backtrace, innermost frame first.
        backtrace: String,
    },
    /// The task's input was larger than its limit; it was not started.
    #[error("input too large: {size} bytes, the limit is {limit}")]
    InputTooLarge {
        /// Bytes of `args` plus `kwargs`.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The task's output was larger than its limit and was discarded.
    #[error("output too large: {size} bytes, the limit is {limit}")]
    OutputTooLarge {
        /// Bytes the task returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The task used a capability it was not granted.
    #[error("capability denied: {capability}: {detail}")]
    CapabilityDenied {
        /// The capability (`kv`, `mail`, `queue`, `log`, `progress`, or an import name).
        capability: String,
        /// What exactly was refused.
        detail: String,
    },
    /// The wasm is not a usable task component: not a component, a wrong WIT version, a
    /// missing export, an unknown import.
    #[error("invalid component: {reason}")]
    InvalidComponent {
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// The task returned its own error.
    #[error("{0}")]
    Guest(TaskError),
    /// The task was stopped by an operator (`revoke --terminate`) or by worker shutdown.
    #[error("terminated: {reason}")]
    Terminated {
        /// Who stopped it and why.
        reason: String,
    },
    /// The host failed for a reason that is not the task's fault (pool exhausted, I/O error
    /// preparing a preopened directory). The worker and other tasks are unaffected.
    #[error("host error: {0}")]
    Host(String),
}

impl SandboxError {
    /// A short, stable name for the failure (`OutOfFuel`, `MemoryLimit`, ...). It is stored
    /// with results and used as a metric label, so Python callers and dashboards can branch on
    /// it.
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxError::OutOfFuel { .. } => "OutOfFuel",
            SandboxError::MemoryLimit { .. } => "MemoryLimit",
            SandboxError::Timeout { .. } => "Timeout",
            SandboxError::StackOverflow => "StackOverflow",
            SandboxError::Trap { .. } => "Trap",
            SandboxError::InputTooLarge { .. } => "InputTooLarge",
            SandboxError::OutputTooLarge { .. } => "OutputTooLarge",
            SandboxError::CapabilityDenied { .. } => "CapabilityDenied",
            SandboxError::InvalidComponent { .. } => "InvalidComponent",
            SandboxError::Guest(TaskError::Retry { .. }) => "Retry",
            SandboxError::Guest(TaskError::Reject { .. }) => "Reject",
            SandboxError::Guest(TaskError::Fail { .. }) => "Fail",
            SandboxError::Terminated { .. } => "Terminated",
            SandboxError::Host(_) => "HostError",
        }
    }

    /// The process exit code `taskbox exec` uses for this failure (documented in its `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::Guest(TaskError::Reject { .. }) => 3,
            SandboxError::Guest(TaskError::Fail { .. }) => 4,
            SandboxError::Guest(TaskError::Retry { .. }) => 5,
            SandboxError::OutOfFuel { .. } => 10,
            SandboxError::MemoryLimit { .. } => 11,
            SandboxError::Timeout { .. } => 12,
            SandboxError::StackOverflow => 13,
            SandboxError::Trap { .. } => 14,
            SandboxError::OutputTooLarge { .. } => 15,
            SandboxError::CapabilityDenied { .. } => 16,
            SandboxError::InvalidComponent { .. } => 17,
            SandboxError::InputTooLarge { .. } => 18,
            SandboxError::Terminated { .. } => 19,
            SandboxError::Host(_) => 1,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        SandboxError::InvalidComponent {
            reason: reason.into(),
        }
    }
}

/// Our limiter's error, raised inside `memory.grow`/`table.grow`/instantiation so that the
/// failure is attributed to the limit and not to the guest's reaction to a failed grow.
#[derive(Debug, Error)]
#[error("{resource} limit exceeded: wanted {requested}, limit {limit}")]
pub(crate) struct LimitExceeded {
    pub resource: &'static str,
    pub requested: u64,
    pub limit: u64,
}

/// A capability's refusal that must end the task (for imports with no error channel).
#[derive(Debug, Error)]
#[error("capability {capability} denied: {detail}")]
pub(crate) struct Denied {
    pub capability: String,
    pub detail: String,
}

/// The task's capability calls used up its fuel budget (see `HOST_CALL_FUEL`).
#[derive(Debug, Error)]
#[error("fuel budget exhausted by capability calls")]
pub(crate) struct HostFuelExhausted;

/// Why the epoch callback interrupted the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterruptCause {
    Deadline(Duration),
    Terminated(String),
}

/// Turns a wasmtime failure into the one `SandboxError` it means. `interrupt` is what the epoch
/// callback recorded (if it fired), `budget` the fuel the task had, and `stderr` what the guest
/// printed (a Rust panic message lands there).
pub(crate) fn classify(
    err: wasmtime::Error,
    interrupt: Option<&InterruptCause>,
    budget: u64,
    max_resources: u64,
    stderr: &str,
) -> SandboxError {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return SandboxError::MemoryLimit {
            resource: limit.resource,
            requested: limit.requested,
            limit: limit.limit,
        };
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        err.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        return SandboxError::MemoryLimit {
            resource: "host resource handles",
            requested: max_resources.saturating_add(1),
            limit: max_resources,
        };
    }
    if err.downcast_ref::<HostFuelExhausted>().is_some() {
        return SandboxError::OutOfFuel { budget };
    }
    if let Some(denied) = err.downcast_ref::<Denied>() {
        return SandboxError::CapabilityDenied {
            capability: denied.capability.clone(),
            detail: denied.detail.clone(),
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::OutOfFuel => return SandboxError::OutOfFuel { budget },
            wasmtime::Trap::StackOverflow => return SandboxError::StackOverflow,
            wasmtime::Trap::Interrupt => {
                return match interrupt {
                    Some(InterruptCause::Terminated(reason)) => SandboxError::Terminated {
                        reason: reason.clone(),
                    },
                    Some(InterruptCause::Deadline(limit)) => {
                        SandboxError::Timeout { limit: *limit }
                    }
                    None => SandboxError::Timeout {
                        limit: Duration::ZERO,
                    },
                };
            }
            _ => {}
        }
    }
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string())
        .unwrap_or_default();
    let mut message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    let printed = stderr.trim();
    if !printed.is_empty() {
        message = format!("{message}; guest stderr: {printed}");
    }
    SandboxError::Trap { message, backtrace }
}
