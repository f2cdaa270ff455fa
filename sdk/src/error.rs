//! `TaskError`: how a task fails, and so whether the host runs it again.

use std::fmt;
use std::time::Duration;

/// A task failure. The variant is the retry decision, mirrored one to one by the WIT
/// `task-error` the host receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// A temporary failure: run the task again (up to its retry limit).
    Retry {
        /// Why; stored with the RETRY state.
        reason: String,
        /// How long to wait; `None` lets the task type's backoff policy choose.
        countdown: Option<Duration>,
    },
    /// The input is wrong and always will be: never retried.
    Reject(String),
    /// The task failed; the task type's retry policy decides whether it runs again.
    Fail(String),
}

impl TaskError {
    /// A retry with the policy's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        TaskError::Retry {
            reason: reason.into(),
            countdown: None,
        }
    }

    /// A retry after a fixed delay.
    pub fn retry_after(reason: impl Into<String>, countdown: Duration) -> Self {
        TaskError::Retry {
            reason: reason.into(),
            countdown: Some(countdown),
        }
    }

    /// Bad input; the message should name what was wrong and what to send instead.
    pub fn reject(message: impl Into<String>) -> Self {
        TaskError::Reject(message.into())
    }

    /// A failure left to the retry policy.
    pub fn fail(message: impl Into<String>) -> Self {
        TaskError::Fail(message.into())
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Retry {
                reason,
                countdown: Some(d),
            } => write!(f, "retry in {} ms: {reason}", d.as_millis()),
            TaskError::Retry {
                reason,
                countdown: None,
            } => write!(f, "retry: {reason}"),
            TaskError::Reject(message) => write!(f, "rejected: {message}"),
            TaskError::Fail(message) => write!(f, "failed: {message}"),
        }
    }
}

impl std::error::Error for TaskError {}
