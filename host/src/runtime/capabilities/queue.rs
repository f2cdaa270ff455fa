//! `queue`: follow-up tasks a task enqueues. The host checks the request (JSON shapes,
//! priority, the queue grant, the per-task count) and hands it to a publishing backend, which
//! links it to its parent task as Celery does (`parent_id`, `root_id`).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::runtime::bindings::queue::{EnqueueRequest, Host, QueueError};
use crate::runtime::state::{HostState, TaskMeta};

/// A checked follow-up task.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    /// Task name.
    pub task: String,
    /// Explicit queue, if the guest chose one.
    pub queue: Option<String>,
    /// Positional arguments (a JSON array).
    pub args: serde_json::Value,
    /// Keyword arguments (a JSON object).
    pub kwargs: serde_json::Value,
    /// Delay before it may run.
    pub countdown: Option<Duration>,
    /// Message priority 0-9.
    pub priority: Option<u8>,
}

/// Why publishing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker could not be reached.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The task name is not routable here.
    #[error("{0}")]
    Invalid(String),
}

/// Publishes follow-up tasks.
#[async_trait]
pub trait QueueBackend: Send + Sync {
    /// The queue a task goes to when the request names none.
    fn route(&self, task: &str) -> String;
    /// Publishes `task` as a child of `parent` on `queue`; returns the new task id.
    async fn publish(
        &self,
        parent: &TaskMeta,
        queue: &str,
        task: &FollowUp,
    ) -> Result<String, PublishError>;
}

/// Records follow-ups instead of publishing them (tests and `taskbox exec`, which have no broker).
#[derive(Debug, Default)]
pub struct CaptureQueue {
    /// `(queue, task, id)` of each follow-up, in order.
    pub published: Mutex<Vec<(String, FollowUp, String)>>,
}

#[async_trait]
impl QueueBackend for CaptureQueue {
    fn route(&self, _task: &str) -> String {
        "default".to_string()
    }

    async fn publish(
        &self,
        _parent: &TaskMeta,
        queue: &str,
        task: &FollowUp,
    ) -> Result<String, PublishError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((queue.to_string(), task.clone(), id.clone()));
        Ok(id)
    }
}

/// Parses and checks a guest's request.
pub fn check(request: EnqueueRequest) -> Result<FollowUp, String> {
    if request.task.trim().is_empty() {
        return Err("task name is empty".into());
    }
    let args: serde_json::Value =
        serde_json::from_str(&request.args).map_err(|e| format!("args is not JSON: {e}"))?;
    if !args.is_array() {
        return Err("args must be a JSON array".into());
    }
    let kwargs: serde_json::Value =
        serde_json::from_str(&request.kwargs).map_err(|e| format!("kwargs is not JSON: {e}"))?;
    if !kwargs.is_object() {
        return Err("kwargs must be a JSON object".into());
    }
    if let Some(p) = request.priority
        && p > 9
    {
        return Err(format!("priority {p} is out of range 0-9"));
    }
    Ok(FollowUp {
        task: request.task,
        queue: request.queue,
        args,
        kwargs,
        countdown: request.countdown_ms.map(Duration::from_millis),
        priority: request.priority,
    })
}

impl Host for HostState {
    async fn enqueue(
        &mut self,
        request: EnqueueRequest,
    ) -> wasmtime::Result<Result<String, QueueError>> {
        self.charge_host_call()?;
        let follow_up = match check(request) {
            Ok(f) => f,
            Err(reason) => return Ok(Err(QueueError::Invalid(reason))),
        };
        let queue = follow_up
            .queue
            .clone()
            .unwrap_or_else(|| self.backends.queue.route(&follow_up.task));
        if !self.grants.allows_queue(&queue) {
            let detail = format!("the plugin may not enqueue to queue '{queue}'");
            self.record_denial("queue", &detail);
            return Ok(Err(QueueError::Denied(detail)));
        }
        if self.usage.enqueued >= self.limits.max_enqueue {
            return Ok(Err(QueueError::RateLimited(format!(
                "this task already enqueued {} tasks, the limit per task",
                self.limits.max_enqueue
            ))));
        }
        self.usage.enqueued += 1;
        match self
            .backends
            .queue
            .publish(&self.task, &queue, &follow_up)
            .await
        {
            Ok(id) => Ok(Ok(id)),
            Err(PublishError::Unavailable(m)) => Ok(Err(QueueError::Unavailable(m))),
            Err(PublishError::Invalid(m)) => Ok(Err(QueueError::Invalid(m))),
        }
    }
}
