//! Which format a document is: from its explicit `mime_type`, else its filename's extension,
//! else the content itself ([`Kind::sniff`]). Also owns the UTF-8 decoding rule that every
//! text format shares ([`decode_utf8`]).

/// A format this component knows how to turn into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain text.
    Text,
    /// CommonMark / GitHub-flavoured Markdown.
    Markdown,
    /// HTML or XHTML.
    Html,
    /// Comma-separated values.
    Csv,
    /// Tab-separated values (reported as type `csv`: same model, another delimiter).
    Tsv,
    /// JSON.
    Json,
    /// Office Open XML word-processing document.
    Docx,
    /// Portable Document Format.
    Pdf,
}

/// The mime type of DOCX; long enough to be worth naming once.
pub const DOCX_MIME: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// Mime types accepted in `mime_type`, for the reject message that lists them.
const SUPPORTED_MIME: &str = "text/plain, text/markdown, text/html, application/xhtml+xml, \
     text/csv, text/tab-separated-values, application/json (or any +json type), \
     application/pdf, the DOCX type, or application/octet-stream to let the content decide";

impl Kind {
    /// The `metadata.type` value reported for this format.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Markdown => "markdown",
            Kind::Html => "html",
            Kind::Csv | Kind::Tsv => "csv",
            Kind::Json => "json",
            Kind::Docx => "docx",
            Kind::Pdf => "pdf",
        }
    }

    /// The mime type reported when the caller gave none.
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Text => "text/plain",
            Kind::Markdown => "text/markdown",
            Kind::Html => "text/html",
            Kind::Csv => "text/csv",
            Kind::Tsv => "text/tab-separated-values",
            Kind::Json => "application/json",
            Kind::Docx => DOCX_MIME,
            Kind::Pdf => "application/pdf",
        }
    }

    /// Whether the format is text that must be UTF-8 (as opposed to a binary container).
    pub fn is_text(self) -> bool {
        !matches!(self, Kind::Docx | Kind::Pdf)
    }

    /// Reads an explicit `mime_type`. `Ok(None)` means "no opinion" (`application/octet-stream`),
    /// so detection goes on with the filename and the content. Returns the kind and the
    /// essence (the type without parameters, lower-cased) to report back.
    pub fn from_mime(mime: &str) -> Result<(Option<Kind>, String), String> {
        let mut parts = mime.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let kind = match essence.as_str() {
            "" => return Err("document.mime_type is empty; omit it to detect the type".into()),
            "application/octet-stream" => None,
            "text/plain" => Some(Kind::Text),
            "text/markdown" | "text/x-markdown" => Some(Kind::Markdown),
            "text/html" | "application/xhtml+xml" => Some(Kind::Html),
            "text/csv" | "application/csv" => Some(Kind::Csv),
            "text/tab-separated-values" => Some(Kind::Tsv),
            "application/json" | "text/json" => Some(Kind::Json),
            DOCX_MIME => Some(Kind::Docx),
            "application/pdf" => Some(Kind::Pdf),
            other if other.starts_with("application/") && other.ends_with("+json") => {
                Some(Kind::Json)
            }
            other => {
                return Err(format!(
                    "document.mime_type '{other}' is not a supported type (supported: {SUPPORTED_MIME})"
                ));
            }
        };
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("charset") {
                continue;
            }
            let charset = value.trim().trim_matches('"').to_ascii_lowercase();
            if !matches!(charset.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                return Err(format!(
                    "document.mime_type declares charset '{charset}', but only UTF-8 text is \
                     supported; convert the document to UTF-8 first"
                ));
            }
        }
        Ok((kind, essence))
    }

    /// The format a filename's extension names, if it names one this component knows.
    pub fn from_filename(filename: &str) -> Option<Kind> {
        let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
        let (_, ext) = base.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" | "log" => Kind::Text,
            "md" | "markdown" | "mdown" | "mkd" => Kind::Markdown,
            "html" | "htm" | "xhtml" => Kind::Html,
            "csv" => Kind::Csv,
            "tsv" | "tab" => Kind::Tsv,
            "json" => Kind::Json,
            "docx" => Kind::Docx,
            "pdf" => Kind::Pdf,
            _ => return None,
        })
    }

    /// Guesses the format from the bytes. A zip archive is a DOCX only if it holds
    /// `word/document.xml`; any other archive is an error, because extracting it as text
    /// would only ever produce garbage.
    pub fn sniff(bytes: &[u8]) -> Result<Kind, String> {
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            return if crate::docx::is_docx(bytes)? {
                Ok(Kind::Docx)
            } else {
                Err(
                    "the content is a zip archive without word/document.xml, so it is not a \
                     DOCX; only DOCX archives are supported"
                        .into(),
                )
            };
        }
        let text = strip_bom(bytes).trim_ascii_start();
        // Only a leading header: a text that merely mentions `%PDF-` is still text.
        if text.starts_with(b"%PDF-") {
            return Ok(Kind::Pdf);
        }
        let prefix: Vec<u8> = text.iter().take(14).map(u8::to_ascii_lowercase).collect();
        if prefix.starts_with(b"<!doctype html") || prefix.starts_with(b"<html") {
            return Ok(Kind::Html);
        }
        if matches!(text.first(), Some(b'{' | b'['))
            && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
        {
            return Ok(Kind::Json);
        }
        Ok(Kind::Text)
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Decodes a text format's bytes: UTF-8 only (a leading byte-order mark is dropped), with a
/// message that says where the first bad byte is, since the caller has to fix the encoding.
pub fn decode_utf8(bytes: &[u8], kind: Kind) -> Result<&str, String> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(format!(
            "the {} content is UTF-16 (it starts with a UTF-16 byte-order mark); only UTF-8 \
             text is supported, convert it first",
            kind.name()
        ));
    }
    std::str::from_utf8(strip_bom(bytes)).map_err(|err| {
        format!(
            "the {} content is not valid UTF-8 (invalid byte at offset {}); only UTF-8 text is \
             supported, convert it first",
            kind.name(),
            err.valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_parameters_and_unknown_types() {
        assert_eq!(
            Kind::from_mime("Text/HTML; charset=UTF-8").unwrap(),
            (Some(Kind::Html), "text/html".to_string())
        );
        assert_eq!(
            Kind::from_mime("application/ld+json").unwrap().0,
            Some(Kind::Json)
        );
        assert_eq!(Kind::from_mime("application/octet-stream").unwrap().0, None);
        assert!(
            Kind::from_mime("image/png")
                .unwrap_err()
                .contains("'image/png'")
        );
        assert!(
            Kind::from_mime("text/plain; charset=latin1")
                .unwrap_err()
                .contains("latin1")
        );
    }

    #[test]
    fn extensions_and_sniffing() {
        assert_eq!(Kind::from_filename("a/b/Report.HTM"), Some(Kind::Html));
        assert_eq!(Kind::from_filename("dir.md/readme"), None);
        assert_eq!(Kind::from_filename("noext"), None);
        assert_eq!(
            Kind::sniff(b"\xEF\xBB\xBF  <!DOCTYPE html><p>x"),
            Ok(Kind::Html)
        );
        assert_eq!(Kind::sniff(b"\n%PDF-1.7\n"), Ok(Kind::Pdf));
        assert_eq!(Kind::sniff(b"a PDF starts with %PDF-1.7"), Ok(Kind::Text));
        assert_eq!(Kind::sniff(b" [1, {\"a\": 2}] "), Ok(Kind::Json));
        assert_eq!(Kind::sniff(b"[not json"), Ok(Kind::Text));
        assert_eq!(Kind::sniff(b"hello"), Ok(Kind::Text));
    }

    #[test]
    fn utf8_errors_say_where() {
        assert_eq!(decode_utf8(b"\xEF\xBB\xBFok", Kind::Text), Ok("ok"));
        let err = decode_utf8(b"ab\xFFcd", Kind::Csv).unwrap_err();
        assert!(
            err.contains("not valid UTF-8") && err.contains("offset 2"),
            "{err}"
        );
        assert!(
            decode_utf8(b"\xFF\xFEa\0", Kind::Text)
                .unwrap_err()
                .contains("UTF-16")
        );
    }
}
