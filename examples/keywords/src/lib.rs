//! `keywords`: a third-party taskbox plugin that extracts keywords from text and keeps
//! per-document keyword tags in its private kv store. It depends only on `taskbox-sdk` (plus
//! serde), and PLUGIN_GUIDE.md at the repository root walks through it.
//!
//! Tasks:
//! - `keywords.extract(text, top_k=10, language="en")` → `[{"keyword", "score"}]`, best first.
//! - `keywords.tag(document_id, text, top_k=5, language="en")` extracts, stores the record
//!   under `doc:<document_id>` in kv, and returns it.
//! - `keywords.lookup(document_id)` → the stored record, or `null` if the document was never
//!   tagged.
//!
//! Capabilities: `log` (all tasks) and `kv` (`tag`, `lookup`).

pub mod rake;
pub mod stopwords;

use serde::{Deserialize, Serialize};
use taskbox_sdk::{Context, TaskError, export_plugin, kv, log, task};

pub use rake::Keyword;

/// The largest `top_k` accepted.
pub const MAX_TOP_K: u32 = 100;

/// The longest `document_id` accepted, in characters.
pub const MAX_DOCUMENT_ID_CHARS: usize = 200;

/// The languages with a stop-word list.
pub const LANGUAGES: &[&str] = &["en"];

/// What `keywords.tag` stores and `keywords.lookup` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    /// The document's id, as given.
    pub document_id: String,
    /// The language the keywords were extracted in.
    pub language: String,
    /// The keywords, best first.
    pub keywords: Vec<Keyword>,
    /// The id of the task that tagged it.
    pub task_id: String,
}

/// `keywords.extract(text, top_k=10, language="en")`: the `top_k` best keywords and key
/// phrases of `text`, best first. A text with no content words gives `[]`.
#[task(name = "keywords.extract")]
fn extract(
    text: String,
    #[default(10)] top_k: u32,
    #[default("en")] language: String,
) -> Result<Vec<Keyword>, TaskError> {
    let keywords = extract_checked(&text, top_k, &language)?;
    log::log(
        log::Level::Info,
        "extracted keywords",
        &[
            ("chars", &text.chars().count().to_string()),
            ("keywords", &keywords.len().to_string()),
        ],
    );
    Ok(keywords)
}

/// `keywords.tag(document_id, text, top_k=5, language="en")`: extracts the keywords of a
/// document and stores them under `doc:<document_id>` (replacing an earlier tag), then returns
/// the stored record.
#[task(name = "keywords.tag")]
fn tag(
    ctx: &Context,
    document_id: String,
    text: String,
    #[default(5)] top_k: u32,
    #[default("en")] language: String,
) -> Result<Tagged, TaskError> {
    let key = document_key(&document_id)?;
    let keywords = extract_checked(&text, top_k, &language)?;
    let record = Tagged {
        document_id,
        language: language.to_ascii_lowercase(),
        keywords,
        task_id: ctx.id.clone(),
    };
    // An unreachable store becomes a retry, a denied one a failure (see `kv`).
    kv::set_json(&key, &record)?;
    log::log(
        log::Level::Info,
        "tagged document",
        &[
            ("document_id", &record.document_id),
            ("keywords", &record.keywords.len().to_string()),
        ],
    );
    Ok(record)
}

/// `keywords.lookup(document_id)`: what `keywords.tag` stored for the document, or `null`
/// when it was never tagged.
#[task(name = "keywords.lookup")]
fn lookup(document_id: String) -> Result<Option<Tagged>, TaskError> {
    let key = document_key(&document_id)?;
    kv::get_json(&key)
}

export_plugin!(extract, tag, lookup);

/// Validates the arguments shared by `extract` and `tag`, then extracts.
fn extract_checked(text: &str, top_k: u32, language: &str) -> Result<Vec<Keyword>, TaskError> {
    if text.trim().is_empty() {
        return Err(TaskError::reject(
            "text is empty: pass the document's plain text as `text`",
        ));
    }
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(TaskError::reject(format!(
            "top_k must be between 1 and {MAX_TOP_K}, got {top_k}"
        )));
    }
    let is_stop: &dyn Fn(&str) -> bool = match language.to_ascii_lowercase().as_str() {
        "en" => &stopwords::is_stop_word,
        _ => {
            return Err(TaskError::reject(format!(
                "language '{language}' is not supported; supported: {}",
                LANGUAGES.join(", ")
            )));
        }
    };
    Ok(rake::extract(text, top_k as usize, is_stop))
}

/// The kv key of a document, after checking its id is usable.
fn document_key(document_id: &str) -> Result<String, TaskError> {
    if document_id.trim().is_empty() {
        return Err(TaskError::reject("document_id must not be empty"));
    }
    let chars = document_id.chars().count();
    if chars > MAX_DOCUMENT_ID_CHARS {
        return Err(TaskError::reject(format!(
            "document_id is {chars} characters long; at most {MAX_DOCUMENT_ID_CHARS} are allowed"
        )));
    }
    if document_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(TaskError::reject(format!(
            "document_id {document_id:?} contains whitespace or control characters"
        )));
    }
    Ok(format!("doc:{document_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskbox_sdk::{Value, json, testing};

    const TEXT: &str = "taskbox runs every Celery task as a WebAssembly component. \
                        The WebAssembly component runs in a wasmtime sandbox with fuel limits, \
                        memory limits and a private key-value store.";

    fn call(task: &str, args: Value, kwargs: Value) -> Result<Value, TaskError> {
        testing::call(TASKBOX_TASKS, task, args, kwargs)
    }

    fn rejected(result: Result<Value, TaskError>) -> String {
        match result {
            Err(TaskError::Reject(message)) => message,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn extract_returns_keywords_and_scores_best_first() {
        let out = call("keywords.extract", json!([TEXT]), json!({"top_k": 3})).unwrap();
        let keywords: Vec<Keyword> = serde_json::from_value(out).unwrap();
        assert_eq!(keywords.len(), 3);
        // Three words that appear nowhere else score highest (RAKE favours longer phrases).
        assert_eq!(keywords[0].keyword, "private key-value store");
        assert!(keywords.windows(2).all(|w| w[0].score >= w[1].score));
        // The default is ten; this text has fewer candidates than that.
        let all = call("keywords.extract", json!([TEXT]), json!({})).unwrap();
        let all = all.as_array().unwrap();
        assert!(all.len() > 3 && all.len() <= 10, "{all:?}");
        assert!(
            all.iter()
                .all(|k| k["keyword"].is_string() && k["score"].is_f64())
        );
        let logs = testing::logs();
        assert_eq!(logs.last().unwrap().message, "extracted keywords");
    }

    #[test]
    fn extract_takes_arguments_as_python_binds_them() {
        let positional = call("keywords.extract", json!([TEXT, 2, "EN"]), json!({})).unwrap();
        let keyword = call(
            "keywords.extract",
            json!([]),
            json!({"text": TEXT, "top_k": 2, "language": "en"}),
        )
        .unwrap();
        assert_eq!(positional, keyword);
        assert_eq!(positional.as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_input_is_rejected_with_the_reason() {
        let empty = rejected(call("keywords.extract", json!(["  \n"]), json!({})));
        assert!(empty.contains("text is empty"), "{empty}");
        let zero = rejected(call("keywords.extract", json!([TEXT]), json!({"top_k": 0})));
        assert!(
            zero.contains("top_k must be between 1 and 100, got 0"),
            "{zero}"
        );
        let big = rejected(call("keywords.extract", json!([TEXT, 101]), json!({})));
        assert!(big.contains("got 101"), "{big}");
        let negative = rejected(call("keywords.extract", json!([TEXT, -1]), json!({})));
        assert!(negative.contains("argument 'top_k'"), "{negative}");
        let language = rejected(call(
            "keywords.extract",
            json!([TEXT]),
            json!({"language": "de"}),
        ));
        assert!(
            language.contains("language 'de' is not supported; supported: en"),
            "{language}"
        );
        let missing = rejected(call("keywords.extract", json!([]), json!({})));
        assert!(
            missing.contains("missing required argument 'text'"),
            "{missing}"
        );
        let typo = rejected(call("keywords.extract", json!([TEXT]), json!({"topk": 3})));
        assert!(
            typo.contains("unexpected keyword argument 'topk'"),
            "{typo}"
        );
        let not_text = rejected(call("keywords.extract", json!([{"text": TEXT}]), json!({})));
        assert!(not_text.contains("argument 'text'"), "{not_text}");
    }

    #[test]
    fn tag_stores_the_keywords_under_the_document_and_lookup_reads_them() {
        let tagged = call("keywords.tag", json!(["doc-42", TEXT]), json!({"top_k": 2})).unwrap();
        let record: Tagged = serde_json::from_value(tagged.clone()).unwrap();
        assert_eq!(record.document_id, "doc-42");
        assert_eq!(record.language, "en");
        assert_eq!(record.keywords.len(), 2);
        assert_eq!(record.task_id, Context::for_test("keywords.tag").id);
        let stored = testing::kv_entries();
        let bytes = stored.get("doc:doc-42").expect("stored under doc:<id>");
        assert_eq!(serde_json::from_slice::<Value>(bytes).unwrap(), tagged);
        assert_eq!(
            call("keywords.lookup", json!(["doc-42"]), json!({})).unwrap(),
            tagged
        );
        assert_eq!(
            testing::logs().last().unwrap().fields[0],
            ("document_id".to_string(), "doc-42".to_string())
        );
    }

    #[test]
    fn tagging_again_replaces_the_record() {
        call("keywords.tag", json!(["7", TEXT]), json!({})).unwrap();
        let second = call(
            "keywords.tag",
            json!(["7", "Redis queues and Redis streams."]),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            call("keywords.lookup", json!(["7"]), json!({})).unwrap(),
            second
        );
        assert_eq!(testing::kv_entries().len(), 1);
    }

    #[test]
    fn lookup_of_an_untagged_document_is_null() {
        assert_eq!(
            call("keywords.lookup", json!(["nope"]), json!({})).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn bad_document_ids_are_rejected_before_anything_is_stored() {
        for (id, why) in [
            (json!(""), "must not be empty"),
            (json!("a b"), "whitespace or control"),
            (json!("x".repeat(201)), "at most 200"),
            (json!(42), "argument 'document_id'"),
        ] {
            let message = rejected(call("keywords.tag", json!([id, TEXT]), json!({})));
            assert!(message.contains(why), "{message}");
        }
        let message = rejected(call("keywords.lookup", json!([""]), json!({})));
        assert!(message.contains("must not be empty"), "{message}");
        assert!(testing::kv_entries().is_empty());
    }

    #[test]
    fn a_denied_kv_fails_tag_without_a_retry() {
        testing::deny_kv();
        match call("keywords.tag", json!(["doc-1", TEXT]), json!({})) {
            Err(TaskError::Fail(message)) => assert!(message.contains("kv denied"), "{message}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        // extract needs no kv, so it still works.
        assert!(call("keywords.extract", json!([TEXT]), json!({})).is_ok());
    }
}
