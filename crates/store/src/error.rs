//! What can go wrong in the store, grouped by who has to act: the operator (passphrase, files
//! on disk), the caller (a request the store's rules refuse), or nobody in particular (data at
//! rest that fails its integrity checks, SQLite or the OS failing).
//!
//! No message ever contains a secret: sealed values, keys and passphrases are only named.

use std::path::PathBuf;

use crate::model::{BatchId, DeviceId, KeyId, KeyState};

/// Every error of `keyprov-store`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    // ---- The operator must act: passphrases and files of the data directory. ----
    /// The master key file is passphrase-protected and no passphrase was given.
    #[error("master key {path} is protected by a passphrase; none was given")]
    PassphraseRequired {
        /// The master key file.
        path: PathBuf,
    },
    /// A passphrase was given for a master key file that is stored without one.
    #[error("master key {path} is not protected by a passphrase, but one was given")]
    PassphraseNotExpected {
        /// The master key file.
        path: PathBuf,
    },
    /// The passphrase does not match the check value of the master key file.
    #[error("wrong passphrase for master key {path}")]
    WrongPassphrase {
        /// The master key file.
        path: PathBuf,
    },
    /// An empty passphrase was given; it would protect nothing.
    #[error("the master key passphrase must not be empty")]
    EmptyPassphrase,
    /// The master key file is readable or writable by others than its owner.
    #[error("master key {path} has permissions {mode:o}; it must be owner-only (chmod 600)")]
    KeyFilePermissions {
        /// The master key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No master key file exists where one was required.
    #[error("no master key at {path}")]
    MissingKeyFile {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The master key file is missing, but the database holds values sealed with it: a new
    /// key would open none of them. Nothing was created; the file must be restored.
    #[error(
        "master key {} is missing, but the station database {} holds {sealed} secrets sealed with it; restore master.key from your backup (see README, Security) — a new key could not open them",
        key_path.display(),
        db_path.display()
    )]
    MasterKeyLost {
        /// Where the master key file should be.
        key_path: PathBuf,
        /// The database that needs it.
        db_path: PathBuf,
        /// How many sealed values the database holds.
        sealed: u64,
    },
    /// No station database exists where one was required.
    #[error("no station database at {path}")]
    MissingDatabase {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Neither `$XDG_DATA_HOME` nor `$HOME` is set, so there is no default data directory.
    #[error("no data directory: neither XDG_DATA_HOME nor HOME is set; pass --db")]
    NoDataDirectory,

    // ---- Data at rest failed its checks: corruption, tampering or the wrong key. ----
    /// The master key file is not in the expected format.
    #[error("master key {path} is malformed: {reason}")]
    MalformedKeyFile {
        /// The master key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The passphrase matched but the wrapped key inside the file failed authentication.
    #[error("master key {path}: the wrapped key failed authentication (file damaged)")]
    DamagedKeyFile {
        /// The master key file.
        path: PathBuf,
    },
    /// A sealed value failed authentication: wrong master key, wrong binding, or tampering.
    #[error("sealed value rejected: wrong master key, wrong binding or tampered data")]
    SealedValueRejected,
    /// A sealed value starts with a format version this program does not know.
    #[error("sealed value has unknown format version {0}")]
    UnknownSealVersion(u8),
    /// A sealed value is shorter than its version, nonce and tag.
    #[error("sealed value is truncated ({0} bytes)")]
    SealedValueTruncated(usize),
    /// The secret of a key failed authentication under the loaded master key.
    #[error("secret of key {key} cannot be opened: wrong master key or tampered row")]
    KeySecretRejected {
        /// The key whose secret was rejected.
        key: KeyId,
    },
    /// The database was sealed with a different master key than the one loaded (another
    /// station's master.key beside it).
    #[error("{}", mismatch_message(key_file.as_deref(), db.as_deref(), found, expected))]
    MasterKeyMismatch {
        /// Fingerprint recorded in the database.
        expected: String,
        /// Fingerprint of the loaded key.
        found: String,
        /// The key file it was loaded from (`None`: a key the caller passed).
        key_file: Option<PathBuf>,
        /// The database (`None` until the store names it).
        db: Option<PathBuf>,
    },
    /// The database schema is newer than this program understands.
    #[error("database schema version {found} is newer than this program's {supported}")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this program knows.
        supported: i64,
    },
    /// A row holds a value the store never writes.
    #[error("corrupt row in {table} (id {id}): {reason}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: i64,
        /// What is wrong with it.
        reason: String,
    },

    // ---- The caller asked for something the store's rules refuse. ----
    /// Operations on key secrets need the master key, which this store was opened without.
    #[error("the store was opened without its master key")]
    MasterKeyNotLoaded,
    /// No batch with this id.
    #[error("no batch {0}")]
    UnknownBatch(BatchId),
    /// No batch with this name.
    #[error("no batch named {0:?}")]
    UnknownBatchName(String),
    /// No device with this id.
    #[error("no device {0}")]
    UnknownDevice(DeviceId),
    /// No key with this id.
    #[error("no key {0}")]
    UnknownKey(KeyId),
    /// A batch of this name already exists.
    #[error("a batch named {0:?} already exists")]
    DuplicateBatch(String),
    /// The batch is finished and takes no more keys or state changes.
    #[error("batch {0} is closed")]
    BatchClosed(BatchId),
    /// The key's life cycle does not allow this step.
    #[error("key {key} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The key.
        key: KeyId,
        /// Its current state.
        from: KeyState,
        /// The refused state.
        to: KeyState,
    },
    /// A key of a seed file collides with a different key the station holds under the same
    /// serial and label; the whole import was rolled back.
    #[error("import conflict for key {key_label:?} of serial {serial:?}: {reason}")]
    ImportConflict {
        /// The token's serial.
        serial: String,
        /// The key's label in the file (`Key@Id`).
        key_label: String,
        /// What differs (never the secret itself).
        reason: String,
    },
    /// Engine events may not use the kinds the store writes itself.
    #[error("event kind {0:?} is reserved for the store's own events")]
    ReservedEventKind(String),
    /// A field given by the caller is outside what the store accepts.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },

    // ---- The environment failed. ----
    //
    // These two carry their cause in the message and do not also return it as `source()`:
    // a shell printing the error chain would print it twice ("x: y: y").
    /// A file operation failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// An SQLite call failed.
    #[error("{}", sqlite_message(path.as_deref(), context, cause))]
    Sqlite {
        /// The database file, once the store knows which call failed on which file.
        path: Option<PathBuf>,
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error (boxed: it is large, and every store result carries this enum).
        cause: Box<rusqlite::Error>,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, cause: std::io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            cause,
        }
    }

    /// Whether the same call may succeed later: another connection held the database for
    /// longer than the busy timeout. Everything else fails the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sqlite { cause, .. } => matches!(
                cause.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    /// Names the database file in an SQLite error that does not name one yet.
    pub(crate) fn at(self, db: &std::path::Path) -> Self {
        match self {
            StoreError::Sqlite {
                path: None,
                context,
                cause,
            } => StoreError::Sqlite {
                path: Some(db.to_path_buf()),
                context,
                cause,
            },
            StoreError::MasterKeyMismatch {
                expected,
                found,
                key_file,
                db: None,
            } => StoreError::MasterKeyMismatch {
                expected,
                found,
                key_file,
                db: Some(db.to_path_buf()),
            },
            other => other,
        }
    }

    /// Names the key file a [`StoreError::MasterKeyMismatch`] key was loaded from.
    pub(crate) fn loaded_from(self, path: &std::path::Path) -> Self {
        match self {
            StoreError::MasterKeyMismatch {
                expected,
                found,
                db,
                ..
            } => StoreError::MasterKeyMismatch {
                expected,
                found,
                key_file: Some(path.to_path_buf()),
                db,
            },
            other => other,
        }
    }
}

/// `master key <file> (fingerprint f) does not belong to station database <db> (created with
/// master key e); …`: both files named once, and what to do.
fn mismatch_message(
    key_file: Option<&std::path::Path>,
    db: Option<&std::path::Path>,
    found: &str,
    expected: &str,
) -> String {
    let key = match key_file {
        Some(path) => format!("master key {}", path.display()),
        None => "the master key given".to_owned(),
    };
    let db = match db {
        Some(path) => format!("station database {}", path.display()),
        None => "this station database".to_owned(),
    };
    format!(
        "{key} (fingerprint {found}) does not belong to {db} (created with master key \
         {expected}); put that database's own master.key beside it"
    )
}

/// `database <file>: <what the store did>: <SQLite's message>`. A file that is not an SQLite
/// database fails whatever the store did first, so that step is left out for it.
fn sqlite_message(
    path: Option<&std::path::Path>,
    context: &str,
    cause: &rusqlite::Error,
) -> String {
    let file = path
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    if cause.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        format!("database{file}: {cause} (damaged, or not a station database)")
    } else {
        format!("database{file}: {context}: {cause}")
    }
}

/// Attaches what the store was doing to an SQLite error.
pub(crate) trait SqlContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|cause| StoreError::Sqlite {
            path: None,
            context,
            cause: Box::new(cause),
        })
    }
}
