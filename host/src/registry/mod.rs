//! Which component serves which task: the built-ins embedded in the binary, the plugins the
//! operator configured by path, and the third-party plugins of the plugin directory, each
//! with its grants, routes and task defaults.
//!
//! A [`Registry`] is an immutable snapshot. The worker holds it in a [`RegistryHandle`] and
//! swaps in a new snapshot when the plugin directory changes; a task looks its plugin up once
//! and keeps that `Arc`, so a task already running finishes on the version it started with.

pub mod commands;
pub mod dir;
pub mod manifest;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use serde::Serialize;

use crate::builtins;
use crate::config::{Config, PluginConfig, RetryPolicy};
use crate::runtime::{Capability, DirGrant, Enforcement, Grants, Limits, LoadedComponent, Runtime};

pub use manifest::Manifest;

/// Default queues of the built-in tasks, by task-name prefix.
pub const BUILTIN_ROUTES: &[(&str, &str)] = &[
    ("extract.", "pipeline"),
    ("chunking.", "pipeline"),
    ("indexing.", "dataset"),
    ("mail.", "mail"),
    ("retention.", "retention"),
];

/// kv namespaces each built-in may clean through `housekeeping` without being granted them:
/// retention removes the keys of datasets `indexing` has deleted.
const BUILTIN_NAMESPACES: &[(&str, &str)] = &[("retention", "indexing")];

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Origin {
    /// Embedded in the binary.
    Builtin,
    /// A `[plugins.<name>] path = ...` entry.
    Config(PathBuf),
    /// A directory of the plugin directory.
    Dir(PathBuf),
}

/// One loaded plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Its name: the kv namespace and the log tag.
    pub name: String,
    /// Its manifest version (`None` for built-ins and configured plugins).
    pub version: Option<String>,
    /// The compiled component.
    pub component: Arc<LoadedComponent>,
    /// What it may use.
    pub grants: Arc<Grants>,
    /// Its default limits (config defaults with the plugin's overrides applied).
    pub limits: Limits,
    /// Where it came from.
    pub origin: Origin,
    /// Its manifest, for plugins of the plugin directory.
    pub manifest: Option<Manifest>,
}

impl Plugin {
    /// Whether it is embedded in the binary.
    pub fn is_builtin(&self) -> bool {
        self.origin == Origin::Builtin
    }

    /// The limits `task` runs under: the manifest's task limits under the operator's.
    pub fn limits_for(&self, config: &Config, task: &str) -> Limits {
        let from_manifest = self
            .manifest_task(task)
            .map(|t| t.limits.clone())
            .unwrap_or_default();
        config.limits_for(&from_manifest, Some(&self.name), task)
    }

    /// The retry policy of `task`: the operator's `[tasks.<name>].retry`, else the manifest's,
    /// else the default.
    pub fn retry_policy(&self, config: &Config, task: &str) -> RetryPolicy {
        config
            .tasks
            .get(task)
            .and_then(|t| t.retry.clone())
            .or_else(|| self.manifest_task(task).and_then(|t| t.retry.clone()))
            .unwrap_or_default()
    }

    fn manifest_task(&self, task: &str) -> Option<&manifest::ManifestTask> {
        self.manifest
            .as_ref()
            .and_then(|m| m.tasks.iter().find(|t| t.name == task))
    }
}

/// What `plugin list` shows for one plugin: loaded, or refused with the reason (while an older
/// version may keep serving).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginStatus {
    /// The plugin (directory) name.
    pub name: String,
    /// The serving version, if any.
    pub version: Option<String>,
    /// The serving component's sha256, if any.
    pub digest: Option<String>,
    /// Tasks it serves.
    pub tasks: Vec<String>,
    /// Granted capabilities (interface names).
    pub capabilities: Vec<String>,
    /// Where it came from.
    pub origin: Origin,
    /// `loaded`, `failed` (nothing serving) or `stale` (an older version serves; the newer
    /// one was refused).
    pub state: String,
    /// Why the last load attempt failed.
    pub error: Option<String>,
}

/// Task name → plugin, at one instant.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    by_task: HashMap<String, Arc<Plugin>>,
    failures: BTreeMap<String, (Origin, String)>,
}

impl Registry {
    /// Loads the embedded built-ins, every configured plugin and every plugin of the plugin
    /// directory. A configured plugin that fails to load is a start-up error naming it; a
    /// plugin-directory plugin that fails is logged and listed as failed, and the worker
    /// serves the rest.
    pub async fn load(runtime: &Runtime, config: &Config) -> anyhow::Result<Registry> {
        let mut registry = Registry::default();
        registry.load_fixed(runtime, config).await?;
        if let Some(dir) = &config.worker.plugins_dir {
            for found in dir::scan(dir)? {
                let name = found.name.clone();
                let path = found.dir.clone();
                match dir::load(runtime, config, &found).await {
                    Ok(plugin) => {
                        if let Err(err) = registry.add(plugin) {
                            registry.fail(&name, Origin::Dir(path), &err);
                        }
                    }
                    Err(err) => registry.fail(&name, Origin::Dir(path), &err),
                }
            }
        }
        Ok(registry)
    }

    /// The built-ins and the `[plugins.*] path = ...` plugins: what never changes while the
    /// worker runs.
    async fn load_fixed(&mut self, runtime: &Runtime, config: &Config) -> anyhow::Result<()> {
        let defaults = Limits::default().with(&config.limits);
        for (name, bytes) in builtins::BUILTINS {
            let Some(bytes) = bytes else {
                tracing::warn!(
                    builtin = name,
                    "built-in component not embedded in this build (run `just build`); its tasks are unavailable"
                );
                continue;
            };
            let component = runtime
                .load(bytes)
                .await
                .with_context(|| format!("failed to load the built-in component '{name}'"))?;
            let grants = builtin_grants(name, config.plugins.get(*name))?;
            self.add(Plugin {
                name: (*name).to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
                component,
                grants: Arc::new(grants),
                limits: defaults.with(
                    &config
                        .plugins
                        .get(*name)
                        .map(|p| p.limits.clone())
                        .unwrap_or_default(),
                ),
                origin: Origin::Builtin,
                manifest: None,
            })?;
        }
        for (name, plugin) in &config.plugins {
            let Some(path) = &plugin.path else {
                continue;
            };
            let loaded = load_configured(runtime, name, path, plugin, &defaults)
                .await
                .with_context(|| {
                    format!("failed to load plugin '{name}' from {}", path.display())
                })?;
            self.add(loaded)?;
        }
        Ok(())
    }

    /// Adds a plugin, refusing a task name that another plugin already serves.
    pub fn add(&mut self, plugin: Plugin) -> anyhow::Result<()> {
        let plugin = Arc::new(plugin);
        self.add_existing(plugin.clone())?;
        tracing::info!(plugin = %plugin.name, version = ?plugin.version, digest = %plugin.component.digest, tasks = ?plugin.component.tasks, "plugin loaded");
        self.failures.remove(&plugin.name);
        Ok(())
    }

    /// Records a plugin that could not be loaded.
    fn fail(&mut self, name: &str, origin: Origin, err: &anyhow::Error) {
        tracing::error!(plugin = name, error = %format_args!("{err:#}"), "plugin refused");
        self.failures
            .insert(name.to_string(), (origin, format!("{err:#}")));
    }

    /// The plugin serving `task`.
    pub fn lookup(&self, task: &str) -> Option<&Arc<Plugin>> {
        self.by_task.get(task)
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The loaded plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Every task name served, sorted.
    pub fn task_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_task.keys().cloned().collect();
        names.sort();
        names
    }

    /// The default queue a plugin's manifest gives `task`.
    pub fn manifest_route(&self, task: &str) -> Option<String> {
        let plugin = self.lookup(task)?;
        plugin
            .manifest
            .as_ref()?
            .tasks
            .iter()
            .find(|t| t.name == task)
            .map(|t| t.queue.clone())
    }

    /// One row per plugin, loaded or refused, sorted by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        let mut rows: Vec<PluginStatus> = self
            .plugins
            .iter()
            .map(|p| {
                let error = self.failures.get(&p.name).map(|(_, e)| e.clone());
                let mut tasks = p.component.tasks.clone();
                tasks.sort();
                PluginStatus {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    digest: Some(p.component.digest.clone()),
                    tasks,
                    capabilities: p
                        .grants
                        .capabilities
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                    origin: p.origin.clone(),
                    state: if error.is_some() { "stale" } else { "loaded" }.to_string(),
                    error,
                }
            })
            .collect();
        for (name, (origin, error)) in &self.failures {
            if self.plugin(name).is_none() {
                rows.push(PluginStatus {
                    name: name.clone(),
                    version: None,
                    digest: None,
                    tasks: Vec::new(),
                    capabilities: Vec::new(),
                    origin: origin.clone(),
                    state: "failed".to_string(),
                    error: Some(error.clone()),
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }
}

/// The registry a running worker serves from, replaced whole when plugins change.
#[derive(Debug)]
pub struct RegistryHandle {
    current: RwLock<Arc<Registry>>,
}

impl RegistryHandle {
    /// Starts serving `registry`.
    pub fn new(registry: Registry) -> RegistryHandle {
        RegistryHandle {
            current: RwLock::new(Arc::new(registry)),
        }
    }

    /// The registry now. Cheap: one `Arc` clone under a read lock.
    pub fn current(&self) -> Arc<Registry> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the plugin directory and swaps in the result: unchanged plugins are kept as
    /// they are, changed ones are loaded anew, and a plugin whose new version fails to load
    /// keeps serving its old version (listed as `stale` with the error). Returns how many
    /// plugins were added, replaced or removed.
    pub async fn reload(&self, runtime: &Runtime, config: &Config) -> anyhow::Result<usize> {
        let Some(dir) = &config.worker.plugins_dir else {
            return Ok(0);
        };
        let old = self.current();
        let found = dir::scan(dir)?;
        let mut next = Registry::default();
        for plugin in old.plugins() {
            if !matches!(plugin.origin, Origin::Dir(_)) {
                next.add_existing(plugin.clone())?;
            }
        }
        let mut changes = 0;
        for entry in &found {
            let previous = old
                .plugin(&entry.name)
                .filter(|p| matches!(p.origin, Origin::Dir(_)));
            if let Some(prev) = previous
                && dir::unchanged(prev, entry)
            {
                if let Err(err) = next.add_existing(prev.clone()) {
                    next.fail(&entry.name, Origin::Dir(entry.dir.clone()), &err);
                }
                continue;
            }
            match dir::load(runtime, config, entry).await {
                Ok(plugin) => match next.add(plugin) {
                    Ok(()) => {
                        changes += 1;
                        tracing::info!(plugin = %entry.name, "plugin {}", if previous.is_some() { "replaced" } else { "added" });
                    }
                    Err(err) => {
                        if let Some(prev) = previous {
                            let _ = next.add_existing(prev.clone());
                        }
                        next.fail(&entry.name, Origin::Dir(entry.dir.clone()), &err);
                    }
                },
                Err(err) => {
                    if let Some(prev) = previous {
                        tracing::warn!(plugin = %entry.name, "new version refused; the previous version keeps serving");
                        let _ = next.add_existing(prev.clone());
                    }
                    next.fail(&entry.name, Origin::Dir(entry.dir.clone()), &err);
                }
            }
        }
        for plugin in old.plugins() {
            if matches!(plugin.origin, Origin::Dir(_))
                && !found.iter().any(|f| f.name == plugin.name)
            {
                changes += 1;
                tracing::info!(plugin = %plugin.name, "plugin removed; its queued tasks wait for a worker that serves them");
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(changes)
    }
}

impl Registry {
    /// Carries an already loaded plugin into this snapshot, refusing a task name that another
    /// plugin already serves.
    fn add_existing(&mut self, plugin: Arc<Plugin>) -> anyhow::Result<()> {
        if let Some((task, other)) = plugin
            .component
            .tasks
            .iter()
            .find_map(|t| self.by_task.get(t).map(|o| (t, o)))
        {
            anyhow::bail!(
                "task '{task}' is served by both plugin '{}' and plugin '{}'; remove one of them",
                other.name,
                plugin.name
            );
        }
        for task in &plugin.component.tasks {
            self.by_task.insert(task.clone(), plugin.clone());
        }
        self.plugins.push(plugin);
        Ok(())
    }
}

/// A built-in's grants: every capability (they are ours), plus the directories, environment
/// and namespaces its `[plugins.<name>]` entry grants; a `capabilities` list there narrows it.
fn builtin_grants(name: &str, entry: Option<&PluginConfig>) -> anyhow::Result<Grants> {
    let mut grants = Grants::all_capabilities();
    grants.namespaces = BUILTIN_NAMESPACES
        .iter()
        .filter(|(b, _)| *b == name)
        .map(|(_, ns)| (*ns).to_string())
        .collect();
    if let Some(entry) = entry {
        let configured = grants_of(entry)?;
        if !entry.capabilities.is_empty() {
            grants.capabilities = configured.capabilities;
        }
        if !entry.queues.is_empty() {
            grants.queues = configured.queues;
        }
        if !entry.namespaces.is_empty() {
            grants.namespaces = configured.namespaces;
        }
        grants.dirs = configured.dirs;
        grants.env = configured.env;
    }
    Ok(grants)
}

async fn load_configured(
    runtime: &Runtime,
    name: &str,
    path: &std::path::Path,
    plugin: &PluginConfig,
    defaults: &Limits,
) -> anyhow::Result<Plugin> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let component = runtime.load(&bytes).await?;
    let grants = grants_of(plugin)?;
    grants.check_imports(&component.capabilities)?;
    Ok(Plugin {
        name: name.to_string(),
        version: None,
        component,
        grants: Arc::new(grants),
        limits: defaults.with(&plugin.limits),
        origin: Origin::Config(path.to_path_buf()),
        manifest: None,
    })
}

/// The grants an operator's plugin configuration describes.
pub fn grants_of(plugin: &PluginConfig) -> anyhow::Result<Grants> {
    let mut capabilities = Vec::new();
    for cap in &plugin.capabilities {
        capabilities.push(Capability::from_interface(cap).with_context(|| {
            format!(
                "unknown capability '{cap}' (known: log, progress, kv, mail, queue, housekeeping)"
            )
        })?);
    }
    let dirs = plugin
        .dirs
        .iter()
        .map(|d| DirGrant::parse(d).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut env = Vec::new();
    for spec in &plugin.env {
        match spec.split_once('=') {
            Some((k, v)) => env.push((k.to_string(), v.to_string())),
            None => {
                let value = std::env::var(spec).with_context(|| {
                    format!("granted environment variable {spec} is not set for the worker")
                })?;
                env.push((spec.clone(), value));
            }
        }
    }
    let enforcement = match plugin.enforcement.as_deref() {
        None | Some("load") => Enforcement::AtLoad,
        Some("call") => Enforcement::AtCall,
        Some(other) => anyhow::bail!("enforcement '{other}' is not one of load, call"),
    };
    Ok(Grants {
        capabilities,
        queues: plugin.queues.clone(),
        namespaces: plugin.namespaces.clone(),
        dirs,
        env,
        enforcement,
    })
}

/// The queue a task goes to when the sender names none: its configured route, then the route
/// `manifest_route` gives (a plugin manifest's), then the built-in route table. One order for
/// every sender: the worker passes its loaded registry, the CLI reads the plugin directory.
pub fn route_with(
    config: &Config,
    task: &str,
    manifest_route: impl FnOnce(&str) -> Option<String>,
) -> Option<String> {
    config
        .tasks
        .get(task)
        .and_then(|t| t.queue.clone())
        .or_else(|| manifest_route(task))
        .or_else(|| builtin_route(task))
}

/// [`route_with`] for a sender without a running worker: manifests are read from the plugin
/// directory.
pub fn default_queue(config: &Config, task: &str) -> Option<String> {
    route_with(config, task, |task| {
        config
            .worker
            .plugins_dir
            .as_deref()
            .and_then(|dir| dir::manifest_route(dir, task))
    })
}

/// The built-in route table's queue for `task`.
pub fn builtin_route(task: &str) -> Option<String> {
    BUILTIN_ROUTES
        .iter()
        .find(|(prefix, _)| task.starts_with(prefix))
        .map(|(_, q)| (*q).to_string())
}
