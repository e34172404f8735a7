//! Portable Symmetric Key Container (PSKC, RFC 6030): a streaming reader and writer.
//!
//! * [`parse`] / [`Reader`] read a document with [`ReadOptions`] (pre-shared key, password,
//!   RSA private key, tolerance switches, size limits); every cipher, MAC and PBKDF2 PRF of
//!   RFC 6030 is supported, and the pre-RFC draft syntaxes are read too.
//! * [`write`] / [`Writer`] produce canonical RFC 6030 with a [`Protection`].
//! * [`read_container_element`] / [`write_container_element`] handle a container embedded in
//!   another protocol's XML (RFC 6063 DSKPP).
//!
//! Secrets are [`Secret`]s: zeroized on drop and redacted in `Debug`. DTDs and entity
//! declarations are refused; sizes are capped ([`Limits`]); nothing panics on any input.
//!
//! ```
//! use keyprov_pskc::{Key, KeyContainer, KeyData, KeyPackage, Protection, ReadOptions, Secret};
//!
//! let mut container = KeyContainer::new();
//! container.key_packages.push(KeyPackage {
//!     keys: vec![Key {
//!         id: Some("1".into()),
//!         algorithm: Some(keyprov_pskc::HOTP.into()),
//!         data: KeyData { secret: Some(Secret::from_slice(b"1234")), ..KeyData::default() },
//!         ..Key::default()
//!     }],
//!     ..KeyPackage::default()
//! });
//! let xml = keyprov_pskc::write(&container, &Protection::Plain).unwrap();
//! let read = keyprov_pskc::parse(&xml, &ReadOptions::default()).unwrap();
//! assert_eq!(read, container);
//! ```

pub mod algorithm;
mod dom;
mod encryption;
mod error;
pub mod mac;
mod model;
mod reader;
mod secret;
mod signature;
mod split;
pub mod values;
mod writer;

pub use algorithm::{Cipher, HOTP, Hmac, OCRA, PIN, Profile, TOTP, TOTP_DRAFT};
pub use dom::Limits;
pub use encryption::{RsaPrivateKey, RsaPublicKey};
pub use error::{Error, Location, Result};
pub use model::{
    AlgorithmParameters, ChallengeFormat, DeviceInfo, Extension, Key, KeyContainer, KeyData,
    KeyPackage, PinPolicy, Policy, ResponseFormat,
};
pub use reader::{ReadOptions, Reader, parse, read_container_element};
pub use secret::Secret;
pub use signature::{VerifiedSignature, verify_signature};
pub use writer::{
    NS_UNKNOWN_POLICY, Protection, WriteOptions, Writer, write, write_container_element, write_with,
};
