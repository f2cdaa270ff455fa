//! The JSON text of `chunking.split`'s result, written directly rather than through serde_json.
//!
//! Why: the result repeats the whole document in its segments, and serde_json escapes strings
//! one byte per loop iteration, which the sandbox makes about 2.5× slower than native code. Here
//! the bytes that need escaping are found eight at a time (`scan.rs`), and everything
//! between them is copied in one go. The output is byte for byte what `serde_json::to_vec`
//! writes for [`Chunks`] (the tests compare the two), so readers see no difference.

use std::io::Write;

use crate::Chunks;
use crate::scan;
use crate::segment::Segment;

/// `chunks` as compact JSON, exactly as `serde_json::to_vec(chunks)` writes it.
pub fn chunks_json(chunks: &Chunks) -> Vec<u8> {
    // Contents dominate; the rest of a segment's fields take about 150 bytes.
    let content: usize = chunks.segments.iter().map(segment_size).sum();
    let mut out = Vec::with_capacity(content + 256);
    out.extend_from_slice(b"{\"document\":");
    // A `serde_json::Value` always serializes; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &chunks.document);
    out.extend_from_slice(b",\"mode\":");
    string(&mut out, &chunks.mode);
    out.extend_from_slice(b",\"segments\":");
    segments(&mut out, &chunks.segments);
    out.extend_from_slice(b",\"total_tokens\":");
    number(&mut out, chunks.total_tokens);
    out.push(b'}');
    out
}

fn segment_size(segment: &Segment) -> usize {
    segment.content.len() + 160 + segment.children.iter().map(segment_size).sum::<usize>()
}

fn segments(out: &mut Vec<u8>, segments: &[Segment]) {
    out.push(b'[');
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"position\":");
        number(out, segment.position);
        out.extend_from_slice(b",\"content\":");
        string(out, &segment.content);
        out.extend_from_slice(b",\"char_count\":");
        number(out, segment.char_count);
        out.extend_from_slice(b",\"tokens\":");
        number(out, segment.tokens);
        out.extend_from_slice(b",\"sha256\":");
        string(out, &segment.sha256);
        // As `#[serde(skip_serializing_if = "Vec::is_empty")]` on `children`.
        if !segment.children.is_empty() {
            out.extend_from_slice(b",\"children\":");
            self::segments(out, &segment.children);
        }
        out.push(b'}');
    }
    out.push(b']');
}

fn number(out: &mut Vec<u8>, n: usize) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// `text` as a JSON string, escaped as serde_json escapes: `"` and `\`, the short forms `\b`
/// `\t` `\n` `\f` `\r`, `\u00XX` (lowercase hex) for other control characters, the rest as is.
fn string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut copied = 0;
    while let Some(at) = scan::find(bytes, copied, |w| {
        scan::eq(w, b'"') | scan::eq(w, b'\\') | scan::in_ascii_range(w, 0, 0x1f)
    }) {
        out.extend_from_slice(&bytes[copied..at]);
        let b = bytes[at];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        copied = at + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::segment::{Options, split};

    fn chunks_of(text: &str, mode: &str, metadata: serde_json::Value) -> Chunks {
        let overlap = (mode == "automatic").then_some(5);
        let options = Options::resolve(mode, None, Some(60), overlap, None).expect("options");
        let segments = split(text, &options);
        Chunks {
            document: metadata,
            mode: mode.to_string(),
            total_tokens: segments.iter().map(|s| s.tokens).sum(),
            segments,
        }
    }

    proptest! {
        #[test]
        fn strings_escape_as_serde_json_does(text in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f])*") {
            let mut out = Vec::new();
            string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_vec(&text).expect("serializes"));
        }

        #[test]
        fn chunks_write_as_serde_json_does(
            text in "([a-z]{1,9}|[ \\n\\t\"\\\\\\x01\\x1f]|日本語|👍🏽|e\u{301}){0,300}",
            parent_child in any::<bool>(),
        ) {
            let mode = if parent_child { "parent_child" } else { "automatic" };
            let chunks = chunks_of(&text, mode, json!({"title": "T \"q\"\n", "n": 3, "x": [1.5, null]}));
            prop_assert_eq!(chunks_json(&chunks), serde_json::to_vec(&chunks).expect("serializes"));
        }
    }

    #[test]
    fn empty_result_writes_as_serde_json_does() {
        let chunks = chunks_of("", "automatic", json!({}));
        assert_eq!(
            chunks_json(&chunks),
            serde_json::to_vec(&chunks).expect("serializes")
        );
        assert_eq!(
            String::from_utf8(chunks_json(&chunks)).expect("UTF-8"),
            r#"{"document":{},"mode":"automatic","segments":[],"total_tokens":0}"#
        );
    }
}
