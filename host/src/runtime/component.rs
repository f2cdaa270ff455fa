//! Turning wasm bytes into a runnable component: digest, on-disk cache of compiled artefacts,
//! and the load-time checks (is it a component, which WIT version, which imports) that refuse a
//! bad component with a clear reason before any task runs on it.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::capabilities::Capability;
use super::error::SandboxError;
use super::linker::WASI_PACKAGES;

/// The WIT package version this host implements (`wit/task.wit`).
pub const WIT_VERSION: &str = "0.1.0";
const PACKAGE: &str = "taskbox:task";

/// The lowercase hex sha256 of `bytes`: a component's identity everywhere (cache key, manifest
/// pin, `plugin list`).
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What inspecting a component's type found.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The `taskbox:task` version the component was built against.
    pub wit_version: String,
    /// Every import name.
    pub imports: Vec<String>,
    /// Every export name.
    pub exports: Vec<String>,
    /// The taskbox capabilities among the imports.
    pub capabilities: Vec<Capability>,
}

/// Refuses anything that is not a wasm component, with a hint for the usual mistakes.
pub fn check_header(bytes: &[u8]) -> Result<(), SandboxError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(SandboxError::invalid(
            "not a WebAssembly file (no \\0asm header); build the plugin with `cargo build --target wasm32-wasip2`",
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(SandboxError::invalid(
            "this is a core wasm module, not a component; build for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)",
        ));
    }
    Ok(())
}

/// Compiles components once and keeps the compiled artefact on disk keyed by the wasm's sha256
/// and the engine's compatibility hash, so a restart loads each component in well under a
/// millisecond instead of recompiling.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl ComponentCache {
    /// A cache in `dir` (`None`: compile every time).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
        ComponentCache { dir, engine_hash }
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.engine_hash)))
    }

    /// The compiled component for `digest` if the cache has a usable one. Cheap (it maps a
    /// file), so callers may run it on an async thread; an unusable artefact is logged and
    /// ignored, and [`ComponentCache::compile`] replaces it.
    pub fn cached(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest)?;
        if !path.exists() {
            return None;
        }
        load_artifact(engine, &path)
            .inspect_err(|err| {
                tracing::warn!(
                    path = %path.display(),
                    error = %format_args!("{err:#}"),
                    "ignoring unusable cached component; recompiling"
                )
            })
            .ok()
    }

    /// Compiles `bytes` and stores the artefact for [`ComponentCache::cached`] to find (a
    /// damaged one is replaced). Compiling takes tens of milliseconds of CPU: call it off the
    /// async threads.
    pub fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<Component, SandboxError> {
        check_header(bytes)?;
        let component = Component::new(engine, bytes).map_err(|err| {
            SandboxError::invalid(format!("the component does not validate: {err:#}"))
        })?;
        if let Some(path) = self.path(digest)
            && let Err(err) = store_artifact(&component, &path)
        {
            tracing::warn!(path = %path.display(), error = %format_args!("{err:#}"), "could not cache the compiled component");
        }
        Ok(component)
    }
}

#[allow(
    unsafe_code,
    reason = "deserializing a compiled artefact is unsafe in wasmtime; we only load files this cache wrote, named by the wasm's sha256 and the engine's compatibility hash"
)]
fn load_artifact(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: the file was produced by `Component::serialize` of this engine configuration
    // (the name carries both the wasm digest and the engine hash) and wasmtime still checks
    // the header and compatibility before using it.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to load cached component {}", path.display()))
}

fn store_artifact(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component
        .serialize()
        .map_err(anyhow::Error::from)
        .context("failed to serialize the component")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create cache directory {}", dir.display()))?;
    }
    // Write then rename, so a concurrent reader never maps a half-written file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to rename into {}", path.display()))
}

struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Reads a component's imports and exports and checks them against this host: the handler
/// export must exist with a compatible WIT version, and every import must be one we provide.
pub fn inspect(engine: &Engine, component: &Component) -> Result<Interface, SandboxError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();

    let handler = exports
        .iter()
        .find_map(|name| split_versioned(name).filter(|(iface, _)| *iface == "handler"));
    let Some((_, version)) = handler else {
        let names: Vec<&str> = exports.iter().map(String::as_str).collect();
        return Err(SandboxError::invalid(format!(
            "missing export {PACKAGE}/handler (the component exports: {}); build it with taskbox-sdk and `export_plugin!`",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    check_version(version)?;

    let mut capabilities = Vec::new();
    for name in &imports {
        if let Some((iface, version)) = split_versioned(name) {
            check_version(version)?;
            if iface == "types" {
                continue;
            }
            match Capability::from_interface(iface) {
                Some(cap) => capabilities.push(cap),
                None => {
                    return Err(SandboxError::invalid(format!(
                        "the component imports {name}, which this host ({PACKAGE}@{WIT_VERSION}) does not provide"
                    )));
                }
            }
        } else if !WASI_PACKAGES.iter().any(|p| name.starts_with(p)) {
            return Err(SandboxError::invalid(format!(
                "the component imports {name}, which taskbox does not provide; tasks may import {PACKAGE}/* and WASI 0.2 cli, clocks, filesystem, io, random and sockets"
            )));
        }
    }
    capabilities.sort();
    capabilities.dedup();
    Ok(Interface {
        wit_version: version.to_string(),
        imports,
        exports,
        capabilities,
    })
}

/// `taskbox:task/<iface>@<version>` → `(iface, version)`.
fn split_versioned(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    match rest.split_once('@') {
        Some((iface, version)) => Some((iface, version)),
        None => Some((rest, "")),
    }
}

/// Whether a component built against `theirs` can run on this host: same major version, or same
/// minor while the major is 0 (semver's rule for 0.x).
pub fn check_version(theirs: &str) -> Result<(), SandboxError> {
    let ours =
        semver::Version::parse(WIT_VERSION).map_err(|e| SandboxError::Host(e.to_string()))?;
    let Ok(v) = semver::Version::parse(theirs) else {
        return Err(SandboxError::invalid(format!(
            "the component was built against an unversioned or malformed {PACKAGE} version '{theirs}'; this host implements {PACKAGE}@{WIT_VERSION}"
        )));
    };
    let compatible = if ours.major == 0 {
        v.major == 0 && v.minor == ours.minor
    } else {
        v.major == ours.major
    };
    if compatible {
        Ok(())
    } else {
        Err(SandboxError::invalid(format!(
            "the component was built against {PACKAGE}@{v}, but this host implements {PACKAGE}@{ours}; rebuild it with a taskbox-sdk for {PACKAGE}@{}.{}",
            ours.major, ours.minor
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_semver_compatibility() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("0.1.7").is_ok());
        let err = check_version("0.2.0").unwrap_err().to_string();
        assert!(
            err.contains("taskbox:task@0.2.0") && err.contains("taskbox:task@0.1.0"),
            "{err}"
        );
        assert!(check_version("1.0.0").is_err());
        assert!(check_version("").is_err());
    }

    #[test]
    fn headers_tell_modules_from_components() {
        assert!(
            check_header(b"hello world")
                .unwrap_err()
                .to_string()
                .contains("not a WebAssembly")
        );
        let module = b"\0asm\x01\0\0\0";
        assert!(
            check_header(module)
                .unwrap_err()
                .to_string()
                .contains("core wasm module")
        );
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
