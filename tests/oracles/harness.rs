//! The Rust side of the third-party oracles, shared by the seed tests of the `keyprov` binary
//! (`tests/seeds_support/`) and of `keyprov-profiles` (`crates/profiles/tests/common/`), which
//! include this one file with `#[path]`: where the python venvs are, running an oracle script
//! of this folder, oathtool, and a privacyIDEA 3.14 on loopback (scripts/setup-privacyidea.sh
//! installs it; `privacyidea_harness.py` runs it and relays its HTTP API line by line).

#![allow(dead_code)] // Each test file uses its own part.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// The workspace root: the first folder above the including package that holds
/// `tests/oracles`.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("tests/oracles/privacyidea_harness.py").exists())
        .expect("tests/oracles above the package")
        .to_path_buf()
}

/// The virtualenv named by `var`, else `~/<default>`.
fn venv(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(default))
}

/// A python with python-pskc, lxml, cryptography and dateutil (scripts/setup.sh); fails
/// naming the set-up script when it is missing.
pub fn oracle_python() -> PathBuf {
    let python = venv("KEYPROV_VENV", ".cache/keyprov/venv").join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    python
}

/// The privacyIDEA venv's python; fails naming the set-up script when it is missing.
pub fn privacyidea_python() -> PathBuf {
    let venv = venv("KEYPROV_PI_VENV", ".cache/keyprov/privacyidea-venv");
    assert!(
        venv.join("bin/pi-manage").exists(),
        "privacyIDEA missing in {}: run scripts/setup-privacyidea.sh",
        venv.display()
    );
    venv.join("bin/python")
}

/// Runs a tests/oracles script with [`oracle_python`] and parses its JSON answer.
pub fn oracle(script: &str, args: &[&str]) -> Value {
    let path = workspace().join("tests/oracles").join(script);
    let out = Command::new(oracle_python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run oracle");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Runs oathtool (OATH Toolkit) with `args` and returns the OTP it printed.
fn oathtool(args: &[String]) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .expect("oathtool missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "oathtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ascii")
        .trim()
        .to_string()
}

/// RFC 6238 OTP oathtool computes now for a hex secret with `hash` (`sha1`, `sha256`).
pub fn oathtool_totp(secret_hex: &str, hash: &str, digits: u32, period: u64) -> String {
    oathtool(&[
        "-d".into(),
        digits.to_string(),
        format!("--totp={hash}"),
        "-s".into(),
        format!("{period}s"),
        secret_hex.into(),
    ])
}

/// RFC 4226 OTP oathtool computes for a secret given as hex (or base32 with `base32`).
pub fn oathtool_hotp(secret: &str, base32: bool, counter: u64, digits: u32) -> String {
    let mut args = vec![
        "--hotp".into(),
        "-d".into(),
        digits.to_string(),
        "-c".into(),
        counter.to_string(),
    ];
    if base32 {
        args.push("-b".into());
    }
    args.push(secret.into());
    oathtool(&args)
}

/// Every digit moved by one: never the right OTP.
pub fn wrong(otp: &str) -> String {
    otp.bytes()
        .map(|d| char::from(b'0' + (d - b'0' + 1) % 10))
        .collect()
}

/// A running privacyIDEA, driven through the harness's line protocol.
pub struct PrivacyIdea {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl PrivacyIdea {
    /// Creates a fresh instance (SQLite) in a temporary directory and starts it on loopback.
    pub fn start() -> PrivacyIdea {
        let script = workspace().join("tests/oracles/privacyidea_harness.py");
        let mut child = Command::new(privacyidea_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the privacyIDEA harness");
        let input = child.stdin.take().expect("piped stdin");
        let output = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut server = PrivacyIdea {
            child,
            input,
            output,
        };
        let ready = server.read();
        assert_eq!(ready["ready"], true, "privacyIDEA did not start: {ready}");
        server
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.output.read_line(&mut line).expect("harness output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// One request of the harness's line protocol and its answer.
    pub fn call(&mut self, request: Value) -> Value {
        writeln!(self.input, "{request}").expect("harness input");
        self.read()
    }

    /// `POST /token/load/<file>` with `psk` or `password`: how many tokens privacyIDEA
    /// imported, or the error message it answered.
    pub fn load(
        &mut self,
        file: impl AsRef<Path>,
        protection: (&str, &str),
    ) -> Result<u64, String> {
        let mut request = json!({"op": "load", "file": file.as_ref()});
        request[protection.0] = json!(protection.1);
        let answer = self.call(request);
        match answer["body"]["result"]["value"]["n_imported"].as_u64() {
            Some(count) if answer["http"] == 200 => Ok(count),
            _ => Err(answer["body"]["result"]["error"]["message"].to_string()),
        }
    }

    /// `POST /validate/check`: did privacyIDEA accept `otp` for `serial`?
    pub fn accepts(&mut self, serial: &str, otp: &str) -> bool {
        let answer = self.call(json!({"op": "check", "serial": serial, "pass": otp}));
        answer["body"]["result"]["value"] == json!(true)
    }

    /// The token as privacyIDEA lists it (`GET /token/?serial=`), for failure messages.
    pub fn token(&mut self, serial: &str) -> Value {
        let answer = self.call(json!({"op": "token", "serial": serial}));
        answer["body"]["result"]["value"]["tokens"][0].clone()
    }
}

impl Drop for PrivacyIdea {
    fn drop(&mut self) {
        let _ = writeln!(self.input, "{}", json!({"op": "quit"}));
        let _ = self.child.wait();
    }
}
