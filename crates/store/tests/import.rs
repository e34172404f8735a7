//! Seed-file imports through `Store::import_keys`: all or nothing, idempotent, audited, sealed.

mod common;

use common::{batch, device, fresh_store, hotp6, reserve, secret};
use keyprov_store::{
    BatchMode, BatchState, DeviceOutcome, HashAlgorithm, ImportOutcome, ImportedKey, KeyProfile,
    KeyState, NewExport, OtpAlgorithm, Store, StoreError, VENDOR_VERIFICATION,
};
use zeroize::Zeroizing;

const SOURCE: &str = "vendor.pskc sha256:0b1c";

fn totp8() -> KeyProfile {
    KeyProfile {
        algorithm: OtpAlgorithm::Totp,
        digits: 8,
        period: Some(30),
        hash: HashAlgorithm::Sha256,
    }
}

/// HOTP key `n` of serial `serial`, labelled `key-<n>`.
fn hotp(serial: &str, n: u8) -> ImportedKey {
    ImportedKey {
        serial: serial.to_owned(),
        key_label: format!("key-{n}"),
        family: "feitian".to_owned(),
        model: Some("c200".to_owned()),
        profile: hotp6(),
        counter: Some(u64::from(n) * 10),
        secret: Zeroizing::new(secret(n)),
    }
}

/// TOTP key `n`, a token of its own, with no model in the file.
fn totp(n: u8) -> ImportedKey {
    ImportedKey {
        serial: format!("T{n:04}"),
        key_label: format!("totp-{n}"),
        family: "feitian".to_owned(),
        model: None,
        profile: totp8(),
        counter: None,
        secret: Zeroizing::new(secret(n)),
    }
}

/// A seed file: two HOTP keys on one token, one on another, and a TOTP token.
fn file() -> Vec<ImportedKey> {
    vec![
        hotp("F0001", 1),
        hotp("F0001", 2),
        hotp("F0002", 3),
        totp(4),
    ]
}

/// Everything an import could change, to compare before and after.
fn snapshot(store: &Store) -> (usize, usize, usize, Option<String>) {
    let batches = store.list_batches().unwrap().len();
    let devices = store.list_devices().unwrap().len();
    let events = store.events(None).unwrap().len();
    let head = store.verify_audit().unwrap().head;
    (batches, devices, events, head)
}

fn key_count(store: &Store) -> usize {
    store
        .list_devices()
        .unwrap()
        .iter()
        .map(|d| store.device_keys(d.id).unwrap().len())
        .sum()
}

#[test]
fn an_import_registers_every_key_verified_in_a_completed_import_batch() {
    let (_dir, _path, store) = fresh_store();
    let (batch, outcomes) = store.import_keys("vendor-1", SOURCE, file()).unwrap();
    let batch = store.batch(batch.expect("keys were added")).unwrap();
    assert_eq!(batch.name, "vendor-1");
    assert_eq!(batch.mode, BatchMode::Imported);
    assert_eq!(batch.state, BatchState::Completed);
    assert!(batch.finished_at.is_some());
    assert_eq!(batch.profile, hotp6(), "the first key's profile");
    assert_eq!(batch.params["import"]["source"], SOURCE);

    let keys = store.batch_keys(batch.id).unwrap();
    assert_eq!(keys.len(), 4);
    let ids: Vec<_> = keys.iter().map(|k| ImportOutcome::Added(k.id)).collect();
    assert_eq!(outcomes, ids);
    let read: Vec<_> = keys
        .iter()
        .map(|k| {
            let p = &k.profile;
            let (serial, slot) = (k.serial.as_str(), k.slot.as_str());
            (
                serial,
                slot,
                p.algorithm,
                p.digits,
                k.counter,
                p.period,
                p.hash,
            )
        })
        .collect();
    assert_eq!(
        read,
        vec![
            (
                "F0001",
                "key-1",
                OtpAlgorithm::Hotp,
                6,
                Some(10),
                None,
                HashAlgorithm::Sha1
            ),
            (
                "F0001",
                "key-2",
                OtpAlgorithm::Hotp,
                6,
                Some(20),
                None,
                HashAlgorithm::Sha1
            ),
            (
                "F0002",
                "key-3",
                OtpAlgorithm::Hotp,
                6,
                Some(30),
                None,
                HashAlgorithm::Sha1
            ),
            (
                "T0004",
                "totp-4",
                OtpAlgorithm::Totp,
                8,
                None,
                Some(30),
                HashAlgorithm::Sha256
            ),
        ]
    );
    for (key, n) in keys.iter().zip([1u8, 2, 3, 4]) {
        assert_eq!(key.state, KeyState::Verified);
        assert_eq!(key.family, "feitian");
        assert_eq!(key.verification.as_deref(), Some(VENDOR_VERIFICATION));
        assert_eq!(key.dskpp_key_id.as_deref(), Some(key.slot.as_str()));
        assert_eq!(
            key.proof.as_deref(),
            Some("imported from vendor.pskc sha256:0b1c")
        );
        assert_eq!(store.key_secret(key.id).unwrap().as_slice(), secret(n));
    }
    assert_eq!(keys[0].model, "c200");
    assert_eq!(keys[3].model, "imported");

    let members = store.batch_devices(batch.id).unwrap();
    let serials: Vec<_> = members.iter().map(|m| m.device.serial.as_str()).collect();
    assert_eq!(serials, ["F0001", "F0002", "T0004"]);
    assert!(members.iter().all(|m| m.outcome == DeviceOutcome::Done));

    let imported: Vec<_> = store
        .events(Some(batch.id))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "key.imported")
        .collect();
    assert_eq!(imported.len(), 4, "one event per key");
    assert_eq!(imported[3].detail["source"], SOURCE);
    assert_eq!(imported[3].detail["state"], "verified");
    let report = store.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.first_broken);
}

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    let (_dir, path, store) = fresh_store();
    let (_, first) = store.import_keys("vendor-1", SOURCE, file()).unwrap();
    let before = snapshot(&store);
    let keys_before = key_count(&store);

    // Same batch name, then another one: neither creates a batch nor logs an event.
    for name in ["vendor-1", "vendor-1-again"] {
        let (batch, again) = store.import_keys(name, SOURCE, file()).unwrap();
        assert_eq!(batch, None);
        let unchanged: Vec<_> = first
            .iter()
            .map(|o| ImportOutcome::Unchanged(o.key()))
            .collect();
        assert_eq!(again, unchanged);
        assert_eq!(snapshot(&store), before);
        assert_eq!(key_count(&store), keys_before);
    }

    // Still nothing after reopening: the second import committed no write at all.
    drop(store);
    let store = Store::open(&path, None).unwrap();
    assert_eq!(snapshot(&store), before);
}

#[test]
fn a_conflict_in_the_middle_of_a_file_rolls_back_every_key() {
    let (_dir, _path, store) = fresh_store();
    store
        .import_keys("vendor-1", SOURCE, vec![hotp("F0002", 3)])
        .unwrap();
    let before = snapshot(&store);
    let keys_before = key_count(&store);

    // New keys before and after a key whose serial and label hold another secret.
    let mut changed = hotp("F0002", 3);
    changed.secret = Zeroizing::new(secret(99));
    let keys = vec![hotp("F0001", 1), totp(4), changed, hotp("F0005", 5)];
    let err = store.import_keys("vendor-2", SOURCE, keys).unwrap_err();
    match &err {
        StoreError::ImportConflict {
            serial,
            key_label,
            reason,
        } => {
            assert_eq!((serial.as_str(), key_label.as_str()), ("F0002", "key-3"));
            assert!(reason.contains("different secret"), "{reason}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!err.to_string().contains(&hex::encode(secret(99))));
    assert_eq!(snapshot(&store), before, "no batch, device or event left");
    assert_eq!(key_count(&store), keys_before);
    assert!(store.find_batch("vendor-2").unwrap().is_none());
    assert!(store.find_devices_by_serial("F0001").unwrap().is_empty());
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn two_keys_of_one_file_colliding_with_each_other_import_nothing() {
    let (_dir, _path, store) = fresh_store();
    let mut twin = hotp("F0001", 1);
    twin.secret = Zeroizing::new(secret(7));
    let keys = vec![hotp("F0001", 1), hotp("F0002", 3), twin];
    let err = store.import_keys("vendor-1", SOURCE, keys).unwrap_err();
    assert!(matches!(err, StoreError::ImportConflict { .. }), "{err}");
    assert_eq!(
        snapshot(&store),
        (0, 0, 0, None),
        "the store is still empty"
    );

    // The same key twice in one file is one key.
    let keys = vec![hotp("F0001", 1), hotp("F0001", 1)];
    let (_, outcomes) = store.import_keys("vendor-1", SOURCE, keys).unwrap();
    assert!(matches!(
        outcomes.as_slice(),
        [ImportOutcome::Added(a), ImportOutcome::Unchanged(b)] if a == b
    ));
}

#[test]
fn a_different_profile_under_the_same_serial_and_label_is_a_conflict() {
    let (_dir, _path, store) = fresh_store();
    store
        .import_keys("vendor-1", SOURCE, vec![totp(4)])
        .unwrap();
    let before = snapshot(&store);
    let mut longer = totp(4);
    longer.profile.digits = 6;
    let err = store
        .import_keys("vendor-2", SOURCE, vec![hotp("F0001", 1), longer])
        .unwrap_err();
    let StoreError::ImportConflict { reason, .. } = &err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert!(
        reason.ends_with(
            "as totp, 8 digits, 30 s, sha256, the file says totp, 6 digits, 30 s, sha256"
        ),
        "{reason}"
    );
    assert_eq!(snapshot(&store), before);
}

#[test]
fn a_partly_known_file_adds_only_its_new_keys() {
    let (_dir, _path, store) = fresh_store();
    let (_, first) = store
        .import_keys("vendor-1", SOURCE, vec![hotp("F0001", 1)])
        .unwrap();
    let (batch, outcomes) = store.import_keys("vendor-2", SOURCE, file()).unwrap();
    let batch = batch.unwrap();
    assert_eq!(outcomes[0], ImportOutcome::Unchanged(first[0].key()));
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| matches!(o, ImportOutcome::Added(_)))
    );
    let keys = store.batch_keys(batch).unwrap();
    assert_eq!(keys.len(), 3);
    // F0001 is a member of both imports; its device was registered once.
    assert_eq!(store.find_devices_by_serial("F0001").unwrap().len(), 1);
    assert_eq!(store.batch_devices(batch).unwrap().len(), 3);
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn an_existing_batch_name_refuses_a_file_with_new_keys() {
    let (_dir, _path, store) = fresh_store();
    batch(&store, "taken");
    let before = snapshot(&store);
    let err = store.import_keys("taken", SOURCE, file()).unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateBatch(name) if name == "taken"),
        "{err}"
    );
    assert_eq!(snapshot(&store), before);
}

#[test]
fn a_provisioned_key_on_the_same_serial_and_slot_is_a_conflict() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "factory");
    let d = device(&store, "yubikey", "5550001");
    let key = reserve(&store, &b, &d, &secret(1));
    store.mark_key_written(key.id).unwrap();
    // A vendor file (another family name) naming slot "1" of the same serial.
    let mut vendor = hotp("5550001", 9);
    vendor.key_label = "1".to_owned();
    let err = store
        .import_keys("vendor", SOURCE, vec![vendor])
        .unwrap_err();
    assert!(matches!(err, StoreError::ImportConflict { .. }), "{err}");
    // Its own seed with the same profile is recognised, whichever family the file says.
    let mut same = hotp("5550001", 1);
    same.key_label = "1".to_owned();
    let (batch, outcomes) = store.import_keys("vendor", SOURCE, vec![same]).unwrap();
    assert_eq!(
        (batch, outcomes),
        (None, vec![ImportOutcome::Unchanged(key.id)])
    );
}

#[test]
fn a_revoked_seed_is_not_brought_back_by_importing_it_again() {
    let (_dir, _path, store) = fresh_store();
    let (_, outcomes) = store.import_keys("vendor-1", SOURCE, file()).unwrap();
    let lost = outcomes[2].key();
    store.revoke_key(lost, "token reported lost").unwrap();
    assert_eq!(
        store.key(lost).unwrap().reason.as_deref(),
        Some("token reported lost")
    );
    let before = snapshot(&store);

    let (batch, again) = store.import_keys("vendor-2", SOURCE, file()).unwrap();
    assert_eq!(batch, None);
    assert_eq!(again[2], ImportOutcome::Unchanged(lost));
    assert_eq!(store.key(lost).unwrap().state, KeyState::Revoked);
    assert_eq!(snapshot(&store), before);

    // A new seed for that token after its revocation is a new key.
    let mut reseeded = hotp("F0002", 3);
    reseeded.secret = Zeroizing::new(secret(42));
    let (batch, outcomes) = store
        .import_keys("vendor-3", SOURCE, vec![reseeded])
        .unwrap();
    assert!(batch.is_some());
    let ImportOutcome::Added(new) = outcomes[0] else {
        panic!("expected a new key, got {:?}", outcomes[0]);
    };
    assert_eq!(store.key_secret(new).unwrap().as_slice(), secret(42));
}

#[test]
fn imported_keys_export_and_stay_recognised_once_exported() {
    let (_dir, _path, store) = fresh_store();
    let (batch, outcomes) = store.import_keys("vendor-1", SOURCE, file()).unwrap();
    let keys: Vec<_> = outcomes.iter().map(|o| o.key()).collect();
    store
        .record_export(&NewExport {
            batch,
            file_name: "privacyidea.pskc".to_owned(),
            sha256: [7; 32],
            protection: "password".to_owned(),
            target: "privacyidea".to_owned(),
            keys: keys.clone(),
        })
        .unwrap();
    assert!(
        keys.iter()
            .all(|k| store.key(*k).unwrap().state == KeyState::Exported)
    );
    let before = snapshot(&store);
    let (again, outcomes) = store.import_keys("vendor-2", SOURCE, file()).unwrap();
    assert_eq!(again, None);
    assert_eq!(outcomes.iter().map(|o| o.key()).collect::<Vec<_>>(), keys);
    assert_eq!(snapshot(&store), before);
}

#[test]
fn bad_keys_are_refused_before_anything_is_written() {
    let (_dir, _path, store) = fresh_store();
    let mut empty = hotp("F0001", 1);
    empty.secret = Zeroizing::new(Vec::new());
    let mut counted = totp(4);
    counted.counter = Some(3);
    let mut unlabelled = hotp("F0001", 1);
    unlabelled.key_label.clear();
    for bad in [empty, counted, unlabelled] {
        let err = store
            .import_keys("vendor", SOURCE, vec![hotp("F0009", 9), bad])
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    }
    assert!(store.import_keys("vendor", "", file()).is_err());
    assert_eq!(snapshot(&store), (0, 0, 0, None));
}

#[test]
fn an_import_needs_the_master_key() {
    let (_dir, path, store) = fresh_store();
    drop(store);
    let keyless = Store::open_existing_without_key(&path).unwrap();
    let err = keyless.import_keys("vendor", SOURCE, file()).unwrap_err();
    assert!(matches!(err, StoreError::MasterKeyNotLoaded), "{err}");
}

#[test]
fn imported_key_debug_redacts_the_secret() {
    let key = hotp("F0001", 1);
    let shown = format!("{key:?}");
    assert!(shown.contains("<redacted>"));
    assert!(shown.contains("F0001"));
    let raw = format!("{:?}", secret(1));
    assert!(!shown.contains(&raw[1..20]), "{shown}");
}
