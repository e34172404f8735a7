//! Emulated Nitrokey 3: the device side of CTAPHID (channel allocation, message assembly,
//! KEEPALIVE while processing, ERROR on framing faults) and of the Secrets App (SELECT, Put,
//! Delete, Reset, List, Calculate), answering in 64-byte input reports.
//!
//! User presence: Put, Delete and Reset ask for a touch (`ctaphid.md`, "Authentication
//! Requirements"), as does Calculate on a credential registered with the touch property.
//! While the device waits it sends KEEPALIVE UP_NEEDED every 100 ms (CTAP 2.1 §11.2.9.2.1);
//! by default the emulated user touches it after `touch_delay_ms` (250 ms). With
//! `manual_touch` the device waits for [`super::press`] (`keyprov emulator touch --presence`)
//! and gives up after `up_timeout_ms` (15 s, `UP_TIMEOUT_MILLISECONDS` in the app's
//! `src/lib.rs`) with SW 6982, as `user_present()` maps a timeout.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::store::{self, DeviceState, Fault, Nitrokey3Credential, Nitrokey3State};
use crate::error::{Error, Result};
use crate::nitrokey3::apdu::{self, StatusWord, ins, kind, tag};
use crate::nitrokey3::ctaphid::{
    self, Assembler, InitResponse, PACKET_SIZE, Packet, command, keepalive,
};
use crate::nitrokey3::request::{self, Apdu, Register};
use crate::otp::hotp_value_with;

/// KEEPALIVE interval (CTAP 2.1 §11.2.9.2.1: "every 100 ms").
const KEEPALIVE_EVERY: Duration = Duration::from_millis(100);
/// How long a `Busy` fault keeps the device busy (longer than the driver retries).
const BUSY_FAULT: Duration = Duration::from_secs(3);
/// CTAPHID_INIT answer: protocol 2, device version 1.7.0 (a Nitrokey 3 firmware release),
/// capabilities WINK | CBOR.
const DEVICE_VERSION: [u8; 3] = [1, 7, 0];
const CAPABILITIES: u8 = 0x01 | 0x04;

/// How a request waiting for user presence gets it.
enum Presence {
    /// The request needs no touch, or got it.
    Given,
    /// The emulated user touches the device at `at`; one later than `deadline` (a touch delay
    /// beyond the presence timeout) comes too late and the request ends with SW 6982 then.
    At { at: Instant, deadline: Instant },
    /// A press (the device's touch counter passing `touches`) before `deadline`.
    Press { touches: u64, deadline: Instant },
}

/// A request being processed.
struct Pending {
    cid: u32,
    apdu: Zeroizing<Vec<u8>>,
    presence: Presence,
    /// Processing time after the touch.
    latency: Duration,
    /// When the answer is ready, once presence is given.
    ready_at: Option<Instant>,
    next_keepalive: Instant,
    /// The `Timeout` fault: nothing is ever sent.
    silent: bool,
}

/// The device's RAM: channels, a half-received message, queued input reports.
#[derive(Default)]
pub struct Session {
    channels: Vec<u32>,
    assembler: Assembler,
    outbox: VecDeque<Zeroizing<[u8; PACKET_SIZE]>>,
    pending: Option<Pending>,
    busy_until: Option<Instant>,
}

impl Session {
    /// Handles an output report (`[report ID 0, 64 bytes]`). Errors only when the device
    /// unplugs itself.
    pub fn write(&mut self, dir: &Path, serial: &str, report: &[u8]) -> Result<()> {
        let data = report.get(1..).unwrap_or_default();
        let Some(packet) = Packet::parse(data).filter(|_| data.len() >= 7) else {
            return Ok(());
        };
        let message = match packet {
            Packet::Init {
                cid,
                cmd: command::INIT,
                bcnt,
                data,
            } => {
                self.init(cid, bcnt, data);
                return Ok(());
            }
            // Only CTAPHID_INIT may use the broadcast channel (or 0, which is reserved).
            Packet::Init { cid, .. } if !self.channels.contains(&cid) => {
                self.error(cid, ctaphid::error::INVALID_CHANNEL);
                return Ok(());
            }
            Packet::Init {
                cid,
                cmd: command::CANCEL,
                ..
            } => {
                if self.pending.as_ref().is_some_and(|p| p.cid == cid) {
                    self.pending = None;
                }
                return Ok(());
            }
            Packet::Init { cid, .. } if self.pending.as_ref().is_some_and(|p| p.cid != cid) => {
                self.error(cid, ctaphid::error::CHANNEL_BUSY);
                return Ok(());
            }
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } => self.assembler.start(cid, cmd, bcnt, data),
            Packet::Cont { cid, seq, data } => {
                if self.assembler.channel() != Some(cid) {
                    // A stray continuation is ignored (CTAP 2.1 §11.2.4).
                    return Ok(());
                }
                self.assembler.push(seq, data)
            }
        };
        match message {
            Ok(Some(message)) => self.dispatch(dir, serial, message),
            Ok(None) => Ok(()),
            Err(ctaphid::FramingError::BadLength(_)) => {
                self.error(packet.cid(), ctaphid::error::INVALID_LEN);
                Ok(())
            }
            Err(_) => {
                self.error(packet.cid(), ctaphid::error::INVALID_SEQ);
                Ok(())
            }
        }
    }

    /// CTAP 2.1 §11.2.9.1.3: on the broadcast channel a new channel is allocated; on an
    /// allocated channel the channel is resynchronized (its request abandoned).
    fn init(&mut self, cid: u32, bcnt: u16, data: &[u8]) {
        if bcnt != 8 || data.len() < 8 {
            self.error(cid, ctaphid::error::INVALID_LEN);
            return;
        }
        let allocated = if cid == ctaphid::BROADCAST_CID {
            let next = self.channels.last().map_or(1, |c| c + 1);
            self.channels.push(next);
            next
        } else if self.channels.contains(&cid) {
            if self.pending.as_ref().is_some_and(|p| p.cid == cid) {
                self.pending = None;
            }
            if self.assembler.channel() == Some(cid) {
                self.assembler.reset();
            }
            cid
        } else {
            self.error(cid, ctaphid::error::INVALID_CHANNEL);
            return;
        };
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&data[..8]);
        let answer = InitResponse {
            nonce,
            cid: allocated,
            protocol: 2,
            version: DEVICE_VERSION,
            capabilities: CAPABILITIES,
        };
        self.queue(cid, command::INIT, &answer.to_bytes());
    }

    fn error(&mut self, cid: u32, code: u8) {
        self.queue(cid, command::ERROR, &[code]);
    }

    fn queue(&mut self, cid: u32, cmd: u8, data: &[u8]) {
        // Answers are at most a few hundred bytes, far below the CTAPHID maximum.
        for packet in ctaphid::split(cid, cmd, data).unwrap_or_default() {
            self.outbox.push_back(Zeroizing::new(packet));
        }
    }

    fn dispatch(&mut self, dir: &Path, serial: &str, message: ctaphid::Message) -> Result<()> {
        match message.cmd {
            command::PING => self.queue(message.cid, command::PING, &message.data),
            command::WINK => self.queue(message.cid, command::WINK, &[]),
            command::SECRETS => return self.accept(dir, serial, message),
            _ => self.error(message.cid, ctaphid::error::INVALID_CMD),
        }
        Ok(())
    }

    /// A Secrets App request arrived: faults fire now, the answer is produced later (after
    /// the touch and the latency) by [`Session::poll`].
    fn accept(&mut self, dir: &Path, serial: &str, message: ctaphid::Message) -> Result<()> {
        let now = Instant::now();
        if self.busy_until.is_some_and(|t| now < t) {
            self.error(message.cid, ctaphid::error::CHANNEL_BUSY);
            return Ok(());
        }
        let ins = message.data.get(1).copied();
        let changes = matches!(ins, Some(ins::PUT | ins::DELETE | ins::RESET));
        let label_touch = ins == Some(ins::CALCULATE);
        let (fault, state) = store::update(dir, serial, |state| {
            let fault = match state.faults.first() {
                Some(&fault) if changes => {
                    state.faults.remove(0);
                    if fault == Fault::UnplugMidWrite {
                        state.plugged = false;
                    }
                    Some(fault)
                }
                _ => None,
            };
            Ok((fault, state.clone()))
        })?;
        let nk3 = state.nitrokey3.clone().unwrap_or_default();
        let mut silent = false;
        match fault {
            Some(Fault::UnplugMidWrite) => {
                return Err(Error::Unplugged {
                    device: format!("emulated nitrokey3 {serial}"),
                    operation: "write report",
                });
            }
            Some(Fault::Busy) => {
                self.busy_until = Some(now + BUSY_FAULT);
                self.error(message.cid, ctaphid::error::CHANNEL_BUSY);
                return Ok(());
            }
            Some(Fault::Crc) => {
                self.error(message.cid, ctaphid::error::INVALID_SEQ);
                return Ok(());
            }
            Some(Fault::StatusWord(sw)) => {
                self.queue(message.cid, command::SECRETS, &sw.to_be_bytes());
                return Ok(());
            }
            Some(Fault::Timeout) => silent = true,
            None => {}
        }
        let touch = changes || (label_touch && calculate_needs_touch(&nk3, &message.data));
        let presence = match (touch, nk3.manual_touch) {
            (false, _) => Presence::Given,
            (true, false) => Presence::At {
                at: after(now, nk3.touch_delay_ms),
                deadline: after(now, nk3.up_timeout_ms),
            },
            (true, true) => Presence::Press {
                touches: nk3.touches,
                deadline: after(now, nk3.up_timeout_ms),
            },
        };
        let latency = Duration::from_millis(if changes {
            state.latency.write_ms
        } else {
            state.latency.other_ms
        });
        let ready_at = matches!(presence, Presence::Given).then_some(now + latency);
        self.pending = Some(Pending {
            cid: message.cid,
            apdu: message.data,
            presence,
            latency,
            ready_at,
            next_keepalive: now + KEEPALIVE_EVERY,
            silent,
        });
        Ok(())
    }

    /// Whether the pending request got its touch by `now`; a touch not given before the
    /// deadline (manual, or automatic but later than the timeout) ends the request with SW
    /// 6982 (`Err`).
    fn presence_given(&mut self, dir: &Path, serial: &str, now: Instant) -> Result<bool, ()> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(false);
        };
        let given = match pending.presence {
            Presence::Given => true,
            Presence::At { at, deadline } => {
                if at > deadline && now >= deadline {
                    return Err(());
                }
                now >= at
            }
            Presence::Press { touches, deadline } => {
                let pressed = store::load(dir, serial)
                    .ok()
                    .and_then(|s| s.nitrokey3)
                    .is_some_and(|nk3| nk3.touches > touches);
                if !pressed && now >= deadline {
                    return Err(());
                }
                pressed
            }
        };
        if given && pending.ready_at.is_none() {
            pending.presence = Presence::Given;
            pending.ready_at = Some(now + pending.latency);
        }
        Ok(given)
    }

    /// The next input report, if one is due now: queued answers first, then a finished
    /// request's answer, then a KEEPALIVE.
    pub fn poll(
        &mut self,
        dir: &Path,
        serial: &str,
    ) -> Result<Option<Zeroizing<[u8; PACKET_SIZE]>>> {
        if let Some(report) = self.outbox.pop_front() {
            return Ok(Some(report));
        }
        let now = Instant::now();
        if self.pending.as_ref().is_none_or(|p| p.silent) {
            return Ok(None);
        }
        let given = match self.presence_given(dir, serial, now) {
            Ok(given) => given,
            Err(()) => {
                // Taken only here and below: a request is answered once.
                if let Some(pending) = self.pending.take() {
                    let sw = StatusWord::SECURITY_STATUS_NOT_SATISFIED.to_bytes();
                    self.queue(pending.cid, command::SECRETS, &sw);
                }
                return Ok(self.outbox.pop_front());
            }
        };
        let Some(pending) = self.pending.as_mut() else {
            return Ok(None);
        };
        if pending.ready_at.is_some_and(|t| now >= t) {
            let Some(pending) = self.pending.take() else {
                return Ok(None);
            };
            let reply = execute(dir, serial, &pending.apdu)?;
            self.queue(pending.cid, command::SECRETS, &reply);
            return Ok(self.outbox.pop_front());
        }
        if now >= pending.next_keepalive {
            pending.next_keepalive += KEEPALIVE_EVERY;
            let status = if given {
                keepalive::PROCESSING
            } else {
                keepalive::UP_NEEDED
            };
            let cid = pending.cid;
            self.queue(cid, command::KEEPALIVE, &[status]);
            return Ok(self.outbox.pop_front());
        }
        Ok(None)
    }

    /// When [`Session::poll`] may have something next (`None`: nothing is coming).
    pub fn next_event(&self) -> Option<Instant> {
        if !self.outbox.is_empty() {
            return Some(Instant::now());
        }
        let pending = self.pending.as_ref().filter(|p| !p.silent)?;
        let mut next = pending.next_keepalive;
        match (pending.ready_at, &pending.presence) {
            (Some(ready), _) => next = next.min(ready),
            (None, Presence::At { at, deadline }) => next = next.min(*at.min(deadline)),
            // A press is noticed by polling; the caller polls at least every few ms.
            (None, Presence::Press { deadline, .. }) => next = next.min(*deadline),
            (None, Presence::Given) => {}
        }
        Some(next)
    }
}

/// `ms` milliseconds after `now`; a delay too long for the clock (a hand-edited state file's
/// `4294967296000`) is a year, which no request waits for.
fn after(now: Instant, ms: u64) -> Instant {
    let year = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(Duration::from_millis(ms).min(year))
        .unwrap_or(now)
}

fn calculate_needs_touch(nk3: &Nitrokey3State, request: &[u8]) -> bool {
    let Ok(apdu) = Apdu::parse(request) else {
        return false;
    };
    let Some((label, _)) = request::leading(apdu.data, tag::NAME) else {
        return false;
    };
    find(nk3, label).is_some_and(|c| c.properties & apdu::property::REQUIRE_TOUCH != 0)
}

fn find<'a>(nk3: &'a Nitrokey3State, label: &[u8]) -> Option<&'a Nitrokey3Credential> {
    nk3.credentials.iter().find(|c| c.label.as_bytes() == label)
}

/// Runs a request against the stored state; the answer is `SW1 SW2 data`.
fn execute(dir: &Path, serial: &str, request: &[u8]) -> Result<Vec<u8>> {
    let path = store::state_path(dir, serial);
    store::update(dir, serial, |state| {
        let firmware = state.firmware_parts();
        let serial_number = state.serial;
        let nk3 = nk3_state(state, &path)?;
        let (sw, data) = match respond(nk3, request, firmware, serial_number) {
            Ok(data) => (StatusWord::SUCCESS, data),
            Err(sw) => (sw, Vec::new()),
        };
        let mut reply = sw.to_bytes().to_vec();
        reply.extend_from_slice(&data);
        Ok(reply)
    })
}

fn nk3_state<'a>(state: &'a mut DeviceState, path: &Path) -> Result<&'a mut Nitrokey3State> {
    state
        .nitrokey3
        .as_mut()
        .ok_or_else(|| Error::EmulatorState {
            path: path.to_owned(),
            detail: "Nitrokey 3 device without Nitrokey 3 state".into(),
        })
}

/// The Secrets App (`src/authenticator.rs` `inner_respond`), for the commands emulated.
fn respond(
    nk3: &mut Nitrokey3State,
    request: &[u8],
    firmware: [u8; 3],
    serial: u32,
) -> std::result::Result<Vec<u8>, StatusWord> {
    let apdu = Apdu::parse(request)?;
    if apdu.cla != 0 {
        return Err(StatusWord::CLASS_NOT_SUPPORTED);
    }
    match (apdu.ins, apdu.p1, apdu.p2) {
        (ins::SELECT, 0x04, 0x00) => Ok(select(firmware, serial)),
        (ins::PUT, 0, 0) => put(nk3, apdu.data),
        (ins::DELETE, 0, 0) => {
            let (label, _) =
                request::leading(apdu.data, tag::NAME).ok_or(StatusWord::INCORRECT_DATA)?;
            let before = nk3.credentials.len();
            nk3.credentials.retain(|c| c.label.as_bytes() != label);
            if nk3.credentials.len() == before {
                return Err(StatusWord::NOT_FOUND);
            }
            Ok(Vec::new())
        }
        (ins::RESET, 0xDE, 0xAD) => {
            nk3.credentials.clear();
            Ok(Vec::new())
        }
        (ins::LIST, 0, 0) => list(nk3, apdu.data.first().copied().unwrap_or(0)),
        (ins::CALCULATE, 0, 1) => calculate(nk3, apdu.data),
        (ins::LIST | ins::CALCULATE | ins::PUT | ins::DELETE | ins::RESET | ins::SELECT, _, _) => {
            Err(StatusWord::INCORRECT_P1_P2)
        }
        _ => Err(StatusWord::INSTRUCTION_NOT_SUPPORTED),
    }
}

/// `79 03 version`, `71 08 salt`, `8F 04 serial` (`AnswerToSelect`).
fn select(firmware: [u8; 3], serial: u32) -> Vec<u8> {
    let mut out = vec![tag::VERSION, 3, firmware[0], firmware[1], firmware[2]];
    out.extend_from_slice(&[tag::NAME, 8]);
    out.extend_from_slice(&u64::from(serial).to_be_bytes());
    out.extend_from_slice(&[tag::SERIAL_NUMBER, 4]);
    out.extend_from_slice(&serial.to_be_bytes());
    out
}

/// `register()`: no overwrite (6983), a store limit (6A84).
fn put(nk3: &mut Nitrokey3State, data: &[u8]) -> std::result::Result<Vec<u8>, StatusWord> {
    let register = Register::parse(data)?;
    if usize::from(nk3.max_credentials) <= nk3.credentials.len() {
        return Err(StatusWord::NOT_ENOUGH_MEMORY);
    }
    if find(nk3, register.label).is_some() {
        return Err(StatusWord::OPERATION_BLOCKED);
    }
    let label =
        String::from_utf8(register.label.to_vec()).map_err(|_| StatusWord::INCORRECT_DATA)?;
    nk3.credentials.push(Nitrokey3Credential {
        label,
        kind: register.kind,
        algorithm: register.algorithm,
        digits: register.digits,
        secret: hex::encode(register.secret),
        counter: register.counter,
        properties: register.properties,
    });
    Ok(Vec::new())
}

/// Version 0: `72 len [kind|alg, label]`; version 1 adds the properties byte.
fn list(nk3: &Nitrokey3State, version: u8) -> std::result::Result<Vec<u8>, StatusWord> {
    if version > 1 {
        return Err(StatusWord::INCORRECT_DATA);
    }
    let mut out = Vec::new();
    for credential in &nk3.credentials {
        let extra = usize::from(version);
        out.push(tag::NAME_LIST);
        // Labels are TLV values (< 128 bytes), so the length fits one byte.
        out.push((credential.label.len() + 1 + extra) as u8);
        out.push(credential.kind | credential.algorithm);
        out.extend_from_slice(credential.label.as_bytes());
        if version == 1 {
            out.push(credential.properties);
        }
    }
    Ok(out)
}

/// `calculate()`: TOTP over the host's challenge, HOTP over the stored counter (bumped);
/// the answer is `76 05 digits truncated(4)`.
fn calculate(nk3: &mut Nitrokey3State, data: &[u8]) -> std::result::Result<Vec<u8>, StatusWord> {
    let (label, rest) = request::leading(data, tag::NAME).ok_or(StatusWord::INCORRECT_DATA)?;
    let (challenge, _) =
        request::leading(rest, tag::CHALLENGE).ok_or(StatusWord::INCORRECT_DATA)?;
    let label = label.to_vec();
    let challenge = challenge.to_vec();
    let credential = nk3
        .credentials
        .iter_mut()
        .find(|c| c.label.as_bytes() == label)
        .ok_or(StatusWord::NOT_FOUND)?;
    let hash = apdu::hash_of(credential.algorithm).ok_or(StatusWord::FUNCTION_NOT_SUPPORTED)?;
    let secret = Zeroizing::new(
        hex::decode(&credential.secret).map_err(|_| StatusWord::PERSISTENT_EXECUTION_ERROR)?,
    );
    let moving = match credential.kind {
        kind::TOTP => {
            // The challenge is used as sent; the host sends 8 bytes (u64 BE).
            let bytes: [u8; 8] = challenge
                .as_slice()
                .try_into()
                .map_err(|_| StatusWord::INCORRECT_DATA)?;
            u64::from_be_bytes(bytes)
        }
        kind::HOTP => {
            let counter = credential
                .counter
                .ok_or(StatusWord::PERSISTENT_EXECUTION_ERROR)?;
            credential.counter = Some(
                counter
                    .checked_add(1)
                    .ok_or(StatusWord::PERSISTENT_EXECUTION_ERROR)?,
            );
            u64::from(counter)
        }
        _ => return Err(StatusWord::CONDITIONS_OF_USE_NOT_SATISFIED),
    };
    let truncated = hotp_value_with(hash, &secret, moving);
    let mut out = vec![tag::TRUNCATED_RESPONSE, 5, credential.digits];
    out.extend_from_slice(&truncated.to_be_bytes());
    Ok(out)
}

/// The code Calculate gives for `label` at `challenge` (TOTP) or at the stored counter
/// (HOTP, which then advances when `advance` is set), as the host would print it.
pub fn code(
    nk3: &mut Nitrokey3State,
    label: &str,
    challenge: u64,
    advance: bool,
) -> std::result::Result<String, StatusWord> {
    let request = apdu::calculate(label.as_bytes(), challenge);
    let parsed = Apdu::parse(&request)?;
    let mut scratch;
    let target = if advance {
        nk3
    } else {
        scratch = nk3.clone();
        &mut scratch
    };
    let answer = calculate(target, parsed.data)?;
    apdu::parse_calculate(&answer).ok_or(StatusWord::PERSISTENT_EXECUTION_ERROR)
}
