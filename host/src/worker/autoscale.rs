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
    min: u32,
    max: u32,
    idle_since: Mutex<Option<Instant>>,
}

impl Scaler {
    /// Starts at `min` slots (the semaphore must hold exactly `min` permits).
    pub fn new(slots: Arc<Semaphore>, min: u32, max: u32) -> Scaler {
        Scaler {
            slots,
            current: AtomicU32::new(min),
            min,
            max: max.max(min),
            idle_since: Mutex::new(None),
        }
    }

    /// Whether autoscaling is on (max above min).
    pub fn is_dynamic(&self) -> bool {
        self.max > self.min
    }

    /// The slot count now.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Grows by up to the backlog when every slot is busy; shrinks by one slot per call after
    /// [`IDLE_BEFORE_SHRINK`] with spare slots idle.
    pub fn adjust(&self, backlog: u64, busy: u32) {
        let current = self.current();
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if backlog > 0 && busy >= current && current < self.max {
            let grow = (backlog.min(u64::from(self.max - current))) as u32;
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
        if busy < current && current > self.min && backlog == 0 {
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
        let scaler = Scaler::new(slots.clone(), 2, 5);
        scaler.adjust(10, 2);
        assert_eq!(scaler.current(), 5);
        assert_eq!(slots.available_permits(), 5);
        scaler.adjust(0, 0);
        assert_eq!(scaler.current(), 5, "shrinking waits for the idle period");
    }

    #[test]
    fn does_not_grow_while_slots_are_free() {
        let slots = Arc::new(Semaphore::new(2));
        let scaler = Scaler::new(slots, 2, 5);
        scaler.adjust(10, 1);
        assert_eq!(scaler.current(), 2);
    }
}
