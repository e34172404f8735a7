//! Nitrokey 3 (Trussed firmware) through its Secrets App: HOTP/TOTP credentials with SHA-1
//! or SHA-256, reached over the FIDO HID interface (usage page 0xF1D0) in CTAPHID vendor
//! command 0x70, as pynitrokey's `nitropy nk3 secrets` does.
//!
//! Layers: [`ctaphid`] (64-byte packets, channels, keepalive), [`apdu`] (Secrets App APDUs,
//! TLVs, status words; [`request`] parses them as the device does, for the emulator), [`Nitrokey3`] (one allocated channel, request/response with
//! keepalive handling, SELECT for version and serial) and the [`crate::Token`] impl in
//! `token.rs`, which maps the station's numbered slots to credential ids `keyprov-hotp-<n>`
//! and `keyprov-totp-<n>`.

pub mod apdu;
pub mod ctaphid;
pub mod request;
mod token;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::debug;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::token::{Family, Location, OtpKind, Slot, TokenInfo, TouchPrompt};
use crate::transport::HidTransport;
use apdu::StatusWord;
use ctaphid::{Packet, command, keepalive};

/// Nitrokey USB vendor ID.
pub const VENDOR_ID: u16 = 0x20A0;
/// Nitrokey 3 product ID (pynitrokey `PID_NITROKEY3_DEVICE`); its bootloaders are 0x42DD
/// (LPC55) and 0x42E8 (nRF52) and have no Secrets App.
pub const PRODUCT_ID: u16 = 0x42B2;
/// The FIDO HID usage page (CTAP 2.1 §11.2.8.1); the Nitrokey 3 has no other HID interface.
pub const FIDO_USAGE_PAGE: u16 = 0xF1D0;
/// HOTP slots offered (0–2, as on the Nitrokey Pro).
pub const HOTP_SLOTS: u8 = 3;
/// TOTP slots offered (0–14, as on the Nitrokey Pro).
pub const TOTP_SLOTS: u8 = 15;
/// Longest key written. *Inference*: `ctaphid.md` says the app "manages to process 320+ bits";
/// 64 bytes (one HMAC block) is what this driver promises.
pub const MAX_KEY_LEN: usize = 64;

/// No packet at all for this long means the device stopped answering.
const SILENCE: Duration = Duration::from_millis(1500);
/// Longest wait for one answer while keepalives arrive (a touch the user does not give ends
/// on the device's side with SW 6982 well before this).
const LONGEST_ANSWER: Duration = Duration::from_secs(40);
/// How long a busy channel is retried (python-fido2 waits 100 ms between tries).
const BUSY_RETRY: Duration = Duration::from_millis(1000);

/// The credential id of a slot: `keyprov-hotp-<n>` / `keyprov-totp-<n>`.
pub fn credential_id(slot: Slot) -> String {
    match slot.kind {
        OtpKind::Hotp => format!("keyprov-hotp-{}", slot.index),
        OtpKind::Totp => format!("keyprov-totp-{}", slot.index),
    }
}

/// The slot a credential id names, for ids this driver writes.
pub fn slot_of(label: &[u8]) -> Option<Slot> {
    let text = std::str::from_utf8(label).ok()?;
    let (kind, number) = if let Some(n) = text.strip_prefix("keyprov-hotp-") {
        (OtpKind::Hotp, n)
    } else {
        (OtpKind::Totp, text.strip_prefix("keyprov-totp-")?)
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.len() > 3 {
        return None;
    }
    let index: u8 = number.parse().ok()?;
    let limit = match kind {
        OtpKind::Hotp => HOTP_SLOTS,
        OtpKind::Totp => TOTP_SLOTS,
    };
    (index < limit && number == index.to_string()).then_some(Slot { kind, index })
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An opened Nitrokey 3: one CTAPHID channel to its Secrets App.
pub struct Nitrokey3 {
    transport: Box<dyn HidTransport>,
    cid: u32,
    pub(crate) info: TokenInfo,
    /// Told when the device waits for a touch (see [`Token::on_touch_needed`]).
    pub(crate) touch_prompt: Option<TouchPrompt>,
}

impl Nitrokey3 {
    /// Allocates a channel (CTAPHID_INIT) and SELECTs the Secrets App for its version and
    /// serial.
    pub fn open(
        transport: Box<dyn HidTransport>,
        location: Location,
        emulated: bool,
    ) -> Result<Self> {
        let info = TokenInfo {
            family: Family::Nitrokey3,
            model: "Nitrokey 3".into(),
            serial: String::new(),
            firmware: String::new(),
            usb_id: format!("{VENDOR_ID:04x}:{PRODUCT_ID:04x}"),
            free_hotp_slots: None,
            free_totp_slots: None,
            emulated,
            location,
        };
        let mut key = Nitrokey3 {
            transport,
            cid: ctaphid::BROADCAST_CID,
            info,
            touch_prompt: None,
        };
        key.cid = key.allocate_channel()?;
        let data = key.secrets(&apdu::select(), "select Secrets App")?;
        let select = apdu::parse_select(&data)
            .ok_or_else(|| key.protocol("select Secrets App", "malformed SELECT answer".into()))?;
        key.info.serial = match select.serial {
            Some(serial) => format!("{:08X}", u32::from_be_bytes(serial)),
            // Secrets App versions before the serial tag: no stable name for the device.
            None => "unknown".into(),
        };
        key.info.firmware = match select.version {
            Some([a, b, c]) => format!("{a}.{b}.{c}"),
            None => "unknown".into(),
        };
        debug!(device = %key.device(), firmware = %key.info.firmware, "Nitrokey 3 opened");
        Ok(key)
    }

    /// Identity as read when the handle was opened.
    pub fn info(&self) -> &TokenInfo {
        &self.info
    }

    /// The device waits for a touch: says so at info level (the operator must act) and tells
    /// the handle's prompt, if one is set.
    fn ask_for_touch(&mut self, operation: &'static str) {
        let line = format!("touch the Nitrokey 3 {}", self.info.serial);
        tracing::info!(device = %self.device(), operation, "{line}");
        if let Some(prompt) = self.touch_prompt.as_mut() {
            prompt(&line);
        }
    }

    /// `nitrokey3 SERIAL`, or the HID path before the serial is known.
    pub(crate) fn device(&self) -> String {
        if self.info.serial.is_empty() {
            self.transport.describe()
        } else {
            self.info.label()
        }
    }

    fn protocol(&self, operation: &'static str, detail: String) -> Error {
        Error::Protocol {
            device: self.device(),
            operation,
            detail,
        }
    }

    /// CTAP 2.1 §11.2.9.1.3: CTAPHID_INIT with a random nonce on the broadcast channel; the
    /// answer echoing the nonce names our channel.
    fn allocate_channel(&mut self) -> Result<u32> {
        let nonce: [u8; 8] = rand::random();
        self.send(ctaphid::BROADCAST_CID, command::INIT, &nonce)?;
        let started = Instant::now();
        loop {
            let answer = self.receive(ctaphid::BROADCAST_CID, command::INIT, "allocate channel")?;
            match ctaphid::InitResponse::parse(&answer) {
                Some(init) if init.nonce == nonce => {
                    if init.cid == 0 || init.cid == ctaphid::BROADCAST_CID {
                        let detail = format!("CTAPHID_INIT allocated channel {:08x}", init.cid);
                        return Err(self.protocol("allocate channel", detail));
                    }
                    return Ok(init.cid);
                }
                // Another host's INIT answer on the broadcast channel: keep waiting for ours.
                Some(_) if started.elapsed() < SILENCE => continue,
                _ => {
                    let detail = "no CTAPHID_INIT answer with our nonce".into();
                    return Err(self.protocol("allocate channel", detail));
                }
            }
        }
    }

    fn send(&mut self, cid: u32, cmd: u8, data: &[u8]) -> Result<()> {
        let packets =
            ctaphid::split(cid, cmd, data).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        // A Put's packets carry the key: wiped when dropped, sent or not.
        let packets = Zeroizing::new(packets);
        for packet in packets.iter() {
            // hidapi convention: report ID 0 first (the FIDO interface has no numbered reports).
            let mut report = Zeroizing::new([0u8; 1 + ctaphid::PACKET_SIZE]);
            report[1..].copy_from_slice(packet);
            self.transport.send_output_report(&report[..])?;
        }
        Ok(())
    }

    /// Reads the answer to `cmd` on `cid`: packets of other channels are skipped, KEEPALIVE
    /// extends the wait (UP_NEEDED: the device waits for a touch), ERROR fails.
    fn receive(
        &mut self,
        cid: u32,
        cmd: u8,
        operation: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let started = Instant::now();
        let mut last_packet = Instant::now();
        let mut assembler = ctaphid::Assembler::default();
        let mut told_touch = false;
        loop {
            let mut buf = Zeroizing::new([0u8; ctaphid::PACKET_SIZE + 1]);
            let waited = last_packet.elapsed();
            if waited >= SILENCE || started.elapsed() >= LONGEST_ANSWER {
                return Err(Error::Timeout {
                    device: self.device(),
                    operation,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            let Some(n) = self
                .transport
                .read_input_report(&mut buf[..], SILENCE - waited)?
            else {
                continue;
            };
            last_packet = Instant::now();
            let Some(packet) = Packet::parse(&buf[..n]) else {
                continue;
            };
            if packet.cid() != cid {
                continue;
            }
            let done = match packet {
                Packet::Init {
                    cmd: command::KEEPALIVE,
                    data,
                    ..
                } => {
                    if data.first() == Some(&keepalive::UP_NEEDED) && !told_touch {
                        self.ask_for_touch(operation);
                        told_touch = true;
                    }
                    continue;
                }
                Packet::Init {
                    cmd: command::ERROR,
                    data,
                    ..
                } => {
                    return Err(self.ctaphid_error(data.first().copied().unwrap_or(0), operation));
                }
                Packet::Init {
                    cmd: got,
                    bcnt,
                    data,
                    ..
                } if got == cmd => assembler.start(cid, got, bcnt, data),
                Packet::Init { cmd: got, .. } => {
                    let detail =
                        format!("answer to CTAPHID command {cmd:#04x} has command {got:#04x}");
                    return Err(self.protocol(operation, detail));
                }
                Packet::Cont { seq, data, .. } => assembler.push(seq, data),
            };
            match done {
                Ok(Some(message)) => return Ok(message.data),
                Ok(None) => {}
                Err(err) => return Err(self.protocol(operation, err.to_string())),
            }
        }
    }

    fn ctaphid_error(&self, code: u8, operation: &'static str) -> Error {
        let device = self.device();
        match code {
            ctaphid::error::CHANNEL_BUSY => Error::Busy {
                device,
                operation,
                waited_ms: BUSY_RETRY.as_millis() as u64,
            },
            ctaphid::error::INVALID_SEQ
            | ctaphid::error::INVALID_LEN
            | ctaphid::error::MSG_TIMEOUT => Error::Hid {
                device,
                message: format!(
                    "{operation}: CTAPHID {} (the request arrived damaged)",
                    ctaphid::error::name(code)
                ),
            },
            _ => Error::Protocol {
                device,
                operation,
                detail: format!("CTAPHID error {code:#04x} {}", ctaphid::error::name(code)),
            },
        }
    }

    /// One CTAPHID request/response on our channel; a busy channel is retried for a second.
    pub fn call(
        &mut self,
        cmd: u8,
        data: &[u8],
        operation: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let started = Instant::now();
        loop {
            self.send(self.cid, cmd, data)?;
            match self.receive(self.cid, cmd, operation) {
                Err(Error::Busy { .. }) if started.elapsed() < BUSY_RETRY => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Error::Busy {
                    device, operation, ..
                }) => {
                    let waited_ms = started.elapsed().as_millis() as u64;
                    return Err(Error::Busy {
                        device,
                        operation,
                        waited_ms,
                    });
                }
                other => return other,
            }
        }
    }

    /// Sends a Secrets App APDU and returns the data of a 9000 answer; another status word is
    /// an error.
    pub fn secrets(
        &mut self,
        request: &[u8],
        operation: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (sw, data) = self.exchange(request, operation)?;
        if sw.is_success() {
            return Ok(data);
        }
        Err(self.status_error(sw, operation))
    }

    /// Sends a Secrets App APDU and returns the final status word with all the data, following
    /// 61xx with SendRemaining (pynitrokey `_send_receive_inner`).
    pub fn exchange(
        &mut self,
        request: &[u8],
        operation: &'static str,
    ) -> Result<(StatusWord, Zeroizing<Vec<u8>>)> {
        let (mut sw, mut data) = self.secrets_raw(request, operation)?;
        while sw.more_available() {
            let (next, more) = self.secrets_raw(&apdu::send_remaining(), operation)?;
            data.extend_from_slice(&more);
            sw = next;
        }
        Ok((sw, data))
    }

    fn secrets_raw(
        &mut self,
        request: &[u8],
        operation: &'static str,
    ) -> Result<(StatusWord, Zeroizing<Vec<u8>>)> {
        let reply = self.call(command::SECRETS, request, operation)?;
        let (sw, data) = apdu::split_reply(&reply).ok_or_else(|| {
            self.protocol(
                operation,
                format!("answer of {} bytes has no status word", reply.len()),
            )
        })?;
        Ok((sw, Zeroizing::new(data.to_vec())))
    }

    /// The error a status word means for the station.
    pub(crate) fn status_error(&self, sw: StatusWord, operation: &'static str) -> Error {
        let device = self.device();
        let reason = match sw {
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => {
                return Error::NotTouched {
                    device,
                    operation,
                    reason: format!(
                        "{sw}: the device was not touched in time (or the credential needs the \
                         PIN)"
                    ),
                };
            }
            StatusWord::NOT_ENOUGH_MEMORY => format!("{sw}: the credential store is full"),
            StatusWord::OPERATION_BLOCKED => format!("{sw}: a credential with this id exists"),
            _ => format!("status word {sw}"),
        };
        Error::Rejected {
            device,
            operation,
            reason,
        }
    }

    /// Deletes a credential; `false` when none had this id (SW 6A82).
    pub fn delete(&mut self, label: &[u8]) -> Result<bool> {
        let operation = "delete credential";
        match self.exchange(&apdu::delete(label), operation)? {
            (sw, _) if sw.is_success() => Ok(true),
            (StatusWord::NOT_FOUND, _) => Ok(false),
            (sw, _) => Err(self.status_error(sw, operation)),
        }
    }

    /// Lists the credentials.
    pub fn list(&mut self) -> Result<Vec<apdu::ListEntry>> {
        let data = self.secrets(&apdu::list(), "list credentials")?;
        apdu::parse_list(&data)
            .ok_or_else(|| self.protocol("list credentials", "malformed List answer".into()))
    }

    /// The OTP the device calculates for `label` (HOTP: at its counter, which advances; TOTP:
    /// at `challenge` = T). A missing credential is [`Error::SlotNotProgrammed`].
    pub fn calculate(&mut self, label: &str, challenge: u64) -> Result<Zeroizing<String>> {
        let operation = "calculate";
        let data = match self.exchange(&apdu::calculate(label.as_bytes(), challenge), operation)? {
            (sw, data) if sw.is_success() => data,
            (StatusWord::NOT_FOUND, _) => {
                let slot =
                    slot_of(label.as_bytes()).map_or_else(|| label.to_owned(), |s| s.to_string());
                return Err(Error::SlotNotProgrammed {
                    device: self.device(),
                    slot,
                });
            }
            (sw, _) => return Err(self.status_error(sw, operation)),
        };
        apdu::parse_calculate(&data)
            .map(Zeroizing::new)
            .ok_or_else(|| self.protocol(operation, "malformed Calculate answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids_map_to_slots_and_back() {
        for slot in [Slot::hotp(0), Slot::hotp(2), Slot::totp(0), Slot::totp(14)] {
            assert_eq!(slot_of(credential_id(slot).as_bytes()), Some(slot));
        }
        assert_eq!(credential_id(Slot::totp(3)), "keyprov-totp-3");
        for other in [
            "keyprov-hotp-3",
            "keyprov-totp-15",
            "keyprov-hotp-01",
            "keyprov-hotp-",
            "github",
        ] {
            assert_eq!(slot_of(other.as_bytes()), None, "{other}");
        }
    }
}
