//! CPU-bound tasks for the benchmark that compares guest speed with the same code compiled
//! natively (`work.rs` is shared with the benchmark).

use taskbox_sdk::{export_plugin, task};

mod work {
    include!("work.rs");
}

/// `cpu.sha256(mib, rounds)`: chained sha256 over `mib` MiB.
#[task(name = "cpu.sha256")]
fn sha256(mib: usize, rounds: u32) -> u64 {
    work::sha_chain(mib, rounds)
}

/// `cpu.collatz(n)`: total Collatz steps below `n`.
#[task(name = "cpu.collatz")]
fn collatz(n: u64) -> u64 {
    work::collatz_steps(n)
}

export_plugin!(sha256, collatz);
