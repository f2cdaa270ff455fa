//! `HostState`: everything one task's `Store` owns. Per-task state lives here and nowhere
//! else, so dropping the store releases all of it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::capabilities::{Backends, Grants};
use super::error::InterruptCause;
use super::limits::{Limits, MemoryLimiter};

/// Who a task is. Carried into the task's tracing span and into follow-up tasks it enqueues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMeta {
    /// Task id (UUID string).
    pub id: String,
    /// Registered task name.
    pub name: String,
    /// Queue it came from.
    pub queue: String,
    /// 1 on the first run.
    pub attempt: u32,
    /// The plugin serving the task.
    pub plugin: String,
    /// The first task of the workflow (Celery's `root_id`); the task itself when standalone.
    pub root_id: String,
}

impl TaskMeta {
    /// A standalone task: its own root, first attempt.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        queue: impl Into<String>,
        plugin: impl Into<String>,
    ) -> Self {
        let id = id.into();
        TaskMeta {
            root_id: id.clone(),
            id,
            name: name.into(),
            queue: queue.into(),
            attempt: 1,
            plugin: plugin.into(),
        }
    }
}

/// Stops one running task from outside (`revoke --terminate`, shutdown): the next epoch tick
/// interrupts the guest. Cloning shares the token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<OnceLock<String>>);

impl CancelToken {
    /// Asks the task to stop; the first reason given wins.
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.0.set(reason.into());
    }

    /// The reason, once cancelled.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// What the task consumed of its per-task allowances.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Bytes of log messages accepted.
    pub log_bytes: usize,
    /// Log records dropped after the cap.
    pub log_dropped: u64,
    /// Progress reports accepted.
    pub progress_reports: u32,
    /// Progress reports dropped (cap or rate limit).
    pub progress_dropped: u64,
    /// Follow-up tasks enqueued.
    pub enqueued: u32,
    /// The first capability use that was refused: (capability, detail).
    pub denied: Option<(String, String)>,
    /// Set when the soft wall-clock limit passed while the task ran.
    pub soft_timeout_exceeded: bool,
    /// Fuel charged for calls into taskbox capabilities (see [`HOST_CALL_FUEL`]).
    pub host_fuel: u64,
}

/// Fuel charged for each call into a taskbox capability, about what a few microseconds of
/// guest code would burn. Guest instructions alone say nothing about the time a guest spends
/// in host calls, so without this a loop of cheap-looking host calls could run for ages on a
/// small budget.
pub const HOST_CALL_FUEL: u64 = 100_000;

/// Wall-clock bookkeeping read by the epoch callback.
#[derive(Debug)]
pub(crate) struct Clock {
    pub started: Instant,
    pub hard: Instant,
    pub timeout: Duration,
    pub soft: Option<Instant>,
    pub interrupt: Option<InterruptCause>,
    pub cancel: Option<CancelToken>,
    pub last_progress: Option<Instant>,
}

/// The data of one task's `Store`.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) task: Arc<TaskMeta>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) backends: Backends,
    pub(crate) limits: Limits,
    pub(crate) usage: Usage,
    pub(crate) clock: Clock,
    pub(crate) span: tracing::Span,
    /// The task's fuel budget; host-call charges count against it too.
    pub(crate) fuel_budget: u64,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Charges one capability call against the fuel budget; past it the task ends with
    /// `OutOfFuel`, exactly as if its own instructions had used the fuel.
    pub(crate) fn charge_host_call(&mut self) -> wasmtime::Result<()> {
        self.usage.host_fuel = self.usage.host_fuel.saturating_add(HOST_CALL_FUEL);
        if self.usage.host_fuel > self.fuel_budget {
            return Err(super::error::HostFuelExhausted.into());
        }
        Ok(())
    }

    /// Records the first refused capability use; the task's outcome reports it if the task then
    /// fails.
    pub(crate) fn record_denial(&mut self, capability: &str, detail: &str) {
        tracing::warn!(parent: &self.span, capability, detail, "capability denied");
        if self.usage.denied.is_none() {
            self.usage.denied = Some((capability.to_string(), detail.to_string()));
        }
    }
}
