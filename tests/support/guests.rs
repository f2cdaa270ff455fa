//! Guest components built from source by `just build-wasm`, and a runtime to run them on.

use std::path::PathBuf;
use std::sync::Arc;

use taskbox::runtime::{
    Backends, Grants, Invocation, Limits, LoadedComponent, Runtime, RuntimeSettings, TaskMeta,
    TaskReport,
};

/// The path of a guest built for wasm32-wasip2 with the `guest` profile, e.g.
/// `guest_path("taskbox_guest_hostile")`.
pub fn guest_path(crate_name: &str) -> PathBuf {
    let path = crate::target_dir()
        .join("wasm32-wasip2")
        .join("guest")
        .join(format!("{crate_name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just build-wasm` first (guests are built from source, never checked in)",
        path.display()
    );
    path
}

/// The bytes of a built guest.
pub fn guest_bytes(crate_name: &str) -> Vec<u8> {
    std::fs::read(guest_path(crate_name)).expect("guest wasm is readable")
}

/// A runtime with a private compiled-component cache, as a worker would have.
pub fn runtime(cache: &std::path::Path) -> Runtime {
    runtime_keeping(cache, None)
}

/// [`runtime`] keeping `keep_resident` bytes of each slot's memory resident (`None`: the
/// default).
pub fn runtime_keeping(cache: &std::path::Path, keep_resident: Option<u64>) -> Runtime {
    Runtime::new(RuntimeSettings {
        engine: taskbox::runtime::EngineSettings {
            max_live_stores: 16,
            keep_resident,
            ..Default::default()
        },
        cache_dir: Some(cache.to_path_buf()),
    })
    .expect("runtime starts")
}

/// Everything a test varies about one run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Task name.
    pub task: String,
    /// JSON array.
    pub args: serde_json::Value,
    /// JSON object.
    pub kwargs: serde_json::Value,
    /// Limits.
    pub limits: Limits,
    /// Grants.
    pub grants: Grants,
    /// Plugin name (kv namespace).
    pub plugin: String,
}

impl RunSpec {
    /// `hostile.run(case, n, arg)` under default limits and all capabilities.
    pub fn hostile(case: &str, n: u64, arg: &str) -> RunSpec {
        RunSpec {
            task: "hostile.run".into(),
            args: serde_json::json!([case, n, arg]),
            kwargs: serde_json::json!({}),
            limits: Limits::default(),
            grants: Grants::all_capabilities(),
            plugin: "hostile".into(),
        }
    }

    /// A call of `task` with `args`.
    pub fn call(task: &str, args: serde_json::Value) -> RunSpec {
        RunSpec {
            task: task.into(),
            args,
            kwargs: serde_json::json!({}),
            limits: Limits::default(),
            grants: Grants::all_capabilities(),
            plugin: task.split('.').next().unwrap_or(task).into(),
        }
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the grants.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }
}

/// Runs one task with the given backends.
pub async fn run_with(
    runtime: &Runtime,
    component: &LoadedComponent,
    spec: RunSpec,
    backends: Backends,
) -> TaskReport {
    let meta = Arc::new(TaskMeta::new(
        uuid_like(),
        spec.task.clone(),
        "conformance",
        spec.plugin.clone(),
    ));
    runtime
        .run(
            component,
            Invocation {
                meta,
                args: spec.args.to_string(),
                kwargs: spec.kwargs.to_string(),
                limits: spec.limits,
                grants: Arc::new(spec.grants),
                backends,
                cancel: None,
            },
        )
        .await
}

/// Runs one task with fresh local backends.
pub async fn run(runtime: &Runtime, component: &LoadedComponent, spec: RunSpec) -> TaskReport {
    run_with(runtime, component, spec, Backends::local()).await
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
