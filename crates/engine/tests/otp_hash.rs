//! The OTP hash of a batch (issue 7) through the `Station` API on emulated tokens: tokens
//! that cannot compute the hash asked for fail before a key is obtained for them, the store
//! and the batch listing keep the hash, and exports name it in `Suite` (RFC 6030 spelling for
//! generic readers, privacyIDEA's hashlib name for `--for privacyidea`).

use keyprov_drivers::Family;
use keyprov_drivers::emulator;
use keyprov_engine::api::{
    BatchRequest, ExportProtection, ExportRequest, ExportTarget, OtpHash, OtpKind, ProvisioningMode,
};
use keyprov_engine::{Cancel, Station};
use keyprov_pskc::{ReadOptions, Secret};

const PSK: &str = "000102030405060708090a0b0c0d0e0f";

mod common;
use common::{add_tokens, batch_request as request, open_station};

fn station(dir: &std::path::Path, family: Family) -> Station {
    let tokens = dir.join("tokens");
    add_tokens(&tokens, family, 2, None);
    open_station(dir.join("station.db"), tokens)
}

fn export(station: &Station, batch: &str, path: &std::path::Path, target: ExportTarget) {
    let request = ExportRequest {
        path: path.to_path_buf(),
        protection: ExportProtection::Key {
            key_hex: PSK.into(),
        },
        target,
    };
    station.export_batch(batch, request).unwrap();
}

/// The `Suite` of every key of an exported file.
fn suites(path: &std::path::Path) -> Vec<Option<String>> {
    let options = ReadOptions::with_key(Secret::from_hex(PSK).unwrap());
    let container = keyprov_pskc::parse(&std::fs::read(path).unwrap(), &options).unwrap();
    container
        .keys()
        .map(|(_, key)| key.algorithm_parameters.suite.clone())
        .collect()
}

#[test]
fn tokens_without_sha256_fail_before_a_key_is_obtained() {
    for (family, otp) in [
        (Family::Yubikey, OtpKind::Hotp),
        (Family::NitrokeyPro, OtpKind::Totp),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let station = station(dir.path(), family);
        let summary = station
            .provision(
                request("sha256", otp, OtpHash::Sha256),
                &|_| {},
                &Cancel::new(),
            )
            .unwrap();
        assert_eq!((summary.failed, summary.verified), (2, 0), "{family}");
        assert_eq!(summary.hash, OtpHash::Sha256);

        let detail = station.batch("sha256").unwrap();
        for token in &detail.tokens {
            let error = token.error.as_deref().unwrap_or_default();
            assert!(
                error.contains(&format!("{} cannot compute sha256 OTPs", token.serial))
                    && error.contains("it supports sha1"),
                "{family}: {error}"
            );
            assert_eq!(token.key_id, "", "{family}: no key was reserved");
            assert_eq!(token.state, "failed");
        }
        let events = station.audit_events(Default::default()).unwrap();
        assert!(
            events
                .iter()
                .all(|e| e.kind != "key.reserved" && e.kind != "engine.dskpp_started"),
            "{family}: no DSKPP run and no key for a token that cannot take it"
        );
    }
}

#[test]
fn sha512_fails_every_token_before_a_key_is_obtained() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), Family::Nitrokey3);
    let request = request("sha512", OtpKind::Totp, OtpHash::Sha512);
    let summary = station.provision(request, &|_| {}, &Cancel::new()).unwrap();
    assert_eq!((summary.failed, summary.hash), (2, OtpHash::Sha512));
    for token in station.batch("sha512").unwrap().tokens {
        let error = token.error.unwrap_or_default();
        assert!(
            error.contains("cannot compute sha512 OTPs (it supports sha1, sha256)"),
            "{error}"
        );
        assert_eq!(token.key_id, "");
    }
}

#[test]
fn exports_name_the_hash_in_suite_for_each_target() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), Family::NitrokeyPro);
    let summary = station
        .provision(
            request("totp", OtpKind::Totp, OtpHash::Sha1),
            &|_| {},
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!((summary.verified, summary.hash), (2, OtpHash::Sha1));

    let generic = dir.path().join("generic.pskcxml");
    export(&station, "totp", &generic, ExportTarget::Generic);
    assert_eq!(suites(&generic), vec![Some("HMAC-SHA1".to_string()); 2]);

    let privacyidea = dir.path().join("privacyidea.pskcxml");
    export(&station, "totp", &privacyidea, ExportTarget::Privacyidea);
    assert_eq!(suites(&privacyidea), vec![Some("sha1".to_string()); 2]);
}

#[test]
fn a_batch_request_without_hash_is_sha1() {
    let json = r#"{"name": "b", "otp": "totp", "digits": 6, "mode": {"kind": "local"}}"#;
    let request: BatchRequest = serde_json::from_str(json).unwrap();
    assert_eq!(request.hash, OtpHash::Sha1);
    let json = r#"{"name": "b", "otp": "totp", "digits": 6, "mode": {"kind": "local"},
                   "hash": "sha256"}"#;
    let request: BatchRequest = serde_json::from_str(json).unwrap();
    assert_eq!(request.hash, OtpHash::Sha256);
}

/// The TOTP the emulated token `serial` gives now, and the SHA-256 TOTP of the key the
/// station holds for it (computed twice when a time step ends in between).
fn device_and_station_totp(station: &Station, dir: &std::path::Path, key_id: &str, serial: &str) {
    use keyprov_drivers::otp::{Digits, OtpHash as DriverHash, totp_with};
    let secret = hex::decode(station.reveal_secret(key_id).unwrap().as_str()).unwrap();
    for _ in 0..2 {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = now();
        let device = emulator::touch_totp(&dir.join("tokens"), serial, 0).unwrap();
        let expected = totp_with(DriverHash::Sha256, &secret, before, 30, Digits::SIX);
        if before / 30 == now() / 30 {
            assert_eq!(device, expected, "{serial}");
            return;
        }
    }
    panic!("two time steps ended while reading one TOTP");
}

#[test]
fn nitrokey3_tokens_take_sha256_keys_and_reissue_keeps_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), Family::Nitrokey3);
    let summary = station
        .provision(
            request("nk3", OtpKind::Totp, OtpHash::Sha256),
            &|_| {},
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!((summary.verified, summary.hash), (2, OtpHash::Sha256));
    let detail = station.batch("nk3").unwrap();
    for token in &detail.tokens {
        assert_eq!(token.verification.as_deref(), Some("device-otp"));
        device_and_station_totp(&station, dir.path(), &token.key_id, &token.serial);
    }

    let generic = dir.path().join("generic.pskcxml");
    export(&station, "nk3", &generic, ExportTarget::Generic);
    assert_eq!(suites(&generic), vec![Some("HMAC-SHA256".to_string()); 2]);
    let privacyidea = dir.path().join("privacyidea.pskcxml");
    export(&station, "nk3", &privacyidea, ExportTarget::Privacyidea);
    assert_eq!(suites(&privacyidea), vec![Some("sha256".to_string()); 2]);

    let serial = detail.tokens[0].serial.clone();
    let reissued = station
        .reissue(
            keyprov_engine::api::ReissueRequest {
                serial: serial.clone(),
                mode: ProvisioningMode::Local,
                export: None,
            },
            &|_| {},
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!((reissued.verified, reissued.hash), (1, OtpHash::Sha256));
    let new_key = station.batch(&reissued.name).unwrap().tokens[0]
        .key_id
        .clone();
    assert_ne!(new_key, detail.tokens[0].key_id);
    device_and_station_totp(&station, dir.path(), &new_key, &serial);
}

#[test]
fn a_batch_is_not_resumed_with_another_hash() {
    let dir = tempfile::tempdir().unwrap();
    let station = station(dir.path(), Family::Yubikey);
    let first = request("desk", OtpKind::Hotp, OtpHash::Sha1);
    station.provision(first, &|_| {}, &Cancel::new()).unwrap();
    let other = request("desk", OtpKind::Hotp, OtpHash::Sha256);
    let err = station
        .provision(other, &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_eq!(err.code(), "batch_mismatch");
    assert!(err.to_string().contains("hotp 6 digits sha1"), "{err}");
}
