//! Structured logging into the task's span on the host (`log` capability).
//!
//! Records land in the worker's log inside the task's span, tagged with the plugin name. The
//! host caps the volume per task, so a chatty task cannot flood the worker's logs.

/// Severity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the task handled.
    Warn,
    /// A failure.
    Error,
}

/// Writes one record with structured fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    imp::log(level, message, fields)
}

/// Writes a record at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref(), &[])
}

/// Writes a record at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref(), &[])
}

/// Writes a record at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref(), &[])
}

/// Writes a record at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref(), &[])
}

/// Writes a record at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref(), &[])
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::wit::taskbox::task::log as wit;

    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wit::log(level, message, &fields);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use crate::testing::{LogRecord, with_state};

    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        with_state(|s| {
            s.logs.push(LogRecord {
                level,
                message: message.to_string(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        });
    }
}
