//! `keyprov serve` over TLS (rustls, ring provider) with a self-signed certificate made by
//! rcgen: the library client trusting that certificate completes a 4-pass run, and a client
//! that does not trust it never gets to send a DSKPP message.

mod dskpp_support;

use dskpp_support::*;
use keyprov_dskpp::ac;
use keyprov_dskpp::client::{self, ClientConfig, ClientError, DeviceKey, Variant};
use keyprov_dskpp::{Secret, Status};

#[test]
fn four_pass_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let db = dir.path().join("server.db");
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let server = ServerProcess::start_with(&db, "127.0.0.1:0", &args);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let (code, shared, _) = issue(&db, "AC00000A", &["--shared-key"]);
    let mut config = ClientConfig::new(&server.url, Variant::FourPass);
    config.ac = Some(ac::parse(&code).unwrap());
    config.device_key = Some(DeviceKey {
        name: None,
        secret: Secret::new(hex::decode(shared.unwrap()).unwrap()),
    });

    // A client without the certificate in its trust store is stopped by TLS.
    let mut untrusting = Http::new(&server.url);
    let err = client::provision(&config, &mut untrusting).unwrap_err();
    assert!(
        matches!(err, ClientError::Transport(_)),
        "untrusted certificate: {err}"
    );

    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let trusting = reqwest::blocking::Client::builder()
        .tls_certs_only([root])
        .build()
        .unwrap();
    let mut http = Http {
        client: trusting,
        url: server.url.clone(),
    };
    let key = client::provision(&config, &mut http).unwrap();
    let out = dir.path().join("export.pskcxml");
    export(&db, &out);
    let exported = read_pskc(&out);
    let (_, theirs) = exported.keys().next().unwrap();
    assert_eq!(theirs.id.as_deref(), Some(key.key_id.as_str()));
    assert_eq!(
        theirs.data.secret.as_ref().unwrap().expose(),
        key.secret.expose()
    );

    // The HTTP binding answers DSKPP errors with 200 over TLS too.
    let (status, body) = http.post(b"<x/>".to_vec(), "application/dskpp+xml");
    assert_eq!((status, status_of(&body)), (400, Status::MalformedRequest));
}
