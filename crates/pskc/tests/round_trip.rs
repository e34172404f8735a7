//! parse → write → parse yields the same model, for RFC 6030 figures 2–10 and every
//! protection; embedded containers (DSKPP) round-trip too.

use std::path::PathBuf;

use keyprov_pskc::{
    Cipher, Hmac, KeyContainer, Protection, ReadOptions, Secret, parse, read_container_element,
    write, write_container_element,
};

fn corpus(path: &str) -> Vec<u8> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/pskc-corpus");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn figure(n: u32) -> KeyContainer {
    let options = match n {
        6 => ReadOptions::with_key(Secret::from_hex("12345678901234567890123456789012").unwrap()),
        7 => ReadOptions::with_password(Secret::from_slice(b"qwerty")),
        _ => ReadOptions {
            metadata_only: true,
            ..ReadOptions::default()
        },
    };
    let path = format!("python-pskc/rfc6030/figure{n}.pskcxml");
    parse(&corpus(&path), &options).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What survives a rewrite: key names and the signature are properties of the old file.
fn comparable(mut container: KeyContainer) -> KeyContainer {
    container.key_names.clear();
    container.signed = false;
    container
}

#[test]
fn rfc6030_figures_2_to_10_round_trip_plain() {
    for n in 2..=10 {
        let original = comparable(figure(n));
        let xml = write(&original, &Protection::Plain).unwrap();
        let again = parse(&xml, &ReadOptions::default()).unwrap();
        assert_eq!(comparable(again), original, "figure {n}");
    }
}

fn protections() -> Vec<(Protection, ReadOptions)> {
    let mut out = Vec::new();
    for cipher in Cipher::ALL.into_iter().filter(|c| !c.is_asymmetric()) {
        let len = cipher.key_lengths()[0];
        let key = Secret::new((1..=len as u8).collect());
        for mac in [Hmac::Sha1, Hmac::Sha256] {
            let protection = Protection::PreSharedKey {
                key: key.clone(),
                key_name: None,
                cipher,
                mac,
            };
            out.push((protection, ReadOptions::with_key(key.clone())));
        }
    }
    for prf in Hmac::ALL {
        let protection = Protection::Password {
            password: Secret::from_slice(b"correct horse"),
            iterations: 1000,
            prf,
            salt: None,
            key_name: Some("Password 1".into()),
            cipher: Cipher::Aes256Cbc,
            mac: Hmac::Sha512,
        };
        out.push((
            protection,
            ReadOptions::with_password(Secret::from_slice(b"correct horse")),
        ));
    }
    out
}

#[test]
fn every_protection_round_trips_figure_10() {
    // 3DES key wrap can only protect 8n-byte secrets; figure 10's are 20 bytes.
    let original = comparable(figure(10));
    for (protection, options) in protections() {
        let xml = write(&original, &protection);
        if let Protection::PreSharedKey {
            cipher: Cipher::KwTripleDes,
            ..
        } = protection
        {
            assert!(xml.is_err());
            continue;
        }
        let xml = xml.unwrap();
        let again = parse(&xml, &options).unwrap_or_else(|e| panic!("{protection:?}: {e}"));
        assert_eq!(comparable(again), original, "{protection:?}");
        let tampered = String::from_utf8(xml)
            .unwrap()
            .replacen("<ValueMAC>", "<ValueMAC>AA", 1);
        assert!(parse(tampered.as_bytes(), &options).is_err());
    }
}

#[test]
fn embedded_container_round_trips() {
    let original = comparable(figure(3));
    let mut xml = quick_xml::Writer::new(Vec::new());
    let ns = [("xmlns:dskpp", "urn:ietf:params:xml:ns:keyprov:dskpp")];
    write_container_element(
        &mut xml,
        "dskpp:KeyContainer",
        &ns,
        &original,
        &Protection::Plain,
    )
    .unwrap();
    let bytes = xml.into_inner();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.starts_with("<dskpp:KeyContainer xmlns:dskpp="),
        "{text}"
    );
    assert!(text.contains("<pskc:KeyPackage>"), "{text}");

    let mut reader = quick_xml::NsReader::from_reader(bytes.as_slice());
    let mut buf = Vec::new();
    let quick_xml::events::Event::Start(start) = reader.read_event_into(&mut buf).unwrap() else {
        panic!("expected a start tag");
    };
    let start = start.into_owned();
    let read = read_container_element(&mut reader, &start, &ReadOptions::default()).unwrap();
    assert_eq!(comparable(read), original);
    buf.clear();
    assert!(matches!(
        reader.read_event_into(&mut buf).unwrap(),
        quick_xml::events::Event::Eof
    ));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let container = figure(3);
    let debug = format!("{container:?}");
    assert!(!debug.contains("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA="));
    assert!(!debug.contains("49, 50, 51"));
    assert!(debug.contains("REDACTED"));
}
