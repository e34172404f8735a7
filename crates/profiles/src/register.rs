//! Registering the tokens of a vendor seed file in the station store (`keyprov import`).
//!
//! The store does the registration in one transaction ([`Store::import_keys`]): a token it
//! already holds under the same serial and key id with the same secret and algorithm is left
//! alone, anything else under that identity is a conflict that rolls the whole file back, and
//! only a file with something new creates a batch. This module turns seed tokens into the
//! store's records and the store's answer into a report.

use keyprov_pskc::Hmac;
use keyprov_store::{
    BatchId, HashAlgorithm, ImportOutcome, ImportedKey, KeyId, KeyProfile, OtpAlgorithm, Store,
    StoreError,
};
use zeroize::Zeroizing;

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
        ImportSource {
            file: file.to_string(),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    /// The batch name an import gets when the operator gives none: the file's stem and the
    /// start of its SHA-256, so the same file always maps to the same name.
    pub fn default_batch_name(&self) -> String {
        let stem = std::path::Path::new(&self.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "seeds".into());
        format!(
            "import-{stem}-{}",
            self.sha256.get(..8).unwrap_or(&self.sha256)
        )
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
    /// Keys registered now with something the operator should know, as
    /// [`SeedFile::warnings`]; a key already registered gets none (it was said when it was).
    pub warnings: Vec<Refusal>,
}

/// Errors of [`register`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A token of the file collides with a different key already registered under its
    /// serial and key id; nothing was written.
    #[error("nothing imported: {}", conflicts.iter().map(Refusal::to_string).collect::<Vec<_>>().join("; "))]
    Conflicts {
        /// One entry per colliding token.
        conflicts: Vec<Refusal>,
    },
    /// The store failed; its transaction was rolled back.
    #[error("{context}: {source}")]
    Store {
        /// What the import was doing.
        context: String,
        /// The store's error.
        source: StoreError,
    },
}

/// Registers the tokens of `seeds` in `store`; a new batch `batch_name` holds the new ones.
pub fn register(
    store: &Store,
    seeds: &SeedFile,
    batch_name: &str,
    source: &ImportSource,
) -> Result<ImportReport, RegisterError> {
    let keys = seeds.tokens.iter().map(imported_key).collect();
    let origin = format!("{} (sha256 {})", source.file, source.sha256);
    let (batch, outcomes) = match store.import_keys(batch_name, &origin, keys) {
        Ok(done) => done,
        Err(StoreError::ImportConflict {
            serial,
            key_label,
            reason,
        }) => {
            let subject = format!("key {key_label} (serial {serial})");
            return Err(RegisterError::Conflicts {
                conflicts: vec![Refusal { subject, reason }],
            });
        }
        Err(source) => {
            let context = format!("registering the tokens of {}", origin);
            return Err(RegisterError::Store { context, source });
        }
    };
    let mut report = ImportReport {
        batch: batch.map(|id| (id, batch_name.to_string())),
        skipped: seeds.skipped.clone(),
        ..ImportReport::default()
    };
    for (token, outcome) in seeds.tokens.iter().zip(outcomes) {
        match outcome {
            ImportOutcome::Added(key) => {
                report.warnings.extend(crate::seed::short_secret(token));
                report.added.push(registered(token, key));
            }
            ImportOutcome::Unchanged(key) => report.unchanged.push(registered(token, key)),
        }
    }
    tracing::debug!(file = %source.file, added = report.added.len(), "seed file registered");
    Ok(report)
}

fn imported_key(token: &SeedToken) -> ImportedKey {
    ImportedKey {
        serial: token.serial.clone(),
        key_label: token.key_id.clone(),
        family: family(token.manufacturer.as_deref()),
        model: token.model.clone(),
        profile: profile(token),
        counter: token.counter,
        secret: Zeroizing::new(token.secret.expose().to_vec()),
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
