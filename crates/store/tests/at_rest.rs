//! No key secret reaches the disk in the clear: the database file and its WAL are searched
//! for every secret's raw bytes, hex (both cases), base64 and base32.

mod common;

use std::path::Path;

use base64::Engine;
use common::{batch, device, fresh_store, hotp6, reserve, secret};

/// RFC 4648 base32, the form OTP secrets take in otpauth URIs.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char);
        }
    }
    out
}

fn forms(secret: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        ("raw", secret.to_vec()),
        ("hex", hex::encode(secret).into_bytes()),
        ("HEX", hex::encode_upper(secret).into_bytes()),
        ("base64", b64.encode(secret).into_bytes()),
        ("base32", base32(secret).into_bytes()),
        // A prefix long enough to be unique catches a secret split across pages.
        ("raw prefix", secret[..12].to_vec()),
    ]
}

fn assert_absent(file: &Path, secrets: &[Vec<u8>]) {
    let Ok(bytes) = std::fs::read(file) else {
        return;
    };
    for secret in secrets {
        for (form, needle) in forms(secret) {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_slice());
            assert!(
                !found,
                "{form} form of a secret found in {}",
                file.display()
            );
        }
    }
}

#[test]
fn base32_matches_rfc_4648() {
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    assert_eq!(
        base32(b"12345678901234567890"),
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    );
}

#[test]
fn secrets_never_reach_the_database_or_its_wal_in_the_clear() {
    let (_dir, path, store) = fresh_store();
    let b = batch(&store, "at-rest");
    let secrets: Vec<Vec<u8>> = (0..12u8).map(secret).collect();
    for (n, s) in secrets.iter().enumerate() {
        let d = device(&store, "yubikey", &format!("serial-{n}"));
        let key = reserve(&store, &b, &d, s);
        store.mark_key_written(key.id).unwrap();
    }
    let wal = path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the WAL holds the recent commits"
    );
    assert_absent(&path, &secrets);
    assert_absent(&wal, &secrets);

    // The secrets are there, sealed: the store opens every one.
    for (key, s) in store.batch_keys(b.id).unwrap().iter().zip(&secrets) {
        assert_eq!(store.key_secret(key.id).unwrap().as_slice(), s.as_slice());
    }

    // After closing (checkpoint into the main file) nothing shows either.
    drop(store);
    assert_absent(&path, &secrets);
    assert_absent(&wal, &secrets);
    // The search itself works: a file holding a secret's hex is flagged.
    let planted = path.with_file_name("planted");
    std::fs::write(&planted, hex::encode(&secrets[5])).unwrap();
    let caught = std::panic::catch_unwind(|| assert_absent(&planted, &secrets));
    assert!(caught.is_err());
}

#[test]
fn imported_secrets_never_reach_the_database_or_its_wal_in_the_clear() {
    use keyprov_store::{ImportedKey, Store};
    let (_dir, path, store) = fresh_store();
    let secrets: Vec<Vec<u8>> = (40..52u8).map(secret).collect();
    let file = || -> Vec<ImportedKey> {
        secrets
            .iter()
            .enumerate()
            .map(|(n, s)| ImportedKey {
                serial: format!("V{n:05}"),
                key_label: format!("V{n:05}#1"),
                family: "vendor".to_owned(),
                model: None,
                profile: hotp6(),
                counter: None,
                secret: zeroize::Zeroizing::new(s.clone()),
            })
            .collect()
    };
    let (batch, _) = store.import_keys("seeds", "seeds.pskc", file()).unwrap();
    // The second import opens every stored secret to compare it; that leaves nothing either.
    let (again, _) = store.import_keys("seeds", "seeds.pskc", file()).unwrap();
    assert_eq!(again, None);
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    assert_absent(&path, &secrets);
    assert_absent(&wal, &secrets);
    for (key, s) in store
        .batch_keys(batch.unwrap())
        .unwrap()
        .iter()
        .zip(&secrets)
    {
        assert_eq!(store.key_secret(key.id).unwrap().as_slice(), s.as_slice());
    }
    drop(store);
    assert_absent(&path, &secrets);
    assert_absent(&wal, &secrets);
    assert!(
        Store::open(&path, None)
            .unwrap()
            .verify_audit()
            .unwrap()
            .is_intact()
    );
}

#[test]
fn database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, store) = fresh_store();
    batch(&store, "b");
    for file in [
        path.clone(),
        path.with_extension("db-wal"),
        keyprov_store::Store::master_key_path(&path),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}
