//! Task results that are already JSON text.

/// A task result that is already JSON text, returned as it is instead of being serialized again
/// with serde_json. Return it from a task whose output is large enough for a specialised
/// writer to pay off, or that passes stored JSON through. The worker parses every result and
/// fails the task with a clear error if the bytes are not JSON, so a bad writer cannot store a
/// broken result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJson(Vec<u8>);

impl RawJson {
    /// Wraps `bytes`, which must be one JSON value (compact or pretty, UTF-8).
    pub fn new(bytes: Vec<u8>) -> Self {
        RawJson(bytes)
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON text, without copying it.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}
