//! `keyprov provision --hash` (issue 7): the OTP hash reaches the token, the store, `batch show`
//! and the seed file, where python-pskc (the reference reader) finds it in `Suite` and
//! oathtool, given the exported seed and that hash, computes the OTP the token gives. A token
//! that cannot compute the hash fails before a key is obtained for it, saying why.

mod seeds_support;

use std::path::Path;

use seeds_support::{keyprov, keyprov_ok, oathtool_totp, oracle};

const PSK: &str = "5c4e3d2b1a0f9e8d7c6b5a4f3e2d1c0b";

/// `count` emulated `family` tokens in `work/tokens`.
fn tokens(work: &Path, family: &str, count: u32) -> String {
    let dir = work.join("tokens");
    let dir = dir.to_str().unwrap();
    let count = count.to_string();
    keyprov_ok(&["emulator", "add", family, "--count", &count, "--dir", dir]);
    dir.to_string()
}

#[test]
fn a_sha256_totp_batch_exports_a_seed_python_pskc_and_oathtool_agree_with() {
    let work = tempfile::tempdir().unwrap();
    let dir = tokens(work.path(), "nitrokey3", 1);
    let db = work.path().join("station.db");
    let db = db.to_str().unwrap();
    let file = work.path().join("generic.pskcxml");
    let file = file.to_str().unwrap();
    #[rustfmt::skip]
    let out = keyprov_ok(&[
        "provision", "--batch", "nk3", "--profile", "totp", "--hash", "sha256",
        "--emulator", &dir, "--db", db, "--export", file, "--export-key", PSK,
    ]);
    assert!(out.contains("totp sha256 6 digits, period 30s"), "{out}");
    let shown = keyprov_ok(&["batch", "show", "nk3", "--db", db, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["batch"]["hash"], "sha256", "{shown}");

    let read = oracle("pskc_tokens.py", &[file, "--key", PSK]);
    assert_eq!(read["ok"], true, "{read}");
    let key = &read["keys"][0];
    assert_eq!(key["suite"], "HMAC-SHA256", "{read}");
    assert_eq!(key["time_interval"], 30, "{read}");
    let serial = key["serial"].as_str().unwrap();
    let seed = key["secret"].as_str().unwrap();
    // The token's code and oathtool's agree within one time step (retried across a boundary).
    let agree = (0..2).any(|_| {
        let device = keyprov_ok(&["emulator", "touch", serial, "--totp", "--dir", &dir]);
        device.trim() == oathtool_totp(seed, "sha256", 6, 30)
    });
    assert!(
        agree,
        "the token's TOTP is not oathtool's SHA-256 TOTP of the seed"
    );

    // Our own reader takes the hash back: the file imports into another station as SHA-256.
    let other = work.path().join("other.db");
    let other = other.to_str().unwrap();
    let json = keyprov_ok(&["import", file, "--key", PSK, "--db", other, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["added"][0]["hash"], "sha256", "{report}");
    assert_eq!(report["added"][0]["period"], 30, "{report}");
}

#[test]
fn tokens_that_cannot_compute_the_hash_fail_saying_why() {
    let work = tempfile::tempdir().unwrap();
    let dir = tokens(work.path(), "yubikey", 1);
    let db = work.path().join("station.db");
    let db = db.to_str().unwrap();
    #[rustfmt::skip]
    let out = keyprov(&[
        "provision", "--batch", "yk", "--hash", "sha256", "--emulator", &dir, "--db", db,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("yubikey 10000001 cannot compute sha256 OTPs (it supports sha1)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("re-run"),
        "a re-run would fail again: {stderr}"
    );
    let shown = keyprov_ok(&["batch", "show", "yk", "--db", db]);
    assert!(shown.contains("hotp sha256 6 digits"), "{shown}");
    assert!(shown.contains("0 keys"), "no key was obtained: {shown}");

    let unknown = keyprov(&["provision", "--batch", "x", "--hash", "md5", "--db", db]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("sha1") && stderr.contains("sha256"),
        "{stderr}"
    );
}
