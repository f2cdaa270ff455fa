//! Property: indexing a document and deleting it again leaves the kv store exactly as it was
//! (apart from the meta's timestamps), whatever the text, technique or re-indexing between.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use taskbox_plugin_indexing::TASKBOX_TASKS;
use taskbox_plugin_indexing::store::Keys;
use taskbox_sdk::testing::{self, call};

const WORDS: &[&str] = &[
    "river", "stone", "bridge", "lantern", "copper", "meadow", "the", "of", "signal", "harbour",
    "机器", "学习", "网络", "Straße", "café", "42", "x7",
];

fn paragraph() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 1..25).prop_map(|w| w.join(" "))
}

fn document() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(paragraph(), 1..6)
}

/// Hand-built chunks (one segment per paragraph), so every case is fast.
fn chunks(paragraphs: &[String]) -> Value {
    let segments: Vec<Value> = paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"position": i, "content": p}))
        .collect();
    json!({"document": {}, "mode": "custom", "segments": segments, "total_tokens": 0})
}

fn index(paragraphs: &[String], id: &str, technique: &str) {
    call(
        TASKBOX_TASKS,
        "indexing.index",
        json!([chunks(paragraphs)]),
        json!({"dataset": "prop", "document_id": id, "technique": technique}),
    )
    .unwrap();
}

/// The store with the meta's timestamps blanked.
fn snapshot() -> BTreeMap<String, Value> {
    let meta_key = Keys::new("prop").meta();
    testing::kv_entries()
        .into_iter()
        .map(|(k, v)| {
            let mut value: Value = serde_json::from_slice(&v).unwrap();
            if k == meta_key {
                value["updated_at"] = Value::Null;
            }
            (k, value)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn index_then_delete_leaves_no_trace(
        keep in document(),
        first in document(),
        second in prop::option::of(document()),
        high_quality in any::<bool>(),
        id in "[a-z:/ ]{1,12}",
    ) {
        testing::reset();
        let technique = if high_quality { "high_quality" } else { "economy" };
        index(&keep, "keep", technique);
        let before = snapshot();

        let id = format!("doc-{id}");
        index(&first, &id, technique);
        if let Some(second) = &second {
            index(second, &id, technique);
        }
        let out = call(TASKBOX_TASKS, "indexing.delete", json!(["prop", id]), json!({})).unwrap();
        prop_assert_eq!(&out["found"], &json!(true));
        prop_assert_eq!(snapshot(), before);
    }
}
