//! A component built against a future, incompatible `taskbox:task@0.2.0` contract. The host
//! must refuse it at load time with an error naming both versions. The WIT is inline on
//! purpose: it is not ours to share, it stands for "someone else's newer SDK".

wit_bindgen::generate!({
    inline: r#"
        package taskbox:task@0.2.0;

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
            export handler;
        }
    "#,
});

struct Component;

impl exports::taskbox::task::handler::Guest for Component {
    fn tasks() -> Vec<String> {
        vec!["future.task".to_string()]
    }

    fn run(
        _ctx: taskbox::task::types::TaskContext,
        _call: taskbox::task::types::Call,
    ) -> Result<Vec<u8>, taskbox::task::types::TaskError> {
        Ok(b"null".to_vec())
    }
}

export!(Component);
