//! End to end: emulated tokens provisioned by `keyprov provision`, exported for privacyIDEA,
//! loaded into a real privacyIDEA 3.14 on loopback (`POST /token/load`), and validated there
//! (`POST /validate/check`) with the OTP each emulated token gives (`keyprov emulator touch`,
//! `--totp` for a TOTP slot): HOTP SHA-1 (YubiKey), TOTP SHA-1 (Nitrokey Pro), TOTP and HOTP
//! SHA-256 (Nitrokey 3, `provision --hash sha256`). A wrong OTP, an OTP from a token of another
//! station that is not in the file, and an unknown serial are refused. One test per file
//! protection (pre-shared key, password); each runs its own privacyIDEA.

mod seeds_support;

use std::path::{Path, PathBuf};

use keyprov_pskc::{ReadOptions, Secret};
use seeds_support::{PrivacyIdea, keyprov_ok, wrong};

/// A provisioned batch of emulated tokens.
struct Batch {
    name: &'static str,
    family: &'static str,
    emulator: PathBuf,
    serials: Vec<String>,
    totp: bool,
    hash: &'static str,
}

impl Batch {
    /// The OTP the emulated token `serial` gives now: typed on touch (HOTP), or read from its
    /// TOTP slot (the engine writes a batch's keys to the first slot of their kind).
    fn otp(&self, serial: &str) -> String {
        let dir = self.emulator.to_str().unwrap();
        // YubiKey slots count from 1, Nitrokey slots from 0.
        let first_slot = if self.family == "yubikey" { "1" } else { "0" };
        let mut args = vec!["emulator", "touch", serial, "--slot", first_slot];
        if self.totp {
            args.push("--totp");
        }
        args.extend(["--dir", dir]);
        keyprov_ok(&args).trim().to_string()
    }
}

/// Adds `count` emulated `family` tokens to `work/dir` and provisions them as batch `name` of
/// the station `db`; tokens already in the directory are unplugged meanwhile.
fn provision(
    work: &Path,
    db: &Path,
    (name, dir): (&'static str, &str),
    (family, count): (&'static str, u32),
    (totp, hash): (bool, &'static str),
) -> Batch {
    let emulator = work.join(dir);
    let dir = emulator.to_str().unwrap();
    let listed = |dir: &str| -> Vec<String> {
        let json = keyprov_ok(&["emulator", "list", "--dir", dir, "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let serials = listed.as_array().unwrap().iter();
        serials
            .map(|d| d["serial"].as_str().unwrap().into())
            .collect()
    };
    let earlier = if emulator.exists() {
        listed(dir)
    } else {
        Vec::new()
    };
    for serial in &earlier {
        keyprov_ok(&["emulator", "unplug", serial, "--dir", dir]);
    }
    keyprov_ok(&[
        "emulator",
        "add",
        family,
        "--count",
        &count.to_string(),
        "--dir",
        dir,
    ]);
    let profile = if totp { "totp" } else { "hotp" };
    keyprov_ok(&[
        "provision",
        "--batch",
        name,
        "--profile",
        profile,
        "--hash",
        hash,
        "--digits",
        "6",
        "--period",
        "30",
        "--emulator",
        dir,
        "--db",
        db.to_str().unwrap(),
    ]);
    for serial in &earlier {
        keyprov_ok(&["emulator", "plug", serial, "--dir", dir]);
    }
    let serials: Vec<String> = listed(dir)
        .into_iter()
        .filter(|s| !earlier.contains(s))
        .collect();
    assert_eq!(serials.len(), count as usize, "{name}: {serials:?}");
    Batch {
        name,
        family,
        emulator,
        serials,
        totp,
        hash,
    }
}

/// The `--for privacyidea` file of a batch (`keyprov batch export ID -o FILE --for
/// privacyidea --key HEX | --password PW`); checks that it names the batch's hash as
/// privacyIDEA reads it (Suite `sha1`/`sha256`).
fn privacyidea_file(work: &Path, db: &Path, batch: &Batch, protection: (&str, &str)) -> PathBuf {
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
    for (package, key) in container.keys() {
        assert_eq!(
            key.algorithm_parameters.suite.as_deref(),
            Some(batch.hash),
            "{}: Suite of {:?}",
            batch.name,
            package.device_info.serial_no
        );
    }
    file
}

/// Every token of the batch: privacyIDEA refuses a wrong OTP, then accepts the token's own.
fn assert_validates(server: &mut PrivacyIdea, batch: &Batch) {
    for serial in &batch.serials {
        let otp = batch.otp(serial);
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

/// Emulated tokens of another station, with the serials of `loaded`'s first tokens and keys
/// of their own: their OTPs open neither the loaded tokens nor an unknown serial.
fn assert_foreign_refused(server: &mut PrivacyIdea, work: &Path, loaded: &[&Batch]) {
    let other_db = work.join("other-station/station.db");
    for batch in loaded {
        let dir = format!("foreign-{}", batch.name);
        let foreign = provision(
            work,
            &other_db,
            (batch.name, &dir),
            (batch.family, 1),
            (batch.totp, batch.hash),
        );
        let serial = &foreign.serials[0];
        assert_eq!(
            serial, &batch.serials[0],
            "emulator serials are expected to repeat per dir"
        );
        let otp = foreign.otp(serial);
        assert!(
            !server.accepts(serial, &otp),
            "{}: a foreign token's OTP was accepted",
            batch.name
        );
        assert!(
            !server.accepts("99999999", &otp),
            "{}: an unknown serial was accepted",
            batch.name
        );
    }
}

/// Provisions HOTP and TOTP batches (SHA-1 and SHA-256), exports each for privacyIDEA with
/// `protection` (a `batch export` flag and its value), loads them (first one with
/// `wrong_load`, which must import nothing) and validates every token.
fn run(protection: (&str, &str), load_with: (&str, &str), wrong_load: (&str, &str)) {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let db = work.join("station/station.db");
    let batches = [
        provision(
            work,
            &db,
            ("hotp", "yubikeys"),
            ("yubikey", 2),
            (false, "sha1"),
        ),
        provision(
            work,
            &db,
            ("totp", "nitrokeys"),
            ("nitrokey-pro", 2),
            (true, "sha1"),
        ),
        provision(
            work,
            &db,
            ("totp-sha256", "nitrokey3s"),
            ("nitrokey3", 2),
            (true, "sha256"),
        ),
        provision(
            work,
            &db,
            ("hotp-sha256", "nitrokey3s"),
            ("nitrokey3", 2),
            (false, "sha256"),
        ),
    ];
    let files: Vec<PathBuf> = batches
        .iter()
        .map(|batch| privacyidea_file(work, &db, batch, protection))
        .collect();

    let mut server = PrivacyIdea::start();
    // privacyIDEA answers a wrong key with an error, or (bad MAC) with success and 0 imported.
    let refused = server.load(&files[0], wrong_load);
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "wrong key imported: {refused:?}"
    );
    assert!(
        server.token(&batches[0].serials[0]).is_null(),
        "a token was imported with a wrong key"
    );
    for (file, batch) in files.iter().zip(&batches) {
        let expected = batch.serials.len() as u64;
        assert_eq!(server.load(file, load_with), Ok(expected), "{}", batch.name);
    }
    for batch in &batches {
        assert_validates(&mut server, batch);
    }
    assert_foreign_refused(&mut server, work, &[&batches[0], &batches[2]]);
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
