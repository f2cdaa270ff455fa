//! The worker's side of `taskbox inspect` and `taskbox control`: it publishes who it is
//! (hostname, pid, version, queues, slots, plugins, counters) next to its heartbeat, listens on
//! the control channel, and answers each broadcast addressed to it on the reply channel the
//! request names. Revocations are also kept in Redis so a worker that starts later still
//! honours them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Shared, autoscale::Scaler};
use crate::broker;
use crate::broker::message::format_timestamp;

/// The pub/sub channel every worker listens on for inspect and control requests.
pub const CONTROL_CHANNEL: &str = "taskbox:control";
/// Sorted set of revoked task ids (score: when, ms), so late-starting workers see them too.
pub const REVOKED: &str = "taskbox:revoked";
/// How long a revocation is remembered.
pub const REVOKE_KEEP: Duration = Duration::from_secs(24 * 3600);
/// Why a task stopped by `revoke --terminate` ended.
pub const REASON_REVOKED: &str = "revoked";

/// The Redis key of a worker's published description.
pub fn info_key(worker_id: &str) -> String {
    format!("taskbox:worker:{worker_id}")
}

/// One inspect or control request, broadcast to every worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Correlates replies.
    pub id: String,
    /// `ping`, `active`, `reserved`, `scheduled`, `registered`, `stats`, `shutdown`,
    /// `pool_grow`, `pool_shrink`, `revoke`.
    pub command: String,
    /// Command arguments.
    #[serde(default)]
    pub args: Value,
    /// Worker names or ids that should answer; empty means all.
    #[serde(default)]
    pub destination: Vec<String>,
    /// The channel to publish the reply on.
    pub reply_to: String,
}

/// A worker's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub id: String,
    /// The answering worker's id.
    pub worker: String,
    /// Its name (`taskbox@host`).
    pub name: String,
    /// Whether the command was carried out.
    pub ok: bool,
    /// The answer, or the error.
    pub reply: Value,
}

/// Task ids revoked, mirrored in memory so the check before each task costs no round trip.
#[derive(Debug, Default)]
pub struct Revoked {
    ids: Mutex<HashSet<String>>,
}

impl Revoked {
    /// Whether `id` was revoked.
    pub fn contains(&self, id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn insert(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }

    /// Loads the revocations still remembered in Redis.
    pub async fn load(&self, broker: &broker::Broker) {
        let mut conn = broker.connection();
        let since = broker::now_ms().saturating_sub(REVOKE_KEEP.as_millis() as u64);
        let ids: redis::RedisResult<Vec<String>> =
            redis::AsyncCommands::zrangebyscore(&mut conn, REVOKED, since, "+inf").await;
        match ids {
            Ok(ids) => {
                for id in ids {
                    self.insert(&id);
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not load revoked task ids"),
        }
    }
}

/// Revokes `ids` on this worker: they will not run here, and with `terminate` the ones running
/// now are stopped inside their sandbox. Returns the names of the tasks stopped.
pub(crate) fn revoke(shared: &Shared, ids: &[String], terminate: bool) -> Vec<String> {
    let mut stopped = Vec::new();
    for id in ids {
        shared.revoked.insert(id);
    }
    if terminate {
        for (_, task) in shared.in_flight() {
            if ids.contains(&task.task_id) {
                task.cancel.cancel(REASON_REVOKED);
                stopped.push(task.task.clone());
            }
        }
    }
    stopped
}

/// Remembers revocations in Redis for a day, so workers that start later (or miss the
/// broadcast during a reconnect) still skip the tasks.
pub async fn remember_revoked<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    ids: &[String],
) -> redis::RedisResult<()> {
    let now = broker::now_ms();
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.zadd(REVOKED, id, now).ignore();
    }
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(REVOKED)
        .arg("-inf")
        .arg(now.saturating_sub(REVOKE_KEEP.as_millis() as u64))
        .ignore();
    pipe.query_async(conn).await
}

/// The description a worker publishes next to its heartbeat (for `inspect` and `plugin list`).
pub fn describe(shared: &Shared, scaler: &Scaler, queues: &[String]) -> Value {
    let registry = shared.registry.current();
    json!({
        "worker": shared.broker.worker_id(),
        "name": shared.name,
        "hostname": hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "queues": queues,
        "concurrency": scaler.current(),
        "busy": shared.in_flight().len(),
        "plugins": registry.status(),
        "started_at": format_timestamp(shared.started_at),
        "heartbeat_at": format_timestamp(jiff::Timestamp::now()),
        "tasks": {
            "succeeded": shared.stats.succeeded.load(Ordering::Relaxed),
            "failed": shared.stats.failed.load(Ordering::Relaxed),
            "retried": shared.stats.retried.load(Ordering::Relaxed),
        },
    })
}

/// Writes the worker's description; it expires if the worker stops refreshing it.
pub async fn publish_info(shared: &Shared, scaler: &Scaler, queues: &[String]) {
    let ttl = (shared.config.worker.dead_after * 3).as_secs().max(10);
    let mut conn = shared.broker.connection();
    let res: redis::RedisResult<()> = redis::AsyncCommands::set_ex(
        &mut conn,
        info_key(shared.broker.worker_id()),
        describe(shared, scaler, queues).to_string(),
        ttl,
    )
    .await;
    if let Err(err) = res {
        tracing::debug!(error = %err, "could not publish worker info");
    }
}

/// Listens for control requests until shutdown, reconnecting after broker outages.
pub async fn listen(
    shared: Arc<Shared>,
    scaler: Arc<Scaler>,
    queues: Vec<String>,
    client: redis::Client,
) {
    let cancel = shared.shutdown.token();
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(err) => {
                tracing::debug!(error = %err, "control channel unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = cancel.cancelled() => return,
                }
            }
        };
        if let Err(err) = pubsub.subscribe(CONTROL_CHANNEL).await {
            tracing::debug!(error = %err, "could not subscribe to the control channel");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                () = cancel.cancelled() => return,
            }
        }
        let mut stream = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                () = cancel.cancelled() => return,
            };
            let Some(msg) = msg else { break };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let request: Request = match serde_json::from_str(&payload) {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring a malformed control request");
                    continue;
                }
            };
            if !addressed_to_us(&shared, &request) {
                continue;
            }
            let (ok, reply) = handle(&shared, &scaler, &queues, &request).await;
            let reply = Reply {
                id: request.id.clone(),
                worker: shared.broker.worker_id().to_string(),
                name: shared.name.clone(),
                ok,
                reply,
            };
            let mut conn = shared.broker.connection();
            let sent: redis::RedisResult<()> = redis::AsyncCommands::publish(
                &mut conn,
                &request.reply_to,
                serde_json::to_string(&reply).unwrap_or_default(),
            )
            .await;
            if let Err(err) = sent {
                tracing::debug!(error = %err, "could not publish a control reply");
            }
            if request.command == "shutdown" && ok {
                tracing::warn!("shutdown requested by `taskbox control shutdown`");
                shared.shutdown.begin();
            }
        }
    }
}

fn addressed_to_us(shared: &Shared, request: &Request) -> bool {
    request.destination.is_empty()
        || request
            .destination
            .iter()
            .any(|d| d == &shared.name || d == shared.broker.worker_id())
}

async fn handle(
    shared: &Shared,
    scaler: &Scaler,
    queues: &[String],
    req: &Request,
) -> (bool, Value) {
    match req.command.as_str() {
        "ping" => (true, json!("pong")),
        "active" => (true, active(shared)),
        // Slots pull only what they can start, so nothing waits reserved inside a worker.
        "reserved" => (true, json!([])),
        "registered" => (true, json!(shared.registry.current().task_names())),
        "stats" => (true, describe(shared, scaler, queues)),
        "shutdown" => (true, json!("shutting down")),
        "pool_grow" | "pool_shrink" => {
            let n = req.args.get("n").and_then(Value::as_u64).unwrap_or(1);
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let now = if req.command == "pool_grow" {
                scaler.grow(n)
            } else {
                scaler.shrink(n)
            };
            (true, json!({ "slots": now }))
        }
        "revoke" => {
            let Some(id) = req.args.get("id").and_then(Value::as_str) else {
                return (false, json!("revoke needs a task id"));
            };
            let terminate = req
                .args
                .get("terminate")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let stopped = revoke(shared, &[id.to_string()], terminate);
            (true, json!({ "revoked": id, "terminated": stopped }))
        }
        other => (false, json!(format!("unknown command '{other}'"))),
    }
}

fn active(shared: &Shared) -> Value {
    let now = jiff::Timestamp::now();
    let mut rows: Vec<Value> = shared
        .in_flight()
        .into_iter()
        .map(|(tag, t)| {
            let ran = t.started.elapsed();
            let started = now
                .checked_sub(jiff::SignedDuration::try_from(ran).unwrap_or_default())
                .unwrap_or(now);
            json!({
                "id": t.task_id,
                "name": t.task,
                "queue": t.queue,
                "delivery_tag": tag,
                "started_at": format_timestamp(started),
                "runtime_s": ran.as_secs_f64(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    json!(rows)
}
