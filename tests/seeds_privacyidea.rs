//! End to end: emulated tokens provisioned by `keyprov provision`, exported for privacyIDEA,
//! loaded into a real privacyIDEA 3.14 on loopback (`POST /token/load`), and validated there
//! (`POST /validate/check`): the HOTP OTP each emulated YubiKey types when touched
//! (`keyprov emulator touch`), and for the emulated Nitrokeys' TOTP keys the OTP oathtool
//! computes from the exported seed. A wrong OTP and an OTP from a token that is not in the file
//! are refused. One test per file protection (pre-shared key, password); each runs its own
//! privacyIDEA. SHA-256 TOTP is covered by crates/profiles/tests/privacyidea.rs (the engine
//! provisions SHA-1 keys only).

mod seeds_support;

use std::path::{Path, PathBuf};

use keyprov_pskc::{KeyContainer, ReadOptions, Secret};
use seeds_support::{PrivacyIdea, keyprov_ok, oathtool_totp, wrong};

/// A provisioned batch of two emulated tokens.
struct Batch {
    name: &'static str,
    emulator: PathBuf,
    serials: Vec<String>,
    totp: bool,
}

fn provision(work: &Path, db: &Path, name: &'static str, family: &str, totp: bool) -> Batch {
    let emulator = work.join(name);
    let dir = emulator.to_str().unwrap();
    keyprov_ok(&["emulator", "add", family, "--count", "2", "--dir", dir]);
    let profile = if totp { "totp" } else { "hotp" };
    let db = db.to_str().unwrap();
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
    let listed: serde_json::Value =
        serde_json::from_str(&keyprov_ok(&["emulator", "list", "--dir", dir, "--json"])).unwrap();
    let serials = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap().to_string())
        .collect();
    Batch {
        name,
        emulator,
        serials,
        totp,
    }
}

/// The `--for privacyidea` file of a batch (`keyprov batch export ID -o FILE --for
/// privacyidea --key HEX | --password PW`), and its keys as read back with the same protection.
fn privacyidea_file(
    work: &Path,
    db: &Path,
    batch: &Batch,
    protection: (&str, &str),
) -> (PathBuf, KeyContainer) {
    let file = work.join(format!("{}-privacyidea.pskcxml", batch.name));
    let (flag, value) = protection;
    let out = keyprov_ok(&[
        "batch",
        "export",
        batch.name,
        "-o",
        file.to_str().unwrap(),
        "--for",
        "privacyidea",
        flag,
        value,
        "--db",
        db.to_str().unwrap(),
    ]);
    // privacyIDEA keeps the device serials: no rename line.
    assert!(!out.contains(" in this file"), "{out}");
    let options = match flag {
        "--key" => ReadOptions::with_key(Secret::from_hex(value).unwrap()),
        _ => ReadOptions::with_password(Secret::from_slice(value.as_bytes())),
    };
    let container = keyprov_pskc::parse(&std::fs::read(&file).unwrap(), &options)
        .expect("read the privacyIDEA export");
    (file, container)
}

/// The seed of `serial`'s key in `container`, hex.
fn seed_hex(container: &KeyContainer, serial: &str) -> String {
    let (_, key) = container
        .keys()
        .find(|(p, _)| p.device_info.serial_no.as_deref() == Some(serial))
        .unwrap_or_else(|| panic!("{serial} not exported"));
    key.data
        .secret
        .as_ref()
        .expect("secret")
        .to_hex()
        .as_str()
        .to_string()
}

/// Every token of the batch: privacyIDEA refuses a wrong OTP, then accepts the right one.
fn assert_validates(server: &mut PrivacyIdea, batch: &Batch, container: &KeyContainer) {
    for serial in &batch.serials {
        let otp = if batch.totp {
            oathtool_totp(&seed_hex(container, serial), "sha1", 6, 30)
        } else {
            let dir = batch.emulator.to_str().unwrap();
            keyprov_ok(&["emulator", "touch", serial, "--slot", "1", "--dir", dir])
                .trim()
                .to_string()
        };
        assert!(
            !server.accepts(serial, &wrong(&otp)),
            "{}: wrong OTP accepted for {serial}",
            batch.name
        );
        if !server.accepts(serial, &otp) {
            panic!(
                "{}: OTP of {serial} refused; privacyIDEA holds {}",
                batch.name,
                server.token(serial)
            );
        }
    }
}

/// An emulated YubiKey of another station, with the same serial as `loaded`'s first token:
/// its OTP must not open the loaded token, and an unknown serial opens nothing.
fn assert_foreign_refused(server: &mut PrivacyIdea, work: &Path, loaded: &Batch) {
    let other_db = work.join("other-station/station.db");
    let foreign = provision(work, &other_db, "foreign", "yubikey", false);
    let dir = foreign.emulator.to_str().unwrap();
    let serial = &foreign.serials[0];
    assert_eq!(
        serial, &loaded.serials[0],
        "emulator serials are expected to repeat per dir"
    );
    let otp = keyprov_ok(&["emulator", "touch", serial, "--slot", "1", "--dir", dir]);
    assert!(
        !server.accepts(&loaded.serials[0], otp.trim()),
        "a foreign token's OTP was accepted"
    );
    assert!(
        !server.accepts("99999999", otp.trim()),
        "an unknown serial was accepted"
    );
}

/// Provisions an HOTP and a TOTP batch, exports both for privacyIDEA with `protection` (a
/// `batch export` flag and its value), loads them (first with `wrong_load`, which must import
/// nothing) and validates every token.
fn run(protection: (&str, &str), load_with: (&str, &str), wrong_load: (&str, &str)) {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let db = work.join("station/station.db");
    let hotp = provision(work, &db, "hotp-batch", "yubikey", false);
    let totp = provision(work, &db, "totp-batch", "nitrokey-pro", true);
    let (hotp_file, hotp_export) = privacyidea_file(work, &db, &hotp, protection);
    let (totp_file, totp_export) = privacyidea_file(work, &db, &totp, protection);

    let mut server = PrivacyIdea::start();
    // privacyIDEA answers a wrong key with an error, or (bad MAC) with success and 0 imported.
    let refused = server.load(&hotp_file, wrong_load);
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "wrong key imported: {refused:?}"
    );
    assert!(
        server.token(&hotp.serials[0]).is_null(),
        "a token was imported with a wrong key"
    );
    assert_eq!(server.load(&hotp_file, load_with), Ok(2));
    assert_eq!(server.load(&totp_file, load_with), Ok(2));
    assert_validates(&mut server, &hotp, &hotp_export);
    assert_validates(&mut server, &totp, &totp_export);
    assert_foreign_refused(&mut server, work, &hotp);
}

const PSK: &str = "8f3a52c1d0e94b76a1b2c3d4e5f60718";

#[test]
fn privacyidea_validates_emulated_tokens_from_a_psk_export() {
    run(
        ("--key", PSK),
        ("psk", PSK),
        ("psk", "00000000000000000000000000000000"),
    );
}

#[test]
fn privacyidea_validates_emulated_tokens_from_a_password_export() {
    let password = "privacyIDEA load password";
    run(
        ("--password", password),
        ("password", password),
        ("password", "not the password"),
    );
}
