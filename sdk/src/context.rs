//! The task context handed to a task: who is running, and until when.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the host tells a task about itself; take `&Context` as a parameter to receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The task id (a UUID string), which is also the key of its stored result.
    pub id: String,
    /// The registered task name being run.
    pub name: String,
    /// The queue the task was taken from.
    pub queue: String,
    /// 1 on the first run, 2 on the first retry, and so on.
    pub attempt: u32,
    /// The wall-clock deadline in milliseconds since the Unix epoch; the host interrupts the
    /// task at this instant.
    pub deadline_ms: u64,
}

impl Context {
    /// A context for native tests: a fixed id, the `test` queue, first attempt, one minute.
    pub fn for_test(name: &str) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Context {
            id: "00000000-0000-4000-8000-000000000000".to_string(),
            name: name.to_string(),
            queue: "test".to_string(),
            attempt: 1,
            deadline_ms: now_ms + 60_000,
        }
    }

    /// Time left before the host interrupts the task; zero once the deadline has passed.
    /// Long tasks check it to stop at a clean point and ask for a retry instead.
    pub fn remaining(&self) -> Duration {
        let deadline = UNIX_EPOCH + Duration::from_millis(self.deadline_ms);
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}
