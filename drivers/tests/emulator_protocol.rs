//! The emulators at the report level, without the drivers: what the device answers to
//! malformed, unauthorized or out-of-order reports (the cases a correct driver never sends).

use std::path::Path;

use keyprov_drivers::crc::crc16;
use keyprov_drivers::emulator::{self, EmulatorTransport, Latency};
use keyprov_drivers::nitrokey::packet::{Request, Response, command, command_status};
use keyprov_drivers::transport::HidTransport;
use keyprov_drivers::yubikey::config::{Config, tkt, write_payload};
use keyprov_drivers::yubikey::frame::{Frame, Status, command as yk};
use keyprov_drivers::{Family, SecretKey};

fn device(dir: &Path, family: Family, firmware: Option<&str>) -> EmulatorTransport {
    let serial = emulator::add(dir, family, 1, firmware)
        .unwrap()
        .remove(0)
        .serial;
    emulator::set_latency(dir, &serial, Latency::ZERO).unwrap();
    EmulatorTransport::open(dir, &serial).unwrap()
}

fn nk_exchange(t: &mut EmulatorTransport, request: &[u8; 65]) -> Response {
    t.send_feature_report(request).unwrap();
    let mut buf = [0u8; 65];
    assert_eq!(t.get_feature_report(&mut buf).unwrap(), 65);
    Response::parse(&buf)
}

#[test]
fn nitrokey_reports_a_corrupted_request_as_wrong_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = device(dir.path(), Family::NitrokeyPro, None);
    let mut bytes = *Request::new(command::GET_STATUS, &[]).as_bytes();
    bytes[20] ^= 0x40;
    let response = nk_exchange(&mut t, &bytes);
    assert_eq!(response.last_command_status, command_status::WRONG_CRC);
    assert_eq!(
        response.last_command_crc,
        u32::from_le_bytes([bytes[61], bytes[62], bytes[63], bytes[64]])
    );
    assert!(
        response.crc_ok,
        "the device's own response carries a valid CRC"
    );

    let response = nk_exchange(&mut t, Request::new(0x7f, &[]).as_bytes());
    assert_eq!(
        response.last_command_status,
        command_status::UNKNOWN_COMMAND
    );
    let status = Request::new(command::GET_STATUS, &[]);
    let response = nk_exchange(&mut t, status.as_bytes());
    assert_eq!(response.last_command_status, command_status::OK);
    assert_eq!(response.last_command_crc, status.crc());
    assert_eq!(
        (response.payload[1], response.payload[0]),
        (0, 15),
        "firmware 0.15"
    );
}

#[test]
fn old_nitrokey_firmware_only_runs_the_packet_authorize_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = device(dir.path(), Family::NitrokeyPro, Some("0.7"));
    let temporary = [b'T'; 25];
    let mut auth = [0u8; 50];
    auth[..8].copy_from_slice(b"12345678");
    auth[25..].copy_from_slice(&temporary);
    let response = nk_exchange(
        &mut t,
        Request::new(command::FIRST_AUTHENTICATE, &auth).as_bytes(),
    );
    assert_eq!(response.last_command_status, command_status::OK);

    let mut slot = [0u8; 58];
    slot[0] = 0x10;
    slot[1..4].copy_from_slice(b"abc");
    slot[16..36].copy_from_slice(b"12345678901234567890");
    let write = Request::new(command::WRITE_TO_SLOT, &slot);
    let mut authorize = [0u8; 29];
    authorize[..4].copy_from_slice(&(write.crc() ^ 1).to_le_bytes());
    authorize[4..].copy_from_slice(&temporary);
    let response = nk_exchange(
        &mut t,
        Request::new(command::AUTHORIZE, &authorize).as_bytes(),
    );
    assert_eq!(response.last_command_status, command_status::OK);
    let response = nk_exchange(&mut t, write.as_bytes());
    assert_eq!(response.last_command_status, command_status::NOT_AUTHORIZED);

    authorize[..4].copy_from_slice(&write.crc().to_le_bytes());
    nk_exchange(
        &mut t,
        Request::new(command::AUTHORIZE, &authorize).as_bytes(),
    );
    assert_eq!(
        nk_exchange(&mut t, write.as_bytes()).last_command_status,
        command_status::OK
    );
    // The authorization is used up by that packet.
    let response = nk_exchange(&mut t, write.as_bytes());
    assert_eq!(response.last_command_status, command_status::NOT_AUTHORIZED);
    // SEND_OTP_DATA does not exist on this firmware.
    let response = nk_exchange(
        &mut t,
        Request::new(command::SEND_OTP_DATA, &[0; 57]).as_bytes(),
    );
    assert_eq!(
        response.last_command_status,
        command_status::UNKNOWN_COMMAND
    );
}

fn yk_status(t: &mut EmulatorTransport) -> ([u8; 8], Status) {
    let mut buf = [0u8; 9];
    assert_eq!(t.get_feature_report(&mut buf).unwrap(), 9);
    let report: [u8; 8] = buf[1..].try_into().unwrap();
    (report, Status::parse(&report))
}

fn yk_send(t: &mut EmulatorTransport, frame_bytes: &[[u8; 8]]) {
    for report in frame_bytes {
        let mut buf = [0u8; 9];
        buf[1..].copy_from_slice(report);
        t.send_feature_report(&buf).unwrap();
    }
}

fn reports(frame: &Frame) -> Vec<[u8; 8]> {
    frame.reports().iter().map(|r| **r).collect()
}

fn hotp_config() -> Config {
    let mut config = Config {
        tkt_flags: tkt::OATH_HOTP,
        ..Config::default()
    };
    config
        .set_hmac_key(&SecretKey::from_slice(b"12345678901234567890"))
        .unwrap();
    config
}

#[test]
fn yubikey_drops_frames_with_a_bad_frame_or_config_crc() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = device(dir.path(), Family::Yubikey, None);
    let (_, before) = yk_status(&mut t);
    assert_eq!(
        (before.version, before.pgm_seq, before.touch_level),
        ((5, 4, 3), 0, 0)
    );

    // Frame CRC wrong: the key ignores the frame.
    let payload = write_payload(Some(&hotp_config()), None);
    let mut bad = reports(&Frame::new(yk::CONFIG_1, &payload));
    let last = bad.len() - 1;
    bad[last][2] ^= 0xff;
    yk_send(&mut t, &bad);
    assert_eq!(yk_status(&mut t).1.pgm_seq, 0);

    // Frame CRC right, configuration CRC wrong: rejected too.
    let mut payload = write_payload(Some(&hotp_config()), None);
    payload[50] ^= 0x01;
    yk_send(&mut t, &reports(&Frame::new(yk::CONFIG_1, &payload)));
    assert_eq!(yk_status(&mut t).1.pgm_seq, 0);

    // Both right: programming sequence 1, slot 1 valid.
    let payload = write_payload(Some(&hotp_config()), None);
    yk_send(&mut t, &reports(&Frame::new(yk::CONFIG_1, &payload)));
    let (report, status) = yk_status(&mut t);
    assert_eq!((status.pgm_seq, status.touch_level, report[7]), (1, 1, 0));
}

#[test]
fn yubikey_serves_a_response_in_sequenced_chunks_until_reset() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = device(dir.path(), Family::Yubikey, None);
    yk_send(&mut t, &reports(&Frame::new(yk::DEVICE_SERIAL, &[])));
    let (first, _) = yk_status(&mut t);
    assert_eq!(first[7], 0x40, "first chunk: pending flag, sequence 0");
    assert_eq!(&first[..4], &10_000_001u32.to_be_bytes());
    // 4 bytes + inverted CRC: residue check over 6 bytes.
    assert_eq!(crc16(&first[..6]), 0xF0B8);
    let (end, _) = yk_status(&mut t);
    assert_eq!(
        end[7], 0x40,
        "sequence back to 0 after the data: end of response"
    );
    assert_eq!(&end[..7], &[0; 7]);
    // Reset of the read state (ykcore writes 0x8f in the flags byte): status again.
    yk_send(&mut t, &[[0, 0, 0, 0, 0, 0, 0, 0x8f]]);
    let (report, status) = yk_status(&mut t);
    assert_eq!((report[7], status.version), (0, (5, 4, 3)));
}

#[test]
fn yubikey_access_code_is_checked_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = device(dir.path(), Family::Yubikey, None);
    let mut config = hotp_config();
    config.acc_code = [1, 2, 3, 4, 5, 6];
    yk_send(
        &mut t,
        &reports(&Frame::new(
            yk::CONFIG_2,
            &write_payload(Some(&config), None),
        )),
    );
    assert_eq!(yk_status(&mut t).1.pgm_seq, 1);
    // Deleting without the code, or with a code one bit off, leaves the slot.
    let wrong = keyprov_drivers::AccessCode::new([1, 2, 3, 4, 5, 7]);
    for code in [None, Some(&wrong)] {
        yk_send(
            &mut t,
            &reports(&Frame::new(yk::CONFIG_2, &write_payload(None, code))),
        );
        let status = yk_status(&mut t).1;
        assert_eq!((status.pgm_seq, status.touch_level), (1, 2));
    }
    let right = keyprov_drivers::AccessCode::new([1, 2, 3, 4, 5, 6]);
    yk_send(
        &mut t,
        &reports(&Frame::new(
            yk::CONFIG_2,
            &write_payload(None, Some(&right)),
        )),
    );
    let status = yk_status(&mut t).1;
    // Last slot deleted: sequence drops to 0 with no valid slot.
    assert_eq!((status.pgm_seq, status.touch_level), (0, 0));
}

/// Random reports (right and wrong sizes) never panic the emulators, and a well-formed
/// status request still gets its answer afterwards.
#[test]
fn random_reports_leave_the_emulators_answering() {
    let dir = tempfile::tempdir().unwrap();
    for family in [
        Family::Yubikey,
        Family::NitrokeyPro,
        Family::NitrokeyStorage,
    ] {
        let mut t = device(dir.path(), family, None);
        for round in 0..400usize {
            let mut report = vec![0u8; [9, 65, 1, 70][round % 4]];
            rand::fill(&mut report[..]);
            if round % 3 == 0 {
                // Mostly valid framing: report ID 0, a known command or flags byte.
                report[0] = 0;
            }
            let _ = t.send_feature_report(&report);
            // Well-formed reports with a valid CRC but random command and payload.
            let mut payload = [0u8; 64];
            rand::fill(&mut payload[..]);
            if family == Family::Yubikey {
                let commands = [0x01, 0x03, 0x04, 0x06, 0x10, 0x13, 0x30, 0x38, payload[0]];
                let frame = Frame::new(commands[round % commands.len()], &payload);
                yk_send(&mut t, &reports(&frame));
            } else {
                let command =
                    [0x00, 0x01, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0b, 0x17, 0x2e][round % 10];
                let _ = t.send_feature_report(Request::new(command, &payload[..59]).as_bytes());
            }
            let mut buf = vec![0u8; [9, 65][round % 2]];
            let _ = t.get_feature_report(&mut buf);
        }
        if family == Family::Yubikey {
            yk_send(&mut t, &[[0, 0, 0, 0, 0, 0, 0, 0x8f]]);
            // Random frames may have run commands; the status still answers.
            let (report, status) = yk_status(&mut t);
            assert_eq!(status.version, (5, 4, 3), "{report:?}");
        } else {
            let status = Request::new(command::GET_STATUS, &[]);
            let response = nk_exchange(&mut t, status.as_bytes());
            assert_eq!(response.last_command_crc, status.crc());
        }
    }
}
