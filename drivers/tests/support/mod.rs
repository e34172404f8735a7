//! Set-up shared by the driver integration tests: emulated devices with no latency, handles
//! opened through discovery, and the write-then-verify sequence every family goes through.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::Path;

use keyprov_drivers::emulator::{self, Latency};
use keyprov_drivers::{
    Digits, Expected, Factor, Family, OtpHash, Presence, SecretKey, Slot, Token, Verification,
};

/// Adds one emulated `family` device (with `firmware`, if given) with no latency under `dir`
/// and returns its serial.
pub fn add(dir: &Path, family: Family, firmware: Option<&str>) -> String {
    let serial = emulator::add(dir, family, 1, firmware)
        .unwrap()
        .remove(0)
        .serial;
    emulator::set_latency(dir, &serial, Latency::ZERO).unwrap();
    serial
}

/// Opens the device `serial` as discovery lists it under `dir`.
pub fn open(dir: &Path, serial: &str) -> Box<dyn Token> {
    let info = keyprov_drivers::list(Some(dir))
        .unwrap()
        .into_iter()
        .find(|t| t.serial == serial)
        .expect("listed");
    keyprov_drivers::open(&info).unwrap()
}

/// A fresh emulator directory holding one `family` device with no latency: the directory
/// (removed when dropped), the device's serial, and a handle opened through discovery.
pub fn emulated(family: Family) -> (tempfile::TempDir, String, Box<dyn Token>) {
    let dir = tempfile::tempdir().unwrap();
    let serial = add(dir.path(), family, None);
    let token = open(dir.path(), &serial);
    (dir, serial, token)
}

/// What a slot written with `key`, `digits`, `hash` and `factor` is expected to produce.
pub fn expectation(key: &SecretKey, digits: Digits, hash: OtpHash, factor: Factor) -> Expected<'_> {
    Expected {
        key,
        digits,
        hash,
        factor,
    }
}

/// Writes `expected` to `slot` (HOTP at the expected counter, TOTP with the expected period)
/// and verifies it without a touch.
pub fn write_and_verify(
    token: &mut dyn Token,
    slot: Slot,
    expected: &Expected<'_>,
) -> Verification {
    match expected.factor {
        Factor::Counter(counter) => token
            .write_hotp(
                slot.index,
                expected.key,
                counter,
                expected.digits,
                expected.hash,
            )
            .unwrap(),
        Factor::Period(period) => token
            .write_totp(
                slot.index,
                expected.key,
                period,
                expected.digits,
                expected.hash,
            )
            .unwrap(),
    }
    token.verify(slot, expected, Presence::NoTouch).unwrap()
}
