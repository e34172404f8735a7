//! The Nitrokey 3 driver against its emulator, through `HidTransport`: HOTP/TOTP with SHA-1
//! and SHA-256 read back as RFC 4226/6238 values, slots listed, erased and overwritten, the
//! CTAPHID exchange byte by byte (channel allocation, keepalive UP_NEEDED while the touch is
//! awaited, errors), and each injected fault ending in a clear typed error.

use std::path::Path;
use std::time::{Duration, Instant};

use keyprov_drivers::emulator::{self, EmulatorTransport, Fault};
use keyprov_drivers::nitrokey3::apdu::{self, Put, kind};
use keyprov_drivers::nitrokey3::ctaphid::{self, Packet, command, keepalive};
use keyprov_drivers::transport::HidTransport;
use keyprov_drivers::{
    Credential, Digits, Error, Factor, Family, OtpHash, Pin, Presence, Proof, SecretKey, Slot,
    hotp_with, totp_with,
};

mod support;
use support::{add, emulated, expectation, open, write_and_verify};

/// RFC 6238 Appendix B seeds: 20 bytes for SHA-1, 32 for SHA-256.
const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn discovery_names_the_emulated_nitrokey3() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    assert_eq!(serial, "00C00001");
    let info = keyprov_drivers::list(Some(dir.path())).unwrap().remove(0);
    assert_eq!(info.family, Family::Nitrokey3);
    assert_eq!(info.model, "Nitrokey 3");
    assert_eq!(info.firmware, "4.13.0");
    assert_eq!(info.usb_id, "20a0:42b2");
    assert_eq!(info.free_hotp_slots, Some(vec![0, 1, 2]));
    assert_eq!(info.free_totp_slots.as_ref().map(Vec::len), Some(15));
    let mut token = open(dir.path(), &serial);
    let caps = token.capabilities();
    assert_eq!(caps.hashes, vec![OtpHash::Sha1, OtpHash::Sha256]);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
}

#[test]
fn hotp_sha1_round_trip_matches_rfc4226_and_the_touch_code() {
    let (dir, serial, mut token) = emulated(Family::Nitrokey3);
    let key = SecretKey::from_slice(SEED_SHA1);
    let expected = expectation(&key, Digits::SIX, OtpHash::Sha1, Factor::Counter(5));
    let verified = write_and_verify(&mut *token, Slot::hotp(1), &expected);
    assert_eq!(verified.proof, Proof::OtpMatched { counter: Some(5) });
    assert_eq!(verified.next_counter, Some(6));
    // RFC 4226 Appendix D: counter 6 gives 287922.
    let touched = emulator::touch(dir.path(), &serial, Some(1)).unwrap();
    assert_eq!(touched, "287922");
    let slots = token.programmed_slots().unwrap();
    assert!(slots.contains(&(Slot::hotp(1), true)));
    assert!(slots.contains(&(Slot::hotp(0), false)));
    assert_eq!(token.info().free_hotp_slots, Some(vec![0, 2]));
}

#[test]
fn totp_sha256_round_trip_and_overwrite() {
    let (dir, serial, mut token) = emulated(Family::Nitrokey3);
    let key = SecretKey::from_slice(SEED_SHA256);
    let expected = expectation(&key, Digits::EIGHT, OtpHash::Sha256, Factor::Period(30));
    let verified = write_and_verify(&mut *token, Slot::totp(3), &expected);
    assert_eq!(verified.proof, Proof::OtpMatched { counter: None });
    let before = now();
    let code = emulator::touch_totp(dir.path(), &serial, 3).unwrap();
    let after = now();
    let at = |t| totp_with(OtpHash::Sha256, SEED_SHA256, t, 30, Digits::EIGHT);
    assert!(code == at(before) || code == at(after), "{code}");
    assert_ne!(
        code,
        totp_with(OtpHash::Sha1, SEED_SHA256, before, 30, Digits::EIGHT)
    );

    // The same slot written again (Put refuses an existing id; the driver deletes first),
    // now SHA-1: the SHA-256 expectation no longer matches.
    token
        .write_totp(3, &key, 30, Digits::EIGHT, OtpHash::Sha1)
        .unwrap();
    let err = token
        .verify(Slot::totp(3), &expected, Presence::NoTouch)
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("RFC 6238"), "{err}");
}

#[test]
fn erase_empties_the_slot_and_verify_then_reports_it() {
    let (_dir, _serial, mut token) = emulated(Family::Nitrokey3);
    let key = SecretKey::from_slice(SEED_SHA1);
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha256)
        .unwrap();
    token.erase(Slot::hotp(0)).unwrap();
    // Erasing an empty slot is not an error, and sends no Delete (which would wait for a
    // touch, 250 ms on the emulator).
    let started = Instant::now();
    token.erase(Slot::hotp(0)).unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
    let expected = expectation(&key, Digits::SIX, OtpHash::Sha256, Factor::Counter(0));
    let err = token
        .verify(Slot::hotp(0), &expected, Presence::NoTouch)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "nitrokey3 00C00001: slot hotp:0 is not programmed"
    );
    assert!(
        token
            .programmed_slots()
            .unwrap()
            .iter()
            .all(|(_, used)| !used)
    );
    let err = token
        .write_hotp(3, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn yubikey_and_nitrokey_pro_refuse_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_slice(SEED_SHA1);
    for family in [Family::Yubikey, Family::NitrokeyPro] {
        let serial = add(dir.path(), family, None);
        let mut token = open(dir.path(), &serial);
        assert_eq!(token.capabilities().hashes, vec![OtpHash::Sha1]);
        if family == Family::NitrokeyPro {
            token
                .authenticate(&Credential::AdminPin(Pin::new("12345678")))
                .unwrap();
        }
        let err = token
            .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha256)
            .unwrap_err();
        assert_eq!(err.code(), "not_supported", "{family}: {err}");
        assert!(err.to_string().contains("SHA1 only"), "{family}: {err}");
    }
}

#[test]
fn unplug_mid_put_is_unplugged_and_nothing_is_stored() {
    let (dir, serial, mut token) = emulated(Family::Nitrokey3);
    emulator::inject_fault(dir.path(), &serial, Fault::UnplugMidWrite).unwrap();
    let key = SecretKey::from_slice(SEED_SHA1);
    // The slot is empty (List shows no credential), so the first slot-changing command is
    // the Put.
    let err = token
        .write_hotp(2, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::Unplugged { .. }), "{err}");
    assert_eq!(err.retry(), keyprov_drivers::Retry::Reopen);
    emulator::set_plugged(dir.path(), &serial, true).unwrap();
    let mut token = open(dir.path(), &serial);
    assert!(
        token
            .programmed_slots()
            .unwrap()
            .iter()
            .all(|(_, used)| !used)
    );
    token
        .write_hotp(2, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
}

#[test]
fn status_word_faults_are_named_in_the_error() {
    let (dir, serial, mut token) = emulated(Family::Nitrokey3);
    let key = SecretKey::from_slice(SEED_SHA1);
    emulator::inject_fault(dir.path(), &serial, Fault::StatusWord(0x6982)).unwrap();
    let err = token
        .write_totp(0, &key, 30, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "nitrokey3 00C00001: register credential rejected: 6982 SecurityStatusNotSatisfied: the \
         device was not touched in time (or the credential needs the PIN)"
    );
    emulator::inject_fault(dir.path(), &serial, Fault::StatusWord(0x6A84)).unwrap();
    let err = token
        .write_totp(0, &key, 30, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(err.to_string().contains("6A84 NotEnoughMemory"), "{err}");
    token
        .write_totp(0, &key, 30, Digits::SIX, OtpHash::Sha1)
        .unwrap();
}

#[test]
fn busy_timeout_and_corruption_faults() {
    let (dir, serial, mut token) = emulated(Family::Nitrokey3);
    let key = SecretKey::from_slice(SEED_SHA1);

    emulator::inject_fault(dir.path(), &serial, Fault::Busy).unwrap();
    let err = token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");

    let mut token = open(dir.path(), &serial);
    emulator::inject_fault(dir.path(), &serial, Fault::Timeout).unwrap();
    let started = Instant::now();
    let err = token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut token = open(dir.path(), &serial);
    emulator::inject_fault(dir.path(), &serial, Fault::Crc).unwrap();
    let err = token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(err.to_string().contains("ERR_INVALID_SEQ"), "{err}");
    assert!(err.is_transient());
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
}

// --- The wire, byte by byte -----------------------------------------------------------------

fn transport(dir: &Path, serial: &str) -> EmulatorTransport {
    EmulatorTransport::open(dir, serial).unwrap()
}

fn send(t: &mut EmulatorTransport, cid: u32, cmd: u8, data: &[u8]) {
    for packet in ctaphid::split(cid, cmd, data).unwrap() {
        let mut report = vec![0u8];
        report.extend_from_slice(&packet);
        t.send_output_report(&report).unwrap();
    }
}

fn read(t: &mut EmulatorTransport) -> [u8; 64] {
    let mut buf = [0u8; 64];
    let n = t
        .read_input_report(&mut buf, Duration::from_secs(2))
        .unwrap()
        .expect("a report");
    assert_eq!(n, 64);
    buf
}

/// Reads one report and returns the Secrets App reply it carries; panics naming `what` if the
/// report is not a single-packet Secrets answer.
fn secrets_reply(t: &mut EmulatorTransport, what: &str) -> Vec<u8> {
    let report = read(t);
    let Some(Packet::Init {
        cmd: command::SECRETS,
        bcnt,
        data,
        ..
    }) = Packet::parse(&report)
    else {
        panic!("{what} answer");
    };
    data[..usize::from(bcnt)].to_vec()
}

fn allocate(t: &mut EmulatorTransport) -> u32 {
    let nonce = [9, 8, 7, 6, 5, 4, 3, 2];
    send(t, ctaphid::BROADCAST_CID, command::INIT, &nonce);
    let report = read(t);
    // `ffffffff 86 0011` + nonce + cid + protocol 2 + version 1.7.0 + capabilities 0x05.
    assert_eq!(report[..7], [0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x11]);
    let init = ctaphid::InitResponse::parse(&report[7..]).unwrap();
    assert_eq!(
        (init.nonce, init.protocol, init.version),
        (nonce, 2, [1, 7, 0])
    );
    init.cid
}

#[test]
fn put_waits_for_the_touch_with_keepalive_up_needed() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let mut t = transport(dir.path(), &serial);
    let cid = allocate(&mut t);
    assert_eq!(cid, 1);
    let put = Put {
        label: b"keyprov-totp-0",
        kind: kind::TOTP,
        hash: OtpHash::Sha256,
        digits: 6,
        key: SEED_SHA256,
        counter: None,
        touch: false,
    };
    let started = Instant::now();
    send(&mut t, cid, command::SECRETS, &put.to_apdu());
    let mut keepalives = 0;
    let answer = loop {
        let report = read(&mut t);
        match Packet::parse(&report).unwrap() {
            Packet::Init {
                cid: c,
                cmd: command::KEEPALIVE,
                bcnt: 1,
                data,
            } => {
                assert_eq!(c, cid);
                assert_eq!(data[0], keepalive::UP_NEEDED);
                keepalives += 1;
            }
            Packet::Init {
                cmd: command::SECRETS,
                bcnt,
                data,
                ..
            } => {
                break data[..usize::from(bcnt)].to_vec();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    // 250 ms until the emulated touch: UP_NEEDED at 100 and 200 ms.
    assert_eq!(keepalives, 2);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(answer, [0x90, 0x00]);

    // The same id again: OperationBlocked.
    send(&mut t, cid, command::SECRETS, &put.to_apdu());
    let answer = loop {
        let report = read(&mut t);
        if let Some(Packet::Init {
            cmd: command::SECRETS,
            data,
            ..
        }) = Packet::parse(&report)
        {
            break data[..2].to_vec();
        }
    };
    assert_eq!(answer, [0x69, 0x83]);

    // Calculate at T = 1111111111 / 30 (RFC 6238 Appendix B, SHA-256, 6 of 8 digits).
    send(
        &mut t,
        cid,
        command::SECRETS,
        &apdu::calculate(b"keyprov-totp-0", 1111111111 / 30),
    );
    let reply = secrets_reply(&mut t, "calculate");
    let (sw, body) = apdu::split_reply(&reply).unwrap();
    assert!(sw.is_success());
    assert_eq!(apdu::parse_calculate(body).as_deref(), Some("062674"));
    assert_eq!(
        hotp_with(OtpHash::Sha256, SEED_SHA256, 1111111111 / 30, Digits::SIX),
        "062674"
    );
}

#[test]
fn framing_errors_are_answered_with_ctaphid_error() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let mut t = transport(dir.path(), &serial);
    // A channel never allocated.
    send(&mut t, 0x1234_5678, command::SECRETS, &apdu::list());
    let report = read(&mut t);
    assert_eq!(
        report[..8],
        [
            0x12,
            0x34,
            0x56,
            0x78,
            0xbf,
            0x00,
            0x01,
            ctaphid::error::INVALID_CHANNEL
        ]
    );
    let cid = allocate(&mut t);
    // A continuation with SEQ 1 where 0 is due.
    let packets = ctaphid::split(cid, command::SECRETS, &[0u8; 80]).unwrap();
    let mut first = vec![0u8];
    first.extend_from_slice(&packets[0]);
    t.send_output_report(&first).unwrap();
    let mut bad = vec![0u8];
    bad.extend_from_slice(&packets[1]);
    bad[5] = 1;
    t.send_output_report(&bad).unwrap();
    let report = read(&mut t);
    assert_eq!(
        report[4..8],
        [0xbf, 0x00, 0x01, ctaphid::error::INVALID_SEQ]
    );
    // An unknown CTAPHID command.
    send(&mut t, cid, 0x55, &[]);
    assert_eq!(
        read(&mut t)[4..8],
        [0xbf, 0x00, 0x01, ctaphid::error::INVALID_CMD]
    );
    // An unknown instruction inside 0x70: SW 6D00.
    send(
        &mut t,
        cid,
        command::SECRETS,
        &apdu::command(0x77, 0, 0, &[]),
    );
    let report = read(&mut t);
    assert_eq!(report[4..9], [0xf0, 0x00, 0x02, 0x6d, 0x00]);
    // The FIDO interface has no feature reports.
    assert!(t.send_feature_report(&[0; 65]).is_err());
}

/// Random output reports (some with valid headers on allocated channels) never break the
/// emulated device: afterwards a new channel is allocated and SELECT answers 9000.
#[test]
fn random_reports_leave_the_emulated_nitrokey3_answering() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let mut t = transport(dir.path(), &serial);
    let cid = allocate(&mut t);
    for round in 0..400usize {
        let mut report = vec![0u8; [65, 9, 2, 70, 65][round % 5]];
        rand::fill(&mut report[..]);
        if round % 2 == 0 && report.len() >= 6 {
            report[0] = 0;
            report[1..5].copy_from_slice(&cid.to_be_bytes());
            if round % 4 == 0 {
                report[5] = 0x80 | [command::SECRETS, command::INIT, command::PING][round % 3];
            }
        }
        let _ = t.send_output_report(&report);
        let mut buf = [0u8; 64];
        let _ = t.read_input_report(&mut buf, Duration::from_millis(1));
    }
    // Let any request the noise started finish (a touch takes 250 ms).
    let mut buf = [0u8; 64];
    while t
        .read_input_report(&mut buf, Duration::from_millis(400))
        .unwrap()
        .is_some()
    {}
    let cid = allocate(&mut t);
    send(&mut t, cid, command::SECRETS, &apdu::select());
    let reply = secrets_reply(&mut t, "SELECT");
    let (sw, body) = apdu::split_reply(&reply).unwrap();
    assert!(sw.is_success(), "{sw}");
    let info = apdu::parse_select(body).unwrap();
    assert_eq!(info.serial, Some([0x00, 0xC0, 0x00, 0x01]));
}

/// Manual touch mode: the Put waits (keepalive UP_NEEDED) until `emulator::press`, and
/// without a press the device gives up with SW 6982, which the driver names.
#[test]
fn manual_touch_waits_for_the_press_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let timeout_ms = 600;
    emulator::set_touch_mode(
        dir.path(),
        &serial,
        emulator::TouchMode::Manual { timeout_ms },
    )
    .unwrap();
    let mut token = open(dir.path(), &serial);
    let key = SecretKey::from_slice(SEED_SHA1);

    let presser = {
        let (dir, serial) = (dir.path().to_owned(), serial.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            emulator::press(&dir, &serial).unwrap();
        })
    };
    let started = Instant::now();
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    presser.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        token
            .programmed_slots()
            .unwrap()
            .contains(&(Slot::hotp(0), true))
    );

    // Nobody touches: Delete (the slot is occupied) waits 600 ms and fails with 6982.
    let started = Instant::now();
    let err = token.erase(Slot::hotp(0)).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(timeout_ms));
    assert!(
        err.to_string().contains("6982 SecurityStatusNotSatisfied"),
        "{err}"
    );
    assert!(
        token
            .programmed_slots()
            .unwrap()
            .contains(&(Slot::hotp(0), true))
    );

    // A press with nothing waiting changes nothing; other families take no presence press.
    emulator::press(dir.path(), &serial).unwrap();
    let yubikey = add(dir.path(), Family::Yubikey, None);
    assert!(emulator::press(dir.path(), &yubikey).is_err());
}

/// Breaker #9: an automatic touch later than the presence timeout (a hand-edited
/// `touch_delay_ms`) kept the request alive with keepalives forever; it ends with 6982 at the
/// timeout, as a manual touch that never comes does.
#[test]
fn auto_touch_later_than_the_presence_timeout_is_6982_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let timeout_ms = 600;
    emulator::set_touch_mode(
        dir.path(),
        &serial,
        emulator::TouchMode::Manual { timeout_ms },
    )
    .unwrap();
    let late = emulator::TouchMode::Auto {
        delay_ms: 4_294_967_296,
    };
    emulator::set_touch_mode(dir.path(), &serial, late).unwrap();
    let mut token = open(dir.path(), &serial);
    let key = SecretKey::from_slice(SEED_SHA1);

    let started = Instant::now();
    let err = token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(timeout_ms), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        err.to_string().contains("6982 SecurityStatusNotSatisfied"),
        "{err}"
    );
    assert!(
        !token
            .programmed_slots()
            .unwrap()
            .contains(&(Slot::hotp(0), true))
    );

    // A delay within the timeout is still a touch.
    let soon = emulator::TouchMode::Auto { delay_ms: 100 };
    emulator::set_touch_mode(dir.path(), &serial, soon).unwrap();
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
}

/// `emulator::touch_slots` (what `keyprov emulator touch --slot` accepts) lists the slots each
/// family's driver reports in its capabilities.
#[test]
fn touch_slots_match_each_drivers_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    for family in [
        Family::Yubikey,
        Family::NitrokeyPro,
        Family::NitrokeyStorage,
        Family::Nitrokey3,
    ] {
        let serial = add(dir.path(), family, None);
        let caps = open(dir.path(), &serial).capabilities();
        let listed = |totp| {
            emulator::touch_slots(family, totp)
                .map(|r| r.collect::<Vec<u8>>())
                .unwrap_or_default()
        };
        assert_eq!(listed(false), caps.hotp_slots, "{family}");
        assert_eq!(listed(true), caps.totp_slots, "{family}");
        // Only the Nitrokey 3 re-writes a slot in two steps (Delete, then Put).
        assert_eq!(caps.atomic_rewrite, family != Family::Nitrokey3, "{family}");
    }
}

/// Breaker #8: the touch wait showed only at debug level, and 6982 was an ordinary
/// rejection. The handle's prompt hears "touch the Nitrokey 3 <serial>" once per request
/// that waits, and a touch not given in time is `Error::NotTouched`.
#[test]
fn a_touch_wait_prompts_the_operator_and_6982_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Nitrokey3, None);
    let timeout_ms = 400;
    let manual = emulator::TouchMode::Manual { timeout_ms };
    emulator::set_touch_mode(dir.path(), &serial, manual).unwrap();
    let mut token = open(dir.path(), &serial);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&heard);
    token.on_touch_needed(Box::new(move |line: &str| {
        sink.lock().unwrap().push(line.to_owned())
    }));

    let key = SecretKey::from_slice(SEED_SHA1);
    let err = token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::NotTouched { .. }), "{err}");
    assert_eq!(err.code(), "not_touched");
    assert!(!err.is_transient(), "a person must act: no automatic retry");
    assert!(err.to_string().contains("not touched in time"), "{err}");
    assert_eq!(
        *heard.lock().unwrap(),
        [format!("touch the Nitrokey 3 {serial}")]
    );
}

/// The hotplug watcher reports a Nitrokey 3 arriving (identified over CTAPHID: family,
/// serial, Secrets App version) and leaving.
#[test]
fn watcher_reports_a_nitrokey3_arriving_and_leaving() {
    use keyprov_drivers::{DeviceEvent, Watcher};
    let dir = tempfile::tempdir().unwrap();
    let watcher = Watcher::start(Some(dir.path())).unwrap();
    assert!(watcher.present().is_empty());
    let serial = add(dir.path(), Family::Nitrokey3, None);
    match watcher.next_event(Duration::from_secs(2)) {
        Some(DeviceEvent::Arrived(info)) => {
            assert_eq!(
                (info.family, info.serial.as_str()),
                (Family::Nitrokey3, "00C00001")
            );
            assert_eq!(info.firmware, "4.13.0");
        }
        other => panic!("expected an arrival, got {other:?}"),
    }
    emulator::set_plugged(dir.path(), &serial, false).unwrap();
    match watcher.next_event(Duration::from_secs(2)) {
        Some(DeviceEvent::Removed(info)) => assert_eq!(info.serial, serial),
        other => panic!("expected a removal, got {other:?}"),
    }
}
