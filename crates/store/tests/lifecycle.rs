//! Batches, devices and the key life cycle through the typed API.

mod common;

use common::{batch, device, fresh_store, hotp6, reserve, secret};
use keyprov_store::{
    BatchState, DeviceOutcome, KeyState, NewExport, NewKey, Store, StoreError, Verification,
};

fn verification(next_counter: u64) -> Verification {
    Verification {
        method: "device-otp".to_owned(),
        proof: "counter 0 gave 755224".to_owned(),
        next_counter: Some(next_counter),
    }
}

#[test]
fn batches_are_found_by_id_and_name_and_names_are_unique() {
    let (_dir, _path, store) = fresh_store();
    let created = batch(&store, "factory-1");
    assert_eq!(created.state, BatchState::Open);
    assert_eq!(created.operator.as_deref(), Some("alice"));
    assert_eq!(created.params["count"], 12);
    assert_eq!(store.batch(created.id).unwrap(), created);
    assert_eq!(
        store.find_batch("factory-1").unwrap().unwrap().id,
        created.id
    );
    assert_eq!(store.resolve_batch("factory-1").unwrap().id, created.id);
    assert_eq!(
        store.resolve_batch(&created.id.0.to_string()).unwrap().id,
        created.id
    );
    assert!(store.find_batch("nope").unwrap().is_none());
    assert!(matches!(
        store.resolve_batch("nope"),
        Err(StoreError::UnknownBatchName(_))
    ));

    let again = store.create_batch(&keyprov_store::NewBatch {
        name: "factory-1".to_owned(),
        profile: hotp6(),
        mode: keyprov_store::BatchMode::Local,
        server_url: None,
        operator: None,
        params: serde_json::json!({}),
    });
    assert!(matches!(again, Err(StoreError::DuplicateBatch(name)) if name == "factory-1"));

    store
        .set_batch_state(created.id, BatchState::Completed)
        .unwrap();
    let finished = store.batch(created.id).unwrap();
    assert_eq!(finished.state, BatchState::Completed);
    assert!(finished.finished_at.is_some());
    assert_eq!(store.list_batches().unwrap().len(), 1);
}

#[test]
fn devices_are_unique_per_family_and_serial() {
    let (_dir, _path, store) = fresh_store();
    let first = device(&store, "yubikey", "1000001");
    let same = device(&store, "yubikey", "1000001");
    let other_family = device(&store, "nitrokey", "1000001");
    assert_eq!(first.id, same.id);
    assert_ne!(first.id, other_family.id);
    assert_eq!(store.find_devices_by_serial("1000001").unwrap().len(), 2);
    assert_eq!(store.list_devices().unwrap().len(), 2);

    let updated = store
        .upsert_device(&keyprov_store::DeviceIdentity {
            family: "yubikey".to_owned(),
            model: "YubiKey 5 NFC".to_owned(),
            serial: "1000001".to_owned(),
            firmware: "5.7.1".to_owned(),
        })
        .unwrap();
    assert_eq!(updated.id, first.id);
    assert_eq!(updated.firmware, "5.7.1");
    let kinds: Vec<String> = store
        .events(None)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["device.registered", "device.registered", "device.updated"]
    );
}

#[test]
fn a_key_goes_from_reserved_to_exported_and_its_secret_opens() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "42");
    store.add_batch_device(b.id, d.id).unwrap();
    let key = reserve(&store, &b, &d, &secret(1));
    assert_eq!(key.state, KeyState::Reserved);
    assert_eq!(key.counter, Some(0));
    assert_eq!(
        store.key_secret(key.id).unwrap().as_slice(),
        secret(1).as_slice()
    );
    assert_eq!(
        store.unfinished_keys(b.id).unwrap(),
        std::slice::from_ref(&key)
    );

    assert!(store.mark_key_written(key.id).unwrap().is_empty());
    store.mark_key_verified(key.id, &verification(2)).unwrap();
    let verified = store.key(key.id).unwrap();
    assert_eq!(verified.state, KeyState::Verified);
    assert_eq!(verified.counter, Some(2));
    assert_eq!(verified.verification.as_deref(), Some("device-otp"));
    assert!(store.unfinished_keys(b.id).unwrap().is_empty());
    assert!(store.unfinished_keys_by_device(b.id).unwrap().is_empty());
    assert_eq!(store.live_key(d.id, "1").unwrap().unwrap().id, key.id);

    let export = store
        .record_export(&NewExport {
            batch: Some(b.id),
            file_name: "/tmp/b.pskc".to_owned(),
            sha256: [0xab; 32],
            protection: "password".to_owned(),
            target: "generic".to_owned(),
            keys: vec![key.id],
        })
        .unwrap();
    assert_eq!(export.keys, [key.id]);
    assert_eq!(export.sha256, "ab".repeat(32));
    assert_eq!(store.key(key.id).unwrap().state, KeyState::Exported);
    assert_eq!(store.exports(Some(b.id)).unwrap(), [export]);

    store
        .set_batch_device_outcome(b.id, d.id, DeviceOutcome::Done, None, false)
        .unwrap();
    let members = store.batch_devices(b.id).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].outcome, DeviceOutcome::Done);

    let kinds: Vec<String> = store
        .events(Some(b.id))
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "batch.created",
            "batch.device_added",
            "key.reserved",
            "key.written",
            "key.verified",
            "key.exported",
            "export.recorded",
            "batch.device_outcome"
        ]
    );
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn the_life_cycle_refuses_skipped_steps() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "42");
    let key = reserve(&store, &b, &d, &secret(1));
    let err = store
        .mark_key_verified(key.id, &verification(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                from: KeyState::Reserved,
                to: KeyState::Verified,
                ..
            }
        ),
        "{err}"
    );
    store.revoke_key(key.id, "never delivered").unwrap();
    assert!(matches!(
        store.mark_key_written(key.id),
        Err(StoreError::InvalidTransition {
            from: KeyState::Revoked,
            ..
        })
    ));
    assert_eq!(store.key(key.id).unwrap().state, KeyState::Revoked);
}

#[test]
fn writing_a_new_key_revokes_the_one_it_replaces() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "42");
    let old = reserve(&store, &b, &d, &secret(1));
    store.mark_key_written(old.id).unwrap();
    store.mark_key_verified(old.id, &verification(1)).unwrap();

    let new = reserve(&store, &b, &d, &secret(2));
    assert_eq!(store.mark_key_written(new.id).unwrap(), [old.id]);
    let revoked = store.key(old.id).unwrap();
    assert_eq!(revoked.state, KeyState::Revoked);
    let reason = format!("superseded by key {} on slot 1", new.id);
    assert_eq!(revoked.reason, Some(reason));
    let live = store.live_key(d.id, "1").unwrap().unwrap();
    assert_eq!(live.id, new.id);
    assert_eq!(live.reason, None);
    let device = (
        live.family.as_str(),
        live.model.as_str(),
        live.serial.as_str(),
    );
    assert_eq!(device, ("yubikey", "yubikey model", "42"));
    assert_eq!(store.device_keys(d.id).unwrap().len(), 2);
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn a_failed_step_leaves_nothing_half_written() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d1 = device(&store, "yubikey", "1");
    let d2 = device(&store, "yubikey", "2");
    let verified = reserve(&store, &b, &d1, &secret(1));
    store.mark_key_written(verified.id).unwrap();
    store
        .mark_key_verified(verified.id, &verification(1))
        .unwrap();
    let reserved = reserve(&store, &b, &d2, &secret(2));
    let events_before = store.events(None).unwrap().len();

    // The second key is not verified, so the whole export is refused, first key included.
    let err = store
        .record_export(&NewExport {
            batch: Some(b.id),
            file_name: "out.pskc".to_owned(),
            sha256: [0; 32],
            protection: "password".to_owned(),
            target: "generic".to_owned(),
            keys: vec![verified.id, reserved.id],
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err}");
    assert_eq!(store.key(verified.id).unwrap().state, KeyState::Verified);
    assert!(store.exports(None).unwrap().is_empty());
    assert_eq!(store.events(None).unwrap().len(), events_before);
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn a_closed_batch_takes_no_new_keys() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "42");
    store.set_batch_state(b.id, BatchState::Cancelled).unwrap();
    let err = store
        .reserve_key(&NewKey {
            batch: b.id,
            device: d.id,
            slot: "1".to_owned(),
            profile: hotp6(),
            counter: None,
            secret: &secret(1),
            dskpp_key_id: None,
            server_url: None,
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BatchClosed(id) if id == b.id),
        "{err}"
    );
    assert!(store.batch_keys(b.id).unwrap().is_empty());
}

#[test]
fn engine_events_are_logged_but_cannot_pose_as_state_changes() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let event = |kind: &str| keyprov_store::NewEvent {
        kind: kind.to_owned(),
        batch: Some(b.id),
        device: None,
        key: None,
        detail: serde_json::json!({ "attempt": 2 }),
    };
    let seq = store.record_event(&event("engine.retry")).unwrap();
    let logged = store.events(Some(b.id)).unwrap().pop().unwrap();
    assert_eq!((logged.seq, logged.kind.as_str()), (seq, "engine.retry"));
    assert_eq!(logged.detail["attempt"], 2);
    assert!(matches!(
        store.record_event(&event("key.verified")),
        Err(StoreError::ReservedEventKind(_))
    ));
}

#[test]
fn data_survives_reopening_with_the_same_master_key() {
    let (_dir, path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "nitrokey", "7");
    let key = reserve(&store, &b, &d, &secret(3));
    drop(store);

    let reopened = Store::open(&path, None).unwrap();
    assert_eq!(
        reopened.key_secret(key.id).unwrap().as_slice(),
        secret(3).as_slice()
    );
    assert_eq!(reopened.batch_keys(b.id).unwrap(), [key]);
}

#[test]
fn a_foreign_master_key_is_refused() {
    let (_dir, path, store) = fresh_store();
    batch(&store, "b");
    drop(store);
    let err = Store::open_with_key(&path, keyprov_store::MasterKey::generate()).unwrap_err();
    assert!(matches!(err, StoreError::MasterKeyMismatch { .. }), "{err}");
}

#[test]
fn without_its_master_key_the_store_audits_but_holds_no_secrets() {
    let (_dir, path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "42");
    let key = reserve(&store, &b, &d, &secret(1));
    drop(store);

    let keyless = Store::open_existing_without_key(&path).unwrap();
    assert!(keyless.verify_audit().unwrap().is_intact());
    assert!(matches!(
        keyless.key_secret(key.id),
        Err(StoreError::MasterKeyNotLoaded)
    ));
    let missing = Store::open_existing_without_key(&path.with_file_name("none.db")).unwrap_err();
    assert!(
        matches!(missing, StoreError::MissingDatabase { .. }),
        "{missing}"
    );
}

#[test]
fn parallel_engine_threads_share_one_store() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "parallel");
    std::thread::scope(|s| {
        for thread in 0..8u8 {
            let store = store.clone();
            let b = b.clone();
            s.spawn(move || {
                for n in 0..6u8 {
                    let d = device(&store, "yubikey", &format!("{thread}-{n}"));
                    store.add_batch_device(b.id, d.id).unwrap();
                    let key = reserve(&store, &b, &d, &secret(thread * 10 + n));
                    store.mark_key_written(key.id).unwrap();
                    store.mark_key_verified(key.id, &verification(1)).unwrap();
                }
            });
        }
    });
    let keys = store.batch_keys(b.id).unwrap();
    assert_eq!(keys.len(), 48);
    assert!(keys.iter().all(|k| k.state == KeyState::Verified));
    let report = store.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.first_broken);
    // batch.created + per token: registered, added, reserved, written, verified.
    assert_eq!(report.events, 1 + 48 * 5);
}

#[test]
fn two_connections_append_to_one_chain() {
    // Two processes (a running batch and a second station command) each hold a connection.
    let (_dir, path, first) = fresh_store();
    let second = Store::open(&path, None).unwrap();
    let b = batch(&first, "shared");
    std::thread::scope(|s| {
        for (offset, store) in [(0u8, &first), (100u8, &second)] {
            let b = b.clone();
            s.spawn(move || {
                for n in 0..10u8 {
                    let d = device(store, "yubikey", &format!("{}", offset + n));
                    let key = reserve(store, &b, &d, &secret(offset + n));
                    store.mark_key_written(key.id).unwrap();
                }
            });
        }
    });
    let report = second.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.first_broken);
    assert_eq!(report.events, 1 + 20 * 3);
}

#[test]
fn the_resume_journal_groups_unfinished_keys_by_device() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "crashed");
    let d1 = device(&store, "yubikey", "1");
    let d2 = device(&store, "yubikey", "2");
    let d3 = device(&store, "yubikey", "3");
    let written = reserve(&store, &b, &d1, &secret(1));
    store.mark_key_written(written.id).unwrap();
    let reserved = reserve(&store, &b, &d2, &secret(2));
    let done = reserve(&store, &b, &d3, &secret(3));
    store.mark_key_written(done.id).unwrap();
    store.mark_key_verified(done.id, &verification(1)).unwrap();

    let journal = store.unfinished_keys_by_device(b.id).unwrap();
    let states: Vec<(keyprov_store::DeviceId, Vec<KeyState>)> = journal
        .into_iter()
        .map(|(device, keys)| (device, keys.into_iter().map(|k| k.state).collect()))
        .collect();
    assert_eq!(
        states,
        [
            (d1.id, vec![KeyState::Written]),
            (d2.id, vec![KeyState::Reserved])
        ]
    );
    assert_eq!(reserved.device, d2.id);
}

/// Breaker #10: another station's master.key beside a database named neither file.
#[test]
fn another_stations_master_key_names_the_key_file_and_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("a"), dir.path().join("b"));
    let (db, other_db) = (ours.join("station.db"), theirs.join("station.db"));
    drop(Store::open(&db, None).unwrap());
    drop(Store::open(&other_db, None).unwrap());
    let key_file = Store::master_key_path(&db);
    std::fs::copy(Store::master_key_path(&other_db), &key_file).unwrap();
    let found = keyprov_store::MasterKey::load(&key_file, None)
        .unwrap()
        .fingerprint();
    let err = Store::open(&db, None).unwrap_err();
    let StoreError::MasterKeyMismatch { expected, .. } = &err else {
        panic!("expected MasterKeyMismatch, got {err}");
    };
    assert_eq!(
        err.to_string(),
        format!(
            "master key {} (fingerprint {found}) does not belong to station database {} \
             (created with master key {expected}); put that database's own master.key beside it",
            key_file.display(),
            db.display()
        )
    );
}
