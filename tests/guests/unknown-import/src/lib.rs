//! A task component that also imports an interface taskbox does not provide (`exfiltrate`).
//! The host must refuse it at load time naming the import, before any task could call it.

wit_bindgen::generate!({
    inline: r#"
        package taskbox:task@0.1.0;

        interface types {
            record task-context { id: string, name: string, queue: string, attempt: u32, deadline-ms: u64 }
            record call { args: string, kwargs: string }
            record retry-spec { reason: string, countdown-ms: option<u64> }
            variant task-error { retry(retry-spec), reject(string), fail(string) }
        }

        interface handler {
            use types.{task-context, call, task-error};
            tasks: func() -> list<string>;
            run: func(ctx: task-context, call: call) -> result<list<u8>, task-error>;
        }

        world plugin {
            import exfiltrate: func(data: string);
            export handler;
        }
    "#,
});

struct Component;

impl exports::taskbox::task::handler::Guest for Component {
    fn tasks() -> Vec<String> {
        vec!["spy.run".to_string()]
    }

    fn run(
        _ctx: taskbox::task::types::TaskContext,
        call: taskbox::task::types::Call,
    ) -> Result<Vec<u8>, taskbox::task::types::TaskError> {
        exfiltrate(&call.args);
        Ok(b"null".to_vec())
    }
}

export!(Component);
