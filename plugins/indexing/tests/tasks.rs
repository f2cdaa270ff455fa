//! End-to-end tests of the four indexing tasks through argument binding, with input made by
//! the real `chunking.split` and the SDK's in-memory kv (per test thread).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use taskbox_plugin_indexing::TASKBOX_TASKS;
use taskbox_plugin_indexing::store::{Keys, enc};
use taskbox_sdk::TaskError;
use taskbox_sdk::testing::{self, call};

const SPACE: &str = "Astronomers pointed the new telescope at a distant galaxy cluster. \
    The telescope recorded faint light from a quasar whose jets stretch across thousands of \
    light years, and the team compared the spectrum with older survey data.";
const KITCHEN: &str = "Bread dough needs time: knead it well, let it rise in a warm kitchen \
    and bake it until the crust sounds hollow. A telescope is no help with bread, but a good \
    oven thermometer is.";
const GARDEN: &str = "Tomatoes want full sun, deep watering and stakes to climb. Prune the \
    side shoots weekly and mulch the beds so the soil stays moist through the summer heat.";
const CHINESE: &str = "机器学习是人工智能的一个分支。深度学习使用多层神经网络从大量数据中学习特征，\
    在图像识别和语音识别方面取得了很大进展。";

/// Runs `chunking.split` on `text` (with optional extra kwargs).
fn split_with(text: &str, kwargs: Value) -> Value {
    call(
        taskbox_plugin_chunking::TASKBOX_TASKS,
        "chunking.split",
        json!([text]),
        kwargs,
    )
    .unwrap()
}

fn split(text: &str) -> Value {
    split_with(text, json!({}))
}

/// Paragraph-per-segment chunks: custom mode, small budget, no overlap.
fn split_paragraphs(text: &str) -> Value {
    split_with(
        text,
        json!({"mode": "custom", "separator": "\\n\\n", "max_tokens": 80, "overlap": 0}),
    )
}

fn index(chunks: Value, kwargs: Value) -> Result<Value, TaskError> {
    call(TASKBOX_TASKS, "indexing.index", json!([chunks]), kwargs)
}

fn search(kwargs: Value) -> Result<Value, TaskError> {
    call(TASKBOX_TASKS, "indexing.search", json!([]), kwargs)
}

fn index_corpus(dataset: &str, technique: &str) {
    for (id, text) in [
        ("space", SPACE),
        ("kitchen", KITCHEN),
        ("garden", GARDEN),
        ("chinese", CHINESE),
    ] {
        let out = index(
            split(text),
            json!({"dataset": dataset, "document_id": id, "technique": technique}),
        )
        .unwrap();
        assert_eq!(out["technique"], technique);
        assert_eq!(out["added"], out["segments"]);
    }
}

fn first_hit(dataset: &str, query: &str) -> Value {
    let out = search(json!({"dataset": dataset, "query": query})).unwrap();
    out["results"][0].clone()
}

fn is_reject_containing(err: &TaskError, needle: &str) -> bool {
    matches!(err, TaskError::Reject(m) if m.contains(needle))
}

/// Every kv key, for comparing before/after states.
fn kv_keys() -> Vec<String> {
    testing::kv_entries().into_keys().collect()
}

#[test]
fn economy_ranks_the_segment_with_the_rare_word_first() {
    testing::reset();
    index_corpus("docs", "economy");
    let hit = first_hit("docs", "quasar");
    assert_eq!(hit["document_id"], "space");
    assert!(hit["content"].as_str().unwrap().contains("quasar"));
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert_eq!(hit["sha256"].as_str().unwrap().len(), 64);
    // "telescope" is in two documents; the rare word decides.
    let out = search(json!({"dataset": "docs", "query": "Telescope QUASAR"})).unwrap();
    assert_eq!(out["technique"], "economy");
    assert_eq!(out["results"][0]["document_id"], "space");
    assert_eq!(out["results"].as_array().unwrap().len(), 2);
    // Nothing matches: empty, not an error.
    let out = search(json!({"dataset": "docs", "query": "submarine"})).unwrap();
    assert!(out["results"].as_array().unwrap().is_empty());
}

#[test]
fn high_quality_ranks_the_segment_with_the_rare_word_first() {
    testing::reset();
    index_corpus("vectors", "high_quality");
    for (query, document) in [
        ("quasar", "space"),
        ("tomatoes mulch", "garden"),
        ("knead the dough", "kitchen"),
    ] {
        let hit = first_hit("vectors", query);
        assert_eq!(hit["document_id"], document, "query {query}");
    }
    let meta: Value =
        serde_json::from_slice(&testing::kv_entries()[&Keys::new("vectors").meta()]).unwrap();
    assert_eq!(meta["embedder"], "hashed-ngram-v1-256");
}

#[test]
fn chinese_queries_find_the_chinese_document() {
    testing::reset();
    index_corpus("zh", "economy");
    index_corpus("zh-vectors", "high_quality");
    for dataset in ["zh", "zh-vectors"] {
        let hit = first_hit(dataset, "神经网络");
        assert_eq!(hit["document_id"], "chinese", "dataset {dataset}");
        let hit = first_hit(dataset, "语音识别");
        assert_eq!(hit["document_id"], "chinese", "dataset {dataset}");
    }
}

#[test]
fn reindexing_replaces_changed_segments_and_keeps_unchanged_ones() {
    testing::reset();
    let p1 = "The lighthouse keeper climbs the spiral stairs every evening to light the great \
        lamp, trims the wick, polishes the lens and writes the weather into the logbook before \
        the first ships pass the rocks.";
    let p2 = "During the storm the foghorn sounded all night while waves broke over the pier, \
        and the keeper watched a trawler fight its way into the harbour past the breakwater \
        with its nets lashed down.";
    let p2_new = "In calm weather the keeper repaints the railings, tends a small vegetable \
        patch behind the cottage, and mends the rowing boat that carries supplies over from \
        the mainland every fortnight.";
    let p3 = "Visitors come in summer to photograph the tower, and the keeper shows them the \
        brass clockwork that once turned the lens, explaining how each lighthouse flashes its \
        own pattern so sailors can tell them apart.";
    let v1 = split_paragraphs(&format!("{p1}\n\n{p2}\n\n{p3}"));
    assert_eq!(v1["segments"].as_array().unwrap().len(), 3);
    let out = index(
        v1.clone(),
        json!({"dataset": "sea", "document_id": "light"}),
    )
    .unwrap();
    assert_eq!(
        (
            &out["segments"],
            &out["added"],
            &out["removed"],
            &out["unchanged"]
        ),
        (&json!(3), &json!(3), &json!(0), &json!(0))
    );

    let keys = Keys::new("sea");
    let sha = |chunks: &Value, i: usize| {
        chunks["segments"][i]["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let old_key = keys.seg("light", &sha(&v1, 1));
    let kept_key = keys.seg("light", &sha(&v1, 0));
    // Mark an unchanged record so a rewrite would show.
    let mut marked: Value = serde_json::from_slice(&testing::kv_entries()[&kept_key]).unwrap();
    marked["marker"] = json!(true);
    taskbox_sdk::kv::set(&kept_key, &serde_json::to_vec(&marked).unwrap()).unwrap();
    assert_eq!(first_hit("sea", "trawler")["document_id"], "light");

    let v2 = split_paragraphs(&format!("{p1}\n\n{p2_new}\n\n{p3}"));
    let out = index(
        v2.clone(),
        json!({"dataset": "sea", "document_id": "light"}),
    )
    .unwrap();
    assert_eq!(
        (
            &out["segments"],
            &out["added"],
            &out["removed"],
            &out["unchanged"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(2))
    );
    let entries = testing::kv_entries();
    assert!(
        !entries.contains_key(&old_key),
        "removed segment record is gone"
    );
    assert!(entries.contains_key(&keys.seg("light", &sha(&v2, 1))));
    let kept: Value = serde_json::from_slice(&entries[&kept_key]).unwrap();
    assert_eq!(kept["marker"], true, "unchanged segment was not rewritten");
    // Words only the removed paragraph had left the index with it.
    for word in ["trawler", "foghorn", "breakwater"] {
        let key_prefix = format!("{}term:{word}:", keys.prefix());
        assert!(
            !entries.keys().any(|k| k.starts_with(&key_prefix)),
            "{word}"
        );
    }
    let out = search(json!({"dataset": "sea", "query": "trawler"})).unwrap();
    assert!(out["results"].as_array().unwrap().is_empty());
    let hit = first_hit("sea", "fortnight");
    assert_eq!(hit["position"], 1);

    let meta: Value = serde_json::from_slice(&entries[&keys.meta()]).unwrap();
    assert_eq!(
        (&meta["documents"], &meta["segments"]),
        (&json!(1), &json!(3))
    );

    // The same text again changes nothing.
    let out = index(v2, json!({"dataset": "sea", "document_id": "light"})).unwrap();
    assert_eq!((&out["added"], &out["unchanged"]), (&json!(0), &json!(3)));
}

#[test]
fn reindexing_high_quality_keeps_vectors_of_unchanged_segments() {
    testing::reset();
    let v1 = split_paragraphs(&format!("{SPACE}\n\n{GARDEN}"));
    let v2 = split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}"));
    let kwargs = json!({"dataset": "hq", "document_id": "d", "technique": "high_quality"});
    index(v1, kwargs.clone()).unwrap();
    let out = index(v2, kwargs).unwrap();
    assert_eq!(
        (&out["added"], &out["removed"], &out["unchanged"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(first_hit("hq", "knead dough")["document_id"], "d");
    let vectors: usize = testing::kv_entries()
        .iter()
        .filter(|(k, _)| k.contains(":vec:"))
        .map(|(_, v)| {
            serde_json::from_slice::<Value>(v).unwrap()["d"]
                .as_object()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(vectors, 2);
}

fn meta_counts(entries: &BTreeMap<String, Vec<u8>>, dataset: &str) -> Value {
    let meta: Value = serde_json::from_slice(&entries[&Keys::new(dataset).meta()]).unwrap();
    json!([meta["documents"], meta["segments"], meta["total_length"]])
}

/// Entries without the meta (whose timestamps move).
fn without_meta(entries: &BTreeMap<String, Vec<u8>>, dataset: &str) -> BTreeMap<String, Vec<u8>> {
    let meta = Keys::new(dataset).meta();
    entries
        .iter()
        .filter(|(k, _)| **k != meta)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn delete_removes_every_key_of_the_document() {
    for technique in ["economy", "high_quality"] {
        testing::reset();
        let kwargs = |id: &str| json!({"dataset": "d", "document_id": id, "technique": technique});
        index(
            split_paragraphs(&format!("{KITCHEN}\n\n{GARDEN}")),
            kwargs("keep"),
        )
        .unwrap();
        let before = testing::kv_entries();

        index(
            split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}")),
            kwargs("gone"),
        )
        .unwrap();
        assert!(kv_keys().iter().any(|k| k.contains(&enc("gone"))));
        let out = call(
            TASKBOX_TASKS,
            "indexing.delete",
            json!(["d", "gone"]),
            json!({}),
        )
        .unwrap();
        assert_eq!(out["found"], true);
        assert_eq!(out["segments"], 2);
        assert!(out["keys_deleted"].as_u64().unwrap() >= 3);

        let after = testing::kv_entries();
        assert!(
            !after.keys().any(|k| k.contains(":gone")),
            "{technique}: {:?}",
            after.keys()
        );
        assert_eq!(
            without_meta(&after, "d"),
            without_meta(&before, "d"),
            "{technique}"
        );
        assert_eq!(meta_counts(&after, "d"), meta_counts(&before, "d"));
        let out = search(json!({"dataset": "d", "query": "quasar"})).unwrap();
        assert!(
            out["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["document_id"] == "keep")
        );

        // Deleting again is a no-op, not an error.
        let out = call(
            TASKBOX_TASKS,
            "indexing.delete",
            json!(["d", "gone"]),
            json!({}),
        )
        .unwrap();
        assert_eq!(out["found"], false);
    }
}

#[test]
fn delete_dataset_writes_a_tombstone_and_a_later_index_starts_fresh() {
    testing::reset();
    index_corpus("old", "economy");
    index(
        split(SPACE),
        json!({"dataset": "other", "document_id": "x"}),
    )
    .unwrap();
    let out = call(
        TASKBOX_TASKS,
        "indexing.delete_dataset",
        json!(["old"]),
        json!({}),
    )
    .unwrap();
    assert_eq!(out["already_deleted"], false);
    assert_eq!(out["documents"], 4);
    let keys = Keys::new("old");
    let entries = testing::kv_entries();
    let tombstone: Value = serde_json::from_slice(&entries["tombstone:old"]).unwrap();
    assert_eq!(tombstone["dataset"], "old");
    assert_eq!(tombstone["deleted_at"], out["deleted_at"]);
    assert!(tombstone["deleted_at"].as_u64().unwrap() > 1_600_000_000);
    assert!(!entries.contains_key(&keys.meta()));

    let err = search(json!({"dataset": "old", "query": "quasar"})).unwrap_err();
    assert!(is_reject_containing(&err, "'old' was deleted"), "{err}");
    let err = call(
        TASKBOX_TASKS,
        "indexing.delete",
        json!(["old", "space"]),
        json!({}),
    )
    .unwrap_err();
    assert!(is_reject_containing(&err, "'old'"), "{err}");
    let out = call(
        TASKBOX_TASKS,
        "indexing.delete_dataset",
        json!(["old"]),
        json!({}),
    )
    .unwrap();
    assert_eq!(out["already_deleted"], true);
    assert_eq!(out["deleted_at"], tombstone["deleted_at"]);

    // Indexing again purges the leftovers, drops the tombstone and may pick a new technique.
    let out = index(
        split(GARDEN),
        json!({"dataset": "old", "document_id": "g", "technique": "high_quality"}),
    )
    .unwrap();
    assert_eq!(out["added"], 1);
    let entries = testing::kv_entries();
    assert!(!entries.contains_key("tombstone:old"));
    let old_keys: Vec<&String> = entries
        .keys()
        .filter(|k| k.starts_with(keys.prefix()))
        .collect();
    assert!(
        old_keys
            .iter()
            .all(|k| !k.contains("space") && !k.contains(":term:")),
        "{old_keys:?}"
    );
    assert_eq!(
        meta_counts(&entries, "old"),
        json!([1, 1, meta_counts(&entries, "old")[2]])
    );
    assert_eq!(first_hit("old", "tomatoes")["document_id"], "g");
    // Other datasets are untouched.
    assert_eq!(first_hit("other", "quasar")["document_id"], "x");
}

#[test]
fn technique_mismatch_is_rejected() {
    testing::reset();
    index(split(SPACE), json!({"dataset": "kw", "document_id": "a"})).unwrap();
    let err = index(
        split(GARDEN),
        json!({"dataset": "kw", "document_id": "b", "technique": "high_quality"}),
    )
    .unwrap_err();
    assert!(
        is_reject_containing(&err, "uses technique \"economy\""),
        "{err}"
    );
    let err =
        search(json!({"dataset": "kw", "query": "x", "technique": "high_quality"})).unwrap_err();
    assert!(is_reject_containing(&err, "economy"), "{err}");
    let out = search(json!({"dataset": "kw", "query": "quasar", "technique": "economy"})).unwrap();
    assert_eq!(out["results"][0]["document_id"], "a");
    let err = index(split(SPACE), json!({"dataset": "kw", "technique": "turbo"})).unwrap_err();
    assert!(is_reject_containing(&err, "technique"), "{err}");
}

#[test]
fn bad_search_arguments_are_rejected_by_name() {
    testing::reset();
    index(split(SPACE), json!({"dataset": "s", "document_id": "a"})).unwrap();
    for top_k in [0, 101, -3] {
        let err = search(json!({"dataset": "s", "query": "quasar", "top_k": top_k})).unwrap_err();
        assert!(is_reject_containing(&err, "top_k"), "{err}");
    }
    let out = search(json!({"dataset": "s", "query": "quasar", "top_k": 100})).unwrap();
    assert_eq!(out["results"].as_array().unwrap().len(), 1);
    let err = search(json!({"dataset": "nope", "query": "quasar"})).unwrap_err();
    assert!(
        is_reject_containing(&err, "unknown dataset 'nope'"),
        "{err}"
    );
    let err = search(json!({"dataset": "s", "query": "  "})).unwrap_err();
    assert!(is_reject_containing(&err, "query"), "{err}");
    let err = search(json!({"dataset": "", "query": "x"})).unwrap_err();
    assert!(is_reject_containing(&err, "dataset"), "{err}");
    let err = index(json!({"segs": []}), json!({"dataset": "s"})).unwrap_err();
    assert!(is_reject_containing(&err, "chunks"), "{err}");
    let err = call(
        TASKBOX_TASKS,
        "indexing.delete_dataset",
        json!(["never"]),
        json!({}),
    )
    .unwrap_err();
    assert!(
        is_reject_containing(&err, "unknown dataset 'never'"),
        "{err}"
    );
}

#[test]
fn parent_child_hits_carry_their_parent() {
    testing::reset();
    let chunks = split_with(
        &format!("{SPACE}\n{KITCHEN}\n\n{GARDEN}"),
        json!({"mode": "parent_child", "rules": {"child_max_tokens": 70}}),
    );
    assert!(
        !chunks["segments"][0]["children"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    index(chunks, json!({"dataset": "pc", "document_id": "doc"})).unwrap();
    let hit = first_hit("pc", "quasar");
    assert!(hit["content"].as_str().unwrap().contains("quasar"));
    assert!(!hit["content"].as_str().unwrap().contains("Bread dough"));
    let parent = &hit["parent"];
    assert_eq!(parent["position"], 0);
    assert!(parent["content"].as_str().unwrap().contains("Bread dough"));
    let hit = first_hit("pc", "tomatoes");
    assert!(
        hit["parent"]["content"]
            .as_str()
            .unwrap()
            .contains("Tomatoes")
    );
}

#[test]
fn document_id_comes_from_metadata_or_content() {
    testing::reset();
    let extracted = json!({"text": SPACE, "metadata": {"id": "doc-7", "title": "Stars"}});
    let chunks = call(
        taskbox_plugin_chunking::TASKBOX_TASKS,
        "chunking.split",
        json!([extracted]),
        json!({}),
    )
    .unwrap();
    let out = index(chunks, json!({"dataset": "ids"})).unwrap();
    assert_eq!(out["document_id"], "doc-7");

    let first = index(split(GARDEN), json!({"dataset": "ids"})).unwrap();
    let again = index(split(GARDEN), json!({"dataset": "ids"})).unwrap();
    assert_eq!(first["document_id"], again["document_id"]);
    assert_eq!(first["document_id"].as_str().unwrap().len(), 64);
    assert_eq!(again["unchanged"], 1);
}

#[test]
fn chain_style_call_binds_chunks_positionally() {
    testing::reset();
    let out = call(
        TASKBOX_TASKS,
        "indexing.index",
        json!([split(SPACE), "chain", "doc", "economy"]),
        json!({}),
    )
    .unwrap();
    assert_eq!(out["dataset"], "chain");
    let out = call(
        TASKBOX_TASKS,
        "indexing.search",
        json!(["chain", "quasar", 1]),
        json!({}),
    )
    .unwrap();
    assert_eq!(out["results"].as_array().unwrap().len(), 1);
    let keys: Vec<&str> = out["results"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["content", "document_id", "position", "score", "sha256"]
    );
}

#[test]
fn every_key_follows_the_layout_contract() {
    testing::reset();
    let dataset = "team: docs/2024";
    index(
        split(SPACE),
        json!({"dataset": dataset, "document_id": "a:b/c"}),
    )
    .unwrap();
    index(
        split(CHINESE),
        json!({"dataset": "v", "document_id": "z", "technique": "high_quality"}),
    )
    .unwrap();
    let prefix = Keys::new(dataset).prefix().to_string();
    assert_eq!(prefix, "ds:team%3A%20docs%2F2024:");
    for key in kv_keys() {
        assert!(
            key.starts_with(&prefix) || key.starts_with("ds:v:"),
            "{key}"
        );
        let rest = key.split_once(':').map(|(_, r)| r).unwrap();
        let (_, kind_and_more) = rest.split_once(':').unwrap();
        let kind = kind_and_more.split(':').next().unwrap();
        assert!(
            ["meta", "doc", "docterms", "seg", "parent", "term", "vec"].contains(&kind),
            "{key}"
        );
    }
}

#[test]
fn kv_denied_is_a_failure_not_a_reject() {
    testing::reset();
    testing::deny_kv();
    let err = index(split(SPACE), json!({"dataset": "x"})).unwrap_err();
    assert!(matches!(err, TaskError::Fail(m) if m.contains("kv denied")));
}

/// The store with record timestamps blanked, for comparing runs made at different seconds.
fn normalized() -> BTreeMap<String, Value> {
    testing::kv_entries()
        .into_iter()
        .map(|(k, v)| {
            let mut value: Value = serde_json::from_slice(&v).unwrap();
            if let Some(object) = value.as_object_mut() {
                for field in ["indexed_at", "updated_at", "created_at"] {
                    object.remove(field);
                }
            }
            (k, value)
        })
        .collect()
}

/// Replaces the whole store with `entries`.
fn restore(entries: &BTreeMap<String, Vec<u8>>) {
    testing::reset();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    taskbox_sdk::kv::set_many(&refs).unwrap();
}

#[test]
fn an_index_interrupted_after_its_deletes_is_completed_by_the_retry() {
    testing::reset();
    let v1 = split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}"));
    let v2 = split_paragraphs(&format!("{SPACE}\n\n{GARDEN}"));
    let kwargs = json!({"dataset": "r", "document_id": "d"});
    index(
        split(GARDEN),
        json!({"dataset": "r", "document_id": "other"}),
    )
    .unwrap();
    index(v1, kwargs.clone()).unwrap();
    let s0 = testing::kv_entries();
    let expected_report = index(v2.clone(), kwargs.clone()).unwrap();
    let s2 = normalized();

    // The first attempt deleted what it meant to, then failed before writing.
    let mut s1 = s0.clone();
    let gone: Vec<String> = s0
        .keys()
        .filter(|k| !s2.contains_key(*k))
        .cloned()
        .collect();
    assert!(!gone.is_empty());
    for key in &gone {
        s1.remove(key);
    }
    restore(&s1);
    let report = index(v2, kwargs).unwrap();
    assert_eq!(report, expected_report);
    assert_eq!(normalized(), s2);
}

#[test]
fn a_delete_interrupted_after_phase_one_is_finished_once_by_the_retry() {
    for technique in ["economy", "high_quality"] {
        testing::reset();
        let kwargs = |id: &str| json!({"dataset": "r", "document_id": id, "technique": technique});
        index(
            split_paragraphs(&format!("{KITCHEN}\n\n{GARDEN}")),
            kwargs("keep"),
        )
        .unwrap();
        index(
            split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}")),
            kwargs("d"),
        )
        .unwrap();
        let s0 = testing::kv_entries();
        call(
            TASKBOX_TASKS,
            "indexing.delete",
            json!(["r", "d"]),
            json!({}),
        )
        .unwrap();
        let s2 = normalized();
        let s2_raw = testing::kv_entries();

        // Phase one landed (postings, counters, record marked), phase two did not.
        let doc_key = Keys::new("r").doc("d");
        let mut s1 = s2_raw.clone();
        for (key, value) in &s0 {
            if !s2_raw.contains_key(key) {
                s1.insert(key.clone(), value.clone());
            }
        }
        let mut record: Value = serde_json::from_slice(&s0[&doc_key]).unwrap();
        record["deleting"] = json!(true);
        s1.insert(doc_key.clone(), serde_json::to_vec(&record).unwrap());
        restore(&s1);

        let out = call(
            TASKBOX_TASKS,
            "indexing.delete",
            json!(["r", "d"]),
            json!({}),
        )
        .unwrap();
        assert_eq!(out["found"], true);
        assert_eq!(
            normalized(),
            s2,
            "{technique}: counters subtracted once, keys gone"
        );

        // Re-indexing over a half-deleted document counts it as new.
        restore(&s1);
        let out = index(
            split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}")),
            kwargs("d"),
        )
        .unwrap();
        assert_eq!((&out["added"], &out["unchanged"]), (&json!(2), &json!(0)));
        restore(&s0);
        let reference = normalized();
        restore(&s1);
        index(
            split_paragraphs(&format!("{SPACE}\n\n{KITCHEN}")),
            kwargs("d"),
        )
        .unwrap();
        assert_eq!(normalized(), reference, "{technique}");
    }
}

#[test]
fn a_large_deleted_dataset_is_purged_completely_before_a_fresh_index() {
    testing::reset();
    // About 1500 distinct terms: far more leftover keys than one scan page.
    let text: Vec<String> = (0..1500).map(|i| format!("w{i}")).collect();
    let chunks = json!({"segments": [{"content": text.join(" ")}]});
    index(chunks, json!({"dataset": "big", "document_id": "a"})).unwrap();
    let prefix = Keys::new("big").prefix().to_string();
    assert!(kv_keys().iter().filter(|k| k.starts_with(&prefix)).count() > 1500);
    call(
        TASKBOX_TASKS,
        "indexing.delete_dataset",
        json!(["big"]),
        json!({}),
    )
    .unwrap();

    index(split(GARDEN), json!({"dataset": "big", "document_id": "g"})).unwrap();
    // Old keys: the `w<digits>` terms and anything of document `a`.
    let old_term = |k: &str| {
        k.split_once(":term:w")
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    let left: Vec<String> = kv_keys()
        .into_iter()
        .filter(|k| {
            k.starts_with(&prefix) && (old_term(k) || k.ends_with(":a") || k.contains(":a:"))
        })
        .collect();
    assert!(
        left.is_empty(),
        "{} old keys survived, e.g. {:?}",
        left.len(),
        left.first()
    );
}
