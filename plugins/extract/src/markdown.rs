//! Markdown to text with pulldown-cmark (a CommonMark-conformant, pure-Rust pull parser, so
//! we walk its events instead of guessing at syntax with regexes). Emphasis, link and image
//! syntax, code-fence markers, raw HTML and front matter are dropped; the words stay.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::Extracted;
use crate::text::{Break, Builder};

/// Extracts the text of a Markdown document. The title is the first level-1 heading (`#` or
/// a `===` underline), else a `title:` line of YAML front matter.
pub fn extract(src: &str) -> Extracted {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut out = Builder::new();
    let mut title: Option<String> = None;
    let mut front_matter_title: Option<String> = None;
    // Text of the heading being read, when it may become the title.
    let mut heading: Option<String> = None;
    let mut code: Option<String> = None;
    let mut metadata: Option<String> = None;
    // Next number of each open list (`None` for bullet lists).
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut cells = 0usize;

    for event in Parser::new_ext(src, options) {
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph | Tag::BlockQuote(_) | Tag::Table(_) | Tag::HtmlBlock => {
                    out.brk(Break::Paragraph)
                }
                Tag::Heading { level, .. } => {
                    out.brk(Break::Paragraph);
                    if level == HeadingLevel::H1 && title.is_none() {
                        heading = Some(String::new());
                    }
                }
                Tag::CodeBlock(_) => {
                    out.brk(Break::Paragraph);
                    code = Some(String::new());
                }
                Tag::List(start) => {
                    out.brk(if lists.is_empty() {
                        Break::Paragraph
                    } else {
                        Break::Line
                    });
                    lists.push(start);
                }
                Tag::Item => {
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
                }
                Tag::TableHead | Tag::TableRow => {
                    out.brk(Break::Line);
                    cells = 0;
                }
                Tag::TableCell => {
                    if cells > 0 {
                        out.push_raw(" | ");
                    }
                    cells += 1;
                }
                Tag::MetadataBlock(_) => metadata = Some(String::new()),
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph | TagEnd::BlockQuote(_) | TagEnd::Table | TagEnd::HtmlBlock => {
                    out.brk(Break::Paragraph)
                }
                TagEnd::Heading(_) => {
                    out.brk(Break::Paragraph);
                    if let Some(text) = heading.take() {
                        title = Some(text.trim().to_string()).filter(|t| !t.is_empty());
                    }
                }
                TagEnd::CodeBlock => {
                    if let Some(block) = code.take() {
                        out.push_raw(block.trim_end_matches(['\n', '\r']));
                    }
                    out.brk(Break::Paragraph);
                }
                TagEnd::List(_) => {
                    lists.pop();
                    out.brk(if lists.is_empty() {
                        Break::Paragraph
                    } else {
                        Break::Line
                    });
                }
                TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow => out.brk(Break::Line),
                TagEnd::MetadataBlock(_) => {
                    if let Some(block) = metadata.take() {
                        front_matter_title = front_matter_title.or(yaml_title(&block));
                    }
                }
                _ => {}
            },
            Event::Text(text) => {
                if let Some(block) = code.as_mut() {
                    block.push_str(&text);
                } else if let Some(block) = metadata.as_mut() {
                    block.push_str(&text);
                } else {
                    inline(&mut out, &mut heading, &text);
                }
            }
            Event::Code(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                inline(&mut out, &mut heading, &text)
            }
            Event::FootnoteReference(label) => {
                inline(&mut out, &mut heading, &format!("[{label}]"))
            }
            Event::SoftBreak => inline(&mut out, &mut heading, " "),
            Event::HardBreak => out.brk(Break::Line),
            Event::Rule => out.brk(Break::Paragraph),
            Event::TaskListMarker(done) => out.push_raw(if done { "[x] " } else { "[ ] " }),
            // Raw HTML is markup, not prose (comments, <br>, <div align=...>).
            Event::Html(_) | Event::InlineHtml(_) => {}
        }
    }
    Extracted {
        text: out.finish(),
        title: title.or(front_matter_title),
    }
}

/// Appends inline text, also to the heading being captured as the title.
fn inline(out: &mut Builder, heading: &mut Option<String>, text: &str) {
    out.push_inline(text);
    if let Some(heading) = heading.as_mut() {
        collapse_into(heading, text);
    }
}

/// Appends `text` to `buf` with whitespace runs collapsed to one space and no leading space
/// (titles are built from several text events; trim the end when done).
pub fn collapse_into(buf: &mut String, text: &str) {
    for ch in text.chars() {
        if !ch.is_whitespace() {
            buf.push(ch);
        } else if !buf.is_empty() && !buf.ends_with(' ') {
            buf.push(' ');
        }
    }
}

/// `title: ...` at the top level of a YAML front-matter block, unquoted. A full YAML parser
/// would be a large dependency for one optional field; other forms are simply ignored.
fn yaml_title(block: &str) -> Option<String> {
    block.lines().find_map(|line| {
        let value = line.strip_prefix("title:")?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        Some(value.to_string()).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_dropped_and_structure_kept() {
        let src = "# The *Title*\n\nSome **bold** and [a link](http://x.invalid) and `code`.\n\
                   Wrapped line.\n\n- one\n- two\n  1. nested\n\n```rust\nfn main() {}\n```\n\n\
                   | a | b |\n|---|---|\n| 1 | 2 |\n\n<!-- hidden -->\n> quoted\n";
        let out = extract(src);
        assert_eq!(out.title.as_deref(), Some("The Title"));
        assert_eq!(
            out.text,
            "The Title\n\nSome bold and a link and code. Wrapped line.\n\n- one\n- two\n  \
             1. nested\n\nfn main() {}\n\na | b\n1 | 2\n\nquoted"
        );
    }

    #[test]
    fn title_falls_back_to_front_matter_and_ignores_level_two() {
        let out = extract("---\ntitle: \"Runbook\"\nowner: ops\n---\n\n## Section\n\nBody.\n");
        assert_eq!(out.title.as_deref(), Some("Runbook"));
        assert_eq!(out.text, "Section\n\nBody.");
        assert_eq!(extract("## Only h2\n").title, None);
    }
}
