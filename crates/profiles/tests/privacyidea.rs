//! `--for privacyidea` files loaded into a real privacyIDEA 3.14 (installed by
//! scripts/setup-privacyidea.sh, run on loopback by tests/oracles/privacyidea_harness.py)
//! through `POST /token/load`, then every token checked through `POST /validate/check` with
//! an OTP computed by oathtool. Also shows why the profile rewrites `Suite`: the generic file
//! with `HMAC-SHA256` imports "successfully" and then refuses SHA-256 OTPs.

mod common;

use common::{PrivacyIdea, Token, batch, export, oathtool, wrong};
use keyprov_profiles::{ProtectionRequest, Target};
use keyprov_pskc::Secret;
use serde_json::json;

/// Each token accepts its own OTP once and refuses a wrong one.
fn assert_validates(server: &mut PrivacyIdea, tokens: &[Token]) {
    for token in tokens {
        let otp = oathtool(token, &token.secret, token.counter);
        assert!(
            !server.accepts(token.serial, &wrong(&otp)),
            "wrong OTP accepted for {}",
            token.serial
        );
        if !server.accepts(token.serial, &otp) {
            let listed = server.token(token.serial);
            let all = server.call(json!({"op": "token"}));
            panic!(
                "OTP refused for {} ({}): {listed}; all: {all}",
                token.serial, token.hash
            );
        }
    }
}

#[test]
fn privacyidea_imports_and_validates_profiled_exports() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivacyIdea::start();

    // Pre-shared key: 32 hex digits, as the load API demands.
    let psk_tokens = batch(61_000);
    let psk = "00112233445566778899aabbccddeeff";
    let file = export(
        dir.path(),
        "psk.xml",
        Target::PrivacyIdea,
        &psk_tokens,
        ProtectionRequest::PreSharedKey(Secret::from_hex(psk).unwrap()),
    );
    let refused = server.load(&file, ("psk", "ffeeddccbbaa99887766554433221100"));
    assert!(
        refused.is_err_and(|e| e.contains("Wrong encryption key")),
        "wrong PSK accepted"
    );
    let first = &psk_tokens[0];
    let otp = oathtool(first, &first.secret, first.counter);
    assert!(
        !server.accepts(first.serial, &otp),
        "a token exists after the refused load"
    );
    assert_eq!(server.load(&file, ("psk", psk)), Ok(3));
    assert_validates(&mut server, &psk_tokens);

    // Password (PBKDF2-HMAC-SHA1).
    let pw_tokens = batch(62_000);
    let file = export(
        dir.path(),
        "pw.xml",
        Target::PrivacyIdea,
        &pw_tokens,
        ProtectionRequest::Password(Secret::from_slice(b"load me, privacyIDEA")),
    );
    assert_eq!(
        server.load(&file, ("password", "load me, privacyIDEA")),
        Ok(3)
    );
    assert_validates(&mut server, &pw_tokens);

    // A token that was not in any file: its OTP opens neither a loaded token nor its own serial.
    let foreign = batch(63_000);
    for (stranger, loaded) in foreign.iter().zip(&psk_tokens) {
        let otp = oathtool(stranger, &stranger.secret, stranger.counter + 1);
        let otp_as_loaded = oathtool(loaded, &stranger.secret, loaded.counter + 1);
        assert!(
            !server.accepts(loaded.serial, &otp_as_loaded),
            "foreign OTP accepted"
        );
        assert!(
            !server.accepts(stranger.serial, &otp),
            "unknown serial accepted"
        );
    }
}

#[test]
fn privacyidea_silently_loses_a_generic_sha256_suite() {
    // Why the profile rewrites Suite: privacyIDEA takes "HMAC-SHA256" as its hashlib name,
    // imports without complaint, and then validates with SHA-1.
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivacyIdea::start();
    let tokens = batch(64_000);
    let sha256 = &tokens[2];
    assert_eq!(sha256.suite, "HMAC-SHA256");
    let file = export(
        dir.path(),
        "generic.xml",
        Target::Generic,
        &tokens,
        ProtectionRequest::Plain,
    );
    assert_eq!(server.load(&file, ("psk", "")), Ok(3));
    let otp = oathtool(sha256, &sha256.secret, 0);
    assert!(
        !server.accepts(sha256.serial, &otp),
        "privacyIDEA now honours HMAC-SHA256 Suites"
    );
}
