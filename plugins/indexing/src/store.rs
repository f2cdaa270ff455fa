//! The kv key layout of the indexing component, the records stored under it, and batched kv
//! helpers that keep every call inside the host's limits.
//!
//! # Key layout (a contract with the `retention` component)
//!
//! `D = enc(dataset)`, `K = enc(document_id)`, `T = enc(term)`, `S` = the document's shard
//! (decimal, `0..shards`), `sha` = lowercase hex sha256 of a segment's content. [`enc`]
//! percent-encodes every byte outside `[A-Za-z0-9_.-]`, so no encoded part holds a `:`.
//! Values are compact JSON.
//!
//! | key                       | value                                                        |
//! |---------------------------|--------------------------------------------------------------|
//! | `ds:D:meta`               | [`Meta`]: technique, embedder, shard count, counters         |
//! | `ds:D:doc:K`              | [`DocRecord`]: the document's segments (sha, position, ...)  |
//! | `ds:D:docterms:K`         | economy: the document's distinct terms (JSON string array)   |
//! | `ds:D:seg:K:sha`          | [`SegRecord`]: one indexed segment's content                 |
//! | `ds:D:parent:K:sha`       | [`ParentRecord`]: a parent segment's content (parent-child)  |
//! | `ds:D:term:T:S`           | [`PostingShard`]: economy postings of term `T`, shard `S`    |
//! | `ds:D:vec:S`              | [`VectorShard`]: high_quality vectors of shard `S`           |
//! | `tombstone:D`             | [`Tombstone`]: `{"deleted_at": <unix s>, "dataset": <name>}` |
//!
//! Every key of a dataset starts with `ds:D:`, so `retention` can remove a deleted dataset
//! by prefix; the tombstone lives outside that prefix so the sweep can delete it last.
//!
//! A document's postings and vectors go to shard `fnv1a64(document_id) % shards`, which splits
//! each term's posting list (and the vector set) into `shards` values so none of them nears
//! the kv value limit; the shard count is stored in the meta so it can change for new
//! datasets without breaking old ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use taskbox_sdk::kv::{self, KvError};
use taskbox_sdk::{Context, TaskError};

/// Shards per term (and vector set) of a new dataset.
pub const DEFAULT_SHARDS: u32 = 16;
/// The host's kv value limit (`MAX_VALUE` in the host's kv capability): a larger write fails.
pub const MAX_VALUE: usize = 8 * 1024 * 1024;
/// The host's kv key limit in bytes.
pub const MAX_KEY: usize = 1024;
/// Keys per kv call; the host allows 10 000, staying lower keeps each reply moderate.
pub const BATCH: usize = 2_000;
/// Bytes per `set_many` call, so one write never becomes a huge Redis request.
pub const MAX_WRITE_BYTES: usize = 32 * 1024 * 1024;
/// Longest dataset name in bytes; with the other bounds every key stays under [`MAX_KEY`].
pub const MAX_DATASET_BYTES: usize = 100;
/// Longest document id in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 200;
/// Keys per scan page when purging a dataset's leftovers.
const PURGE_PAGE: u32 = 500;
/// Keys deleted per purge batch.
const PURGE_BATCH: usize = 1_000;
/// Stop purging (and ask for a retry) when less time than this is left before the deadline.
const PURGE_MARGIN_MS: u128 = 2_000;

/// How a dataset is indexed; fixed when the dataset is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Technique {
    /// Keyword inverted index scored with BM25.
    Economy,
    /// Dense vectors scored by cosine similarity.
    HighQuality,
}

impl Technique {
    /// Parses the `technique` parameter, so a typo is a reject naming the accepted values.
    pub fn parse(raw: &str) -> Result<Technique, TaskError> {
        match raw {
            "economy" => Ok(Technique::Economy),
            "high_quality" => Ok(Technique::HighQuality),
            other => Err(TaskError::reject(format!(
                "technique must be \"economy\" or \"high_quality\", got {other:?}"
            ))),
        }
    }

    /// The name used in parameters, meta and outputs.
    pub fn name(self) -> &'static str {
        match self {
            Technique::Economy => "economy",
            Technique::HighQuality => "high_quality",
        }
    }
}

/// `ds:D:meta`: what every call on a dataset reads first, and what BM25 needs globally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The dataset name (unencoded).
    pub dataset: String,
    /// Fixed at the first index.
    pub technique: Technique,
    /// high_quality: the [`crate::embed::Embedder::id`] that made the vectors, so vectors
    /// of different models are never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// Shards per term / vector set.
    pub shards: u32,
    /// Documents indexed.
    pub documents: u64,
    /// Segments indexed (the BM25 `N`).
    pub segments: u64,
    /// Sum of segment lengths in terms (BM25 average length = this / `segments`).
    pub total_length: u64,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// One indexed segment as listed by its document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegRef {
    /// Content hash; the segment's identity within the document.
    pub sha256: String,
    /// Position as `chunking.split` gave it (within its parent for children).
    pub position: usize,
    /// Length in terms, kept so removing the segment can update the meta's total.
    pub length: u32,
    /// Index into [`DocRecord::parents`] for a child segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<usize>,
}

/// A parent segment (parent-child input) as listed by its document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Content hash of the parent.
    pub sha256: String,
    /// The parent's position in the document.
    pub position: usize,
}

/// `ds:D:doc:K`: the document's segments; positions live here (not in the segment records)
/// so that a segment that only moved is not rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocRecord {
    /// The document id (unencoded).
    pub document_id: String,
    /// Indexed segments in document order, unique by sha256.
    pub segments: Vec<SegRef>,
    /// Parents of the segments (parent-child input only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentRef>,
    /// Unix seconds of the last index.
    pub indexed_at: u64,
    /// Set by `indexing.delete` once postings and counters no longer include the document,
    /// so a retried delete neither subtracts it twice nor loses its remaining keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

/// `ds:D:seg:K:sha`: content-addressed, so it is written once per content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegRecord {
    /// The owning document.
    pub document_id: String,
    /// sha256 of `content`.
    pub sha256: String,
    /// The segment text.
    pub content: String,
}

/// `ds:D:parent:K:sha`: a parent's text, returned as context with child hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRecord {
    /// The owning document.
    pub document_id: String,
    /// sha256 of `content`.
    pub sha256: String,
    /// The parent text.
    pub content: String,
}

/// One posting: `[sha256, term frequency, segment length]` (a JSON array, to stay compact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting(pub String, pub u32, pub u32);

/// `ds:D:term:T:S`: document id → its postings for the term, sorted by sha256. Grouping by
/// document lets a (re-)index replace one document's entry without reading its segments.
pub type PostingShard = BTreeMap<String, Vec<Posting>>;

/// `ds:D:vec:S`: document id → segment sha256 → base64 of the int8-quantised vector.
pub type VectorShard = BTreeMap<String, BTreeMap<String, String>>;

/// `tombstone:D`: marks a deleted dataset until `retention` sweeps its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Unix seconds of the deletion.
    pub deleted_at: u64,
    /// The dataset name (unencoded).
    pub dataset: String,
}

/// Percent-encodes every byte outside `[A-Za-z0-9_.-]` (as `%XX`, upper case), so a name can
/// never contain the `:` that separates key parts, and distinct names never share a prefix
/// boundary.
pub fn enc(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(raw.len());
    for &byte in raw.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// 64-bit FNV-1a: a stable, platform-independent hash (shards must never move).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard holding a document's postings and vectors.
pub fn shard_of(document_id: &str, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    // The remainder is below `shards`, which came from a u32.
    u32::try_from(fnv1a64(document_id.as_bytes()) % shards).unwrap_or(0)
}

/// Builds the keys of one dataset; holds the encoded name so it is computed once.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    tombstone: String,
}

impl Keys {
    /// Keys of `dataset`.
    pub fn new(dataset: &str) -> Keys {
        let encoded = enc(dataset);
        Keys {
            prefix: format!("ds:{encoded}:"),
            tombstone: format!("tombstone:{encoded}"),
        }
    }

    /// `ds:D:`, the prefix of every key of the dataset.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `tombstone:D`.
    pub fn tombstone(&self) -> &str {
        &self.tombstone
    }

    /// `ds:D:meta`.
    pub fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    /// `ds:D:doc:K`.
    pub fn doc(&self, document_id: &str) -> String {
        format!("{}doc:{}", self.prefix, enc(document_id))
    }

    /// `ds:D:docterms:K`.
    pub fn doc_terms(&self, document_id: &str) -> String {
        format!("{}docterms:{}", self.prefix, enc(document_id))
    }

    /// `ds:D:seg:K:sha`.
    pub fn seg(&self, document_id: &str, sha: &str) -> String {
        format!("{}seg:{}:{sha}", self.prefix, enc(document_id))
    }

    /// `ds:D:parent:K:sha`.
    pub fn parent(&self, document_id: &str, sha: &str) -> String {
        format!("{}parent:{}:{sha}", self.prefix, enc(document_id))
    }

    /// `ds:D:term:T:S`.
    pub fn term(&self, term: &str, shard: u32) -> String {
        format!("{}term:{}:{shard}", self.prefix, enc(term))
    }

    /// `ds:D:vec:S`.
    pub fn vectors(&self, shard: u32) -> String {
        format!("{}vec:{shard}", self.prefix)
    }
}

/// Seconds since the Unix epoch (WASI provides the clock); 0 if the clock is before 1970.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a stored JSON value; a value that does not parse means the store was corrupted or
/// written by an incompatible version, which a retry cannot fix.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, TaskError> {
    serde_json::from_slice(bytes)
        .map_err(|err| TaskError::fail(format!("kv key '{key}' holds an invalid record: {err}")))
}

/// Parses an optional stored value (see [`decode`]).
pub fn decode_opt<T: DeserializeOwned>(
    key: &str,
    bytes: Option<&Vec<u8>>,
) -> Result<Option<T>, TaskError> {
    bytes.map(|b| decode(key, b)).transpose()
}

/// Serialises a record, refusing values the host would reject so the message can say which
/// record grew too large instead of a bare kv error.
pub fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, TaskError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| TaskError::fail(format!("record for '{key}' is not JSON: {err}")))?;
    if bytes.len() > MAX_VALUE {
        return Err(TaskError::reject(format!(
            "the record '{key}' would be {} bytes, over the kv value limit of {MAX_VALUE} \
             bytes; index smaller documents or split the dataset",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Reads many keys in as few calls as the batch limit allows, in the order given. A batch
/// whose reply would pass the host's reply cap is split in half until it fits.
pub fn get_many(keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, TaskError> {
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(BATCH) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        out.extend(get_split(&refs)?);
    }
    Ok(out)
}

fn get_split(keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, TaskError> {
    match kv::get_many(keys) {
        Ok(values) if values.len() == keys.len() => Ok(values),
        Ok(values) => Err(TaskError::fail(format!(
            "kv returned {} values for {} keys",
            values.len(),
            keys.len()
        ))),
        Err(KvError::TooLarge(_)) if keys.len() > 1 => {
            let (first, second) = keys.split_at(keys.len() / 2);
            let mut values = get_split(first)?;
            values.extend(get_split(second)?);
            Ok(values)
        }
        Err(err) => Err(err.into()),
    }
}

/// Writes entries in batches (bounded by key count and by [`MAX_WRITE_BYTES`]), in order:
/// callers put their commit record last so that a failure between batches leaves the
/// previous state authoritative.
pub fn set_many(entries: &[(String, Vec<u8>)]) -> Result<(), TaskError> {
    let mut batch: Vec<(&str, &[u8])> = Vec::new();
    let mut bytes = 0;
    for (key, value) in entries {
        let size = key.len() + value.len();
        if !batch.is_empty() && (batch.len() >= BATCH || bytes + size > MAX_WRITE_BYTES) {
            kv::set_many(&batch)?;
            batch.clear();
            bytes = 0;
        }
        batch.push((key.as_str(), value.as_slice()));
        bytes += size;
    }
    if !batch.is_empty() {
        kv::set_many(&batch)?;
    }
    Ok(())
}

/// Deletes keys in batches; returns how many existed.
pub fn delete(keys: &[String]) -> Result<u64, TaskError> {
    let mut removed = 0;
    for batch in keys.chunks(BATCH) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        removed += kv::delete(&refs)?;
    }
    Ok(removed)
}

/// Deletes every key under the dataset prefix in bounded batches. Each batch is collected by
/// a fresh scan before anything is deleted, because a scan cursor is not guaranteed to
/// survive deletions (offset-based backends would skip keys). When the task's deadline gets
/// close it stops and asks for a retry: deleted keys stay deleted, so the next attempt
/// continues where this one stopped.
pub fn purge(ctx: &Context, keys: &Keys) -> Result<u64, TaskError> {
    let mut removed = 0;
    loop {
        let batch = collect(ctx, keys)?;
        if batch.is_empty() {
            return Ok(removed);
        }
        removed += delete(&batch)?;
    }
}

/// Up to [`PURGE_BATCH`] distinct keys under the dataset prefix, scanning from the start.
fn collect(ctx: &Context, keys: &Keys) -> Result<Vec<String>, TaskError> {
    let mut found = BTreeSet::new();
    let mut cursor = 0;
    loop {
        if ctx.remaining().as_millis() < PURGE_MARGIN_MS {
            return Err(TaskError::retry(format!(
                "dataset keys under '{}' are still being removed after delete_dataset; \
                 retry later",
                keys.prefix()
            )));
        }
        let (next, page) = kv::scan(keys.prefix(), cursor, PURGE_PAGE)?;
        found.extend(page);
        if next == 0 || found.len() >= PURGE_BATCH {
            return Ok(found.into_iter().collect());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_keeps_safe_bytes_and_escapes_the_rest() {
        assert_eq!(enc("Docs_v1.2-x"), "Docs_v1.2-x");
        assert_eq!(enc("a:b c/%"), "a%3Ab%20c%2F%25");
        assert_eq!(enc("中"), "%E4%B8%AD");
        assert!(!enc("x:y:z").contains(':'));
    }

    #[test]
    fn every_dataset_key_starts_with_the_retention_prefix() {
        let keys = Keys::new("my:set");
        assert_eq!(keys.prefix(), "ds:my%3Aset:");
        assert_eq!(keys.tombstone(), "tombstone:my%3Aset");
        for key in [
            keys.meta(),
            keys.doc("d"),
            keys.doc_terms("d"),
            keys.seg("d", "ab"),
            keys.parent("d", "ab"),
            keys.term("word", 3),
            keys.vectors(0),
        ] {
            assert!(key.starts_with(keys.prefix()), "{key}");
        }
    }

    #[test]
    fn longest_possible_keys_fit_the_host_limit() {
        // Every byte escaped triples; terms are capped by the tokenizer.
        let dataset = "\u{7f}".repeat(MAX_DATASET_BYTES);
        let document = "\u{7f}".repeat(MAX_DOCUMENT_BYTES);
        let term = "é".repeat(crate::text::MAX_TERM_BYTES / 2);
        let keys = Keys::new(&dataset);
        let sha = "f".repeat(64);
        for key in [
            keys.seg(&document, &sha),
            keys.parent(&document, &sha),
            keys.doc_terms(&document),
            keys.term(&term, DEFAULT_SHARDS - 1),
        ] {
            assert!(key.len() <= MAX_KEY, "{} bytes", key.len());
        }
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        for id in ["a", "b", "doc-17", "中文"] {
            assert!(shard_of(id, DEFAULT_SHARDS) < DEFAULT_SHARDS);
            assert_eq!(shard_of(id, DEFAULT_SHARDS), shard_of(id, DEFAULT_SHARDS));
        }
        assert_eq!(shard_of("x", 0), 0);
    }

    #[test]
    fn oversized_records_are_refused_before_the_host_sees_them() {
        let big = "x".repeat(MAX_VALUE + 1);
        let err = encode("ds:a:seg:b:c", &big).unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("ds:a:seg:b:c")));
    }

    #[test]
    fn batched_writes_and_reads_keep_order() {
        taskbox_sdk::testing::reset();
        let entries: Vec<(String, Vec<u8>)> = (0..BATCH + 7)
            .map(|i| (format!("k{i:05}"), i.to_string().into_bytes()))
            .collect();
        set_many(&entries).unwrap();
        let mut keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        keys.push("missing".into());
        let values = get_many(&keys).unwrap();
        assert_eq!(values.len(), keys.len());
        let expected = (BATCH + 3).to_string().into_bytes();
        assert_eq!(values[BATCH + 3].as_ref(), Some(&expected));
        assert_eq!(values[BATCH + 7], None);
        assert_eq!(delete(&keys).unwrap(), (BATCH + 7) as u64);
    }

    #[test]
    fn technique_names_round_trip() {
        for t in [Technique::Economy, Technique::HighQuality] {
            assert_eq!(Technique::parse(t.name()).unwrap(), t);
        }
        let err = Technique::parse("fast").unwrap_err();
        assert!(matches!(err, TaskError::Reject(m) if m.contains("technique")));
    }
}
