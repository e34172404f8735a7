//! Builds the frontend (`ui/dist`, embedded by `generate_context!`) when its sources changed,
//! then runs tauri-build with an app manifest so that every command needs an explicit
//! permission in `capabilities/`.

use std::path::Path;
use std::process::{Command, Stdio};

/// The app's commands; each gets `allow-<name>`/`deny-<name>` permissions.
const COMMANDS: &[&str] = &[
    "app_info",
    "settings_get",
    "settings_set",
    "devices",
    "watch_devices",
    "attach_emulated",
    "provision",
    "cancel_run",
    "reissue",
    "batches",
    "batch",
    "export_batch",
    "audit_verify",
    "audit_log",
    "reveal_secret",
];

fn main() {
    build_frontend();
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("tauri-build failed (see the message above)");
}

/// Runs `npm run build` in `ui/` unless `KEYPROV_SKIP_UI_BUILD` is set (the Vite dev server
/// flow, or a CI step that built it already).
fn build_frontend() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=KEYPROV_SKIP_UI_BUILD");
    if std::env::var_os("KEYPROV_SKIP_UI_BUILD").is_some() {
        return;
    }
    if !ui.join("node_modules").is_dir() {
        panic!(
            "ui/node_modules is missing: run `bash scripts/setup.sh --gui` \
             (or `npm ci` in ui/) before building keyprov-station"
        );
    }
    let status = Command::new("npm")
        .args(["run", "build", "--silent"])
        .current_dir(&ui)
        // Cargo reads a build script's stdout as instructions; Vite's report goes to stderr.
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .expect("cannot run npm: install Node.js 20+ (scripts/setup.sh --gui)");
    assert!(status.success(), "`npm run build` in ui/ failed: {status}");
}
