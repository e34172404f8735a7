//! The provisioning engine of KeyProv Station and the service API every shell calls.
//!
//! `api` holds the request/response/event types; [`Station`] implements the operations. The
//! design (pipeline, journal, crash resume, modes) is in `docs/engine.md`.

pub mod api;
mod audit_log;
pub mod cancel;
mod client;
mod device;
mod dskpp;
pub mod error;
mod export;
mod export_file;
mod hash;
pub mod journal;
mod lock;
mod pool;
mod progress;
mod provision;
pub mod retry;
mod source;
mod station;
mod tokens;

pub use cancel::Cancel;
pub use error::{EngineError, Result};
pub use lock::{StationLock, lock_path};
pub use progress::OnProgress;
pub use provision::MAX_PARALLEL;
pub use station::Station;
pub use tokens::{DeviceWatch, NITROKEY_DEFAULT_ADMIN_PIN};
