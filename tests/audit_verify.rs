//! `keyprov audit verify`: one line and exit 0 while the chain holds; non-zero naming the
//! first broken link once a row is changed behind the store's back.

use std::path::Path;
use std::process::{Command, Output};

use keyprov_store::{
    BatchMode, DeviceIdentity, HashAlgorithm, KeyProfile, NewBatch, NewKey, OtpAlgorithm, Store,
};

fn keyprov_audit(db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(["audit", "verify", "--db"])
        .arg(db)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A station database with six events: a batch, two devices, two keys, one write.
fn station(db: &Path) {
    let store = Store::open(db, None).unwrap();
    let profile = KeyProfile {
        algorithm: OtpAlgorithm::Hotp,
        digits: 6,
        period: None,
        hash: HashAlgorithm::Sha1,
    };
    let batch = store
        .create_batch(&NewBatch {
            name: "cli".to_owned(),
            profile: profile.clone(),
            mode: BatchMode::Local,
            server_url: None,
            operator: None,
            params: serde_json::json!({}),
        })
        .unwrap();
    let mut first = None;
    for serial in ["100", "200"] {
        let device = store
            .upsert_device(&DeviceIdentity {
                family: "yubikey".to_owned(),
                model: "YubiKey 5".to_owned(),
                serial: serial.to_owned(),
                firmware: "5.4.3".to_owned(),
            })
            .unwrap();
        let key = store
            .reserve_key(&NewKey {
                batch: batch.id,
                device: device.id,
                slot: "1".to_owned(),
                profile: profile.clone(),
                counter: Some(0),
                secret: b"12345678901234567890",
                dskpp_key_id: None,
                server_url: None,
            })
            .unwrap();
        first.get_or_insert(key.id);
    }
    store.mark_key_written(first.unwrap()).unwrap();
}

#[test]
fn an_intact_chain_prints_one_line_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("station.db");
    station(&db);
    let out = keyprov_audit(&db);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("audit chain intact: 6 events, head "),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn a_tampered_row_fails_naming_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("station.db");
    station(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET detail = '{\"serial\":\"999\"}' WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let out = keyprov_audit(&db);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("broken at event #3: its content does not match its hash"),
        "{stderr}"
    );
    assert!(stderr.contains("(2 events before it hold)"), "{stderr}");
}

#[test]
fn a_missing_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("absent.db");
    let out = keyprov_audit(&db);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no station database at"), "{stderr}");
    assert!(stderr.contains("absent.db"), "{stderr}");
    assert!(!db.exists(), "the audit must not create a database");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("station.db");
    station(&db);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .env_remove("RUST_LOG")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn audit_verify_reads_keyprov_db_as_the_other_commands_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("station.db");
    station(&db);
    // An empty XDG data directory: without KEYPROV_DB the audit would find no database.
    let out = Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(["audit", "verify"])
        .env("KEYPROV_DB", &db)
        .env("XDG_DATA_HOME", dir.path().join("xdg"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("audit chain intact: 6 events, head "),
        "{stdout}"
    );
}
