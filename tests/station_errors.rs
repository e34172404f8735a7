//! The exact line `keyprov` prints for station errors an operator meets: each names the file
//! once and its cause once (regressions: causes printed twice, "x: y: y"; database errors that
//! did not name the database), a second run refused while another holds the station, and a
//! lost master key that used to be silently replaced.

mod station_support;

use std::io::Write;

use station_support::{Bench, ok, run};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `keyprov provision` on the bench's tokens and database, plus `extra`.
fn provision(bench: &Bench, db: &str, extra: &[&str]) -> std::process::Output {
    let emu = bench.emu_arg();
    let mut args = vec!["provision", "--batch", "b", "--emulator", &emu, "--db", db];
    args.extend_from_slice(extra);
    run(&args)
}

/// A first batch that succeeds, so that the database holds sealed keys.
fn provision_first(bench: &Bench, db: &str) {
    let emu = bench.emu_arg();
    ok(&[
        "provision",
        "--batch",
        "first",
        "--emulator",
        &emu,
        "--db",
        db,
    ]);
}

fn bench() -> Bench {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 2);
    bench.set_latency(5, 1);
    bench
}

/// The one line a failed command prints, asserting it printed nothing else.
fn error_line(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "the command must fail");
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    lines[0].to_string()
}

#[test]
fn an_unwritable_database_directory_is_named_once_with_its_cause_once() {
    let bench = bench();
    // A file where the database directory should be (root may write anywhere else).
    let blocker = bench.path("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let db = blocker.join("station.db");
    let out = provision(&bench, &db.display().to_string(), &[]);
    assert_eq!(
        error_line(&out),
        format!(
            "error: cannot create directory {}: File exists (os error 17)",
            blocker.display()
        )
    );
}

#[test]
fn a_corrupt_database_file_is_named_once_with_its_cause_once() {
    let bench = bench();
    let db = bench.path("corrupt.db");
    std::fs::write(&db, [0x5a_u8; 4096]).unwrap();
    let db_arg = db.display().to_string();
    let expected = format!(
        "error: database {db_arg}: file is not a database (damaged, or not a station database)"
    );
    assert_eq!(error_line(&provision(&bench, &db_arg, &[])), expected);
    assert!(
        !bench.path("master.key").exists(),
        "no master key is created beside a file that is not a station database"
    );
    // The read-only commands say the same.
    assert_eq!(
        error_line(&run(&["batch", "list", "--db", &db_arg])),
        expected
    );
    assert_eq!(
        error_line(&run(&["audit", "verify", "--db", &db_arg])),
        expected
    );
}

#[test]
fn a_wrong_passphrase_names_the_master_key_once() {
    let bench = bench();
    let db = bench.db().display().to_string();
    let out = station_support::keyprov()
        .args(["provision", "--batch", "b", "--emulator", &bench.emu_arg()])
        .args(["--db", &db])
        .env("KEYPROV_PASSPHRASE", "the right one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = station_support::keyprov()
        .args([
            "batch",
            "export",
            "b",
            "-o",
            "/dev/null",
            "--password",
            "pw-pw-pw-pw",
        ])
        .args(["--db", &db])
        .env("KEYPROV_PASSPHRASE", "a wrong one")
        .output()
        .unwrap();
    let key = bench.db().with_file_name("master.key");
    assert_eq!(
        error_line(&out),
        format!("error: wrong passphrase for master key {}", key.display())
    );
}

#[test]
fn a_second_run_is_refused_at_once_naming_the_database_and_the_holder() {
    let bench = bench();
    let db = bench.db().display().to_string();
    provision_first(&bench, &db);
    // This test process holds the station lock, as a running `keyprov provision` would.
    let lock = bench.db().with_file_name("station.db.lock");
    let mut held = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    held.lock().unwrap();
    held.set_len(0).unwrap();
    writeln!(held, "{}", std::process::id()).unwrap();
    let message = format!(
        "error: station database {db} is in use: another provisioning, re-issue or import run \
         (process {}) holds its lock; wait for it to finish, then run again",
        std::process::id()
    );
    let started = std::time::Instant::now();
    assert_eq!(error_line(&provision(&bench, &db, &[])), message);
    let serial = &bench.tokens()[0].serial;
    let emu = bench.emu_arg();
    let reissue = run(&["reissue", serial, "--emulator", &emu, "--db", &db]);
    assert_eq!(error_line(&reissue), message);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Reading needs no lock.
    ok(&["batch", "list", "--db", &db]);
    ok(&["audit", "verify", "--db", &db]);
    drop(held);
    ok(&["provision", "--batch", "b", "--emulator", &emu, "--db", &db]);
}

#[test]
fn a_missing_master_key_beside_sealed_keys_is_an_error_and_nothing_is_replaced() {
    let bench = bench();
    let db = bench.db().display().to_string();
    provision_first(&bench, &db);
    let key = bench.db().with_file_name("master.key");
    let backup = bench.path("master.key.backup");
    std::fs::rename(&key, &backup).unwrap();
    let line = error_line(&provision(&bench, &db, &[]));
    assert!(
        line.starts_with(&format!(
            "error: master key {} is missing, but the station database {db} holds ",
            key.display()
        )),
        "{line}"
    );
    assert!(
        line.contains("restore master.key from your backup"),
        "{line}"
    );
    assert!(!key.exists(), "no new master key was created");
    // Restored from the backup, everything works again.
    std::fs::rename(&backup, &key).unwrap();
    ok(&[
        "provision",
        "--batch",
        "b",
        "--emulator",
        &bench.emu_arg(),
        "--db",
        &db,
    ]);
    ok(&["audit", "verify", "--db", &db]);
}

#[test]
fn the_rerun_advice_follows_the_engines_retryable_flag() {
    let bench = bench();
    let db = bench.db().display().to_string();
    let victim = bench.tokens()[0].serial.clone();
    let fault = keyprov_drivers::emulator::Fault::UnplugMidWrite;
    keyprov_drivers::emulator::inject_fault(&bench.emulators(), &victim, fault).unwrap();
    let line = error_line(&provision(&bench, &db, &[]));
    assert!(line.starts_with("error: 1 of 2 tokens failed ("), "{line}");
    assert!(
        line.ends_with("; re-run the same command to retry them"),
        "{line}"
    );
    let out = ok(&["batch", "show", "b", "--db", &db, "--json"]);
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = detail["tokens"].as_array().unwrap();
    let row = |serial: &str| rows.iter().find(|t| t["serial"] == serial).unwrap();
    assert_eq!(row(&victim)["state"], "failed");
    assert_eq!(row(&victim)["retryable"], true);
    assert_eq!(row(&bench.tokens()[1].serial)["retryable"], false);
}
