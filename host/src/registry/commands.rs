//! `taskbox plugin ...`: what an operator and a plugin author do with plugins from the shell.
//! Installing and removing work by renaming whole directories inside the plugin directory, so
//! a running worker's watcher never sees a half-written plugin.

/// `println!` that ignores a closed stdout (`taskbox ... | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Registry;
use super::dir;
use super::manifest::{MANIFEST_FILE, Manifest};
use crate::cli::{PluginArgs, PluginCommand};
use crate::config::Config;
use crate::runtime::{EngineSettings, LoadedComponent, Runtime, RuntimeSettings, digest};

/// Runs one `taskbox plugin` subcommand.
pub async fn run(args: PluginArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    match args.command {
        PluginCommand::List { json } => list(&config, json).await,
        PluginCommand::Info { target, manifest } => info(&config, &target, manifest).await,
        PluginCommand::Verify { file, manifest } => verify(&config, &file, &manifest).await,
        PluginCommand::Add { file, manifest } => add(&config, &file, &manifest).await,
        PluginCommand::Remove { name } => remove(&config, &name),
        PluginCommand::New { name, path, sdk } => new(&name, &path, sdk),
    }
}

fn runtime(config: &Config) -> anyhow::Result<Runtime> {
    Runtime::new(RuntimeSettings {
        engine: EngineSettings::default(),
        cache_dir: config
            .worker
            .cache_dir
            .clone()
            .or_else(crate::cli::default_cache_dir),
    })
}

fn plugins_dir(config: &Config) -> anyhow::Result<&Path> {
    config.worker.plugins_dir.as_deref().context(
        "no plugin directory is configured; pass --plugins DIR, set TASKBOX_PLUGINS_DIR, or set worker.plugins_dir in taskbox.toml",
    )
}

async fn list(config: &Config, as_json: bool) -> anyhow::Result<ExitCode> {
    let runtime = runtime(config)?;
    let local = Registry::load(&runtime, config).await?;
    let workers = live_workers(config).await;
    if as_json {
        let out = json!({
            "plugins_dir": config.worker.plugins_dir,
            "local": local.status(),
            "workers": workers.as_ref().map_err(|e| format!("{e:#}")),
        });
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &config.worker.plugins_dir {
        Some(dir) => out!("checked here (plugin directory {}):", dir.display()),
        None => out!("checked here (no plugin directory configured):"),
    }
    print_table(&serde_json::to_value(local.status())?);
    match workers {
        Ok(workers) if workers.is_empty() => out!("\nno live worker has published its plugins"),
        Ok(workers) => {
            for w in workers {
                out!(
                    "\nworker {} ({}), as of {}:",
                    w["name"].as_str().unwrap_or("?"),
                    w["worker"].as_str().unwrap_or("?"),
                    w["at"].as_str().unwrap_or("?")
                );
                print_table(&w["plugins"]);
            }
        }
        Err(err) => out!("\nworkers: not shown ({err:#})"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(rows: &Value) {
    out!(
        "  {:<14} {:<9} {:<14} {:<8} {:<32} CAPABILITIES",
        "NAME",
        "VERSION",
        "DIGEST",
        "STATE",
        "TASKS"
    );
    for row in rows.as_array().into_iter().flatten() {
        let text = |k: &str| row[k].as_str().unwrap_or("-").to_string();
        let list = |k: &str| {
            row[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let digest = row["digest"]
            .as_str()
            .map(|d| d.chars().take(12).collect())
            .unwrap_or_else(|| "-".to_string());
        out!(
            "  {:<14} {:<9} {:<14} {:<8} {:<32} {}",
            text("name"),
            text("version"),
            digest,
            text("state"),
            list("tasks"),
            list("capabilities")
        );
        if let Some(err) = row["error"].as_str() {
            out!("    error: {err}");
        }
    }
}

/// The plugin status each live worker published with its heartbeat.
async fn live_workers(config: &Config) -> anyhow::Result<Vec<Value>> {
    let client = redis::Client::open(config.broker_url()).context("bad broker URL")?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("broker did not answer within 2s")?
    .context("broker unreachable")?;
    let workers = crate::inspect::live_workers(&mut conn, config.worker.dead_after).await?;
    Ok(workers
        .into_iter()
        .filter_map(|w| w.info)
        .map(|info| {
            json!({
                "worker": info["worker"],
                "name": info["name"],
                "at": info["heartbeat_at"],
                "plugins": info["plugins"],
            })
        })
        .collect())
}

/// A component to inspect: bytes plus, when known, its manifest and where it came from.
struct Target {
    bytes: Arc<Vec<u8>>,
    manifest: Option<Manifest>,
    source: String,
}

fn resolve(config: &Config, target: &str, manifest: Option<PathBuf>) -> anyhow::Result<Target> {
    let path = Path::new(target);
    if path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
        let manifest_path = manifest.or_else(|| {
            let beside = path.with_file_name(MANIFEST_FILE);
            beside.is_file().then_some(beside)
        });
        let manifest = manifest_path.map(|m| Manifest::read(&m)).transpose()?;
        return Ok(Target {
            bytes: Arc::new(bytes),
            manifest,
            source: path.display().to_string(),
        });
    }
    if crate::builtins::is_builtin(target) {
        return Ok(Target {
            bytes: Arc::new(crate::builtins::get(target)?.to_vec()),
            manifest: None,
            source: "built-in".to_string(),
        });
    }
    if let Some(dir) = &config.worker.plugins_dir {
        let plugin_dir = dir.join(target);
        if plugin_dir.join(MANIFEST_FILE).is_file() {
            let found = dir::read_one(&plugin_dir, target.to_string());
            let manifest = found.manifest.map_err(anyhow::Error::msg)?;
            let (bytes, _) = found.component.map_err(anyhow::Error::msg)?;
            return Ok(Target {
                bytes,
                manifest: Some(manifest),
                source: plugin_dir.display().to_string(),
            });
        }
    }
    anyhow::bail!(
        "'{target}' is neither a file, a built-in ({}) nor a plugin in the plugin directory",
        crate::builtins::names().join(", ")
    )
}

async fn info(
    config: &Config,
    target: &str,
    manifest: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let target = resolve(config, target, manifest)?;
    let runtime = runtime(config)?;
    let started = std::time::Instant::now();
    let component = runtime
        .load(&target.bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.kind()))?;
    let took = started.elapsed();
    out!("source:        {}", target.source);
    out!("size:          {} bytes", target.bytes.len());
    out!("sha256:        {}", component.digest);
    out!(
        "wit:           taskbox:task@{} (this host: {})",
        component.wit_version,
        crate::runtime::WIT_VERSION
    );
    out!("tasks:         {}", component.tasks.join(", "));
    out!(
        "load:          {:.2} ms ({})",
        took.as_secs_f64() * 1000.0,
        if component.from_cache {
            "compiled component from the cache"
        } else {
            "compiled now"
        }
    );
    out!(
        "capabilities:  {}",
        component
            .capabilities
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out!("imports:");
    for i in &component.imports {
        out!("  {i}");
    }
    out!("exports:");
    for e in &component.exports {
        out!("  {e}");
    }
    out!("limits (as this configuration would run each task):");
    for task in &component.tasks {
        let manifest_limits = target
            .manifest
            .as_ref()
            .and_then(|m| m.tasks.iter().find(|t| &t.name == task))
            .map(|t| t.limits.clone())
            .unwrap_or_default();
        let plugin = target.manifest.as_ref().map(|m| m.name.as_str());
        let l = config.limits_for(&manifest_limits, plugin, task);
        out!(
            "  {task}: fuel {}, memory {} bytes, timeout {}, max output {} bytes",
            l.fuel.map_or("off".to_string(), |f| f.to_string()),
            l.memory,
            humantime::format_duration(l.timeout),
            l.max_output
        );
    }
    match &target.manifest {
        Some(m) => {
            out!("manifest:");
            for line in toml::to_string_pretty(m)?.lines() {
                out!("  {line}");
            }
            if !m.sha256.eq_ignore_ascii_case(&component.digest) {
                out!(
                    "  warning: the manifest pins sha256 {}, which is not this component's",
                    m.sha256
                );
            }
        }
        None => out!("manifest:      none"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every load-time check; returns the manifest and the loaded component.
async fn check(
    config: &Config,
    file: &Path,
    manifest_path: &Path,
) -> anyhow::Result<(
    Manifest,
    Vec<u8>,
    Arc<LoadedComponent>,
    crate::runtime::Grants,
)> {
    let manifest = Manifest::read(manifest_path)?;
    let bytes =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    let runtime = runtime(config)?;
    let actual = digest(&bytes);
    let (component, grants) =
        dir::verify(&runtime, config, &manifest, &bytes, &actual, None).await?;
    Ok((manifest, bytes, component, grants))
}

async fn verify(config: &Config, file: &Path, manifest: &Path) -> anyhow::Result<ExitCode> {
    match check(config, file, manifest).await {
        Ok((m, _, component, grants)) => {
            out!(
                "ok: {} {} (sha256 {}) serves {}",
                m.name,
                m.version,
                component.digest,
                component.tasks.join(", ")
            );
            out!(
                "granted here: {}",
                grants
                    .capabilities
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("refused: {err:#}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn add(config: &Config, file: &Path, manifest_path: &Path) -> anyhow::Result<ExitCode> {
    let root = plugins_dir(config)?;
    std::fs::create_dir_all(root)
        .with_context(|| format!("failed to create the plugin directory {}", root.display()))?;
    let (mut manifest, bytes, component, _) = match check(config, file, manifest_path).await {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("refused: {err:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let staging = root.join(format!(".staging-{}-{nonce}", manifest.name));
    std::fs::create_dir(&staging)
        .with_context(|| format!("failed to create {}", staging.display()))?;
    let component_name = format!("{}.wasm", manifest.name);
    manifest.component = Some(PathBuf::from(&component_name));
    let written = std::fs::write(staging.join(&component_name), &bytes)
        .and_then(|()| {
            std::fs::write(
                staging.join(MANIFEST_FILE),
                toml::to_string_pretty(&manifest).map_err(std::io::Error::other)?,
            )
        })
        .with_context(|| format!("failed to write into {}", staging.display()));
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(err);
    }
    let dest = root.join(&manifest.name);
    let replaced = dest.exists();
    if replaced {
        let old = root.join(format!(".old-{}-{nonce}", manifest.name));
        std::fs::rename(&dest, &old)
            .with_context(|| format!("failed to move the installed {} aside", dest.display()))?;
        std::fs::rename(&staging, &dest)
            .with_context(|| format!("failed to install into {}", dest.display()))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging, &dest)
            .with_context(|| format!("failed to install into {}", dest.display()))?;
    }
    out!(
        "{} {} {} (sha256 {}) in {}; running workers load it within a few seconds",
        if replaced { "replaced" } else { "installed" },
        manifest.name,
        manifest.version,
        component.digest,
        dest.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let root = plugins_dir(config)?;
    let dest = root.join(name);
    if name.starts_with('.') || name.contains('/') || !dest.join(MANIFEST_FILE).is_file() {
        anyhow::bail!(
            "no plugin '{name}' is installed in {}; `taskbox plugin list` shows what is",
            root.display()
        );
    }
    let gone = root.join(format!(".removed-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(&dest, &gone)
        .with_context(|| format!("failed to remove {}", dest.display()))?;
    std::fs::remove_dir_all(&gone)
        .with_context(|| format!("failed to delete {}", gone.display()))?;
    out!(
        "removed {name}; running workers stop serving it within a few seconds, and its queued tasks wait for a worker that has it"
    );
    Ok(ExitCode::SUCCESS)
}

/// The SDK this binary was built beside, for `plugin new` in a checkout.
fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().unwrap_or(sdk))
}

fn new(name: &str, path: &Path, sdk: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        anyhow::bail!(
            "'{name}' is not a usable plugin name: use lowercase letters, digits, '-' and '_', starting with a letter"
        );
    }
    let sdk = match sdk.or_else(default_sdk) {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("the SDK path {} does not exist", p.display()))?,
        None => anyhow::bail!(
            "cannot find taskbox-sdk; pass --sdk PATH to the sdk/ directory of a taskbox checkout"
        ),
    };
    let dir = path.join(name);
    if dir.exists() {
        anyhow::bail!(
            "{} already exists; choose another name or --path",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("failed to create {}", dir.display()))?;
    let crate_name = name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("src/lib.rs", lib_rs(name)),
        (MANIFEST_FILE, manifest_toml(name)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text)
            .with_context(|| format!("failed to write {}", dir.join(file).display()))?;
    }
    out!("created {}", dir.display());
    out!("next:");
    out!("  cd {} && cargo test", dir.display());
    out!("  cargo build --target wasm32-wasip2 --release");
    out!(
        "  taskbox exec target/wasm32-wasip2/release/{crate_name}.wasm --task {name}.hello --args '[\"world\"]'"
    );
    out!(
        "  put the sha256 of the .wasm (taskbox plugin info FILE) into plugin.toml, then: taskbox plugin add target/wasm32-wasip2/release/{crate_name}.wasm --manifest plugin.toml"
    );
    Ok(ExitCode::SUCCESS)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A taskbox plugin: build with `cargo build --target wasm32-wasip2 --release`.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
taskbox-sdk = {{ path = "{}" }}

[profile.release]
opt-level = "s"
lto = true
panic = "abort"
strip = true

# Not part of any enclosing workspace.
[workspace]
"#,
        sdk.display()
    )
}

fn lib_rs(name: &str) -> String {
    format!(
        r#"//! The `{name}` taskbox plugin.

use taskbox_sdk::{{Context, TaskError, export_plugin, log, task}};

/// `{name}.hello(who, greeting="Hello")`: greets `who`.
#[task(name = "{name}.hello")]
fn hello(ctx: &Context, who: String, #[default("Hello")] greeting: String) -> Result<String, TaskError> {{
    if who.trim().is_empty() {{
        // Bad input: a reject is never retried.
        return Err(TaskError::reject("who must not be empty"));
    }}
    log::info(format!("greeting {{who}} (attempt {{}})", ctx.attempt));
    Ok(format!("{{greeting}}, {{who}}!"))
}}

export_plugin!(hello);

#[cfg(test)]
mod tests {{
    use taskbox_sdk::json;

    #[test]
    fn greets_and_rejects_empty_names() {{
        let out = taskbox_sdk::testing::call(super::TASKBOX_TASKS, "{name}.hello", json!(["Ada"]), json!({{}})).unwrap();
        assert_eq!(out, json!("Hello, Ada!"));
        let err = taskbox_sdk::testing::call(super::TASKBOX_TASKS, "{name}.hello", json!([""]), json!({{}})).unwrap_err();
        assert!(err.to_string().contains("must not be empty"));
    }}
}}
"#
    )
}

fn manifest_toml(name: &str) -> String {
    format!(
        r#"# The manifest taskbox reads beside the component (see PLUGIN_GUIDE.md).
name = "{name}"
version = "0.1.0"
description = "Greets people."
component = "{}.wasm"
# The sha256 of the built component: `taskbox plugin info target/wasm32-wasip2/release/{}.wasm`.
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[tasks]]
name = "{name}.hello"
queue = "plugin"

[capabilities]
log = true
"#,
        name.replace('-', "_"),
        name.replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::super::Origin;
    use super::*;

    #[test]
    fn origin_serializes_with_its_path() {
        let v = serde_json::to_value(Origin::Dir(PathBuf::from("/p/x"))).unwrap();
        assert_eq!(v, json!({"kind": "dir", "path": "/p/x"}));
    }

    #[test]
    fn new_refuses_bad_names_and_writes_a_crate() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(new("Bad Name", tmp.path(), default_sdk()).is_err());
        new("greeter", tmp.path(), default_sdk()).unwrap();
        let cargo = std::fs::read_to_string(tmp.path().join("greeter/Cargo.toml")).unwrap();
        assert!(cargo.contains("taskbox-sdk = { path = "), "{cargo}");
        let manifest: Manifest = toml::from_str(
            &std::fs::read_to_string(tmp.path().join("greeter/plugin.toml")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest.tasks[0].name, "greeter.hello");
        assert!(new("greeter", tmp.path(), default_sdk()).is_err());
    }
}
