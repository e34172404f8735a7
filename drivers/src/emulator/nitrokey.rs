//! The device side of the Nitrokey Pro / Storage HID protocol as the firmware answers it:
//! request CRC check, device and command status, busy while processing, admin PIN with a
//! retry counter, the temporary admin password, SEND_OTP_DATA (new firmware) and
//! AUTHORIZE-by-CRC (old firmware) slot writes, READ_SLOT, GET_CODE, SET_TIME, ERASE_SLOT.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::store::{self, DeviceState, Fault, NitrokeySlot, NitrokeyState};
use crate::error::{Error, Result};
use crate::nitrokey::Model;
use crate::nitrokey::packet::{
    REPORT_SIZE, RESPONSE_PAYLOAD, Request, Response, command, command_status, device_status,
};
use crate::otp::hotp_value;
use crate::token::Family;

/// How long a Busy fault keeps the device busy (longer than the driver's 2 s budget).
const BUSY_FAULT: Duration = Duration::from_millis(3000);
/// Secret bytes a slot holds.
const SECRET_LEN: usize = 40;

/// RAM of the emulated device (lost on unplug).
pub struct Session {
    last: Response,
    busy_until: Option<Instant>,
    temporary_admin: Option<Zeroizing<[u8; 25]>>,
    authorized_crc: Option<u32>,
    pending_name: Vec<u8>,
    pending_secret: Zeroizing<[u8; SECRET_LEN]>,
    queued: Option<Request>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            last: Response {
                device_status: device_status::OK,
                command_id: 0,
                last_command_crc: 0,
                last_command_status: command_status::OK,
                payload: Zeroizing::new([0u8; RESPONSE_PAYLOAD]),
                crc_ok: true,
            },
            busy_until: None,
            temporary_admin: None,
            authorized_crc: None,
            pending_name: Vec::new(),
            pending_secret: Zeroizing::new([0u8; SECRET_LEN]),
            queued: None,
        }
    }
}

/// Commands a fault applies to.
fn changes_slots(cmd: u8) -> bool {
    matches!(
        cmd,
        command::SEND_OTP_DATA | command::WRITE_TO_SLOT | command::ERASE_SLOT | command::AUTHORIZE
    )
}

/// Commands that write flash.
fn commits(cmd: u8) -> bool {
    matches!(cmd, command::WRITE_TO_SLOT | command::ERASE_SLOT)
}

fn model_of(state: &DeviceState) -> Model {
    if state.family == Family::NitrokeyStorage {
        Model::Storage
    } else {
        Model::Pro
    }
}

fn new_firmware(state: &DeviceState) -> bool {
    let [major, minor, _] = state.firmware_parts();
    model_of(state).uses_send_otp_data((major, minor))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A response under construction: status and payload.
struct Answer {
    status: u8,
    payload: Zeroizing<[u8; RESPONSE_PAYLOAD]>,
    write: bool,
}

impl Answer {
    fn status(status: u8) -> Answer {
        Answer {
            status,
            payload: Zeroizing::new([0u8; RESPONSE_PAYLOAD]),
            write: false,
        }
    }

    fn ok() -> Answer {
        Answer::status(command_status::OK)
    }
}

impl Session {
    fn busy(&self) -> bool {
        self.busy_until.is_some_and(|t| Instant::now() < t)
    }

    /// Answers a GET_FEATURE (65 bytes, report ID first). While busy the device reports
    /// busy for the request it holds; once free it runs that request, then answers.
    pub fn read(&mut self, dir: &Path, serial: &str) -> Result<[u8; REPORT_SIZE]> {
        if !self.busy()
            && let Some(request) = self.queued.take()
        {
            self.process(dir, serial, request)?;
        }
        let mut response = self.last.clone();
        if self.busy() {
            response.device_status = device_status::BUSY;
            response.payload = Zeroizing::new([0u8; RESPONSE_PAYLOAD]);
            if let Some(request) = &self.queued {
                response.command_id = request.command();
                response.last_command_crc = request.crc();
            }
        }
        Ok(response.encode())
    }

    /// Handles a SET_FEATURE. Errors only when the device unplugs itself.
    pub fn write(&mut self, dir: &Path, serial: &str, bytes: &[u8]) -> Result<()> {
        let request = Request::from_bytes(bytes);
        if self.busy() {
            // One report buffer: the newest request waits for the device (replacing any
            // older one, which is lost) and runs when the device is free.
            self.queued = Some(request);
            return Ok(());
        }
        self.process(dir, serial, request)
    }

    fn process(&mut self, dir: &Path, serial: &str, request: Request) -> Result<()> {
        let cmd = request.command();
        if !request.crc_ok() {
            self.answer(&request, Answer::status(command_status::WRONG_CRC), 0);
            return Ok(());
        }
        let path = store::state_path(dir, serial);
        let outcome = store::update(dir, serial, |state| {
            let fault = match state.faults.first() {
                // Unplugging mid-write hits the command that commits (after SEND_OTP_DATA
                // or AUTHORIZE went through); the other faults hit the first one.
                Some(Fault::UnplugMidWrite) if !commits(cmd) => None,
                Some(&fault) if changes_slots(cmd) => {
                    state.faults.remove(0);
                    Some(fault)
                }
                _ => None,
            };
            match fault {
                Some(Fault::UnplugMidWrite) => {
                    state.plugged = false;
                    return Ok(Err(Fault::UnplugMidWrite));
                }
                Some(fault) => return Ok(Err(fault)),
                None => {}
            }
            let latency = state.latency;
            let answer = self.execute(state, &request, &path)?;
            let wait = if answer.write {
                latency.write_ms
            } else {
                latency.other_ms
            };
            Ok(Ok((answer, wait)))
        })?;
        match outcome {
            Ok((answer, wait)) => self.answer(&request, answer, wait),
            Err(Fault::UnplugMidWrite) => {
                return Err(Error::Unplugged {
                    device: format!("emulated nitrokey {serial}"),
                    operation: "write report",
                });
            }
            Err(Fault::Crc | Fault::StatusWord(_)) => {
                self.answer(&request, Answer::status(command_status::WRONG_CRC), 0)
            }
            Err(Fault::Busy) => {
                // Busy with something else for a while; the request runs afterwards unless
                // a newer one replaces it.
                self.busy_until = Some(Instant::now() + BUSY_FAULT);
                self.queued = Some(request);
            }
            Err(Fault::Timeout) => {}
        }
        Ok(())
    }

    fn answer(&mut self, request: &Request, answer: Answer, wait_ms: u64) {
        self.last = Response {
            device_status: device_status::OK,
            command_id: request.command(),
            last_command_crc: request.crc(),
            last_command_status: answer.status,
            payload: answer.payload,
            crc_ok: true,
        };
        self.busy_until = Some(Instant::now() + Duration::from_millis(wait_ms));
    }

    fn execute(
        &mut self,
        state: &mut DeviceState,
        request: &Request,
        path: &Path,
    ) -> Result<Answer> {
        let serial = state.serial;
        let [major, minor, _] = state.firmware_parts();
        let new_fw = new_firmware(state);
        let storage = state.family == Family::NitrokeyStorage;
        let nk = state
            .nitrokey
            .as_mut()
            .ok_or_else(|| Error::EmulatorState {
                path: path.to_owned(),
                detail: "Nitrokey device without Nitrokey state".into(),
            })?;
        let p = request.payload();
        let answer = match request.command() {
            command::GET_STATUS => {
                let mut answer = Answer::ok();
                answer.payload[0] = minor;
                answer.payload[1] = major;
                answer.payload[2..6].copy_from_slice(&serial.to_le_bytes());
                answer
            }
            command::GET_DEVICE_STATUS if storage => {
                use crate::nitrokey::packet::storage_status as at;
                let mut answer = Answer::ok();
                answer.payload[at::VERSION_MAJOR] = major;
                answer.payload[at::VERSION_MINOR] = minor;
                answer.payload[at::USER_RETRIES] = 3;
                answer.payload[at::ADMIN_RETRIES] = nk.admin_retries;
                answer.payload[at::SMART_CARD_ID..at::SMART_CARD_ID + 4]
                    .copy_from_slice(&serial.to_le_bytes());
                answer
            }
            command::GET_PASSWORD_RETRY_COUNT => {
                let mut answer = Answer::ok();
                answer.payload[0] = nk.admin_retries;
                answer
            }
            command::FIRST_AUTHENTICATE => self.first_authenticate(nk, p),
            command::SEND_OTP_DATA if new_fw => self.send_otp_data(p),
            command::WRITE_TO_SLOT if new_fw => self.write_slot_new(nk, p),
            command::AUTHORIZE if !new_fw => self.authorize(p),
            command::WRITE_TO_SLOT => self.write_slot_old(nk, request, storage)?,
            command::ERASE_SLOT => self.erase(nk, request, new_fw),
            command::READ_SLOT => read_slot(nk, p[0]),
            command::GET_CODE => get_code(nk, p[0]),
            command::SET_TIME => set_time(nk, p),
            _ => Answer::status(command_status::UNKNOWN_COMMAND),
        };
        Ok(answer)
    }

    fn admin_ok(&self, password: &[u8]) -> bool {
        match &self.temporary_admin {
            Some(temp) => subtle::ConstantTimeEq::ct_eq(&temp[..], password).into(),
            None => false,
        }
    }

    fn first_authenticate(&mut self, nk: &mut NitrokeyState, p: &[u8]) -> Answer {
        let given = &p[..25];
        let given = &given[..given.iter().position(|&b| b == 0).unwrap_or(25)];
        if nk.admin_retries == 0 {
            return Answer::status(command_status::WRONG_PASSWORD);
        }
        let ok: bool = subtle::ConstantTimeEq::ct_eq(nk.admin_pin.as_bytes(), given).into();
        if !ok {
            nk.admin_retries -= 1;
            self.temporary_admin = None;
            return Answer::status(command_status::WRONG_PASSWORD);
        }
        nk.admin_retries = 3;
        let mut temp = Zeroizing::new([0u8; 25]);
        temp.copy_from_slice(&p[25..50]);
        self.temporary_admin = Some(temp);
        Answer::ok()
    }

    fn send_otp_data(&mut self, p: &[u8]) -> Answer {
        if !self.admin_ok(&p[..25]) {
            return Answer::status(command_status::NOT_AUTHORIZED);
        }
        let (kind, id, data) = (p[25], usize::from(p[26]), &p[27..57]);
        match kind {
            b'N' => {
                let end = data
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(data.len())
                    .min(15);
                self.pending_name = data[..end].to_vec();
            }
            b'S' => {
                let start = id * 30;
                if start >= SECRET_LEN {
                    return Answer::status(command_status::WRONG_SLOT);
                }
                let n = (SECRET_LEN - start).min(30);
                if id == 0 {
                    self.pending_secret = Zeroizing::new([0u8; SECRET_LEN]);
                }
                self.pending_secret[start..start + n].copy_from_slice(&data[..n]);
            }
            _ => return Answer::status(command_status::NOT_SUPPORTED),
        }
        Answer::ok()
    }

    fn write_slot_new(&mut self, nk: &mut NitrokeyState, p: &[u8]) -> Answer {
        if !self.admin_ok(&p[..25]) {
            return Answer::status(command_status::NOT_AUTHORIZED);
        }
        if self.pending_name.is_empty() {
            return Answer::status(command_status::NO_NAME_ERROR);
        }
        let value = u64::from_le_bytes(p[26..34].try_into().unwrap_or_default());
        let slot = NitrokeySlot {
            name: String::from_utf8_lossy(&self.pending_name).into_owned(),
            secret: hex::encode(&self.pending_secret[..]),
            config: p[34],
            token_id: hex::encode(&p[35..48]),
            value,
        };
        let answer = store_slot(nk, p[25], slot);
        self.pending_name.clear();
        self.pending_secret = Zeroizing::new([0u8; SECRET_LEN]);
        answer
    }

    fn authorize(&mut self, p: &[u8]) -> Answer {
        if !self.admin_ok(&p[4..29]) {
            self.authorized_crc = None;
            return Answer::status(command_status::NOT_AUTHORIZED);
        }
        self.authorized_crc = Some(u32::from_le_bytes([p[0], p[1], p[2], p[3]]));
        Answer::ok()
    }

    /// Old firmware: the packet must be the one AUTHORIZE named by its CRC.
    fn take_authorization(&mut self, request: &Request) -> bool {
        self.authorized_crc.take() == Some(request.crc())
    }

    fn write_slot_old(
        &mut self,
        nk: &mut NitrokeyState,
        request: &Request,
        storage: bool,
    ) -> Result<Answer> {
        if !self.take_authorization(request) {
            return Ok(Answer::status(command_status::NOT_AUTHORIZED));
        }
        let p = request.payload();
        let internal = p[0];
        let name_end = p[1..16].iter().position(|&b| b == 0).unwrap_or(15);
        if name_end == 0 {
            return Ok(Answer::status(command_status::NO_NAME_ERROR));
        }
        let value = if internal & 0xf0 == 0x20 {
            u64::from(u16::from_le_bytes([p[50], p[51]]))
        } else if storage {
            let text = &p[50..58];
            let end = text.iter().position(|&b| b == 0).unwrap_or(8);
            std::str::from_utf8(&text[..end])
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0)
        } else {
            u64::from_le_bytes(p[50..58].try_into().unwrap_or_default())
        };
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret[..20].copy_from_slice(&p[16..36]);
        let slot = NitrokeySlot {
            name: String::from_utf8_lossy(&p[1..1 + name_end]).into_owned(),
            secret: hex::encode(&secret[..]),
            config: p[36],
            token_id: hex::encode(&p[37..50]),
            value,
        };
        Ok(store_slot(nk, internal, slot))
    }

    fn erase(&mut self, nk: &mut NitrokeyState, request: &Request, new_fw: bool) -> Answer {
        let p = request.payload();
        let authorized = if new_fw {
            self.admin_ok(&p[1..26])
        } else {
            self.take_authorization(request)
        };
        if !authorized {
            return Answer::status(command_status::NOT_AUTHORIZED);
        }
        match slot_mut(nk, p[0]) {
            Some(slot) => {
                *slot = None;
                Answer {
                    write: true,
                    ..Answer::ok()
                }
            }
            None => Answer::status(command_status::WRONG_SLOT),
        }
    }
}

fn slot_mut(nk: &mut NitrokeyState, internal: u8) -> Option<&mut Option<NitrokeySlot>> {
    let index = usize::from(internal & 0x0f);
    match internal & 0xf0 {
        0x10 => nk.hotp.get_mut(index),
        0x20 => nk.totp.get_mut(index),
        _ => None,
    }
}

fn store_slot(nk: &mut NitrokeyState, internal: u8, slot: NitrokeySlot) -> Answer {
    match slot_mut(nk, internal) {
        Some(entry) => {
            *entry = Some(slot);
            Answer {
                write: true,
                ..Answer::ok()
            }
        }
        None => Answer::status(command_status::WRONG_SLOT),
    }
}

fn read_slot(nk: &mut NitrokeyState, internal: u8) -> Answer {
    let Some(entry) = slot_mut(nk, internal) else {
        return Answer::status(command_status::WRONG_SLOT);
    };
    let Some(slot) = entry else {
        return Answer::status(command_status::SLOT_NOT_PROGRAMMED);
    };
    let mut answer = Answer::ok();
    let name = slot.name.as_bytes();
    answer.payload[..name.len().min(15)].copy_from_slice(&name[..name.len().min(15)]);
    answer.payload[15] = slot.config;
    let token_id = hex::decode(&slot.token_id).unwrap_or_default();
    let n = token_id.len().min(13);
    answer.payload[16..16 + n].copy_from_slice(&token_id[..n]);
    answer.payload[29..37].copy_from_slice(&slot.value.to_le_bytes());
    answer
}

fn get_code(nk: &mut NitrokeyState, internal: u8) -> Answer {
    let offset = nk.clock_offset;
    let Some(entry) = slot_mut(nk, internal) else {
        return Answer::status(command_status::WRONG_SLOT);
    };
    let Some(slot) = entry else {
        return Answer::status(command_status::SLOT_NOT_PROGRAMMED);
    };
    let secret = Zeroizing::new(hex::decode(&slot.secret).unwrap_or_default());
    let counter = if internal & 0xf0 == 0x10 {
        let counter = slot.value;
        slot.value += 1;
        counter
    } else {
        let now = u64::try_from(unix_now().saturating_add(offset)).unwrap_or(0);
        now / slot.value.max(1)
    };
    let digits = if slot.config & 0x01 != 0 { 8 } else { 6 };
    let code = hotp_value(&trim_secret(&secret), counter) % 10u32.pow(digits);
    let mut answer = Answer::ok();
    answer.payload[..4].copy_from_slice(&code.to_le_bytes());
    answer.payload[4] = slot.config;
    answer
}

/// The code GET_CODE answers for TOTP slot `slot` (0–14) now, zero-padded to the slot's
/// digits; `None` for a slot out of range or not programmed. The state is not changed.
pub fn totp_code(nk: &NitrokeyState, slot: u8) -> Option<String> {
    let mut copy = nk.clone();
    let answer = get_code(&mut copy, 0x20u8.checked_add(slot).filter(|_| slot < 15)?);
    if answer.status != command_status::OK {
        return None;
    }
    let code = u32::from_le_bytes([
        answer.payload[0],
        answer.payload[1],
        answer.payload[2],
        answer.payload[3],
    ]);
    let digits = if answer.payload[4] & 0x01 != 0 { 8 } else { 6 };
    Some(format!("{code:0digits$}"))
}

/// The stored secret is zero-padded to 40 bytes; HMAC pads short keys with zeros, so the
/// padding does not change the MAC (trimming only keeps the key at its written length).
fn trim_secret(secret: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = secret.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Zeroizing::new(secret[..end].to_vec())
}

fn set_time(nk: &mut NitrokeyState, p: &[u8]) -> Answer {
    let reset = p[0] != 0;
    let time = i64::try_from(u64::from_le_bytes(p[1..9].try_into().unwrap_or_default()))
        .unwrap_or(i64::MAX);
    let device_now = unix_now().saturating_add(nk.clock_offset);
    if !reset && time < device_now {
        return Answer::status(command_status::TIMESTAMP_WARNING);
    }
    nk.clock_offset = time.saturating_sub(unix_now());
    Answer::ok()
}
