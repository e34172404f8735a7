//! Nitrokey Pro / Storage / Librem Key HID codec (libnitrokey `HIDReport` and
//! `DeviceResponse`): 64-byte feature reports behind report ID 0, an STM32 CRC-32 over bytes
//! 1..61, command IDs and the two status bytes of a response.

use std::fmt;

use zeroize::Zeroizing;

use crate::crc::stm32_crc32;

/// Report size including the report-ID byte.
pub const REPORT_SIZE: usize = 65;
/// Payload bytes of a request (`[2..61)`).
pub const REQUEST_PAYLOAD: usize = 59;
/// Payload bytes of a response (`[8..61)`).
pub const RESPONSE_PAYLOAD: usize = 53;
/// Bytes covered by the CRC (`[1..61)`).
const CRC_RANGE: std::ops::Range<usize> = 1..61;

/// Command IDs (`command_id.h`).
pub mod command {
    /// Firmware version, card serial, general configuration.
    pub const GET_STATUS: u8 = 0x00;
    /// Write an OTP slot.
    pub const WRITE_TO_SLOT: u8 = 0x01;
    /// Read an OTP slot's name, flags, token id and counter.
    pub const READ_SLOT: u8 = 0x03;
    /// Produce an OTP (advances an HOTP slot's counter).
    pub const GET_CODE: u8 = 0x04;
    /// Erase an OTP slot.
    pub const ERASE_SLOT: u8 = 0x06;
    /// Check the admin PIN and set the temporary admin password.
    pub const FIRST_AUTHENTICATE: u8 = 0x07;
    /// Old firmware: authorize the next packet by its CRC.
    pub const AUTHORIZE: u8 = 0x08;
    /// Admin PIN retries left.
    pub const GET_PASSWORD_RETRY_COUNT: u8 = 0x09;
    /// Set the device clock for TOTP.
    pub const SET_TIME: u8 = 0x0B;
    /// New firmware: send a slot name or a secret chunk before WRITE_TO_SLOT.
    pub const SEND_OTP_DATA: u8 = 0x17;
    /// Nitrokey Storage: firmware, volumes, retry counters, smart card serial.
    pub const GET_DEVICE_STATUS: u8 = 0x2E;
}

/// Offsets in the GET_DEVICE_STATUS (Storage) response payload (libnitrokey
/// `stick20_commands.h`, as fwupd mirrors it).
pub mod storage_status {
    /// Firmware major version.
    pub const VERSION_MAJOR: usize = 26;
    /// Firmware minor version.
    pub const VERSION_MINOR: usize = 27;
    /// User PIN retries left.
    pub const USER_RETRIES: usize = 40;
    /// Admin PIN retries left.
    pub const ADMIN_RETRIES: usize = 41;
    /// `ActiveSmartCardID_u32`, little-endian: the serial libnitrokey reports.
    pub const SMART_CARD_ID: usize = 42;
}

/// `device_status` of a response.
pub mod device_status {
    /// Ready; the response belongs to the last command.
    pub const OK: u8 = 0;
    /// Still processing.
    pub const BUSY: u8 = 1;
    /// Failed.
    pub const ERROR: u8 = 2;
    /// Report received, not yet processed.
    pub const RECEIVED_REPORT: u8 = 3;
}

/// `last_command_status` of a response.
pub mod command_status {
    /// Success.
    pub const OK: u8 = 0;
    /// The request's CRC did not match.
    pub const WRONG_CRC: u8 = 1;
    /// No such slot.
    pub const WRONG_SLOT: u8 = 2;
    /// The slot is empty.
    pub const SLOT_NOT_PROGRAMMED: u8 = 3;
    /// Wrong PIN.
    pub const WRONG_PASSWORD: u8 = 4;
    /// Missing or wrong temporary password.
    pub const NOT_AUTHORIZED: u8 = 5;
    /// Clock moved backwards.
    pub const TIMESTAMP_WARNING: u8 = 6;
    /// Slot name missing.
    pub const NO_NAME_ERROR: u8 = 7;
    /// Not supported.
    pub const NOT_SUPPORTED: u8 = 8;
    /// Unknown command.
    pub const UNKNOWN_COMMAND: u8 = 9;
    /// AES decryption failed.
    pub const AES_DEC_FAILED: u8 = 10;
}

/// A request report; it may carry a PIN or key, so it is wiped on drop and not printed.
pub struct Request(Zeroizing<[u8; REPORT_SIZE]>);

impl Request {
    /// Builds `[0, command, payload (59, zero-padded), crc32 LE]`.
    pub fn new(command: u8, payload: &[u8]) -> Request {
        assert!(
            payload.len() <= REQUEST_PAYLOAD,
            "Nitrokey payload longer than 59 bytes"
        );
        let mut bytes = Zeroizing::new([0u8; REPORT_SIZE]);
        bytes[1] = command;
        bytes[2..2 + payload.len()].copy_from_slice(payload);
        let crc = stm32_crc32(&bytes[CRC_RANGE]);
        bytes[61..65].copy_from_slice(&crc.to_le_bytes());
        Request(bytes)
    }

    /// Wraps a received report (emulator side).
    pub fn from_bytes(bytes: &[u8]) -> Request {
        let mut out = Zeroizing::new([0u8; REPORT_SIZE]);
        let n = bytes.len().min(REPORT_SIZE);
        out[..n].copy_from_slice(&bytes[..n]);
        Request(out)
    }

    /// The report bytes, report ID first.
    pub fn as_bytes(&self) -> &[u8; REPORT_SIZE] {
        &self.0
    }

    /// Command ID.
    pub fn command(&self) -> u8 {
        self.0[1]
    }

    /// The 59 payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.0[2..61]
    }

    /// The CRC field.
    pub fn crc(&self) -> u32 {
        u32::from_le_bytes([self.0[61], self.0[62], self.0[63], self.0[64]])
    }

    /// Whether the CRC field matches bytes 1..61.
    pub fn crc_ok(&self) -> bool {
        stm32_crc32(&self.0[CRC_RANGE]) == self.crc()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Request {{ command: {:#04x}, payload: <redacted> }}",
            self.command()
        )
    }
}

/// A parsed response report.
#[derive(Clone)]
pub struct Response {
    /// Device status.
    pub device_status: u8,
    /// Command the response belongs to.
    pub command_id: u8,
    /// CRC of the request the device last received.
    pub last_command_crc: u32,
    /// Outcome of that request.
    pub last_command_status: u8,
    /// The 53 payload bytes.
    pub payload: Zeroizing<[u8; RESPONSE_PAYLOAD]>,
    /// Whether the response CRC matched.
    pub crc_ok: bool,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("device_status", &self.device_status)
            .field("command_id", &self.command_id)
            .field(
                "last_command_crc",
                &format_args!("{:#010x}", self.last_command_crc),
            )
            .field("last_command_status", &self.last_command_status)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// Parses a 65-byte report.
    pub fn parse(bytes: &[u8; REPORT_SIZE]) -> Response {
        let mut payload = Zeroizing::new([0u8; RESPONSE_PAYLOAD]);
        payload.copy_from_slice(&bytes[8..61]);
        let crc = u32::from_le_bytes([bytes[61], bytes[62], bytes[63], bytes[64]]);
        Response {
            device_status: bytes[1],
            command_id: bytes[2],
            last_command_crc: u32::from_le_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]),
            last_command_status: bytes[7],
            payload,
            crc_ok: stm32_crc32(&bytes[CRC_RANGE]) == crc,
        }
    }

    /// Encodes a response with its CRC (emulator side).
    pub fn encode(&self) -> [u8; REPORT_SIZE] {
        let mut bytes = [0u8; REPORT_SIZE];
        bytes[1] = self.device_status;
        bytes[2] = self.command_id;
        bytes[3..7].copy_from_slice(&self.last_command_crc.to_le_bytes());
        bytes[7] = self.last_command_status;
        bytes[8..61].copy_from_slice(&self.payload[..]);
        let crc = stm32_crc32(&bytes[CRC_RANGE]);
        bytes[61..65].copy_from_slice(&crc.to_le_bytes());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_and_crc_over_bytes_1_to_61() {
        let request = Request::new(command::GET_STATUS, &[]);
        let bytes = request.as_bytes();
        assert_eq!(bytes[0], 0);
        assert_eq!(bytes[1], 0);
        // An all-zero body of 15 words: the CRC unit over 15 zero words.
        assert_eq!(request.crc(), stm32_crc32(&[0u8; 60]));
        assert!(request.crc_ok());
        let mut tampered = *bytes;
        tampered[10] ^= 0x01;
        assert!(!Request::from_bytes(&tampered).crc_ok());
    }

    #[test]
    fn captured_storage_response_parses() {
        let text =
            include_str!("../../tests/vectors/fwupd/nitrokey-storage-0.53-get-device-status.hex");
        let mut report = [0u8; REPORT_SIZE];
        let bytes = hex::decode(text.split_whitespace().collect::<String>()).unwrap();
        report[1..].copy_from_slice(&bytes);
        let response = Response::parse(&report);
        assert!(response.crc_ok);
        assert_eq!(response.device_status, device_status::OK);
        assert_eq!(response.command_id, 0x2e);
        assert_eq!(response.last_command_crc, 0x849b_c4ef);
        // The response answers exactly the request this crate builds.
        assert_eq!(
            Request::new(command::GET_DEVICE_STATUS, &[]).crc(),
            0x849b_c4ef
        );
        let p = &response.payload;
        assert_eq!(
            (
                p[storage_status::VERSION_MAJOR],
                p[storage_status::VERSION_MINOR]
            ),
            (0, 53)
        );
        assert_eq!(p[storage_status::ADMIN_RETRIES], 3);
        let id = &p[storage_status::SMART_CARD_ID..storage_status::SMART_CARD_ID + 4];
        assert_eq!(u32::from_le_bytes(id.try_into().unwrap()), 0x37c7);
    }

    #[test]
    fn response_round_trip() {
        let mut payload = Zeroizing::new([0u8; RESPONSE_PAYLOAD]);
        payload[0] = 15;
        let response = Response {
            device_status: device_status::OK,
            command_id: command::GET_STATUS,
            last_command_crc: 0xdeadbeef,
            last_command_status: command_status::OK,
            payload,
            crc_ok: true,
        };
        let parsed = Response::parse(&response.encode());
        assert!(parsed.crc_ok);
        assert_eq!(parsed.last_command_crc, 0xdeadbeef);
        assert_eq!(parsed.payload[0], 15);
    }
}
