//! The `taskbox` binary: parse the command line and hand off to [`taskbox::cli::run`].

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the per-task buffers (envelopes, JSON, results) are
/// allocated on one tokio thread and often freed on another, which glibc handles poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    taskbox::cli::main()
}
