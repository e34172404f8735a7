//! `keyprov-store`: everything KeyProv Station keeps on disk.
//!
//! - [`vault`]: the station master key (owner-only file, optional operator passphrase) and
//!   sealing of secrets at rest with XChaCha20-Poly1305.
//! - the SQLite store of batches, devices, keys, provisioning events and exports, whose events
//!   form a hash chain checked by the audit.
//!
//! The crate logs with `tracing` and never logs or formats a secret.

pub mod error;
pub mod model;
pub mod vault;

pub use error::StoreError;
pub use model::{
    BatchId, BatchMode, BatchState, DeviceId, ExportId, HashAlgorithm, KeyId, KeyProfile, KeyState,
    OtpAlgorithm, Secret,
};
pub use vault::MasterKey;
