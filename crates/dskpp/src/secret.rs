//! Secret octet strings (K_PROV, K_MAC, R_C, passwords…): zeroized on drop and never printed.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// An octet string that must not leak: its `Debug` shows only the length, it is wiped on drop
/// and compared in constant time.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes that are already secret; the caller's copy is moved, not duplicated.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// Copies a slice into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Secret(bytes.to_vec())
    }

    /// Fresh random octets from the operating system's CSPRNG.
    pub fn random(len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        crate::random::fill(&mut bytes);
        Secret(bytes)
    }

    /// The secret octets; keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret holds no octets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first `len` octets as a new secret (the RFC's "truncate from the front").
    pub fn prefix(&self, len: usize) -> Secret {
        Secret::from_slice(&self.0[..len.min(self.0.len())])
    }

    /// Constant-time equality (length is not secret).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        crate::ct_eq(&self.0, other)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret([redacted; {} octets])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_octets() {
        let s = Secret::from_slice(&[0xAB, 0xCD]);
        let shown = format!("{s:?}");
        assert_eq!(shown, "Secret([redacted; 2 octets])");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn prefix_truncates_from_the_front() {
        let s = Secret::from_slice(&[1, 2, 3, 4]);
        assert_eq!(s.prefix(2).expose(), &[1, 2]);
        assert!(s.ct_eq(&[1, 2, 3, 4]));
        assert!(!s.ct_eq(&[1, 2, 3, 5]));
    }
}
