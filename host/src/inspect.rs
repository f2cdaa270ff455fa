//! `taskbox inspect` and `taskbox control`: broadcast a request on the control channel, collect
//! the replies of the live workers until they have all answered or the timeout passes, and mark
//! every live worker that stayed silent. `inspect queues` and `inspect scheduled` are read from
//! Redis directly: queues and the delayed set are shared by the fleet, not held by a worker.

/// `println!` that ignores a closed stdout (`taskbox ... | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::broker::{self, message};
use crate::cli::{ControlArgs, ControlCommand, InspectArgs, InspectCommand};
use crate::config::Config;
use crate::worker::control::{CONTROL_CHANNEL, Reply, Request, info_key, remember_revoked};

/// A live worker, as its heartbeat and published description show it.
#[derive(Debug, Clone)]
pub struct LiveWorker {
    /// Worker id (`name:pid:nonce`).
    pub id: String,
    /// Its published description, if still there.
    pub info: Option<Value>,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
}

/// Workers whose heartbeat is younger than `dead_after`.
pub async fn live_workers(
    conn: &mut redis::aio::MultiplexedConnection,
    dead_after: Duration,
) -> anyhow::Result<Vec<LiveWorker>> {
    let now = broker::now_ms();
    let since = now.saturating_sub(dead_after.as_millis() as u64);
    let ids: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(broker::WORKERS)
        .arg(since)
        .arg("+inf")
        .arg("BYSCORE")
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .context("failed to read the worker list")?;
    let mut out = Vec::new();
    for (id, beat) in ids {
        let raw: Option<String> = redis::AsyncCommands::get(conn, info_key(&id)).await?;
        out.push(LiveWorker {
            info: raw.and_then(|r| serde_json::from_str(&r).ok()),
            heartbeat_age_ms: now.saturating_sub(beat as u64),
            id,
        });
    }
    Ok(out)
}

async fn connect(
    config: &Config,
) -> anyhow::Result<(redis::Client, redis::aio::MultiplexedConnection)> {
    let url = config.broker_url();
    let client = redis::Client::open(url.as_str())
        .with_context(|| format!("bad broker URL {}", crate::config::redact_url(&url)))?;
    let conn = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the broker did not answer within 3s"))?
    .with_context(|| {
        format!(
            "cannot reach the broker at {}",
            crate::config::redact_url(&url)
        )
    })?;
    Ok((client, conn))
}

/// Broadcasts `command` and collects replies. Returns the replies by worker id and the live
/// workers that were expected to answer.
async fn broadcast(
    client: &redis::Client,
    conn: &mut redis::aio::MultiplexedConnection,
    config: &Config,
    command: &str,
    args: Value,
    destination: &[String],
    timeout: Duration,
) -> anyhow::Result<(BTreeMap<String, Reply>, Vec<LiveWorker>)> {
    let live = live_workers(conn, config.worker.dead_after).await?;
    let expected: Vec<LiveWorker> = live
        .into_iter()
        .filter(|w| {
            destination.is_empty()
                || destination.iter().any(|d| {
                    d == &w.id || w.info.as_ref().and_then(|i| i["name"].as_str()) == Some(d)
                })
        })
        .collect();
    let id = uuid::Uuid::new_v4().to_string();
    let reply_to = format!("taskbox:reply:{id}");
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .context("failed to open a reply subscription")?;
    pubsub.subscribe(&reply_to).await?;
    let request = Request {
        id: id.clone(),
        command: command.to_string(),
        args,
        destination: destination.to_vec(),
        reply_to,
    };
    let _: u64 =
        redis::AsyncCommands::publish(conn, CONTROL_CHANNEL, serde_json::to_string(&request)?)
            .await
            .context("failed to publish the request")?;
    let mut replies = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = pubsub.on_message();
    while replies.len() < expected.len() {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, stream.next()).await else {
            break;
        };
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        if let Ok(reply) = serde_json::from_str::<Reply>(&payload)
            && reply.id == id
        {
            replies.insert(reply.worker.clone(), reply);
        }
    }
    Ok((replies, expected))
}

fn render(
    command: &str,
    replies: &BTreeMap<String, Reply>,
    expected: &[LiveWorker],
    as_json: bool,
) -> ExitCode {
    let mut silent = Vec::new();
    for w in expected {
        if !replies.contains_key(&w.id) {
            silent.push(w.id.clone());
        }
    }
    if as_json {
        let out = json!({
            "command": command,
            "replies": replies.values().map(|r| json!({"worker": r.worker, "name": r.name, "ok": r.ok, "reply": r.reply})).collect::<Vec<_>>(),
            "no_reply": silent,
        });
        out!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        if replies.is_empty() && silent.is_empty() {
            out!("no live workers");
        }
        for r in replies.values() {
            let status = if r.ok { "OK" } else { "ERROR" };
            out!("-> {} ({}): {status}", r.name, r.worker);
            match &r.reply {
                Value::String(s) => out!("    {s}"),
                Value::Array(items) if items.is_empty() => out!("    - empty -"),
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => out!("    * {s}"),
                            other => out!("    * {other}"),
                        }
                    }
                }
                other => {
                    for line in serde_json::to_string_pretty(other)
                        .unwrap_or_default()
                        .lines()
                    {
                        out!("    {line}");
                    }
                }
            }
        }
        for id in &silent {
            out!("-> {id}: NO REPLY within the timeout (alive by heartbeat, but did not answer)");
        }
    }
    if silent.is_empty() && replies.values().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `taskbox inspect ...`.
pub async fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let config = args.fleet.common.config()?;
    let (client, mut conn) = connect(&config).await?;
    let command = match args.command {
        InspectCommand::Queues => return queues(&config, &mut conn, args.fleet.json).await,
        InspectCommand::Scheduled => return scheduled(&mut conn, args.fleet.json).await,
        InspectCommand::Ping => "ping",
        InspectCommand::Active => "active",
        InspectCommand::Reserved => "reserved",
        InspectCommand::Registered => "registered",
        InspectCommand::Stats => "stats",
    };
    let (replies, expected) = broadcast(
        &client,
        &mut conn,
        &config,
        command,
        Value::Null,
        &args.fleet.destination,
        args.fleet.timeout,
    )
    .await?;
    Ok(render(command, &replies, &expected, args.fleet.json))
}

/// `taskbox control ...`.
pub async fn control(args: ControlArgs) -> anyhow::Result<ExitCode> {
    let config = args.fleet.common.config()?;
    let (client, mut conn) = connect(&config).await?;
    let (command, payload) = match &args.command {
        ControlCommand::Shutdown => ("shutdown", Value::Null),
        ControlCommand::PoolGrow { n } => ("pool_grow", json!({ "n": n })),
        ControlCommand::PoolShrink { n } => ("pool_shrink", json!({ "n": n })),
        ControlCommand::Revoke { id, terminate } => {
            // Remembered in Redis first, so workers that start later (or miss the broadcast
            // during a reconnect) still skip the task.
            remember_revoked(&mut conn, std::slice::from_ref(id))
                .await
                .context("failed to record the revocation")?;
            ("revoke", json!({ "id": id, "terminate": terminate }))
        }
    };
    let (replies, expected) = broadcast(
        &client,
        &mut conn,
        &config,
        command,
        payload,
        &args.fleet.destination,
        args.fleet.timeout,
    )
    .await?;
    Ok(render(command, &replies, &expected, args.fleet.json))
}

async fn queues(
    config: &Config,
    conn: &mut redis::aio::MultiplexedConnection,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let (broker, _, _) = crate::ops::connect(config).await?;
    let sizes = broker.sizes(&config.worker.queues).await?;
    // Unacked and delayed messages are counted per queue from their stored routing.
    let unacked: Vec<String> = redis::AsyncCommands::hvals(conn, broker::UNACKED).await?;
    let mut unacked_by_queue: BTreeMap<String, u64> = BTreeMap::new();
    for raw in &unacked {
        let q = serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get(2).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "?".to_string());
        *unacked_by_queue.entry(q).or_default() += 1;
    }
    let delayed: Vec<String> = redis::AsyncCommands::zrange(conn, broker::DELAYED, 0, -1).await?;
    let mut delayed_by_queue: BTreeMap<String, u64> = BTreeMap::new();
    for member in &delayed {
        let q = serde_json::from_str::<Value>(member)
            .ok()
            .and_then(|v| {
                v.get(0)
                    .and_then(Value::as_str)
                    .map(|k| message::queue_of_key(k).to_string())
            })
            .unwrap_or_else(|| "?".to_string());
        *delayed_by_queue.entry(q).or_default() += 1;
    }
    let dead = sizes.dead_letters;
    let mut rows = Vec::new();
    for (q, depths) in &sizes.depths {
        let by_priority: BTreeMap<String, u64> = message::PRIORITY_STEPS
            .iter()
            .zip(depths)
            .map(|(p, n)| (p.to_string(), *n))
            .collect();
        rows.push(json!({
            "queue": q,
            "depth": by_priority.values().sum::<u64>(),
            "by_priority": by_priority,
            "unacked": unacked_by_queue.get(q).copied().unwrap_or(0),
            "delayed": delayed_by_queue.get(q).copied().unwrap_or(0),
        }));
    }
    if as_json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({"queues": rows, "dead_letters": dead}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{:<32} {:>7} {:>8} {:>8}  BY PRIORITY (0/3/6/9)",
        "QUEUE",
        "DEPTH",
        "UNACKED",
        "DELAYED"
    );
    for r in &rows {
        let bp = &r["by_priority"];
        out!(
            "{:<32} {:>7} {:>8} {:>8}  {}/{}/{}/{}",
            r["queue"].as_str().unwrap_or("?"),
            r["depth"],
            r["unacked"],
            r["delayed"],
            bp["0"],
            bp["3"],
            bp["6"],
            bp["9"]
        );
    }
    out!("dead letters ({}): {dead}", config.worker.dead_letter_key);
    Ok(ExitCode::SUCCESS)
}

async fn scheduled(
    conn: &mut redis::aio::MultiplexedConnection,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let entries: Vec<(String, f64)> =
        redis::AsyncCommands::zrange_withscores(conn, broker::DELAYED, 0, 999).await?;
    let rows: Vec<Value> = entries
        .into_iter()
        .filter_map(|(member, due)| {
            let parsed: Value = serde_json::from_str(&member).ok()?;
            let envelope: Value = serde_json::from_str(parsed.get(1)?.as_str()?).ok()?;
            let headers = envelope.get("headers")?;
            let due = jiff::Timestamp::from_millisecond(due as i64).ok()?;
            Some(json!({
                "id": headers.get("id"),
                "name": headers.get("task"),
                "queue": message::queue_of_key(parsed.get(0)?.as_str()?),
                "eta": message::format_timestamp(due),
            }))
        })
        .collect();
    if as_json {
        out!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        out!("no scheduled tasks");
    } else {
        for r in &rows {
            out!(
                "{}  {}  {}  on {}",
                r["eta"].as_str().unwrap_or("?"),
                r["id"].as_str().unwrap_or("?"),
                r["name"].as_str().unwrap_or("?"),
                r["queue"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
