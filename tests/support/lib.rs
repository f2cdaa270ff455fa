//! Test harness shared by the integration and conformance suites: locating the guests that
//! `just build-wasm` compiled from source, the `taskbox` binary, and helpers to run tasks.

pub mod guests;
pub mod redis;
pub mod smtp;
pub mod tasks;
pub mod worker;

use std::path::PathBuf;

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target"),
    }
}

/// The `taskbox` binary built by `cargo build -p taskbox` (which `just test` runs first).
pub fn taskbox_bin() -> PathBuf {
    let path = target_dir().join("debug").join("taskbox");
    assert!(
        path.exists(),
        "{} is missing: run `just test` (or `cargo build -p taskbox`) first",
        path.display()
    );
    path
}
