//! `keyprov-profiles`: seed files that validation servers accept, and seed files that vendors
//! send.
//!
//! Every importer reads a different subset of PSKC (RFC 6030), in its own way. An export
//! profile ([`Target`]) knows what one importer reads ([`Rules`]), reshapes a batch's container
//! for it ([`shape()`]), picks a protection it can open ([`protection()`]), and refuses —
//! with the reason — what it would lose or misread, rather than writing a file that imports
//! "successfully" and then fails to validate. [`seed_tokens`] is the other direction: which
//! keys of a vendor file the station registers.
//!
//! | target | importer | what the profile does |
//! |---|---|---|
//! | `generic` | RFC 6030 readers | writes the container as it is; any protection |
//! | `privacyidea` | privacyIDEA 3.x token load | one key per package; `Suite` = `sha1`/`sha256`/`sha512`; `Key@Id` set; unique serials; AES-128-CBC + HMAC-SHA1, PBKDF2-HMAC-SHA1; refuses T0, drift, dates, policies, other hashes |
//! | `freeipa` | `ipa-otptoken-import` | named key (`ds:KeyName`/`MasterKeyName`), `pkcs5:PBKDF2-params`; refuses T0, PIN policy, transaction limits, check digits |
//! | `linotp` | LinOTP PSKC import | OATH serials (`UBOH01234567`), AES-128-CBC + HMAC-SHA1, 6–64 character ASCII password; refuses T0, drift, dates, policies |
//!
//! The facts come from the importers' code and from running privacyIDEA 3.14 (see
//! `../shared/spec/pskc.md` §4b); `tests/oracles/` of the workspace reproduces the FreeIPA
//! and LinOTP importers, and the privacyIDEA test runs the real server.
//!
//! Status: RSA key transport is offered for `generic` only; the importers have none.

pub mod error;
pub mod protection;
pub mod register;
pub mod rules;
pub mod seed;
pub mod shape;
pub mod target;

pub use error::{ProfileError, Refusal, SeedError};
pub use protection::{ProtectionRequest, protection};
pub use register::{ImportReport, ImportSource, RegisterError, Registered, register};
pub use rules::Rules;
pub use seed::{OtpKind, SeedFile, SeedToken, seed_tokens};
pub use shape::{Shaped, shape};
pub use target::{Target, UnknownTarget};

use keyprov_pskc::KeyContainer;

/// Shapes `container` for `target` and writes it with the protection the target can open:
/// the one call an exporter needs. Returns the file's bytes and the serials rewritten.
pub fn write_for(
    target: Target,
    container: &KeyContainer,
    request: ProtectionRequest,
) -> Result<(Vec<u8>, Shaped), ExportError> {
    let shaped = shape(target, container)?;
    let protection = protection(target, request)?;
    let bytes = keyprov_pskc::write(&shaped.container, &protection)?;
    Ok((bytes, shaped))
}

/// Errors of [`write_for`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The batch or protection does not fit the target.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The PSKC writer failed.
    #[error("writing the PSKC file: {0}")]
    Pskc(#[from] keyprov_pskc::Error),
}
