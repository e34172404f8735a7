//! `Store::record_group`: many devices' journal records in one transaction, each with the
//! meaning and audit event it has on its own, a refused record rolled back alone.

mod common;

use common::{batch, device, fresh_store, hotp6, reserve, secret};
use keyprov_store::{
    BatchState, KeyState, NewEvent, NewKey, Record, Recorded, StoreError, Verification,
};

fn started(batch: &keyprov_store::Batch, device: &keyprov_store::Device) -> NewEvent {
    NewEvent {
        kind: "engine.dskpp_started".into(),
        batch: Some(batch.id),
        device: Some(device.id),
        key: None,
        detail: serde_json::json!({ "client_id": device.serial }),
    }
}

#[test]
fn a_group_records_every_device_and_keeps_the_chain() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "group");
    let devices: Vec<_> = (0..3)
        .map(|n| device(&store, "yubikey", &format!("10{n}")))
        .collect();
    let secrets: Vec<Vec<u8>> = (0..3).map(secret).collect();
    let events: Vec<NewEvent> = devices.iter().map(|d| started(&b, d)).collect();
    let records: Vec<Record<'_>> = events.iter().map(Record::Event).collect();
    let seqs = store.record_group(&records);
    assert!(seqs.iter().all(|s| matches!(s, Ok(Recorded::Event(_)))));

    let keys: Vec<NewKey<'_>> = devices
        .iter()
        .zip(&secrets)
        .map(|(d, s)| NewKey {
            batch: b.id,
            device: d.id,
            slot: "hotp:1".into(),
            profile: hotp6(),
            counter: Some(0),
            secret: s,
            dskpp_key_id: Some(format!("dskpp-{}", d.serial)),
            server_url: None,
        })
        .collect();
    let records: Vec<Record<'_>> = keys.iter().map(Record::Reserve).collect();
    let ids: Vec<_> = store
        .record_group(&records)
        .into_iter()
        .map(|r| match r {
            Ok(Recorded::Reserved(id)) => id,
            other => panic!("not reserved: {other:?}"),
        })
        .collect();
    for (id, s) in ids.iter().zip(&secrets) {
        assert_eq!(store.key(*id).unwrap().state, KeyState::Reserved);
        assert_eq!(store.key_secret(*id).unwrap().as_slice(), s.as_slice());
    }

    let written: Vec<Record<'_>> = ids.iter().map(|id| Record::Written(*id)).collect();
    assert!(
        store
            .record_group(&written)
            .iter()
            .all(|r| matches!(r, Ok(Recorded::Written(replaced)) if replaced.is_empty()))
    );
    let proof = Verification {
        method: "device-otp".into(),
        proof: "{}".into(),
        next_counter: Some(2),
    };
    let verified: Vec<Record<'_>> = ids.iter().map(|id| Record::Verified(*id, &proof)).collect();
    assert!(
        store
            .record_group(&verified)
            .iter()
            .all(|r| matches!(r, Ok(Recorded::Done)))
    );
    for id in &ids {
        let key = store.key(*id).unwrap();
        assert_eq!((key.state, key.counter), (KeyState::Verified, Some(2)));
    }
    // 3 started events and 3 × (reserved, written, verified) key events, one chain.
    let kinds: Vec<String> = store
        .events(Some(b.id))
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k.starts_with("engine.") || k.starts_with("key."))
        .collect();
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn a_refused_record_is_rolled_back_alone() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "mixed");
    let first = device(&store, "yubikey", "201");
    let second = device(&store, "yubikey", "202");
    let k1 = reserve(&store, &b, &first, &secret(1));
    let k2 = reserve(&store, &b, &second, &secret(2));
    let bad_event = NewEvent {
        kind: "key.forged".into(),
        ..started(&b, &first)
    };
    // Verifying a key that was never written is a wrong transition.
    let proof = Verification {
        method: "device-otp".into(),
        proof: "{}".into(),
        next_counter: None,
    };
    let records = [
        Record::Written(k1.id),
        Record::Event(&bad_event),
        Record::Verified(k2.id, &proof),
        Record::Revoked(k2.id, "device failed"),
    ];
    let outcomes = store.record_group(&records);
    assert!(matches!(outcomes[0], Ok(Recorded::Written(_))));
    assert!(matches!(outcomes[1], Err(StoreError::ReservedEventKind(_))));
    assert!(matches!(
        outcomes[2],
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(outcomes[3], Ok(Recorded::Done)));
    assert_eq!(store.key(k1.id).unwrap().state, KeyState::Written);
    assert_eq!(store.key(k2.id).unwrap().state, KeyState::Revoked);
    assert!(
        store
            .events(Some(b.id))
            .unwrap()
            .iter()
            .all(|e| e.kind != "key.forged" && e.kind != "key.verified")
    );
    assert!(store.verify_audit().unwrap().is_intact());
}

#[test]
fn a_closed_batch_refuses_the_records_of_its_keys() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "closed");
    let d = device(&store, "yubikey", "301");
    let key = reserve(&store, &b, &d, &secret(3));
    store.set_batch_state(b.id, BatchState::Cancelled).unwrap();
    let outcomes = store.record_group(&[Record::Written(key.id)]);
    assert!(matches!(outcomes[0], Err(StoreError::BatchClosed(_))));
    assert_eq!(store.key(key.id).unwrap().state, KeyState::Reserved);
}

#[test]
fn members_are_added_at_once_and_their_outcomes_grouped() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "members");
    let identities: Vec<keyprov_store::DeviceIdentity> = (0..4)
        .map(|n| keyprov_store::DeviceIdentity {
            family: "yubikey".into(),
            model: "YubiKey 5".into(),
            serial: format!("40{n}"),
            firmware: "5.4.3".into(),
        })
        .collect();
    let devices = store.add_batch_members(b.id, &identities).unwrap();
    assert_eq!(
        devices
            .iter()
            .map(|d| d.serial.as_str())
            .collect::<Vec<_>>(),
        ["400", "401", "402", "403"]
    );
    // Adding them again changes nothing: same devices, no second membership.
    let again = store.add_batch_members(b.id, &identities).unwrap();
    assert_eq!(
        again.iter().map(|d| d.id).collect::<Vec<_>>(),
        devices.iter().map(|d| d.id).collect::<Vec<_>>()
    );
    let outcomes: Vec<Record<'_>> = devices
        .iter()
        .enumerate()
        .map(|(n, d)| Record::Outcome {
            batch: b.id,
            device: d.id,
            outcome: if n == 0 {
                keyprov_store::DeviceOutcome::Failed
            } else {
                keyprov_store::DeviceOutcome::Done
            },
            error: (n == 0).then_some("unplugged"),
            retryable: n == 0,
        })
        .collect();
    assert!(
        store
            .record_group(&outcomes)
            .iter()
            .all(|r| matches!(r, Ok(Recorded::Done)))
    );
    let members = store.batch_devices(b.id).unwrap();
    assert_eq!(members.len(), 4);
    assert_eq!(members[0].error.as_deref(), Some("unplugged"));
    assert!(members[0].retryable);
    assert!(
        members[1..]
            .iter()
            .all(|m| m.outcome == keyprov_store::DeviceOutcome::Done && !m.retryable)
    );
    assert!(store.verify_audit().unwrap().is_intact());
}
