//! Bounded pools of OS threads for blocking device work.
//!
//! Token I/O is blocking (HID feature reports with polling sleeps), so each device is driven by
//! a plain thread rather than an async task. At most `workers` devices are in flight at once;
//! the next queued device starts as soon as a worker is free, so a slow token does not hold up
//! a whole "wave". [`pipeline`] splits each item into three stages on three such pools, the
//! first running ahead of the second, the third behind it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Runs `first`, `second` and `third` over every item, each on its own `workers` threads;
/// results keep the items' order.
///
/// At most `workers` items are in `second` at once, taken in order; `first` runs in order
/// too, at most `workers` items ahead of the items `second` has taken; `third` takes items
/// as `second` finishes them. So while one wave of items is in `second` (writing devices),
/// the next wave's `first` (obtaining their keys) already runs, and the previous wave's
/// `third` (proving the writes) runs beside it instead of holding a `second` worker.
pub fn pipeline<T, P, Q, R, F, S, L>(
    items: Vec<T>,
    workers: usize,
    first: F,
    second: S,
    third: L,
) -> Vec<R>
where
    T: Send,
    P: Send,
    Q: Send,
    R: Send,
    F: Fn(T) -> P + Sync,
    S: Fn(P) -> Q + Sync,
    L: Fn(Q) -> R + Sync,
{
    let total = items.len();
    let workers = workers.clamp(1, total.max(1));
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..total).map(|_| Mutex::new(None)).collect();
    let stage = Stage {
        state: Mutex::new(Handover {
            ready: (0..total).map(|_| None).collect(),
            taken: 0,
            broken: false,
        }),
        changed: Condvar::new(),
    };
    let tail = Tail {
        state: Mutex::new(TailState {
            queue: VecDeque::new(),
            left: total,
            broken: false,
        }),
        changed: Condvar::new(),
    };
    let next_first = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next_first.fetch_add(1, Ordering::SeqCst);
                    if index >= total || !stage.wait_for_room(index, workers) {
                        break;
                    }
                    let guard = Breaker(&stage, &tail);
                    let prepared = first(take(&queue[index]));
                    stage.hand_over(index, prepared);
                    std::mem::forget(guard);
                }
            });
            scope.spawn(|| {
                while let Some((index, prepared)) = stage.next(total) {
                    let guard = Breaker(&stage, &tail);
                    let done = second(prepared);
                    tail.push(index, done);
                    std::mem::forget(guard);
                }
            });
            scope.spawn(|| {
                while let Some((index, done)) = tail.pop() {
                    let guard = Breaker(&stage, &tail);
                    *lock(&results[index]) = Some(third(done));
                    std::mem::forget(guard);
                }
            });
        }
    });

    results.into_iter().map(|slot| into_inner(slot)).collect()
}

/// The hand-over from the second to the third stage of a [`pipeline`], in finishing order.
struct Tail<Q> {
    state: Mutex<TailState<Q>>,
    changed: Condvar,
}

struct TailState<Q> {
    queue: VecDeque<(usize, Q)>,
    /// Items the second stage has not finished yet.
    left: usize,
    broken: bool,
}

impl<Q> Tail<Q> {
    fn push(&self, index: usize, done: Q) {
        let mut state = lock(&self.state);
        state.queue.push_back((index, done));
        state.left -= 1;
        self.changed.notify_all();
    }

    /// The next item the second stage finished; `None` once every item went through.
    fn pop(&self) -> Option<(usize, Q)> {
        let mut state = lock(&self.state);
        loop {
            if state.broken {
                return None;
            }
            if let Some(item) = state.queue.pop_front() {
                return Some(item);
            }
            if state.left == 0 {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The hand-over between the two stages of a [`pipeline`].
struct Stage<P> {
    state: Mutex<Handover<P>>,
    changed: Condvar,
}

struct Handover<P> {
    /// Items the first stage finished and the second has not taken yet.
    ready: Vec<Option<P>>,
    /// How many items the second stage has taken (it takes them in order).
    taken: usize,
    /// A stage panicked: the others stop waiting (the scope re-raises the panic).
    broken: bool,
}

impl<P> Stage<P> {
    fn lock(&self) -> MutexGuard<'_, Handover<P>> {
        lock(&self.state)
    }

    fn wait<'s>(&'s self, guard: MutexGuard<'s, Handover<P>>) -> MutexGuard<'s, Handover<P>> {
        self.changed
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until item `index` is at most `ahead` items past the second stage's; false when
    /// the pipeline broke.
    fn wait_for_room(&self, index: usize, ahead: usize) -> bool {
        let mut state = self.lock();
        while index >= state.taken + ahead && !state.broken {
            state = self.wait(state);
        }
        !state.broken
    }

    fn hand_over(&self, index: usize, prepared: P) {
        self.lock().ready[index] = Some(prepared);
        self.changed.notify_all();
    }

    /// Takes the next item in order, waiting until the first stage has finished it.
    fn next(&self, total: usize) -> Option<(usize, P)> {
        let mut state = self.lock();
        if state.taken >= total || state.broken {
            return None;
        }
        let index = state.taken;
        state.taken += 1;
        self.changed.notify_all();
        loop {
            if state.broken {
                return None;
            }
            if let Some(prepared) = state.ready[index].take() {
                return Some((index, prepared));
            }
            state = self.wait(state);
        }
    }
}

/// Marks the pipeline broken when a stage unwinds, so that no thread waits for it forever.
struct Breaker<'s, P, Q>(&'s Stage<P>, &'s Tail<Q>);

impl<P, Q> Drop for Breaker<'_, P, Q> {
    fn drop(&mut self) {
        self.0.lock().broken = true;
        self.0.changed.notify_all();
        lock(&self.1.state).broken = true;
        self.1.changed.notify_all();
    }
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
        let out = pipeline((0..50).collect(), 4, |i: u32| i, |i: u32| i * 2, |i| i);
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn never_more_than_the_bound_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        pipeline(
            (0..20).collect(),
            3,
            |i: u32| i,
            |_: u32| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                in_flight.fetch_sub(1, Ordering::SeqCst);
            },
            |()| (),
        );
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn blocking_jobs_overlap() {
        let started = Instant::now();
        pipeline(
            (0..8).collect(),
            8,
            |i: u32| i,
            |_: u32| std::thread::sleep(Duration::from_millis(100)),
            |()| (),
        );
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn pipeline_results_keep_the_input_order() {
        let out = pipeline((0..40).collect(), 3, |i: u32| i + 1, |p: u32| p * 10, |q| q);
        assert_eq!(out, (0..40).map(|i| (i + 1) * 10).collect::<Vec<_>>());
    }

    #[test]
    fn pipeline_bounds_the_second_stage_and_the_lookahead() {
        let taken = AtomicUsize::new(0);
        let in_second = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let furthest_ahead = AtomicUsize::new(0);
        pipeline(
            (0..24).collect(),
            4,
            |i: usize| {
                let ahead = i.saturating_sub(taken.load(Ordering::SeqCst));
                furthest_ahead.fetch_max(ahead, Ordering::SeqCst);
                i
            },
            |_: usize| {
                taken.fetch_add(1, Ordering::SeqCst);
                let now = in_second.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                in_second.fetch_sub(1, Ordering::SeqCst);
            },
            |()| (),
        );
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        // `taken` counts second-stage starts, which trail the pipeline's own count by the
        // items waiting for their first stage: at most one wave.
        assert!(furthest_ahead.load(Ordering::SeqCst) <= 8);
    }

    #[test]
    fn pipeline_overlaps_the_waves_stages() {
        // 4 items, 2 workers, 100 ms a stage: the second wave's first stage hides behind the
        // first wave's second stage, and the first wave's third stage behind the second
        // wave's second stage: 400 ms, against 600 ms stage after stage.
        let started = Instant::now();
        let stage = |_| std::thread::sleep(Duration::from_millis(100));
        pipeline((0..4).collect(), 2, |_: u32| stage(()), stage, stage);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_millis(490), "{took:?}");
    }

    #[test]
    #[should_panic(expected = "a scoped thread panicked")]
    fn a_panicking_stage_does_not_hang_the_pipeline() {
        pipeline(
            (0..6).collect(),
            2,
            |i: u32| {
                if i == 3 {
                    panic!("first stage failed");
                }
                i
            },
            |p: u32| p,
            |q| q,
        );
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let out: Vec<u8> = pipeline(Vec::<u8>::new(), 4, |i| i, |i| i, |i| i);
        assert!(out.is_empty());
    }
}
