//! The worker's operations endpoint (`--http ADDR`): `/healthz` for liveness, `/readyz` for
//! readiness and `/metrics` for Prometheus.
//!
//! Liveness and readiness answer different questions on purpose: a Redis outage makes the
//! worker unready (take it out of rotation) but not dead (restarting it would not help), while
//! a maintenance loop that stopped ticking makes it dead whatever Redis does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::worker::Shared;
use crate::worker::autoscale::Scaler;

/// How long `/readyz` waits for Redis to answer PING.
pub const READY_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// How many heartbeat intervals the maintenance loop may go without ticking before
/// `/healthz` calls the worker stuck.
pub const STUCK_AFTER_HEARTBEATS: u32 = 3;

/// When the worker's maintenance loop last went round, so `/healthz` can tell a live worker
/// from one whose loop is wedged. Monotonic: wall-clock jumps do not make it look stuck.
#[derive(Debug)]
pub struct LoopTick {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for LoopTick {
    fn default() -> Self {
        LoopTick {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl LoopTick {
    /// Records that the loop went round now.
    pub fn tick(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last tick (since creation, before the first).
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Binds the endpoint's address before the worker connects anywhere, so a taken port or a bad
/// address is a start-up error that names it.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot serve health and metrics on {addr} (worker.http / --http / TASKBOX_HTTP)")
    })
}

#[derive(Clone)]
struct HttpState {
    shared: Arc<Shared>,
    scaler: Arc<Scaler>,
}

/// The three routes over the worker's shared state.
fn router(shared: Arc<Shared>, scaler: Arc<Scaler>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(HttpState { shared, scaler })
}

/// Serves the endpoint on `listener` until the returned task is aborted. The worker keeps it up
/// through a warm shutdown's drain (readiness then says so) and aborts it when it exits.
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    scaler: Arc<Scaler>,
) -> tokio::task::JoinHandle<()> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tokio::spawn(async move {
        tracing::info!(addr = %addr, "serving /healthz, /readyz and /metrics");
        if let Err(err) = axum::serve(listener, router(shared, scaler)).await {
            tracing::error!(addr = %addr, error = %err, "the health and metrics endpoint stopped");
        }
    })
}

/// 200 while the maintenance loop keeps ticking; 503 naming how long it has been silent.
async fn healthz(State(state): State<HttpState>) -> Response {
    let limit = state.shared.config.worker.heartbeat_interval * STUCK_AFTER_HEARTBEATS;
    let age = state.shared.loop_tick.age();
    if age > limit {
        let reason = format!(
            "stuck: the worker's maintenance loop has not run for {} (limit {})\n",
            humantime::format_duration(round_ms(age)),
            humantime::format_duration(round_ms(limit)),
        );
        return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// 200 when Redis answers PING within [`READY_PING_TIMEOUT`], plugins are loaded and no
/// shutdown has begun; otherwise 503 with one line per problem.
async fn readyz(State(state): State<HttpState>) -> Response {
    let shared = &state.shared;
    let mut problems = Vec::new();
    if shared.shutdown.is_begun() {
        problems.push("shutting down".to_string());
    }
    let mut conn = shared.broker.connection();
    let ping = redis::cmd("PING");
    match tokio::time::timeout(READY_PING_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => problems.push(format!(
            "redis at {} did not answer PING: {err}",
            shared.broker.url()
        )),
        Err(_) => problems.push(format!(
            "redis at {} did not answer PING within {}",
            shared.broker.url(),
            humantime::format_duration(READY_PING_TIMEOUT)
        )),
    }
    if shared.registry.current().plugins().is_empty() {
        problems.push("no plugins are loaded".to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready:\n{}\n", problems.join("\n"));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// The metrics, with the scrape-time gauges refreshed first.
async fn metrics(State(state): State<HttpState>) -> Response {
    let shared = &state.shared;
    shared
        .metrics
        .refresh_queues(&shared.broker, &shared.config.worker.queues)
        .await;
    shared
        .metrics
        .set_slots(shared.in_flight().len(), state.scaler.current());
    match shared.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}\n")).into_response(),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_tick_ages_from_the_last_tick() {
        let tick = LoopTick::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(tick.age() >= Duration::from_millis(30));
        tick.tick();
        assert!(tick.age() < Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_address() {
        let first = bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap().to_string();
        let err = format!("{:#}", bind(&addr).await.unwrap_err());
        assert!(err.contains(&addr) && err.contains("--http"), "{err}");
    }
}
