//! Regression tests: `keyprov import` wrote the station store without the station lock, so it
//! could register tokens while a provisioning run was writing them. It now takes the lock that
//! `keyprov provision` and `keyprov reissue` take: beside a running batch it fails at once with
//! the same `station_busy` line, and while it writes, the lock a run would take is held.

mod seeds_support;
mod station_support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyprov_engine::{EngineError, StationLock, lock_path};
use seeds_support::{keyprov, keyprov_ok, workspace};
use station_support::Bench;

/// The pre-shared key of RFC 6030 figure 6.
const PSK_F6: &str = "12345678901234567890123456789012";

fn corpus(file: &str) -> String {
    let path = workspace().join("../shared/interop/pskc-corpus").join(file);
    assert!(path.exists(), "{} missing (../shared)", path.display());
    path.display().to_string()
}

fn figure6() -> String {
    corpus("python-pskc/rfc6030/figure6.pskcxml")
}

fn import_args<'a>(file: &'a str, db: &'a str) -> [&'a str; 6] {
    ["import", file, "--key", PSK_F6, "--db", db]
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KEYPROV_DB")
        .env_remove("KEYPROV_PASSPHRASE")
        .env_remove("KEYPROV_EMULATOR_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyprov")
}

/// Waits until the process `pid` is named in the lock file of `db` (a run writes its pid
/// there once it holds the lock).
fn wait_for_holder(db: &Path, pid: u32) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(lock_path(db)).unwrap_or_default();
        if text.trim() == pid.to_string() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "process {pid} never took the station lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn busy_line(db: &Path, pid: u32) -> String {
    format!(
        "error: station database {} is in use: another provisioning, re-issue or import run \
         (process {pid}) holds its lock; wait for it to finish, then run again",
        db.display()
    )
}

fn stderr_of(mut child: Child) -> (bool, String) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), err)
}

#[test]
fn an_import_beside_a_running_provision_fails_at_once_and_writes_nothing() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    // Slow tokens (within the driver's timeouts) keep the run, and its lock, alive a while.
    bench.set_latency(900, 400);
    let (db, db_arg, emu) = (bench.db(), bench.db_arg(), bench.emu_arg());
    let args = [
        "provision",
        "--batch",
        "b",
        "--emulator",
        &emu,
        "--db",
        &db_arg,
    ];
    let mut provision = spawn(&args);
    wait_for_holder(&db, provision.id());

    let file = figure6();
    let out = keyprov(&import_args(&file, &db_arg));
    assert!(!out.status.success());
    let line = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(line, busy_line(&db, provision.id()));
    assert!(
        provision.try_wait().unwrap().is_none(),
        "the import was refused while the run still held the lock, not after waiting for it"
    );

    let (ok, err) = stderr_of(provision);
    assert!(ok, "provision: {err}");
    let batches = keyprov_ok(&["batch", "list", "--db", &db_arg, "--json"]);
    let batches: serde_json::Value = serde_json::from_str(&batches).unwrap();
    assert_eq!(
        batches.as_array().unwrap().len(),
        1,
        "only the run's batch: {batches}"
    );
    // The run over, the same import goes through.
    keyprov_ok(&import_args(&file, &db_arg));
}

#[test]
fn a_running_import_holds_the_lock_a_provision_takes() {
    let bench = Bench::new();
    let (db, db_arg) = (bench.db(), bench.db_arg());
    // A first import creates the database; the second registers the six Feitian tokens.
    keyprov_ok(&import_args(&figure6(), &db_arg));
    let feitian = corpus("python-pskc/feitian/file1.pskcxml");

    // This test holds SQLite's write lock, so the import waits inside its write for as long as
    // the test needs (well within the store's five-second busy timeout).
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let import = spawn(&["import", &feitian, "--db", &db_arg, "--json"]);
    wait_for_holder(&db, import.id());

    // The first step of `Station::provision` and `Station::reissue`.
    let started = Instant::now();
    let err = StationLock::acquire(&db).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert!(
        matches!(&err, EngineError::StationBusy { db: named, holder: Some(pid) }
            if named == &db && *pid == import.id()),
        "{err}"
    );
    assert_eq!(err.code(), "station_busy");
    assert_eq!(format!("error: {err}"), busy_line(&db, import.id()));

    tx.commit().unwrap();
    let out = import.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import: {err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"].as_array().unwrap().len(), 6, "{report}");
    // The import over, its lock is free again.
    drop(StationLock::acquire(&db).unwrap());
}
