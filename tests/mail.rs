//! Mail end to end: the built-in `mail` component (embedded in the `taskbox` binary) run by a
//! real worker with `MAIL_TYPE=smtp`, delivering to a real SMTP server (aiosmtpd, see
//! `tests/smtp_server.py`). Covers delivery and content, a 451 that is retried, a 550 that is
//! rejected, and a server that is down until the retry finds it up.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};
use taskbox::broker::message::{self, NewTask};
use taskbox_tests::redis::{RedisServer, free_port};
use taskbox_tests::smtp::{Refuse, SmtpServer};
use taskbox_tests::worker::WorkerProcess;

const SENDER: &str = "no-reply@dify.test";

/// A worker serving only the `mail` queue, sending over SMTP to `smtp_port`, with fast retries
/// for `mail.send` so a retried task does not keep the test waiting.
fn start_worker(redis: &RedisServer, dir: &std::path::Path, smtp_port: u16) -> WorkerProcess {
    let cache = taskbox_tests::target_dir().join("test-component-cache");
    let toml = format!(
        r#"
[worker]
queues = ["mail"]
heartbeat_interval = "300ms"
dead_after = "2s"
delayed_poll = "20ms"
shutdown_grace = "5s"
cache_dir = "{cache}"

[mail]
kind = "smtp"
smtp_server = "127.0.0.1"
smtp_port = {smtp_port}
default_from = "{SENDER}"

[tasks."mail.send".retry]
max_retries = 20
backoff = "200ms"
backoff_max = "500ms"
jitter = false
"#,
        cache = cache.display(),
    );
    let config = dir.join("taskbox.toml");
    std::fs::write(&config, toml).expect("write taskbox.toml");
    let worker = WorkerProcess::start(redis, &config, &["-c", "2"]);
    assert!(
        worker.logs().contains("plugin=mail"),
        "the built-in mail component is not embedded in target/debug/taskbox: run \
         `cargo build --target wasm32-wasip2 --profile guest -p taskbox-plugin-mail` and then \
         `cargo build -p taskbox`\n{}",
        worker.logs()
    );
    worker
}

/// Publishes `mail.send(**kwargs)` on the `mail` queue as a Celery producer would.
fn send_mail(redis: &RedisServer, kwargs: Value) -> String {
    let mut new = NewTask::new("mail.send", "mail");
    new.kwargs = kwargs.as_object().cloned().unwrap_or_default();
    new.origin = "test@localhost".into();
    let (key, envelope) = message::encode(&new);
    let _: () = redis.conn().lpush(key, envelope).unwrap();
    new.id
}

/// The stored result meta of task `id`, if any.
fn meta(redis: &RedisServer, id: &str) -> Option<Value> {
    let raw: Option<String> = redis
        .conn()
        .get(format!("celery-task-meta-{id}"))
        .unwrap_or(None);
    raw.map(|r| serde_json::from_str(&r).expect("result meta is JSON"))
}

/// Waits until task `id`'s stored status is one of `statuses`.
fn wait_status(redis: &RedisServer, id: &str, statuses: &[&str], worker: &WorkerProcess) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(meta) = meta(redis, id)
            && statuses.iter().any(|s| meta["status"] == *s)
        {
            return meta;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never reached {statuses:?} (last: {:?})\n{}",
            meta(redis, id),
            worker.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn invite(to: &str) -> Value {
    json!({
        "template": "invite_member",
        "to": to,
        "inviter_name": "Grace Hopper",
        "workspace_name": "Research <Lab>",
        "url": "https://dify.test/activate?token=t1&email=ada",
    })
}

#[test]
fn invite_is_delivered_over_smtp_with_subject_text_and_html() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start(free_port(), None);
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(&redis, dir.path(), smtp.port());

    let id = send_mail(&redis, invite("ada@example.com"));
    let meta = wait_status(&redis, &id, &["SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    let result = &meta["result"];
    assert_eq!(result["template"], "invite_member");
    assert_eq!(result["language"], "en-US");
    assert_eq!(result["to"], json!(["ada@example.com"]));
    assert_eq!(
        result["subject"],
        "Grace Hopper invited you to join Research <Lab> on Dify"
    );
    assert_eq!(meta["taskbox"]["attempt"], 1);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert_eq!(mail.json["mail_from"], SENDER);
    assert_eq!(mail.json["rcpt_tos"], json!(["ada@example.com"]));
    assert_eq!(mail.field("from"), SENDER);
    assert_eq!(mail.field("to"), "ada@example.com");
    assert_eq!(mail.field("subject"), result["subject"]);
    assert_eq!(mail.field("message_id"), result["message_id"]);
    let text = mail.field("text");
    assert!(
        text.contains("Grace Hopper has invited you to join the workspace Research <Lab> on Dify"),
        "{text}"
    );
    assert!(
        text.contains("https://dify.test/activate?token=t1&email=ada"),
        "{text}"
    );
    let html = mail.field("html");
    assert!(html.contains("Research &lt;Lab&gt;"), "{html}");
    assert!(!html.contains("<Lab>"), "{html}");
    assert!(
        html.contains("href=\"https://dify.test/activate?token=t1&amp;email=ada\""),
        "{html}"
    );

    // Non-ASCII subject and body survive the trip (encoded words, transfer encodings).
    let id = send_mail(
        &redis,
        json!({"template": "email_code_login", "to": ["ada@example.com", "bob@example.com"],
               "language": "zh-Hans", "code": "864209"}),
    );
    let meta = wait_status(&redis, &id, &["SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    let mail = &messages[1];
    assert_eq!(mail.field("subject"), "您的 Dify 登录验证码");
    assert_eq!(
        mail.json["rcpt_tos"],
        json!(["ada@example.com", "bob@example.com"])
    );
    assert!(mail.field("text").contains("请使用以下验证码登录 Dify"));
    assert!(mail.field("text").contains("864209"));
    assert!(mail.field("html").contains("<html lang=\"zh-Hans\">"));
}

#[test]
fn a_451_is_retried_and_the_mail_is_sent_once_on_a_later_attempt() {
    let redis = RedisServer::start();
    let refuse = Refuse {
        count: 1,
        at: "data",
        code: "451",
    };
    let smtp = SmtpServer::start(free_port(), Some(refuse));
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(&redis, dir.path(), smtp.port());

    let id = send_mail(&redis, invite("ada@example.com"));
    let meta = wait_status(&redis, &id, &["SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert_eq!(
        meta["taskbox"]["attempt"], 2,
        "succeeded on the retry: {meta}"
    );
    assert_eq!(smtp.refusals(), ["data 451 4.3.0 try again later"]);
    assert_eq!(smtp.messages().len(), 1, "exactly one message delivered");
    let logs = worker.logs();
    assert!(
        logs.contains("retry scheduled") && logs.contains("451"),
        "{logs}"
    );
}

#[test]
fn a_550_is_a_reject_that_is_not_retried() {
    let redis = RedisServer::start();
    let refuse = Refuse {
        count: 1,
        at: "rcpt",
        code: "550",
    };
    let smtp = SmtpServer::start(free_port(), Some(refuse));
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(&redis, dir.path(), smtp.port());

    let id = send_mail(&redis, invite("ada@example.com"));
    let meta = wait_status(&redis, &id, &["SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "FAILURE", "{meta}");
    assert_eq!(meta["result"]["exc_type"], "Reject", "{meta}");
    let message = meta["result"]["exc_message"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("550") && message.contains("message refused"),
        "{message}"
    );
    assert_eq!(meta["taskbox"]["attempt"], 1, "not retried: {meta}");
    assert_eq!(smtp.refusals().len(), 1);
    assert!(smtp.messages().is_empty());
    let dead: Vec<String> = redis.conn().lrange("taskbox:dead_letter", 0, -1).unwrap();
    assert_eq!(dead.len(), 1, "the refused mail is dead-lettered: {dead:?}");
}

#[test]
fn a_server_that_is_down_means_retries_until_it_is_back() {
    let redis = RedisServer::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(&redis, dir.path(), port);

    let id = send_mail(&redis, invite("ada@example.com"));
    let meta = wait_status(&redis, &id, &["RETRY", "SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "RETRY", "{meta}");
    assert_eq!(meta["result"]["exc_type"], "Retry", "{meta}");
    let reason = meta["result"]["exc_message"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("temporarily failed") && reason.contains(&format!("127.0.0.1:{port}")),
        "{reason}"
    );

    let smtp = SmtpServer::start(port, None);
    let meta = wait_status(&redis, &id, &["SUCCESS", "FAILURE"], &worker);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert!(
        meta["taskbox"]["attempt"].as_u64().unwrap_or(0) >= 2,
        "{meta}"
    );
    assert_eq!(smtp.messages().len(), 1);
}
