//! Progress reports of a long task (`progress` capability).
//!
//! The host stores the latest report with the task's state (Celery's `PROGRESS` meta), so a
//! caller polling the result sees how far the task got. Reports are rate-limited by the host:
//! call it as often as is convenient.

/// Reports `current` out of `total` units done, with an optional human message.
pub fn report(current: u64, total: u64, message: Option<&str>) {
    imp::report(current, total, message)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    pub fn report(current: u64, total: u64, message: Option<&str>) {
        crate::wit::taskbox::task::progress::report(current, total, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub fn report(current: u64, total: u64, message: Option<&str>) {
        crate::testing::with_state(|s| {
            s.progress
                .push((current, total, message.map(str::to_string)))
        });
    }
}
