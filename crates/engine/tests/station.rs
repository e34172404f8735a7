//! The `Station` API as the GUI uses it, on emulated tokens: progress events, cancellation
//! and resume, listing, export and re-issue.

use std::sync::Mutex;

use keyprov_drivers::Family;
use keyprov_drivers::emulator;
use keyprov_engine::api::{
    BatchRequest, ExportProtection, ExportRequest, OtpHash, OtpKind, ProgressEvent,
    ProvisioningMode, ReissueRequest, Stage,
};
use keyprov_engine::{Cancel, Station};

mod common;
use common::{FAST, add_tokens, batch_request, open_station};

fn station(dir: &std::path::Path, yubikeys: u32, nitrokeys: u32) -> Station {
    let tokens = dir.join("tokens");
    add_tokens(&tokens, Family::Yubikey, yubikeys, Some(FAST));
    add_tokens(&tokens, Family::NitrokeyPro, nitrokeys, Some(FAST));
    open_station(dir.join("station").join("station.db"), tokens)
}

fn request(name: &str) -> BatchRequest {
    BatchRequest {
        operator: Some("tester".into()),
        ..batch_request(name, OtpKind::Hotp, OtpHash::Sha1)
    }
}

#[test]
fn station_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Station>();
    shareable::<Cancel>();
}

#[test]
fn progress_reports_every_stage_and_counts_finished_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 2, 1);
    let events: Mutex<Vec<ProgressEvent>> = Mutex::new(Vec::new());
    let summary = station
        .provision(
            request("p"),
            &|e| events.lock().unwrap().push(e),
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!(
        (summary.tokens, summary.verified, summary.failed),
        (3, 3, 0)
    );
    assert_eq!(summary.state, "completed");
    let events = events.into_inner().unwrap();
    for serial in ["10000001", "10000002", "00A00001"] {
        let stages: Vec<Stage> = events
            .iter()
            .filter(|e| e.serial == serial)
            .map(|e| e.stage)
            .collect();
        assert_eq!(
            stages,
            [
                Stage::Queued,
                Stage::Dskpp,
                Stage::Writing,
                Stage::Verifying,
                Stage::Done
            ],
            "{serial}"
        );
    }
    let last = events.iter().map(|e| e.finished).max().unwrap();
    assert_eq!((last, events[0].total), (3, 3));
    let detail = station.batch("p").unwrap();
    assert!(
        detail
            .tokens
            .iter()
            .all(|t| t.state == "verified" && t.counter == Some(1))
    );
    assert_eq!(station.batches().unwrap().len(), 1);
    assert!(station.audit_verify().unwrap().ok);
}

#[test]
fn a_cancelled_batch_holds_no_active_key_and_resumes_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 2, 2);
    let cancel = Cancel::new();
    cancel.cancel();
    let summary = station.provision(request("c"), &|_| {}, &cancel).unwrap();
    assert_eq!(summary.state, "cancelled");
    assert_eq!(summary.verified, 0);
    let detail = station.batch("c").unwrap();
    assert!(
        detail
            .tokens
            .iter()
            .all(|t| !matches!(t.state.as_str(), "written" | "verified"))
    );

    let resumed = station
        .provision(request("c"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((resumed.state.as_str(), resumed.verified), ("completed", 4));
}

#[test]
fn a_batch_is_resumed_only_with_its_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 1, 0);
    station
        .provision(request("s"), &|_| {}, &Cancel::new())
        .unwrap();
    let mut other = request("s");
    other.digits = 8;
    let err = station
        .provision(other, &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_eq!(err.code(), "batch_mismatch");
    assert!(err.to_string().contains("hotp 6 digits"), "{err}");
}

#[test]
fn reissue_replaces_the_key_and_exports_only_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 1, 1);
    station
        .provision(request("first"), &|_| {}, &Cancel::new())
        .unwrap();
    let old = station.batch("first").unwrap();
    let old_key = old
        .tokens
        .iter()
        .find(|t| t.serial == "00A00001")
        .unwrap()
        .key_id
        .clone();

    let export = dir.path().join("reissue.pskcxml");
    let summary = station
        .reissue(
            ReissueRequest {
                serial: "00A00001".into(),
                mode: ProvisioningMode::Local,
                export: Some(ExportRequest {
                    path: export.clone(),
                    protection: ExportProtection::Key {
                        key_hex: "11".repeat(16),
                    },
                    target: Default::default(),
                }),
            },
            &|_| {},
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!((summary.tokens, summary.verified), (1, 1));
    assert_eq!(summary.exports.len(), 1);
    assert_eq!(summary.exports[0].keys, 1);
    assert!(export.exists());

    let first = station.batch("first").unwrap();
    let row = first
        .tokens
        .iter()
        .find(|t| t.serial == "00A00001")
        .unwrap();
    assert_eq!(
        (row.key_id.as_str(), row.state.as_str()),
        (old_key.as_str(), "revoked")
    );
    let untouched = first
        .tokens
        .iter()
        .find(|t| t.serial == "10000001")
        .unwrap();
    assert_eq!(untouched.state, "verified");
    assert!(station.audit_verify().unwrap().ok);

    let err = station
        .reissue(
            ReissueRequest {
                serial: "99999999".into(),
                mode: ProvisioningMode::Local,
                export: None,
            },
            &|_| {},
            &Cancel::new(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "unknown_token");
}

#[test]
fn revealing_a_secret_gives_the_key_the_token_computes_with() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 0, 1);
    station
        .provision(request("r"), &|_| {}, &Cancel::new())
        .unwrap();
    let row = station.batch("r").unwrap().tokens.remove(0);
    let secret = station.reveal_secret(&row.key_id).unwrap();
    let key = hex::decode(secret.as_str()).unwrap();
    let digits = keyprov_drivers::Digits::new(6).unwrap();
    let expected = keyprov_drivers::hotp(&key, row.counter.unwrap(), digits);
    let shown = emulator::touch(&dir.path().join("tokens"), &row.serial, Some(0)).unwrap();
    assert_eq!(shown, expected);
}

/// Regression: a DSKPP run cut off after the server issued its key but before the station
/// recorded it left the key active on the server. Resuming the batch now revokes it there.
#[test]
fn resume_revokes_the_server_key_of_an_abandoned_local_run() {
    use std::sync::Arc;

    use keyprov_dskpp::client::{self, ClientConfig, DeviceKey, LocalTransport, Variant};
    use keyprov_dskpp::server::{Server, ServerConfig};
    use keyprov_dskpp::store::{AcRecord, SharedKey, SqliteStore, Store as _};
    use keyprov_dskpp::{Secret, ac};

    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), 1, 0);
    let cancel = Cancel::new();
    cancel.cancel();
    station.provision(request("a"), &|_| {}, &cancel).unwrap();

    // The server side of a run the station started and never finished: its AC and K_SHARED,
    // and a complete 4-pass exchange, on the station's own database.
    let db = station.db_path().to_path_buf();
    let key_file = keyprov_store::Store::master_key_path(&db);
    let master = keyprov_store::MasterKey::load_or_create(&key_file, None).unwrap();
    let server_store = Arc::new(SqliteStore::open(&db, Arc::new(master)).unwrap());
    let client_id = "0BADC0DE0BADC0DE";
    let password = "0123456789ABCDEF0123";
    let shared = Secret::random(16);
    server_store
        .put_authentication_code(&AcRecord {
            client_id: client_id.into(),
            password: Secret::from_slice(password.as_bytes()),
            expires: keyprov_dskpp::store::now() + 600,
            used: false,
            failures: 0,
        })
        .unwrap();
    let name = "test".to_string();
    let secret = shared.clone();
    server_store
        .put_shared_key(client_id, &SharedKey { name, secret })
        .unwrap();
    let url = "urn:keyprov:test";
    let server = Server::new(ServerConfig::new(url), server_store.clone()).unwrap();
    let mut config = ClientConfig::new(url, Variant::FourPass);
    config.ac = Some(ac::parse(&ac::encode(client_id, password, false).unwrap()).unwrap());
    config.device_key = Some(DeviceKey {
        name: None,
        secret: shared,
    });
    let issued = client::provision(&config, &mut LocalTransport { server: &server }).unwrap();

    // The journal names the run (`engine.dskpp_started`) and nothing after it.
    let journal = keyprov_store::Store::open(&db, None).unwrap();
    let batch = journal.find_batch("a").unwrap().unwrap();
    let device = journal.batch_devices(batch.id).unwrap().remove(0).device;
    journal
        .record_event(&keyprov_store::NewEvent {
            kind: "engine.dskpp_started".into(),
            batch: Some(batch.id),
            device: Some(device.id),
            key: None,
            detail: serde_json::json!({ "client_id": client_id }),
        })
        .unwrap();
    assert!(
        server_store
            .issued_keys()
            .unwrap()
            .iter()
            .any(|k| k.key_id == issued.key_id)
    );

    let resumed = station
        .provision(request("a"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((resumed.state.as_str(), resumed.verified), ("completed", 1));
    let keys = server_store.keys_for_client(client_id).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, issued.key_id);
    let revocation = keys[0]
        .revoked
        .as_ref()
        .expect("the abandoned key is revoked");
    assert!(
        revocation.reason.contains(client_id),
        "{}",
        revocation.reason
    );
    assert!(
        !server_store
            .issued_keys()
            .unwrap()
            .iter()
            .any(|k| k.key_id == issued.key_id),
        "a revoked key is not exported"
    );
    let abandoned = journal
        .events(Some(batch.id))
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "engine.dskpp_abandoned")
        .expect("the run is recorded as abandoned");
    assert_eq!(
        abandoned.detail["server_keys_revoked"],
        serde_json::json!([issued.key_id])
    );
}
