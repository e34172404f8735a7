//! Keys, their life cycle, exports and the engine's own events.
//!
//! A key's secret is sealed with the master key before it reaches SQLite. The seal's binding
//! (AAD) is `keyprov key secret v1|<store id>|<key id>`, so a sealed secret copied into another
//! row or another station database does not open. Every state change writes its event (whose
//! detail holds the new `state`) in the same transaction.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use zeroize::Zeroizing;

use crate::audit::{self, Draft};
use crate::error::{SqlContext, StoreError};
use crate::model::{BatchId, BatchState, DeviceId, ExportId, KeyId, KeyProfile, KeyState};
use crate::records::{Event, Export, Key, NewEvent, NewExport, NewKey, Verification};
use crate::store::{
    Store, batch_in, check_profile, conversion_error, device_in, invalid, now_text, time_column,
};

/// Event kinds the engine may record start with this.
pub const ENGINE_EVENT_PREFIX: &str = "engine.";

impl Store {
    /// Records a key the DSKPP server issued for `device`, before it is written there. The
    /// record survives power loss once this returns.
    pub fn reserve_key(&self, new: &NewKey<'_>) -> Result<Key, StoreError> {
        let id = self.write(|tx| self.reserve_in(tx, new))?;
        // The key exists nowhere else on this station until the device holds it.
        self.sync()?;
        self.key(id)
    }

    /// [`Store::reserve_key`] inside the caller's transaction, without the sync.
    pub(crate) fn reserve_in(
        &self,
        tx: &Transaction<'_>,
        new: &NewKey<'_>,
    ) -> Result<KeyId, StoreError> {
        let counter = check_new_key(new)?;
        let master = self.master()?;
        require_open(tx, new.batch)?;
        device_in(tx, new.device)?;
        let p = &new.profile;
        tx.prepare_cached(
            "INSERT INTO keys (batch_id, device_id, slot, algorithm, digits, counter, period,
                 hash, secret, state, dskpp_key_id, server_url, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, x'', ?9, ?10, ?11, ?12, ?12)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                new.batch,
                new.device,
                new.slot,
                p.algorithm,
                p.digits,
                counter,
                p.period,
                p.hash,
                KeyState::Reserved,
                new.dskpp_key_id,
                new.server_url,
                now_text(),
            ])
        })
        .ctx("insert key")?;
        let id = KeyId(tx.last_insert_rowid());
        let sealed = master.seal(&self.secret_binding(id), new.secret);
        tx.prepare_cached("UPDATE keys SET secret = ?1 WHERE id = ?2")
            .and_then(|mut update| update.execute(params![sealed, id]))
            .ctx("store sealed secret")?;
        let detail = serde_json::json!({
            "state": KeyState::Reserved,
            "slot": new.slot,
            "algorithm": p.algorithm,
            "digits": p.digits,
            "counter": counter,
            "period": p.period,
            "hash": p.hash,
            "dskpp_key_id": new.dskpp_key_id,
            "server_url": new.server_url,
        });
        audit::append(
            tx,
            key_event("key.reserved", new.batch, new.device, id, detail),
        )?;
        tracing::debug!(key = %id, device = %new.device, "key reserved");
        Ok(id)
    }

    /// Records that the key was written to its device. Any other key live on the same device
    /// slot is revoked in the same transaction (the write replaced it); their ids are returned.
    pub fn mark_key_written(&self, id: KeyId) -> Result<Vec<KeyId>, StoreError> {
        self.write(|tx| written_in(tx, id))
    }

    /// Records that the device proved the key, and the HOTP counter it will use next.
    pub fn mark_key_verified(&self, id: KeyId, proof: &Verification) -> Result<(), StoreError> {
        self.write(|tx| verified_in(tx, id, proof))
    }

    /// Withdraws a key (never delivered, lost device, operator's decision).
    pub fn revoke_key(&self, id: KeyId, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| revoke_in(tx, id, reason))
    }

    /// Records a written export file and marks its keys exported, in one transaction.
    pub fn record_export(&self, new: &NewExport) -> Result<Export, StoreError> {
        if new.keys.is_empty() {
            return Err(invalid("export keys", "an export holds at least one key"));
        }
        let mut unique = new.keys.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != new.keys.len() {
            return Err(invalid("export keys", "a key is listed twice"));
        }
        let id =
            self.write(|tx| {
                if let Some(batch) = new.batch {
                    batch_in(tx, batch)?;
                }
                let sha256 = hex::encode(new.sha256);
                tx.execute(
                "INSERT INTO exports (batch_id, file_name, sha256, protection, target, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![new.batch, new.file_name, sha256, new.protection, new.target, now_text()],
            )
            .ctx("insert export")?;
                let export = ExportId(tx.last_insert_rowid());
                for key_id in &new.keys {
                    let key = key_in(tx, *key_id)?;
                    check_transition(&key, KeyState::Exported)?;
                    tx.execute(
                        "INSERT INTO export_keys (export_id, key_id) VALUES (?1, ?2)",
                        params![export, key_id],
                    )
                    .ctx("link export key")?;
                    set_state(
                        tx,
                        &key,
                        KeyState::Exported,
                        serde_json::json!({ "export": export }),
                    )?;
                }
                let detail = serde_json::json!({
                    "export": export,
                    "file_name": new.file_name,
                    "sha256": sha256,
                    "protection": new.protection,
                    "target": new.target,
                    "keys": new.keys,
                });
                let draft = Draft {
                    kind: "export.recorded",
                    batch: new.batch,
                    device: None,
                    key: None,
                    detail,
                };
                audit::append(tx, draft)?;
                Ok(export)
            })?;
        self.export(id)
    }

    /// Appends an engine event (`engine.*`: progress, retries, errors) to the log.
    pub fn record_event(&self, new: &NewEvent) -> Result<i64, StoreError> {
        self.write(|tx| event_in(tx, new))
    }

    /// The key with this id (without its secret).
    pub fn key(&self, id: KeyId) -> Result<Key, StoreError> {
        self.read(|tx| key_in(tx, id))
    }

    /// Opens the key's sealed secret. The only call that returns one.
    pub fn key_secret(&self, id: KeyId) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let master = self.master()?;
        let sealed: Vec<u8> = self.read(|tx| {
            tx.query_row("SELECT secret FROM keys WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .ctx("read sealed secret")?
                .ok_or(StoreError::UnknownKey(id))
        })?;
        master
            .open(&self.secret_binding(id), &sealed)
            .map_err(|_| StoreError::KeySecretRejected { key: id })
    }

    /// Every key of a batch, in order of reservation.
    pub fn batch_keys(&self, batch: BatchId) -> Result<Vec<Key>, StoreError> {
        self.keys_where("k.batch_id = ?1", &[&batch])
    }

    /// The keys of a batch in any of `states` (e.g. reserved and written, to resume a batch).
    pub fn batch_keys_in(
        &self,
        batch: BatchId,
        states: &[KeyState],
    ) -> Result<Vec<Key>, StoreError> {
        Ok(self
            .batch_keys(batch)?
            .into_iter()
            .filter(|k| states.contains(&k.state))
            .collect())
    }

    /// What a crashed batch left unfinished: its keys still reserved or written.
    pub fn unfinished_keys(&self, batch: BatchId) -> Result<Vec<Key>, StoreError> {
        self.batch_keys_in(batch, &[KeyState::Reserved, KeyState::Written])
    }

    /// The resume journal of a batch: per device, its keys still reserved or written.
    pub fn unfinished_keys_by_device(
        &self,
        batch: BatchId,
    ) -> Result<BTreeMap<DeviceId, Vec<Key>>, StoreError> {
        let mut journal: BTreeMap<DeviceId, Vec<Key>> = BTreeMap::new();
        for key in self.unfinished_keys(batch)? {
            journal.entry(key.device).or_default().push(key);
        }
        Ok(journal)
    }

    /// Every key ever issued for a device, oldest first.
    pub fn device_keys(&self, device: DeviceId) -> Result<Vec<Key>, StoreError> {
        self.keys_where("k.device_id = ?1", &[&device])
    }

    /// The key live (written, verified or exported) on a device slot, if any.
    pub fn live_key(&self, device: DeviceId, slot: &str) -> Result<Option<Key>, StoreError> {
        let sql =
            "k.device_id = ?1 AND k.slot = ?2 AND k.state IN ('written', 'verified', 'exported')";
        Ok(self.keys_where(sql, &[&device, &slot])?.pop())
    }

    /// The export with this id.
    pub fn export(&self, id: ExportId) -> Result<Export, StoreError> {
        self.exports_where("id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| invalid("export", format!("no export {id}")))
    }

    /// The exports of a batch (every export when `batch` is `None`), oldest first.
    pub fn exports(&self, batch: Option<BatchId>) -> Result<Vec<Export>, StoreError> {
        match batch {
            Some(batch) => self.exports_where("batch_id = ?1", &[&batch]),
            None => self.exports_where("1 = 1", &[]),
        }
    }

    /// The log entries of a batch (every entry when `batch` is `None`), in chain order.
    pub fn events(&self, batch: Option<BatchId>) -> Result<Vec<Event>, StoreError> {
        let (filter, args): (&str, Vec<&dyn rusqlite::ToSql>) = match &batch {
            Some(batch) => ("WHERE batch_id = ?1", vec![batch]),
            None => ("", vec![]),
        };
        self.read(|tx| {
            let sql = format!(
                "SELECT seq, at, kind, batch_id, device_id, key_id, detail, hash FROM events
                 {filter} ORDER BY seq"
            );
            let mut stmt = tx.prepare(&sql).ctx("read events")?;
            let rows = stmt
                .query_map(params_from_iter(args), event_from_row)
                .ctx("read events")?;
            rows.collect::<Result<_, _>>().ctx("read event")
        })
    }

    pub(crate) fn secret_binding(&self, id: KeyId) -> Vec<u8> {
        format!("keyprov key secret v1|{}|{}", self.store_id(), id.0).into_bytes()
    }

    fn keys_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Key>, StoreError> {
        self.read(|tx| {
            let sql = format!("{KEY_SELECT} WHERE {filter} ORDER BY k.id");
            let mut stmt = tx.prepare(&sql).ctx("list keys")?;
            let rows = stmt.query_map(args, key_from_row).ctx("list keys")?;
            rows.collect::<Result<_, _>>().ctx("read key")
        })
    }

    fn exports_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Export>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT id, batch_id, file_name, sha256, protection, target, created_at
                 FROM exports WHERE {filter} ORDER BY id"
            );
            let mut stmt = tx.prepare(&sql).ctx("list exports")?;
            let rows = stmt
                .query_map(args, |row| {
                    Ok(Export {
                        id: row.get(0)?,
                        batch: row.get(1)?,
                        file_name: row.get(2)?,
                        sha256: row.get(3)?,
                        protection: row.get(4)?,
                        target: row.get(5)?,
                        keys: Vec::new(),
                        created_at: time_column(row, 6)?,
                    })
                })
                .ctx("list exports")?;
            let mut exports: Vec<Export> = rows.collect::<Result<_, _>>().ctx("read export")?;
            let mut stmt = tx
                .prepare("SELECT key_id FROM export_keys WHERE export_id = ?1 ORDER BY key_id")
                .ctx("list export keys")?;
            for export in &mut exports {
                let keys = stmt
                    .query_map([export.id], |r| r.get(0))
                    .ctx("list export keys")?;
                export.keys = keys.collect::<Result<_, _>>().ctx("read export key")?;
            }
            Ok(exports)
        })
    }
}

fn check_new_key(new: &NewKey<'_>) -> Result<Option<i64>, StoreError> {
    check_profile(&new.profile)?;
    if new.secret.is_empty() {
        return Err(invalid("secret", "must not be empty"));
    }
    if new.slot.is_empty() {
        return Err(invalid("slot", "must not be empty"));
    }
    match (new.profile.algorithm, new.counter) {
        (crate::OtpAlgorithm::Hotp, counter) => Ok(Some(counter_to_sql(counter.unwrap_or(0))?)),
        (crate::OtpAlgorithm::Totp, None) => Ok(None),
        (crate::OtpAlgorithm::Totp, Some(_)) => Err(invalid("counter", "TOTP keys have none")),
    }
}

pub(crate) fn counter_to_sql(counter: u64) -> Result<i64, StoreError> {
    i64::try_from(counter).map_err(|_| invalid("counter", format!("{counter} exceeds 2^63 - 1")))
}

fn require_open(tx: &Transaction<'_>, batch: BatchId) -> Result<(), StoreError> {
    match batch_in(tx, batch)?.state {
        BatchState::Open => Ok(()),
        _ => Err(StoreError::BatchClosed(batch)),
    }
}

fn check_transition(key: &Key, to: KeyState) -> Result<(), StoreError> {
    if key.state.allows(to) {
        Ok(())
    } else {
        Err(StoreError::InvalidTransition {
            key: key.id,
            from: key.state,
            to,
        })
    }
}

/// [`Store::mark_key_written`] inside the caller's transaction.
pub(crate) fn written_in(tx: &Transaction<'_>, id: KeyId) -> Result<Vec<KeyId>, StoreError> {
    let key = key_in(tx, id)?;
    require_open(tx, key.batch)?;
    check_transition(&key, KeyState::Written)?;
    let superseded = live_keys_in(tx, key.device, &key.slot)?;
    let superseded: Vec<KeyId> = superseded.into_iter().filter(|k| *k != id).collect();
    for old in &superseded {
        let reason = format!("superseded by key {id} on slot {}", key.slot);
        revoke_in(tx, *old, &reason)?;
    }
    set_state(tx, &key, KeyState::Written, serde_json::json!({}))?;
    Ok(superseded)
}

/// [`Store::mark_key_verified`] inside the caller's transaction.
pub(crate) fn verified_in(
    tx: &Transaction<'_>,
    id: KeyId,
    proof: &Verification,
) -> Result<(), StoreError> {
    let next_counter = proof.next_counter.map(counter_to_sql).transpose()?;
    let key = key_in(tx, id)?;
    require_open(tx, key.batch)?;
    check_transition(&key, KeyState::Verified)?;
    if next_counter.is_some() && key.counter.is_none() {
        return Err(invalid("next_counter", format!("key {id} has no counter")));
    }
    tx.prepare_cached(
        "UPDATE keys SET verification = ?1, proof = ?2, counter = coalesce(?3, counter)
         WHERE id = ?4",
    )
    .and_then(|mut update| update.execute(params![proof.method, proof.proof, next_counter, id]))
    .ctx("record verification")?;
    let detail = serde_json::json!({
        "method": proof.method,
        "proof": proof.proof,
        "counter": next_counter,
    });
    set_state(tx, &key, KeyState::Verified, detail)
}

/// [`Store::record_event`] inside the caller's transaction.
pub(crate) fn event_in(tx: &Transaction<'_>, new: &NewEvent) -> Result<i64, StoreError> {
    if !new.kind.starts_with(ENGINE_EVENT_PREFIX) || new.kind.len() == ENGINE_EVENT_PREFIX.len() {
        return Err(StoreError::ReservedEventKind(new.kind.clone()));
    }
    if !new.detail.is_object() {
        return Err(invalid("event detail", "must be a JSON object"));
    }
    let draft = Draft {
        kind: &new.kind,
        batch: new.batch,
        device: new.device,
        key: new.key,
        detail: new.detail.clone(),
    };
    audit::append(tx, draft)
}

/// Moves `key` to `to` and logs it; `detail` gains `state` and `from`.
fn set_state(
    tx: &Transaction<'_>,
    key: &Key,
    to: KeyState,
    mut detail: serde_json::Value,
) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE keys SET state = ?1, updated_at = ?2 WHERE id = ?3")
        .and_then(|mut update| update.execute(params![to, now_text(), key.id]))
        .ctx("update key state")?;
    if let Some(object) = detail.as_object_mut() {
        object.insert("state".into(), to.as_str().into());
        object.insert("from".into(), key.state.as_str().into());
    }
    let kind = match to {
        KeyState::Reserved => "key.reserved",
        KeyState::Written => "key.written",
        KeyState::Verified => "key.verified",
        KeyState::Exported => "key.exported",
        KeyState::Revoked => "key.revoked",
    };
    audit::append(tx, key_event(kind, key.batch, key.device, key.id, detail))?;
    tracing::debug!(key = %key.id, from = %key.state, to = %to, "key state changed");
    Ok(())
}

pub(crate) fn revoke_in(tx: &Transaction<'_>, id: KeyId, reason: &str) -> Result<(), StoreError> {
    let key = key_in(tx, id)?;
    check_transition(&key, KeyState::Revoked)?;
    tx.execute(
        "UPDATE keys SET reason = ?1 WHERE id = ?2",
        params![reason, id],
    )
    .ctx("record revocation reason")?;
    set_state(
        tx,
        &key,
        KeyState::Revoked,
        serde_json::json!({ "reason": reason }),
    )
}

fn live_keys_in(
    tx: &Transaction<'_>,
    device: DeviceId,
    slot: &str,
) -> Result<Vec<KeyId>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id FROM keys WHERE device_id = ?1 AND slot = ?2
             AND state IN ('written', 'verified', 'exported')",
        )
        .ctx("find live keys")?;
    let rows = stmt
        .query_map(params![device, slot], |r| r.get(0))
        .ctx("find live keys")?;
    rows.collect::<Result<_, _>>().ctx("read key id")
}

pub(crate) fn key_event(
    kind: &str,
    batch: BatchId,
    device: DeviceId,
    key: KeyId,
    detail: serde_json::Value,
) -> Draft<'_> {
    Draft {
        kind,
        batch: Some(batch),
        device: Some(device),
        key: Some(key),
        detail,
    }
}

const KEY_SELECT: &str = "SELECT k.id, k.batch_id, k.device_id, k.slot, k.algorithm, k.digits,
    k.counter, k.period, k.hash, k.state, k.dskpp_key_id, k.server_url, k.verification, k.proof,
    k.created_at, k.updated_at, d.family, d.model, d.serial, k.reason
    FROM keys k JOIN devices d ON d.id = k.device_id";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<Key> {
    let counter: Option<i64> = row.get(6)?;
    let counter = counter
        .map(|c| u64::try_from(c).map_err(|_| conversion_error(6, format!("counter {c}"))))
        .transpose()?;
    Ok(Key {
        id: row.get(0)?,
        batch: row.get(1)?,
        device: row.get(2)?,
        family: row.get(16)?,
        model: row.get(17)?,
        serial: row.get(18)?,
        slot: row.get(3)?,
        profile: KeyProfile {
            algorithm: row.get(4)?,
            digits: row.get(5)?,
            period: row.get(7)?,
            hash: row.get(8)?,
        },
        counter,
        state: row.get(9)?,
        reason: row.get(19)?,
        dskpp_key_id: row.get(10)?,
        server_url: row.get(11)?,
        verification: row.get(12)?,
        proof: row.get(13)?,
        created_at: time_column(row, 14)?,
        updated_at: time_column(row, 15)?,
    })
}

pub(crate) fn key_in(tx: &Transaction<'_>, id: KeyId) -> Result<Key, StoreError> {
    tx.prepare_cached(&format!("{KEY_SELECT} WHERE k.id = ?1"))
        .and_then(|mut read| read.query_row([id], key_from_row).optional())
        .ctx("read key")?
        .ok_or(StoreError::UnknownKey(id))
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let detail: String = row.get(6)?;
    let hash: Vec<u8> = row.get(7)?;
    Ok(Event {
        seq: row.get(0)?,
        at: time_column(row, 1)?,
        kind: row.get(2)?,
        batch: row.get(3)?,
        device: row.get(4)?,
        key: row.get(5)?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| conversion_error(6, format!("event detail: {e}")))?,
        hash: hex::encode(hash),
    })
}
