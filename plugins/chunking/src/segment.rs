//! Pure segmentation logic of the built-in `chunking` component: option resolution
//! ([`Options::resolve`]), pre-processing ([`Rules`]), the token estimate
//! ([`estimate_tokens`]) and the splitter ([`split`]). It knows nothing about the SDK or
//! the task interface, so it is tested and benchmarked natively; `lib.rs` is the glue.
//!
//! Every segment is a contiguous, grapheme-aligned range of the (pre-processed) text,
//! trimmed of whitespace. Separators are never dropped: a split happens right *after* a
//! separator, so the separator stays at the end of the segment it closes.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_segmentation::{GraphemeCursor, UnicodeSegmentation};

use crate::scan;

const MAX_TOKENS_MIN: u64 = 50;
const MAX_TOKENS_MAX: u64 = 4000;
const CHILD_MAX_TOKENS_MIN: u64 = 10;
const DEFAULT_SEPARATOR: &str = "\n\n";
const DEFAULT_MAX_TOKENS: usize = 500;
const DEFAULT_OVERLAP: usize = 50;
const DEFAULT_CHILD_SEPARATOR: &str = "\n";
const DEFAULT_CHILD_MAX_TOKENS: usize = 200;
/// Bytes of context on each side that a grapheme boundary check may look at.
const BOUNDARY_WINDOW: usize = 256;
const RULE_KEYS: &str =
    "collapse_whitespace, remove_urls_emails, parent_mode, child_separator or child_max_tokens";

/// Pre-processing rules applied to the text before splitting.
///
/// They normalise noisy extracted text so that segments (and their sha256 dedupe keys)
/// do not differ by layout whitespace or volatile links.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Runs of spaces/tabs become one space; a whitespace run holding line breaks becomes
    /// one newline, or two when it held two or more (so 3+ newlines become 2).
    pub collapse_whitespace: bool,
    /// Drop `http(s)://...` and `www....` URLs and e-mail addresses.
    pub remove_urls_emails: bool,
}

/// How the document is cut; chosen by the caller's `mode` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Fixed, sensible defaults: paragraphs merged up to 500 tokens, 50 tokens overlap.
    Automatic,
    /// Caller-chosen separator, size, overlap and rules.
    Custom,
    /// Large parent segments for context, each holding small child segments for retrieval.
    ParentChild,
}

/// Parent-child: what a parent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentMode {
    /// Parents are paragraphs (split on `separator`), merged up to `max_tokens`.
    Paragraph,
    /// The whole document is the parent, cut into further parents past `max_tokens`.
    FullDoc,
}

/// Fully resolved options (the glue fills defaults and validates ranges via
/// [`Options::resolve`]), so that [`split`] itself never fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Which kind of split to make.
    pub mode: Mode,
    /// Primary boundary; never empty after `resolve` (escape sequences already unescaped).
    pub separator: String,
    /// Upper bound of [`estimate_tokens`] for every segment (parents in parent-child mode).
    pub max_tokens: usize,
    /// Tokens of the previous segment's tail repeated at the start of the next one
    /// (automatic and custom; parent-child segments never overlap).
    pub overlap: usize,
    /// Pre-processing applied before splitting.
    pub rules: Rules,
    /// Parent-child only: what a parent is.
    pub parent_mode: ParentMode,
    /// Parent-child only: boundary used to cut a parent into children.
    pub child_separator: String,
    /// Parent-child only: upper bound of [`estimate_tokens`] for every child.
    pub child_max_tokens: usize,
}

impl Options {
    /// Build options from the Python-style call parameters of
    /// `chunking.split(document, mode="automatic", separator=None, max_tokens=None,
    /// overlap=None, rules=None)`, so that every validation message is produced in one place.
    ///
    /// Parameters left `None` take the defaults (`"\n\n"`, 500 tokens, overlap 50 or a tenth
    /// of `max_tokens` if smaller; parent-child: no overlap, children split on `"\n"` with at
    /// most 200 tokens or `max_tokens` if smaller). Given parameters apply in every mode. Rule
    /// defaults: automatic and parent-child collapse whitespace, custom applies no rule; keys
    /// present in `rules` override them one by one. `separator` and `child_separator` accept
    /// the escapes `\n`, `\t`, `\r` and `\\`.
    ///
    /// # Errors
    /// A message naming the bad parameter and the accepted values, e.g.
    /// `max_tokens must be between 50 and 4000, got 10`.
    pub fn resolve(
        mode: &str,
        separator: Option<String>,
        max_tokens: Option<u64>,
        overlap: Option<u64>,
        rules: Option<serde_json::Value>,
    ) -> Result<Options, String> {
        let mode = parse_mode(mode)?;
        let separator = match separator {
            Some(raw) => {
                let separator = unescape(&raw);
                if separator.is_empty() {
                    return Err("separator must not be empty".to_string());
                }
                separator
            }
            None => DEFAULT_SEPARATOR.to_string(),
        };
        let max_tokens = match max_tokens {
            None => DEFAULT_MAX_TOKENS,
            Some(v) if (MAX_TOKENS_MIN..=MAX_TOKENS_MAX).contains(&v) => to_usize(v),
            Some(v) => {
                return Err(format!(
                    "max_tokens must be between {MAX_TOKENS_MIN} and {MAX_TOKENS_MAX}, got {v}"
                ));
            }
        };
        let overlap = match (mode, overlap) {
            (Mode::ParentChild, None | Some(0)) => 0,
            (Mode::ParentChild, Some(v)) => {
                return Err(format!(
                    "overlap must be 0 in parent_child mode (parents and children never overlap), got {v}"
                ));
            }
            (_, None) => DEFAULT_OVERLAP.min(max_tokens / 10),
            (_, Some(v)) if v < max_tokens as u64 => to_usize(v),
            (_, Some(v)) => {
                return Err(format!(
                    "overlap ({v}) must be smaller than max_tokens ({max_tokens})"
                ));
            }
        };
        let mut options = Options {
            mode,
            separator,
            max_tokens,
            overlap,
            rules: Rules {
                collapse_whitespace: mode != Mode::Custom,
                remove_urls_emails: false,
            },
            parent_mode: ParentMode::Paragraph,
            child_separator: DEFAULT_CHILD_SEPARATOR.to_string(),
            child_max_tokens: DEFAULT_CHILD_MAX_TOKENS.min(max_tokens),
        };
        match rules {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (key, value) in &map {
                    options.apply_rule(key, value)?;
                }
            }
            Some(other) => {
                return Err(format!(
                    "rules must be a JSON object with keys {RULE_KEYS}, got {}",
                    short_json(&other)
                ));
            }
        }
        Ok(options)
    }

    /// Apply one key of the `rules` object on top of the mode defaults.
    fn apply_rule(&mut self, key: &str, value: &serde_json::Value) -> Result<(), String> {
        let parent_child_only = || {
            format!(
                "rules.{key} only applies to mode parent_child, not {}",
                mode_name(self.mode)
            )
        };
        match key {
            "collapse_whitespace" => self.rules.collapse_whitespace = rule_bool(key, value)?,
            "remove_urls_emails" => self.rules.remove_urls_emails = rule_bool(key, value)?,
            "parent_mode" => {
                if self.mode != Mode::ParentChild {
                    return Err(parent_child_only());
                }
                self.parent_mode = match value.as_str() {
                    Some("paragraph") => ParentMode::Paragraph,
                    Some("full_doc") => ParentMode::FullDoc,
                    _ => {
                        return Err(format!(
                            "rules.parent_mode must be \"paragraph\" or \"full_doc\", got {}",
                            short_json(value)
                        ));
                    }
                };
            }
            "child_separator" => {
                if self.mode != Mode::ParentChild {
                    return Err(parent_child_only());
                }
                let Some(raw) = value.as_str() else {
                    return Err(format!(
                        "rules.child_separator must be a non-empty string, got {}",
                        short_json(value)
                    ));
                };
                let separator = unescape(raw);
                if separator.is_empty() {
                    return Err("rules.child_separator must not be empty".to_string());
                }
                self.child_separator = separator;
            }
            "child_max_tokens" => {
                if self.mode != Mode::ParentChild {
                    return Err(parent_child_only());
                }
                let max = self.max_tokens;
                match value.as_u64() {
                    Some(v) if (CHILD_MAX_TOKENS_MIN..=max as u64).contains(&v) => {
                        self.child_max_tokens = to_usize(v);
                    }
                    _ => {
                        return Err(format!(
                            "rules.child_max_tokens must be between {CHILD_MAX_TOKENS_MIN} and max_tokens ({max}), got {}",
                            short_json(value)
                        ));
                    }
                }
            }
            other => {
                return Err(format!("unknown rules key '{other}': expected {RULE_KEYS}"));
            }
        }
        Ok(())
    }
}

fn parse_mode(mode: &str) -> Result<Mode, String> {
    match mode.trim().to_ascii_lowercase().as_str() {
        "automatic" => Ok(Mode::Automatic),
        "custom" => Ok(Mode::Custom),
        "parent_child" | "hierarchical" => Ok(Mode::ParentChild),
        _ => Err(format!(
            "unknown mode '{mode}': expected automatic, custom or parent_child"
        )),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Automatic => "automatic",
        Mode::Custom => "custom",
        Mode::ParentChild => "parent_child",
    }
}

fn rule_bool(key: &str, value: &serde_json::Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| {
        format!(
            "rules.{key} must be true or false, got {}",
            short_json(value)
        )
    })
}

/// JSON text of `value`, cut short so error messages stay readable.
fn short_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// Saturating `u64 -> usize` (only called on values already checked to be <= 4000).
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Turn the escapes `\n`, `\t`, `\r` and `\\` into their characters; any other backslash
/// is kept as written.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// One output chunk of the document, with what the indexer needs to store and dedupe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// 0-based, in document order (within the parent for children).
    pub position: usize,
    /// The segment text, trimmed of leading/trailing whitespace; never empty.
    pub content: String,
    /// Unicode scalar values (chars) in `content`.
    pub char_count: usize,
    /// `estimate_tokens(&content)`.
    pub tokens: usize,
    /// Lowercase hex sha256 of `content`'s UTF-8 bytes (dedupe key).
    pub sha256: String,
    /// Parent-child mode only: child chunks of this parent, positions 0.. within the parent.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub children: Vec<Segment>,
}

/// Splits `text` (already extracted plain text) into segments, so that each one fits an
/// embedding model's budget of `max_tokens` as counted by [`estimate_tokens`].
///
/// Rules run first. Then the text is cut after each `separator` (`"\n\n"` also matches a
/// blank line holding spaces or CR LF line ends); consecutive pieces are
/// merged while they fit, and a piece that does not fit is cut further (kept apart from
/// its neighbours) after blank lines, line ends, sentence ends (`. ` `! ` `? ` `。` `！` `？`),
/// whitespace and finally between grapheme clusters. Cuts never fall inside a grapheme
/// cluster. With `overlap > 0`, each segment but the first starts with a tail of the
/// previous one (whole words, at most `overlap` tokens and never so much that the segment
/// would exceed `max_tokens`). Empty or whitespace-only input gives no segment.
///
/// In parent-child mode the parents are made that way without overlap (from the whole
/// document instead of `separator` pieces with [`ParentMode::FullDoc`]), and each parent's
/// content is split again with `child_separator` and `child_max_tokens` into its children.
pub fn split(text: &str, opts: &Options) -> Vec<Segment> {
    split_preprocessed(&preprocess(Cow::Borrowed(text), &opts.rules), opts)
}

/// [`split`] for a text the caller owns and no longer needs, as the component has it: each
/// version of the text is freed as soon as a rule has made a changed copy, so its memory is
/// reused for the next instead of growing the sandbox's.
pub fn split_owned(text: String, opts: &Options) -> Vec<Segment> {
    split_preprocessed(&preprocess(Cow::Owned(text), &opts.rules), opts)
}

fn split_preprocessed(text: &str, opts: &Options) -> Vec<Segment> {
    match opts.mode {
        Mode::Automatic | Mode::Custom => split_ranges(
            text,
            level_for(&opts.separator),
            opts.max_tokens,
            opts.overlap,
        )
        .into_iter()
        .enumerate()
        .map(|(position, chunk)| make_segment(position, &text[chunk.range], chunk.tokens))
        .collect(),
        Mode::ParentChild => {
            let first = match opts.parent_mode {
                ParentMode::Paragraph => level_for(&opts.separator),
                ParentMode::FullDoc => Level::Whole,
            };
            let child_level = level_for(&opts.child_separator);
            split_ranges(text, first, opts.max_tokens, 0)
                .into_iter()
                .enumerate()
                .map(|(position, parent)| {
                    let content = &text[parent.range];
                    let children = split_ranges(content, child_level, opts.child_max_tokens, 0)
                        .into_iter()
                        .enumerate()
                        .map(|(i, child)| make_segment(i, &content[child.range], child.tokens))
                        .collect();
                    Segment {
                        children,
                        ..make_segment(position, content, parent.tokens)
                    }
                })
                .collect()
        }
    }
}

fn make_segment(position: usize, content: &str, tokens: usize) -> Segment {
    Segment {
        position,
        content: content.to_string(),
        char_count: scan::char_count(content.as_bytes()),
        tokens,
        sha256: sha256_hex(content.as_bytes()),
        children: Vec::new(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Token estimate
// ---------------------------------------------------------------------------------------

/// The token estimate used everywhere (also by the indexer), so that sizes agree without
/// shipping a real tokenizer into every component: deterministic, linear and roughly
/// GPT-like.
///
/// The text is read as grapheme clusters (user-perceived characters). A cluster made only
/// of whitespace is free and ends the current word. A cluster starting with a CJK
/// ideograph, kana, bopomofo or hangul character, or holding an emoji (pictographic
/// character, regional-indicator flag, U+FE0F or a keycap), is one token and ends the
/// current word. Every other cluster belongs to a word (a run of such clusters); a word of
/// `n` clusters costs `ceil(n / 4)` tokens, so at least 1. Examples: `"hello world"` is 4,
/// `"日本語"` is 3, `"👍🏽 ok"` is 2, `""` is 0.
pub fn estimate_tokens(text: &str) -> usize {
    tally(text).tokens
}

/// What one grapheme cluster is, for the token estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cluster {
    /// Only whitespace: free, ends a word.
    Space,
    /// CJK or emoji: one token, ends a word.
    Unit,
    /// Part of a word.
    Word,
}

fn is_ascii_space(b: u8) -> bool {
    // Exactly the ASCII characters for which `char::is_whitespace` holds.
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF       // CJK unified ideographs (the common case first)
        | 0x3040..=0x30FF     // hiragana, katakana
        | 0xAC00..=0xD7FF     // hangul syllables, jamo extended-B
        | 0x1100..=0x11FF     // hangul jamo
        | 0x2E80..=0x2FDF     // CJK and Kangxi radicals
        | 0x3005..=0x3007     // 々 〆 〇
        | 0x3021..=0x3029     // Hangzhou numerals
        | 0x3031..=0x3035     // kana repeat marks
        | 0x3038..=0x303C
        | 0x3100..=0x312F     // bopomofo
        | 0x3130..=0x318F     // hangul compatibility jamo
        | 0x31A0..=0x31BF     // bopomofo extended
        | 0x31F0..=0x31FF     // katakana phonetic extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0xA960..=0xA97F     // hangul jamo extended-A
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF66..=0xFFDC     // half-width katakana and hangul
        | 0x1B000..=0x1B16F   // kana supplement and extensions
        | 0x20000..=0x3FFFF // CJK extensions B..
    )
}

fn is_emoji_part(c: char) -> bool {
    matches!(u32::from(c),
        0x20E3                // combining enclosing keycap
        | 0x2300..=0x23FF     // misc technical (⌚ ⏰ ...)
        | 0x2600..=0x27BF     // misc symbols, dingbats
        | 0x2B00..=0x2BFF     // arrows and stars (⭐ ⭕ ...)
        | 0xFE0F              // emoji presentation selector
        | 0x1F000..=0x1FAFF   // emoji blocks, regional indicators
        | 0x1FC00..=0x1FFFD // reserved for future pictographs
    )
}

fn classify_char(c: char) -> Cluster {
    if c.is_ascii() {
        return if c.is_whitespace() {
            Cluster::Space
        } else {
            Cluster::Word
        };
    }
    if is_cjk(c) {
        Cluster::Unit
    } else if c.is_whitespace() {
        Cluster::Space
    } else if is_emoji_part(c) {
        Cluster::Unit
    } else {
        Cluster::Word
    }
}

fn classify(cluster: &str) -> Cluster {
    let mut chars = cluster.chars();
    let Some(first) = chars.next() else {
        return Cluster::Space;
    };
    if chars.as_str().is_empty() {
        return classify_char(first);
    }
    let mut all_space = first.is_whitespace();
    let mut unit = is_cjk(first) || is_emoji_part(first);
    for c in chars {
        all_space &= c.is_whitespace();
        unit |= is_emoji_part(c);
    }
    if all_space {
        Cluster::Space
    } else if unit {
        Cluster::Unit
    } else {
        Cluster::Word
    }
}

/// Characters that no grapheme rule joins to a neighbour that is also simple, so between
/// two of them there is always a cluster boundary. This covers ASCII (but CR), Latin,
/// Greek, Cyrillic, general punctuation, CJK ideographs, kana and full-width forms; the
/// rest (combining marks, ZWJ, Hangul, regional indicators, prepend marks, Indic
/// scripts...) goes through full UAX #29 segmentation. A unit test checks the set against
/// `unicode-segmentation`.
fn is_simple(c: char) -> bool {
    simple_kind(c).is_some()
}

/// What a simple character (see [`is_simple`]) counts as on its own, or `None` if it is
/// not simple: one range match instead of [`is_simple`] then [`classify_char`], which the
/// cluster walks would otherwise run for every character. A unit test checks it against
/// [`classify_char`].
fn simple_kind(c: char) -> Option<Cluster> {
    let code = u32::from(c);
    if code < 0x80 {
        return (c != '\r').then(|| ascii_kind(code as u8));
    }
    Some(match code {
        0x4E00..=0x9FFF
        | 0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3031..=0x3035
        | 0x3038..=0x303C
        | 0x3041..=0x3096
        | 0x309D..=0x30FF
        | 0x3400..=0x4DBF
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9D => Cluster::Unit,
        0xA0 | 0x3000 => Cluster::Space,
        0xA1..=0x2FF
        | 0x370..=0x3FF
        | 0x400..=0x482
        | 0x48A..=0x52F
        | 0x2010..=0x2027
        | 0x2030..=0x205E
        | 0x3001..=0x3004
        | 0x3008..=0x3020
        | 0x3030
        | 0x3036..=0x3037
        | 0x303D..=0x303F
        | 0xFF01..=0xFF65 => Cluster::Word,
        _ => return None,
    })
}

/// What an ASCII character counts as.
fn ascii_kind(b: u8) -> Cluster {
    if is_ascii_space(b) {
        Cluster::Space
    } else {
        Cluster::Word
    }
}

/// One grapheme cluster: where it starts (relative to the iterated text), its text and
/// what it counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grapheme<'a> {
    at: usize,
    text: &'a str,
    kind: Cluster,
}

impl Grapheme<'_> {
    fn end(&self) -> usize {
        self.at + self.text.len()
    }
}

/// The grapheme clusters of a text that starts at a cluster boundary; the same clusters
/// as `grapheme_indices(true)`, but a simple character followed by a simple character (the
/// common case) skips the UAX #29 state machine, and ASCII skips even the char decoding.
struct Clusters<'a> {
    text: &'a str,
    /// Where the next cluster starts.
    pos: usize,
}

impl<'a> Clusters<'a> {
    fn new(text: &'a str) -> Self {
        Clusters { text, pos: 0 }
    }
}

impl<'a> Iterator for Clusters<'a> {
    type Item = Grapheme<'a>;

    fn next(&mut self) -> Option<Grapheme<'a>> {
        let bytes = self.text.as_bytes();
        let at = self.pos;
        let &first = bytes.get(at)?;
        // ASCII but CR, followed by ASCII or nothing: no rule joins the two (every extender
        // and spacing mark is non-ASCII, and no ASCII character is a prepend mark).
        if first < 0x80 && first != b'\r' && bytes.get(at + 1).is_none_or(u8::is_ascii) {
            self.pos = at + 1;
            return Some(Grapheme {
                at,
                text: &self.text[at..at + 1],
                kind: ascii_kind(first),
            });
        }
        let rest = &self.text[at..];
        let mut chars = rest.chars();
        if let Some(c) = chars.next()
            && let Some(kind) = simple_kind(c)
            && chars.next().is_none_or(is_simple)
        {
            let len = c.len_utf8();
            self.pos = at + len;
            return Some(Grapheme {
                at,
                text: &rest[..len],
                kind,
            });
        }
        let text = rest.graphemes(true).next().unwrap_or(rest);
        self.pos = at + text.len();
        Some(Grapheme {
            at,
            text,
            kind: classify(text),
        })
    }
}

/// The grapheme clusters of a text that starts at a cluster boundary, last first. Simple
/// characters are read backwards directly. At any other character, the iterator steps back to
/// the nearest point between two simple characters (always a cluster boundary) and segments
/// forwards from there once: segmenting backwards through a run of regional indicators would
/// re-read the run for every flag (quadratic), and segmenting from the very start would read
/// the whole text when only its tail is wanted.
struct RevClusters<'a> {
    text: &'a str,
    /// Everything before `end` is still to be yielded (after `forward`).
    end: usize,
    /// Clusters segmented forwards and not yet yielded, last on top.
    forward: Vec<Grapheme<'a>>,
}

impl<'a> RevClusters<'a> {
    fn new(text: &'a str) -> Self {
        RevClusters {
            end: text.len(),
            text,
            forward: Vec::new(),
        }
    }
}

impl<'a> Iterator for RevClusters<'a> {
    type Item = Grapheme<'a>;

    fn next(&mut self) -> Option<Grapheme<'a>> {
        if let Some(item) = self.forward.pop() {
            return Some(item);
        }
        let head = &self.text[..self.end];
        let bytes = head.as_bytes();
        // ASCII after ASCII but CR (or after nothing): no rule joins the two.
        let n = bytes.len();
        if n > 0
            && bytes[n - 1] < 0x80
            && (n == 1 || (bytes[n - 2] < 0x80 && bytes[n - 2] != b'\r'))
        {
            self.end -= 1;
            return Some(Grapheme {
                at: self.end,
                text: &head[self.end..],
                kind: ascii_kind(bytes[n - 1]),
            });
        }
        let mut chars = head.chars();
        let last = chars.next_back()?;
        if let Some(kind) = simple_kind(last)
            && chars.next_back().is_none_or(is_simple)
        {
            self.end -= last.len_utf8();
            return Some(Grapheme {
                at: self.end,
                text: &head[self.end..],
                kind,
            });
        }
        // Step back to a boundary between two simple characters (or the start).
        let mut from = 0;
        let mut after: Option<char> = None;
        for (i, c) in head.char_indices().rev() {
            if is_simple(c) && after.is_some_and(is_simple) {
                from = i + c.len_utf8();
                break;
            }
            after = Some(c);
        }
        self.forward
            .extend(Clusters::new(&head[from..]).map(|g| Grapheme {
                at: from + g.at,
                ..g
            }));
        self.end = from;
        self.forward.pop()
    }
}

fn word_tokens(clusters: usize) -> usize {
    clusters.div_ceil(4)
}

/// The longest tail of `text` that costs at most `budget` tokens, starts a word (or a
/// CJK/emoji cluster) and is not the whole text: where it starts and its tally. This is the
/// overlap a segment repeats from the one before it.
fn overlap_tail(text: &str, budget: usize) -> Option<(usize, Tally)> {
    if budget == 0 {
        return None;
    }
    ascii_overlap_tail(text.as_bytes(), budget)
        .unwrap_or_else(|| clusters_overlap_tail(text, budget))
}

/// [`overlap_tail`] a word at a time, for a tail that is ASCII (the common case); `None` if
/// it meets a non-ASCII byte before it is done. In ASCII every byte is a cluster and a word
/// starts after every space, so no cluster walk is needed.
fn ascii_overlap_tail(bytes: &[u8], budget: usize) -> Option<Option<(usize, Tally)>> {
    let mut best = None;
    let mut tokens = 0;
    let mut at = bytes.len();
    loop {
        // The word that ends at `at`: empty if a space does.
        let mut start = at;
        while start > 0 && !is_ascii_space(bytes[start - 1]) {
            if !bytes[start - 1].is_ascii() {
                return None;
            }
            start -= 1;
        }
        tokens += word_tokens(at - start);
        if tokens > budget || start == 0 {
            break;
        }
        if start < at {
            best = Some(start);
        }
        at = start;
        while at > 0 && is_ascii_space(bytes[at - 1]) {
            at -= 1;
        }
        if at == 0 {
            break;
        }
    }
    Some(best.map(|start| (start, tally_ascii(&bytes[start..]))))
}

/// [`overlap_tail`] for any text: its clusters, last first.
fn clusters_overlap_tail(text: &str, budget: usize) -> Option<(usize, Tally)> {
    let mut best = None;
    let mut suffix = Tally::EMPTY;
    let mut front: Option<Cluster> = None;
    for grapheme in RevClusters::new(text) {
        let kind = grapheme.kind;
        if let Some(front_kind) = front {
            let starts_word = front_kind == Cluster::Unit
                || (front_kind == Cluster::Word && kind != Cluster::Word);
            if starts_word {
                best = Some((grapheme.end(), suffix));
            }
        }
        suffix.prepend(kind);
        if suffix.tokens > budget {
            break;
        }
        front = Some(kind);
    }
    best
}

/// Token summary of a piece of text that can be concatenated exactly: the estimate of
/// `a + b` is `tally(a).then(tally(b))` whenever the join is a grapheme boundary. This is
/// what lets the splitter merge pieces without re-estimating growing strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// The estimate of the whole piece.
    tokens: usize,
    /// Clusters of the word the piece starts with (0 if it starts with a non-word).
    lead: usize,
    /// Clusters of the word the piece ends with (0 if it ends with a non-word).
    trail: usize,
    /// The piece is one word (or empty): `lead == trail ==` its cluster count.
    solid: bool,
}

impl Tally {
    const EMPTY: Tally = Tally {
        tokens: 0,
        lead: 0,
        trail: 0,
        solid: true,
    };
    const SPACE: Tally = Tally {
        tokens: 0,
        lead: 0,
        trail: 0,
        solid: false,
    };

    fn of(cluster: Cluster) -> Tally {
        let mut tally = Tally::EMPTY;
        tally.push(cluster);
        tally
    }

    fn push(&mut self, cluster: Cluster) {
        match cluster {
            Cluster::Space => {
                self.trail = 0;
                self.solid = false;
            }
            Cluster::Unit => {
                self.tokens += 1;
                self.trail = 0;
                self.solid = false;
            }
            Cluster::Word => {
                self.tokens += word_tokens(self.trail + 1) - word_tokens(self.trail);
                self.trail += 1;
                if self.solid {
                    self.lead += 1;
                }
            }
        }
    }

    /// The tally of `cluster` followed by `self`: `Tally::of(cluster).then(self)`, for walks
    /// that read a text backwards.
    fn prepend(&mut self, cluster: Cluster) {
        match cluster {
            Cluster::Space => {
                self.lead = 0;
                self.solid = false;
            }
            Cluster::Unit => {
                self.tokens += 1;
                self.lead = 0;
                self.solid = false;
            }
            Cluster::Word => {
                self.tokens += word_tokens(self.lead + 1) - word_tokens(self.lead);
                self.lead += 1;
                if self.solid {
                    self.trail += 1;
                }
            }
        }
    }

    /// The tally of `self` followed by `next`.
    fn then(self, next: Tally) -> Tally {
        let tokens = if self.trail > 0 && next.lead > 0 {
            // The two edge words join into one. Invariant: `tokens` always includes the
            // cost of its own lead and trail words, so the subtractions cannot underflow.
            (self.tokens - word_tokens(self.trail))
                + (next.tokens - word_tokens(next.lead))
                + word_tokens(self.trail + next.lead)
        } else {
            self.tokens + next.tokens
        };
        Tally {
            tokens,
            lead: if self.solid {
                self.lead + next.lead
            } else {
                self.lead
            },
            trail: if next.solid {
                self.trail + next.trail
            } else {
                next.trail
            },
            solid: self.solid && next.solid,
        }
    }
}

/// The tally of a text that starts at a cluster boundary: ASCII runs take a byte loop,
/// runs of simple characters a char loop, and only the rest the full cluster walk.
fn tally(text: &str) -> Tally {
    let bytes = text.as_bytes();
    let mut tally = Tally::EMPTY;
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(non_ascii) = scan::find(bytes, pos, scan::non_ascii) else {
            return tally.then(tally_ascii(&bytes[pos..]));
        };
        // The ASCII character just before may share a cluster with what follows (a
        // combining mark, say), so it goes through the cluster walk. Cutting a CR LF pair
        // here is harmless: two space clusters tally like one.
        let mut at = non_ascii.saturating_sub(1).max(pos);
        tally = tally.then(tally_ascii(&bytes[pos..at]));
        if at < non_ascii {
            at += next_cluster(text, at, &mut tally);
        }
        loop {
            at = simple_run(text, at, &mut tally);
            match bytes.get(at) {
                None => return tally,
                Some(b) if b.is_ascii() => break,
                Some(_) => at += next_cluster(text, at, &mut tally),
            }
        }
        pos = at;
    }
    tally
}

/// Pushes the cluster that starts at `at` (a cluster boundary) and returns its length.
fn next_cluster(text: &str, at: usize, tally: &mut Tally) -> usize {
    let grapheme = Clusters::new(&text[at..]).next();
    grapheme.map_or(text.len() - at, |g| {
        tally.push(g.kind);
        g.text.len()
    })
}

/// Pushes the simple non-ASCII characters from `at` (a cluster boundary) that each make a
/// cluster of their own, that is each followed by another such character, ASCII or the end,
/// and returns where they stop. Accented Latin, Cyrillic, CJK ideographs, kana and CJK
/// punctuation are mostly these, and this is the cheap way through them: no cluster rules,
/// and every character decoded once.
fn simple_run(text: &str, mut at: usize, tally: &mut Tally) -> usize {
    let bytes = text.as_bytes();
    let mut current = simple_at(text, at);
    while let Some((kind, len)) = current {
        let next = at + len;
        let following = match bytes.get(next) {
            Some(b) if !b.is_ascii() => match simple_at(text, next) {
                Some(found) => Some(found),
                None => break, // what follows may join this cluster: the cluster walk decides
            },
            _ => None,
        };
        tally.push(kind);
        at = next;
        current = following;
    }
    at
}

/// The kind and length of the character at `at` if it is a simple (see [`is_simple`])
/// non-ASCII character; `at` is a char boundary of `text`.
fn simple_at(text: &str, at: usize) -> Option<(Cluster, usize)> {
    let c = text.get(at..)?.chars().next()?;
    if c.is_ascii() {
        return None; // ASCII is not walked here
    }
    simple_kind(c).map(|kind| (kind, c.len_utf8()))
}

/// Fast path: in ASCII text every byte is a cluster (`\r\n` is one, but both are spaces).
/// A word of `n` characters costs `ceil(n / 4)`, that is one token at its 1st, 5th, 9th...
/// character; eight bytes are counted at a time through [`WORD_TOKENS`].
fn tally_ascii(bytes: &[u8]) -> Tally {
    let mut tokens = 0;
    let mut run = 0usize;
    let mut at = 0;
    while let Some(w) = scan::word(bytes, at) {
        let spaces = scan::gather(scan::ascii_space(w));
        tokens += usize::from(WORD_TOKENS[run & 3][usize::from(spaces)]);
        // The word's last bytes that are not spaces continue into the next eight.
        run = if spaces == 0 {
            run + 8
        } else {
            spaces.leading_zeros() as usize
        };
        at += 8;
    }
    for &b in &bytes[at..] {
        run = if is_ascii_space(b) { 0 } else { run + 1 };
        tokens += usize::from(run & 3 == 1);
    }
    let lead = scan::find(bytes, 0, scan::ascii_space).unwrap_or(bytes.len());
    Tally {
        tokens,
        lead,
        trail: run,
        solid: lead == bytes.len(),
    }
}

/// `WORD_TOKENS[r][s]`: the tokens that eight ASCII bytes add when bit `k` of `s` says byte
/// `k` is a space and the word running into them has `r` characters, modulo 4.
static WORD_TOKENS: [[u8; 256]; 4] = word_tokens_table();

const fn word_tokens_table() -> [[u8; 256]; 4] {
    let mut table = [[0u8; 256]; 4];
    let mut carry = 0;
    while carry < 4 {
        let mut spaces = 0;
        while spaces < 256 {
            let (mut run, mut tokens, mut k) = (carry, 0, 0);
            while k < 8 {
                if (spaces >> k) & 1 == 1 {
                    run = 0;
                } else {
                    run += 1;
                    if run & 3 == 1 {
                        tokens += 1;
                    }
                }
                k += 1;
            }
            table[carry][spaces] = tokens;
            spaces += 1;
        }
        carry += 1;
    }
    table
}

// ---------------------------------------------------------------------------------------
// Pre-processing
// ---------------------------------------------------------------------------------------

fn preprocess<'t>(mut text: Cow<'t, str>, rules: &Rules) -> Cow<'t, str> {
    if rules.remove_urls_emails {
        text = Cow::Owned(remove_urls_emails(&text));
    }
    if rules.collapse_whitespace
        && let Cow::Owned(collapsed) = collapse_whitespace(&text)
    {
        text = Cow::Owned(collapsed);
    }
    text
}

fn collapse_whitespace(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        i = next_collapse_candidate(bytes, i);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        // Lead bytes of every non-ASCII whitespace character: U+0085, U+00A0 (C2),
        // U+1680 (E1), U+2000..U+205F (E2), U+3000 (E3).
        if !(is_ascii_space(b) || matches!(b, 0xC2 | 0xE1 | 0xE2 | 0xE3)) {
            i += 1;
            continue;
        }
        if b == b' '
            && bytes
                .get(i + 1)
                .is_some_and(|&n| n < 0x80 && !is_ascii_space(n))
        {
            i += 2; // a lone space, the common case: nothing to change
            continue;
        }
        let rest = &text[i..];
        let len = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        if len == 0 {
            i += 1;
            continue;
        }
        let run = &rest[..len];
        let replacement = match line_breaks(run) {
            0 => " ",
            1 => "\n",
            _ => "\n\n",
        };
        if run != replacement {
            if out.capacity() == 0 {
                // The copy is never longer than the text: one allocation, no regrowth.
                out.reserve(text.len());
            }
            out.push_str(&text[copied..i]);
            out.push_str(replacement);
            copied = i + len;
        }
        i += len;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The first position at or after `from` that `collapse_whitespace` must look at: ASCII
/// whitespace other than a lone space before a visible ASCII character, or a lead byte that
/// may start non-ASCII whitespace (`C2`, `E0`..`E3`: `E0` is a harmless false alarm). Skips
/// eight bytes at a time; near the end it answers `from` and lets the byte loop finish.
fn next_collapse_candidate(bytes: &[u8], mut from: usize) -> usize {
    while let (Some(w), Some(next)) = (scan::word(bytes, from), scan::word(bytes, from + 1)) {
        // `next` holds, at each byte position, the byte after the one in `w`.
        let lone_space_ok = scan::eq(w, b' ') & !(scan::ascii_space(next) | scan::non_ascii(next));
        let m = (scan::ascii_space(w) & !lone_space_ok)
            | scan::eq(w, 0xC2)
            | scan::eq(w & !0x0303_0303_0303_0303, 0xE0);
        if m != 0 {
            return from + (m.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    from
}

/// Line breaks in a whitespace run; `\r\n` counts once.
fn line_breaks(run: &str) -> usize {
    let mut count = 0;
    let mut after_cr = false;
    for c in run.chars() {
        match c {
            '\n' if after_cr => {}
            '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => count += 1,
            _ => {}
        }
        after_cr = c == '\r';
    }
    count
}

/// Remove URLs (`http://`, `https://`, `www.`, case-insensitive, not glued to a preceding
/// ASCII letter or digit) and e-mail addresses. A URL runs over ASCII URL characters and
/// loses trailing sentence punctuation and unbalanced closing brackets.
fn remove_urls_emails(text: &str) -> String {
    let mut cuts = Vec::new();
    find_urls(text.as_bytes(), &mut cuts);
    find_emails(text.as_bytes(), &mut cuts);
    cuts.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for cut in cuts {
        if cut.end <= pos {
            continue;
        }
        out.push_str(&text[pos..cut.start.max(pos)]);
        pos = cut.end;
    }
    out.push_str(&text[pos..]);
    out
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn find_urls(bytes: &[u8], cuts: &mut Vec<Range<usize>>) {
    let mut from = 0;
    while let Some(i) = scan::find(bytes, from, |w| {
        scan::eq_ignore_case(w, b'h') | scan::eq_ignore_case(w, b'w')
    }) {
        from = i + 1;
        let rest = &bytes[i..];
        let prefix = if starts_with_ignore_case(rest, b"https://") {
            8
        } else if starts_with_ignore_case(rest, b"http://") {
            7
        } else if starts_with_ignore_case(rest, b"www.") {
            4
        } else {
            0
        };
        let glued = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
        let host = i + prefix;
        if prefix == 0 || glued || !bytes.get(host).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut end = host;
        while end < bytes.len() && is_url_byte(bytes[end]) {
            end += 1;
        }
        // Trailing punctuation belongs to the sentence, a closing bracket to the text unless
        // the URL opened it (`.../Rust_(language)`).
        while end > host {
            let url = &bytes[i..end];
            let drop = match bytes[end - 1] {
                b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' | b'*' => true,
                b')' => count(url, b'(') < count(url, b')'),
                b']' => count(url, b'[') < count(url, b']'),
                _ => false,
            };
            if !drop {
                break;
            }
            end -= 1;
        }
        cuts.push(i..end);
        from = end;
    }
}

fn count(bytes: &[u8], b: u8) -> usize {
    bytes.iter().filter(|&&x| x == b).count()
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn find_emails(bytes: &[u8], cuts: &mut Vec<Range<usize>>) {
    // Each scan stops at an '@' (neither a local nor a domain byte), so they stay disjoint
    // and the whole search is linear.
    let mut from = 0;
    while let Some(at) = scan::find(bytes, from, |w| scan::eq(w, b'@')) {
        from = at + 1;
        let mut start = at;
        while start > 0 && is_local_byte(bytes[start - 1]) {
            start -= 1;
        }
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-' || bytes[end] == b'.')
        {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < at && is_domain(&bytes[at + 1..end]) {
            cuts.push(start..end);
        }
    }
}

fn is_domain(domain: &[u8]) -> bool {
    let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic));
    labels.len() >= 2 && tld_ok && labels.iter().all(|label| !label.is_empty())
}

// ---------------------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------------------

/// A kind of boundary; the splitter cuts right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level<'s> {
    /// No cut: the range is one piece (full-doc parents).
    Whole,
    /// A caller's separator.
    Exact(&'s str),
    /// A line break followed by an empty or blank line (`\n\n`, `\r\n\r\n`, `\n  \n`).
    BlankLine,
    /// A line break.
    Newline,
    /// `. `, `! `, `? `, `。`, `！`, `？`.
    Sentence,
    /// The end of a whitespace run.
    Whitespace,
    /// Every grapheme cluster boundary (the last resort; cannot fail).
    Grapheme,
}

const FALLBACKS: [Level<'static>; 5] = [
    Level::BlankLine,
    Level::Newline,
    Level::Sentence,
    Level::Whitespace,
    Level::Grapheme,
];

fn level_for(separator: &str) -> Level<'_> {
    match separator {
        "" => Level::Whole,
        "\n\n" => Level::BlankLine,
        "\n" => Level::Newline,
        other => Level::Exact(other),
    }
}

/// A finished segment: its trimmed byte range and its exact token estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    range: Range<usize>,
    tokens: usize,
}

/// Cut `text` into trimmed, non-empty, grapheme-aligned ranges of at most `max_tokens`.
fn split_ranges(text: &str, first: Level<'_>, max_tokens: usize, overlap: usize) -> Vec<Chunk> {
    let mut levels = vec![first];
    levels.extend(FALLBACKS.iter().copied().filter(|level| *level != first));
    let mut splitter = Splitter {
        text,
        levels,
        // Every cluster costs at most 1 token, so any budget >= 1 can always be met.
        max_tokens: max_tokens.max(1),
        overlap,
        chunks: Vec::new(),
        buf: Buffer::default(),
        last: None,
    };
    splitter.process(0..text.len(), 0, None);
    splitter.flush();
    splitter.chunks
}

/// The segment being filled: `text[start..end]`, whose estimate is `tally`. Until a piece
/// with tokens arrives (`has_content`), it only holds whitespace left over from the cuts.
#[derive(Debug, Clone)]
struct Buffer {
    start: usize,
    end: usize,
    tally: Tally,
    has_content: bool,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            start: 0,
            end: 0,
            tally: Tally::EMPTY,
            has_content: false,
        }
    }
}

struct Splitter<'a> {
    text: &'a str,
    levels: Vec<Level<'a>>,
    max_tokens: usize,
    overlap: usize,
    chunks: Vec<Chunk>,
    buf: Buffer,
    /// Trimmed range of the last emitted chunk (source of the next overlap).
    last: Option<Range<usize>>,
}

impl Splitter<'_> {
    /// Cut `range` at `levels[depth]` and feed the pieces to the buffer; pieces over budget
    /// are cut at the next level, as segments of their own. `known` is `range`'s tally when
    /// the caller already has it.
    fn process(&mut self, range: Range<usize>, depth: usize, known: Option<Tally>) {
        let level = self.levels.get(depth).copied().unwrap_or(Level::Grapheme);
        if level == Level::Grapheme {
            self.push_graphemes(range);
            return;
        }
        let pieces = self.cut(range.clone(), level);
        if pieces.len() <= 1 {
            let tally = known.unwrap_or_else(|| tally(&self.text[range.clone()]));
            if tally.tokens <= self.max_tokens {
                self.push(range, tally);
            } else {
                self.process(range, depth + 1, Some(tally));
            }
            return;
        }
        for piece in pieces {
            let tally = tally(&self.text[piece.clone()]);
            if tally.tokens <= self.max_tokens {
                self.push(piece, tally);
            } else {
                self.flush();
                self.process(piece, depth + 1, Some(tally));
                self.flush();
            }
        }
    }

    fn push_graphemes(&mut self, range: Range<usize>) {
        let text = self.text;
        let base = range.start;
        for grapheme in Clusters::new(&text[range]) {
            let piece = base + grapheme.at..base + grapheme.end();
            self.push(piece, Tally::of(grapheme.kind));
        }
    }

    /// Append a piece (at most `max_tokens`, starting where the buffer ends).
    fn push(&mut self, piece: Range<usize>, tally: Tally) {
        if self.buf.has_content {
            let merged = self.buf.tally.then(tally);
            if merged.tokens <= self.max_tokens {
                self.buf.tally = merged;
                self.buf.end = piece.end;
            } else {
                self.flush();
                self.start_segment(piece, tally);
            }
        } else {
            self.start_segment(piece, tally);
        }
    }

    /// Add a piece to a buffer that holds no content yet; the first piece with tokens opens
    /// a new segment, prefixed with the overlap taken from the previous one.
    fn start_segment(&mut self, piece: Range<usize>, tally: Tally) {
        // The buffer holds whitespace only, which ends words: `body.tokens == tally.tokens`.
        let body = self.buf.tally.then(tally);
        self.buf.end = piece.end;
        if tally.tokens == 0 {
            self.buf.tally = body;
            return;
        }
        let budget = self
            .overlap
            .min(self.max_tokens.saturating_sub(tally.tokens));
        self.buf.tally = body;
        if let Some((start, tail)) = self.overlap_tail(budget) {
            // Whitespace trimmed off the previous segment's end lies between tail and body.
            let gap = match &self.last {
                Some(last) if last.end < self.buf.start => Tally::SPACE,
                _ => Tally::EMPTY,
            };
            self.buf.tally = tail.then(gap).then(body);
            self.buf.start = start;
        }
        self.buf.has_content = true;
    }

    /// The longest tail of the previous segment that costs at most `budget` tokens, starts a
    /// word (or a CJK/emoji cluster) and is not the whole segment: its start and tally.
    fn overlap_tail(&self, budget: usize) -> Option<(usize, Tally)> {
        let last = self.last.clone()?;
        overlap_tail(&self.text[last.clone()], budget).map(|(at, tail)| (last.start + at, tail))
    }

    /// Emit the buffer as a segment if it has content; whitespace-only buffers are kept, as
    /// they only ever get trimmed.
    fn flush(&mut self) {
        if !self.buf.has_content {
            return;
        }
        let range = self.trim(self.buf.start..self.buf.end);
        self.chunks.push(Chunk {
            range: range.clone(),
            tokens: self.buf.tally.tokens,
        });
        self.last = Some(range);
        self.buf = Buffer {
            start: self.buf.end,
            end: self.buf.end,
            ..Buffer::default()
        };
    }

    /// Shrink `range` past whitespace-only grapheme clusters at both ends (a space that
    /// carries a combining mark is not whitespace-only, so it stays).
    fn trim(&self, range: Range<usize>) -> Range<usize> {
        let text = &self.text[range.clone()];
        let solid = |g: &Grapheme<'_>| g.kind != Cluster::Space;
        let lead = Clusters::new(text).find(solid).map_or(text.len(), |g| g.at);
        let trail = RevClusters::new(&text[lead..])
            .find(solid)
            .map_or(lead, |g| lead + g.end());
        range.start + lead..range.start + trail
    }

    /// Whether a cut at byte `at` (a char boundary) falls between grapheme clusters.
    fn is_boundary(&self, at: usize) -> bool {
        let bytes = self.text.as_bytes();
        if at == 0 || at >= bytes.len() {
            return true;
        }
        let (prev, next) = (bytes[at - 1], bytes[at]);
        if prev < 0x80 && next < 0x80 {
            // Between two ASCII characters only CR LF stays together.
            return !(prev == b'\r' && next == b'\n');
        }
        // Look at a window around `at` only, so that a long run of regional indicators
        // cannot make every check walk back to its start (quadratic). If the window is too
        // short to decide, do not cut here: a later fallback level will.
        let mut lo = at.saturating_sub(BOUNDARY_WINDOW);
        while !self.text.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (at + BOUNDARY_WINDOW).min(bytes.len());
        while !self.text.is_char_boundary(hi) {
            hi += 1;
        }
        GraphemeCursor::new(at, bytes.len(), true)
            .is_boundary(&self.text[lo..hi], lo)
            .unwrap_or(false)
    }

    /// Split `range` right after each boundary of `level`; never yields an empty piece.
    fn cut(&self, range: Range<usize>, level: Level<'_>) -> Vec<Range<usize>> {
        let text = &self.text[range.clone()];
        let base = range.start;
        let mut cuts = Vec::new();
        let mut add = |at: usize| {
            if base + at < range.end {
                cuts.push(base + at);
            }
        };
        match level {
            Level::Whole | Level::Grapheme => {}
            Level::Exact(separator) => {
                for (i, found) in text.match_indices(separator) {
                    if self.is_boundary(base + i + found.len()) {
                        add(i + found.len());
                    }
                }
            }
            Level::Newline => {
                let mut from = 0;
                while let Some(newline) = scan::find(text.as_bytes(), from, |w| scan::eq(w, b'\n'))
                {
                    add(newline + 1);
                    from = newline + 1;
                }
            }
            Level::BlankLine => {
                let bytes = text.as_bytes();
                let mut from = 0;
                while let Some(newline) = scan::find(bytes, from, |w| scan::eq(w, b'\n')) {
                    let mut j = newline + 1;
                    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r') {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j] == b'\n' {
                        add(j + 1);
                        from = j;
                    } else {
                        from = newline + 1;
                    }
                }
            }
            Level::Sentence => {
                const FULL_STOPS: [&[u8]; 3] = ["。".as_bytes(), "！".as_bytes(), "？".as_bytes()];
                let bytes = text.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    let after = match bytes[i] {
                        b'.' | b'!' | b'?' if bytes.get(i + 1) == Some(&b' ') => Some(i + 2),
                        0xE3 | 0xEF
                            if FULL_STOPS.iter().any(|stop| bytes[i..].starts_with(stop)) =>
                        {
                            Some(i + 3)
                        }
                        _ => None,
                    };
                    match after {
                        Some(after) => {
                            if self.is_boundary(base + after) {
                                add(after);
                            }
                            i = after;
                        }
                        None => i += 1,
                    }
                }
            }
            Level::Whitespace => {
                let mut after_space = false;
                for grapheme in Clusters::new(text) {
                    let space = grapheme.kind == Cluster::Space;
                    if after_space && !space {
                        add(grapheme.at);
                    }
                    after_space = space;
                }
            }
        }
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut start = range.start;
        for at in cuts {
            pieces.push(start..at);
            start = at;
        }
        pieces.push(start..range.end);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn options(mode: Mode, separator: &str, max_tokens: usize, overlap: usize) -> Options {
        Options {
            mode,
            separator: separator.to_string(),
            max_tokens,
            overlap,
            rules: Rules::default(),
            parent_mode: ParentMode::Paragraph,
            child_separator: "\n".to_string(),
            child_max_tokens: max_tokens.min(20),
        }
    }

    /// `collapse_whitespace` the obvious way: every maximal whitespace run becomes one space,
    /// one line break or a blank line, by the line breaks it holds.
    fn collapse_by_chars(text: &str) -> String {
        let mut out = String::new();
        let mut run = String::new();
        let flush = |out: &mut String, run: &mut String| {
            if !run.is_empty() {
                out.push_str(match line_breaks(run) {
                    0 => " ",
                    1 => "\n",
                    _ => "\n\n",
                });
                run.clear();
            }
        };
        for c in text.chars() {
            if c.is_whitespace() {
                run.push(c);
            } else {
                flush(&mut out, &mut run);
                out.push(c);
            }
        }
        flush(&mut out, &mut run);
        out
    }

    fn without_whitespace(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// Reference tally over `unicode-segmentation`'s clusters, without any fast path.
    fn tally_by_graphemes(text: &str) -> Tally {
        let mut tally = Tally::EMPTY;
        for cluster in text.graphemes(true) {
            tally.push(classify(cluster));
        }
        tally
    }

    fn grapheme_boundaries(text: &str) -> HashSet<usize> {
        text.grapheme_indices(true)
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect()
    }

    fn independent_sha256(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Checks one level of output (flat segments, or one parent's children) against the
    /// contract; `ranges` are the splitter's byte ranges for `segments`.
    fn check_level(
        text: &str,
        segments: &[Segment],
        ranges: &[Chunk],
        max_tokens: usize,
        overlap: usize,
    ) {
        assert_eq!(segments.len(), ranges.len());
        let boundaries = grapheme_boundaries(text);
        for (i, (segment, chunk)) in segments.iter().zip(ranges).enumerate() {
            let content = &segment.content;
            assert_eq!(segment.position, i);
            assert_eq!(content, &text[chunk.range.clone()]);
            assert!(!content.trim().is_empty(), "empty segment {i}");
            assert_eq!(
                segment.tokens,
                estimate_tokens(content),
                "tokens of {content:?}"
            );
            assert!(
                segment.tokens <= max_tokens,
                "{} > {max_tokens}",
                segment.tokens
            );
            assert_eq!(segment.char_count, content.chars().count());
            assert_eq!(segment.sha256, independent_sha256(content));
            // Whole clusters of the input, trimmed of whitespace-only clusters.
            assert!(
                boundaries.contains(&chunk.range.start),
                "cut inside a cluster"
            );
            assert!(
                boundaries.contains(&chunk.range.end),
                "cut inside a cluster"
            );
            let first = content.graphemes(true).next().map(classify);
            let last = content.graphemes(true).next_back().map(classify);
            assert_ne!(first, Some(Cluster::Space));
            assert_ne!(last, Some(Cluster::Space));
        }
        for pair in ranges.windows(2) {
            let (prev, next) = (&pair[0].range, &pair[1].range);
            assert!(next.start > prev.start, "starts must increase");
            assert!(next.end > prev.end, "ends must increase");
            if next.start >= prev.end {
                assert!(text[prev.end..next.start].chars().all(char::is_whitespace));
            } else {
                assert!(overlap > 0, "segments overlap without overlap");
                assert!(estimate_tokens(&text[next.start..prev.end]) <= overlap);
            }
        }
        if overlap == 0 {
            let joined: String = segments
                .iter()
                .map(|s| without_whitespace(&s.content))
                .collect();
            assert_eq!(joined, without_whitespace(text));
        } else {
            let haystack = without_whitespace(text);
            for segment in segments {
                assert!(haystack.contains(&without_whitespace(&segment.content)));
            }
            let covered: usize = ranges
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let from = if i == 0 {
                        c.range.start
                    } else {
                        c.range.start.max(ranges[i - 1].range.end)
                    };
                    without_whitespace(&text[from..c.range.end]).len()
                })
                .sum();
            assert_eq!(
                covered,
                haystack.len(),
                "overlapping segments must still cover the text"
            );
        }
    }

    fn check_split(text: &str, opts: &Options) -> Vec<Segment> {
        let segments = split(text, opts);
        assert_eq!(segments, split(text, opts), "split is not deterministic");
        if text.trim().is_empty() {
            assert!(segments.is_empty());
        }
        match opts.mode {
            Mode::Automatic | Mode::Custom => {
                let ranges = split_ranges(
                    text,
                    level_for(&opts.separator),
                    opts.max_tokens,
                    opts.overlap,
                );
                check_level(text, &segments, &ranges, opts.max_tokens, opts.overlap);
                assert!(segments.iter().all(|s| s.children.is_empty()));
            }
            Mode::ParentChild => {
                let first = match opts.parent_mode {
                    ParentMode::Paragraph => level_for(&opts.separator),
                    ParentMode::FullDoc => Level::Whole,
                };
                let ranges = split_ranges(text, first, opts.max_tokens, 0);
                check_level(text, &segments, &ranges, opts.max_tokens, 0);
                for parent in &segments {
                    let child_ranges = split_ranges(
                        &parent.content,
                        level_for(&opts.child_separator),
                        opts.child_max_tokens,
                        0,
                    );
                    check_level(
                        &parent.content,
                        &parent.children,
                        &child_ranges,
                        opts.child_max_tokens,
                        0,
                    );
                    assert!(!parent.children.is_empty());
                    assert!(parent.children.iter().all(|c| c.children.is_empty()));
                }
            }
        }
        segments
    }

    // ---- property tests -------------------------------------------------------------

    const SPECIALS: &[&str] = &[
        "\n",
        "\n\n",
        "\r\n",
        "\r\n\r\n",
        "\n \n",
        "\n\n\n",
        "\t",
        "  ",
        "\u{3000}",
        "\u{a0}",
        "\r",
        "\u{2028}",
        ". ",
        "! ",
        "? ",
        "。",
        "！",
        "？",
        ", ",
        "***",
        "|",
        "---",
        "👨\u{200d}👩\u{200d}👧\u{200d}👦",
        "👍🏽",
        "🇺🇸",
        "🇬🇧🇫🇷",
        "🇩",
        "1\u{fe0f}\u{20e3}",
        "❤\u{fe0f}",
        "🏳\u{fe0f}\u{200d}🌈",
        "🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
        "e\u{301}",
        "a\u{300}\u{323}",
        " \u{301}",
        "\u{301}",
        "\u{200d}",
        "\u{fe0f}",
        "क्षि",
        "\u{600}1",
        "\u{600} ",
        "각",
        "\u{1100}\u{1161}\u{11a8}",
        "\u{200b}",
        "x\u{20dd}",
        ".\u{301} ",
        "。\u{301}",
        "***\u{301}",
        "\n\u{301}",
        "https://example.com/a",
    ];

    /// Text made of `len` characters drawn from `pool` (cheaper than regex strategies).
    fn run_of(pool: &'static [char], len: Range<usize>) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pool), len).prop_map(String::from_iter)
    }

    const LATIN: &[char] = &[
        'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'k', 'l', 'm', 'n', 'o', 'r', 's', 't', 'u',
        'w', 'y', 'z', 'A', 'T', 'Z', '0', '7', '9', 'é', 'ß', 'ø', 'и', 'ж', 'α', '_',
    ];
    const CJK: &[char] = &[
        '天', '地', '玄', '黄', '宇', '宙', '洪', '荒', 'の', 'は', 'カ', 'タ', '한', '국', '어',
        '々', '〇', '𠀀', 'ㄅ',
    ];

    const SIMPLE_RUN_EDGES: &[char] = &[
        '天',
        '丁',
        '㐀',
        '䶿',
        '䷀',
        '䷿',
        '一',
        '鿿',
        '\u{301}',
        '\u{200d}',
        '\u{fe0f}',
        '\u{1f3fd}',
        '\r',
        '\n',
        ' ',
        'a',
        '👍',
        '。',
        'é',
        'の',
        'ア',
        '\u{3099}',
        'ｱ',
        '\u{ff9e}',
        '\u{a0}',
        '\u{3000}',
        'ж',
        '\u{483}',
        '—',
        '한',
        '\u{1100}',
        '\u{600}',
        '\u{7ff}',
        '\u{800}',
        '\u{ffff}',
    ];

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => run_of(LATIN, 1..12),
            4 => Just(" ".to_string()),
            4 => prop::sample::select(SPECIALS).prop_map(str::to_string),
            2 => run_of(CJK, 1..40),
            1 => run_of(LATIN, 30..200),
            1 => any::<char>().prop_map(String::from),
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::collection::vec(fragment(), 0..300).prop_map(|parts| parts.concat()),
            1 => any::<String>(),
            1 => "\\PC{0,300}",
        ]
    }

    fn separator() -> impl Strategy<Value = String> {
        prop::sample::select(&["\n\n", "\n", "。", "***", " ", ". ", "|", "\r\n", "e", "👍"][..])
            .prop_map(str::to_string)
    }

    /// Cases per property (each is a document of up to a few KB).
    const CASES: u32 = 300;

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(CASES))]

        #[test]
        fn prop_automatic_partitions(text in document(), max in 10usize..=120) {
            check_split(&text, &options(Mode::Automatic, "\n\n", max, 0));
        }

        #[test]
        fn prop_automatic_with_overlap(text in document(), max in 10usize..=120, frac in 0.0f64..1.0) {
            let overlap = ((max as f64) * frac) as usize;
            check_split(&text, &options(Mode::Automatic, "\n\n", max, overlap.max(1)));
        }

        #[test]
        fn prop_custom(text in document(), sep in separator(), max in 10usize..=120, overlap in 0usize..10) {
            check_split(&text, &options(Mode::Custom, &sep, max, overlap));
        }

        #[test]
        fn prop_parent_child(
            text in document(),
            sep in separator(),
            child_sep in separator(),
            max in 10usize..=120,
            child in 1usize..=120,
            full_doc in any::<bool>(),
        ) {
            let mut opts = options(Mode::ParentChild, &sep, max, 0);
            opts.child_separator = child_sep;
            opts.child_max_tokens = child.min(max);
            opts.parent_mode = if full_doc { ParentMode::FullDoc } else { ParentMode::Paragraph };
            check_split(&text, &opts);
        }

        #[test]
        fn prop_resolved_defaults_hold(text in document()) {
            for mode in ["automatic", "custom", "parent_child"] {
                let mut opts = Options::resolve(mode, None, Some(50), None, None).map_err(TestCaseError::fail)?;
                opts.rules = Rules::default();
                check_split(&text, &opts);
            }
        }

        #[test]
        fn prop_tally_concatenates(text in document(), cut in any::<prop::sample::Index>()) {
            let bounds: Vec<usize> = {
                let mut b: Vec<usize> = grapheme_boundaries(&text).into_iter().collect();
                b.sort_unstable();
                b
            };
            let at = bounds[cut.index(bounds.len())];
            let (left, right) = text.split_at(at);
            prop_assert_eq!(tally(left).then(tally(right)), tally(&text));
            prop_assert_eq!(tally(&text), tally_by_graphemes(&text));
            let reference: Vec<Grapheme<'_>> = text
                .grapheme_indices(true)
                .map(|(at, text)| Grapheme { at, text, kind: classify(text) })
                .collect();
            prop_assert_eq!(&Clusters::new(&text).collect::<Vec<_>>(), &reference);
            let mut backward: Vec<Grapheme<'_>> = RevClusters::new(&text).collect();
            backward.reverse();
            prop_assert_eq!(&backward, &reference);
            let left_last = RevClusters::new(left).next().map(|g| g.text);
            prop_assert_eq!(left_last, left.graphemes(true).next_back());
            if text.is_ascii() {
                prop_assert_eq!(tally_ascii(text.as_bytes()), tally_by_graphemes(&text));
            }
        }

        #[test]
        fn prop_simple_runs_tally_as_clusters(text in run_of(SIMPLE_RUN_EDGES, 0..60)) {
            // Simple characters of two and three bytes at the edges of the fast path's ranges,
            // next to what joins a cluster.
            prop_assert_eq!(tally(&text), tally_by_graphemes(&text));
            let reference: Vec<Grapheme<'_>> = text
                .grapheme_indices(true)
                .map(|(at, text)| Grapheme { at, text, kind: classify(text) })
                .collect();
            prop_assert_eq!(&Clusters::new(&text).collect::<Vec<_>>(), &reference);
            let mut backward: Vec<Grapheme<'_>> = RevClusters::new(&text).collect();
            backward.reverse();
            prop_assert_eq!(&backward, &reference);
        }

        #[test]
        fn prop_overlap_tail_by_words_is_by_clusters(text in document(), budget in 0usize..80) {
            // As written, and with only its ASCII kept so that the word walk runs to the end.
            for text in [text.clone(), text.chars().filter(char::is_ascii).collect::<String>()] {
                if let Some(by_words) = ascii_overlap_tail(text.as_bytes(), budget.max(1)) {
                    prop_assert_eq!(by_words, clusters_overlap_tail(&text, budget.max(1)));
                }
                prop_assert_eq!(overlap_tail(&text, budget), if budget == 0 { None } else { clusters_overlap_tail(&text, budget) });
            }
        }

        #[test]
        fn prop_tally_ascii_matches_clusters(text in "[ a-z.\t\r\n]{0,80}") {
            // Word lengths and space runs at every offset of the eight-byte steps.
            prop_assert_eq!(tally_ascii(text.as_bytes()), tally_by_graphemes(&text));
        }

        #[test]
        fn prop_collapse_matches_a_char_loop(text in "[ a-zA-Z.\t\r\n\u{85}\u{a0}\u{e9}\u{1680}\u{2003}\u{2028}\u{3000}\u{0e01}\u{56fd}]{0,80}") {
            // Every mix of lone and repeated spaces, other whitespace and lead bytes C2/E0..E3
            // that are and are not whitespace, across the eight-byte steps of the scan.
            let collapsed = collapse_whitespace(&text);
            prop_assert_eq!(collapsed.as_ref(), collapse_by_chars(&text));
        }

        #[test]
        fn prop_rules_keep_words(text in document()) {
            let collapsed = collapse_whitespace(&text);
            prop_assert_eq!(without_whitespace(&collapsed), without_whitespace(&text));
            prop_assert!(!collapsed.contains("  ") && !collapsed.contains("\n\n\n"));
            prop_assert_eq!(collapse_whitespace(&collapsed), collapsed.clone());
            prop_assert_eq!(collapsed.as_ref(), collapse_by_chars(&text));
            let cleaned = remove_urls_emails(&text);
            prop_assert!(cleaned.len() <= text.len());
            let opts = Options { rules: Rules { collapse_whitespace: true, remove_urls_emails: true }, ..options(Mode::Custom, "\n\n", 60, 5) };
            for segment in split(&text, &opts) {
                prop_assert!(segment.tokens <= 60 && segment.tokens == estimate_tokens(&segment.content));
            }
        }
    }

    // ---- unit tests -----------------------------------------------------------------

    #[test]
    fn simple_kind_is_classify_char_on_simple_characters() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            if let Some(kind) = simple_kind(c) {
                assert_eq!(kind, classify_char(c), "U+{:04X}", u32::from(c));
            }
        }
        // The set itself: every range of the simple characters, at its edges.
        let edges = [
            (0x00, true),
            (0x0D, false),
            (0x7F, true),
            (0x80, false),
            (0x9F, false),
            (0xA0, true),
            (0x2FF, true),
            (0x300, false),
            (0x36F, false),
            (0x370, true),
            (0x482, true),
            (0x483, false),
            (0x489, false),
            (0x48A, true),
            (0x52F, true),
            (0x530, false),
            (0x200F, false),
            (0x2010, true),
            (0x2027, true),
            (0x2028, false),
            (0x202F, false),
            (0x2030, true),
            (0x205E, true),
            (0x205F, false),
            (0x2FFF, false),
            (0x3000, true),
            (0x3029, true),
            (0x302A, false),
            (0x302F, false),
            (0x3030, true),
            (0x303F, true),
            (0x3040, false),
            (0x3041, true),
            (0x3096, true),
            (0x3097, false),
            (0x309C, false),
            (0x309D, true),
            (0x30FF, true),
            (0x3100, false),
            (0x33FF, false),
            (0x3400, true),
            (0x4DBF, true),
            (0x4DC0, false),
            (0x4DFF, false),
            (0x4E00, true),
            (0x9FFF, true),
            (0xA000, false),
            (0xF8FF, false),
            (0xF900, true),
            (0xFAFF, true),
            (0xFB00, false),
            (0xFF00, false),
            (0xFF01, true),
            (0xFF9D, true),
            (0xFF9E, false),
        ];
        for (code, simple) in edges {
            let c = char::from_u32(code).unwrap();
            assert_eq!(is_simple(c), simple, "U+{code:04X}");
        }
    }

    #[test]
    fn prepend_is_then_from_the_front() {
        let kinds = [Cluster::Space, Cluster::Unit, Cluster::Word];
        // Every sequence of up to seven clusters, read backwards.
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                let seq: Vec<Cluster> = (0..len).map(|i| kinds[n / 3usize.pow(i) % 3]).collect();
                let mut backwards = Tally::EMPTY;
                for &kind in seq.iter().rev() {
                    let expected = Tally::of(kind).then(backwards);
                    backwards.prepend(kind);
                    assert_eq!(backwards, expected, "{seq:?}");
                }
            }
        }
    }

    #[test]
    fn simple_characters_never_join() {
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| is_simple(c))
        {
            for text in [format!("x{c}x"), format!("日{c}日"), format!("{c}{c}")] {
                let clusters = text.graphemes(true).count();
                assert_eq!(
                    clusters,
                    text.chars().count(),
                    "U+{:04X} in {text:?}",
                    u32::from(c)
                );
            }
        }
    }

    #[test]
    fn token_estimate_examples() {
        let cases = [
            ("", 0),
            ("   \n\t\u{3000}", 0),
            ("a", 1),
            ("abcd", 1),
            ("abcde", 2),
            ("hello world", 4),
            ("hi, there!", 3),
            ("日本語", 3),
            ("한국어 텍스트", 6),
            ("カタカナ", 4),
            ("👍🏽", 1),
            ("👨\u{200d}👩\u{200d}👧\u{200d}👦", 1),
            ("🇺🇸🇬🇧", 2),
            ("1\u{fe0f}\u{20e3}", 1),
            ("hello👋world", 5),
            ("e\u{301}e\u{301}e\u{301}e\u{301}", 1),
            ("日本語abc", 4),
            ("antidisestablishmentarianism", 7),
        ];
        for (text, tokens) in cases {
            assert_eq!(estimate_tokens(text), tokens, "{text:?}");
        }
    }

    fn words(count: usize, seed: usize) -> String {
        const WORDS: [&str; 8] = [
            "data", "task", "wasm", "rust", "node", "file", "text", "code",
        ];
        (0..count)
            .map(|i| WORDS[(i * 7 + seed) % WORDS.len()])
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn markdown_paragraphs_group_into_segments() {
        // Each paragraph is 60 tokens (60 four-letter words); two fit in 150, three do not.
        let paragraphs: Vec<String> = (0..6).map(|i| words(60, i)).collect();
        let doc = format!("# Title\n\n{}", paragraphs.join("\n\n"));
        let segments = check_split(&doc, &options(Mode::Automatic, "\n\n", 150, 0));
        let contents: Vec<&str> = segments.iter().map(|s| s.content.as_str()).collect();
        assert_eq!(
            contents,
            [
                format!("# Title\n\n{}\n\n{}", paragraphs[0], paragraphs[1]),
                format!("{}\n\n{}", paragraphs[2], paragraphs[3]),
                format!("{}\n\n{}", paragraphs[4], paragraphs[5]),
            ]
        );
        // With the defaults the whole (small) document is one segment.
        let defaults = Options::resolve("automatic", None, None, None, None).expect("defaults");
        assert_eq!(split(&doc, &defaults).len(), 1);
    }

    #[test]
    fn long_paragraph_falls_back_to_sentences() {
        let sentence = format!("{}.", words(30, 1));
        let doc = vec![sentence.clone(); 10].join(" ");
        let segments = check_split(&doc, &options(Mode::Custom, "\n\n", 100, 0));
        assert_eq!(segments.len(), 4);
        for segment in &segments {
            assert!(segment.content.ends_with('.'), "{}", segment.content);
        }
    }

    #[test]
    fn cjk_without_spaces_splits_under_max() {
        let doc: String = "天地玄黄宇宙洪荒日月盈昃辰宿列张"
            .chars()
            .cycle()
            .take(2000)
            .collect();
        let segments = check_split(&doc, &options(Mode::Automatic, "\n\n", 500, 0));
        assert_eq!(segments.len(), 4);
        assert!(segments.iter().all(|s| s.tokens == 500));
        let overlapped = check_split(&doc, &options(Mode::Automatic, "\n\n", 500, 50));
        assert!(overlapped.len() >= 5);
        assert!(overlapped.iter().all(|s| s.tokens <= 500));
        assert!(overlapped[1].content.starts_with(&doc[1350..1500]));
    }

    #[test]
    fn cjk_sentences_split_at_full_stops() {
        let doc = "这是第一句话。这是第二句话！这是第三句话？".repeat(20);
        let segments = check_split(&doc, &options(Mode::Custom, "\n\n", 50, 0));
        assert!(segments.len() > 1);
        for segment in &segments {
            assert!(
                segment.content.ends_with(['。', '！', '？']),
                "{}",
                segment.content
            );
        }
    }

    #[test]
    fn emoji_sequences_stay_whole() {
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        let flag = "🇺🇸";
        let doc = format!("{family}{flag}👍🏽").repeat(100);
        let segments = check_split(&doc, &options(Mode::Custom, "\n\n", 10, 0));
        assert_eq!(segments.len(), 30);
        for segment in &segments {
            let clusters: Vec<&str> = segment.content.graphemes(true).collect();
            assert_eq!(clusters.len(), 10);
            assert!(clusters.iter().all(|c| [family, flag, "👍🏽"].contains(c)));
        }
        let accents = "e\u{301}".repeat(1000);
        for segment in check_split(&accents, &options(Mode::Custom, "\n\n", 10, 3)) {
            assert!(segment.content.starts_with('e') && segment.content.ends_with('\u{301}'));
        }
    }

    #[test]
    fn long_flag_runs_stay_linear_and_whole() {
        // 20k flags: parity of regional indicators is only known from the start of the run.
        let doc = "🇺🇸".repeat(20_000);
        let started = std::time::Instant::now();
        let segments = check_split(&doc, &options(Mode::Custom, "🇺", 500, 0));
        assert_eq!(segments.len(), 40);
        assert!(segments.iter().all(|s| s.content.chars().count() == 1000));
        let odd = format!("🇩{doc}");
        let segments = check_split(&odd, &options(Mode::Custom, "🇸", 500, 0));
        assert!(segments.iter().all(|s| s.tokens <= 500));
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    }

    #[test]
    fn overlap_repeats_whole_words() {
        let doc = words(1000, 3);
        let segments = check_split(&doc, &options(Mode::Automatic, "\n\n", 100, 20));
        for pair in segments.windows(2) {
            let tail_words: Vec<&str> = pair[0].content.split(' ').collect();
            let overlap = &tail_words[tail_words.len() - 20..].join(" ");
            assert!(
                pair[1].content.starts_with(overlap.as_str()),
                "{}",
                pair[1].content
            );
        }
        // 1000 one-token words: 100 + 11 * 80 new words, then 20 repeated + 20 new.
        let tokens: Vec<usize> = segments.iter().map(|s| s.tokens).collect();
        assert_eq!(tokens, [vec![100; 12], vec![40]].concat());
    }

    #[test]
    fn custom_separator_is_kept_and_respected() {
        let doc = format!("{}***{}***{}", words(30, 0), words(30, 1), words(30, 2));
        let segments = check_split(&doc, &options(Mode::Custom, "***", 50, 0));
        let contents: Vec<&str> = segments.iter().map(|s| s.content.as_str()).collect();
        assert_eq!(
            contents,
            [
                format!("{}***", words(30, 0)),
                format!("{}***", words(30, 1)),
                words(30, 2)
            ]
        );
    }

    #[test]
    fn crlf_and_blank_lines_are_paragraph_breaks() {
        let doc = format!(
            "{}\r\n\r\n{}\n   \n{}",
            words(40, 0),
            words(40, 1),
            words(40, 2)
        );
        let segments = check_split(&doc, &options(Mode::Automatic, "\n\n", 50, 0));
        let contents: Vec<&str> = segments.iter().map(|s| s.content.as_str()).collect();
        assert_eq!(contents, [words(40, 0), words(40, 1), words(40, 2)]);
    }

    #[test]
    fn degenerate_options_do_not_panic() {
        let doc = "a b\n\nc 日本 👍🏽 e\u{301}";
        for (separator, max, overlap) in [("", 0, 0), ("", 1, 5), ("\n\n", 0, 9), ("x", 1, 1)] {
            let opts = options(Mode::Custom, separator, max, overlap);
            let segments = split(doc, &opts);
            assert!(segments.iter().all(|s| s.tokens <= max.max(1)));
            let joined: String = segments
                .iter()
                .map(|s| without_whitespace(&s.content))
                .collect();
            if overlap == 0 {
                assert_eq!(joined, without_whitespace(doc));
            }
            let pc = Options {
                mode: Mode::ParentChild,
                child_max_tokens: 0,
                ..opts
            };
            assert!(!split(doc, &pc).is_empty());
        }
    }

    #[test]
    fn empty_and_blank_input_gives_nothing() {
        for mode in ["automatic", "custom", "parent_child"] {
            let opts = Options::resolve(mode, None, None, None, None).expect("defaults");
            for text in ["", " ", "\n\n\t \r\n", "\u{3000}\u{a0}"] {
                assert!(split(text, &opts).is_empty(), "{mode} {text:?}");
            }
        }
    }

    #[test]
    fn removes_urls_and_emails() {
        let text = "See https://example.com/wiki/Rust_(language)?q=1, or www.rust-lang.org. \
                    Mail john.doe+x@mail.example.co.uk! (HTTP://X.ORG/a) 链接https://example.cn，谢谢 \
                    keep awww.b, user@localhost, a@b.c and 2@3.com.";
        assert_eq!(
            remove_urls_emails(text),
            "See , or . Mail ! () 链接，谢谢 keep awww.b, user@localhost, a@b.c and ."
        );
        let opts = Options::resolve(
            "custom",
            None,
            None,
            None,
            Some(serde_json::json!({"remove_urls_emails": true, "collapse_whitespace": true})),
        )
        .expect("valid");
        let segments = split("Write to me@example.org  or visit http://x.io/p .", &opts);
        assert_eq!(segments[0].content, "Write to or visit .");
        // URL and e-mail starts at every offset within and across the scan's eight-byte steps.
        for pad in 0..17 {
            let lead = "x".repeat(pad);
            let text = format!("{lead} WWW.a.io hTtP://b.io/c a@b.io .https://d.io");
            assert_eq!(
                remove_urls_emails(&text),
                format!("{lead}    ."),
                "pad {pad}"
            );
            let glued = format!("x{lead}www.a.io");
            assert_eq!(remove_urls_emails(&glued), glued, "pad {pad}");
        }
    }

    #[test]
    fn collapses_whitespace() {
        assert_eq!(
            collapse_whitespace("a  \t b\n\n\n\nc \n d\r\n\r\n\r\ne\u{3000}\u{3000}f "),
            "a b\n\nc\nd\n\ne f "
        );
        let opts = Options::resolve("automatic", None, None, None, None).expect("defaults");
        let segments = split("  one   two\n\n\n\n\nthree\t\tfour  ", &opts);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].content, "one two\n\nthree four");
        assert_eq!(segments[0].tokens, 5);
    }

    #[test]
    fn resolve_defaults() {
        let auto = Options::resolve("automatic", None, None, None, None).expect("valid");
        assert_eq!(
            auto,
            Options {
                mode: Mode::Automatic,
                separator: "\n\n".to_string(),
                max_tokens: 500,
                overlap: 50,
                rules: Rules {
                    collapse_whitespace: true,
                    remove_urls_emails: false
                },
                parent_mode: ParentMode::Paragraph,
                child_separator: "\n".to_string(),
                child_max_tokens: 200,
            }
        );
        let custom =
            Options::resolve("custom", Some("\\n".into()), Some(100), None, None).expect("valid");
        assert_eq!(
            (custom.separator.as_str(), custom.max_tokens, custom.overlap),
            ("\n", 100, 10)
        );
        assert_eq!(custom.rules, Rules::default());
        let pc = Options::resolve(
            "hierarchical",
            Some("\\n\\n".into()),
            Some(150),
            Some(0),
            Some(serde_json::json!({"parent_mode": "full_doc", "child_separator": "\\t", "collapse_whitespace": false})),
        )
        .expect("valid");
        assert_eq!(pc.mode, Mode::ParentChild);
        assert_eq!(pc.parent_mode, ParentMode::FullDoc);
        assert_eq!(
            (pc.separator.as_str(), pc.child_separator.as_str()),
            ("\n\n", "\t")
        );
        assert_eq!((pc.overlap, pc.child_max_tokens), (0, 150));
        assert!(!pc.rules.collapse_whitespace);
        assert_eq!(unescape(r"a\\n\x\"), "a\\n\\x\\");
        let null_rules =
            Options::resolve("automatic", None, None, None, Some(serde_json::Value::Null));
        assert_eq!(null_rules, Ok(auto));
    }

    #[test]
    fn resolve_error_messages() {
        let err = |mode: &str,
                   sep: Option<&str>,
                   max: Option<u64>,
                   overlap: Option<u64>,
                   rules: Option<serde_json::Value>| {
            Options::resolve(mode, sep.map(str::to_string), max, overlap, rules)
                .expect_err("must fail")
        };
        assert_eq!(
            err("automatic", None, Some(10), None, None),
            "max_tokens must be between 50 and 4000, got 10"
        );
        assert_eq!(
            err("custom", None, Some(4001), None, None),
            "max_tokens must be between 50 and 4000, got 4001"
        );
        assert_eq!(
            err("automatic", None, None, Some(600), None),
            "overlap (600) must be smaller than max_tokens (500)"
        );
        assert_eq!(
            err("custom", None, Some(100), Some(100), None),
            "overlap (100) must be smaller than max_tokens (100)"
        );
        assert_eq!(
            err("foo", None, None, None, None),
            "unknown mode 'foo': expected automatic, custom or parent_child"
        );
        assert_eq!(
            err("custom", Some(""), None, None, None),
            "separator must not be empty"
        );
        assert_eq!(
            err("parent_child", None, None, Some(5), None),
            "overlap must be 0 in parent_child mode (parents and children never overlap), got 5"
        );
        assert_eq!(
            err(
                "custom",
                None,
                None,
                None,
                Some(serde_json::json!({"strip": true}))
            ),
            "unknown rules key 'strip': expected collapse_whitespace, remove_urls_emails, parent_mode, child_separator or child_max_tokens"
        );
        assert_eq!(
            err(
                "custom",
                None,
                None,
                None,
                Some(serde_json::json!({"collapse_whitespace": "yes"}))
            ),
            "rules.collapse_whitespace must be true or false, got \"yes\""
        );
        assert_eq!(
            err("custom", None, None, None, Some(serde_json::json!([1]))),
            "rules must be a JSON object with keys collapse_whitespace, remove_urls_emails, parent_mode, child_separator or child_max_tokens, got [1]"
        );
        assert_eq!(
            err(
                "parent_child",
                None,
                Some(100),
                None,
                Some(serde_json::json!({"child_max_tokens": 101}))
            ),
            "rules.child_max_tokens must be between 10 and max_tokens (100), got 101"
        );
        assert_eq!(
            err(
                "parent_child",
                None,
                None,
                None,
                Some(serde_json::json!({"child_max_tokens": 9}))
            ),
            "rules.child_max_tokens must be between 10 and max_tokens (500), got 9"
        );
        assert_eq!(
            err(
                "parent_child",
                None,
                None,
                None,
                Some(serde_json::json!({"parent_mode": "page"}))
            ),
            "rules.parent_mode must be \"paragraph\" or \"full_doc\", got \"page\""
        );
        assert_eq!(
            err(
                "parent_child",
                None,
                None,
                None,
                Some(serde_json::json!({"child_separator": ""}))
            ),
            "rules.child_separator must not be empty"
        );
        assert_eq!(
            err(
                "automatic",
                None,
                None,
                None,
                Some(serde_json::json!({"parent_mode": "full_doc"}))
            ),
            "rules.parent_mode only applies to mode parent_child, not automatic"
        );
    }

    #[test]
    fn parent_child_paragraph_parents() {
        let para = |seed: usize| {
            (0..4)
                .map(|line| words(10, seed + line))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let doc = format!("{}\n\n{}\n\n{}", para(0), para(1), para(2));
        let opts = Options::resolve(
            "parent_child",
            None,
            Some(80),
            None,
            Some(serde_json::json!({"child_max_tokens": 25})),
        )
        .expect("valid");
        let parents = check_split(&doc, &opts);
        // 40 tokens per paragraph: two paragraphs fill a parent of 80.
        assert_eq!(parents.len(), 2);
        assert_eq!(parents[0].content, format!("{}\n\n{}", para(0), para(1)));
        assert_eq!(parents[1].content, para(2));
        let children: Vec<&str> = parents[1]
            .children
            .iter()
            .map(|c| c.content.as_str())
            .collect();
        assert_eq!(
            children,
            [
                words(10, 2) + "\n" + &words(10, 3),
                words(10, 4) + "\n" + &words(10, 5)
            ]
        );
        assert_eq!(parents[0].children.len(), 4);
        assert!(
            parents
                .iter()
                .flat_map(|p| &p.children)
                .all(|c| c.tokens <= 25)
        );
        let json = serde_json::to_value(&parents[1]).expect("serializable");
        assert_eq!(json["children"][1]["position"], 1);
    }

    #[test]
    fn parent_child_full_doc_parents() {
        let doc = format!("{}\n\n{}\n\n{}", words(30, 0), words(30, 1), words(30, 2));
        let rules = serde_json::json!({"parent_mode": "full_doc", "child_max_tokens": 40});
        let opts = Options::resolve("parent_child", None, Some(100), None, Some(rules.clone()))
            .expect("valid");
        let parents = check_split(&doc, &opts);
        assert_eq!(parents.len(), 1);
        assert_eq!(parents[0].content, doc);
        assert_eq!(parents[0].children.len(), 3);
        // Past max_tokens the rest of the document becomes further parents.
        let opts =
            Options::resolve("parent_child", None, Some(60), None, Some(rules)).expect("valid");
        let parents = check_split(&doc, &opts);
        let contents: Vec<&str> = parents.iter().map(|p| p.content.as_str()).collect();
        assert_eq!(
            contents,
            [
                format!("{}\n\n{}", words(30, 0), words(30, 1)),
                words(30, 2)
            ]
        );
    }

    #[test]
    fn segment_serialization() {
        let opts = options(Mode::Custom, "\n\n", 50, 0);
        let segment = split("abc", &opts).remove(0);
        assert_eq!(
            serde_json::to_value(&segment).expect("serializable"),
            serde_json::json!({
                "position": 0,
                "content": "abc",
                "char_count": 3,
                "tokens": 1,
                "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            })
        );
        let back: Segment =
            serde_json::from_value(serde_json::to_value(&segment).expect("ok")).expect("ok");
        assert_eq!(back, segment);
        assert!(serde_json::from_str::<Rules>(r#"{"collapse":true}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Mode>(r#""parent_child""#).ok(),
            Some(Mode::ParentChild)
        );
        assert_eq!(
            serde_json::from_str::<ParentMode>(r#""full_doc""#).ok(),
            Some(ParentMode::FullDoc)
        );
    }
}
