//! Registering the keys of a vendor seed file (`keyprov import`), all or nothing.
//!
//! An imported key is identified by its token's serial and its label in the file (`Key@Id`,
//! kept as the key's slot), whatever family the token is filed under. The whole file is one
//! transaction: a key the station already holds with the same secret (compared in constant
//! time after opening it) and profile is left alone; one it holds with anything else is a
//! conflict that rolls back every key of the file. Only when at least one key is new does the
//! import create its batch (mode `import`, state `completed`): importing a file twice writes
//! nothing the second time, not even an event.
//!
//! Imported keys are recorded `verified` with the verification method
//! [`VENDOR_VERIFICATION`]: the vendor programmed and checked the token, the station did not,
//! and like any verified key they can be exported or revoked. A seed the station revoked is
//! never brought back by importing it again.

use rusqlite::{Transaction, params};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::error::{SqlContext, StoreError};
use crate::keys::{counter_to_sql, key_event, key_in};
use crate::model::{
    BatchId, BatchMode, BatchState, DeviceId, DeviceOutcome, KeyId, KeyProfile, KeyState,
    OtpAlgorithm,
};
use crate::records::{DeviceIdentity, ImportOutcome, ImportedKey, Key, NewBatch};
use crate::store::{
    Store, check_profile, event, find_device_in, insert_batch_in, insert_device_in, invalid,
    now_text,
};
use crate::vault::MasterKey;

/// The `verification` recorded for imported keys.
pub const VENDOR_VERIFICATION: &str = "vendor-seed-file";

/// The model recorded for an imported token whose file names none.
const UNNAMED_MODEL: &str = "imported";

impl Store {
    /// Registers the keys of a vendor seed file in one transaction and returns the batch it
    /// created (`None` when every key was already known) and one outcome per key, in order.
    ///
    /// `source` says where the keys came from (file name and SHA-256); it is kept with the
    /// batch and with each key. A key whose serial and label the station holds live with a
    /// different secret or profile fails the whole import with
    /// [`StoreError::ImportConflict`]; an existing `batch_name` fails it with
    /// [`StoreError::DuplicateBatch`] (only when something would be added). Either way
    /// nothing is written.
    pub fn import_keys(
        &self,
        batch_name: &str,
        source: &str,
        keys: Vec<ImportedKey>,
    ) -> Result<(Option<BatchId>, Vec<ImportOutcome>), StoreError> {
        if batch_name.trim().is_empty() {
            return Err(invalid("batch name", "must not be empty"));
        }
        if source.trim().is_empty() {
            return Err(invalid("import source", "must not be empty"));
        }
        let counters = keys
            .iter()
            .map(check_imported)
            .collect::<Result<Vec<_>, _>>()?;
        let master = self.master()?;
        let (batch, outcomes) = self.write(|tx| {
            let mut import = Import {
                store: self,
                master,
                tx,
                batch_name,
                source,
                batch: None,
            };
            let mut outcomes = Vec::with_capacity(keys.len());
            for (key, counter) in keys.iter().zip(counters) {
                outcomes.push(import.key(key, counter)?);
            }
            Ok((import.batch, outcomes))
        })?;
        if batch.is_some() {
            // The file may be deleted once the operator sees it imported.
            self.sync()?;
        }
        let added = outcomes
            .iter()
            .filter(|o| matches!(o, ImportOutcome::Added(_)))
            .count();
        tracing::debug!(
            source,
            added,
            unchanged = outcomes.len() - added,
            "keys imported"
        );
        Ok((batch, outcomes))
    }
}

/// Checks one key before the transaction starts; returns its counter as stored.
fn check_imported(key: &ImportedKey) -> Result<Option<i64>, StoreError> {
    let name = || format!("key {:?} of serial {:?}", key.key_label, key.serial);
    if key.serial.is_empty() || key.key_label.is_empty() || key.family.is_empty() {
        let reason = format!("{}: serial, label and family must not be empty", name());
        return Err(invalid("imported key", reason));
    }
    if key.secret.is_empty() {
        return Err(invalid("imported key", format!("{} has no secret", name())));
    }
    check_profile(&key.profile)?;
    match (key.profile.algorithm, key.counter) {
        (OtpAlgorithm::Hotp, counter) => Ok(Some(counter_to_sql(counter.unwrap_or(0))?)),
        (OtpAlgorithm::Totp, None) => Ok(None),
        (OtpAlgorithm::Totp, Some(_)) => {
            let reason = format!("{} is TOTP and has no counter", name());
            Err(invalid("imported key", reason))
        }
    }
}

/// One import in progress, inside its transaction.
struct Import<'a> {
    store: &'a Store,
    master: &'a MasterKey,
    tx: &'a Transaction<'a>,
    batch_name: &'a str,
    source: &'a str,
    /// Created with the first key that is new.
    batch: Option<BatchId>,
}

impl Import<'_> {
    /// Decides what to do with one key, and registers it when it is new.
    fn key(
        &mut self,
        key: &ImportedKey,
        counter: Option<i64>,
    ) -> Result<ImportOutcome, StoreError> {
        // 1. A live key under the same identity: the same seed, or a conflict.
        let live =
            self.keys_with_identity(key, "k.state IN ('written', 'verified', 'exported')")?;
        for existing in &live {
            self.compare(existing, key)?;
        }
        if let Some(existing) = live.first() {
            return Ok(ImportOutcome::Unchanged(existing.id));
        }

        // 2. A revoked key holding this very seed stays revoked.
        for revoked in self.keys_with_identity(key, "k.state = 'revoked'")? {
            if self.same_secret(&revoked, key)? {
                tracing::debug!(key = %revoked.id, "imported seed was revoked; left revoked");
                return Ok(ImportOutcome::Unchanged(revoked.id));
            }
        }

        // 3. New: file it under the import batch.
        let batch = self.batch(&key.profile)?;
        let device = self.device(key)?;
        self.add_to_batch(batch, device)?;
        self.insert_key(batch, device, key, counter)
            .map(ImportOutcome::Added)
    }

    /// Keys in `states` (an SQL condition on `k`) whose device serial and slot are the key's.
    fn keys_with_identity(&self, key: &ImportedKey, states: &str) -> Result<Vec<Key>, StoreError> {
        let sql = format!(
            "SELECT k.id FROM keys k JOIN devices d ON d.id = k.device_id
             WHERE d.serial = ?1 AND k.slot = ?2 AND {states} ORDER BY k.id"
        );
        let mut stmt = self.tx.prepare(&sql).ctx("find imported key")?;
        let ids = stmt
            .query_map(params![key.serial, key.key_label], |r| r.get::<_, KeyId>(0))
            .ctx("find imported key")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("read key id")?;
        ids.into_iter().map(|id| key_in(self.tx, id)).collect()
    }

    /// `Ok` when `existing` holds the same seed and profile as `key`, else the conflict.
    fn compare(&self, existing: &Key, key: &ImportedKey) -> Result<(), StoreError> {
        let conflict = |reason: String| StoreError::ImportConflict {
            serial: key.serial.clone(),
            key_label: key.key_label.clone(),
            reason,
        };
        if existing.profile != key.profile {
            return Err(conflict(format!(
                "the station holds key {} as {}, the file says {}",
                existing.id,
                describe(&existing.profile),
                describe(&key.profile)
            )));
        }
        if !self.same_secret(existing, key)? {
            let reason = format!(
                "the station holds key {} with a different secret",
                existing.id
            );
            return Err(conflict(reason));
        }
        Ok(())
    }

    /// Opens `existing`'s secret and compares it with the file's in constant time.
    fn same_secret(&self, existing: &Key, key: &ImportedKey) -> Result<bool, StoreError> {
        let sealed: Vec<u8> = self
            .tx
            .query_row(
                "SELECT secret FROM keys WHERE id = ?1",
                [existing.id],
                |r| r.get(0),
            )
            .ctx("read sealed secret")?;
        let opened = self
            .master
            .open(&self.store.secret_binding(existing.id), &sealed)
            .map_err(|_| StoreError::KeySecretRejected { key: existing.id })?;
        Ok(bool::from(opened.as_slice().ct_eq(key.secret.as_slice())))
    }

    /// The import batch, created (completed, with the first new key's profile) on first use.
    fn batch(&mut self, profile: &KeyProfile) -> Result<BatchId, StoreError> {
        if let Some(batch) = self.batch {
            return Ok(batch);
        }
        let new = NewBatch {
            name: self.batch_name.to_owned(),
            profile: profile.clone(),
            mode: BatchMode::Imported,
            server_url: None,
            operator: None,
            params: serde_json::json!({ "import": { "source": self.source } }),
        };
        let batch = insert_batch_in(self.tx, &new, BatchState::Completed)?;
        self.batch = Some(batch);
        Ok(batch)
    }

    /// The token's device (family and serial), registered if the station has not seen it.
    /// A known device keeps the model and firmware its driver reported.
    fn device(&self, key: &ImportedKey) -> Result<DeviceId, StoreError> {
        if let Some(device) = find_device_in(self.tx, &key.family, &key.serial)? {
            return Ok(device.id);
        }
        let identity = DeviceIdentity {
            family: key.family.clone(),
            model: key
                .model
                .clone()
                .unwrap_or_else(|| UNNAMED_MODEL.to_owned()),
            serial: key.serial.clone(),
            firmware: String::new(),
        };
        insert_device_in(self.tx, &identity)
    }

    /// Makes the device a member of the import batch, done (once per device).
    fn add_to_batch(&self, batch: BatchId, device: DeviceId) -> Result<(), StoreError> {
        let added = self
            .tx
            .execute(
                "INSERT OR IGNORE INTO batch_devices (batch_id, device_id, outcome, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![batch, device, DeviceOutcome::Done, now_text()],
            )
            .ctx("add device to batch")?;
        if added > 0 {
            let detail = serde_json::json!({ "outcome": DeviceOutcome::Done });
            let draft = event("batch.device_added", Some(batch), Some(device), detail);
            audit::append(self.tx, draft)?;
        }
        Ok(())
    }

    /// Inserts the key `verified`, seals its secret bound to its id, and logs `key.imported`.
    fn insert_key(
        &self,
        batch: BatchId,
        device: DeviceId,
        key: &ImportedKey,
        counter: Option<i64>,
    ) -> Result<KeyId, StoreError> {
        let p = &key.profile;
        let now = now_text();
        let proof = format!("imported from {}", self.source);
        self.tx
            .execute(
                "INSERT INTO keys (batch_id, device_id, slot, algorithm, digits, counter, period,
                     hash, secret, state, dskpp_key_id, verification, proof, created_at,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, x'', ?9, ?3, ?10, ?11, ?12, ?12)",
                params![
                    batch,
                    device,
                    key.key_label,
                    p.algorithm,
                    p.digits,
                    counter,
                    p.period,
                    p.hash,
                    KeyState::Verified,
                    VENDOR_VERIFICATION,
                    proof,
                    now,
                ],
            )
            .ctx("insert imported key")?;
        let id = KeyId(self.tx.last_insert_rowid());
        let sealed = self
            .master
            .seal(&self.store.secret_binding(id), &key.secret);
        self.tx
            .execute(
                "UPDATE keys SET secret = ?1 WHERE id = ?2",
                params![sealed, id],
            )
            .ctx("store sealed secret")?;
        let detail = serde_json::json!({
            "state": KeyState::Verified,
            "serial": key.serial,
            "slot": key.key_label,
            "algorithm": p.algorithm,
            "digits": p.digits,
            "counter": counter,
            "period": p.period,
            "hash": p.hash,
            "verification": VENDOR_VERIFICATION,
            "source": self.source,
        });
        audit::append(
            self.tx,
            key_event("key.imported", batch, device, id, detail),
        )?;
        Ok(id)
    }
}

/// A profile in words, for conflict messages: `totp, 8 digits, 30 s, sha256`.
fn describe(profile: &KeyProfile) -> String {
    let period = profile
        .period
        .map(|p| format!(", {p} s"))
        .unwrap_or_default();
    format!(
        "{}, {} digits{period}, {}",
        profile.algorithm, profile.digits, profile.hash
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HashAlgorithm;

    #[test]
    fn profiles_are_described_without_guessing() {
        let totp = KeyProfile {
            algorithm: OtpAlgorithm::Totp,
            digits: 8,
            period: Some(60),
            hash: HashAlgorithm::Sha256,
        };
        assert_eq!(describe(&totp), "totp, 8 digits, 60 s, sha256");
        let hotp = KeyProfile {
            algorithm: OtpAlgorithm::Hotp,
            digits: 6,
            period: None,
            hash: HashAlgorithm::Sha1,
        };
        assert_eq!(describe(&hotp), "hotp, 6 digits, sha1");
    }
}
