//! Regression tests of breaker #2 and #8: a Nitrokey 3 re-write is Delete then Put, so a Put
//! that fails (here: the operator touched the token for the Delete, not for the Put) left the
//! slot empty while the station kept the old key `verified` and exported it. Now the old key
//! is revoked in the journal before the write starts, the failure says the slot is empty and
//! to run again, 6982 (not touched in time) is a retryable failure, and the token's touch
//! request shows on its progress line.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use keyprov_drivers::Family;
use keyprov_drivers::emulator::{self, Latency, TouchMode};
use keyprov_engine::Cancel;
use keyprov_engine::api::{
    BatchRequest, ExportProtection, ExportRequest, OtpHash, OtpKind, ProgressEvent,
    ProvisioningMode, ReissueRequest, Stage,
};

mod common;
use common::{add_tokens, batch_request, open_station};

const PROMPT: &str = "touch the Nitrokey 3 00C00001";

/// An operator at the emulated Nitrokey 3: touches it when the progress line asks, up to
/// `touches` times; keeps every progress message.
struct Operator<'a> {
    dir: &'a std::path::Path,
    touches: usize,
    touched: AtomicUsize,
    heard: Mutex<Vec<(Stage, String)>>,
}

impl Operator<'_> {
    fn new(dir: &std::path::Path, touches: usize) -> Operator<'_> {
        Operator {
            dir,
            touches,
            touched: AtomicUsize::new(0),
            heard: Mutex::new(Vec::new()),
        }
    }

    fn hear(&self, event: ProgressEvent) {
        let Some(message) = event.message else {
            return;
        };
        if message == PROMPT && self.touched.fetch_add(1, Ordering::SeqCst) < self.touches {
            emulator::press(self.dir, &event.serial).unwrap();
        }
        self.heard.lock().unwrap().push((event.stage, message));
    }
}

#[test]
fn a_failed_nitrokey3_rewrite_revokes_the_erased_key_and_says_the_slot_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let serial = add_tokens(&tokens, Family::Nitrokey3, 1, Some(Latency::ZERO)).remove(0);
    let manual = TouchMode::Manual { timeout_ms: 700 };
    emulator::set_touch_mode(&tokens, &serial, manual).unwrap();
    let station = open_station(dir.path().join("station.db"), &tokens);

    // First provisioning: the slot is empty, one touch (for the Put) is asked and given.
    let operator = Operator::new(&tokens, usize::MAX);
    let request = BatchRequest {
        parallel: Some(1),
        ..batch_request("first", OtpKind::Hotp, OtpHash::Sha1)
    };
    let first = station
        .provision(request, &|e| operator.hear(e), &Cancel::new())
        .unwrap();
    let heard = operator.heard.lock().unwrap().clone();
    assert_eq!(first.verified, 1, "{heard:?}");
    let heard = operator.heard.lock().unwrap().clone();
    assert!(
        heard.contains(&(Stage::Writing, PROMPT.to_string())),
        "the touch request shows on the progress line: {heard:?}"
    );

    // Re-issue: the operator touches for the Delete only; the Put times out (6982).
    let operator = Operator::new(&tokens, 1);
    let reissue = ReissueRequest {
        serial: serial.clone(),
        mode: ProvisioningMode::Local,
        export: None,
    };
    let summary = station
        .reissue(reissue, &|e| operator.hear(e), &Cancel::new())
        .unwrap();
    assert_eq!((summary.verified, summary.failed), (0, 1));
    let failed = &station.batch(&summary.name).unwrap().tokens[0];
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("not touched in time"), "{error}");
    assert!(
        error.ends_with(
            "the token's slot hotp:0 is now empty (its old key was erased and is revoked): \
             run again to provision it"
        ),
        "{error}"
    );
    assert!(failed.retryable, "6982 is retryable");

    // The device's slot is empty; the station agrees: the old key is revoked, not exported.
    let err = emulator::touch(&tokens, &serial, Some(0)).unwrap_err();
    assert!(err.to_string().contains("not programmed"), "{err}");
    let old = &station.batch("first").unwrap().tokens[0];
    assert_eq!(old.state, "revoked");
    let export = ExportRequest {
        path: dir.path().join("first.pskc"),
        protection: ExportProtection::Password {
            password: "rewrite test".into(),
        },
        target: Default::default(),
    };
    let err = station.export_batch("first", export).unwrap_err();
    assert_eq!(err.code(), "nothing_to_export", "{err}");
    let store = keyprov_store::Store::open(station.db_path(), None).unwrap();
    let revoked = store
        .events(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "key.revoked")
        .map(|e| e.detail.to_string())
        .find(|d| d.contains("erased by the re-write of slot hotp:0"));
    assert!(revoked.is_some(), "the audit log says why the old key went");
    assert!(station.audit_verify().unwrap().ok);

    // The advised re-run (the same re-issue) provisions the empty slot with the erased key's
    // profile.
    let operator = Operator::new(&tokens, usize::MAX);
    let again = ReissueRequest {
        serial: serial.clone(),
        mode: ProvisioningMode::Local,
        export: None,
    };
    let summary = station
        .reissue(again, &|e| operator.hear(e), &Cancel::new())
        .unwrap();
    assert_eq!((summary.verified, summary.failed), (1, 0));
    let row = &station.batch(&summary.name).unwrap().tokens[0];
    assert_eq!(
        (row.slot.as_str(), row.state.as_str()),
        ("hotp:0", "verified")
    );
    let otp = emulator::touch(&tokens, &serial, Some(0)).unwrap();
    assert_eq!(otp.len(), 6);
}

/// Breaker #10: a Nitrokey 3 unplugged during a write was reported as "unplugged during
/// open" (the last failed reopen), not as the write it broke.
#[test]
fn unplugged_mid_write_names_the_write_not_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let serial = add_tokens(&tokens, Family::Nitrokey3, 1, Some(Latency::ZERO)).remove(0);
    emulator::set_touch_mode(&tokens, &serial, TouchMode::Auto { delay_ms: 1 }).unwrap();
    emulator::inject_fault(&tokens, &serial, emulator::Fault::UnplugMidWrite).unwrap();
    let station = open_station(dir.path().join("station.db"), &tokens);
    let request: BatchRequest = serde_json::from_value(serde_json::json!({
        "name": "unplugged",
        "otp": "totp",
        "digits": 6,
        "mode": { "kind": "local" },
    }))
    .unwrap();
    let summary = station.provision(request, &|_| {}, &Cancel::new()).unwrap();
    assert_eq!(summary.failed, 1);
    let row = &station.batch("unplugged").unwrap().tokens[0];
    let error = row.error.clone().unwrap_or_default();
    assert!(error.contains("unplugged during write report"), "{error}");
    assert!(!error.contains("during open"), "{error}");
    assert!(row.retryable);
}
