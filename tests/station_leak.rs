//! No plaintext secret in the station database, its WAL, or the logs at `RUST_LOG=trace`: the
//! test collects every key secret the station ever issued (exported, revoked or interrupted)
//! and searches those files for its raw bytes, lower- and upper-case hex and base64.

mod station_support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use keyprov_store::Store;
use station_support::{Bench, PASSWORD, base64, keyprov};

fn traced_provision(bench: &Bench, batch: &str, log: &Path, kill_after: Option<Duration>) {
    let log_file = std::fs::File::create(log).expect("log file");
    let export = bench.path(&format!("{batch}.pskcxml"));
    let mut child = keyprov()
        .env("RUST_LOG", "trace")
        .args([
            "provision",
            "--batch",
            batch,
            "--emulator",
            &bench.emu_arg(),
        ])
        .args(["--db", &bench.db_arg(), "--export"])
        .arg(&export)
        .args(["--export-password", PASSWORD])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn provision");
    match kill_after {
        Some(delay) => {
            std::thread::sleep(delay);
            let _ = child.kill();
            let _ = child.wait();
        }
        None => assert!(child.wait().unwrap().success(), "provision {batch} failed"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_secret_in(file: &Path, secrets: &[Vec<u8>]) {
    let Ok(bytes) = std::fs::read(file) else {
        return;
    };
    for secret in secrets {
        let forms = [
            secret.clone(),
            hex_lower(secret).into_bytes(),
            hex_lower(secret).to_uppercase().into_bytes(),
            base64(secret).into_bytes(),
            base64(secret).trim_end_matches('=').as_bytes().to_vec(),
        ];
        for form in &forms {
            assert!(
                !find(&bytes, form),
                "a key secret appears in {}",
                file.display()
            );
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn no_plaintext_secret_in_database_wal_or_trace_logs() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 3);
    bench.add_tokens("nitrokey-pro", 2);
    bench.set_latency(30, 1);

    let first_log = bench.path("first.log");
    traced_provision(&bench, "leak-1", &first_log, None);
    // A run killed half-way leaves the WAL behind (SQLite removes it on a clean close).
    let killed_log = bench.path("killed.log");
    traced_provision(
        &bench,
        "leak-2",
        &killed_log,
        Some(Duration::from_millis(250)),
    );
    let db = bench.db();
    let wal = db.with_file_name("station.db-wal");
    let wal_copy = bench.path("wal-after-kill");
    if wal.exists() {
        std::fs::copy(&wal, &wal_copy).unwrap();
    }
    let resumed_log = bench.path("resumed.log");
    traced_provision(&bench, "leak-2", &resumed_log, None);

    let store = Store::open(&db, None).expect("open station with its master key");
    let mut secrets = Vec::new();
    for batch in store.list_batches().unwrap() {
        for key in store.batch_keys(batch.id).unwrap() {
            secrets.push(store.key_secret(key.id).unwrap().to_vec());
        }
    }
    drop(store);
    assert!(
        secrets.len() >= 10,
        "every token got a key in both batches: {}",
        secrets.len()
    );
    assert!(
        std::fs::metadata(&first_log).unwrap().len() > 0,
        "trace logging produced output"
    );

    for file in [&db, &wal, &wal_copy, &first_log, &killed_log, &resumed_log] {
        assert_no_secret_in(file, &secrets);
    }
}
