//! Sending tasks and reading results the way a Celery producer and result reader do: an LPUSH
//! of a protocol-v2 envelope, and polling `celery-task-meta-<id>` until it is final.

use std::time::{Duration, Instant};

use redis::Commands as _;
use serde_json::Value;
use taskbox::broker::message::{self, NewTask};

use crate::redis::RedisServer;

/// Publishes `task(*args, **kwargs)` on `queue`; returns its id.
pub fn send(redis: &RedisServer, task: &str, args: Value, kwargs: Value, queue: &str) -> String {
    let mut new = NewTask::new(task, queue);
    new.args = args.as_array().cloned().unwrap_or_default();
    new.kwargs = kwargs.as_object().cloned().unwrap_or_default();
    new.origin = "test@localhost".into();
    let (key, envelope) = message::encode(&new);
    let _: () = redis.conn().lpush(key, envelope).expect("LPUSH the task");
    new.id
}

/// The stored meta of a task, if any.
pub fn meta(redis: &RedisServer, id: &str) -> Option<Value> {
    let raw: Option<String> = redis
        .conn()
        .get(format!("celery-task-meta-{id}"))
        .unwrap_or(None);
    raw.and_then(|r| serde_json::from_str(&r).ok())
}

/// Waits for a final state (SUCCESS, FAILURE, REVOKED) and returns the meta.
pub fn wait_final(redis: &RedisServer, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(meta) = meta(redis, id)
            && matches!(
                meta["status"].as_str(),
                Some("SUCCESS" | "FAILURE" | "REVOKED")
            )
        {
            return meta;
        }
        assert!(
            Instant::now() < deadline,
            "no final result for {id} within {timeout:?} (last: {:?})",
            meta(redis, id)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits for SUCCESS and returns the result value; panics with the meta otherwise.
pub fn wait_success(redis: &RedisServer, id: &str, timeout: Duration) -> Value {
    let meta = wait_final(redis, id, timeout);
    assert_eq!(
        meta["status"], "SUCCESS",
        "task {id} did not succeed: {meta}"
    );
    meta["result"].clone()
}

/// Polls `ok` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
