//! The worker's capability backends: kv in Redis (one hash per plugin), follow-up tasks
//! published through the broker in Celery's format, progress into the result backend, mail
//! as configured.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::broker::message::{self, NewTask};
use crate::broker::{Broker, now_ms};
use crate::results::{self, ResultStore};
use crate::runtime::capabilities::housekeeping::{HousekeepingBackend, Records, Swept};
use crate::runtime::capabilities::kv::KvBackend;
use crate::runtime::capabilities::mail::{DeliveryError, MailBackend, OutgoingMail};
use crate::runtime::capabilities::progress::ProgressSink;
use crate::runtime::capabilities::queue::{FollowUp, PublishError, QueueBackend};
use crate::runtime::state::TaskMeta;

/// The Redis hash holding a plugin's kv entries. The namespace comes from the host, never the
/// guest, so plugins cannot reach each other's keys.
pub fn kv_key(plugin: &str) -> String {
    format!("taskbox:kv:{plugin}")
}

/// The most bytes one `get_many` may return.
pub const MAX_REPLY: u64 = 64 * 1024 * 1024;

pub use crate::runtime::capabilities::kv::ReplyTooLarge;

/// kv in Redis: one hash per plugin.
#[derive(Clone)]
pub struct RedisKv {
    conn: ConnectionManager,
}

impl RedisKv {
    /// kv on `conn`.
    pub fn new(conn: ConnectionManager) -> RedisKv {
        RedisKv { conn }
    }
}

#[async_trait]
impl KvBackend for RedisKv {
    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        // Ask for the sizes first: a guest asking for one huge value ten thousand times must not
        // make Redis build (and us receive) a reply of gigabytes.
        let mut sizes = redis::pipe();
        for k in keys {
            sizes.cmd("HSTRLEN").arg(kv_key(namespace)).arg(k);
        }
        let lens: Vec<u64> = sizes.query_async(&mut conn).await?;
        let total: u64 = lens.iter().sum();
        if total > MAX_REPLY {
            return Err(ReplyTooLarge {
                total,
                limit: MAX_REPLY,
            }
            .into());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(kv_key(namespace))
            .arg(keys)
            .query_async(&mut conn)
            .await?;
        Ok(values)
    }

    async fn set_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        conn.hset_multiple::<_, _, _, ()>(kv_key(namespace), &entries)
            .await?;
        Ok(())
    }

    async fn delete(&self, namespace: &str, keys: &[String]) -> anyhow::Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        Ok(conn.hdel(kv_key(namespace), keys).await?)
    }

    async fn scan(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: u64,
        count: u32,
    ) -> anyhow::Result<(u64, Vec<String>)> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(prefix));
        let (next, flat): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
            .arg(kv_key(namespace))
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        // HSCAN returns field, value, field, value...: keep the fields (values may be binary).
        Ok((
            next,
            flat.into_iter()
                .step_by(2)
                .map(|f| String::from_utf8_lossy(&f).into_owned())
                .collect(),
        ))
    }
}

/// Escapes Redis glob metacharacters so a guest's prefix matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A task's default queue, if it has a route.
pub type Routes = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Publishes follow-up tasks in Celery's format with the parent's lineage.
pub struct BrokerQueue {
    broker: Broker,
    routes: Routes,
    origin: String,
}

impl BrokerQueue {
    /// Publishes on `broker`; `routes` gives a task's default queue.
    pub fn new(broker: Broker, routes: Routes, origin: String) -> BrokerQueue {
        BrokerQueue {
            broker,
            routes,
            origin,
        }
    }
}

#[async_trait]
impl QueueBackend for BrokerQueue {
    fn route(&self, task: &str) -> String {
        (self.routes)(task).unwrap_or_else(|| "celery".to_string())
    }

    async fn publish(
        &self,
        parent: &TaskMeta,
        queue: &str,
        task: &FollowUp,
    ) -> Result<String, PublishError> {
        let mut new = NewTask::new(task.task.clone(), queue.to_string());
        new.args = task.args.as_array().cloned().unwrap_or_default();
        new.kwargs = task.kwargs.as_object().cloned().unwrap_or_default();
        new.priority = task.priority.unwrap_or(0);
        new.parent_id = Some(parent.id.clone());
        new.root_id = Some(parent.root_id.clone());
        new.origin = self.origin.clone();
        let due = task.countdown.filter(|d| !d.is_zero());
        if let Some(countdown) = due {
            new.eta = jiff::Timestamp::now()
                .checked_add(
                    jiff::SignedDuration::try_from(countdown).unwrap_or(jiff::SignedDuration::ZERO),
                )
                .ok();
        }
        let id = new.id.clone();
        let (list_key, envelope) = message::encode(&new);
        let result = match due {
            Some(countdown) => {
                self.broker
                    .publish_delayed(
                        &list_key,
                        &envelope,
                        now_ms() + countdown.as_millis() as u64,
                    )
                    .await
            }
            None => self.broker.publish(&list_key, &envelope).await,
        };
        result.map_err(|e| PublishError::Unavailable(format!("{e:#}")))?;
        Ok(id)
    }
}

/// Progress reports stored as Celery's custom PROGRESS state.
pub struct ResultProgress {
    results: ResultStore,
}

impl ResultProgress {
    /// Progress into `results`.
    pub fn new(results: ResultStore) -> ResultProgress {
        ResultProgress { results }
    }
}

#[async_trait]
impl ProgressSink for ResultProgress {
    async fn report(&self, task: &TaskMeta, current: u64, total: u64, message: Option<&str>) {
        let meta = results::progress(&task.id, current, total, message);
        if let Err(err) = self.results.store(&task.id, &meta).await {
            tracing::debug!(task.id = %task.id, error = %err, "could not store progress");
        }
    }
}

/// Mail when the operator configured no delivery: every message is a temporary failure, so
/// tasks retry and end in the dead-letter list instead of losing mail.
#[derive(Debug, Default)]
pub struct UnconfiguredMail;

#[async_trait]
impl MailBackend for UnconfiguredMail {
    fn default_from(&self) -> Option<String> {
        None
    }

    async fn deliver(&self, _mail: &OutgoingMail) -> Result<(), DeliveryError> {
        Err(DeliveryError::Temporary(
            "mail delivery is not configured on this worker: set MAIL_TYPE=smtp (with SMTP_SERVER) or MAIL_TYPE=outbox (with MAIL_OUTBOX_DIR)".into(),
        ))
    }
}

/// `housekeeping` in the worker: results in the result backend, dead letters in the broker.
pub struct RedisHousekeeping {
    broker: Broker,
    results: ResultStore,
}

impl RedisHousekeeping {
    /// Sweeps `results` and the broker's dead-letter list.
    pub fn new(broker: Broker, results: ResultStore) -> RedisHousekeeping {
        RedisHousekeeping { broker, results }
    }
}

#[async_trait]
impl HousekeepingBackend for RedisHousekeeping {
    async fn sweep(
        &self,
        records: Records,
        older_than: Duration,
        limit: u32,
        dry_run: bool,
    ) -> anyhow::Result<Swept> {
        let swept = match records {
            Records::Results => self
                .results
                .sweep(older_than, limit, dry_run)
                .await
                .context("failed to sweep stored results")?,
            Records::DeadLetters => self
                .broker
                .sweep_dead_letters(older_than, limit, dry_run)
                .await
                .context("failed to sweep the dead-letter list")?,
        };
        Ok(Swept {
            matched: swept.matched,
            deleted: swept.deleted,
            more: swept.more,
        })
    }
}
