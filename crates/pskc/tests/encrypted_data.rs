//! `WriteOptions::encrypt_all_data`: Counter, Time, TimeInterval and TimeDrift written as
//! `EncryptedValue` + `ValueMAC` (RFC 6030 §4.3.3, §6) under every protection, read back to
//! the same model; a tampered counter MAC is caught and named; plain output refuses it.

use keyprov_pskc::{
    Cipher, Error, Hmac, Key, KeyContainer, KeyData, KeyPackage, Protection, ReadOptions,
    RsaPublicKey, Secret, WriteOptions, parse, write_with,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Generate, PrivateKey};

const ALL: WriteOptions = WriteOptions {
    encrypt_all_data: true,
};

/// Two keys whose integers test the edges of the 8-byte encoding: a negative drift, 49 (one
/// byte would be the ASCII digit "1"), and the largest counter.
fn container() -> KeyContainer {
    let key = |id: &str, data: KeyData| Key {
        id: Some(id.into()),
        algorithm: Some(keyprov_pskc::TOTP.into()),
        data,
        ..Key::default()
    };
    let first = KeyData {
        secret: Some(Secret::new((1..=32).collect())),
        counter: Some(42),
        time: Some(1_234_567_890),
        time_interval: Some(30),
        time_drift: Some(-4),
    };
    let second = KeyData {
        secret: Some(Secret::new((101..=132).collect())),
        counter: Some(u64::MAX),
        time: Some(0),
        time_interval: Some(49),
        time_drift: Some(300),
    };
    let mut container = KeyContainer::new();
    for (id, data) in [("k1", first), ("k2", second)] {
        container.key_packages.push(KeyPackage {
            keys: vec![key(id, data)],
            ..KeyPackage::default()
        });
    }
    container
}

fn symmetric() -> Vec<(Protection, ReadOptions)> {
    let mut out = Vec::new();
    for cipher in Cipher::ALL.into_iter().filter(|c| !c.is_asymmetric()) {
        let key = Secret::new((1..=cipher.key_lengths()[0] as u8).collect());
        let protection = Protection::PreSharedKey {
            key: key.clone(),
            key_name: None,
            cipher,
            mac: Hmac::Sha256,
        };
        out.push((protection, ReadOptions::with_key(key)));
    }
    let password = Secret::from_slice(b"correct horse");
    let protection = Protection::Password {
        password: password.clone(),
        iterations: 1000,
        prf: Hmac::Sha256,
        salt: None,
        key_name: None,
        cipher: Cipher::Aes128Cbc,
        mac: Hmac::Sha1,
    };
    out.push((protection, ReadOptions::with_password(password)));
    out
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn every_data_value_is_encrypted_and_read_back_under_every_symmetric_protection() {
    let original = container();
    for (protection, options) in symmetric() {
        let xml = write_with(&original, &protection, &ALL).unwrap();
        let text = String::from_utf8(xml.clone()).unwrap();
        // Ten values in two keys: each encrypted with its own MAC, none in plain text.
        assert_eq!(count(&text, "<EncryptedValue>"), 10, "{protection:?}");
        assert_eq!(count(&text, "<ValueMAC>"), 10, "{protection:?}");
        assert_eq!(count(&text, "PlainValue"), 0, "{protection:?}");
        let read = parse(&xml, &options).unwrap_or_else(|e| panic!("{protection:?}: {e}"));
        assert_eq!(read.key_packages, original.key_packages, "{protection:?}");
    }
}

#[test]
fn asymmetric_protection_encrypts_every_data_value_too() {
    let private = PrivateKey::generate();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let protection = Protection::PublicKey {
        key: RsaPublicKey::from_pem(&public_pem).unwrap(),
        cipher: Cipher::RsaOaepMgf1p,
    };
    let original = container();
    let xml = write_with(&original, &protection, &ALL).unwrap();
    let text = String::from_utf8(xml.clone()).unwrap();
    assert_eq!(count(&text, "<EncryptedValue>"), 10);
    assert_eq!(count(&text, "PlainValue"), 0);
    let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let read = parse(&xml, &ReadOptions::with_private_key_pem(&pem).unwrap()).unwrap();
    assert_eq!(read.key_packages, original.key_packages);
}

#[test]
fn without_the_option_only_the_secret_is_encrypted() {
    let (protection, options) = symmetric().remove(0);
    let xml = write_with(&container(), &protection, &WriteOptions::default()).unwrap();
    let text = String::from_utf8(xml.clone()).unwrap();
    assert_eq!(count(&text, "<EncryptedValue>"), 2);
    assert_eq!(count(&text, "<PlainValue>"), 8);
    assert!(text.contains("<PlainValue>-4</PlainValue>"), "{text}");
    let read = parse(&xml, &options).unwrap();
    assert_eq!(read.key_packages, container().key_packages);
}

#[test]
fn a_tampered_counter_mac_is_a_mismatch_naming_the_counter_and_key() {
    let (protection, options) = symmetric().remove(0);
    let xml = write_with(&container(), &protection, &ALL).unwrap();
    let text = String::from_utf8(xml).unwrap();
    // In document order the first key's values are Secret, then Counter.
    let counter = text.find("<Counter>").unwrap();
    let mac = counter + text[counter..].find("<ValueMAC>").unwrap() + "<ValueMAC>".len();
    let flipped = if text.as_bytes()[mac] == b'A' {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{flipped}{}", &text[..mac], &text[mac + 1..]);
    let err = parse(tampered.as_bytes(), &options).unwrap_err();
    assert!(matches!(err, Error::MacMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("Counter") && message.contains("k1"),
        "{message}"
    );
}

#[test]
fn plain_output_cannot_encrypt_data_values() {
    let err = write_with(&container(), &Protection::Plain, &ALL).unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
}
