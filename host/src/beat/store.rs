//! Beat's state in Redis: per entry, the newest occurrence enqueued (its last run) and the
//! instant before which occurrences no longer count (first sight, disabled spells, skipped
//! outages), plus the atomic enqueue step (`fire.lua`) that checks the lease and records both.
//!
//! Keys, under the configured prefix (default `taskbox:beat`): `<prefix>:last_run` and
//! `<prefix>:since` are hashes of entry name to milliseconds since the epoch;
//! `<prefix>:lease` and `<prefix>:fence` belong to [`super::leader`].

use std::collections::HashMap;

use jiff::Timestamp;
use redis::Script;
use redis::aio::ConnectionManager;

use super::BeatError;
use super::leader::{fence_key, lease_key};
use crate::broker::message;

/// What beat knows about every entry, read in one round trip per pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Entry → the newest occurrence enqueued.
    pub last_run: HashMap<String, Timestamp>,
    /// Entry → the instant up to which occurrences were passed over or predate the entry.
    pub since: HashMap<String, Timestamp>,
}

impl State {
    /// The instant after which `entry`'s occurrences are still to be handled: the later of
    /// its last run and its since mark; `None` for an entry no leader has seen yet.
    pub fn baseline(&self, entry: &str) -> Option<Timestamp> {
        match (self.last_run.get(entry), self.since.get(entry)) {
            (Some(a), Some(b)) => Some(*a.max(b)),
            (a, b) => a.or(b).copied(),
        }
    }
}

/// What one `fire.lua` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The message is on its queue and the last run recorded.
    Enqueued,
    /// Occurrences up to the instant are marked as passed over.
    Marked,
    /// The occurrence was handled already (by this or an earlier leader); nothing changed.
    AlreadyHandled,
}

/// A message ready to push: the list it goes to, its queue and its Celery envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The Redis list (queue name plus priority suffix).
    pub list_key: String,
    /// The queue name, for the kombu bindings.
    pub queue: String,
    /// The envelope JSON.
    pub envelope: String,
}

/// Beat's Redis state and the enqueue script.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    prefix: String,
    fire: Script,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The state under `prefix` (e.g. `taskbox:beat`).
    pub fn new(conn: ConnectionManager, prefix: &str) -> Store {
        Store {
            conn,
            prefix: prefix.to_string(),
            fire: Script::new(include_str!("scripts/fire.lua")),
        }
    }

    fn last_run_key(&self) -> String {
        format!("{}:last_run", self.prefix)
    }

    fn since_key(&self) -> String {
        format!("{}:since", self.prefix)
    }

    /// Reads every entry's last run and since mark. Unparsable fields are ignored, so a hand
    /// edit cannot stop the schedule.
    pub async fn state(&self) -> Result<State, BeatError> {
        let mut conn = self.conn.clone();
        let (last_run, since): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
            .hgetall(self.last_run_key())
            .hgetall(self.since_key())
            .query_async(&mut conn)
            .await
            .map_err(|source| BeatError::Redis {
                op: "read the last runs",
                source,
            })?;
        let parse = |map: HashMap<String, String>| {
            map.into_iter()
                .filter_map(|(k, v)| {
                    let ms = v.parse::<i64>().ok()?;
                    Some((k, Timestamp::from_millisecond(ms).ok()?))
                })
                .collect()
        };
        Ok(State {
            last_run: parse(last_run),
            since: parse(since),
        })
    }

    /// Enqueues `push` as `entry`'s occurrence `at` (or, with `push = None`, marks everything
    /// up to `at` as passed over), provided this replica still leads with `token`. Returns
    /// [`BeatError::Fenced`] when it does not.
    pub async fn fire(
        &self,
        lease_value: &str,
        token: u64,
        entry: &str,
        at: Timestamp,
        push: Option<&Push>,
    ) -> Result<Outcome, BeatError> {
        let (list_key, queue, envelope) = match push {
            Some(p) => (p.list_key.as_str(), p.queue.as_str(), p.envelope.as_str()),
            // Never touched when only marking; any key name keeps the script's key list fixed.
            None => ("", "", ""),
        };
        let member = format!("{queue}{sep}{sep}{queue}", sep = message::SEP);
        let mut conn = self.conn.clone();
        let result: i64 = self
            .fire
            .key(lease_key(&self.prefix))
            .key(fence_key(&self.prefix))
            .key(self.last_run_key())
            .key(self.since_key())
            .key(if push.is_some() { list_key } else { "-" })
            .key(format!("_kombu.binding.{queue}"))
            .key(format!("_kombu.binding_permanent.{queue}"))
            .arg(lease_value)
            .arg(token)
            .arg(entry)
            .arg(at.as_millisecond())
            .arg(envelope)
            .arg(member)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| BeatError::Redis {
                op: "enqueue a periodic task",
                source,
            })?;
        match result {
            1 => Ok(Outcome::Enqueued),
            2 => Ok(Outcome::Marked),
            0 => Ok(Outcome::AlreadyHandled),
            _ => Err(BeatError::Fenced { token }),
        }
    }
}
