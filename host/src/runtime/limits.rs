//! Per-task resource limits and the `ResourceLimiter` that enforces the memory side of them.
//!
//! Limits have defaults, which a plugin manifest and then a task type may override; the
//! resolved [`Limits`] travel with each task into its `Store` and nowhere else.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::LimitExceeded;

/// Everything one task may consume. A `Store` is never built without one (see `store.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel budget (deterministic CPU); `None` disables fuel for this task, leaving the wall
    /// clock as the only CPU limit. About 1.6-3.4e10 fuel is one second of guest CPU here.
    pub fuel: Option<u64>,
    /// Linear memory cap in bytes, across all of the component's memories.
    pub memory: u64,
    /// Maximum elements in any one table.
    pub table_elements: u64,
    /// Maximum core instances the component may create.
    pub instances: u64,
    /// Wall-clock hard limit: the task is interrupted at this point.
    pub timeout: Duration,
    /// Wall-clock soft limit: a warning is logged and recorded, the task keeps running.
    pub soft_timeout: Option<Duration>,
    /// Maximum bytes of `args` plus `kwargs`.
    pub max_input: usize,
    /// Maximum bytes of output.
    pub max_output: usize,
    /// Maximum bytes of guest log messages; past it records are counted and dropped.
    pub max_log_bytes: usize,
    /// Maximum progress reports stored; past it reports are counted and dropped.
    pub max_progress_reports: u32,
    /// Maximum follow-up tasks one task may enqueue.
    pub max_enqueue: u32,
    /// Maximum host resource handles (WASI streams, pollables, files) alive at once.
    pub max_resources: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: Some(DEFAULT_FUEL),
            memory: 256 * MIB,
            table_elements: 20_000,
            instances: 16,
            timeout: Duration::from_secs(300),
            soft_timeout: None,
            max_input: 16 * MIB as usize,
            max_output: 16 * MIB as usize,
            max_log_bytes: 1024 * 1024,
            max_progress_reports: 10_000,
            max_enqueue: 1_000,
            max_resources: 10_000,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// Ten seconds of guest CPU at the measured ~1.6e10 fuel per second: generous for real tasks,
/// finite for a runaway loop.
pub const DEFAULT_FUEL: u64 = 160_000_000_000;

/// Partial limits as a manifest, config file or CLI gives them; unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// Fuel budget; `0` disables fuel.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Memory cap, e.g. `"64MiB"`.
    #[serde(default, with = "crate::config::opt_bytes")]
    pub memory: Option<u64>,
    /// Table elements.
    #[serde(default)]
    pub table_elements: Option<u64>,
    /// Core instances.
    #[serde(default)]
    pub instances: Option<u64>,
    /// Hard wall-clock limit, e.g. `"30s"`.
    #[serde(default, with = "crate::config::opt_duration")]
    pub timeout: Option<Duration>,
    /// Soft wall-clock limit.
    #[serde(default, with = "crate::config::opt_duration")]
    pub soft_timeout: Option<Duration>,
    /// Input bytes, e.g. `"1MiB"`.
    #[serde(default, with = "crate::config::opt_bytes")]
    pub max_input: Option<u64>,
    /// Output bytes.
    #[serde(default, with = "crate::config::opt_bytes")]
    pub max_output: Option<u64>,
    /// Log bytes.
    #[serde(default, with = "crate::config::opt_bytes")]
    pub max_log_bytes: Option<u64>,
    /// Progress reports.
    #[serde(default)]
    pub max_progress_reports: Option<u32>,
    /// Follow-up tasks.
    #[serde(default)]
    pub max_enqueue: Option<u32>,
    /// Host resource handles alive at once.
    #[serde(default)]
    pub max_resources: Option<u32>,
}

impl Limits {
    /// These limits with every field `over` sets replaced.
    pub fn with(&self, over: &LimitsOverride) -> Limits {
        let mut l = self.clone();
        if let Some(fuel) = over.fuel {
            l.fuel = (fuel > 0).then_some(fuel);
        }
        if let Some(v) = over.memory {
            l.memory = v;
        }
        if let Some(v) = over.table_elements {
            l.table_elements = v;
        }
        if let Some(v) = over.instances {
            l.instances = v;
        }
        if let Some(v) = over.timeout {
            l.timeout = v;
        }
        if over.soft_timeout.is_some() {
            l.soft_timeout = over.soft_timeout;
        }
        if let Some(v) = over.max_input {
            l.max_input = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = over.max_output {
            l.max_output = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = over.max_log_bytes {
            l.max_log_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = over.max_progress_reports {
            l.max_progress_reports = v;
        }
        if let Some(v) = over.max_enqueue {
            l.max_enqueue = v;
        }
        if let Some(v) = over.max_resources {
            l.max_resources = v;
        }
        l
    }
}

/// Enforces [`Limits`] on memories, tables and instances, and remembers the peak so results can
/// report memory used. Over-limit growth returns [`LimitExceeded`] instead of `Ok(false)`: a
/// failed `memory.grow` would make a Rust guest abort, and that abort could not be told apart
/// from a panic.
#[derive(Debug)]
pub struct MemoryLimiter {
    memory: u64,
    table_elements: u64,
    instances: u64,
    peak: u64,
    /// Bytes of every memory the store has, so several memories share one cap.
    current_total: u64,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            memory: limits.memory,
            table_elements: limits.table_elements,
            instances: limits.instances,
            peak: 0,
            current_total: 0,
        }
    }

    /// The largest total linear memory the task reached, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.current_total.saturating_add(growth);
        if total > self.memory {
            tracing::warn!(
                limit = "memory",
                requested = total,
                max = self.memory,
                "task hit its memory limit"
            );
            return Err(LimitExceeded {
                resource: "bytes of linear memory",
                requested: total,
                limit: self.memory,
            }
            .into());
        }
        self.current_total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            tracing::warn!(
                limit = "table_elements",
                requested = desired,
                max = self.table_elements,
                "task hit its table limit"
            );
            return Err(LimitExceeded {
                resource: "table elements",
                requested: desired as u64,
                limit: self.table_elements,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        usize::try_from(self.instances).unwrap_or(usize::MAX)
    }

    fn tables(&self) -> usize {
        // A Rust component needs a handful (main module, shims); more is a resource bomb.
        64
    }

    fn memories(&self) -> usize {
        16
    }
}
