//! Text assembly shared by the format extractors: [`Builder`] turns "inline text", "line
//! break" and "paragraph break" events into plain text without doubled breaks, and
//! [`normalize`] is the final clean-up every extractor's output goes through.

/// Upper bound on extracted text, in bytes. Some formats amplify their input (CSV repeats
/// the header on every row, JSON repeats the key path on every leaf), so a small document
/// could otherwise produce more text than a task's memory can hold.
pub const MAX_TEXT_BYTES: usize = 32 * 1024 * 1024;

/// The error an extractor returns when its output passes [`MAX_TEXT_BYTES`].
pub fn too_much_text() -> String {
    format!(
        "the extracted text is larger than {} MiB; split the document before extracting it",
        MAX_TEXT_BYTES / (1024 * 1024)
    )
}

/// A break a format asks for between two runs of text; the larger pending one wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Break {
    /// Nothing between the runs.
    #[default]
    None,
    /// A newline.
    Line,
    /// A blank line: the runs are separate paragraphs.
    Paragraph,
}

/// Assembles plain text from a format walker's events, so each extractor only says where
/// breaks belong and never counts newlines itself. Breaks are deferred until more text
/// arrives, so an element that produces nothing leaves no stray blank lines.
#[derive(Debug, Default)]
pub struct Builder {
    out: String,
    pending: Break,
    /// A run of collapsed whitespace is waiting to become one space.
    space: bool,
    /// A list-item marker to write before the item's first text.
    marker: Option<String>,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far (for size guards).
    pub fn written(&self) -> usize {
        self.out.len()
    }

    /// Requests a break before the next text; does nothing at the very start. While a list
    /// marker waits for its item's text, block breaks inside the item are absorbed.
    pub fn brk(&mut self, kind: Break) {
        if self.marker.is_none() {
            self.pending = self.pending.max(kind);
        }
        self.space = false;
    }

    /// Starts a list item on its own line: `marker` (e.g. `"- "`, `"2. "`) is written right
    /// before the item's first text, so an item that turns out empty leaves nothing behind.
    pub fn item(&mut self, marker: String) {
        self.marker = None;
        self.brk(Break::Line);
        self.marker = Some(marker);
    }

    /// Appends text whose whitespace is layout (HTML, Markdown paragraphs): every run of
    /// whitespace becomes one space, and whitespace next to a break disappears.
    pub fn push_inline(&mut self, text: &str) {
        for ch in text.chars() {
            if ch.is_whitespace() {
                self.space = true;
                continue;
            }
            if self.at_break() {
                self.open();
            } else if self.space && !self.out.ends_with(char::is_whitespace) {
                self.out.push(' ');
            }
            self.space = false;
            self.out.push(ch);
        }
    }

    /// Appends text whose whitespace is content (code blocks, `<pre>`, DOCX runs): kept as
    /// is, except newlines right after a break, which would double it.
    pub fn push_raw(&mut self, text: &str) {
        let text = if self.at_break() {
            text.trim_start_matches(['\n', '\r'])
        } else {
            text
        };
        if text.is_empty() {
            return;
        }
        if self.at_break() {
            self.open();
        } else if self.space
            && !self.out.ends_with(char::is_whitespace)
            && !text.starts_with(char::is_whitespace)
        {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(text);
    }

    /// The text, normalised.
    pub fn finish(self) -> String {
        normalize(&self.out)
    }

    fn at_break(&self) -> bool {
        self.out.is_empty() || self.pending != Break::None || self.marker.is_some()
    }

    /// Writes the pending break before new text.
    fn open(&mut self) {
        if !self.out.is_empty() {
            let trimmed = self.out.trim_end().len();
            self.out.truncate(trimmed);
            match self.pending {
                Break::None => {}
                Break::Line => self.out.push('\n'),
                Break::Paragraph => self.out.push_str("\n\n"),
            }
        }
        self.pending = Break::None;
        if let Some(marker) = self.marker.take() {
            self.out.push_str(&marker);
        }
    }
}

/// Cleans extracted text the same way for every format, so downstream chunking (and its
/// sha256 dedupe keys) sees one layout convention: `\r\n` and lone `\r` become `\n`, control
/// characters other than tab and newline are dropped, trailing whitespace is trimmed from
/// every line, runs of more than two blank lines become two, and the text has no leading or
/// trailing blank lines.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0usize;
    let mut line = String::new();
    let mut rest = raw;
    loop {
        let (current, next) = match rest.find(['\n', '\r']) {
            Some(at) => {
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..at], Some(&rest[at + skip..]))
            }
            None => (rest, None),
        };
        line.clear();
        line.extend(current.chars().filter(|&c| c == '\t' || !c.is_control()));
        let kept = line.trim_end();
        if kept.is_empty() {
            blank_run += 1;
        } else {
            if !out.is_empty() {
                for _ in 0..=blank_run.min(2) {
                    out.push('\n');
                }
            }
            blank_run = 0;
            out.push_str(kept);
        }
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_unifies_line_ends_and_blank_runs() {
        let raw = "\n\n  lead\r\nkeep  \r\rtwo\n\n\n\n\nfive\u{0}\u{7}\tx\t\n\n";
        assert_eq!(normalize(raw), "  lead\nkeep\n\ntwo\n\n\nfive\tx");
    }

    #[test]
    fn builder_defers_and_merges_breaks() {
        let mut b = Builder::new();
        b.brk(Break::Paragraph);
        b.push_inline("  Hello \n  world ");
        b.brk(Break::Line);
        b.brk(Break::Paragraph);
        b.brk(Break::Paragraph);
        b.push_inline("next");
        b.push_inline(" ");
        b.push_inline("word");
        b.brk(Break::Line);
        b.push_raw("\n  code\n    more\n");
        b.brk(Break::Paragraph);
        assert_eq!(b.finish(), "Hello world\n\nnext word\n  code\n    more");
    }

    #[test]
    fn list_markers_wait_for_their_text() {
        let mut b = Builder::new();
        b.push_inline("Intro");
        b.brk(Break::Paragraph);
        b.item("- ".into());
        b.brk(Break::Paragraph);
        b.push_inline(" one ");
        b.item("- ".into());
        b.item("- ".into());
        b.push_inline("two");
        b.brk(Break::Paragraph);
        b.push_inline("after");
        assert_eq!(b.finish(), "Intro\n\n- one\n- two\n\nafter");
    }
}
