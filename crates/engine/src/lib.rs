//! The provisioning engine of KeyProv Station and the service API every shell calls.
//!
//! `api` holds the request/response/event types; [`Station`] implements the operations. The
//! design (pipeline, journal, crash resume, modes) is in `docs/engine.md`.

pub mod api;
pub mod cancel;
pub mod error;
#[allow(dead_code)] // Used by `Station`, which lands in the next commit.
mod export_file;
pub mod journal;
#[allow(dead_code)] // Used by `Station`, which lands in the next commit.
mod pool;
pub mod retry;

pub use cancel::Cancel;
pub use error::{EngineError, Result};
