//! `kv`: a key-value store namespaced per plugin. The namespace is chosen by the host from the
//! plugin's name, never by the guest, so one plugin cannot reach another's keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use async_trait::async_trait;

use crate::runtime::bindings::kv::{Host, KvError};
use crate::runtime::state::HostState;

use super::Capability;

/// Longest key accepted.
pub const MAX_KEY: usize = 1024;
/// Largest value accepted.
pub const MAX_VALUE: usize = 8 * 1024 * 1024;
/// Most keys in one batched call.
pub const MAX_BATCH: usize = 10_000;

/// Storage behind `kv`. `namespace` is the plugin name; implementations keep namespaces apart.
#[async_trait]
pub trait KvBackend: Send + Sync {
    /// Values for `keys`, in order.
    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> anyhow::Result<Vec<Option<Vec<u8>>>>;
    /// Writes every entry.
    async fn set_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()>;
    /// Deletes keys; returns how many existed.
    async fn delete(&self, namespace: &str, keys: &[String]) -> anyhow::Result<u64>;
    /// One page of keys with `prefix`, and the cursor of the next page (0 at the end).
    async fn scan(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: u64,
        count: u32,
    ) -> anyhow::Result<(u64, Vec<String>)>;
}

/// Namespaced entries in memory; optionally mirrored to a JSON file after every change.
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
    file: Option<PathBuf>,
}

impl MemoryKv {
    /// A store kept in `path` (created on first write), for `taskbox exec --kv-file`, so state
    /// survives between local runs.
    pub fn open_file(path: &Path) -> anyhow::Result<MemoryKv> {
        let data = match std::fs::read(path) {
            Ok(bytes) => {
                let stored: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_slice(&bytes).with_context(|| {
                        format!("kv file {} is not a taskbox kv file", path.display())
                    })?;
                let mut data = BTreeMap::new();
                for (ns, entries) in stored {
                    let mut decoded = BTreeMap::new();
                    for (k, v) in entries {
                        let v = hex::decode(&v).with_context(|| {
                            format!("kv file {}: value of '{k}' is not hex", path.display())
                        })?;
                        decoded.insert(k, v);
                    }
                    data.insert(ns, decoded);
                }
                data
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to read kv file {}", path.display()));
            }
        };
        Ok(MemoryKv {
            data: Mutex::new(data),
            file: Some(path.to_path_buf()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, Vec<u8>>>> {
        // A poisoned lock only means another task panicked mid-update of a map of plain
        // values; the map itself is still consistent.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, data: &BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> anyhow::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let stored: BTreeMap<&String, BTreeMap<&String, String>> = data
            .iter()
            .map(|(ns, e)| (ns, e.iter().map(|(k, v)| (k, hex::encode(v))).collect()))
            .collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&stored)?)
            .with_context(|| format!("failed to write kv file {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("failed to replace kv file {}", path.display()))
    }
}

#[async_trait]
impl KvBackend for MemoryKv {
    async fn get_many(
        &self,
        namespace: &str,
        keys: &[String],
    ) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        let data = self.lock();
        let ns = data.get(namespace);
        Ok(keys
            .iter()
            .map(|k| ns.and_then(|ns| ns.get(k)).cloned())
            .collect())
    }

    async fn set_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let mut data = self.lock();
        data.entry(namespace.to_string())
            .or_default()
            .extend(entries);
        self.persist(&data)
    }

    async fn delete(&self, namespace: &str, keys: &[String]) -> anyhow::Result<u64> {
        let mut data = self.lock();
        let removed = match data.get_mut(namespace) {
            Some(ns) => keys.iter().filter(|k| ns.remove(*k).is_some()).count() as u64,
            None => 0,
        };
        self.persist(&data)?;
        Ok(removed)
    }

    async fn scan(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: u64,
        count: u32,
    ) -> anyhow::Result<(u64, Vec<String>)> {
        let data = self.lock();
        let Some(ns) = data.get(namespace) else {
            return Ok((0, Vec::new()));
        };
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut page: Vec<String> = ns
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .skip(skip)
            .take(count as usize + 1)
            .map(|(k, _)| k.clone())
            .collect();
        let next = if page.len() > count as usize {
            page.pop();
            cursor + count as u64
        } else {
            0
        };
        Ok((next, page))
    }
}

impl HostState {
    /// `Err` (returned to the guest) when kv is not granted or the batch is oversized.
    fn kv_check(
        &mut self,
        keys: usize,
        key_bytes: impl Iterator<Item = usize>,
    ) -> Result<(), KvError> {
        if !self.grants.allows(Capability::Kv) {
            let detail = "the plugin was not granted kv";
            self.record_denial("kv", detail);
            return Err(KvError::Denied(detail.into()));
        }
        if keys > MAX_BATCH {
            return Err(KvError::TooLarge(format!(
                "{keys} keys in one call; the limit is {MAX_BATCH}"
            )));
        }
        for len in key_bytes {
            if len > MAX_KEY || len == 0 {
                return Err(KvError::TooLarge(format!(
                    "a key of {len} bytes; keys must be 1 to {MAX_KEY} bytes"
                )));
            }
        }
        Ok(())
    }

    fn kv_namespace(&self) -> String {
        self.task.plugin.clone()
    }
}

/// A read whose reply would exceed the backend's size cap.
#[derive(Debug, thiserror::Error)]
#[error("the values asked for total {total} bytes; one call may return at most {limit}")]
pub struct ReplyTooLarge {
    /// Bytes the reply would have had.
    pub total: u64,
    /// The cap.
    pub limit: u64,
}

fn unavailable(err: anyhow::Error) -> KvError {
    match err.downcast_ref::<ReplyTooLarge>() {
        Some(too_large) => KvError::TooLarge(too_large.to_string()),
        None => KvError::Unavailable(format!("{err:#}")),
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        self.charge_host_call()?;
        if let Err(e) = self.kv_check(1, std::iter::once(key.len())) {
            return Ok(Err(e));
        }
        let ns = self.kv_namespace();
        Ok(self
            .backends
            .kv
            .get_many(&ns, std::slice::from_ref(&key))
            .await
            .map(|mut v| v.pop().flatten())
            .map_err(unavailable))
    }

    async fn get_many(
        &mut self,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<Vec<u8>>>, KvError>> {
        self.charge_host_call()?;
        if let Err(e) = self.kv_check(keys.len(), keys.iter().map(String::len)) {
            return Ok(Err(e));
        }
        let ns = self.kv_namespace();
        Ok(self
            .backends
            .kv
            .get_many(&ns, &keys)
            .await
            .map_err(unavailable))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), KvError>> {
        self.set_many(vec![(key, value)]).await
    }

    async fn set_many(
        &mut self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), KvError>> {
        self.charge_host_call()?;
        if let Err(e) = self.kv_check(entries.len(), entries.iter().map(|(k, _)| k.len())) {
            return Ok(Err(e));
        }
        if let Some((k, v)) = entries.iter().find(|(_, v)| v.len() > MAX_VALUE) {
            return Ok(Err(KvError::TooLarge(format!(
                "value of '{}' is {} bytes; the limit is {MAX_VALUE}",
                super::log::clip(k, 64),
                v.len()
            ))));
        }
        let ns = self.kv_namespace();
        Ok(self
            .backends
            .kv
            .set_many(&ns, entries)
            .await
            .map_err(unavailable))
    }

    async fn delete(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<u64, KvError>> {
        self.charge_host_call()?;
        if let Err(e) = self.kv_check(keys.len(), keys.iter().map(String::len)) {
            return Ok(Err(e));
        }
        let ns = self.kv_namespace();
        Ok(self
            .backends
            .kv
            .delete(&ns, &keys)
            .await
            .map_err(unavailable))
    }

    async fn scan(
        &mut self,
        prefix: String,
        cursor: u64,
        count: u32,
    ) -> wasmtime::Result<Result<(u64, Vec<String>), KvError>> {
        self.charge_host_call()?;
        if let Err(e) = self.kv_check(0, std::iter::empty()) {
            return Ok(Err(e));
        }
        let ns = self.kv_namespace();
        // Clamp the guest-chosen page size: a huge count must not become a huge host reply.
        let count = count.clamp(1, 1000);
        Ok(self
            .backends
            .kv
            .scan(&ns, &prefix, cursor, count)
            .await
            .map_err(unavailable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_kv_keeps_namespaces_apart_and_pages_scans() {
        let kv = MemoryKv::default();
        let entries = (0..25)
            .map(|i| (format!("doc/{i:02}"), vec![i as u8]))
            .collect();
        kv.set_many("a", entries).await.unwrap();
        kv.set_many("b", vec![("doc/00".into(), vec![9])])
            .await
            .unwrap();
        assert_eq!(
            kv.get_many("b", &["doc/00".into()]).await.unwrap(),
            vec![Some(vec![9])]
        );
        assert_eq!(
            kv.get_many("c", &["doc/00".into()]).await.unwrap(),
            vec![None]
        );

        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let (next, page) = kv.scan("a", "doc/", cursor, 10).await.unwrap();
            assert!(page.len() <= 10);
            seen.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(
            kv.delete("a", &["doc/00".into(), "nope".into()])
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn file_kv_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.json");
        let kv = MemoryKv::open_file(&path).unwrap();
        kv.set_many("p", vec![("k".into(), b"v".to_vec())])
            .await
            .unwrap();
        drop(kv);
        let kv = MemoryKv::open_file(&path).unwrap();
        assert_eq!(
            kv.get_many("p", &["k".into()]).await.unwrap(),
            vec![Some(b"v".to_vec())]
        );
    }
}
