//! Retries with exponential back-off for transient device errors.
//!
//! A token that answers "busy", times out or returns a frame with a bad CRC usually succeeds on
//! the next try; one that is unplugged or rejects the write does not. The driver says which
//! (`is_transient`); this module decides how often and how long to wait.

use std::time::Duration;

use crate::cancel::Cancel;

/// How a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub initial: Duration,
    /// Upper bound of one wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What a retried operation finally gave.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// It succeeded on this attempt (from 1).
    Done { value: T, attempt: u32 },
    /// It failed permanently, or transiently on the last attempt.
    Failed { error: E, attempt: u32 },
    /// The batch was cancelled while waiting to retry.
    Cancelled,
}

/// Runs `op` until it succeeds, fails permanently or the attempts are used up.
/// `on_retry(attempt, &error)` is called before each wait, for progress reports.
pub fn retry<T, E>(
    backoff: &Backoff,
    cancel: &Cancel,
    is_transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(u32, &E),
    mut op: impl FnMut(u32) -> Result<T, E>,
) -> Outcome<T, E> {
    let mut attempt = 1;
    loop {
        match op(attempt) {
            Ok(value) => return Outcome::Done { value, attempt },
            Err(error) if attempt < backoff.attempts && is_transient(&error) => {
                on_retry(attempt, &error);
                if !cancel.sleep(backoff.delay(attempt)) {
                    return Outcome::Cancelled;
                }
                attempt += 1;
            }
            Err(error) => return Outcome::Failed { error, attempt },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Backoff {
        Backoff {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(3),
        }
    }

    #[test]
    fn delays_double_up_to_the_bound() {
        let b = Backoff {
            attempts: 10,
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
        };
        let delays: Vec<u128> = (1..=5).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 300, 300]);
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let mut retried = Vec::new();
        let outcome = retry(
            &quick(),
            &Cancel::new(),
            |e: &&str| *e == "busy",
            |attempt, _| retried.push(attempt),
            |attempt| {
                if attempt < 3 {
                    Err("busy")
                } else {
                    Ok(attempt * 10)
                }
            },
        );
        assert!(matches!(
            outcome,
            Outcome::Done {
                value: 30,
                attempt: 3
            }
        ));
        assert_eq!(retried, [1, 2]);
    }

    #[test]
    fn permanent_errors_stop_at_once() {
        let outcome = retry(
            &quick(),
            &Cancel::new(),
            |e: &&str| *e == "busy",
            |_, _| {},
            |_| Err::<(), _>("unplugged"),
        );
        assert!(matches!(
            outcome,
            Outcome::Failed {
                error: "unplugged",
                attempt: 1
            }
        ));
    }

    #[test]
    fn attempts_are_bounded() {
        let mut calls = 0;
        let outcome = retry(
            &quick(),
            &Cancel::new(),
            |_: &&str| true,
            |_, _| {},
            |_| {
                calls += 1;
                Err::<(), _>("busy")
            },
        );
        assert!(matches!(outcome, Outcome::Failed { attempt: 4, .. }));
        assert_eq!(calls, 4);
    }

    #[test]
    fn cancel_stops_the_wait() {
        let cancel = Cancel::new();
        cancel.cancel();
        let outcome = retry(
            &quick(),
            &cancel,
            |_: &&str| true,
            |_, _| {},
            |_| Err::<(), _>("x"),
        );
        assert!(matches!(outcome, Outcome::Cancelled));
    }
}
