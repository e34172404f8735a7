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
    _dir: tempfile::TempDir,
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
        _dir: dir,
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
