//! The rows the store hands out and the requests that create them.
//!
//! Read types never carry a key's secret; [`crate::Store::key_secret`] is the one call that
//! returns it, opened from its sealed form.

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::model::{
    BatchId, BatchMode, BatchState, DeviceId, DeviceOutcome, ExportId, KeyId, KeyProfile, KeyState,
};

/// A provisioning run.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Row id.
    pub id: BatchId,
    /// Unique name the operator gave it.
    pub name: String,
    /// What its keys look like.
    pub profile: KeyProfile,
    /// Local or central DSKPP.
    pub mode: BatchMode,
    /// The DSKPP server of a central batch.
    pub server_url: Option<String>,
    /// Who ran it.
    pub operator: Option<String>,
    /// Engine-defined run parameters (a JSON object, e.g. the requested count).
    pub params: serde_json::Value,
    /// Where it stands.
    pub state: BatchState,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last reached completed, failed or cancelled.
    pub finished_at: Option<OffsetDateTime>,
}

/// What [`crate::Store::create_batch`] needs.
#[derive(Clone, Debug)]
pub struct NewBatch {
    /// Unique name.
    pub name: String,
    /// What its keys look like.
    pub profile: KeyProfile,
    /// Local or central DSKPP.
    pub mode: BatchMode,
    /// The DSKPP server of a central batch.
    pub server_url: Option<String>,
    /// Who runs it.
    pub operator: Option<String>,
    /// Engine-defined run parameters; must be a JSON object (use `{}` for none).
    pub params: serde_json::Value,
}

/// A token the station has seen, identified by family and serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Row id.
    pub id: DeviceId,
    /// `yubikey`, `nitrokey`, ...
    pub family: String,
    /// Model name as the driver reports it.
    pub model: String,
    /// Serial number (unique within the family).
    pub serial: String,
    /// Firmware version as last seen.
    pub firmware: String,
    /// First time the station saw it.
    pub first_seen: OffsetDateTime,
    /// Last time it was registered.
    pub last_seen: OffsetDateTime,
}

/// A device as a driver reports it, for [`crate::Store::upsert_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// `yubikey`, `nitrokey`, ...
    pub family: String,
    /// Model name.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware version.
    pub firmware: String,
}

/// A device's place in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchDevice {
    /// The device.
    pub device: Device,
    /// How it fared so far.
    pub outcome: DeviceOutcome,
    /// The last error (no secret) when it failed.
    pub error: Option<String>,
    /// Whether that failure may go away when the batch is re-run (the engine says so from
    /// the error's kind: an unplugged or busy token, an unreachable server).
    pub retryable: bool,
}

/// An OTP key (without its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Row id; the sealed secret is bound to it.
    pub id: KeyId,
    /// The batch that issued it.
    pub batch: BatchId,
    /// The device it is for.
    pub device: DeviceId,
    /// That device's family (`yubikey`, `nitrokey`, a vendor name for imported tokens).
    pub family: String,
    /// That device's model.
    pub model: String,
    /// That device's serial.
    pub serial: String,
    /// The device slot (driver-defined name, e.g. `1`, `2`, `hotp-0`); for an imported key,
    /// its label in the seed file (`Key@Id`).
    pub slot: String,
    /// Algorithm, digits, period, hash.
    pub profile: KeyProfile,
    /// HOTP: the next counter value the device will use.
    pub counter: Option<u64>,
    /// Where its life stands.
    pub state: KeyState,
    /// Why it was revoked (`None` unless revoked; also `None` for keys revoked before
    /// schema version 2).
    pub reason: Option<String>,
    /// The key's id as the validation server knows it: the KeyID the DSKPP server assigned,
    /// or the `Key@Id` of the seed file an imported key came from.
    pub dskpp_key_id: Option<String>,
    /// The DSKPP server that issued it (`None` for local mode).
    pub server_url: Option<String>,
    /// How the write was proven (e.g. `device-otp`, `config-accepted`).
    pub verification: Option<String>,
    /// Engine-defined evidence of the verification (no secret).
    pub proof: Option<String>,
    /// When it was reserved.
    pub created_at: OffsetDateTime,
    /// Its last state change.
    pub updated_at: OffsetDateTime,
}

/// One key of a vendor seed file, for [`crate::Store::import_keys`].
pub struct ImportedKey {
    /// The token's serial (`DeviceInfo/SerialNo`, else `Key@Id`); never empty.
    pub serial: String,
    /// The key's label in the file (`Key@Id`); stored as the key's slot. Together with the
    /// serial it identifies the key across imports.
    pub key_label: String,
    /// Device family the token is filed under (`yubikey`, or the manufacturer's name).
    pub family: String,
    /// Device model, when the file names one (`imported` otherwise).
    pub model: Option<String>,
    /// Algorithm, digits, period, hash.
    pub profile: KeyProfile,
    /// HOTP: the moving factor (0 when `None`); must be `None` for TOTP.
    pub counter: Option<u64>,
    /// The seed in plaintext; sealed before it reaches the database.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ImportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedKey")
            .field("serial", &self.serial)
            .field("key_label", &self.key_label)
            .field("family", &self.family)
            .field("model", &self.model)
            .field("profile", &self.profile)
            .field("counter", &self.counter)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What [`crate::Store::import_keys`] did with one [`ImportedKey`], in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Registered now, as this key of the new import batch.
    Added(KeyId),
    /// The station already holds this seed (same serial, label, secret and profile) as this
    /// key; nothing was written. The key may be revoked: an import never revives a seed the
    /// station revoked.
    Unchanged(KeyId),
}

impl ImportOutcome {
    /// The key the outcome refers to.
    pub fn key(self) -> KeyId {
        match self {
            ImportOutcome::Added(id) | ImportOutcome::Unchanged(id) => id,
        }
    }
}

/// What [`crate::Store::reserve_key`] needs.
pub struct NewKey<'a> {
    /// The issuing batch (must be open).
    pub batch: BatchId,
    /// The device it is for.
    pub device: DeviceId,
    /// The device slot.
    pub slot: String,
    /// Algorithm, digits, period, hash.
    pub profile: KeyProfile,
    /// HOTP: the initial counter.
    pub counter: Option<u64>,
    /// The key's secret; sealed before it reaches the database.
    pub secret: &'a [u8],
    /// The KeyID the DSKPP server assigned.
    pub dskpp_key_id: Option<String>,
    /// The DSKPP server that issued it.
    pub server_url: Option<String>,
}

impl std::fmt::Debug for NewKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("batch", &self.batch)
            .field("device", &self.device)
            .field("slot", &self.slot)
            .field("profile", &self.profile)
            .field("counter", &self.counter)
            .field("secret", &"<redacted>")
            .field("dskpp_key_id", &self.dskpp_key_id)
            .field("server_url", &self.server_url)
            .finish()
    }
}

/// Evidence that a written key works, for [`crate::Store::mark_key_verified`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// How it was proven (e.g. `device-otp`, `config-accepted`).
    pub method: String,
    /// Engine-defined evidence (no secret; a used HOTP value is not one).
    pub proof: String,
    /// HOTP: the counter the device will use next, after the verification touches.
    pub next_counter: Option<u64>,
}

/// A PSKC file the station wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Row id.
    pub id: ExportId,
    /// The batch it was made for, if any.
    pub batch: Option<BatchId>,
    /// Where it was written.
    pub file_name: String,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// How it is protected (`password`, `key`, `certificate`).
    pub protection: String,
    /// The importer it was written for (`generic`, `privacyidea`, ...).
    pub target: String,
    /// The keys it holds.
    pub keys: Vec<KeyId>,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
}

/// What [`crate::Store::record_export`] needs.
#[derive(Clone, Debug)]
pub struct NewExport {
    /// The batch it was made for, if any.
    pub batch: Option<BatchId>,
    /// Where it was written.
    pub file_name: String,
    /// SHA-256 of the written file.
    pub sha256: [u8; 32],
    /// How it is protected.
    pub protection: String,
    /// The importer it was written for.
    pub target: String,
    /// The keys it holds; each must be verified or already exported.
    pub keys: Vec<KeyId>,
}

/// One entry of the provisioning log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: OffsetDateTime,
    /// What happened (`key.written`, `engine.retry`, ...).
    pub kind: String,
    /// The batch it concerns.
    pub batch: Option<BatchId>,
    /// The device it concerns.
    pub device: Option<DeviceId>,
    /// The key it concerns.
    pub key: Option<KeyId>,
    /// Details (a JSON object; never a secret).
    pub detail: serde_json::Value,
    /// Its link in the hash chain, hex.
    pub hash: String,
}

/// An event the engine records itself (progress, retries, errors); its kind starts
/// with `engine.`.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// What happened, `engine.<something>`.
    pub kind: String,
    /// The batch it concerns.
    pub batch: Option<BatchId>,
    /// The device it concerns.
    pub device: Option<DeviceId>,
    /// The key it concerns.
    pub key: Option<KeyId>,
    /// Details (a JSON object; never a secret).
    pub detail: serde_json::Value,
}
