//! The plugin directory: `DIR/<name>/plugin.toml` beside its component. Scanning reads the
//! manifests and hashes the components; loading runs every load-time check (manifest shape,
//! digest pin, WIT version, task list agreement, capability grants) and names the first one
//! that fails. Entries whose name starts with `.` are staging areas of `plugin add` and are
//! skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::manifest::{MANIFEST_FILE, Manifest};
use super::{Origin, Plugin};
use crate::config::Config;
use crate::runtime::{Limits, Runtime, digest};

/// One plugin directory as found on disk, read but not yet loaded.
#[derive(Debug, Clone)]
pub struct Found {
    /// The directory's name (the plugin's name when its manifest agrees).
    pub name: String,
    /// The plugin's directory.
    pub dir: PathBuf,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, String>,
    /// The component's bytes and sha256, or why they could not be read.
    pub component: Result<(Arc<Vec<u8>>, String), String>,
}

/// Every plugin directory under `root`, sorted by name. A missing `root` is an error naming
/// it; a broken entry is returned with its error so the caller can report it.
pub fn scan(root: &Path) -> anyhow::Result<Vec<Found>> {
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("failed to read the plugin directory {}", root.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry
            .with_context(|| format!("failed to read the plugin directory {}", root.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        found.push(read_one(&entry.path(), name));
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Reads one plugin directory.
pub fn read_one(dir: &Path, name: String) -> Found {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::read(&manifest_path).map_err(|e| format!("{e:#}"));
    let component = match &manifest {
        Ok(m) => {
            let path = m.component_path(&manifest_path);
            std::fs::read(&path)
                .map(|bytes| {
                    let d = digest(&bytes);
                    (Arc::new(bytes), d)
                })
                .map_err(|e| format!("failed to read the component {}: {e}", path.display()))
        }
        Err(_) => Err("no readable manifest".to_string()),
    };
    Found {
        name,
        dir: dir.to_path_buf(),
        manifest,
        component,
    }
}

/// Whether `found` is exactly what `plugin` was loaded from (same manifest, same component).
pub fn unchanged(plugin: &Plugin, found: &Found) -> bool {
    match (&found.manifest, &found.component) {
        (Ok(m), Ok((_, d))) => plugin.manifest.as_ref() == Some(m) && plugin.component.digest == *d,
        _ => false,
    }
}

/// Loads a found plugin with every load-time check, against the operator's configuration.
pub async fn load(runtime: &Runtime, config: &Config, found: &Found) -> anyhow::Result<Plugin> {
    let manifest = found.manifest.clone().map_err(anyhow::Error::msg)?;
    let (bytes, actual) = found.component.clone().map_err(anyhow::Error::msg)?;
    verify(
        runtime,
        config,
        &manifest,
        &bytes,
        &actual,
        Some(&found.name),
    )
    .await
    .map(|(component, grants)| Plugin {
        name: manifest.name.clone(),
        version: Some(manifest.version.clone()),
        component,
        grants: Arc::new(grants),
        limits: Limits::default().with(&config.limits).with(
            &config
                .plugins
                .get(&manifest.name)
                .map(|p| p.limits.clone())
                .unwrap_or_default(),
        ),
        origin: Origin::Dir(found.dir.clone()),
        manifest: Some(manifest),
    })
    .with_context(|| format!("plugin '{}' in {}", found.name, found.dir.display()))
}

/// Every load-time check of a manifest and its component bytes: the name matches the
/// directory, the digest matches the pin, the component compiles and targets a compatible
/// WIT version, it serves exactly the listed tasks, and it imports nothing it was not granted
/// (unless the operator chose call-time enforcement). Returns the component and the grants.
pub async fn verify(
    runtime: &Runtime,
    config: &Config,
    manifest: &Manifest,
    bytes: &[u8],
    actual_digest: &str,
    dir_name: Option<&str>,
) -> anyhow::Result<(Arc<crate::runtime::LoadedComponent>, crate::runtime::Grants)> {
    if let Some(dir_name) = dir_name
        && dir_name != manifest.name
    {
        anyhow::bail!(
            "the manifest names the plugin '{}' but its directory is '{dir_name}'; rename one so they agree",
            manifest.name
        );
    }
    if !manifest.sha256.eq_ignore_ascii_case(actual_digest) {
        anyhow::bail!(
            "digest mismatch: the manifest pins sha256 {} but the component's is {actual_digest}; the file is corrupt or not the one the manifest was written for",
            manifest.sha256
        );
    }
    if crate::builtins::is_builtin(&manifest.name) {
        anyhow::bail!(
            "'{}' is the name of a built-in component; choose another plugin name",
            manifest.name
        );
    }
    let component = runtime.load(bytes).await?;
    manifest.check_tasks(&component.tasks)?;
    let requested = manifest.requested_capabilities();
    if let Some(cap) = component
        .capabilities
        .iter()
        .find(|c| !requested.contains(c))
    {
        anyhow::bail!(
            "manifest and component disagree: the component imports taskbox:task/{cap} but the manifest does not request it; add it under [capabilities]"
        );
    }
    let grants = manifest.effective_grants(config.plugins.get(&manifest.name), &|name| {
        std::env::var(name).ok()
    })?;
    grants.check_imports(&component.capabilities)?;
    Ok((component, grants))
}

/// The default queue the manifest of some plugin under `root` gives `task` (for senders that
/// do not run a worker).
pub fn manifest_route(root: &Path, task: &str) -> Option<String> {
    let entries = std::fs::read_dir(root).ok()?;
    for entry in entries.flatten() {
        let manifest_path = entry.path().join(MANIFEST_FILE);
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(m) = Manifest::read(&manifest_path)
            && let Some(t) = m.tasks.iter().find(|t| t.name == task)
        {
            return Some(t.queue.clone());
        }
    }
    None
}

/// A cheap summary of the directory's state (every file's path, size and modification time),
/// so polling notices a change without hashing components.
pub fn fingerprint(root: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}
