//! Turns a composed mail (a subject and a list of content [`Block`]s) into its three wire
//! forms: a single-line subject, a plain-text body and an HTML body.
//!
//! Blocks hold plain, unescaped text only; every byte of markup comes from this file, and every
//! piece of text that reaches the HTML goes through [`escape_html`] on the way. So a template
//! cannot forget to escape a user value: it has no way to emit HTML at all.

use std::fmt::Write as _;

/// One piece of a mail's content, in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A paragraph.
    Para(String),
    /// A one-time code, shown large and on its own.
    Code(String),
    /// A call to action: the button label and the `http(s)` URL it opens.
    Link {
        /// What the button says.
        label: String,
        /// Where it goes (already checked to be an `http(s)` URL).
        url: String,
    },
    /// A bulleted list.
    List(Vec<String>),
    /// Label/value pairs, shown as a small table.
    Facts(Vec<(String, String)>),
}

/// Language-specific strings the layout itself needs.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The `lang` attribute of the HTML document (a BCP 47 tag).
    pub html_lang: &'a str,
    /// Shown under a button, before its URL, for mail clients that drop the button.
    pub link_hint: &'a str,
    /// What follows a label in the text part (`": "`, or the full-width `"："` in Chinese).
    pub colon: &'a str,
}

/// A mail ready to hand to `taskbox_sdk::mail::send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no control characters.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML alternative.
    pub html: String,
}

/// Renders `subject`, `blocks` and a closing `footer` line into a [`Rendered`] mail.
pub fn render(layout: Layout<'_>, subject: &str, blocks: &[Block], footer: &str) -> Rendered {
    let subject = single_line(subject);
    Rendered {
        text: text(layout, blocks, footer),
        html: html(layout, &subject, blocks, footer),
        subject,
    }
}

fn text(layout: Layout<'_>, blocks: &[Block], footer: &str) -> String {
    let colon = layout.colon;
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Para(p) => out.push_str(p),
            Block::Code(code) => {
                out.push_str("    ");
                out.push_str(code);
            }
            Block::Link { label, url } => {
                let _ = write!(out, "{label}{}\n{url}", colon.trim_end());
            }
            Block::List(items) => {
                let lines: Vec<String> = items.iter().map(|i| format!("  - {i}")).collect();
                out.push_str(&lines.join("\n"));
            }
            Block::Facts(facts) => {
                let lines: Vec<String> = facts
                    .iter()
                    .map(|(l, v)| format!("{l}{colon}{v}"))
                    .collect();
                out.push_str(&lines.join("\n"));
            }
        }
        out.push_str("\n\n");
    }
    out.push_str("-- \n");
    out.push_str(footer);
    out.push('\n');
    out
}

const BODY_STYLE: &str = "margin:0;padding:24px;background:#f4f5f7;\
font-family:-apple-system,'Segoe UI',Helvetica,Arial,'PingFang SC','Microsoft YaHei',sans-serif;\
color:#1d2939;";
const CARD_STYLE: &str =
    "max-width:600px;margin:0 auto;padding:32px;background:#ffffff;border-radius:12px;";
const PARA_STYLE: &str = "margin:0 0 16px;font-size:15px;line-height:1.6;";
const CODE_STYLE: &str = "margin:0 0 16px;padding:16px;background:#f2f4f7;border-radius:8px;\
font-size:28px;font-weight:600;letter-spacing:6px;text-align:center;font-family:monospace;";
const BUTTON_STYLE: &str = "display:inline-block;padding:10px 20px;background:#155eef;\
color:#ffffff;border-radius:8px;text-decoration:none;font-weight:600;";
const HINT_STYLE: &str = "margin:0 0 16px;font-size:12px;line-height:1.5;color:#667085;\
word-break:break-all;";
const CELL_STYLE: &str = "padding:4px 12px 4px 0;font-size:14px;text-align:left;";
const FOOTER_STYLE: &str = "margin:24px 0 0;font-size:12px;color:#98a2b3;";

fn html(layout: Layout<'_>, subject: &str, blocks: &[Block], footer: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n</head>\n<body style=\"{BODY_STYLE}\">\n\
         <div style=\"{CARD_STYLE}\">\n",
        lang = escape_html(layout.html_lang),
        title = escape_html(subject),
    );
    for block in blocks {
        match block {
            Block::Para(p) => {
                let _ = writeln!(out, "<p style=\"{PARA_STYLE}\">{}</p>", escape_html(p));
            }
            Block::Code(code) => {
                let _ = writeln!(out, "<p style=\"{CODE_STYLE}\">{}</p>", escape_html(code));
            }
            Block::Link { label, url } => {
                let url = escape_html(url);
                let _ = writeln!(
                    out,
                    "<p style=\"{PARA_STYLE}\"><a href=\"{url}\" style=\"{BUTTON_STYLE}\">{}</a></p>\n\
                     <p style=\"{HINT_STYLE}\">{}<br>{url}</p>",
                    escape_html(label),
                    escape_html(layout.link_hint),
                );
            }
            Block::List(items) => {
                out.push_str("<ul style=\"margin:0 0 16px;padding-left:24px;\">\n");
                for item in items {
                    let _ = writeln!(
                        out,
                        "<li style=\"{PARA_STYLE}margin:0;\">{}</li>",
                        escape_html(item)
                    );
                }
                out.push_str("</ul>\n");
            }
            Block::Facts(facts) => {
                out.push_str("<table style=\"margin:0 0 16px;border-collapse:collapse;\">\n");
                for (label, value) in facts {
                    let _ = writeln!(
                        out,
                        "<tr><th style=\"{CELL_STYLE}color:#667085;font-weight:400;\">{}</th>\
                         <td style=\"{CELL_STYLE}font-weight:600;\">{}</td></tr>",
                        escape_html(label),
                        escape_html(value),
                    );
                }
                out.push_str("</table>\n");
            }
        }
    }
    let _ = write!(
        out,
        "<p style=\"{FOOTER_STYLE}\">{}</p>\n</div>\n</body>\n</html>\n",
        escape_html(footer)
    );
    out
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe for a header or a one-line field: every control character (CR and LF
/// included) and Unicode line or paragraph separator becomes a space, runs of whitespace
/// collapse to one space, and the ends are trimmed. A value can then never start a new header.
pub fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ' '
        } else {
            c
        };
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Fills `{name}` placeholders in `pattern` from `lookup`. A placeholder `lookup` does not know
/// is left as written, which the tests catch (no rendered mail may contain a `{`).
pub fn fill<'v>(pattern: &str, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Layout<'static> = Layout {
        html_lang: "en",
        link_hint: "Or open this link:",
        colon: ": ",
    };

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape_html("plain 文字"), "plain 文字");
    }

    #[test]
    fn single_line_removes_every_line_break_and_control() {
        assert_eq!(
            single_line("  Hi\r\nBcc: x@y.z\u{2028}\t\u{0}end  "),
            "Hi Bcc: x@y.z end"
        );
        assert_eq!(single_line("\r\n"), "");
    }

    #[test]
    fn fill_replaces_known_names_and_keeps_unknown_ones() {
        let lookup = |name: &str| match name {
            "a" => Some("1"),
            _ => None,
        };
        assert_eq!(fill("{a}+{b}={a}", lookup), "1+{b}=1");
        assert_eq!(fill("open {a", lookup), "open {a");
        assert_eq!(fill("", lookup), "");
    }

    #[test]
    fn html_escapes_every_block_and_text_keeps_them_verbatim() {
        let evil = "<script>alert(1)</script>";
        let blocks = [
            Block::Para(evil.into()),
            Block::Code(evil.into()),
            Block::Link {
                label: evil.into(),
                url: "https://x.test/?a=1&b=\"2\"".into(),
            },
            Block::List(vec![evil.into()]),
            Block::Facts(vec![(evil.into(), evil.into())]),
        ];
        let mail = render(LAYOUT, evil, &blocks, evil);
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert_eq!(
            mail.html.matches("&lt;script&gt;").count(),
            8,
            "{}",
            mail.html
        );
        assert!(
            mail.html
                .contains("href=\"https://x.test/?a=1&amp;b=&quot;2&quot;\"")
        );
        assert_eq!(mail.text.matches(evil).count(), 7, "{}", mail.text);
    }
}
