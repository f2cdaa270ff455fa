//! HTML to text. Parsing uses `scraper`, which wraps html5ever: the browser-grade HTML5
//! parser maintained by the Servo project, pure Rust (it builds for wasm32-wasip2 with no C
//! code) and spec-compliant about the things regex or tolerant tokenizers get wrong (implied
//! end tags, raw-text `<script>`, entity decoding, misnested markup). The tree is walked
//! iteratively, so deeply nested input cannot overflow the stack.

use ego_tree::NodeId;
use ego_tree::iter::Edge;
use scraper::{Html, Node};

use crate::Extracted;
use crate::markdown::collapse_into;
use crate::text::{Break, Builder};

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// Elements whose content is not document text: code, styling, metadata, embedded media
/// and their fallback content, form option lists.
const SKIPPED: &[&str] = &[
    "script", "style", "head", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "audio", "video", "select", "datalist",
];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "center",
    "details",
    "dialog",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "legend",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "ul",
];

/// Elements that sit on their own line inside a paragraph.
const LINES: &[&str] = &["dt", "dd", "br", "option"];

/// Extracts the text of an HTML document: scripts, styles and `<head>` dropped, block
/// elements as paragraphs, list items as `- ` lines, table rows as `a | b` lines. The title
/// is `<title>`, else the first `<h1>`.
pub fn extract(src: &str) -> Extracted {
    let doc = Html::parse_document(src);
    let mut out = Builder::new();
    let mut skip: Option<NodeId> = None;
    let mut title: Option<(NodeId, String)> = None;
    let mut title_done: Option<String> = None;
    let mut h1: Option<(NodeId, String)> = None;
    let mut h1_done: Option<String> = None;
    let mut pre = 0usize;
    let mut cells = 0usize;
    // Open list items (outside table cells): blocks inside an item only break lines.
    let mut items = 0usize;
    // Open table rows: each counts its cells, so cells after the first get a separator.
    let mut rows: Vec<usize> = Vec::new();
    // Open lists: the next number of an `<ol>`, `None` for `<ul>`.
    let mut lists: Vec<Option<u64>> = Vec::new();

    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Text(text) => {
                    if let Some((_, buf)) = title.as_mut() {
                        collapse_into(buf, text);
                    }
                    if skip.is_some() {
                        continue;
                    }
                    if let Some((_, buf)) = h1.as_mut() {
                        collapse_into(buf, text);
                    }
                    if pre > 0 {
                        out.push_raw(text);
                    } else {
                        out.push_inline(text);
                    }
                }
                Node::Element(el) => {
                    if &*el.name.ns != HTML_NS {
                        // Foreign content (SVG, MathML) is drawing, not prose.
                        skip = skip.or(Some(node.id()));
                        continue;
                    }
                    let name = el.name();
                    if name == "title" && title.is_none() && title_done.is_none() {
                        title = Some((node.id(), String::new()));
                    }
                    if skip.is_some() {
                        continue;
                    }
                    if SKIPPED.contains(&name) {
                        skip = Some(node.id());
                        continue;
                    }
                    match name {
                        "h1" if h1.is_none() && h1_done.is_none() => {
                            h1 = Some((node.id(), String::new()))
                        }
                        "pre" | "textarea" | "listing" | "plaintext" => pre += 1,
                        "tr" => {
                            rows.push(0);
                        }
                        "td" | "th" => {
                            if let Some(count) = rows.last_mut() {
                                if *count > 0 {
                                    out.push_raw(" | ");
                                }
                                *count += 1;
                            }
                            cells += 1;
                        }
                        "ul" | "menu" => lists.push(None),
                        "ol" => {
                            let start = el.attr("start").and_then(|s| s.trim().parse().ok());
                            lists.push(Some(start.unwrap_or(1)));
                        }
                        "li" if cells == 0 => {
                            let indent = "  ".repeat(lists.len().saturating_sub(1));
                            let marker = match lists.last_mut() {
                                Some(Some(n)) => {
                                    let marker = format!("{indent}{n}. ");
                                    *n = n.saturating_add(1);
                                    marker
                                }
                                _ => format!("{indent}- "),
                            };
                            out.item(marker);
                            items += 1;
                            continue;
                        }
                        _ => {}
                    }
                    structure(&mut out, name, cells > 0, items > 0);
                }
                _ => {}
            },
            Edge::Close(node) => {
                if title.as_ref().is_some_and(|(id, _)| *id == node.id()) {
                    title_done = title.take().map(|(_, t)| t.trim().to_string());
                }
                if skip == Some(node.id()) {
                    skip = None;
                    continue;
                }
                if skip.is_some() {
                    continue;
                }
                let Node::Element(el) = node.value() else {
                    continue;
                };
                let name = el.name();
                if h1.as_ref().is_some_and(|(id, _)| *id == node.id()) {
                    h1_done = h1.take().map(|(_, t)| t.trim().to_string());
                }
                match name {
                    "pre" | "textarea" | "listing" | "plaintext" => pre = pre.saturating_sub(1),
                    "tr" => {
                        rows.pop();
                    }
                    "td" | "th" => cells = cells.saturating_sub(1),
                    "ul" | "menu" | "ol" => {
                        lists.pop();
                    }
                    "li" if cells == 0 => items = items.saturating_sub(1),
                    _ => {}
                }
                if name == "br" {
                    // A void element: its one line break was made when it opened.
                    continue;
                }
                structure(&mut out, name, cells > 0, items > 0);
            }
        }
    }
    let title = title_done
        .filter(|t| !t.is_empty())
        .or(h1_done.filter(|t| !t.is_empty()));
    Extracted {
        text: out.finish(),
        title,
    }
}

/// The break an element makes where it opens and closes. Inside a table cell blocks only
/// separate words, so a row stays on one line; inside a list item they only break lines, so
/// the list stays one paragraph.
fn structure(out: &mut Builder, name: &str, in_cell: bool, in_item: bool) {
    let kind = if BLOCKS.contains(&name) && !in_item {
        Break::Paragraph
    } else if BLOCKS.contains(&name) || LINES.contains(&name) || matches!(name, "tr" | "li") {
        Break::Line
    } else {
        return;
    };
    if in_cell {
        out.push_inline(" ");
    } else {
        out.brk(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_styles_and_head_are_dropped_and_blocks_kept() {
        let src = "<!doctype html><html><head><title> The &amp; Page </title>\
                   <style>p{color:red}</style><script>var x = '<p>no</p>';</script></head>\
                   <body><h1>Heading</h1><p>First   paragraph with <b>bold</b>\n text.</p>\
                   <noscript>enable js</noscript><div>Second<br>line two</div>\
                   <ul><li><p>one</p></li><li>two<ol start=\"3\"><li>three</li></ol></li></ul>\
                   <table><tr><th>k</th><th>v</th></tr><tr><td><p>a</p></td><td>1</td></tr></table>\
                   <pre>  keep\n    indent</pre><svg><title>icon</title><text>draw</text></svg>\
                   <p>caf&eacute; &lt;tag&gt;</p></body></html>";
        let out = extract(src);
        assert_eq!(out.title.as_deref(), Some("The & Page"));
        assert_eq!(
            out.text,
            "Heading\n\nFirst paragraph with bold text.\n\nSecond\nline two\n\n- one\n- two\n  \
             3. three\n\nk | v\na | 1\n\n  keep\n    indent\n\ncafé <tag>"
        );
    }

    #[test]
    fn title_falls_back_to_first_h1() {
        let out = extract("<p>intro</p><h1>Main <i>topic</i></h1><h1>Other</h1>");
        assert_eq!(out.title.as_deref(), Some("Main topic"));
        assert_eq!(extract("<p>no heading</p>").title, None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        // Deep enough that a recursive walk would need a large stack. (html5ever's scope
        // checks are quadratic in depth, so much deeper only makes the test slow; in a worker
        // the task's fuel and timeout bound that cost.)
        let src = "<div>".repeat(10_000) + "deep" + &"</div>".repeat(10_000);
        assert_eq!(extract(&src).text, "deep");
    }
}
