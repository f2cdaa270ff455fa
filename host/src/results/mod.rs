//! The Redis result backend, in Celery's format: `celery-task-meta-<id>` holds the task's meta
//! JSON with an expiry, and the same JSON is PUBLISHed on the channel of the same name so that
//! Celery's `AsyncResult.get()` (which subscribes at send time) wakes at once.
//!
//! Meta builders return JSON strings; the worker stores them atomically with its ack through
//! the broker's finish step, and [`ResultStore`] covers the standalone writes (STARTED,
//! PROGRESS) and the reads (`taskbox result`).

pub mod state;

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Map, Value, json};

pub use state::TaskState;

use crate::broker::message::format_timestamp;

/// Celery's result key prefix.
pub const PREFIX: &str = "celery-task-meta-";

/// The result key (and pub/sub channel) of a task.
pub fn key(task_id: &str) -> String {
    format!("{PREFIX}{task_id}")
}

/// A failure as Celery serializes exceptions, so Python callers get an exception whose class
/// name is the kind (`OutOfFuel`, `Timeout`, `NotRegistered`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exception class name.
    pub exc_type: String,
    /// The message.
    pub message: String,
    /// The module Python should look the class up in; `None` makes Celery synthesize a class
    /// with `exc_type` as its name.
    pub exc_module: Option<String>,
}

impl Failure {
    /// A failure of kind `exc_type` with `message`.
    pub fn new(exc_type: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            exc_type: exc_type.into(),
            message: message.into(),
            exc_module: None,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "exc_type": self.exc_type,
            "exc_message": [self.message],
            "exc_module": self.exc_module,
        })
    }
}

/// Measurements stored beside the Celery fields under `taskbox` (Celery ignores unknown keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    /// Wall time of the run in milliseconds.
    pub duration_ms: f64,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory in bytes.
    pub peak_memory: u64,
    /// Sandbox error kind when the run failed.
    pub error_kind: Option<String>,
    /// The worker that ran it.
    pub worker: String,
    /// Which attempt this was (1 = first run).
    pub attempt: u32,
}

impl RunInfo {
    fn to_json(&self) -> Value {
        json!({
            "duration_ms": self.duration_ms,
            "fuel_used": self.fuel_used,
            "peak_memory": self.peak_memory,
            "error_kind": self.error_kind,
            "worker": self.worker,
            "attempt": self.attempt,
        })
    }
}

/// Links of the task to its workflow, as Celery stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// The task that sent this one.
    pub parent_id: Option<String>,
    /// The group it belongs to.
    pub group_id: Option<String>,
    /// Ids of tasks this task published (chain step, callbacks).
    pub children: Vec<String>,
}

fn base(
    state: TaskState,
    task_id: &str,
    result: Value,
    traceback: Option<String>,
    lineage: &Lineage,
    info: Option<&RunInfo>,
) -> String {
    let mut meta = Map::new();
    meta.insert("status".into(), state.as_str().into());
    meta.insert("result".into(), result);
    meta.insert(
        "traceback".into(),
        traceback.map_or(Value::Null, Value::String),
    );
    meta.insert(
        "children".into(),
        Value::Array(
            lineage
                .children
                .iter()
                .map(|id| json!([[id, null], null]))
                .collect(),
        ),
    );
    meta.insert(
        "date_done".into(),
        if state.is_ready() {
            format_timestamp(jiff::Timestamp::now()).into()
        } else {
            Value::Null
        },
    );
    meta.insert("task_id".into(), task_id.into());
    if let Some(parent) = &lineage.parent_id {
        meta.insert("parent_id".into(), parent.clone().into());
    }
    if let Some(group) = &lineage.group_id {
        meta.insert("group_id".into(), group.clone().into());
    }
    if let Some(info) = info {
        meta.insert("taskbox".into(), info.to_json());
    }
    Value::Object(meta).to_string()
}

/// SUCCESS meta.
pub fn success(task_id: &str, result: Value, lineage: &Lineage, info: Option<&RunInfo>) -> String {
    base(TaskState::Success, task_id, result, None, lineage, info)
}

/// FAILURE meta; `traceback` carries the wasm backtrace of a trap.
pub fn failure(
    task_id: &str,
    failure: &Failure,
    traceback: Option<String>,
    lineage: &Lineage,
    info: Option<&RunInfo>,
) -> String {
    base(
        TaskState::Failure,
        task_id,
        failure.to_json(),
        traceback,
        lineage,
        info,
    )
}

/// RETRY meta: the reason of the retry, as Celery stores the `Retry` exception.
pub fn retry(task_id: &str, reason: &str, lineage: &Lineage, info: Option<&RunInfo>) -> String {
    let exc = Failure::new("Retry", reason);
    base(
        TaskState::Retry,
        task_id,
        exc.to_json(),
        None,
        lineage,
        info,
    )
}

/// REVOKED meta (`TaskRevokedError`), e.g. for an expired task.
pub fn revoked(task_id: &str, reason: &str, lineage: &Lineage) -> String {
    let exc = Failure {
        exc_type: "TaskRevokedError".into(),
        message: reason.into(),
        exc_module: Some("celery.exceptions".into()),
    };
    base(
        TaskState::Revoked,
        task_id,
        exc.to_json(),
        None,
        lineage,
        None,
    )
}

/// STARTED meta, as Celery's `task_track_started` writes it.
pub fn started(task_id: &str, hostname: &str, pid: u32) -> String {
    base(
        TaskState::Started,
        task_id,
        json!({"hostname": hostname, "pid": pid}),
        None,
        &Lineage::default(),
        None,
    )
}

/// PROGRESS meta, the custom state Celery users write with `update_state(state="PROGRESS")`.
pub fn progress(task_id: &str, current: u64, total: u64, message: Option<&str>) -> String {
    base(
        TaskState::Progress,
        task_id,
        json!({"current": current, "total": total, "message": message}),
        None,
        &Lineage::default(),
        None,
    )
}

/// Reads and writes results outside the worker's atomic finish step.
#[derive(Clone)]
pub struct ResultStore {
    conn: ConnectionManager,
    ttl: Option<Duration>,
}

/// The instant `older_than` ago: what retention sweeps compare record times with.
pub fn cutoff(older_than: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(older_than)
        .ok()
        .and_then(|d| jiff::Timestamp::now().checked_sub(d).ok())
        .unwrap_or(jiff::Timestamp::MIN)
}

/// What a sweep found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Old records found.
    pub matched: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Whether the call stopped before looking at everything.
    pub more: bool,
}

impl std::fmt::Debug for ResultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ResultStore {
    /// A store on `conn` whose writes expire after `ttl` (`None`: never).
    pub fn new(conn: ConnectionManager, ttl: Option<Duration>) -> ResultStore {
        ResultStore { conn, ttl }
    }

    /// The expiry results are written with.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Stores and publishes one meta, atomically.
    pub async fn store(&self, task_id: &str, meta: &str) -> redis::RedisResult<()> {
        let key = key(task_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match self.ttl {
            Some(ttl) => pipe.set_ex(&key, meta, ttl.as_secs().max(1)).ignore(),
            None => pipe.set(&key, meta).ignore(),
        };
        pipe.publish(&key, meta).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Deletes (or with `dry_run` only counts) up to `limit` finished results whose
    /// `date_done` is older than `older_than`, for the retention sweep. Scans until it has
    /// `limit` old results or has seen every result key (SCAN pages, so Redis is never blocked),
    /// and reports `more` when it stopped at the limit with keys left unseen; results without a
    /// `date_done` (still running) are never touched.
    pub async fn sweep(
        &self,
        older_than: Duration,
        limit: u32,
        dry_run: bool,
    ) -> redis::RedisResult<Sweep> {
        let cutoff = cutoff(older_than);
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut old: Vec<String> = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{PREFIX}*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let metas: Vec<Option<String>> = conn.mget(&keys).await?;
                for (key, meta) in keys.into_iter().zip(metas) {
                    let done = meta
                        .as_deref()
                        .and_then(|m| serde_json::from_str::<Value>(m).ok())
                        .and_then(|m| {
                            m.get("date_done")
                                .and_then(Value::as_str)
                                .and_then(crate::broker::message::parse_timestamp)
                        });
                    if done.is_some_and(|d| d < cutoff) && old.len() < limit as usize {
                        old.push(key);
                    }
                }
            }
            cursor = next;
            if cursor == 0 || old.len() >= limit as usize {
                break;
            }
        }
        let matched = old.len() as u64;
        let deleted = if dry_run || old.is_empty() {
            0
        } else {
            conn.del::<_, u64>(&old).await?
        };
        Ok(Sweep {
            matched,
            deleted,
            more: cursor != 0,
        })
    }

    /// The stored meta of a task, `None` while PENDING (nothing stored).
    pub async fn get(&self, task_id: &str) -> redis::RedisResult<Option<Value>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(key(task_id)).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Waits up to `timeout` for the task to reach a ready state (SUCCESS, FAILURE, REVOKED),
    /// as Celery's `AsyncResult.get()` does: subscribe first, then read, then wait for
    /// publishes. Returns the last meta seen (or `None` if still pending).
    pub async fn wait(
        &self,
        client: &redis::Client,
        task_id: &str,
        timeout: Duration,
    ) -> redis::RedisResult<Option<Value>> {
        use futures_util::StreamExt as _;
        let key = key(task_id);
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&key).await?;
        let mut last = self.get(task_id).await?;
        if is_ready(last.as_ref()) {
            return Ok(last);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stream = pubsub.on_message();
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            match next {
                Err(_) => return Ok(last),
                Ok(None) => return self.get(task_id).await,
                Ok(Some(msg)) => {
                    let payload: String = msg.get_payload()?;
                    last = serde_json::from_str(&payload).ok();
                    if is_ready(last.as_ref()) {
                        return Ok(last);
                    }
                }
            }
        }
    }
}

fn is_ready(meta: Option<&Value>) -> bool {
    meta.and_then(|m| m.get("status"))
        .and_then(Value::as_str)
        .and_then(TaskState::parse)
        .is_some_and(TaskState::is_ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_meta_has_celerys_fields() {
        let lineage = Lineage {
            parent_id: Some("p".into()),
            group_id: None,
            children: vec!["c1".into()],
        };
        let meta: Value = serde_json::from_str(&success("t1", json!(3), &lineage, None)).unwrap();
        assert_eq!(meta["status"], "SUCCESS");
        assert_eq!(meta["result"], 3);
        assert_eq!(meta["task_id"], "t1");
        assert_eq!(meta["parent_id"], "p");
        assert_eq!(meta["children"], json!([[["c1", null], null]]));
        assert!(meta["date_done"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(meta["traceback"], Value::Null);
    }

    #[test]
    fn failure_meta_serializes_the_exception_as_celery_does() {
        let info = RunInfo {
            error_kind: Some("OutOfFuel".into()),
            fuel_used: 10,
            ..RunInfo::default()
        };
        let f = Failure::new("OutOfFuel", "used 10 fuel");
        let meta: Value = serde_json::from_str(&failure(
            "t",
            &f,
            Some("bt".into()),
            &Lineage::default(),
            Some(&info),
        ))
        .unwrap();
        assert_eq!(meta["status"], "FAILURE");
        assert_eq!(
            meta["result"],
            json!({"exc_type": "OutOfFuel", "exc_message": ["used 10 fuel"], "exc_module": null})
        );
        assert_eq!(meta["traceback"], "bt");
        assert_eq!(meta["taskbox"]["error_kind"], "OutOfFuel");
        let pending: Value =
            serde_json::from_str(&retry("t", "again", &Lineage::default(), None)).unwrap();
        assert_eq!(
            pending["date_done"],
            Value::Null,
            "RETRY is not a ready state"
        );
    }
}
