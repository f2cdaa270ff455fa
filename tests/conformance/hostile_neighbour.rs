//! Isolation under hostile neighbours: a normal task (a fixed amount of `burn`, ~150 ms alone)
//! run on the same runtime as two hostile ones, one spinning until it is stopped and one
//! allocating to its memory limit again and again, finishes within a bounded factor of its
//! solo time.
//!
//! It is measured on two executors, because they catch different faults:
//! - the worker's own shape, a multi-thread executor with one thread per core (two here):
//!   catches a neighbour holding something the normal task needs (a global lock, the instance
//!   pool, the compile cache) for as long as it runs;
//! - one thread shared by all three: catches guest code that does not yield the thread, since
//!   then the normal task cannot even start until a neighbour's limit ends it.
//!
//! Why these bounds, on a two-core machine shared with other builds and tests. Three CPU-bound
//! tasks share the executor fairly (the engine yields every ~0.5 ms of guest CPU and on every
//! 10 ms epoch tick), so the normal task gets at best 2/3 of a core on two threads (1.5x its
//! solo time) and a third of the thread on one (3x). On top of that come the allocator's page
//! zeroing and memory resets, kernel work no executor can slice, and tokio sometimes keeping
//! two tasks on one thread, and the shared thread being sliced by fuel, so a slice that also
//! takes page faults lasts longer. Measured with a load average of 4-5 and the rest of this
//! suite running alongside, the figures were 3.0-4.2x and 3.2-5.7x (about 2x each with the
//! spinner alone). Hence [`PARALLEL_BOUND`] and [`SHARED_BOUND`], roughly twice the worst
//! figures seen, where the 3x first planned would flake.
//! A blocked normal task is far beyond either: it finishes only after the spinner's limit,
//! [`SPINNER_LIMIT`], over 60x its solo time, and that is reported at once and never retried.
//! Against noise: solo and neighbour runs alternate so a change in background load hits both,
//! each figure is a median of [`REPS`] runs, and a measurement that misses a bound is taken
//! again (up to [`ATTEMPTS`] times): noise does not repeat, a blocked task does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use taskbox::runtime::{Backends, CancelToken, Invocation, TaskMeta};

use super::*;

/// Allowed slowdown on the worker-shaped executor (two threads).
pub(super) const PARALLEL_BOUND: f64 = 8.0;
/// Allowed slowdown when all three tasks share one thread.
pub(super) const SHARED_BOUND: f64 = 10.0;
/// The normal task's solo wall time the calibration aims for.
const TARGET: Duration = Duration::from_millis(150);
/// Hard limit of the spinning neighbour; it is cancelled as soon as the normal task is done,
/// so reaching it means the normal task was blocked all that time.
const SPINNER_LIMIT: Duration = Duration::from_secs(10);
/// Memory cap of the allocating neighbour.
const ALLOCATOR_MEMORY: u64 = 32 * 1024 * 1024;
/// Runs per median.
const REPS: usize = 7;
/// Measurements before giving up.
const ATTEMPTS: u32 = 3;

/// The normal task's median wall time alone and beside the hostile neighbours.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slowdown {
    pub solo: Duration,
    pub beside: Duration,
}

impl Slowdown {
    pub(super) fn ratio(&self) -> f64 {
        self.beside.as_secs_f64() / self.solo.as_secs_f64().max(1e-6)
    }
}

/// One measurement on both executors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Isolation {
    pub parallel: Slowdown,
    pub shared: Slowdown,
    /// Which attempt this was (1 unless an earlier one missed a bound).
    pub attempt: u32,
}

impl Isolation {
    pub(super) fn within_bounds(&self) -> bool {
        self.parallel.ratio() <= PARALLEL_BOUND && self.shared.ratio() <= SHARED_BOUND
    }
}

/// The measurement, taken once per test process: the report and the test below share it, and
/// two measurements must never run at the same time. `Err` when it could not be completed
/// (a blocked normal task, a neighbour that did not misbehave as it should).
pub(super) fn measured() -> Result<Isolation, String> {
    static MEASURED: OnceLock<Result<Isolation, String>> = OnceLock::new();
    MEASURED
        .get_or_init(|| {
            // Executors of its own, on a thread outside any test's executor.
            std::thread::spawn(measure).join().map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the isolation measurement panicked".into())
            })
        })
        .clone()
}

fn measure() -> Isolation {
    let mut attempt = 1;
    loop {
        let isolation = Isolation {
            attempt,
            ..measure_once()
        };
        eprintln!("isolation, attempt {attempt}: {isolation:?}");
        if isolation.within_bounds() || attempt == ATTEMPTS {
            return isolation;
        }
        attempt += 1;
    }
}

fn measure_once() -> Isolation {
    let parallel = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("two-thread executor");
    let shared = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("one-thread executor");
    let env = Arc::new(parallel.block_on(Env::new()));
    let (mut parallel_solo, mut parallel_beside) = (Vec::new(), Vec::new());
    let (mut shared_solo, mut shared_beside) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        parallel_solo.push(parallel.block_on(env.clone().solo()));
        parallel_beside.push(parallel.block_on(env.clone().beside_neighbours()));
        shared_solo.push(shared.block_on(env.clone().solo()));
        shared_beside.push(shared.block_on(env.clone().beside_neighbours()));
    }
    Isolation {
        parallel: Slowdown {
            solo: median(parallel_solo),
            beside: median(parallel_beside),
        },
        shared: Slowdown {
            solo: median(shared_solo),
            beside: median(shared_beside),
        },
        attempt: 1,
    }
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// One runtime with the hostile guest loaded, and the calibrated size of the normal task.
struct Env {
    rt: Runtime,
    hostile: Arc<LoadedComponent>,
    rounds: u64,
}

impl Env {
    async fn new() -> Env {
        let (rt, hostile) = super::hostile().await;
        let mut env = Env {
            rt,
            hostile,
            rounds: 1_000_000,
        };
        // Size the normal task to about TARGET of wall time on this machine.
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            output(&env.run(env.normal(), None).await);
            fastest = fastest.min(started.elapsed());
        }
        let scale = TARGET.as_secs_f64() / fastest.as_secs_f64().max(1e-6);
        env.rounds = ((env.rounds as f64 * scale) as u64).clamp(100_000, 1_000_000_000);
        env
    }

    /// The normal task, under default limits.
    fn normal(&self) -> RunSpec {
        RunSpec::hostile("burn", self.rounds, "").limits(Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        })
    }

    async fn run(&self, spec: RunSpec, cancel: Option<CancelToken>) -> TaskReport {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!(
            "00000000-0000-4000-9000-{:012}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let meta = Arc::new(TaskMeta::new(id, spec.task, "conformance", spec.plugin));
        self.rt
            .run(
                &self.hostile,
                Invocation {
                    meta,
                    args: spec.args.to_string(),
                    kwargs: spec.kwargs.to_string(),
                    limits: spec.limits,
                    grants: Arc::new(spec.grants),
                    backends: Backends::local(),
                    cancel,
                },
            )
            .await
    }

    /// The normal task on its own, timed from being spawned to being done.
    async fn normal_task(self: Arc<Self>) -> Duration {
        let started = Instant::now();
        let report = tokio::spawn(async move { self.run(self.normal(), None).await })
            .await
            .expect("the normal task's future");
        let elapsed = started.elapsed();
        output(&report);
        elapsed
    }

    async fn solo(self: Arc<Self>) -> Duration {
        self.normal_task().await
    }

    /// The normal task spawned right after the two hostile neighbours.
    async fn beside_neighbours(self: Arc<Self>) -> Duration {
        let cancel = CancelToken::default();
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = tokio::spawn({
            let env = self.clone();
            let cancel = cancel.clone();
            async move {
                let spec = RunSpec::hostile("spin", 0, "").limits(Limits {
                    fuel: None,
                    timeout: SPINNER_LIMIT,
                    ..limits()
                });
                env.run(spec, Some(cancel)).await
            }
        });
        let allocator = tokio::spawn({
            let env = self.clone();
            let stop = stop.clone();
            async move {
                let mut runs = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let spec = RunSpec::hostile("alloc_small_steps", 0, "").limits(Limits {
                        fuel: None,
                        memory: ALLOCATOR_MEMORY,
                        ..limits()
                    });
                    let err = error(env.run(spec, None).await);
                    assert!(
                        matches!(err, SandboxError::MemoryLimit { .. }),
                        "the allocating neighbour ended with {err:?}"
                    );
                    runs += 1;
                    // The next task comes from the queue, as it would in a worker.
                    tokio::task::yield_now().await;
                }
                runs
            }
        });
        let elapsed = self.normal_task().await;
        stop.store(true, Ordering::Relaxed);
        cancel.cancel("the measurement is done");
        let runs = allocator.await.expect("the allocating neighbour's future");
        assert!(runs >= 1, "the allocating neighbour never ran");
        let spun = error(spinner.await.expect("the spinning neighbour's future"));
        match spun {
            SandboxError::Terminated { .. } => elapsed,
            SandboxError::Timeout { .. } => panic!(
                "the normal task was blocked by its hostile neighbours: it finished after {elapsed:?}, only once the spinner's {SPINNER_LIMIT:?} limit had ended it"
            ),
            other => panic!("the spinning neighbour ended with {other:?}"),
        }
    }
}

#[test]
fn a_normal_task_beside_hostile_ones_finishes_within_a_bounded_factor_of_its_solo_time() {
    let m = measured().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        m.parallel.ratio() <= PARALLEL_BOUND,
        "on two threads the normal task took {:.2}x its solo time ({:?} vs {:?}), over {PARALLEL_BOUND}x in {} attempts",
        m.parallel.ratio(),
        m.parallel.beside,
        m.parallel.solo,
        m.attempt
    );
    assert!(
        m.shared.ratio() <= SHARED_BOUND,
        "on one shared thread the normal task took {:.2}x its solo time ({:?} vs {:?}), over {SHARED_BOUND}x in {} attempts",
        m.shared.ratio(),
        m.shared.beside,
        m.shared.solo,
        m.attempt
    );
}
