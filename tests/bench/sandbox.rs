//! `just bench`, sandbox part: per-task overhead of a no-op component (fresh store, instantiate,
//! call, drop) on one and two threads, component load cost cold and cached, and CPU-bound guest
//! code against the same source compiled natively (sha2 without SHA-NI, `force-soft`).
//!
//! Writes a Markdown section to the path after `--out` and prints it. Run through `just bench`,
//! which builds the guests first and assembles `BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskbox::runtime::{
    Backends, Grants, Invocation, Limits, LoadedComponent, Runtime, RuntimeSettings, TaskMeta,
};
use taskbox_tests::guests::{guest_bytes, guest_path};

mod work {
    include!("../guests/cpu/src/work.rs");
}

const WARMUP: usize = 2_000;
/// Tasks timed per configuration; `--iters N` overrides it (e.g. for a profiler run).
const ITERS: usize = 100_000;

fn runtime(cache: Option<&std::path::Path>) -> Runtime {
    Runtime::new(RuntimeSettings {
        engine: taskbox::runtime::EngineSettings {
            max_live_stores: 16,
            ..Default::default()
        },
        cache_dir: cache.map(Into::into),
    })
    .expect("runtime")
}

fn invocation(
    task: &str,
    args: &str,
    limits: &Limits,
    grants: &Arc<Grants>,
    backends: &Backends,
) -> Invocation {
    Invocation {
        meta: Arc::new(TaskMeta::new(
            "00000000-0000-4000-8000-000000000000",
            task,
            "bench",
            "bench",
        )),
        args: args.to_string(),
        kwargs: "{}".to_string(),
        limits: limits.clone(),
        grants: grants.clone(),
        backends: backends.clone(),
        cancel: None,
    }
}

/// Runs the release `taskbox plugin info WASM` `runs` times against one fresh component cache
/// and returns the load times it printed, but the first (which compiles).
fn release_binary_loads(wasm: &std::path::Path, runs: usize) -> Result<Vec<Duration>, String> {
    let bin = taskbox_tests::target_dir().join("release").join("taskbox");
    if !bin.exists() {
        return Err(format!("{} is missing (`just build`)", bin.display()));
    }
    let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for run in 0..runs {
        let out = std::process::Command::new(&bin)
            .args(["plugin", "info"])
            .arg(wasm)
            .env("TASKBOX_CACHE_DIR", cache.path())
            .env("LOG_LEVEL", "warn")
            .env_remove("CELERY_BROKER_URL")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("load:"))
            .ok_or_else(|| {
                format!(
                    "no `load:` line in {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        if run == 0 {
            continue;
        }
        if !line.contains("from the cache") {
            return Err(format!("run {run} did not load from the cache: {line}"));
        }
        let ms: f64 = line
            .trim_start_matches("load:")
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("cannot read the time in {line:?}"))?;
        times.push(Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(times)
}

/// Runs `iters` no-op tasks, timing each; returns the per-task durations.
async fn noop_loop(rt: &Runtime, c: &LoadedComponent, iters: usize) -> Vec<Duration> {
    let limits = Limits::default();
    let grants = Arc::new(Grants::all_capabilities());
    let backends = Backends::local();
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let inv = invocation("noop", "[]", &limits, &grants, &backends);
        let t = Instant::now();
        let report = rt.run(c, inv).await;
        times.push(t.elapsed());
        assert!(report.outcome.is_ok(), "noop failed: {:?}", report.outcome);
    }
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let iters: usize = args
        .iter()
        .position(|a| a == "--iters")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERS);
    // `--overhead-only`: just the single-thread per-task loop (for profiling).
    let overhead_only = args.iter().any(|a| a == "--overhead-only");
    let mut md = String::new();
    let cache = tempfile::tempdir().expect("tempdir");

    // Per-task overhead (`--guest CRATE` measures another guest's `noop`-named task instead).
    let guest = args
        .iter()
        .position(|a| a == "--guest")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "taskbox_guest_noop".to_string());
    let noop = guest_bytes(&guest);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (st_times, st_wall, pagemap) = single.block_on(async {
        let rt = runtime(Some(cache.path()));
        let c = rt.load(&noop).await.unwrap();
        noop_loop(&rt, &c, WARMUP).await;
        let start = Instant::now();
        let times = noop_loop(&rt, &c, iters).await;
        (times, start.elapsed(), rt.pagemap_scan())
    });
    if overhead_only {
        let mut sorted = st_times.clone();
        sorted.sort();
        println!(
            "median {} p99 {} over {iters} tasks",
            us(percentile(&sorted, 0.5)),
            us(percentile(&sorted, 0.99))
        );
        return;
    }
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mt_times, mt_wall) = multi.block_on(async {
        let rt = Arc::new(runtime(Some(cache.path())));
        let c = rt.load(&noop).await.unwrap();
        noop_loop(&rt, &c, WARMUP).await;
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..2 {
            let (rt, c) = (rt.clone(), c.clone());
            handles.push(tokio::spawn(
                async move { noop_loop(&rt, &c, ITERS / 2).await },
            ));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        (all, start.elapsed())
    });
    let row = |name: &str, mut times: Vec<Duration>, wall: Duration| {
        times.sort();
        format!(
            "| {name} | {} | {} | {} | {:.0} k/s |\n",
            us(percentile(&times, 0.5)),
            us(percentile(&times, 0.99)),
            us(percentile(&times, 0.999)),
            times.len() as f64 / wall.as_secs_f64() / 1000.0
        )
    };
    md.push_str("### Per-task sandbox overhead (no-op component)\n\n");
    md.push_str(&format!(
        "Fresh `Store` + `WasiCtx` + limiter, fuel and epoch deadline, instantiate from the pre-linked component, call `handler.run`, drop; {iters} tasks after {WARMUP} warm-up, through the public `Runtime::run`. Pooling allocator with keep-resident memory; PAGEMAP_SCAN: {pagemap:?}. Target: median ≤ 10 µs, p99 ≤ 20 µs.\n\n"
    ));
    md.push_str("| threads | median | p99 | p99.9 | throughput |\n|---|---|---|---|---|\n");
    md.push_str(&row("1 (current-thread runtime)", st_times, st_wall));
    md.push_str(&row("2 (multi-thread runtime, 2 loops)", mt_times, mt_wall));

    // Component load cost.
    let (cold, cached) = single.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let c = runtime(Some(dir.path())).load(&noop).await.unwrap();
        let cold = t.elapsed();
        drop(c);
        let mut warm = Vec::new();
        for _ in 0..20 {
            let rt = runtime(Some(dir.path()));
            let t = Instant::now();
            let c = rt.load(&noop).await.unwrap();
            warm.push(t.elapsed());
            assert!(c.from_cache);
        }
        (cold, median(warm))
    });
    let release = release_binary_loads(&guest_path("taskbox_guest_noop"), 21);
    md.push_str(&format!(
        "\n### Loading a component ({} KiB no-op guest)\n\nTarget: a cached component loads in well under a millisecond. The load digests the wasm (sha256: its identity and cache key), maps the compiled artefact, pre-links it and probes `tasks()` in a throw-away instance. This bench process hashes with the portable sha256 that the native comparisons below need (cargo unifies that feature across the process); the release binary uses the CPU's SHA instructions where it has them, so its row is what an operator gets.\n\n| path | time |\n|---|---|\n| cold: compile with Cranelift, cache to disk, pre-link, probe `tasks()` | {} |\n| cached, in this bench process (median of 20) | {} |\n| cached, release `taskbox plugin info` (the `load:` it prints; median of 20 runs on one cache) | {} |\n",
        noop.len() / 1024,
        ms(cold),
        us(cached),
        match &release {
            Ok(times) => us(median(times.clone())),
            Err(why) => format!("not measured: {why}"),
        }
    ));

    // CPU-bound guest code vs native.
    let cpu = guest_bytes("taskbox_guest_cpu");
    let (sha_wasm, collatz_wasm, sha_fuel) = single.block_on(async {
        let rt = runtime(Some(cache.path()));
        let c = rt.load(&cpu).await.unwrap();
        let limits = Limits {
            fuel: Some(u64::MAX / 2),
            timeout: Duration::from_secs(600),
            ..Limits::default()
        };
        let grants = Arc::new(Grants::default());
        let backends = Backends::local();
        let mut sha = Vec::new();
        let mut fuel = 0;
        let mut collatz = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = rt
                .run(
                    &c,
                    invocation("cpu.sha256", "[1, 100]", &limits, &grants, &backends),
                )
                .await;
            sha.push(t.elapsed());
            fuel = r.stats.fuel_used;
            assert!(r.outcome.is_ok(), "{:?}", r.outcome);
            let t = Instant::now();
            let r = rt
                .run(
                    &c,
                    invocation("cpu.collatz", "[2000000]", &limits, &grants, &backends),
                )
                .await;
            collatz.push(t.elapsed());
            assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        }
        (median(sha), median(collatz), fuel)
    });
    let mut sha_native = Vec::new();
    let mut collatz_native = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(work::sha_chain(1, 100));
        sha_native.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(work::collatz_steps(std::hint::black_box(2_000_000)));
        collatz_native.push(t.elapsed());
    }
    let (sha_native, collatz_native) = (median(sha_native), median(collatz_native));
    md.push_str("\n### CPU-bound guest code vs the same source compiled natively\n\n");
    md.push_str("Median of 5 runs, guest inside the full sandbox (fuel metering and epoch deadline on). Native sha256 uses the portable implementation (`sha2/force-soft`, no SHA-NI), as the guest must. Target: ≤ 1.3×.\n\n");
    md.push_str("| workload | sandboxed wasm | native | ratio |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| sha256, 1 MiB × 100 chained ({} fuel) | {} | {} | {:.2}× |\n",
        sha_fuel,
        ms(sha_wasm),
        ms(sha_native),
        sha_wasm.as_secs_f64() / sha_native.as_secs_f64()
    ));
    md.push_str(&format!(
        "| Collatz steps below 2 000 000 (branchy) | {} | {} | {:.2}× |\n",
        ms(collatz_wasm),
        ms(collatz_native),
        collatz_wasm.as_secs_f64() / collatz_native.as_secs_f64()
    ));

    println!("{md}");
    if let Some(path) = out {
        if let Some(dir) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, md).unwrap();
    }
}
