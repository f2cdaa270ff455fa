//! taskbox: a Celery-compatible task executor that runs every task as a WebAssembly component
//! in a wasmtime sandbox instead of a forked Python process.
//!
//! # Layout
//!
//! - [`config`]: sizes, durations and the serde helpers every setting uses.
//! - [`runtime`]: how a component runs: the shared engine, per-task stores with fuel, memory and
//!   wall-clock limits, the linker and the host capabilities behind it.
//! - [`broker`]: where work comes from: Redis in kombu's layout, Celery's protocol v2, atomic
//!   fetch/finish/restore/promote steps.
//! - [`worker`]: the consume loop, slots and autoscaling, one task's lifecycle, retries.
//! - [`results`]: Celery's Redis result backend.
//! - [`registry`]: which component serves which task, with its grants and limits; the plugin
//!   directory, manifests, hot reload and `taskbox plugin`.
//! - [`shutdown`]: warm and cold shutdown.
//! - [`ops`]: `send`, `result`, `dlq`, `purge`.
//! - [`inspect`]: `inspect` and `control` across the live workers.
//! - [`builtins`]: the built-in components embedded in the binary.
//! - [`exec`]: `taskbox exec`, one task run locally under the full sandbox.
//! - [`telemetry`]: tracing setup and the task span.
//! - [`metrics`]: the worker's Prometheus metrics.
//! - [`http`]: `/healthz`, `/readyz` and `/metrics` (`worker --http`).
//! - [`cli`]: the command line.

pub mod beat;
pub mod broker;
pub mod builtins;
pub mod cli;
pub mod config;
pub mod exec;
pub mod http;
pub mod inspect;
pub mod metrics;
pub mod ops;
pub mod registry;
pub mod results;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;
pub mod worker;
