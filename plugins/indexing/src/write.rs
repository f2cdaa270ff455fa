//! The write side: `indexing.index`, `indexing.delete` and `indexing.delete_dataset`.
//!
//! Each call reads what it needs in one or two `get_many` round trips, then deletes stale
//! keys, then writes new ones with the document record and the dataset meta in the *last*
//! batch. That order makes every call safe to retry after a failure part-way: until the last
//! batch lands, the stored document record still describes the old state, so the retry
//! computes the same difference again, and every step is idempotent.
//!
//! kv has no transactions, so two writers on the same dataset at the same time can lose each
//! other's posting or counter updates: route a dataset's writes through one worker slot.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use taskbox_sdk::{Context, TaskError};

use crate::embed::{Embedder, quantize};
use crate::input::{Flat, Unit};
use crate::store::{
    self, DEFAULT_SHARDS, DocRecord, Keys, Meta, ParentRecord, ParentRef, Posting, PostingShard,
    SegRecord, SegRef, Technique, Tombstone, VectorShard, decode_opt, encode, now_secs,
};
use crate::text;

/// `indexing.index`'s result: how the document's segments changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// The dataset indexed into.
    pub dataset: String,
    /// The document id used (given, from `chunks.document.id`, or the content hash).
    pub document_id: String,
    /// The dataset's technique.
    pub technique: &'static str,
    /// Distinct segments the document now has indexed.
    pub segments: usize,
    /// Segments newly written.
    pub added: usize,
    /// Segments of the previous version removed.
    pub removed: usize,
    /// Segments kept as they were (same sha256).
    pub unchanged: usize,
}

/// `indexing.delete`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteReport {
    /// The dataset.
    pub dataset: String,
    /// The document asked for.
    pub document_id: String,
    /// Whether the document was indexed (deleting an absent one is not an error, so a
    /// repeated delete succeeds).
    pub found: bool,
    /// Segments the document had.
    pub segments: usize,
    /// Posting lists (economy) or vector sets (high_quality) the document was removed from.
    pub postings: usize,
    /// kv keys removed.
    pub keys_deleted: u64,
}

/// `indexing.delete_dataset`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteDatasetReport {
    /// The dataset.
    pub dataset: String,
    /// Unix seconds of the deletion (the first one, if it was already deleted).
    pub deleted_at: u64,
    /// True when an earlier call had already deleted it.
    pub already_deleted: bool,
    /// Documents it held.
    pub documents: u64,
    /// Segments it held.
    pub segments: u64,
}

/// The message for a dataset that cannot be read: deleted, or never indexed.
pub fn missing_dataset(dataset: &str, tombstone: Option<&Tombstone>) -> TaskError {
    match tombstone {
        Some(t) => TaskError::reject(format!(
            "dataset '{dataset}' was deleted (at unix time {}); index into it to start a \
             fresh dataset",
            t.deleted_at
        )),
        None => TaskError::reject(format!(
            "unknown dataset '{dataset}': nothing has been indexed into it"
        )),
    }
}

/// What the first round trip of a document-level call reads.
struct DocState {
    meta: Option<Meta>,
    tombstone: Option<Tombstone>,
    doc: Option<DocRecord>,
    doc_terms: Vec<String>,
}

fn load_doc_state(keys: &Keys, document_id: &str) -> Result<DocState, TaskError> {
    let wanted = [
        keys.meta(),
        keys.tombstone().to_string(),
        keys.doc(document_id),
        keys.doc_terms(document_id),
    ];
    let values = store::get_many(&wanted)?;
    let value = |i: usize| values.get(i).and_then(Option::as_ref);
    Ok(DocState {
        meta: decode_opt(&wanted[0], value(0))?,
        tombstone: decode_opt(&wanted[1], value(1))?,
        doc: decode_opt(&wanted[2], value(2))?,
        doc_terms: decode_opt(&wanted[3], value(3))?.unwrap_or_default(),
    })
}

/// Reads and decodes one key.
fn get_one<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>, TaskError> {
    let values = store::get_many(&[key.to_string()])?;
    decode_opt(key, values.into_iter().next().flatten().as_ref())
}

/// Per-term postings of the document being indexed, and its distinct terms.
fn postings_of(units: &[Unit], lengths: &mut Vec<u32>) -> BTreeMap<String, Vec<Posting>> {
    let mut by_term: BTreeMap<String, Vec<Posting>> = BTreeMap::new();
    for unit in units {
        let (counts, length) = text::term_counts(&unit.content);
        lengths.push(length);
        for (term, tf) in counts {
            by_term
                .entry(term)
                .or_default()
                .push(Posting(unit.sha256.clone(), tf, length));
        }
    }
    for postings in by_term.values_mut() {
        postings.sort_by(|a, b| a.0.cmp(&b.0));
    }
    by_term
}

/// Pending kv changes; applied deletes first, then writes with the commit record last.
#[derive(Default)]
struct Changes {
    deletes: Vec<String>,
    writes: Vec<(String, Vec<u8>)>,
}

impl Changes {
    fn write<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), TaskError> {
        let bytes = encode(&key, value)?;
        self.writes.push((key, bytes));
        Ok(())
    }
}

/// Replaces one document's entry in each posting shard of `terms`: `entries` holds the new
/// entry per term (absent = none). Returns how many shards changed.
fn update_postings(
    keys: &Keys,
    document_id: &str,
    shard: u32,
    terms: &BTreeSet<String>,
    entries: &BTreeMap<String, Vec<Posting>>,
    changes: &mut Changes,
) -> Result<usize, TaskError> {
    let shard_keys: Vec<String> = terms.iter().map(|t| keys.term(t, shard)).collect();
    let values = store::get_many(&shard_keys)?;
    let mut changed = 0;
    for ((term, key), value) in terms.iter().zip(shard_keys).zip(values) {
        let mut map: PostingShard = decode_opt(&key, value.as_ref())?.unwrap_or_default();
        let new_entry = entries.get(term).filter(|e| !e.is_empty());
        if map.get(document_id) == new_entry {
            continue;
        }
        match new_entry {
            Some(entry) => {
                map.insert(document_id.to_string(), entry.clone());
            }
            None => {
                map.remove(document_id);
            }
        }
        changed += 1;
        if map.is_empty() {
            changes.deletes.push(key);
        } else {
            changes.write(key, &map)?;
        }
    }
    Ok(changed)
}

/// Replaces one document's vectors in its vector shard (`None` removes them). Returns whether
/// the shard changed.
fn update_vectors(
    key: String,
    mut map: VectorShard,
    document_id: &str,
    vectors: Option<BTreeMap<String, String>>,
    changes: &mut Changes,
) -> Result<bool, TaskError> {
    let vectors = vectors.filter(|v| !v.is_empty());
    if map.get(document_id) == vectors.as_ref() {
        return Ok(false);
    }
    match vectors {
        Some(v) => {
            map.insert(document_id.to_string(), v);
        }
        None => {
            map.remove(document_id);
        }
    }
    if map.is_empty() {
        changes.deletes.push(key);
    } else {
        changes.write(key, &map)?;
    }
    Ok(true)
}

/// Indexes one document (see the module doc for the write order). A tombstoned dataset is
/// purged of its leftover keys and started fresh.
pub fn index(
    ctx: &Context,
    dataset: &str,
    document_id: &str,
    technique: Technique,
    flat: &Flat,
    embedder: &dyn Embedder,
) -> Result<IndexReport, TaskError> {
    let keys = Keys::new(dataset);
    let now = now_secs();
    let mut state = load_doc_state(&keys, document_id)?;
    if state.tombstone.is_some() {
        // A deleted dataset is indexed into again: nothing of the old one may survive, so
        // remove what retention has not swept yet before starting fresh.
        store::purge(ctx, &keys)?;
        store::delete(&[keys.tombstone().to_string()])?;
        state = DocState {
            meta: None,
            tombstone: None,
            doc: None,
            doc_terms: Vec::new(),
        };
    }
    let mut meta = match state.meta {
        Some(meta) => {
            if meta.technique != technique {
                return Err(TaskError::reject(format!(
                    "dataset '{dataset}' uses technique \"{}\", not \"{}\"; a dataset keeps \
                     the technique of its first index (pass technique=\"{}\" or use another \
                     dataset)",
                    meta.technique.name(),
                    technique.name(),
                    meta.technique.name()
                )));
            }
            check_embedder(dataset, &meta, embedder)?;
            meta
        }
        None => Meta {
            dataset: dataset.to_string(),
            technique,
            embedder: (technique == Technique::HighQuality).then(|| embedder.id().to_string()),
            shards: DEFAULT_SHARDS,
            documents: 0,
            segments: 0,
            total_length: 0,
            created_at: now,
            updated_at: now,
        },
    };
    let shard = store::shard_of(document_id, meta.shards);

    // What the stored version had. A record marked `deleting` is already out of the counters
    // and postings; only its keys remain to be removed.
    let previously_counted = state.doc.as_ref().is_some_and(|d| !d.deleting);
    let old = state.doc.unwrap_or_else(|| DocRecord {
        document_id: document_id.to_string(),
        segments: Vec::new(),
        parents: Vec::new(),
        indexed_at: 0,
        deleting: false,
    });
    let counted: BTreeSet<&str> = if old.deleting {
        BTreeSet::new()
    } else {
        old.segments.iter().map(|s| s.sha256.as_str()).collect()
    };
    let new_shas: BTreeSet<&str> = flat.units.iter().map(|u| u.sha256.as_str()).collect();
    let new_parent_shas: BTreeSet<&str> = flat.parents.iter().map(|p| p.sha256.as_str()).collect();

    let mut changes = Changes::default();
    let mut lengths = Vec::with_capacity(flat.units.len());
    let entries = postings_of(&flat.units, &mut lengths);

    // Segments and parents of the old version that are gone.
    let mut removed = 0;
    let mut removed_length = 0u64;
    for seg in &old.segments {
        if !new_shas.contains(seg.sha256.as_str()) {
            changes.deletes.push(keys.seg(document_id, &seg.sha256));
            if !old.deleting {
                removed += 1;
                removed_length += u64::from(seg.length);
            }
        }
    }
    for parent in &old.parents {
        if !new_parent_shas.contains(parent.sha256.as_str()) {
            changes
                .deletes
                .push(keys.parent(document_id, &parent.sha256));
        }
    }

    // New segment records (unchanged ones are left alone) and parents.
    let mut added = 0;
    let mut added_length = 0u64;
    let mut unchanged = 0;
    for (unit, length) in flat.units.iter().zip(&lengths) {
        if counted.contains(unit.sha256.as_str()) {
            unchanged += 1;
            continue;
        }
        added += 1;
        added_length += u64::from(*length);
        let record = SegRecord {
            document_id: document_id.to_string(),
            sha256: unit.sha256.clone(),
            content: unit.content.clone(),
        };
        changes.write(keys.seg(document_id, &unit.sha256), &record)?;
    }
    let old_parent_shas: BTreeSet<&str> = old.parents.iter().map(|p| p.sha256.as_str()).collect();
    for parent in &flat.parents {
        if old.deleting || !old_parent_shas.contains(parent.sha256.as_str()) {
            let record = ParentRecord {
                document_id: document_id.to_string(),
                sha256: parent.sha256.clone(),
                content: parent.content.clone(),
            };
            changes.write(keys.parent(document_id, &parent.sha256), &record)?;
        }
    }

    match technique {
        Technique::Economy => {
            let new_terms: BTreeSet<String> = entries.keys().cloned().collect();
            let mut touched = new_terms.clone();
            touched.extend(state.doc_terms.iter().cloned());
            update_postings(&keys, document_id, shard, &touched, &entries, &mut changes)?;
            let old_terms: BTreeSet<String> = state.doc_terms.into_iter().collect();
            if new_terms.is_empty() {
                if !old_terms.is_empty() {
                    changes.deletes.push(keys.doc_terms(document_id));
                }
            } else if new_terms != old_terms {
                changes.write(keys.doc_terms(document_id), &new_terms)?;
            }
        }
        Technique::HighQuality => {
            let key = keys.vectors(shard);
            let map: VectorShard = get_one(&key)?.unwrap_or_default();
            let existing = map.get(document_id).cloned().unwrap_or_default();
            let mut vectors = BTreeMap::new();
            let mut to_embed: Vec<&Unit> = Vec::new();
            for unit in &flat.units {
                match existing.get(&unit.sha256) {
                    Some(v) if counted.contains(unit.sha256.as_str()) => {
                        vectors.insert(unit.sha256.clone(), v.clone());
                    }
                    _ => to_embed.push(unit),
                }
            }
            let texts: Vec<&str> = to_embed.iter().map(|u| u.content.as_str()).collect();
            let embedded = embedder.embed(&texts)?;
            if embedded.len() != texts.len() {
                return Err(TaskError::fail(format!(
                    "embedder {} returned {} vectors for {} texts",
                    embedder.id(),
                    embedded.len(),
                    texts.len()
                )));
            }
            for (unit, vector) in to_embed.iter().zip(embedded) {
                vectors.insert(unit.sha256.clone(), quantize(&vector));
            }
            update_vectors(key, map, document_id, Some(vectors), &mut changes)?;
        }
    }

    // The commit point: document record and meta, written last.
    let (segments, parents) = doc_refs(flat, &lengths);
    let record = DocRecord {
        document_id: document_id.to_string(),
        segments,
        parents,
        indexed_at: now,
        deleting: false,
    };
    if !previously_counted {
        meta.documents += 1;
    }
    meta.segments = (meta.segments + added as u64).saturating_sub(removed as u64);
    meta.total_length = (meta.total_length + added_length).saturating_sub(removed_length);
    meta.updated_at = now;
    changes.write(keys.doc(document_id), &record)?;
    changes.write(keys.meta(), &meta)?;

    store::delete(&changes.deletes)?;
    store::set_many(&changes.writes)?;
    Ok(IndexReport {
        dataset: dataset.to_string(),
        document_id: document_id.to_string(),
        technique: technique.name(),
        segments: flat.units.len(),
        added,
        removed,
        unchanged,
    })
}

/// The document record's segment and parent lists for the new version.
fn doc_refs(flat: &Flat, lengths: &[u32]) -> (Vec<SegRef>, Vec<ParentRef>) {
    let segments = flat
        .units
        .iter()
        .zip(lengths)
        .map(|(unit, length)| SegRef {
            sha256: unit.sha256.clone(),
            position: unit.position,
            length: *length,
            parent: unit.parent,
        })
        .collect();
    let parents = flat
        .parents
        .iter()
        .map(|p| ParentRef {
            sha256: p.sha256.clone(),
            position: p.position,
        })
        .collect();
    (segments, parents)
}

/// Refuses a high_quality dataset whose vectors came from another embedder: their
/// similarities would be meaningless.
pub fn check_embedder(
    dataset: &str,
    meta: &Meta,
    embedder: &dyn Embedder,
) -> Result<(), TaskError> {
    if meta.technique != Technique::HighQuality {
        return Ok(());
    }
    match meta.embedder.as_deref() {
        Some(id) if id == embedder.id() => Ok(()),
        other => Err(TaskError::reject(format!(
            "dataset '{dataset}' holds vectors of embedder {}, but this component embeds with \
             {}; re-create the dataset to switch models",
            other.unwrap_or("(none)"),
            embedder.id()
        ))),
    }
}

/// Removes every trace of one document. Phase one takes it out of postings/vectors and the
/// counters and marks its record `deleting` (one batch); phase two deletes its keys. A retry
/// after phase one sees the mark and does not subtract the document twice.
pub fn delete_document(dataset: &str, document_id: &str) -> Result<DeleteReport, TaskError> {
    let keys = Keys::new(dataset);
    let state = load_doc_state(&keys, document_id)?;
    let mut meta = match (state.meta, &state.tombstone) {
        (Some(meta), None) => meta,
        (_, tombstone) => return Err(missing_dataset(dataset, tombstone.as_ref())),
    };
    let Some(mut doc) = state.doc else {
        return Ok(DeleteReport {
            dataset: dataset.to_string(),
            document_id: document_id.to_string(),
            found: false,
            segments: 0,
            postings: 0,
            keys_deleted: 0,
        });
    };
    let shard = store::shard_of(document_id, meta.shards);
    let mut changes = Changes::default();
    let postings = match meta.technique {
        Technique::Economy => {
            let terms: BTreeSet<String> = state.doc_terms.into_iter().collect();
            update_postings(
                &keys,
                document_id,
                shard,
                &terms,
                &BTreeMap::new(),
                &mut changes,
            )?
        }
        Technique::HighQuality => {
            let key = keys.vectors(shard);
            let map: VectorShard = get_one(&key)?.unwrap_or_default();
            usize::from(update_vectors(key, map, document_id, None, &mut changes)?)
        }
    };
    if !doc.deleting {
        let length: u64 = doc.segments.iter().map(|s| u64::from(s.length)).sum();
        meta.documents = meta.documents.saturating_sub(1);
        meta.segments = meta.segments.saturating_sub(doc.segments.len() as u64);
        meta.total_length = meta.total_length.saturating_sub(length);
        meta.updated_at = now_secs();
        doc.deleting = true;
        changes.write(keys.doc(document_id), &doc)?;
        changes.write(keys.meta(), &meta)?;
    }
    store::set_many(&changes.writes)?;

    let mut gone = changes.deletes;
    gone.extend(
        doc.segments
            .iter()
            .map(|s| keys.seg(document_id, &s.sha256)),
    );
    gone.extend(
        doc.parents
            .iter()
            .map(|p| keys.parent(document_id, &p.sha256)),
    );
    gone.push(keys.doc_terms(document_id));
    // The record goes last: while it exists, a retry can still find every key above.
    let mut keys_deleted = store::delete(&gone)?;
    keys_deleted += store::delete(&[keys.doc(document_id)])?;
    Ok(DeleteReport {
        dataset: dataset.to_string(),
        document_id: document_id.to_string(),
        found: true,
        segments: doc.segments.len(),
        postings,
        keys_deleted,
    })
}

/// Marks a dataset deleted: writes its tombstone, then removes its meta, so searches fail at
/// once and the next index starts fresh. `retention` removes the remaining `ds:D:` keys.
pub fn delete_dataset(dataset: &str) -> Result<DeleteDatasetReport, TaskError> {
    let keys = Keys::new(dataset);
    let wanted = [keys.meta(), keys.tombstone().to_string()];
    let values = store::get_many(&wanted)?;
    let meta: Option<Meta> = decode_opt(&wanted[0], values.first().and_then(Option::as_ref))?;
    let tombstone: Option<Tombstone> =
        decode_opt(&wanted[1], values.get(1).and_then(Option::as_ref))?;
    let Some(meta) = meta else {
        return match tombstone {
            Some(t) => Ok(DeleteDatasetReport {
                dataset: dataset.to_string(),
                deleted_at: t.deleted_at,
                already_deleted: true,
                documents: 0,
                segments: 0,
            }),
            None => Err(missing_dataset(dataset, None)),
        };
    };
    // Keep the first deletion time if an earlier attempt wrote the tombstone already.
    let tombstone = tombstone.unwrap_or(Tombstone {
        deleted_at: now_secs(),
        dataset: dataset.to_string(),
    });
    let bytes = encode(keys.tombstone(), &tombstone)?;
    store::set_many(&[(keys.tombstone().to_string(), bytes)])?;
    store::delete(&[keys.meta()])?;
    Ok(DeleteDatasetReport {
        dataset: dataset.to_string(),
        deleted_at: tombstone.deleted_at,
        already_deleted: false,
        documents: meta.documents,
        segments: meta.segments,
    })
}
