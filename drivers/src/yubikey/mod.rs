//! YubiKey OTP application over HID: the device handle (status, serial, configuration
//! writes with the programming-sequence check, response reads, HMAC-SHA1
//! challenge-response) and its [`crate::Token`] implementation.
//!
//! Polling follows ykcore: before every report written, wait until the write flag clears
//! (up to 1150 ms); a response must start within 1000 ms (longer while the key waits for a
//! touch); a configuration succeeded iff the programming sequence advanced. Polls start
//! 1 ms after the first busy status and back off exponentially (as ykcore's do), but only up
//! to a few milliseconds while the write flag is set, so that a finished write is noticed
//! within [`POLL_WRITE_MAX`] rather than up to ykcore's 500 ms later; the time limits are
//! ykcore's.

pub mod config;
pub mod frame;
pub mod keyboard;
mod token;

use std::thread::sleep;
use std::time::{Duration, Instant};

use tracing::{debug, trace};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::{AccessCode, SecretKey};
use crate::token::{Family, Location, TokenInfo};
use crate::transport::HidTransport;
use config::{Config, cfg, ext, tkt, write_payload};
use frame::{
    DUMMY_REPORT_WRITE, Frame, REPORT_SIZE, RESP_PENDING_FLAG, RESP_TIMEOUT_WAIT_FLAG,
    SEQUENCE_MASK, SLOT_WRITE_FLAG, Status, command, response_crc_ok,
};

/// Yubico's USB vendor ID.
pub const VENDOR_ID: u16 = 0x1050;
/// Product IDs whose interfaces include the OTP (keyboard) application (`yubico_pids[]`).
pub const OTP_PIDS: [u16; 10] = [
    0x0010, 0x0110, 0x0111, 0x0114, 0x0116, 0x0401, 0x0403, 0x0405, 0x0407, 0x0410,
];
/// PID the emulator reports (YubiKey 5 OTP+FIDO+CCID).
pub const EMULATED_PID: u16 = 0x0407;

/// Longest wait for the write flag to clear (ykcore `WAIT_FOR_WRITE_FLAG`).
const WAIT_FOR_WRITE: Duration = Duration::from_millis(1150);
/// Longest wait for a response to start (ykcore).
const WAIT_FOR_RESPONSE: Duration = Duration::from_millis(1000);
/// First pause between two status polls (ykcore starts its back-off at 1 ms).
const POLL_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between polls of the write flag: a flash write lasts tens to hundreds of
/// milliseconds, and a poll is one 8-byte control transfer, so polling often costs the bus
/// little and finds the key ready at most this late.
const POLL_WRITE_MAX: Duration = Duration::from_millis(4);
/// Longest pause between polls while the key is computing a response (yubikit's interval).
const POLL_PROCESSING: Duration = Duration::from_millis(20);
/// Poll interval while the key waits for a touch (yubikit).
const POLL_TOUCH: Duration = Duration::from_millis(100);
/// How far past the expected HOTP counter a typed OTP is searched for.
const LOOK_AHEAD: u64 = 20;

/// Model name from the product ID and firmware major version.
pub fn model_name(pid: u16, major: u8) -> String {
    let name = match (pid, major) {
        (0x0010, _) => "YubiKey",
        (0x0110..=0x0116, _) => "YubiKey NEO",
        (0x0410, _) => "YubiKey Plus",
        (_, 5..) => "YubiKey 5",
        (_, 4) => "YubiKey 4",
        _ => "YubiKey",
    };
    name.to_owned()
}

/// An opened YubiKey OTP interface.
pub struct YubiKey {
    transport: Box<dyn HidTransport>,
    info: TokenInfo,
    status: Status,
    current_code: Option<AccessCode>,
    new_code: Option<AccessCode>,
    oath_token_id: Option<(u8, u8)>,
}

impl YubiKey {
    /// Opens the key: reads its status and serial.
    pub fn open(
        transport: Box<dyn HidTransport>,
        pid: u16,
        location: Location,
        emulated: bool,
    ) -> Result<YubiKey> {
        let device = transport.describe();
        let info = TokenInfo {
            family: Family::Yubikey,
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
            usb_id: format!("{VENDOR_ID:04x}:{pid:04x}"),
            free_hotp_slots: None,
            free_totp_slots: Some(Vec::new()),
            emulated,
            location,
        };
        let placeholder = Status {
            version: (0, 0, 0),
            pgm_seq: 0,
            touch_level: 0,
        };
        let mut key = YubiKey {
            transport,
            info,
            status: placeholder,
            current_code: None,
            new_code: None,
            oath_token_id: None,
        };
        key.info.serial = device;
        let status = key.read_status()?;
        key.info.firmware = status.version_string();
        key.info.model = model_name(pid, status.version.0);
        // A configuration without SERIAL_API_VISIBLE hides the serial (the key answers
        // nothing); such a key is still usable, under the name "unknown".
        key.info.serial = if status.version < (2, 2, 0) {
            "unknown".to_owned()
        } else {
            match key.serial() {
                Ok(serial) => serial.to_string(),
                Err(Error::Rejected { .. }) => "unknown".to_owned(),
                Err(err) => return Err(err),
            }
        };
        key.info.free_hotp_slots = Some(free_slots(&status));
        debug!(device = %key.info.label(), firmware = %key.info.firmware, "YubiKey opened");
        Ok(key)
    }

    fn device(&self) -> String {
        self.info.label()
    }

    fn read_report(&mut self) -> Result<[u8; REPORT_SIZE]> {
        let mut buf = [0u8; REPORT_SIZE + 1];
        let n = self.transport.get_feature_report(&mut buf)?;
        if n != REPORT_SIZE + 1 {
            return Err(Error::Protocol {
                device: self.device(),
                operation: "read feature report",
                detail: format!("{n} bytes instead of 9"),
            });
        }
        let mut report = [0u8; REPORT_SIZE];
        report.copy_from_slice(&buf[1..]);
        Ok(report)
    }

    fn write_report(&mut self, data: &[u8; REPORT_SIZE]) -> Result<()> {
        let mut buf = Zeroizing::new([0u8; REPORT_SIZE + 1]);
        buf[1..].copy_from_slice(data);
        self.transport.send_feature_report(&buf[..])
    }

    /// Reads the status report (waiting for a pending write to finish).
    pub fn read_status(&mut self) -> Result<Status> {
        let report = self.await_ready("read status", false)?;
        self.status = Status::parse(&report);
        Ok(self.status)
    }

    /// Polls until the write flag clears. A device that never clears it was `busy` (before
    /// the host committed a frame) or did not finish (`Timeout`, after the last chunk).
    fn await_ready(&mut self, operation: &'static str, committed: bool) -> Result<[u8; 8]> {
        let start = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let report = self.read_report()?;
            if report[7] & SLOT_WRITE_FLAG == 0 {
                return Ok(report);
            }
            let waited = start.elapsed();
            if waited >= WAIT_FOR_WRITE {
                let (device, waited_ms) = (self.device(), waited.as_millis() as u64);
                return Err(if committed {
                    Error::Timeout {
                        device,
                        operation,
                        waited_ms,
                    }
                } else {
                    Error::Busy {
                        device,
                        operation,
                        waited_ms,
                    }
                });
            }
            sleep(pause.min(WAIT_FOR_WRITE - waited));
            pause = (pause * 2).min(POLL_WRITE_MAX);
        }
    }

    /// Writes a frame chunk by chunk (`yk_write_to_key`).
    fn send_frame(&mut self, frame: &Frame, operation: &'static str) -> Result<()> {
        trace!(device = %self.device(), ?frame, "sending frame");
        let reports = frame.reports();
        for report in &reports {
            self.await_ready(operation, false)?;
            self.write_report(report)?;
        }
        Ok(())
    }

    /// Writes a configuration-type command and checks that the programming sequence advanced.
    fn write_config(&mut self, command: u8, payload: &[u8], operation: &'static str) -> Result<()> {
        let before = self.read_status()?;
        self.send_frame(&Frame::new(command, payload), operation)?;
        let report = self.await_ready(operation, true)?;
        let after = Status::parse(&report);
        self.status = after;
        if after.is_sequence_updated(before.pgm_seq) {
            debug!(device = %self.device(), pgm_seq = after.pgm_seq, "configuration accepted");
            return Ok(());
        }
        Err(Error::Rejected {
            device: self.device(),
            operation,
            reason: "programming sequence did not advance (wrong or missing access code, a \
                     protected slot, or a frame the key dropped)"
                .into(),
        })
    }

    /// Sends a command and reads its `len`-byte response (`yk_read_response_from_key`).
    fn command_response(
        &mut self,
        command: u8,
        payload: &[u8],
        len: usize,
        operation: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.send_frame(&Frame::new(command, payload), operation)?;
        let result = self.read_response(len, operation);
        // Leave the read state whatever happened, so that the next command starts clean.
        let reset = self.write_report(&[0, 0, 0, 0, 0, 0, 0, DUMMY_REPORT_WRITE]);
        let data = result?;
        reset?;
        if !response_crc_ok(&data, len) {
            return Err(Error::Crc {
                device: self.device(),
                what: "response",
            });
        }
        Ok(data)
    }

    fn read_response(&mut self, len: usize, operation: &'static str) -> Result<Zeroizing<Vec<u8>>> {
        let mut data = Zeroizing::new(Vec::with_capacity(len + 7));
        let mut seq = 0u8;
        let start = Instant::now();
        let mut deadline = start + WAIT_FOR_RESPONSE;
        let mut pause = POLL_FIRST;
        loop {
            let report = self.read_report()?;
            let flags = report[7];
            if flags & RESP_PENDING_FLAG != 0 {
                if flags & SEQUENCE_MASK == seq {
                    // A response fits one 70-byte frame: ten chunks at most.
                    if seq >= 10 {
                        return Err(self.protocol(operation, "response longer than a frame"));
                    }
                    data.extend_from_slice(&report[..7]);
                    seq += 1;
                    continue;
                }
                if flags & SEQUENCE_MASK == 0 && !data.is_empty() {
                    return Ok(data);
                }
                return Err(self.protocol(operation, "response chunk out of sequence"));
            }
            if flags == 0 {
                return Err(if data.is_empty() {
                    Error::Rejected {
                        device: self.device(),
                        operation,
                        reason: "no response (slot not configured for this command?)".into(),
                    }
                } else {
                    self.protocol(operation, "response ended early")
                });
            }
            if Instant::now() >= deadline {
                let waited_ms = start.elapsed().as_millis() as u64;
                return Err(Error::Timeout {
                    device: self.device(),
                    operation,
                    waited_ms,
                });
            }
            if flags & RESP_TIMEOUT_WAIT_FLAG != 0 {
                // Waiting for a touch: the low bits count the seconds left.
                let left = Duration::from_secs(u64::from(flags & SEQUENCE_MASK) + 1);
                deadline = deadline.max(Instant::now() + left);
                sleep(POLL_TOUCH);
            } else {
                sleep(pause);
                pause = (pause * 2).min(POLL_PROCESSING);
            }
        }
    }

    fn protocol(&self, operation: &'static str, detail: &str) -> Error {
        Error::Protocol {
            device: self.device(),
            operation,
            detail: detail.into(),
        }
    }

    /// Reads the serial number (command 0x10, 4 bytes big-endian).
    pub fn serial(&mut self) -> Result<u32> {
        let data = self.command_response(command::DEVICE_SERIAL, &[], 4, "read serial")?;
        Ok(u32::from_be_bytes([data[0], data[1], data[2], data[3]]))
    }

    /// The last status read.
    pub fn status(&self) -> Status {
        self.status
    }

    fn check_slot(&self, slot: u8) -> Result<()> {
        if slot == 1 || slot == 2 {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "YubiKey slots are 1 and 2, not {slot}"
        )))
    }

    fn base_config(&self) -> Config {
        let mut config = Config::default();
        if self.status.version >= (2, 2, 0) {
            config.ext_flags = ext::SERIAL_API_VISIBLE | ext::ALLOW_UPDATE;
        }
        if let Some(code) = self.new_code.as_ref().or(self.current_code.as_ref()) {
            config.acc_code = *code.expose();
        }
        config
    }

    /// Makes later HOTP writes carry an OATH token id (typed before each OTP): the OATH
    /// manufacturer prefix `omp` and token type `tt`, then the serial as 8 BCD digits, the
    /// first two bytes typed in modhex (ykpersonalize `-ooath-id`; Yubico uses `0xe1, 0x63`).
    pub fn set_oath_token_id(&mut self, token_id: Option<(u8, u8)>) {
        self.oath_token_id = token_id;
    }

    /// Writes `config` to `slot` with the current access code, then adopts the new code.
    pub fn write_slot(&mut self, slot: u8, config: &Config) -> Result<()> {
        self.check_slot(slot)?;
        let payload = write_payload(Some(config), self.current_code.as_ref());
        self.write_config(config_command(slot), &payload, "write slot configuration")?;
        if let Some(code) = self.new_code.take() {
            self.current_code = Some(code);
        }
        Ok(())
    }

    /// Programs an HMAC-SHA1 challenge-response slot.
    pub fn write_hmac_sha1(
        &mut self,
        slot: u8,
        key: &SecretKey,
        require_touch: bool,
    ) -> Result<()> {
        let mut config = self.base_config();
        config.set_hmac_key(key)?;
        config.tkt_flags = tkt::CHAL_RESP;
        config.cfg_flags = cfg::CHAL_HMAC | cfg::HMAC_LT64;
        if require_touch {
            config.cfg_flags |= cfg::CHAL_BTN_TRIG;
        }
        self.write_slot(slot, &config)
    }

    /// HMAC-SHA1 challenge-response: up to 63 bytes of challenge (padded as yubikit does).
    pub fn challenge_hmac(&mut self, slot: u8, challenge: &[u8]) -> Result<[u8; 20]> {
        self.check_slot(slot)?;
        if challenge.len() >= 64 {
            return Err(Error::InvalidArgument(
                "HMAC challenge longer than 63 bytes".into(),
            ));
        }
        let pad = if challenge.last() == Some(&0) { 1 } else { 0 };
        let mut payload = vec![pad; 64];
        payload[..challenge.len()].copy_from_slice(challenge);
        let command = if slot == 1 {
            command::CHAL_HMAC_1
        } else {
            command::CHAL_HMAC_2
        };
        let data = self.command_response(command, &payload, 20, "HMAC challenge-response")?;
        let mut out = [0u8; 20];
        out.copy_from_slice(&data[..20]);
        Ok(out)
    }

    /// Waits for the line a touch types on the keyboard interface.
    pub fn read_typed_line(&mut self, timeout: Duration) -> Result<Option<String>> {
        let mut decoder = keyboard::LineDecoder::default();
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 9];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let step = left.min(Duration::from_millis(100));
            if let Some(n) = self.transport.read_input_report(&mut buf, step)?
                && let Some(line) = decoder.feed(&buf[..n])
            {
                return Ok(Some(line));
            }
        }
    }
}

fn config_command(slot: u8) -> u8 {
    if slot == 1 {
        command::CONFIG_1
    } else {
        command::CONFIG_2
    }
}

fn free_slots(status: &Status) -> Vec<u8> {
    [1, 2]
        .into_iter()
        .filter(|&s| !status.slot_valid(s))
        .collect()
}
