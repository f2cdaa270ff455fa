//! Files and environment through WASI: the guest sees exactly the preopened directories and
//! environment variables its grants name, and nothing of the host besides. Path resolution
//! inside a preopen is done by cap-std, which refuses `..`, absolute paths and symlinks that
//! lead outside it.

use anyhow::Context as _;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::Grants;

/// How much of the guest's stderr is kept (a Rust panic message goes there).
pub const STDERR_CAPTURE: usize = 4096;

/// Builds the task's WASI context: granted preopens and env, stderr captured into `stderr`,
/// no stdin or stdout, no network, no inherited anything.
pub fn wasi_ctx(grants: &Grants, stderr: &MemoryOutputPipe) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder.stderr(stderr.clone());
    for (name, value) in &grants.env {
        builder.env(name, value);
    }
    for dir in &grants.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "failed to open granted directory {} (for guest path {})",
                    dir.host.display(),
                    dir.guest
                )
            })?;
    }
    Ok(builder.build())
}
