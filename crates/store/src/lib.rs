//! `keyprov-store`: everything KeyProv Station keeps on disk.
//!
//! - [`vault`]: the station master key (owner-only file, optional operator passphrase) and
//!   sealing of secrets at rest with XChaCha20-Poly1305.
//! - [`Store`]: the SQLite database of batches, devices, keys (secrets sealed), provisioning
//!   events and exports. Every state change is written together with its event in one
//!   transaction; the events form a hash chain that [`Store::verify_audit`] checks.
//! - [`Store::import_keys`]: the keys of a vendor seed file, registered all or nothing in one
//!   transaction; importing the same file again changes nothing.
//!
//! Files: the database defaults to `$XDG_DATA_HOME/keyprov/station.db` (else
//! `~/.local/share/keyprov/station.db`) and its master key is `master.key` in the same
//! directory. Back up both: the database without the key holds no usable secret.
//!
//! Durability: SQLite in WAL mode with `synchronous = NORMAL`. Every write is one transaction
//! with its event, atomic, and survives the process being killed at any instant. A power loss
//! may roll back the newest commits unless [`Store::sync`] ran after them; reserving a key
//! syncs by itself, since that key exists nowhere else until its device holds it.
//!
//! Concurrency: a `Store` is one connection behind a mutex, shared by its clones across
//! threads; writes are short transactions, and the fsync of [`Store::sync`] runs outside the
//! lock so parallel engine threads overlap their syncs.
//!
//! The crate logs with `tracing` and never logs or formats a secret.

pub mod audit;
pub mod error;
mod group;
mod import;
mod keys;
pub mod model;
mod records;
mod schema;
mod store;
pub mod vault;

pub use audit::{AuditReport, BrokenLink};
pub use error::StoreError;
pub use group::{Record, Recorded};
pub use import::VENDOR_VERIFICATION;
pub use keys::ENGINE_EVENT_PREFIX;
pub use model::{
    BatchId, BatchMode, BatchState, DeviceId, DeviceOutcome, ExportId, HashAlgorithm, KeyId,
    KeyProfile, KeyState, OtpAlgorithm,
};
pub use records::{
    Batch, BatchDevice, Device, DeviceIdentity, Event, Export, ImportOutcome, ImportedKey, Key,
    NewBatch, NewEvent, NewExport, NewKey, Verification,
};
pub use store::{MASTER_KEY_FILE, Store};
pub use vault::MasterKey;
