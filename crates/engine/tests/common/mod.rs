//! Set-up shared by the engine's integration tests: emulated tokens, a `Station` on them, batch
//! requests, the station lock held as another process would hold it, and an open batch.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::{Path, PathBuf};

use keyprov_drivers::Family;
use keyprov_drivers::emulator::{self, Latency};
use keyprov_engine::Station;
use keyprov_engine::api::{BatchRequest, OtpHash, OtpKind, ProvisioningMode, StationConfig};

/// Emulator latency that keeps a test fast: 5 ms per write, 1 ms for anything else.
pub const FAST: Latency = Latency {
    write_ms: 5,
    other_ms: 1,
};

/// Adds `count` emulated `family` tokens under `tokens` (with `latency`, if given) and returns
/// their serials.
pub fn add_tokens(
    tokens: &Path,
    family: Family,
    count: u32,
    latency: Option<Latency>,
) -> Vec<String> {
    let added = emulator::add(tokens, family, count, None).unwrap();
    let serials: Vec<String> = added.into_iter().map(|t| t.serial).collect();
    if let Some(latency) = latency {
        for serial in &serials {
            emulator::set_latency(tokens, serial, latency).unwrap();
        }
    }
    serials
}

/// Opens a station on the database `db` and the emulated tokens under `tokens`.
pub fn open_station(db: impl Into<PathBuf>, tokens: impl Into<PathBuf>) -> Station {
    Station::open(StationConfig {
        db_path: Some(db.into()),
        emulator_dir: Some(tokens.into()),
        ..StationConfig::default()
    })
    .unwrap()
}

/// A local-mode request for batch `name`: 6 digits, 30 s period, two tokens at a time, no
/// export, no operator.
pub fn batch_request(name: &str, otp: OtpKind, hash: OtpHash) -> BatchRequest {
    BatchRequest {
        name: name.into(),
        otp,
        digits: 6,
        period: 30,
        count: None,
        mode: ProvisioningMode::Local,
        export: None,
        operator: None,
        parallel: Some(2),
        hash,
    }
}

/// Holds the station lock of `db` as another process's run would (flock is per open file).
pub fn hold_lock(db: &Path) -> std::fs::File {
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(keyprov_engine::lock_path(db))
        .unwrap();
    held.lock().unwrap();
    held
}

/// Creates the HOTP batch `name` in the store of `station` and leaves it open, as a run that is
/// still going (or was killed) leaves it.
pub fn create_open_batch(station: &Station, name: &str) {
    let store = keyprov_store::Store::open(station.db_path(), None).unwrap();
    store
        .create_batch(&keyprov_store::NewBatch {
            name: name.into(),
            profile: keyprov_store::KeyProfile {
                algorithm: keyprov_store::OtpAlgorithm::Hotp,
                digits: 6,
                period: None,
                hash: keyprov_store::HashAlgorithm::Sha1,
            },
            mode: keyprov_store::BatchMode::Local,
            server_url: None,
            operator: None,
            params: serde_json::json!({}),
        })
        .unwrap();
}
