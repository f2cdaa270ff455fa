//! The least a task component can be: raw bindings to `taskbox:task@0.1.0` without the SDK
//! (no serde, no argument binding), serving one `noop` task. The sandbox benchmark runs it
//! beside the SDK-built no-op guest to separate the runtime's per-task cost from the guest's.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "taskbox:task/plugin",
});

struct Minimal;

impl exports::taskbox::task::handler::Guest for Minimal {
    fn tasks() -> Vec<String> {
        vec!["noop".to_string()]
    }

    fn run(
        _ctx: taskbox::task::types::TaskContext,
        _call: taskbox::task::types::Call,
    ) -> Result<Vec<u8>, taskbox::task::types::TaskError> {
        Ok(b"null".to_vec())
    }
}

export!(Minimal);
