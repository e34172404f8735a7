//! The interop corpus (`../shared/interop/pskc-corpus`) read with the expected values from its
//! README (taken from python-pskc's doctests and libpskc's shell tests).

use std::path::PathBuf;

use keyprov_pskc::{Error, KeyContainer, ReadOptions, Secret, parse};

const PSK_F6: &str = "12345678901234567890123456789012";
const ASCII_20: &[u8] = b"12345678901234567890";

fn corpus(path: &str) -> Vec<u8> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/pskc-corpus");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key(hex: &str) -> ReadOptions {
    ReadOptions::with_key(Secret::from_hex(hex).unwrap())
}

fn read(path: &str, options: &ReadOptions) -> KeyContainer {
    parse(&corpus(path), options).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn first_secret(container: &KeyContainer) -> Vec<u8> {
    let (_, key) = container.keys().next().expect("a key");
    key.data
        .secret
        .as_ref()
        .expect("a secret")
        .expose()
        .to_vec()
}

#[test]
fn rfc6030_figure2_minimal() {
    let c = read(
        "python-pskc/rfc6030/figure2.pskcxml",
        &ReadOptions::default(),
    );
    let (_, key) = c.keys().next().unwrap();
    assert_eq!(c.key_packages.len(), 1);
    assert_eq!(key.id.as_deref(), Some("12345678"));
    assert_eq!(key.algorithm.as_deref(), Some(keyprov_pskc::HOTP));
    assert_eq!(key.issuer.as_deref(), Some("Issuer-A"));
    assert_eq!(first_secret(&c), b"1234");
}

#[test]
fn rfc6030_figure3_device_info() {
    let c = read(
        "python-pskc/rfc6030/figure3.pskcxml",
        &ReadOptions::default(),
    );
    let (package, key) = c.keys().next().unwrap();
    assert_eq!(c.id.as_deref(), Some("exampleID1"));
    assert_eq!(package.device_info.serial_no.as_deref(), Some("987654321"));
    assert_eq!(package.crypto_module_id.as_deref(), Some("CM_ID_001"));
    let response = key.algorithm_parameters.response_format.as_ref().unwrap();
    assert_eq!(
        (response.encoding.as_deref(), response.length),
        (Some("DECIMAL"), Some(8))
    );
    assert_eq!(first_secret(&c), ASCII_20);
    assert_eq!(key.data.counter, Some(0));
    assert_eq!(
        key.user_id.as_deref(),
        Some("UID=jsmith,DC=example-bank,DC=net")
    );
}

#[test]
fn rfc6030_figure4_key_reference() {
    let c = read(
        "python-pskc/rfc6030/figure4.pskcxml",
        &ReadOptions::default(),
    );
    let (_, key) = c.keys().next().unwrap();
    assert_eq!(key.key_profile_id.as_deref(), Some("keyProfile1"));
    assert_eq!(key.key_reference.as_deref(), Some("MasterKeyLabel"));
    assert_eq!(key.data.counter, Some(0));
    assert!(key.data.secret.is_none());
}

#[test]
fn rfc6030_figure5_pin_policy() {
    let c = read(
        "python-pskc/rfc6030/figure5.pskcxml",
        &ReadOptions::default(),
    );
    let keys: Vec<_> = c.keys().collect();
    assert_eq!(keys.len(), 2);
    let pin = keys[0].1.policy.pin_policy.as_ref().unwrap();
    assert_eq!((pin.min_length, pin.max_length), (Some(4), Some(4)));
    assert_eq!(pin.pin_key_id.as_deref(), Some("123456781"));
    assert_eq!(pin.pin_encoding.as_deref(), Some("DECIMAL"));
    assert_eq!(pin.pin_usage_mode.as_deref(), Some("Local"));
    assert_eq!(keys[0].1.policy.key_usage, ["OTP"]);
    assert_eq!(keys[1].1.algorithm.as_deref(), Some(keyprov_pskc::PIN));
    assert_eq!(keys[1].1.data.secret.as_ref().unwrap().expose(), b"1234");
    assert_eq!(
        keys[0].0.device_info.serial_no,
        keys[1].0.device_info.serial_no
    );
}

#[test]
fn rfc6030_figure6_pre_shared_key() {
    let path = "python-pskc/rfc6030/figure6.pskcxml";
    let c = read(path, &key(PSK_F6));
    assert_eq!(first_secret(&c), ASCII_20);
    assert_eq!(c.key_names, ["Pre-shared-key"]);
    let err = parse(&corpus(path), &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyRequired {
                needed: "pre-shared key",
                ..
            }
        ),
        "{err}"
    );
    let wrong = parse(&corpus(path), &key("12345678901234567890123456789013")).unwrap_err();
    assert!(wrong.is_wrong_key(), "{wrong}");
}

#[test]
fn rfc6030_figure7_password() {
    let path = "python-pskc/rfc6030/figure7.pskcxml";
    let c = read(
        path,
        &ReadOptions::with_password(Secret::from_slice(b"qwerty")),
    );
    assert_eq!(first_secret(&c), ASCII_20);
    assert_eq!(c.key_names, ["My Password 1"]);
    let wrong = parse(
        &corpus(path),
        &ReadOptions::with_password(Secret::from_slice(b"qwertz")),
    );
    assert!(wrong.unwrap_err().is_wrong_key());
}

#[test]
fn rfc6030_figure8_metadata_without_private_key() {
    let options = ReadOptions {
        metadata_only: true,
        ..ReadOptions::default()
    };
    let c = read("python-pskc/rfc6030/figure8.pskcxml", &options);
    let (_, key) = c.keys().next().unwrap();
    assert_eq!(c.id.as_deref(), Some("KC0001"));
    assert_eq!(key.id.as_deref(), Some("MBK000000001"));
    assert!(key.data.secret.is_none());
    let err = parse(
        &corpus("python-pskc/rfc6030/figure8.pskcxml"),
        &ReadOptions::default(),
    );
    assert!(matches!(
        err,
        Err(Error::KeyRequired {
            needed: "private key",
            ..
        })
    ));
}

#[test]
fn rfc6030_figure9_signed_and_figure10_bulk() {
    let c = read(
        "python-pskc/rfc6030/figure9.pskcxml",
        &ReadOptions::default(),
    );
    assert!(c.signed);
    let c = read(
        "python-pskc/rfc6030/figure10.pskcxml",
        &ReadOptions::default(),
    );
    let serials: Vec<_> = c
        .key_packages
        .iter()
        .map(|p| p.device_info.serial_no.clone().unwrap())
        .collect();
    assert_eq!(serials, ["654321", "123456", "9999999", "9999999"]);
    let policy = &c.key_packages[0].keys[0].policy;
    let start = policy.start_date.unwrap();
    assert_eq!(
        (start.year(), start.month() as u8, start.day()),
        (2006, 5, 1)
    );
    let expiry = policy.expiry_date.unwrap();
    assert_eq!(
        (expiry.year(), expiry.month() as u8, expiry.day()),
        (2006, 5, 31)
    );
}

#[test]
fn draft_02_syntax() {
    let c = read(
        "python-pskc/draft-ietf-keyprov-pskc-02/figure3.pskcxml",
        &ReadOptions::default(),
    );
    let keys: Vec<_> = c.keys().collect();
    assert_eq!(keys[0].1.id.as_deref(), Some("12345678"));
    assert_eq!(
        keys[0].1.algorithm.as_deref(),
        Some("urn:ietf:params:xml:ns:keyprov:pskc#hotp")
    );
    assert_eq!(keys[0].1.data.secret.as_ref().unwrap().expose(), ASCII_20);
    assert_eq!(keys[0].1.policy.key_usage, ["OTP"]);
    assert_eq!(keys[1].1.data.secret.as_ref().unwrap().expose(), b"1234");
    let options = ReadOptions::with_password(Secret::from_slice(b"qwerty"));
    let c = read(
        "python-pskc/draft-ietf-keyprov-pskc-02/figure5.pskcxml",
        &options,
    );
    assert_eq!(first_secret(&c), ASCII_20);
    let c = read(
        "python-pskc/draft-ietf-keyprov-pskc-02/figure9.pskcxml",
        &ReadOptions::default(),
    );
    assert_eq!((c.key_packages.len(), c.keys().count()), (3, 4));
}

#[test]
fn every_cipher_of_python_pskc_encryption_tests() {
    let cases = [
        ("aes128-cbc", PSK_F6.to_owned(), ASCII_20.to_vec()),
        (
            "aes192-cbc",
            "123456789012345678901234567890123456789012345678".into(),
            ASCII_20.to_vec(),
        ),
        (
            "aes256-cbc",
            "1234567890123456789012345678901234567890123456789012345678901234".into(),
            ASCII_20.to_vec(),
        ),
        ("tripledes-cbc", PSK_F6.into(), ASCII_20.to_vec()),
        (
            "kw-aes128",
            "000102030405060708090a0b0c0d0e0f".into(),
            hex("00112233445566778899aabbccddeeff"),
        ),
        (
            "kw-aes192",
            "000102030405060708090a0b0c0d0e0f1011121314151617".into(),
            hex("00112233445566778899aabbccddeeff"),
        ),
        (
            "kw-aes256",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".into(),
            hex("00112233445566778899aabbccddeeff0001020304050607"),
        ),
        (
            "kw-tripledes",
            "255e0d1c07b646dfb3134cc843ba8aa71f025b7c0838251f".into(),
            hex("2923bf85e06dd6ae529149f1f1bae9eab3a7da3d860d3e98"),
        ),
    ];
    for (name, psk, secret) in cases {
        let c = read(
            &format!("python-pskc/encryption/{name}.pskcxml"),
            &key(&psk),
        );
        assert_eq!(first_secret(&c), secret, "{name}");
    }
    let err = parse(
        &corpus("python-pskc/encryption/aes192-cbc.pskcxml"),
        &key(PSK_F6),
    )
    .unwrap_err();
    assert!(matches!(err, Error::KeyLength { .. }), "{err}");
    let tdes = corpus("python-pskc/encryption/tripledes-cbc.pskcxml");
    let err = parse(&tdes, &key("1234")).unwrap_err();
    assert!(matches!(err, Error::KeyLength { .. }), "{err}");
    let err = parse(&tdes, &key("11111111111111111111111111111111")).unwrap_err();
    assert!(err.is_wrong_key(), "{err}");
}

#[test]
fn camellia_files() {
    // Keys from the comments of the files themselves.
    for (name, psk) in [
        ("camellia128-cbc", "200497e673a6fae2256e9749468a67ac"),
        (
            "camellia192-cbc",
            "e263279877384c84c987661a9d06766affdb9b3211eae801",
        ),
        (
            "camellia256-cbc",
            "33b37e31c5a0a16f004e7fe727d4ff808fc1f879d85ccd8f06dbb5799565d2f5",
        ),
        ("kw-camellia128", "e35b135a09bfff8b314a5a0c32193c37"),
        (
            "kw-camellia192",
            "5eb0bccad29abe52d143d5aebc1c1ba174b8d379ce763c28",
        ),
        (
            "kw-camellia256",
            "0e187c656c36975b0d6bded79d7089142209457114ce8e6f4ae78339d71114e8",
        ),
    ] {
        let c = read(&format!("python-pskc/encryption/{name}.pskcxml"), &key(psk));
        assert_eq!(first_secret(&c), ASCII_20, "{name}");
    }
}

#[test]
fn legacy_encryption_variants() {
    let options = ReadOptions {
        iv: Some(hex("000102030405060708090a0b0c0d0e0f")),
        ..key(PSK_F6)
    };
    let c = read("python-pskc/encryption/aes128-cbc-noiv.pskcxml", &options);
    assert_eq!(first_secret(&c), ASCII_20);
    let c = read("python-pskc/encryption/no-mac-key.pskcxml", &key(PSK_F6));
    assert_eq!(first_secret(&c), ASCII_20);
    let c = read(
        "python-pskc/encryption/mac-over-plaintext.pskcxml",
        &key(PSK_F6),
    );
    assert_eq!(first_secret(&c), ASCII_20);
}

#[test]
fn misc_integers_and_namespaces() {
    let c = read("python-pskc/misc/integers.pskcxml", &key(PSK_F6));
    let counters: Vec<_> = c.keys().map(|(_, k)| k.data.counter.unwrap()).collect();
    assert_eq!(counters, [831791, 709791, 405834, 298507, 961392]);
    let c = read(
        "python-pskc/misc/odd-namespace.pskcxml",
        &ReadOptions::default(),
    );
    assert_eq!(first_secret(&c), b"1234");
    let c = read(
        "python-pskc/misc/partialxml.pskcxml",
        &ReadOptions::default(),
    );
    assert!(c.keys().all(|(_, k)| k.data.counter.is_none()));
}

#[test]
fn misc_policy_and_check_digits() {
    let c = read("python-pskc/misc/policy.pskcxml", &ReadOptions::default());
    let unknown: Vec<_> = c.keys().map(|(_, k)| k.policy.unknown_elements).collect();
    assert_eq!(unknown, [false, true, true, true, false]);
    assert_eq!(
        c.key_packages[0].keys[0].policy.number_of_transactions,
        Some(4321)
    );
    let c = read(
        "python-pskc/misc/checkdigits.pskcxml",
        &ReadOptions::default(),
    );
    let first = &c.key_packages[0].keys[0].algorithm_parameters;
    let challenge = first.challenge_format.as_ref().unwrap();
    assert_eq!(
        (challenge.min, challenge.max, challenge.check_digits),
        (Some(12), Some(34), Some(true))
    );
    assert_eq!(
        first.response_format.as_ref().unwrap().check_digits,
        Some(false)
    );
    let third = &c.key_packages[2].keys[0].algorithm_parameters;
    assert_eq!(
        third.challenge_format.as_ref().unwrap().check_digits,
        Some(false)
    );
    assert_eq!(
        third.response_format.as_ref().unwrap().check_digits,
        Some(true)
    );
}

#[test]
fn vendor_files() {
    let c = read("python-pskc/feitian/file1.pskcxml", &ReadOptions::default());
    assert_eq!(c.keys().count(), 6);
    assert_eq!(
        c.key_packages[0].device_info.serial_no.as_deref(),
        Some("1000133508267")
    );
    assert_eq!(c.keys().last().unwrap().1.data.time_interval, Some(60));
    let c = read(
        "python-pskc/yubico/example3.pskcxml",
        &ReadOptions::default(),
    );
    assert!(c.keys().any(|(_, k)| !k.extensions.is_empty()));
    let c = read(
        "libpskc/pskctool-tests/pskc-all.xml",
        &ReadOptions::default(),
    );
    assert_eq!(c.keys().count(), 1);
}

#[test]
fn invalid_files_are_rejected() {
    let psk = key(PSK_F6);
    let cases: [(&str, &ReadOptions, &str); 13] = [
        ("notxml", &psk, "not well-formed XML"),
        ("wrongelement", &psk, "root element"),
        ("wrongversion", &psk, "version"),
        ("unknown-encryption", &psk, "unsupported encryption"),
        ("missing-encryption", &psk, "EncryptionMethod@Algorithm"),
        (
            "missing-encryption-method",
            &psk,
            "EncryptionMethod@Algorithm",
        ),
        (
            "incomplete-derivation",
            &ReadOptions::with_password(Secret::from_slice(b"qwerty")),
            "PBKDF2",
        ),
        ("no-mac-method", &psk, "no MAC algorithm"),
        ("mac-algorithm", &psk, "unsupported MAC"),
        ("mac-value", &psk, "ValueMAC does not match"),
        ("not-integer", &psk, "integer"),
        ("not-integer2", &psk, "integer"),
        ("not-boolean", &psk, "boolean"),
    ];
    for (name, options, message) in cases {
        let path = format!("python-pskc/invalid/{name}.pskcxml");
        let err = parse(&corpus(&path), options).expect_err(&path).to_string();
        assert!(err.contains(message), "{name}: {err}");
    }
}

#[test]
fn freeipa_files_are_rejected() {
    let err = parse(&corpus("freeipa/pskc-entity.xml"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::DtdForbidden), "{err}");
    let missing = corpus("freeipa/pskc-missingmac.xml");
    let err = parse(&missing, &key(PSK_F6)).unwrap_err();
    assert!(matches!(err, Error::MissingValueMac { .. }), "{err}");
    let lenient = ReadOptions {
        accept_missing_value_mac: true,
        ..key(PSK_F6)
    };
    assert_eq!(first_secret(&parse(&missing, &lenient).unwrap()), ASCII_20);
}

fn hex(text: &str) -> Vec<u8> {
    ::hex::decode(text).unwrap()
}

#[test]
fn mac_key_reference_uses_the_out_of_band_mac_key() {
    // Figure 6 with its MACKey replaced by a MACKeyReference: the MAC key
    // (1122…9900, from the README) is supplied by the caller.
    let text = String::from_utf8(corpus("python-pskc/rfc6030/figure6.pskcxml")).unwrap();
    let start = text.find("<MACKey>").unwrap();
    let end = text.find("</MACKey>").unwrap() + "</MACKey>".len();
    let text = format!(
        "{}<MACKeyReference>MAC key 1</MACKeyReference>{}",
        &text[..start],
        &text[end..]
    );
    let mac_key = Secret::from_hex("1122334455667788990011223344556677889900").unwrap();
    let options = ReadOptions {
        mac_key: Some(mac_key),
        ..key(PSK_F6)
    };
    let c = parse(text.as_bytes(), &options).unwrap();
    assert_eq!(c.mac_key_reference.as_deref(), Some("MAC key 1"));
    assert_eq!(first_secret(&c), ASCII_20);
    let wrong = ReadOptions {
        mac_key: Some(Secret::from_slice(b"other")),
        ..key(PSK_F6)
    };
    let err = parse(text.as_bytes(), &wrong).unwrap_err();
    assert!(matches!(err, Error::MacMismatch { .. }), "{err}");
}

/// Regression: `notxml` was reported as a wrong root. A foreign root is now probed for
/// well-formedness, but only a bounded prefix of it is read (streaming stays streaming).
#[test]
fn a_foreign_root_is_probed_for_xml_within_a_bound() {
    let broken = b"<?xml version=\"1.0\"?>\n<Foo><a/></Bar>";
    let err = parse(broken, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Xml { .. }), "{err}");
    let mut big = b"<html>".to_vec();
    big.extend(b"<p>well-formed text</p>".repeat(200_000));
    big.extend(b"</broken>");
    let err = parse(&big, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::WrongRoot { ref found } if found == "html"),
        "{err}"
    );
}
