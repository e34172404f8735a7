//! End-to-end test of the built desktop app in a real WebKit, driven through tauri-driver:
//! attach 6 emulated tokens, provision a local HOTP batch, export it with a password, check
//! the file with python-pskc, and save screenshots of the Devices, Run and History screens
//! to `docs/screenshots/`. Needs an X display (`xvfb-run`), `tauri-driver`,
//! `WebKitWebDriver` and python-pskc (`scripts/setup.sh --gui`).

mod driver;

use driver::Driver;
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const APP: &str = env!("CARGO_BIN_EXE_keyprov-station");
const TOKENS: usize = 6;
const EXPORT_PASSWORD: &str = "e2e-export-passphrase";

#[tokio::test(flavor = "multi_thread")]
async fn provision_six_emulated_tokens_and_export() {
    let python = pskc_python();
    let tmp = tempfile::tempdir().unwrap();
    let env = isolated_env(tmp.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-tauri-driver.log");
    let driver = Driver::start(&env, &log);
    eprintln!("tauri-driver log: {}", log.display());

    // Start-up: from asking for a session (which launches the app) to a rendered window.
    let started = Instant::now();
    let client = driver.session(Path::new(APP)).await;
    let session_ms = started.elapsed().as_millis();
    find(&client, "nav.screens").await;
    let rendered_ms = started.elapsed().as_millis();
    let uptime = invoke(&client, "app_info", json!({})).await["uptime_ms"].clone();
    println!(
        "app start: session {session_ms} ms, first render {rendered_ms} ms after launch \
         (process uptime {uptime} ms when the UI answered)"
    );

    let serials = attach_tokens(&client, &tmp.path().join("emulators")).await;
    screenshot(&client, "devices").await;

    run_batch(&client, &tmp.path().join("emulators"), &serials[0]).await;
    let export = export_from_run(&client).await;
    screenshot(&client, "run").await;

    let keys = read_export(&python, &export);
    assert_eq!(keys.len(), TOKENS, "keys in {}: {keys:?}", export.display());
    let mut exported: Vec<String> = keys.iter().map(|k| k["serial"].to_string()).collect();
    let mut attached: Vec<String> = serials.iter().map(|s| format!("{s:?}")).collect();
    exported.sort();
    attached.sort();
    assert_eq!(exported, attached, "one key per attached token");
    for key in &keys {
        assert_eq!(key["algorithm"], "urn:ietf:params:xml:ns:keyprov:pskc:hotp");
        assert_eq!(key["digits"], 6);
        assert_eq!(
            key["secret"].as_str().unwrap().len(),
            40,
            "a 20-byte HOTP key"
        );
    }
    assert_wrong_password_fails(&python, &export);

    history(&client, &keys).await;
    client.close().await.unwrap();
}

/// Turns on the demo switch and attaches one token more than the batch needs; unplugging
/// that one must remove its row (a hotplug event through the watch channel). Returns the
/// serials left.
async fn attach_tokens(client: &Client, emulator_dir: &Path) -> Vec<String> {
    find(client, "#no-devices").await;
    click(client, "#demo-switch").await;
    let count = find(client, "#emulator-count").await;
    count.clear().await.unwrap();
    count.send_keys(&(TOKENS + 1).to_string()).await.unwrap();
    click(client, "#attach").await;
    let rows = "#device-table tbody tr";
    let count_is = |n: usize| format!("document.querySelectorAll('{rows}').length === {n}");
    wait_until(client, &count_is(TOKENS + 1)).await;
    let mut serials = Vec::new();
    for row in client.find_all(Locator::Css(rows)).await.unwrap() {
        serials.push(row.attr("data-serial").await.unwrap().expect("data-serial"));
    }

    let unplugged = serials.pop().unwrap();
    keyprov_drivers::emulator::set_plugged(emulator_dir, &unplugged, false).unwrap();
    wait_until(client, &count_is(TOKENS)).await;
    let gone = format!("document.querySelector('{rows}[data-serial=\"{unplugged}\"]') === null");
    wait_until(client, &gone).await;
    serials
}

/// Starts a local HOTP batch over every attached token. The first token is unplugged by
/// the emulator in the middle of its write, so the batch ends with it failed; plugged back
/// in, it is provisioned by "Retry failed tokens", and then every row must be verified.
async fn run_batch(client: &Client, emulator_dir: &Path, flaky: &str) {
    let fault = keyprov_drivers::emulator::Fault::UnplugMidWrite;
    keyprov_drivers::emulator::inject_fault(emulator_dir, flaky, fault).unwrap();
    click(client, "#nav-new-batch").await;
    let name = find(client, "#batch-name").await;
    name.clear().await.unwrap();
    name.send_keys("e2e-hotp").await.unwrap();
    click(client, "#start-batch").await;
    find(client, "#run-table").await;

    let failed = format!(
        "document.querySelector('#run-status').dataset.status === 'failed' \
         && document.querySelector('#run-table tr[data-serial=\"{flaky}\"]').dataset.stage \
            === 'failed'"
    );
    wait_for_run(client, &failed).await;
    keyprov_drivers::emulator::set_plugged(emulator_dir, flaky, true).unwrap();
    click(client, "#resume-run").await;

    let verified = format!(
        "document.querySelectorAll('#run-table tbody tr[data-stage=done]').length === {TOKENS} \
         && document.querySelector('#run-status').dataset.status === 'completed'"
    );
    wait_for_run(client, &verified).await;
}

async fn wait_for_run(client: &Client, condition: &str) {
    let deadline = Duration::from_secs(180);
    if let Err(state) = poll(client, condition, deadline).await {
        let table = client
            .find(Locator::Css("#screen-run"))
            .await
            .unwrap()
            .text()
            .await;
        panic!("run not as expected after {deadline:?} ({state}): {table:?}");
    }
}

/// Exports the finished batch from the Run screen with a password; returns the file.
async fn export_from_run(client: &Client) -> PathBuf {
    find(client, "#run-export-password")
        .await
        .send_keys(EXPORT_PASSWORD)
        .await
        .unwrap();
    find(client, "#run-export-confirm")
        .await
        .send_keys(EXPORT_PASSWORD)
        .await
        .unwrap();
    click(client, "#run-export-submit").await;
    let path = find(client, ".export-path").await.text().await.unwrap();
    PathBuf::from(path.trim())
}

/// History: the batch and its keys, the audit chain, and one secret revealed on request,
/// which must be the key python-pskc decrypted from the export.
async fn history(client: &Client, keys: &[Value]) {
    click(client, "#nav-history").await;
    click(client, "#batch-table tbody tr td:nth-child(2)").await;
    let rows = "#token-table tbody tr";
    wait_until(
        client,
        &format!("document.querySelectorAll('{rows}').length === {TOKENS}"),
    )
    .await;
    click(client, "#verify-audit").await;
    let audit = find(client, "#audit-result").await.text().await.unwrap();
    assert!(audit.starts_with("Chain intact"), "{audit}");
    let first_event = find(client, "#audit-table tbody tr")
        .await
        .text()
        .await
        .unwrap();
    assert!(!first_event.is_empty());
    screenshot(client, "history").await;

    let row = find(client, rows).await;
    let serial = row
        .find(Locator::Css("td:nth-child(3)"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The Reveal button asks for confirmation; answer yes without a native dialog.
    client
        .execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    let reveal = row.find(Locator::Css("button.reveal")).await.unwrap();
    scroll_to(client, &reveal).await;
    reveal.click().await.unwrap();
    let shown = find(client, "#token-table .secret")
        .await
        .text()
        .await
        .unwrap();
    let exported = keys
        .iter()
        .find(|k| k["serial"] == serial.as_str())
        .expect("key of serial");
    assert_eq!(
        shown,
        exported["secret"].as_str().unwrap(),
        "revealed secret of {serial}"
    );
}

/// Reads the export with python-pskc: serial, algorithm, digits and secret of every key.
fn read_export(python: &Path, export: &Path) -> Vec<Value> {
    let script = r#"
import json, sys, pskc
p = pskc.PSKC(sys.argv[1])
p.encryption.derive_key(sys.argv[2])
print(json.dumps([{"serial": k.serial, "algorithm": k.algorithm, "digits": k.response_length,
                   "secret": k.secret.hex()} for k in p.keys]))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(export)
        .arg(EXPORT_PASSWORD)
        .output()
        .expect("run python-pskc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-pskc rejected {}: {stderr}",
        export.display()
    );
    serde_json::from_slice(&out.stdout).expect("python-pskc JSON")
}

fn assert_wrong_password_fails(python: &Path, export: &Path) {
    let script = r#"
import sys, pskc
from pskc.exceptions import DecryptionError
p = pskc.PSKC(sys.argv[1])
p.encryption.derive_key("not-the-password")
try:
    p.keys[0].secret
except DecryptionError:
    sys.exit(0)
sys.exit(1)
"#;
    let status = std::process::Command::new(python)
        .args(["-c", script])
        .arg(export)
        .status()
        .expect("run python-pskc");
    assert!(
        status.success(),
        "a wrong password must not decrypt the export"
    );
}

/// `$KEYPROV_VENV/bin/python` (default `~/.cache/keyprov/venv`), which must import pskc.
fn pskc_python() -> PathBuf {
    let venv = std::env::var_os("KEYPROV_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/keyprov/venv")
        });
    let python = venv.join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pskc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python-pskc missing in {}: run `bash scripts/setup.sh`",
        venv.display()
    );
    python
}

/// Environment that keeps the app's settings, store, emulators and exports inside `root`.
fn isolated_env(root: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("XDG_CONFIG_HOME", root.join("config")),
        ("XDG_DATA_HOME", root.join("data")),
        ("KEYPROV_DB", root.join("station.db")),
        ("KEYPROV_EMULATOR_DIR", root.join("emulators")),
    ]
}

async fn screenshot(client: &Client, name: &str) {
    // The screen from its top, as an operator first sees it.
    client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "screenshot {name} is a PNG"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Calls a command of the app from inside its window, as the frontend does.
async fn invoke(client: &Client, cmd: &str, args: Value) -> Value {
    let script = "const done = arguments[arguments.length - 1]; \
                  window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]) \
                  .then(done, (e) => done({ error: e }));";
    client
        .execute_async(script, vec![json!(cmd), args])
        .await
        .unwrap()
}

/// Clicks an element after scrolling it to the middle of the window (WebKitWebDriver may
/// otherwise click a button at the window's edge without effect).
async fn click(client: &Client, css: &str) {
    let element = find(client, css).await;
    scroll_to(client, &element).await;
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn scroll_to(client: &Client, element: &Element) {
    let arg = serde_json::to_value(element).unwrap();
    let script = "arguments[0].scrollIntoView({ block: 'center' });";
    client.execute(script, vec![arg]).await.unwrap();
}

async fn find(client: &Client, css: &str) -> Element {
    let found = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element,
        Err(e) => {
            let script = "const t = document.querySelector('#error-toast'); \
                          return t ? t.textContent : 'no error shown';";
            let shown = client.execute(script, vec![]).await.unwrap_or_default();
            if let Ok(png) = client.screenshot().await {
                let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-failure.png");
                let _ = std::fs::write(&file, png);
                eprintln!("window at the failure: {}", file.display());
            }
            panic!("{css} did not appear ({e}); the window shows: {shown}")
        }
    }
}

async fn wait_until(client: &Client, condition: &str) {
    if let Err(last) = poll(client, condition, Duration::from_secs(30)).await {
        panic!("still false after 30 s: {condition} (last answer {last})");
    }
}

/// Evaluates the JavaScript `condition` until it is true; the last answer on timeout.
async fn poll(client: &Client, condition: &str, timeout: Duration) -> Result<(), Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = client
            .execute(&format!("return {condition};"), vec![])
            .await
            .unwrap();
        if answer == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(answer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
