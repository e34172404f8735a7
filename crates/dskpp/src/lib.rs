//! Dynamic Symmetric Key Provisioning Protocol (RFC 6063): messages, DSKPP-PRF, the
//! Authentication Code and Data, key derivation and MACs, a server core without HTTP and a
//! client driven through a transport trait.
//!
//! Every place where the RFC is ambiguous is decided in `docs/dskpp.md`; the code names the
//! decision (D1, D2, …) where it applies.

pub mod ac;
pub mod auth;
pub mod client;
pub mod keys;
pub mod messages;
pub mod package;
pub mod prf;
pub mod random;
pub mod secret;
pub mod server;
pub mod store;
pub mod uri;
pub mod xml;

pub use messages::{Message, Status};
pub use prf::Prf;
pub use secret::Secret;

/// Constant-time equality of two octet strings (their lengths are public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
