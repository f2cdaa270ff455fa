//! The built-in `indexing` component: indexes `chunking.split` output into named datasets in
//! the plugin's kv store and searches them. This file binds the Celery calls:
//!
//! - `indexing.index(chunks, dataset, document_id=None, technique="economy")`
//! - `indexing.search(dataset, query, top_k=5, technique=None)`
//! - `indexing.delete(dataset, document_id)`
//! - `indexing.delete_dataset(dataset)`
//!
//! Text analysis lives in [`text`], scoring in [`score`], vectors in [`embed`], the kv layout
//! (a contract with the `retention` component) in [`store`], and the operations in [`write`]
//! and [`search`].
#![deny(missing_docs)]

pub mod embed;
pub mod input;
pub mod score;
pub mod search;
pub mod store;
pub mod text;
pub mod write;

use taskbox_sdk::{Context, TaskError, Value, export_plugin, task};

use embed::HashedNgramEmbedder;
use input::ChunksInput;
use search::SearchReport;
use store::Technique;
use write::{DeleteDatasetReport, DeleteReport, IndexReport};

/// Indexes one document's segments into `dataset`, replacing its previous version. The
/// dataset is created on first use with `technique`, which it then keeps.
#[task(name = "indexing.index")]
fn index(
    ctx: &Context,
    chunks: ChunksInput,
    dataset: String,
    document_id: Option<Value>,
    #[default("economy")] technique: String,
) -> Result<IndexReport, TaskError> {
    input::check_dataset(&dataset)?;
    let technique = Technique::parse(&technique)?;
    let document_id = input::resolve_document_id(document_id.as_ref(), &chunks)?;
    let flat = input::flatten(&chunks)?;
    write::index(
        ctx,
        &dataset,
        &document_id,
        technique,
        &flat,
        &HashedNgramEmbedder::default(),
    )
}

/// Returns the `top_k` segments of `dataset` most relevant to `query`, best first.
#[task(name = "indexing.search")]
fn search(
    dataset: String,
    query: String,
    #[default(5)] top_k: i64,
    technique: Option<String>,
) -> Result<SearchReport, TaskError> {
    input::check_dataset(&dataset)?;
    let top_k = search::check_top_k(top_k)?;
    let technique = technique.as_deref().map(Technique::parse).transpose()?;
    search::search(
        &dataset,
        &query,
        top_k,
        technique,
        &HashedNgramEmbedder::default(),
    )
}

/// Removes one document (segments, postings, vectors, record) and updates the dataset's
/// counters; deleting a document that is not indexed succeeds with `found: false`.
#[task(name = "indexing.delete")]
fn delete(dataset: String, document_id: Value) -> Result<DeleteReport, TaskError> {
    input::check_dataset(&dataset)?;
    let document_id = match document_id {
        Value::String(id) => id,
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => {
            return Err(TaskError::reject(
                "document_id must be a string or an integer",
            ));
        }
    };
    input::check_document_id(&document_id, "document_id")?;
    write::delete_document(&dataset, &document_id)
}

/// Marks `dataset` deleted (tombstone) so it is unsearchable at once; the `retention`
/// component removes its keys later.
#[task(name = "indexing.delete_dataset")]
fn delete_dataset(dataset: String) -> Result<DeleteDatasetReport, TaskError> {
    input::check_dataset(&dataset)?;
    write::delete_dataset(&dataset)
}

export_plugin!(index, search, delete, delete_dataset);
