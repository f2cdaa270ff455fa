//! A task component that traps as soon as the host asks what it serves (the host's load-time
//! probe instantiates it and calls `handler.tasks()`). It must be refused with `Trap` at load,
//! before any task is routed to it.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "taskbox:task/plugin",
});

struct Component;

impl exports::taskbox::task::handler::Guest for Component {
    fn tasks() -> Vec<String> {
        panic!("refusing to say which tasks I serve")
    }

    fn run(
        _ctx: taskbox::task::types::TaskContext,
        _call: taskbox::task::types::Call,
    ) -> Result<Vec<u8>, taskbox::task::types::TaskError> {
        Ok(b"null".to_vec())
    }
}

export!(Component);
