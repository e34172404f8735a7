//! Cancellation of a running batch.
//!
//! A [`Cancel`] is a shared flag: the shell keeps one clone (a Ctrl-C handler, the GUI's Cancel
//! button) and hands another to `Station::provision`. Workers look at it between pipeline steps
//! and during back-off sleeps; a device operation already in flight finishes first, because a
//! token must never be left half-written by the station's own choice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A cancellation flag shared between a shell and a running batch.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
}

impl Cancel {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the batch to stop after the device operations in flight.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration`, waking early when cancelled. Returns false if cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        loop {
            if self.is_cancelled() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_wakes_early_when_cancelled() {
        let cancel = Cancel::new();
        let other = cancel.clone();
        let started = Instant::now();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            other.cancel();
        });
        assert!(!cancel.sleep(Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(1));
        waker.join().expect("waker thread");
        assert!(cancel.is_cancelled());
    }

    #[test]
    fn sleep_runs_to_the_end_when_not_cancelled() {
        let cancel = Cancel::new();
        let started = Instant::now();
        assert!(cancel.sleep(Duration::from_millis(40)));
        assert!(started.elapsed() >= Duration::from_millis(40));
    }
}
