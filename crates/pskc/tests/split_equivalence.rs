//! The fast path of `Reader` (packages cut from the stream, read by the direct tokenizer, on
//! two threads) yields exactly what the event path yields: every corpus file, and every file
//! with its packages repeated 40 times (so that batches go to the second thread), is read by
//! `parse` and by `read_container_element` (quick-xml events throughout) with equal results.

use std::path::PathBuf;

use keyprov_pskc::{KeyContainer, ReadOptions, Result, Secret, parse, read_container_element};
use quick_xml::NsReader;
use quick_xml::events::Event;

fn corpus_files() -> Vec<(PathBuf, Vec<u8>)> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/pskc-corpus");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "pskcxml") {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    assert!(files.len() > 50);
    files
}

fn option_sets() -> Vec<ReadOptions> {
    let key = Secret::from_hex("12345678901234567890123456789012").unwrap();
    vec![
        ReadOptions {
            metadata_only: true,
            ..ReadOptions::default()
        },
        ReadOptions::with_key(key),
        ReadOptions::with_password(Secret::from_slice(b"qwerty")),
    ]
}

/// The event path: the root element handed to `read_container_element`.
fn read_by_events(bytes: &[u8], options: &ReadOptions) -> Option<Result<KeyContainer>> {
    let mut reader = NsReader::from_reader(bytes);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(start)) => {
                let start = start.into_owned();
                return Some(read_container_element(&mut reader, &start, options));
            }
            Ok(Event::Eof) | Ok(Event::Empty(_)) | Ok(Event::DocType(_)) | Err(_) => return None,
            Ok(_) => buf.clear(),
        }
    }
}

/// `bytes` with the run from the first package start to the last package end repeated.
fn repeat_packages(bytes: &[u8], times: usize) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = ["<KeyPackage", "<pskc:KeyPackage", "<Device"]
        .iter()
        .filter_map(|tag| text.find(tag))
        .min()?;
    let end = ["</KeyPackage>", "</pskc:KeyPackage>", "</Device>"]
        .iter()
        .filter_map(|tag| text.rfind(tag).map(|at| at + tag.len()))
        .max()?;
    if end <= start {
        return None;
    }
    let mut out = text[..end].to_owned();
    for _ in 1..times {
        out.push('\n');
        out.push_str(&text[start..end]);
    }
    out.push_str(&text[end..]);
    Some(out.into_bytes())
}

fn assert_same(name: &str, bytes: &[u8], options: &ReadOptions) -> bool {
    let Some(events) = read_by_events(bytes, options) else {
        return false;
    };
    match (parse(bytes, options), events) {
        (Ok(fast), Ok(slow)) => {
            assert_eq!(fast, slow, "{name}");
            true
        }
        (Ok(_), Err(err)) => panic!("{name}: the event path refuses ({err}), the fast path not"),
        (Err(_), _) => false,
    }
}

#[test]
fn fast_path_reads_every_corpus_file_like_the_event_path() {
    let mut compared = 0;
    let mut repeated = 0;
    for (path, bytes) in corpus_files() {
        let name = path.display().to_string();
        for options in option_sets() {
            compared += usize::from(assert_same(&name, &bytes, &options));
            if let Some(many) = repeat_packages(&bytes, 40) {
                repeated += usize::from(assert_same(&format!("{name} x40"), &many, &options));
            }
        }
    }
    assert!(compared > 60, "only {compared} readings compared");
    assert!(repeated > 60, "only {repeated} repeated readings compared");
}

#[test]
fn a_tampered_package_deep_in_a_batch_is_reported_in_order() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/interop/pskc-corpus/python-pskc/rfc6030/figure6.pskcxml");
    let bytes = std::fs::read(corpus).unwrap();
    let many = repeat_packages(&bytes, 100).unwrap();
    let text = String::from_utf8(many).unwrap();
    // Change the 70th ValueMAC (the second thread reads that batch or the next).
    let at = text.match_indices("<ValueMAC>").nth(69).unwrap().0 + 10;
    let mut tampered = text.into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let key = Secret::from_hex("12345678901234567890123456789012").unwrap();
    let reader = keyprov_pskc::Reader::new(&tampered[..], ReadOptions::with_key(key)).unwrap();
    let results: Vec<_> = reader.collect();
    assert_eq!(results.len(), 100);
    for (i, result) in results.iter().enumerate() {
        match result {
            Err(keyprov_pskc::Error::MacMismatch { .. }) => assert_eq!(i, 69),
            Err(other) => panic!("package {i}: {other}"),
            Ok(_) => assert_ne!(i, 69),
        }
    }
}

#[test]
fn a_malformed_package_in_a_batch_names_its_number() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/interop/pskc-corpus/python-pskc/rfc6030/figure6.pskcxml");
    let many = repeat_packages(&std::fs::read(corpus).unwrap(), 40).unwrap();
    let mut text = String::from_utf8(many).unwrap();
    let at = text.match_indices("</DeviceInfo>").nth(29).unwrap().0;
    text.replace_range(at..at + 13, "</DeviceInfx>");
    let key = Secret::from_hex("12345678901234567890123456789012").unwrap();
    let err = parse(text.as_bytes(), &ReadOptions::with_key(key)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, keyprov_pskc::Error::Xml { .. }), "{message}");
    assert!(message.contains("KeyPackage #30"), "{message}");
}
