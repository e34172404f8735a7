//! Regression tests of the station lock: two runs on one database used to interleave, and the
//! loser exported keys the winner had revoked and counted them verified. Now the second run is
//! refused at once, before it touches the store, and a run after the first one works.

use std::sync::mpsc;

use keyprov_drivers::Family;
use keyprov_drivers::emulator::Latency;
use keyprov_engine::api::{BatchRequest, ExportProtection, ExportRequest, Stage};
use keyprov_engine::{Cancel, EngineError, Station};

mod common;
use common::{add_tokens, create_open_batch, hold_lock, open_station};

fn station(dir: &std::path::Path) -> Station {
    open_station(dir.join("station").join("station.db"), dir.join("tokens"))
}

/// Two emulated YubiKeys whose writes take 400 ms, so that a run is still going when the
/// second one starts.
fn slow_tokens(dir: &std::path::Path) {
    let slow = Latency {
        write_ms: 400,
        other_ms: 1,
    };
    add_tokens(&dir.join("tokens"), Family::Yubikey, 2, Some(slow));
}

/// Built from JSON, as the GUI sends it: fields added to the API later keep their defaults.
fn request(name: &str, export: Option<ExportRequest>) -> BatchRequest {
    let mut request: BatchRequest = serde_json::from_value(serde_json::json!({
        "name": name,
        "otp": "hotp",
        "digits": 6,
        "mode": { "kind": "local" },
        "parallel": 2,
    }))
    .unwrap();
    request.export = export;
    request
}

fn export_to(path: std::path::PathBuf) -> Option<ExportRequest> {
    Some(ExportRequest {
        path,
        protection: ExportProtection::Password {
            password: "lock test".into(),
        },
        target: Default::default(),
    })
}

#[test]
fn a_second_run_on_the_same_database_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    slow_tokens(dir.path());
    let first = station(dir.path());
    let second = station(dir.path());
    let db = first.db_path().to_path_buf();

    let (writing_tx, writing_rx) = mpsc::channel();
    let writing_tx = std::sync::Mutex::new(writing_tx);
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| {
            let on_progress = |e: keyprov_engine::api::ProgressEvent| {
                if e.stage == Stage::Writing {
                    let _ = writing_tx.lock().unwrap().send(());
                }
            };
            let export = export_to(dir.path().join("first.pskc"));
            first.provision(request("first", export), &on_progress, &Cancel::new())
        });
        // The first run is writing a token now: it holds the lock.
        writing_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        let started = std::time::Instant::now();
        let export = export_to(dir.path().join("second.pskc"));
        let err = second
            .provision(request("second", export), &|_| {}, &Cancel::new())
            .unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(300),
            "refused at once, not after waiting"
        );
        assert!(
            matches!(&err, EngineError::StationBusy { db: named, .. } if named == &db),
            "{err}"
        );
        assert_eq!(err.code(), "station_busy");
        let message = err.to_string();
        assert!(message.contains(&db.display().to_string()), "{message}");
        assert!(message.contains("another provisioning, re-issue or import run"));

        // Re-issue takes the same lock; reading needs none.
        let err = second
            .reissue(
                keyprov_engine::api::ReissueRequest {
                    serial: "10000001".into(),
                    mode: keyprov_engine::api::ProvisioningMode::Local,
                    export: None,
                },
                &|_| {},
                &Cancel::new(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "station_busy", "{err}");
        assert!(second.batches().is_ok());
        assert!(second.audit_verify().unwrap().ok);
        run.join().unwrap().unwrap()
    });

    // The refused runs changed nothing: one batch, both tokens verified, one export.
    assert_eq!((summary.tokens, summary.verified), (2, 2));
    assert_eq!(summary.state, "completed");
    assert_eq!(summary.exports.len(), 1);
    assert_eq!(summary.exports[0].keys, 2);
    let names: Vec<String> = second
        .batches()
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["first"]);
    assert!(!dir.path().join("second.pskc").exists());
    let detail = second.batch("first").unwrap();
    assert!(detail.tokens.iter().all(|t| t.state == "exported"));
    assert!(second.audit_verify().unwrap().ok);

    // Once the first run is over, a new run works.
    let summary = second
        .provision(request("second", None), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((summary.state.as_str(), summary.verified), ("completed", 2));
}

#[test]
fn reading_and_exporting_a_finished_batch_need_no_lock_but_an_open_batch_does() {
    let dir = tempfile::tempdir().unwrap();
    slow_tokens(dir.path());
    let station = station(dir.path());
    station
        .provision(request("done", None), &|_| {}, &Cancel::new())
        .unwrap();
    // An open batch, as a run that is still going (or was killed) leaves it.
    create_open_batch(&station, "open");

    // Someone else (another process, as far as flock is concerned) runs a batch.
    let held = hold_lock(station.db_path());
    assert_eq!(station.batches().unwrap().len(), 2);
    assert!(station.audit_verify().unwrap().ok);
    let record = station
        .export_batch("done", export_to(dir.path().join("done.pskc")).unwrap())
        .unwrap();
    assert_eq!(record.keys, 2);
    let err = station
        .export_batch("open", export_to(dir.path().join("open.pskc")).unwrap())
        .unwrap_err();
    assert_eq!(err.code(), "station_busy", "{err}");
    let err = station
        .provision(request("done", None), &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_eq!(err.code(), "station_busy", "{err}");

    // Released (the holder ended): the open batch is refused for what it is, not the lock.
    drop(held);
    let err = station
        .export_batch("open", export_to(dir.path().join("open.pskc")).unwrap())
        .unwrap_err();
    assert_eq!(err.code(), "nothing_to_export", "{err}");
}
