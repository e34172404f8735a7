//! Regression tests of the master key beside the database: a missing `master.key` next to a
//! database that holds sealed keys used to be replaced silently by a new key (making every
//! sealed key unreadable). Now that is an error naming both files; only a database that holds
//! nothing sealed gets a new key.

mod common;

use common::{batch, device, fresh_store, reserve, secret};
use keyprov_store::{Store, StoreError};

#[test]
fn a_missing_master_key_beside_sealed_keys_is_an_error_naming_both_files() {
    let (_dir, path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "10000001");
    let key = reserve(&store, &b, &d, &secret(1));
    drop(store);
    let key_path = Store::master_key_path(&path);
    let backup = key_path.with_extension("backup");
    std::fs::rename(&key_path, &backup).unwrap();

    let err = Store::open(&path, None).unwrap_err();
    match &err {
        StoreError::MasterKeyLost {
            key_path: k,
            db_path: db,
            sealed,
        } => {
            assert_eq!(k, &key_path);
            assert_eq!(db, &path);
            assert_eq!(*sealed, 1);
        }
        other => panic!("expected MasterKeyLost, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&key_path.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("restore master.key from your backup"),
        "{message}"
    );
    assert!(!key_path.exists(), "no new master key was written");
    // A passphrase changes nothing: there is still no key to open.
    assert!(matches!(
        Store::open(&path, Some("operator")),
        Err(StoreError::MasterKeyLost { .. })
    ));

    // The backup restored, the sealed secret opens again.
    std::fs::rename(&backup, &key_path).unwrap();
    let store = Store::open(&path, None).unwrap();
    assert_eq!(store.key_secret(key.id).unwrap().as_slice(), secret(1));
}

#[test]
fn a_fresh_database_gets_its_master_key_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("station.db");
    let key_path = Store::master_key_path(&path);
    assert!(!key_path.exists());
    Store::open(&path, None).unwrap();
    assert!(key_path.exists());
    // An empty file (as a crash right after creating it leaves) is fresh too.
    let other = dir.path().join("other").join("station.db");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, b"").unwrap();
    Store::open(&other, None).unwrap();
    assert!(Store::master_key_path(&other).exists());
}

#[test]
fn a_database_with_nothing_sealed_gets_a_new_master_key() {
    let (_dir, path, store) = fresh_store();
    batch(&store, "empty");
    drop(store);
    let key_path = Store::master_key_path(&path);
    std::fs::remove_file(&key_path).unwrap();
    // The database was tied to the lost key, but nothing in it needs that key.
    let store = Store::open(&path, None).unwrap();
    assert!(key_path.exists());
    let b = store.find_batch("empty").unwrap().unwrap();
    let d = device(&store, "yubikey", "10000002");
    let key = reserve(&store, &b, &d, &secret(2));
    drop(store);
    let store = Store::open(&path, None).unwrap();
    assert_eq!(store.key_secret(key.id).unwrap().as_slice(), secret(2));
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn a_file_that_is_no_database_gets_no_master_key_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("station.db");
    std::fs::write(&path, [0x5a_u8; 4096]).unwrap();
    let err = Store::open(&path, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "database {}: file is not a database (damaged, or not a station database)",
            path.display()
        )
    );
    assert!(!Store::master_key_path(&path).exists());
}
