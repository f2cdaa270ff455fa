//! `ops.queue_monitor`: the deployment's queue-depth monitor, run by the worker itself because
//! it reads the broker (no component may). Each run compares every watched queue's depth with
//! the threshold; the first run over it opens an episode and sends one alert, runs while it
//! stays over send nothing, and the first run back under it closes the episode with a recovery
//! notice. Episodes live in Redis (`SET NX` / `DEL`), so several workers or overlapping runs
//! still send one alert per episode. The mails are `mail.send` tasks, so delivery, templates and
//! retries are the mail component's.

use serde_json::{Map, Value, json};

use super::Shared;
use crate::broker::message::{self, NewTask};

/// The task name beat schedules (`ENABLE_DATASETS_QUEUE_MONITOR`).
pub const TASK: &str = "ops.queue_monitor";

/// Redis key marking an open episode for `queue` (value: when it opened, ms).
pub fn episode_key(queue: &str) -> String {
    format!("taskbox:monitor:{queue}")
}

/// What one run needs: queues, threshold and recipients, from kwargs over the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Queues to watch.
    pub queues: Vec<String>,
    /// Depth above which a queue is alerting.
    pub threshold: u64,
    /// Who gets the mails.
    pub emails: Vec<String>,
}

impl Settings {
    /// The configured settings with the task's kwargs (`queues`, `threshold`, `emails`) applied;
    /// a kwarg of the wrong type is an error naming it.
    pub fn resolve(
        config: &crate::config::Config,
        kwargs: &Map<String, Value>,
    ) -> Result<Settings, String> {
        let m = &config.monitor;
        let mut s = Settings {
            queues: m.queues.clone(),
            threshold: m.threshold,
            emails: m.alert_emails.clone(),
        };
        for (key, value) in kwargs {
            match key.as_str() {
                "queues" => {
                    s.queues = strings(value).ok_or("queues must be a list of queue names")?;
                }
                "emails" => {
                    s.emails = strings(value).ok_or("emails must be a list of addresses")?;
                }
                "threshold" => {
                    s.threshold = value
                        .as_u64()
                        .ok_or("threshold must be a non-negative integer")?;
                }
                other => {
                    return Err(format!(
                        "unexpected keyword argument '{other}' (known: queues, threshold, emails)"
                    ));
                }
            }
        }
        if s.queues.is_empty() {
            return Err("no queues to watch; set QUEUE_MONITOR_QUEUES or pass queues=[...]".into());
        }
        Ok(s)
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// Runs one check; returns the task's result.
pub async fn run(shared: &Shared, settings: &Settings) -> anyhow::Result<Value> {
    let mut checked = Vec::new();
    let mut conn = shared.broker.connection();
    for queue in &settings.queues {
        let depth = shared.broker.depth(queue).await?;
        let key = episode_key(queue);
        let over = depth > settings.threshold;
        let mut event = Value::Null;
        if over {
            let opened: bool = redis::cmd("SET")
                .arg(&key)
                .arg(crate::broker::now_ms())
                .arg("NX")
                .query_async::<Option<String>>(&mut conn)
                .await?
                .is_some();
            if opened {
                tracing::warn!(
                    queue,
                    depth,
                    threshold = settings.threshold,
                    "queue over its threshold; alerting"
                );
                let ids = send_mail(shared, "queue_monitor_alert", settings, queue, depth).await?;
                event = json!({"alert": ids});
            }
        } else {
            let closed: u64 = redis::AsyncCommands::del(&mut conn, &key).await?;
            if closed > 0 {
                tracing::info!(
                    queue,
                    depth,
                    threshold = settings.threshold,
                    "queue back under its threshold; sending recovery notice"
                );
                let ids =
                    send_mail(shared, "queue_monitor_recovery", settings, queue, depth).await?;
                event = json!({"recovery": ids});
            }
        }
        checked.push(json!({
            "queue": queue,
            "depth": depth,
            "threshold": settings.threshold,
            "alerting": over,
            "sent": event,
        }));
    }
    Ok(json!({ "checked": checked }))
}

/// Enqueues one `mail.send` per recipient list; returns the task ids.
async fn send_mail(
    shared: &Shared,
    template: &str,
    settings: &Settings,
    queue: &str,
    depth: u64,
) -> anyhow::Result<Vec<String>> {
    if settings.emails.is_empty() {
        tracing::warn!(
            queue,
            "no QUEUE_MONITOR_ALERT_EMAILS configured; nobody is told"
        );
        return Ok(Vec::new());
    }
    let mut kwargs = Map::new();
    kwargs.insert("queue_name".into(), json!(queue));
    kwargs.insert("queue_length".into(), json!(depth));
    kwargs.insert("threshold".into(), json!(settings.threshold));
    if template == "queue_monitor_alert" {
        kwargs.insert(
            "alert_time".into(),
            json!(message::format_timestamp(jiff::Timestamp::now())),
        );
    }
    let mut task = NewTask::new("mail.send", "mail");
    task.args = vec![json!(template), json!(settings.emails)];
    task.kwargs = kwargs;
    task.origin = shared.origin.clone();
    let (key, envelope) = message::encode(&task);
    shared.broker.publish(&key, &envelope).await?;
    Ok(vec![task.id])
}
