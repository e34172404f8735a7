//! A bounded pool of OS threads for blocking device work.
//!
//! Token I/O is blocking (HID feature reports with polling sleeps), so each device is driven by
//! a plain thread rather than an async task. At most `workers` devices are in flight at once;
//! the next queued device starts as soon as a worker is free, so a slow token does not hold up
//! a whole "wave".

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `job` over every item on at most `workers` threads; results keep the items' order.
pub fn run<T, R, F>(items: Vec<T>, workers: usize, job: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let total = items.len();
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..total).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = workers.clamp(1, total.max(1));

    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= total {
                        break;
                    }
                    let item = take(&queue[index]);
                    let result = job(item);
                    *lock(&results[index]) = Some(result);
                }
            });
        }
    });

    results.into_iter().map(|slot| into_inner(slot)).collect()
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    // A poisoned slot only means another job panicked; the slot's value is still whole.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn take<T>(slot: &Mutex<Option<T>>) -> T {
    // Each index is handed out exactly once by the atomic counter, so the slot is still full.
    lock(slot).take().expect("queue slot taken twice")
}

fn into_inner<R>(slot: Mutex<Option<R>>) -> R {
    // `thread::scope` re-raises a job's panic before we get here, so every slot was filled.
    slot.into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .expect("every job stored its result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn results_keep_the_input_order() {
        let out = run((0..50).collect(), 4, |i: u32| i * 2);
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn never_more_than_the_bound_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        run((0..20).collect(), 3, |_: u32| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn blocking_jobs_overlap() {
        let started = Instant::now();
        run((0..8).collect(), 8, |_: u32| {
            std::thread::sleep(Duration::from_millis(100))
        });
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let out: Vec<u8> = run(Vec::<u8>::new(), 4, |i| i);
        assert!(out.is_empty());
    }
}
