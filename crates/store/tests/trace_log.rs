//! Nothing the store logs, even at trace level, holds a key secret. A test binary of its own:
//! tracing caches per-callsite interest, which tests running in parallel without a subscriber
//! would spoil.

mod common;

use common::{batch, device, fresh_store, reserve, secret};

/// Whether `haystack` holds the secret raw, as hex or as base64.
fn leaks(haystack: &[u8], secret: &[u8]) -> Option<&'static str> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms: [(&str, Vec<u8>); 4] = [
        ("raw", secret.to_vec()),
        ("hex", hex::encode(secret).into_bytes()),
        ("HEX", hex::encode_upper(secret).into_bytes()),
        ("base64", b64.encode(secret).into_bytes()),
    ];
    forms
        .into_iter()
        .find(|(_, needle)| {
            haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
        .map(|(form, _)| form)
}

/// Collects everything the store logs at trace level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn secrets_never_reach_the_trace_log() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let secrets: Vec<Vec<u8>> = (40..44u8).map(secret).collect();
    let seeds: Vec<Vec<u8>> = (60..64u8).map(secret).collect();
    let seed_file = || -> Vec<keyprov_store::ImportedKey> {
        let seed = |(n, s): (usize, &Vec<u8>)| keyprov_store::ImportedKey {
            serial: format!("seed-{n}"),
            key_label: format!("seed-{n}"),
            family: "vendor".to_owned(),
            model: None,
            profile: common::hotp6(),
            counter: Some(0),
            secret: zeroize::Zeroizing::new(s.clone()),
        };
        seeds.iter().enumerate().map(seed).collect()
    };
    tracing::subscriber::with_default(subscriber, || {
        let (_dir, _path, store) = fresh_store();
        let b = batch(&store, "logged");
        for (n, s) in secrets.iter().enumerate() {
            let d = device(&store, "nitrokey", &format!("log-{n}"));
            let key = reserve(&store, &b, &d, s);
            store.mark_key_written(key.id).unwrap();
            assert_eq!(store.key_secret(key.id).unwrap().as_slice(), s.as_slice());
        }
        // An import, then the same file again (which opens and compares every seed).
        store
            .import_keys("seeds", "seeds.pskc", seed_file())
            .unwrap();
        let (again, _) = store
            .import_keys("seeds", "seeds.pskc", seed_file())
            .unwrap();
        assert_eq!(again, None);
        assert!(store.verify_audit().unwrap().is_intact());
    });
    let log = captured.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("key reserved"),
        "the trace log was captured: {text}"
    );
    assert!(
        text.contains("keys imported"),
        "the import was logged: {text}"
    );
    for secret in secrets.iter().chain(&seeds) {
        assert_eq!(
            leaks(&log, secret),
            None,
            "a secret leaked into the trace log"
        );
    }
}
