//! `--for freeipa` and `--for linotp` files read by the importers' own logic, reproduced in
//! tests/oracles/*.py (FreeIPA `ipa-otptoken-import`, LinOTP `parsePSKCdata`): every token
//! arrives with its secret, type, digits, hash, counter and time step. And the files a
//! profile refuses or rewrites are really ones the importer would get wrong.

mod common;

use common::{Token, base32, batch, container, export, hex_of, oracle};
use keyprov_profiles::{ProtectionRequest, Target, write_for};
use keyprov_pskc::{Protection, Secret};
use serde_json::Value;

fn psk16() -> Secret {
    Secret::from_hex("000102030405060708090a0b0c0d0e0f").unwrap()
}

fn freeipa_tokens(answer: &Value) -> &Vec<Value> {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["tokens"].as_array().unwrap()
}

fn assert_freeipa_reads(answer: &Value, tokens: &[Token]) {
    let read = freeipa_tokens(answer);
    assert_eq!(read.len(), tokens.len(), "{answer}");
    for (got, want) in read.iter().zip(tokens) {
        assert_eq!(got["error"], Value::Null, "{got}");
        assert_eq!(got["id"], format!("{}:1", want.serial));
        let o = &got["options"];
        assert_eq!(o["type"], if want.totp { "totp" } else { "hotp" });
        assert_eq!(o["ipatokenotpkey"], base32(want.secret.expose()));
        assert_eq!(o["ipatokenotpdigits"], want.digits);
        assert_eq!(o["ipatokenotpalgorithm"], want.hash);
        assert_eq!(o["ipatokenserial"], want.serial);
        assert_eq!(o["ipatokenvendor"], want.manufacturer);
        if want.totp {
            assert_eq!(o["ipatokentotptimestep"], want.period);
            assert_eq!(o["ipatokenhotpcounter"], Value::Null);
        } else {
            assert_eq!(o["ipatokenhotpcounter"], want.counter);
        }
    }
}

#[test]
fn freeipa_reads_psk_files_of_every_aes_size() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(10_000);
    for hex_key in [
        "000102030405060708090a0b0c0d0e0f",
        &"ab".repeat(24),
        &"cd".repeat(32),
    ] {
        let key = Secret::from_hex(hex_key).unwrap();
        let file = export(
            dir.path(),
            "ipa.xml",
            Target::FreeIpa,
            &tokens,
            ProtectionRequest::PreSharedKey(key.clone()),
        );
        let keyfile = dir.path().join("key.bin");
        std::fs::write(&keyfile, key.expose()).unwrap();
        let answer = oracle(
            "freeipa_import.py",
            &[&file, "--keyfile", keyfile.to_str().unwrap()],
        );
        assert_freeipa_reads(&answer, &tokens);
    }
}

#[test]
fn freeipa_reads_password_files() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(20_000);
    let password = Secret::from_slice(b"correct horse battery");
    let file = export(
        dir.path(),
        "ipa.xml",
        Target::FreeIpa,
        &tokens,
        ProtectionRequest::Password(password.clone()),
    );
    let keyfile = dir.path().join("password.txt");
    std::fs::write(&keyfile, password.expose()).unwrap();
    let answer = oracle(
        "freeipa_import.py",
        &[&file, "--keyfile", keyfile.to_str().unwrap()],
    );
    assert_freeipa_reads(&answer, &tokens);

    // A wrong password is caught by the MAC: nothing imported.
    std::fs::write(&keyfile, b"wrong").unwrap();
    let answer = oracle(
        "freeipa_import.py",
        &[&file, "--keyfile", keyfile.to_str().unwrap()],
    );
    assert_eq!(answer["ok"], false, "{answer}");
}

#[test]
fn freeipa_rejects_what_its_profile_refuses() {
    // A TOTP with a start time: written as-is by the generic profile, FreeIPA rejects the key,
    // and the freeipa profile refuses the batch up front.
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(30_000);
    let mut with_t0 = container(&tokens);
    with_t0.key_packages[1].keys[0].data.time = Some(1_000);
    let xml = keyprov_pskc::write(&with_t0, &Protection::Plain).unwrap();
    let file = dir.path().join("t0.xml");
    std::fs::write(&file, xml).unwrap();
    let answer = oracle("freeipa_import.py", &[file.to_str().unwrap()]);
    assert_eq!(
        freeipa_tokens(&answer)[1]["error"],
        "Specified time is not supported!"
    );
    let refused = keyprov_profiles::shape(Target::FreeIpa, &with_t0).unwrap_err();
    assert!(refused.to_string().contains("start time"), "{refused}");
}

fn assert_linotp_reads(answer: &Value, tokens: &[Token]) {
    assert_eq!(answer["ok"], true, "{answer}");
    let read = answer["tokens"].as_object().unwrap();
    assert_eq!(read.len(), tokens.len(), "{answer}");
    for want in tokens {
        let prefix = if want.manufacturer == "Yubico" {
            "UB"
        } else {
            "NK"
        };
        let kind = if want.totp { "OT" } else { "OH" };
        let serial = format!("{prefix}{kind}{:0>8}", want.serial);
        let got = &read[&serial];
        assert_eq!(got["hmac_key"], hex_of(&want.secret), "{serial}");
        assert_eq!(got["type"], if want.totp { "totp" } else { "hmac" });
        assert_eq!(got["otplen"], want.digits);
        assert_eq!(got["hashlib"], want.hash);
        if want.totp {
            assert_eq!(got["timeStep"], want.period.to_string());
        } else {
            assert_eq!(got["counter"], want.counter.to_string());
        }
    }
}

#[test]
fn linotp_reads_psk_and_password_files() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(40_000);
    let file = export(
        dir.path(),
        "psk.xml",
        Target::LinOtp,
        &tokens,
        ProtectionRequest::PreSharedKey(psk16()),
    );
    let answer = oracle(
        "linotp_import.py",
        &[&file, "--psk", "000102030405060708090a0b0c0d0e0f"],
    );
    assert_linotp_reads(&answer, &tokens);

    let file = export(
        dir.path(),
        "pw.xml",
        Target::LinOtp,
        &tokens,
        ProtectionRequest::Password(Secret::from_slice(b"s3cret-pass")),
    );
    let answer = oracle("linotp_import.py", &[&file, "--password", "s3cret-pass"]);
    assert_linotp_reads(&answer, &tokens);

    let answer = oracle("linotp_import.py", &[&file, "--password", "wrong-pass"]);
    assert_eq!(answer["ok"], false, "{answer}");
}

#[test]
fn linotp_skips_device_serials_that_its_profile_rewrites() {
    // The generic export keeps the device serials; LinOTP skips every token with a warning.
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(50_000);
    let file = export(
        dir.path(),
        "generic.xml",
        Target::Generic,
        &tokens,
        ProtectionRequest::Plain,
    );
    let answer = oracle("linotp_import.py", &[&file]);
    assert_eq!(answer["tokens"].as_object().unwrap().len(), 0, "{answer}");
    assert_eq!(answer["warnings"].as_array().unwrap().len(), 3, "{answer}");
    // The linotp profile rewrites them, and says so.
    let (_, shaped) = write_for(
        Target::LinOtp,
        &container(&tokens),
        ProtectionRequest::Plain,
    )
    .unwrap();
    assert_eq!(
        shaped.renamed_serials[0],
        ("50001".to_string(), "UBOH00050001".to_string())
    );
}

#[test]
fn every_profiled_file_stays_readable_by_python_pskc() {
    // The shaping must not leave RFC 6030: the reference implementation reads every target's
    // file (password and pre-shared key) back to the same seeds.
    let dir = tempfile::tempdir().unwrap();
    let tokens = batch(70_000);
    for target in Target::ALL {
        let requests = [
            (
                ProtectionRequest::Password(Secret::from_slice(b"python-pskc pw")),
                "--password",
                "python-pskc pw",
            ),
            (
                ProtectionRequest::PreSharedKey(psk16()),
                "--key",
                "000102030405060708090a0b0c0d0e0f",
            ),
        ];
        for (request, flag, value) in requests {
            let file = export(dir.path(), "any.xml", target, &tokens, request);
            let answer = oracle("pskc_tokens.py", &[&file, flag, value]);
            assert_eq!(answer["ok"], true, "{target}: {answer}");
            let seeds: Vec<&str> = answer["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["secret"].as_str().unwrap())
                .collect();
            let want: Vec<String> = tokens.iter().map(|t| hex_of(&t.secret)).collect();
            assert_eq!(seeds, want, "{target} {flag}");
        }
    }
}
