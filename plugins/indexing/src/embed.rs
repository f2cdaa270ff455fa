//! Dense vectors for the `high_quality` technique: the [`Embedder`] seam, the built-in
//! deterministic [`HashedNgramEmbedder`], and the int8 quantisation used to store vectors
//! compactly in kv.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use taskbox_sdk::TaskError;

use crate::store::fnv1a64;
use crate::text::{self, is_cjk};

/// Turns texts into L2-normalised vectors. It is a trait so a real model provider can replace
/// the built-in embedder later without touching storage or scoring.
pub trait Embedder {
    /// A stable name of the model and its settings, stored in the dataset meta: vectors made
    /// by different embedders are not comparable, so a dataset keeps the one it started with.
    fn id(&self) -> &str;

    /// Vector length.
    fn dims(&self) -> usize;

    /// One vector per text, in order, each of [`Embedder::dims`] values with unit length (or
    /// all zeros for a text with no content). Batched because real providers are.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TaskError>;
}

/// Feature hashing of words and their character trigrams into a fixed number of signed
/// buckets: deterministic, dependency-free and fast enough to run inside the component, and
/// it matches misspellings and inflections partially, which keywords cannot.
#[derive(Debug, Clone)]
pub struct HashedNgramEmbedder {
    dims: usize,
    id: String,
}

impl HashedNgramEmbedder {
    /// An embedder producing `dims`-dimensional vectors (at least 1).
    pub fn new(dims: usize) -> HashedNgramEmbedder {
        let dims = dims.max(1);
        HashedNgramEmbedder {
            dims,
            id: format!("hashed-ngram-v1-{dims}"),
        }
    }

    /// Features of one text with their weights: each term, plus the character trigrams of
    /// each word (with `^`/`$` boundary marks) or the characters of each CJK bigram.
    fn features(text: &str, mut add: impl FnMut(u64, f32)) {
        for term in text::terms(text) {
            add(fnv1a64(format!("w\u{1}{term}").as_bytes()), 1.0);
            let chars: Vec<char> = term.chars().collect();
            if chars.first().is_some_and(|c| is_cjk(*c)) {
                for c in &chars {
                    add(fnv1a64(format!("c\u{1}{c}").as_bytes()), 0.5);
                }
                continue;
            }
            let padded: Vec<char> = std::iter::once('^')
                .chain(chars)
                .chain(std::iter::once('$'))
                .collect();
            for gram in padded.windows(3) {
                let gram: String = gram.iter().collect();
                add(fnv1a64(format!("g\u{1}{gram}").as_bytes()), 0.5);
            }
        }
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        // Sum weights per feature first, then dampen repeats (square root) so a long segment
        // repeating common words does not drown its rare ones.
        let mut weights: std::collections::HashMap<u64, f32> = Default::default();
        Self::features(text, |hash, weight| {
            *weights.entry(hash).or_insert(0.0) += weight;
        });
        let mut vector = vec![0.0f32; self.dims];
        let dims = self.dims as u64;
        for (hash, weight) in weights {
            let bucket = usize::try_from(hash % dims).unwrap_or(0);
            let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
            if let Some(slot) = vector.get_mut(bucket) {
                *slot += sign * weight.sqrt();
            }
        }
        normalize(&mut vector);
        vector
    }
}

impl Default for HashedNgramEmbedder {
    fn default() -> Self {
        HashedNgramEmbedder::new(256)
    }
}

impl Embedder for HashedNgramEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TaskError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Scales `vector` to unit length; a zero vector stays zero.
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in vector.iter_mut() {
            *v /= norm;
        }
    }
}

/// Quantises a vector to int8 (scaled so its largest component is ±127) and base64-encodes
/// it: a quarter of the f32 size, and cosine similarity does not depend on the scale.
pub fn quantize(vector: &[f32]) -> String {
    let max = vector.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let bytes: Vec<u8> = vector
        .iter()
        .map(|v| {
            let q = if max > 0.0 {
                (v / max * 127.0).round().clamp(-127.0, 127.0)
            } else {
                0.0
            };
            // In -127..=127 after the clamp, so the cast is exact.
            (q as i8).to_le_bytes()[0]
        })
        .collect();
    BASE64.encode(bytes)
}

/// Decodes a stored vector (see [`quantize`]); `None` when it is not valid base64.
pub fn dequantize(encoded: &str) -> Option<Vec<f32>> {
    let bytes = BASE64.decode(encoded).ok()?;
    Some(
        bytes
            .into_iter()
            .map(|b| f32::from(i8::from_le_bytes([b])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::cosine;

    fn embed(text: &str) -> Vec<f32> {
        HashedNgramEmbedder::default().embed_one(text)
    }

    #[test]
    fn vectors_are_deterministic_and_unit_length() {
        let a = embed("Rust compiles to WebAssembly components");
        assert_eq!(a, embed("Rust compiles to WebAssembly components"));
        assert_eq!(a.len(), 256);
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(embed("the of and").iter().all(|v| *v == 0.0));
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let query = embed("zeppelin");
        let hit = embed("The zeppelin drifted over the harbour at dawn.");
        let miss = embed("Bread dough rises faster in a warm kitchen.");
        assert!(cosine(&query, &hit) > cosine(&query, &miss) + 0.1);
        // Inflections share trigrams.
        assert!(cosine(&embed("indexing"), &embed("indexes")) > 0.2);
    }

    #[test]
    fn quantisation_keeps_direction() {
        let v = embed("Quantised vectors keep their direction");
        let q = dequantize(&quantize(&v)).unwrap();
        assert_eq!(q.len(), v.len());
        assert!(cosine(&v, &q) > 0.99);
        assert!(dequantize("not base64!").is_none());
        assert_eq!(dequantize(&quantize(&[0.0, 0.0])).unwrap(), [0.0, 0.0]);
    }

    #[test]
    fn id_names_the_dimension() {
        let e = HashedNgramEmbedder::new(64);
        assert_eq!(e.id(), "hashed-ngram-v1-64");
        assert_eq!(e.dims(), 64);
        assert_eq!(e.embed(&["a b", "c"]).unwrap().len(), 2);
    }
}
