//! `--autoscale MAX,MIN`: grow task slots while a backlog waits and every slot is busy, shrink
//! back after an idle period. Slots are semaphore permits, so shrinking never interrupts a task:
//! it takes free permits out of circulation.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How long all slots beyond the minimum must sit idle before they are released.
pub const IDLE_BEFORE_SHRINK: Duration = Duration::from_secs(30);

/// The slot count and its bounds.
#[derive(Debug)]
pub struct Scaler {
    slots: Arc<Semaphore>,
    current: AtomicU32,
    min: AtomicU32,
    max: AtomicU32,
    ceiling: u32,
    idle_since: Mutex<Option<Instant>>,
}

impl Scaler {
    /// Starts at `min` slots (the semaphore must hold exactly `min` permits). `ceiling` bounds
    /// manual growth: the sandbox pool is sized for it.
    pub fn new(slots: Arc<Semaphore>, min: u32, max: u32, ceiling: u32) -> Scaler {
        Scaler {
            slots,
            current: AtomicU32::new(min),
            min: AtomicU32::new(min),
            max: AtomicU32::new(max.max(min)),
            ceiling: ceiling.max(max).max(min),
            idle_since: Mutex::new(None),
        }
    }

    /// Whether autoscaling is on (max above min).
    pub fn is_dynamic(&self) -> bool {
        self.max.load(Ordering::Relaxed) > self.min.load(Ordering::Relaxed)
    }

    /// The slot count now.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Adds `n` slots now (`taskbox control pool-grow`), up to `ceiling`, the most the sandbox
    /// pool was sized for; raises the autoscale maximum with it. Returns the slot count.
    pub fn grow(&self, n: u32) -> u32 {
        let current = self.current();
        let grow = n.min(self.ceiling.saturating_sub(current));
        if grow > 0 {
            let fixed = !self.is_dynamic();
            self.slots.add_permits(grow as usize);
            self.current.fetch_add(grow, Ordering::Relaxed);
            self.max.fetch_max(current + grow, Ordering::Relaxed);
            if fixed {
                // A fixed pool stays fixed at its new size rather than shrinking back.
                self.min.fetch_max(current + grow, Ordering::Relaxed);
            }
            tracing::info!(slots = current + grow, "task slots grown on request");
        }
        self.current()
    }

    /// Removes up to `n` slots (`taskbox control pool-shrink`), never below one: free slots go
    /// at once, busy ones as their tasks finish (a running task is never interrupted). Lowers
    /// the autoscale bounds with it. Returns the slot count it is shrinking to.
    pub fn shrink(&self, n: u32) -> u32 {
        let current = self.current();
        let take = n.min(current.saturating_sub(1));
        if take == 0 {
            return current;
        }
        let target = current - take;
        self.current.store(target, Ordering::Relaxed);
        self.min.fetch_min(target, Ordering::Relaxed);
        self.max.fetch_min(
            target.max(self.min.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let slots = self.slots.clone();
        tokio::spawn(async move {
            if let Ok(permits) = slots.acquire_many_owned(take).await {
                permits.forget();
            }
        });
        tracing::info!(slots = target, "task slots shrinking on request");
        target
    }

    /// Grows by up to the backlog when every slot is busy; shrinks by one slot per call after
    /// [`IDLE_BEFORE_SHRINK`] with spare slots idle.
    pub fn adjust(&self, backlog: u64, busy: u32) {
        let current = self.current();
        let (min, max) = (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        );
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if backlog > 0 && busy >= current && current < max {
            let grow = (backlog.min(u64::from(max - current))) as u32;
            self.slots.add_permits(grow as usize);
            self.current.fetch_add(grow, Ordering::Relaxed);
            *idle = None;
            tracing::info!(
                slots = current + grow,
                backlog,
                "autoscale: grew task slots"
            );
            return;
        }
        if busy < current && current > min && backlog == 0 {
            let since = *idle.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_BEFORE_SHRINK
                && let Ok(permit) = self.slots.try_acquire()
            {
                permit.forget();
                self.current.fetch_sub(1, Ordering::Relaxed);
                *idle = Some(Instant::now());
                tracing::info!(slots = current - 1, "autoscale: released an idle task slot");
            }
        } else {
            *idle = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_under_backlog_up_to_max() {
        let slots = Arc::new(Semaphore::new(2));
        let scaler = Scaler::new(slots.clone(), 2, 5, 10);
        scaler.adjust(10, 2);
        assert_eq!(scaler.current(), 5);
        assert_eq!(slots.available_permits(), 5);
        scaler.adjust(0, 0);
        assert_eq!(scaler.current(), 5, "shrinking waits for the idle period");
    }

    #[test]
    fn does_not_grow_while_slots_are_free() {
        let slots = Arc::new(Semaphore::new(2));
        let scaler = Scaler::new(slots, 2, 5, 10);
        scaler.adjust(10, 1);
        assert_eq!(scaler.current(), 2);
    }

    #[tokio::test]
    async fn manual_grow_is_capped_and_shrink_keeps_one_slot() {
        let slots = Arc::new(Semaphore::new(2));
        let scaler = Scaler::new(slots.clone(), 2, 2, 4);
        assert_eq!(scaler.grow(5), 4, "capped at the pool ceiling");
        assert_eq!(slots.available_permits(), 4);
        assert!(
            !scaler.is_dynamic(),
            "a fixed pool stays fixed at its new size"
        );
        assert_eq!(scaler.shrink(10), 1, "never below one slot");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(slots.available_permits(), 1);
    }
}
