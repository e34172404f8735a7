//! Group commit: the journal records of many devices written in one transaction.
//!
//! A batch programs tens of tokens at once, and each one journals every step (DSKPP started,
//! key reserved, written, verified, its outcome). One transaction per record means one WAL
//! append and, for a reservation, one fsync per token, all queued behind the one connection:
//! at 64 tokens that queue, not the devices, set the pace. [`Store::record_group`] writes
//! whatever the engine's threads have queued in one transaction, each record in its own
//! savepoint so that a refused record (a closed batch, a wrong transition) is rolled back
//! alone and reported to its sender, and syncs the WAL once when the group holds a reservation.
//! Every record keeps the meaning and the audit event it has when written on its own.

use rusqlite::Transaction;

use crate::error::{SqlContext, StoreError};
use crate::keys::{event_in, revoke_in, verified_in, written_in};
use crate::model::{BatchId, DeviceId, DeviceOutcome, KeyId};
use crate::records::{NewEvent, NewKey, Verification};
use crate::store::{Store, device_outcome_in};

/// One journal record of a group; each is what the `Store` method of the same name writes.
#[derive(Debug)]
pub enum Record<'a> {
    /// [`Store::record_event`].
    Event(&'a NewEvent),
    /// [`Store::reserve_key`]: the group is synced before any of its senders is answered.
    Reserve(&'a NewKey<'a>),
    /// [`Store::mark_key_written`].
    Written(KeyId),
    /// [`Store::mark_key_verified`].
    Verified(KeyId, &'a Verification),
    /// [`Store::revoke_key`].
    Revoked(KeyId, &'a str),
    /// [`Store::set_batch_device_outcome`].
    Outcome {
        batch: BatchId,
        device: DeviceId,
        outcome: DeviceOutcome,
        error: Option<&'a str>,
        retryable: bool,
    },
}

/// What a record of a group produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The event's sequence number.
    Event(i64),
    /// The reserved key's id.
    Reserved(KeyId),
    /// The keys the write replaced (revoked in the same transaction).
    Written(Vec<KeyId>),
    /// A record with nothing to return.
    Done,
}

impl Store {
    /// Writes `records` in one transaction, in order, and returns one outcome per record.
    /// A record that fails is rolled back alone (its savepoint); the others commit. When a
    /// reservation committed, the WAL is synced before this returns, so every record of the
    /// group then survives power loss. Should the commit itself fail, each record is retried
    /// in a transaction of its own, so that one bad record cannot cost the others.
    pub fn record_group(&self, records: &[Record<'_>]) -> Vec<Result<Recorded, StoreError>> {
        let outcomes = self.record_group_unsynced(records);
        self.sync_reservations(records, outcomes)
    }

    /// [`Store::record_group`] without its sync: its reservations are committed but not yet
    /// durable, and must not reach a device before [`Store::sync_reservations`] returned. The
    /// caller may let the next group commit meanwhile, so that its commit overlaps this sync.
    pub fn record_group_unsynced(
        &self,
        records: &[Record<'_>],
    ) -> Vec<Result<Recorded, StoreError>> {
        let grouped = self.write(|tx| {
            Ok(records
                .iter()
                .map(|record| in_savepoint(tx, |tx| self.apply(tx, record)))
                .collect::<Vec<_>>())
        });
        match grouped {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, records = records.len(), "group commit failed");
                records
                    .iter()
                    .map(|record| self.write(|tx| self.apply(tx, record)))
                    .collect()
            }
        }
    }

    /// Syncs the WAL when one of `records` was reserved ([`Store::record_group_unsynced`]
    /// gave `outcomes`); should the sync fail, each such reservation becomes an error.
    pub fn sync_reservations(
        &self,
        records: &[Record<'_>],
        outcomes: Vec<Result<Recorded, StoreError>>,
    ) -> Vec<Result<Recorded, StoreError>> {
        let reserved = records
            .iter()
            .zip(&outcomes)
            .any(|(r, o)| matches!(r, Record::Reserve(_)) && o.is_ok());
        let Err(e) = (if reserved { self.sync() } else { Ok(()) }) else {
            return outcomes;
        };
        // Not durable: no reservation of this group may reach a device.
        let cause = e.to_string();
        let failed = || {
            let cause = std::io::Error::other(cause.clone());
            StoreError::io("sync the reservations in", self.path(), cause)
        };
        outcomes
            .into_iter()
            .zip(records)
            .map(|(outcome, record)| match (outcome, record) {
                (Ok(_), Record::Reserve(_)) => Err(failed()),
                (other, _) => other,
            })
            .collect()
    }

    fn apply(&self, tx: &Transaction<'_>, record: &Record<'_>) -> Result<Recorded, StoreError> {
        Ok(match record {
            Record::Event(new) => Recorded::Event(event_in(tx, new)?),
            Record::Reserve(new) => Recorded::Reserved(self.reserve_in(tx, new)?),
            Record::Written(id) => Recorded::Written(written_in(tx, *id)?),
            Record::Verified(id, proof) => {
                verified_in(tx, *id, proof)?;
                Recorded::Done
            }
            Record::Revoked(id, reason) => {
                revoke_in(tx, *id, reason)?;
                Recorded::Done
            }
            Record::Outcome {
                batch,
                device,
                outcome,
                error,
                retryable,
            } => {
                device_outcome_in(tx, *batch, *device, *outcome, *error, *retryable)?;
                Recorded::Done
            }
        })
    }
}

/// Runs `f` in a savepoint of `tx`: kept when it succeeds, rolled back alone when it fails.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT record").ctx("begin record")?;
    match f(tx) {
        Ok(value) => {
            run("RELEASE record").ctx("keep record")?;
            Ok(value)
        }
        Err(e) => {
            run("ROLLBACK TO record")
                .and_then(|_| run("RELEASE record"))
                .ctx("roll back record")?;
            Err(e)
        }
    }
}
