//! The worker: fetches messages while it has free slots, runs each on the sandbox runtime, and
//! keeps its lease, the delayed set and dead peers in order in the background.
//!
//! State has one owner: [`Shared`] holds the runtime, registry, broker and result store, and
//! the in-flight table; each task's own state lives in its `Store`.

pub mod autoscale;
pub mod backends;
pub mod committer;
pub mod control;
pub mod executor;
pub mod monitor;
pub mod pidbox;
pub mod retry;
mod smtp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Semaphore;

use crate::broker::notify::QueueNotifier;
use crate::broker::{self, Broker, message};
use crate::config::Config;
use crate::registry::{self, Registry, RegistryHandle};
use crate::results::ResultStore;
use crate::runtime::capabilities::mail::{MailBackend, OutboxMail};
use crate::runtime::{Backends, CancelToken, EngineSettings, Runtime, RuntimeSettings};
use crate::shutdown::Shutdown;

/// How long an owned message may sit without being tracked as running before this worker puts
/// it back (a fetch whose reply was lost). Far above the time between fetch and start.
pub const ORPHAN_AGE: Duration = Duration::from_secs(30);

/// A task being run by this worker.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub task: String,
    /// Queue it came from.
    pub queue: String,
    /// When it started.
    pub started: Instant,
    /// Stops it.
    pub cancel: CancelToken,
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Tasks that succeeded.
    pub succeeded: AtomicU64,
    /// Tasks that failed for good (including undecodable messages).
    pub failed: AtomicU64,
    /// Retries scheduled.
    pub retried: AtomicU64,
}

/// Everything the fetch loop, the executors and the maintenance loop share.
pub struct Shared {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The sandbox.
    pub runtime: Arc<Runtime>,
    /// Task → plugin, replaced whole when the plugin directory changes.
    pub registry: Arc<RegistryHandle>,
    /// The broker connection.
    pub broker: Broker,
    /// Batches the finish steps of tasks that end together into one round trip.
    pub committer: committer::Committer,
    /// The result backend.
    pub results: ResultStore,
    /// Capability backends handed to every task.
    pub backends: Backends,
    /// `taskbox@host`: the name in results and logs.
    pub name: String,
    /// `origin` header of messages this worker publishes.
    pub origin: String,
    /// Shutdown signals.
    pub shutdown: Shutdown,
    /// Whether results live in another Redis than the broker: then they cannot be part of the
    /// atomic finish step and are written just before it.
    pub separate_results: bool,
    /// Counters.
    pub stats: Stats,
    /// Prometheus metrics, recorded as tasks finish and served by `--http`.
    pub metrics: crate::metrics::Metrics,
    /// When the maintenance loop last went round, so `/healthz` can tell a wedged worker.
    pub loop_tick: crate::http::LoopTick,
    /// When the worker started.
    pub started_at: jiff::Timestamp,
    /// Task ids revoked by `taskbox control revoke`.
    pub revoked: control::Revoked,
    in_flight: Mutex<HashMap<String, InFlight>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn track(&self, tag: &str, task: InFlight) {
        self.lock().insert(tag.to_string(), task);
    }

    fn untrack(&self, tag: &str) {
        self.lock().remove(tag);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        // Entries are plain values; a panic elsewhere cannot leave the map half-updated.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tasks running now, by delivery tag.
    pub fn in_flight(&self) -> Vec<(String, InFlight)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn running_per_queue(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for task in self.lock().values() {
            *counts.entry(task.queue.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Stops every running task with `reason`.
    pub fn cancel_all(&self, reason: &str) {
        for task in self.lock().values() {
            task.cancel.cancel(reason);
        }
    }
}

/// The default worker name: `taskbox@<hostname>`.
pub fn default_name() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("taskbox@{host}")
}

/// A running worker: start with [`Worker::start`], then [`Worker::run`] until shutdown.
pub struct Worker {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    scaler: Arc<autoscale::Scaler>,
    notifier: QueueNotifier,
    queues: Vec<String>,
    control_client: redis::Client,
    /// The bound `--http` listener, served from [`Worker::run`].
    http: Option<tokio::net::TcpListener>,
}

impl Worker {
    /// Connects, loads the runtime and plugins, declares the queues and registers the worker.
    pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Worker> {
        let config = Arc::new(config);
        // Bound before anything connects, so a taken port is the first and only start-up error.
        let http = match &config.worker.http {
            Some(addr) => Some(crate::http::bind(addr).await?),
            None => None,
        };
        let name = config.worker.name.clone().unwrap_or_else(default_name);
        let worker_id = format!(
            "{name}:{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let broker_url = config.broker_url();
        let sentinel = broker::SentinelOptions::from_config(&config.broker);
        let broker = Broker::connect(
            &broker_url,
            &sentinel,
            &worker_id,
            &config.worker.dead_letter_key,
        )
        .await
        .context("failed to connect to the broker")?;
        let results_url = config.results_url();
        let separate_results = results_url != broker_url;
        let results_conn = if !separate_results {
            broker.connection()
        } else {
            let client = broker::client_for(&results_url, &sentinel).await?;
            redis::aio::ConnectionManager::new(client)
                .await
                .with_context(|| {
                    format!(
                        "failed to connect to the result backend at {}",
                        crate::config::redact_url(&results_url)
                    )
                })?
        };
        let ttl = (!config.results.expires.is_zero()).then_some(config.results.expires);
        let results = ResultStore::new(results_conn, ttl);

        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let concurrency = config.worker.concurrency.unwrap_or(cpus).max(1);
        let (max_slots, min_slots) = config
            .worker
            .autoscale
            .unwrap_or((concurrency, concurrency));
        let runtime = Arc::new(Runtime::new(RuntimeSettings {
            engine: EngineSettings {
                // Twice the slots: `control pool-grow` may add up to that many at run time.
                max_live_stores: max_slots.saturating_mul(2) + 4,
                keep_resident: config.worker.keep_resident,
                ..EngineSettings::default()
            },
            cache_dir: config
                .worker
                .cache_dir
                .clone()
                .or_else(crate::cli::default_cache_dir),
        })?);
        let registry = Arc::new(RegistryHandle::new(
            Registry::load(&runtime, &config).await?,
        ));

        let mail: Arc<dyn MailBackend> = match config.mail.kind.as_deref() {
            Some("outbox") => {
                let dir = config
                    .mail
                    .outbox_dir
                    .clone()
                    .context("MAIL_TYPE=outbox needs MAIL_OUTBOX_DIR")?;
                Arc::new(OutboxMail::new(dir, config.mail.default_from.clone())?)
            }
            Some("smtp") => Arc::new(smtp::SmtpMail::new(&config.mail)?),
            Some(other) => anyhow::bail!(
                "MAIL_TYPE={other} is not supported; use MAIL_TYPE=smtp (with SMTP_SERVER) or MAIL_TYPE=outbox (with MAIL_OUTBOX_DIR)"
            ),
            None => Arc::new(backends::UnconfiguredMail),
        };
        let origin = format!(
            "{}@{}",
            std::process::id(),
            name.trim_start_matches("taskbox@")
        );
        let routes_config = config.clone();
        let routes_registry = registry.clone();
        let backends = Backends {
            kv: Arc::new(backends::RedisKv::new(broker.connection())),
            mail,
            queue: Arc::new(backends::BrokerQueue::new(
                broker.clone(),
                // The operator's route, then the loaded manifests', then the built-in table:
                // what `default_queue` answers, without reading the plugin directory per call.
                Arc::new(move |task: &str| {
                    registry::route_with(&routes_config, task, |t| {
                        routes_registry.current().manifest_route(t)
                    })
                }),
                origin.clone(),
            )),
            progress: Arc::new(backends::ResultProgress::new(results.clone())),
            housekeeping: Arc::new(backends::RedisHousekeeping::new(
                broker.clone(),
                results.clone(),
            )),
        };

        let queues = config.worker.queues.clone();
        broker.declare(&queues).await?;
        broker.register().await?;
        let notifier = QueueNotifier::start(
            broker::client_for(&broker_url, &sentinel).await?,
            queues.clone(),
            shutdown.token(),
        );
        let slots = Arc::new(Semaphore::new(min_slots as usize));
        let scaler = Arc::new(autoscale::Scaler::new(
            slots.clone(),
            min_slots,
            max_slots,
            max_slots.saturating_mul(2),
        ));
        tracing::info!(
            worker = %worker_id,
            broker = %broker.url(),
            queues = %queues.join(","),
            slots = min_slots,
            max_slots,
            tasks = %registry.current().task_names().join(","),
            "worker ready"
        );
        let shared = Arc::new(Shared {
            config,
            runtime,
            registry,
            committer: committer::Committer::start(broker.clone()),
            broker,
            results,
            backends,
            name,
            origin,
            shutdown,
            separate_results,
            stats: Stats::default(),
            metrics: crate::metrics::Metrics::new(),
            loop_tick: crate::http::LoopTick::default(),
            started_at: jiff::Timestamp::now(),
            revoked: control::Revoked::default(),
            in_flight: Mutex::new(HashMap::new()),
        });
        shared.revoked.load(&shared.broker).await;
        let control_client = broker::client_for(&broker_url, &sentinel).await?;
        Ok(Worker {
            shared,
            slots,
            scaler,
            notifier,
            queues,
            control_client,
            http,
        })
    }

    /// State shared with the executors (for inspection and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs until shutdown: the fetch loop in the foreground, maintenance in the background,
    /// then the drain.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let maintenance = tokio::spawn(maintain(
            self.shared.clone(),
            self.scaler.clone(),
            self.queues.clone(),
            self.notifier.clone(),
        ));
        let plugin_watch = tokio::spawn(watch_plugins(self.shared.clone()));
        let http = self
            .http
            .take()
            .map(|listener| crate::http::spawn(listener, self.shared.clone(), self.scaler.clone()));
        control::publish_info(&self.shared, &self.scaler, &self.queues).await;
        let control = tokio::spawn(control::listen(
            self.shared.clone(),
            self.scaler.clone(),
            self.queues.clone(),
            self.control_client.clone(),
        ));
        let celery_control = tokio::spawn(pidbox::listen(
            self.shared.clone(),
            self.control_client.clone(),
            pidbox::db_of(&self.shared.config.broker_url()),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        let mut rotation = 0usize;
        let mut broker_down_since: Option<Instant> = None;
        loop {
            // Reap finished executors so the set does not grow.
            while let Some(joined) = tasks.try_join_next() {
                if let Err(err) = joined {
                    tracing::error!(error = %err, "task executor ended abnormally");
                }
            }
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = self.shared.shutdown.begun() => break,
            };
            // Tasks finished in one batch free their slots within microseconds of each other:
            // let the others go too, so one fetch serves them all instead of one each.
            tokio::task::yield_now().await;
            let mut permits = vec![first];
            while permits.len() < 64 {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let (keys, caps) =
                fetch_keys(&self.shared, &self.queues, rotation, self.scaler.current());
            let deliveries = match self.shared.broker.fetch(&keys, permits.len(), &caps).await {
                Ok(d) => {
                    if let Some(since) = broker_down_since.take() {
                        tracing::info!(
                            down_ms = since.elapsed().as_millis() as u64,
                            "broker reachable again"
                        );
                    }
                    d
                }
                Err(err) => {
                    if broker_down_since.is_none() {
                        broker_down_since = Some(Instant::now());
                        tracing::warn!(error = %format_args!("{err:#}"), "broker unreachable; retrying with backoff");
                    }
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                        () = self.shared.shutdown.begun() => break,
                    }
                    continue;
                }
            };
            if deliveries.is_empty() {
                drop(permits);
                tokio::select! {
                    () = self.notifier.wait(Duration::from_secs(1)) => {}
                    () = self.shared.shutdown.begun() => break,
                }
                continue;
            }
            rotation = rotation.wrapping_add(1);
            let mut permits = permits.into_iter();
            for delivery in deliveries {
                let Some(permit) = permits.next() else { break };
                let shared = self.shared.clone();
                tasks.spawn(async move {
                    executor::handle_guarded(shared, delivery).await;
                    drop(permit);
                });
            }
        }
        plugin_watch.abort();
        let _ = plugin_watch.await;
        control.abort();
        let _ = control.await;
        celery_control.abort();
        let _ = celery_control.await;
        self.drain(tasks, maintenance).await;
        if let Some(http) = http {
            http.abort();
        }
        Ok(())
    }

    async fn drain(
        &self,
        mut tasks: tokio::task::JoinSet<()>,
        maintenance: tokio::task::JoinHandle<()>,
    ) {
        let grace = self.shared.config.worker.shutdown_grace;
        let running = self.shared.in_flight().len();
        if running > 0 {
            tracing::info!(
                running,
                grace_s = grace.as_secs(),
                "waiting for running tasks to finish"
            );
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                () = &mut deadline => {
                    tracing::warn!(running = self.shared.in_flight().len(), "grace period over; stopping running tasks and returning them to their queues");
                    self.shared.cancel_all(executor::REASON_SHUTDOWN);
                    break;
                }
                () = self.shared.shutdown.forced() => {
                    self.shared.cancel_all(executor::REASON_SHUTDOWN);
                    break;
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        // Stop heartbeating before leaving the fleet, or a last heartbeat would re-register us.
        maintenance.abort();
        let _ = maintenance.await;
        // Anything still owned (fetched but not finished) goes back; then leave the fleet.
        match self.shared.broker.restore(&[]).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(restored = n, "returned unfinished messages to their queues"),
            Err(err) => {
                tracing::error!(error = %format_args!("{err:#}"), "could not return unfinished messages; peers will restore them once this worker's heartbeat lapses")
            }
        }
        let mut conn = self.shared.broker.connection();
        let _: Result<(), _> =
            redis::AsyncCommands::zrem(&mut conn, broker::WORKERS, self.shared.broker.worker_id())
                .await;
        let _: Result<(), _> =
            redis::AsyncCommands::del(&mut conn, control::info_key(self.shared.broker.worker_id()))
                .await;
        tracing::info!(
            succeeded = self.shared.stats.succeeded.load(Ordering::Relaxed),
            failed = self.shared.stats.failed.load(Ordering::Relaxed),
            "worker stopped"
        );
    }
}

/// The list keys to fetch from, in drain order: `priority_*` queues first, then the others
/// (rotated for fairness), then `retention`; within a queue kombu's priority lists 0, 3, 6, 9.
/// Queues at their configured share of slots (`queue_shares`) are left out this round, and the
/// others get a cap on how many messages this fetch may take from them.
fn fetch_keys(
    shared: &Shared,
    queues: &[String],
    rotation: usize,
    slots: u32,
) -> (Vec<String>, Vec<(String, usize)>) {
    let running = shared.running_per_queue();
    let shares = &shared.config.worker.queue_shares;
    // How many more messages each shared queue may take this round (at least one slot each).
    let mut caps = Vec::new();
    for (queue, share) in shares {
        let allowed = ((share * f64::from(slots)).floor() as usize).max(1);
        let remaining = allowed.saturating_sub(running.get(queue).copied().unwrap_or(0));
        caps.push((queue.clone(), remaining));
    }
    let blocked = |q: &String| caps.iter().any(|(c, n)| c == q && *n == 0);
    let high: Vec<&String> = queues
        .iter()
        .filter(|q| q.starts_with("priority_"))
        .collect();
    let low: Vec<&String> = queues
        .iter()
        .filter(|q| q.as_str() == "retention")
        .collect();
    let mut normal: Vec<&String> = queues
        .iter()
        .filter(|q| !q.starts_with("priority_") && q.as_str() != "retention")
        .collect();
    if !normal.is_empty() {
        let len = normal.len();
        normal.rotate_left(rotation % len);
    }
    let keys = high
        .into_iter()
        .chain(normal)
        .chain(low)
        .filter(|q| !blocked(q))
        .flat_map(|q| {
            message::PRIORITY_STEPS
                .iter()
                .map(move |p| message::queue_key(q, *p))
        })
        .collect();
    (keys, caps)
}

/// Heartbeat and lease renewal, reaping dead peers, promoting due delayed messages, autoscaling.
async fn maintain(
    shared: Arc<Shared>,
    scaler: Arc<autoscale::Scaler>,
    queues: Vec<String>,
    notifier: QueueNotifier,
) {
    let cfg = &shared.config.worker;
    let mut heartbeat = tokio::time::interval(cfg.heartbeat_interval);
    let mut promote = tokio::time::interval(cfg.delayed_poll);
    let mut scale = tokio::time::interval(Duration::from_secs(1));
    for timer in [&mut heartbeat, &mut promote, &mut scale] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // After a broker outage every worker's heartbeat is stale at once. Reaping only once our
    // own heartbeats have succeeded for `dead_after` gives every live peer time to heartbeat
    // again first, so an outage never turns into a fleet-wide redelivery.
    let mut healthy_since: Option<Instant> = None;
    // Each Redis wait below is bounded by one heartbeat interval, so an unreachable Redis slows
    // the loop but never stalls it: `/healthz` reads a stall as a stuck worker.
    let bound = cfg.heartbeat_interval;
    loop {
        shared.loop_tick.tick();
        tokio::select! {
            _ = heartbeat.tick() => {
                let tags: Vec<String> = shared.in_flight().into_iter().map(|(tag, _)| tag).collect();
                let beat = tokio::time::timeout(cfg.heartbeat_interval, shared.broker.heartbeat(&tags)).await;
                let _ = tokio::time::timeout(bound, control::publish_info(&shared, &scaler, &queues)).await;
                match beat {
                    Ok(Ok(true)) => {
                        healthy_since.get_or_insert_with(Instant::now);
                    }
                    Ok(Ok(false)) => {
                        tracing::error!("this worker was declared dead by its peers (heartbeat lapsed); abandoning running tasks, which were redelivered");
                        shared.cancel_all(executor::REASON_FENCED);
                        let _ = shared.broker.register().await;
                        healthy_since = Some(Instant::now());
                    }
                    Ok(Err(err)) => {
                        healthy_since = None;
                        tracing::warn!(error = %format_args!("{err:#}"), "heartbeat failed");
                    }
                    Err(_) => {
                        healthy_since = None;
                        tracing::warn!("heartbeat timed out");
                    }
                }
                if healthy_since.is_none_or(|since| since.elapsed() < cfg.dead_after) {
                    continue;
                }
                if let Err(err) = shared.broker.restore_orphans(&tags, ORPHAN_AGE).await {
                    tracing::debug!(error = %format_args!("{err:#}"), "orphan check failed");
                }
                match shared.broker.reap_dead(cfg.dead_after).await {
                    Ok(n) if n > 0 => notifier.wake(),
                    Ok(_) => {}
                    Err(err) => tracing::debug!(error = %format_args!("{err:#}"), "reaping failed"),
                }
            }
            _ = promote.tick() => {
                match tokio::time::timeout(bound, shared.broker.promote_due(500)).await {
                    Ok(Ok(n)) if n > 0 => notifier.wake(),
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(err)) => tracing::debug!(error = %format_args!("{err:#}"), "promoting delayed tasks failed"),
                }
            }
            _ = scale.tick() => {
                if scaler.is_dynamic() {
                    let depths = async {
                        let mut backlog = 0;
                        for q in &queues {
                            backlog += shared.broker.depth(q).await.unwrap_or(0);
                        }
                        backlog
                    };
                    if let Ok(backlog) = tokio::time::timeout(bound, depths).await {
                        scaler.adjust(backlog, shared.in_flight().len() as u32);
                    }
                }
            }
        }
    }
}

/// Reloads plugins when the plugin directory changes. The new state reaches `plugin list`
/// with the next heartbeat's published description.
async fn watch_plugins(shared: Arc<Shared>) {
    let Some(dir) = shared.config.worker.plugins_dir.clone() else {
        return;
    };
    let mut changes = registry::watch::spawn(
        dir,
        shared.config.worker.plugin_poll,
        shared.shutdown.token(),
    );
    while changes.recv().await.is_some() {
        match shared
            .registry
            .reload(&shared.runtime, &shared.config)
            .await
        {
            Ok(n) => {
                if n > 0 {
                    shared.metrics.record_plugin_reload();
                }
                tracing::info!(changes = n, tasks = %shared.registry.current().task_names().join(","), "plugin directory reloaded");
            }
            Err(err) => {
                tracing::error!(error = %format_args!("{err:#}"), "could not reload the plugin directory; the loaded plugins keep serving")
            }
        }
    }
}
