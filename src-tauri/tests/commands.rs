//! Command tests through Tauri's real IPC layer (`tauri::test`, mock runtime, no window
//! system): the JSON the frontend sends, the ACL of `capabilities/`, the `{code, message}`
//! errors.

use keyprov_station::settings::StationPaths;
use keyprov_station::state::StationState;
use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow, WebviewWindowBuilder};

struct Harness {
    dir: tempfile::TempDir,
    window: WebviewWindow<MockRuntime>,
    settings_file: std::path::PathBuf,
}

fn harness(label: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let paths = StationPaths::new(&dir.path().join("config"), &dir.path().join("data"));
    let settings_file = paths.settings_file.clone();
    let app = keyprov_station::register(mock_builder())
        .build(tauri::generate_context!())
        .unwrap();
    app.manage(StationState::new(paths).unwrap());
    let window = WebviewWindowBuilder::new(&app, label, Default::default())
        .build()
        .unwrap();
    Harness {
        dir,
        window,
        settings_file,
    }
}

fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(body),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    tauri::test::get_ipc_response(window, request).map(|body| body.deserialize().unwrap())
}

#[test]
fn settings_round_trip_through_ipc_and_disk() {
    let h = harness("main");
    let view = invoke(&h.window, "settings_get", json!({})).unwrap();
    assert_eq!(view["settings"]["demo"], false);
    assert_eq!(view["passphrase_set"], false);

    let settings = json!({
        "db_path": "/srv/keyprov/station.db",
        "server_url": "https://prov.example.org/dskpp",
        "server_ca_pem": null,
        "demo": true
    });
    let body = json!({ "settings": settings, "passphrase": "correct horse" });
    let view = invoke(&h.window, "settings_set", body).unwrap();
    assert_eq!(view["settings"], settings);
    assert_eq!(view["passphrase_set"], true);

    let on_disk: Value = serde_json::from_slice(&std::fs::read(&h.settings_file).unwrap()).unwrap();
    assert_eq!(on_disk, settings);
    let text = std::fs::read_to_string(&h.settings_file).unwrap();
    assert!(
        !text.contains("correct horse"),
        "the passphrase must never reach the disk"
    );
}

#[test]
fn invalid_settings_come_back_as_code_and_message() {
    let h = harness("main");
    let settings = json!({ "server_url": "ftp://prov.example.org" });
    let err = invoke(&h.window, "settings_set", json!({ "settings": settings })).unwrap_err();
    assert_eq!(err["code"], "invalid_request");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("ftp://prov.example.org"), "{message}");
    assert!(
        !h.settings_file.exists(),
        "a rejected setting is not stored"
    );
}

#[test]
fn a_window_outside_the_capability_gets_no_commands() {
    let h = harness("popup");
    let err = invoke(&h.window, "settings_get", json!({})).unwrap_err();
    let message = err.as_str().unwrap_or_default();
    assert!(message.contains("not allowed"), "{err}");
}

/// The whole station flow through IPC with emulated tokens: attach, provision (progress goes
/// to a channel), list, export, audit, reveal.
#[test]
fn a_local_hotp_batch_over_emulated_tokens() {
    let h = harness("main");
    let db = h.dir.path().join("station.db");
    let settings = json!({ "db_path": db, "demo": true });
    invoke(&h.window, "settings_set", json!({ "settings": settings })).unwrap();

    let request = json!({ "model": "yubikey", "count": 3 });
    let added = invoke(&h.window, "attach_emulated", json!({ "request": request })).unwrap();
    assert_eq!(added.as_array().unwrap().len(), 3);
    let devices = invoke(&h.window, "devices", json!({})).unwrap();
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert!(
        devices
            .iter()
            .all(|d| d["emulated"] == true && d["family"] == "yubikey")
    );

    let request = json!({
        "name": "ipc", "otp": "hotp", "digits": 6, "period": 30, "count": null,
        "mode": { "kind": "local" }, "export": null, "operator": "test"
    });
    let body = json!({ "request": request, "onProgress": "__CHANNEL__:7" });
    let summary = invoke(&h.window, "provision", body).unwrap();
    assert_eq!(summary["state"], "completed", "{summary}");
    assert_eq!(
        (summary["tokens"].as_u64(), summary["verified"].as_u64()),
        (Some(3), Some(3))
    );
    let batch_id = summary["id"].as_i64().unwrap();

    let batches = invoke(&h.window, "batches", json!({})).unwrap();
    assert_eq!(batches[0]["name"], "ipc");
    let detail = invoke(&h.window, "batch", json!({ "idOrName": "ipc" })).unwrap();
    let tokens = detail["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| t["state"] == "verified"), "{detail}");

    let protection = json!({ "kind": "password", "password": "ipc-export-password" });
    let request = json!({ "path": "", "protection": protection, "target": "generic" });
    let body = json!({ "idOrName": batch_id.to_string(), "request": request });
    let record = invoke(&h.window, "export_batch", body).unwrap();
    assert_eq!(record["keys"], 3);
    let path = std::path::PathBuf::from(record["path"].as_str().unwrap());
    assert!(
        path.starts_with(h.dir.path().join("data/exports")),
        "{}",
        path.display()
    );
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.contains("KeyContainer") && !xml.contains("ipc-export-password"));

    let report = invoke(&h.window, "audit_verify", json!({})).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let body = json!({ "batchId": batch_id, "limit": 1000 });
    let log = invoke(&h.window, "audit_log", body).unwrap();
    let log = log.as_array().unwrap();
    assert!(!log.is_empty());
    assert!(log.iter().all(|e| e["batch"] == batch_id));
    assert!(log.iter().any(|e| e["serial"].is_string()), "{log:?}");
    assert!(
        log.iter()
            .all(|e| e["hash_prefix"].as_str().unwrap().len() == 12)
    );
    let seqs: Vec<i64> = log.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    let key_id = tokens[0]["key_id"].as_str().unwrap();
    let secret = invoke(&h.window, "reveal_secret", json!({ "keyId": key_id })).unwrap();
    let secret = secret.as_str().unwrap();
    assert_eq!(secret.len(), 40, "a 20-byte HOTP key in hex");
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!log.iter().any(|e| e["detail"].to_string().contains(secret)));

    // Re-issue one token: a one-token batch whose new key replaces the old one.
    let serial = tokens[0]["serial"].clone();
    let request = json!({ "serial": serial, "mode": { "kind": "local" }, "export": null });
    let body = json!({ "request": request, "onProgress": "__CHANNEL__:8" });
    let reissued = invoke(&h.window, "reissue", body).unwrap();
    assert_eq!(
        (reissued["tokens"].as_u64(), reissued["verified"].as_u64()),
        (Some(1), Some(1))
    );
    assert_ne!(reissued["id"], batch_id);
    let detail = invoke(&h.window, "batch", json!({ "idOrName": "ipc" })).unwrap();
    let old = detail["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["serial"] == serial);
    assert_eq!(old.unwrap()["state"], "revoked", "{detail}");

    assert_eq!(invoke(&h.window, "cancel_run", json!({})).unwrap(), false);
    let err = invoke(&h.window, "batch", json!({ "idOrName": "nope" })).unwrap_err();
    assert_eq!(err["code"], "unknown_batch", "{err}");
}
