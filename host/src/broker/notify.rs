//! Wake-ups when a queue receives a message, without polling and without server config.
//!
//! A fetch is a non-blocking script (Redis cannot block inside a script), so the worker needs
//! another way to sleep until work arrives. It opens one RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX <queue>...`: Redis then pushes an invalidation message
//! whenever any key starting with a consumed queue name is written, such as a producer's LPUSH.
//! The fetch loop waits on [`QueueNotifier::wait`] with a timeout, so a lost notification
//! (reconnect, proxy without tracking) costs at most that timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Wakes the fetch loop when a watched queue may have new messages.
#[derive(Debug, Clone)]
pub struct QueueNotifier {
    notify: Arc<Notify>,
}

impl QueueNotifier {
    /// Starts watching `prefixes` (queue names) on a dedicated connection, reconnecting in the
    /// background until `shutdown` fires.
    pub fn start(
        client: redis::Client,
        prefixes: Vec<String>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> QueueNotifier {
        let notify = Arc::new(Notify::new());
        let waker = notify.clone();
        tokio::spawn(async move {
            let prefixes = minimal_prefixes(prefixes);
            let mut backoff = Duration::from_millis(100);
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                match watch(&client, &prefixes, &waker, &shutdown).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::debug!(error = %err, "queue notifications interrupted; relying on the fetch timeout until they reconnect");
                        // Wake the loop: something may have arrived while we were blind.
                        waker.notify_one();
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        QueueNotifier { notify }
    }

    /// A notifier that never fires by itself (tests, or a broker without tracking): callers
    /// fall back to their wait timeout.
    pub fn inert() -> QueueNotifier {
        QueueNotifier {
            notify: Arc::new(Notify::new()),
        }
    }

    /// Waits until a watched queue is written to, or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    /// Wakes a waiter now (a slot freed, shutdown began).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

async fn watch(
    client: &redis::Client,
    prefixes: &[String],
    waker: &Notify,
    shutdown: &tokio_util::sync::CancellationToken,
) -> redis::RedisResult<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let info = client.get_connection_info().clone().set_redis_settings(
        client
            .get_connection_info()
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3),
    );
    let resp3 = redis::Client::open(info)?;
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut conn = resp3
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON").arg("BCAST").arg("NOLOOP");
    for p in prefixes {
        cmd.arg("PREFIX").arg(p);
    }
    cmd.query_async::<()>(&mut conn).await?;
    waker.notify_one();
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Some(push) if push.kind == redis::PushKind::Disconnection => {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "tracking connection closed")));
                }
                Some(_) => waker.notify_one(),
                None => return Err(redis::RedisError::from((redis::ErrorKind::Io, "tracking channel closed"))),
            },
            () = shutdown.cancelled() => return Ok(()),
            // Keep the connection (and so the tracking registration) alive and detect loss.
            () = tokio::time::sleep(Duration::from_secs(15)) => {
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
            }
        }
    }
}

/// Redis refuses overlapping BCAST prefixes (`workflow` and `workflow_storage`): keep only the
/// shortest of each overlapping family, which covers the others.
pub fn minimal_prefixes(mut prefixes: Vec<String>) -> Vec<String> {
    prefixes.sort();
    prefixes.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        if !out.iter().any(|kept| p.starts_with(kept.as_str())) {
            out.retain(|kept| !kept.starts_with(p.as_str()));
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::minimal_prefixes;

    #[test]
    fn overlapping_queue_prefixes_collapse_to_the_shortest() {
        let got = minimal_prefixes(vec![
            "workflow_storage".into(),
            "workflow".into(),
            "dataset".into(),
            "priority_dataset".into(),
            "dataset".into(),
        ]);
        assert_eq!(got, vec!["dataset", "priority_dataset", "workflow"]);
    }
}
