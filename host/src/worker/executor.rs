//! One message, start to finish: decode → (delay | expire | route) → run in the sandbox →
//! publish follow-ups, store the result and ack in one atomic step, or retry, or dead-letter.
//! Nothing here panics on message content, and every outcome leaves the message accounted for
//! in Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::Instrument as _;

use super::{InFlight, Shared, control, monitor};
use crate::broker::message::{self, DecodeError, TaskMessage};
use crate::broker::{Delivery, Finish, delayed_member, now_ms};
use crate::metrics::TaskState;
use crate::registry;
use crate::results::{self, Failure, Lineage, RunInfo};
use crate::runtime::{CancelToken, Invocation, SandboxError, TaskMeta};
use crate::telemetry;

use super::retry::{self, Decision};

/// Why a running task was stopped from outside.
pub const REASON_SHUTDOWN: &str = "worker shutdown";
/// The worker was declared dead while the task ran; another worker has the message now.
pub const REASON_FENCED: &str = "worker lost its lease";

/// The `task` metric label of messages that could not be decoded (their task name, if any,
/// came from unreadable input and is not trusted as a label).
const UNDECODABLE: &str = "<undecodable>";

/// Handles one delivery and contains any panic in our own code: the message is dead-lettered
/// with the reason instead of being retried (and panicking) forever.
pub(crate) async fn handle_guarded(shared: Arc<Shared>, delivery: Delivery) {
    use futures_util::FutureExt as _;
    // Shared, not copied: the panic path below still needs the raw message.
    let delivery = Arc::new(delivery);
    let outcome = std::panic::AssertUnwindSafe(handle(shared.clone(), delivery.clone()))
        .catch_unwind()
        .await;
    // Finished (its outcome committed) or abandoned: either way no longer running here.
    shared.untrack(&delivery.tag);
    if let Err(panic) = outcome {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        shared.untrack(&delivery.tag);
        let queue = message::queue_of_key(&delivery.list_key).to_string();
        tracing::error!(panic = %what, queue, "handling a message panicked; dead-lettering it");
        let reason =
            format!("taskbox failed while handling this message ({what}); please report it");
        let finish = Finish {
            require_owned: false,
            dead_letter: Some(
                dead_letter_value(&shared, &delivery, &queue, "HostPanic", &reason).to_string(),
            ),
            ..Finish::default()
        };
        commit(&shared, &delivery.tag, finish).await;
    }
}

/// Handles one delivery to the end.
async fn handle(shared: Arc<Shared>, delivery: Arc<Delivery>) {
    let queue = message::queue_of_key(&delivery.list_key).to_string();
    let mut msg = match message::decode(&delivery.raw) {
        Ok(msg) => msg,
        Err(err) => return dead_letter_undecodable(&shared, &delivery, &queue, err).await,
    };
    // Retries go back to the queue the message was taken from, whatever exchange and routing
    // key the producer used (a routing key need not name a queue we consume).
    msg.routing_key = queue.clone();
    // One lookup per task: the plugin version found here is the one the task runs on, even
    // if the plugin directory is reloaded meanwhile.
    let plugin = shared.registry.current().lookup(&msg.task).cloned();
    let meta = TaskMeta {
        id: msg.id.clone(),
        name: msg.task.clone(),
        queue: queue.clone(),
        attempt: msg.retries.saturating_add(1),
        plugin: plugin.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        root_id: msg.root_id.clone(),
    };
    let span = telemetry::task_span(&meta, &shared.name);
    run_message(shared, delivery, msg, meta, plugin)
        .instrument(span)
        .await;
}

async fn run_message(
    shared: Arc<Shared>,
    delivery: Arc<Delivery>,
    msg: TaskMessage,
    meta: TaskMeta,
    plugin: Option<Arc<registry::Plugin>>,
) {
    let config = &shared.config;
    let task_config = config.tasks.get(&msg.task);
    let ignore_result = msg.ignore_result
        || !config.results.enabled
        || task_config.and_then(|t| t.ignore_result).unwrap_or(false);
    let lineage = Lineage {
        parent_id: msg.parent_id.clone(),
        group_id: msg.group.clone(),
        children: Vec::new(),
    };
    let result_ttl = shared.results.ttl();
    let now = jiff::Timestamp::now();

    // Countdown / ETA: park it in the delayed set (in Redis, not in memory) until it is due.
    if let Some(eta) = msg.eta
        && eta > now
    {
        let due = u64::try_from(eta.as_millisecond()).unwrap_or(0);
        let finish = Finish {
            require_owned: true,
            delayed: Some((
                due,
                delayed_member(
                    &delivery.list_key,
                    &String::from_utf8_lossy(&delivery.raw),
                    &delivery.tag,
                ),
            )),
            ..Finish::default()
        };
        tracing::debug!(eta = %message::format_timestamp(eta), "task is not due yet; parked in the delayed set");
        commit(&shared, &delivery.tag, finish).await;
        return;
    }

    // Expired: not run, REVOKED stored.
    if let Some(expires) = msg.expires
        && expires < now
    {
        tracing::info!(expires = %message::format_timestamp(expires), "task expired before it could run; storing REVOKED");
        shared
            .metrics
            .record_task(&meta.name, &meta.queue, TaskState::Revoked, None);
        let results = if ignore_result {
            Vec::new()
        } else {
            vec![(
                results::key(&msg.id),
                results::revoked(&msg.id, "expired", &lineage),
            )]
        };
        commit(
            &shared,
            &delivery.tag,
            Finish {
                require_owned: true,
                results,
                result_ttl,
                ..Finish::default()
            },
        )
        .await;
        return;
    }

    if shared.revoked.contains(&msg.id) {
        tracing::info!("task was revoked; not running it, storing REVOKED");
        shared
            .metrics
            .record_task(&meta.name, &meta.queue, TaskState::Revoked, None);
        return store_revoked(&shared, &delivery, &msg, &lineage, ignore_result, true).await;
    }

    if msg.task == monitor::TASK {
        return run_monitor(&shared, &delivery, &msg, &meta, &lineage, ignore_result).await;
    }

    let Some(plugin) = plugin else {
        return unregistered(&shared, &delivery, &msg, &meta, &lineage).await;
    };

    let mut limits = plugin.limits_for(config, &msg.task);
    // Celery's per-message time limits (hard, soft) can only tighten the configured ones;
    // nonsense values (negative, NaN, astronomically large) are ignored.
    if let Some(hard) = msg
        .timelimit
        .0
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
    {
        limits.timeout = limits.timeout.min(hard);
    }
    if let Some(soft) = msg
        .timelimit
        .1
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
    {
        limits.soft_timeout = Some(soft.min(limits.timeout));
    }

    let acks_late = task_config.and_then(|t| t.acks_late).unwrap_or(true);
    if !acks_late
        && !commit(
            &shared,
            &delivery.tag,
            Finish {
                require_owned: true,
                ..Finish::default()
            },
        )
        .await
    {
        return;
    }
    if config.results.track_started && !ignore_result {
        let started = results::started(&msg.id, &shared.name, std::process::id());
        if let Err(err) = shared.results.store(&msg.id, &started).await {
            tracing::debug!(error = %err, "could not store STARTED");
        }
    }

    let cancel = CancelToken::default();
    shared.track(
        &delivery.tag,
        InFlight {
            task_id: msg.id.clone(),
            task: msg.task.clone(),
            queue: meta.queue.clone(),
            started: Instant::now(),
            cancel: cancel.clone(),
        },
    );
    let invocation = Invocation {
        meta: Arc::new(meta.clone()),
        // Serialising a `Value` cannot fail (its keys are strings).
        args: serde_json::to_string(&msg.args).unwrap_or_else(|_| "[]".into()),
        kwargs: serde_json::to_string(&msg.kwargs).unwrap_or_else(|_| "{}".into()),
        limits,
        grants: plugin.grants.clone(),
        backends: shared.backends.clone(),
        cancel: Some(cancel.clone()),
    };
    tracing::debug!("task started");
    let report = shared.runtime.run(&plugin.component, invocation).await;

    let stats = &report.stats;
    let mut info = RunInfo {
        duration_ms: stats.duration.as_secs_f64() * 1000.0,
        fuel_used: stats.fuel_used,
        peak_memory: stats.peak_memory,
        error_kind: None,
        worker: shared.name.clone(),
        attempt: meta.attempt,
    };
    let origin = shared.origin.clone();
    let current = shared.registry.current();
    let routes = |task: &str| {
        registry::route_with(config, task, |t| current.manifest_route(t))
            .unwrap_or_else(|| meta.queue.clone())
    };

    let outcome = report.outcome.and_then(|bytes| {
        serde_json::from_slice::<Value>(&bytes).map_err(|e| SandboxError::Trap {
            message: format!("the task's output is not JSON: {e}"),
            backtrace: String::new(),
        })
    });
    match outcome {
        Ok(result) => {
            let mut pushes = Vec::new();
            let mut children = Vec::new();
            for next in message::callbacks(&msg, &result, &routes, &origin)
                .into_iter()
                .chain(message::next_chain_step(&msg, &result, &routes, &origin))
            {
                children.push(next.id.clone());
                pushes.push(message::encode(&next));
            }
            let lineage = Lineage {
                children,
                ..lineage
            };
            let results = if ignore_result {
                Vec::new()
            } else {
                vec![(
                    results::key(&msg.id),
                    results::success(&msg.id, result, &lineage, Some(&info)),
                )]
            };
            shared
                .stats
                .succeeded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shared
                .metrics
                .record_task(&meta.name, &meta.queue, TaskState::Success, Some(&info));
            tracing::info!(
                duration_ms = info.duration_ms,
                fuel_used = info.fuel_used,
                peak_memory = info.peak_memory,
                "task succeeded"
            );
            commit(
                &shared,
                &delivery.tag,
                Finish {
                    require_owned: acks_late,
                    pushes,
                    results,
                    result_ttl,
                    ..Finish::default()
                },
            )
            .await;
        }
        Err(SandboxError::Terminated { reason }) if reason == control::REASON_REVOKED => {
            tracing::warn!(
                "task terminated by `taskbox control revoke --terminate`; storing REVOKED"
            );
            shared
                .metrics
                .record_task(&meta.name, &meta.queue, TaskState::Revoked, Some(&info));
            store_revoked(&shared, &delivery, &msg, &lineage, ignore_result, acks_late).await;
        }
        Err(SandboxError::Terminated { reason })
            if reason == REASON_SHUTDOWN || reason == REASON_FENCED =>
        {
            if acks_late && reason == REASON_SHUTDOWN {
                // Not finished: put it back so it runs again elsewhere.
                match shared
                    .broker
                    .restore(std::slice::from_ref(&delivery.tag))
                    .await
                {
                    Ok(_) => tracing::info!("task stopped by shutdown; returned to its queue"),
                    Err(err) => {
                        tracing::error!(error = %format_args!("{err:#}"), "task stopped by shutdown and could not be returned now; it stays owned and is restored when this worker is reaped")
                    }
                }
            } else {
                tracing::warn!(%reason, "task stopped");
            }
        }
        Err(err) => {
            info.error_kind = Some(err.kind().to_string());
            let policy = plugin.retry_policy(config, &msg.task);
            match retry::decide(&err, msg.retries, &policy, rand::random::<f64>()) {
                Decision::Retry { after, reason } => {
                    let eta = jiff::Timestamp::now()
                        .checked_add(
                            jiff::SignedDuration::try_from(after)
                                .unwrap_or(jiff::SignedDuration::ZERO),
                        )
                        .unwrap_or_else(|_| jiff::Timestamp::now());
                    let retry_msg = message::retry_of(&msg, eta, &origin);
                    let (list_key, envelope) = message::encode(&retry_msg);
                    let results = if ignore_result {
                        Vec::new()
                    } else {
                        vec![(
                            results::key(&msg.id),
                            results::retry(&msg.id, &reason, &lineage, Some(&info)),
                        )]
                    };
                    shared
                        .stats
                        .retried
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    shared.metrics.record_task(
                        &meta.name,
                        &meta.queue,
                        TaskState::Retry,
                        Some(&info),
                    );
                    tracing::warn!(
                        error.kind = err.kind(),
                        retry_in_ms = after.as_millis() as u64,
                        duration_ms = info.duration_ms,
                        fuel_used = info.fuel_used,
                        peak_memory = info.peak_memory,
                        "task failed; retry scheduled: {err}"
                    );
                    let finish = Finish {
                        require_owned: acks_late,
                        results,
                        result_ttl,
                        delayed: Some((
                            now_ms().saturating_add(
                                u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                            ),
                            delayed_member(&list_key, &envelope, &retry_msg.id),
                        )),
                        ..Finish::default()
                    };
                    commit(&shared, &delivery.tag, finish).await;
                }
                Decision::GiveUp => {
                    let mut failure = Failure::new(err.kind(), err.to_string());
                    if matches!(err, SandboxError::Terminated { .. }) {
                        failure = Failure::new("Terminated", err.to_string());
                    }
                    let traceback = match &err {
                        SandboxError::Trap { backtrace, .. } if !backtrace.is_empty() => {
                            Some(backtrace.clone())
                        }
                        _ => None,
                    };
                    let mut results = Vec::new();
                    if !ignore_result {
                        results.push((
                            results::key(&msg.id),
                            results::failure(&msg.id, &failure, traceback, &lineage, Some(&info)),
                        ));
                        // As Celery does, the rest of a failed chain fails with the same error.
                        for step in msg.embed.chain.iter().flatten() {
                            if let Some(id) = step.options.get("task_id").and_then(Value::as_str) {
                                let step_lineage = Lineage {
                                    parent_id: Some(msg.id.clone()),
                                    ..Lineage::default()
                                };
                                results.push((
                                    results::key(id),
                                    results::failure(id, &failure, None, &step_lineage, None),
                                ));
                            }
                        }
                    }
                    shared
                        .stats
                        .failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let state = TaskState::gave_up(err.kind());
                    shared
                        .metrics
                        .record_task(&meta.name, &meta.queue, state, Some(&info));
                    tracing::warn!(
                        error.kind = err.kind(),
                        duration_ms = info.duration_ms,
                        fuel_used = info.fuel_used,
                        peak_memory = info.peak_memory,
                        "task failed for good; dead-lettered: {err}"
                    );
                    let finish = Finish {
                        require_owned: acks_late,
                        results,
                        result_ttl,
                        dead_letter: Some(dead_letter_entry(
                            &shared,
                            &delivery,
                            &meta.queue,
                            Some(&msg),
                            err.kind(),
                            &err.to_string(),
                        )),
                        ..Finish::default()
                    };
                    commit(&shared, &delivery.tag, finish).await;
                }
            }
        }
    }
}

/// Runs the queue-depth monitor, which the worker serves itself (it reads the broker).
async fn run_monitor(
    shared: &Shared,
    delivery: &Delivery,
    msg: &TaskMessage,
    meta: &TaskMeta,
    lineage: &Lineage,
    ignore_result: bool,
) {
    let outcome = match monitor::Settings::resolve(&shared.config, &msg.kwargs) {
        Ok(settings) => monitor::run(shared, &settings)
            .await
            .map_err(|e| ("Fail", format!("{e:#}"))),
        Err(reason) => Err(("Reject", reason)),
    };
    let mut finish = Finish {
        require_owned: true,
        result_ttl: shared.results.ttl(),
        ..Finish::default()
    };
    match outcome {
        Ok(result) => {
            tracing::info!(%result, "queue monitor ran");
            if !ignore_result {
                finish.results.push((
                    results::key(&msg.id),
                    results::success(&msg.id, result, lineage, None),
                ));
            }
        }
        Err((kind, reason)) => {
            tracing::warn!(kind, %reason, "queue monitor failed");
            let failure = Failure::new(kind, reason.clone());
            if !ignore_result {
                finish.results.push((
                    results::key(&msg.id),
                    results::failure(&msg.id, &failure, None, lineage, None),
                ));
            }
            finish.dead_letter = Some(dead_letter_entry(
                shared,
                delivery,
                &meta.queue,
                Some(msg),
                kind,
                &reason,
            ));
        }
    }
    commit(shared, &delivery.tag, finish).await;
}

/// Stores REVOKED for a revoked task and acks it: it is not run (again).
async fn store_revoked(
    shared: &Shared,
    delivery: &Delivery,
    msg: &TaskMessage,
    lineage: &Lineage,
    ignore_result: bool,
    require_owned: bool,
) {
    let results = if ignore_result || msg.id.is_empty() {
        Vec::new()
    } else {
        vec![(
            results::key(&msg.id),
            results::revoked(&msg.id, "revoked", lineage),
        )]
    };
    commit(
        shared,
        &delivery.tag,
        Finish {
            require_owned,
            results,
            result_ttl: shared.results.ttl(),
            ..Finish::default()
        },
    )
    .await;
}

/// Prefix of the Redis keys holding when a worker first found no plugin for a task (ms), so
/// the wait for a worker that has the plugin is bounded across all workers. Each key expires
/// on its own, so a task that does find its worker leaves nothing behind for long.
pub const UNREGISTERED: &str = "taskbox:unregistered:";

/// How long an unregistered task waits in the delayed set between tries.
const UNREGISTERED_RETRY: Duration = Duration::from_secs(2);

/// A task whose plugin this worker has not loaded. It is not lost: it goes back (through the
/// delayed set) for whichever worker serves it, or for this one once the plugin is installed;
/// only after `unregistered_timeout` without any worker taking it is it dead-lettered.
async fn unregistered(
    shared: &Shared,
    delivery: &Delivery,
    msg: &TaskMessage,
    meta: &TaskMeta,
    lineage: &Lineage,
) {
    let timeout = shared.config.worker.unregistered_timeout;
    let id = if msg.id.is_empty() {
        delivery.tag.clone()
    } else {
        msg.id.clone()
    };
    let now = now_ms();
    let first_seen = if timeout.is_zero() {
        Some(now)
    } else {
        let key = format!("{UNREGISTERED}{id}");
        let keep_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(3_600_000);
        let mut conn = shared.broker.connection();
        let got: redis::RedisResult<Option<u64>> = redis::cmd("SET")
            .arg(&key)
            .arg(now)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(keep_ms)
            .query_async(&mut conn)
            .await;
        match got {
            Ok(Some(earlier)) => Some(earlier),
            Ok(None) => Some(now),
            Err(err) => {
                tracing::warn!(error = %err, "could not record when the task was first unroutable; counting from now");
                Some(now)
            }
        }
    };
    let waited = Duration::from_millis(now.saturating_sub(first_seen.unwrap_or(now)));
    if waited < timeout {
        tracing::info!(
            waited_s = waited.as_secs(),
            timeout_s = timeout.as_secs(),
            "no plugin on this worker serves this task; returning it for a worker that does"
        );
        let retry_in = UNREGISTERED_RETRY.min(timeout - waited);
        let finish = Finish {
            require_owned: true,
            delayed: Some((
                now.saturating_add(u64::try_from(retry_in.as_millis()).unwrap_or(2_000)),
                delayed_member(
                    &delivery.list_key,
                    &String::from_utf8_lossy(&delivery.raw),
                    &delivery.tag,
                ),
            )),
            ..Finish::default()
        };
        commit(shared, &delivery.tag, finish).await;
        return;
    }
    let reason = format!(
        "task '{}' is not served by any worker that saw it within {} (this worker serves: {}); install the plugin that serves it, then requeue from the dead-letter list",
        msg.task,
        humantime::format_duration(timeout),
        shared.registry.current().task_names().join(", ")
    );
    tracing::warn!(%reason, "unknown task; dead-lettered");
    let failure = Failure::new("NotRegistered", format!("'{}'", msg.task));
    let finish = Finish {
        require_owned: true,
        results: if msg.id.is_empty() {
            Vec::new()
        } else {
            vec![(
                results::key(&msg.id),
                results::failure(&msg.id, &failure, None, lineage, None),
            )]
        },
        result_ttl: shared.results.ttl(),
        dead_letter: Some(dead_letter_entry(
            shared,
            delivery,
            &meta.queue,
            Some(msg),
            "NotRegistered",
            &reason,
        )),
        ..Finish::default()
    };
    if commit(shared, &delivery.tag, finish).await && !timeout.is_zero() {
        let mut conn = shared.broker.connection();
        let _: redis::RedisResult<()> =
            redis::AsyncCommands::del(&mut conn, format!("{UNREGISTERED}{id}")).await;
    }
}

/// A message we cannot run goes to the dead-letter list with its reason and raw bytes, and
/// FAILURE is stored when its task id could be read.
async fn dead_letter_undecodable(
    shared: &Shared,
    delivery: &Delivery,
    queue: &str,
    err: DecodeError,
) {
    tracing::warn!(queue, kind = ?err.kind, task.id = err.task_id.as_deref().unwrap_or(""), "undecodable message dead-lettered: {err}");
    let kind = format!("{:?}", err.kind);
    let mut results = Vec::new();
    if let Some(id) = err.task_id.as_deref().filter(|id| !id.is_empty()) {
        let failure = Failure::new(kind.clone(), err.reason.clone());
        results.push((
            results::key(id),
            results::failure(id, &failure, None, &Lineage::default(), None),
        ));
    }
    let mut entry = dead_letter_value(shared, delivery, queue, &kind, &err.reason);
    entry["task_id"] = err.task_id.clone().into();
    entry["task"] = err.task_name.clone().into();
    let finish = Finish {
        require_owned: true,
        results,
        result_ttl: shared.results.ttl(),
        dead_letter: Some(entry.to_string()),
        ..Finish::default()
    };
    shared
        .stats
        .failed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared
        .metrics
        .record_task(UNDECODABLE, queue, TaskState::Failure, None);
    commit(shared, &delivery.tag, finish).await;
}

fn dead_letter_value(
    shared: &Shared,
    delivery: &Delivery,
    queue: &str,
    kind: &str,
    reason: &str,
) -> Value {
    json!({
        "reason": reason,
        "kind": kind,
        "queue": queue,
        "list_key": delivery.list_key,
        "at": message::format_timestamp(jiff::Timestamp::now()),
        "worker": shared.name,
        "raw": String::from_utf8_lossy(&delivery.raw),
    })
}

fn dead_letter_entry(
    shared: &Shared,
    delivery: &Delivery,
    queue: &str,
    msg: Option<&TaskMessage>,
    kind: &str,
    reason: &str,
) -> String {
    let mut entry = dead_letter_value(shared, delivery, queue, kind, reason);
    if let Some(msg) = msg {
        entry["task_id"] = msg.id.clone().into();
        entry["task"] = msg.task.clone().into();
        entry["retries"] = msg.retries.into();
    }
    entry.to_string()
}

/// Applies a finish step, retrying through broker outages. The message stays owned in Redis
/// meanwhile, so giving up (only on a forced shutdown) loses nothing: it is restored later.
/// Returns whether it was applied (false when fenced off or abandoned).
pub(crate) async fn commit(shared: &Shared, tag: &str, mut finish: Finish) -> bool {
    let mut backoff = Duration::from_millis(50);
    if shared.separate_results {
        // Results in another Redis cannot join the atomic step: store them first, so a crash
        // in between reruns the task (and rewrites the same result) rather than losing it.
        for (key, meta) in std::mem::take(&mut finish.results) {
            let id = key
                .strip_prefix(results::PREFIX)
                .unwrap_or(&key)
                .to_string();
            let mut delay = Duration::from_millis(50);
            while let Err(err) = shared.results.store(&id, &meta).await {
                tracing::warn!(error = %err, "could not store a result; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.shutdown.forced() => return false,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    let finish = Arc::new(finish);
    loop {
        match shared.committer.finish(tag, finish.clone()).await {
            Ok(true) => return true,
            Ok(false) => {
                tracing::warn!(
                    "this worker no longer owns the message (it was redelivered after a lost heartbeat); its outcome here is discarded"
                );
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %crate::broker::error::Chain(err.as_ref()), retry_in_ms = backoff.as_millis() as u64, "could not record the task's outcome; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.shutdown.forced() => {
                        tracing::error!("forced shutdown while the broker is unreachable: the message stays unacked and will be redelivered");
                        return false;
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
