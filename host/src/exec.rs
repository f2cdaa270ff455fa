//! `taskbox exec`: run one task locally under exactly the sandbox and limits the worker uses,
//! with local capability backends (kv in memory or a file, mail captured or written to an
//! outbox directory, follow-up tasks recorded). The plugin author's inner loop.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::builtins;
use crate::runtime::capabilities::housekeeping::NoRecords;
use crate::runtime::capabilities::kv::MemoryKv;
use crate::runtime::capabilities::mail::{CaptureMail, OutboxMail};
use crate::runtime::capabilities::progress::LogProgress;
use crate::runtime::capabilities::queue::CaptureQueue;
use crate::runtime::{
    Backends, Grants, Invocation, LimitsOverride, Runtime, RuntimeSettings, SandboxError, TaskMeta,
    TaskReport,
};
use crate::runtime::{DirGrant, Limits};
use crate::telemetry;

/// What to run and under which limits.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// A path to a `.wasm` component or the name of a built-in.
    pub component: String,
    /// The task name; may be omitted when the component serves exactly one task.
    pub task: Option<String>,
    /// JSON array of positional arguments.
    pub args: String,
    /// JSON object of keyword arguments.
    pub kwargs: String,
    /// Limits on top of the defaults.
    pub limits: LimitsOverride,
    /// Granted directories.
    pub dirs: Vec<DirGrant>,
    /// Granted environment variables.
    pub env: Vec<(String, String)>,
    /// Persist kv in this file instead of memory.
    pub kv_file: Option<PathBuf>,
    /// Write mail as `.eml` files here instead of capturing it.
    pub outbox: Option<PathBuf>,
    /// The compiled-component cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Guest memory kept resident per sandbox slot (`None`: the worker's default), so that a
    /// run here is timed as a worker configured the same way would run it.
    pub keep_resident: Option<u64>,
}

/// The result of an exec run, with what the task did through its capabilities.
#[derive(Debug)]
pub struct ExecResult {
    /// The task that ran.
    pub task: String,
    /// Outcome and measurements.
    pub report: TaskReport,
    /// Mail captured (when no outbox was given): `(to, subject)`.
    pub mail: Vec<(Vec<String>, String)>,
    /// Follow-up tasks recorded: `(queue, task, id)`.
    pub enqueued: Vec<(String, String, String)>,
}

/// Reads a JSON argument given inline or as `@FILE`, and checks that it parses.
pub fn read_json_arg(flag: &str, value: &str) -> anyhow::Result<String> {
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("{flag}: failed to read {path}"))?,
        None => value.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .with_context(|| format!("{flag} is not valid JSON"))?;
    Ok(text)
}

/// Reads the component bytes: a file path, or a built-in name.
pub fn component_bytes(spec: &str) -> anyhow::Result<Vec<u8>> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        return std::fs::read(path)
            .with_context(|| format!("failed to read component {}", path.display()));
    }
    if builtins::is_builtin(spec) {
        return builtins::get(spec).map(<[u8]>::to_vec);
    }
    bail!(
        "'{spec}' is neither a component file nor a built-in (built-ins: {})",
        builtins::names().join(", ")
    )
}

/// Runs the request. `Err` is a setup problem (unreadable file, bad flag); the task's own
/// failure is in the report's outcome.
pub async fn run(req: ExecRequest) -> anyhow::Result<Result<ExecResult, SandboxError>> {
    let bytes = component_bytes(&req.component)?;
    let runtime = Runtime::new(RuntimeSettings {
        engine: crate::runtime::EngineSettings {
            max_live_stores: 4,
            keep_resident: req.keep_resident,
            ..Default::default()
        },
        cache_dir: req.cache_dir.clone(),
    })?;
    let component = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(err) => return Ok(Err(err)),
    };
    let task = match (&req.task, component.tasks.as_slice()) {
        (Some(t), _) => t.clone(),
        (None, [only]) => only.clone(),
        (None, many) => bail!(
            "the component serves several tasks; choose one with --task ({})",
            many.join(", ")
        ),
    };
    if !component.tasks.contains(&task) {
        bail!(
            "the component does not serve task '{task}' (it serves: {})",
            component.tasks.join(", ")
        );
    }
    let plugin = if builtins::is_builtin(&req.component) {
        req.component.clone()
    } else {
        std::path::Path::new(&req.component)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into())
    };

    let kv = match &req.kv_file {
        Some(path) => Arc::new(MemoryKv::open_file(path)?),
        None => Arc::new(MemoryKv::default()),
    };
    let capture_mail = Arc::new(CaptureMail::default());
    let mail: Arc<dyn crate::runtime::capabilities::mail::MailBackend> = match &req.outbox {
        Some(dir) => Arc::new(OutboxMail::new(
            dir.clone(),
            Some("taskbox@localhost".into()),
        )?),
        None => capture_mail.clone(),
    };
    let queue = Arc::new(CaptureQueue::default());
    let backends = Backends {
        kv,
        mail,
        queue: queue.clone(),
        progress: Arc::new(LogProgress),
        housekeeping: Arc::new(NoRecords),
    };
    // Every kv namespace is the local file's or memory's anyway, so a retention plugin can be
    // tried out against what earlier local runs stored.
    let grants = Grants {
        dirs: req.dirs.clone(),
        env: req.env.clone(),
        namespaces: vec!["*".to_string()],
        ..Grants::all_capabilities()
    };
    let meta = Arc::new(TaskMeta::new(
        uuid::Uuid::new_v4().to_string(),
        task.clone(),
        "exec",
        plugin,
    ));
    let span = telemetry::task_span(&meta, "exec");
    let invocation = Invocation {
        meta,
        args: req.args,
        kwargs: req.kwargs,
        limits: Limits::default().with(&req.limits),
        grants: Arc::new(grants),
        backends,
        cancel: None,
    };
    let report = {
        use tracing::Instrument as _;
        runtime.run(&component, invocation).instrument(span).await
    };
    let mail = capture_mail
        .delivered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|m| (m.to.clone(), m.subject.clone()))
        .collect();
    let enqueued = queue
        .published
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(q, f, id)| (q.clone(), f.task.clone(), id.clone()))
        .collect();
    Ok(Ok(ExecResult {
        task,
        report,
        mail,
        enqueued,
    }))
}
