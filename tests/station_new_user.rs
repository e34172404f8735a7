//! Regression tests for what a new user met following the README: each test is named after
//! the behaviour it pins (central mode's `--ac-file`, permanent failures, read-only commands,
//! `pskc convert`/`inspect`, `dskpp provision` messages, `reissue` hints, `devices`, imported
//! batches, table layout, help texts and password files).

mod station_support;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use station_support::{Bench, PASSWORD, keyprov, ok, python_pskc, run};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn corpus(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/interop/pskc-corpus")
        .join(file)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `keyprov serve` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    url: String,
    db: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bench: &Bench) -> Server {
        let db = bench.path("server.db");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = keyprov()
            .args(["serve", "--listen", &listen, "--db"])
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start keyprov serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("serve stdout"))
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
                "serve is not listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, url, db }
    }

    /// The raw output of `keyprov ac issue --shared-key`.
    fn issue(&self, client_id: &str, shared_key: bool) -> String {
        let db = self.db.display().to_string();
        let mut args = vec!["ac", "issue", "--db", &db, "--client-id", client_id];
        if shared_key {
            args.push("--shared-key");
        }
        ok(&args)
    }
}

fn provision(bench: &Bench, batch: &str, extra: &[&str]) -> Output {
    let (emu, db) = (bench.emu_arg(), bench.db_arg());
    let mut args = vec![
        "provision",
        "--batch",
        batch,
        "--emulator",
        &emu,
        "--db",
        &db,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn central_mode_without_ac_file_fails_at_once_and_creates_nothing() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let url = format!("http://127.0.0.1:{}/", free_port());
    let out = provision(&bench, "central", &["--server", &url]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "central mode needs --ac-file (authentication codes from `keyprov ac issue`)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!bench.db().exists(), "no station database before the check");
}

#[test]
fn ac_file_takes_the_concatenated_output_of_ac_issue() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 2);
    bench.add_tokens("nitrokey-pro", 1);
    let server = Server::start(&bench);
    // Exactly what the operator gets from `keyprov ac issue … >> acs.txt`, three times: two
    // codes with their SHARED_KEY= line, one without.
    let acs = [
        server.issue("A0000001", true),
        server.issue("A0000002", false),
        server.issue("A0000003", true),
    ]
    .concat();
    assert_eq!(
        acs.lines().filter(|l| l.starts_with("SHARED_KEY=")).count(),
        2
    );
    let ac_file = bench.path("acs.txt");
    std::fs::write(&ac_file, acs).unwrap();
    let ac_arg = ac_file.display().to_string();
    let out = provision(
        &bench,
        "central",
        &["--server", &server.url, "--ac-file", &ac_arg],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let detail = bench.batch("central");
    assert_eq!(detail.batch.tokens, 3);
    assert_eq!(detail.batch.verified, 3, "{:?}", detail.tokens);
}

#[test]
fn ac_file_refuses_a_shared_key_line_without_its_code() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let ac_file = bench.path("acs.txt");
    std::fs::write(&ac_file, "SHARED_KEY=00112233445566778899aabbccddeeff\n").unwrap();
    let url = format!("http://127.0.0.1:{}/", free_port());
    let ac_arg = ac_file.display().to_string();
    let out = provision(&bench, "central", &["--server", &url, "--ac-file", &ac_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("line 1: SHARED_KEY= without an AC= line"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_permanent_failure_says_failed_and_suggests_no_rerun() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let out = provision(&bench, "totp-on-yubikey", &["--profile", "totp"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("no totp slot"), "{message}");
    assert!(!message.contains("re-run"), "{message}");
    let detail = bench.batch("totp-on-yubikey");
    assert_eq!(detail.tokens.len(), 1);
    assert_eq!(detail.tokens[0].state, "failed");
    assert!(stdout(&out).contains(" failed — "), "{}", stdout(&out));
}

#[test]
fn a_transient_failure_still_suggests_a_rerun() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let acs = bench.path("acs.txt");
    std::fs::write(&acs, "AC=108AC00000A20A3582AF0C3E\n").unwrap();
    let url = format!("http://127.0.0.1:{}/", free_port());
    let ac_arg = acs.display().to_string();
    let out = provision(&bench, "offline", &["--server", &url, "--ac-file", &ac_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("re-run the same command to retry them"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn read_only_batch_commands_do_not_create_the_station_database() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let station = data.join("keyprov");
    for args in [
        vec!["batch", "list"],
        vec!["batch", "show", "1"],
        vec![
            "batch",
            "export",
            "1",
            "-o",
            "x.pskcxml",
            "--password",
            PASSWORD,
        ],
    ] {
        let out = keyprov()
            .args(&args)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", &data)
            .current_dir(home.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let expected = format!(
            "no station database at {}",
            station.join("station.db").display()
        );
        assert!(
            stderr(&out).contains(&expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !station.join("station.db").exists(),
            "{args:?} created the database"
        );
        assert!(
            !station.join("master.key").exists(),
            "{args:?} created the master key"
        );
    }
}

#[test]
fn pskc_convert_plain_is_private_and_overwrites_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("plain.pskcxml");
    let input = corpus("python-pskc/rfc6030/figure6.pskcxml")
        .display()
        .to_string();
    let out_arg = output.display().to_string();
    let convert = |force: bool| {
        let mut args = vec!["pskc", "convert", &input, "-o", &out_arg, "--plain"];
        args.extend_from_slice(&["--key", "12345678901234567890123456789012"]);
        if force {
            args.push("--force");
        }
        run(&args)
    };
    assert!(convert(false).status.success());
    let mode = std::fs::metadata(&output).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("PlainValue")
    );

    std::fs::write(&output, "mine").unwrap();
    std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = convert(false);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("give --force"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "mine",
        "left alone"
    );

    assert!(convert(true).status.success());
    let mode = std::fs::metadata(&output).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "an overwritten file is made private too");
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("PlainValue")
    );
}

#[test]
fn pskc_inspect_without_a_key_says_the_secret_is_encrypted() {
    let figure7 = corpus("python-pskc/rfc6030/figure7.pskcxml")
        .display()
        .to_string();
    let locked = ok(&["pskc", "inspect", &figure7]);
    assert!(
        locked.contains("secret:       encrypted (give --key/--password/--private-key to decrypt)"),
        "{locked}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["pskc", "inspect", &figure7, "--json"])).unwrap();
    assert!(json["keys"][0]["secret"].is_null());
    let opened = ok(&["pskc", "inspect", &figure7, "--password", "qwerty"]);
    assert!(opened.contains("(20 bytes, hidden)"), "{opened}");
    // A key with no secret at all (figure 4) still shows `-`.
    let figure4 = corpus("python-pskc/rfc6030/figure4.pskcxml")
        .display()
        .to_string();
    assert!(ok(&["pskc", "inspect", &figure4]).contains("secret:       -\n"));
}

#[test]
fn dskpp_provision_keeps_connection_refused_in_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", free_port());
    let output = dir.path().join("key.pskcxml").display().to_string();
    let out = run(&[
        "dskpp",
        "provision",
        "--server",
        &url,
        "--ac",
        "108AC00000A20A3582AF0C3E",
        "-o",
        &output,
        "--password",
        PASSWORD,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("connection refused"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dskpp_provision_explains_authentication_data_invalid() {
    let bench = Bench::new();
    let server = Server::start(&bench);
    let issued = server.issue("B0000001", false);
    let ac = issued
        .lines()
        .next()
        .unwrap()
        .strip_prefix("AC=")
        .unwrap()
        .to_string();
    let dskpp = |name: &str| {
        let output = bench.path(name).display().to_string();
        run(&[
            "dskpp",
            "provision",
            "--server",
            &server.url,
            "--ac",
            &ac,
            "-o",
            &output,
            "--password",
            PASSWORD,
        ])
    };
    assert!(dskpp("first.pskcxml").status.success());
    let used_up = dskpp("second.pskcxml");
    assert!(!used_up.status.success());
    let message = stderr(&used_up);
    assert!(message.contains("AuthenticationDataInvalid"), "{message}");
    assert!(
        message.contains(
            "the AC may be used up or wrong, or the URL differs from one the server accepts \
             (see `keyprov serve --url`)"
        ),
        "{message}"
    );
}

#[test]
fn reissue_without_export_names_the_batch_export_command() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    assert!(provision(&bench, "first", &[]).status.success());
    let serial = bench.tokens()[0].serial.clone();
    let out = run(&[
        "reissue",
        &serial,
        "--emulator",
        &bench.emu_arg(),
        "--db",
        &bench.db_arg(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("the new key is not exported yet"),
        "{message}"
    );
    let batch = format!("reissue-{serial}-");
    assert!(
        message.contains(&format!("keyprov batch export {batch}")),
        "{message}"
    );
}

#[test]
fn reissue_of_an_unattached_token_hints_at_the_emulator_directory() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    assert!(provision(&bench, "first", &[]).status.success());
    let serial = bench.tokens()[0].serial.clone();
    let out = run(&["reissue", &serial, "--db", &bench.db_arg()]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("not attached"), "{message}");
    assert!(
        message.contains("--emulator DIR / set KEYPROV_EMULATOR_DIR"),
        "{message}"
    );
}

#[test]
fn devices_honours_keyprov_emulator_dir() {
    let bench = Bench::new();
    bench.add_tokens("nitrokey-pro", 1);
    let serial = bench.tokens()[0].serial.clone();
    let out = keyprov()
        .args(["devices"])
        .env("KEYPROV_EMULATOR_DIR", bench.emulators())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&serial), "{}", stdout(&out));
}

#[test]
fn devices_watch_shows_the_free_slots_devices_lists() {
    let bench = Bench::new();
    bench.add_tokens("nitrokey-pro", 1);
    let listed = ok(&["devices", "--emulator", &bench.emu_arg()]);
    let row = listed.lines().nth(1).expect("one token row").to_string();
    let mut watch = keyprov()
        .args(["devices", "--watch", "--emulator", &bench.emu_arg()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(watch.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(!first.contains('?'), "{first}");
    assert_eq!(first.trim_end(), format!("+ {row}"));
}

#[test]
fn an_imported_file_with_two_keys_on_one_serial_lists_every_key() {
    let bench = Bench::new();
    let figure10 = corpus("python-pskc/rfc6030/figure10.pskcxml")
        .display()
        .to_string();
    ok(&[
        "import",
        &figure10,
        "--db",
        &bench.db_arg(),
        "--batch",
        "fig10",
    ]);
    let detail = bench.batch("fig10");
    assert_eq!(detail.tokens.len(), 4);
    let mut labels: Vec<&str> = detail.tokens.iter().map(|t| t.slot.as_str()).collect();
    labels.sort();
    assert_eq!(labels, ["1", "2", "3", "4"]);
    let shown = ok(&["batch", "show", "fig10", "--db", &bench.db_arg()]);
    assert!(shown.contains("3 tokens, 4 keys: 4 verified"), "{shown}");
    let rows: Vec<&str> = shown.lines().filter(|l| l.contains(" slot ")).collect();
    assert_eq!(rows.len(), 4, "{shown}");
    assert!(rows.iter().all(|r| r.contains("slot -")), "{shown}");
    assert!(rows.iter().any(|r| r.contains("key 3 ")), "{shown}");
    let export = bench.path("fig10-out.pskcxml");
    let export_arg = export.display().to_string();
    let pw = bench.path("pw.txt");
    std::fs::write(&pw, format!("{PASSWORD}\nsecond line is ignored\n")).unwrap();
    let pw_arg = pw.display().to_string();
    let db = bench.db_arg();
    ok(&[
        "batch",
        "export",
        "fig10",
        "-o",
        &export_arg,
        "--password-file",
        &pw_arg,
        "--db",
        &db,
    ]);
    assert_eq!(python_pskc(&export, PASSWORD).unwrap().len(), 4);
}

#[test]
fn batch_list_aligns_long_names_and_counts_in_the_singular() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let long = "a-batch-name-much-longer-than-twenty-four-characters";
    assert!(provision(&bench, long, &[]).status.success());
    assert!(provision(&bench, "short", &[]).status.success());
    let table = ok(&["batch", "list", "--db", &bench.db_arg()]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let column = |line: &str, word: &str| line.find(word).unwrap_or_else(|| panic!("{table}"));
    let state = column(lines[0], "state");
    assert_eq!(column(lines[1], "completed"), state, "{table}");
    assert_eq!(column(lines[2], "completed"), state, "{table}");
    let shown = ok(&["batch", "show", "short", "--db", &bench.db_arg()]);
    assert!(
        shown.contains("  1 token, 1 key: 1 verified, 0 failed"),
        "{shown}"
    );
}

#[test]
fn every_json_flag_has_help_text() {
    for command in [
        vec!["batch", "list"],
        vec!["batch", "show"],
        vec!["batch", "export"],
        vec!["reissue"],
        vec!["provision"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = ok(&args);
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with("--json"))
            .unwrap_or_else(|| panic!("{command:?}: {help}"));
        assert!(line.trim() != "--json", "{command:?} has a bare --json");
    }
}

#[test]
fn provision_reads_the_export_password_from_a_file() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 1);
    let pw = bench.path("pw.txt");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let export = bench.path("out.pskcxml");
    let (pw_arg, export_arg) = (pw.display().to_string(), export.display().to_string());
    let out = provision(
        &bench,
        "pwfile",
        &["--export", &export_arg, "--export-password-file", &pw_arg],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(python_pskc(&export, PASSWORD).unwrap().len(), 1);
}
