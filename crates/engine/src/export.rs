//! Exporting a batch's active keys as a protected PSKC file (RFC 6030), recorded in the store.
//!
//! Only keys that are verified (or exported before) are written, one per device slot, with the
//! HOTP counter the device will use next. The file is written completely or not at all
//! (`export_file`), and only then recorded, so an interrupted export leaves the store as it was.
//!
//! A `generic` export is canonical RFC 6030 under the station's own protection (PBKDF2-SHA256,
//! AES-256). Every other target goes through its `keyprov-profiles` profile, which reshapes
//! the container for that importer, picks a protection it can open, and refuses (with every
//! reason) a batch it would misread; a refused export writes no file and records nothing.
//! The serials a profile renamed are kept in the log next to the export's record
//! (`engine.export_renamed`), so the export history lists them as the export did. Each key's
//! `Suite` names its OTP hash ([`suite`]).

use std::path::Path;

use keyprov_profiles::{ProtectionRequest, Target};
use keyprov_pskc::{
    Cipher, Hmac, KeyContainer, KeyData, KeyPackage, Protection, ResponseFormat, RsaPublicKey,
    Secret,
};
use keyprov_store::{
    Batch, HashAlgorithm, Key, KeyState, NewEvent, NewExport, OtpAlgorithm, Store,
};
use zeroize::Zeroizing;

use crate::api::{ExportProtection, ExportRecord, ExportRequest, ExportTarget, RenamedSerial};
use crate::error::{EngineError, Result};
use crate::export_file;

/// PBKDF2 iterations of a password-protected export (OWASP 2023 for HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Shortest export password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Checks an export request before any work is done, so a bad password or key fails early.
pub fn check(request: &ExportRequest) -> Result<()> {
    protection(request).map(|_| ())
}

/// The profile of an API export target.
pub fn target(target: ExportTarget) -> Target {
    match target {
        ExportTarget::Generic => Target::Generic,
        ExportTarget::Privacyidea => Target::PrivacyIdea,
        ExportTarget::Freeipa => Target::FreeIpa,
        ExportTarget::Linotp => Target::LinOtp,
    }
}

/// The API export target recorded under `name` (`generic` for names this build does not know).
pub fn target_named(name: &str) -> ExportTarget {
    match name.parse::<Target>() {
        Ok(Target::PrivacyIdea) => ExportTarget::Privacyidea,
        Ok(Target::FreeIpa) => ExportTarget::Freeipa,
        Ok(Target::LinOtp) => ExportTarget::Linotp,
        Ok(_) | Err(_) => ExportTarget::Generic,
    }
}

/// Writes the active keys of `batch` to the request's file and records the export.
pub fn export(store: &Store, batch: &Batch, request: &ExportRequest) -> Result<ExportRecord> {
    let protection = protection(request)?;
    let keys: Vec<Key> = store
        .batch_keys(batch.id)?
        .into_iter()
        .filter(|k| matches!(k.state, KeyState::Verified | KeyState::Exported))
        .collect();
    if keys.is_empty() {
        return Err(EngineError::NothingToExport(batch.name.clone()));
    }
    let container = container(store, batch, &keys)?;
    let (bytes, renamed) = match protection {
        Chosen::Station(protection) => {
            let bytes = keyprov_pskc::write(&container, &protection).map_err(|e| {
                EngineError::ExportBuild {
                    path: request.path.clone(),
                    reason: e.to_string(),
                }
            })?;
            (Zeroizing::new(bytes), Vec::new())
        }
        Chosen::Profile(target, protection) => {
            let (bytes, shaped) = keyprov_profiles::write_for(target, &container, protection)
                .map_err(|e| EngineError::ExportRefused {
                    path: request.path.clone(),
                    reason: e.to_string(),
                })?;
            (Zeroizing::new(bytes), shaped.renamed_serials)
        }
    };
    let sha256 = export_file::write_atomically(&request.path, &bytes)?;
    let mut digest = [0u8; 32];
    // `write_atomically` returns 64 hex digits of a SHA-256.
    hex::decode_to_slice(&sha256, &mut digest).expect("SHA-256 hex from export_file");
    let record = store.record_export(&NewExport {
        batch: Some(batch.id),
        file_name: display_path(&request.path),
        sha256: digest,
        protection: protection_word(&request.protection).into(),
        target: target(request.target).name().into(),
        keys: keys.iter().map(|k| k.id).collect(),
    })?;
    tracing::debug!(batch = %batch.id, keys = keys.len(), "export recorded");
    let mut renamed: Vec<RenamedSerial> = renamed
        .into_iter()
        .map(|(device, written)| RenamedSerial { device, written })
        .collect();
    renamed.sort_by(|a, b| a.device.cmp(&b.device));
    // The file is written and recorded: a log that cannot take the renames leaves the history
    // without them, and the export stands.
    if !renamed.is_empty()
        && let Err(e) = record_renamed(store, batch, &record, &renamed)
    {
        tracing::error!(export = record.id.0, error = %e, "renamed serials not kept in the log");
    }
    let mut record = crate::station::export_record(&record);
    record.renamed_serials = renamed;
    Ok(record)
}

/// The kind of the event that keeps the serials an export renamed, next to its record.
const RENAMED_EVENT: &str = "engine.export_renamed";

/// Keeps the serials an export's profile rewrote in the log, so that the export history
/// (`batch show`) names them as the export itself did.
fn record_renamed(
    store: &Store,
    batch: &Batch,
    export: &keyprov_store::Export,
    renamed: &[RenamedSerial],
) -> Result<()> {
    store.record_event(&NewEvent {
        kind: RENAMED_EVENT.into(),
        batch: Some(batch.id),
        device: None,
        key: None,
        detail: serde_json::json!({ "export": export.id.0, "renamed": renamed }),
    })?;
    Ok(())
}

/// The export history of a batch as the API lists it: each record with the serials its
/// profile renamed.
pub fn history(store: &Store, batch: &Batch) -> Result<Vec<ExportRecord>> {
    let exports = store.exports(Some(batch.id))?;
    let mut records: Vec<ExportRecord> =
        exports.iter().map(crate::station::export_record).collect();
    if exports.iter().all(|e| e.target == Target::Generic.name()) {
        return Ok(records);
    }
    for event in store.events(Some(batch.id))? {
        if event.kind != RENAMED_EVENT {
            continue;
        }
        let id = event.detail["export"].as_i64();
        let renamed = serde_json::from_value(event.detail["renamed"].clone());
        let at = exports.iter().position(|e| Some(e.id.0) == id);
        if let (Some(at), Ok(renamed)) = (at, renamed) {
            records[at].renamed_serials = renamed;
        }
    }
    Ok(records)
}

fn container(store: &Store, batch: &Batch, keys: &[Key]) -> Result<KeyContainer> {
    let mut container = KeyContainer::new();
    container.id = Some(batch.name.clone());
    for key in keys {
        let device = store.device(key.device)?;
        let secret = store.key_secret(key.id)?;
        let mut package = KeyPackage::default();
        package.device_info.manufacturer = Some(manufacturer(&device.family).into());
        package.device_info.serial_no = Some(device.serial.clone());
        package.device_info.model = Some(device.model.clone());
        let mut pskc_key = keyprov_pskc::Key {
            id: Some(pskc_key_id(key)),
            issuer: Some("KeyProv Station".into()),
            ..Default::default()
        };
        pskc_key.algorithm_parameters.suite = Some(suite(key.profile.hash).into());
        pskc_key.algorithm_parameters.response_format = Some(ResponseFormat {
            encoding: Some("DECIMAL".into()),
            length: Some(u32::from(key.profile.digits)),
            check_digits: None,
        });
        pskc_key.data = KeyData {
            secret: Some(Secret::from_slice(&secret)),
            ..Default::default()
        };
        match key.profile.algorithm {
            OtpAlgorithm::Hotp => {
                pskc_key.algorithm = Some(keyprov_pskc::HOTP.into());
                pskc_key.data.counter = Some(key.counter.unwrap_or(0));
            }
            OtpAlgorithm::Totp => {
                pskc_key.algorithm = Some(keyprov_pskc::TOTP.into());
                pskc_key.data.time_interval = key.profile.period.map(u64::from);
                pskc_key.data.time = Some(0);
            }
        }
        package.keys.push(pskc_key);
        container.key_packages.push(package);
    }
    Ok(container)
}

/// The `AlgorithmParameters/Suite` naming a key's OTP hash. RFC 6030 registers no Suite
/// values for HOTP/TOTP (RFC 6238 erratum 4249); `HMAC-SHA256` is the spelling vendor files use
/// (multiOTP) and every reader here maps (python-pskc keeps the text, FreeIPA and LinOTP map
/// `hmac-sha256`). Profiles rewrite it for importers that read it differently (privacyIDEA:
/// `sha256`).
pub fn suite(hash: HashAlgorithm) -> &'static str {
    match hash {
        HashAlgorithm::Sha1 => "HMAC-SHA1",
        HashAlgorithm::Sha256 => "HMAC-SHA256",
        HashAlgorithm::Sha512 => "HMAC-SHA512",
    }
}

/// The PSKC `Key/@Id`: the DSKPP server's KeyID (what the validation server knows), else
/// the station's key id.
pub fn pskc_key_id(key: &Key) -> String {
    key.dskpp_key_id
        .clone()
        .unwrap_or_else(|| format!("keyprov-{}", key.id.0))
}

/// The protection an export is written with: the station's own (generic) or a profile's.
enum Chosen {
    Station(Protection),
    Profile(Target, ProtectionRequest),
}

fn protection(request: &ExportRequest) -> Result<Chosen> {
    if let ExportProtection::Password { password } = &request.protection {
        check_password(password)?;
    }
    let target = target(request.target);
    if target == Target::Generic {
        return station_protection(request).map(Chosen::Station);
    }
    let wanted = match &request.protection {
        ExportProtection::Password { password } => {
            ProtectionRequest::Password(Secret::from_slice(password.as_bytes()))
        }
        ExportProtection::Key { key_hex } => ProtectionRequest::PreSharedKey(parse_key(key_hex)?),
        ExportProtection::Certificate { cert_pem } => {
            ProtectionRequest::PublicKey(read_certificate(cert_pem)?)
        }
    };
    // Ask the profile now, so a protection the importer cannot open fails before any work.
    keyprov_profiles::protection(target, wanted.clone()).map_err(|e| {
        EngineError::ExportRefused {
            path: request.path.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok(Chosen::Profile(target, wanted))
}

fn check_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(EngineError::invalid("export password", "it is empty"));
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(EngineError::invalid(
            "export password",
            format!("{chars} characters is too short; use at least {MIN_PASSWORD_LEN}"),
        ));
    }
    Ok(())
}

fn parse_key(key_hex: &str) -> Result<Secret> {
    Secret::from_hex(key_hex)
        .ok_or_else(|| EngineError::invalid("export key", "it is not hexadecimal"))
}

fn read_certificate(cert_pem: &Path) -> Result<RsaPublicKey> {
    let pem = std::fs::read_to_string(cert_pem).map_err(|e| {
        EngineError::invalid("export certificate", format!("{}: {e}", cert_pem.display()))
    })?;
    RsaPublicKey::from_pem(&pem).map_err(|reason| {
        EngineError::invalid(
            "export certificate",
            format!("{}: {reason}", cert_pem.display()),
        )
    })
}

fn station_protection(request: &ExportRequest) -> Result<Protection> {
    match &request.protection {
        ExportProtection::Password { password } => Ok(Protection::Password {
            password: Secret::from_slice(password.as_bytes()),
            iterations: PBKDF2_ITERATIONS,
            prf: Hmac::Sha256,
            salt: None,
            key_name: Some("KeyProv export password".into()),
            cipher: Cipher::Aes256Cbc,
            mac: Hmac::Sha256,
        }),
        ExportProtection::Key { key_hex } => {
            let key = parse_key(key_hex)?;
            let cipher = match key.expose().len() {
                16 => Cipher::Aes128Cbc,
                24 => Cipher::Aes192Cbc,
                32 => Cipher::Aes256Cbc,
                n => {
                    return Err(EngineError::invalid(
                        "export key",
                        format!("{n} bytes; an AES key has 16, 24 or 32"),
                    ));
                }
            };
            Ok(Protection::PreSharedKey {
                key,
                key_name: Some("Pre-shared-key".into()),
                cipher,
                mac: Hmac::Sha256,
            })
        }
        ExportProtection::Certificate { cert_pem } => Ok(Protection::PublicKey {
            key: read_certificate(cert_pem)?,
            cipher: Cipher::RsaOaepMgf1p,
        }),
    }
}

/// `password`, `key` or `certificate`.
pub fn protection_word(p: &ExportProtection) -> &'static str {
    match p {
        ExportProtection::Password { .. } => "password",
        ExportProtection::Key { .. } => "key",
        ExportProtection::Certificate { .. } => "certificate",
    }
}

fn manufacturer(family: &str) -> &'static str {
    if family.starts_with("yubikey") {
        "Yubico"
    } else if family.starts_with("nitrokey") {
        "Nitrokey"
    } else {
        "unknown"
    }
}

fn display_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn request(protection: ExportProtection) -> ExportRequest {
        ExportRequest {
            path: PathBuf::from("x.pskcxml"),
            protection,
            target: ExportTarget::Generic,
        }
    }

    #[test]
    fn short_or_empty_passwords_are_refused_by_name() {
        let empty = check(&request(ExportProtection::Password {
            password: String::new(),
        }));
        assert!(
            empty
                .unwrap_err()
                .to_string()
                .contains("export password: it is empty")
        );
        let short = check(&request(ExportProtection::Password {
            password: "abc".into(),
        }));
        let message = short.unwrap_err().to_string();
        assert!(message.contains("3 characters is too short"), "{message}");
        assert!(
            !message.contains("abc"),
            "the password is not echoed: {message}"
        );
    }

    #[test]
    fn keys_must_be_aes_sized_hex() {
        let bad = check(&request(ExportProtection::Key {
            key_hex: "zz".into(),
        }));
        assert!(bad.unwrap_err().to_string().contains("not hexadecimal"));
        let short = check(&request(ExportProtection::Key {
            key_hex: "00112233".into(),
        }));
        assert!(short.unwrap_err().to_string().contains("4 bytes"));
        let ok = check(&request(ExportProtection::Key {
            key_hex: "00".repeat(16),
        }));
        assert!(ok.is_ok());
    }

    #[test]
    fn a_missing_certificate_is_named() {
        let missing = PathBuf::from("/nonexistent/cert.pem");
        let err = check(&request(ExportProtection::Certificate {
            cert_pem: missing,
        }));
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("/nonexistent/cert.pem")
        );
    }
}
