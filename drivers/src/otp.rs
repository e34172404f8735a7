//! RFC 4226 HOTP and RFC 6238 TOTP (HMAC-SHA1), the values a token must produce. The
//! drivers compare device output with these, and the engine reuses them.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

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
    let code = hotp_value(key, counter) % 10u32.pow(u32::from(digits.get()));
    format!("{code:0width$}", width = usize::from(digits.get()))
}

/// RFC 6238 §4: HOTP over `T = floor(unix_time / period)`.
pub fn totp(key: &[u8], unix_time: u64, period: u32, digits: Digits) -> String {
    hotp(key, unix_time / u64::from(period.max(1)), digits)
}

/// The 31-bit value before reduction modulo 10^digits (RFC 4226 §5.4 "Snum").
pub fn hotp_value(key: &[u8], counter: u64) -> u32 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    u32::from_be_bytes([
        hash[offset],
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]) & 0x7fff_ffff
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

    #[test]
    fn digits_outside_six_to_nine_are_refused() {
        assert!(Digits::new(5).is_none());
        assert!(Digits::new(10).is_none());
        assert_eq!(Digits::new(8), Some(Digits::EIGHT));
    }
}
