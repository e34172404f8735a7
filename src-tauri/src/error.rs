//! The error every command returns. The frontend receives it as `{code, message}`: `code` is
//! stable and drives the UI (e.g. `passphrase_required` and `master_key_lost` offer Settings),
//! `message` is for the operator and never carries a secret.

use keyprov_engine::EngineError;
use keyprov_store::StoreError;
use serde::ser::SerializeStruct;
use std::path::PathBuf;

/// Why a command failed, grouped by who has to act.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The settings file could not be read or written.
    #[error("settings file {}: {source}", path.display())]
    SettingsIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The settings file is not valid JSON of the expected shape.
    #[error("settings file {} is malformed: {source}", path.display())]
    SettingsFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The default exports folder could not be created.
    #[error("cannot create the exports folder {}: {source}", path.display())]
    ExportsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The request from the frontend is not acceptable (a caller bug or a bad form value).
    #[error("{0}")]
    InvalidRequest(String),
    /// A batch is already running; the station runs one at a time.
    #[error("a batch is already running; wait for it or cancel it first")]
    Busy,
    /// The station refused or failed the operation; the engine's code is kept.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A worker thread died before answering.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    /// The stable code the frontend switches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SettingsIo { .. } | Self::SettingsFormat { .. } => "settings",
            Self::ExportsDir { .. } => "export_write",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Busy => "busy",
            Self::Internal(_) => "internal",
            // The operator fixes these in Settings, so the UI tells them apart from the
            // other store errors.
            Self::Engine(EngineError::Store(StoreError::PassphraseRequired { .. })) => {
                "passphrase_required"
            }
            Self::Engine(EngineError::Store(
                StoreError::WrongPassphrase { .. } | StoreError::PassphraseNotExpected { .. },
            )) => "wrong_passphrase",
            Self::Engine(e) => e.code(),
        }
    }
}

impl serde::Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_struct("CommandError", 2)?;
        map.serialize_field("code", self.code())?;
        map.serialize_field("message", &self.to_string())?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_code_and_message() {
        let json = serde_json::to_value(CommandError::Busy).unwrap();
        assert_eq!(json["code"], "busy");
        assert_eq!(
            json["message"],
            "a batch is already running; wait for it or cancel it first"
        );
    }

    #[test]
    fn engine_errors_keep_their_code_and_passphrase_errors_get_their_own() {
        let err = CommandError::from(EngineError::UnknownBatch("line-9".into()));
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["code"], "unknown_batch");
        assert_eq!(
            json["message"],
            "no batch \"line-9\" in the station database"
        );

        let path = PathBuf::from("/data/keyprov/master.key");
        let err = CommandError::from(EngineError::Store(StoreError::PassphraseRequired { path }));
        assert_eq!(err.code(), "passphrase_required");
        let path = PathBuf::from("/data/keyprov/master.key");
        let err = CommandError::from(EngineError::Store(StoreError::WrongPassphrase { path }));
        assert_eq!(err.code(), "wrong_passphrase");
        assert_eq!(
            err.to_string(),
            "wrong passphrase for master key /data/keyprov/master.key"
        );
    }

    #[test]
    fn a_lost_master_key_keeps_the_engines_code_and_names_both_files() {
        let err = CommandError::from(EngineError::Store(StoreError::MasterKeyLost {
            key_path: PathBuf::from("/tmp/master.key"),
            db_path: PathBuf::from("/tmp/station.db"),
            sealed: 4,
        }));
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["code"], "master_key_lost");
        // ui/src/screens/devices.test.tsx shows this very message.
        assert_eq!(
            json["message"],
            "master key /tmp/master.key is missing, but the station database /tmp/station.db \
             holds 4 secrets sealed with it; restore master.key from your backup (see README, \
             Security) — a new key could not open them"
        );
    }
}
