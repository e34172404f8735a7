//! The tokens the station sees: discovery through `keyprov-drivers` (real HID devices plus an
//! emulator directory), the family names the station records, and emulated tokens on demand.

use std::path::Path;

use keyprov_drivers::{Family, TokenInfo, emulator};

use crate::api::DeviceEvent;
use crate::error::{EngineError, Result};

/// The factory admin PIN of Nitrokey Pro and Storage (libnitrokey's default).
pub const NITROKEY_DEFAULT_ADMIN_PIN: &str = "12345678";

/// How many times discovery lists the tokens when one vanishes while it is being read.
const DISCOVERY_ATTEMPTS: usize = 4;

/// Attached tokens, real and emulated.
///
/// A token that vanishes while discovery reads it (enumeration found it; it was unplugged
/// before its slots were read) is skipped: the driver's listing fails as a whole, so the
/// tokens are listed again, now without it, and a `warn` event names it. Only a token that
/// keeps failing that way (or any other error) ends discovery.
pub fn discover(emulator_dir: Option<&Path>) -> Result<Vec<TokenInfo>> {
    let mut attempt = 1;
    loop {
        match keyprov_drivers::list(emulator_dir) {
            Ok(tokens) => return Ok(tokens),
            Err(e) if vanished(&e) && attempt < DISCOVERY_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "a token vanished during discovery; skipped");
                attempt += 1;
            }
            Err(e) => return Err(EngineError::Discovery(e.to_string())),
        }
    }
}

/// A token unplugged or gone (not merely slow or busy) while it was being read.
fn vanished(e: &keyprov_drivers::Error) -> bool {
    e.retry() == keyprov_drivers::Retry::Reopen
}

/// The family the station records: `yubikey`, `nitrokey` (Pro and Storage alike) or
/// `nitrokey3`.
pub fn family(token: &TokenInfo) -> &'static str {
    match token.family {
        Family::Yubikey => "yubikey",
        Family::NitrokeyPro | Family::NitrokeyStorage => "nitrokey",
        Family::Nitrokey3 => "nitrokey3",
    }
}

/// Creates `count` emulated tokens of `model` (`yubikey`, `nitrokey-pro`,
/// `nitrokey-storage`, `nitrokey3`) in `dir` and returns them as discovery reports them.
pub fn create_emulated(dir: &Path, model: &str, count: usize) -> Result<Vec<TokenInfo>> {
    let family = Family::parse(model).ok_or_else(|| {
        EngineError::invalid(
            "emulator model",
            format!("{model:?} (use yubikey, nitrokey-pro, nitrokey-storage or nitrokey3)"),
        )
    })?;
    let count = u32::try_from(count)
        .ok()
        .filter(|c| (1..=256).contains(c))
        .ok_or_else(|| EngineError::invalid("emulator count", "must be 1 to 256"))?;
    let added = emulator::add(dir, family, count, None)
        .map_err(|e| EngineError::Discovery(e.to_string()))?;
    let all = discover(Some(dir))?;
    Ok(all
        .into_iter()
        .filter(|t| {
            t.emulated
                && added
                    .iter()
                    .any(|a| a.serial == t.serial && a.family == t.family)
        })
        .collect())
}

/// Watches for tokens arriving and leaving until dropped.
pub struct DeviceWatch {
    _watcher: keyprov_drivers::Watcher,
}

impl std::fmt::Debug for DeviceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceWatch")
    }
}

/// Starts a watcher that calls `on_event` from its own thread.
pub fn watch(
    emulator_dir: Option<&Path>,
    mut on_event: impl FnMut(DeviceEvent) + Send + 'static,
) -> Result<DeviceWatch> {
    let watcher = keyprov_drivers::Watcher::with_callback(emulator_dir, move |event| {
        let mapped = match event {
            keyprov_drivers::DeviceEvent::Arrived(t) => DeviceEvent::Arrived {
                device: crate::station::device_info(&t),
            },
            keyprov_drivers::DeviceEvent::Removed(t) => DeviceEvent::Removed {
                device: crate::station::device_info(&t),
            },
        };
        on_event(mapped);
    })
    .map_err(|e| EngineError::Discovery(e.to_string()))?;
    Ok(DeviceWatch { _watcher: watcher })
}
