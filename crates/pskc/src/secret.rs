//! Secret bytes: key material, passwords and derived keys.
//!
//! Every secret that passes through this crate lives in a [`Secret`], which wipes its memory
//! on drop, never prints its content through `Debug`, and compares in constant time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Secret bytes, zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of `bytes`; the vector is wiped when the secret is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret::new(bytes.to_vec())
    }

    /// Parses a hexadecimal string (case-insensitive, surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = Zeroizing::new(Vec::new());
        *bytes = hex::decode(text.trim()).ok()?;
        Some(Secret::new(std::mem::take(&mut *bytes)))
    }

    /// `count` bytes from the operating system's random generator.
    pub fn random(count: usize) -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0u8; count];
        getrandom::fill(&mut bytes)?;
        Ok(Secret::new(bytes))
    }

    /// The secret bytes; callers must not copy them into unprotected storage.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hexadecimal text of the secret, itself wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.expose()))
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {} bytes])", self.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for Secret {}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Secret::new(bytes)
    }
}

impl From<&[u8]> for Secret {
    fn from(bytes: &[u8]) -> Self {
        Secret::from_slice(bytes)
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bytes() {
        let secret = Secret::from_slice(b"1234");
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED; 4 bytes])");
    }

    #[test]
    fn hex_round_trip() {
        let secret = Secret::from_hex(" 31323334 ").unwrap();
        assert_eq!(secret.expose(), b"1234");
        assert_eq!(secret.to_hex().as_str(), "31323334");
        assert!(Secret::from_hex("xyz").is_none());
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(Secret::from_slice(b"ab"), Secret::from_slice(b"ab"));
        assert_ne!(Secret::from_slice(b"ab"), Secret::from_slice(b"ac"));
        assert_ne!(Secret::from_slice(b"ab"), Secret::from_slice(b"abc"));
    }
}
