//! Resuming an interrupted batch: what to do with each device, given what the store recorded.
//!
//! The store writes every key transition in one transaction with its event, *after* the device
//! operation it records has returned. So for a device the last recorded state bounds what the
//! device may hold (the full argument is in `docs/engine.md`):
//!
//! | recorded key state | the device holds | resume does |
//! |---|---|---|
//! | none | its old configuration | provision from the start |
//! | `reserved` | the old configuration or this key (crash during the write) | revoke it, provision a new key |
//! | `written` | this key, its counter maybe advanced by an interrupted verification | verify with a look-ahead window |
//! | `verified` / `exported` | this key | nothing |
//!
//! A DSKPP run that started but never produced a `reserved` key may still have been completed
//! by the server; [`orphaned_runs`] finds those runs so that the engine records them as
//! abandoned.
//!
//! While a batch runs, its workers write their records through one [`Writer`]: group commit.
//! A worker queues its record and waits; whichever worker finds no commit in progress takes
//! everything queued, writes it in one transaction ([`Store::record_group_unsynced`]), lets the
//! next group commit, syncs the WAL once when a reservation is among its group, and answers
//! every sender. A worker still returns only once its
//! own record is committed (durable, for a reservation), so the order above holds for each
//! device; only the workers' waits are shared.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use keyprov_store::{
    BatchId, DeviceId, DeviceOutcome, Event, KeyId, KeyProfile, KeyState, NewEvent, NewKey, Record,
    Recorded, Store, StoreError, Verification,
};
use zeroize::Zeroizing;

/// One key of the device in this batch, as the store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedKey {
    pub id: KeyId,
    pub state: KeyState,
}

/// What resuming does with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Keys to revoke first: issued, possibly written, never confirmed.
    pub revoke: Vec<KeyId>,
    pub next: Next,
}

/// The step a device resumes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the whole pipeline: DSKPP, write, verify.
    Provision,
    /// The write of this key was confirmed; prove it on the device.
    Verify(KeyId),
    /// The device is finished with this key.
    Done(KeyId),
}

/// Decides how a device resumes from the keys recorded for it in this batch.
pub fn plan(keys: &[RecordedKey]) -> Plan {
    let revoke = keys
        .iter()
        .filter(|k| k.state == KeyState::Reserved)
        .map(|k| k.id)
        .collect();
    let finished = keys
        .iter()
        .find(|k| matches!(k.state, KeyState::Verified | KeyState::Exported));
    let written = keys.iter().find(|k| k.state == KeyState::Written);
    let next = match (finished, written) {
        (Some(k), _) => Next::Done(k.id),
        (None, Some(k)) => Next::Verify(k.id),
        (None, None) => Next::Provision,
    };
    Plan { revoke, next }
}

/// DSKPP runs (by client id) of `device` that started (`engine.dskpp_started`) but neither
/// failed, nor were abandoned, nor produced a key (`key.reserved`): a crash cut them off, and
/// the server may have issued a key for them. Runs of one device are sequential, so a start
/// followed by another start, or by nothing, is such a run.
pub fn orphaned_runs(events: &[Event], device: DeviceId) -> Vec<String> {
    let mut open: Option<String> = None;
    let mut orphans = Vec::new();
    for e in events.iter().filter(|e| e.device == Some(device)) {
        let client_id = e.detail.get("client_id").and_then(|c| c.as_str());
        match e.kind.as_str() {
            "engine.dskpp_started" => {
                orphans.extend(open.take());
                open = client_id.map(String::from);
            }
            "engine.dskpp_failed" | "engine.dskpp_abandoned" | "key.reserved" => open = None,
            _ => {}
        }
    }
    orphans.extend(open);
    orphans
}

/// A record queued for the next group commit; owns what [`Record`] borrows.
pub(crate) enum Entry {
    Event(NewEvent),
    Reserve(Reservation),
    Written(KeyId),
    Verified(KeyId, Verification),
    Revoked(KeyId, String),
    Outcome {
        batch: BatchId,
        device: DeviceId,
        outcome: DeviceOutcome,
        error: Option<String>,
        retryable: bool,
    },
}

/// A key to reserve (`NewKey` with its secret owned, zeroized on drop; no `Debug`).
pub(crate) struct Reservation {
    pub batch: BatchId,
    pub device: DeviceId,
    pub slot: String,
    pub profile: KeyProfile,
    pub counter: Option<u64>,
    pub secret: Zeroizing<Vec<u8>>,
    pub dskpp_key_id: Option<String>,
    pub server_url: Option<String>,
}

impl Reservation {
    fn new_key(&self) -> NewKey<'_> {
        NewKey {
            batch: self.batch,
            device: self.device,
            slot: self.slot.clone(),
            profile: self.profile.clone(),
            counter: self.counter,
            secret: &self.secret,
            dskpp_key_id: self.dskpp_key_id.clone(),
            server_url: self.server_url.clone(),
        }
    }
}

/// The group-committing journal of a running batch, shared by its workers.
pub(crate) struct Writer<'s> {
    store: &'s Store,
    queue: Mutex<Queue>,
    answered: Condvar,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    waiting: Vec<(u64, Entry)>,
    answers: HashMap<u64, Result<Recorded, StoreError>>,
    committing: bool,
}

impl<'s> Writer<'s> {
    pub fn new(store: &'s Store) -> Self {
        Writer {
            store,
            queue: Mutex::new(Queue::default()),
            answered: Condvar::new(),
        }
    }

    /// Commits `entry` (with whatever else is queued) and returns once it is committed.
    pub fn record(&self, entry: Entry) -> Result<Recorded, StoreError> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, entry));
        loop {
            if let Some(answer) = queue.answers.remove(&ticket) {
                return answer;
            }
            // Wait while a group commits, or while the group that took this entry syncs.
            if queue.committing || queue.waiting.is_empty() {
                queue = self
                    .answered
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            queue.committing = true;
            let group = std::mem::take(&mut queue.waiting);
            drop(queue);
            let answers = Committing {
                writer: self,
                released: Cell::new(false),
            }
            .commit(&group);
            queue = self.lock();
            queue
                .answers
                .extend(group.iter().map(|(t, _)| *t).zip(answers));
            self.answered.notify_all();
        }
    }

    /// Lets the next group commit.
    fn release(&self) {
        self.lock().committing = false;
        self.answered.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Only this module touches the queue, and it never panics while holding it.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The commit in progress. Should it panic, dropping it lets the next worker commit.
struct Committing<'w, 's> {
    writer: &'w Writer<'s>,
    released: Cell<bool>,
}

impl Committing<'_, '_> {
    /// Commits the group, lets the next group commit, then makes this one durable: the next
    /// group's transaction overlaps this group's fsync.
    fn commit(&self, group: &[(u64, Entry)]) -> Vec<Result<Recorded, StoreError>> {
        let keys: Vec<Option<NewKey<'_>>> = group
            .iter()
            .map(|(_, e)| match e {
                Entry::Reserve(r) => Some(r.new_key()),
                _ => None,
            })
            .collect();
        let records: Vec<Record<'_>> = group
            .iter()
            .zip(&keys)
            .map(|((_, entry), key)| match (entry, key) {
                (Entry::Reserve(_), Some(key)) => Record::Reserve(key),
                (Entry::Event(e), _) => Record::Event(e),
                (Entry::Written(id), _) => Record::Written(*id),
                (Entry::Verified(id, proof), _) => Record::Verified(*id, proof),
                (Entry::Revoked(id, reason), _) => Record::Revoked(*id, reason),
                (
                    Entry::Outcome {
                        batch,
                        device,
                        outcome,
                        error,
                        retryable,
                    },
                    _,
                ) => Record::Outcome {
                    batch: *batch,
                    device: *device,
                    outcome: *outcome,
                    error: error.as_deref(),
                    retryable: *retryable,
                },
                // `keys` holds a key exactly where `group` holds a reservation.
                (Entry::Reserve(_), None) => unreachable!("reservation without its key"),
            })
            .collect();
        tracing::trace!(records = records.len(), "group commit");
        let store = self.writer.store;
        let outcomes = store.record_group_unsynced(&records);
        self.released.set(true);
        self.writer.release();
        store.sync_reservations(&records, outcomes)
    }
}

impl Drop for Committing<'_, '_> {
    fn drop(&mut self) {
        if !self.released.get() {
            self.writer.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, state: KeyState) -> RecordedKey {
        RecordedKey {
            id: KeyId(id),
            state,
        }
    }

    #[test]
    fn a_device_without_keys_is_provisioned() {
        assert_eq!(
            plan(&[]),
            Plan {
                revoke: vec![],
                next: Next::Provision
            }
        );
    }

    #[test]
    fn a_reserved_key_is_revoked_and_replaced() {
        let p = plan(&[key(1, KeyState::Revoked), key(2, KeyState::Reserved)]);
        assert_eq!(p.revoke, [KeyId(2)]);
        assert_eq!(p.next, Next::Provision);
    }

    #[test]
    fn a_written_key_is_verified() {
        let p = plan(&[key(1, KeyState::Revoked), key(2, KeyState::Written)]);
        assert!(p.revoke.is_empty());
        assert_eq!(p.next, Next::Verify(KeyId(2)));
    }

    #[test]
    fn a_verified_or_exported_key_ends_the_device() {
        assert_eq!(
            plan(&[key(3, KeyState::Verified)]).next,
            Next::Done(KeyId(3))
        );
        assert_eq!(
            plan(&[key(4, KeyState::Exported)]).next,
            Next::Done(KeyId(4))
        );
    }

    fn event(seq: i64, kind: &str, device: i64, client_id: Option<&str>) -> Event {
        Event {
            seq,
            at: time::OffsetDateTime::UNIX_EPOCH,
            kind: kind.into(),
            batch: None,
            device: Some(DeviceId(device)),
            key: None,
            detail: match client_id {
                Some(id) => serde_json::json!({ "client_id": id }),
                None => serde_json::json!({}),
            },
            hash: String::new(),
        }
    }

    #[test]
    fn runs_cut_off_before_their_key_was_recorded_are_orphans() {
        let events = [
            event(1, "engine.dskpp_started", 1, Some("a1")),
            event(2, "key.reserved", 1, None),
            event(3, "engine.dskpp_started", 1, Some("b2")),
            event(4, "engine.dskpp_started", 2, Some("x9")),
            event(5, "engine.dskpp_failed", 2, Some("x9")),
            event(6, "engine.dskpp_started", 1, Some("c3")),
            event(7, "engine.dskpp_started", 2, Some("y8")),
        ];
        assert_eq!(orphaned_runs(&events, DeviceId(1)), ["b2", "c3"]);
        assert_eq!(orphaned_runs(&events, DeviceId(2)), ["y8"]);
        assert!(orphaned_runs(&events, DeviceId(3)).is_empty());
    }

    #[test]
    fn an_abandoned_run_is_not_reported_again() {
        let events = [
            event(1, "engine.dskpp_started", 1, Some("a1")),
            event(2, "engine.dskpp_abandoned", 1, Some("a1")),
        ];
        assert!(orphaned_runs(&events, DeviceId(1)).is_empty());
    }

    #[test]
    fn concurrent_records_are_all_committed_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("station.db"), None).unwrap();
        let writer = Writer::new(&store);
        std::thread::scope(|scope| {
            for thread in 0..16 {
                let writer = &writer;
                scope.spawn(move || {
                    for n in 0..5 {
                        let answer = writer.record(Entry::Event(NewEvent {
                            kind: "engine.test".into(),
                            batch: None,
                            device: None,
                            key: None,
                            detail: serde_json::json!({ "thread": thread, "n": n }),
                        }));
                        assert!(matches!(answer, Ok(Recorded::Event(_))), "{answer:?}");
                    }
                });
            }
        });
        let events = store.events(None).unwrap();
        let ours = events.iter().filter(|e| e.kind == "engine.test").count();
        assert_eq!(ours, 80);
        // Each thread's records keep their order.
        for thread in 0..16 {
            let order: Vec<i64> = events
                .iter()
                .filter(|e| e.detail["thread"] == thread)
                .map(|e| e.detail["n"].as_i64().unwrap())
                .collect();
            assert_eq!(order, [0, 1, 2, 3, 4]);
        }
        assert!(store.verify_audit().unwrap().is_intact());
    }

    #[test]
    fn a_refused_record_answers_its_sender_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("station.db"), None).unwrap();
        let writer = Writer::new(&store);
        let forged = writer.record(Entry::Event(NewEvent {
            kind: "key.forged".into(),
            batch: None,
            device: None,
            key: None,
            detail: serde_json::json!({}),
        }));
        assert!(matches!(forged, Err(StoreError::ReservedEventKind(_))));
        let revoked = writer.record(Entry::Revoked(KeyId(42), "no such key".into()));
        assert!(matches!(revoked, Err(StoreError::UnknownKey(KeyId(42)))));
    }
}
