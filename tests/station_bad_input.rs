//! Bad input: a missing or wrong export password, an unreachable server, a token unplugged
//! mid-write and a full disk for the export each end with one clear message, and leave the
//! store consistent (the audit chain holds, no key is active that a token does not hold, and
//! re-running finishes the job).

mod station_support;

use std::net::TcpListener;

use keyprov_drivers::emulator::{self, Fault};
use station_support::{Bench, PASSWORD, check_export_against_tokens, ok, python_pskc, run};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn base_args(bench: &Bench, batch: &str) -> Vec<String> {
    ["provision", "--batch", batch, "--emulator"]
        .iter()
        .map(|s| s.to_string())
        .chain([bench.emu_arg(), "--db".into(), bench.db_arg()])
        .collect()
}

fn provision(bench: &Bench, batch: &str, extra: &[&str]) -> std::process::Output {
    let mut args = base_args(bench, batch);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

fn small_bench() -> Bench {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 2);
    bench.add_tokens("nitrokey-pro", 1);
    bench.set_latency(5, 1);
    bench
}

#[test]
fn an_export_without_password_is_refused_before_anything_is_done() {
    let bench = small_bench();
    let export = bench.path("out.pskcxml");
    let out = provision(&bench, "nopw", &["--export", &export.display().to_string()]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("needs a protection"), "{message}");
    assert!(
        message.lines().filter(|l| !l.trim().is_empty()).count() <= 2,
        "{message}"
    );
    assert!(!export.exists());
    assert!(!bench.db().exists(), "nothing was recorded");
}

#[test]
fn a_short_export_password_is_refused_and_a_wrong_one_cannot_read_the_export() {
    let bench = small_bench();
    let export = bench.path("out.pskcxml");
    let path = export.display().to_string();
    let out = provision(
        &bench,
        "weak",
        &["--export", &path, "--export-password", "abc"],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("export password") && message.contains("too short"),
        "{message}"
    );
    assert!(
        !message.contains("abc"),
        "the password is not echoed: {message}"
    );
    assert!(!export.exists());

    let out = provision(
        &bench,
        "strong",
        &["--export", &path, "--export-password", PASSWORD],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let refused = python_pskc(&export, "not the password").unwrap_err();
    assert!(
        refused.contains("DecryptionError") || refused.contains("MAC"),
        "{refused}"
    );
    assert_eq!(python_pskc(&export, PASSWORD).unwrap().len(), 3);
    bench.audit_ok();
}

#[test]
fn an_unreachable_server_fails_every_token_cleanly() {
    let bench = small_bench();
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let acs = bench.path("acs.txt");
    std::fs::write(&acs, "AC=108AC00000A20A3582AF0C3E\n".repeat(3)).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let out = provision(
        &bench,
        "offline",
        &["--server", &url, "--ac-file", &acs.display().to_string()],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("unreachable") || message.contains("connect"),
        "{message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");

    let detail = bench.batch("offline");
    assert_eq!(detail.batch.verified, 0);
    assert!(
        detail
            .tokens
            .iter()
            .all(|t| !matches!(t.state.as_str(), "written" | "verified" | "exported"))
    );
    bench.audit_ok();
}

#[test]
fn a_token_unplugged_mid_write_fails_alone_and_the_rerun_finishes_it() {
    let bench = small_bench();
    let victim = bench
        .tokens()
        .into_iter()
        .find(|t| t.family == "yubikey")
        .unwrap()
        .serial;
    emulator::inject_fault(&bench.emulators(), &victim, Fault::UnplugMidWrite).unwrap();

    let out = provision(&bench, "unplug", &[]);
    assert!(
        !out.status.success(),
        "a failed token makes the command fail"
    );
    let message = stderr(&out);
    assert!(message.contains("1 of 3 tokens failed ("), "{message}");
    let detail = bench.batch("unplug");
    let row = detail.tokens.iter().find(|t| t.serial == victim).unwrap();
    let error = row.error.as_deref().unwrap_or("");
    assert!(
        error.contains("unplugged") || error.contains("is attached"),
        "{row:?}"
    );
    assert!(
        error.contains(&victim),
        "the message names the token: {row:?}"
    );
    assert_ne!(row.state, "verified");
    assert_eq!(detail.batch.verified, 2);
    bench.audit_ok();

    emulator::set_plugged(&bench.emulators(), &victim, true).unwrap();
    let export = bench.path("unplug.pskcxml");
    let path = export.display().to_string();
    let out = provision(
        &bench,
        "unplug",
        &["--export", &path, "--export-password", PASSWORD],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(bench.batch("unplug").batch.verified, 3);
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 3);
    bench.audit_ok();
}

#[test]
fn a_full_disk_for_the_export_keeps_the_keys_verified_for_a_later_export() {
    let bench = small_bench();
    let out = provision(
        &bench,
        "full",
        &["--export", "/dev/full", "--export-password", PASSWORD],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("/dev/full") && message.contains("No space left"),
        "{message}"
    );
    let detail = bench.batch("full");
    assert_eq!(detail.batch.verified, 3);
    assert!(
        detail.tokens.iter().all(|t| t.state == "verified"),
        "{:?}",
        detail.tokens
    );
    bench.audit_ok();

    let export = bench.path("full.pskcxml");
    ok(&[
        "batch",
        "export",
        "full",
        "-o",
        &export.display().to_string(),
        "--password",
        PASSWORD,
        "--db",
        &bench.db_arg(),
    ]);
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 3);
}
