//! The built-in `chunking` component: `chunking.split(document, mode="automatic",
//! separator=None, max_tokens=None, overlap=None, rules=None)` splits a document into segments
//! for indexing, as the deployment's segmentation settings describe (automatic, custom,
//! parent-child). The splitting itself lives in [`segment`], the JSON writer of the result in
//! [`json`]; this file binds the call.

pub mod json;
mod scan;
pub mod segment;

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use taskbox_sdk::{RawJson, TaskError, Value, export_plugin, task};

use segment::{Options, Segment};

/// What `document` may be: plain text, or the output of `extract.text` (whose metadata is
/// carried through so a chain `extract.text → chunking.split → indexing.index` keeps it).
#[derive(Debug, Clone)]
pub enum Document {
    /// Plain text.
    Text(String),
    /// `extract.text`'s output.
    Extracted {
        /// The extracted plain text.
        text: String,
        /// Title, type, character count...
        metadata: Value,
    },
}

/// `extract.text`'s output as `document` takes it; other keys are ignored.
#[derive(Deserialize)]
struct ExtractedDocument {
    text: String,
    #[serde(default)]
    metadata: Value,
}

/// By hand rather than `#[serde(untagged)]`, which buffers the input and then copies the
/// (possibly many-megabyte) text out of the buffer: a string is taken as it is, an object
/// must look like `extract.text`'s output.
impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;

        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = Document;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or extract.text's output (an object with \"text\")")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Document, E> {
                Ok(Document::Text(text.to_string()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Document, E> {
                Ok(Document::Text(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Document, A::Error> {
                let doc =
                    ExtractedDocument::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Document::Extracted {
                    text: doc.text,
                    metadata: doc.metadata,
                })
            }
        }

        deserializer.deserialize_any(DocumentVisitor)
    }
}

/// The result of `chunking.split`, the input of `indexing.index`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Chunks {
    /// The document's metadata (empty for plain text).
    pub document: Value,
    /// The mode used.
    pub mode: String,
    /// Segments in document order.
    pub segments: Vec<Segment>,
    /// Sum of the segments' token estimates.
    pub total_tokens: usize,
}

/// Splits a document into segments. The result is [`Chunks`], written by [`json::chunks_json`].
#[task(name = "chunking.split")]
fn split(
    document: Document,
    #[default("automatic")] mode: String,
    separator: Option<String>,
    max_tokens: Option<u64>,
    overlap: Option<u64>,
    rules: Option<Value>,
) -> Result<RawJson, TaskError> {
    let options = Options::resolve(&mode, separator, max_tokens, overlap, rules)
        .map_err(TaskError::reject)?;
    let (text, metadata) = match document {
        Document::Text(text) => (text, Value::Object(Default::default())),
        Document::Extracted { text, metadata } => (text, metadata),
    };
    let segments = segment::split_owned(text, &options);
    let chunks = Chunks {
        document: metadata,
        mode: mode_name(&options),
        total_tokens: segments.iter().map(|s| s.tokens).sum(),
        segments,
    };
    Ok(RawJson::new(json::chunks_json(&chunks)))
}

fn mode_name(options: &Options) -> String {
    match options.mode {
        segment::Mode::Automatic => "automatic",
        segment::Mode::Custom => "custom",
        segment::Mode::ParentChild => "parent_child",
    }
    .to_string()
}

export_plugin!(split);

#[cfg(test)]
mod tests {
    use taskbox_sdk::json;
    use taskbox_sdk::testing::call;

    use super::*;

    #[test]
    fn plain_text_splits_into_hashed_segments() {
        let out = call(
            TASKBOX_TASKS,
            "chunking.split",
            json!(["First paragraph.\n\nSecond paragraph."]),
            json!({}),
        )
        .unwrap();
        let chunks: Chunks = serde_json::from_value(out).unwrap();
        assert_eq!(chunks.mode, "automatic");
        assert!(!chunks.segments.is_empty());
        assert!(chunks.segments.iter().all(|s| s.sha256.len() == 64));
    }

    #[test]
    fn extract_output_metadata_is_carried_through() {
        let doc =
            json!({"text": "Some text here.", "metadata": {"title": "T", "type": "markdown"}});
        let out = call(
            TASKBOX_TASKS,
            "chunking.split",
            json!([doc]),
            json!({"mode": "custom", "separator": "\\n", "max_tokens": 100}),
        )
        .unwrap();
        assert_eq!(out["document"]["title"], "T");
        assert_eq!(out["mode"], "custom");
    }

    #[test]
    fn bad_options_are_rejects_naming_the_parameter() {
        let err = call(
            TASKBOX_TASKS,
            "chunking.split",
            json!(["x"]),
            json!({"max_tokens": 10}),
        )
        .unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("max_tokens")));
        let err = call(TASKBOX_TASKS, "chunking.split", json!([42]), json!({})).unwrap_err();
        assert!(
            matches!(&err, TaskError::Reject(m) if m.contains("document") && m.contains("a string or extract.text's output")),
            "{err:?}"
        );
        let err = call(
            TASKBOX_TASKS,
            "chunking.split",
            json!([{"title": "x"}]),
            json!({}),
        )
        .unwrap_err();
        assert!(
            matches!(&err, TaskError::Reject(m) if m.contains("missing field `text`")),
            "{err:?}"
        );
    }
}
