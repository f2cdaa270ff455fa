//! The table growth bomb: a component whose task loops `table.grow` on a funcref table. Rust
//! guests cannot emit `table.grow`, so the component is written in the WebAssembly text format
//! (`tests/guests/table-bomb/table_bomb.wat`) and assembled here at test time.

use super::*;

/// The cap the cases below run under, well inside the pool's per-table ceiling.
pub(super) const CAP: u64 = 10_000;

/// The component's wasm bytes, assembled from its source.
pub(super) fn bytes() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guests")
        .join("table-bomb")
        .join("table_bomb.wat");
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{} does not assemble: {e}", path.display()))
}

/// `table_bomb.run(n)`: grow the table to `n` elements, or forever with `n = 0`.
pub(super) fn spec(n: u64, table_elements: u64) -> RunSpec {
    RunSpec::call("table_bomb.run", json!([n])).limits(Limits {
        table_elements,
        ..limits()
    })
}

async fn loaded(rt: &Runtime) -> Arc<LoadedComponent> {
    rt.load(&bytes()).await.expect("the table bomb loads")
}

#[tokio::test]
async fn loads_as_a_task_component_with_no_capabilities() {
    let rt = guests::runtime(cache_dir());
    let c = loaded(&rt).await;
    assert_eq!(c.tasks, vec!["table_bomb.run".to_string()]);
    assert!(c.capabilities.is_empty(), "{:?}", c.capabilities);
}

#[tokio::test]
async fn growth_within_the_cap_succeeds() {
    let rt = guests::runtime(cache_dir());
    let c = loaded(&rt).await;
    let report = run(&rt, &c, spec(CAP / 2, CAP)).await;
    assert_eq!(output(&report), json!([CAP / 2]));
}

#[tokio::test]
async fn table_grow_loop_fails_with_memory_limit_naming_the_table() {
    let (rt, hostile) = hostile().await;
    let c = loaded(&rt).await;
    let err = error(run(&rt, &c, spec(0, CAP)).await);
    assert!(
        matches!(
            err,
            SandboxError::MemoryLimit {
                resource: "table elements",
                requested,
                limit: CAP,
            } if requested == CAP + 1
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), "MemoryLimit");
    assert!(err.to_string().contains("table elements"), "{err}");
    // The same runtime runs the next task normally, on this component and on another.
    assert_eq!(output(&run(&rt, &c, spec(100, CAP)).await), json!([100]));
    assert_next_task_succeeds(&rt, &hostile).await;
}

#[tokio::test]
async fn a_cap_above_the_pool_ceiling_still_fails_with_memory_limit() {
    // The pool's table slots hold `EngineSettings::max_table_elements` (100 000 by default): a
    // task granted more must still be stopped by the limit, not handed a -1 from `table.grow`.
    let (rt, hostile) = hostile().await;
    let c = loaded(&rt).await;
    let ceiling = u64::from(taskbox::runtime::EngineSettings::default().max_table_elements);
    let err = error(run(&rt, &c, spec(0, ceiling * 10)).await);
    assert!(
        matches!(
            err,
            SandboxError::MemoryLimit {
                resource: "table elements",
                limit,
                ..
            } if limit == ceiling
        ),
        "{err:?}"
    );
    assert_next_task_succeeds(&rt, &hostile).await;
}
