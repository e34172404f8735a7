//! The station lock: at most one provisioning or re-issue run on a station database at a
//! time, across processes (two `keyprov provision`, the GUI beside the CLI) and within one
//! (two `Station`s opened on the same file).
//!
//! Two runs on one database would each revoke the other's keys as "replaced" and settle the
//! batch from a journal the other is still writing: the loser exported revoked keys and
//! counted them verified. So a run takes an exclusive OS advisory lock (`flock`) on a lock
//! file beside the database, `<db>.lock`, before it reads or writes anything, and holds it
//! until it returns. The kernel drops the lock when the holder's file is closed, which
//! includes the process dying by SIGKILL: a crash never leaves a stale lock, and the next run
//! resumes the batch as the journal describes. The file itself is never removed (removing a
//! lock file lets two runs lock two different files); it holds the holder's process id, for
//! the message the refused run prints.
//!
//! Reading (batch list/show, audit, export of a finished batch) takes no lock: SQLite keeps
//! those reads consistent on their own.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// Held for the life of a run; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct StationLock {
    _file: File,
}

/// The lock file of the database at `db`: `station.db` → `station.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StationLock {
    /// Takes the lock of the database at `db`, or fails at once when another run holds it.
    pub fn acquire(db: &Path) -> Result<StationLock> {
        let path = lock_path(db);
        let failed = |reason: String| EngineError::LockFile {
            path: path.clone(),
            reason,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| failed(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(EngineError::StationBusy {
                    db: db.to_path_buf(),
                    holder: holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(failed(e.to_string())),
        }
        // The holder's pid is a courtesy for the refused run's message; the lock is the flock.
        let noted = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(e) = noted {
            tracing::debug!(lock = %path.display(), error = %e, "cannot note the lock holder");
        }
        tracing::debug!(lock = %path.display(), "station lock taken");
        Ok(StationLock { _file: file })
    }
}

/// The process id the holder wrote into the lock file, if it is readable yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("station.db");
        let first = StationLock::acquire(&db).unwrap();
        let err = StationLock::acquire(&db).unwrap_err();
        match &err {
            EngineError::StationBusy { db: named, holder } => {
                assert_eq!(named, &db);
                assert_eq!(*holder, Some(std::process::id()));
            }
            other => panic!("expected StationBusy, got {other}"),
        }
        assert_eq!(err.code(), "station_busy");
        drop(first);
        StationLock::acquire(&db).unwrap();
        assert!(lock_path(&db).ends_with("station.db.lock"));
    }

    #[test]
    fn other_databases_have_their_own_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _a = StationLock::acquire(&dir.path().join("a.db")).unwrap();
        StationLock::acquire(&dir.path().join("b.db")).unwrap();
    }

    #[test]
    fn an_unwritable_lock_place_is_an_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing").join("station.db");
        let err = StationLock::acquire(&db).unwrap_err();
        assert_eq!(err.code(), "lock_file");
        assert!(err.to_string().contains("station.db.lock"), "{err}");
    }
}
