//! Secret values handed to or kept by the drivers: OTP keys, the Nitrokey admin PIN and the
//! YubiKey access code. Each wipes itself on drop and prints as `<redacted>`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// An HOTP/TOTP (HMAC-SHA1) key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Takes ownership of the key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretKey(bytes)
    }

    /// Copies the key bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretKey(bytes.to_vec())
    }

    /// Parses a hex string (as used by test vectors and the emulator CLI).
    pub fn from_hex(text: &str) -> Option<Self> {
        hex::decode(text.trim()).ok().map(SecretKey)
    }

    /// The key bytes; keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted, {} bytes>)", self.0.len())
    }
}

/// A PIN or password (Nitrokey admin PIN, its temporary password).
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: impl Into<String>) -> Self {
        Pin(Zeroizing::new(pin.into()))
    }

    /// The PIN bytes; never log them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// A YubiKey slot access code (6 bytes). All zeros means "no access code".
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct AccessCode([u8; 6]);

impl AccessCode {
    /// Length of an access code.
    pub const LEN: usize = 6;

    /// Wraps six bytes.
    pub fn new(bytes: [u8; 6]) -> Self {
        AccessCode(bytes)
    }

    /// Parses 12 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).ok()?);
        let array: [u8; 6] = bytes.as_slice().try_into().ok()?;
        Some(AccessCode(array))
    }

    /// The code derived from a serial as ykman's batch example does: the serial in decimal,
    /// zero-padded to 12 digits, read as 6 BCD bytes.
    pub fn from_serial_bcd(serial: u32) -> Self {
        let digits = format!("{serial:012}");
        let mut out = [0u8; 6];
        for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
            out[i] = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
        }
        AccessCode(out)
    }

    /// The bytes; never log them.
    pub fn expose(&self) -> &[u8; 6] {
        &self.0
    }

    /// True when this is the all-zero "no code" value.
    pub fn is_none(&self) -> bool {
        self.0 == [0u8; 6]
    }
}

impl fmt::Debug for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_every_secret() {
        let key = SecretKey::from_slice(b"12345678901234567890");
        let text = format!(
            "{key:?} {:?} {:?}",
            Pin::new("12345678"),
            AccessCode::new([7; 6])
        );
        assert_eq!(
            text,
            "SecretKey(<redacted, 20 bytes>) Pin(<redacted>) AccessCode(<redacted>)"
        );
    }

    #[test]
    fn access_code_from_serial_is_bcd_of_twelve_digits() {
        let code = AccessCode::from_serial_bcd(1234567);
        assert_eq!(code.expose(), &[0x00, 0x00, 0x01, 0x23, 0x45, 0x67]);
    }
}
