//! The built-in `extract` component: `extract.text(document)` turns a document (plain text,
//! Markdown, HTML, CSV, JSON or DOCX, given inline or as a file in the plugin's granted
//! storage) into normalised plain text plus metadata, the `{text, metadata}` object that
//! `chunking.split` takes as its first argument. This file owns the call contract: reading
//! the `document` argument, choosing the format ([`detect`]) and shaping the result; each
//! format's extractor lives in its own module.

pub mod detect;
pub mod docx;
pub mod html;
pub mod jsontext;
pub mod markdown;
pub mod tabular;
pub mod text;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use taskbox_sdk::{Map, TaskError, Value, export_plugin, task};

use detect::Kind;

/// Largest document accepted, inline or from `path`. Documents are held whole in the task's
/// memory next to their parsed form and their text, so the cap keeps a worst case well
/// inside the default 256 MiB task memory limit.
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;

const DOCUMENT_KEYS: &[&str] = &[
    "text",
    "content_base64",
    "path",
    "mime_type",
    "filename",
    "id",
];

/// Why PDFs are refused, kept in one place so the message and the tests agree.
pub const PDF_UNSUPPORTED: &str = "PDF extraction is not supported by this build: the pure-Rust \
     PDF parsers that build for wasm32-wasip2 either panic on malformed files or inflate \
     compressed streams with no size bound, so one small hostile PDF could crash the task; \
     convert the PDF to text, HTML or DOCX before extracting it";

/// Standard base64, padding optional: senders differ on padding and it carries no data.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What an extractor found: the text (already normalised) and a title when the format has
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Normalised plain text.
    pub text: String,
    /// The document's own title, if it states one.
    pub title: Option<String>,
}

/// The result of `extract.text`. Exactly two keys, because `chunking.split` reads this object
/// as its `document` argument (`{text, metadata}`) and carries the metadata through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    /// The document as plain text.
    pub text: String,
    /// What was extracted from where.
    pub metadata: Metadata,
}

/// Metadata about an extracted document; it travels with the chunks into the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The document's title, or `null` when it states none.
    pub title: Option<String>,
    /// Unicode scalar values in `text`, so consumers need not recount.
    pub characters: usize,
    /// The detected format: `text`, `markdown`, `html`, `csv`, `json` or `docx`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The caller's mime type without parameters, else the detected format's.
    pub mime_type: String,
    /// Where the document came from: its `path`, else its `filename`, else `null`.
    pub source: Option<String>,
    /// The caller's document id, echoed back so results can be matched to inputs.
    pub id: Value,
}

/// A `document` argument, checked and with its bytes in hand.
struct Request {
    bytes: Vec<u8>,
    /// Set when the caller sent a bare string: plain text, no detection.
    plain: bool,
    mime_type: Option<String>,
    /// The name whose extension hints at the type: `filename`, else `path`.
    name: Option<String>,
    source: Option<String>,
    id: Value,
}

/// Extracts plain text and metadata from a document.
#[task(name = "extract.text")]
fn extract_text(document: Value) -> Result<Extraction, TaskError> {
    let request = read_request(document)?;
    extract(request).map_err(TaskError::reject)
}

export_plugin!(extract_text);

fn read_request(document: Value) -> Result<Request, TaskError> {
    let map = match document {
        Value::String(text) => {
            if text.len() as u64 > MAX_INPUT_BYTES {
                return Err(too_large("document"));
            }
            return Ok(Request {
                bytes: text.into_bytes(),
                plain: true,
                mime_type: None,
                name: None,
                source: None,
                id: Value::Null,
            });
        }
        Value::Object(map) => map,
        other => {
            return Err(TaskError::reject(format!(
                "document must be a string (plain text) or an object with one of text, \
                 content_base64 or path; got {}",
                json_kind(&other)
            )));
        }
    };
    if let Some(key) = map.keys().find(|k| !DOCUMENT_KEYS.contains(&k.as_str())) {
        return Err(TaskError::reject(format!(
            "document has an unknown key '{key}' (allowed: {})",
            DOCUMENT_KEYS.join(", ")
        )));
    }
    let text = string_field(&map, "text")?;
    let content = string_field(&map, "content_base64")?;
    let path = string_field(&map, "path")?;
    let mime_type = string_field(&map, "mime_type")?;
    let filename = string_field(&map, "filename")?;
    let id = match map.get("id") {
        None | Some(Value::Null) => Value::Null,
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(other) => {
            return Err(TaskError::reject(format!(
                "document.id must be a string or a number, not {}",
                json_kind(other)
            )));
        }
    };
    let given = [text.is_some(), content.is_some(), path.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    if given != 1 {
        let why = if given == 0 {
            "has none"
        } else {
            "has more than one"
        };
        return Err(TaskError::reject(format!(
            "document must have exactly one of text (the content as a string), content_base64 \
             (the bytes, base64-encoded) or path (a file in the plugin's storage); it {why}"
        )));
    }
    let bytes = if let Some(text) = text {
        text.into_bytes()
    } else if let Some(content) = content {
        decode_base64(&content)?
    } else if let Some(path) = path.as_deref() {
        read_file(path)?
    } else {
        Vec::new()
    };
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large("document"));
    }
    Ok(Request {
        bytes,
        plain: false,
        mime_type,
        name: filename.clone().or_else(|| path.clone()),
        source: path.or(filename),
        id,
    })
}

fn string_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, TaskError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(TaskError::reject(format!(
            "document.{key} must be a string, not {}",
            json_kind(other)
        ))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes `content_base64`, ignoring the line breaks MIME-style encoders insert.
fn decode_base64(content: &str) -> Result<Vec<u8>, TaskError> {
    let compact: Vec<u8> = content
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    BASE64.decode(&compact).map_err(|err| {
        TaskError::reject(format!(
            "document.content_base64 is not valid base64 (standard alphabet): {err}"
        ))
    })
}

/// Reads a file the operator granted. Under WASI only preopened directories exist, so a path
/// outside them fails like a missing file; both are the caller's mistake (a reject). Other
/// I/O errors may be transient and are left to the retry policy.
fn read_file(path: &str) -> Result<Vec<u8>, TaskError> {
    use std::io::{ErrorKind, Read};
    let unreadable = |err: std::io::Error| {
        let message = format!(
            "document.path '{path}' cannot be read: {err}; the path must name a file inside \
             a directory granted to the extract plugin"
        );
        match err.kind() {
            ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::InvalidInput
            | ErrorKind::IsADirectory
            | ErrorKind::NotADirectory
            | ErrorKind::Unsupported => TaskError::reject(message),
            _ => TaskError::fail(message),
        }
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(&format!("document.path '{path}'")));
    }
    Ok(bytes)
}

fn too_large(what: &str) -> TaskError {
    TaskError::reject(format!(
        "{what} is larger than {} MiB; split it before extracting",
        MAX_INPUT_BYTES / (1024 * 1024)
    ))
}

/// Chooses the format (mime type, then the filename's or path's extension, then content)
/// and extracts.
fn extract(request: Request) -> Result<Extraction, String> {
    let (explicit, mime_essence) = match request.mime_type.as_deref() {
        Some(mime) => Kind::from_mime(mime).map(|(k, e)| (k, Some(e)))?,
        None => (None, None),
    };
    let kind = if request.plain {
        Kind::Text
    } else if let Some(kind) = explicit {
        kind
    } else if let Some(kind) = request.name.as_deref().and_then(Kind::from_filename) {
        kind
    } else {
        Kind::sniff(&request.bytes)?
    };
    let found = run(kind, &request.bytes)?;
    let mime_type = match mime_essence {
        Some(essence) if essence != "application/octet-stream" => essence,
        _ => kind.mime().to_string(),
    };
    Ok(Extraction {
        metadata: Metadata {
            title: found.title,
            characters: found.text.chars().count(),
            kind: kind.name().to_string(),
            mime_type,
            source: request.source,
            id: request.id,
        },
        text: found.text,
    })
}

fn run(kind: Kind, bytes: &[u8]) -> Result<Extracted, String> {
    if !kind.is_text() {
        return match kind {
            Kind::Docx => docx::extract(bytes),
            _ => Err(PDF_UNSUPPORTED.to_string()),
        };
    }
    let src = detect::decode_utf8(bytes, kind)?;
    Ok(match kind {
        Kind::Markdown => markdown::extract(src),
        Kind::Html => html::extract(src),
        Kind::Csv => untitled(tabular::extract(src, b',')?),
        Kind::Tsv => untitled(tabular::extract(src, b'\t')?),
        Kind::Json => jsontext::extract(src)?,
        _ => untitled(text::normalize(src)),
    })
}

fn untitled(text: String) -> Extracted {
    Extracted { text, title: None }
}

#[cfg(test)]
mod tests;
