//! Fixtures shared by the store's integration tests.

#![allow(dead_code)] // Each test file uses a different part of these fixtures.

use std::path::PathBuf;

use keyprov_store::{
    Batch, BatchMode, Device, DeviceIdentity, HashAlgorithm, Key, KeyProfile, NewBatch, NewKey,
    OtpAlgorithm, Store,
};

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub fn fresh_store() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyprov").join("station.db");
    let store = Store::open(&path, None).unwrap();
    (dir, path, store)
}

pub fn hotp6() -> KeyProfile {
    KeyProfile {
        algorithm: OtpAlgorithm::Hotp,
        digits: 6,
        period: None,
        hash: HashAlgorithm::Sha1,
    }
}

pub fn batch(store: &Store, name: &str) -> Batch {
    store
        .create_batch(&NewBatch {
            name: name.to_owned(),
            profile: hotp6(),
            mode: BatchMode::Local,
            server_url: None,
            operator: Some("alice".to_owned()),
            params: serde_json::json!({ "count": 12 }),
        })
        .unwrap()
}

pub fn device(store: &Store, family: &str, serial: &str) -> Device {
    store
        .upsert_device(&DeviceIdentity {
            family: family.to_owned(),
            model: format!("{family} model"),
            serial: serial.to_owned(),
            firmware: "5.4.3".to_owned(),
        })
        .unwrap()
}

pub fn reserve(store: &Store, batch: &Batch, device: &Device, secret: &[u8]) -> Key {
    store
        .reserve_key(&NewKey {
            batch: batch.id,
            device: device.id,
            slot: "1".to_owned(),
            profile: hotp6(),
            counter: Some(0),
            secret,
            dskpp_key_id: Some(format!("dskpp-{}", device.serial)),
            server_url: None,
        })
        .unwrap()
}

/// A distinct, recognisable 20-byte secret for token `n`.
pub fn secret(n: u8) -> Vec<u8> {
    (0..20u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(n).wrapping_mul(11) ^ 0x5a)
        .collect()
}
