//! What the seed tests of the `keyprov` binary share: running the binary, and the oracles of
//! `tests/oracles/harness.rs` (the one copy, shared with `crates/profiles/tests/common/`).

#![allow(dead_code)] // Each test file uses its own part.

use std::process::{Command, Output};

#[path = "../oracles/harness.rs"]
mod harness;

#[allow(unused_imports)] // Each test file uses its own part.
pub use harness::{
    PrivacyIdea, oathtool_hotp, oathtool_totp, oracle, privacyidea_python, workspace, wrong,
};

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
