//! Where work comes from: the Redis broker, in kombu's layout so Celery producers and tooling
//! keep working, with stronger guarantees than kombu gives.
//!
//! Every step that moves a message is one atomic Redis step (the Lua scripts in `scripts/`):
//! fetching records the message as unacked and owned by this worker in the same step that pops
//! it; finishing publishes follow-ups, stores results and acks together; delayed messages wait
//! in a sorted set in Redis and are promoted atomically; a dead worker's messages are restored
//! by whichever live worker notices its heartbeat stopped.

pub mod error;
pub mod message;
pub mod notify;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

pub use error::BrokerError;

use crate::config::redact_url;

/// kombu's hash of unacked messages: delivery tag → `[envelope, exchange, routing_key]`.
pub const UNACKED: &str = "unacked";
/// kombu's index of unacked messages by delivery time.
pub const UNACKED_INDEX: &str = "unacked_index";
/// Live workers scored by their last heartbeat (ms).
pub const WORKERS: &str = "taskbox:workers";
/// Messages waiting for their time (countdown, ETA, retry backoff), scored by due time (ms).
pub const DELAYED: &str = "taskbox:delayed";
/// Prefix of each worker's owned set: tag → the list key the message came from.
pub const OWNED_PREFIX: &str = "taskbox:owned:";

/// A snapshot of what waits in Redis ([`Broker::sizes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSizes {
    /// Each queue with its depth per priority list, in [`message::PRIORITY_STEPS`] order.
    pub depths: Vec<(String, [u64; message::PRIORITY_STEPS.len()])>,
    /// Messages fetched by some worker and not yet acknowledged (kombu's `unacked` hash).
    pub unacked: u64,
    /// Messages waiting for their countdown, ETA or retry backoff.
    pub delayed: u64,
    /// Entries in the dead-letter list.
    pub dead_letters: u64,
}

/// One fetched message: where it came from, its delivery tag, and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The Redis list it was popped from (queue name plus priority suffix).
    pub list_key: String,
    /// kombu's delivery tag (the unacked hash field).
    pub tag: String,
    /// The envelope exactly as popped.
    pub raw: Vec<u8>,
}

/// Everything `finish` does for one message, atomically.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// Refuse (return false) unless this worker still owns the message.
    pub require_owned: bool,
    /// `(list key, envelope)` to LPUSH: chain steps, callbacks.
    pub pushes: Vec<(String, String)>,
    /// `(result key, meta JSON)` to store and publish.
    pub results: Vec<(String, String)>,
    /// Result expiry; `None` keeps results forever.
    pub result_ttl: Option<Duration>,
    /// A dead-letter entry to add.
    pub dead_letter: Option<String>,
    /// `(due ms, member)` to add to the delayed set (a retry).
    pub delayed: Option<(u64, String)>,
}

/// The connection to the broker plus the scripts, bound to one worker identity.
#[derive(Clone)]
pub struct Broker {
    conn: ConnectionManager,
    url: String,
    worker_id: String,
    owned_key: String,
    dead_letter_key: String,
    fetch: Script,
    finish: Script,
    restore: Script,
    promote: Script,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.url)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How to reach a Sentinel-managed master (`CELERY_SENTINEL_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentinelOptions {
    /// The master's name.
    pub master: Option<String>,
    /// Password of the sentinels themselves (the master's comes from the URL).
    pub password: Option<String>,
    /// Connect timeout towards the sentinels and the master (`CELERY_SENTINEL_SOCKET_TIMEOUT`).
    pub socket_timeout: Option<Duration>,
}

impl SentinelOptions {
    /// The sentinel settings of a broker configuration.
    pub fn from_config(broker: &crate::config::BrokerConfig) -> SentinelOptions {
        SentinelOptions {
            master: broker.sentinel_master.clone(),
            password: broker.sentinel_password.clone(),
            socket_timeout: broker.sentinel_socket_timeout,
        }
    }
}

/// Opens a client for a `redis://`, `rediss://` or `sentinel://` URL (the last resolved to the
/// current master through the sentinels).
pub async fn client_for(
    url: &str,
    sentinel: &SentinelOptions,
) -> Result<redis::Client, BrokerError> {
    if url.starts_with("sentinel://") {
        let master = sentinel
            .master
            .as_deref()
            .ok_or_else(|| BrokerError::BadUrl {
                url: redact_url(url),
                reason: "a sentinel:// URL needs the master name (CELERY_SENTINEL_MASTER_NAME)"
                    .into(),
            })?;
        return sentinel_master_client(url, master, sentinel.password.as_deref()).await;
    }
    redis::Client::open(url).map_err(|e| BrokerError::BadUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })
}

async fn sentinel_master_client(
    url: &str,
    master: &str,
    sentinel_password: Option<&str>,
) -> Result<redis::Client, BrokerError> {
    use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
    let bad = |reason: String| BrokerError::BadUrl {
        url: redact_url(url),
        reason,
    };
    // `sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1`: each part is a sentinel; the
    // password and db of the first part apply to the master.
    let mut nodes = Vec::new();
    let mut db = 0;
    let mut password = None;
    for part in url.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let as_redis = part.replacen("sentinel://", "redis://", 1);
        let info: redis::ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info(as_redis.as_str()).map_err(|e| {
                bad(format!(
                    "'{}' is not a sentinel address: {e}",
                    redact_url(part)
                ))
            })?;
        if nodes.is_empty() {
            db = info.redis_settings().db();
            password = info.redis_settings().password().map(str::to_string);
        }
        nodes.push(info.addr().to_string());
    }
    let mut node_infos = Vec::new();
    for node in &nodes {
        let mut info: redis::ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info(format!("redis://{node}").as_str())
                .map_err(|e| bad(format!("sentinel address {node}: {e}")))?;
        if let Some(pw) = sentinel_password {
            info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw));
        }
        node_infos.push(info);
    }
    let mut sentinel = Sentinel::build(node_infos).map_err(|e| bad(e.to_string()))?;
    let mut redis_settings = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(pw) = password {
        redis_settings = redis_settings.set_password(pw);
    }
    let node_info = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_settings);
    sentinel
        .async_master_for(master, Some(&node_info))
        .await
        .map_err(|source| BrokerError::Connect {
            url: redact_url(url),
            source,
        })
}

impl Broker {
    /// Connects (with automatic reconnection and backoff) as worker `worker_id`.
    pub async fn connect(
        url: &str,
        sentinel: &SentinelOptions,
        worker_id: &str,
        dead_letter_key: &str,
    ) -> Result<Broker, BrokerError> {
        let client = client_for(url, sentinel).await?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(6)
            .set_max_delay(Duration::from_secs(2))
            .set_connection_timeout(Some(
                sentinel.socket_timeout.unwrap_or(Duration::from_secs(5)),
            ))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| BrokerError::Connect {
                url: redact_url(url),
                source,
            })?;
        Ok(Broker {
            conn,
            url: redact_url(url),
            worker_id: worker_id.to_string(),
            owned_key: format!("{OWNED_PREFIX}{worker_id}"),
            dead_letter_key: dead_letter_key.to_string(),
            fetch: Script::new(include_str!("scripts/fetch.lua")),
            finish: Script::new(include_str!("scripts/finish.lua")),
            restore: Script::new(include_str!("scripts/restore.lua")),
            promote: Script::new(include_str!("scripts/promote.lua")),
        })
    }

    /// The URL (password redacted), for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This worker's identity.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// A clone of the underlying connection, for the result store and capability backends.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The dead-letter list's key.
    pub fn dead_letter_key(&self) -> &str {
        &self.dead_letter_key
    }

    /// Declares queues the way kombu does (`_kombu.binding.*` members), so kombu producers that
    /// route through the queue's exchange still find them.
    pub async fn declare(&self, queues: &[String]) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for q in queues {
            let member = format!("{q}{sep}{sep}{q}", sep = message::SEP);
            pipe.sadd(format!("_kombu.binding.{q}"), &member).ignore();
            pipe.sadd(format!("_kombu.binding_permanent.{q}"), &member)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|source| BrokerError::Command {
                op: "declare",
                source,
            })
    }

    /// Pops up to `max` messages from `keys` (drained in order), at most `caps[q]` from queue `q`,
    /// and records them as unacked and owned, atomically.
    pub async fn fetch(
        &self,
        keys: &[String],
        max: usize,
        caps: &[(String, usize)],
    ) -> Result<Vec<Delivery>, BrokerError> {
        if keys.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.fetch.prepare_invoke();
        inv.key(UNACKED).key(UNACKED_INDEX).key(&self.owned_key);
        for k in keys {
            inv.key(k);
        }
        let caps: serde_json::Map<String, serde_json::Value> =
            caps.iter().map(|(q, n)| (q.clone(), (*n).into())).collect();
        inv.arg(now_secs_f64())
            .arg(max)
            .arg(serde_json::Value::Object(caps).to_string());
        let mut conn = self.conn.clone();
        let flat: Vec<Vec<u8>> =
            inv.invoke_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "fetch",
                    source,
                })?;
        let mut out = Vec::with_capacity(flat.len() / 3);
        let mut it = flat.into_iter();
        while let (Some(key), Some(tag), Some(raw)) = (it.next(), it.next(), it.next()) {
            out.push(Delivery {
                list_key: String::from_utf8_lossy(&key).into_owned(),
                tag: String::from_utf8_lossy(&tag).into_owned(),
                raw,
            });
        }
        Ok(out)
    }

    /// Applies `finish` to the message `tag` atomically. Returns false when fenced off (the
    /// worker no longer owns the message, so another worker has it).
    pub async fn finish(&self, tag: &str, finish: &Finish) -> Result<bool, BrokerError> {
        let answers = self.finish_many(&[(tag, finish)]).await?;
        Ok(answers.first().copied().unwrap_or(false))
    }

    /// Applies the finish steps of several messages in one script call: one round trip and one
    /// script start-up for tasks that ended together. Each step is still atomic on its own and
    /// answered on its own (applied, or false when fenced off). An error means the call failed
    /// as a whole and any step may or may not have applied, as with a lost reply.
    pub async fn finish_many(&self, steps: &[(&str, &Finish)]) -> Result<Vec<bool>, BrokerError> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.finish.prepare_invoke();
        inv.key(UNACKED)
            .key(UNACKED_INDEX)
            .key(&self.owned_key)
            .key(&self.dead_letter_key)
            .key(DELAYED);
        inv.arg(steps.len());
        for (tag, finish) in steps {
            for (key, _) in &finish.pushes {
                inv.key(key);
            }
            for (key, _) in &finish.results {
                inv.key(key);
            }
            inv.arg(*tag)
                .arg(if finish.require_owned { "1" } else { "0" })
                .arg(finish.result_ttl.map_or(0, |d| d.as_secs().max(1)))
                .arg(finish.dead_letter.as_deref().unwrap_or(""))
                .arg(
                    finish
                        .delayed
                        .as_ref()
                        .map_or(String::new(), |(score, _)| score.to_string()),
                )
                .arg(finish.pushes.len())
                .arg(finish.results.len())
                .arg(
                    finish
                        .delayed
                        .as_ref()
                        .map_or("", |(_, member)| member.as_str()),
                );
            for (_, envelope) in &finish.pushes {
                inv.arg(envelope);
            }
            for (_, meta) in &finish.results {
                inv.arg(meta);
            }
        }
        let mut conn = self.conn.clone();
        let answers: Vec<i64> =
            inv.invoke_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "finish",
                    source,
                })?;
        if answers.len() != steps.len() {
            return Err(BrokerError::Command {
                op: "finish",
                source: redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "finish.lua answered a different number of steps than it was given",
                )),
            });
        }
        Ok(answers.into_iter().map(|a| a == 1).collect())
    }

    /// Puts this worker's unfinished messages back on their queues (all of them when `tags` is
    /// empty). Used at shutdown and for tasks a worker abandons.
    pub async fn restore(&self, tags: &[String]) -> Result<u64, BrokerError> {
        self.restore_for(&self.worker_id, &self.owned_key, "", tags)
            .await
    }

    async fn restore_for(
        &self,
        worker: &str,
        owned_key: &str,
        unregister: &str,
        tags: &[String],
    ) -> Result<u64, BrokerError> {
        let mut inv = self.restore.prepare_invoke();
        inv.key(UNACKED)
            .key(UNACKED_INDEX)
            .key(owned_key)
            .key(&self.dead_letter_key)
            .key(WORKERS)
            .arg(unregister)
            .arg(now_ms());
        for t in tags {
            inv.arg(t);
        }
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(|source| {
            tracing::debug!(worker, "restore failed");
            BrokerError::Command {
                op: "restore",
                source,
            }
        })
    }

    /// Puts back messages this worker owns but is not working on: a fetch whose reply was lost
    /// in a connection drop leaves its messages owned by a live worker, which no peer would
    /// ever reap. Only messages fetched more than `older_than` ago and not in `in_flight` are
    /// touched (in-flight leases are renewed every heartbeat).
    pub async fn restore_orphans(
        &self,
        in_flight: &[String],
        older_than: Duration,
    ) -> Result<u64, BrokerError> {
        let mut conn = self.conn.clone();
        let owned: Vec<String> =
            conn.hkeys(&self.owned_key)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "restore_orphans",
                    source,
                })?;
        let candidates: Vec<String> = owned
            .into_iter()
            .filter(|t| !in_flight.contains(t))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for tag in &candidates {
            pipe.zscore(UNACKED_INDEX, tag);
        }
        let scores: Vec<Option<f64>> =
            pipe.query_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "restore_orphans",
                    source,
                })?;
        let cutoff = now_secs_f64() - older_than.as_secs_f64();
        let stale: Vec<String> = candidates
            .into_iter()
            .zip(scores)
            .filter(|(_, score)| score.is_none_or(|s| s < cutoff))
            .map(|(tag, _)| tag)
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let n = self.restore(&stale).await?;
        tracing::warn!(
            restored = n,
            "returned messages this worker owned but was not running (a fetch reply was lost)"
        );
        Ok(n)
    }

    /// Registers this worker as alive.
    pub async fn register(&self) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        conn.zadd::<_, _, _, ()>(WORKERS, &self.worker_id, now_ms())
            .await
            .map_err(|source| BrokerError::Command {
                op: "register",
                source,
            })
    }

    /// Renews this worker's heartbeat and the leases of its in-flight messages (their
    /// `unacked_index` scores, so kombu's visibility sweep never restores them while they run).
    /// Returns false when the worker had been declared dead in the meantime: its messages were
    /// redelivered, and it must abandon them.
    pub async fn heartbeat(&self, in_flight: &[String]) -> Result<bool, BrokerError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(WORKERS)
            .arg("XX")
            .arg("CH")
            .arg(now_ms())
            .arg(&self.worker_id);
        if !in_flight.is_empty() {
            let now = now_secs_f64();
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(UNACKED_INDEX).arg("XX");
            for tag in in_flight {
                cmd.arg(now).arg(tag);
            }
            pipe.add_command(cmd).ignore();
        }
        let mut conn = self.conn.clone();
        let (changed,): (i64,) =
            pipe.query_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "heartbeat",
                    source,
                })?;
        Ok(changed == 1)
    }

    /// Restores the messages of every worker whose heartbeat is older than `dead_after`, and
    /// forgets those workers. Safe to run from every worker at once: each restore is atomic and
    /// a message can only be restored once.
    pub async fn reap_dead(&self, dead_after: Duration) -> Result<u64, BrokerError> {
        let cutoff = now_ms().saturating_sub(dead_after.as_millis() as u64);
        let mut conn = self.conn.clone();
        let dead: Vec<String> = redis::cmd("ZRANGE")
            .arg(WORKERS)
            .arg("-inf")
            .arg(cutoff)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(&mut conn)
            .await
            .map_err(|source| BrokerError::Command { op: "reap", source })?;
        let mut restored = 0;
        for worker in dead.iter().filter(|w| **w != self.worker_id) {
            let n = self
                .restore_for(worker, &format!("{OWNED_PREFIX}{worker}"), worker, &[])
                .await?;
            tracing::warn!(dead_worker = %worker, restored = n, "worker stopped heartbeating; its unfinished tasks were put back on their queues");
            restored += n;
        }
        Ok(restored)
    }

    /// Moves due delayed messages to their queues.
    pub async fn promote_due(&self, limit: usize) -> Result<u64, BrokerError> {
        let mut conn = self.conn.clone();
        self.promote
            .key(DELAYED)
            .key(&self.dead_letter_key)
            .arg(now_ms())
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BrokerError::Command {
                op: "promote",
                source,
            })
    }

    /// Publishes an envelope to the back of a queue list (what a producer's LPUSH does).
    pub async fn publish(&self, list_key: &str, envelope: &str) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        conn.lpush::<_, _, ()>(list_key, envelope)
            .await
            .map_err(|source| BrokerError::Command {
                op: "publish",
                source,
            })
    }

    /// Adds an envelope to the delayed set, due at `due_ms`.
    pub async fn publish_delayed(
        &self,
        list_key: &str,
        envelope: &str,
        due_ms: u64,
    ) -> Result<(), BrokerError> {
        let member = delayed_member(list_key, envelope, &uuid::Uuid::new_v4().to_string());
        let mut conn = self.conn.clone();
        conn.zadd::<_, _, _, ()>(DELAYED, member, due_ms)
            .await
            .map_err(|source| BrokerError::Command {
                op: "publish_delayed",
                source,
            })
    }

    /// Deletes every message of a queue (all priority lists); returns how many there were.
    pub async fn purge(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut pipe = redis::pipe();
        let keys: Vec<String> = message::PRIORITY_STEPS
            .iter()
            .map(|p| message::queue_key(queue, *p))
            .collect();
        for k in &keys {
            pipe.llen(k);
        }
        for k in &keys {
            pipe.del(k).ignore();
        }
        let mut conn = self.conn.clone();
        let lens: Vec<u64> = pipe
            .atomic()
            .query_async(&mut conn)
            .await
            .map_err(|source| BrokerError::Command {
                op: "purge",
                source,
            })?;
        Ok(lens.into_iter().sum())
    }

    /// Messages waiting in a queue, across its priority lists.
    pub async fn depth(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut pipe = redis::pipe();
        for p in message::PRIORITY_STEPS {
            pipe.llen(message::queue_key(queue, p));
        }
        let mut conn = self.conn.clone();
        let lens: Vec<u64> =
            pipe.query_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "depth",
                    source,
                })?;
        Ok(lens.into_iter().sum())
    }

    /// What waits in Redis, read in one round trip: each queue's depth per priority list, the
    /// unacked hash, the delayed set and the dead-letter list. Read-only, for `/metrics` and
    /// queue monitoring.
    pub async fn sizes(&self, queues: &[String]) -> Result<QueueSizes, BrokerError> {
        let mut pipe = redis::pipe();
        for q in queues {
            for p in message::PRIORITY_STEPS {
                pipe.llen(message::queue_key(q, p));
            }
        }
        pipe.hlen(UNACKED)
            .zcard(DELAYED)
            .llen(&self.dead_letter_key);
        let mut conn = self.conn.clone();
        let counts: Vec<u64> =
            pipe.query_async(&mut conn)
                .await
                .map_err(|source| BrokerError::Command {
                    op: "sizes",
                    source,
                })?;
        let steps = message::PRIORITY_STEPS.len();
        let mut rest = counts.chunks(steps);
        let depths = queues
            .iter()
            .map(|q| {
                let mut per = [0; message::PRIORITY_STEPS.len()];
                if let Some(lens) = rest.next() {
                    per.iter_mut().zip(lens).for_each(|(d, n)| *d = *n);
                }
                (q.clone(), per)
            })
            .collect();
        let tail = counts.get(queues.len() * steps..).unwrap_or_default();
        Ok(QueueSizes {
            depths,
            unacked: tail.first().copied().unwrap_or(0),
            delayed: tail.get(1).copied().unwrap_or(0),
            dead_letters: tail.get(2).copied().unwrap_or(0),
        })
    }

    /// Deletes (or with `dry_run` only counts) up to `limit` dead-letter entries whose `at` is
    /// older than `older_than`. Entries are pushed at the head, so the oldest sit at the tail:
    /// the sweep reads pages from the tail and stops at the first entry that is young enough
    /// to keep. An entry without a readable `at` is kept (an operator should see it).
    pub async fn sweep_dead_letters(
        &self,
        older_than: std::time::Duration,
        limit: u32,
        dry_run: bool,
    ) -> Result<crate::results::Sweep, BrokerError> {
        let err = |source| BrokerError::Command {
            op: "sweep_dead_letters",
            source,
        };
        let cutoff = crate::results::cutoff(older_than);
        let mut conn = self.conn.clone();
        const PAGE: isize = 200;
        let mut old: Vec<String> = Vec::new();
        let mut end: isize = -1;
        let mut reached_young = false;
        'pages: loop {
            let page: Vec<String> = conn
                .lrange(&self.dead_letter_key, end - PAGE + 1, end)
                .await
                .map_err(err)?;
            if page.is_empty() {
                break;
            }
            for entry in page.iter().rev() {
                let at = serde_json::from_str::<serde_json::Value>(entry)
                    .ok()
                    .and_then(|v| {
                        v.get("at")
                            .and_then(|a| a.as_str())
                            .and_then(message::parse_timestamp)
                    });
                match at {
                    Some(at) if at < cutoff => {
                        if old.len() >= limit as usize {
                            break 'pages;
                        }
                        old.push(entry.clone());
                    }
                    Some(_) => {
                        reached_young = true;
                        break 'pages;
                    }
                    None => {}
                }
            }
            if page.len() < PAGE as usize {
                reached_young = true;
                break;
            }
            end -= PAGE;
        }
        let matched = old.len() as u64;
        let mut deleted = 0;
        if !dry_run && !old.is_empty() {
            let mut pipe = redis::pipe();
            for entry in &old {
                pipe.lrem(&self.dead_letter_key, -1, entry);
            }
            let removed: Vec<u64> = pipe.query_async(&mut conn).await.map_err(err)?;
            deleted = removed.iter().sum();
        }
        Ok(crate::results::Sweep {
            matched,
            deleted,
            more: !reached_young,
        })
    }

    /// Dead-letter entries, newest first.
    pub async fn dead_letters(
        &self,
        start: isize,
        count: isize,
    ) -> Result<Vec<String>, BrokerError> {
        let mut conn = self.conn.clone();
        conn.lrange(&self.dead_letter_key, start, start + count - 1)
            .await
            .map_err(|source| BrokerError::Command {
                op: "dead_letters",
                source,
            })
    }

    /// Removes one exact dead-letter entry; returns whether it was there.
    pub async fn remove_dead_letter(&self, entry: &str) -> Result<bool, BrokerError> {
        let mut conn = self.conn.clone();
        let removed: i64 = conn
            .lrem(&self.dead_letter_key, 1, entry)
            .await
            .map_err(|source| BrokerError::Command {
                op: "remove_dead_letter",
                source,
            })?;
        Ok(removed > 0)
    }

    /// Deletes the whole dead-letter list; returns how many entries it had.
    pub async fn purge_dead_letters(&self) -> Result<u64, BrokerError> {
        let mut conn = self.conn.clone();
        let (len, _): (u64, ()) = redis::pipe()
            .atomic()
            .llen(&self.dead_letter_key)
            .del(&self.dead_letter_key)
            .query_async(&mut conn)
            .await
            .map_err(|source| BrokerError::Command {
                op: "purge_dead_letters",
                source,
            })?;
        Ok(len)
    }

    /// Atomically removes a dead-letter entry and publishes `envelope` to `list_key`; false when
    /// the entry was already gone (someone else requeued or purged it).
    pub async fn requeue_dead_letter(
        &self,
        entry: &str,
        list_key: &str,
        envelope: &str,
    ) -> Result<bool, BrokerError> {
        // Remove-then-push must be one step, or two operators requeueing at once would
        // publish the task twice.
        let script = Script::new(
            "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then \
               redis.call('RPUSH', KEYS[2], ARGV[2]) return 1 end return 0",
        );
        let mut conn = self.conn.clone();
        let moved: i64 = script
            .key(&self.dead_letter_key)
            .key(list_key)
            .arg(entry)
            .arg(envelope)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BrokerError::Command {
                op: "requeue_dead_letter",
                source,
            })?;
        Ok(moved == 1)
    }
}

/// The delayed-set member for an envelope: `[list_key, envelope, tag]` as JSON. The tag (or any
/// per-message nonce) keeps two identical envelopes from collapsing into one set member.
pub fn delayed_member(list_key: &str, envelope: &str, tag: &str) -> String {
    serde_json::Value::Array(vec![list_key.into(), envelope.into(), tag.into()]).to_string()
}
