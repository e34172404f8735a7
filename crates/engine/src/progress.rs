//! Progress reports of a running batch, shared by its worker threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::api::{ProgressEvent, Stage};

/// The shell's callback, called from worker threads.
pub type OnProgress<'a> = &'a (dyn Fn(ProgressEvent) + Sync);

/// Counts finished tokens and forwards events to the shell.
pub(crate) struct Progress<'a> {
    batch_id: i64,
    total: usize,
    finished: AtomicUsize,
    sink: OnProgress<'a>,
}

/// The token a report is about.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub serial: String,
    pub family: String,
}

impl<'a> Progress<'a> {
    pub fn new(batch_id: i64, total: usize, sink: OnProgress<'a>) -> Self {
        Self {
            batch_id,
            total,
            finished: AtomicUsize::new(0),
            sink,
        }
    }

    /// Reports a stage; `Done` and `Failed` count the token as finished.
    pub fn report(&self, who: &Subject, stage: Stage, attempt: u32, message: Option<String>) {
        let finished = if matches!(stage, Stage::Done | Stage::Failed) {
            self.finished.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.finished.load(Ordering::SeqCst)
        };
        (self.sink)(ProgressEvent {
            batch_id: self.batch_id,
            serial: who.serial.clone(),
            family: who.family.clone(),
            stage,
            attempt,
            message,
            finished,
            total: self.total,
        });
    }
}
