//! Runs the built app under tauri-driver (which drives WebKitWebDriver) and hands out a
//! classic WebDriver session on it.
//!
//! tauri-driver starts in its own process group on free ports; on drop the whole group gets
//! SIGTERM, because SIGKILL on tauri-driver alone leaves WebKitWebDriver running.

use fantoccini::{Client, ClientBuilder};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tauri-driver and its WebKitWebDriver.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts tauri-driver with `env` added to the environment the app inherits; logs go to
    /// `log`.
    pub fn start(env: &[(&str, &Path)], log: &Path) -> Driver {
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "no X display: run the GUI tests under Xvfb, e.g. \
             `xvfb-run -a cargo test -p keyprov-station` (scripts/test.sh does)"
        );
        let (port, native_port) = (free_port(), free_port());
        let log_file = std::fs::File::create(log).expect("create tauri-driver log");
        let mut command = Command::new(tauri_driver());
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start tauri-driver ({e}): run `bash scripts/setup.sh --gui`")
        });
        let driver = Driver { child, port };
        wait_for_port(port, Duration::from_secs(20));
        wait_for_port(native_port, Duration::from_secs(20));
        driver
    }

    /// Opens a session, which launches the app binary.
    pub async fn session(&self, app: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        let options = serde_json::json!({ "application": app, "args": [] });
        caps.insert("tauri:options".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("WebDriver session on the app")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The child leads its own group (process_group(0)), so -pid is that group.
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `$TAURI_DRIVER`, `~/.cargo/bin/tauri-driver`, or `tauri-driver` on PATH.
fn tauri_driver() -> PathBuf {
    if let Some(path) = std::env::var_os("TAURI_DRIVER") {
        return path.into();
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    match home.map(|h| h.join("bin/tauri-driver")) {
        Some(path) if path.is_file() => path,
        _ => "tauri-driver".into(),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
