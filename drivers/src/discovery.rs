//! Finding tokens: real devices by HID enumeration (known vendor/product IDs), emulated ones
//! from an emulator directory; opening them as `Box<dyn Token>`; and a [`Watcher`] that
//! reports arrivals and removals (rusb hotplug where libusb has it, re-enumeration
//! otherwise; emulator plug/unplug by re-reading the directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::emulator::{self, EmulatorTransport};
use crate::error::{Error, Result};
use crate::nitrokey::{Model, Nitrokey};
use crate::token::{Family, Location, Token, TokenInfo};
use crate::yubikey::{self, YubiKey};

/// Lists attached tokens: real HID devices, then the plugged devices of `emulator_dir`,
/// each with its free slots read from the device.
pub fn list(emulator_dir: Option<&Path>) -> Result<Vec<TokenInfo>> {
    let mut found = Vec::new();
    for (_, info) in scan(emulator_dir)? {
        let mut token = match open(&info) {
            Ok(token) => token,
            Err(err) if err.is_transient() => {
                warn!(device = %info.label(), %err, "token vanished while listing");
                continue;
            }
            Err(err) => return Err(err),
        };
        token.programmed_slots()?;
        found.push(token.info().clone());
    }
    Ok(found)
}

/// Opens a token found by [`list`] or the [`Watcher`].
pub fn open(info: &TokenInfo) -> Result<Box<dyn Token>> {
    let token: Box<dyn Token> = match &info.location {
        Location::Emulator { dir } => open_emulated(dir, info.family, &info.serial)?,
        Location::Hid { path } => open_hid(path, &info.usb_id)?,
    };
    if token.info().serial != info.serial {
        return Err(Error::NoSuchDevice {
            serial: info.serial.clone(),
        });
    }
    Ok(token)
}

/// Opens a YubiKey found by [`list`] as its concrete handle (for HMAC-SHA1
/// challenge-response, which the [`Token`] trait does not cover).
pub fn open_yubikey(info: &TokenInfo) -> Result<YubiKey> {
    if info.family != Family::Yubikey {
        return Err(Error::InvalidArgument(format!(
            "{} is not a YubiKey",
            info.label()
        )));
    }
    let key = match &info.location {
        Location::Emulator { dir } => {
            let transport = Box::new(EmulatorTransport::open(dir, &info.serial)?);
            let location = info.location.clone();
            YubiKey::open(transport, yubikey::EMULATED_PID, location, true)?
        }
        Location::Hid { path } => open_hid_yubikey(path, &info.usb_id)?,
    };
    if key.info().serial != info.serial {
        return Err(Error::NoSuchDevice {
            serial: info.serial.clone(),
        });
    }
    Ok(key)
}

#[cfg(feature = "hid")]
fn open_hid_yubikey(path: &str, usb_id: &str) -> Result<YubiKey> {
    let (_, pid) = parse_usb_id(usb_id)
        .ok_or_else(|| Error::InvalidArgument(format!("USB id {usb_id:?} is not vvvv:pppp")))?;
    let api = hidapi::HidApi::new().map_err(|e| Error::Enumeration(e.to_string()))?;
    let cpath = std::ffi::CString::new(path)
        .map_err(|_| Error::InvalidArgument(format!("HID path {path:?}")))?;
    let transport = Box::new(crate::transport::HidapiTransport::open(&api, &cpath)?);
    YubiKey::open(
        transport,
        pid,
        Location::Hid {
            path: path.to_owned(),
        },
        false,
    )
}

#[cfg(not(feature = "hid"))]
fn open_hid_yubikey(path: &str, _usb_id: &str) -> Result<YubiKey> {
    Err(Error::Enumeration(format!(
        "{path}: built without the `hid` feature"
    )))
}

fn open_emulated(dir: &Path, family: Family, serial: &str) -> Result<Box<dyn Token>> {
    let transport = Box::new(EmulatorTransport::open(dir, serial)?);
    let location = Location::Emulator {
        dir: dir.to_owned(),
    };
    Ok(match family {
        Family::Yubikey => Box::new(YubiKey::open(
            transport,
            yubikey::EMULATED_PID,
            location,
            true,
        )?),
        Family::NitrokeyPro => Box::new(Nitrokey::open(transport, Model::Pro, location, true)?),
        Family::NitrokeyStorage => {
            Box::new(Nitrokey::open(transport, Model::Storage, location, true)?)
        }
    })
}

#[cfg(feature = "hid")]
fn open_hid(path: &str, usb_id: &str) -> Result<Box<dyn Token>> {
    let (vid, pid) = parse_usb_id(usb_id)
        .ok_or_else(|| Error::InvalidArgument(format!("USB id {usb_id:?} is not vvvv:pppp")))?;
    let api = hidapi::HidApi::new().map_err(|e| Error::Enumeration(e.to_string()))?;
    let cpath = std::ffi::CString::new(path)
        .map_err(|_| Error::InvalidArgument(format!("HID path {path:?}")))?;
    let transport = Box::new(crate::transport::HidapiTransport::open(&api, &cpath)?);
    let location = Location::Hid {
        path: path.to_owned(),
    };
    if vid == yubikey::VENDOR_ID {
        return Ok(Box::new(YubiKey::open(transport, pid, location, false)?));
    }
    let model = Model::from_usb(vid, pid)
        .ok_or_else(|| Error::InvalidArgument(format!("{usb_id} is not a supported token")))?;
    Ok(Box::new(Nitrokey::open(transport, model, location, false)?))
}

#[cfg(not(feature = "hid"))]
fn open_hid(path: &str, _usb_id: &str) -> Result<Box<dyn Token>> {
    Err(Error::Enumeration(format!(
        "{path}: built without the `hid` feature"
    )))
}

fn parse_usb_id(text: &str) -> Option<(u16, u16)> {
    let (vid, pid) = text.split_once(':')?;
    Some((
        u16::from_str_radix(vid, 16).ok()?,
        u16::from_str_radix(pid, 16).ok()?,
    ))
}

/// A device found by enumeration, before it is opened: enough to open and identify it.
/// Keyed by something that changes when the device is re-plugged (HID path, or emulator
/// serial and plug generation).
fn scan(emulator_dir: Option<&Path>) -> Result<Vec<(String, TokenInfo)>> {
    let mut found = hid_candidates()?;
    if let Some(dir) = emulator_dir {
        for (family, serial, generation) in emulator::plugged(dir)? {
            let info = TokenInfo {
                family,
                model: String::new(),
                serial: serial.clone(),
                firmware: String::new(),
                usb_id: String::new(),
                free_hotp_slots: None,
                free_totp_slots: None,
                emulated: true,
                location: Location::Emulator {
                    dir: dir.to_owned(),
                },
            };
            found.push((
                format!("emulator:{}:{serial}:{generation}", dir.display()),
                info,
            ));
        }
    }
    Ok(found)
}

/// Real HID interfaces of supported tokens (not yet opened: serial unknown).
#[cfg(feature = "hid")]
fn hid_candidates() -> Result<Vec<(String, TokenInfo)>> {
    let api = hidapi::HidApi::new().map_err(|e| Error::Enumeration(e.to_string()))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for device in api.device_list() {
        let (vid, pid) = (device.vendor_id(), device.product_id());
        let family = if vid == yubikey::VENDOR_ID && yubikey::OTP_PIDS.contains(&pid) {
            // The OTP application is the keyboard interface (usage page 1, usage 6).
            if (device.usage_page(), device.usage()) != (0x01, 0x06) {
                continue;
            }
            Family::Yubikey
        } else {
            match Model::from_usb(vid, pid) {
                Some(Model::Storage) => Family::NitrokeyStorage,
                Some(_) => Family::NitrokeyPro,
                None => continue,
            }
        };
        let path = device.path().to_string_lossy().into_owned();
        if !seen.insert(path.clone()) {
            continue;
        }
        let info = TokenInfo {
            family,
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
            usb_id: format!("{vid:04x}:{pid:04x}"),
            free_hotp_slots: None,
            free_totp_slots: None,
            emulated: false,
            location: Location::Hid { path: path.clone() },
        };
        found.push((format!("hid:{path}"), info));
    }
    Ok(found)
}

#[cfg(not(feature = "hid"))]
fn hid_candidates() -> Result<Vec<(String, TokenInfo)>> {
    Ok(Vec::new())
}

/// Opens a candidate to read its identity (serial, model, firmware), without slots.
fn identify(candidate: &TokenInfo) -> Result<TokenInfo> {
    let token = match &candidate.location {
        Location::Emulator { dir } => open_emulated(dir, candidate.family, &candidate.serial)?,
        Location::Hid { path } => open_hid(path, &candidate.usb_id)?,
    };
    Ok(token.info().clone())
}

/// A change in the set of attached tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", content = "token", rename_all = "lowercase")]
pub enum DeviceEvent {
    /// A token was plugged in (identity read, slots not read).
    Arrived(TokenInfo),
    /// A token went away (its last known identity).
    Removed(TokenInfo),
}

/// How often the emulator directory is re-read.
const EMULATOR_POLL: Duration = Duration::from_millis(150);
/// How often HID is re-enumerated when libusb has no hotplug support.
const HID_POLL: Duration = Duration::from_millis(1000);

/// Watches for arrivals and removals on a background thread. Events come through
/// [`Watcher::next_event`] or, with [`Watcher::with_callback`], through a callback on that
/// thread. Dropping the watcher stops the thread.
pub struct Watcher {
    present: Vec<TokenInfo>,
    events: Option<mpsc::Receiver<DeviceEvent>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching; the tokens present now are in [`Watcher::present`].
    pub fn start(emulator_dir: Option<&Path>) -> Result<Watcher> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = Watcher::with_callback(emulator_dir, move |event| {
            let _ = tx.send(event);
        })?;
        watcher.events = Some(rx);
        Ok(watcher)
    }

    /// Starts watching and calls `on_event` from the watcher thread for every change.
    pub fn with_callback(
        emulator_dir: Option<&Path>,
        on_event: impl FnMut(DeviceEvent) + Send + 'static,
    ) -> Result<Watcher> {
        let mut state = WatchState {
            dir: emulator_dir.map(Path::to_owned),
            known: BTreeMap::new(),
            on_event: Box::new(on_event),
        };
        state.rescan(true, true, false)?;
        let present = state.known.values().cloned().collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("token-watcher".into())
            .spawn(move || state.run(&thread_stop))
            .map_err(|e| Error::Enumeration(format!("cannot start the watcher thread: {e}")))?;
        Ok(Watcher {
            present,
            events: None,
            stop,
            thread: Some(thread),
        })
    }

    /// Tokens present when the watcher started (identity only).
    pub fn present(&self) -> &[TokenInfo] {
        &self.present
    }

    /// Waits up to `timeout` for the next event (always `None` for a callback watcher).
    pub fn next_event(&self, timeout: Duration) -> Option<DeviceEvent> {
        self.events.as_ref()?.recv_timeout(timeout).ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct WatchState {
    dir: Option<PathBuf>,
    known: BTreeMap<String, TokenInfo>,
    on_event: Box<dyn FnMut(DeviceEvent) + Send>,
}

impl WatchState {
    fn run(mut self, stop: &AtomicBool) {
        let hotplug = Hotplug::start();
        debug!(hotplug = hotplug.is_some(), "token watcher running");
        let mut last_hid = Instant::now();
        let mut hid_rescans: Vec<Instant> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            match &hotplug {
                Some(hotplug) => {
                    if hotplug.poll(EMULATOR_POLL) {
                        // The hidraw node appears shortly after the USB device: look again.
                        hid_rescans
                            .extend([0, 300, 1000].map(|ms| now + Duration::from_millis(ms)));
                    }
                }
                None => std::thread::sleep(EMULATOR_POLL),
            }
            let due = hid_rescans.iter().any(|t| *t <= Instant::now());
            hid_rescans.retain(|t| *t > Instant::now());
            let hid = due || (hotplug.is_none() && last_hid.elapsed() >= HID_POLL);
            if hid {
                last_hid = Instant::now();
            }
            if let Err(err) = self.rescan(hid, self.dir.is_some(), true) {
                debug!(%err, "rescan failed; retrying");
            }
        }
    }

    /// Re-enumerates HID and/or the emulator directory and reports differences.
    fn rescan(&mut self, hid: bool, emulated: bool, report: bool) -> Result<()> {
        let mut current = if hid { hid_candidates()? } else { Vec::new() };
        if emulated && let Some(dir) = &self.dir {
            let all = scan(Some(dir))?;
            current.extend(
                all.into_iter()
                    .filter(|(key, _)| key.starts_with("emulator:")),
            );
        }
        let in_scope = |key: &str| {
            (hid && key.starts_with("hid:")) || (emulated && key.starts_with("emulator:"))
        };
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|key| in_scope(key) && !current.iter().any(|(k, _)| k == *key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(info) = self.known.remove(&key)
                && report
            {
                (self.on_event)(DeviceEvent::Removed(info));
            }
        }
        for (key, candidate) in current {
            if self.known.contains_key(&key) {
                continue;
            }
            match identify(&candidate) {
                Ok(info) => {
                    self.known.insert(key, info.clone());
                    if report {
                        (self.on_event)(DeviceEvent::Arrived(info));
                    }
                }
                Err(err) => debug!(%err, "could not identify a new device yet"),
            }
        }
        Ok(())
    }
}

/// libusb hotplug notifications, when available.
#[cfg(feature = "hid")]
struct Hotplug {
    // Dropped first: deregisters before the context goes.
    _registration: rusb::Registration<rusb::Context>,
    context: rusb::Context,
    flag: Arc<AtomicBool>,
}

#[cfg(feature = "hid")]
struct HotplugFlag(Arc<AtomicBool>);

#[cfg(feature = "hid")]
impl rusb::Hotplug<rusb::Context> for HotplugFlag {
    fn device_arrived(&mut self, _: rusb::Device<rusb::Context>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn device_left(&mut self, _: rusb::Device<rusb::Context>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(feature = "hid")]
impl Hotplug {
    fn start() -> Option<Hotplug> {
        use rusb::UsbContext;
        // Registration fails with NOT_SUPPORTED where libusb has no hotplug; a missing
        // usbfs makes `Context::new` fail. Either way the watcher re-enumerates instead.
        // (`rusb::has_hotplug` is avoided: it panics when the global context cannot start.)
        let context = rusb::Context::new().ok()?;
        let flag = Arc::new(AtomicBool::new(false));
        let registration = rusb::HotplugBuilder::new()
            .enumerate(false)
            .register(&context, Box::new(HotplugFlag(Arc::clone(&flag))))
            .ok()?;
        let _ = context.handle_events(Some(Duration::ZERO));
        Some(Hotplug {
            context,
            flag,
            _registration: registration,
        })
    }

    /// Waits up to `timeout` for USB events; true if a device arrived or left.
    fn poll(&self, timeout: Duration) -> bool {
        use rusb::UsbContext;
        if self.context.handle_events(Some(timeout)).is_err() {
            std::thread::sleep(timeout);
        }
        self.flag.swap(false, Ordering::Relaxed)
    }
}

#[cfg(not(feature = "hid"))]
struct Hotplug;

#[cfg(not(feature = "hid"))]
impl Hotplug {
    fn start() -> Option<Hotplug> {
        None
    }

    fn poll(&self, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
}
