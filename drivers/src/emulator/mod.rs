//! Emulated tokens: byte-exact device sides of the YubiKey, Nitrokey and Nitrokey 3 HID
//! protocols behind
//! the same [`HidTransport`] trait as real devices, with state persisted per device in a
//! directory (see [`store`]), configurable latency and injectable faults.
//!
//! The functions here are what `keyprov emulator ...` and the tests use: [`add`], [`list`],
//! [`touch`], [`touch_totp`], [`press`], [`set_touch_mode`], [`set_plugged`],
//! [`inject_fault`], [`set_latency`].

pub mod nitrokey;
pub mod nitrokey3;
pub mod store;
pub mod yubikey;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::token::Family;
use crate::transport::HidTransport;
use store::{DeviceState, Nitrokey3State, NitrokeyState, YubikeyState};
pub use store::{Fault, Latency};

/// First serial given to emulated devices of each family.
fn first_serial(family: Family) -> u32 {
    match family {
        Family::Yubikey => 10_000_001,
        Family::NitrokeyPro => 0x00A0_0001,
        Family::NitrokeyStorage => 0x00B0_0001,
        Family::Nitrokey3 => 0x00C0_0001,
    }
}

fn default_firmware(family: Family) -> &'static str {
    match family {
        Family::Yubikey => "5.4.3",
        Family::NitrokeyPro => "0.15",
        Family::NitrokeyStorage => "0.55",
        // The Secrets App version SELECT reports (4.x; `src/authenticator.rs` `VERSION`).
        Family::Nitrokey3 => "4.13.0",
    }
}

/// Checks and normalizes a `--firmware X.Y[.Z]` value for a family.
fn firmware_for(family: Family, firmware: Option<&str>) -> Result<String> {
    let text = firmware.unwrap_or(default_firmware(family));
    let parts: Vec<u8> = text
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::InvalidArgument(format!("firmware {text:?} is not X.Y or X.Y.Z")))?;
    match (family, parts.as_slice()) {
        (Family::Yubikey, [a, b]) => Ok(format!("{a}.{b}.0")),
        (Family::Yubikey | Family::Nitrokey3, [a, b, c]) => Ok(format!("{a}.{b}.{c}")),
        (Family::Nitrokey3, [a, b]) => Ok(format!("{a}.{b}.0")),
        (_, [a, b]) => Ok(format!("{a}.{b}")),
        _ => Err(Error::InvalidArgument(format!(
            "firmware {text:?} for {family}"
        ))),
    }
}

/// One emulated device as `keyprov emulator list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmulatedDevice {
    /// Family.
    pub family: Family,
    /// Model name.
    pub model: String,
    /// Serial as the driver reports it.
    pub serial: String,
    /// Firmware version.
    pub firmware: String,
    /// Whether it is plugged in.
    pub plugged: bool,
}

fn model_name(state: &DeviceState) -> String {
    match state.family {
        Family::Yubikey => {
            crate::yubikey::model_name(crate::yubikey::EMULATED_PID, state.firmware_parts()[0])
        }
        Family::NitrokeyPro => "Nitrokey Pro".into(),
        Family::NitrokeyStorage => "Nitrokey Storage".into(),
        Family::Nitrokey3 => "Nitrokey 3".into(),
    }
}

fn describe(state: &DeviceState) -> EmulatedDevice {
    EmulatedDevice {
        family: state.family,
        model: model_name(state),
        serial: state.serial_string(),
        firmware: state.firmware.clone(),
        plugged: state.plugged,
    }
}

/// Creates `count` new plugged-in devices with fresh serials and empty slots.
pub fn add(
    dir: &Path,
    family: Family,
    count: u32,
    firmware: Option<&str>,
) -> Result<Vec<EmulatedDevice>> {
    let firmware = firmware_for(family, firmware)?;
    let existing = store::load_all(dir)?;
    let next = existing
        .iter()
        .filter(|s| s.family == family)
        .map(|s| s.serial + 1)
        .max()
        .unwrap_or(first_serial(family));
    let mut added = Vec::new();
    for serial in (next..).take(count as usize) {
        let state = DeviceState {
            family,
            serial,
            firmware: firmware.clone(),
            plugged: true,
            generation: 1,
            latency: Latency::default_for(family),
            faults: Vec::new(),
            yubikey: (family == Family::Yubikey).then(YubikeyState::default),
            nitrokey: matches!(family, Family::NitrokeyPro | Family::NitrokeyStorage)
                .then(NitrokeyState::default),
            nitrokey3: (family == Family::Nitrokey3).then(Nitrokey3State::default),
        };
        store::create(dir, &state)?;
        added.push(describe(&state));
    }
    Ok(added)
}

/// Every emulated device in `dir` (plugged or not).
pub fn list(dir: &Path) -> Result<Vec<EmulatedDevice>> {
    Ok(store::load_all(dir)?.iter().map(describe).collect())
}

/// Finds a device by serial (case-insensitive for Nitrokey's hex serials). A serial spelled
/// as stored names its file directly; only other spellings read the whole directory (which
/// for a hub of devices, opened and touched one by one, would read every file each time).
fn resolve(dir: &Path, serial: &str) -> Result<String> {
    let serial = serial.trim();
    let plain = !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_alphanumeric());
    if plain && store::state_path(dir, serial).is_file() {
        return Ok(serial.to_owned());
    }
    let states = store::load_all(dir)?;
    states
        .iter()
        .map(DeviceState::serial_string)
        .find(|s| s.eq_ignore_ascii_case(serial))
        .ok_or_else(|| Error::NoSuchDevice {
            serial: serial.to_owned(),
        })
}

/// Presses the device's button: a YubiKey types the OTP of `slot` (default 1) on its
/// keyboard interface; a Nitrokey (no button) produces the HOTP code of `slot` (default 0)
/// as GET_CODE would, a Nitrokey 3 as Calculate on `keyprov-hotp-<slot>` would. Either way
/// the HOTP counter advances. Returns the OTP.
pub fn touch(dir: &Path, serial: &str, slot: Option<u8>) -> Result<String> {
    let serial = resolve(dir, serial)?;
    let path = store::state_path(dir, &serial);
    store::update(dir, &serial, |state| {
        if !state.plugged {
            return Err(Error::Unplugged {
                device: format!("emulated {serial}"),
                operation: "touch",
            });
        }
        match state.family {
            Family::Yubikey => yubikey::touch(state, slot.unwrap_or(1), &path),
            Family::Nitrokey3 => {
                nitrokey3_code(state, crate::Slot::hotp(slot.unwrap_or(0)), 0, true)
            }
            _ => nitrokey_touch(state, slot.unwrap_or(0), &path),
        }
    })
}

/// The slot numbers a family's device has for [`touch`] (HOTP) or [`touch_totp`] (TOTP), as
/// its driver's capabilities list them; `None` when it has no slot of that kind (a YubiKey's
/// TOTP).
pub fn touch_slots(family: Family, totp: bool) -> Option<std::ops::RangeInclusive<u8>> {
    match (family, totp) {
        (Family::Yubikey, false) => Some(1..=2),
        (Family::Yubikey, true) => None,
        (_, false) => Some(0..=crate::nitrokey3::HOTP_SLOTS - 1),
        (_, true) => Some(0..=crate::nitrokey3::TOTP_SLOTS - 1),
    }
}

/// The code a Nitrokey TOTP slot (0–14) gives now: GET_CODE on the slot, as the device
/// answers it (its own clock, as SET_TIME left it). Nothing changes on the device. A YubiKey
/// has no TOTP slot. A Nitrokey 3 keeps no clock nor period: its code is Calculate on
/// `keyprov-totp-<slot>` with `T = now / 30` (see [`touch_totp_period`]).
pub fn touch_totp(dir: &Path, serial: &str, slot: u8) -> Result<String> {
    touch_totp_period(dir, serial, slot, 30)
}

/// [`touch_totp`] with the host's TOTP period (only the Nitrokey 3 takes it from the host).
pub fn touch_totp_period(dir: &Path, serial: &str, slot: u8, period: u32) -> Result<String> {
    let serial = resolve(dir, serial)?;
    let mut state = store::load(dir, &serial)?;
    if state.family == Family::Nitrokey3 && state.plugged {
        let step = crate::nitrokey3::unix_now() / u64::from(period.max(1));
        return nitrokey3_code(&mut state, crate::Slot::totp(slot), step, false);
    }
    let device = format!("emulated {serial}");
    if !state.plugged {
        return Err(Error::Unplugged {
            device,
            operation: "read TOTP code",
        });
    }
    let nk = state.nitrokey.as_ref().ok_or_else(|| Error::NotSupported {
        device: device.clone(),
        what: "TOTP: a YubiKey OTP slot has no clock".into(),
    })?;
    nitrokey::totp_code(nk, slot).ok_or_else(|| Error::SlotNotProgrammed {
        device,
        slot: format!("totp:{slot}"),
    })
}

/// The code of a Nitrokey 3 slot's credential (HOTP: advancing its counter when `advance`).
fn nitrokey3_code(
    state: &mut DeviceState,
    slot: crate::Slot,
    challenge: u64,
    advance: bool,
) -> Result<String> {
    let device = format!("emulated {}", state.serial_string());
    let label = crate::nitrokey3::credential_id(slot);
    let nk3 = state
        .nitrokey3
        .as_mut()
        .ok_or_else(|| Error::NotSupported {
            device: device.clone(),
            what: "not a Nitrokey 3".into(),
        })?;
    nitrokey3::code(nk3, &label, challenge, advance).map_err(|sw| {
        if sw == crate::nitrokey3::apdu::StatusWord::NOT_FOUND {
            Error::SlotNotProgrammed {
                device,
                slot: slot.to_string(),
            }
        } else {
            Error::Rejected {
                device,
                operation: "calculate",
                reason: format!("status word {sw}"),
            }
        }
    })
}

fn nitrokey_touch(state: &mut DeviceState, slot: u8, path: &Path) -> Result<String> {
    let serial = state.serial_string();
    let nk = state
        .nitrokey
        .as_mut()
        .ok_or_else(|| Error::EmulatorState {
            path: path.to_owned(),
            detail: "Nitrokey device without Nitrokey state".into(),
        })?;
    let entry = nk
        .hotp
        .get_mut(usize::from(slot))
        .and_then(Option::as_mut)
        .ok_or_else(|| Error::SlotNotProgrammed {
            device: format!("emulated {serial}"),
            slot: format!("hotp:{slot}"),
        })?;
    let secret = zeroize::Zeroizing::new(hex::decode(&entry.secret).unwrap_or_default());
    let end = secret.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let digits = if entry.config & 1 != 0 {
        crate::Digits::EIGHT
    } else {
        crate::Digits::SIX
    };
    let otp = crate::otp::hotp(&secret[..end], entry.value, digits);
    entry.value += 1;
    Ok(otp)
}

/// How the emulated user answers a Nitrokey 3's request for presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchMode {
    /// Touches it this many milliseconds after the request (the default, 250 ms).
    Auto {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
    /// Waits for [`press`]; the device gives up after `timeout_ms` (SW 6982).
    Manual {
        /// The device's presence timeout in milliseconds (firmware: 15 000).
        timeout_ms: u64,
    },
}

/// Sets how a Nitrokey 3's requests for presence are answered.
pub fn set_touch_mode(dir: &Path, serial: &str, mode: TouchMode) -> Result<()> {
    let serial = resolve(dir, serial)?;
    store::update(dir, &serial, |state| {
        let nk3 = state
            .nitrokey3
            .as_mut()
            .ok_or_else(|| Error::NotSupported {
                device: format!("emulated {serial}"),
                what: "touch modes: only a Nitrokey 3 asks for presence this way".into(),
            })?;
        match mode {
            TouchMode::Auto { delay_ms } => {
                nk3.manual_touch = false;
                nk3.touch_delay_ms = delay_ms;
            }
            TouchMode::Manual { timeout_ms } => {
                nk3.manual_touch = true;
                nk3.up_timeout_ms = timeout_ms;
            }
        }
        Ok(())
    })
}

/// Touches a Nitrokey 3 to confirm presence: a request waiting for it proceeds (manual touch
/// mode); with nothing waiting the touch has no effect, as on the device.
pub fn press(dir: &Path, serial: &str) -> Result<()> {
    let serial = resolve(dir, serial)?;
    store::update(dir, &serial, |state| {
        let device = format!("emulated {serial}");
        if !state.plugged {
            return Err(Error::Unplugged {
                device,
                operation: "touch",
            });
        }
        let nk3 = state
            .nitrokey3
            .as_mut()
            .ok_or_else(|| Error::NotSupported {
                device,
                what: "a presence touch without an OTP: only a Nitrokey 3 takes one".into(),
            })?;
        nk3.touches += 1;
        Ok(())
    })
}

/// Plugs a device in (a new generation: handles opened before stay dead) or unplugs it.
pub fn set_plugged(dir: &Path, serial: &str, plugged: bool) -> Result<()> {
    let serial = resolve(dir, serial)?;
    store::update(dir, &serial, |state| {
        if plugged && !state.plugged {
            state.generation += 1;
        }
        state.plugged = plugged;
        Ok(())
    })
}

/// Queues a fault for the device's next frame / slot-changing command.
pub fn inject_fault(dir: &Path, serial: &str, fault: Fault) -> Result<()> {
    let serial = resolve(dir, serial)?;
    store::update(dir, &serial, |state| {
        state.faults.push(fault);
        Ok(())
    })
}

/// Sets the device's latencies.
pub fn set_latency(dir: &Path, serial: &str, latency: Latency) -> Result<()> {
    let serial = resolve(dir, serial)?;
    store::update(dir, &serial, |state| {
        state.latency = latency;
        Ok(())
    })
}

/// Sets a Nitrokey's admin PIN (and resets its retry counter).
pub fn set_admin_pin(dir: &Path, serial: &str, pin: &str) -> Result<()> {
    let serial = resolve(dir, serial)?;
    let path = store::state_path(dir, &serial);
    store::update(dir, &serial, |state| {
        let nk = state
            .nitrokey
            .as_mut()
            .ok_or_else(|| Error::EmulatorState {
                path: path.clone(),
                detail: "not a Nitrokey".into(),
            })?;
        nk.admin_pin = pin.to_owned();
        nk.admin_retries = 3;
        Ok(())
    })
}

/// Plugged devices with what discovery needs to open them.
pub(crate) fn plugged(dir: &Path) -> Result<Vec<(Family, String, u64)>> {
    Ok(store::load_all(dir)?
        .iter()
        .filter(|s| s.plugged)
        .map(|s| (s.family, s.serial_string(), s.generation))
        .collect())
}

enum Session {
    Yubikey(yubikey::Session),
    Nitrokey(nitrokey::Session),
    Nitrokey3(nitrokey3::Session),
}

/// The HID transport of an emulated device: every report goes through the device state
/// machine, persistent state through [`store`].
pub struct EmulatorTransport {
    dir: PathBuf,
    serial: String,
    generation: u64,
    dead: bool,
    session: Session,
    /// The state file as last read, by version: a status poll re-reads it only after some
    /// process replaced it.
    cached: Option<(store::Version, DeviceState)>,
}

impl EmulatorTransport {
    /// Opens a plugged-in emulated device.
    pub fn open(dir: &Path, serial: &str) -> Result<EmulatorTransport> {
        let serial = resolve(dir, serial)?;
        let state = store::load(dir, &serial)?;
        if !state.plugged {
            return Err(Error::Unplugged {
                device: format!("emulated {serial}"),
                operation: "open",
            });
        }
        let session = match state.family {
            Family::Yubikey => Session::Yubikey(yubikey::Session::default()),
            Family::Nitrokey3 => Session::Nitrokey3(nitrokey3::Session::default()),
            _ => Session::Nitrokey(nitrokey::Session::default()),
        };
        Ok(EmulatorTransport {
            dir: dir.to_owned(),
            serial,
            generation: state.generation,
            dead: false,
            session,
            cached: None,
        })
    }

    /// Loads the state, failing (for good) when the device was unplugged since opening.
    fn live_state(&mut self, operation: &'static str) -> Result<DeviceState> {
        let state = if self.dead {
            None
        } else {
            self.current_state()
        };
        match state {
            Some(state) if state.plugged && state.generation == self.generation => Ok(state),
            _ => {
                self.dead = true;
                Err(Error::Unplugged {
                    device: self.describe(),
                    operation,
                })
            }
        }
    }

    /// The device's state, read again only when its file changed since the last read.
    fn current_state(&mut self) -> Option<DeviceState> {
        // The version is taken before reading: a write in between makes the next call
        // read again, never keep a stale state.
        let version = store::version(&self.dir, &self.serial).ok()?;
        if let Some((cached, state)) = &self.cached
            && *cached == version
        {
            return Some(state.clone());
        }
        let state = store::load(&self.dir, &self.serial).ok()?;
        self.cached = Some((version, state.clone()));
        Some(state)
    }

    fn died(&mut self, err: Error) -> Error {
        if matches!(err, Error::Unplugged { .. }) {
            self.dead = true;
        }
        err
    }
}

impl HidTransport for EmulatorTransport {
    fn send_feature_report(&mut self, report: &[u8]) -> Result<()> {
        self.live_state("send feature report")?;
        let (dir, serial) = (self.dir.clone(), self.serial.clone());
        let result = match &mut self.session {
            Session::Yubikey(session) => {
                let data: [u8; 8] = report
                    .get(1..9)
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| Error::Hid {
                        device: serial.clone(),
                        message: "feature report is not 9 bytes".into(),
                    })?;
                session.write(&dir, &serial, &data)
            }
            Session::Nitrokey(session) => session.write(&dir, &serial, report),
            Session::Nitrokey3(_) => Err(no_feature_report(&serial)),
        };
        result.map_err(|e| self.died(e))
    }

    fn get_feature_report(&mut self, buf: &mut [u8]) -> Result<usize> {
        let state = self.live_state("get feature report")?;
        if buf.is_empty() {
            let message = "empty buffer for a feature report".into();
            return Err(Error::Hid {
                device: self.describe(),
                message,
            });
        }
        match &mut self.session {
            Session::Yubikey(session) => {
                let report = session.read(&state);
                let n = buf.len().min(9);
                buf[0] = 0;
                buf[1..n].copy_from_slice(&report[..n - 1]);
                Ok(n)
            }
            Session::Nitrokey(session) => {
                let report = session
                    .read(&self.dir, &self.serial)
                    .map_err(|e| self.died(e))?;
                let n = buf.len().min(report.len());
                buf[..n].copy_from_slice(&report[..n]);
                Ok(n)
            }
            Session::Nitrokey3(_) => Err(no_feature_report(&self.serial)),
        }
    }

    fn read_input_report(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let state = self.live_state("read input report")?;
            if let Session::Nitrokey3(session) = &mut self.session {
                let (dir, serial) = (self.dir.clone(), self.serial.clone());
                let polled = session.poll(&dir, &serial);
                let next = session.next_event();
                if let Some(report) = polled.map_err(|e| self.died(e))? {
                    let n = buf.len().min(report.len());
                    buf[..n].copy_from_slice(&report[..n]);
                    return Ok(Some(n));
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                // Wake for the device's next report, and at least every 5 ms to notice an
                // unplug, as a blocking read on a vanished hidraw node would fail.
                let wake = next
                    .unwrap_or(deadline)
                    .min(deadline)
                    .min(now + Duration::from_millis(5));
                std::thread::sleep(wake.saturating_duration_since(now));
                continue;
            }
            let pending = state
                .yubikey
                .as_ref()
                .is_some_and(|yk| !yk.keyboard.is_empty());
            if let Session::Yubikey(session) = &mut self.session
                && let Some(report) = session.read_keyboard(&self.dir, &self.serial, pending)?
            {
                let n = buf.len().min(8);
                buf[..n].copy_from_slice(&report[..n]);
                return Ok(Some(n));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            // A real read blocks until a report arrives; polling the state file stands in
            // for that, first every millisecond, then less often.
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// A Nitrokey 3 takes CTAPHID packets here; the other families ignore output reports (a
    /// YubiKey's keyboard interface takes LED states; a Nitrokey has no output report), as
    /// the devices do.
    fn send_output_report(&mut self, report: &[u8]) -> Result<()> {
        self.live_state("send output report")?;
        if report.is_empty() {
            return Err(Error::Hid {
                device: self.describe(),
                message: "empty output report".into(),
            });
        }
        if let Session::Nitrokey3(session) = &mut self.session {
            let (dir, serial) = (self.dir.clone(), self.serial.clone());
            let result = session.write(&dir, &serial, report);
            return result.map_err(|e| self.died(e));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("emulator {}/{}", self.dir.display(), self.serial)
    }
}

/// The FIDO interface of a Nitrokey 3 has input and output reports only.
fn no_feature_report(serial: &str) -> Error {
    Error::Hid {
        device: format!("emulated nitrokey3 {serial}"),
        message: "the FIDO HID interface has no feature reports".into(),
    }
}
