//! Client against the server core in-process: every variant, renewal, and the failures the
//! client must catch itself.

use std::sync::Arc;

use super::*;
use crate::ac;
use crate::server::ServerConfig;
use crate::store::{AcRecord, SharedKey, SqliteStore, Store, now};

const URL: &str = "https://dskpp.test/dskpp";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    server: Server,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let master = Arc::new(keyprov_store::MasterKey::generate());
    let store = Arc::new(SqliteStore::open(&dir.path().join("d.db"), master).unwrap());
    let mut config = ServerConfig::new(URL);
    config.passphrase_iterations = 1_000;
    let server = Server::new(config, store.clone()).unwrap();
    Fixture {
        _dir: dir,
        store,
        server,
    }
}

fn issue(f: &Fixture, client_id: &str, shared: Option<&[u8]>) -> AuthenticationCode {
    let password = hex::encode_upper(crate::random::bytes(5));
    f.store
        .put_authentication_code(&AcRecord {
            client_id: client_id.into(),
            password: Secret::from_slice(password.as_bytes()),
            expires: now() + 3600,
            used: false,
            failures: 0,
        })
        .unwrap();
    if let Some(k) = shared {
        let key = SharedKey {
            name: format!("K_SHARED-{client_id}"),
            secret: Secret::from_slice(k),
        };
        f.store.put_shared_key(client_id, &key).unwrap();
    }
    ac::parse(&ac::encode(client_id, &password, false).unwrap()).unwrap()
}

fn config(variant: Variant, code: AuthenticationCode, shared: Option<&[u8]>) -> ClientConfig {
    let mut c = ClientConfig::new(URL, variant);
    c.ac = Some(code);
    c.device_key = shared.map(|s| DeviceKey {
        name: None,
        secret: Secret::from_slice(s),
    });
    c.client_info = Some(b"client-info".to_vec());
    c
}

fn run(f: &Fixture, c: &ClientConfig) -> Result<ProvisionedKey, ClientError> {
    provision(c, &mut LocalTransport { server: &f.server })
}

fn assert_matches_server(f: &Fixture, key: &ProvisionedKey) {
    let issued = f
        .store
        .issued_key(&key.key_id)
        .unwrap()
        .expect("server kept the key");
    assert_eq!(issued.secret.expose(), key.secret.expose());
    assert_eq!(issued.k_mac.expose(), key.k_mac.expose());
    assert_eq!(key.secret.len(), 20);
    assert_eq!(key.pskc.data.counter, Some(0));
    assert_eq!(key.server_id, URL);
}

#[test]
fn four_pass_with_shared_key() {
    let f = fixture();
    let k = [0x42u8; 16];
    let code = issue(&f, "AC00000A", Some(&k));
    let key = run(&f, &config(Variant::FourPass, code, Some(&k))).unwrap();
    assert_matches_server(&f, &key);
    assert_eq!(key.prf, Prf::Sha256);
}

#[test]
fn four_pass_with_server_rsa_key_and_aes_prf() {
    let f = fixture();
    let code = issue(&f, "AC00000B", None);
    let mut c = config(Variant::FourPass, code, None);
    c.prfs = vec![Prf::Aes128];
    c.public_iterations = 100_000;
    let key = run(&f, &c).unwrap();
    assert_matches_server(&f, &key);
    assert_eq!(key.prf, Prf::Aes128);
}

#[test]
fn two_pass_wrap_passphrase_and_transport() {
    let f = fixture();
    let k = [7u8; 16];
    for (i, variant) in [
        Variant::TwoPassWrap,
        Variant::TwoPassPassphrase,
        Variant::TwoPassTransport,
    ]
    .iter()
    .enumerate()
    {
        let code = issue(&f, &format!("C{i}"), Some(&k));
        let key = run(&f, &config(*variant, code, Some(&k))).unwrap();
        assert_matches_server(&f, &key);
    }
}

#[test]
fn wrong_password_and_reuse_are_refused() {
    let f = fixture();
    let k = [1u8; 16];
    let mut code = issue(&f, "C1", Some(&k));
    let good = code.clone();
    code.password = Secret::from_slice(b"0000000000");
    let err = run(&f, &config(Variant::TwoPassWrap, code, Some(&k))).unwrap_err();
    assert!(
        matches!(err, ClientError::Status(Status::AuthenticationDataInvalid)),
        "{err}"
    );
    run(&f, &config(Variant::TwoPassWrap, good.clone(), Some(&k))).unwrap();
    let err = run(&f, &config(Variant::TwoPassWrap, good, Some(&k))).unwrap_err();
    assert!(
        matches!(err, ClientError::Status(Status::AuthenticationDataInvalid)),
        "{err}"
    );
}

#[test]
fn wrong_shared_key_fails_at_the_client_mac_or_server() {
    let f = fixture();
    let code = issue(&f, "C2", Some(&[1u8; 16]));
    let err = run(&f, &config(Variant::FourPass, code, Some(&[2u8; 16]))).unwrap_err();
    // The AD is keyed with the wrong K_SHARED, so the server refuses it.
    assert!(
        matches!(err, ClientError::Status(Status::AuthenticationDataInvalid)),
        "{err}"
    );
}

#[test]
fn renewal_needs_the_right_k_mac() {
    let f = fixture();
    let k = [3u8; 16];
    for variant in [Variant::TwoPassWrap, Variant::FourPass] {
        let first = run(&f, &config(variant, issue(&f, "C3", Some(&k)), Some(&k))).unwrap();
        let mut bad = config(variant, issue(&f, "C3", Some(&k)), Some(&k));
        bad.renewal = Some(Renewal {
            key_id: hex::decode(&first.key_id).unwrap(),
            k_mac: Secret::from_slice(&[0u8; 32]),
            prf: first.prf,
        });
        let err = run(&f, &bad).unwrap_err();
        assert!(matches!(err, ClientError::Mac(_)), "{variant:?}: {err}");
    }
    // 4-pass checks K_MAC' in the ServerHello, before the server can commit anything.
    let first = run(
        &f,
        &config(Variant::FourPass, issue(&f, "C3", Some(&k)), Some(&k)),
    )
    .unwrap();
    let mut good = config(Variant::FourPass, issue(&f, "C3", Some(&k)), Some(&k));
    let mut renewal = Renewal {
        key_id: hex::decode(&first.key_id).unwrap(),
        k_mac: Secret::from_slice(&[0u8; 32]),
        prf: first.prf,
    };
    good.renewal = Some(renewal.clone());
    assert!(matches!(run(&f, &good), Err(ClientError::Mac("renewal"))));
    assert!(
        f.store.issued_key(&first.key_id).unwrap().is_some(),
        "old key kept"
    );
    renewal.k_mac = first.k_mac.clone();
    good.renewal = Some(renewal);
    let second = run(&f, &good).unwrap();
    assert!(
        f.store.issued_key(&first.key_id).unwrap().is_none(),
        "old key replaced"
    );
    assert_matches_server(&f, &second);
}

#[test]
fn negotiation_failures_come_in_the_first_response() {
    let f = fixture();
    let code = issue(&f, "C4", None);
    let mut c = config(Variant::FourPass, code.clone(), None);
    c.allow_rsa_1_5 = false;
    let hello = |c: &ClientConfig, edit: &dyn Fn(&mut ClientHello)| {
        let mut h = hello_base(c, vec![uri::RSA_OAEP]);
        edit(&mut h);
        let r = f.server.handle(&Message::ClientHello(h).to_bytes());
        assert_eq!(r.http_status, 200);
        match Message::parse(&r.body).unwrap() {
            Message::ServerHello(sh) => sh.status,
            Message::ServerFinished(sf) => sf.status,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        hello(&c, &|h| h.version = "2.0".into()),
        Status::UnsupportedVersion
    );
    assert_eq!(
        hello(&c, &|h| h.key_types = vec!["urn:x".into()]),
        Status::NoSupportedKeyTypes
    );
    assert_eq!(
        hello(&c, &|h| h.mac_algorithms = vec!["urn:x".into()]),
        Status::NoSupportedMacAlgorithms
    );
    assert_eq!(
        hello(&c, &|h| h.encryption_algorithms = vec!["urn:x".into()]),
        Status::NoSupportedEncryptionAlgorithms
    );
    assert_eq!(
        hello(&c, &|h| h.key_packages = Some(vec!["urn:x".into()])),
        Status::NoSupportedKeyPackages
    );
    assert_eq!(
        hello(&c, &|h| h.extensions.push(Extension {
            critical: true,
            kind: ExtensionKind::Unknown("{urn:v}X".into())
        })),
        Status::UnknownCriticalExtension
    );
    assert_eq!(
        hello(&c, &|h| {
            h.variants = Some(ProtocolVariants {
                four_pass: false,
                two_pass: Some(vec![KeyProtection {
                    method: "urn:x".into(),
                    payload: None,
                }]),
                two_pass_first: true,
            })
        }),
        Status::NoProtocolVariants
    );
}

#[test]
fn client_refuses_a_tampered_server_mac() {
    struct Tamper<'a>(LocalTransport<'a>);
    impl Transport for Tamper<'_> {
        fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
            let mut r = self.0.exchange(request)?;
            if let Ok(Message::ServerFinished(mut sf)) = Message::parse(&r.body) {
                if let Some(mac) = sf.mac.as_mut() {
                    mac.value[0] ^= 1;
                }
                r.body = Message::ServerFinished(sf).to_bytes();
            }
            Ok(r)
        }
    }
    let f = fixture();
    let k = [9u8; 16];
    let c = config(Variant::FourPass, issue(&f, "C5", Some(&k)), Some(&k));
    let err = provision(&c, &mut Tamper(LocalTransport { server: &f.server })).unwrap_err();
    assert!(matches!(err, ClientError::Mac("key confirmation")), "{err}");
}

#[test]
fn server_http_status_mapping() {
    let f = fixture();
    let status = |body: &[u8]| {
        let r = f.server.handle(body);
        let s = match Message::parse(&r.body).unwrap() {
            Message::ServerFinished(sf) => sf.status,
            Message::ServerHello(sh) => sh.status,
            other => panic!("{other:?}"),
        };
        (r.http_status, s)
    };
    assert_eq!(
        status(b"\xff\xfe<a/>"),
        (400, Status::MalformedRequest),
        "not UTF-8"
    );
    let ns = uri::DSKPP_NS;
    let trigger = format!("<KeyProvTrigger xmlns='{ns}'/>");
    assert_eq!(
        status(trigger.as_bytes()),
        (400, Status::UnknownRequest),
        "not a request"
    );
    let unknown = format!("<KeyProvSomething xmlns='{ns}' Version='1.0'/>");
    assert_eq!(status(unknown.as_bytes()), (200, Status::UnknownRequest));
    let empty_hello = format!("<KeyProvClientHello xmlns='{ns}' Version='1.0'/>");
    assert_eq!(
        status(empty_hello.as_bytes()),
        (200, Status::MalformedRequest)
    );
    let big = vec![b' '; crate::server::MAX_BODY + 1];
    assert_eq!(status(&big), (413, Status::MalformedRequest));
    let nonce = Message::ClientNonce(ClientNonce {
        version: "1.0".into(),
        session_id: "no-such-session".into(),
        encrypted_nonce: vec![0; 16],
        auth: None,
        extensions: Vec::new(),
    });
    assert_eq!(
        status(&nonce.to_bytes()),
        (200, Status::Abort),
        "unknown SessionID"
    );
}

#[test]
fn short_nonce_and_missing_ad_are_refused_in_two_pass() {
    let f = fixture();
    let k = [4u8; 16];
    let code = issue(&f, "C9", Some(&k));
    let c = config(Variant::TwoPassWrap, code, Some(&k));
    struct Edit<'a, F: FnMut(&mut ClientHello)>(LocalTransport<'a>, F);
    impl<F: FnMut(&mut ClientHello)> Transport for Edit<'_, F> {
        fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
            let Ok(Message::ClientHello(mut h)) = Message::parse(request) else {
                panic!()
            };
            (self.1)(&mut h);
            self.0.exchange(&Message::ClientHello(h).to_bytes())
        }
    }
    let server = LocalTransport { server: &f.server };
    let err = provision(&c, &mut Edit(server, |h| h.client_nonce = Some(vec![1; 8]))).unwrap_err();
    assert!(
        matches!(err, ClientError::Status(Status::MalformedRequest)),
        "{err}"
    );
    let server = LocalTransport { server: &f.server };
    let err = provision(&c, &mut Edit(server, |h| h.auth = None)).unwrap_err();
    assert!(
        matches!(err, ClientError::Status(Status::AuthenticationDataMissing)),
        "{err}"
    );
}

#[test]
fn trigger_supplies_the_client_id_and_is_echoed() {
    use crate::messages::AuthenticationData;
    let f = fixture();
    let k = [6u8; 16];
    let code = issue(&f, "0C0FFEE0", Some(&k));
    let trigger = Trigger {
        version: Some("1.0".into()),
        auth: AuthenticationData {
            client_id: Some("0C0FFEE0".into()),
            ..Default::default()
        },
        server_url: Some(URL.into()),
        ..Trigger::default()
    };
    let mut c = config(Variant::FourPass, code, Some(&k));
    c.trigger = Some(trigger.clone());
    struct Spy<'a>(LocalTransport<'a>, Vec<Vec<u8>>);
    impl Transport for Spy<'_> {
        fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
            self.1.push(request.to_vec());
            self.0.exchange(request)
        }
    }
    let mut spy = Spy(LocalTransport { server: &f.server }, Vec::new());
    let key = provision(&c, &mut spy).unwrap();
    assert_matches_server(&f, &key);
    let Ok(Message::ClientHello(h)) = Message::parse(&spy.1[0]) else {
        panic!("hello")
    };
    assert_eq!(
        h.auth,
        Some(trigger.auth),
        "the trigger's AD is echoed in ClientHello"
    );
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// One server for all cases (creating K_SERVER per case would dominate the run time).
    fn shared_fixture() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(fixture)
    }

    fn valid_hello() -> Vec<u8> {
        let mut c = ClientConfig::new(URL, Variant::TwoPassWrap);
        c.client_info = Some(vec![1, 2, 3]);
        let mut h = hello_base(&c, vec![uri::KW_AES128]);
        h.client_nonce = Some(vec![7; 16]);
        Message::ClientHello(h).to_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary octets never panic the server and get a defined HTTP answer.
        #[test]
        fn server_survives_arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let f = shared_fixture();
            let r = f.server.handle(&body);
            prop_assert!([200u16, 400, 413].contains(&r.http_status));
            prop_assert!(Message::parse(&r.body).is_ok());
        }

        /// Single-octet corruptions of a valid request never panic and always get a DSKPP
        /// message back.
        #[test]
        fn server_survives_corrupted_requests(pos in 0usize..2000, byte in any::<u8>()) {
            let f = shared_fixture();
            let mut body = valid_hello();
            let at = pos % body.len();
            body[at] = byte;
            let r = f.server.handle(&body);
            prop_assert!([200u16, 400].contains(&r.http_status));
            prop_assert!(Message::parse(&r.body).is_ok());
        }
    }
}
