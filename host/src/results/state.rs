//! Task states as Celery spells them, and which of them are final.

/// A task's state. PENDING is never stored: it is what a missing key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Not known (no result stored yet).
    Pending,
    /// Running (only stored when `track_started` is on).
    Started,
    /// Waiting for a retry.
    Retry,
    /// Finished with a result.
    Success,
    /// Finished with an error.
    Failure,
    /// Not run: revoked or expired.
    Revoked,
    /// Running, with a progress report.
    Progress,
}

impl TaskState {
    /// Celery's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Started => "STARTED",
            TaskState::Retry => "RETRY",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Revoked => "REVOKED",
            TaskState::Progress => "PROGRESS",
        }
    }

    /// Parses Celery's spelling.
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "PENDING" => TaskState::Pending,
            "STARTED" => TaskState::Started,
            "RETRY" => TaskState::Retry,
            "SUCCESS" => TaskState::Success,
            "FAILURE" => TaskState::Failure,
            "REVOKED" => TaskState::Revoked,
            "PROGRESS" => TaskState::Progress,
            _ => return None,
        })
    }

    /// Whether the state is final (Celery's READY_STATES): waiting callers stop here.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }
}
