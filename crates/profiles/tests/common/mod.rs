//! What the oracle tests share: a batch the way the engine describes it, and the third-party
//! programs (python oracles, oathtool, privacyIDEA) from `tests/oracles/harness.rs` of the
//! workspace (the one copy, shared with the binary's `tests/seeds_support/`).

#![allow(dead_code)] // Each test file uses its own part.

#[path = "../../../../tests/oracles/harness.rs"]
mod harness;

#[allow(unused_imports)] // Each test file uses its own part.
pub use harness::{
    PrivacyIdea, oathtool_hotp, oathtool_totp, oracle, oracle_python, privacyidea_python,
    workspace, wrong,
};
use std::path::Path;

use keyprov_profiles::{ProtectionRequest, Target, write_for};
use keyprov_pskc::{
    AlgorithmParameters, DeviceInfo, HOTP, Key, KeyContainer, KeyData, KeyPackage, ResponseFormat,
    Secret, TOTP,
};

/// One token of a test batch.
pub struct Token {
    pub serial: &'static str,
    pub manufacturer: &'static str,
    pub totp: bool,
    /// Suite text as the engine would write it (any spelling).
    pub suite: &'static str,
    /// The hash oathtool and the servers must use.
    pub hash: &'static str,
    pub digits: u32,
    pub counter: u64,
    pub period: u64,
    pub secret: Secret,
}

/// Three tokens covering HOTP, TOTP SHA-1 and TOTP SHA-256, serials offset by `base`.
pub fn batch(base: u32) -> Vec<Token> {
    // Secrets differ between batches, so a token of one batch is foreign to another.
    let seed = (base / 1000) as u8;
    let secret = |n: u8| {
        Secret::new(
            (0..20u8)
                .map(|i| i.wrapping_mul(7) ^ n ^ seed.wrapping_mul(13))
                .collect(),
        )
    };
    let serial = |n: u32| -> &'static str { format!("{}", base + n).leak() };
    vec![
        Token {
            serial: serial(1),
            manufacturer: "Yubico",
            totp: false,
            suite: "HMAC-SHA1",
            hash: "sha1",
            digits: 8,
            counter: 5,
            period: 0,
            secret: secret(1),
        },
        Token {
            serial: serial(2),
            manufacturer: "Nitrokey",
            totp: true,
            suite: "HMAC-SHA1",
            hash: "sha1",
            digits: 6,
            counter: 0,
            period: 30,
            secret: secret(2),
        },
        Token {
            serial: serial(3),
            manufacturer: "Yubico",
            totp: true,
            suite: "HMAC-SHA256",
            hash: "sha256",
            digits: 6,
            counter: 0,
            period: 30,
            secret: Secret::new((0..32u8).map(|i| (255 - i) ^ seed).collect()),
        },
    ]
}

/// The canonical container the engine builds for `tokens`.
pub fn container(tokens: &[Token]) -> KeyContainer {
    let packages = tokens.iter().map(|t| KeyPackage {
        device_info: DeviceInfo {
            manufacturer: Some(t.manufacturer.into()),
            serial_no: Some(t.serial.into()),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some(format!("{}:1", t.serial)),
            algorithm: Some(if t.totp { TOTP } else { HOTP }.into()),
            algorithm_parameters: AlgorithmParameters {
                suite: Some(t.suite.into()),
                response_format: Some(ResponseFormat {
                    length: Some(t.digits),
                    encoding: Some("DECIMAL".into()),
                    check_digits: None,
                }),
                ..AlgorithmParameters::default()
            },
            data: KeyData {
                secret: Some(t.secret.clone()),
                counter: (!t.totp).then_some(t.counter),
                time_interval: t.totp.then_some(t.period),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    });
    KeyContainer {
        key_packages: packages.collect(),
        ..KeyContainer::new()
    }
}

/// Writes `tokens` shaped for `target` with `request` to `dir/name`; returns the path.
pub fn export(
    dir: &Path,
    name: &str,
    target: Target,
    tokens: &[Token],
    request: ProtectionRequest,
) -> String {
    let (bytes, _) = write_for(target, &container(tokens), request).expect("export");
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// The OTP oathtool computes for `token` (HOTP at `counter`, TOTP now).
pub fn oathtool(token: &Token, secret: &Secret, counter: u64) -> String {
    let hex = secret.to_hex();
    if token.totp {
        oathtool_totp(hex.as_str(), token.hash, token.digits, token.period)
    } else {
        oathtool_hotp(hex.as_str(), false, counter, token.digits)
    }
}

/// Lowercase hex of a secret, for comparing with oracle output.
pub fn hex_of(secret: &Secret) -> String {
    secret.to_hex().as_str().to_string()
}

/// RFC 4648 base32 (FreeIPA stores `ipatokenotpkey` so).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
