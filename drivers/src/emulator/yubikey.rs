//! The device side of the YubiKey OTP HID protocol: a state machine over 8-byte feature
//! reports (idle status, chunk reception, busy while "flashing", response chunks, reset on
//! `0x8f`/`0xff`), slot configurations with access-code protection, and the keyboard
//! reports a touch types.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::store::{self, DeviceState, Fault, YubikeySlot, YubikeyState};
use crate::error::{Error, Result};
use crate::otp::{Digits, hmac_sha1, hotp};
use crate::yubikey::config::{CONFIG_SIZE, Config, cfg, ext, tkt};
use crate::yubikey::frame::{
    DUMMY_REPORT_WRITE, FRAME_SIZE, Frame, RESP_PENDING_FLAG, RESP_TIMEOUT_WAIT_FLAG,
    SEQUENCE_MASK, SLOT_WRITE_FLAG, Status, command, encode_response, touch,
};
use crate::yubikey::keyboard;

/// How long a Timeout fault holds the write flag (longer than ykcore's 1150 ms wait).
const TIMEOUT_FAULT: Duration = Duration::from_millis(1500);
/// How long a touch-triggered challenge waits for the touch (as the key does).
const TOUCH_WAIT: Duration = Duration::from_secs(15);
/// How long a Busy fault keeps the device busy (longer than ykcore's 1150 ms wait, short
/// enough that the next attempt finds the key ready).
const BUSY_FAULT: Duration = Duration::from_millis(1500);

/// RAM of the emulated key (lost on unplug).
#[derive(Default)]
pub struct Session {
    frame: Zeroizing<Vec<u8>>,
    busy_until: Option<Instant>,
    busy_status: Option<Status>,
    response: Option<(Zeroizing<Vec<u8>>, usize)>,
    touch_gate: Option<(u64, Instant)>,
    keyboard: VecDeque<[u8; 8]>,
}

/// The status a device in `state` reports.
pub fn status_of(state: &DeviceState, yk: &YubikeyState) -> Status {
    let [major, minor, build] = state.firmware_parts();
    let mut touch_level = 0;
    for (i, slot) in yk.slots.iter().enumerate() {
        if let Some(slot) = slot {
            touch_level |= if i == 0 {
                touch::CONFIG1_VALID
            } else {
                touch::CONFIG2_VALID
            };
            let needs_touch = parse_config(slot)
                .is_some_and(|c| c.is_chal_hmac() && c.cfg_flags & cfg::CHAL_BTN_TRIG != 0);
            if needs_touch {
                touch_level |= if i == 0 {
                    touch::CONFIG1_TOUCH
                } else {
                    touch::CONFIG2_TOUCH
                };
            }
        }
    }
    Status {
        version: (major, minor, build),
        pgm_seq: yk.pgm_seq,
        touch_level,
    }
}

fn parse_config(slot: &YubikeySlot) -> Option<Config> {
    let bytes = Zeroizing::new(hex::decode(&slot.config).ok()?);
    Config::parse(&bytes)
}

fn yk_state<'a>(state: &'a mut DeviceState, path: &Path) -> Result<&'a mut YubikeyState> {
    state.yubikey.as_mut().ok_or_else(|| Error::EmulatorState {
        path: path.to_owned(),
        detail: "YubiKey device without YubiKey state".into(),
    })
}

impl Session {
    fn busy(&self) -> bool {
        self.busy_until.is_some_and(|t| Instant::now() < t)
    }

    /// Answers a GET_FEATURE with the 8 data bytes.
    pub fn read(&mut self, state: &DeviceState) -> [u8; 8] {
        let mut report = [0u8; 8];
        if self.busy() {
            let status = self.busy_status.unwrap_or_else(|| idle_status(state));
            status.write_into(&mut report);
            report[7] = SLOT_WRITE_FLAG;
            return report;
        }
        if let Some((baseline, deadline)) = self.touch_gate {
            let touches = state.yubikey.as_ref().map_or(0, |yk| yk.touches);
            let now = Instant::now();
            if touches > baseline {
                self.touch_gate = None;
            } else if now >= deadline {
                self.touch_gate = None;
                self.response = None;
            } else {
                idle_status(state).write_into(&mut report);
                // Under 16 s left, so the seconds fit the 5-bit field.
                let left = deadline.duration_since(now).as_secs() as u8;
                report[7] = RESP_TIMEOUT_WAIT_FLAG | (left & SEQUENCE_MASK);
                return report;
            }
        }
        if let Some((data, next)) = &mut self.response {
            let chunks = data.len() / 7;
            if *next < chunks {
                report[..7].copy_from_slice(&data[*next * 7..*next * 7 + 7]);
                // At most 10 chunks, so the cast cannot truncate.
                report[7] = RESP_PENDING_FLAG | *next as u8;
                *next += 1;
            } else {
                report[7] = RESP_PENDING_FLAG;
            }
            return report;
        }
        idle_status(state).write_into(&mut report);
        report
    }

    /// Handles a SET_FEATURE (8 data bytes). Errors only when the device unplugs itself.
    pub fn write(&mut self, dir: &Path, serial: &str, report: &[u8; 8]) -> Result<()> {
        let flags = report[7];
        if flags == DUMMY_REPORT_WRITE || flags == 0xff {
            self.response = None;
            self.touch_gate = None;
            self.frame.clear();
            return Ok(());
        }
        if flags & SLOT_WRITE_FLAG == 0 || self.busy() {
            return Ok(());
        }
        let seq = usize::from(flags & SEQUENCE_MASK);
        if seq > 9 {
            self.response = None;
            self.frame.clear();
            return Ok(());
        }
        if seq == 0 {
            self.frame = Zeroizing::new(vec![0u8; FRAME_SIZE]);
            self.response = None;
            if take_fault(dir, serial, Fault::Busy)? {
                self.busy_status = None;
                self.busy_until = Some(Instant::now() + BUSY_FAULT);
                self.frame.clear();
                return Ok(());
            }
        }
        if self.frame.len() != FRAME_SIZE {
            return Ok(());
        }
        self.frame[seq * 7..seq * 7 + 7].copy_from_slice(&report[..7]);
        if seq == 9 {
            let mut bytes = Zeroizing::new([0u8; FRAME_SIZE]);
            bytes.copy_from_slice(&self.frame);
            self.frame.clear();
            self.execute(dir, serial, &Frame::from_bytes(&bytes))?;
        }
        Ok(())
    }

    fn execute(&mut self, dir: &Path, serial: &str, frame: &Frame) -> Result<()> {
        let path = store::state_path(dir, serial);
        let cmd = frame.command();
        let is_config = matches!(cmd, command::CONFIG_1 | command::CONFIG_2 | command::SWAP);
        let outcome = store::update(dir, serial, |state| {
            let before = idle_status(state);
            let latency = state.latency;
            let fault = state.faults.first().copied();
            let fault = match fault {
                Some(Fault::UnplugMidWrite) if !is_config => None,
                other => other,
            };
            if fault.is_some() {
                state.faults.remove(0);
            }
            match fault {
                Some(Fault::UnplugMidWrite) => {
                    state.plugged = false;
                    return Ok(Outcome::Unplugged);
                }
                Some(Fault::Timeout) => {
                    return Ok(Outcome::Busy(before, TIMEOUT_FAULT, None, None));
                }
                _ => {}
            }
            let corrupt = matches!(fault, Some(Fault::Crc | Fault::StatusWord(_)));
            if !frame.crc_ok() || (corrupt && is_config) {
                return Ok(Outcome::Ignored);
            }
            let serial_number = state.serial;
            let yk = yk_state(state, &path)?;
            let gate = needs_touch(yk, cmd).then_some(yk.touches);
            let mut response = run_command(yk, cmd, frame.payload(), serial_number);
            let gate = gate.filter(|_| response.is_some());
            if let (true, Some(data)) = (corrupt, response.as_mut()) {
                data[0] ^= 0x01;
            }
            let wait = if is_config {
                latency.write_ms
            } else {
                latency.other_ms
            };
            Ok(Outcome::Busy(
                before,
                Duration::from_millis(wait),
                response,
                gate,
            ))
        })?;
        match outcome {
            Outcome::Unplugged => Err(Error::Unplugged {
                device: format!("emulated yubikey {serial}"),
                operation: "write frame",
            }),
            Outcome::Ignored => Ok(()),
            Outcome::Busy(before, wait, response, gate) => {
                self.busy_status = Some(before);
                self.busy_until = Some(Instant::now() + wait);
                self.response = response.map(|data| (data, 0));
                self.touch_gate = gate.map(|touches| (touches, Instant::now() + TOUCH_WAIT));
                Ok(())
            }
        }
    }

    /// Answers an input-report read from the keyboard queue (moving reports typed by a touch
    /// in any process into this session).
    pub fn read_keyboard(
        &mut self,
        dir: &Path,
        serial: &str,
        has_pending: bool,
    ) -> Result<Option<[u8; 8]>> {
        if self.keyboard.is_empty() && has_pending {
            let path = store::state_path(dir, serial);
            let typed = store::update(dir, serial, |state| {
                Ok(std::mem::take(&mut yk_state(state, &path)?.keyboard))
            })?;
            for text in typed {
                let bytes = hex::decode(&text).unwrap_or_default();
                if let Ok(report) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    self.keyboard.push_back(report);
                }
            }
        }
        Ok(self.keyboard.pop_front())
    }
}

enum Outcome {
    Unplugged,
    Ignored,
    /// Busy for a while, then the response (if any), released by a touch if gated.
    Busy(Status, Duration, Option<Zeroizing<Vec<u8>>>, Option<u64>),
}

/// Whether `cmd` is a challenge to a slot configured with CHAL_BTN_TRIG.
fn needs_touch(yk: &YubikeyState, cmd: u8) -> bool {
    let index = match cmd {
        command::CHAL_HMAC_1 => 0,
        command::CHAL_HMAC_2 => 1,
        _ => return false,
    };
    let config = yk.slots[index].as_ref().and_then(parse_config);
    config.is_some_and(|c| c.is_chal_hmac() && c.cfg_flags & cfg::CHAL_BTN_TRIG != 0)
}

fn idle_status(state: &DeviceState) -> Status {
    match &state.yubikey {
        Some(yk) => status_of(state, yk),
        None => Status {
            version: (0, 0, 0),
            pgm_seq: 0,
            touch_level: 0,
        },
    }
}

/// Consumes `fault` if it is the next one queued.
fn take_fault(dir: &Path, serial: &str, fault: Fault) -> Result<bool> {
    let state = store::load(dir, serial)?;
    if state.faults.first() != Some(&fault) {
        return Ok(false);
    }
    store::update(dir, serial, |state| {
        let hit = state.faults.first() == Some(&fault);
        if hit {
            state.faults.remove(0);
        }
        Ok(hit)
    })
}

/// Runs a complete frame against the persistent state; returns the response, if any.
fn run_command(
    yk: &mut YubikeyState,
    cmd: u8,
    payload: &[u8],
    serial: u32,
) -> Option<Zeroizing<Vec<u8>>> {
    match cmd {
        command::CONFIG_1 | command::CONFIG_2 => {
            let index = usize::from(cmd == command::CONFIG_2);
            write_config(yk, index, payload);
            None
        }
        command::SWAP => {
            yk.slots.swap(0, 1);
            yk.pgm_seq = next_seq(yk);
            None
        }
        command::DEVICE_SERIAL => Some(serial_response(serial)),
        command::CHAL_HMAC_1 | command::CHAL_HMAC_2 => {
            let index = usize::from(cmd == command::CHAL_HMAC_2);
            let config = yk.slots[index].as_ref().and_then(parse_config)?;
            if !config.is_chal_hmac() {
                return None;
            }
            let mut len = 64;
            if config.cfg_flags & cfg::HMAC_LT64 != 0 {
                let last = payload[63];
                while len > 0 && payload[len - 1] == last {
                    len -= 1;
                }
            }
            let mac = Zeroizing::new(hmac_sha1(&config.hmac_key()[..], &payload[..len]));
            Some(Zeroizing::new(encode_response(&mac[..])))
        }
        _ => None,
    }
}

/// The programming sequence after an accepted write: +1, or 0 once no slot is valid.
fn next_seq(yk: &YubikeyState) -> u8 {
    if yk.slots.iter().all(Option::is_none) {
        0
    } else {
        yk.pgm_seq.wrapping_add(1).max(1)
    }
}

/// CONFIG_x: checks the access code protecting the slot and the configuration CRC, then
/// stores or deletes. A rejected write leaves the sequence unchanged.
fn write_config(yk: &mut YubikeyState, index: usize, payload: &[u8]) {
    let current = &payload[CONFIG_SIZE..CONFIG_SIZE + 6];
    if let Some(existing) = yk.slots[index].as_ref().and_then(parse_config) {
        let ok: bool = subtle::ConstantTimeEq::ct_eq(&existing.acc_code[..], current).into();
        if !ok {
            return;
        }
    }
    let body = &payload[..CONFIG_SIZE];
    if body.iter().all(|&b| b == 0) {
        yk.slots[index] = None;
    } else {
        let Some(config) = Config::parse(body) else {
            return;
        };
        let counter = if config.is_oath_hotp() {
            config.oath_imf()
        } else {
            0
        };
        yk.slots[index] = Some(YubikeySlot {
            config: hex::encode(body),
            counter,
        });
    }
    yk.pgm_seq = next_seq(yk);
}

/// The response of a DEVICE_SERIAL command (4 bytes big-endian + CRC).
pub fn serial_response(serial: u32) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(encode_response(&serial.to_be_bytes()))
}

/// A touch on `slot` (1 or 2). It releases a challenge waiting for a touch (and then
/// returns an empty string); otherwise it computes the OATH-HOTP value, advances the
/// counter and queues the keyboard reports the key types, returning the OTP digits.
pub fn touch(state: &mut DeviceState, slot: u8, path: &Path) -> Result<String> {
    let serial = state.serial_string();
    let yk = yk_state(state, path)?;
    yk.touches += 1;
    let index = usize::from(slot.saturating_sub(1)).min(1);
    if yk.slots[index]
        .as_ref()
        .and_then(parse_config)
        .is_some_and(|c| c.is_chal_hmac())
    {
        return Ok(String::new());
    }
    let not_hotp = || Error::SlotNotProgrammed {
        device: format!("emulated yubikey {serial}"),
        slot: format!("{slot} (no OATH-HOTP configuration)"),
    };
    let entry = yk.slots[index].as_mut().ok_or_else(not_hotp)?;
    let config = parse_config(entry)
        .filter(Config::is_oath_hotp)
        .ok_or_else(not_hotp)?;
    let digits = if config.cfg_flags & cfg::OATH_HOTP8 != 0 {
        Digits::EIGHT
    } else {
        Digits::SIX
    };
    let otp = hotp(&config.hmac_key()[..], entry.counter, digits);
    entry.counter += 1;
    let mut typed = token_id_text(&config);
    typed.push_str(&otp);
    if config.tkt_flags & tkt::APPEND_CR != 0 {
        typed.push('\n');
    }
    let keypad = config.ext_flags & ext::USE_NUMERIC_KEYPAD != 0;
    yk.keyboard = keyboard::encode(&typed, keypad)
        .iter()
        .map(hex::encode)
        .collect();
    Ok(otp)
}

/// The token id as typed: the first bytes in modhex as the OATH_FIXED_MODHEX flags say, the
/// rest as hex digits (BCD serials read as decimal).
fn token_id_text(config: &Config) -> String {
    const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
    let size = usize::from(config.fixed_size).min(16);
    let modhex_bytes = match config.cfg_flags & cfg::OATH_FIXED_MODHEX {
        cfg::OATH_FIXED_MODHEX => size,
        cfg::OATH_FIXED_MODHEX2 => 2,
        cfg::OATH_FIXED_MODHEX1 => 1,
        _ => 0,
    };
    let mut text = String::with_capacity(size * 2);
    for (i, byte) in config.fixed[..size].iter().enumerate() {
        if i < modhex_bytes {
            text.push(char::from(MODHEX[usize::from(byte >> 4)]));
            text.push(char::from(MODHEX[usize::from(byte & 0x0f)]));
        } else {
            text.push_str(&format!("{byte:02x}"));
        }
    }
    text
}
