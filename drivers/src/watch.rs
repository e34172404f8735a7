//! The hotplug [`Watcher`]: arrivals and removals of tokens, from rusb hotplug where libusb
//! has it (then HID is re-enumerated a few times, since the hidraw node appears after the USB
//! device), periodic re-enumeration otherwise, and emulator plug/unplug by re-reading the
//! emulator directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::discovery::{hid_candidates, identify, scan};
use crate::error::{Error, Result};
use crate::token::TokenInfo;

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
