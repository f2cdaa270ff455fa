//! The operator's broker commands: `send`, `result`, `dlq` and `purge`. Each connects with the
//! same configuration as the worker and speaks the same wire format.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

use crate::broker::message::{self, NewTask, Signature};
use crate::broker::{self, Broker};
use crate::cli::{DlqAction, DlqArgs, PurgeArgs, ResultArgs, SendArgs};
use crate::config::Config;
use crate::exec::read_json_arg;
use crate::registry;
use crate::results::{ResultStore, TaskState};

pub(crate) async fn connect(
    config: &Config,
) -> anyhow::Result<(Broker, ResultStore, redis::Client)> {
    let name = format!(
        "{}:cli:{}",
        crate::worker::default_name(),
        std::process::id()
    );
    let master = &broker::SentinelOptions::from_config(&config.broker);
    let broker = Broker::connect(
        &config.broker_url(),
        master,
        &name,
        &config.worker.dead_letter_key,
    )
    .await?;
    let results_client = broker::client_for(&config.results_url(), master).await?;
    let conn = if config.results_url() == config.broker_url() {
        broker.connection()
    } else {
        redis::aio::ConnectionManager::new(results_client.clone()).await?
    };
    let ttl = (!config.results.expires.is_zero()).then_some(config.results.expires);
    Ok((broker, ResultStore::new(conn, ttl), results_client))
}

fn origin() -> String {
    format!(
        "{}@{}",
        std::process::id(),
        crate::worker::default_name().trim_start_matches("taskbox@")
    )
}

/// `taskbox send`.
pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    let route = |task: &str| -> anyhow::Result<String> {
        registry::default_queue(&config, task).with_context(|| {
            format!("no queue for task '{task}': pass --queue, or route it in taskbox.toml ([tasks.\"{task}\"] queue = \"...\")")
        })
    };
    let arr = |flag: &str, v: &str| -> anyhow::Result<Vec<Value>> {
        match serde_json::from_str(&read_json_arg(flag, v)?)? {
            Value::Array(a) => Ok(a),
            _ => bail!("{flag} must be a JSON array"),
        }
    };
    let obj = |flag: &str, v: &str| -> anyhow::Result<Map<String, Value>> {
        match serde_json::from_str(&read_json_arg(flag, v)?)? {
            Value::Object(o) => Ok(o),
            _ => bail!("{flag} must be a JSON object"),
        }
    };
    let queue = match &args.queue {
        Some(q) => q.clone(),
        None => route(&args.task)?,
    };
    let mut task = NewTask::new(args.task.clone(), queue);
    task.args = arr("--args", &args.args)?;
    task.kwargs = obj("--kwargs", &args.kwargs)?;
    task.priority = args.priority.unwrap_or(0);
    task.origin = origin();
    let now = jiff::Timestamp::now();
    if let Some(countdown) = args.countdown {
        task.eta = Some(now.checked_add(seconds("--countdown", countdown)?)?);
    }
    if let Some(eta) = &args.eta {
        task.eta = Some(eta.parse::<jiff::Timestamp>().with_context(|| {
            format!("--eta '{eta}' is not an ISO-8601 time such as 2026-11-25T10:00:00Z")
        })?);
    }
    if let Some(expires) = args.expires {
        task.expires =
            Some(now.checked_add(jiff::SignedDuration::from_secs_f64(expires.max(0.0)))?);
    }
    // The chain rides in the first message, next step last, each with a pre-assigned id.
    let mut steps = Vec::new();
    for spec in &args.chain {
        let (name, kwargs) = match spec.split_once(':') {
            Some((name, kw)) => (name.to_string(), obj("--chain", kw)?),
            None => (spec.clone(), Map::new()),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut options = Map::new();
        options.insert("task_id".into(), id.clone().into());
        // A step with no route of its own follows the first task's queue.
        let step_queue =
            registry::default_queue(&config, &name).unwrap_or_else(|| task.queue.clone());
        options.insert("queue".into(), step_queue.into());
        steps.push((
            id,
            Signature {
                task: name,
                args: Vec::new(),
                kwargs,
                options,
                subtask_type: None,
                immutable: false,
                extra: Map::new(),
            },
        ));
    }
    let last_id = steps
        .last()
        .map_or_else(|| task.id.clone(), |(id, _)| id.clone());
    if !steps.is_empty() {
        task.embed.chain = Some(steps.into_iter().rev().map(|(_, s)| s).collect());
    }
    let (broker, results, client) = connect(&config).await?;
    let (list_key, envelope) = message::encode(&task);
    broker.publish(&list_key, &envelope).await?;
    let Some(wait) = args.wait else {
        println!("{}", task.id);
        return Ok(ExitCode::SUCCESS);
    };
    eprintln!("sent {} as {}", args.task, task.id);
    let meta = results
        .wait(&client, &last_id, wait_duration(wait)?)
        .await?;
    Ok(print_meta(&last_id, meta.as_ref(), true))
}

/// A non-negative number of seconds from a flag, as a signed duration for timestamps.
fn seconds(flag: &str, value: f64) -> anyhow::Result<jiff::SignedDuration> {
    if !(0.0..=10.0 * 365.0 * 86_400.0).contains(&value) {
        bail!("{flag} {value} is out of range: give seconds between 0 and ten years");
    }
    Ok(jiff::SignedDuration::from_secs_f64(value))
}

fn wait_duration(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("--wait {value} is not a number of seconds"))
}

/// Prints a result: the value on stdout for SUCCESS, the error on stderr otherwise; returns the
/// documented exit code.
fn print_meta(id: &str, meta: Option<&Value>, value_only: bool) -> ExitCode {
    let Some(meta) = meta else {
        eprintln!("{id}: PENDING (no result yet)");
        return ExitCode::from(7);
    };
    let status = meta.get("status").and_then(Value::as_str).unwrap_or("");
    match TaskState::parse(status) {
        Some(TaskState::Success) => {
            if value_only {
                println!("{}", meta.get("result").unwrap_or(&Value::Null));
            } else {
                println!("{meta}");
            }
            ExitCode::SUCCESS
        }
        Some(TaskState::Failure) | Some(TaskState::Revoked) => {
            let exc = meta.get("result").cloned().unwrap_or(Value::Null);
            let kind = exc
                .get("exc_type")
                .and_then(Value::as_str)
                .unwrap_or("Error");
            let message = exc
                .get("exc_message")
                .and_then(|m| m.get(0))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !value_only {
                println!("{meta}");
            }
            eprintln!("{id}: {status}: {kind}: {}", one_line(message));
            ExitCode::from(if status == "REVOKED" { 6 } else { 4 })
        }
        _ => {
            if !value_only {
                println!("{meta}");
            }
            eprintln!("{id}: {status} (not ready)");
            ExitCode::from(7)
        }
    }
}

/// `taskbox result`.
pub async fn result(args: ResultArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    let (_broker, results, client) = connect(&config).await?;
    let meta = match args.wait {
        Some(secs) => {
            results
                .wait(&client, &args.id, wait_duration(secs)?)
                .await?
        }
        None => results.get(&args.id).await?,
    };
    Ok(print_meta(&args.id, meta.as_ref(), false))
}

/// A message on one line: a guest's stderr (a panic message) may span several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn entry_id(entry: &Value) -> String {
    entry
        .get("task_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_default()
}

/// `taskbox dlq`.
pub async fn dlq(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    let (broker, _, _) = connect(&config).await?;
    let all = broker.dead_letters(0, isize::MAX / 2).await?;
    let parsed: Vec<(String, Value)> = all
        .into_iter()
        .map(|raw| {
            let v = serde_json::from_str(&raw)
                .unwrap_or_else(|_| json!({"reason": "unreadable entry", "raw": raw.clone()}));
            (raw, v)
        })
        .collect();
    match args.action {
        DlqAction::List { limit } => {
            let limit = usize::try_from(limit).unwrap_or(0);
            println!(
                "{:<36}  {:<24}  {:<16}  {:<22}  reason",
                "task id", "task", "queue", "kind"
            );
            for (_, v) in parsed.iter().take(limit) {
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                println!(
                    "{:<36}  {:<24}  {:<16}  {:<22}  {}",
                    entry_id(v),
                    s("task"),
                    s("queue"),
                    s("kind"),
                    one_line(&s("reason"))
                );
            }
            eprintln!("{} entries", parsed.len());
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Show { id } => match parsed.iter().find(|(_, v)| entry_id(v) == id) {
            Some((_, v)) => {
                println!("{}", serde_json::to_string_pretty(v)?);
                Ok(ExitCode::SUCCESS)
            }
            None => bail!("no dead-letter entry for task id {id}"),
        },
        DlqAction::Requeue { id, all } => {
            let chosen: Vec<&(String, Value)> = if all {
                parsed.iter().collect()
            } else {
                let id = id.context("give a task id, or --all")?;
                let found: Vec<_> = parsed.iter().filter(|(_, v)| entry_id(v) == id).collect();
                if found.is_empty() {
                    bail!("no dead-letter entry for task id {id}");
                }
                found
            };
            let mut moved = 0;
            for (raw_entry, v) in chosen {
                let (Some(list_key), Some(envelope)) = (
                    v.get("list_key").and_then(Value::as_str),
                    v.get("raw").and_then(Value::as_str),
                ) else {
                    eprintln!(
                        "skipping {}: the entry has no original queue or message",
                        entry_id(v)
                    );
                    continue;
                };
                // A fresh attempt: the retry counter starts over so the policy applies again.
                let envelope = reset_retries(envelope);
                if broker
                    .requeue_dead_letter(raw_entry, list_key, &envelope)
                    .await?
                {
                    moved += 1;
                    println!(
                        "requeued {} to {}",
                        entry_id(v),
                        message::queue_of_key(list_key)
                    );
                }
            }
            eprintln!("{moved} requeued");
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Purge => {
            let n = broker.purge_dead_letters().await?;
            println!("purged {n} dead-letter entries");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The envelope with `headers.retries` set to 0; unchanged when it does not parse.
fn reset_retries(envelope: &str) -> String {
    match serde_json::from_str::<Value>(envelope) {
        Ok(mut v) => {
            if let Some(h) = v.get_mut("headers").and_then(Value::as_object_mut) {
                h.insert("retries".into(), 0.into());
            }
            v.to_string()
        }
        Err(_) => envelope.to_string(),
    }
}

/// `taskbox purge`.
pub async fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.config()?;
    let (broker, _, _) = connect(&config).await?;
    for q in args
        .queues
        .split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        let n = broker.purge(q).await?;
        println!("{q}: purged {n} messages");
    }
    Ok(ExitCode::SUCCESS)
}
