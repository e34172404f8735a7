//! The device-independent interface the provisioning engine programs tokens through:
//! [`TokenInfo`] (what discovery reports), [`Capabilities`], and the object-safe [`Token`]
//! trait implemented by the YubiKey and Nitrokey handles.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::otp::{Digits, OtpHash};
use crate::secret::{AccessCode, Pin, SecretKey};

/// Token family (one driver each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// YubiKey OTP application (VID 0x1050).
    Yubikey,
    /// Nitrokey Pro or Purism Librem Key (Nitrokey Pro protocol).
    NitrokeyPro,
    /// Nitrokey Storage (same OTP protocol, its own timings and firmware numbering).
    NitrokeyStorage,
    /// Nitrokey 3 Secrets App (CTAPHID vendor command 0x70; SHA-1 and SHA-256).
    Nitrokey3,
}

impl Family {
    /// The name used on the command line and in JSON (`yubikey`, `nitrokey-pro`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Yubikey => "yubikey",
            Family::NitrokeyPro => "nitrokey-pro",
            Family::NitrokeyStorage => "nitrokey-storage",
            Family::Nitrokey3 => "nitrokey3",
        }
    }

    /// Parses [`Family::as_str`] output.
    pub fn parse(text: &str) -> Option<Family> {
        [
            Family::Yubikey,
            Family::NitrokeyPro,
            Family::NitrokeyStorage,
            Family::Nitrokey3,
        ]
        .into_iter()
        .find(|f| f.as_str() == text)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a token was found; [`crate::open`] uses it to reach the device again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Location {
    /// A hidraw node (real device).
    Hid {
        /// Path of the node, e.g. `/dev/hidraw3`.
        path: String,
    },
    /// An emulated device in an emulator directory.
    Emulator {
        /// The emulator directory.
        dir: std::path::PathBuf,
    },
}

/// What discovery knows about an attached token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Driver family.
    pub family: Family,
    /// Marketing model name as far as the USB IDs and firmware tell.
    pub model: String,
    /// Serial number as the vendor's tools show it (YubiKey: decimal; Nitrokey: 8 hex digits).
    pub serial: String,
    /// Firmware version (`5.4.3`, `0.15`).
    pub firmware: String,
    /// USB vendor and product ID.
    pub usb_id: String,
    /// Free (unprogrammed) HOTP slots in the numbering of [`Token::write_hotp`]; `None` when
    /// not read (the hotplug watcher identifies arrivals without reading every slot).
    pub free_hotp_slots: Option<Vec<u8>>,
    /// Free TOTP slots, as above (empty for YubiKey, which has no TOTP slot).
    pub free_totp_slots: Option<Vec<u8>>,
    /// Whether the token is emulated.
    pub emulated: bool,
    /// How to reach it again.
    pub location: Location,
}

impl TokenInfo {
    /// `family serial`, the way errors and logs name a device.
    pub fn label(&self) -> String {
        format!("{} {}", self.family, self.serial)
    }
}

/// Kind of OTP slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpKind {
    /// Event-based (RFC 4226).
    Hotp,
    /// Time-based (RFC 6238).
    Totp,
}

/// A slot: its kind and number in the device's own numbering (YubiKey 1–2, Nitrokey HOTP
/// 0–2 and TOTP 0–14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// HOTP or TOTP.
    pub kind: OtpKind,
    /// Slot number.
    pub index: u8,
}

impl Slot {
    /// An HOTP slot.
    pub fn hotp(index: u8) -> Slot {
        Slot {
            kind: OtpKind::Hotp,
            index,
        }
    }

    /// A TOTP slot.
    pub fn totp(index: u8) -> Slot {
        Slot {
            kind: OtpKind::Totp,
            index,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OtpKind::Hotp => "hotp",
            OtpKind::Totp => "totp",
        };
        write!(f, "{kind}:{}", self.index)
    }
}

/// What a token can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// HOTP slot numbers.
    pub hotp_slots: Vec<u8>,
    /// TOTP slot numbers (empty when TOTP is not supported).
    pub totp_slots: Vec<u8>,
    /// Supported OTP lengths.
    pub digits: Vec<Digits>,
    /// Supported HMAC hashes (every family does SHA-1).
    pub hashes: Vec<OtpHash>,
    /// Longest key accepted, in bytes.
    pub max_key_len: usize,
    /// The initial HOTP counter must be a multiple of this (YubiKey: 16).
    pub counter_step: u64,
    /// Largest initial HOTP counter.
    pub max_initial_counter: u64,
    /// Whether verification can read an OTP from the device without a human (Nitrokey
    /// GET_CODE); otherwise an OTP needs a touch ([`Presence`]).
    pub reads_code_without_touch: bool,
    /// Which credential writes need.
    pub credential: CredentialKind,
    /// Whether writing an occupied slot replaces its key in one step. False for the Nitrokey
    /// 3, whose Secrets App has no overwrite: the driver Deletes the old credential, then
    /// Puts the new one, so a write that fails after the Delete leaves the slot empty.
    pub atomic_rewrite: bool,
}

/// Called by a driver when the device waits for a touch (user presence), with the line to
/// show the operator (`touch the Nitrokey 3 00C00001`).
pub type TouchPrompt = Box<dyn FnMut(&str) + Send>;

/// Which credential a family uses to protect writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// YubiKey: an optional 6-byte access code per slot.
    AccessCode,
    /// Nitrokey Pro / Storage: the admin PIN.
    AdminPin,
    /// Nitrokey 3: no credential; the device asks for a touch.
    Touch,
}

/// Credentials for writes, given once per handle with [`Token::authenticate`].
#[derive(Debug, Clone)]
pub enum Credential {
    /// Nitrokey admin PIN.
    AdminPin(Pin),
    /// YubiKey access codes: `current` unlocks a protected slot, `new` is written with the
    /// configuration (and then required for the next change).
    AccessCode {
        /// The code protecting the slot now, if any.
        current: Option<AccessCode>,
        /// The code to set with the next write, if any.
        new: Option<AccessCode>,
    },
}

/// Whether verification may wait for a person to touch the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// No touch; a YubiKey is then verified by its accepted configuration only.
    NoTouch,
    /// The operator is asked to touch; wait this long for the typed OTP.
    Touch(Duration),
}

/// What the device is expected to produce.
#[derive(Debug)]
pub struct Expected<'a> {
    /// The key that was written.
    pub key: &'a SecretKey,
    /// OTP length that was written.
    pub digits: Digits,
    /// HMAC hash that was written.
    pub hash: OtpHash,
    /// The moving factor.
    pub factor: Factor,
}

/// Moving factor of the expected OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// HOTP: the counter the device will use for its next OTP.
    Counter(u64),
    /// TOTP: the step length; the time is the host clock (the driver sets the device clock
    /// where the device has one).
    Period(u32),
}

/// Which proof verification obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "proof", rename_all = "snake_case")]
pub enum Proof {
    /// The device produced an OTP equal to the RFC 4226/6238 value; for HOTP, `counter` is
    /// the counter that OTP was computed with.
    OtpMatched {
        /// HOTP counter of the matched OTP (`None` for TOTP).
        counter: Option<u64>,
    },
    /// The device acknowledged the configuration write (YubiKey programming sequence
    /// advanced) but no OTP was read back.
    ConfigurationAccepted,
}

/// Result of [`Token::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// What was proven.
    pub proof: Proof,
    /// For HOTP: the counter the device will use for its next OTP. Reading an OTP advances
    /// it, so the engine must record this value, not the initial counter.
    pub next_counter: Option<u64>,
}

impl Verification {
    /// An HOTP OTP read from the device equalled the RFC 4226 value at `counter`; the device
    /// advanced to `counter + 1`.
    pub fn hotp_matched(counter: u64) -> Verification {
        Verification {
            proof: Proof::OtpMatched {
                counter: Some(counter),
            },
            next_counter: Some(counter + 1),
        }
    }

    /// A TOTP OTP read from the device equalled the RFC 6238 value.
    pub fn totp_matched() -> Verification {
        Verification {
            proof: Proof::OtpMatched { counter: None },
            next_counter: None,
        }
    }
}

/// Every slot of a family with `hotp` HOTP slots and `totp` TOTP slots, HOTP first.
pub(crate) fn all_slots(hotp: u8, totp: u8) -> impl Iterator<Item = Slot> {
    (0..hotp).map(Slot::hotp).chain((0..totp).map(Slot::totp))
}

/// The indices of the unprogrammed `kind` slots in a [`Token::programmed_slots`] list.
pub(crate) fn free_indices(slots: &[(Slot, bool)], kind: OtpKind) -> Vec<u8> {
    slots
        .iter()
        .filter(|(s, used)| s.kind == kind && !used)
        .map(|(s, _)| s.index)
        .collect()
}

/// The error for a [`Token::verify`] call whose slot kind and moving factor disagree
/// (an HOTP slot with a period, a TOTP slot with a counter).
pub(crate) fn factor_mismatch(slot: Slot, factor: Factor) -> Error {
    Error::InvalidArgument(format!(
        "slot {slot} does not match the expected moving factor {factor:?}"
    ))
}

/// An opened token. Every method talks to the device; methods return typed errors
/// ([`crate::Error`]) whose [`crate::Error::retry`] tells transient from permanent failures.
///
/// The trait is object-safe and `Send`: discovery returns `Box<dyn Token>` and the engine may
/// move it to a worker thread. One handle must not be used from two threads at once (the
/// methods take `&mut self`).
pub trait Token: Send {
    /// Identity as read when the handle was opened (serial, firmware...).
    fn info(&self) -> &TokenInfo;

    /// What this model and firmware support.
    fn capabilities(&self) -> Capabilities;

    /// Gives the credential writes need (Nitrokey: checks the admin PIN immediately and fails
    /// with [`crate::Error::WrongPin`]; YubiKey: remembers the access codes).
    fn authenticate(&mut self, credential: &Credential) -> Result<()>;

    /// Reads which slots are programmed (`true` = holds a configuration).
    fn programmed_slots(&mut self) -> Result<Vec<(Slot, bool)>>;

    /// Writes an HOTP key to `slot` (YubiKey 1–2, Nitrokey 0–2) with the initial counter, OTP
    /// length and HMAC hash. Success means the device acknowledged the write. A hash outside
    /// [`Capabilities::hashes`] is [`crate::Error::NotSupported`] and writes nothing.
    fn write_hotp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        initial_counter: u64,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()>;

    /// Writes a TOTP key to `slot` (Nitrokey 0–14); [`crate::Error::NotSupported`] on YubiKey,
    /// and for a hash outside [`Capabilities::hashes`].
    fn write_totp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        period: u32,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()>;

    /// Deletes the configuration of a slot.
    fn erase(&mut self, slot: Slot) -> Result<()>;

    /// Sets what the handle calls when the device waits for a touch (a Nitrokey 3 write);
    /// families that never ask ignore it.
    fn on_touch_needed(&mut self, prompt: TouchPrompt) {
        drop(prompt);
    }

    /// Proves that `slot` holds `expected`: reads an OTP from the device (Nitrokey GET_CODE,
    /// or the OTP a YubiKey types when touched, if `presence` allows) and compares it with the
    /// RFC value, or falls back to the accepted configuration. An OTP mismatch is
    /// [`crate::Error::Rejected`].
    fn verify(
        &mut self,
        slot: Slot,
        expected: &Expected<'_>,
        presence: Presence,
    ) -> Result<Verification>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine keeps `Box<dyn Token>` and moves it between threads.
    #[test]
    fn token_is_object_safe_and_send() {
        fn send<T: Send>() {}
        send::<Box<dyn Token>>();
        let slot = Slot::hotp(2);
        assert_eq!(slot.to_string(), "hotp:2");
        assert_eq!(
            Family::parse("nitrokey-storage"),
            Some(Family::NitrokeyStorage)
        );
        assert_eq!(Family::parse("nitrokey3"), Some(Family::Nitrokey3));
        let json = serde_json::to_string(&Family::Nitrokey3).unwrap();
        assert_eq!(json, "\"nitrokey3\"");
    }

    #[test]
    fn shared_verification_helpers() {
        let slots: Vec<Slot> = all_slots(2, 3).collect();
        assert_eq!(
            slots,
            [
                Slot::hotp(0),
                Slot::hotp(1),
                Slot::totp(0),
                Slot::totp(1),
                Slot::totp(2)
            ]
        );
        let programmed: Vec<(Slot, bool)> = slots
            .iter()
            .map(|&s| (s, s == Slot::hotp(0) || s == Slot::totp(1)))
            .collect();
        assert_eq!(free_indices(&programmed, OtpKind::Hotp), [1]);
        assert_eq!(free_indices(&programmed, OtpKind::Totp), [0, 2]);
        let hotp = Verification::hotp_matched(41);
        assert_eq!(hotp.next_counter, Some(42));
        assert_eq!(hotp.proof, Proof::OtpMatched { counter: Some(41) });
        assert_eq!(Verification::totp_matched().next_counter, None);
        let err = factor_mismatch(Slot::totp(3), Factor::Counter(7));
        assert_eq!(
            err.to_string(),
            "invalid argument: slot totp:3 does not match the expected moving factor Counter(7)"
        );
    }
}
