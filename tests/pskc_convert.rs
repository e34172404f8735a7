//! `keyprov pskc convert`: output with every cipher and PBKDF2 PRF is read by python-pskc
//! with identical secrets; plain output passes `pskctool --validate`; asymmetric output (to a
//! certificate made here with openssl) decrypts with the private key.

mod pskc_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pskc_common::*;
use serde_json::Value;

const ASCII_20: &str = "3132333435363738393031323334353637383930";

fn convert(input: &Path, output: &Path, args: &[&str]) {
    let out = keyprov()
        .args(["pskc", "convert"])
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "convert {args:?}: {}", stderr(&out));
}

fn inspect(file: &Path, args: &[&str]) -> Value {
    let out = keyprov()
        .args(["pskc", "inspect", "--json", "--show-secrets"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key_hex(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| format!("{:02x}", (i as u8).wrapping_mul(37).wrapping_add(seed)))
        .collect()
}

#[test]
fn every_cipher_is_read_back_by_python_pskc() {
    let dir = tempfile::tempdir().unwrap();
    let figure3 = corpus("python-pskc/rfc6030/figure3.pskcxml");
    let macs = [
        "hmac-sha1",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    ];
    let ciphers = [
        ("aes128-cbc", 16),
        ("aes192-cbc", 24),
        ("aes256-cbc", 32),
        ("tripledes-cbc", 24),
        ("camellia128-cbc", 16),
        ("camellia192-cbc", 24),
        ("camellia256-cbc", 32),
        ("kw-aes128", 16),
        ("kw-aes192", 24),
        ("kw-aes256", 32),
        ("kw-camellia128", 16),
        ("kw-camellia192", 24),
        ("kw-camellia256", 32),
    ];
    for (i, (cipher, len)) in ciphers.into_iter().enumerate() {
        let key = key_hex(len, i as u8);
        let mac = macs[i % macs.len()];
        let out = dir.path().join(format!("{cipher}.pskcxml"));
        convert(
            &figure3,
            &out,
            &["--to-key", &key, "--cipher", cipher, "--mac", mac],
        );
        let python = python_dump(&out, Some(&key), None);
        assert_eq!(
            python["keys"][0]["secret"], ASCII_20,
            "{cipher}/{mac}: {python}"
        );
        assert_eq!(python["keys"][0]["counter"], 0, "{cipher}");
        assert_eq!(python["id"], "exampleID1");
        let ours = inspect(&out, &["--key", &key]);
        assert_eq!(ours["keys"][0]["secret"], ASCII_20, "{cipher}");
        assert_eq!(ours["keys"][0]["serial"], "987654321");
    }
}

#[test]
fn kw_tripledes_is_read_back_by_python_pskc() {
    // RFC 3217 wraps 8n-byte values only: the corpus file holds a 24-byte secret.
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("python-pskc/encryption/kw-tripledes.pskcxml");
    let source_key = "255e0d1c07b646dfb3134cc843ba8aa71f025b7c0838251f";
    let out = dir.path().join("kw-tripledes.pskcxml");
    let key = key_hex(24, 7);
    let mut args = vec![
        "--key",
        source_key,
        "--to-key",
        &key,
        "--cipher",
        "kw-tripledes",
    ];
    args.extend(["--mac", "hmac-sha256"]);
    convert(&input, &out, &args);
    let python = python_dump(&out, Some(&key), None);
    assert_eq!(
        python["keys"][0]["secret"],
        "2923bf85e06dd6ae529149f1f1bae9eab3a7da3d860d3e98"
    );
}

#[test]
fn pbkdf2_with_sha1_and_sha256_is_read_back_by_python_pskc() {
    let dir = tempfile::tempdir().unwrap();
    let figure7 = corpus("python-pskc/rfc6030/figure7.pskcxml");
    for prf in ["hmac-sha1", "hmac-sha256"] {
        let out = dir.path().join(format!("{prf}.pskcxml"));
        let args = [
            "--password",
            "qwerty",
            "--to-password",
            "n3w pässword",
            "--iterations",
            "2000",
        ];
        convert(
            &figure7,
            &out,
            &[&args[..], &["--prf", prf, "--cipher", "aes256-cbc"]].concat(),
        );
        let python = python_dump(&out, None, Some("n3w pässword"));
        assert_eq!(python["keys"][0]["secret"], ASCII_20, "{prf}: {python}");
        let ours = inspect(&out, &["--password", "n3w pässword"]);
        assert_eq!(ours["keys"][0]["secret"], ASCII_20);
        let wrong = keyprov()
            .args(["pskc", "inspect", "--show-secrets", "--password", "qwerty"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            stderr(&wrong).contains("wrong key or password"),
            "{}",
            stderr(&wrong)
        );
    }
}

#[test]
fn plain_output_passes_pskctool_validate_and_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        ("libpskc/pskctool-tests/pskc-all.xml", vec![]),
        ("python-pskc/rfc6030/figure3.pskcxml", vec![]),
        ("python-pskc/rfc6030/figure5.pskcxml", vec![]),
        ("python-pskc/rfc6030/figure10.pskcxml", vec![]),
        ("python-pskc/rfc6030/figure6.pskcxml", vec!["--key", PSK_F6]),
        (
            "python-pskc/rfc6030/figure7.pskcxml",
            vec!["--password", "qwerty"],
        ),
        ("python-pskc/feitian/20120919-test001-4282.xml", vec![]),
    ];
    for (i, (input, args)) in inputs.into_iter().enumerate() {
        let out = dir.path().join(format!("plain{i}.xml"));
        convert(&corpus(input), &out, &[&args[..], &["--plain"]].concat());
        let validate = pskctool().arg("--validate").arg(&out).output().unwrap();
        let text = String::from_utf8_lossy(&validate.stdout);
        assert!(
            validate.status.success() && text.trim() == "OK",
            "{input}: {text} {}",
            stderr(&validate)
        );
        let before = inspect(&corpus(input), &args);
        let after = inspect(&out, &[]);
        assert_eq!(before["keys"], after["keys"], "{input}");
        assert_eq!(before["id"], after["id"]);
    }
}

/// `convert --encrypt-all`: every Data value of `pskc-all.xml` (counter 0, time 100,
/// interval 200, drift 300) encrypted with its own ValueMAC; python-pskc, which decrypts
/// encrypted integers (`EncryptedIntegerValue`: ASCII digits, else big-endian), reads the same
/// values, and libxml2 finds the file schema-valid (`pskctool --validate`).
#[test]
fn encrypt_all_output_is_read_by_python_pskc_with_the_same_counter_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("libpskc/pskctool-tests/pskc-all.xml");
    let out = dir.path().join("all-encrypted.xml");
    let key = key_hex(16, 3);
    let args = ["--to-key", &key, "--mac", "hmac-sha1", "--encrypt-all"];
    convert(&input, &out, &args);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("<EncryptedValue>").count(), 5, "{text}");
    assert_eq!(text.matches("<ValueMAC>").count(), 5, "{text}");
    assert!(!text.contains("PlainValue"), "{text}");

    let python = python_dump(&out, Some(&key), None);
    let key0 = &python["keys"][0];
    assert_eq!(key0["secret"], ASCII_20, "{python}");
    let values = [
        ("counter", 0),
        ("time", 100),
        ("time_interval", 200),
        ("time_drift", 300),
    ];
    for (field, value) in values {
        assert_eq!(key0[field], value, "python-pskc {field}: {python}");
    }
    let ours = inspect(&out, &["--key", &key]);
    for (field, value) in values {
        assert_eq!(ours["keys"][0][field], value, "keyprov {field}");
    }
    assert_eq!(ours["keys"], inspect(&input, &[])["keys"]);
    validate_schema(&out);
}

/// A negative TimeDrift encrypted: python-pskc decodes encrypted integers as unsigned
/// big-endian and so cannot read it (it reads 2^64 - 4); our reader gives -4 back and the
/// file is schema-valid.
#[test]
fn encrypt_all_keeps_a_negative_time_drift() {
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(corpus("libpskc/pskctool-tests/pskc-all.xml")).unwrap();
    let negative = source.replace(
        "<TimeDrift>\n          <PlainValue>300",
        "<TimeDrift>\n          <PlainValue>-4",
    );
    assert_ne!(negative, source);
    let input = dir.path().join("negative-drift.xml");
    std::fs::write(&input, negative).unwrap();
    let out = dir.path().join("negative-drift-encrypted.xml");
    let key = key_hex(32, 9);
    convert(&input, &out, &["--to-key", &key, "--encrypt-all"]);
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap()
            .contains("PlainValue")
    );
    let ours = inspect(&out, &["--key", &key]);
    assert_eq!(ours["keys"][0]["time_drift"], -4);
    assert_eq!(ours["keys"][0]["time_interval"], 200);
    validate_schema(&out);

    let refused = keyprov()
        .args(["pskc", "convert", "--plain", "--encrypt-all", "-o"])
        .arg(dir.path().join("never.xml"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!dir.path().join("never.xml").exists());
}

fn validate_schema(file: &Path) {
    let validate = pskctool().arg("--validate").arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&validate.stdout);
    assert!(
        validate.status.success() && text.trim() == "OK",
        "{}: {text} {}",
        file.display(),
        stderr(&validate)
    );
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

fn rsa_pair(dir: &Path) -> (PathBuf, PathBuf) {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
        dir,
    );
    let req = [
        "req",
        "-new",
        "-x509",
        "-key",
        "key.pem",
        "-subj",
        "/CN=keyprov test",
        "-days",
        "2",
    ];
    openssl(&[&req[..], &["-out", "cert.pem"]].concat(), dir);
    (dir.join("key.pem"), dir.join("cert.pem"))
}

#[test]
fn asymmetric_output_decrypts_with_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = rsa_pair(dir.path());
    let figure10 = corpus("python-pskc/rfc6030/figure10.pskcxml");
    for cipher in ["rsa-oaep-mgf1p", "rsa-1_5"] {
        let out = dir.path().join(format!("{cipher}.xml"));
        convert(
            &figure10,
            &out,
            &["--to-cert", cert.to_str().unwrap(), "--cipher", cipher],
        );
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("<ds:X509Certificate>") && text.contains(cipher),
            "{text}"
        );
        let ours = inspect(&out, &["--private-key", key.to_str().unwrap()]);
        let before = inspect(&figure10, &[]);
        assert_eq!(ours["keys"], before["keys"], "{cipher}");
        // Another private key is refused, for both schemes (checked against the certificate).
        openssl(
            &["genpkey", "-algorithm", "RSA", "-out", "other.pem"],
            dir.path(),
        );
        let other = dir.path().join("other.pem");
        let wrong = keyprov()
            .args(["pskc", "inspect", "--show-secrets", "--private-key"])
            .arg(&other)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            stderr(&wrong).contains("wrong key"),
            "{cipher}: {}",
            stderr(&wrong)
        );
        // Without the private key: metadata only; asking for secrets fails clearly.
        let denied = keyprov()
            .args(["pskc", "inspect", "--show-secrets"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            stderr(&denied).contains("a private key is needed"),
            "{}",
            stderr(&denied)
        );
        // python-pskc has no asymmetric support, but must still read the metadata.
        let python = python_dump(&out, None, None);
        assert_eq!(python["keys"][0]["serial"], "654321");
        assert!(python["keys"][0]["secret"].get("error").is_some());
    }
}

#[test]
fn rfc6030_figure8_layout_with_our_own_key_pair_decrypts() {
    // Figure 8's own private key is not published, so encrypt its layout for our key.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = rsa_pair(dir.path());
    let plain = dir.path().join("plain.xml");
    let figure8 = corpus("python-pskc/rfc6030/figure8.pskcxml");
    convert(
        &figure3_with_figure8_ids(dir.path(), &figure8),
        &plain,
        &["--plain"],
    );
    let out = dir.path().join("rsa.xml");
    convert(
        &plain,
        &out,
        &["--to-cert", cert.to_str().unwrap(), "--cipher", "rsa-1_5"],
    );
    let ours = inspect(&out, &["--private-key", key.to_str().unwrap()]);
    assert_eq!(ours["id"], "KC0001");
    assert_eq!(ours["keys"][0]["id"], "MBK000000001");
    assert_eq!(ours["keys"][0]["secret"], ASCII_20);
}

/// Figure 8's metadata with figure 3's plain secret, written as a plain file.
fn figure3_with_figure8_ids(dir: &Path, figure8: &Path) -> PathBuf {
    let text = std::fs::read_to_string(figure8).unwrap();
    let start = text.find("<EncryptionKey>").unwrap();
    let end = text.find("</EncryptionKey>").unwrap() + "</EncryptionKey>".len();
    let mut text = format!("{}{}", &text[..start], &text[end..]);
    let value_start = text.find("<EncryptedValue>").unwrap();
    let value_end = text.find("</EncryptedValue>").unwrap() + "</EncryptedValue>".len();
    text.replace_range(
        value_start..value_end,
        "<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>",
    );
    let path = dir.join("figure8-plain.xml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn convert_refuses_impossible_requests_without_leaving_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.xml");
    let figure3 = corpus("python-pskc/rfc6030/figure3.pskcxml");
    let bad = keyprov()
        .args(["pskc", "convert"])
        .arg(&figure3)
        .arg("-o")
        .arg(&out)
        .args(["--to-key", "00112233", "--cipher", "aes128-cbc"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("does not suit aes128-cbc"),
        "{}",
        stderr(&bad)
    );
    assert!(!out.exists());
    let none = keyprov()
        .args(["pskc", "convert"])
        .arg(&figure3)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        stderr(&none).contains("choose the output protection"),
        "{}",
        stderr(&none)
    );
    let figure6 = corpus("python-pskc/rfc6030/figure6.pskcxml");
    let locked = keyprov()
        .args(["pskc", "convert"])
        .arg(&figure6)
        .arg("-o")
        .arg(&out)
        .arg("--plain")
        .output()
        .unwrap();
    assert!(
        stderr(&locked).contains("pre-shared key is needed"),
        "{}",
        stderr(&locked)
    );
    assert!(!out.exists());
}

#[test]
fn convert_never_destroys_an_existing_output_its_input_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let figure3 = corpus("python-pskc/rfc6030/figure3.pskcxml");
    let original = std::fs::read(&figure3).unwrap();
    let input = dir.path().join("in.xml");
    std::fs::write(&input, &original).unwrap();
    let run = |input: &Path, output: &Path| {
        keyprov()
            .args(["pskc", "convert"])
            .arg(input)
            .arg("-o")
            .arg(output)
            .args(["--plain", "--force"])
            .output()
            .unwrap()
    };

    let same = run(&input, &input);
    assert!(!same.status.success());
    assert!(
        stderr(&same).contains("is the input file"),
        "{}",
        stderr(&same)
    );
    assert_eq!(std::fs::read(&input).unwrap(), original, "input truncated");

    let existing = dir.path().join("existing.xml");
    std::fs::write(&existing, b"keep me").unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, b"<bad").unwrap();
    let failed = run(&bad, &existing);
    assert!(!failed.status.success());
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 3, "no temporary file is left behind");

    let full = run(&input, Path::new("/dev/full"));
    assert!(!full.status.success());
    let message = stderr(&full);
    assert!(message.contains("writing /dev/full"), "{message}");
    assert!(!message.contains("in.xml"), "blames the input: {message}");
    assert!(Path::new("/dev/full").exists(), "device node removed");
}
