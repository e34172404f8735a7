//! Shared helpers of the `keyprov pskc` integration tests: the corpus, the binary, and the
//! third-party oracles (python-pskc in the project venv, pskctool from apt).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Pre-shared key of RFC 6030 figure 6 (also used by python-pskc's own test files).
pub const PSK_F6: &str = "12345678901234567890123456789012";

/// The python-pskc dump script: loads a file with a key or password and prints every field.
pub const DUMP_SCRIPT: &str = include_str!("python_pskc_dump.py");

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/interop/pskc-corpus")
}

pub fn corpus(path: &str) -> PathBuf {
    corpus_dir().join(path)
}

pub fn keyprov() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyprov"))
}

/// Runs `keyprov` with `args`.
pub fn run_keyprov<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    keyprov().args(args).output().expect("running keyprov")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The python of the project venv (`$KEYPROV_VENV`, default `~/.cache/keyprov/venv`).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("KEYPROV_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/keyprov/venv")
        });
    let python = venv.join("bin/python");
    let probe = Command::new(&python).args(["-c", "import pskc"]).output();
    match probe {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "python-pskc is missing from {}: run `bash scripts/setup.sh` (pip install python-pskc)",
            venv.display()
        ),
    }
}

/// `pskctool` from PATH.
pub fn pskctool() -> Command {
    let probe = Command::new("pskctool").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "pskctool is missing: run `bash scripts/setup.sh` (apt-get install pskctool)"
    );
    Command::new("pskctool")
}

/// python-pskc's view of `file` (JSON), loaded with an optional hex key or password.
pub fn python_dump(file: &Path, key: Option<&str>, password: Option<&str>) -> Value {
    let output = Command::new(python())
        .args(["-c", DUMP_SCRIPT])
        .arg(file)
        .arg(key.unwrap_or(""))
        .arg(password.unwrap_or(""))
        .output()
        .expect("running python-pskc");
    assert!(
        output.status.success(),
        "python-pskc dump failed: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("python-pskc dump prints JSON")
}
