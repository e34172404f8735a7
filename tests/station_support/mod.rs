//! Shared helpers of the station end-to-end tests (`tests/station_*.rs`): running the
//! `keyprov` binary, emulated tokens, and the third-party oracles (python-pskc reads the
//! export, `oathtool` computes the OTP a token must show).
//!
//! Oracles that are missing fail the test with a message naming `scripts/setup.sh`.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// The station password every test export uses.
pub const PASSWORD: &str = "correct horse battery";

/// A `keyprov` command with logging off unless a test asks for it.
pub fn keyprov() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyprov"));
    cmd.env_remove("RUST_LOG")
        .env_remove("KEYPROV_DB")
        .env_remove("KEYPROV_EMULATOR_DIR");
    cmd
}

/// Runs `keyprov args…`, panicking with its stderr unless it succeeds.
pub fn ok(args: &[&str]) -> String {
    let out = keyprov().args(args).output().expect("run keyprov");
    assert!(
        out.status.success(),
        "keyprov {} failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `keyprov args…` and returns its output whatever the status.
pub fn run(args: &[&str]) -> Output {
    keyprov().args(args).output().expect("run keyprov")
}

/// A scratch station: database, emulator directory and export paths in one temp dir.
pub struct Bench {
    pub dir: tempfile::TempDir,
}

impl Bench {
    pub fn new() -> Self {
        Bench {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("station").join("station.db")
    }

    pub fn emulators(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db_arg(&self) -> String {
        self.db().display().to_string()
    }

    pub fn emu_arg(&self) -> String {
        self.emulators().display().to_string()
    }

    /// Creates emulated tokens with the emulator's default latencies.
    pub fn add_tokens(&self, model: &str, count: usize) {
        std::fs::create_dir_all(self.emulators()).expect("emulator dir");
        ok(&[
            "emulator",
            "add",
            model,
            "--count",
            &count.to_string(),
            "--dir",
            &self.emu_arg(),
        ]);
    }

    /// Sets every emulated token's latency (writes, everything else), in ms.
    pub fn set_latency(&self, write_ms: u64, other_ms: u64) {
        let latency = keyprov_drivers::emulator::Latency { write_ms, other_ms };
        for token in self.tokens() {
            keyprov_drivers::emulator::set_latency(&self.emulators(), &token.serial, latency)
                .expect("set emulator latency");
        }
    }

    /// The emulated tokens, as `emulator list --json` reports them.
    pub fn tokens(&self) -> Vec<Token> {
        let out = ok(&["emulator", "list", "--dir", &self.emu_arg(), "--json"]);
        serde_json::from_str(&out).expect("emulator list JSON")
    }

    /// The OTP the token shows now (a YubiKey touch / a Nitrokey GET_CODE).
    pub fn touch(&self, serial: &str, slot: &str) -> String {
        let index = slot.rsplit(':').next().unwrap_or(slot);
        let mut args = vec!["emulator", "touch", serial, "--slot", index, "--dir"];
        let emu = self.emu_arg();
        args.push(&emu);
        if slot.starts_with("totp") {
            args.push("--totp");
        }
        ok(&args).trim().to_string()
    }

    /// `keyprov batch show NAME --json`.
    pub fn batch(&self, name: &str) -> BatchDetail {
        let out = ok(&["batch", "show", name, "--db", &self.db_arg(), "--json"]);
        serde_json::from_str(&out).expect("batch show JSON")
    }

    /// `keyprov audit verify` succeeds.
    pub fn audit_ok(&self) {
        ok(&["audit", "verify", "--db", &self.db_arg()]);
    }
}

/// One emulated token of `emulator list --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub family: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

/// The fields of `batch show --json` the tests check.
#[derive(Debug, Deserialize)]
pub struct BatchDetail {
    pub batch: BatchSummary,
    pub tokens: Vec<TokenRow>,
}

#[derive(Debug, Deserialize)]
pub struct BatchSummary {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub tokens: usize,
    pub verified: usize,
    pub failed: usize,
}

#[derive(Debug, Deserialize)]
pub struct TokenRow {
    pub key_id: String,
    pub family: String,
    pub serial: String,
    pub slot: String,
    pub state: String,
    pub counter: Option<u64>,
    pub verification: Option<String>,
    pub error: Option<String>,
}

/// A key as python-pskc reads it from an export.
#[derive(Debug, Clone, Deserialize)]
pub struct PskcKey {
    pub id: String,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub secret: String,
    pub counter: Option<u64>,
    pub algorithm: String,
    pub digits: Option<u32>,
    pub period: Option<u64>,
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KEYPROV_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/keyprov/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "python-pskc venv missing at {}: run `bash scripts/setup.sh`",
        venv.display()
    );
    python
}

const READ_EXPORT: &str = r#"
import json, sys, pskc
p = pskc.PSKC(sys.argv[1])
p.encryption.derive_key(sys.argv[2])
out = []
for k in p.keys:
    out.append(dict(id=k.id, serial=k.serial, manufacturer=k.manufacturer,
                    secret=k.secret.hex(), counter=k.counter, algorithm=k.algorithm,
                    digits=k.response_length, period=k.time_interval))
print(json.dumps(out))
"#;

/// Reads an export with python-pskc and the password; Err(stderr) when python-pskc refuses.
pub fn python_pskc(file: &Path, password: &str) -> Result<Vec<PskcKey>, String> {
    let out = Command::new(venv_python())
        .args(["-c", READ_EXPORT])
        .arg(file)
        .arg(password)
        .output()
        .expect("run python-pskc");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("python-pskc JSON"))
}

fn oathtool_cmd() -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("oathtool").is_file()))
        .unwrap_or(false);
    assert!(found, "oathtool not on PATH: run `bash scripts/setup.sh`");
    Command::new("oathtool")
}

/// `oathtool --hotp -c COUNTER -d DIGITS SECRET`.
pub fn oathtool_hotp(secret_hex: &str, counter: u64, digits: u32) -> String {
    let out = oathtool_cmd()
        .args([
            "--hotp",
            "-c",
            &counter.to_string(),
            "-d",
            &digits.to_string(),
            secret_hex,
        ])
        .output()
        .expect("run oathtool");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `oathtool --totp -s PERIODs -d DIGITS SECRET` at the current time.
pub fn oathtool_totp(secret_hex: &str, period: u64, digits: u32) -> String {
    let out = oathtool_cmd()
        .args([
            "--totp",
            "-s",
            &format!("{period}s"),
            "-d",
            &digits.to_string(),
            secret_hex,
        ])
        .output()
        .expect("run oathtool");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Checks every exported key against its token: python-pskc's secret and counter through
/// oathtool give the OTP the token shows. Returns the number of keys checked.
pub fn check_export_against_tokens(bench: &Bench, export: &Path, password: &str) -> usize {
    let keys = python_pskc(export, password).expect("python-pskc reads the export");
    let detail_by_serial = |serial: &str, rows: &[TokenRow]| {
        rows.iter()
            .find(|r| r.serial == serial && r.state != "revoked")
            .map(|r| r.slot.clone())
    };
    let tokens = bench.tokens();
    let batches: Vec<BatchSummaryRow> =
        serde_json::from_str(&ok(&["batch", "list", "--db", &bench.db_arg(), "--json"]))
            .expect("batch list JSON");
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(bench.batch(&b.id.to_string()).tokens);
    }
    let mut serials: Vec<&str> = keys.iter().filter_map(|k| k.serial.as_deref()).collect();
    serials.sort();
    let before = serials.len();
    serials.dedup();
    assert_eq!(before, serials.len(), "the export holds one key per token");
    for key in &keys {
        let serial = key
            .serial
            .as_deref()
            .expect("every exported key names its token");
        assert!(
            tokens.iter().any(|t| t.serial == serial),
            "{serial} is an emulated token"
        );
        let slot = detail_by_serial(serial, &rows).expect("the token is in a batch");
        let digits = key.digits.expect("exported digits");
        if key.algorithm.ends_with("hotp") {
            let shown = bench.touch(serial, &slot);
            let counter = key.counter.expect("HOTP export has a counter");
            assert_eq!(
                oathtool_hotp(&key.secret, counter, digits),
                shown,
                "token {serial}: oathtool over the exported secret at counter {counter}"
            );
        } else {
            let period = key.period.expect("TOTP export has a period");
            // The code the token gives now (`keyprov emulator touch --totp`: GET_CODE on its
            // TOTP slot), bracketed by two oathtool readings in case a step ends between them.
            let before = oathtool_totp(&key.secret, period, digits);
            let shown = bench.touch(serial, &slot);
            let after = oathtool_totp(&key.secret, period, digits);
            assert!(
                shown == before || shown == after,
                "token {serial}: shows {shown}, oathtool --totp over the exported secret gives \
                 {before} / {after}"
            );
        }
    }
    keys.len()
}

#[derive(Debug, Deserialize)]
struct BatchSummaryRow {
    id: i64,
}

/// Standard base64 with padding (RFC 4648 §4), for the secret-leak search.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}
