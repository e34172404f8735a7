//! DSKPP refusals over real HTTP against a `keyprov serve` process: each case checks the HTTP
//! code and the DSKPP Status (or the client's error when the client must catch it), plus a
//! server restart in the middle of a 4-pass run and key renewal.

mod dskpp_support;

use std::path::Path;

use dskpp_support::*;
use keyprov_dskpp::Status;
use keyprov_dskpp::ac;
use keyprov_dskpp::client::{
    self, ClientConfig, ClientError, DeviceKey, Exchange, Renewal, Transport, TransportError,
    Variant,
};
use keyprov_dskpp::messages::{ClientHello, Extension, ExtensionKind, Message};
use keyprov_dskpp::{Secret, uri};

type Edit<'a> = Box<dyn FnMut(usize, Vec<u8>) -> Vec<u8> + 'a>;

/// An HTTP transport whose requests and responses can be rewritten, and which logs both.
struct Hooked<'a> {
    http: Http,
    before: Edit<'a>,
    after: Edit<'a>,
    n: usize,
    log: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Hooked<'a> {
    fn new(url: &str) -> Hooked<'a> {
        Hooked {
            http: Http::new(url),
            before: Box::new(|_, b| b),
            after: Box::new(|_, b| b),
            n: 0,
            log: Vec::new(),
        }
    }
}

impl Transport for Hooked<'_> {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let request = (self.before)(self.n, request.to_vec());
        let mut response = self.http.exchange(&request)?;
        response.body = (self.after)(self.n, response.body);
        self.log.push((request, response.body.clone()));
        self.n += 1;
        Ok(response)
    }
}

struct Setup {
    dir: tempfile::TempDir,
    server: ServerProcess,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(&dir.path().join("server.db"), "127.0.0.1:0");
        Setup { dir, server }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("server.db")
    }

    /// Issues an AC (and K_SHARED) and returns a client configuration for it.
    fn client(&self, client_id: &str, variant: Variant, shared: bool) -> ClientConfig {
        let extra: &[&str] = if shared { &["--shared-key"] } else { &[] };
        let (code, k, _) = issue(&self.db(), client_id, extra);
        let mut c = ClientConfig::new(&self.server.url, variant);
        c.ac = Some(ac::parse(&code).unwrap());
        c.device_key = k.map(|k| DeviceKey {
            name: None,
            secret: Secret::new(hex::decode(k).unwrap()),
        });
        c
    }

    fn exported_ids(&self) -> Vec<String> {
        let out = self.dir.path().join("export.pskcxml");
        export(&self.db(), &out);
        read_pskc(&out)
            .keys()
            .filter_map(|(_, k)| k.id.clone())
            .collect()
    }
}

fn status_err(result: Result<client::ProvisionedKey, ClientError>) -> Status {
    match result {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected a DSKPP status, got {other:?}"),
    }
}

#[test]
fn http_level_refusals() {
    let s = Setup::new();
    let http = Http::new(&s.server.url);
    let ct = "application/dskpp+xml";

    let (code, body) = http.post(b"<KeyProvClientHello".to_vec(), ct);
    assert_eq!(
        (code, status_of(&body)),
        (400, Status::MalformedRequest),
        "malformed XML"
    );

    let dtd = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>
<KeyProvClientHello xmlns="urn:ietf:params:xml:ns:keyprov:dskpp" Version="1.0"/>"#;
    let (code, body) = http.post(dtd.to_vec(), ct);
    assert_eq!(
        (code, status_of(&body)),
        (400, Status::MalformedRequest),
        "DTD"
    );

    let big = format!("<a>{}</a>", "x".repeat(70 * 1024));
    let (code, body) = http.post(big.into_bytes(), ct);
    assert_eq!(
        (code, status_of(&body)),
        (413, Status::MalformedRequest),
        "oversized body"
    );

    let foreign = b"<KeyProvClientHello xmlns='urn:other' Version='1.0'/>".to_vec();
    assert_eq!(http.post(foreign, ct).0, 400, "not a DSKPP request");

    let hello = Message::ClientHello(hello(&s.server.url)).to_bytes();
    assert_eq!(
        http.post(hello.clone(), "text/xml").0,
        415,
        "wrong content type"
    );
    let r = http.client.get(&s.server.url).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .client
        .post(&s.server.url)
        .header("Content-Type", ct)
        .header("Accept", "text/html")
        .body(hello)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
    assert_eq!(r.headers()["content-type"], ct);
}

fn hello(url: &str) -> ClientHello {
    let _ = url;
    ClientHello {
        version: "1.0".into(),
        key_types: vec![uri::KEY_HOTP.into()],
        encryption_algorithms: vec![uri::RSA_OAEP.into()],
        mac_algorithms: vec![uri::PRF_SHA256.into()],
        ..ClientHello::default()
    }
}

#[test]
fn first_response_statuses() {
    let s = Setup::new();
    let http = Http::new(&s.server.url);
    let send = |h: ClientHello| {
        let (code, body) = http.post(Message::ClientHello(h).to_bytes(), "application/dskpp+xml");
        assert_eq!(code, 200, "a processed message is HTTP 200");
        let reply = Message::parse(&body).unwrap();
        assert!(
            matches!(reply, Message::ServerHello(_)),
            "4-pass refusal is a ServerHello"
        );
        status_of(&body)
    };
    let base = hello(&s.server.url);
    assert_eq!(send(base.clone()), Status::Continue);
    let mut h = base.clone();
    h.version = "2.0".into();
    assert_eq!(send(h), Status::UnsupportedVersion);
    let mut h = base.clone();
    h.extensions.push(Extension {
        critical: true,
        kind: ExtensionKind::Unknown("{urn:v}X".into()),
    });
    assert_eq!(send(h), Status::UnknownCriticalExtension);
    let mut h = base.clone();
    h.mac_algorithms = vec!["urn:example:mac".into()];
    assert_eq!(send(h), Status::NoSupportedMacAlgorithms);
    let mut h = base.clone();
    h.encryption_algorithms = vec!["urn:example:enc".into()];
    assert_eq!(send(h), Status::NoSupportedEncryptionAlgorithms);
    let mut h = base;
    h.key_types = vec!["urn:example:key".into()];
    assert_eq!(send(h), Status::NoSupportedKeyTypes);
}

#[test]
fn wrong_and_expired_authentication_codes() {
    let s = Setup::new();
    let out = s.dir.path().join("k.pskcxml");
    let (good, _, _) = issue(&s.db(), "C1", &[]);
    let parsed = ac::parse(&good).unwrap();
    let wrong = ac::encode(&parsed.client_id, "0123456789ABCDEF", false).unwrap();
    let o = provision(&s.server.url, &wrong, "two-pass-passphrase", None, &out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AuthenticationDataInvalid"), "{err}");
    assert!(!Path::new(&out).exists(), "nothing stored on failure");

    let (expiring, _, _) = issue(&s.db(), "C2", &["--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = provision(&s.server.url, &expiring, "two-pass-passphrase", None, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ProvisioningPeriodExpired"), "{err}");
}

#[test]
fn replayed_client_nonce_and_reused_session_id() {
    let s = Setup::new();
    let config = s.client("C3", Variant::FourPass, true);
    let mut t = Hooked::new(&s.server.url);
    client::provision(&config, &mut t).unwrap();
    let (client_nonce, _) = t.log[1].clone();
    let http = Http::new(&s.server.url);

    // The same ClientNonce again.
    let (code, body) = http.post(client_nonce.clone(), "application/dskpp+xml");
    assert_eq!(
        (code, status_of(&body)),
        (200, Status::Abort),
        "replayed ClientNonce"
    );

    // A different ClientNonce under the finished session's SessionID.
    let Message::ClientNonce(mut cn) = Message::parse(&client_nonce).unwrap() else {
        panic!()
    };
    cn.encrypted_nonce = vec![0x55; cn.encrypted_nonce.len()];
    cn.auth = None;
    let (code, body) = http.post(Message::ClientNonce(cn).to_bytes(), "application/dskpp+xml");
    assert_eq!(
        (code, status_of(&body)),
        (200, Status::Abort),
        "reused SessionID"
    );

    // A replayed 2-pass ClientHello: its AC is spent.
    let config = s.client("C4", Variant::TwoPassWrap, true);
    let mut t = Hooked::new(&s.server.url);
    client::provision(&config, &mut t).unwrap();
    let (code, body) = http.post(t.log[0].0.clone(), "application/dskpp+xml");
    assert_eq!(
        (code, status_of(&body)),
        (200, Status::AuthenticationDataInvalid)
    );
}

fn flip_in(body: Vec<u8>, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::parse(&body).unwrap();
    edit(&mut m);
    m.to_bytes()
}

#[test]
fn tampered_macs_in_either_direction() {
    let s = Setup::new();

    // Client → server: the AD MAC of the ClientNonce.
    let config = s.client("C5", Variant::FourPass, true);
    let mut t = Hooked::new(&s.server.url);
    t.before = Box::new(|n, body| {
        if n != 1 {
            return body;
        }
        flip_in(body, |m| {
            if let Message::ClientNonce(cn) = m {
                cn.auth
                    .as_mut()
                    .unwrap()
                    .code_mac
                    .as_mut()
                    .unwrap()
                    .mac
                    .value[0] ^= 0x80;
            }
        })
    });
    assert_eq!(
        status_err(client::provision(&config, &mut t)),
        Status::AuthenticationDataInvalid
    );

    // Server → client: the key confirmation MAC, 4-pass and 2-pass.
    for (id, variant) in [("C6", Variant::FourPass), ("C7", Variant::TwoPassWrap)] {
        let config = s.client(id, variant, true);
        let mut t = Hooked::new(&s.server.url);
        t.after = Box::new(|_, body| {
            flip_in(body, |m| {
                if let Message::ServerFinished(f) = m
                    && let Some(mac) = f.mac.as_mut()
                {
                    mac.value[31] ^= 1;
                }
            })
        });
        let err = client::provision(&config, &mut t).unwrap_err();
        assert!(
            matches!(err, ClientError::Mac("key confirmation")),
            "{variant:?}: {err}"
        );
    }
}

#[test]
fn server_restart_between_server_hello_and_client_nonce() {
    let mut s = Setup::new();
    let config = s.client("C8", Variant::FourPass, true);
    let url = s.server.url.clone();
    let key = {
        let server = &mut s.server;
        let mut t = Hooked::new(&url);
        t.before = Box::new(move |n, body| {
            if n == 1 {
                server.restart();
            }
            body
        });
        client::provision(&config, &mut t).expect("the run survives the restart")
    };
    assert!(s.exported_ids().contains(&key.key_id));
}

#[test]
fn renewal_replaces_a_key_only_with_the_right_k_mac() {
    let s = Setup::new();
    let first = client::provision(
        &s.client("C9", Variant::FourPass, true),
        &mut Http::new(&s.server.url),
    )
    .unwrap();
    let renewal = |k_mac: Secret| Renewal {
        key_id: hex::decode(&first.key_id).unwrap(),
        k_mac,
        prf: first.prf,
    };

    let mut wrong = s.client("C9", Variant::FourPass, true);
    // The new --shared-key replaced K_SHARED on the server; keep the device key in sync.
    wrong.renewal = Some(renewal(Secret::new(vec![0u8; 32])));
    let err = client::provision(&wrong, &mut Http::new(&s.server.url)).unwrap_err();
    assert!(matches!(err, ClientError::Mac("renewal")), "{err}");
    assert!(
        s.exported_ids().contains(&first.key_id),
        "old key still current"
    );

    let mut right = wrong.clone();
    right.renewal = Some(renewal(first.k_mac.clone()));
    let second = client::provision(&right, &mut Http::new(&s.server.url)).unwrap();
    let ids = s.exported_ids();
    assert!(ids.contains(&second.key_id));
    assert!(
        !ids.contains(&first.key_id),
        "renewed key replaced the old one"
    );
}
