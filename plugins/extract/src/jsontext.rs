//! JSON to text. Every non-null scalar leaf becomes a `path: value` line, the path written
//! the way a reader would look it up (`author.name`, `tags[1]`, `meta["content type"]`), so
//! values keep the context their keys give them. Strings keep their own line breaks, so
//! prose stored in JSON stays prose. Top-level array elements, and top-level keys holding an
//! object or array, are separated by blank lines so that each record becomes a paragraph for
//! chunking. The title is a top-level `"title"` string. Keys keep their document order.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Extracted;
use crate::text::{Break, Builder, MAX_TEXT_BYTES, too_much_text};

/// A parsed JSON value that keeps object keys in document order (`serde_json::Value` sorts
/// them unless a workspace-wide feature is switched on, and text should read in the order
/// it was written).
enum Value {
    Null,
    Scalar(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Scalar(
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string()),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(v.trim().to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Value::Object(entries))
    }
}

/// Extracts the text of a JSON document.
pub fn extract(src: &str) -> Result<Extracted, String> {
    // serde_json refuses nesting deeper than 128, which also bounds the recursion below.
    let value: Value = serde_json::from_str(src)
        .map_err(|err| format!("the JSON content is not valid JSON: {err}"))?;
    let mut out = Builder::new();
    let mut path = String::new();
    match &value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.clear();
                path.push_str(&format!("[{i}]"));
                leaves(&mut out, &mut path, item)?;
                out.brk(Break::Paragraph);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.clear();
                push_key(&mut path, key);
                let container = matches!(item, Value::Array(_) | Value::Object(_));
                if container {
                    out.brk(Break::Paragraph);
                }
                leaves(&mut out, &mut path, item)?;
                if container {
                    out.brk(Break::Paragraph);
                }
            }
        }
        scalar => leaves(&mut out, &mut path, scalar)?,
    }
    let title = match &value {
        Value::Object(map) => map.iter().find_map(|(key, item)| match item {
            Value::Scalar(text) if key == "title" && !text.is_empty() => Some(text.clone()),
            _ => None,
        }),
        _ => None,
    };
    Ok(Extracted {
        text: out.finish(),
        title,
    })
}

fn leaves(out: &mut Builder, path: &mut String, value: &Value) -> Result<(), String> {
    let scalar = match value {
        Value::Null => return Ok(()),
        Value::Scalar(s) if s.is_empty() => return Ok(()),
        Value::Scalar(s) => s,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                leaves(out, path, item)?;
                path.truncate(len);
            }
            return Ok(());
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                push_key(path, key);
                leaves(out, path, item)?;
                path.truncate(len);
            }
            return Ok(());
        }
    };
    if path.is_empty() {
        out.push_raw(scalar);
    } else {
        out.push_raw(&format!("{path}: {scalar}"));
    }
    out.brk(Break::Line);
    if out.written() > MAX_TEXT_BYTES {
        return Err(too_much_text());
    }
    Ok(())
}

/// Appends a key: bare when it is a plain identifier, else `["quoted"]` (dropping the dot
/// that may precede it).
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        path.push_str(key);
    } else {
        if path.ends_with('.') {
            path.pop();
        }
        path.push('[');
        path.push_str(&serde_json::Value::String(key.to_string()).to_string());
        path.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_become_path_lines() {
        let src = r#"{"title": " Guide ", "n": 3, "skip": null, "author": {"name": "Ada",
            "content type": "x"}, "tags": ["a", "", true], "body": "line one\nline two"}"#;
        let out = extract(src).unwrap();
        assert_eq!(out.title.as_deref(), Some("Guide"));
        assert_eq!(
            out.text,
            "title: Guide\nn: 3\n\nauthor.name: Ada\nauthor[\"content type\"]: x\n\n\
             tags[0]: a\ntags[2]: true\n\nbody: line one\nline two"
        );
    }

    #[test]
    fn arrays_make_paragraphs_and_scalars_stand_alone() {
        let out = extract(r#"[{"q": "one"}, {"q": "two"}]"#).unwrap();
        assert_eq!(out.text, "[0].q: one\n\n[1].q: two");
        assert_eq!(out.title, None);
        assert_eq!(extract("\"just text\"").unwrap().text, "just text");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(extract(&deep).unwrap_err().contains("not valid JSON"));
    }
}
