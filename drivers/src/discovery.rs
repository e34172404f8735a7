//! Finding tokens: real devices by HID enumeration (known vendor/product IDs), emulated ones
//! from an emulator directory, and opening them as `Box<dyn Token>`. Changes over time are
//! reported by [`crate::watch::Watcher`].

use std::path::Path;

use tracing::warn;

use crate::emulator::{self, EmulatorTransport};
use crate::error::{Error, Result};
use crate::nitrokey::{Model, Nitrokey};
use crate::nitrokey3::{self, Nitrokey3};
use crate::token::{Family, Location, Token, TokenInfo};
use crate::yubikey::{self, YubiKey};

/// Most tokens opened at once while listing: opening is mostly waiting on the device (status
/// polls, a serial read), so a hub of tokens is read in parallel rather than one by one.
const LIST_THREADS: usize = 64;

/// Lists attached tokens: real HID devices, then the plugged devices of `emulator_dir`,
/// each with its free slots read from the device. Tokens are opened in parallel (each on
/// its own thread, at most [`LIST_THREADS`] at once); the order is that of enumeration.
pub fn list(emulator_dir: Option<&Path>) -> Result<Vec<TokenInfo>> {
    let candidates: Vec<TokenInfo> = scan(emulator_dir)?.into_iter().map(|(_, i)| i).collect();
    let mut found = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(LIST_THREADS) {
        let opened: Vec<Result<Option<TokenInfo>>> = std::thread::scope(|scope| {
            let threads: Vec<_> = chunk
                .iter()
                .map(|info| scope.spawn(move || read_listing(info)))
                .collect();
            threads.into_iter().map(join_listing).collect()
        });
        for token in opened {
            found.extend(token?);
        }
    }
    Ok(found)
}

/// Opens one candidate and reads its slots; `None` when it vanished meanwhile.
fn read_listing(info: &TokenInfo) -> Result<Option<TokenInfo>> {
    let mut token = match open(info) {
        Ok(token) => token,
        Err(err) if err.is_transient() => {
            warn!(device = %info.label(), %err, "token vanished while listing");
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    token.programmed_slots()?;
    Ok(Some(token.info().clone()))
}

fn join_listing(
    thread: std::thread::ScopedJoinHandle<'_, Result<Option<TokenInfo>>>,
) -> Result<Option<TokenInfo>> {
    // A driver panic is a bug; re-raise it on the caller's thread as `thread::scope` would.
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Opens a token found by [`list`] or the [`crate::Watcher`].
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
        Family::Nitrokey3 => Box::new(Nitrokey3::open(transport, location, true)?),
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
    if (vid, pid) == (nitrokey3::VENDOR_ID, nitrokey3::PRODUCT_ID) {
        return Ok(Box::new(Nitrokey3::open(transport, location, false)?));
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

#[cfg(feature = "hid")]
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
pub(crate) fn scan(emulator_dir: Option<&Path>) -> Result<Vec<(String, TokenInfo)>> {
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
pub(crate) fn hid_candidates() -> Result<Vec<(String, TokenInfo)>> {
    let api = match hidapi::HidApi::new() {
        Ok(api) => api,
        // No hidraw support at all (no /sys/class/hidraw, e.g. a container): no HID token
        // can be reached, which is an empty list rather than a failure.
        Err(err) => {
            warn!(%err, "HID enumeration unavailable; listing no HID devices");
            return Ok(Vec::new());
        }
    };
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
        } else if (vid, pid) == (nitrokey3::VENDOR_ID, nitrokey3::PRODUCT_ID) {
            // The Secrets App answers on the FIDO interface (CTAPHID vendor command 0x70).
            if device.usage_page() != nitrokey3::FIDO_USAGE_PAGE {
                continue;
            }
            Family::Nitrokey3
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
pub(crate) fn hid_candidates() -> Result<Vec<(String, TokenInfo)>> {
    Ok(Vec::new())
}

/// Opens a candidate to read its identity (serial, model, firmware), without slots.
pub(crate) fn identify(candidate: &TokenInfo) -> Result<TokenInfo> {
    let token = match &candidate.location {
        Location::Emulator { dir } => open_emulated(dir, candidate.family, &candidate.serial)?,
        Location::Hid { path } => open_hid(path, &candidate.usb_id)?,
    };
    Ok(token.info().clone())
}
