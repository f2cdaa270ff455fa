//! taskbox: a Celery-compatible task executor that runs every task as a WebAssembly component
//! in a wasmtime sandbox instead of a forked Python process.
//!
//! # Layout
//!
//! - [`config`]: sizes, durations and the serde helpers every setting uses.
//! - [`runtime`]: how a component runs: the shared engine, per-task stores with fuel, memory and
//!   wall-clock limits, the linker and the host capabilities behind it.
//! - [`builtins`]: the built-in components embedded in the binary.
//! - [`exec`]: `taskbox exec`, one task run locally under the full sandbox.
//! - [`telemetry`]: tracing setup and the task span.
//! - [`cli`]: the command line.

pub mod builtins;
pub mod cli;
pub mod config;
pub mod exec;
pub mod runtime;
pub mod telemetry;
