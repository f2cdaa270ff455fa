//! `progress`: a long task's progress reports, rate-limited and capped per task, handed to a
//! sink (the result backend in the worker, the log under `taskbox exec`).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::runtime::bindings::progress::Host;
use crate::runtime::error::Denied;
use crate::runtime::state::{HostState, TaskMeta};

use super::Capability;

/// Reports closer together than this replace each other, except the final one.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where accepted progress reports go.
#[async_trait]
pub trait ProgressSink: Send + Sync {
    /// Stores one report for `task`.
    async fn report(&self, task: &TaskMeta, current: u64, total: u64, message: Option<&str>);
}

/// Writes progress into the task's log; used where no result backend exists.
#[derive(Debug, Default)]
pub struct LogProgress;

#[async_trait]
impl ProgressSink for LogProgress {
    async fn report(&self, task: &TaskMeta, current: u64, total: u64, message: Option<&str>) {
        tracing::info!(task.id = %task.id, current, total, message = message.unwrap_or(""), "progress");
    }
}

impl Host for HostState {
    async fn report(
        &mut self,
        current: u64,
        total: u64,
        message: Option<String>,
    ) -> wasmtime::Result<()> {
        self.charge_host_call()?;
        if !self.grants.allows(Capability::Progress) {
            return Err(Denied {
                capability: "progress".into(),
                detail: "the plugin was not granted progress".into(),
            }
            .into());
        }
        let now = Instant::now();
        let final_report = total > 0 && current >= total;
        let too_soon = self
            .clock
            .last_progress
            .is_some_and(|last| now.duration_since(last) < MIN_INTERVAL);
        if (too_soon && !final_report)
            || self.usage.progress_reports >= self.limits.max_progress_reports
        {
            self.usage.progress_dropped += 1;
            return Ok(());
        }
        self.clock.last_progress = Some(now);
        self.usage.progress_reports += 1;
        let message = message.map(|m| super::log::clip(&m, 1024).into_owned());
        self.backends
            .progress
            .report(&self.task, current, total, message.as_deref())
            .await;
        Ok(())
    }
}
