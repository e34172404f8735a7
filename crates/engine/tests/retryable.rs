//! Regression test: whether a failed token may succeed when the batch is re-run was guessed by
//! the CLI from the error's wording. The engine now sets `TokenRow::retryable` from the
//! error's kind: an unplugged token is retryable, a token without a slot of the batch's kind
//! is not.

use keyprov_drivers::Family;
use keyprov_drivers::emulator::{self, Fault, Latency};
use keyprov_engine::api::{BatchRequest, StationConfig, TokenRow};
use keyprov_engine::{Cancel, Station};

fn station(dir: &std::path::Path) -> (Station, Vec<String>) {
    let tokens = dir.join("tokens");
    let added = emulator::add(&tokens, Family::Yubikey, 2, None).unwrap();
    for t in &added {
        let fast = Latency {
            write_ms: 2,
            other_ms: 1,
        };
        emulator::set_latency(&tokens, &t.serial, fast).unwrap();
    }
    let station = Station::open(StationConfig {
        db_path: Some(dir.join("station.db")),
        emulator_dir: Some(tokens),
        ..StationConfig::default()
    })
    .unwrap();
    (station, added.into_iter().map(|t| t.serial).collect())
}

fn request(name: &str, otp: &str) -> BatchRequest {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "otp": otp,
        "digits": 6,
        "mode": { "kind": "local" },
    }))
    .unwrap()
}

fn row<'a>(rows: &'a [TokenRow], serial: &str) -> &'a TokenRow {
    rows.iter().find(|t| t.serial == serial).unwrap()
}

#[test]
fn an_unplugged_token_fails_retryable_and_the_rerun_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (station, serials) = station(dir.path());
    let tokens = dir.path().join("tokens");
    emulator::inject_fault(&tokens, &serials[0], Fault::UnplugMidWrite).unwrap();

    let summary = station
        .provision(request("b", "hotp"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((summary.verified, summary.failed), (1, 1));
    let detail = station.batch("b").unwrap();
    let failed = row(&detail.tokens, &serials[0]);
    assert_eq!(failed.state, "failed");
    assert!(failed.retryable, "{failed:?}");
    assert!(!row(&detail.tokens, &serials[1]).retryable);
    // The flag is in the JSON the GUI and `--json` receive.
    let json = serde_json::to_value(failed).unwrap();
    assert_eq!(json["retryable"], true);

    emulator::set_plugged(&tokens, &serials[0], true).unwrap();
    let summary = station
        .provision(request("b", "hotp"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((summary.verified, summary.failed), (2, 0));
    let detail = station.batch("b").unwrap();
    assert!(
        detail
            .tokens
            .iter()
            .all(|t| !t.retryable && t.error.is_none())
    );
}

#[test]
fn a_token_without_a_slot_of_the_kind_fails_not_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let (station, serials) = station(dir.path());
    // A YubiKey's OTP slots take HOTP only: TOTP fails the same way on every run.
    let summary = station
        .provision(request("t", "totp"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!(summary.failed, 2);
    let detail = station.batch("t").unwrap();
    for serial in &serials {
        let failed = row(&detail.tokens, serial);
        assert_eq!(failed.state, "failed");
        assert!(!failed.retryable, "{failed:?}");
    }
}

#[test]
fn token_rows_without_the_flag_read_as_not_retryable() {
    // JSON written before the field existed (a saved `batch show --json`) still reads.
    let row: TokenRow = serde_json::from_value(serde_json::json!({
        "key_id": "", "family": "yubikey", "model": "YubiKey 5", "serial": "1", "slot": "",
        "otp": "hotp", "digits": 6, "counter": null, "period": null, "state": "failed",
        "verification": null, "error": "unplugged",
    }))
    .unwrap();
    assert!(!row.retryable);
}
