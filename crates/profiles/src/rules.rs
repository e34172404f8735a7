//! What each importer reads, as data: one [`Rules`] value per target.
//!
//! Sources (see `../shared/spec/pskc.md` §1 and §4b, and the oracles under `tests/oracles/`):
//! privacyIDEA 3.14 `importotp.py` (checked against a running instance), FreeIPA
//! `ipa_otptoken_import.py`, LinOTP `ImportOTP/PSKC.py`. Each field says what the importer does
//! with the element; [`crate::shape()`] turns these facts into rewrites and refusals.

use std::ops::RangeInclusive;

use keyprov_pskc::algorithm::Hmac;

use crate::target::Target;

/// How an importer treats one optional element: reads it correctly, ignores it, or rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Read and honoured.
    Read,
    /// Silently dropped: a value that matters is lost, so the profile refuses it.
    Ignored,
    /// The importer refuses the key.
    Rejected,
}

/// How serial numbers must look for the importer to take the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialShape {
    /// Any text.
    Any,
    /// An OATH token identifier, `[a-zA-Z0-9]{4}[a-fA-F0-9]{8}` (LinOTP skips others with only
    /// a log warning).
    Oath,
}

/// The facts about one importer.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Which importer.
    pub target: Target,
    /// Reads only the first `Key` of a `KeyPackage`: the profile writes one key per package.
    pub first_key_only: bool,
    /// Tokens are keyed by serial (`SerialNo`, else `Key@Id`): a repeated serial overwrites.
    pub unique_serials: bool,
    /// Tokens are keyed by `Key@Id`.
    pub unique_key_ids: bool,
    /// `Key@Id` must be present (privacyIDEA answers HTTP 500 otherwise).
    pub key_id_required: bool,
    /// Serial shape the importer accepts.
    pub serial_shape: SerialShape,
    /// OTP hashes the importer honours when named in `Suite` (written as `sha1`, `sha256` …).
    pub hashes: &'static [Hmac],
    /// OTP lengths the server can validate.
    pub digits: RangeInclusive<u32>,
    /// `Data/Time` other than 0 (a TOTP T0).
    pub time: Support,
    /// `Data/TimeDrift` other than 0.
    pub time_drift: Support,
    /// `Policy/StartDate`, `Policy/ExpiryDate` and `DeviceInfo` dates.
    pub dates: Support,
    /// `PINPolicy`, `NumberOfTransactions`, unknown policy content.
    pub restrictions: Support,
    /// `ResponseFormat@CheckDigits` true.
    pub check_digits: Support,
    /// Pre-shared key lengths in bytes the importer can use (AES-CBC).
    pub psk_lengths: &'static [usize],
    /// Password length limits in characters, if any.
    pub password_chars: Option<RangeInclusive<usize>>,
    /// Password must be ASCII (LinOTP encodes it as ASCII).
    pub password_ascii: bool,
    /// Asymmetric key transport (RFC 6030 §6.3) to a certificate.
    pub certificate: bool,
    /// `EncryptionKey` must name the key (`ds:KeyName` / `xenc11:MasterKeyName`).
    pub key_name_required: bool,
}

/// The hashes `hotp`/`totp` tokens of privacyIDEA and LinOTP accept.
const SHA_1_256_512: &[Hmac] = &[Hmac::Sha1, Hmac::Sha256, Hmac::Sha512];
/// FreeIPA's `ipatokenotpalgorithm` values.
const FREEIPA_HASHES: &[Hmac] = &[Hmac::Sha1, Hmac::Sha256, Hmac::Sha384, Hmac::Sha512];

impl Rules {
    /// The facts about `target`'s importer.
    pub fn of(target: Target) -> Rules {
        match target {
            Target::Generic => Rules::GENERIC,
            Target::PrivacyIdea => Rules::PRIVACYIDEA,
            Target::FreeIpa => Rules::FREEIPA,
            Target::LinOtp => Rules::LINOTP,
        }
    }

    /// RFC 6030 as written: everything is read.
    const GENERIC: Rules = Rules {
        target: Target::Generic,
        first_key_only: false,
        unique_serials: false,
        unique_key_ids: false,
        key_id_required: false,
        serial_shape: SerialShape::Any,
        hashes: &[
            Hmac::Sha1,
            Hmac::Sha224,
            Hmac::Sha256,
            Hmac::Sha384,
            Hmac::Sha512,
        ],
        digits: 4..=10,
        time: Support::Read,
        time_drift: Support::Read,
        dates: Support::Read,
        restrictions: Support::Read,
        check_digits: Support::Read,
        psk_lengths: &[16, 24, 32],
        password_chars: None,
        password_ascii: false,
        certificate: true,
        key_name_required: false,
    };

    /// privacyIDEA 3.14 `parsePSKCdata` + `import_token`.
    const PRIVACYIDEA: Rules = Rules {
        target: Target::PrivacyIdea,
        first_key_only: true,
        unique_serials: true,
        unique_key_ids: false,
        key_id_required: true,
        serial_shape: SerialShape::Any,
        hashes: SHA_1_256_512,
        digits: 6..=8,
        // T0 is not read; TimeDrift (intervals) becomes timeShift (seconds) unconverted.
        time: Support::Ignored,
        time_drift: Support::Ignored,
        dates: Support::Ignored,
        restrictions: Support::Ignored,
        check_digits: Support::Ignored,
        // The load API takes exactly 32 hex digits; the cipher is AES-128-CBC only.
        psk_lengths: &[16],
        password_chars: None,
        password_ascii: false,
        certificate: false,
        key_name_required: false,
    };

    /// FreeIPA `ipa-otptoken-import`.
    const FREEIPA: Rules = Rules {
        target: Target::FreeIpa,
        first_key_only: true,
        unique_serials: false,
        unique_key_ids: true,
        key_id_required: true,
        serial_shape: SerialShape::Any,
        hashes: FREEIPA_HASHES,
        digits: 6..=8,
        time: Support::Rejected,
        time_drift: Support::Read,
        dates: Support::Read,
        restrictions: Support::Rejected,
        check_digits: Support::Rejected,
        psk_lengths: &[16, 24, 32],
        password_chars: None,
        password_ascii: false,
        certificate: false,
        key_name_required: true,
    };

    /// LinOTP `parsePSKCdata` with `do_checkserial=True`.
    const LINOTP: Rules = Rules {
        target: Target::LinOtp,
        first_key_only: true,
        unique_serials: true,
        unique_key_ids: false,
        key_id_required: false,
        serial_shape: SerialShape::Oath,
        hashes: SHA_1_256_512,
        digits: 6..=8,
        time: Support::Ignored,
        time_drift: Support::Ignored,
        dates: Support::Ignored,
        restrictions: Support::Ignored,
        check_digits: Support::Ignored,
        psk_lengths: &[16],
        password_chars: Some(6..=64),
        password_ascii: true,
        certificate: false,
        key_name_required: true,
    };
}

/// The `Suite` text written for an OTP hash: the lowercase hashlib name all three servers
/// read (`sha256`). privacyIDEA takes the text as its hashlib name as it is, so `SHA-256` or
/// `HMAC-SHA256` import without error and then validate as SHA-1.
pub fn suite_text(hash: Hmac) -> &'static str {
    match hash {
        Hmac::Sha1 => "sha1",
        Hmac::Sha224 => "sha224",
        Hmac::Sha256 => "sha256",
        Hmac::Sha384 => "sha384",
        Hmac::Sha512 => "sha512",
    }
}

/// Whether `serial` is an OATH token identifier as LinOTP checks it.
pub fn is_oath_serial(serial: &str) -> bool {
    let bytes = serial.as_bytes();
    bytes.len() == 12
        && bytes[..4].iter().all(u8::is_ascii_alphanumeric)
        && bytes[4..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oath_serials_follow_linotp_check() {
        assert!(is_oath_serial("UBOH01234567"));
        assert!(is_oath_serial("FT00abcdef12"));
        assert!(!is_oath_serial("1000133508267"));
        assert!(!is_oath_serial("UBOH0123456g"));
        assert!(!is_oath_serial("UB-H01234567"));
    }

    #[test]
    fn every_target_has_rules() {
        for target in Target::ALL {
            assert_eq!(Rules::of(target).target, target);
        }
    }
}
