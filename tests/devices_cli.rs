//! `keyprov devices` and `keyprov emulator …` end to end: emulated devices listed with their
//! serials, plug/unplug, touch printing RFC 4226 values (and, with `--totp`, the code
//! `oathtool --totp` computes), `--watch` reporting changes within
//! a second, and SIGKILLed processes leaving a readable emulator state.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyprov_drivers::emulator::{self, Latency};
use keyprov_drivers::{Digits, OtpHash, SecretKey};
use serde_json::Value;

fn keyprov(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(args)
        .output()
        .expect("run keyprov")
}

/// Runs keyprov, requires success, returns stdout.
fn ok(args: &[&str]) -> String {
    let out = keyprov(args);
    assert!(
        out.status.success(),
        "keyprov {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Vec<Value> {
    serde_json::from_str::<Value>(&ok(args))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn serials(items: &[Value]) -> Vec<String> {
    let mut serials: Vec<String> = items
        .iter()
        .map(|v| v["serial"].as_str().unwrap().to_owned())
        .collect();
    serials.sort();
    serials
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn devices_without_hid_devices_prints_an_empty_list() {
    // This machine (and CI) has no /dev/hidraw*; the empty emulator dir adds nothing.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(ok(&["devices", "--json"]).trim(), "[]");
    assert_eq!(
        ok(&["devices", "--emulator", dir_arg(dir.path()), "--json"]).trim(),
        "[]"
    );
    assert_eq!(ok(&["devices"]).trim(), "no tokens attached");
}

#[test]
fn devices_lists_exactly_the_emulated_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    let added = ok(&["emulator", "add", "yubikey", "--count", "2", "--dir", d]);
    assert_eq!(added.lines().count(), 2);
    ok(&["emulator", "add", "nitrokey-pro", "--dir", d]);
    ok(&[
        "emulator",
        "add",
        "nitrokey-storage",
        "--firmware",
        "0.53",
        "--dir",
        d,
    ]);

    let emulated = json(&["emulator", "list", "--dir", d, "--json"]);
    assert_eq!(
        serials(&emulated),
        ["10000001", "10000002", "00A00001", "00B00001"]
            .map(|s| s.to_owned())
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let storage = emulated
        .iter()
        .find(|v| v["family"] == "nitrokey-storage")
        .unwrap();
    assert_eq!(storage["firmware"], "0.53");

    let listed = json(&["devices", "--emulator", d, "--json"]);
    assert_eq!(serials(&listed), serials(&emulated));
    for token in &listed {
        for field in ["family", "model", "serial", "firmware"] {
            assert!(token[field].is_string(), "{field} missing in {token}");
        }
    }
    let yubikey = listed.iter().find(|v| v["serial"] == "10000001").unwrap();
    assert_eq!(yubikey["model"], "YubiKey 5");
    assert_eq!(yubikey["firmware"], "5.4.3");
    assert_eq!(yubikey["free_hotp_slots"], serde_json::json!([1, 2]));
    let pro = listed.iter().find(|v| v["serial"] == "00A00001").unwrap();
    assert_eq!(pro["free_totp_slots"].as_array().unwrap().len(), 15);

    ok(&["emulator", "unplug", "10000002", "--dir", d]);
    let listed = json(&["devices", "--emulator", d, "--json"]);
    assert!(!serials(&listed).contains(&"10000002".to_owned()));
    assert_eq!(listed.len(), 3);
    let unplugged = json(&["emulator", "list", "--dir", d, "--json"]);
    let entry = unplugged
        .iter()
        .find(|v| v["serial"] == "10000002")
        .unwrap();
    assert_eq!(entry["plugged"], false);
    ok(&["emulator", "plug", "10000002", "--dir", d]);
    assert_eq!(json(&["devices", "--emulator", d, "--json"]).len(), 4);
}

#[test]
fn touch_prints_the_rfc4226_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "yubikey", "--dir", d]);
    let out = keyprov(&["emulator", "touch", "10000001", "--dir", d]);
    assert!(!out.status.success(), "an empty slot types nothing");

    // Program the RFC 4226 key through the driver, then touch from the CLI.
    emulator::set_latency(dir.path(), "10000001", Latency::ZERO).unwrap();
    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    let mut token = keyprov_drivers::open(&info).unwrap();
    let key = SecretKey::from_slice(b"12345678901234567890");
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    for expected in ["755224", "287082", "359152"] {
        assert_eq!(
            ok(&["emulator", "touch", "10000001", "--slot", "1", "--dir", d]).trim(),
            expected
        );
    }
}

/// `oathtool --totp -s PERIODs -d DIGITS HEX` (the oracle for `emulator touch --totp`).
fn oathtool_totp(secret_hex: &str, period: u32, digits: u32) -> String {
    let out = Command::new("oathtool")
        .args([
            "--totp",
            "-s",
            &format!("{period}s"),
            "-d",
            &digits.to_string(),
        ])
        .arg(secret_hex)
        .output()
        .expect("oathtool not on PATH: run `bash scripts/setup.sh`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn touch_totp_prints_the_code_oathtool_computes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "nitrokey-pro", "--dir", d]);
    let serial = serials(&json(&["emulator", "list", "--dir", d, "--json"])).remove(0);
    let out = keyprov(&[
        "emulator", "touch", &serial, "--slot", "3", "--totp", "--dir", d,
    ]);
    assert!(!out.status.success(), "an empty TOTP slot has no code");

    // Program RFC 6238's SHA-1 key into TOTP slot 3 through the driver (8 digits, 30 s).
    emulator::set_latency(dir.path(), &serial, Latency::ZERO).unwrap();
    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    let mut token = keyprov_drivers::open(&info).unwrap();
    let pin = keyprov_drivers::Pin::new("12345678".to_owned());
    token
        .authenticate(&keyprov_drivers::Credential::AdminPin(pin))
        .unwrap();
    let key = SecretKey::from_slice(b"12345678901234567890");
    token
        .write_totp(3, &key, 30, Digits::EIGHT, OtpHash::Sha1)
        .unwrap();
    let hex = "3132333435363738393031323334353637383930";

    // A 30 s step may end between two readings: bracket the device's code by two oracles.
    let before = oathtool_totp(hex, 30, 8);
    let shown = ok(&[
        "emulator", "touch", &serial, "--slot", "3", "--totp", "--dir", d,
    ]);
    let after = oathtool_totp(hex, 30, 8);
    let shown = shown.trim();
    assert_eq!(shown.len(), 8, "{shown:?}");
    assert!(
        shown == before || shown == after,
        "device {shown}, oathtool {before} / {after}"
    );

    // The HOTP slots are untouched, and a YubiKey has no TOTP slot.
    assert!(
        !keyprov(&["emulator", "touch", &serial, "--dir", d])
            .status
            .success()
    );
    ok(&["emulator", "add", "yubikey", "--dir", d]);
    let out = keyprov(&["emulator", "touch", "10000001", "--totp", "--dir", d]);
    assert!(!out.status.success(), "a YubiKey has no TOTP slot");
}

/// Reads the watcher's JSON lines on a thread.
fn watch(dir: &Path) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(["devices", "--emulator", dir_arg(dir), "--watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx
                .send(serde_json::from_str::<Value>(&line).unwrap())
                .is_err()
            {
                break;
            }
        }
    });
    (child, rx)
}

fn expect_event(rx: &mpsc::Receiver<Value>, kind: &str, serial: &str, within: Duration) {
    let event = rx
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("no {kind} event for {serial}"));
    assert_eq!(event["event"], kind, "{event}");
    assert_eq!(event["token"]["serial"], serial, "{event}");
}

#[test]
fn watch_reports_plug_and_unplug_within_one_second() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "yubikey", "--dir", d]);
    let (mut child, rx) = watch(dir.path());
    // The device present at start is reported first (allow for process start-up).
    expect_event(&rx, "arrived", "10000001", Duration::from_secs(10));

    let start = Instant::now();
    ok(&["emulator", "add", "nitrokey-pro", "--dir", d]);
    expect_event(&rx, "arrived", "00A00001", Duration::from_secs(1));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    ok(&["emulator", "unplug", "10000001", "--dir", d]);
    expect_event(&rx, "removed", "10000001", Duration::from_secs(1));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    ok(&["emulator", "plug", "10000001", "--dir", d]);
    expect_event(&rx, "arrived", "10000001", Duration::from_secs(1));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigkill_at_any_instant_leaves_a_readable_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "nitrokey-pro", "--dir", d]);
    emulator::set_latency(dir.path(), "00A00001", Latency::ZERO).unwrap();
    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    let mut token = keyprov_drivers::open(&info).unwrap();
    token
        .authenticate(&keyprov_drivers::Credential::AdminPin(
            keyprov_drivers::Pin::new("12345678"),
        ))
        .unwrap();
    token
        .write_hotp(
            0,
            &SecretKey::from_slice(b"12345678901234567890"),
            0,
            Digits::SIX,
            OtpHash::Sha1,
        )
        .unwrap();
    drop(token);

    let mut completed = 0u64;
    for i in 0..40u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyprov"))
            .args(["emulator", "touch", "00A00001", "--dir", d])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at staggered instants across the process's lifetime (0..~8 ms).
        std::thread::sleep(Duration::from_micros((i * 211) % 8000));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            completed += 1;
        }
        // The state is readable after every kill.
        assert_eq!(json(&["emulator", "list", "--dir", d, "--json"]).len(), 1);
    }
    // Listing removed the temporary files of writers killed before their rename.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("{completed} of 40 touches completed before their SIGKILL");
    // Every OTP that was printed was committed; killed runs committed at most one step each.
    let otp = ok(&["emulator", "touch", "00A00001", "--dir", d]);
    let counter = (0..=40)
        .find(|&c| keyprov_drivers::hotp(b"12345678901234567890", c, Digits::SIX) == otp.trim())
        .expect("the next OTP belongs to a counter in 0..=40");
    assert!(
        counter >= completed,
        "counter {counter} < {completed} printed OTPs"
    );
}

/// `oathtool ARGS… HEX`, stdout trimmed (the oracle for the Nitrokey 3 codes).
fn oathtool(args: &[&str], secret_hex: &str) -> String {
    let out = Command::new("oathtool")
        .args(args)
        .arg(secret_hex)
        .output()
        .expect("oathtool not on PATH: run `bash scripts/setup.sh`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Issue 7's emulated SHA-256 TOTP token: a Nitrokey 3 added with `--family nitrokey3`,
/// programmed through the driver, shows with `touch --totp` the code `oathtool
/// --totp=sha256` computes over the key (and with `--period 60` the 60 s code); its SHA-1
/// HOTP credential shows `oathtool --hotp` at counters 0 and 1.
#[test]
fn nitrokey3_touch_matches_oathtool_sha256_totp_and_sha1_hotp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    let added = ok(&["emulator", "add", "--family", "nitrokey3", "--dir", d]);
    assert!(added.starts_with("nitrokey3"), "{added}");
    let serial = serials(&json(&["emulator", "list", "--dir", d, "--json"])).remove(0);
    emulator::set_latency(dir.path(), &serial, Latency::ZERO).unwrap();

    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    let mut token = keyprov_drivers::open(&info).unwrap();
    let totp_hex = "3132333435363738393031323334353637383930313233343536373839303132";
    let totp_key = SecretKey::from_hex(totp_hex).unwrap();
    token
        .write_totp(2, &totp_key, 30, Digits::EIGHT, OtpHash::Sha256)
        .unwrap();
    let hotp_hex = "3132333435363738393031323334353637383930";
    let hotp_key = SecretKey::from_hex(hotp_hex).unwrap();
    token
        .write_hotp(0, &hotp_key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();

    for period in ["30", "60"] {
        let step = format!("{period}s");
        let oracle = || oathtool(&["--totp=sha256", "-s", &step, "-d", "8"], totp_hex);
        let before = oracle();
        let shown = ok(&[
            "emulator", "touch", &serial, "--slot", "2", "--totp", "--period", period, "--dir", d,
        ]);
        let after = oracle();
        let shown = shown.trim();
        assert!(
            shown == before || shown == after,
            "period {period}: device {shown}, oathtool --totp=sha256 {before} / {after}"
        );
        let sha1 = oathtool(&["--totp", "-s", &step, "-d", "8"], totp_hex);
        assert_ne!(shown, sha1, "the credential computes SHA-256, not SHA-1");
    }

    for counter in ["0", "1"] {
        let shown = ok(&["emulator", "touch", &serial, "--slot", "0", "--dir", d]);
        assert_eq!(shown.trim(), oathtool(&["--hotp", "-c", counter], hotp_hex));
    }

    let listed = json(&["devices", "--emulator", d, "--json"]);
    assert_eq!(listed[0]["family"], "nitrokey3");
    assert_eq!(listed[0]["free_hotp_slots"], serde_json::json!([1, 2]));
    let out = keyprov(&["emulator", "touch", &serial, "--slot", "1", "--dir", d]);
    assert!(!out.status.success(), "HOTP slot 1 holds no credential");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("slot hotp:1 is not programmed"), "{stderr}");
}

/// `emulator add --manual-touch`: a Nitrokey 3 write waits until `emulator touch SERIAL
/// --presence`, then completes.
#[test]
fn nitrokey3_manual_touch_is_given_by_touch_presence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "nitrokey3", "--manual-touch", "--dir", d]);
    let serial = serials(&json(&["emulator", "list", "--dir", d, "--json"])).remove(0);
    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    let writer = std::thread::spawn(move || {
        let mut token = keyprov_drivers::open(&info).unwrap();
        let key = SecretKey::from_slice(b"12345678901234567890");
        let started = Instant::now();
        token
            .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
            .map(|()| started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(!writer.is_finished(), "the write waits for the touch");
    ok(&["emulator", "touch", &serial, "--presence", "--dir", d]);
    let waited = writer.join().unwrap().unwrap();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    let shown = ok(&["emulator", "touch", &serial, "--slot", "1", "--dir", d]);
    assert_eq!(shown.trim(), "755224");
    let out = keyprov(&["emulator", "add", "yubikey", "--manual-touch", "--dir", d]);
    assert!(!out.status.success(), "a YubiKey has no presence mode");
}

fn stderr_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

/// Breaker #7: `--manual-touch` on a family without a presence touch exited 1 after creating
/// the devices.
#[test]
fn manual_touch_on_another_family_is_refused_before_any_device_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    let out = keyprov(&[
        "emulator",
        "add",
        "nitrokey-pro",
        "--count",
        "3",
        "--manual-touch",
        "--dir",
        d,
    ]);
    assert_eq!(
        stderr_line(&out),
        "error: --manual-touch is for nitrokey3 only: a nitrokey-pro asks for no presence \
         touch (no device was added)"
    );
    assert!(json(&["emulator", "list", "--dir", d, "--json"]).is_empty());
    ok(&["emulator", "add", "nitrokey3", "--manual-touch", "--dir", d]);
    assert_eq!(json(&["emulator", "list", "--dir", d, "--json"]).len(), 1);
}

/// Breaker #10: the touch errors named the serial twice and called a slot the device does
/// not have "not programmed".
#[test]
fn touch_errors_name_the_device_once_and_an_out_of_range_slot_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    ok(&["emulator", "add", "nitrokey3", "--dir", d]);
    ok(&["emulator", "add", "yubikey", "--dir", d]);
    let touch = |args: &[&str]| {
        let mut all = vec!["emulator", "touch"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", d]);
        stderr_line(&keyprov(&all))
    };
    assert_eq!(
        touch(&["00C00001", "--slot", "3"]),
        "error: cannot touch: emulated 00C00001: no such slot hotp:3 (valid 0–2)"
    );
    assert_eq!(
        touch(&["00c00001", "--slot", "15", "--totp"]),
        "error: cannot touch: emulated 00C00001: no such slot totp:15 (valid 0–14)"
    );
    assert_eq!(
        touch(&["10000001", "--slot", "0"]),
        "error: cannot touch: emulated 10000001: no such slot hotp:0 (valid 1–2)"
    );
    assert_eq!(
        touch(&["00C00001", "--slot", "2"]),
        "error: cannot touch: emulated 00C00001: slot hotp:2 is not programmed"
    );
}
