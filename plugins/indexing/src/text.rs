//! Text analysis shared by indexing and search: Unicode-aware tokenisation into terms and the
//! English stop-word list. Indexing and querying must analyse text identically, so this is
//! the only place that decides what a term is.
//!
//! The text is NFKC-normalised (full-width letters, ligatures and compatibility forms fold to
//! their plain forms) and lowercased. Words are maximal runs of alphanumeric characters
//! (combining marks stay inside the word); everything else separates. Runs of CJK characters
//! (Han, kana, hangul, bopomofo), which are written without spaces, become overlapping
//! character bigrams, or the single character when the run is one character long, so a
//! Chinese query matches Chinese text without a dictionary.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest term kept, in UTF-8 bytes. Longer "words" are mostly hashes, base64 or URLs
/// glued together; dropping them keeps posting keys short (see `store`'s key bounds).
pub const MAX_TERM_BYTES: usize = 64;

/// English function words that carry no meaning for ranking; they are neither indexed nor
/// searched. Includes the fragments left by splitting contractions (`don't` → `don`, `t`).
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "d",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Whether `term` (already lowercased) is an English stop word.
pub fn is_stop_word(term: &str) -> bool {
    STOP_WORDS.binary_search(&term).is_ok()
}

/// Whether `c` belongs to a script written without spaces between words, which is indexed
/// as character bigrams instead of words.
pub fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x11FF      // Hangul Jamo
        | 0x3005..=0x3007    // 々 〆 〇
        | 0x3040..=0x309F    // Hiragana
        | 0x30A0..=0x30FF    // Katakana (with ー)
        | 0x3100..=0x312F    // Bopomofo
        | 0x3130..=0x318F    // Hangul Compatibility Jamo
        | 0x31A0..=0x31BF    // Bopomofo Extended
        | 0x31F0..=0x31FF    // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xA960..=0xA97F    // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF    // Hangul Syllables
        | 0xD7B0..=0xD7FF    // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x3134F  // CJK Extensions B..G and compatibility supplement
    )
}

/// What a character does to tokenisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    /// A combining mark: part of the word it follows, a separator otherwise.
    Mark,
    Separator,
}

fn classify(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else if is_combining_mark(c) {
        Class::Mark
    } else {
        Class::Separator
    }
}

/// Collects tokens while scanning; owns the run being built.
#[derive(Default)]
struct Tokenizer {
    word: String,
    cjk: Vec<char>,
    out: Vec<String>,
}

impl Tokenizer {
    fn push(&mut self, c: char) {
        match classify(c) {
            Class::Cjk => {
                self.flush_word();
                self.cjk.push(c);
            }
            Class::Word => {
                self.flush_cjk();
                self.word.extend(c.to_lowercase());
            }
            Class::Mark if !self.word.is_empty() => self.word.push(c),
            Class::Mark | Class::Separator => {
                self.flush_word();
                self.flush_cjk();
            }
        }
    }

    fn flush_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word);
        if word.len() <= MAX_TERM_BYTES && !is_stop_word(&word) {
            self.out.push(word);
        }
    }

    fn flush_cjk(&mut self) {
        match self.cjk.len() {
            0 => {}
            1 => self.out.extend(self.cjk.iter().map(|c| c.to_string())),
            _ => {
                for pair in self.cjk.windows(2) {
                    self.out.push(pair.iter().collect());
                }
            }
        }
        self.cjk.clear();
    }

    fn finish(mut self) -> Vec<String> {
        self.flush_word();
        self.flush_cjk();
        self.out
    }
}

/// The terms of `text` in order, repeats included, stop words removed.
pub fn terms(text: &str) -> Vec<String> {
    let mut tokenizer = Tokenizer::default();
    for c in text.nfkc() {
        tokenizer.push(c);
    }
    tokenizer.finish()
}

/// Term frequencies of `text` and its length in terms (the BM25 document length).
pub fn term_counts(text: &str) -> (BTreeMap<String, u32>, u32) {
    let mut counts = BTreeMap::new();
    let mut length: u32 = 0;
    for term in terms(text) {
        *counts.entry(term).or_insert(0u32) += 1;
        length = length.saturating_add(1);
    }
    (counts, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_stop_word("the"));
        assert!(!is_stop_word("zeppelin"));
    }

    #[test]
    fn words_are_lowercased_split_on_punctuation_and_filtered() {
        assert_eq!(
            terms("The QUICK brown-fox, don't jump! v2.0"),
            ["quick", "brown", "fox", "jump", "v2", "0"]
        );
        assert!(terms("  ... !!! ").is_empty());
        assert!(terms("the and of").is_empty());
    }

    #[test]
    fn unicode_letters_and_compatibility_forms_fold() {
        assert_eq!(
            terms("Ｆｕｌｌ ﬁle Straße ÉCOLE"),
            ["full", "file", "straße", "école"]
        );
        // Decomposed accents stay inside their word.
        assert_eq!(terms("cafe\u{301} noir"), ["café", "noir"]);
        assert_eq!(terms("Привет мир"), ["привет", "мир"]);
        // Devanagari vowel signs and virama are marks inside the word.
        assert_eq!(terms("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
    }

    #[test]
    fn cjk_runs_become_bigrams() {
        assert_eq!(terms("机器学习"), ["机器", "器学", "学习"]);
        assert_eq!(terms("我"), ["我"]);
        assert_eq!(terms("iPhone手机很好"), ["iphone", "手机", "机很", "很好"]);
        assert_eq!(terms("東京。大阪"), ["東京", "大阪"]);
        assert_eq!(terms("ｶﾀｶﾅ"), ["カタ", "タカ", "カナ"]);
    }

    #[test]
    fn overlong_tokens_are_dropped() {
        let long = "a".repeat(MAX_TERM_BYTES + 1);
        assert_eq!(terms(&format!("{long} short")), ["short"]);
    }

    #[test]
    fn counts_and_length_agree() {
        let (counts, length) = term_counts("rust rust wasm the");
        assert_eq!(counts.get("rust"), Some(&2));
        assert_eq!(counts.get("wasm"), Some(&1));
        assert_eq!(length, 3);
    }
}
