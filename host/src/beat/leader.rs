//! Leadership among beat replicas: one lease key in Redis with a time to live, taken with a
//! fresh fencing token, extended by compare-and-extend, released on shutdown.
//!
//! The lease decides who *tries* to enqueue; the fencing token is what makes a stale leader
//! harmless: every enqueue (`fire.lua`) re-checks holder and token atomically, so a replica
//! that paused past its lease cannot enqueue after another took over.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use super::BeatError;

/// The lease of one replica: its holder id and the scripts that take, keep and drop the lease.
#[derive(Clone)]
pub struct Lease {
    conn: ConnectionManager,
    key: String,
    fence_key: String,
    holder: String,
    ttl_ms: u64,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

/// The Redis key of the lease under `prefix`.
pub fn lease_key(prefix: &str) -> String {
    format!("{prefix}:lease")
}

/// The Redis key of the fencing counter under `prefix`.
pub fn fence_key(prefix: &str) -> String {
    format!("{prefix}:fence")
}

impl Lease {
    /// A lease for `holder` (unique per process) lasting `ttl` after each acquire or renewal.
    pub fn new(conn: ConnectionManager, prefix: &str, holder: &str, ttl: Duration) -> Lease {
        Lease {
            conn,
            key: lease_key(prefix),
            fence_key: fence_key(prefix),
            holder: holder.to_string(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
            acquire: Script::new(include_str!("scripts/acquire.lua")),
            renew: Script::new(include_str!("scripts/renew.lua")),
            release: Script::new(include_str!("scripts/release.lua")),
        }
    }

    /// This replica's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease key's value while this replica leads with `token`; what `fire.lua` compares.
    pub fn value(&self, token: u64) -> String {
        format!("{token}:{}", self.holder)
    }

    /// Takes the lease if nobody holds it: `Some(token)` when this replica now leads.
    pub async fn acquire(&self) -> Result<Option<u64>, BeatError> {
        let mut conn = self.conn.clone();
        let token: u64 = self
            .acquire
            .key(&self.key)
            .key(&self.fence_key)
            .arg(&self.holder)
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BeatError::Redis {
                op: "acquire the lease",
                source,
            })?;
        Ok((token > 0).then_some(token))
    }

    /// Extends the lease held with `token`; `false` means it was lost (expired or taken).
    pub async fn renew(&self, token: u64) -> Result<bool, BeatError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = self
            .renew
            .key(&self.key)
            .arg(self.value(token))
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BeatError::Redis {
                op: "renew the lease",
                source,
            })?;
        Ok(renewed == 1)
    }

    /// Drops the lease held with `token` so a standby takes over at once; `false` when it was
    /// no longer ours.
    pub async fn release(&self, token: u64) -> Result<bool, BeatError> {
        let mut conn = self.conn.clone();
        let released: i64 = self
            .release
            .key(&self.key)
            .arg(self.value(token))
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BeatError::Redis {
                op: "release the lease",
                source,
            })?;
        Ok(released == 1)
    }
}

/// Who leads now, read from the lease key: `(fencing token, holder id)`, or `None` when nobody
/// holds the lease.
pub async fn current(
    conn: &mut ConnectionManager,
    prefix: &str,
) -> Result<Option<(u64, String)>, BeatError> {
    let value: Option<String> = redis::cmd("GET")
        .arg(lease_key(prefix))
        .query_async(conn)
        .await
        .map_err(|source| BeatError::Redis {
            op: "read the lease",
            source,
        })?;
    Ok(value.and_then(|v| {
        let (token, holder) = v.split_once(':')?;
        Some((token.parse().ok()?, holder.to_string()))
    }))
}
