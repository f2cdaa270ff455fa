//! Keyword extraction with RAKE (Rapid Automatic Keyword Extraction), pure Rust and
//! deterministic.
//!
//! 1. Tokenise: a word is a run of Unicode letters and digits (with the combining marks that
//!    follow them), lowercased with Unicode case rules; an apostrophe, hyphen or underscore
//!    between two such characters stays inside the word (`don't`, `state-of-the-art`,
//!    `max_tokens`), and a possessive `'s` is dropped.
//! 2. Candidates: maximal runs of content words. Stop words, numbers, one-letter words,
//!    punctuation and line breaks end a run. A run longer than [`MAX_PHRASE_WORDS`] (a list or
//!    a title without punctuation, usually) is taken word by word instead.
//! 3. Score: each word scores `degree / frequency` (how long the phrases it appears in are, on
//!    average); a phrase scores the sum of its words, times `1 + ln(occurrences)` so a phrase
//!    the text keeps repeating outranks one it mentions once.
//!
//! Scripts written without spaces (Chinese, Japanese, Thai) are not segmented into words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest candidate phrase, in words.
pub const MAX_PHRASE_WORDS: usize = 4;

/// One extracted keyword (a word or a phrase) and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyword {
    /// The keyword, lowercased, its words separated by single spaces.
    pub keyword: String,
    /// Its RAKE score with the repetition bonus, rounded to three decimals; higher is more
    /// relevant. Scores compare within one text only.
    pub score: f64,
}

/// A piece of tokenised text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A lowercased word.
    Word(String),
    /// Something that ends a phrase: punctuation or a line break.
    Break,
}

/// Characters kept inside a word when letters or digits stand on both sides.
fn joiner(c: char) -> Option<char> {
    match c {
        '\'' | '\u{2019}' => Some('\''),
        '-' | '\u{2010}' | '\u{2011}' => Some('-'),
        '_' => Some('_'),
        _ => None,
    }
}

/// Combining marks (a decomposed accent such as `e` + U+0301) belong to the word before them.
fn combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Splits text into lowercased words and phrase breaks.
fn tokenize(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() && combining_mark(c) {
            word.push(c);
            continue;
        }
        if let Some(j) = joiner(c)
            && !word.is_empty()
            && chars.peek().is_some_and(|next| next.is_alphanumeric())
        {
            word.push(j);
            continue;
        }
        if !word.is_empty() {
            pieces.push(Piece::Word(std::mem::take(&mut word)));
        }
        // Spaces and tabs separate words; everything else (punctuation, line breaks) also
        // separates phrases.
        let separates_words_only = c.is_whitespace() && c != '\n' && c != '\r';
        if !separates_words_only && pieces.last() != Some(&Piece::Break) {
            pieces.push(Piece::Break);
        }
    }
    if !word.is_empty() {
        pieces.push(Piece::Word(word));
    }
    pieces
}

/// Whether a word can be part of a keyword: not a stop word, not a number, not one letter.
fn content_word(word: &str, is_stop: &dyn Fn(&str) -> bool) -> bool {
    word.chars().count() >= 2 && word.chars().any(char::is_alphabetic) && !is_stop(word)
}

/// The word with a possessive `'s` removed (`worker's` → `worker`), unless the whole word is a
/// stop word (`it's`, `let's`).
fn strip_possessive<'a>(word: &'a str, is_stop: &dyn Fn(&str) -> bool) -> &'a str {
    if is_stop(word) {
        return word;
    }
    word.strip_suffix("'s").unwrap_or(word)
}

/// The candidate phrases of a text, in order, each as its words.
fn candidates(text: &str, is_stop: &dyn Fn(&str) -> bool) -> Vec<Vec<String>> {
    let mut phrases = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut flush = |run: &mut Vec<String>| {
        if run.len() > MAX_PHRASE_WORDS {
            phrases.extend(run.drain(..).map(|w| vec![w]));
        } else if !run.is_empty() {
            phrases.push(std::mem::take(run));
        }
    };
    for piece in tokenize(text) {
        match piece {
            Piece::Word(word) => {
                let word = strip_possessive(&word, is_stop);
                if content_word(word, is_stop) {
                    run.push(word.to_string());
                } else {
                    flush(&mut run);
                }
            }
            Piece::Break => flush(&mut run),
        }
    }
    flush(&mut run);
    phrases
}

/// The `top_k` best keywords of `text`, best first; `is_stop` says which words are stop words.
/// Ties keep the phrase seen more often first, then the one seen first. An empty result means
/// the text has no content words.
pub fn extract(text: &str, top_k: usize, is_stop: &dyn Fn(&str) -> bool) -> Vec<Keyword> {
    let phrases = candidates(text, is_stop);
    // Word statistics over every occurrence of every candidate.
    let mut frequency: BTreeMap<&str, f64> = BTreeMap::new();
    let mut degree: BTreeMap<&str, f64> = BTreeMap::new();
    for phrase in &phrases {
        for word in phrase {
            *frequency.entry(word).or_default() += 1.0;
            *degree.entry(word).or_default() += phrase.len() as f64;
        }
    }
    // Unique phrases: occurrences and the index of the first.
    struct Candidate {
        keyword: String,
        count: usize,
        first: usize,
    }
    let mut unique: Vec<Candidate> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (position, phrase) in phrases.iter().enumerate() {
        let keyword = phrase.join(" ");
        match index.get(&keyword) {
            Some(&i) => unique[i].count += 1,
            None => {
                index.insert(keyword.clone(), unique.len());
                unique.push(Candidate {
                    keyword,
                    count: 1,
                    first: position,
                });
            }
        }
    }
    let mut scored: Vec<(f64, &Candidate)> = unique
        .iter()
        .map(|c| {
            let rake: f64 = phrases[c.first]
                .iter()
                .map(|w| degree[w.as_str()] / frequency[w.as_str()])
                .sum();
            (rake * (1.0 + (c.count as f64).ln()), c)
        })
        .collect();
    scored.sort_by(|(sa, a), (sb, b)| {
        sb.total_cmp(sa)
            .then(b.count.cmp(&a.count))
            .then(a.first.cmp(&b.first))
    });
    scored
        .into_iter()
        .take(top_k)
        .map(|(score, c)| Keyword {
            keyword: c.keyword.clone(),
            score: (score * 1000.0).round() / 1000.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stopwords::is_stop_word;

    fn words(pieces: &[Piece]) -> Vec<&str> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Word(w) => Some(w.as_str()),
                Piece::Break => None,
            })
            .collect()
    }

    fn keywords(text: &str, top_k: usize) -> Vec<String> {
        extract(text, top_k, &is_stop_word)
            .into_iter()
            .map(|k| k.keyword)
            .collect()
    }

    #[test]
    fn tokenizing_is_unicode_aware() {
        let pieces = tokenize("Größe, CAFÉ naïve Ελληνικά — Straße's state-of-the-art max_tokens");
        assert_eq!(
            words(&pieces),
            [
                "größe",
                "café",
                "naïve",
                "ελληνικά",
                "straße's",
                "state-of-the-art",
                "max_tokens"
            ]
        );
        // A decomposed accent stays in its word; a curly apostrophe is straightened.
        assert_eq!(
            words(&tokenize("cafe\u{301} don\u{2019}t")),
            ["cafe\u{301}", "don't"]
        );
        // A dangling hyphen or apostrophe is not part of the word.
        assert_eq!(
            words(&tokenize("- well-known -dash 'quoted'")),
            ["well-known", "dash", "quoted"]
        );
    }

    #[test]
    fn punctuation_and_line_breaks_end_phrases_but_spaces_do_not() {
        let pieces = tokenize("alpha beta. gamma\ndelta\tepsilon");
        assert_eq!(
            pieces,
            [
                Piece::Word("alpha".into()),
                Piece::Word("beta".into()),
                Piece::Break,
                Piece::Word("gamma".into()),
                Piece::Break,
                Piece::Word("delta".into()),
                Piece::Word("epsilon".into()),
            ]
        );
    }

    #[test]
    fn candidates_split_at_stop_words_numbers_and_single_letters() {
        let phrases = candidates(
            "The sandbox runs 2048 WebAssembly components, and a worker's queue is x fast.",
            &is_stop_word,
        );
        let joined: Vec<String> = phrases.iter().map(|p| p.join(" ")).collect();
        assert_eq!(
            joined,
            ["sandbox", "webassembly components", "worker queue", "fast"]
        );
    }

    #[test]
    fn over_long_runs_are_taken_word_by_word() {
        let phrases = candidates("rust wasm celery redis sandbox", &is_stop_word);
        assert_eq!(phrases.len(), 5);
        assert!(phrases.iter().all(|p| p.len() == 1));
    }

    #[test]
    fn multi_word_and_repeated_phrases_rank_first() {
        let text = "Compatibility of systems of linear constraints over the set of natural \
                    numbers. Criteria of compatibility of a system of linear Diophantine \
                    equations, strict inequations, and nonstrict inequations are considered. \
                    Upper bounds for components of a minimal set of solutions and algorithms \
                    of construction of minimal generating sets of solutions for all types of \
                    systems are given.";
        // Ties (8.5 each) keep text order.
        let top = keywords(text, 4);
        assert_eq!(
            top,
            [
                "linear diophantine equations",
                "minimal generating sets",
                "linear constraints",
                "natural numbers"
            ]
        );
        let repeated = keywords("Redis queue. Redis queue. Redis queue. Sandbox limits.", 2);
        assert_eq!(repeated, ["redis queue", "sandbox limits"]);
    }

    #[test]
    fn scores_are_rounded_and_sorted_and_top_k_cuts() {
        let all = extract(
            "WebAssembly sandbox; task queue; keyword extraction; task queue",
            10,
            &is_stop_word,
        );
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(all[0].keyword, "task queue");
        // (2 + 2) * (1 + ln 2)
        assert_eq!(all[0].score, 6.773);
        assert_eq!(
            extract("WebAssembly sandbox; task queue", 1, &is_stop_word).len(),
            1
        );
    }

    #[test]
    fn text_without_content_words_has_no_keywords() {
        assert!(extract("It is what it is, and so on. 42!", 10, &is_stop_word).is_empty());
        assert!(extract("", 10, &is_stop_word).is_empty());
    }
}
