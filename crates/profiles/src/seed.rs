//! Reading a vendor seed file: which keys of a decrypted PSKC container the station registers
//! as tokens, with what parameters, and why the others are left out.
//!
//! The station registers HOTP and TOTP keys that carry their secret. Everything else in a
//! vendor file (PIN keys, OCRA, Yubico OTP, keys held by reference, keys whose policy this
//! program does not understand — RFC 6030 §5 says those must not be used) is skipped with a
//! reason the operator sees. Duplicates inside one file collapse when they agree and are an
//! error when they do not.

use std::collections::HashMap;

use keyprov_pskc::algorithm::{Hmac, Profile};
use keyprov_pskc::{Key, KeyContainer, KeyPackage, Secret};
use time::OffsetDateTime;

use crate::error::{Refusal, SeedError};
use crate::shape::subject;

/// HOTP or TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpKind {
    /// RFC 4226.
    Hotp,
    /// RFC 6238.
    Totp,
}

/// One token of a seed file, as the station registers it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedToken {
    /// The token's serial: `DeviceInfo/SerialNo`, else `Key@Id`.
    pub serial: String,
    /// `Key@Id`, else the serial: tells apart several keys of one device.
    pub key_id: String,
    /// `DeviceInfo/Manufacturer`.
    pub manufacturer: Option<String>,
    /// `DeviceInfo/Model`.
    pub model: Option<String>,
    /// HOTP or TOTP.
    pub kind: OtpKind,
    /// The HMAC hash (from `Suite`; SHA-1 when absent).
    pub hash: Hmac,
    /// OTP length.
    pub digits: u8,
    /// HOTP moving factor (0 when the file has none).
    pub counter: Option<u64>,
    /// TOTP time step in seconds (30 when the file has none).
    pub period: Option<u32>,
    /// The seed.
    pub secret: Secret,
    /// `Policy/ExpiryDate`, when the file gives one.
    pub expires: Option<OffsetDateTime>,
}

/// What a seed file yields.
#[derive(Debug, Clone, Default)]
pub struct SeedFile {
    /// Tokens to register, in document order, duplicates collapsed.
    pub tokens: Vec<SeedToken>,
    /// Keys left out, with the reason.
    pub skipped: Vec<Refusal>,
    /// Keys registered that the operator should know about (a secret under 128 bits), with
    /// what is wrong; never the secret.
    pub warnings: Vec<Refusal>,
}

/// RFC 4226 §4 requirement R6: the shared secret is at least 128 bits. Shorter secrets are
/// registered all the same (RFC 6030's own examples carry a 32-bit one) with a warning.
pub const MIN_SECRET_BITS: usize = 128;

/// The tokens of a decrypted container; [`SeedError::NothingToImport`] when there are none.
pub fn seed_tokens(container: &KeyContainer) -> Result<SeedFile, SeedError> {
    let mut file = SeedFile::default();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (package, key) in container.keys() {
        let token = match seed_token(package, key) {
            Ok(token) => token,
            Err(reason) => {
                tracing::debug!(key = ?key.id, %reason, "seed key skipped");
                file.skipped.push(Refusal {
                    subject: subject(package, key),
                    reason,
                });
                continue;
            }
        };
        let identity = (token.serial.clone(), token.key_id.clone());
        match seen.get(&identity) {
            Some(&at) => same_token(&file.tokens[at], &token)?,
            None => {
                seen.insert(identity, file.tokens.len());
                if let Some(warning) = short_secret(&token) {
                    tracing::warn!(key = %token.key_id, "{}", warning.reason);
                    file.warnings.push(warning);
                }
                file.tokens.push(token);
            }
        }
    }
    if file.tokens.is_empty() {
        return Err(SeedError::NothingToImport {
            skipped: file.skipped,
        });
    }
    Ok(file)
}

/// The warning for a secret under [`MIN_SECRET_BITS`], naming the key and the length.
pub(crate) fn short_secret(token: &SeedToken) -> Option<Refusal> {
    let bits = token.secret.len() * 8;
    (bits < MIN_SECRET_BITS).then(|| Refusal {
        subject: format!("key {} (serial {})", token.key_id, token.serial),
        reason: format!(
            "its secret is {bits} bits, shorter than the {MIN_SECRET_BITS} bits RFC 4226 \
             requires (R6); registered all the same"
        ),
    })
}

/// A repeated key must repeat exactly; anything else is a conflict inside the file.
fn same_token(first: &SeedToken, again: &SeedToken) -> Result<(), SeedError> {
    let what = if first.secret != again.secret {
        "secret"
    } else if (first.kind, first.hash, first.digits) != (again.kind, again.hash, again.digits) {
        "algorithm"
    } else if (first.counter, first.period) != (again.counter, again.period) {
        "counter or time step"
    } else {
        return Ok(());
    };
    Err(SeedError::DuplicateInFile {
        subject: format!("key {} (serial {})", again.key_id, again.serial),
        what: what.into(),
    })
}

fn seed_token(package: &KeyPackage, key: &Key) -> Result<SeedToken, String> {
    let kind = match key.profile() {
        Some(Profile::Hotp) => OtpKind::Hotp,
        Some(Profile::Totp) => OtpKind::Totp,
        _ => {
            let uri = key.algorithm.as_deref().unwrap_or("<none>");
            return Err(format!("algorithm {uri} is not HOTP or TOTP"));
        }
    };
    let Some(secret) = key.data.secret.clone() else {
        return Err("the file holds no secret for it".into());
    };
    if secret.is_empty() {
        return Err("its secret is empty".into());
    }
    if key.policy.unknown_elements {
        return Err(
            "its policy has elements this program does not know (RFC 6030 §5: the key \
                    must not be used)"
                .into(),
        );
    }
    let hash = hash_of(key)?;
    let digits = digits_of(key)?;
    let (counter, period) = match kind {
        OtpKind::Hotp => (Some(key.data.counter.unwrap_or(0)), None),
        OtpKind::Totp => (None, Some(period_of(key)?)),
    };
    let serial = package
        .device_info
        .serial_no
        .as_deref()
        .or(key.id.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("it has neither SerialNo nor Key@Id")?
        .to_string();
    let key_id = key
        .id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&serial);
    Ok(SeedToken {
        key_id: key_id.to_string(),
        serial,
        manufacturer: package.device_info.manufacturer.clone(),
        model: package.device_info.model.clone(),
        kind,
        hash,
        digits,
        counter,
        period,
        secret,
        expires: key.policy.expiry_date,
    })
}

/// The OTP hash named by `Suite` (any common spelling); SHA-1 when there is none.
fn hash_of(key: &Key) -> Result<Hmac, String> {
    let Some(suite) = key.algorithm_parameters.suite.as_deref() else {
        return Ok(Hmac::Sha1);
    };
    match Hmac::from_uri(suite) {
        Some(hash @ (Hmac::Sha1 | Hmac::Sha256 | Hmac::Sha512)) => Ok(hash),
        Some(other) => Err(format!(
            "OTP hash {} is not one of SHA-1, SHA-256, SHA-512",
            other.name()
        )),
        None => Err(format!("Suite {suite:?} names no OTP hash")),
    }
}

/// `ResponseFormat@Length` (6 when absent, as every importer assumes), decimal only.
fn digits_of(key: &Key) -> Result<u8, String> {
    let format = key.algorithm_parameters.response_format.as_ref();
    if let Some(encoding) = format.and_then(|f| f.encoding.as_deref())
        && !encoding.eq_ignore_ascii_case("DECIMAL")
    {
        return Err(format!("its OTP encoding is {encoding}, not DECIMAL"));
    }
    match format.and_then(|f| f.length).unwrap_or(6) {
        length @ 6..=10 => Ok(length as u8),
        length => Err(format!(
            "{length}-digit OTPs are outside HOTP's 6 to 10 digits"
        )),
    }
}

/// `TimeInterval` (30 when absent); a start time other than 0 cannot be represented.
fn period_of(key: &Key) -> Result<u32, String> {
    if key.data.time.is_some_and(|t| t != 0) {
        return Err("its TOTP start time (Data/Time) is not 0".into());
    }
    match key.data.time_interval.unwrap_or(30) {
        0 => Err("its TOTP time step is 0".into()),
        step => u32::try_from(step).map_err(|_| format!("its TOTP time step {step} is too large")),
    }
}
