//! Importing every readable file of ../shared/interop/pskc-corpus into a fresh store: the
//! tokens registered (serial, key id, algorithm, digits, counter or time step, and the secret
//! read back through the store's sealing) are exactly the HOTP/TOTP keys python-pskc reads
//! from the file; a second import changes nothing; a wrong password is refused before the
//! store is touched.

mod common;

use std::path::{Path, PathBuf};

use common::oracle;
use keyprov_profiles::{ImportSource, SeedError, register, seed_tokens};
use keyprov_pskc::{KeyContainer, ReadOptions, Secret};
use keyprov_store::{OtpAlgorithm, Store};
use serde_json::Value;

/// RFC 6030 figure 6 pre-shared key, used by most encrypted corpus files.
const PSK_F6: &str = "12345678901234567890123456789012";

fn corpus() -> PathBuf {
    common::workspace().join("../shared/interop/pskc-corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![corpus()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus folder (../shared)") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "pskcxml" || e == "xml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 60, "corpus incomplete: {} files", files.len());
    files
}

/// The protection a file opens with: none, PSK-F6 or the figure 7 password `qwerty`.
#[derive(Clone, Copy, Debug)]
enum Opener {
    Plain,
    Key,
    Password,
}

fn read(path: &Path) -> Option<(KeyContainer, Opener)> {
    let bytes = std::fs::read(path).unwrap();
    let options = [
        (Opener::Plain, ReadOptions::default()),
        (
            Opener::Key,
            ReadOptions::with_key(Secret::from_hex(PSK_F6).unwrap()),
        ),
        (
            Opener::Password,
            ReadOptions::with_password(Secret::from_slice(b"qwerty")),
        ),
    ];
    options.into_iter().find_map(|(opener, options)| {
        keyprov_pskc::parse(&bytes, &options)
            .ok()
            .map(|c| (c, opener))
    })
}

fn reference(path: &Path, opener: Opener) -> Value {
    let file = path.to_str().unwrap();
    match opener {
        Opener::Plain => oracle("pskc_tokens.py", &[file]),
        Opener::Key => oracle("pskc_tokens.py", &[file, "--key", PSK_F6]),
        Opener::Password => oracle("pskc_tokens.py", &[file, "--password", "qwerty"]),
    }
}

/// A token as compared: (serial, key id, algorithm, digits, counter, period, secret hex).
type Row = (String, String, String, u8, Option<u64>, Option<u32>, String);

/// The keys python-pskc reads that the station registers: HOTP/TOTP with a secret, a policy
/// it understands, decimal OTPs of 6 to 10 digits, SHA-1/256/512, and no TOTP start time.
fn expected(keys: &[Value]) -> Vec<Row> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut rows: Vec<Row> = Vec::new();
    for key in keys {
        let algorithm = text(&key["algorithm"])
            .unwrap_or_default()
            .to_ascii_lowercase();
        let kind = match algorithm.rsplit([':', '#']).next() {
            Some("hotp") => "hotp",
            Some("totp") => "totp",
            _ => continue,
        };
        let Some(secret) = text(&key["secret"]).filter(|s| !s.is_empty()) else {
            continue;
        };
        let digits = key["response_length"].as_u64().unwrap_or(6);
        let encoding = text(&key["response_encoding"]).unwrap_or("DECIMAL".into());
        let suite = text(&key["suite"])
            .unwrap_or("sha1".into())
            .to_ascii_lowercase();
        let known_hash = ["sha1", "sha256", "sha512"]
            .iter()
            .any(|h| suite.ends_with(h))
            || suite.ends_with("sha-256")
            || suite.ends_with("sha-1");
        if key["unknown_policy"] == true
            || !encoding.eq_ignore_ascii_case("DECIMAL")
            || !(6..=10).contains(&digits)
            || !known_hash
            || key["time_offset"].as_u64().is_some_and(|t| t != 0)
        {
            continue;
        }
        let Some(serial) = text(&key["serial"]).or(text(&key["id"])) else {
            continue;
        };
        let key_id = text(&key["id"]).unwrap_or(serial.clone());
        let (counter, period) = match kind {
            "hotp" => (Some(key["counter"].as_u64().unwrap_or(0)), None),
            _ => (
                None,
                Some(key["time_interval"].as_u64().unwrap_or(30) as u32),
            ),
        };
        let row = (
            serial,
            key_id,
            kind.into(),
            digits as u8,
            counter,
            period,
            secret,
        );
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    rows
}

fn stored(store: &Store) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in store.list_batches().unwrap() {
        for key in store.batch_keys(batch.id).unwrap() {
            let device = store.device(key.device).unwrap();
            let secret = hex::encode(store.key_secret(key.id).unwrap().as_slice());
            let kind = match key.profile.algorithm {
                OtpAlgorithm::Hotp => "hotp",
                OtpAlgorithm::Totp => "totp",
            };
            rows.push((
                device.serial,
                key.slot,
                kind.into(),
                key.profile.digits,
                key.counter,
                key.profile.period,
                secret,
            ));
        }
    }
    rows
}

#[test]
fn every_readable_corpus_file_registers_the_right_tokens_once() {
    let mut imported_files = 0;
    let mut tokens = 0;
    for path in corpus_files() {
        let name = path.strip_prefix(corpus()).unwrap().display().to_string();
        let Some((container, opener)) = read(&path) else {
            continue;
        };
        let reference = reference(&path, opener);
        if reference["ok"] != true {
            // keyprov-pskc reads a few legacy files python-pskc refuses; no second opinion.
            eprintln!(
                "{name}: python-pskc cannot read it ({}), not compared",
                reference["error"]
            );
            continue;
        }
        let want = expected(reference["keys"].as_array().unwrap());
        eprintln!("{name}: {} tokens", want.len());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("station.db"), None).unwrap();
        let source = ImportSource {
            file: name.clone(),
            sha256: "0".repeat(64),
        };

        let seeds = match seed_tokens(&container) {
            Ok(seeds) => seeds,
            Err(SeedError::NothingToImport { .. }) => {
                assert!(
                    want.is_empty(),
                    "{name}: nothing imported, expected {want:?}"
                );
                continue;
            }
            Err(other) => panic!("{name}: {other}"),
        };
        let report = register(&store, &seeds, "corpus", &source).unwrap();
        assert_eq!(report.added.len(), want.len(), "{name}");
        let mut got = stored(&store);
        let mut want_sorted = want.clone();
        got.sort();
        want_sorted.sort();
        assert_eq!(got, want_sorted, "{name}");

        // The same file again: nothing new, no batch, the store as it was.
        let batches = store.list_batches().unwrap().len();
        let again = register(&store, &seeds, "corpus-again", &source).unwrap();
        assert!(
            again.batch.is_none() && again.added.is_empty(),
            "{name}: re-import wrote"
        );
        assert_eq!(again.unchanged.len(), want.len(), "{name}");
        assert_eq!(store.list_batches().unwrap().len(), batches, "{name}");
        let mut after = stored(&store);
        after.sort();
        assert_eq!(after, got, "{name}");
        imported_files += 1;
        tokens += want.len();
    }
    // Figures 2,3,6,7,10 (RFC and draft), Feitian, misc files, libpskc samples...
    assert!(
        imported_files >= 15,
        "only {imported_files} corpus files imported"
    );
    assert!(tokens >= 30, "only {tokens} tokens imported");
}

#[test]
fn a_wrong_password_is_refused_before_the_store() {
    let path = corpus().join("python-pskc/rfc6030/figure7.pskcxml");
    let bytes = std::fs::read(path).unwrap();
    let wrong = ReadOptions::with_password(Secret::from_slice(b"qwertz"));
    let err = keyprov_pskc::parse(&bytes, &wrong).unwrap_err();
    assert!(!err.to_string().contains("qwertz"), "{err}");
    let right = ReadOptions::with_password(Secret::from_slice(b"qwerty"));
    let container = keyprov_pskc::parse(&bytes, &right).unwrap();
    let seeds = seed_tokens(&container).unwrap();
    assert_eq!(seeds.tokens.len(), 1);
    assert_eq!(seeds.tokens[0].secret.expose(), b"12345678901234567890");
}
