//! Leak check: every fast-failing hostile behaviour 1 000 times in a row on one runtime, then the
//! process's resident memory, open file descriptors and threads are compared with where they
//! stood after a warm-up. Its own test binary (one test), so no other test shares the process
//! while it measures. The figures are printed and written to `target/conformance-leaks.md`.

use std::time::Duration;

use taskbox::runtime::{Capability, Enforcement, Grants, Limits};
use taskbox_tests::guests::{self, RunSpec};

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

fn snapshot() -> Snapshot {
    Snapshot {
        rss_kib: status_field("VmRSS:"),
        fds: open_fds(),
        threads: status_field("Threads:"),
    }
}

#[test]
fn a_thousand_hostile_runs_per_case_leak_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = tempfile::tempdir().unwrap();
        let runtime = guests::runtime(cache.path());
        let c = runtime.load(&guests::guest_bytes("taskbox_guest_hostile")).await.unwrap();
        let tight = Limits {
            fuel: Some(2_000_000),
            memory: 16 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_output: 1024,
            ..Limits::default()
        };
        let mut no_kv = Grants::all_capabilities();
        no_kv.capabilities.retain(|c| *c != Capability::Kv);
        no_kv.enforcement = Enforcement::AtCall;
        let cases: Vec<(&str, RunSpec, &str)> = vec![
            ("spin", RunSpec::hostile("spin", 0, "").limits(tight.clone()), "OutOfFuel"),
            ("memory_grow_bomb", RunSpec::hostile("memory_grow_bomb", 0, "").limits(tight.clone()), "MemoryLimit"),
            ("recurse", RunSpec::hostile("recurse", 0, "").limits(tight.clone()), "StackOverflow"),
            ("panic", RunSpec::hostile("panic", 0, "").limits(tight.clone()), "Trap"),
            ("trap", RunSpec::hostile("trap", 0, "").limits(tight.clone()), "Trap"),
            ("output", RunSpec::hostile("output", 10_000, "").limits(tight.clone()), "OutputTooLarge"),
            ("kv_set", RunSpec::hostile("kv_set", 0, "k").limits(tight.clone()).grants(no_kv), "CapabilityDenied"),
            ("read_file", RunSpec::hostile("read_file", 0, "/etc/passwd").limits(tight.clone()), "Fail"),
        ];
        // Warm-up: fill the pool's slots and the allocator's caches once.
        for (_, spec, _) in &cases {
            for _ in 0..50 {
                guests::run(&runtime, &c, spec.clone()).await;
            }
        }
        let before = snapshot();
        let mut rows = String::new();
        for (name, spec, kind) in &cases {
            let start = snapshot();
            for i in 0..1_000 {
                let report = guests::run(&runtime, &c, spec.clone()).await;
                let err = report.outcome.expect_err("hostile case fails");
                assert_eq!(err.kind(), *kind, "{name} run {i}");
            }
            let end = snapshot();
            rows.push_str(&format!(
                "| `{name}` | {kind} | {:+} KiB | {:+} | {:+} |\n",
                end.rss_kib as i64 - start.rss_kib as i64,
                end.fds as i64 - start.fds as i64,
                end.threads as i64 - start.threads as i64
            ));
        }
        let ok = guests::run(&runtime, &c, RunSpec::hostile("ok", 0, "")).await;
        assert!(ok.outcome.is_ok(), "the runtime still serves");
        let after = snapshot();
        let growth = after.rss_kib as i64 - before.rss_kib as i64;
        let doc = format!(
            "### Leak check (1 000 runs per case, one runtime)\n\nRSS {} KiB → {} KiB ({growth:+} KiB); open fds {} → {}; threads {} → {}.\n\n| case | error | RSS change | fd change | thread change |\n|---|---|---|---|---|\n{rows}",
            before.rss_kib, after.rss_kib, before.fds, after.fds, before.threads, after.threads
        );
        println!("{doc}");
        let out = taskbox_tests::target_dir().join("conformance-leaks.md");
        std::fs::write(out, &doc).unwrap();
        assert!(growth < 8 * 1024, "resident memory grew by {growth} KiB over 8 000 hostile runs");
        assert!(after.fds <= before.fds, "file descriptors leaked: {} → {}", before.fds, after.fds);
        assert!(after.threads <= before.threads, "threads leaked: {} → {}", before.threads, after.threads);
    });
}
