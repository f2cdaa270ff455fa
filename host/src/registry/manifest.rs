//! `plugin.toml`: what a third-party plugin says about itself (name, version, tasks with their
//! queues, retry policies and limits, the capabilities it requests, the sha256 it was built
//! as), and how that meets the operator's grant: a plugin gets the intersection of what it
//! requests and what `[plugins.<name>]` grants, and a requested directory the operator did not
//! map refuses the plugin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::{PluginConfig, RetryPolicy};
use crate::runtime::LimitsOverride;
use crate::runtime::{Capability, DirGrant, Enforcement, Grants};

/// The manifest file name inside a plugin's directory.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// Capabilities a plugin without a `[plugins.<name>]` grant gets: the two that reach nothing
/// outside the task itself.
pub const DEFAULT_GRANT: [Capability; 2] = [Capability::Log, Capability::Progress];

/// A plugin's manifest, as its author ships it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: its directory name, kv namespace and log tag.
    pub name: String,
    /// The plugin's own version (free-form, shown by `plugin list`).
    pub version: String,
    /// One line on what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The component file, relative to the manifest. Default: `<name>.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
    /// Lowercase hex sha256 of the component: a different file is refused.
    pub sha256: String,
    /// The tasks it serves; must be exactly what the component reports.
    pub tasks: Vec<ManifestTask>,
    /// What it asks the host for.
    #[serde(default)]
    pub capabilities: Requested,
}

/// One task a plugin serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTask {
    /// The Celery task name.
    pub name: String,
    /// Its default queue (operators may route it elsewhere with `[tasks.<name>].queue`).
    pub queue: String,
    /// Its retry policy, under the operator's `[tasks.<name>].retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Its limits, under the operator's plugin and task limits.
    #[serde(default)]
    pub limits: LimitsOverride,
}

/// The capabilities a plugin requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Requested {
    /// `log`.
    pub log: bool,
    /// `progress`.
    pub progress: bool,
    /// `kv` (its own namespace).
    pub kv: bool,
    /// `mail`.
    pub mail: bool,
    /// `queue`, with the queues it may enqueue to (empty: no `queue`).
    pub queue: Vec<String>,
    /// `housekeeping`, with the other plugins' kv namespaces it cleans (empty: none).
    pub housekeeping: Vec<String>,
    /// Directories it needs, by guest path; the operator maps each to a host directory.
    pub dirs: Vec<RequestedDir>,
    /// Environment variables it reads, by name.
    pub env: Vec<String>,
}

/// A directory a plugin needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedDir {
    /// Where the guest expects it, e.g. `/data`.
    pub path: String,
    /// `"ro"` or `"rw"`. Default: `"ro"`.
    #[serde(default = "read_only")]
    pub access: String,
}

fn read_only() -> String {
    "ro".to_string()
}

impl Manifest {
    /// Reads and checks a manifest file; errors name the file and what is wrong (unknown keys
    /// are named by serde).
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the manifest {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid plugin manifest", path.display()))?;
        manifest
            .check()
            .with_context(|| format!("{} is not a valid plugin manifest", path.display()))?;
        Ok(manifest)
    }

    /// Structural checks serde cannot express.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "name '{}' must be non-empty and use only letters, digits, '-' and '_'",
                self.name
            );
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!(
                "sha256 '{}' is not 64 hex digits; compute it with `sha256sum` or `taskbox plugin info FILE`",
                self.sha256
            );
        }
        if self.tasks.is_empty() {
            anyhow::bail!("no [[tasks]]: a plugin serves at least one task");
        }
        let mut seen = std::collections::BTreeSet::new();
        for task in &self.tasks {
            if task.name.is_empty() || task.queue.is_empty() {
                anyhow::bail!("every [[tasks]] entry needs a name and a queue");
            }
            if !seen.insert(task.name.as_str()) {
                anyhow::bail!("task '{}' is listed twice", task.name);
            }
            if let Some(retry) = &task.retry
                && retry.retry_on.iter().any(|k| k == "Reject")
            {
                anyhow::bail!(
                    "task '{}': retry_on may not contain Reject (a rejected input fails the same way again)",
                    task.name
                );
            }
        }
        for dir in &self.capabilities.dirs {
            if !dir.path.starts_with('/') {
                anyhow::bail!("directory '{}' must be an absolute guest path", dir.path);
            }
            if dir.access != "ro" && dir.access != "rw" {
                anyhow::bail!(
                    "directory '{}': access '{}' is not ro or rw",
                    dir.path,
                    dir.access
                );
            }
        }
        Ok(())
    }

    /// The component file a manifest at `manifest_path` names.
    pub fn component_path(&self, manifest_path: &Path) -> PathBuf {
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        dir.join(
            self.component
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", self.name))),
        )
    }

    /// The capabilities requested, as host capabilities.
    pub fn requested_capabilities(&self) -> Vec<Capability> {
        let r = &self.capabilities;
        let mut caps = Vec::new();
        for (on, cap) in [
            (r.log, Capability::Log),
            (r.progress, Capability::Progress),
            (r.kv, Capability::Kv),
            (r.mail, Capability::Mail),
            (!r.queue.is_empty(), Capability::Queue),
            (!r.housekeeping.is_empty(), Capability::Housekeeping),
        ] {
            if on {
                caps.push(cap);
            }
        }
        caps
    }

    /// Task name → default queue.
    pub fn routes(&self) -> BTreeMap<String, String> {
        self.tasks
            .iter()
            .map(|t| (t.name.clone(), t.queue.clone()))
            .collect()
    }

    /// Compares the tasks the manifest lists with those the component reports.
    pub fn check_tasks(&self, served: &[String]) -> anyhow::Result<()> {
        let listed: std::collections::BTreeSet<&str> =
            self.tasks.iter().map(|t| t.name.as_str()).collect();
        let served: std::collections::BTreeSet<&str> = served.iter().map(String::as_str).collect();
        let missing: Vec<&str> = listed.difference(&served).copied().collect();
        let extra: Vec<&str> = served.difference(&listed).copied().collect();
        if missing.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!(
                "the manifest lists {} but the component does not serve {}",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            ));
        }
        if !extra.is_empty() {
            why.push(format!(
                "the component serves {} which the manifest does not list",
                extra.join(", ")
            ));
        }
        anyhow::bail!(
            "manifest and component disagree: {}; list exactly the component's tasks in [[tasks]]",
            why.join("; ")
        )
    }

    /// What the plugin may use: the intersection of its request and the operator's grant
    /// (`None`: no `[plugins.<name>]` entry, which grants only [`DEFAULT_GRANT`]). A requested
    /// directory the operator did not map, or mapped read-only when the plugin needs writes,
    /// refuses the plugin with the fix spelled out.
    pub fn effective_grants(
        &self,
        grant: Option<&PluginConfig>,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Grants> {
        let requested = self.requested_capabilities();
        let granted: Vec<Capability> = match grant {
            Some(g) => g
                .capabilities
                .iter()
                .filter_map(|c| Capability::from_interface(c))
                .collect(),
            None => DEFAULT_GRANT.to_vec(),
        };
        let capabilities: Vec<Capability> = requested
            .into_iter()
            .filter(|c| granted.contains(c))
            .collect();
        let empty = Vec::new();
        let queues = intersect(
            &self.capabilities.queue,
            grant.map_or(&empty, |g| &g.queues),
        );
        let namespaces = intersect(
            &self.capabilities.housekeeping,
            grant.map_or(&empty, |g| &g.namespaces),
        );
        let operator_dirs = match grant {
            Some(g) => g.dir_grants().map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        let mut dirs = Vec::new();
        for want in &self.capabilities.dirs {
            let Some(have) = operator_dirs.iter().find(|d| d.guest == want.path) else {
                anyhow::bail!(
                    "plugin '{}' requests the directory {} ({}), which the operator did not grant; add \"HOST_DIR:{}:{}\" to dirs in [plugins.{}] of taskbox.toml, or remove it from the manifest",
                    self.name,
                    want.path,
                    want.access,
                    want.path,
                    want.access,
                    self.name
                );
            };
            if want.access == "rw" && have.read_only {
                anyhow::bail!(
                    "plugin '{}' needs {} read-write but the operator granted it read-only; grant \"{}:{}:rw\" or change the manifest to access = \"ro\"",
                    self.name,
                    want.path,
                    have.host.display(),
                    want.path
                );
            }
            dirs.push(DirGrant {
                host: have.host.clone(),
                guest: want.path.clone(),
                read_only: want.access == "ro" || have.read_only,
            });
        }
        let operator_env = grant.map(|g| g.guest_env(host_env)).unwrap_or_default();
        let env = operator_env
            .into_iter()
            .filter(|(name, _)| self.capabilities.env.contains(name))
            .collect();
        let enforcement = match grant.and_then(|g| g.enforcement.as_deref()) {
            Some("call") => Enforcement::AtCall,
            _ => Enforcement::AtLoad,
        };
        Ok(Grants {
            capabilities,
            queues,
            namespaces,
            dirs,
            env,
            enforcement,
        })
    }
}

/// Items in both lists, where `*` on one side stands for everything on the other.
fn intersect(requested: &[String], granted: &[String]) -> Vec<String> {
    let any_requested = requested.iter().any(|q| q == "*");
    let any_granted = granted.iter().any(|q| q == "*");
    match (any_requested, any_granted) {
        (true, true) => vec!["*".to_string()],
        (true, false) => granted.to_vec(),
        (false, true) => requested.to_vec(),
        (false, false) => requested
            .iter()
            .filter(|q| granted.contains(q))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
name = "keywords"
version = "1.0.0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[tasks]]
name = "keywords.extract"
queue = "plugin"

[capabilities]
log = true
kv = true
mail = true
queue = ["plugin", "mail"]
dirs = [{ path = "/data", access = "ro" }]
env = ["API_BASE"]
"#;

    fn manifest() -> Manifest {
        let m: Manifest = toml::from_str(MANIFEST).unwrap();
        m.check().unwrap();
        m
    }

    fn grant(toml_text: &str) -> PluginConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<Manifest>(&format!("{MANIFEST}\nfoo = 1\n")).unwrap_err();
        assert!(err.to_string().contains("foo"), "{err}");
        let err = toml::from_str::<Manifest>(&MANIFEST.replace("env =", "envs =")).unwrap_err();
        assert!(err.to_string().contains("envs"), "{err}");
    }

    #[test]
    fn grants_are_the_intersection_of_request_and_grant() {
        let g = grant(
            r#"
capabilities = ["log", "kv", "queue", "housekeeping"]
queues = ["plugin", "dataset"]
dirs = ["/srv/data:/data", "/srv/other:/other"]
env = ["API_BASE=https://x", "SECRET=s"]
"#,
        );
        let eff = manifest().effective_grants(Some(&g), &|_| None).unwrap();
        assert_eq!(
            eff.capabilities,
            vec![Capability::Log, Capability::Kv, Capability::Queue]
        );
        assert_eq!(eff.queues, vec!["plugin".to_string()]);
        assert!(eff.namespaces.is_empty());
        assert_eq!(eff.dirs.len(), 1);
        assert_eq!(eff.dirs[0].guest, "/data");
        assert!(eff.dirs[0].read_only);
        assert_eq!(
            eff.env,
            vec![("API_BASE".to_string(), "https://x".to_string())]
        );
    }

    #[test]
    fn without_a_grant_only_log_and_progress() {
        let mut m = manifest();
        m.capabilities.dirs.clear();
        let eff = m.effective_grants(None, &|_| None).unwrap();
        assert_eq!(eff.capabilities, vec![Capability::Log]);
        assert!(eff.queues.is_empty());
    }

    #[test]
    fn an_ungranted_directory_refuses_the_plugin() {
        let g = grant(r#"capabilities = ["log"]"#);
        let err = manifest()
            .effective_grants(Some(&g), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/data") && err.contains("did not grant"),
            "{err}"
        );
        let mut m = manifest();
        m.capabilities.dirs[0].access = "rw".into();
        let g = grant(r#"dirs = ["/srv/data:/data:ro"]"#);
        let err = m
            .effective_grants(Some(&g), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("read-only"), "{err}");
    }

    #[test]
    fn task_lists_must_match() {
        let m = manifest();
        assert!(m.check_tasks(&["keywords.extract".into()]).is_ok());
        let err = m
            .check_tasks(&["keywords.other".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("keywords.extract") && err.contains("keywords.other"),
            "{err}"
        );
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let mut m = manifest();
        m.sha256 = "abc".into();
        assert!(m.check().unwrap_err().to_string().contains("64 hex"));
        let mut m = manifest();
        m.name = "../x".into();
        assert!(m.check().unwrap_err().to_string().contains("name"));
        let mut m = manifest();
        m.tasks.push(m.tasks[0].clone());
        assert!(m.check().unwrap_err().to_string().contains("twice"));
    }
}
