//! A valid wasip2 component that exports nothing: not a task component. The host must refuse it
//! at load time naming the missing `taskbox:task/handler` export.

/// Present so the crate is not empty; nothing exports it.
pub fn unused() -> u32 {
    42
}
