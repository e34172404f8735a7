//! The station lock: at most one provisioning, re-issue or seed import run on a station
//! database at a time, across processes (two `keyprov provision`, the GUI beside the CLI, a
//! `keyprov import` beside either) and within one (two `Station`s opened on the same file).
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
//! A seed import (`keyprov import`) writes a batch of its own, and registering a token that a
//! running batch is writing would let the two disagree on its key; it takes the same lock
//! ([`StationLock`] is public for it), so an import beside a run fails at once as a second run
//! does, and a run beside an import.
//!
//! The lock file sits beside the database as it resolves on disk (symlinks followed), so a
//! run given a symlink to the database and a run given the database itself lock one file.
//!
//! Reading (batch list/show, audit, export of a finished batch) takes no lock: SQLite keeps
//! those reads consistent on their own. A listing only asks, without waiting, whether a run
//! holds the lock ([`holder_of`]), to show an open batch as `running` rather than
//! `interrupted`.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// Held for the life of a run; dropping it releases the lock.
#[derive(Debug)]
pub struct StationLock {
    _file: File,
}

/// How often, and how far apart, a run retries a lock held for a moment by a listing's probe.
const PROBE_RETRIES: u32 = 5;
const PROBE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The lock file of the database at `db`: `station.db` → `station.db.lock`, beside the file
/// the path resolves to (see [`resolved`]).
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = resolved(db).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// The database file `db` names once symlinks are followed: the canonical path of the file,
/// or, before it exists, its canonical directory joined with its name. A path whose
/// directory does not resolve either is kept as given (opening its lock file then fails).
fn resolved(db: &Path) -> PathBuf {
    if let Ok(path) = db.canonicalize() {
        return path;
    }
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return db.to_path_buf();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.canonicalize()
        .map(|dir| dir.join(name))
        .unwrap_or_else(|_| db.to_path_buf())
}

/// Whether a run (in this process or another) holds the lock of the database at `db`, asked
/// without waiting: `Some(pid)` when it does (the pid when the lock file names it), `None`
/// when no run does or the lock file cannot be read.
pub fn holder_of(db: &Path) -> Option<Option<u32>> {
    let mut file = File::open(lock_path(db)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(holder(&mut file)),
        Err(TryLockError::Error(e)) => {
            tracing::debug!(db = %db.display(), error = %e, "cannot probe the station lock");
            None
        }
    }
}

impl StationLock {
    /// Takes the lock of the database at `db`, or fails at once with
    /// [`EngineError::StationBusy`] when another run holds it. The database's directory is
    /// created (owner-only, as the store does) when missing, so that a run can take the lock
    /// before it opens the database.
    pub fn acquire(db: &Path) -> Result<StationLock> {
        create_directory(db)?;
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
        // A listing's probe holds a shared lock for an instant: a few short retries keep it
        // from refusing a run.
        let mut retries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if retries < PROBE_RETRIES => {
                    retries += 1;
                    std::thread::sleep(PROBE_RETRY_PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(EngineError::StationBusy {
                        db: db.to_path_buf(),
                        holder: holder(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(failed(e.to_string())),
            }
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

/// Creates the directory of the database at `db` when missing (owner-only, as the store
/// does), so that a run can take the lock before it opens the database.
fn create_directory(db: &Path) -> Result<()> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EngineError::LockFile {
            path: lock_path(db),
            reason: format!("cannot create {}: {e}", dir.display()),
        })
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
    fn symlinked_db_path_takes_the_same_lock_as_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("st.db");
        std::fs::write(&db, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink("st.db", &link).unwrap();
        let _first = StationLock::acquire(&db).unwrap();
        let err = StationLock::acquire(&link).unwrap_err();
        assert_eq!(err.code(), "station_busy", "{err}");
        assert_eq!(lock_path(&link), lock_path(&db));
        assert!(!dir.path().join("link.db.lock").exists());
    }

    #[test]
    fn a_database_not_created_yet_locks_beside_its_resolved_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("alias")).unwrap();
        let via_alias = lock_path(&dir.path().join("alias").join("new.db"));
        let real = dir
            .path()
            .canonicalize()
            .unwrap()
            .join("real")
            .join("new.db.lock");
        assert_eq!(via_alias, real);
    }

    #[test]
    fn holder_of_reports_a_held_lock_and_its_pid_and_nothing_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("station.db");
        assert_eq!(holder_of(&db), None, "no lock file yet");
        let lock = StationLock::acquire(&db).unwrap();
        assert_eq!(holder_of(&db), Some(Some(std::process::id())));
        drop(lock);
        assert_eq!(holder_of(&db), None);
        StationLock::acquire(&db).unwrap();
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
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, b"").unwrap();
        let db = file.join("station.db");
        let err = StationLock::acquire(&db).unwrap_err();
        assert_eq!(err.code(), "lock_file");
        assert!(err.to_string().contains("station.db.lock"), "{err}");
        assert!(err.to_string().contains("not-a-directory"), "{err}");
    }

    #[test]
    fn a_missing_database_directory_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new").join("station").join("station.db");
        let _lock = StationLock::acquire(&db).unwrap();
        assert!(lock_path(&db).is_file());
        let parent = db.parent().unwrap();
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
