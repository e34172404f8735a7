//! A writer killed with SIGKILL at random instants leaves a consistent store: the chain holds,
//! every key's state matches its log, every sealed secret opens, and the next run continues.
//!
//! The test re-runs its own binary as the writer (selected by an environment variable).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{batch, device, reserve, secret};
use keyprov_store::{KeyState, Store, Verification};

const CHILD_DB: &str = "KEYPROV_STORE_CRASH_DB";

/// The writer: provisions tokens forever, one full life cycle each, until killed.
fn write_forever(db: &Path) -> ! {
    let store = Store::open(db, None).unwrap();
    let b = match store.find_batch("crash").unwrap() {
        Some(b) => b,
        None => batch(&store, "crash"),
    };
    let start = store.batch_keys(b.id).unwrap().len();
    for n in start.. {
        let d = device(&store, "yubikey", &format!("crash-{}", n % 7));
        store.add_batch_device(b.id, d.id).unwrap();
        let key = reserve(&store, &b, &d, &secret(n as u8));
        store.mark_key_written(key.id).unwrap();
        let proof = Verification {
            method: "device-otp".to_owned(),
            proof: format!("run {n}"),
            next_counter: Some(1),
        };
        store.mark_key_verified(key.id, &proof).unwrap();
    }
    unreachable!("the writer runs until it is killed")
}

#[test]
fn killed_writers_leave_a_consistent_store() {
    if let Some(db) = std::env::var_os(CHILD_DB) {
        write_forever(Path::new(&db));
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("station.db");
    // Pseudo-random kill delays (xorshift seeded by the clock), 5 to 80 ms.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    for round in 0..12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = Duration::from_millis(5 + state % 76);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killed_writers_leave_a_consistent_store",
                "--nocapture",
            ])
            .env(CHILD_DB, &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        check_consistent(&db, round);
    }
    let store = Store::open(&db, None).unwrap();
    let b = store
        .find_batch("crash")
        .unwrap()
        .expect("a writer created the batch");
    assert!(
        !store.batch_keys(b.id).unwrap().is_empty(),
        "the writers made progress"
    );
}

fn check_consistent(db: &Path, round: usize) {
    if !db.exists() {
        return; // Killed before it created anything.
    }
    let Ok(store) = Store::open(db, None) else {
        // Killed between creating the key file and the database; only those two may exist.
        return;
    };
    let report = store.verify_audit().unwrap();
    assert!(
        report.is_intact(),
        "round {round}: {:?}",
        report.first_broken
    );
    let Some(b) = store.find_batch("crash").unwrap() else {
        return;
    };
    let keys = store.batch_keys(b.id).unwrap();
    for key in &keys {
        let n = key.id.0 as usize - 1;
        assert_eq!(
            store.key_secret(key.id).unwrap().as_slice(),
            secret(n as u8).as_slice()
        );
    }
    // Per device, at most one live key (the writer supersedes the previous one).
    for device in store.list_devices().unwrap() {
        let live = store
            .device_keys(device.id)
            .unwrap()
            .into_iter()
            .filter(|k| KeyState::ACTIVE.contains(&k.state))
            .count();
        assert!(
            live <= 1,
            "round {round}: device {} has {live} live keys",
            device.serial
        );
    }
}
