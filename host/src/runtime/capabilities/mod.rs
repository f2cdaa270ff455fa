//! Host capabilities a component may import, and the per-plugin grants that decide which ones
//! it gets.
//!
//! Each capability is its own module implementing the generated host trait for `HostState`.
//! Where a capability's calls go (Redis in the worker, memory or local files under
//! `taskbox exec`) is a backend chosen by whoever runs the task; see [`Backends`].

pub mod housekeeping;
pub mod kv;
pub mod log;
pub mod mail;
pub mod progress;
pub mod queue;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::SandboxError;

/// A host interface a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `taskbox:task/log`
    Log,
    /// `taskbox:task/progress`
    Progress,
    /// `taskbox:task/kv`
    Kv,
    /// `taskbox:task/mail`
    Mail,
    /// `taskbox:task/queue`
    Queue,
    /// `taskbox:task/housekeeping`
    Housekeeping,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Progress,
        Capability::Kv,
        Capability::Mail,
        Capability::Queue,
        Capability::Housekeeping,
    ];

    /// The WIT interface name, as in `taskbox:task/<name>`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Progress => "progress",
            Capability::Kv => "kv",
            Capability::Mail => "mail",
            Capability::Queue => "queue",
            Capability::Housekeeping => "housekeeping",
        }
    }

    /// The capability an interface name (`log`, `kv`, ...) stands for.
    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.interface())
    }
}

/// A host directory made visible to the guest at `guest` (a WASI preopen; nothing else of the
/// host filesystem is reachable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/data`.
    pub guest: String,
    /// Whether writes, creates and deletes are refused.
    pub read_only: bool,
}

impl DirGrant {
    /// Parses `HOST:GUEST[:ro|:rw]` as `--dir` takes it.
    pub fn parse(spec: &str) -> Result<DirGrant, String> {
        let (rest, read_only) = if let Some(rest) = spec.strip_suffix(":ro") {
            (rest, true)
        } else if let Some(rest) = spec.strip_suffix(":rw") {
            (rest, false)
        } else {
            (spec, false)
        };
        let Some((host, guest)) = rest.rsplit_once(':') else {
            return Err(format!(
                "'{spec}' is not a directory grant: write HOST:GUEST or HOST:GUEST:ro, e.g. ./data:/data:ro"
            ));
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "'{spec}': both the host and the guest path are needed"
            ));
        }
        if !guest.starts_with('/') {
            return Err(format!(
                "'{spec}': the guest path must be absolute, e.g. /data"
            ));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            read_only,
        })
    }
}

/// When a use of an ungranted capability is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse to load a component that imports an ungranted interface (the default: fail fast,
    /// with an error naming the import).
    #[default]
    AtLoad,
    /// Load it; each call of an ungranted interface fails with `CapabilityDenied`.
    AtCall,
}

/// What one plugin may use. Built by the operator's configuration (or by `taskbox exec` flags);
/// a plugin gets the intersection of what its manifest requests and what is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Granted host interfaces.
    pub capabilities: Vec<Capability>,
    /// Queues the plugin may enqueue to (`*` means any); only meaningful with `queue`.
    pub queues: Vec<String>,
    /// Other plugins' kv namespaces it may clean up (`*` means any); only meaningful with
    /// `housekeeping`.
    pub namespaces: Vec<String>,
    /// Preopened directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees, by name and value.
    pub env: Vec<(String, String)>,
    /// When ungranted uses are refused.
    pub enforcement: Enforcement,
}

impl Grants {
    /// Every capability, every queue, no directories and no environment: what a built-in or a
    /// plugin under `taskbox exec` gets by default. No other plugin's kv namespace: that is
    /// granted by name.
    pub fn all_capabilities() -> Grants {
        Grants {
            capabilities: Capability::ALL.to_vec(),
            queues: vec!["*".to_string()],
            ..Grants::default()
        }
    }

    /// Whether `cap` is granted.
    pub fn allows(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// Whether housekeeping of the kv namespace `namespace` is granted.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.allows(Capability::Housekeeping)
            && self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }

    /// Whether enqueueing to `queue` is granted.
    pub fn allows_queue(&self, queue: &str) -> bool {
        self.allows(Capability::Queue) && self.queues.iter().any(|q| q == "*" || q == queue)
    }

    /// Refuses a component whose imports include an ungranted capability (under
    /// [`Enforcement::AtLoad`]), naming the import.
    pub fn check_imports(&self, used: &[Capability]) -> Result<(), SandboxError> {
        if self.enforcement == Enforcement::AtCall {
            return Ok(());
        }
        match used.iter().find(|c| !self.allows(**c)) {
            Some(cap) => Err(SandboxError::CapabilityDenied {
                capability: cap.to_string(),
                detail: format!(
                    "the component imports taskbox:task/{cap}, which this plugin was not granted; grant it in the plugin's configuration or rebuild the plugin without it"
                ),
            }),
            None => Ok(()),
        }
    }
}

/// Where capability calls go. The worker wires Redis-backed implementations; `taskbox exec`
/// wires local ones. Shared by all tasks, so implementations are `Send + Sync`.
#[derive(Clone)]
pub struct Backends {
    /// Key-value storage.
    pub kv: Arc<dyn kv::KvBackend>,
    /// Mail delivery.
    pub mail: Arc<dyn mail::MailBackend>,
    /// Follow-up task publishing.
    pub queue: Arc<dyn queue::QueueBackend>,
    /// Progress reports.
    pub progress: Arc<dyn progress::ProgressSink>,
    /// Sweeping of results and dead letters.
    pub housekeeping: Arc<dyn housekeeping::HousekeepingBackend>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").finish_non_exhaustive()
    }
}

impl Backends {
    /// In-memory backends: kv in memory, mail and enqueued tasks captured for inspection,
    /// progress into the task's log. What tests and `taskbox exec` start from.
    pub fn local() -> Backends {
        Backends {
            kv: Arc::new(kv::MemoryKv::default()),
            mail: Arc::new(mail::CaptureMail::default()),
            queue: Arc::new(queue::CaptureQueue::default()),
            progress: Arc::new(progress::LogProgress),
            housekeeping: Arc::new(housekeeping::NoRecords),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_grants_parse_modes_and_reject_bad_specs() {
        let g = DirGrant::parse("/srv/in:/data:ro").unwrap();
        assert_eq!(g.host, PathBuf::from("/srv/in"));
        assert_eq!(g.guest, "/data");
        assert!(g.read_only);
        assert!(!DirGrant::parse("/srv/out:/out").unwrap().read_only);
        assert!(
            DirGrant::parse("nodelimiter")
                .unwrap_err()
                .contains("HOST:GUEST")
        );
        assert!(
            DirGrant::parse("/x:relative")
                .unwrap_err()
                .contains("absolute")
        );
    }

    #[test]
    fn load_time_enforcement_names_the_ungranted_import() {
        let grants = Grants {
            capabilities: vec![Capability::Log],
            ..Grants::default()
        };
        let err = grants
            .check_imports(&[Capability::Log, Capability::Kv])
            .unwrap_err();
        assert!(err.to_string().contains("taskbox:task/kv"), "{err}");
        let call_time = Grants {
            enforcement: Enforcement::AtCall,
            ..grants
        };
        assert!(call_time.check_imports(&[Capability::Kv]).is_ok());
    }
}
