//! Persistent state of emulated devices: one JSON file per device in the emulator
//! directory, replaced atomically (temporary file, then rename over the old one) under an
//! exclusive lock on the device's own sibling `.lock` file, so that several processes (the
//! provisioning engine, `keyprov emulator touch`) share a device safely, devices never wait
//! for each other, and a SIGKILL at any instant leaves either the old or the new state on
//! disk. Readers take no lock: a rename replaces the file whole, so a reader opens either
//! the old or the new version.
//!
//! There is no fsync: what must survive is the death of a process (the crash tests kill the
//! station), and the kernel keeps a renamed file through that. A power cut may lose the last
//! writes of an emulated device, which is acceptable for test fixtures; syncing made every
//! emulated flash write wait for the disk, serialising a hub of tokens behind the journal.
//!
//! The files hold fake-device secrets (test fixtures); the types here have no `Debug` so
//! that they cannot end up in a log.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::token::Family;

/// Per-operation latency of an emulated device, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Writes to flash: YubiKey configuration commands, Nitrokey slot writes and erases.
    pub write_ms: u64,
    /// Every other command (status, serial, read slot, GET_CODE, challenge-response).
    pub other_ms: u64,
}

impl Latency {
    /// No delay at all (fast tests).
    pub const ZERO: Latency = Latency {
        write_ms: 0,
        other_ms: 0,
    };

    /// Defaults close to the polling rules of each host library: a YubiKey write well inside
    /// ykcore's 600 ms low-level timeout, Nitrokey answers within libnitrokey's first read
    /// (100 ms Pro, 40 ms Storage).
    pub fn default_for(family: Family) -> Latency {
        match family {
            Family::Yubikey => Latency {
                write_ms: 300,
                other_ms: 15,
            },
            Family::NitrokeyPro => Latency {
                write_ms: 90,
                other_ms: 10,
            },
            Family::NitrokeyStorage => Latency {
                write_ms: 35,
                other_ms: 10,
            },
            // Inference: no timing is published; a flash write of a few tens of ms.
            Family::Nitrokey3 => Latency {
                write_ms: 40,
                other_ms: 5,
            },
        }
    }
}

/// A fault the emulated device produces once, on the next frame (YubiKey) or the next
/// slot-changing command (Nitrokey: SEND_OTP_DATA, WRITE_TO_SLOT, ERASE_SLOT, AUTHORIZE;
/// Nitrokey 3: Put, Delete, Reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The device disappears while receiving the write (YubiKey: on the frame's last chunk;
    /// Nitrokey: on WRITE_TO_SLOT/ERASE_SLOT, after the data was sent); nothing is committed.
    UnplugMidWrite,
    /// The request arrives corrupted (Nitrokey answers wrong_CRC; a YubiKey drops a
    /// configuration frame and corrupts the CRC of a response).
    Crc,
    /// The device is busy for longer than the driver waits (YubiKey 1.5 s: the frame is
    /// dropped; Nitrokey 3 s: the request runs afterwards unless a newer one replaces it).
    Busy,
    /// The device accepts the request but never completes it (YubiKey: write flag held for
    /// 1.5 s; Nitrokey: no response is produced).
    Timeout,
    /// Nitrokey 3: the command is answered with this status word and not executed (e.g.
    /// 0x6982 for a touch that never came, 0x6A84 for a full store). Other families treat it
    /// like [`Fault::Crc`].
    StatusWord(u16),
}

/// A YubiKey slot: the raw 52-byte configuration as written, and the OATH counter.
#[derive(Clone, Serialize, Deserialize)]
pub struct YubikeySlot {
    /// `config_st` bytes, hex.
    pub config: String,
    /// Next OATH-HOTP moving factor.
    pub counter: u64,
}

/// YubiKey-specific state.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct YubikeyState {
    /// Programming sequence.
    pub pgm_seq: u8,
    /// Slots 1 and 2.
    pub slots: [Option<YubikeySlot>; 2],
    /// Keyboard reports typed by touches and not yet read, hex.
    pub keyboard: Vec<String>,
    /// Touches so far; a challenge waiting for a touch is released when this grows.
    #[serde(default)]
    pub touches: u64,
}

/// A Nitrokey OTP slot.
#[derive(Clone, Serialize, Deserialize)]
pub struct NitrokeySlot {
    /// Slot name.
    pub name: String,
    /// Secret (zero-padded to 40 bytes), hex.
    pub secret: String,
    /// `slot_config` bits.
    pub config: u8,
    /// Token id (13 bytes), hex.
    pub token_id: String,
    /// HOTP counter or TOTP period.
    pub value: u64,
}

/// Nitrokey-specific state.
#[derive(Clone, Serialize, Deserialize)]
pub struct NitrokeyState {
    /// Admin PIN (libnitrokey's test default `12345678`).
    pub admin_pin: String,
    /// Admin PIN retries left.
    pub admin_retries: u8,
    /// HOTP slots 0..3.
    pub hotp: Vec<Option<NitrokeySlot>>,
    /// TOTP slots 0..15.
    pub totp: Vec<Option<NitrokeySlot>>,
    /// Device clock minus host clock, seconds (set by SET_TIME).
    pub clock_offset: i64,
}

impl Default for NitrokeyState {
    fn default() -> Self {
        NitrokeyState {
            admin_pin: "12345678".into(),
            admin_retries: 3,
            hotp: vec![None; 3],
            totp: vec![None; 15],
            clock_offset: 0,
        }
    }
}

/// A Nitrokey 3 Secrets App credential, as the app stores it (`CredentialFlat`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Nitrokey3Credential {
    /// Credential id (UTF-8 here; the device takes any bytes).
    pub label: String,
    /// Kind nibble (0x10 HOTP, 0x20 TOTP, ...).
    pub kind: u8,
    /// Algorithm nibble (1 SHA-1, 2 SHA-256).
    pub algorithm: u8,
    /// OTP length.
    pub digits: u8,
    /// Key, hex.
    pub secret: String,
    /// HOTP counter (next value).
    pub counter: Option<u32>,
    /// Properties byte (0x02 touch required).
    pub properties: u8,
}

/// Nitrokey 3-specific state.
#[derive(Clone, Serialize, Deserialize)]
pub struct Nitrokey3State {
    /// Credentials in creation order.
    pub credentials: Vec<Nitrokey3Credential>,
    /// How long after a command asks for user presence the emulated user touches the device
    /// (unless `manual_touch`).
    pub touch_delay_ms: u64,
    /// Whether the device waits for [`crate::emulator::press`] instead.
    #[serde(default)]
    pub manual_touch: bool,
    /// Presses so far; a request waiting for a touch proceeds when this grows.
    #[serde(default)]
    pub touches: u64,
    /// How long a request waits for a manual touch before SW 6982.
    #[serde(default = "up_timeout_default")]
    pub up_timeout_ms: u64,
    /// Most credentials the store holds (firmware option `max_resident_credentials_allowed`).
    pub max_credentials: u16,
}

fn up_timeout_default() -> u64 {
    15_000
}

impl Default for Nitrokey3State {
    fn default() -> Self {
        Nitrokey3State {
            credentials: Vec::new(),
            touch_delay_ms: 250,
            manual_touch: false,
            touches: 0,
            up_timeout_ms: up_timeout_default(),
            max_credentials: 50,
        }
    }
}

/// Everything an emulated device keeps across processes.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceState {
    /// Family.
    pub family: Family,
    /// Serial number.
    pub serial: u32,
    /// Firmware version (`5.4.3`, `0.15`).
    pub firmware: String,
    /// Whether the device is plugged in.
    pub plugged: bool,
    /// Increments at each plug: a handle opened before is stale.
    pub generation: u64,
    /// Operation latencies.
    pub latency: Latency,
    /// Faults to produce, in order.
    pub faults: Vec<Fault>,
    /// YubiKey state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yubikey: Option<YubikeyState>,
    /// Nitrokey state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nitrokey: Option<NitrokeyState>,
    /// Nitrokey 3 state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nitrokey3: Option<Nitrokey3State>,
}

impl DeviceState {
    /// The serial as the vendor's tools print it (YubiKey decimal, Nitrokey 8 hex digits).
    pub fn serial_string(&self) -> String {
        serial_string(self.family, self.serial)
    }

    /// Firmware as numbers (missing parts are 0).
    pub fn firmware_parts(&self) -> [u8; 3] {
        let mut parts = [0u8; 3];
        for (slot, text) in parts.iter_mut().zip(self.firmware.split('.')) {
            *slot = text.parse().unwrap_or(0);
        }
        parts
    }
}

/// Serial formatting per family.
pub fn serial_string(family: Family, serial: u32) -> String {
    match family {
        Family::Yubikey => serial.to_string(),
        _ => format!("{serial:08X}"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::EmulatorIo {
        path: path.to_owned(),
        source,
    }
}

/// The state file of a device.
pub fn state_path(dir: &Path, serial: &str) -> PathBuf {
    dir.join(format!("{serial}.json"))
}

fn lock_path(dir: &Path, serial: &str) -> PathBuf {
    dir.join(format!(".{serial}.lock"))
}

fn open_lock(dir: &Path, serial: &str) -> Result<File> {
    let path = lock_path(dir, serial);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))
}

fn read_state(path: &Path) -> Result<DeviceState> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let serial = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            return Err(Error::NoSuchDevice { serial });
        }
        Err(err) => return Err(io(path)(err)),
    };
    serde_json::from_slice(&text).map_err(|e| Error::EmulatorState {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Writes `state` atomically: temporary file, then rename over the old file.
fn write_state(dir: &Path, state: &DeviceState) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let serial = state.serial_string();
    let path = state_path(dir, &serial);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{serial}.json.{}.{n}.tmp", std::process::id()));
    let text = serde_json::to_vec_pretty(state).map_err(|e| Error::EmulatorState {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&text)?;
        // The kernel stamps files from a coarse clock (milliseconds apart); a precise stamp
        // keeps two quick writes from looking like one [`Version`] if the inode is reused.
        file.set_modified(std::time::SystemTime::now())?;
        drop(file);
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io(&path))
}

/// Reads a device's state (no lock: files are only ever replaced whole).
pub fn load(dir: &Path, serial: &str) -> Result<DeviceState> {
    read_state(&state_path(dir, serial))
}

/// What identifies one version of a state file: a write renames a new file over it, so the
/// inode changes (and the modification time and size with it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Version {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

/// The version of a device's state file now, without reading it.
pub fn version(dir: &Path, serial: &str) -> Result<Version> {
    let path = state_path(dir, serial);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoSuchDevice {
                serial: serial.to_owned(),
            });
        }
        Err(err) => return Err(io(&path)(err)),
    };
    Ok(Version {
        inode: inode(&meta),
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &fs::Metadata) -> u64 {
    0
}

/// Read-modify-write of a device's state under an exclusive lock. The state is written
/// back only when `change` succeeds and changed it.
pub fn update<R>(
    dir: &Path,
    serial: &str,
    change: impl FnOnce(&mut DeviceState) -> Result<R>,
) -> Result<R> {
    let path = state_path(dir, serial);
    if !path.exists() {
        return Err(Error::NoSuchDevice {
            serial: serial.to_owned(),
        });
    }
    let lock = open_lock(dir, serial)?;
    lock.lock().map_err(io(&path))?;
    let mut state = read_state(&path)?;
    let before = serde_json::to_vec(&state).ok();
    let result = change(&mut state)?;
    if before != serde_json::to_vec(&state).ok() {
        write_state(dir, &state)?;
    }
    Ok(result)
}

/// Creates a new device file; fails if the serial exists.
pub fn create(dir: &Path, state: &DeviceState) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let serial = state.serial_string();
    let lock = open_lock(dir, &serial)?;
    let path = state_path(dir, &serial);
    lock.lock().map_err(io(&path))?;
    if path.exists() {
        return Err(Error::EmulatorState {
            path,
            detail: "a device with this serial exists".into(),
        });
    }
    write_state(dir, state)
}

/// The writer PID of a temporary state file (`.SERIAL.json.PID.N.tmp`) whose process is
/// gone (Linux `/proc`; elsewhere temporaries are kept).
fn orphan_temporary(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = rest.split_once(".json.")?;
    let pid: u32 = tail.split('.').next()?.parse().ok()?;
    let proc = Path::new("/proc");
    (proc.is_dir() && !proc.join(pid.to_string()).exists()).then_some(pid)
}

/// Every device in the directory, sorted by family then serial. A missing directory is
/// empty.
pub fn load_all(dir: &Path) -> Result<Vec<DeviceState>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io(dir)(err)),
    };
    let mut states = Vec::new();
    for entry in entries {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(pid) = orphan_temporary(&name) {
            // Left by a writer killed before its rename; the state file itself is intact.
            tracing::debug!(file = %name, pid, "removing a dead writer's temporary file");
            let _ = fs::remove_file(dir.join(name.as_ref()));
            continue;
        }
        if let Some(serial) = name.strip_suffix(".json").filter(|s| !s.starts_with('.')) {
            match load(dir, serial) {
                Ok(state) => states.push(state),
                // Removed between listing and reading.
                Err(Error::NoSuchDevice { .. }) => {}
                Err(err) => return Err(err),
            }
        }
    }
    states.sort_by_key(|s| (s.family.as_str(), s.serial));
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_dead_writers_are_recognised() {
        let own = std::process::id();
        assert_eq!(
            orphan_temporary(&format!(".10000001.json.{own}.0.tmp")),
            None
        );
        // PIDs on Linux stay below 2^22.
        assert_eq!(
            orphan_temporary(".10000001.json.4294967.3.tmp"),
            Some(4294967)
        );
        assert_eq!(orphan_temporary("10000001.json"), None);
        assert_eq!(orphan_temporary(".10000001.lock"), None);
    }

    #[test]
    fn update_writes_atomically_and_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let state = DeviceState {
            family: Family::Yubikey,
            serial: 10000001,
            firmware: "5.4.3".into(),
            plugged: true,
            generation: 1,
            latency: Latency::ZERO,
            faults: Vec::new(),
            yubikey: Some(YubikeyState::default()),
            nitrokey: None,
            nitrokey3: None,
        };
        create(dir.path(), &state).unwrap();
        assert!(create(dir.path(), &state).is_err(), "serials are unique");
        let path = state_path(dir.path(), "10000001");
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        update(dir.path(), "10000001", |_| Ok(())).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);
        update(dir.path(), "10000001", |s| {
            s.plugged = false;
            Ok(())
        })
        .unwrap();
        assert!(!load(dir.path(), "10000001").unwrap().plugged);
        let err = update(dir.path(), "10000001", |_| -> Result<()> {
            Err(Error::InvalidArgument("refused".into()))
        });
        assert!(err.is_err());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        assert!(matches!(
            load(dir.path(), "99"),
            Err(Error::NoSuchDevice { .. })
        ));
    }
}
