//! RFC 4226 HOTP and RFC 6238 TOTP (HMAC-SHA1, and HMAC-SHA256 as RFC 6238 allows), the
//! values a token must produce. The drivers compare device output with these, and the engine
//! reuses them.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The HMAC hash of an HOTP/TOTP credential (RFC 6238 §1.2 allows SHA-256 and SHA-512;
/// the tokens here do SHA-1, and the Nitrokey 3 also SHA-256).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OtpHash {
    /// HMAC-SHA1 (RFC 4226; every device).
    #[default]
    Sha1,
    /// HMAC-SHA256 (RFC 6238).
    Sha256,
}

impl OtpHash {
    /// The name used on the command line, in JSON and in PSKC suites (`sha1`, `sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            OtpHash::Sha1 => "sha1",
            OtpHash::Sha256 => "sha256",
        }
    }

    /// Parses `sha1` / `sha256`, also spelled `SHA-1`, `SHA256`, `hmac-sha256`...
    pub fn parse(text: &str) -> Option<OtpHash> {
        let plain: String = text
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| *c != '-')
            .collect();
        match plain.strip_prefix("hmac").unwrap_or(&plain) {
            "sha1" => Some(OtpHash::Sha1),
            "sha256" => Some(OtpHash::Sha256),
            _ => None,
        }
    }
}

impl fmt::Display for OtpHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of digits of an OTP value (6 to 9; devices here support 6 and 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Digits(u8);

impl Digits {
    /// Six digits.
    pub const SIX: Digits = Digits(6);
    /// Eight digits.
    pub const EIGHT: Digits = Digits(8);

    /// Accepts 6..=9 (RFC 4226 §5.3 requires at least 6; 10 would overflow 31 bits).
    pub fn new(digits: u8) -> Option<Digits> {
        (6..=9).contains(&digits).then_some(Digits(digits))
    }

    /// The number of digits.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Digits {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, String> {
        Digits::new(value).ok_or_else(|| format!("{value} digits (expected 6 to 9)"))
    }
}

impl From<Digits> for u8 {
    fn from(value: Digits) -> u8 {
        value.0
    }
}

/// RFC 4226 §5.3 dynamic truncation of HMAC-SHA1(key, counter), as a zero-padded string.
pub fn hotp(key: &[u8], counter: u64, digits: Digits) -> String {
    hotp_with(OtpHash::Sha1, key, counter, digits)
}

/// RFC 6238 §4: HOTP (HMAC-SHA1) over `T = floor(unix_time / period)`.
pub fn totp(key: &[u8], unix_time: u64, period: u32, digits: Digits) -> String {
    totp_with(OtpHash::Sha1, key, unix_time, period, digits)
}

/// [`hotp`] with the HMAC hash `hash`.
pub fn hotp_with(hash: OtpHash, key: &[u8], counter: u64, digits: Digits) -> String {
    let code = hotp_value_with(hash, key, counter) % 10u32.pow(u32::from(digits.get()));
    format!("{code:0width$}", width = usize::from(digits.get()))
}

/// [`totp`] with the HMAC hash `hash` (RFC 6238 §1.2).
pub fn totp_with(hash: OtpHash, key: &[u8], unix_time: u64, period: u32, digits: Digits) -> String {
    hotp_with(hash, key, unix_time / u64::from(period.max(1)), digits)
}

/// Compares an OTP read from a device with the expected value in constant time.
pub fn otp_matches(read: &str, expected: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(read.as_bytes(), expected.as_bytes()).into()
}

/// The 31-bit value before reduction modulo 10^digits (RFC 4226 §5.4 "Snum"), HMAC-SHA1.
pub fn hotp_value(key: &[u8], counter: u64) -> u32 {
    hotp_value_with(OtpHash::Sha1, key, counter)
}

/// [`hotp_value`] with the HMAC hash `hash`: the dynamic truncation offset is the low nibble
/// of the last byte of whichever MAC (RFC 6238 reference code, `hash.length - 1`).
pub fn hotp_value_with(hash: OtpHash, key: &[u8], counter: u64) -> u32 {
    let mac = zeroize::Zeroizing::new(hmac(hash, key, &counter.to_be_bytes()));
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff
}

/// HMAC of `message` under `key` with `hash`.
pub fn hmac(hash: OtpHash, key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    match hash {
        OtpHash::Sha1 => hmac_sha1(key, message).to_vec(),
        OtpHash::Sha256 => {
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// HMAC-SHA1 of a challenge, as a YubiKey challenge-response slot computes it.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    // As above: HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_matches_only_equal_codes() {
        assert!(otp_matches("755224", "755224"));
        assert!(!otp_matches("755224", "755225"));
        assert!(!otp_matches("55224", "755224"));
        assert!(!otp_matches("", "755224"));
    }

    /// RFC 4226 Appendix D, key "12345678901234567890", counters 0..9.
    pub const RFC4226_D: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    #[test]
    fn rfc4226_appendix_d() {
        for (counter, expected) in RFC4226_D.iter().enumerate() {
            assert_eq!(
                hotp(b"12345678901234567890", counter as u64, Digits::SIX),
                *expected
            );
        }
        assert_eq!(
            hotp_value(b"12345678901234567890", 0),
            0x4c93cf18 & 0x7fff_ffff
        );
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        let key = b"12345678901234567890";
        let cases = [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        for (time, expected) in cases {
            assert_eq!(totp(key, time, 30, Digits::EIGHT), expected, "T={time}");
        }
    }

    /// RFC 6238 Appendix B, SHA-256 column: the 32-byte seed "1234567890" repeated.
    #[test]
    fn rfc6238_appendix_b_sha256() {
        let key = b"12345678901234567890123456789012";
        let cases = [
            (59, "46119246"),
            (1111111109, "68084774"),
            (1111111111, "67062674"),
            (1234567890, "91819424"),
            (2000000000, "90698825"),
            (20000000000, "77737706"),
        ];
        for (time, expected) in cases {
            let otp = totp_with(OtpHash::Sha256, key, time, 30, Digits::EIGHT);
            assert_eq!(otp, expected, "T={time}");
        }
    }

    #[test]
    fn hash_names_parse_in_every_spelling() {
        for text in ["sha1", "SHA-1", "HMAC-SHA1"] {
            assert_eq!(OtpHash::parse(text), Some(OtpHash::Sha1), "{text}");
        }
        for text in ["sha256", "SHA-256", "hmac-sha256"] {
            assert_eq!(OtpHash::parse(text), Some(OtpHash::Sha256), "{text}");
        }
        assert_eq!(OtpHash::parse("sha512"), None);
        assert_eq!(OtpHash::Sha256.to_string(), "sha256");
    }

    #[test]
    fn digits_outside_six_to_nine_are_refused() {
        assert!(Digits::new(5).is_none());
        assert!(Digits::new(10).is_none());
        assert_eq!(Digits::new(8), Some(Digits::EIGHT));
    }
}
