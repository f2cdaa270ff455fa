//! How a component runs: one shared engine and linker, components compiled once, and a fresh
//! `Store` per task with its limits, grants and capability backends.
//!
//! [`Runtime::load`] turns wasm bytes into a [`LoadedComponent`] (checked, compiled, pre-linked);
//! [`Runtime::run`] runs one task on it and returns a [`TaskReport`] whose outcome is either the
//! task's JSON output or exactly one [`SandboxError`]. Nothing a guest does can make either
//! panic, and the next task on the same runtime runs normally.

pub mod bindings;
pub mod capabilities;
pub mod component;
pub mod engine;
pub mod error;
pub mod limits;
pub mod linker;
pub mod state;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub use capabilities::{Backends, Capability, DirGrant, Enforcement, Grants};
pub use component::{ComponentCache, WIT_VERSION, digest};
pub use engine::{EngineSettings, PagemapScan};
pub use error::{SandboxError, TaskError};
pub use limits::{Limits, LimitsOverride};
pub use state::{CancelToken, TaskMeta, Usage};

use bindings::{PluginPre, WitTaskError};
use error::classify;
use state::{Clock, HostState};

/// How long past the hard limit the host-side backstop waits before abandoning a task that is
/// blocked in a host call (epochs only interrupt guest code).
pub const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// Longest guest error message kept; longer ones are cut so a hostile task cannot make its
/// stored result huge.
pub const MAX_ERROR_MESSAGE: usize = 4096;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeSettings {
    /// Engine and pool sizing.
    pub engine: EngineSettings,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
}

/// The process-wide sandbox: engine, linker, epoch ticker and the components loaded so far.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    pagemap: PagemapScan,
    settings: EngineSettings,
    loaded: Mutex<HashMap<String, Weak<LoadedComponent>>>,
    _ticker: engine::EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("pagemap", &self.pagemap)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A checked, compiled and pre-linked component, shared by every task that runs on it.
pub struct LoadedComponent {
    /// sha256 of the wasm bytes.
    pub digest: String,
    /// The `taskbox:task` version it was built against.
    pub wit_version: String,
    /// The task names its `handler.tasks()` reported.
    pub tasks: Vec<String>,
    /// Taskbox capabilities it imports.
    pub capabilities: Vec<Capability>,
    /// All import names.
    pub imports: Vec<String>,
    /// All export names.
    pub exports: Vec<String>,
    /// Whether the compiled artefact came from the on-disk cache.
    pub from_cache: bool,
    pre: PluginPre<HostState>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .field("wit_version", &self.wit_version)
            .field("tasks", &self.tasks)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// One task to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Who the task is.
    pub meta: Arc<TaskMeta>,
    /// JSON array of positional arguments.
    pub args: String,
    /// JSON object of keyword arguments.
    pub kwargs: String,
    /// The task's resolved limits.
    pub limits: Limits,
    /// The plugin's grants.
    pub grants: Arc<Grants>,
    /// Where capability calls go.
    pub backends: Backends,
    /// Lets the caller stop the task early.
    pub cancel: Option<CancelToken>,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct TaskStats {
    /// Wall time from store creation to the end of the call.
    pub duration: Duration,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory in bytes.
    pub peak_memory: u64,
    /// Per-task allowances used (logs, progress, enqueues, denials, soft limit).
    pub usage: Usage,
}

/// The outcome of one run and what it consumed. Stats are there for failures too.
#[derive(Debug)]
pub struct TaskReport {
    /// The task's JSON output, or the one reason it has none.
    pub outcome: Result<Vec<u8>, SandboxError>,
    /// Measurements.
    pub stats: TaskStats,
}

impl Runtime {
    /// Creates the engine (falling back from `PAGEMAP_SCAN` where the kernel lacks it), the
    /// linker and the epoch ticker.
    pub fn new(settings: RuntimeSettings) -> anyhow::Result<Runtime> {
        let (engine, pagemap) = engine::build(&settings.engine)?;
        let linker = linker::build(&engine).context("failed to build the linker")?;
        let cache = ComponentCache::new(&engine, settings.cache_dir.clone());
        let ticker = engine::EpochTicker::start(engine.clone())?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            pagemap,
            settings: settings.engine,
            loaded: Mutex::new(HashMap::new()),
            _ticker: ticker,
        })
    }

    /// Whether memory resets use the fast `PAGEMAP_SCAN` path.
    pub fn pagemap_scan(&self) -> PagemapScan {
        self.pagemap
    }

    /// Checks, compiles (or loads from cache) and pre-links a component, then asks it which
    /// tasks it serves. Loading the same bytes again returns the same component at no cost
    /// while it is still in use.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedComponent>, SandboxError> {
        let digest = digest(bytes);
        if let Some(existing) = self.lookup(&digest) {
            return Ok(existing);
        }
        // A cached artefact is mapped in a fraction of a millisecond, less than handing the
        // work to a blocking thread would cost; compiling takes tens of milliseconds of CPU,
        // so that goes off the async threads.
        let (component, from_cache) = match self.cache.cached(&self.engine, &digest) {
            Some(component) => (component, true),
            None => {
                let engine = self.engine.clone();
                let cache = self.cache.clone();
                let owned = bytes.to_vec();
                let key = digest.clone();
                let compiled =
                    tokio::task::spawn_blocking(move || cache.compile(&engine, &owned, &key))
                        .await
                        .map_err(|e| SandboxError::Host(format!("compile thread failed: {e}")))??;
                (compiled, false)
            }
        };
        let interface = component::inspect(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::invalid(format!("the component cannot be linked: {e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| {
            SandboxError::invalid(format!("the handler export has the wrong shape: {e:#}"))
        })?;
        let mut loaded = LoadedComponent {
            digest: digest.clone(),
            wit_version: interface.wit_version,
            tasks: Vec::new(),
            capabilities: interface.capabilities,
            imports: interface.imports,
            exports: interface.exports,
            from_cache,
            pre,
        };
        loaded.tasks = self.probe_tasks(&loaded).await?;
        let loaded = Arc::new(loaded);
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, Arc::downgrade(&loaded));
        Ok(loaded)
    }

    fn lookup(&self, digest: &str) -> Option<Arc<LoadedComponent>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|_, weak| weak.strong_count() > 0);
        loaded.get(digest).and_then(Weak::upgrade)
    }

    /// Instantiates the component once under default limits and calls `handler.tasks()`. This
    /// also surfaces a component that traps while instantiating before any task is routed to it.
    async fn probe_tasks(&self, component: &LoadedComponent) -> Result<Vec<String>, SandboxError> {
        let limits = Limits {
            timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let meta = Arc::new(TaskMeta::new("load-probe", "handler.tasks", "", "probe"));
        let grants = Arc::new(Grants::default());
        let (mut store, budget, stderr) =
            self.new_store(meta, &limits, grants, Backends::local(), None)?;
        let result = tokio::time::timeout(limits.timeout + BACKSTOP_GRACE, async {
            let plugin = component.pre.instantiate_async(&mut store).await?;
            plugin.taskbox_task_handler().call_tasks(&mut store).await
        })
        .await;
        let tasks = match result {
            Err(_) => {
                return Err(SandboxError::Timeout {
                    limit: limits.timeout,
                });
            }
            Ok(Err(err)) => {
                let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
                let cause = classify(
                    err,
                    store.data().clock.interrupt.as_ref(),
                    budget,
                    u64::from(limits.max_resources),
                    &stderr,
                );
                return Err(match cause {
                    SandboxError::CapabilityDenied { capability, detail } => {
                        SandboxError::invalid(format!(
                            "handler.tasks() used the {capability} capability ({detail}); it must not call the host"
                        ))
                    }
                    other => other,
                });
            }
            Ok(Ok(tasks)) => tasks,
        };
        if tasks.is_empty() {
            return Err(SandboxError::invalid(
                "handler.tasks() returned no task names",
            ));
        }
        if let Some(bad) = tasks.iter().find(|t| t.trim().is_empty() || t.len() > 256) {
            return Err(SandboxError::invalid(format!(
                "handler.tasks() returned an invalid task name '{bad}'"
            )));
        }
        Ok(tasks)
    }

    fn new_store(
        &self,
        meta: Arc<TaskMeta>,
        limits: &Limits,
        grants: Arc<Grants>,
        backends: Backends,
        cancel: Option<CancelToken>,
    ) -> Result<(wasmtime::Store<HostState>, u64, MemoryOutputPipe), SandboxError> {
        let stderr = MemoryOutputPipe::new(capabilities::storage::STDERR_CAPTURE);
        let wasi = capabilities::storage::wasi_ctx(&grants, &stderr)
            .map_err(|e| SandboxError::Host(format!("{e:#}")))?;
        let now = Instant::now();
        let mut limits = limits.clone();
        // The pool's slot sizes are hard ceilings; the limiter must trip first so the failure is
        // reported as MemoryLimit and not as a failed grow inside the guest.
        limits.memory = limits.memory.min(self.settings.max_memory);
        limits.table_elements = limits
            .table_elements
            .min(u64::from(self.settings.max_table_elements));
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources as usize);
        let state = HostState {
            wasi,
            table,
            limiter: limits::MemoryLimiter::new(&limits),
            task: meta,
            grants,
            backends,
            usage: Usage::default(),
            clock: Clock {
                started: now,
                // A deadline too far to represent is no deadline at all (a century will do).
                hard: now
                    .checked_add(limits.timeout)
                    .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400)),
                timeout: limits.timeout,
                soft: limits.soft_timeout.and_then(|s| now.checked_add(s)),
                interrupt: None,
                cancel,
                last_progress: None,
            },
            limits: limits.clone(),
            span: tracing::Span::current(),
            fuel_budget: limits.fuel.unwrap_or(u64::MAX),
        };
        let budget = limits.fuel.unwrap_or(u64::MAX);
        Ok((
            store::new_store(&self.engine, state, budget),
            budget,
            stderr,
        ))
    }

    /// Runs one task. Call it inside the task's span (`telemetry::task_span`): guest log
    /// records are attached to the current span.
    pub async fn run(&self, component: &LoadedComponent, inv: Invocation) -> TaskReport {
        let started = Instant::now();
        let input = inv.args.len() + inv.kwargs.len();
        if input > inv.limits.max_input {
            return TaskReport {
                outcome: Err(SandboxError::InputTooLarge {
                    size: input,
                    limit: inv.limits.max_input,
                }),
                stats: TaskStats::default(),
            };
        }
        let (mut store, budget, stderr) = match self.new_store(
            inv.meta.clone(),
            &inv.limits,
            inv.grants.clone(),
            inv.backends.clone(),
            inv.cancel.clone(),
        ) {
            Ok(parts) => parts,
            Err(err) => {
                return TaskReport {
                    outcome: Err(err),
                    stats: TaskStats::default(),
                };
            }
        };
        let deadline_ms = SystemTime::now()
            .checked_add(inv.limits.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| d.as_millis() as u64);
        let ctx = bindings::TaskContext {
            id: inv.meta.id.clone(),
            name: inv.meta.name.clone(),
            queue: inv.meta.queue.clone(),
            attempt: inv.meta.attempt,
            deadline_ms,
        };
        let call = bindings::Call {
            args: inv.args,
            kwargs: inv.kwargs,
        };
        let result =
            tokio::time::timeout(inv.limits.timeout.saturating_add(BACKSTOP_GRACE), async {
                let plugin = component.pre.instantiate_async(&mut store).await?;
                plugin
                    .taskbox_task_handler()
                    .call_run(&mut store, &ctx, &call)
                    .await
            })
            .await;

        let data = store.data();
        let outcome = match result {
            Err(_elapsed) => Err(match data.clock.cancel.as_ref().and_then(|c| c.reason()) {
                Some(reason) => SandboxError::Terminated {
                    reason: reason.to_string(),
                },
                None => SandboxError::Timeout {
                    limit: inv.limits.timeout,
                },
            }),
            Ok(Err(err)) => {
                let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
                Err(classify(
                    err,
                    data.clock.interrupt.as_ref(),
                    budget,
                    u64::from(data.limits.max_resources),
                    &stderr,
                ))
            }
            Ok(Ok(Err(task_error))) => Err(match &data.usage.denied {
                // The guest failed after a refused capability call: that refusal is the cause.
                Some((capability, detail)) => SandboxError::CapabilityDenied {
                    capability: capability.clone(),
                    detail: detail.clone(),
                },
                None => SandboxError::Guest(convert_task_error(task_error)),
            }),
            Ok(Ok(Ok(output))) if output.len() > inv.limits.max_output => {
                Err(SandboxError::OutputTooLarge {
                    size: output.len(),
                    limit: inv.limits.max_output,
                })
            }
            Ok(Ok(Ok(output))) => Ok(output),
        };
        let fuel_used = budget
            .saturating_sub(store.get_fuel().unwrap_or(0))
            .saturating_add(data.usage.host_fuel);
        let stats = TaskStats {
            duration: started.elapsed(),
            fuel_used,
            peak_memory: data.limiter.peak(),
            usage: data.usage.clone(),
        };
        TaskReport { outcome, stats }
    }
}

fn convert_task_error(err: WitTaskError) -> TaskError {
    let clip = |s: String| capabilities::log::clip(&s, MAX_ERROR_MESSAGE).into_owned();
    match err {
        WitTaskError::Retry(spec) => TaskError::Retry {
            reason: clip(spec.reason),
            countdown: spec.countdown_ms.map(Duration::from_millis),
        },
        WitTaskError::Reject(message) => TaskError::Reject {
            message: clip(message),
        },
        WitTaskError::Fail(message) => TaskError::Fail {
            message: clip(message),
        },
    }
}
