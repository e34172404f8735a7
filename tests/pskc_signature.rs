//! `--verify-cert`: `keyprov pskc inspect` and `convert` check the XML signature (RFC 6030 §7)
//! first. libpskc's signed test file verifies with its signer's certificate; on the original
//! and on altered copies our verdict agrees with `pskctool --verify` (xmlsec, which builds the
//! chain from the root certificate); an unsigned file and another certificate fail with one
//! line naming the cause.

mod pskc_common;

use std::path::{Path, PathBuf};

use pskc_common::*;

fn libpskc(name: &str) -> PathBuf {
    corpus("libpskc/pskctool-tests").join(name)
}

fn inspect_verified(file: &Path, cert: &Path) -> std::process::Output {
    keyprov()
        .args(["pskc", "inspect", "--verify-cert"])
        .arg(cert)
        .arg(file)
        .output()
        .unwrap()
}

/// `pskctool --verify` with the root certificate as trust anchor: prints OK or FAIL.
fn pskctool_verifies(file: &Path) -> bool {
    let out = pskctool()
        .arg("--verify")
        .arg("--verify-crt")
        .arg(libpskc("pskc-root-crt.pem"))
        .arg(file)
        .output()
        .unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "OK" => true,
        "FAIL" => false,
        other => panic!("pskctool --verify: {other} {}", stderr(&out)),
    }
}

#[test]
fn verdicts_agree_with_pskctool_on_the_signed_file_and_altered_copies() {
    let dir = tempfile::tempdir().unwrap();
    let signed = std::fs::read_to_string(libpskc("pskc-all-signed.xml")).unwrap();
    let cases = [
        ("original", signed.clone(), true),
        (
            "counter",
            signed.replace("<Counter><PlainValue>0", "<Counter><PlainValue>1"),
            false,
        ),
        ("serial", signed.replace(">SerialNo<", ">SerialNO<"), false),
        (
            "attribute order",
            signed.replace(
                "Encoding=\"DECIMAL\" Length=\"8\"",
                "Length='8'  Encoding=\"DECIMAL\"",
            ),
            true,
        ),
    ];
    for (name, text, valid) in cases {
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, text).unwrap();
        assert_eq!(pskctool_verifies(&file), valid, "pskctool on {name}");
        let out = inspect_verified(&file, &libpskc("pskc-ee-crt.pem"));
        assert_eq!(out.status.success(), valid, "{name}: {}", stderr(&out));
        if valid {
            let text = stdout(&out);
            assert!(
                text.contains("signature verified with") && text.contains("(rsa-sha1)"),
                "{text}"
            );
            assert!(text.contains("key KID1"), "{text}");
        } else {
            let message = stderr(&out);
            assert_eq!(message.trim().lines().count(), 1, "{message}");
            assert!(message.contains("DigestValue does not match"), "{message}");
        }
    }
}

#[test]
fn another_certificate_or_an_unsigned_file_fails_with_one_line() {
    let out = inspect_verified(
        &libpskc("pskc-all-signed.xml"),
        &libpskc("pskc-root-crt.pem"),
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("SignatureValue does not verify") && message.contains("pskc-root-crt.pem"),
        "{message}"
    );
    let out = inspect_verified(&libpskc("pskc-all.xml"), &libpskc("pskc-ee-crt.pem"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no XML signature"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn convert_checks_the_signature_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plain.xml");
    let run = |cert: &str, output: &Path| {
        keyprov()
            .args(["pskc", "convert", "--plain", "--verify-cert"])
            .arg(libpskc(cert))
            .arg(libpskc("pskc-all-signed.xml"))
            .arg("-o")
            .arg(output)
            .output()
            .unwrap()
    };
    let refused = run("pskc-root-crt.pem", &out);
    assert!(!refused.status.success());
    assert!(!out.exists(), "nothing written when the signature fails");
    let done = run("pskc-ee-crt.pem", &out);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(std::fs::read_to_string(&out).unwrap().contains("KID1"));
}
