//! A guest that misbehaves on request: `hostile.run(case, n=0, arg=None)` runs the behaviour
//! named by `case` (see `cases.rs`), sized by `n` and steered by `arg`. The conformance suite
//! drives it to prove each sandbox limit holds.

use std::hint::black_box;

use taskbox_sdk::{TaskError, Value, export_plugin, json, kv, log, mail, progress, queue, task};

include!("cases.rs");

macro_rules! define_case_enum {
    ($($case:ident),* $(,)?) => {
        #[allow(non_camel_case_types, reason = "case names are the task input strings")]
        #[derive(Debug, Clone, Copy)]
        enum Case { $($case),* }

        impl Case {
            fn parse(name: &str) -> Option<Case> {
                match name {
                    $(stringify!($case) => Some(Case::$case),)*
                    _ => None,
                }
            }
        }
    };
}
hostile_cases!(define_case_enum);

/// Runs one hostile behaviour.
#[task(name = "hostile.run")]
fn run(case: String, #[default(0)] n: u64, arg: Option<String>) -> Result<Value, TaskError> {
    let Some(parsed) = Case::parse(&case) else {
        return Err(TaskError::reject(format!("unknown case '{case}'")));
    };
    let arg = arg.unwrap_or_default();
    match parsed {
        Case::ok => Ok(json!("ok")),
        Case::burn => Ok(json!(burn(n))),
        Case::spin => loop {
            black_box(burn(1_000));
        },
        Case::spin_hostcall => loop {
            log::trace("spin");
        },
        Case::sleep => {
            std::thread::sleep(std::time::Duration::from_millis(n));
            Ok(json!("slept"))
        }
        Case::alloc => {
            // Touch every page so the memory is really committed.
            let v = vec![1u8; n as usize];
            Ok(json!(
                black_box(&v)
                    .iter()
                    .step_by(4096)
                    .map(|b| *b as u64)
                    .sum::<u64>()
            ))
        }
        Case::alloc_small_steps => {
            let mut keep: Vec<Vec<u8>> = Vec::new();
            loop {
                keep.push(vec![7u8; 1024]);
                black_box(&keep);
                if n > 0 && keep.len() as u64 >= n {
                    return Ok(json!(keep.len()));
                }
            }
        }
        Case::memory_grow_bomb => loop {
            // Grow raw linear memory one 64 KiB page at a time, bypassing the allocator.
            if core_grow() == usize::MAX {
                return Err(TaskError::fail("memory.grow returned -1"));
            }
        },
        Case::resource_bomb => {
            // Host-side handles (WASI pollables) created and never dropped: each one is an
            // entry in the host's resource table, which must be capped per task.
            let mut held = Vec::new();
            loop {
                held.push(new_pollable());
                if n > 0 && held.len() as u64 >= n {
                    return Ok(json!(held.len()));
                }
            }
        }
        Case::recurse => {
            let depth = if n == 0 { u64::MAX / 2 } else { n };
            Ok(json!(recurse(depth)))
        }
        Case::output => Ok(json!("x".repeat(n as usize))),
        Case::huge_error => Err(TaskError::fail("e".repeat(n as usize))),
        Case::log_flood => {
            for i in 0..n {
                log::info(format!("flood line {i} {}", "z".repeat(100)));
            }
            Ok(json!(n))
        }
        Case::progress_flood => {
            for i in 0..n {
                progress::report(i, n, Some("flooding"));
            }
            Ok(json!(n))
        }
        Case::read_file => std::fs::read_to_string(&arg)
            .map(|s| json!(s))
            .map_err(|e| TaskError::fail(format!("read {arg}: {e}"))),
        Case::write_file => std::fs::write(&arg, b"written by hostile guest")
            .map(|()| json!("written"))
            .map_err(|e| TaskError::fail(format!("write {arg}: {e}"))),
        Case::env => Ok(json!(std::env::var(&arg).ok())),
        Case::kv_get => Ok(json!(
            kv::get(&arg)?.map(|v| String::from_utf8_lossy(&v).into_owned())
        )),
        Case::kv_set => {
            kv::set(&arg, b"value")?;
            Ok(json!("set"))
        }
        Case::enqueue => {
            let mut ids = Vec::new();
            for i in 0..n.max(1) {
                let req = queue::Enqueue::new("hostile.run")
                    .args(json!(["ok"]))
                    .queue(arg.clone())
                    .priority((i % 10) as u8);
                ids.push(queue::enqueue(&req)?);
            }
            Ok(json!(ids.len()))
        }
        Case::mail => {
            let message = mail::Message {
                to: vec![arg.clone()],
                subject: format!("hostile {n}"),
                text: "hello".into(),
                ..Default::default()
            };
            Ok(json!(mail::send(&message)?))
        }
        Case::panic => panic!("hostile guest panicked on purpose"),
        Case::trap => {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
            #[cfg(not(target_arch = "wasm32"))]
            unreachable!("trap")
        }
        Case::fail => Err(TaskError::fail(format!("failing on purpose: {arg}"))),
        Case::reject => Err(TaskError::reject(format!("rejecting on purpose: {arg}"))),
        Case::retry => Err(TaskError::retry_after(
            "retry on purpose",
            std::time::Duration::from_millis(n),
        )),
    }
}

/// A known amount of work: `n` rounds of an integer mix. Fuel use grows linearly with `n`.
fn burn(n: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        x = black_box(x.rotate_left(5) ^ i).wrapping_mul(0x100_0000_01b3);
    }
    x
}

/// Non-tail recursion whose frames live on the wasm stack.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    black_box(recurse(black_box(depth - 1))).wrapping_add(1)
}

/// A fresh host resource (a WASI clock pollable).
#[cfg(target_arch = "wasm32")]
fn new_pollable() -> wasip2::io::poll::Pollable {
    wasip2::clocks::monotonic_clock::subscribe_duration(1)
}

#[cfg(not(target_arch = "wasm32"))]
fn new_pollable() -> u64 {
    0
}

fn core_grow() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_grow(0, 1)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        usize::MAX
    }
}

export_plugin!(run);
