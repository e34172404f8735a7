//! Registering the tokens of a vendor seed file in the station store (`keyprov import`).
//!
//! The import is planned completely before anything is written: every token is compared with
//! what the store already holds for its device (family and serial) and key id (the slot).
//! The same secret and algorithm is a duplicate and is left alone; anything else on that slot
//! is a conflict, and the whole import is refused naming each one. Only a file with new tokens
//! and no conflict creates a batch; importing the same file again writes nothing at all.
//!
//! Imported keys are recorded as `written`: a vendor put them on the token, the station has
//! not seen the token produce an OTP. Each store call is its own transaction, so the writes are
//! compensated rather than rolled back: should one fail, the keys recorded so far are revoked
//! and the batch is cancelled (the audit chain keeps the trace). A single-transaction store
//! call for imports is requested from keyprov-store.

use keyprov_pskc::{Hmac, Secret};
use keyprov_store::{
    BatchId, BatchMode, BatchState, DeviceIdentity, DeviceOutcome, HashAlgorithm, KeyId,
    KeyProfile, KeyState, NewBatch, NewEvent, NewKey, OtpAlgorithm, Store, StoreError,
};

use crate::error::Refusal;
use crate::seed::{OtpKind, SeedFile, SeedToken};

/// Where the imported file came from, recorded with the batch and its event.
#[derive(Debug, Clone)]
pub struct ImportSource {
    /// The file name as given.
    pub file: String,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

impl ImportSource {
    /// The source record of `file` whose content is `bytes`.
    pub fn of(file: &str, bytes: &[u8]) -> ImportSource {
        use sha2::Digest;
        ImportSource { file: file.to_string(), sha256: hex::encode(sha2::Sha256::digest(bytes)) }
    }

    /// The batch name an import gets when the operator gives none: the file's stem and the
    /// start of its SHA-256, so the same file always maps to the same name.
    pub fn default_batch_name(&self) -> String {
        let stem = std::path::Path::new(&self.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "seeds".into());
        format!("import-{stem}-{}", self.sha256.get(..8).unwrap_or(&self.sha256))
    }
}

/// One token of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The store's key id.
    pub key: KeyId,
    /// Device family the token is filed under (`yubikey`, `nitrokey`, or the vendor name).
    pub family: String,
    /// Token serial.
    pub serial: String,
    /// `Key@Id` from the file (the key's slot in the store).
    pub key_id: String,
    /// `hotp` or `totp`.
    pub algorithm: OtpAlgorithm,
    /// Hash under the HMAC.
    pub hash: HashAlgorithm,
    /// OTP length.
    pub digits: u8,
    /// HOTP counter.
    pub counter: Option<u64>,
    /// TOTP time step.
    pub period: Option<u32>,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The batch created, or `None` when every token was already registered.
    pub batch: Option<(BatchId, String)>,
    /// Tokens registered now.
    pub added: Vec<Registered>,
    /// Tokens the store already held with the same secret and algorithm.
    pub unchanged: Vec<Registered>,
    /// Keys of the file the station does not register, with the reason.
    pub skipped: Vec<Refusal>,
}

/// Errors of [`register`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// Tokens of the file collide with different keys already registered; nothing written.
    #[error("nothing imported: {}", conflicts.iter().map(Refusal::to_string).collect::<Vec<_>>().join("; "))]
    Conflicts {
        /// One entry per colliding token.
        conflicts: Vec<Refusal>,
    },
    /// The store refused; when it happened while writing, what was written has been revoked.
    #[error("{context}: {source}")]
    Store {
        /// What the import was doing.
        context: String,
        /// The store's error.
        source: StoreError,
    },
}

fn store_err(context: impl Into<String>) -> impl FnOnce(StoreError) -> RegisterError {
    let context = context.into();
    move |source| RegisterError::Store { context, source }
}

/// Registers the tokens of `seeds` in `store` under a new batch `batch_name`.
pub fn register(
    store: &Store,
    seeds: &SeedFile,
    batch_name: &str,
    source: &ImportSource,
) -> Result<ImportReport, RegisterError> {
    let mut report = ImportReport {
        skipped: seeds.skipped.clone(),
        ..ImportReport::default()
    };
    let mut conflicts = Vec::new();
    let mut new = Vec::new();
    for token in &seeds.tokens {
        match existing(store, token)? {
            Existing::None => new.push(token),
            Existing::Same(key) => report.unchanged.push(registered(token, key)),
            Existing::Different(what) => conflicts.push(Refusal {
                subject: format!("key {} (serial {})", token.key_id, token.serial),
                reason: format!("already registered with a different {what}"),
            }),
        }
    }
    if !conflicts.is_empty() {
        return Err(RegisterError::Conflicts { conflicts });
    }
    if new.is_empty() {
        tracing::debug!(file = %source.file, "every token already registered");
        return Ok(report);
    }
    let batch = store
        .create_batch(&NewBatch {
            name: batch_name.to_string(),
            profile: profile(new[0]),
            mode: BatchMode::Local,
            server_url: None,
            operator: None,
            params: serde_json::json!({
                "import": { "file": source.file, "sha256": source.sha256 }
            }),
        })
        .map_err(store_err(format!("creating batch {batch_name}")))?;
    let mut written = Vec::new();
    match write_tokens(store, batch.id, source, &new, &mut written) {
        Ok(()) => {
            report.batch = Some((batch.id, batch.name));
            report.added = written;
            Ok(report)
        }
        Err(err) => {
            compensate(store, batch.id, &written);
            Err(err)
        }
    }
}

/// What the store holds for a token's device and slot.
enum Existing {
    None,
    Same(KeyId),
    Different(&'static str),
}

fn existing(store: &Store, token: &SeedToken) -> Result<Existing, RegisterError> {
    let context = || format!("looking up token {}", token.serial);
    let family = family(token.manufacturer.as_deref());
    let Some(device) = store
        .find_device(&family, &token.serial)
        .map_err(store_err(context()))?
    else {
        return Ok(Existing::None);
    };
    let keys = store.device_keys(device.id).map_err(store_err(context()))?;
    let live = |k: &&keyprov_store::Key| k.slot == token.key_id && k.state != KeyState::Revoked;
    let Some(key) = keys.iter().find(live) else {
        return Ok(Existing::None);
    };
    let opened = store.key_secret(key.id).map_err(store_err(context()))?;
    if Secret::from_slice(&opened) != token.secret {
        return Ok(Existing::Different("secret"));
    }
    if key.profile != profile(token) {
        return Ok(Existing::Different("algorithm, length, hash or time step"));
    }
    Ok(Existing::Same(key.id))
}

fn write_tokens(
    store: &Store,
    batch: BatchId,
    source: &ImportSource,
    tokens: &[&SeedToken],
    written: &mut Vec<Registered>,
) -> Result<(), RegisterError> {
    for token in tokens {
        let context = || format!("registering token {}", token.serial);
        let device = store
            .upsert_device(&DeviceIdentity {
                family: family(token.manufacturer.as_deref()),
                model: token.model.clone().unwrap_or_else(|| "imported".into()),
                serial: token.serial.clone(),
                firmware: String::new(),
            })
            .map_err(store_err(context()))?;
        store
            .add_batch_device(batch, device.id)
            .map_err(store_err(context()))?;
        let key = store
            .reserve_key(&NewKey {
                batch,
                device: device.id,
                slot: token.key_id.clone(),
                profile: profile(token),
                counter: token.counter,
                secret: token.secret.expose(),
                dskpp_key_id: None,
                server_url: None,
            })
            .map_err(store_err(context()))?;
        written.push(registered(token, key.id));
        store
            .mark_key_written(key.id)
            .map_err(store_err(context()))?;
        store
            .set_batch_device_outcome(batch, device.id, DeviceOutcome::Done, None)
            .map_err(store_err(context()))?;
    }
    store
        .record_event(&NewEvent {
            kind: "engine.seed_import".into(),
            batch: Some(batch),
            device: None,
            key: None,
            detail: serde_json::json!({
                "file": source.file, "sha256": source.sha256, "keys": written.len(),
            }),
        })
        .map_err(store_err("recording the import"))?;
    store
        .set_batch_state(batch, BatchState::Completed)
        .map_err(store_err("closing the import batch"))
}

/// Undoes a failed import as far as the store allows: revoke its keys, cancel its batch.
fn compensate(store: &Store, batch: BatchId, written: &[Registered]) {
    for token in written {
        if let Err(err) = store.revoke_key(token.key, "import failed before completion") {
            tracing::error!(key = %token.key, %err, "could not revoke a half-imported key");
        }
    }
    if let Err(err) = store.set_batch_state(batch, BatchState::Cancelled) {
        tracing::error!(batch = %batch, %err, "could not cancel a failed import batch");
    }
}

/// The device family a vendor's tokens are filed under: the station's own family names for
/// the vendors it drives, else the manufacturer text (without an `oath.`/`iana.` prefix).
pub fn family(manufacturer: Option<&str>) -> String {
    let text = manufacturer.map(str::trim).unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    if lower.contains("yubico") || lower.contains("yubikey") || lower == "oath.ub" {
        return "yubikey".into();
    }
    if lower.contains("nitrokey") {
        return "nitrokey".into();
    }
    let name = lower
        .trim_start_matches("oath.")
        .trim_start_matches("iana.");
    if name.is_empty() {
        "unknown-vendor".into()
    } else {
        name.to_string()
    }
}

fn profile(token: &SeedToken) -> KeyProfile {
    KeyProfile {
        algorithm: match token.kind {
            OtpKind::Hotp => OtpAlgorithm::Hotp,
            OtpKind::Totp => OtpAlgorithm::Totp,
        },
        digits: token.digits,
        period: token.period,
        hash: match token.hash {
            Hmac::Sha256 => HashAlgorithm::Sha256,
            Hmac::Sha512 => HashAlgorithm::Sha512,
            // seed_tokens admits only SHA-1, SHA-256 and SHA-512.
            _ => HashAlgorithm::Sha1,
        },
    }
}

fn registered(token: &SeedToken, key: KeyId) -> Registered {
    let profile = profile(token);
    Registered {
        key,
        family: family(token.manufacturer.as_deref()),
        serial: token.serial.clone(),
        key_id: token.key_id.clone(),
        algorithm: profile.algorithm,
        hash: profile.hash,
        digits: token.digits,
        counter: token.counter,
        period: token.period,
    }
}
