//! What can go wrong in a station operation, grouped by who has to act, each with a stable
//! [`EngineError::code`] the GUI shows next to the message.
//!
//! Errors of a single token during a batch are not `EngineError`s: they end that token's run
//! (its `ProgressEvent` says `failed` with the message) and the batch carries on. An
//! `EngineError` ends the whole operation. No message carries a secret.

use std::path::PathBuf;

/// Every error of a station operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    // ---- The operator's request cannot be carried out as given. ----
    /// A request field is invalid (names the field and why).
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The field, as the CLI spells its flag.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No batch has this id or name.
    #[error("no batch {0:?} in the station database")]
    UnknownBatch(String),
    /// An existing batch of this name was created with other settings.
    #[error(
        "batch {name:?} exists with {existing}; resume it with the same settings or pick a new name"
    )]
    BatchMismatch {
        /// The batch name.
        name: String,
        /// The recorded settings that differ.
        existing: String,
    },
    /// No token to provision.
    #[error("no token attached{hint}")]
    NoDevices {
        /// What to check.
        hint: String,
    },
    /// The token to re-issue is not attached or not known to the station.
    #[error("token {serial}: {reason}")]
    UnknownToken {
        /// Its serial.
        serial: String,
        /// What is missing.
        reason: String,
    },
    /// Central mode ran out of one-time authentication codes.
    #[error(
        "central mode needs one unused authentication code per token run; {available} left for {needed} runs (issue more with `keyprov ac issue` and pass them with --ac-file)"
    )]
    NotEnoughAuthCodes {
        /// Unused codes.
        available: usize,
        /// Runs that need one.
        needed: usize,
    },
    /// Another provisioning, re-issue or seed import run holds the station database (see
    /// `lock`).
    #[error(
        "station database {} is in use: another provisioning, re-issue or import run{} holds its lock; wait for it to finish, then run again",
        db.display(),
        holder.map(|pid| format!(" (process {pid})")).unwrap_or_default()
    )]
    StationBusy {
        /// The station database.
        db: PathBuf,
        /// The process id of the run holding the lock, when it could be read.
        holder: Option<u32>,
    },
    /// The batch has no active key to export.
    #[error("batch {0:?} has no verified key to export")]
    NothingToExport(String),

    // ---- A peer failed: the DSKPP server. ----
    /// The DSKPP server could not be reached.
    #[error("DSKPP server {url} unreachable: {reason}")]
    ServerUnreachable {
        /// The server URL.
        url: String,
        /// The transport error.
        reason: String,
    },

    // ---- The station's own state or environment. ----
    /// The station store failed.
    #[error(transparent)]
    Store(#[from] keyprov_store::StoreError),
    /// The local DSKPP server core failed to open or to issue an authentication code.
    #[error("local DSKPP server: {0}")]
    Dskpp(String),
    /// Token discovery failed.
    #[error("token discovery: {0}")]
    Discovery(String),
    /// The station lock file could not be opened or locked.
    #[error("station lock {}: {reason}", path.display())]
    LockFile {
        /// The lock file beside the database.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The export file could not be built.
    #[error("export {}: {reason}", path.display())]
    ExportBuild {
        /// The export file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The export target cannot take this batch or this protection (every reason, no secret);
    /// nothing was written.
    #[error("export {}: {reason}", path.display())]
    ExportRefused {
        /// The export file (not written).
        path: PathBuf,
        /// The profile's reasons, e.g. "privacyIDEA would not import this correctly: ...".
        reason: String,
    },
    /// The export file could not be written (full disk, permissions...). The OS error is in
    /// the message and not also returned as `source()`, so a printed chain names it once.
    #[error("cannot write export {}: {cause}", path.display())]
    ExportWrite {
        /// The export file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
}

impl EngineError {
    /// A stable identifier of the error kind, for the GUI and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidRequest { .. } => "invalid_request",
            EngineError::UnknownBatch(_) => "unknown_batch",
            EngineError::BatchMismatch { .. } => "batch_mismatch",
            EngineError::NoDevices { .. } => "no_devices",
            EngineError::UnknownToken { .. } => "unknown_token",
            EngineError::NotEnoughAuthCodes { .. } => "not_enough_auth_codes",
            EngineError::StationBusy { .. } => "station_busy",
            EngineError::NothingToExport(_) => "nothing_to_export",
            EngineError::ServerUnreachable { .. } => "server_unreachable",
            // The operator must restore a file: the GUI tells it apart from other store errors.
            EngineError::Store(keyprov_store::StoreError::MasterKeyLost { .. }) => {
                "master_key_lost"
            }
            EngineError::Store(_) => "store",
            EngineError::Dskpp(_) => "dskpp",
            EngineError::Discovery(_) => "discovery",
            EngineError::LockFile { .. } => "lock_file",
            EngineError::ExportBuild { .. } => "export_build",
            EngineError::ExportRefused { .. } => "export_refused",
            EngineError::ExportWrite { .. } => "export_write",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        EngineError::InvalidRequest {
            field,
            reason: reason.into(),
        }
    }
}

/// Result of a station operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_lost_master_key_has_its_own_code_and_keeps_the_store_message() {
        let lost = keyprov_store::StoreError::MasterKeyLost {
            key_path: Path::new("/data/keyprov/master.key").into(),
            db_path: Path::new("/data/keyprov/station.db").into(),
            sealed: 12,
        };
        let message = lost.to_string();
        let err = EngineError::from(lost);
        assert_eq!(err.code(), "master_key_lost");
        assert_eq!(err.to_string(), message);
        assert!(message.starts_with("master key /data/keyprov/master.key is missing"));

        let other = keyprov_store::StoreError::MissingDatabase {
            path: Path::new("/data/keyprov/station.db").into(),
        };
        assert_eq!(EngineError::from(other).code(), "store");
    }
}
