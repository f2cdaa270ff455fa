//! The read side: `indexing.search`. Three kv round trips (a fourth only for parent-child
//! hits): the dataset meta, the query terms' posting shards or the vector shards, and the
//! records of the top hits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use taskbox_sdk::TaskError;

use crate::embed::{Embedder, dequantize};
use crate::score::{self, Scored};
use crate::store::{
    self, DocRecord, Keys, Meta, ParentRecord, PostingShard, SegRecord, Technique, Tombstone,
    VectorShard, decode_opt,
};
use crate::text;
use crate::write::{check_embedder, missing_dataset};

/// Most results one search may ask for.
pub const MAX_TOP_K: i64 = 100;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Distinct query terms looked up at most (each costs one key per shard).
pub const MAX_QUERY_TERMS: usize = 64;

/// `indexing.search`'s result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchReport {
    /// The dataset searched.
    pub dataset: String,
    /// The query as given.
    pub query: String,
    /// The dataset's technique.
    pub technique: &'static str,
    /// Best first.
    pub results: Vec<Hit>,
}

/// One ranked segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The segment's document.
    pub document_id: String,
    /// The segment's position (within its parent for a child).
    pub position: usize,
    /// The segment text.
    pub content: String,
    /// BM25 score (economy) or cosine similarity (high_quality); higher is better.
    pub score: f64,
    /// sha256 of `content`.
    pub sha256: String,
    /// For a child segment (parent-child input): its parent, as context for the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentHit>,
}

/// The parent of a child hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParentHit {
    /// The parent's position in the document.
    pub position: usize,
    /// The parent text.
    pub content: String,
    /// sha256 of `content`.
    pub sha256: String,
}

/// Checks `top_k` and returns it as a count.
pub fn check_top_k(top_k: i64) -> Result<usize, TaskError> {
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(TaskError::reject(format!(
            "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
        )));
    }
    usize::try_from(top_k).map_err(|_| TaskError::reject("top_k does not fit this platform"))
}

/// Runs a search; `technique`, when given, must be the dataset's.
pub fn search(
    dataset: &str,
    query: &str,
    top_k: usize,
    technique: Option<Technique>,
    embedder: &dyn Embedder,
) -> Result<SearchReport, TaskError> {
    if query.trim().is_empty() {
        return Err(TaskError::reject("query must not be empty"));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(TaskError::reject(format!(
            "query must be at most {MAX_QUERY_BYTES} bytes, got {}",
            query.len()
        )));
    }
    let keys = Keys::new(dataset);
    let wanted = [keys.meta(), keys.tombstone().to_string()];
    let values = store::get_many(&wanted)?;
    let meta: Option<Meta> = decode_opt(&wanted[0], values.first().and_then(Option::as_ref))?;
    let tombstone: Option<Tombstone> =
        decode_opt(&wanted[1], values.get(1).and_then(Option::as_ref))?;
    let meta = match (meta, &tombstone) {
        (Some(meta), None) => meta,
        (_, tombstone) => return Err(missing_dataset(dataset, tombstone.as_ref())),
    };
    if let Some(asked) = technique
        && asked != meta.technique
    {
        return Err(TaskError::reject(format!(
            "dataset '{dataset}' uses technique \"{}\", not \"{}\"",
            meta.technique.name(),
            asked.name()
        )));
    }
    let candidates = match meta.technique {
        Technique::Economy => keyword_candidates(&keys, &meta, query)?,
        Technique::HighQuality => {
            check_embedder(dataset, &meta, embedder)?;
            vector_candidates(&keys, &meta, query, embedder)?
        }
    };
    let ranked = score::top_k(candidates, top_k);
    Ok(SearchReport {
        dataset: dataset.to_string(),
        query: query.to_string(),
        technique: meta.technique.name(),
        results: hydrate(&keys, ranked)?,
    })
}

/// BM25 over the posting shards of the query's distinct terms.
fn keyword_candidates(keys: &Keys, meta: &Meta, query: &str) -> Result<Vec<Scored>, TaskError> {
    let mut seen = BTreeSet::new();
    let terms: Vec<String> = text::terms(query)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .take(MAX_QUERY_TERMS)
        .collect();
    if terms.is_empty() || meta.segments == 0 {
        return Ok(Vec::new());
    }
    let shard_keys: Vec<String> = terms
        .iter()
        .flat_map(|t| (0..meta.shards).map(move |s| keys.term(t, s)))
        .collect();
    let values = store::get_many(&shard_keys)?;
    let avg_length = meta.total_length as f64 / meta.segments as f64;
    let mut scores: HashMap<(String, String), f64> = HashMap::new();
    let per_term = usize::try_from(meta.shards).unwrap_or(usize::MAX).max(1);
    for (term_keys, term_values) in shard_keys.chunks(per_term).zip(values.chunks(per_term)) {
        let mut postings = Vec::new();
        for (key, value) in term_keys.iter().zip(term_values) {
            let shard: PostingShard = decode_opt(key, value.as_ref())?.unwrap_or_default();
            for (doc, entries) in shard {
                postings.extend(entries.into_iter().map(|p| (doc.clone(), p)));
            }
        }
        let weight = score::idf(meta.segments, postings.len() as u64);
        for (doc, posting) in postings {
            *scores.entry((doc, posting.0)).or_insert(0.0) +=
                score::bm25(weight, posting.1, posting.2, avg_length);
        }
    }
    Ok(scores
        .into_iter()
        .map(|((document_id, sha256), score)| Scored {
            document_id,
            sha256,
            score,
        })
        .collect())
}

/// Cosine similarity of the query's vector with every stored vector.
fn vector_candidates(
    keys: &Keys,
    meta: &Meta,
    query: &str,
    embedder: &dyn Embedder,
) -> Result<Vec<Scored>, TaskError> {
    let query_vector = embedder
        .embed(&[query])?
        .into_iter()
        .next()
        .unwrap_or_default();
    if query_vector.iter().all(|v| *v == 0.0) {
        return Ok(Vec::new());
    }
    let shard_keys: Vec<String> = (0..meta.shards).map(|s| keys.vectors(s)).collect();
    let values = store::get_many(&shard_keys)?;
    let mut out = Vec::new();
    for (key, value) in shard_keys.iter().zip(values) {
        let shard: VectorShard = decode_opt(key, value.as_ref())?.unwrap_or_default();
        for (document_id, vectors) in shard {
            for (sha256, encoded) in vectors {
                let vector = dequantize(&encoded).ok_or_else(|| {
                    TaskError::fail(format!("kv key '{key}' holds an invalid vector"))
                })?;
                out.push(Scored {
                    document_id: document_id.clone(),
                    sha256,
                    score: score::cosine(&query_vector, &vector),
                });
            }
        }
    }
    Ok(out)
}

/// Loads the records of the ranked segments. A segment whose record is missing (left behind
/// by an interrupted write that its retry has not finished yet) is skipped.
fn hydrate(keys: &Keys, ranked: Vec<Scored>) -> Result<Vec<Hit>, TaskError> {
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<String> = ranked
        .iter()
        .map(|s| s.document_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut wanted: Vec<String> = ranked
        .iter()
        .map(|s| keys.seg(&s.document_id, &s.sha256))
        .collect();
    wanted.extend(docs.iter().map(|d| keys.doc(d)));
    let values = store::get_many(&wanted)?;
    let mut records: BTreeMap<String, DocRecord> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        let at = ranked.len() + i;
        let key = wanted.get(at).map(String::as_str).unwrap_or_default();
        if let Some(record) = decode_opt::<DocRecord>(key, values.get(at).and_then(Option::as_ref))?
            && !record.deleting
        {
            records.insert(doc.clone(), record);
        }
    }

    let mut hits = Vec::new();
    let mut parent_keys = Vec::new();
    for (i, scored) in ranked.into_iter().enumerate() {
        let key = wanted.get(i).map(String::as_str).unwrap_or_default();
        let Some(seg) = decode_opt::<SegRecord>(key, values.get(i).and_then(Option::as_ref))?
        else {
            continue;
        };
        let Some(record) = records.get(&scored.document_id) else {
            continue;
        };
        let Some(seg_ref) = record.segments.iter().find(|s| s.sha256 == seg.sha256) else {
            continue;
        };
        let parent = seg_ref.parent.and_then(|p| record.parents.get(p));
        if let Some(parent) = parent {
            parent_keys.push(keys.parent(&scored.document_id, &parent.sha256));
        }
        hits.push((
            Hit {
                document_id: scored.document_id,
                position: seg_ref.position,
                content: seg.content,
                score: score::round(scored.score),
                sha256: seg.sha256,
                parent: None,
            },
            parent.map(|p| (p.position, parent_keys.len() - 1)),
        ));
    }

    let parent_values = if parent_keys.is_empty() {
        Vec::new()
    } else {
        store::get_many(&parent_keys)?
    };
    let mut out = Vec::with_capacity(hits.len());
    for (mut hit, parent) in hits {
        if let Some((position, at)) = parent {
            let key = parent_keys.get(at).map(String::as_str).unwrap_or_default();
            let record: Option<ParentRecord> =
                decode_opt(key, parent_values.get(at).and_then(Option::as_ref))?;
            hit.parent = record.map(|r| ParentHit {
                position,
                content: r.content,
                sha256: r.sha256,
            });
        }
        out.push(hit);
    }
    Ok(out)
}
