//! Enqueueing follow-up tasks (`queue` capability).
//!
//! The host publishes the task in Celery's format with this task as its parent, only to the
//! queues the operator granted, and caps how many tasks one task may enqueue.

use std::time::Duration;

use serde_json::Value;

use crate::TaskError;

/// A task to enqueue, built with [`Enqueue::new`] and its setters.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueue {
    /// Task name.
    pub task: String,
    /// Target queue; `None` uses the task's default route.
    pub queue: Option<String>,
    /// Positional arguments (a JSON array).
    pub args: Value,
    /// Keyword arguments (a JSON object).
    pub kwargs: Value,
    /// Delay before the task may run.
    pub countdown: Option<Duration>,
    /// Message priority 0-9.
    pub priority: Option<u8>,
}

impl Enqueue {
    /// A call of `task` with no arguments on its default queue.
    pub fn new(task: impl Into<String>) -> Self {
        Enqueue {
            task: task.into(),
            queue: None,
            args: Value::Array(Vec::new()),
            kwargs: Value::Object(Default::default()),
            countdown: None,
            priority: None,
        }
    }

    /// Sets the positional arguments (a JSON array).
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// Sets the keyword arguments (a JSON object).
    pub fn kwargs(mut self, kwargs: Value) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// Sends to this queue instead of the task's default.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Delays the task.
    pub fn countdown(mut self, countdown: Duration) -> Self {
        self.countdown = Some(countdown);
        self
    }

    /// Sets the message priority (0-9).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// Why a task was not enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The plugin may not enqueue to that queue.
    Denied(String),
    /// This task enqueued too many tasks already.
    RateLimited(String),
    /// The request is malformed.
    Invalid(String),
    /// The broker could not be reached; a retry may help.
    Unavailable(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Denied(m) => write!(f, "enqueue denied: {m}"),
            QueueError::RateLimited(m) => write!(f, "enqueue rate-limited: {m}"),
            QueueError::Invalid(m) => write!(f, "invalid enqueue: {m}"),
            QueueError::Unavailable(m) => write!(f, "broker unavailable: {m}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl From<QueueError> for TaskError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Unavailable(_) | QueueError::RateLimited(_) => {
                TaskError::retry(err.to_string())
            }
            QueueError::Invalid(_) => TaskError::reject(err.to_string()),
            QueueError::Denied(_) => TaskError::fail(err.to_string()),
        }
    }
}

/// Enqueues a task and returns its id.
pub fn enqueue(request: &Enqueue) -> Result<String, QueueError> {
    if !request.args.is_array() {
        return Err(QueueError::Invalid("args must be a JSON array".to_string()));
    }
    if !request.kwargs.is_object() {
        return Err(QueueError::Invalid(
            "kwargs must be a JSON object".to_string(),
        ));
    }
    if request.priority.is_some_and(|p| p > 9) {
        return Err(QueueError::Invalid("priority must be 0-9".to_string()));
    }
    imp::enqueue(request)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Enqueue, QueueError};
    use crate::wit::taskbox::task::queue as wit;

    pub fn enqueue(request: &Enqueue) -> Result<String, QueueError> {
        let req = wit::EnqueueRequest {
            task: request.task.clone(),
            queue: request.queue.clone(),
            args: request.args.to_string(),
            kwargs: request.kwargs.to_string(),
            countdown_ms: request
                .countdown
                .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
            priority: request.priority,
        };
        wit::enqueue(&req).map_err(|err| match err {
            wit::QueueError::Denied(m) => QueueError::Denied(m),
            wit::QueueError::RateLimited(m) => QueueError::RateLimited(m),
            wit::QueueError::Invalid(m) => QueueError::Invalid(m),
            wit::QueueError::Unavailable(m) => QueueError::Unavailable(m),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Enqueue, QueueError};
    use crate::testing::with_state;

    pub fn enqueue(request: &Enqueue) -> Result<String, QueueError> {
        with_state(|s| {
            s.enqueued.push(request.clone());
            Ok(format!("00000000-0000-4000-8000-{:012}", s.enqueued.len()))
        })
    }
}
