//! What the seed tests of the `keyprov` binary share: running the binary, and a privacyIDEA
//! 3.14 on loopback (scripts/setup-privacyidea.sh installs it; tests/oracles/
//! privacyidea_harness.py runs it and relays its HTTP API line by line).

#![allow(dead_code)] // Each test file uses its own part.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use serde_json::{Value, json};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `keyprov ARGS` quietly and returns its output.
pub fn keyprov(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KEYPROV_DB")
        .env_remove("KEYPROV_PASSPHRASE")
        .output()
        .expect("run keyprov")
}

/// Runs `keyprov ARGS`, failing the test with its stderr when it fails; returns stdout.
pub fn keyprov_ok(args: &[&str]) -> String {
    let out = keyprov(args);
    assert!(
        out.status.success(),
        "keyprov {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn venv(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(default))
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

/// RFC 6238 OTP computed by oathtool (OATH Toolkit) for a hex secret, now.
pub fn oathtool_totp(secret_hex: &str, hash: &str, digits: u32, period: u64) -> String {
    let out = Command::new("oathtool")
        .args(["-d", &digits.to_string(), &format!("--totp={hash}"), "-s"])
        .arg(format!("{period}s"))
        .arg(secret_hex)
        .output()
        .expect("oathtool missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ascii")
        .trim()
        .to_string()
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

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.input, "{request}").expect("harness input");
        self.read()
    }

    /// `POST /token/load/<file>` with `psk` or `password`: how many tokens privacyIDEA
    /// imported, or the error message it answered.
    pub fn load(&mut self, file: &Path, protection: (&str, &str)) -> Result<u64, String> {
        let mut request = json!({"op": "load", "file": file});
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

    /// The token as privacyIDEA lists it, for failure messages.
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

/// Runs a tests/oracles script with the python of python-pskc's venv (scripts/setup.sh) and
/// parses its JSON answer.
pub fn oracle(script: &str, args: &[&str]) -> Value {
    let python = venv("KEYPROV_VENV", ".cache/keyprov/venv").join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    let path = workspace().join("tests/oracles").join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .expect("run oracle");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// RFC 4226 OTP computed by oathtool for a secret given as hex (or base32 with `base32`).
pub fn oathtool_hotp(secret: &str, base32: bool, counter: u64, digits: u32) -> String {
    let mut cmd = Command::new("oathtool");
    cmd.args([
        "--hotp",
        "-d",
        &digits.to_string(),
        "-c",
        &counter.to_string(),
    ]);
    if base32 {
        cmd.arg("-b");
    }
    let out = cmd
        .arg(secret)
        .output()
        .expect("oathtool missing: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("ascii")
        .trim()
        .to_string()
}
