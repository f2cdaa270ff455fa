//! The single `bindgen!` of the `taskbox:task/plugin` world: generated host traits for each
//! capability and typed access to the component's `handler` export.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "taskbox:task/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::taskbox::task::{housekeeping, kv, log, mail, progress, queue};
pub use exports::taskbox::task::handler::{Call, TaskContext, TaskError as WitTaskError};
