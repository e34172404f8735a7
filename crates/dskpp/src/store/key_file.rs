//! The master key file of a standalone server database: `keyprov serve --db server.db` seals
//! with `server.db.key`.
//!
//! The key is created on first use. A key file that is missing beside a database that already
//! holds sealed values was lost (deleted, or not copied with the database): a new key would
//! open none of them, and every run would fail later with an unreadable K_SERVER or AC. So
//! that is [`StoreError::MasterKeyLost`], naming both files, and nothing is created; the key
//! must be restored from a backup. A database with nothing sealed (new, or empty) gets a key.

use std::path::{Path, PathBuf};

use keyprov_store::MasterKey;
use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// The tables whose rows each hold a value sealed with the master key.
const SEALED_TABLES: [&str; 4] = ["dskpp_setting", "dskpp_ac", "dskpp_shared_key", "dskpp_key"];

/// The master key file of the database at `db`: `server.db` → `server.db.key`.
pub fn key_file_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Loads the master key of the database at `db`, creating it only when the database holds
/// nothing sealed.
pub(super) fn load_or_create(db: &Path, passphrase: Option<&str>) -> Result<MasterKey, StoreError> {
    let key_path = key_file_path(db);
    match MasterKey::load(&key_path, passphrase) {
        Err(keyprov_store::StoreError::MissingKeyFile { .. }) => {}
        other => return Ok(other?),
    }
    let sealed = sealed_values(db)?;
    if sealed > 0 {
        return Err(StoreError::MasterKeyLost {
            key_path,
            db_path: db.to_path_buf(),
            sealed,
        });
    }
    Ok(MasterKey::load_or_create(&key_path, passphrase)?)
}

/// How many sealed values the database at `db` holds; none when it does not exist yet or is
/// empty. Opened without creating anything.
fn sealed_values(db: &Path) -> Result<u64, StoreError> {
    match std::fs::metadata(db) {
        Ok(meta) if meta.len() > 0 => {}
        Ok(_) => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StoreError::Inspect {
                db_path: db.to_path_buf(),
                cause: e,
            });
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(db, flags)?;
    conn.busy_handler(Some(super::wait_for_writer))?;
    let mut total = 0u64;
    for table in SEALED_TABLES {
        let exists: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if exists {
            // `table` is one of the constants above, never input.
            let rows: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            total += u64::try_from(rows).unwrap_or(0);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::secret::Secret;
    use crate::store::fixtures::{ac, key};
    use crate::store::{Commit, SharedKey, SqliteStore, Store};

    fn paths() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let key = dir.path().join("server.db.key");
        (dir, db, key)
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path(Path::new("/srv/keyprov/server.db")),
            Path::new("/srv/keyprov/server.db.key")
        );
    }

    #[test]
    fn a_fresh_database_gets_a_new_key_and_reopens_with_it() {
        let (_dir, db, key) = paths();
        let s = SqliteStore::open_with_key_file(&db, None).unwrap();
        assert!(key.exists());
        s.put_setting_once("k", &Secret::from_slice(b"value"))
            .unwrap();
        drop(s);
        let s = SqliteStore::open_with_key_file(&db, None).unwrap();
        assert_eq!(s.setting("k").unwrap().unwrap().expose(), b"value");
    }

    #[test]
    fn a_database_with_nothing_sealed_gets_a_new_key_when_its_key_is_gone() {
        let (_dir, db, key) = paths();
        drop(SqliteStore::open_with_key_file(&db, None).unwrap());
        std::fs::remove_file(&key).unwrap();
        drop(SqliteStore::open_with_key_file(&db, None).unwrap());
        assert!(key.exists());
    }

    #[test]
    fn a_missing_key_beside_sealed_values_is_an_error_naming_both_files() {
        let (_dir, db, key) = paths();
        let s = SqliteStore::open_with_key_file(&db, None).unwrap();
        s.put_setting_once("a", &Secret::from_slice(b"1")).unwrap();
        s.put_setting_once("b", &Secret::from_slice(b"2")).unwrap();
        drop(s);
        let backup = key.with_extension("key.backup");
        std::fs::rename(&key, &backup).unwrap();

        let err = SqliteStore::open_with_key_file(&db, None).unwrap_err();
        match &err {
            StoreError::MasterKeyLost {
                key_path,
                db_path,
                sealed,
            } => {
                assert_eq!(key_path, &key);
                assert_eq!(db_path, &db);
                assert_eq!(*sealed, 2);
            }
            other => panic!("expected MasterKeyLost, got {other}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "master key {} is missing, but the DSKPP server database {} holds 2 secrets \
                 sealed with it; restore {} from your backup — a new key could not open them",
                key.display(),
                db.display(),
                key.display()
            )
        );
        assert!(!key.exists(), "no new key was created");

        // Restored, the sealed values open again.
        std::fs::rename(&backup, &key).unwrap();
        let s = SqliteStore::open_with_key_file(&db, None).unwrap();
        assert_eq!(s.setting("b").unwrap().unwrap().expose(), b"2");
    }

    #[test]
    fn sealed_values_in_the_wal_count_too() {
        let (_dir, db, key) = paths();
        let s = SqliteStore::open_with_key_file(&db, None).unwrap();
        s.put_setting_once("a", &Secret::from_slice(b"1")).unwrap();
        std::fs::remove_file(&key).unwrap();
        // The writer is still open, so the row may live only in the WAL.
        let err = SqliteStore::open_with_key_file(&db, None).unwrap_err();
        assert!(
            matches!(err, StoreError::MasterKeyLost { sealed: 1, .. }),
            "{err}"
        );
        drop(s);
    }

    #[test]
    fn every_sealed_table_is_counted() {
        let (_dir, db, _key) = paths();
        let s = SqliteStore::open(&db, Arc::new(MasterKey::generate())).unwrap();
        assert_eq!(sealed_values(&db).unwrap(), 0);
        s.put_setting_once("k", &Secret::from_slice(b"1")).unwrap();
        s.put_authentication_code(&ac("C1")).unwrap();
        let shared = SharedKey {
            name: "K1".into(),
            secret: Secret::from_slice(&[3; 16]),
        };
        s.put_shared_key("C1", &shared).unwrap();
        let key = key("k1");
        s.commit(&Commit {
            session_id: None,
            ac_client_id: None,
            nonce_digest: [7; 32],
            key: &key,
            replaces: None,
        })
        .unwrap();
        // One row in each sealed table; the nonce record holds nothing sealed.
        assert_eq!(sealed_values(&db).unwrap(), 4);
    }
}
