//! The binary's logging contract: silent by default, `RUST_LOG` raises it, and a log sent to
//! a pipe or file carries no terminal colour codes.

use std::path::Path;
use std::process::{Command, Output};

fn keyprov(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyprov"));
    cmd.args(args);
    match rust_log {
        Some(level) => cmd.env("RUST_LOG", level),
        None => cmd.env_remove("RUST_LOG"),
    };
    cmd.output().expect("run keyprov")
}

/// Lists one emulated token: a command whose driver logs at debug and trace level.
fn list_devices(dir: &Path, rust_log: Option<&str>) -> Output {
    let dir = dir.to_str().expect("utf-8 temp path");
    let out = keyprov(
        &["emulator", "add", "yubikey", "--count", "1", "--dir", dir],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keyprov(&["devices", "--emulator", dir], rust_log)
}

#[test]
fn quiet_without_rust_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = list_devices(dir.path(), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "unexpected stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn log_to_a_pipe_has_no_ansi_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = list_devices(dir.path(), Some("trace"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("DEBUG"),
        "RUST_LOG=trace produced no debug event: {log}"
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "escape codes in a piped log: {log}"
    );
}
