//! Argument binding follows Python's rules, checked natively through `testing::call`.

use serde::{Deserialize, Serialize};
use taskbox_sdk::testing::{self, call};
use taskbox_sdk::{
    Context, Kwargs, RawJson, TaskError, Value, export_plugin, json, kv, log, mail, queue, task,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

#[task(name = "geo.shift")]
fn shift(
    p: Point,
    dx: i64,
    #[default(0)] dy: i64,
    label: Option<String>,
) -> Result<Value, TaskError> {
    if dx == i64::MAX {
        return Err(TaskError::reject("dx too large"));
    }
    Ok(json!({"x": p.x + dx, "y": p.y + dy, "label": label}))
}

#[task(name = "mail.send")]
fn send(
    template: String,
    to: String,
    #[default("en-US")] language: String,
    #[kwargs] values: Kwargs,
) -> Value {
    json!({"template": template, "to": to, "language": language, "values": values})
}

#[task]
fn whoami(ctx: &Context) -> String {
    format!("{}@{}#{}", ctx.name, ctx.queue, ctx.attempt)
}

#[task(name = "caps.use")]
fn use_caps(key: String) -> Result<u64, TaskError> {
    log::info("using caps");
    kv::set(&key, b"v")?;
    let id = queue::enqueue(&queue::Enqueue::new("next.step").args(json!([1])))?;
    mail::send(&mail::Message {
        to: vec!["a@example.com".into()],
        subject: "s".into(),
        text: "t".into(),
        ..Default::default()
    })?;
    Ok(id.len() as u64)
}

/// Returns JSON text it wrote itself.
#[task(name = "raw.pair")]
fn raw_pair(a: i64, b: i64) -> Result<RawJson, TaskError> {
    Ok(RawJson::new(format!("[{a}, {b}]").into_bytes()))
}

export_plugin!(shift, send, whoami, use_caps, raw_pair);

#[test]
fn raw_json_is_returned_as_written() {
    let out = call(TASKBOX_TASKS, "raw.pair", json!([1, 2]), json!({})).unwrap();
    assert_eq!(out, json!([1, 2]));
    let raw = RawJson::new(b"{\"k\": true}".to_vec());
    assert_eq!(raw.as_bytes(), b"{\"k\": true}");
    assert_eq!(
        taskbox_sdk::__private::IntoOutput::into_output(raw).unwrap(),
        b"{\"k\": true}".to_vec()
    );
}

#[test]
fn positional_then_keyword_binding_with_defaults() {
    let out = call(
        TASKBOX_TASKS,
        "geo.shift",
        json!([{"x": 1, "y": 2}, 10]),
        json!({}),
    )
    .unwrap();
    assert_eq!(out, json!({"x": 11, "y": 2, "label": null}));
    let out = call(
        TASKBOX_TASKS,
        "geo.shift",
        json!([]),
        json!({"p": {"x": 0, "y": 0}, "dx": 1, "dy": 5, "label": "a"}),
    )
    .unwrap();
    assert_eq!(out, json!({"x": 1, "y": 5, "label": "a"}));
}

#[test]
fn binding_errors_are_rejects_that_name_the_parameter() {
    let reject = |args: Value, kwargs: Value| match call(TASKBOX_TASKS, "geo.shift", args, kwargs) {
        Err(TaskError::Reject(m)) => m,
        other => panic!("expected reject, got {other:?}"),
    };
    assert_eq!(
        reject(json!([{"x": 1, "y": 2}]), json!({})),
        "missing required argument 'dx'"
    );
    assert_eq!(
        reject(json!([{"x": 1, "y": 2}, 1]), json!({"dx": 2})),
        "got multiple values for argument 'dx'"
    );
    assert_eq!(
        reject(json!([{"x": 1, "y": 2}, 1]), json!({"dz": 2})),
        "unexpected keyword argument 'dz'"
    );
    assert!(
        reject(json!([{"x": 1, "y": 2}, 1, 2, "l", 5]), json!({}))
            .contains("takes 4 positional arguments but 5 were given")
    );
    assert!(reject(json!([{"x": "one", "y": 2}, 1]), json!({})).starts_with("argument 'p':"));
    assert!(
        matches!(call(TASKBOX_TASKS, "geo.nope", json!([]), json!({})), Err(TaskError::Reject(m)) if m.contains("geo.shift"))
    );
}

#[test]
fn rest_kwargs_collect_unknown_keywords() {
    let out = call(
        TASKBOX_TASKS,
        "mail.send",
        json!(["invite", "a@example.com"]),
        json!({"name": "Ada", "language": "de-DE"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"template": "invite", "to": "a@example.com", "language": "de-DE", "values": {"name": "Ada"}})
    );
}

#[test]
fn context_is_injected_and_default_names_the_function() {
    assert_eq!(
        call(TASKBOX_TASKS, "whoami", json!([]), json!({})).unwrap(),
        json!("whoami@test#1")
    );
}

#[test]
fn capabilities_have_native_fakes() {
    testing::reset();
    assert_eq!(
        call(TASKBOX_TASKS, "caps.use", json!(["k1"]), json!({})).unwrap(),
        json!(36)
    );
    assert_eq!(testing::kv_entries().get("k1"), Some(&b"v".to_vec()));
    assert_eq!(testing::enqueued()[0].task, "next.step");
    assert_eq!(
        testing::sent_mail()[0].to,
        vec!["a@example.com".to_string()]
    );
    assert_eq!(testing::logs()[0].message, "using caps");

    testing::deny_kv();
    assert!(
        matches!(call(TASKBOX_TASKS, "caps.use", json!(["k2"]), json!({})), Err(TaskError::Fail(m)) if m.contains("kv denied"))
    );
}

#[test]
fn header_injection_is_refused_natively_too() {
    let err = mail::send(&mail::Message {
        to: vec!["a@example.com".into()],
        subject: "x\r\nBcc: b@example.com".into(),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, mail::MailError::Invalid(_)));
}
