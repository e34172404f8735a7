//! Every driver operation against its emulator, through the same `HidTransport` trait as
//! hidapi: RFC 4226/6238 values read back from the devices, access codes and PINs, each
//! injected fault ending in a typed error followed by a successful retry, persistence,
//! unplug/replug, and the hotplug watcher.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use keyprov_drivers::emulator::{self, EmulatorTransport, Fault};
use keyprov_drivers::nitrokey::{Model, Nitrokey};
use keyprov_drivers::yubikey::{self, YubiKey};
use keyprov_drivers::{
    AccessCode, Credential, DeviceEvent, Digits, Error, Expected, Factor, Family, Location,
    OtpHash, Pin, Presence, Proof, Retry, SecretKey, Slot, Token, Watcher,
};

/// RFC 4226 Appendix D: HOTP of key "12345678901234567890" for counters 0..=9.
const RFC4226_D: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

fn rfc_key() -> SecretKey {
    SecretKey::from_slice(b"12345678901234567890")
}

mod support;
use support::{add, emulated, expectation, open, write_and_verify};

fn yubikey_handle(dir: &Path, serial: &str) -> YubiKey {
    let transport = Box::new(EmulatorTransport::open(dir, serial).unwrap());
    let location = Location::Emulator {
        dir: dir.to_owned(),
    };
    YubiKey::open(transport, yubikey::EMULATED_PID, location, true).unwrap()
}

fn nitrokey_handle(dir: &Path, serial: &str, model: Model) -> Nitrokey {
    let transport = Box::new(EmulatorTransport::open(dir, serial).unwrap());
    Nitrokey::open(
        transport,
        model,
        Location::Emulator {
            dir: dir.to_owned(),
        },
        true,
    )
    .unwrap()
}

fn hotp_expected(key: &SecretKey, counter: u64) -> Expected<'_> {
    expectation(key, Digits::SIX, OtpHash::Sha1, Factor::Counter(counter))
}

/// Touches the YubiKey from another thread once the driver is waiting.
fn touch_later(dir: &Path, serial: &str) -> thread::JoinHandle<String> {
    let (dir, serial) = (dir.to_owned(), serial.to_owned());
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        emulator::touch(&dir, &serial, Some(1)).unwrap()
    })
}

#[test]
fn yubikey_touch_types_rfc4226_values_the_driver_decodes() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    assert_eq!(token.info().firmware, "5.4.3");
    assert_eq!(token.info().free_hotp_slots, Some(vec![1, 2]));
    let key = rfc_key();
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();

    let accepted = token.verify(Slot::hotp(1), &hotp_expected(&key, 0), Presence::NoTouch);
    assert_eq!(accepted.unwrap().proof, Proof::ConfigurationAccepted);

    for (counter, expected) in RFC4226_D.iter().enumerate() {
        let toucher = touch_later(dir.path(), &serial);
        let presence = Presence::Touch(Duration::from_secs(5));
        let verification = token
            .verify(
                Slot::hotp(1),
                &hotp_expected(&key, counter as u64),
                presence,
            )
            .unwrap();
        assert_eq!(toucher.join().unwrap(), *expected);
        assert_eq!(
            verification.proof,
            Proof::OtpMatched {
                counter: Some(counter as u64)
            }
        );
        assert_eq!(verification.next_counter, Some(counter as u64 + 1));
    }
}

#[test]
fn yubikey_verification_skips_stale_lines_and_rejects_a_wrong_key() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    let key = rfc_key();
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    // A touch nobody read: its line (counter 0) is typed before verification starts.
    emulator::touch(dir.path(), &serial, Some(1)).unwrap();
    let toucher = touch_later(dir.path(), &serial);
    let presence = Presence::Touch(Duration::from_secs(5));
    let verification = token
        .verify(Slot::hotp(1), &hotp_expected(&key, 1), presence)
        .unwrap();
    toucher.join().unwrap();
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(1) });

    let wrong = SecretKey::from_slice(b"not the key that was written");
    let toucher = touch_later(dir.path(), &serial);
    let presence = Presence::Touch(Duration::from_secs(1));
    let err = token
        .verify(Slot::hotp(1), &hotp_expected(&wrong, 2), presence)
        .unwrap_err();
    toucher.join().unwrap();
    assert_eq!(err.code(), "rejected", "{err}");
    let err = token
        .verify(Slot::hotp(1), &hotp_expected(&key, 3), presence)
        .unwrap_err();
    assert_eq!(err.code(), "timeout", "no touch: {err}");
}

/// Keys full of zero bytes make whole 7-byte chunks zero, which the driver skips and the key
/// must zero-fill: random such keys, moving factors and lengths all produce the RFC value.
#[test]
fn yubikey_random_keys_with_skipped_chunks_round_trip() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    for round in 0..24u64 {
        let mut random = [0u8; 24];
        rand::fill(&mut random[..]);
        let len = 1 + usize::from(random[0]) % 20;
        // Every other round keeps only a few non-zero bytes.
        let key: Vec<u8> = (0..len)
            .map(|i| {
                if round % 2 == 0 && i % 5 != 0 {
                    0
                } else {
                    random[i + 1]
                }
            })
            .collect();
        let key = SecretKey::new(key);
        let imf = u64::from(u16::from_le_bytes([random[22], random[23]]) & 0x0fff) * 16;
        let digits = if random[21] & 1 == 0 {
            Digits::SIX
        } else {
            Digits::EIGHT
        };
        let slot = 1 + (random[20] & 1);
        token
            .write_hotp(slot, &key, imf, digits, OtpHash::Sha1)
            .unwrap();
        let typed = emulator::touch(dir.path(), &serial, Some(slot)).unwrap();
        assert_eq!(
            typed,
            keyprov_drivers::hotp(key.expose(), imf, digits),
            "round {round}"
        );
    }
}

#[test]
fn yubikey_eight_digits_and_initial_moving_factor() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    let key = rfc_key();
    token
        .write_hotp(2, &key, 32, Digits::EIGHT, OtpHash::Sha1)
        .unwrap();
    let otp = emulator::touch(dir.path(), &serial, Some(2)).unwrap();
    assert_eq!(otp, keyprov_drivers::hotp(key.expose(), 32, Digits::EIGHT));
    let err = token
        .write_hotp(1, &key, 17, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(
        token
            .write_totp(1, &key, 30, Digits::SIX, OtpHash::Sha1)
            .is_err()
    );
}

#[test]
fn yubikey_access_code_protects_the_slot() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    let key = rfc_key();
    let code = AccessCode::from_serial_bcd(serial.parse().unwrap());
    let set = Credential::AccessCode {
        current: None,
        new: Some(code.clone()),
    };
    token.authenticate(&set).unwrap();
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();

    // A new handle without the code cannot overwrite or delete the slot.
    let mut other = open(dir.path(), &serial);
    let err = other
        .write_hotp(1, &key, 16, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert_eq!(err.retry(), Retry::Never);
    let wrong = AccessCode::new([1, 2, 3, 4, 5, 6]);
    other
        .authenticate(&Credential::AccessCode {
            current: Some(wrong),
            new: None,
        })
        .unwrap();
    assert!(other.erase(Slot::hotp(1)).is_err());
    // With the code it can, and the slot is then free.
    other
        .authenticate(&Credential::AccessCode {
            current: Some(code),
            new: None,
        })
        .unwrap();
    other.erase(Slot::hotp(1)).unwrap();
    let slots = other.programmed_slots().unwrap();
    assert_eq!(slots, vec![(Slot::hotp(1), false), (Slot::hotp(2), false)]);
}

#[test]
fn yubikey_hmac_sha1_challenge_response_rfc2202() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Yubikey, None);
    let mut key = yubikey_handle(dir.path(), &serial);
    key.write_hmac_sha1(2, &SecretKey::from_slice(b"Jefe"), false)
        .unwrap();
    // RFC 2202 test case 2.
    let mac = key
        .challenge_hmac(2, b"what do ya want for nothing?")
        .unwrap();
    assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    assert_eq!(key.serial().unwrap().to_string(), serial);

    // With a touch required, the key reports "waiting for touch" until it is pressed.
    key.write_hmac_sha1(1, &SecretKey::from_slice(b"Jefe"), true)
        .unwrap();
    let toucher = touch_later(dir.path(), &serial);
    let started = Instant::now();
    let mac = key
        .challenge_hmac(1, b"what do ya want for nothing?")
        .unwrap();
    assert_eq!(
        toucher.join().unwrap(),
        "",
        "a touch releasing a challenge types nothing"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the touch"
    );
    assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

#[test]
fn yubikey_oath_token_id_is_typed_before_the_otp() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Yubikey, None);
    let mut key = yubikey_handle(dir.path(), &serial);
    key.set_oath_token_id(Some((0xe1, 0x63)));
    let secret = rfc_key();
    key.write_hotp(1, &secret, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    let toucher = touch_later(dir.path(), &serial);
    let line = key.read_typed_line(Duration::from_secs(5)).unwrap();
    assert_eq!(toucher.join().unwrap(), RFC4226_D[0]);
    // OMP 0xe1 and TT 0x63 in modhex ("ubhe"), the serial as BCD digits, then the OTP.
    assert_eq!(line.as_deref(), Some("ubhe10000001755224"));
    let toucher = touch_later(dir.path(), &serial);
    let presence = Presence::Touch(Duration::from_secs(5));
    let verification = key
        .verify(Slot::hotp(1), &hotp_expected(&secret, 1), presence)
        .unwrap();
    toucher.join().unwrap();
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(1) });
}

#[test]
fn nitrokey_get_code_gives_rfc4226_values() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::NitrokeyPro, None);
    let mut nk = nitrokey_handle(dir.path(), &serial, Model::Pro);
    let key = rfc_key();
    let err = nk
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert!(matches!(err, Error::NotAuthorized { .. }), "{err}");
    nk.authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    nk.write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    for (counter, expected) in RFC4226_D.iter().enumerate() {
        assert_eq!(
            nk.read_slot(Slot::hotp(0)).unwrap(),
            Some((counter as u64, false))
        );
        assert_eq!(nk.code(Slot::hotp(0), Digits::SIX, 0).unwrap(), *expected);
    }
}

#[test]
fn nitrokey_wrong_admin_pin_counts_down() {
    let (_dir, _serial, mut token) = emulated(Family::NitrokeyPro);
    let err = token
        .authenticate(&Credential::AdminPin(Pin::new("00000000")))
        .unwrap_err();
    match &err {
        Error::WrongPin { retries, .. } => assert_eq!(retries.0, Some(2)),
        other => panic!("{other}"),
    }
    assert_eq!(err.retry(), Retry::Never);
    assert!(!format!("{err}").contains("00000000"));
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
}

/// Writes and verifies HOTP and TOTP on one Nitrokey model/firmware.
fn nitrokey_round_trip(family: Family, firmware: &str) {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), family, Some(firmware));
    let mut token = open(dir.path(), &serial);
    assert_eq!(token.info().firmware, firmware);
    assert_eq!(
        token.info().free_totp_slots,
        None,
        "slots are read on demand"
    );
    assert_eq!(token.programmed_slots().unwrap().len(), 18);
    assert_eq!(
        token.info().free_totp_slots.as_ref().map(Vec::len),
        Some(15)
    );
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    let key = rfc_key();
    let expected = expectation(&key, Digits::EIGHT, OtpHash::Sha1, Factor::Counter(5));
    let verification = write_and_verify(&mut *token, Slot::hotp(2), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(5) });
    assert_eq!(verification.next_counter, Some(6));
    // Verifying again with the stale counter is refused without consuming an OTP.
    assert!(
        token
            .verify(Slot::hotp(2), &expected, Presence::NoTouch)
            .is_err()
    );

    let expected = expectation(&key, Digits::SIX, OtpHash::Sha1, Factor::Period(30));
    let verification = write_and_verify(&mut *token, Slot::totp(14), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: None });

    token.erase(Slot::hotp(2)).unwrap();
    let err = token.verify(Slot::hotp(2), &hotp_expected(&key, 6), Presence::NoTouch);
    assert!(matches!(err, Err(Error::SlotNotProgrammed { .. })));
}

#[test]
fn nitrokey_pro_new_firmware_send_otp_data() {
    nitrokey_round_trip(Family::NitrokeyPro, "0.15");
}

#[test]
fn nitrokey_pro_old_firmware_authorize() {
    nitrokey_round_trip(Family::NitrokeyPro, "0.7");
}

#[test]
fn nitrokey_storage_both_firmware_generations() {
    nitrokey_round_trip(Family::NitrokeyStorage, "0.55");
    nitrokey_round_trip(Family::NitrokeyStorage, "0.53");
}

#[test]
fn nitrokey_key_length_limits_follow_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let new = add(dir.path(), Family::NitrokeyPro, Some("0.15"));
    let mut token = open(dir.path(), &new);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    let long = SecretKey::new((1..=40).collect());
    token
        .write_hotp(1, &long, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    let verification = token.verify(Slot::hotp(1), &hotp_expected(&long, 0), Presence::NoTouch);
    assert!(verification.is_ok());
    let err = token
        .write_hotp(
            1,
            &SecretKey::new(vec![1; 41]),
            0,
            Digits::SIX,
            OtpHash::Sha1,
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotSupported { .. }), "{err}");
    let old = add(dir.path(), Family::NitrokeyPro, Some("0.7"));
    let mut token = open(dir.path(), &old);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    assert!(
        token
            .write_hotp(
                1,
                &SecretKey::new(vec![1; 21]),
                0,
                Digits::SIX,
                OtpHash::Sha1
            )
            .is_err()
    );
}

/// Injects `fault`, checks the write fails with `code`, then recovers and verifies.
fn fault_then_recover(family: Family, fault: Fault, code: &str) {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), family, None);
    let key = rfc_key();
    let pin = Credential::AdminPin(Pin::new("12345678"));
    let mut token = open(dir.path(), &serial);
    if family != Family::Yubikey {
        token.authenticate(&pin).unwrap();
    }
    emulator::inject_fault(dir.path(), &serial, fault).unwrap();
    let err = token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap_err();
    assert_eq!(err.code(), code, "{family} {fault:?}: {err}");
    if fault == Fault::UnplugMidWrite {
        assert_eq!(err.retry(), Retry::Reopen);
        assert!(
            token.programmed_slots().is_err(),
            "the old handle stays dead"
        );
        emulator::set_plugged(dir.path(), &serial, true).unwrap();
        token = open(dir.path(), &serial);
        if family != Family::Yubikey {
            token.authenticate(&pin).unwrap();
        }
    }
    // Nothing was committed by the failed write ...
    let programmed = token.programmed_slots().unwrap();
    let slot1 = programmed
        .iter()
        .find(|(s, _)| *s == Slot::hotp(1))
        .unwrap();
    assert!(
        !slot1.1,
        "{family} {fault:?}: failed write left a configuration"
    );
    // ... and the next write succeeds.
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    if family == Family::Yubikey {
        assert_eq!(
            emulator::touch(dir.path(), &serial, Some(1)).unwrap(),
            RFC4226_D[0]
        );
    } else {
        let result = token.verify(Slot::hotp(1), &hotp_expected(&key, 0), Presence::NoTouch);
        assert_eq!(
            result.unwrap().proof,
            Proof::OtpMatched { counter: Some(0) }
        );
    }
}

#[test]
fn yubikey_faults_end_in_typed_errors_and_recover() {
    fault_then_recover(Family::Yubikey, Fault::UnplugMidWrite, "unplugged");
    fault_then_recover(Family::Yubikey, Fault::Busy, "busy");
    fault_then_recover(Family::Yubikey, Fault::Timeout, "timeout");
    // A corrupted configuration frame is dropped by the key: the sequence does not advance.
    fault_then_recover(Family::Yubikey, Fault::Crc, "rejected");
}

#[test]
fn yubikey_corrupted_response_is_a_crc_error() {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), Family::Yubikey, None);
    let mut key = yubikey_handle(dir.path(), &serial);
    emulator::inject_fault(dir.path(), &serial, Fault::Crc).unwrap();
    let err = key.serial().unwrap_err();
    assert_eq!(err.code(), "crc");
    assert_eq!(err.retry(), Retry::SameHandle);
    assert_eq!(key.serial().unwrap().to_string(), serial);
}

/// Regression: a request identical to one the busy device dropped (same CRC) was once read
/// back as done although it never ran ("slot name missing" on the next step).
#[test]
fn nitrokey_request_sent_while_busy_runs_when_the_device_is_free() {
    let (dir, serial, mut token) = emulated(Family::NitrokeyPro);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    emulator::inject_fault(dir.path(), &serial, Fault::Busy).unwrap();
    let key = rfc_key();
    assert_eq!(
        token
            .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
            .unwrap_err()
            .code(),
        "busy"
    );
    // Still busy for about a second: the identical first request of the retry waits in the
    // device and runs when it is free.
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    let result = token.verify(Slot::hotp(0), &hotp_expected(&key, 0), Presence::NoTouch);
    assert_eq!(
        result.unwrap().proof,
        Proof::OtpMatched { counter: Some(0) }
    );
}

#[test]
fn nitrokey_faults_end_in_typed_errors_and_recover() {
    for family in [Family::NitrokeyPro, Family::NitrokeyStorage] {
        fault_then_recover(family, Fault::UnplugMidWrite, "unplugged");
        fault_then_recover(family, Fault::Crc, "crc");
        fault_then_recover(family, Fault::Busy, "busy");
        fault_then_recover(family, Fault::Timeout, "timeout");
    }
}

#[test]
fn state_survives_reopening_and_unplug_kills_old_handles() {
    let (dir, serial, mut token) = emulated(Family::Yubikey);
    token
        .write_hotp(2, &rfc_key(), 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    drop(token);
    let mut token = open(dir.path(), &serial);
    assert_eq!(token.info().free_hotp_slots, Some(vec![1]));

    emulator::set_plugged(dir.path(), &serial, false).unwrap();
    assert!(keyprov_drivers::list(Some(dir.path())).unwrap().is_empty());
    let err = token.programmed_slots().unwrap_err();
    assert_eq!(err.retry(), Retry::Reopen);
    emulator::set_plugged(dir.path(), &serial, true).unwrap();
    assert!(
        token.programmed_slots().is_err(),
        "a replugged device needs a new handle"
    );
    let mut token = open(dir.path(), &serial);
    assert_eq!(token.programmed_slots().unwrap()[1], (Slot::hotp(2), true));
}

#[test]
fn default_latency_is_absorbed_by_the_polling_rules() {
    let dir = tempfile::tempdir().unwrap();
    let yk = emulator::add(dir.path(), Family::Yubikey, 1, None)
        .unwrap()
        .remove(0)
        .serial;
    let nk = emulator::add(dir.path(), Family::NitrokeyPro, 1, None)
        .unwrap()
        .remove(0)
        .serial;
    let key = rfc_key();
    let start = Instant::now();
    let mut token = open(dir.path(), &yk);
    token
        .write_hotp(1, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    // The 300 ms default write latency is waited out, not reported as an error.
    assert!(start.elapsed() >= Duration::from_millis(300));
    let mut token = open(dir.path(), &nk);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    token
        .write_hotp(0, &key, 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    let result = token.verify(Slot::hotp(0), &hotp_expected(&key, 0), Presence::NoTouch);
    assert!(result.is_ok());
}

#[test]
fn concurrent_touches_from_many_threads_lose_no_counter_step() {
    let (dir, serial, mut token) = emulated(Family::NitrokeyPro);
    token
        .authenticate(&Credential::AdminPin(Pin::new("12345678")))
        .unwrap();
    token
        .write_hotp(0, &rfc_key(), 0, Digits::SIX, OtpHash::Sha1)
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (dir, serial) = (dir.path().to_owned(), serial.clone());
            thread::spawn(move || {
                (0..10)
                    .map(|_| emulator::touch(&dir, &serial, Some(0)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut otps: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    otps.sort();
    let mut expected: Vec<String> = (0..40)
        .map(|c| keyprov_drivers::hotp(b"12345678901234567890", c, Digits::SIX))
        .collect();
    expected.sort();
    assert_eq!(otps, expected);
}

#[test]
fn watcher_reports_plug_and_unplug_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let first = add(dir.path(), Family::Yubikey, None);
    let watcher = Watcher::start(Some(dir.path())).unwrap();
    assert_eq!(watcher.present().len(), 1);
    assert_eq!(watcher.present()[0].serial, first);

    let started = Instant::now();
    let second = add(dir.path(), Family::NitrokeyPro, None);
    match watcher.next_event(Duration::from_secs(1)) {
        Some(DeviceEvent::Arrived(info)) => assert_eq!(info.serial, second),
        other => panic!("expected an arrival, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    let started = Instant::now();
    emulator::set_plugged(dir.path(), &first, false).unwrap();
    match watcher.next_event(Duration::from_secs(1)) {
        Some(DeviceEvent::Removed(info)) => assert_eq!(info.serial, first),
        other => panic!("expected a removal, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    emulator::set_plugged(dir.path(), &first, true).unwrap();
    match watcher.next_event(Duration::from_secs(1)) {
        Some(DeviceEvent::Arrived(info)) => assert_eq!(info.serial, first),
        other => panic!("expected the arrival again, got {other:?}"),
    }
}
