//! Round trips and parsing of hand-written documents in the style of RFC 6063 Appendix B.

use super::*;

fn hello() -> ClientHello {
    ClientHello {
        version: "1.0".into(),
        device_id: None,
        key_id: Some(vec![1, 2, 3]),
        client_nonce: Some(vec![7; 16]),
        key_types: vec![uri::KEY_HOTP.into(), uri::KEY_TOTP.into()],
        encryption_algorithms: vec![uri::KW_AES128.into()],
        mac_algorithms: vec![uri::PRF_SHA256.into()],
        variants: Some(ProtocolVariants {
            four_pass: true,
            two_pass: Some(vec![KeyProtection {
                method: uri::KPM_WRAP.into(),
                payload: Some(Payload::KeyInfo(KeyInfo {
                    key_name: Some("dev-1".into()),
                    rsa: None,
                })),
            }]),
            two_pass_first: true,
        }),
        key_packages: Some(vec![uri::PACKAGE_PSKC.into()]),
        auth: Some(AuthenticationData {
            client_id: Some("AC00000A".into()),
            code_mac: Some(AuthenticationMac {
                nonce: None,
                iteration_count: Some(1),
                mac: Mac {
                    algorithm: Some(uri::PRF_SHA256.into()),
                    value: vec![9; 16],
                },
            }),
            other: None,
        }),
        extensions: vec![Extension {
            critical: false,
            kind: ExtensionKind::ClientInfo(vec![5]),
        }],
    }
}

#[test]
fn client_hello_round_trips() {
    let m = Message::ClientHello(hello());
    assert_eq!(Message::parse(&m.to_bytes()).unwrap(), m);
}

#[test]
fn server_messages_round_trip() {
    let sh = Message::ServerHello(ServerHello {
        version: "1.0".into(),
        status: Status::Continue,
        session_id: Some("abc".into()),
        key_type: Some(uri::KEY_HOTP.into()),
        encryption_algorithm: Some(uri::PRF_SHA256.into()),
        mac_algorithm: Some(uri::PRF_SHA256.into()),
        encryption_key: Some(KeyInfo {
            key_name: None,
            rsa: Some((vec![0xC1; 8], vec![1, 0, 1])),
        }),
        key_package_format: Some(uri::PACKAGE_PSKC.into()),
        payload: Some(Payload::Nonce(vec![3; 16])),
        extensions: vec![Extension {
            critical: false,
            kind: ExtensionKind::ServerInfo(vec![1]),
        }],
        mac: Some(Mac {
            algorithm: None,
            value: vec![4; 16],
        }),
    });
    assert_eq!(Message::parse(&sh.to_bytes()).unwrap(), sh);
    let mut sf = ServerFinished::error(Status::Success, Some("abc".into()));
    sf.key_package = Some(KeyPackage {
        server_id: Some("https://example.com/".into()),
        key_protection_method: Some(uri::KPM_WRAP.into()),
        key_container: Some(Element::dskpp("KeyContainer").with_attr("Version", "1.0")),
    });
    sf.mac = Some(Mac {
        algorithm: Some(uri::PRF_SHA256.into()),
        value: vec![1; 32],
    });
    sf.auth = Some(AuthenticationMac {
        nonce: None,
        iteration_count: None,
        mac: Mac {
            algorithm: None,
            value: vec![2; 32],
        },
    });
    let sf = Message::ServerFinished(sf);
    assert_eq!(Message::parse(&sf.to_bytes()).unwrap(), sf);
}

#[test]
fn parses_prefix_free_document_with_whitespace_in_uris() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<KeyProvClientHello xmlns="urn:ietf:params:xml:ns:keyprov:dskpp" Version="1.0">
  <ClientNonce>
    AAECAwQFBgcICQoLDA0ODw==
  </ClientNonce>
  <SupportedKeyTypes>
    <Algorithm>
      urn:ietf:params:xml:ns:keyprov:pskc:hotp
    </Algorithm>
  </SupportedKeyTypes>
  <SupportedEncryptionAlgorithms><Algorithm>urn:x</Algorithm></SupportedEncryptionAlgorithms>
  <SupportedMacAlgorithms><Algorithm>urn:y</Algorithm></SupportedMacAlgorithms>
  <Extensions xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <Extension xsi:type="Vendor" Critical="true"/>
  </Extensions>
</KeyProvClientHello>"#;
    let Message::ClientHello(h) = Message::parse(doc).unwrap() else {
        panic!("not a hello")
    };
    assert_eq!(h.client_nonce.unwrap(), (0u8..16).collect::<Vec<_>>());
    assert_eq!(h.key_types, vec![uri::KEY_HOTP.to_string()]);
    assert_eq!(
        h.extensions[0],
        Extension {
            critical: true,
            kind: ExtensionKind::Unknown(format!("{{{}}}Vendor", uri::DSKPP_NS))
        },
        "an unprefixed QName takes the default namespace"
    );
    assert!(h.variants.is_none());
}

#[test]
fn foreign_root_is_not_dskpp() {
    let err = Message::parse(b"<a xmlns='urn:other'/>").unwrap_err();
    assert!(matches!(err, MessageError::NotDskpp { .. }));
}

#[test]
fn missing_required_lists_are_reported() {
    let doc =
        br#"<d:KeyProvClientHello xmlns:d="urn:ietf:params:xml:ns:keyprov:dskpp" Version="1.0"/>"#;
    assert_eq!(
        Message::parse(doc).unwrap_err(),
        MessageError::Missing {
            parent: "KeyProvClientHello",
            what: "SupportedKeyTypes"
        }
    );
}

#[test]
fn status_spellings() {
    for (s, n) in STATUSES {
        assert_eq!(Status::parse(n), Some(s));
        assert_eq!(s.as_str(), n);
    }
    assert_eq!(
        Status::parse("NoSupportedMACAlgorithms"),
        Some(Status::NoSupportedMacAlgorithms)
    );
    assert_eq!(Status::parse("Bogus"), None);
}

#[test]
fn trigger_round_trips() {
    let t = Message::Trigger(Trigger {
        version: Some("1.0".into()),
        device_id: None,
        key_id: Some(vec![0xAB; 8]),
        token_platform: Some(
            Element::dskpp("TokenPlatformInfo")
                .with_attr("KeyLocation", "Software")
                .with_attr("AlgorithmLocation", "Software"),
        ),
        auth: AuthenticationData {
            client_id: Some("AC00000A".into()),
            ..Default::default()
        },
        server_url: Some("https://example.com/dskpp".into()),
    });
    assert_eq!(Message::parse(&t.to_bytes()).unwrap(), t);
}
