//! Streaming: a 100 MB encrypted file (AES-128-CBC + HMAC-SHA1) is read, decrypted and
//! MAC-checked by `keyprov pskc inspect` with a peak RSS of at most 64 MiB, and converted.

mod pskc_common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use keyprov_pskc::{
    Cipher, DeviceInfo, Hmac, Key, KeyContainer, KeyData, KeyPackage, Protection, Secret, Writer,
};
use pskc_common::*;

const TARGET_BYTES: u64 = 100 * 1000 * 1000;
const LIMIT_KIB: u64 = 64 * 1024;

fn package(i: usize) -> KeyPackage {
    KeyPackage {
        device_info: DeviceInfo {
            manufacturer: Some("oath.KP".into()),
            serial_no: Some(format!("KP{i:010}")),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some(format!("KP{i:010}#1")),
            algorithm: Some(keyprov_pskc::TOTP.into()),
            issuer: Some("KeyProv Station streaming test".into()),
            friendly_name: Some(format!("token number {i} of the streaming test file")),
            data: KeyData {
                secret: Some(Secret::new((0..20).map(|b| (i as u8) ^ b).collect())),
                time_interval: Some(30),
                counter: Some(i as u64),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    }
}

/// Writes packages until the file reaches 100 MB; returns the number of keys.
fn generate(path: &Path) -> usize {
    let protection = Protection::PreSharedKey {
        key: Secret::from_hex(PSK_F6).unwrap(),
        key_name: None,
        cipher: Cipher::Aes128Cbc,
        mac: Hmac::Sha1,
    };
    let file = File::create(path).unwrap();
    let mut writer = Writer::new(BufWriter::new(file), &KeyContainer::new(), &protection).unwrap();
    let mut keys = 0;
    while keys % 1000 != 0 || std::fs::metadata(path).unwrap().len() < TARGET_BYTES {
        writer.write_package(&package(keys)).unwrap();
        keys += 1;
    }
    writer.finish().unwrap().flush().unwrap();
    keys
}

/// Peak RSS (VmHWM, KiB) of a running child, polled until it exits.
fn run_measuring_peak(mut command: std::process::Command) -> (bool, u64, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            let kib = hwm.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(kib.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.success(), peak, err);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_100_mb_encrypted_file_streams_in_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pskcxml");
    let keys = generate(&big);
    assert!(std::fs::metadata(&big).unwrap().len() >= TARGET_BYTES);

    let mut inspect = keyprov();
    inspect
        .args([
            "pskc",
            "inspect",
            "--json",
            "--show-secrets",
            "--key",
            PSK_F6,
        ])
        .arg(&big);
    let (ok, peak, err) = run_measuring_peak(inspect);
    assert!(ok, "inspect failed: {err}");
    assert!(peak > 0, "VmHWM not observed");
    assert!(
        peak <= LIMIT_KIB,
        "inspect peak RSS {peak} KiB > {LIMIT_KIB} KiB ({keys} keys)"
    );

    let out = dir.path().join("plain.pskcxml");
    let mut convert = keyprov();
    convert
        .args(["pskc", "convert", "--key", PSK_F6, "--plain", "-o"])
        .arg(&out)
        .arg(&big);
    let (ok, peak, err) = run_measuring_peak(convert);
    assert!(ok, "convert failed: {err}");
    assert!(
        peak <= LIMIT_KIB,
        "convert peak RSS {peak} KiB > {LIMIT_KIB} KiB"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("<KeyPackage>").count(), keys);
}
