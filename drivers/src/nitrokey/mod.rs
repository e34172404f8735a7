//! Nitrokey Pro, Nitrokey Storage and Librem Key over HID (libnitrokey's protocol): the
//! device handle, admin authentication, both slot-write generations, read-back and
//! GET_CODE verification, and its [`crate::Token`] implementation.
//!
//! Each transaction is libnitrokey's: send the request, wait the model's send/receive
//! delay, read responses until one carries our request's CRC; a busy device gets more time
//! (doubling delay up to 300 ms), a stale response is retried a bounded number of times.

pub mod packet;
mod token;

use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::error::{Error, Result, RetriesLeft};
use crate::otp::Digits;
use crate::secret::{Pin, SecretKey};
use crate::token::{Family, Location, OtpKind, Slot, TokenInfo};
use crate::transport::HidTransport;
use packet::{REPORT_SIZE, Request, Response, command, command_status, device_status};

/// Nitrokey's USB vendor ID.
pub const VENDOR_ID: u16 = 0x20a0;
/// Nitrokey Pro.
pub const PID_PRO: u16 = 0x4108;
/// Nitrokey Storage.
pub const PID_STORAGE: u16 = 0x4109;
/// Purism's USB vendor ID.
pub const PURISM_VENDOR_ID: u16 = 0x316d;
/// Librem Key (Nitrokey Pro protocol).
pub const PID_LIBREM_KEY: u16 = 0x4c4b;

/// Length of passwords in FIRST_AUTHENTICATE and of the temporary admin password.
const PASSWORD_LEN: usize = 25;
/// HOTP slots 0..=2.
const HOTP_SLOTS: u8 = 3;
/// TOTP slots 0..=14.
const TOTP_SLOTS: u8 = 15;
/// Name written to a slot (firmware refuses an empty name).
const SLOT_NAME: &[u8] = b"KeyProv";
/// Longest time a device may report busy before a transaction fails with `Busy`.
const BUSY_BUDGET: Duration = Duration::from_millis(2000);

/// Per-model timing (libnitrokey `device.cc`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Wait between sending a request and the first read.
    pub send_receive_delay: Duration,
    /// Reads of a stale response before giving up.
    pub receive_retries: u32,
    /// Wait between those reads.
    pub retry_timeout: Duration,
}

impl Timing {
    /// Nitrokey Pro and Librem Key.
    pub const PRO: Timing = Timing {
        send_receive_delay: Duration::from_millis(100),
        receive_retries: 15,
        retry_timeout: Duration::from_millis(100),
    };
    /// Nitrokey Storage.
    pub const STORAGE: Timing = Timing {
        send_receive_delay: Duration::from_millis(40),
        receive_retries: 55,
        retry_timeout: Duration::from_millis(40),
    };
}

/// Which product, from the USB IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Nitrokey Pro.
    Pro,
    /// Nitrokey Storage.
    Storage,
    /// Purism Librem Key.
    LibremKey,
}

impl Model {
    /// From USB vendor and product ID.
    pub fn from_usb(vid: u16, pid: u16) -> Option<Model> {
        match (vid, pid) {
            (VENDOR_ID, PID_PRO) => Some(Model::Pro),
            (VENDOR_ID, PID_STORAGE) => Some(Model::Storage),
            (PURISM_VENDOR_ID, PID_LIBREM_KEY) => Some(Model::LibremKey),
            _ => None,
        }
    }

    /// USB vendor and product ID.
    pub fn usb_id(self) -> (u16, u16) {
        match self {
            Model::Pro => (VENDOR_ID, PID_PRO),
            Model::Storage => (VENDOR_ID, PID_STORAGE),
            Model::LibremKey => (PURISM_VENDOR_ID, PID_LIBREM_KEY),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Model::Pro => "Nitrokey Pro",
            Model::Storage => "Nitrokey Storage",
            Model::LibremKey => "Librem Key",
        }
    }

    fn family(self) -> Family {
        match self {
            Model::Storage => Family::NitrokeyStorage,
            Model::Pro | Model::LibremKey => Family::NitrokeyPro,
        }
    }

    fn timing(self) -> Timing {
        match self {
            Model::Storage => Timing::STORAGE,
            Model::Pro | Model::LibremKey => Timing::PRO,
        }
    }

    /// Whether firmware `major.minor` writes slots with SEND_OTP_DATA (Pro ≥ 0.8,
    /// Storage ≥ 0.54) rather than AUTHORIZE.
    pub fn uses_send_otp_data(self, firmware: (u8, u8)) -> bool {
        let min_minor = if self == Model::Storage { 54 } else { 8 };
        firmware.0 > 0 || firmware.1 >= min_minor
    }
}

/// Internal slot number: HOTP n → 0x10 + n, TOTP n → 0x20 + n.
fn internal_slot(slot: Slot) -> Result<u8> {
    let (base, count) = match slot.kind {
        OtpKind::Hotp => (0x10, HOTP_SLOTS),
        OtpKind::Totp => (0x20, TOTP_SLOTS),
    };
    if slot.index >= count {
        return Err(Error::InvalidArgument(format!(
            "Nitrokey {} slots are 0..={}, not {}",
            if slot.kind == OtpKind::Hotp {
                "HOTP"
            } else {
                "TOTP"
            },
            count - 1,
            slot.index
        )));
    }
    Ok(base + slot.index)
}

/// `slot_config` bits.
const CONFIG_8_DIGITS: u8 = 0x01;

/// An opened Nitrokey Pro / Storage / Librem Key.
pub struct Nitrokey {
    transport: Box<dyn HidTransport>,
    info: TokenInfo,
    model: Model,
    firmware: (u8, u8),
    timing: Timing,
    temporary_admin: Option<Zeroizing<[u8; PASSWORD_LEN]>>,
}

impl Nitrokey {
    /// Opens the device: GET_STATUS gives firmware and card serial.
    pub fn open(
        transport: Box<dyn HidTransport>,
        model: Model,
        location: Location,
        emulated: bool,
    ) -> Result<Nitrokey> {
        let (vid, pid) = model.usb_id();
        let info = TokenInfo {
            family: model.family(),
            model: model.name().to_owned(),
            serial: transport.describe(),
            firmware: String::new(),
            usb_id: format!("{vid:04x}:{pid:04x}"),
            free_hotp_slots: None,
            free_totp_slots: None,
            emulated,
            location,
        };
        let mut key = Nitrokey {
            transport,
            info,
            model,
            firmware: (0, 0),
            timing: model.timing(),
            temporary_admin: None,
        };
        let (firmware, serial) = key.identity()?;
        key.firmware = firmware;
        key.info.firmware = format!("{}.{}", key.firmware.0, key.firmware.1);
        key.info.serial = format!("{serial:08X}");
        debug!(device = %key.info.label(), firmware = %key.info.firmware, "Nitrokey opened");
        Ok(key)
    }

    fn device(&self) -> String {
        self.info.label()
    }

    /// Firmware `(major, minor)` and serial: GET_STATUS on the Pro and Librem Key,
    /// GET_DEVICE_STATUS (`ActiveSmartCardID`) on the Storage, as libnitrokey reads them.
    fn identity(&mut self) -> Result<((u8, u8), u32)> {
        let le32 =
            |p: &[u8], at: usize| u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        if self.model == Model::Storage {
            use packet::storage_status as at;
            let status = self.transact(command::GET_DEVICE_STATUS, &[], "get device status")?;
            let p = &status.payload;
            return Ok((
                (p[at::VERSION_MAJOR], p[at::VERSION_MINOR]),
                le32(&p[..], at::SMART_CARD_ID),
            ));
        }
        let status = self.transact(command::GET_STATUS, &[], "get status")?;
        let p = &status.payload;
        Ok(((p[1], p[0]), le32(&p[..], 2)))
    }

    /// One request/response exchange, with libnitrokey's waiting rules; maps the command
    /// status to typed errors.
    fn transact(&mut self, cmd: u8, payload: &[u8], operation: &'static str) -> Result<Response> {
        let request = Request::new(cmd, payload);
        self.exchange(&request, operation)
    }

    fn exchange(&mut self, request: &Request, operation: &'static str) -> Result<Response> {
        self.transport.send_feature_report(request.as_bytes())?;
        sleep(self.timing.send_receive_delay);
        let start = Instant::now();
        let mut stale = 0;
        let mut busy_pause = self.timing.retry_timeout;
        loop {
            let mut buf = [0u8; REPORT_SIZE];
            let n = self.transport.get_feature_report(&mut buf)?;
            if n != REPORT_SIZE {
                return Err(self.protocol(operation, format!("{n}-byte report instead of 65")));
            }
            let response = Response::parse(&buf);
            let ours = response.last_command_crc == request.crc()
                && response.command_id == request.command();
            if response.device_status == device_status::BUSY && ours {
                if start.elapsed() >= BUSY_BUDGET {
                    let waited_ms = start.elapsed().as_millis() as u64;
                    return Err(Error::Busy {
                        device: self.device(),
                        operation,
                        waited_ms,
                    });
                }
                sleep(busy_pause);
                busy_pause = (busy_pause * 2).min(Duration::from_millis(300));
                continue;
            }
            if !ours || response.device_status == device_status::RECEIVED_REPORT {
                stale += 1;
                if stale > self.timing.receive_retries {
                    let waited_ms = start.elapsed().as_millis() as u64
                        + self.timing.send_receive_delay.as_millis() as u64;
                    return Err(Error::Timeout {
                        device: self.device(),
                        operation,
                        waited_ms,
                    });
                }
                sleep(self.timing.retry_timeout);
                continue;
            }
            if !response.crc_ok {
                // libnitrokey only warns here: Storage overlays status bytes after the CRC.
                warn!(device = %self.device(), operation, "response CRC mismatch (tolerated)");
            }
            return self.check_status(response, operation);
        }
    }

    fn check_status(&mut self, response: Response, operation: &'static str) -> Result<Response> {
        let device = self.device();
        let status = response.last_command_status;
        match status {
            command_status::OK | command_status::TIMESTAMP_WARNING => Ok(response),
            command_status::WRONG_CRC => Err(Error::Crc {
                device,
                what: "request (device side)",
            }),
            command_status::WRONG_PASSWORD => {
                let retries = self.admin_retries().ok();
                Err(Error::WrongPin {
                    device: self.device(),
                    retries: RetriesLeft(retries),
                })
            }
            command_status::NOT_AUTHORIZED => Err(Error::NotAuthorized { device, operation }),
            command_status::SLOT_NOT_PROGRAMMED => Err(Error::SlotNotProgrammed {
                device,
                slot: "requested".into(),
            }),
            command_status::NOT_SUPPORTED | command_status::UNKNOWN_COMMAND => {
                Err(Error::NotSupported {
                    device,
                    what: format!("{operation} (status {status})"),
                })
            }
            _ => Err(Error::Rejected {
                device,
                operation,
                reason: match status {
                    command_status::WRONG_SLOT => "wrong slot".into(),
                    command_status::NO_NAME_ERROR => "slot name missing".into(),
                    command_status::AES_DEC_FAILED => "AES decryption failed".into(),
                    _ => format!("device status {status}"),
                },
            }),
        }
    }

    fn protocol(&self, operation: &'static str, detail: String) -> Error {
        Error::Protocol {
            device: self.device(),
            operation,
            detail,
        }
    }

    /// Admin PIN retries left (GET_PASSWORD_RETRY_COUNT).
    pub fn admin_retries(&mut self) -> Result<u8> {
        let response = self.transact(command::GET_PASSWORD_RETRY_COUNT, &[], "read PIN retries")?;
        Ok(response.payload[0])
    }

    /// FIRST_AUTHENTICATE with the admin PIN; the device keeps a fresh temporary password.
    pub fn authenticate_admin(&mut self, pin: &Pin) -> Result<()> {
        if pin.expose().len() > PASSWORD_LEN {
            return Err(Error::InvalidArgument(
                "admin PIN longer than 25 bytes".into(),
            ));
        }
        let temporary = temporary_password();
        let mut payload = Zeroizing::new([0u8; 2 * PASSWORD_LEN]);
        payload[..pin.expose().len()].copy_from_slice(pin.expose());
        payload[PASSWORD_LEN..].copy_from_slice(&temporary[..]);
        self.temporary_admin = None;
        self.transact(
            command::FIRST_AUTHENTICATE,
            &payload[..],
            "admin authentication",
        )?;
        self.temporary_admin = Some(temporary);
        debug!(device = %self.device(), "admin authenticated");
        Ok(())
    }

    fn temporary_admin(&self, operation: &'static str) -> Result<[u8; PASSWORD_LEN]> {
        match &self.temporary_admin {
            Some(password) => Ok(**password),
            None => Err(Error::NotAuthorized {
                device: self.device(),
                operation,
            }),
        }
    }

    fn new_firmware(&self) -> bool {
        self.model.uses_send_otp_data(self.firmware)
    }

    fn max_key_len(&self) -> usize {
        if self.new_firmware() { 40 } else { 20 }
    }

    /// Writes a slot: `value` is the HOTP counter or the TOTP period.
    fn write_slot(
        &mut self,
        slot: Slot,
        key: &SecretKey,
        value: u64,
        digits: Digits,
    ) -> Result<()> {
        let internal = internal_slot(slot)?;
        if digits != Digits::SIX && digits != Digits::EIGHT {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!("{} digits (Nitrokey slots produce 6 or 8)", digits.get()),
            });
        }
        if key.len() > self.max_key_len() || key.is_empty() {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!(
                    "a {}-byte key (firmware {} takes 1 to {} bytes)",
                    key.len(),
                    self.info.firmware,
                    self.max_key_len()
                ),
            });
        }
        let config = if digits == Digits::EIGHT {
            CONFIG_8_DIGITS
        } else {
            0
        };
        if self.new_firmware() {
            self.write_slot_send_otp_data(internal, key, value, config)
        } else {
            self.write_slot_authorize(slot, internal, key, value, config)
        }
    }

    /// Firmware Pro ≥ 0.8 / Storage ≥ 0.54: SEND_OTP_DATA name, secret chunks, WRITE_TO_SLOT.
    fn write_slot_send_otp_data(
        &mut self,
        internal: u8,
        key: &SecretKey,
        value: u64,
        config: u8,
    ) -> Result<()> {
        let operation = "write slot";
        let password = Zeroizing::new(self.temporary_admin(operation)?);
        let mut chunks: Vec<(u8, u8, &[u8])> = vec![(b'N', 0, SLOT_NAME)];
        for (id, chunk) in key.expose().chunks(30).enumerate() {
            // At most 40 bytes of key: ids 0 and 1.
            chunks.push((b'S', id as u8, chunk));
        }
        for (kind, id, data) in chunks {
            let mut payload = Zeroizing::new([0u8; 57]);
            payload[..PASSWORD_LEN].copy_from_slice(&password[..]);
            payload[25] = kind;
            payload[26] = id;
            payload[27..27 + data.len()].copy_from_slice(data);
            self.transact(command::SEND_OTP_DATA, &payload[..], operation)?;
        }
        let mut payload = Zeroizing::new([0u8; 48]);
        payload[..PASSWORD_LEN].copy_from_slice(&password[..]);
        payload[25] = internal;
        payload[26..34].copy_from_slice(&value.to_le_bytes());
        payload[34] = config;
        self.transact(command::WRITE_TO_SLOT, &payload[..], operation)?;
        Ok(())
    }

    /// Old firmware: AUTHORIZE(CRC of the next packet) then WRITE_TO_SLOT with the secret.
    fn write_slot_authorize(
        &mut self,
        slot: Slot,
        internal: u8,
        key: &SecretKey,
        value: u64,
        config: u8,
    ) -> Result<()> {
        let mut payload = Zeroizing::new([0u8; 58]);
        payload[0] = internal;
        payload[1..1 + SLOT_NAME.len()].copy_from_slice(SLOT_NAME);
        payload[16..16 + key.len()].copy_from_slice(key.expose());
        payload[36] = config;
        match (slot.kind, self.model) {
            (OtpKind::Totp, _) => {
                let period = u16::try_from(value).map_err(|_| {
                    Error::InvalidArgument(format!("TOTP period {value} s does not fit"))
                })?;
                payload[50..52].copy_from_slice(&period.to_le_bytes());
            }
            (OtpKind::Hotp, Model::Storage) => {
                let text = value.to_string();
                if text.len() > 8 {
                    return Err(Error::NotSupported {
                        device: self.device(),
                        what: "an HOTP counter above 99999999 on this Storage firmware".into(),
                    });
                }
                payload[50..50 + text.len()].copy_from_slice(text.as_bytes());
            }
            (OtpKind::Hotp, _) => payload[50..58].copy_from_slice(&value.to_le_bytes()),
        }
        let write = Request::new(command::WRITE_TO_SLOT, &payload[..]);
        self.authorize(write.crc(), "write slot")?;
        self.exchange(&write, "write slot")?;
        Ok(())
    }

    /// Old firmware: AUTHORIZE the packet whose CRC is `crc`.
    fn authorize(&mut self, crc: u32, operation: &'static str) -> Result<()> {
        let password = Zeroizing::new(self.temporary_admin(operation)?);
        let mut payload = Zeroizing::new([0u8; 4 + PASSWORD_LEN]);
        payload[..4].copy_from_slice(&crc.to_le_bytes());
        payload[4..].copy_from_slice(&password[..]);
        self.transact(command::AUTHORIZE, &payload[..], operation)?;
        Ok(())
    }

    /// READ_SLOT: `None` for an empty slot, else the counter (HOTP) or period (TOTP) and
    /// whether it produces 8 digits.
    pub fn read_slot(&mut self, slot: Slot) -> Result<Option<(u64, bool)>> {
        let internal = internal_slot(slot)?;
        match self.transact(command::READ_SLOT, &[internal], "read slot") {
            Ok(response) => {
                let p = &response.payload;
                let counter =
                    u64::from_le_bytes([p[29], p[30], p[31], p[32], p[33], p[34], p[35], p[36]]);
                Ok(Some((counter, p[15] & CONFIG_8_DIGITS != 0)))
            }
            Err(Error::SlotNotProgrammed { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// GET_CODE: the OTP the slot produces now (advances an HOTP counter). TOTP first sets
    /// the device clock to the host time.
    pub fn code(&mut self, slot: Slot, digits: Digits, period: u32) -> Result<String> {
        let internal = internal_slot(slot)?;
        let now = unix_now();
        if slot.kind == OtpKind::Totp {
            let mut time = [0u8; 9];
            time[0] = 1;
            time[1..].copy_from_slice(&now.to_le_bytes());
            self.transact(command::SET_TIME, &time, "set time")?;
        }
        let mut payload = [0u8; 43];
        payload[0] = internal;
        if slot.kind == OtpKind::Totp {
            payload[1..9].copy_from_slice(&now.to_le_bytes());
            payload[9..17].copy_from_slice(&now.to_le_bytes());
            payload[17] = u8::try_from(period).unwrap_or(u8::MAX);
        }
        let response = self
            .transact(command::GET_CODE, &payload, "get code")
            .map_err(|err| self.name_slot(err, slot))?;
        let p = &response.payload;
        let code = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let modulus = 10u32.pow(u32::from(digits.get()));
        Ok(format!(
            "{:0width$}",
            code % modulus,
            width = usize::from(digits.get())
        ))
    }

    fn name_slot(&self, err: Error, slot: Slot) -> Error {
        match err {
            Error::SlotNotProgrammed { device, .. } => Error::SlotNotProgrammed {
                device,
                slot: slot.to_string(),
            },
            other => other,
        }
    }

    fn mismatch(&self, slot: Slot, detail: String) -> Error {
        Error::Rejected {
            device: self.device(),
            operation: "verify",
            reason: format!("{slot}: {detail}"),
        }
    }
}

/// 25 random printable characters, as libnitrokey generates temporary passwords.
fn temporary_password() -> Zeroizing<[u8; PASSWORD_LEN]> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut password = Zeroizing::new([0u8; PASSWORD_LEN]);
    let mut random = Zeroizing::new([0u8; PASSWORD_LEN]);
    rand::fill(&mut random[..]);
    for (out, r) in password.iter_mut().zip(random.iter()) {
        *out = ALPHABET[usize::from(*r) % ALPHABET.len()];
    }
    password
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
