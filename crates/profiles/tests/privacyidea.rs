//! `--for privacyidea` files loaded into a real privacyIDEA 3.14 (installed by
//! scripts/setup-privacyidea.sh, run on loopback by tests/oracles/privacyidea_harness.py)
//! through `POST /token/load`, then every token checked through `POST /validate/check` with
//! an OTP computed by oathtool. Also shows why the profile rewrites `Suite`: the generic file
//! with `HMAC-SHA256` imports "successfully" and then refuses SHA-256 OTPs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::{Token, batch, container, oathtool, privacyidea_python, workspace};
use keyprov_profiles::{ProtectionRequest, Target, write_for};
use keyprov_pskc::Secret;
use serde_json::{Value, json};

/// A running privacyIDEA, driven through the harness's line protocol.
struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Server {
    fn start() -> Server {
        let script = workspace().join("tests/oracles/privacyidea_harness.py");
        let mut child = Command::new(privacyidea_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the privacyIDEA harness");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut server = Server {
            child,
            input,
            output,
        };
        let ready = server.read();
        assert_eq!(ready["ready"], true, "privacyIDEA did not start: {ready}");
        server
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.output.read_line(&mut line).expect("harness output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.input, "{request}").expect("harness input");
        self.read()
    }

    /// Loads a PSKC file: how many tokens privacyIDEA imported, or the error it answered.
    fn load(&mut self, file: &Path, protection: (&str, &str)) -> Result<u64, String> {
        let mut request = json!({"op": "load", "file": file});
        request[protection.0] = json!(protection.1);
        let answer = self.call(request);
        match answer["body"]["result"]["value"]["n_imported"].as_u64() {
            Some(count) if answer["http"] == 200 => Ok(count),
            _ => Err(answer["body"]["result"]["error"]["message"].to_string()),
        }
    }

    /// `/validate/check`: did privacyIDEA accept `otp` for `serial`?
    fn accepts(&mut self, serial: &str, otp: &str) -> bool {
        let answer = self.call(json!({"op": "check", "serial": serial, "pass": otp}));
        answer["body"]["result"]["value"] == json!(true)
    }

    /// The token as privacyIDEA lists it (`GET /token/?serial=`), for failure messages.
    fn token(&mut self, serial: &str) -> Value {
        let answer = self.call(json!({"op": "token", "serial": serial}));
        answer["body"]["result"]["value"]["tokens"][0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = writeln!(self.input, "{}", json!({"op": "quit"}));
        let _ = self.child.wait();
    }
}

fn export(
    dir: &Path,
    name: &str,
    target: Target,
    tokens: &[Token],
    request: ProtectionRequest,
) -> std::path::PathBuf {
    let (bytes, _) = write_for(target, &container(tokens), request).expect("export");
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Every digit moved by one: never the right OTP.
fn wrong(otp: &str) -> String {
    otp.bytes()
        .map(|d| char::from(b'0' + (d - b'0' + 1) % 10))
        .collect()
}

/// Each token accepts its own OTP once and refuses a wrong one.
fn assert_validates(server: &mut Server, tokens: &[Token]) {
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
    let mut server = Server::start();

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
    let mut server = Server::start();
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
