//! A key-value store private to this plugin (`kv` capability).
//!
//! In the worker it lives in Redis under a namespace only this plugin can reach; under
//! `taskbox exec` it lives in memory or a local file. Errors convert into [`TaskError`] with
//! `?`: an unreachable store becomes a retry, a denial or an oversized value a failure.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TaskError;

/// Why a kv call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The plugin was not granted `kv`.
    Denied(String),
    /// A key or value was over the host's size limit.
    TooLarge(String),
    /// The store could not be reached; a retry may help.
    Unavailable(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Denied(m) => write!(f, "kv denied: {m}"),
            KvError::TooLarge(m) => write!(f, "kv value too large: {m}"),
            KvError::Unavailable(m) => write!(f, "kv unavailable: {m}"),
        }
    }
}

impl std::error::Error for KvError {}

impl From<KvError> for TaskError {
    fn from(err: KvError) -> Self {
        match err {
            KvError::Unavailable(_) => TaskError::retry(err.to_string()),
            KvError::Denied(_) | KvError::TooLarge(_) => TaskError::fail(err.to_string()),
        }
    }
}

/// Reads a value; `None` when the key does not exist.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    imp::get(key)
}

/// Reads several values in one round trip, in the order asked.
pub fn get_many(keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    imp::get_many(keys)
}

/// Writes a value, replacing any old one.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    imp::set(key, value)
}

/// Writes several values in one round trip.
pub fn set_many(entries: &[(&str, &[u8])]) -> Result<(), KvError> {
    imp::set_many(entries)
}

/// Deletes keys and returns how many existed.
pub fn delete(keys: &[&str]) -> Result<u64, KvError> {
    imp::delete(keys)
}

/// One page of keys starting with `prefix`: start at cursor 0 and call again with the returned
/// cursor until it is 0.
pub fn scan(prefix: &str, cursor: u64, count: u32) -> Result<(u64, Vec<String>), KvError> {
    imp::scan(prefix, cursor, count)
}

/// Every key starting with `prefix` (all pages of [`scan`]), sorted.
pub fn keys(prefix: &str) -> Result<Vec<String>, KvError> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let (next, page) = scan(prefix, cursor, 500)?;
        out.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads and deserializes a JSON value; a value that does not parse is a failure.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, TaskError> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| TaskError::fail(format!("kv key '{key}' holds invalid JSON: {err}"))),
    }
}

/// Serializes a value as JSON and writes it.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), TaskError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| TaskError::fail(format!("kv value for '{key}' is not JSON: {err}")))?;
    Ok(set(key, &bytes)?)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::KvError;
    use crate::wit::taskbox::task::kv as wit;

    fn convert(err: wit::KvError) -> KvError {
        match err {
            wit::KvError::Denied(m) => KvError::Denied(m),
            wit::KvError::TooLarge(m) => KvError::TooLarge(m),
            wit::KvError::Unavailable(m) => KvError::Unavailable(m),
        }
    }

    fn owned(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        wit::get(key).map_err(convert)
    }

    pub fn get_many(keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        wit::get_many(&owned(keys)).map_err(convert)
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        wit::set(key, value).map_err(convert)
    }

    pub fn set_many(entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        wit::set_many(&entries).map_err(convert)
    }

    pub fn delete(keys: &[&str]) -> Result<u64, KvError> {
        wit::delete(&owned(keys)).map_err(convert)
    }

    pub fn scan(prefix: &str, cursor: u64, count: u32) -> Result<(u64, Vec<String>), KvError> {
        wit::scan(prefix, cursor, count).map_err(convert)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::KvError;
    use crate::testing::with_state;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        with_state(|s| s.kv_check()?.get(key).cloned().map(Ok).transpose())
    }

    pub fn get_many(keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        with_state(|s| {
            let kv = s.kv_check()?;
            Ok(keys.iter().map(|k| kv.get(*k).cloned()).collect())
        })
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        with_state(|s| {
            s.kv_check()?;
            s.kv.insert(key.to_string(), value.to_vec());
            Ok(())
        })
    }

    pub fn set_many(entries: &[(&str, &[u8])]) -> Result<(), KvError> {
        with_state(|s| {
            s.kv_check()?;
            for (k, v) in entries {
                s.kv.insert(k.to_string(), v.to_vec());
            }
            Ok(())
        })
    }

    pub fn delete(keys: &[&str]) -> Result<u64, KvError> {
        with_state(|s| {
            s.kv_check()?;
            Ok(keys.iter().filter(|k| s.kv.remove(**k).is_some()).count() as u64)
        })
    }

    pub fn scan(prefix: &str, cursor: u64, count: u32) -> Result<(u64, Vec<String>), KvError> {
        with_state(|s| {
            let kv = s.kv_check()?;
            let matching: Vec<&String> = kv.keys().filter(|k| k.starts_with(prefix)).collect();
            let start = usize::try_from(cursor)
                .unwrap_or(usize::MAX)
                .min(matching.len());
            let end = start
                .saturating_add(count.max(1) as usize)
                .min(matching.len());
            let page = matching[start..end].iter().map(|k| k.to_string()).collect();
            let next = if end >= matching.len() { 0 } else { end as u64 };
            Ok((next, page))
        })
    }
}
