//! DOCX to text: the zip container is read with the `zip` crate (deflate through the pure-Rust
//! miniz_oxide backend only) and the WordprocessingML parts with `quick-xml`'s pull reader.
//! Paragraphs become paragraphs, each table row becomes one `cell | cell` line, and the
//! title comes from `docProps/core.xml` (`dc:title`), else the first paragraph styled Title,
//! else the first heading of the highest level. Every inflated byte counts against one
//! budget, so a zip bomb is rejected instead of exhausting the task's memory.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use zip::ZipArchive;
use zip::result::ZipError;

use crate::Extracted;
use crate::text::{Break, Builder};

/// Total bytes all the parts read from one DOCX may inflate to. Real documents' XML is a few
/// MiB at most; this leaves room for the text and the task's other memory.
pub const MAX_INFLATED_BYTES: u64 = 32 * 1024 * 1024;
/// More entries than any real DOCX has; a bound on the central directory a caller can make
/// us index.
const MAX_ENTRIES: usize = 10_000;
const DOCUMENT: &str = "word/document.xml";

/// Whether `bytes` is a zip archive holding `word/document.xml` (content sniffing).
pub fn is_docx(bytes: &[u8]) -> Result<bool, String> {
    let archive = open(bytes)?;
    Ok(archive.index_for_name(DOCUMENT).is_some())
}

fn open(bytes: &[u8]) -> Result<ZipArchive<Cursor<&[u8]>>, String> {
    let archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| format!("not a valid DOCX: the zip archive is broken: {err}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!(
            "not a valid DOCX: the zip archive has {} entries (more than {MAX_ENTRIES})",
            archive.len()
        ));
    }
    Ok(archive)
}

/// Extracts the text of a DOCX document.
pub fn extract(bytes: &[u8]) -> Result<Extracted, String> {
    let mut archive = open(bytes)?;
    let mut budget = MAX_INFLATED_BYTES;
    let document = read_part(&mut archive, DOCUMENT, &mut budget)?.ok_or_else(|| {
        format!("not a valid DOCX: the archive has no {DOCUMENT} (is it another zip format?)")
    })?;
    let styles = match read_part(&mut archive, "word/styles.xml", &mut budget)? {
        Some(xml) => style_names(&xml)?,
        None => HashMap::new(),
    };
    let core_title = match read_part(&mut archive, "docProps/core.xml", &mut budget)? {
        Some(xml) => core_title(&xml)?,
        None => None,
    };
    let (text, heading) = body(&document, &styles)?;
    Ok(Extracted {
        text,
        title: core_title.or(heading),
    })
}

/// Reads one part as UTF-8 XML, charging its inflated size to `budget`. The declared size is
/// checked first, then the actual stream is cut at the budget, since a crafted archive can
/// declare a small size and inflate far more.
fn read_part(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<String>, String> {
    let bomb = || {
        format!(
            "the DOCX inflates to more than {} MiB (a zip bomb?); refusing to read it",
            MAX_INFLATED_BYTES / (1024 * 1024)
        )
    };
    let file = match archive.by_name(name) {
        Ok(file) => file,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(err) => return Err(format!("cannot read {name} from the DOCX: {err}")),
    };
    if file.size() > *budget {
        return Err(bomb());
    }
    let mut buf = Vec::new();
    file.take(*budget + 1)
        .read_to_end(&mut buf)
        .map_err(|err| format!("{name} in the DOCX is corrupt: {err}"))?;
    let used = buf.len() as u64;
    if used > *budget {
        return Err(bomb());
    }
    *budget -= used;
    let xml = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf);
    std::str::from_utf8(xml)
        .map(|s| Some(s.to_string()))
        .map_err(|err| {
            format!(
                "{name} in the DOCX is not UTF-8 (invalid byte at offset {})",
                err.valid_up_to()
            )
        })
}

fn xml_error(part: &str, reader: &Reader<&[u8]>, err: impl std::fmt::Display) -> String {
    format!(
        "{part} in the DOCX is not well-formed XML (near byte {}): {err}",
        reader.error_position()
    )
}

/// The text an entity or character reference stands for.
fn reference(part: &str, reader: &Reader<&[u8]>, r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(ch) = r
        .resolve_char_ref()
        .map_err(|err| xml_error(part, reader, err))?
    {
        return Ok(ch.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(r)
        .map(str::to_string)
        .ok_or_else(|| xml_error(part, reader, format_args!("unknown entity &{};", &**r)))
}

/// The value of the attribute whose local name is `local` (prefixes vary between producers).
fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
        .map(|v| v.into_owned())
}

/// Paragraph style ids mapped to their lower-cased names (`Heading1` → `heading 1`). Built-in
/// style names are English whatever the document's language, unlike the ids.
fn style_names(xml: &str) -> Result<HashMap<String, String>, String> {
    const PART: &str = "word/styles.xml";
    let mut reader = Reader::from_str(xml);
    let mut names = HashMap::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "style" => {
                current = attr(&e, "styleId");
            }
            Ok(Event::Empty(e)) if e.local_name().as_ref() == "name" => {
                if let (Some(id), Some(name)) = (current.as_ref(), attr(&e, "val")) {
                    names.insert(id.clone(), name.to_lowercase());
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == "style" => current = None,
            Ok(Event::Eof) => return Ok(names),
            Ok(_) => {}
            Err(err) => return Err(xml_error(PART, &reader, err)),
        }
    }
}

/// `dc:title` from the core properties, if set.
fn core_title(xml: &str) -> Result<Option<String>, String> {
    const PART: &str = "docProps/core.xml";
    let mut reader = Reader::from_str(xml);
    let mut title: Option<String> = None;
    let mut inside = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == "title" => {
                inside = title.is_none();
                if inside {
                    title = Some(String::new());
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == "title" => inside = false,
            Ok(Event::Text(t)) if inside => {
                if let Some(title) = title.as_mut() {
                    title.push_str(&t.xml10_content());
                }
            }
            Ok(Event::CData(t)) if inside => {
                if let Some(title) = title.as_mut() {
                    title.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) if inside => {
                let text = reference(PART, &reader, &r)?;
                if let Some(title) = title.as_mut() {
                    title.push_str(&text);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => return Err(xml_error(PART, &reader, err)),
        }
    }
    Ok(title
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty()))
}

/// How strongly a paragraph style claims to be the title: 0 for Title, N for Heading N.
fn heading_rank(style: &str, names: &HashMap<String, String>) -> Option<u32> {
    let name = names
        .get(style)
        .cloned()
        .unwrap_or_else(|| style.to_lowercase());
    if name == "title" {
        return Some(0);
    }
    let level = name.strip_prefix("heading")?.trim();
    level.parse().ok().filter(|l| (1..=9).contains(l))
}

#[derive(Default)]
struct Paragraph {
    style: Option<String>,
    text: String,
}

#[derive(Default)]
struct Table {
    cells: Vec<String>,
    cell: String,
}

/// Walks `word/document.xml`: the text, and the best heading as a title candidate.
fn body(xml: &str, styles: &HashMap<String, String>) -> Result<(String, Option<String>), String> {
    let mut reader = Reader::from_str(xml);
    let mut out = Builder::new();
    // Paragraphs nest (a text box's paragraphs sit inside a run of the outer one).
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut heading: Option<(u32, String)> = None;
    let mut in_text = false;
    let mut runs = 0usize;
    // Inside `mc:Fallback`, which repeats the `mc:Choice` content for older readers.
    let mut fallback = 0usize;

    loop {
        let event = reader
            .read_event()
            .map_err(|err| xml_error(DOCUMENT, &reader, err))?;
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                "p" => paragraphs.push(Paragraph::default()),
                "r" => runs += 1,
                "t" => in_text = true,
                "tbl" => tables.push(Table::default()),
                "tr" => {
                    if let Some(table) = tables.last_mut() {
                        table.cells.clear();
                    }
                }
                "tc" => {
                    if let Some(table) = tables.last_mut() {
                        table.cell.clear();
                    }
                }
                "Fallback" => fallback += 1,
                name => inline_element(name, &e, runs, &mut paragraphs),
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "p" => {
                    let paragraph = Paragraph::default();
                    finish_paragraph(paragraph, &mut tables, &mut out, &mut heading, styles);
                }
                name => inline_element(name, &e, runs, &mut paragraphs),
            },
            Event::End(e) => match e.local_name().as_ref() {
                "p" => {
                    if let Some(paragraph) = paragraphs.pop() {
                        finish_paragraph(paragraph, &mut tables, &mut out, &mut heading, styles);
                    }
                }
                "r" => runs = runs.saturating_sub(1),
                "t" => in_text = false,
                "tc" => {
                    if let Some(table) = tables.last_mut() {
                        let cell = std::mem::take(&mut table.cell);
                        table.cells.push(cell.trim().to_string());
                    }
                }
                "tr" => {
                    let row = tables
                        .last_mut()
                        .map(|t| std::mem::take(&mut t.cells).join(" | "));
                    if let Some(row) = row {
                        let row = row.trim_end_matches([' ', '|']).to_string();
                        if tables.len() > 1 {
                            // A nested table's row stays inside the outer cell.
                            let outer = tables.len() - 2;
                            append_spaced(&mut tables[outer].cell, &row);
                        } else {
                            out.brk(Break::Line);
                            out.push_raw(&row);
                            out.brk(Break::Line);
                        }
                    }
                }
                "tbl" => {
                    tables.pop();
                    if tables.is_empty() {
                        out.brk(Break::Paragraph);
                    }
                }
                "Fallback" => fallback = fallback.saturating_sub(1),
                _ => {}
            },
            Event::Text(t) if in_text && fallback == 0 => {
                if let Some(p) = paragraphs.last_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) if in_text && fallback == 0 => {
                if let Some(p) = paragraphs.last_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_text && fallback == 0 => {
                let text = reference(DOCUMENT, &reader, &r)?;
                if let Some(p) = paragraphs.last_mut() {
                    p.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                // Still validate references outside text: broken XML is a reject.
                reference(DOCUMENT, &reader, &r)?;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !paragraphs.is_empty() || !tables.is_empty() {
        return Err(format!(
            "{DOCUMENT} in the DOCX is not well-formed XML: it ends inside an open element"
        ));
    }
    Ok((out.finish(), heading.map(|(_, text)| text)))
}

/// Elements inside runs that stand for characters, and the paragraph style.
fn inline_element(name: &str, e: &BytesStart<'_>, runs: usize, paragraphs: &mut [Paragraph]) {
    let Some(paragraph) = paragraphs.last_mut() else {
        return;
    };
    match name {
        "pStyle" => paragraph.style = attr(e, "val"),
        // Only inside runs: `w:tab` also defines tab stops in paragraph properties.
        "tab" | "ptab" if runs > 0 => paragraph.text.push('\t'),
        "br" | "cr" if runs > 0 => paragraph.text.push('\n'),
        "noBreakHyphen" if runs > 0 => paragraph.text.push('-'),
        _ => {}
    }
}

fn finish_paragraph(
    paragraph: Paragraph,
    tables: &mut [Table],
    out: &mut Builder,
    heading: &mut Option<(u32, String)>,
    styles: &HashMap<String, String>,
) {
    if let Some(table) = tables.last_mut() {
        append_spaced(&mut table.cell, paragraph.text.trim());
        return;
    }
    let text = paragraph.text.trim_end();
    if text.trim().is_empty() {
        return;
    }
    let rank = paragraph
        .style
        .as_deref()
        .and_then(|s| heading_rank(s, styles));
    if let Some(rank) = rank
        && heading.as_ref().is_none_or(|(best, _)| rank < *best)
    {
        let title = text.split_whitespace().collect::<Vec<_>>().join(" ");
        *heading = Some((rank, title));
    }
    out.brk(Break::Paragraph);
    out.push_raw(text);
    out.brk(Break::Paragraph);
}

fn append_spaced(buf: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !buf.is_empty() {
        buf.push(' ');
    }
    buf.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_ranks_use_style_names() {
        let names = HashMap::from([("berschrift1".to_string(), "heading 1".to_string())]);
        assert_eq!(heading_rank("berschrift1", &names), Some(1));
        assert_eq!(heading_rank("Title", &names), Some(0));
        assert_eq!(heading_rank("Heading2", &names), Some(2));
        assert_eq!(heading_rank("Normal", &names), None);
    }

    #[test]
    fn body_walks_paragraphs_tables_and_skips_fallbacks() {
        let xml = r#"<w:document xmlns:w="w" xmlns:mc="mc"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading2"/><w:tabs><w:tab w:val="left"/></w:tabs></w:pPr>
              <w:r><w:t>Sub</w:t></w:r></w:p>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t xml:space="preserve">Main </w:t></w:r><w:r><w:t>&amp; more</w:t></w:r></w:p>
            <w:p><w:r><w:t>A</w:t><w:tab/><w:t>B</w:t><w:br/><w:t>C&#233;</w:t></w:r></w:p>
            <w:p/>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>k</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>v</w:t></w:r></w:p><w:p><w:r><w:t>w</w:t></w:r></w:p></w:tc></w:tr>
              <w:tr><w:tc><w:p/></w:tc><w:tc><w:p><w:r><w:t>2</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            <w:p><w:r><mc:AlternateContent><mc:Choice><w:t>shown</w:t></mc:Choice><mc:Fallback><w:t>twice</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>
            </w:body></w:document>"#;
        let (text, heading) = body(xml, &HashMap::new()).unwrap();
        assert_eq!(
            text,
            "Sub\n\nMain & more\n\nA\tB\nCé\n\nk | v w\n | 2\n\nshown"
        );
        assert_eq!(heading.as_deref(), Some("Main & more"));
    }

    #[test]
    fn broken_xml_is_an_error() {
        let err = body("<w:p><w:t>x</w:p>", &HashMap::new()).unwrap_err();
        assert!(err.contains("not well-formed"), "{err}");
        let err = body("<w:p><w:t>&bogus;</w:t></w:p>", &HashMap::new()).unwrap_err();
        assert!(err.contains("unknown entity"), "{err}");
        let err = body("<w:p><w:t>open", &HashMap::new()).unwrap_err();
        assert!(err.contains("not well-formed"), "{err}");
    }
}
