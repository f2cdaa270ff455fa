//! Building a task's `Store`: limits, fuel and the wall-clock deadline are installed where the
//! store is born, so no store can ever run without them.

use std::time::Instant;

use wasmtime::{Engine, Store, UpdateDeadline};

use super::engine::FUEL_YIELD_INTERVAL;
use super::error::InterruptCause;
use super::state::HostState;

/// A store for one task with `fuel` units of fuel (`u64::MAX` when fuel is disabled for the
/// task), the memory limiter from `state`, and an epoch callback that enforces the deadline,
/// honours cancellation and yields to the async runtime on every tick.
pub(crate) fn new_store(engine: &Engine, state: HostState, fuel: u64) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Setting fuel only fails when fuel is disabled in the engine config, which ours enables.
    let _ = store.set_fuel(fuel);
    let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        let now = Instant::now();
        if let Some(reason) = state.clock.cancel.as_ref().and_then(|c| c.reason()) {
            state.clock.interrupt = Some(InterruptCause::Terminated(reason.to_string()));
            return Ok(UpdateDeadline::Interrupt);
        }
        if now >= state.clock.hard {
            state.clock.interrupt = Some(InterruptCause::Deadline(state.clock.timeout));
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some(soft) = state.clock.soft
            && now >= soft
            && !state.usage.soft_timeout_exceeded
        {
            state.usage.soft_timeout_exceeded = true;
            tracing::warn!(
                parent: &state.span,
                elapsed_ms = now.duration_since(state.clock.started).as_millis() as u64,
                "task passed its soft time limit"
            );
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store
}
