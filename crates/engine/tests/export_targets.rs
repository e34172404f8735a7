//! Exports shaped for a validation server (`--for`, issue 7) through the `Station` API, on
//! emulated tokens: the profile's serials and protection reach the file and the record, and a
//! target that cannot take the request is refused before anything is written.

use keyprov_drivers::Family;
use keyprov_engine::api::{
    ExportProtection, ExportRequest, ExportTarget, OtpHash, OtpKind, RenamedSerial,
};
use keyprov_engine::{Cancel, Station};
use keyprov_pskc::{ReadOptions, Secret};

mod common;
use common::{add_tokens, batch_request, open_station};

fn provisioned(dir: &std::path::Path) -> Station {
    let tokens = dir.join("tokens");
    add_tokens(&tokens, Family::Yubikey, 1, None);
    add_tokens(&tokens, Family::NitrokeyPro, 1, None);
    let station = open_station(dir.join("station.db"), tokens);
    let request = batch_request("desk", OtpKind::Hotp, OtpHash::Sha1);
    let summary = station.provision(request, &|_| {}, &Cancel::new()).unwrap();
    assert_eq!(summary.verified, 2);
    station
}

fn psk(path: &std::path::Path, key_hex: &str, target: ExportTarget) -> ExportRequest {
    ExportRequest {
        path: path.to_path_buf(),
        protection: ExportProtection::Key {
            key_hex: key_hex.into(),
        },
        target,
    }
}

#[test]
fn a_linotp_export_writes_oath_serials_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let station = provisioned(dir.path());
    let file = dir.path().join("linotp.pskcxml");
    let key = "0f".repeat(16);

    let record = station
        .export_batch("desk", psk(&file, &key, ExportTarget::Linotp))
        .unwrap();

    let mut renamed = record.renamed_serials.clone();
    renamed.sort_by(|a, b| a.device.cmp(&b.device));
    let pair = |device: &str, written: &str| RenamedSerial {
        device: device.into(),
        written: written.into(),
    };
    assert_eq!(
        renamed,
        [
            pair("00A00001", "NKOH00A00001"),
            pair("10000001", "UBOH10000001")
        ]
    );
    assert_eq!(record.target, ExportTarget::Linotp);
    let options = ReadOptions::with_key(Secret::from_hex(&key).unwrap());
    let container = keyprov_pskc::parse(&std::fs::read(&file).unwrap(), &options).unwrap();
    let mut serials: Vec<_> = container
        .key_packages
        .iter()
        .map(|p| p.device_info.serial_no.clone().unwrap())
        .collect();
    serials.sort();
    assert_eq!(serials, ["NKOH00A00001", "UBOH10000001"]);
    // LinOTP decrypts AES-128-CBC with an HMAC-SHA1 ValueMAC only.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
        "{text}"
    );
    assert!(
        text.contains("http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
        "{text}"
    );

    let listed = station.batch("desk").unwrap().batch.exports;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target, ExportTarget::Linotp);
    // The history keeps the renamed serials (issue 7), as the export itself reported them.
    assert_eq!(listed[0].renamed_serials, record.renamed_serials);
}

#[test]
fn a_refused_target_writes_no_file_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let station = provisioned(dir.path());
    let file = dir.path().join("privacyidea.pskcxml");

    // privacyIDEA takes a pre-shared key of exactly 32 hex digits.
    let err = station
        .export_batch(
            "desk",
            psk(&file, &"0f".repeat(32), ExportTarget::Privacyidea),
        )
        .unwrap_err();
    assert_eq!(err.code(), "export_refused");
    let message = err.to_string();
    assert!(
        message.contains("privacyIDEA cannot open this file"),
        "{message}"
    );
    assert!(
        !message.contains(&"0f".repeat(32)),
        "the key is not echoed: {message}"
    );
    assert!(!file.exists());

    assert!(station.batch("desk").unwrap().batch.exports.is_empty());

    let record = station
        .export_batch(
            "desk",
            psk(&file, &"0f".repeat(16), ExportTarget::Privacyidea),
        )
        .unwrap();
    assert!(record.renamed_serials.is_empty());
    assert!(file.exists());
}
