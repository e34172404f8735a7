//! The audit chain catches rows changed behind the store's back (with plain rusqlite).

mod common;

use std::path::Path;

use common::{batch, device, fresh_store, reserve, secret};
use keyprov_store::{KeyState, Store, StoreError};
use rusqlite::Connection;

/// A store with a few events: batch, two devices, two keys, one written.
fn populated() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let (dir, path, store) = fresh_store();
    let b = batch(&store, "audited");
    let d1 = device(&store, "yubikey", "1");
    let d2 = device(&store, "nitrokey", "2");
    let k1 = reserve(&store, &b, &d1, &secret(1));
    reserve(&store, &b, &d2, &secret(2));
    store.mark_key_written(k1.id).unwrap();
    (dir, path, store)
}

fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1, "{sql} changed no row");
}

#[test]
fn an_untouched_chain_holds() {
    let (_dir, _path, store) = populated();
    let report = store.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.first_broken);
    assert_eq!(report.events, 6);
    let last = store.events(None).unwrap().pop().unwrap();
    assert_eq!(report.head.as_deref(), Some(last.hash.as_str()));
}

#[test]
fn an_empty_log_holds() {
    let (_dir, _path, store) = fresh_store();
    let report = store.verify_audit().unwrap();
    assert!(report.is_intact());
    assert_eq!((report.events, report.head), (0, None));
}

#[test]
fn edited_event_content_breaks_the_chain_at_that_event() {
    let (_dir, path, store) = populated();
    tamper(
        &path,
        "UPDATE events SET detail = '{\"serial\":\"9\"}' WHERE seq = 3",
    );
    let report = store.verify_audit().unwrap();
    let link = report.first_broken.unwrap();
    assert_eq!(link.seq, 3);
    assert_eq!(link.reason, "its content does not match its hash");
    assert_eq!(report.events, 2);
}

#[test]
fn an_edited_time_or_kind_is_caught_too() {
    let (_dir, path, store) = populated();
    tamper(
        &path,
        "UPDATE events SET kind = 'key.verified' WHERE seq = 6",
    );
    assert_eq!(store.verify_audit().unwrap().first_broken.unwrap().seq, 6);
}

#[test]
fn a_rehashed_event_breaks_the_next_link() {
    let (_dir, path, store) = populated();
    // Replacing an event's hash (as if recomputed after an edit) breaks the following link.
    tamper(&path, "UPDATE events SET hash = zeroblob(32) WHERE seq = 2");
    let link = store.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(link.seq, 2);
    tamper(
        &path,
        "UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 4",
    );
    let link = store.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(link.seq, 2, "the first broken link is still reported first");
}

#[test]
fn a_deleted_event_is_named() {
    let (_dir, path, store) = populated();
    tamper(&path, "DELETE FROM events WHERE seq = 4");
    let link = store.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(link.seq, 4);
    assert_eq!(link.reason, "event #4 is missing (the next one is #5)");
}

#[test]
fn dropping_the_newest_events_is_caught_by_the_recorded_head() {
    let (_dir, path, store) = populated();
    tamper(&path, "DELETE FROM events WHERE seq = 6");
    let link = store.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(link.seq, 6);
    assert!(
        link.reason.contains("recorded head is #6"),
        "{}",
        link.reason
    );
}

#[test]
fn a_key_state_changed_without_its_event_is_caught() {
    let (_dir, path, store) = populated();
    // Key 2 is reserved; pretend it was verified without the store logging it.
    tamper(&path, "UPDATE keys SET state = 'verified' WHERE id = 2");
    let link = store.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(link.seq, 5, "the key's last event is #5 (key.reserved)");
    assert_eq!(
        link.reason,
        "key #2 is verified in the keys table but its last event says reserved"
    );
}

#[test]
fn a_sealed_secret_moved_to_another_key_does_not_open() {
    let (_dir, path, store) = populated();
    tamper(
        &path,
        "UPDATE keys SET secret = (SELECT secret FROM keys WHERE id = 1) WHERE id = 2",
    );
    let err = store.key_secret(keyprov_store::KeyId(2)).unwrap_err();
    assert!(
        matches!(err, StoreError::KeySecretRejected { key } if key.0 == 2),
        "{err}"
    );
    assert_eq!(
        store
            .key_secret(keyprov_store::KeyId(1))
            .unwrap()
            .as_slice(),
        &secret(1)[..]
    );
    assert_eq!(
        store.key(keyprov_store::KeyId(1)).unwrap().state,
        KeyState::Written
    );
}

#[test]
fn a_secret_copied_into_another_station_database_does_not_open() {
    let (_dir, path, store) = populated();
    let (_dir2, path2, other) = fresh_store();
    // Same master key file, so only the database binding differs.
    std::fs::copy(
        Store::master_key_path(&path),
        Store::master_key_path(&path2),
    )
    .unwrap();
    drop(other);
    let _ = std::fs::remove_file(&path2);
    let _ = std::fs::remove_file(path2.with_extension("db-wal"));
    let _ = std::fs::remove_file(path2.with_extension("db-shm"));
    let other = Store::open(&path2, None).unwrap();
    let b = batch(&other, "other");
    let d = device(&other, "yubikey", "1");
    let key = reserve(&other, &b, &d, &secret(9));
    drop(other);
    drop(store);

    let sealed: Vec<u8> = Connection::open(&path)
        .unwrap()
        .query_row("SELECT secret FROM keys WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let conn = Connection::open(&path2).unwrap();
    conn.execute(
        "UPDATE keys SET secret = ?1 WHERE id = ?2",
        rusqlite::params![sealed, key.id.0],
    )
    .unwrap();
    drop(conn);
    let other = Store::open(&path2, None).unwrap();
    assert!(matches!(
        other.key_secret(key.id),
        Err(StoreError::KeySecretRejected { .. })
    ));
}
