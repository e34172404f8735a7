//! YubiKey OTP HID codec: the 8-byte feature reports, the status they carry, and the 70-byte
//! frame sent in 7-byte chunks (`frame_st` in ykcore, `_format_frame` in yubikit).

use std::fmt;

use zeroize::Zeroizing;

use crate::crc::{CRC16_OK_RESIDUE, crc16};

/// Data bytes of a feature report (report ID excluded).
pub const REPORT_SIZE: usize = 8;
/// Data bytes carried by one report (the 8th byte is the flags byte).
pub const CHUNK: usize = 7;
/// Size of the frame: payload 64, command 1, CRC 2, filler 3.
pub const FRAME_SIZE: usize = 70;
/// Payload bytes of a frame.
pub const PAYLOAD_SIZE: usize = 64;

/// Flags byte: the device is busy with a written report (host must wait before writing).
pub const SLOT_WRITE_FLAG: u8 = 0x80;
/// Flags byte: a response chunk is available.
pub const RESP_PENDING_FLAG: u8 = 0x40;
/// Flags byte: waiting for a touch; the low 5 bits are the seconds left.
pub const RESP_TIMEOUT_WAIT_FLAG: u8 = 0x20;
/// Flags byte: sequence number of a chunk.
pub const SEQUENCE_MASK: u8 = 0x1f;
/// ykcore's read-state reset (`yk_force_key_update`); yubikit writes `0xff` instead.
pub const DUMMY_REPORT_WRITE: u8 = 0x8f;

/// Commands (the frame's `slot` byte), from `ykdef.h`.
pub mod command {
    /// Write configuration 1.
    pub const CONFIG_1: u8 = 0x01;
    /// Write configuration 2.
    pub const CONFIG_2: u8 = 0x03;
    /// Update configuration 1 (fw ≥ 2.3).
    pub const UPDATE_1: u8 = 0x04;
    /// Update configuration 2.
    pub const UPDATE_2: u8 = 0x05;
    /// Swap slots 1 and 2.
    pub const SWAP: u8 = 0x06;
    /// Read the serial number.
    pub const DEVICE_SERIAL: u8 = 0x10;
    /// HMAC-SHA1 challenge-response, slot 1.
    pub const CHAL_HMAC_1: u8 = 0x30;
    /// HMAC-SHA1 challenge-response, slot 2.
    pub const CHAL_HMAC_2: u8 = 0x38;
}

/// Touch-level bits of the status.
pub mod touch {
    /// Slot 1 holds a valid configuration.
    pub const CONFIG1_VALID: u16 = 0x01;
    /// Slot 2 holds a valid configuration.
    pub const CONFIG2_VALID: u16 = 0x02;
    /// Slot 1 needs a touch (challenge-response with button trigger).
    pub const CONFIG1_TOUCH: u16 = 0x04;
    /// Slot 2 needs a touch.
    pub const CONFIG2_TOUCH: u16 = 0x08;
}

/// The device status (`status_st`), bytes 1..7 of an idle report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Firmware major, minor, build.
    pub version: (u8, u8, u8),
    /// Programming sequence; advances with each accepted configuration.
    pub pgm_seq: u8,
    /// Touch level: CONFIGn_VALID / CONFIGn_TOUCH bits.
    pub touch_level: u16,
}

impl Status {
    /// Parses a report (8 data bytes).
    pub fn parse(report: &[u8; REPORT_SIZE]) -> Status {
        Status {
            version: (report[1], report[2], report[3]),
            pgm_seq: report[4],
            touch_level: u16::from_le_bytes([report[5], report[6]]),
        }
    }

    /// Writes the status into bytes 1..7 of a report (emulator side).
    pub fn write_into(&self, report: &mut [u8; REPORT_SIZE]) {
        report[1] = self.version.0;
        report[2] = self.version.1;
        report[3] = self.version.2;
        report[4] = self.pgm_seq;
        report[5..7].copy_from_slice(&self.touch_level.to_le_bytes());
    }

    /// Whether `slot` (1 or 2) holds a configuration.
    pub fn slot_valid(&self, slot: u8) -> bool {
        let bit = if slot == 1 {
            touch::CONFIG1_VALID
        } else {
            touch::CONFIG2_VALID
        };
        self.touch_level & bit != 0
    }

    /// ykcore/yubikit success rule for a configuration write: the sequence advanced by one,
    /// or dropped to 0 because the last configured slot was deleted.
    pub fn is_sequence_updated(&self, previous: u8) -> bool {
        let both_invalid = self.touch_level & (touch::CONFIG1_VALID | touch::CONFIG2_VALID) == 0;
        self.pgm_seq == previous.wrapping_add(1)
            || (self.pgm_seq == 0 && previous > 0 && both_invalid)
    }

    /// Firmware version as `major.minor.build`.
    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// A 70-byte frame. It can carry a key (configuration writes), so it is wiped on drop and
/// its `Debug` shows only the command.
pub struct Frame(Zeroizing<[u8; FRAME_SIZE]>);

impl Frame {
    /// Builds the frame for `command` with up to 64 payload bytes (zero-padded), the command
    /// byte at 64 and the payload CRC (not inverted) little-endian at 65..67.
    pub fn new(command: u8, payload: &[u8]) -> Frame {
        assert!(
            payload.len() <= PAYLOAD_SIZE,
            "frame payload longer than 64 bytes"
        );
        let mut bytes = Zeroizing::new([0u8; FRAME_SIZE]);
        bytes[..payload.len()].copy_from_slice(payload);
        bytes[64] = command;
        let crc = crc16(&bytes[..PAYLOAD_SIZE]);
        bytes[65..67].copy_from_slice(&crc.to_le_bytes());
        Frame(bytes)
    }

    /// Wraps 70 received bytes (emulator side).
    pub fn from_bytes(bytes: &[u8; FRAME_SIZE]) -> Frame {
        Frame(Zeroizing::new(*bytes))
    }

    /// The command byte.
    pub fn command(&self) -> u8 {
        self.0[64]
    }

    /// The 64-byte payload.
    pub fn payload(&self) -> &[u8] {
        &self.0[..PAYLOAD_SIZE]
    }

    /// The CRC field.
    pub fn crc(&self) -> u16 {
        u16::from_le_bytes([self.0[65], self.0[66]])
    }

    /// Whether the CRC field matches the payload.
    pub fn crc_ok(&self) -> bool {
        crc16(self.payload()) == self.crc()
    }

    /// The reports to write, in order: chunk `seq` (0..=9) of 7 bytes plus the flags byte
    /// `0x80 | seq`; all-zero chunks other than the first and last are skipped.
    pub fn reports(&self) -> Vec<Zeroizing<[u8; REPORT_SIZE]>> {
        let mut out = Vec::with_capacity(10);
        for (seq, chunk) in self.0.chunks(CHUNK).enumerate() {
            let last = seq == FRAME_SIZE / CHUNK - 1;
            if seq != 0 && !last && chunk.iter().all(|&b| b == 0) {
                continue;
            }
            let mut report = Zeroizing::new([0u8; REPORT_SIZE]);
            report[..CHUNK].copy_from_slice(chunk);
            // seq < 10, so the cast cannot truncate.
            report[7] = SLOT_WRITE_FLAG | seq as u8;
            out.push(report);
        }
        out
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frame {{ command: {:#04x}, payload: <redacted> }}",
            self.command()
        )
    }
}

/// Appends the inverted CRC-16 to a response and pads it to whole chunks (emulator side).
pub fn encode_response(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out.extend_from_slice(&(!crc16(data)).to_le_bytes());
    while !out.len().is_multiple_of(CHUNK) {
        out.push(0);
    }
    out
}

/// Checks the CRC of a received response of `len` data bytes (followed by its CRC).
pub fn response_crc_ok(received: &[u8], len: usize) -> bool {
    received.len() >= len + 2 && crc16(&received[..len + 2]) == CRC16_OK_RESIDUE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_chunks_are_skipped_except_first_and_last() {
        let frame = Frame::new(command::SWAP, &[]);
        let seqs: Vec<u8> = frame
            .reports()
            .iter()
            .map(|r| r[7] & SEQUENCE_MASK)
            .collect();
        // Payload all zero: chunk 9 carries the command and CRC.
        assert_eq!(seqs, vec![0, 9]);
    }

    #[test]
    fn response_round_trip_and_corruption() {
        let encoded = encode_response(&[0x00, 0x98, 0x96, 0x81]);
        assert_eq!(encoded.len(), 7);
        assert!(response_crc_ok(&encoded, 4));
        let mut bad = encoded.clone();
        bad[1] ^= 1;
        assert!(!response_crc_ok(&bad, 4));
    }

    #[test]
    fn sequence_rule_matches_yubikit() {
        let st = |seq, touch| Status {
            version: (5, 4, 3),
            pgm_seq: seq,
            touch_level: touch,
        };
        assert!(st(4, 1).is_sequence_updated(3));
        assert!(!st(3, 1).is_sequence_updated(3));
        assert!(st(0, 0).is_sequence_updated(7));
        assert!(!st(0, 1).is_sequence_updated(7));
    }
}
