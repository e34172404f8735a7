//! Registering seed tokens: conflicts with registered keys refuse the whole file and leave
//! the store as it was; partial overlaps add only the new tokens.

use keyprov_profiles::{
    ImportSource, OtpKind, RegisterError, SeedFile, SeedToken, register, seed_tokens,
};
use keyprov_pskc::{AlgorithmParameters, DeviceInfo, Key, KeyContainer, KeyData, KeyPackage};
use keyprov_pskc::{HOTP, Secret, TOTP};
use keyprov_store::Store;

fn token(serial: &str, secret: &[u8]) -> SeedToken {
    SeedToken {
        serial: serial.into(),
        key_id: format!("{serial}-k"),
        manufacturer: Some("Feitian".into()),
        model: None,
        kind: OtpKind::Hotp,
        hash: keyprov_pskc::Hmac::Sha1,
        digits: 6,
        counter: Some(0),
        period: None,
        secret: Secret::from_slice(secret),
        expires: None,
    }
}

fn source() -> ImportSource {
    ImportSource {
        file: "vendor.xml".into(),
        sha256: "ab".repeat(32),
    }
}

fn events(store: &Store) -> usize {
    store.events(None).unwrap().len()
}

#[test]
fn conflicting_secret_refuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("station.db"), None).unwrap();
    let first = SeedFile {
        tokens: vec![token("A1", b"secret-a")],
        ..SeedFile::default()
    };
    let report = register(&store, &first, "first", &source()).unwrap();
    assert_eq!(report.added.len(), 1);
    assert_eq!(report.batch.as_ref().unwrap().1, "first");

    let before = events(&store);
    let second = SeedFile {
        tokens: vec![token("B2", b"secret-b"), token("A1", b"other-secret")],
        ..SeedFile::default()
    };
    let err = register(&store, &second, "second", &source()).unwrap_err();
    match &err {
        RegisterError::Conflicts { conflicts } => {
            assert_eq!(conflicts.len(), 1);
            assert_eq!(conflicts[0].subject, "key A1-k (serial A1)");
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert!(!err.to_string().contains("other-secret"));
    assert_eq!(events(&store), before, "a refused import wrote events");
    assert_eq!(store.list_batches().unwrap().len(), 1);
    assert!(store.find_device("feitian", "B2").unwrap().is_none());
}

#[test]
fn overlapping_file_adds_only_new_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("station.db"), None).unwrap();
    let first = SeedFile {
        tokens: vec![token("A1", b"secret-a")],
        ..SeedFile::default()
    };
    register(&store, &first, "first", &source()).unwrap();
    let second = SeedFile {
        tokens: vec![token("A1", b"secret-a"), token("C3", b"secret-c")],
        ..SeedFile::default()
    };
    let report = register(&store, &second, "second", &source()).unwrap();
    assert_eq!(report.unchanged.len(), 1);
    assert_eq!(report.added.len(), 1);
    assert_eq!(report.added[0].serial, "C3");
    assert_eq!(report.added[0].family, "feitian");
    let batch = report.batch.unwrap().0;
    let keys = store.batch_keys(batch).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        store.key_secret(keys[0].id).unwrap().as_slice(),
        b"secret-c"
    );
}

fn package(serial: &str, id: &str, algorithm: &str, secret: &[u8]) -> KeyPackage {
    KeyPackage {
        device_info: DeviceInfo {
            serial_no: Some(serial.into()),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some(id.into()),
            algorithm: Some(algorithm.into()),
            algorithm_parameters: AlgorithmParameters::default(),
            data: KeyData {
                secret: Some(Secret::from_slice(secret)),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    }
}

#[test]
fn seed_rules_skip_and_collapse() {
    let container = KeyContainer {
        key_packages: vec![
            package("1", "k1", HOTP, b"one"),
            package("1", "k1", HOTP, b"one"),
            package("2", "k2", keyprov_pskc::PIN, b"1234"),
            package("3", "k3", TOTP, b"three"),
        ],
        ..KeyContainer::new()
    };
    let seeds = seed_tokens(&container).unwrap();
    assert_eq!(seeds.tokens.len(), 2);
    assert_eq!(seeds.tokens[1].period, Some(30));
    assert_eq!(seeds.tokens[0].counter, Some(0));
    assert_eq!(seeds.skipped.len(), 1);
    assert!(seeds.skipped[0].reason.contains("not HOTP or TOTP"));

    let clash = KeyContainer {
        key_packages: vec![
            package("1", "k1", HOTP, b"one"),
            package("1", "k1", HOTP, b"uno"),
        ],
        ..KeyContainer::new()
    };
    let err = seed_tokens(&clash).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key k1 (serial 1) appears twice in the file with different secret"
    );
}

#[test]
fn a_secret_under_128_bits_registers_with_a_warning_naming_it() {
    let container = KeyContainer {
        key_packages: vec![
            package("7", "short", HOTP, &[0x5a; 10]),
            package("8", "long", TOTP, &[0xa5; 16]),
        ],
        ..KeyContainer::new()
    };
    let seeds = seed_tokens(&container).unwrap();
    assert_eq!(seeds.tokens.len(), 2);
    assert_eq!(seeds.warnings.len(), 1, "{:?}", seeds.warnings);
    assert_eq!(seeds.warnings[0].subject, "key short (serial 7)");
    assert!(
        seeds.warnings[0].reason.contains("80 bits")
            && seeds.warnings[0].reason.contains("128 bits"),
        "{}",
        seeds.warnings[0].reason
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("station.db"), None).unwrap();
    let report = register(&store, &seeds, "short", &source()).unwrap();
    assert_eq!(report.added.len(), 2);
    assert_eq!(report.warnings, seeds.warnings);
    let again = register(&store, &seeds, "short-again", &source()).unwrap();
    assert_eq!((again.added.len(), again.unchanged.len()), (0, 2));
    // Registered before, warned before: nothing was "registered all the same" now (breaker #11).
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}
