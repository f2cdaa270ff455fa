//! Relevance scoring: BM25 for the `economy` technique, cosine similarity for
//! `high_quality`, and the deterministic top-k selection both use. Pure functions, so the
//! ranking can be tested without kv.

use std::cmp::Ordering;

/// BM25 term-frequency saturation: how quickly repeats of a term stop adding score.
pub const K1: f64 = 1.2;
/// BM25 length normalisation: 0 ignores segment length, 1 divides fully by it.
pub const B: f64 = 0.75;

/// Inverse document frequency of a term found in `df` of `n` segments (the BM25 variant that
/// never goes negative), so rare terms weigh more than common ones.
pub fn idf(n: u64, df: u64) -> f64 {
    let n = n.max(df) as f64;
    let df = df as f64;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// The BM25 contribution of one term to one segment: `tf` occurrences in a segment of
/// `length` terms, where segments average `avg_length` terms.
pub fn bm25(idf: f64, tf: u32, length: u32, avg_length: f64) -> f64 {
    let tf = f64::from(tf);
    let norm = if avg_length > 0.0 {
        1.0 - B + B * f64::from(length) / avg_length
    } else {
        1.0
    };
    idf * tf * (K1 + 1.0) / (tf + K1 * norm)
}

/// Cosine similarity; 0 when either vector is zero or their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// A scored candidate: which document and segment, and how well it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The segment's document.
    pub document_id: String,
    /// The segment's sha256.
    pub sha256: String,
    /// Higher is better.
    pub score: f64,
}

/// The `k` best candidates with a positive score, best first; ties go to the smaller
/// (document id, sha256) so results never depend on hash-map order.
pub fn top_k(mut candidates: Vec<Scored>, k: usize) -> Vec<Scored> {
    candidates.retain(|c| c.score > 0.0 && c.score.is_finite());
    candidates.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.document_id.cmp(&b.document_id))
            .then_with(|| a.sha256.cmp(&b.sha256))
    });
    candidates.truncate(k);
    candidates
}

/// Rounds a score for output so results read cleanly and compare stably across platforms.
pub fn round(score: f64) -> f64 {
    (score * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(doc: &str, score: f64) -> Scored {
        Scored {
            document_id: doc.into(),
            sha256: "s".into(),
            score,
        }
    }

    #[test]
    fn rare_terms_weigh_more() {
        assert!(idf(100, 1) > idf(100, 50));
        assert!(idf(100, 100) > 0.0);
        // df above n (racing writers) must not produce NaN.
        assert!(idf(1, 5).is_finite());
    }

    #[test]
    fn repeats_saturate_and_long_segments_are_penalised() {
        let w = idf(10, 2);
        let one = bm25(w, 1, 10, 10.0);
        let two = bm25(w, 2, 10, 10.0);
        let ten = bm25(w, 10, 10, 10.0);
        assert!(two > one && ten > two);
        assert!(ten < w * (K1 + 1.0));
        assert!(bm25(w, 1, 5, 10.0) > bm25(w, 1, 40, 10.0));
        assert_eq!(bm25(w, 1, 7, 0.0), bm25(w, 1, 3, 0.0));
    }

    #[test]
    fn rare_term_match_outranks_common_term_matches() {
        // Segment A holds the rare term once; B holds the common term three times.
        let n = 50;
        let a = bm25(idf(n, 1), 1, 20, 20.0);
        let b = bm25(idf(n, 40), 3, 20, 20.0);
        assert!(a > b);
    }

    #[test]
    fn cosine_handles_edges() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn top_k_orders_filters_and_breaks_ties() {
        let ranked = top_k(
            vec![
                scored("b", 1.0),
                scored("a", 1.0),
                scored("c", 3.0),
                scored("z", 0.0),
                scored("n", f64::NAN),
            ],
            2,
        );
        let docs: Vec<&str> = ranked.iter().map(|s| s.document_id.as_str()).collect();
        assert_eq!(docs, ["c", "a"]);
        assert_eq!(round(0.123_456_789), 0.123_457);
    }
}
