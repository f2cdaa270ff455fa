//! The one wasmtime `Engine` of a process, tuned for many short tasks, and the epoch ticker
//! that drives wall-clock limits.
//!
//! The settings follow what was measured on this machine kind (see the project's wasmtime
//! notes): a pooling allocator that keeps memory resident and resets it with one
//! `PAGEMAP_SCAN` ioctl is what makes a task cost microseconds instead of tens of them, and the
//! component-model concurrency machinery stays off because it doubles the per-task cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock limits and of time-slicing
/// between tasks that share a thread.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Fuel a task burns between voluntary yields to the async runtime (~0.3-0.6 ms of CPU), so a
/// CPU-bound guest cannot starve the other tasks on its thread.
pub const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Sizing of the engine's instance pool.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Stores that may be alive at once (running tasks plus load-time probes). Instantiation
    /// beyond it fails at once, so the worker bounds concurrency below it.
    pub max_live_stores: u32,
    /// The largest linear memory any task may be granted; per-task caps are enforced below it.
    pub max_memory: u64,
    /// The largest table any task may be granted.
    pub max_table_elements: u32,
    /// Bytes at the start of each pool slot's linear memory that stay resident between tasks
    /// and are reset by zeroing only the pages a task dirtied. A task that touches more memory
    /// pays a page fault for each fresh page above it (about a microsecond each), so this is a
    /// trade of resident memory per used slot against the speed of memory-hungry tasks.
    /// Without `PAGEMAP_SCAN` every kept byte the task's memory grew to is zeroed after it,
    /// dirty or not, so it is capped at [`KEEP_RESIDENT_WITHOUT_PAGEMAP`] there. `None`:
    /// [`DEFAULT_KEEP_RESIDENT`].
    pub keep_resident: Option<u64>,
}

/// [`EngineSettings::keep_resident`] by default: a 2 MB document goes through
/// `chunking.split` in about 8 MiB of guest memory. What it costs is bounded by the pool: at
/// most this much for each of its memory slots that has run a task that large.
pub const DEFAULT_KEEP_RESIDENT: u64 = 16 * 1024 * 1024;

/// The most that is kept resident when memory is reset by `madvise`, where all of it is
/// zeroed after every task whether the task dirtied it or not.
pub const KEEP_RESIDENT_WITHOUT_PAGEMAP: u64 = 1024 * 1024;

impl EngineSettings {
    /// The memory kept resident per slot before any kernel cap: the setting or the default.
    fn keep_resident(&self) -> u64 {
        self.keep_resident.unwrap_or(DEFAULT_KEEP_RESIDENT)
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_live_stores: 64,
            max_memory: 4 * 1024 * 1024 * 1024,
            max_table_elements: 100_000,
            keep_resident: None,
        }
    }
}

/// Whether memory is reset with `PAGEMAP_SCAN` (Linux 6.7+) or with `madvise` as a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagemapScan {
    /// The fast path: one ioctl per task.
    Enabled,
    /// The kernel lacks it; memory resets cost a few syscalls more.
    Unavailable,
}

/// Builds the engine, trying `PAGEMAP_SCAN` first and falling back cleanly where the kernel
/// does not have it.
pub fn build(settings: &EngineSettings) -> anyhow::Result<(Engine, PagemapScan)> {
    match Engine::new(&config(settings, Enabled::Yes)) {
        Ok(engine) => Ok((engine, PagemapScan::Enabled)),
        Err(err) => {
            tracing::info!(
                error = %format_args!("{err:#}"),
                "PAGEMAP_SCAN unavailable; using madvise to reset task memory"
            );
            if settings.keep_resident() > KEEP_RESIDENT_WITHOUT_PAGEMAP {
                tracing::info!(
                    requested = settings.keep_resident(),
                    kept = KEEP_RESIDENT_WITHOUT_PAGEMAP,
                    "without PAGEMAP_SCAN all kept memory is zeroed after every task, so only 1 MiB per slot is kept resident"
                );
            }
            let engine = Engine::new(&config(settings, Enabled::No))
                .map_err(anyhow::Error::from)
                .context("failed to create the wasmtime engine")?;
            Ok((engine, PagemapScan::Unavailable))
        }
    }
}

fn config(settings: &EngineSettings, pagemap: Enabled) -> Config {
    let n = settings.max_live_stores.max(1);
    let keep_resident = match pagemap {
        Enabled::No => settings.keep_resident().min(KEEP_RESIDENT_WITHOUT_PAGEMAP),
        _ => settings.keep_resident(),
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_memories(n * 2)
        .total_tables(n * 4)
        .total_stacks(n)
        // A Rust wasip2 component is its main module plus a few shim/fixup modules.
        .total_core_instances(n * 8)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(usize::try_from(settings.max_memory).unwrap_or(usize::MAX))
        .table_elements(settings.max_table_elements as usize)
        .linear_memory_keep_resident(usize::try_from(keep_resident).unwrap_or(usize::MAX))
        .table_keep_resident(64 * 1024)
        .pagemap_scan(pagemap);

    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .concurrency_support(false)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
        .max_wasm_stack(512 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a dedicated thread until dropped.
/// Epochs, unlike fuel, measure wall time, so this is what enforces a task's deadline.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: Engine) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("taskbox-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("failed to start the epoch ticker thread")?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and ticks; joining waits at most one tick.
            let _ = thread.join();
        }
    }
}
