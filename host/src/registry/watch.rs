//! Noticing changes to the plugin directory: native file-system events (inotify on Linux)
//! for a quick reaction, and a periodic fingerprint comparison as the fallback that also
//! covers file systems without events (NFS, some container mounts). Both only signal "look
//! again"; the registry's reload decides what actually changed.

use std::path::PathBuf;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dir;

/// How long to wait after an event for more to arrive, so a copy of several files causes one
/// reload rather than one per write.
pub const SETTLE: Duration = Duration::from_millis(250);

/// Watches `root` until `cancel` fires; each message on the returned channel means "the
/// directory may have changed". Polls every `poll` even when events work.
pub fn spawn(root: PathBuf, poll: Duration, cancel: CancellationToken) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<()>();
    let watcher = {
        let event_tx = event_tx.clone();
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Only changes count: the reload's own reads (open/access events) must not
            // trigger the next reload.
            if let Ok(event) = res
                && (event.kind.is_create() || event.kind.is_modify() || event.kind.is_remove())
                && !matches!(
                    event.kind,
                    notify::EventKind::Modify(notify::event::ModifyKind::Metadata(
                        notify::event::MetadataKind::AccessTime
                    ))
                )
            {
                let _ = event_tx.send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&root, notify::RecursiveMode::Recursive)?;
            Ok(w)
        })
    };
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(dir = %root.display(), error = %err, poll_ms = poll.as_millis() as u64, "cannot watch the plugin directory for changes; polling it instead");
            None
        }
    };
    tokio::spawn(async move {
        // Keep the watcher alive as long as the loop runs.
        let _watcher = watcher;
        let mut last = dir::fingerprint(&root);
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let changed = tokio::select! {
                _ = cancel.cancelled() => return,
                Some(()) = event_rx.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while event_rx.try_recv().is_ok() {}
                    true
                }
                _ = ticker.tick() => {
                    let now = dir::fingerprint(&root);
                    let changed = now != last;
                    last = now;
                    changed
                }
            };
            if changed {
                last = dir::fingerprint(&root);
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}
