//! `keyprov import`: vendor seed files from ../shared/interop/pskc-corpus registered in a
//! station store through the binary. Registered seeds are read back through the store's
//! sealing; a second import, a wrong password and a conflicting file change nothing (every
//! table's rows compared); an imported batch exports again with `keyprov batch export`.
//! (Every readable corpus file is compared with python-pskc in
//! crates/profiles/tests/corpus.rs.)

mod seeds_support;

use std::path::{Path, PathBuf};

use keyprov_pskc::{
    AlgorithmParameters, DeviceInfo, HOTP, Key, KeyContainer, KeyData, KeyPackage, Protection,
    ReadOptions, Secret,
};
use keyprov_store::Store;
use seeds_support::{keyprov, keyprov_ok, workspace};
use serde_json::Value;

const PSK_F6: &str = "12345678901234567890123456789012";

fn corpus(file: &str) -> String {
    let path = workspace().join("../shared/interop/pskc-corpus").join(file);
    assert!(path.exists(), "{} missing (../shared)", path.display());
    path.to_str().unwrap().to_string()
}

fn import_json(args: &[&str]) -> Value {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&keyprov_ok(&all)).expect("JSON report")
}

/// Every row of every table, as text: "changes nothing" means this stays equal.
fn snapshot(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut rows = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            rows.push(format!("{table}: {}", values.join("|")));
        }
    }
    rows
}

/// The seeds registered in `db`, as (serial, key id, secret hex).
fn seeds(db: &Path) -> Vec<(String, String, String)> {
    let store = Store::open(db, None).unwrap();
    let mut out = Vec::new();
    for batch in store.list_batches().unwrap() {
        for key in store.batch_keys(batch.id).unwrap() {
            let serial = store.device(key.device).unwrap().serial;
            let secret = hex::encode(store.key_secret(key.id).unwrap().as_slice());
            out.push((serial, key.slot, secret));
        }
    }
    out.sort();
    out
}

fn db_in(dir: &Path) -> PathBuf {
    dir.join("station/station.db")
}

#[test]
fn feitian_file_registers_six_tokens_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let file = corpus("python-pskc/feitian/file1.pskcxml");
    let db_arg = db.to_str().unwrap();

    let first = import_json(&[&file, "--db", db_arg]);
    let added = first["added"].as_array().unwrap();
    assert_eq!(added.len(), 6, "{first}");
    assert!(
        first["batch"]["name"]
            .as_str()
            .unwrap()
            .starts_with("import-file1-")
    );
    assert_eq!(added[0]["serial"], "1000133508267");
    assert_eq!(added[0]["algorithm"], "hotp");
    assert_eq!(added[0]["counter"], 0);
    assert_eq!(added[5]["serial"], "2600135004013");
    assert_eq!(added[5]["algorithm"], "totp");
    assert_eq!(added[5]["period"], 60);
    let registered = seeds(&db);
    let first_hotp = registered
        .iter()
        .find(|(s, _, _)| s == "1000133508267")
        .unwrap();
    assert_eq!(first_hotp.2, "3ee3270a2be59ffd78222dc3361478ff5cc63790");

    let before = snapshot(&db);
    let second = import_json(&[&file, "--db", db_arg]);
    assert_eq!(second["batch"], Value::Null, "{second}");
    assert_eq!(second["added"].as_array().unwrap().len(), 0);
    assert_eq!(second["unchanged"].as_array().unwrap().len(), 6);
    assert_eq!(snapshot(&db), before, "a second import changed the store");
}

#[test]
fn password_key_and_key_file_protections() {
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![(
        "987654321".to_string(),
        "12345678".to_string(),
        hex::encode(b"12345678901234567890"),
    )];
    let figure6 = corpus("python-pskc/rfc6030/figure6.pskcxml");

    let db = dir.path().join("key/station.db");
    keyprov_ok(&[
        "import",
        &figure6,
        "--key",
        PSK_F6,
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(seeds(&db), expected);

    let raw = dir.path().join("psk.bin");
    std::fs::write(&raw, hex::decode(PSK_F6).unwrap()).unwrap();
    let db = dir.path().join("raw/station.db");
    keyprov_ok(&[
        "import",
        &figure6,
        "--key-file",
        raw.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(seeds(&db), expected);

    let text = dir.path().join("psk.hex");
    std::fs::write(&text, format!("{PSK_F6}\n")).unwrap();
    let db = dir.path().join("hex/station.db");
    keyprov_ok(&[
        "import",
        &figure6,
        "--key-file",
        text.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(seeds(&db), expected);

    let figure7 = corpus("python-pskc/rfc6030/figure7.pskcxml");
    let db = dir.path().join("pw/station.db");
    keyprov_ok(&[
        "import",
        &figure7,
        "--password",
        "qwerty",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(
        seeds(&db),
        vec![("987654321".into(), "123456".into(), expected[0].2.clone())]
    );
}

#[test]
fn wrong_password_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let figure7 = corpus("python-pskc/rfc6030/figure7.pskcxml");

    // A store that does not exist yet is not even created.
    let fresh = db_in(dir.path());
    let out = keyprov(&[
        "import",
        &figure7,
        "--password",
        "qwertz",
        "--db",
        fresh.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong key or password"), "{stderr}");
    assert!(!stderr.contains("qwertz"), "the password leaked: {stderr}");
    assert!(!fresh.exists() && !fresh.parent().unwrap().exists());

    // An existing store keeps every row.
    let feitian = corpus("python-pskc/feitian/file1.pskcxml");
    keyprov_ok(&["import", &feitian, "--db", fresh.to_str().unwrap()]);
    let before = snapshot(&fresh);
    let out = keyprov(&[
        "import",
        &figure7,
        "--password",
        "qwertz",
        "--db",
        fresh.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(snapshot(&fresh), before);
}

/// A plain file with one HOTP key of `serial`/`id` holding `secret`.
fn vendor_file(dir: &Path, name: &str, keys: &[(&str, &str, &[u8])]) -> String {
    let packages = keys.iter().map(|(serial, id, secret)| KeyPackage {
        device_info: DeviceInfo {
            serial_no: Some(serial.to_string()),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some(id.to_string()),
            algorithm: Some(HOTP.into()),
            algorithm_parameters: AlgorithmParameters::default(),
            data: KeyData {
                secret: Some(Secret::from_slice(secret)),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    });
    let container = KeyContainer {
        key_packages: packages.collect(),
        ..KeyContainer::new()
    };
    let path = dir.join(name);
    std::fs::write(
        &path,
        keyprov_pskc::write(&container, &Protection::Plain).unwrap(),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_conflicting_file_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let db_arg = db.to_str().unwrap();
    let first = vendor_file(
        dir.path(),
        "a.xml",
        &[("S1", "k1", b"first seed 123456789")],
    );
    keyprov_ok(&["import", &first, "--db", db_arg, "--batch", "vendor-a"]);
    let before = snapshot(&db);

    let second = vendor_file(
        dir.path(),
        "b.xml",
        &[
            ("S2", "k2", b"a new token seed 123"),
            ("S1", "k1", b"another seed 1234567"),
        ],
    );
    let out = keyprov(&["import", &second, "--db", db_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("k1") && stderr.contains("S1"), "{stderr}");
    assert!(!stderr.contains("another seed"), "{stderr}");
    assert_eq!(snapshot(&db), before, "a refused import changed the store");
}

/// `keyprov batch export BATCH -o OUT --for TARGET --password …`, read back.
fn export_again(db: &Path, batch: &str, target: &str, out: &Path) -> KeyContainer {
    let password = "re-export password";
    #[rustfmt::skip]
    keyprov_ok(&[
        "batch", "export", batch, "-o", out.to_str().unwrap(), "--for", target,
        "--password", password, "--db", db.to_str().unwrap(),
    ]);
    let options = ReadOptions::with_password(Secret::from_slice(password.as_bytes()));
    keyprov_pskc::parse(&std::fs::read(out).unwrap(), &options).unwrap()
}

#[test]
fn an_imported_batch_exports_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let db_arg = db.to_str().unwrap();
    let feitian = corpus("python-pskc/feitian/file1.pskcxml");
    import_json(&[&feitian, "--db", db_arg, "--batch", "feitian"]);
    let read = export_again(&db, "feitian", "generic", &dir.path().join("again.pskcxml"));
    let mut exported: Vec<(String, String)> = read
        .keys()
        .map(|(p, k)| {
            let serial = p.device_info.serial_no.clone().unwrap();
            (
                serial,
                k.data
                    .secret
                    .as_ref()
                    .unwrap()
                    .to_hex()
                    .as_str()
                    .to_string(),
            )
        })
        .collect();
    exported.sort();
    let mut registered: Vec<(String, String)> = seeds(&db)
        .into_iter()
        .map(|(serial, _, secret)| (serial, secret))
        .collect();
    registered.sort();
    assert_eq!(exported, registered);
}

#[test]
fn expired_keys_are_registered_and_reported() {
    // RFC 6030 figure 10: four keys whose policies ended in 2006 (key 3 and 4 share a serial).
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let file = corpus("python-pskc/rfc6030/figure10.pskcxml");
    let report = import_json(&[&file, "--db", db.to_str().unwrap()]);
    let serials: Vec<&str> = report["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["654321", "123456", "9999999", "9999999"]);
    let expired = report["expired"].as_array().unwrap();
    assert_eq!(expired.len(), 4, "{report}");
    assert_eq!(expired[2]["key"], "key 3 (serial 9999999)");
    assert_eq!(expired[2]["expired"], "2006-03-31T00:00:00Z");
}

#[test]
fn private_key_protection() {
    // RSA key transport (RFC 6030 §6.3) to a key pair made by OpenSSL for this test.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (private_arg, public_arg) = (private.to_str().unwrap(), public.to_str().unwrap());
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private_arg,
    ]);
    openssl(&["pkey", "-in", private_arg, "-pubout", "-out", public_arg]);

    let mut container = KeyContainer::new();
    container.key_packages.push(KeyPackage {
        device_info: DeviceInfo {
            serial_no: Some("RSA-1".into()),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some("rsa-key".into()),
            algorithm: Some(HOTP.into()),
            data: KeyData {
                secret: Some(Secret::from_slice(b"transported seed 123")),
                counter: Some(42),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    });
    let key =
        keyprov_pskc::RsaPublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
    let protection = Protection::PublicKey {
        key,
        cipher: keyprov_pskc::Cipher::RsaOaepMgf1p,
    };
    let file = dir.path().join("rsa.pskcxml");
    std::fs::write(&file, keyprov_pskc::write(&container, &protection).unwrap()).unwrap();

    let db = db_in(dir.path());
    let report = import_json(&[
        file.to_str().unwrap(),
        "--private-key",
        private_arg,
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(report["added"][0]["counter"], 42, "{report}");
    let expected = (
        "RSA-1".to_string(),
        "rsa-key".to_string(),
        hex::encode(b"transported seed 123"),
    );
    assert_eq!(seeds(&db), vec![expected]);
}

#[test]
fn a_secret_under_128_bits_imports_with_a_warning() {
    // RFC 6030 figure 2: an HOTP key whose secret is "1234", 32 bits.
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let file = corpus("python-pskc/rfc6030/figure2.pskcxml");
    let out = keyprov(&["import", &file, "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: key 12345678 (serial 12345678): its secret is 32 bits"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"].as_array().unwrap().len(), 1, "{report}");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["key"], "key 12345678 (serial 12345678)");
    assert!(
        warnings[0]["warning"]
            .as_str()
            .unwrap()
            .contains("128 bits"),
        "{report}"
    );
    assert_eq!(
        seeds(&db),
        [("12345678".into(), "12345678".into(), "31323334".into())]
    );

    // A file of 128-bit secrets warns about nothing.
    let feitian = corpus("python-pskc/feitian/file1.pskcxml");
    let report = import_json(&[&feitian, "--db", db.to_str().unwrap()]);
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
}

/// Breaker #11: importing the same file again printed "nothing new" and, for keys it did not
/// register, short-secret warnings ending "registered all the same".
#[test]
fn re_import_that_registers_nothing_prints_no_short_secret_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let file = corpus("python-pskc/rfc6030/figure2.pskcxml");
    let first = keyprov(&["import", &file, "--db", db.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&first.stderr).contains("registered all the same"));

    let again = keyprov(&["import", &file, "--db", db.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&again.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "nothing new: 1 token(s) already registered, 0 skipped\n"
    );
    let report = import_json(&[&file, "--db", db.to_str().unwrap()]);
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
}

#[test]
fn an_imported_sha256_key_exports_with_its_hash() {
    // A vendor TOTP key whose Suite names SHA-256 keeps it through the store and re-export:
    // generic in the RFC 6030 spelling, privacyIDEA as its hashlib name.
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(dir.path());
    let db_arg = db.to_str().unwrap();
    let container = KeyContainer {
        key_packages: vec![KeyPackage {
            device_info: DeviceInfo {
                manufacturer: Some("Nitrokey".into()),
                serial_no: Some("00A0B0C0".into()),
                ..DeviceInfo::default()
            },
            keys: vec![Key {
                id: Some("totp-1".into()),
                algorithm: Some(keyprov_pskc::TOTP.into()),
                algorithm_parameters: AlgorithmParameters {
                    suite: Some("SHA-256".into()),
                    ..AlgorithmParameters::default()
                },
                data: KeyData {
                    secret: Some(Secret::from_slice(&[0x42; 32])),
                    time_interval: Some(30),
                    ..KeyData::default()
                },
                ..Key::default()
            }],
            ..KeyPackage::default()
        }],
        ..KeyContainer::new()
    };
    let file = dir.path().join("sha256.xml");
    std::fs::write(
        &file,
        keyprov_pskc::write(&container, &Protection::Plain).unwrap(),
    )
    .unwrap();
    let report = import_json(&[file.to_str().unwrap(), "--db", db_arg, "--batch", "nk"]);
    assert_eq!(report["added"][0]["hash"], "sha256", "{report}");

    for (target, suite) in [("generic", "HMAC-SHA256"), ("privacyidea", "sha256")] {
        let out = dir.path().join(format!("{target}.pskcxml"));
        let read = export_again(&db, "nk", target, &out);
        let (_, key) = read.keys().next().unwrap();
        assert_eq!(
            key.algorithm_parameters.suite.as_deref(),
            Some(suite),
            "{target}"
        );
    }
}
