//! DSKPP over real HTTP: `keyprov serve` as a separate process on a loopback port, the
//! operator commands, and `keyprov dskpp provision` for every variant. The key the client
//! stored must be the key `keyprov server export` writes for it.

mod dskpp_support;

use dskpp_support::*;

fn run_variant(variant: &str, with_shared_key: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let extra: &[&str] = if with_shared_key {
        &["--shared-key"]
    } else {
        &[]
    };
    let (ac, shared, _) = issue(&db, "AC00000A", extra);
    assert_eq!(shared.is_some(), with_shared_key);

    let out = dir.path().join("key.pskcxml");
    let o = provision(&server.url, &ac, variant, shared.as_deref(), &out);
    assert!(
        o.status.success(),
        "{variant}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    let key_id = stdout
        .trim()
        .strip_prefix("KEY_ID=")
        .expect("KEY_ID line")
        .to_string();

    let exported = dir.path().join("export.pskcxml");
    export(&db, &exported);
    let client = read_pskc(&out);
    let server_side = read_pskc(&exported);
    let (_, mine) = client.keys().next().unwrap();
    let (_, theirs) = server_side
        .keys()
        .find(|(_, k)| k.id.as_deref() == Some(&key_id))
        .unwrap();
    assert_eq!(mine.id, theirs.id);
    assert_eq!(
        mine.algorithm.as_deref(),
        Some(keyprov_dskpp::uri::KEY_HOTP)
    );
    assert_eq!(mine.algorithm, theirs.algorithm);
    assert_eq!(mine.data.counter, Some(0));
    assert_eq!(mine.data.counter, theirs.data.counter);
    let (a, b) = (
        mine.data.secret.as_ref().unwrap(),
        theirs.data.secret.as_ref().unwrap(),
    );
    assert_eq!(a.expose().len(), 20);
    assert_eq!(
        a.expose(),
        b.expose(),
        "{variant}: client and server hold the same secret"
    );
    assert_eq!(theirs.user_id.as_deref(), Some("AC00000A"));
}

#[test]
fn four_pass_with_shared_key() {
    run_variant("four-pass", true);
}

#[test]
fn four_pass_with_server_key() {
    run_variant("four-pass", false);
}

#[test]
fn two_pass_wrap() {
    run_variant("two-pass-wrap", true);
}

#[test]
fn two_pass_transport() {
    run_variant("two-pass-transport", false);
}

#[test]
fn two_pass_passphrase() {
    run_variant("two-pass-passphrase", false);
}

#[test]
fn totp_key_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let (ac, shared, _) = issue(&db, "0A0B0C0D", &["--shared-key"]);
    let out = dir.path().join("totp.pskcxml");
    let o = keyprov(&[
        "dskpp",
        "provision",
        "--server",
        &server.url,
        "--ac",
        &ac,
        "--variant",
        "four-pass",
        "--shared-key",
        shared.as_deref().unwrap(),
        "--key-type",
        "totp",
        "-o",
        out.to_str().unwrap(),
        "--password",
        "correct horse",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let pw = keyprov_pskc::Secret::from_slice(b"correct horse");
    let c = keyprov_pskc::parse(&bytes, &keyprov_pskc::ReadOptions::with_password(pw)).unwrap();
    let (_, key) = c.keys().next().unwrap();
    assert_eq!(key.algorithm.as_deref(), Some(keyprov_dskpp::uri::KEY_TOTP));
    assert_eq!(key.data.time_interval, Some(30));
    assert_eq!(key.data.secret.as_ref().unwrap().expose().len(), 20);
    let exported = dir.path().join("export.pskcxml");
    export(&db, &exported);
    let (_, theirs) = read_pskc(&exported)
        .keys()
        .next()
        .map(|(p, k)| (p.clone(), k.clone()))
        .unwrap();
    assert_eq!(
        theirs.data.secret.as_ref().unwrap().expose(),
        key.data.secret.as_ref().unwrap().expose()
    );
}

#[test]
fn ac_issue_prints_code_shared_key_and_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let (ac, shared, text) = issue(&db, "AC00000A", &["--shared-key", "--trigger"]);
    let parsed = keyprov_dskpp::ac::parse(&ac).unwrap();
    assert_eq!(parsed.client_id, "AC00000A");
    assert!(ac.starts_with("108AC00000A210"), "{ac}");
    assert_eq!(shared.unwrap().len(), 32);
    let xml_start = text.find("<?xml").expect("trigger document");
    let trigger = keyprov_dskpp::Message::parse(text[xml_start..].trim().as_bytes()).unwrap();
    match trigger {
        keyprov_dskpp::Message::Trigger(t) => {
            assert_eq!(t.auth.client_id.as_deref(), Some("AC00000A"))
        }
        other => panic!("{other:?}"),
    }
    let mode = std::fs::metadata(dir.path().join("server.db.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
}

#[test]
fn provision_from_a_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let args = ["--shared-key", "--trigger", "--server-url", &server.url];
    let (ac, shared, text) = issue(&db, "0D0E0F00", &args);
    let trigger = dir.path().join("trigger.xml");
    std::fs::write(&trigger, &text[text.find("<?xml").unwrap()..]).unwrap();
    let out = dir.path().join("key.pskcxml");
    let o = keyprov(&[
        "dskpp",
        "provision",
        "--server",
        &server.url,
        "--ac",
        &ac,
        "--shared-key",
        shared.as_deref().unwrap(),
        "--trigger",
        trigger.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--key",
        FILE_KEY,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exported = dir.path().join("export.pskcxml");
    export(&db, &exported);
    let mine = read_pskc(&out);
    let theirs = read_pskc(&exported);
    let (_, a) = mine.keys().next().unwrap();
    let (_, b) = theirs.keys().next().unwrap();
    assert_eq!(
        a.data.secret.as_ref().unwrap().expose(),
        b.data.secret.as_ref().unwrap().expose()
    );

    let not_a_trigger = dir.path().join("nope.xml");
    std::fs::write(&not_a_trigger, b"<a/>").unwrap();
    let o = keyprov(&[
        "dskpp",
        "provision",
        "--server",
        &server.url,
        "--ac",
        &ac,
        "--trigger",
        not_a_trigger.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--key",
        FILE_KEY,
    ]);
    assert!(!o.status.success());
}

/// Regression: with `--url`, `serve --listen 127.0.0.1:0` printed the URL, not the port bound.
#[test]
fn serve_prints_the_bound_address_and_the_urls_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let url = "https://dskpp.example/dskpp";
    let server = ServerProcess::start_with(&db, "127.0.0.1:0", &["--url", url]);
    let line = server.url.clone();
    let (bound, accepted) = line.split_once(' ').expect("address and URLs");
    let port: u16 = bound
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("bound address in {line:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("port in {line:?}: {e}"));
    assert_ne!(port, 0, "{line}");
    assert_eq!(accepted, format!("(accepting {url})"));
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the printed port is bound");
}

/// Regression: an unwritable `-o` was found only after the run had spent the one-time AC.
#[test]
fn an_unwritable_output_is_refused_before_the_ac_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let (ac, _, _) = issue(&db, "AC00000B", &[]);
    let missing = dir.path().join("missing").join("key.pskcxml");
    let o = provision(&server.url, &ac, "four-pass", None, &missing);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("missing"), "names the output: {stderr}");
    let out = dir.path().join("key.pskcxml");
    let o = provision(&server.url, &ac, "four-pass", None, &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the AC is still good: {stderr}");
    assert!(read_pskc(&out).keys().next().is_some());
}
