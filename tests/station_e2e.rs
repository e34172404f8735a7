//! End-to-end: 8 emulated YubiKeys and 4 emulated Nitrokeys are provisioned with 4-pass DSKPP,
//! locally and against `keyprov serve`; python-pskc reads the password-protected export, and
//! for every key `oathtool` over the exported secret gives the OTP the token shows.

mod station_support;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use station_support::{Bench, PASSWORD, check_export_against_tokens, keyprov, ok, python_pskc};

fn twelve_tokens() -> Bench {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 8);
    bench.add_tokens("nitrokey-pro", 4);
    assert_eq!(bench.tokens().len(), 12);
    bench
}

fn assert_all_verified(bench: &Bench, name: &str) {
    let detail = bench.batch(name);
    assert_eq!(detail.batch.state, "completed");
    assert_eq!(
        (
            detail.batch.tokens,
            detail.batch.verified,
            detail.batch.failed
        ),
        (12, 12, 0)
    );
    for row in &detail.tokens {
        assert_eq!(row.state, "exported", "token {}", row.serial);
        assert!(
            row.verification.is_some(),
            "token {} has a proof",
            row.serial
        );
    }
    let yubikeys = detail
        .tokens
        .iter()
        .filter(|t| t.family == "yubikey")
        .count();
    assert_eq!(yubikeys, 8);
}

#[test]
fn local_mode_provisions_twelve_tokens_that_oathtool_agrees_with() {
    let bench = twelve_tokens();
    let export = bench.path("local.pskcxml");
    ok(&[
        "provision",
        "--batch",
        "e2e-local",
        "--emulator",
        &bench.emu_arg(),
        "--db",
        &bench.db_arg(),
        "--export",
        &export.display().to_string(),
        "--export-password",
        PASSWORD,
    ]);
    assert_all_verified(&bench, "e2e-local");
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 12);
    bench.audit_ok();
}

#[test]
fn totp_keys_on_nitrokeys_match_oathtool() {
    let bench = Bench::new();
    bench.add_tokens("nitrokey-pro", 2);
    bench.add_tokens("nitrokey-storage", 1);
    let export = bench.path("totp.pskcxml");
    ok(&[
        "provision",
        "--batch",
        "totp",
        "--profile",
        "totp",
        "--digits",
        "8",
        "--period",
        "30",
        "--emulator",
        &bench.emu_arg(),
        "--db",
        &bench.db_arg(),
        "--export",
        &export.display().to_string(),
        "--export-password",
        PASSWORD,
    ]);
    let keys = python_pskc(&export, PASSWORD).expect("python-pskc reads the export");
    assert!(
        keys.iter()
            .all(|k| k.algorithm.ends_with("totp") && k.period == Some(30))
    );
    assert!(keys.iter().all(|k| k.digits == Some(8)));
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 3);
}

/// `keyprov serve` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &std::path::Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = keyprov()
        .args(["serve", "--listen", &listen, "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keyprov serve");
    // `keyprov serve` prints `listening on URL`; that URL is URL_S, which the AD MAC binds.
    let mut first = String::new();
    let stdout = child.stdout.take().expect("serve stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read serve output");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected serve output {first:?}"))
        .to_string();
    let started = Instant::now();
    while TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "keyprov serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, url }
}

#[test]
fn central_mode_provisions_twelve_tokens_with_a_pool_of_authentication_codes() {
    let bench = twelve_tokens();
    let server_db = bench.path("server/server.db");
    std::fs::create_dir_all(server_db.parent().unwrap()).unwrap();
    let server = serve(&server_db);

    // One AC (with a pre-shared K_SHARED) per token, plus two spare, as an operator would.
    let mut pool = String::new();
    for i in 0..14 {
        let out = ok(&[
            "ac",
            "issue",
            "--db",
            &server_db.display().to_string(),
            "--client-id",
            &format!("{:08X}", 0xA000_0000u32 + i),
            "--shared-key",
        ]);
        let ac = out
            .lines()
            .find(|l| l.starts_with("AC="))
            .expect("AC= line");
        let key = out
            .lines()
            .find(|l| l.starts_with("SHARED_KEY="))
            .expect("SHARED_KEY= line");
        pool.push_str(&format!("{ac} {key}\n"));
    }
    let ac_file = bench.path("acs.txt");
    std::fs::write(&ac_file, pool).unwrap();

    let export = bench.path("central.pskcxml");
    ok(&[
        "provision",
        "--batch",
        "e2e-central",
        "--server",
        &server.url,
        "--ac-file",
        &ac_file.display().to_string(),
        "--emulator",
        &bench.emu_arg(),
        "--db",
        &bench.db_arg(),
        "--export",
        &export.display().to_string(),
        "--export-password",
        PASSWORD,
    ]);
    assert_all_verified(&bench, "e2e-central");
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 12);

    // The server's own export (what a validation server imports) holds the same secrets.
    let server_export = bench.path("server.pskcxml");
    ok(&[
        "server",
        "export",
        "--db",
        &server_db.display().to_string(),
        "-o",
        &server_export.display().to_string(),
        "--password",
        PASSWORD,
    ]);
    let station = python_pskc(&export, PASSWORD).unwrap();
    let issued = python_pskc(&server_export, PASSWORD).unwrap();
    for key in &station {
        assert!(
            issued.iter().any(|k| k.secret == key.secret),
            "key {} of the station export was issued by the server",
            key.id
        );
    }
    bench.audit_ok();
}
