//! `--for TARGET` on the CLI's exports (issue 7): `batch export` and `provision --export` print
//! the serials a profile renamed (LinOTP's OATH serials), and a target that cannot take the
//! request fails the command with the profile's reason and writes no file. `batch show` lists
//! the renamed serials with the export in the history.

mod seeds_support;

use std::path::Path;

use seeds_support::{keyprov, keyprov_ok};

/// Two emulated YubiKeys (serials 10000001, 10000002) in `work/tokens`.
fn tokens(work: &Path) -> String {
    let dir = work.join("tokens");
    let dir = dir.to_str().unwrap();
    keyprov_ok(&["emulator", "add", "yubikey", "--count", "2", "--dir", dir]);
    dir.to_string()
}

#[test]
fn provision_export_for_linotp_prints_each_renamed_serial() {
    let work = tempfile::tempdir().unwrap();
    let dir = tokens(work.path());
    let db = work.path().join("station.db");
    let file = work.path().join("linotp.pskcxml");
    let out = keyprov_ok(&[
        "provision",
        "--batch",
        "desk",
        "--emulator",
        &dir,
        "--db",
        db.to_str().unwrap(),
        "--export",
        file.to_str().unwrap(),
        "--export-key",
        &"a5".repeat(16),
        "--for",
        "linotp",
    ]);
    for (device, written) in [("10000001", "UBOH10000001"), ("10000002", "UBOH10000002")] {
        let line = format!("serial {device} is {written} in this file");
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("UBOH10000001") && !text.contains(">10000001<"),
        "{text}"
    );

    // The export history keeps them: `batch show` names them as the export did.
    let db = db.to_str().unwrap();
    let shown = keyprov_ok(&["batch", "show", "desk", "--db", db]);
    for (device, written) in [("10000001", "UBOH10000001"), ("10000002", "UBOH10000002")] {
        let line = format!("serial {device} is {written} in this file");
        assert!(shown.contains(&line), "no {line:?} in:\n{shown}");
    }
    let json = keyprov_ok(&["batch", "show", "desk", "--db", db, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let renamed = &json["batch"]["exports"][0]["renamed_serials"];
    assert_eq!(
        renamed[0],
        serde_json::json!({"device": "10000001", "written": "UBOH10000001"}),
        "{json}"
    );
}

#[test]
fn a_refused_export_is_the_commands_error_and_writes_no_file() {
    let work = tempfile::tempdir().unwrap();
    let dir = tokens(work.path());
    let db = work.path().join("station.db");
    let db = db.to_str().unwrap();
    keyprov_ok(&[
        "provision",
        "--batch",
        "desk",
        "--emulator",
        &dir,
        "--db",
        db,
    ]);
    let file = work.path().join("privacyidea.pskcxml");
    let out = keyprov(&[
        "batch",
        "export",
        "desk",
        "-o",
        file.to_str().unwrap(),
        "--for",
        "privacyidea",
        "--key",
        &"a5".repeat(24),
        "--db",
        db,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("privacyIDEA cannot open this file: a pre-shared key of 48 hex digits"),
        "{stderr}"
    );
    assert!(!file.exists());
    let shown = keyprov_ok(&["batch", "show", "desk", "--db", db, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["batch"]["exports"], serde_json::json!([]), "{shown}");

    let unknown = keyprov(&[
        "batch", "export", "desk", "-o", "x", "--for", "ipa", "--db", db,
    ]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("unknown export target \"ipa\""), "{stderr}");
}
