//! End to end with the FreeIPA and LinOTP importers reproduced in tests/oracles/: emulated
//! tokens provisioned by `keyprov provision`, exported by the station, shaped with the
//! `freeipa` and `linotp` profiles, and read by each importer's logic. Every token arrives,
//! and the HOTP key and counter each importer ends up with produce (oathtool) the very OTP the
//! emulated YubiKey types when touched; TOTP keys arrive with the provisioned seed and step.

mod seeds_support;

use std::path::Path;

use keyprov_profiles::{ProtectionRequest, Target, write_for};
use keyprov_pskc::{KeyContainer, ReadOptions, Secret};
use seeds_support::{keyprov_ok, oathtool_hotp, oracle};
use serde_json::Value;

const EXPORT_PASSWORD: &str = "engine-export-pw";

/// Provisions two emulated tokens of `family` as batch `name`; returns the station's export.
fn provisioned(work: &Path, name: &str, family: &str, profile: &str) -> KeyContainer {
    let db = work.join("station/station.db");
    let db = db.to_str().unwrap();
    let dir = work.join(name);
    let dir = dir.to_str().unwrap();
    keyprov_ok(&["emulator", "add", family, "--count", "2", "--dir", dir]);
    keyprov_ok(&[
        "provision",
        "--batch",
        name,
        "--profile",
        profile,
        "--digits",
        "6",
        "--period",
        "30",
        "--emulator",
        dir,
        "--db",
        db,
    ]);
    let file = work.join(format!("{name}.pskcxml"));
    keyprov_ok(&[
        "batch",
        "export",
        name,
        "-o",
        file.to_str().unwrap(),
        "--password",
        EXPORT_PASSWORD,
        "--db",
        db,
    ]);
    let options = ReadOptions::with_password(Secret::from_slice(EXPORT_PASSWORD.as_bytes()));
    keyprov_pskc::parse(&std::fs::read(file).unwrap(), &options).unwrap()
}

/// One token as provisioned: serial, seed hex, HOTP counter or TOTP step, and for HOTP the
/// OTP the emulated device types next.
struct Provisioned {
    serial: String,
    seed: String,
    counter: Option<u64>,
    step: Option<u64>,
    touched: Option<String>,
}

fn tokens(work: &Path, container: &KeyContainer, emulator: &str) -> Vec<Provisioned> {
    let dir = work.join(emulator);
    container
        .keys()
        .map(|(package, key)| {
            let serial = package.device_info.serial_no.clone().unwrap();
            let counter = key.data.counter;
            let touched = counter.map(|_| {
                let dir = dir.to_str().unwrap();
                keyprov_ok(&["emulator", "touch", &serial, "--slot", "1", "--dir", dir])
                    .trim()
                    .to_string()
            });
            Provisioned {
                serial,
                seed: key
                    .data
                    .secret
                    .as_ref()
                    .unwrap()
                    .to_hex()
                    .as_str()
                    .to_string(),
                counter,
                step: key.data.time_interval,
                touched,
            }
        })
        .collect()
}

fn write(
    work: &Path,
    name: &str,
    target: Target,
    batch: &KeyContainer,
    request: ProtectionRequest,
) -> String {
    let (bytes, _) = write_for(target, batch, request).expect("profile");
    let path = work.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn freeipa_and_linotp_read_the_provisioned_keys() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let mut batch = provisioned(work, "hotp", "yubikey", "hotp");
    let totp = provisioned(work, "totp", "nitrokey-pro", "totp");
    let mut expected = tokens(work, &batch, "hotp");
    expected.extend(tokens(work, &totp, "totp"));
    batch.key_packages.extend(totp.key_packages);
    assert_eq!(expected.len(), 4);

    // FreeIPA: password-protected, `--keyfile` holding the password.
    let password = "freeipa import password";
    let request = ProtectionRequest::Password(Secret::from_slice(password.as_bytes()));
    let file = write(work, "ipa.pskcxml", Target::FreeIpa, &batch, request);
    let keyfile = work.join("ipa.key");
    std::fs::write(&keyfile, password).unwrap();
    let answer = oracle(
        "freeipa_import.py",
        &[&file, "--keyfile", keyfile.to_str().unwrap()],
    );
    assert_eq!(answer["ok"], true, "{answer}");
    let read = answer["tokens"].as_array().unwrap();
    assert_eq!(read.len(), 4, "{answer}");
    for token in &expected {
        let got = read
            .iter()
            .find(|t| t["options"]["ipatokenserial"] == token.serial.as_str())
            .unwrap_or_else(|| panic!("FreeIPA lost {}: {answer}", token.serial));
        assert_eq!(got["error"], Value::Null, "{got}");
        let o = &got["options"];
        assert_eq!(o["ipatokenotpdigits"], 6);
        assert_eq!(o["ipatokenotpalgorithm"], "sha1");
        let key = o["ipatokenotpkey"].as_str().unwrap();
        match (token.counter, &token.touched) {
            (Some(counter), Some(touched)) => {
                assert_eq!(o["type"], "hotp");
                assert_eq!(o["ipatokenhotpcounter"], counter);
                assert_eq!(
                    &oathtool_hotp(key, true, counter, 6),
                    touched,
                    "{}",
                    token.serial
                );
            }
            _ => {
                assert_eq!(o["type"], "totp");
                assert_eq!(o["ipatokentotptimestep"], token.step.unwrap());
                let seed = oathtool_hotp(&token.seed, false, 0, 6);
                assert_eq!(
                    oathtool_hotp(key, true, 0, 6),
                    seed,
                    "{}: other key",
                    token.serial
                );
            }
        }
    }

    // LinOTP: pre-shared key; serials become OATH identifiers.
    let psk = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let request = ProtectionRequest::PreSharedKey(Secret::from_hex(psk).unwrap());
    let (_, shaped) = write_for(Target::LinOtp, &batch, request.clone()).unwrap();
    let file = write(work, "linotp.pskcxml", Target::LinOtp, &batch, request);
    let answer = oracle("linotp_import.py", &[&file, "--psk", psk]);
    assert_eq!(answer["ok"], true, "{answer}");
    let read = answer["tokens"].as_object().unwrap();
    assert_eq!(read.len(), 4, "{answer}");
    for token in &expected {
        let oath = &shaped
            .renamed_serials
            .iter()
            .find(|(from, _)| *from == token.serial)
            .unwrap()
            .1;
        let got = &read[oath.as_str()];
        assert_eq!(got["hmac_key"], token.seed.as_str(), "{oath}");
        assert_eq!(got["otplen"], 6);
        match (token.counter, &token.touched) {
            (Some(counter), Some(touched)) => {
                assert_eq!(got["type"], "hmac");
                assert_eq!(got["counter"], counter.to_string());
                let key = got["hmac_key"].as_str().unwrap();
                assert_eq!(&oathtool_hotp(key, false, counter, 6), touched, "{oath}");
            }
            _ => {
                assert_eq!(got["type"], "totp");
                assert_eq!(got["timeStep"], token.step.unwrap().to_string());
            }
        }
    }
}
