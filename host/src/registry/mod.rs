//! Which component serves which task: the built-ins embedded in the binary plus the plugins the
//! operator configured, each with its grants and default limits, loaded once at start.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;

use crate::builtins;
use crate::config::{Config, PluginConfig};
use crate::runtime::{Capability, DirGrant, Enforcement, Grants, Limits, LoadedComponent, Runtime};

/// Default queues of the built-in tasks, by task-name prefix.
pub const BUILTIN_ROUTES: &[(&str, &str)] = &[
    ("extract.", "pipeline"),
    ("chunking.", "pipeline"),
    ("indexing.", "dataset"),
    ("mail.", "mail"),
    ("retention.", "retention"),
];

/// One loaded plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Its name: the kv namespace and the log tag.
    pub name: String,
    /// The compiled component.
    pub component: Arc<LoadedComponent>,
    /// What it may use.
    pub grants: Arc<Grants>,
    /// Its default limits (config defaults with the plugin's overrides applied).
    pub limits: Limits,
    /// Whether it is embedded in the binary.
    pub builtin: bool,
}

/// Task name → plugin.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    by_task: HashMap<String, Arc<Plugin>>,
}

impl Registry {
    /// Loads the embedded built-ins and every configured plugin. A plugin that fails to load
    /// is a start-up error naming it; two plugins serving one task name is too.
    pub async fn load(runtime: &Runtime, config: &Config) -> anyhow::Result<Registry> {
        let defaults = Limits::default().with(&config.limits);
        let mut registry = Registry::default();
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
            registry.add(Plugin {
                name: (*name).to_string(),
                component,
                grants: Arc::new(Grants::all_capabilities()),
                limits: defaults.clone(),
                builtin: true,
            })?;
        }
        for (name, plugin) in &config.plugins {
            let loaded = load_configured(runtime, name, plugin, &defaults)
                .await
                .with_context(|| {
                    format!(
                        "failed to load plugin '{name}' from {}",
                        plugin.path.display()
                    )
                })?;
            registry.add(loaded)?;
        }
        Ok(registry)
    }

    /// Adds a plugin, refusing a task name that another plugin already serves.
    pub fn add(&mut self, plugin: Plugin) -> anyhow::Result<()> {
        let plugin = Arc::new(plugin);
        for task in &plugin.component.tasks {
            if let Some(other) = self.by_task.get(task) {
                anyhow::bail!(
                    "task '{task}' is served by both plugin '{}' and plugin '{}'; remove one of them",
                    other.name,
                    plugin.name
                );
            }
        }
        for task in &plugin.component.tasks {
            self.by_task.insert(task.clone(), plugin.clone());
        }
        tracing::info!(plugin = %plugin.name, digest = %plugin.component.digest, tasks = ?plugin.component.tasks, "plugin loaded");
        self.plugins.push(plugin);
        Ok(())
    }

    /// The plugin serving `task`.
    pub fn lookup(&self, task: &str) -> Option<&Arc<Plugin>> {
        self.by_task.get(task)
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Every task name served, sorted.
    pub fn task_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_task.keys().cloned().collect();
        names.sort();
        names
    }
}

async fn load_configured(
    runtime: &Runtime,
    name: &str,
    plugin: &PluginConfig,
    defaults: &Limits,
) -> anyhow::Result<Plugin> {
    let bytes = std::fs::read(&plugin.path)
        .with_context(|| format!("failed to read {}", plugin.path.display()))?;
    let component = runtime.load(&bytes).await?;
    let grants = grants_of(plugin)?;
    grants.check_imports(&component.capabilities)?;
    Ok(Plugin {
        name: name.to_string(),
        component,
        grants: Arc::new(grants),
        limits: defaults.with(&plugin.limits),
        builtin: false,
    })
}

/// The grants an operator's plugin configuration describes.
pub fn grants_of(plugin: &PluginConfig) -> anyhow::Result<Grants> {
    let mut capabilities = Vec::new();
    for cap in &plugin.capabilities {
        capabilities.push(Capability::from_interface(cap).with_context(|| {
            format!("unknown capability '{cap}' (known: log, progress, kv, mail, queue)")
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
        dirs,
        env,
        enforcement,
    })
}

/// The queue a task goes to when the sender names none: its configured route, then the
/// built-in route table.
pub fn default_queue(config: &Config, task: &str) -> Option<String> {
    if let Some(q) = config.tasks.get(task).and_then(|t| t.queue.clone()) {
        return Some(q);
    }
    BUILTIN_ROUTES
        .iter()
        .find(|(prefix, _)| task.starts_with(prefix))
        .map(|(_, q)| (*q).to_string())
}
