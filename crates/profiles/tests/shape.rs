//! Profile rules on hand-built batches: what each target rewrites and what it refuses.

use keyprov_profiles::{ProfileError, Target, shape};
use keyprov_pskc::{
    AlgorithmParameters, DeviceInfo, HOTP, Key, KeyContainer, KeyData, KeyPackage, PinPolicy,
    ResponseFormat, Secret, TOTP,
};

fn key(id: &str, algorithm: &str, suite: Option<&str>, digits: u32) -> Key {
    Key {
        id: Some(id.into()),
        algorithm: Some(algorithm.into()),
        algorithm_parameters: AlgorithmParameters {
            suite: suite.map(Into::into),
            response_format: Some(ResponseFormat {
                length: Some(digits),
                encoding: Some("DECIMAL".into()),
                check_digits: None,
            }),
            ..AlgorithmParameters::default()
        },
        data: KeyData {
            secret: Some(Secret::from_slice(b"12345678901234567890")),
            ..KeyData::default()
        },
        ..Key::default()
    }
}

fn package(serial: &str, manufacturer: &str, keys: Vec<Key>) -> KeyPackage {
    KeyPackage {
        device_info: DeviceInfo {
            serial_no: Some(serial.into()),
            manufacturer: Some(manufacturer.into()),
            ..DeviceInfo::default()
        },
        keys,
        ..KeyPackage::default()
    }
}

fn container(packages: Vec<KeyPackage>) -> KeyContainer {
    KeyContainer {
        key_packages: packages,
        ..KeyContainer::new()
    }
}

fn reasons(err: ProfileError) -> Vec<String> {
    match err {
        ProfileError::Refused { refusals, .. } => {
            refusals.into_iter().map(|r| r.to_string()).collect()
        }
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn privacyidea_rewrites_suite_to_hashlib_name() {
    let mut totp = key(
        "k1",
        "urn:ietf:params:xml:ns:keyprov:pskc#totp",
        Some("HMAC-SHA256"),
        8,
    );
    totp.data.time_interval = Some(60);
    let batch = container(vec![package("1001", "Yubico", vec![totp])]);
    let shaped = shape(Target::PrivacyIdea, &batch).unwrap();
    let out = &shaped.container.key_packages[0].keys[0];
    assert_eq!(out.algorithm.as_deref(), Some(TOTP));
    assert_eq!(out.algorithm_parameters.suite.as_deref(), Some("sha256"));
    assert_eq!(out.data.time_interval, Some(60));
    assert_eq!(out.data.counter, None);
    assert!(shaped.renamed_serials.is_empty());
}

#[test]
fn privacyidea_refuses_every_loss_at_once() {
    let mut totp = key("k1", TOTP, Some("SHA-384"), 6);
    totp.data.time = Some(1_000);
    let mut hotp = key("k2", HOTP, None, 6);
    hotp.policy.pin_policy = Some(PinPolicy {
        min_length: Some(4),
        ..PinPolicy::default()
    });
    let batch = container(vec![
        package("1", "Yubico", vec![totp]),
        package("2", "x", vec![hotp]),
    ]);
    let found = reasons(shape(Target::PrivacyIdea, &batch).unwrap_err());
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("key k1 (serial 1): OTP hash sha384 cannot be represented"));
    assert!(found[1].contains("start time"), "{found:?}");
    assert!(
        found[2].starts_with("key k2 (serial 2): its policy"),
        "{found:?}"
    );
}

#[test]
fn one_key_per_package_and_repeated_serials_refused() {
    let two = package(
        "555",
        "Nitrokey",
        vec![key("a", HOTP, None, 6), key("b", HOTP, None, 6)],
    );
    let batch = container(vec![two]);
    for target in [Target::PrivacyIdea, Target::LinOtp] {
        let found = reasons(shape(target, &batch).unwrap_err());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("2 keys share serial"), "{found:?}");
    }
    // FreeIPA keys tokens by Key@Id: two packages, both kept.
    let shaped = shape(Target::FreeIpa, &batch).unwrap();
    assert_eq!(shaped.container.key_packages.len(), 2);
    assert!(
        shaped
            .container
            .key_packages
            .iter()
            .all(|p| p.keys.len() == 1)
    );
}

#[test]
fn linotp_gets_oath_serials() {
    let batch = container(vec![
        package("1234567", "Yubico", vec![key("y", HOTP, None, 6)]),
        package("42", "Nitrokey", vec![key("n", TOTP, Some("sha256"), 6)]),
        package("FTKA0000abcd", "Feitian", vec![key("f", HOTP, None, 6)]),
        package("00A00001", "Nitrokey", vec![key("h", HOTP, None, 8)]),
    ]);
    let shaped = shape(Target::LinOtp, &batch).unwrap();
    let serials: Vec<_> = shaped
        .container
        .key_packages
        .iter()
        .map(|p| p.device_info.serial_no.clone().unwrap())
        .collect();
    assert_eq!(
        serials,
        [
            "UBOH01234567",
            "NKOT00000042",
            "FTKA0000abcd",
            "NKOH00A00001"
        ]
    );
    assert_eq!(shaped.renamed_serials.len(), 3);

    let bad = container(vec![package(
        "SN-9",
        "Yubico",
        vec![key("z", HOTP, None, 6)],
    )]);
    let found = reasons(shape(Target::LinOtp, &bad).unwrap_err());
    assert!(
        found[0].contains("not an OATH token identifier"),
        "{found:?}"
    );
}

#[test]
fn freeipa_refuses_check_digits_and_keeps_drift() {
    let mut hotp = key("c", HOTP, None, 6);
    hotp.algorithm_parameters
        .response_format
        .as_mut()
        .unwrap()
        .check_digits = Some(true);
    let mut totp = key("d", TOTP, None, 6);
    totp.data.time_drift = Some(-2);
    let batch = container(vec![
        package("1", "x", vec![hotp]),
        package("2", "x", vec![totp]),
    ]);
    let found = reasons(shape(Target::FreeIpa, &batch).unwrap_err());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("check digit"));

    let only_drift = container(vec![batch.key_packages[1].clone()]);
    let shaped = shape(Target::FreeIpa, &only_drift).unwrap();
    assert_eq!(
        shaped.container.key_packages[0].keys[0].data.time_drift,
        Some(-2)
    );
    let found = reasons(shape(Target::PrivacyIdea, &only_drift).unwrap_err());
    assert!(found[0].contains("TimeDrift"), "{found:?}");
}

#[test]
fn missing_key_id_taken_from_serial_and_hotp_counter_written() {
    let mut hotp = key("x", HOTP, None, 6);
    hotp.id = None;
    let batch = container(vec![package("777", "x", vec![hotp])]);
    let shaped = shape(Target::PrivacyIdea, &batch).unwrap();
    let out = &shaped.container.key_packages[0].keys[0];
    assert_eq!(out.id.as_deref(), Some("777"));
    assert_eq!(out.data.counter, Some(0));
    assert_eq!(out.algorithm_parameters.suite.as_deref(), Some("sha1"));
}

#[test]
fn generic_keeps_the_container_as_it_is() {
    let mut totp = key("g", TOTP, Some("HMAC-SHA512"), 8);
    totp.data.time = Some(5);
    let batch = container(vec![package("1", "x", vec![totp, key("h", HOTP, None, 6)])]);
    let shaped = shape(Target::Generic, &batch).unwrap();
    assert_eq!(shaped.container, batch);
}

#[test]
fn a_key_without_secret_is_refused_everywhere() {
    let mut hotp = key("s", HOTP, None, 6);
    hotp.data.secret = None;
    let batch = container(vec![package("1", "x", vec![hotp])]);
    for target in Target::ALL {
        let found = reasons(shape(target, &batch).unwrap_err());
        assert!(
            found.iter().any(|r| r.contains("no secret")),
            "{target}: {found:?}"
        );
    }
}

#[test]
fn privacyidea_yubico_style_key_ids_keep_the_device_serial() {
    // privacyIDEA files an HOTP key with Id "<digits>:<digits>" under "UBOM<serial>_<slot>".
    let batch = container(vec![package(
        "1001",
        "Yubico",
        vec![key("1001:1", HOTP, None, 6)],
    )]);
    let shaped = shape(Target::PrivacyIdea, &batch).unwrap();
    assert_eq!(
        shaped.container.key_packages[0].keys[0].id.as_deref(),
        Some("1001")
    );
    assert!(shaped.renamed_serials.is_empty());

    let mut anonymous = package("x", "Yubico", vec![key("1001:2", HOTP, None, 6)]);
    anonymous.device_info.serial_no = None;
    let shaped = shape(Target::PrivacyIdea, &container(vec![anonymous])).unwrap();
    assert_eq!(
        shaped.renamed_serials,
        [("1001:2".to_string(), "UBOM1001_2".to_string())]
    );
}
