//! Celery's own remote control, as far as a taskbox worker can honour it: `celery inspect ping`
//! (and `app.control.ping()`) get a `pong`, and `app.control.revoke(id, terminate=...)` revokes
//! exactly as `taskbox control revoke` does. Kombu broadcasts these as JSON envelopes on the
//! pub/sub channel `/<db>.celery.pidbox`; the reply goes, as a kombu message carrying the
//! request's ticket, onto the list `<reply routing key>.reply.celery.pidbox` the caller polls.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::Shared;
use super::control;

/// The pub/sub channel kombu's Redis transport broadcasts `celery.pidbox` on, for `db`.
pub fn channel(db: i64) -> String {
    format!("/{db}.celery.pidbox")
}

/// The database number in a broker URL (`redis://h:6379/3` → 3; none → 0).
pub fn db_of(url: &str) -> i64 {
    url.split(';')
        .next()
        .and_then(|first| first.rsplit_once('/'))
        .and_then(|(_, tail)| tail.split('?').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Listens for Celery broadcasts until shutdown, reconnecting after broker outages.
pub async fn listen(shared: Arc<Shared>, client: redis::Client, db: i64) {
    let cancel = shared.shutdown.token();
    let channel = channel(db);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match subscribed.await {
            Ok(p) => p,
            Err(err) => {
                tracing::debug!(error = %err, "Celery control channel unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = cancel.cancelled() => return,
                }
            }
        };
        let mut stream = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                () = cancel.cancelled() => return,
            };
            let Some(msg) = msg else { break };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if let Err(reason) = handle(&shared, &payload).await {
                tracing::debug!(%reason, "ignoring a Celery control message");
            }
        }
    }
}

/// The request inside a kombu envelope: `(method, arguments, destination, ticket, reply key)`.
struct Request {
    method: String,
    arguments: Value,
    destination: Option<Vec<String>>,
    ticket: Option<String>,
    reply_key: Option<String>,
}

fn parse(payload: &str) -> Result<Request, String> {
    let envelope: Value = serde_json::from_str(payload).map_err(|e| format!("not JSON: {e}"))?;
    let raw = envelope["body"].as_str().ok_or("no body")?;
    let body: Value = if envelope["properties"]["body_encoding"] == "base64" {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| format!("body is not base64: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("body is not JSON: {e}"))?
    } else {
        serde_json::from_str(raw).map_err(|e| format!("body is not JSON: {e}"))?
    };
    Ok(Request {
        method: body["method"].as_str().ok_or("no method")?.to_string(),
        arguments: body["arguments"].clone(),
        destination: body["destination"].as_array().map(|d| {
            d.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        }),
        ticket: body["ticket"].as_str().map(str::to_string),
        reply_key: body["reply_to"]["routing_key"].as_str().map(str::to_string),
    })
}

async fn handle(shared: &Shared, payload: &str) -> Result<(), String> {
    let req = parse(payload)?;
    if let Some(dest) = &req.destination
        && !dest.iter().any(|d| d == &shared.name)
    {
        return Ok(());
    }
    let reply = match req.method.as_str() {
        "ping" => json!({"ok": "pong"}),
        "revoke" => revoke(shared, &req.arguments).await,
        // Peers starting up ask who is there; taskbox keeps its own revocations in Redis.
        "hello" => return Ok(()),
        other => {
            json!({"error": format!("taskbox does not implement Celery's '{other}' control command; use `taskbox inspect` / `taskbox control`")})
        }
    };
    let (Some(ticket), Some(key)) = (req.ticket, req.reply_key) else {
        return Ok(());
    };
    let body = json!({ shared.name.clone(): reply }).to_string();
    let envelope = json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"ticket": ticket, "clock": 1},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": "reply.celery.pidbox", "routing_key": key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
        },
    });
    let mut conn = shared.broker.connection();
    let _: () = redis::AsyncCommands::lpush(
        &mut conn,
        format!("{key}.reply.celery.pidbox"),
        envelope.to_string(),
    )
    .await
    .map_err(|e| format!("could not reply: {e}"))?;
    Ok(())
}

/// `revoke(task_id, terminate=False)`: the ids go into taskbox's revoked set (memory and
/// Redis) and, with `terminate`, the running ones are stopped in their sandbox.
async fn revoke(shared: &Shared, args: &Value) -> Value {
    let ids: Vec<String> = match &args["task_id"] {
        Value::String(id) => vec![id.clone()],
        Value::Array(ids) => ids
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => return json!({"error": "revoke needs task_id"}),
    };
    let terminate = args["terminate"].as_bool().unwrap_or(false);
    let mut conn = shared.broker.connection();
    if let Err(err) = control::remember_revoked(&mut conn, &ids).await {
        tracing::warn!(error = %err, "could not record the revocation in Redis; it holds on this worker only");
    }
    control::revoke(shared, &ids, terminate);
    tracing::info!(ids = ?ids, terminate, "tasks revoked by a Celery control broadcast");
    json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_db_comes_from_the_url() {
        assert_eq!(db_of("redis://127.0.0.1:6379/3"), 3);
        assert_eq!(db_of("redis://:pw@h:6379"), 0);
        assert_eq!(db_of("rediss://h:6380/15?ssl_cert_reqs=none"), 15);
        assert_eq!(
            db_of("sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1"),
            1
        );
    }

    #[test]
    fn a_kombu_broadcast_is_parsed() {
        let body = json!({
            "method": "ping", "arguments": {}, "destination": ["taskbox@vm"],
            "ticket": "t-1", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}
        });
        let envelope = json!({
            "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
            "properties": {"body_encoding": "base64"},
        });
        let req = parse(&envelope.to_string()).unwrap();
        assert_eq!(req.method, "ping");
        assert_eq!(req.destination, Some(vec!["taskbox@vm".to_string()]));
        assert_eq!(req.ticket.as_deref(), Some("t-1"));
        assert_eq!(req.reply_key.as_deref(), Some("oid"));
        assert!(parse("{}").is_err());
    }
}
