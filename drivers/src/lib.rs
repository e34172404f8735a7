//! `keyprov-drivers`: USB HID drivers for tokens that accept an HOTP/TOTP secret — YubiKey
//! (OTP application), Nitrokey Pro / Storage / Librem Key and Nitrokey 3 (Secrets App over
//! CTAPHID) — with byte-exact emulators of the device side of each protocol, discovery and
//! hotplug.
//!
//! Layers, bottom up:
//! - [`transport::HidTransport`]: feature reports in and out, input reports with a timeout;
//!   implemented by hidapi (real devices, feature `hid`) and by [`emulator`];
//! - codecs: [`yubikey::frame`] / [`yubikey::config`] (70-byte frames in 7-byte chunks,
//!   CRC-16, polling rules), [`nitrokey::packet`] (64-byte reports, STM32 CRC-32),
//!   [`nitrokey3::ctaphid`] and [`nitrokey3::apdu`] (CTAPHID packets, Secrets App APDUs);
//! - device handles [`yubikey::YubiKey`], [`nitrokey::Nitrokey`] and [`nitrokey3::Nitrokey3`];
//! - the object-safe [`Token`] trait the provisioning engine uses, with [`list`], [`open`]
//!   and [`Watcher`] to find tokens and follow hotplug;
//! - [`otp`]: RFC 4226/6238 values the devices are checked against.
//!
//! Secrets (keys, PINs, access codes) travel in [`secret`] types that wipe themselves and
//! print redacted; nothing here logs them.

#![warn(missing_docs)]

pub mod crc;
pub mod discovery;
pub mod emulator;
pub mod error;
pub mod nitrokey;
pub mod nitrokey3;
pub mod otp;
pub mod secret;
pub mod token;
pub mod transport;
pub mod watch;
pub mod yubikey;

pub use discovery::{list, open, open_yubikey};
pub use error::{Error, Result, Retry};
pub use otp::{Digits, OtpHash, hotp, hotp_with, totp, totp_with};
pub use secret::{AccessCode, Pin, SecretKey};
pub use token::{
    Capabilities, Credential, CredentialKind, Expected, Factor, Family, Location, OtpKind,
    Presence, Proof, Slot, Token, TokenInfo, TouchPrompt, Verification,
};
pub use watch::{DeviceEvent, Watcher};
