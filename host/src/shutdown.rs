//! Warm and cold shutdown. The first SIGTERM/SIGINT starts a warm shutdown (stop fetching,
//! let running tasks finish within the grace period); a second one makes it cold (stop running
//! tasks now, put them back on their queues).

use tokio_util::sync::CancellationToken;

/// Shutdown signals shared by every part of a worker. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    warm: CancellationToken,
    cold: CancellationToken,
}

impl Shutdown {
    /// A fresh pair of signals.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Begins a warm shutdown.
    pub fn begin(&self) {
        self.warm.cancel();
    }

    /// Escalates to a cold shutdown (implies warm).
    pub fn force(&self) {
        self.warm.cancel();
        self.cold.cancel();
    }

    /// Whether a warm (or cold) shutdown has begun.
    pub fn is_begun(&self) -> bool {
        self.warm.is_cancelled()
    }

    /// Resolves when a warm shutdown begins.
    pub async fn begun(&self) {
        self.warm.cancelled().await
    }

    /// Resolves when a cold shutdown begins.
    pub async fn forced(&self) {
        self.cold.cancelled().await
    }

    /// The warm token, for tasks that stop with the fetch loop.
    pub fn token(&self) -> CancellationToken {
        self.warm.clone()
    }

    /// Listens for SIGTERM and SIGINT: the first begins a warm shutdown, the second forces it.
    pub fn listen_for_signals(&self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                seen += 1;
                if seen == 1 {
                    tracing::info!(
                        "shutdown requested: no new tasks; waiting for running tasks (signal again to stop them now)"
                    );
                    this.begin();
                } else {
                    tracing::warn!(
                        "second signal: stopping running tasks and returning them to their queues"
                    );
                    this.force();
                    return;
                }
            }
        });
        Ok(())
    }
}
