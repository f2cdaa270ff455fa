//! The `chunks` argument of `indexing.index` (the output of `chunking.split`) and its
//! reduction to the units that get indexed: validation, sha256 checks, parent-child
//! flattening, de-duplication and the default document id.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use taskbox_sdk::{TaskError, Value};

use crate::store::{MAX_DATASET_BYTES, MAX_DOCUMENT_BYTES};

/// `chunking.split`'s output as far as indexing needs it; other fields (`mode`,
/// `total_tokens`, `char_count`, `tokens`) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ChunksInput {
    /// The document's metadata; `document.id` names the document when no id is given.
    #[serde(default)]
    pub document: Value,
    /// Segments in document order.
    pub segments: Vec<SegmentInput>,
}

/// One segment of the input; `children` is non-empty in parent-child mode.
#[derive(Debug, Clone, Deserialize)]
pub struct SegmentInput {
    /// Position in the document (within the parent for children); defaults to the index.
    #[serde(default)]
    pub position: Option<usize>,
    /// The segment text.
    pub content: String,
    /// If given, must be the sha256 of `content` (it becomes part of kv keys).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Child segments (parent-child mode).
    #[serde(default)]
    pub children: Vec<SegmentInput>,
}

/// A unit of retrieval: a plain segment, or a child in parent-child mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// sha256 of `content`.
    pub sha256: String,
    /// Position as given by the input.
    pub position: usize,
    /// The text.
    pub content: String,
    /// Index into [`Flat::parents`] for a child.
    pub parent: Option<usize>,
}

/// A parent segment, returned as context for its children's hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentUnit {
    /// sha256 of `content`.
    pub sha256: String,
    /// Position in the document.
    pub position: usize,
    /// The text.
    pub content: String,
}

/// The input reduced to what gets stored: units unique by sha256 (the first occurrence of a
/// repeated segment is kept) and the parents they point to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flat {
    /// Units in document order.
    pub units: Vec<Unit>,
    /// Parents in document order, unique by sha256.
    pub parents: Vec<ParentUnit>,
}

/// Lowercase hex sha256 of `bytes`, the same form `chunking.split` emits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digest.len() * 2);
    for &byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Checks one segment and returns its sha256; `path` names it in messages
/// (`chunks.segments[3].children[1]`).
fn checked_sha(segment: &SegmentInput, path: &str) -> Result<String, TaskError> {
    if segment.content.trim().is_empty() {
        return Err(TaskError::reject(format!("{path}.content is empty")));
    }
    let sha = sha256_hex(segment.content.as_bytes());
    if let Some(given) = &segment.sha256
        && !given.eq_ignore_ascii_case(&sha)
    {
        return Err(TaskError::reject(format!(
            "{path}.sha256 is {given:?} but the sha256 of its content is {sha}"
        )));
    }
    Ok(sha)
}

/// Validates the segments and flattens them: a segment with children becomes a parent and
/// its children become units; a segment without children is a unit itself.
pub fn flatten(chunks: &ChunksInput) -> Result<Flat, TaskError> {
    let mut flat = Flat::default();
    let mut unit_seen: HashMap<String, ()> = HashMap::new();
    let mut parent_index: HashMap<String, usize> = HashMap::new();
    for (i, segment) in chunks.segments.iter().enumerate() {
        let path = format!("chunks.segments[{i}]");
        let sha = checked_sha(segment, &path)?;
        let position = segment.position.unwrap_or(i);
        if segment.children.is_empty() {
            if unit_seen.insert(sha.clone(), ()).is_none() {
                flat.units.push(Unit {
                    sha256: sha,
                    position,
                    content: segment.content.clone(),
                    parent: None,
                });
            }
            continue;
        }
        let parent = match parent_index.get(&sha) {
            Some(&index) => index,
            None => {
                let index = flat.parents.len();
                parent_index.insert(sha.clone(), index);
                flat.parents.push(ParentUnit {
                    sha256: sha,
                    position,
                    content: segment.content.clone(),
                });
                index
            }
        };
        for (j, child) in segment.children.iter().enumerate() {
            let child_path = format!("{path}.children[{j}]");
            if !child.children.is_empty() {
                return Err(TaskError::reject(format!(
                    "{child_path} has children of its own; only one level of parent-child \
                     nesting is supported"
                )));
            }
            let child_sha = checked_sha(child, &child_path)?;
            if unit_seen.insert(child_sha.clone(), ()).is_none() {
                flat.units.push(Unit {
                    sha256: child_sha,
                    position: child.position.unwrap_or(j),
                    content: child.content.clone(),
                    parent: Some(parent),
                });
            }
        }
    }
    Ok(flat)
}

/// Checks a dataset name: it becomes part of every key, so it must be non-empty and short.
pub fn check_dataset(dataset: &str) -> Result<(), TaskError> {
    if dataset.is_empty() {
        return Err(TaskError::reject("dataset must not be empty"));
    }
    if dataset.len() > MAX_DATASET_BYTES {
        return Err(TaskError::reject(format!(
            "dataset must be at most {MAX_DATASET_BYTES} bytes, got {}",
            dataset.len()
        )));
    }
    Ok(())
}

/// A document id given as a string or an integer (Python callers often pass ints).
fn id_from_value(value: &Value, name: &str) -> Result<Option<String>, TaskError> {
    let id = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(TaskError::reject(format!(
                "{name} must be a string or an integer"
            )));
        }
    };
    check_document_id(&id, name)?;
    Ok(Some(id))
}

/// Checks a document id: non-empty and short enough for its keys.
pub fn check_document_id(id: &str, name: &str) -> Result<(), TaskError> {
    if id.is_empty() {
        return Err(TaskError::reject(format!("{name} must not be empty")));
    }
    if id.len() > MAX_DOCUMENT_BYTES {
        return Err(TaskError::reject(format!(
            "{name} must be at most {MAX_DOCUMENT_BYTES} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

/// The document id: the `document_id` argument, else `chunks.document.id`, else the sha256
/// of the top-level segment contents concatenated in order, so indexing the same text twice
/// without an id replaces rather than duplicates it.
pub fn resolve_document_id(
    given: Option<&Value>,
    chunks: &ChunksInput,
) -> Result<String, TaskError> {
    if let Some(id) = given
        .map(|v| id_from_value(v, "document_id"))
        .transpose()?
        .flatten()
    {
        return Ok(id);
    }
    if let Some(id) = chunks.document.get("id")
        && let Some(id) = id_from_value(id, "chunks.document.id")?
    {
        return Ok(id);
    }
    let mut hasher = Sha256::new();
    for segment in &chunks.segments {
        hasher.update(segment.content.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use taskbox_sdk::json;

    use super::*;

    fn chunks(value: Value) -> ChunksInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn plain_segments_become_units_deduplicated_by_sha() {
        let c = chunks(json!({"segments": [
            {"position": 0, "content": "alpha"},
            {"position": 1, "content": "beta"},
            {"position": 2, "content": "alpha"},
        ]}));
        let flat = flatten(&c).unwrap();
        assert_eq!(flat.units.len(), 2);
        assert_eq!(flat.units[0].sha256, sha256_hex(b"alpha"));
        assert!(flat.parents.is_empty());
    }

    #[test]
    fn parent_child_segments_flatten_to_children() {
        let c = chunks(json!({"segments": [
            {"position": 0, "content": "p one", "children": [
                {"position": 0, "content": "c one"}, {"position": 1, "content": "c two"}]},
            {"position": 1, "content": "lonely"},
        ]}));
        let flat = flatten(&c).unwrap();
        assert_eq!(flat.parents.len(), 1);
        let parents: Vec<Option<usize>> = flat.units.iter().map(|u| u.parent).collect();
        assert_eq!(parents, [Some(0), Some(0), None]);
    }

    #[test]
    fn bad_segments_are_rejected_by_path() {
        let err = flatten(&chunks(json!({"segments": [{"content": " "}]}))).unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("chunks.segments[0].content")));
        let err = flatten(&chunks(
            json!({"segments": [{"content": "x", "sha256": "00"}]}),
        ))
        .unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("segments[0].sha256")));
    }

    #[test]
    fn document_id_prefers_argument_then_metadata_then_hash() {
        let c = chunks(
            json!({"document": {"id": 42}, "segments": [{"content": "a"}, {"content": "b"}]}),
        );
        assert_eq!(resolve_document_id(Some(&json!("x")), &c).unwrap(), "x");
        assert_eq!(resolve_document_id(None, &c).unwrap(), "42");
        assert_eq!(resolve_document_id(Some(&Value::Null), &c).unwrap(), "42");
        let plain =
            chunks(json!({"document": {}, "segments": [{"content": "a"}, {"content": "b"}]}));
        assert_eq!(
            resolve_document_id(None, &plain).unwrap(),
            sha256_hex(b"ab")
        );
        let err = resolve_document_id(Some(&json!([1])), &c).unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("document_id")));
    }

    #[test]
    fn dataset_names_are_bounded() {
        assert!(check_dataset("docs").is_ok());
        assert!(check_dataset("").is_err());
        assert!(check_dataset(&"x".repeat(MAX_DATASET_BYTES + 1)).is_err());
    }
}
