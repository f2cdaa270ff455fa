//! `log`: guest log records become `tracing` events inside the task's span, tagged with the
//! plugin name, within a per-task volume cap so a flood cannot drown the worker's own logs.

use crate::runtime::bindings::log::{Host, Level};
use crate::runtime::error::Denied;
use crate::runtime::state::HostState;

use super::Capability;

/// Longest message kept from one record; the rest is cut with a marker.
const MAX_RECORD: usize = 8 * 1024;

impl Host for HostState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.charge_host_call()?;
        if !self.grants.allows(Capability::Log) {
            // `log` has no error channel, so an ungranted use ends the task.
            return Err(Denied {
                capability: "log".into(),
                detail: "the plugin was not granted log".into(),
            }
            .into());
        }
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if self.usage.log_bytes.saturating_add(size) > self.limits.max_log_bytes {
            if self.usage.log_dropped == 0 {
                tracing::warn!(
                    parent: &self.span,
                    limit = self.limits.max_log_bytes,
                    "guest log volume limit reached; further records from this task are dropped"
                );
            }
            self.usage.log_dropped += 1;
            return Ok(());
        }
        self.usage.log_bytes += size;
        let message = clip(&message, MAX_RECORD);
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{}={}", clip(k, 128), clip(v, 1024)))
            .collect::<Vec<_>>()
            .join(" ");
        let plugin = self.task.plugin.as_str();
        let span = &self.span;
        match level {
            Level::Trace => {
                tracing::trace!(target: "taskbox::guest", parent: span, plugin, fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "taskbox::guest", parent: span, plugin, fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "taskbox::guest", parent: span, plugin, fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "taskbox::guest", parent: span, plugin, fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "taskbox::guest", parent: span, plugin, fields, "{message}")
            }
        }
        Ok(())
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with a marker when cut.
pub(crate) fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &s[..end], s.len() - end).into()
}
