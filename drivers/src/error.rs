//! Errors of the token drivers, grouped by who is at fault, with the retry policy the
//! provisioning engine needs (`Error::retry`).
//!
//! Messages name the device (family and serial, or the HID path before the serial is known)
//! and the operation; they never carry key material, PINs, access codes or OTP values.

use std::path::PathBuf;

/// What a caller may do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: try the same operation again on the same handle, with backoff.
    SameHandle,
    /// The handle is dead (device unplugged); wait for the device to come back, reopen it
    /// with [`crate::open`] and start the operation again.
    Reopen,
    /// Permanent: retrying the same request cannot succeed.
    Never,
}

/// Every error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- The device or the link failed (transient) ---------------------------------------
    /// The device went away (unplugged, or re-enumerated so that this handle is stale).
    #[error("{device}: device unplugged during {operation}")]
    Unplugged {
        /// Family and serial, or the HID path.
        device: String,
        /// What the driver was doing.
        operation: &'static str,
    },
    /// The device accepted a request but did not finish it in time.
    #[error("{device}: no answer to {operation} after {waited_ms} ms")]
    Timeout {
        /// Family and serial, or the HID path.
        device: String,
        /// What the driver was doing.
        operation: &'static str,
        /// How long the driver waited.
        waited_ms: u64,
    },
    /// The device stayed busy and did not accept the request.
    #[error("{device}: device busy, {operation} not accepted after {waited_ms} ms")]
    Busy {
        /// Family and serial, or the HID path.
        device: String,
        /// What the driver was doing.
        operation: &'static str,
        /// How long the driver waited.
        waited_ms: u64,
    },
    /// A checksum did not match: the device reported a corrupted request, or a response
    /// failed its CRC check.
    #[error("{device}: CRC mismatch in {what}")]
    Crc {
        /// Family and serial, or the HID path.
        device: String,
        /// Which report or frame failed.
        what: &'static str,
    },
    /// The HID layer failed (ioctl, read or open error) for a reason other than unplugging.
    #[error("{device}: HID I/O error: {message}")]
    Hid {
        /// Family and serial, or the HID path.
        device: String,
        /// The operating system's or hidapi's message.
        message: String,
    },

    /// The device asked for a touch (user presence) and nobody touched it in time (Nitrokey 3:
    /// SW 6982). Not retried automatically — a person has to act — but a re-run may succeed.
    #[error("{device}: {operation} rejected: {reason}")]
    NotTouched {
        /// Family and serial.
        device: String,
        /// What the driver asked for.
        operation: &'static str,
        /// The device's status and what it means.
        reason: String,
    },

    // --- The device refused the request (permanent) ----------------------------------------
    /// The device did not accept a configuration or command (wrong access code, a
    /// write-protected slot, a corrupted frame the device dropped, or a rejected value).
    #[error("{device}: {operation} rejected: {reason}")]
    Rejected {
        /// Family and serial.
        device: String,
        /// What the driver asked for.
        operation: &'static str,
        /// The device's status, or what the driver could observe.
        reason: String,
    },
    /// The admin PIN (Nitrokey) was wrong.
    #[error("{device}: wrong admin PIN ({retries} retries left)")]
    WrongPin {
        /// Family and serial.
        device: String,
        /// Retries the device reports left, when it could be read.
        retries: RetriesLeft,
    },
    /// A write was attempted without the authentication the device requires.
    #[error("{device}: {operation} needs authentication first (admin PIN or access code)")]
    NotAuthorized {
        /// Family and serial.
        device: String,
        /// What the driver asked for.
        operation: &'static str,
    },
    /// The slot holds no OTP configuration.
    #[error("{device}: slot {slot} is not programmed")]
    SlotNotProgrammed {
        /// Family and serial.
        device: String,
        /// Slot as shown to users (`hotp:1`).
        slot: String,
    },

    // --- The caller asked for something this device cannot do (permanent) -----------------
    /// The device or its firmware does not support the request.
    #[error("{device}: not supported: {what}")]
    NotSupported {
        /// Family and serial.
        device: String,
        /// What is not supported and why.
        what: String,
    },
    /// An argument is out of range for every device (slot number, digits, key length...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    // --- The device misbehaved (permanent for this request) -------------------------------
    /// A response did not follow the protocol.
    #[error("{device}: protocol error in {operation}: {detail}")]
    Protocol {
        /// Family and serial, or the HID path.
        device: String,
        /// What the driver was doing.
        operation: &'static str,
        /// What was unexpected.
        detail: String,
    },

    // --- Discovery and emulator state ------------------------------------------------------
    /// No attached token (real or emulated) has this serial.
    #[error("no token with serial {serial} is attached")]
    NoSuchDevice {
        /// The serial asked for.
        serial: String,
    },
    /// Reading or writing an emulator state file failed.
    #[error("emulator state {}: {source}", path.display())]
    EmulatorIo {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An emulator state file is not valid.
    #[error("emulator state {}: {detail}", path.display())]
    EmulatorState {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Enumerating HID or USB devices failed.
    #[error("device enumeration failed: {0}")]
    Enumeration(String),
}

/// Admin PIN retries left, as far as the device told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetriesLeft(pub Option<u8>);

impl std::fmt::Display for RetriesLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unknown"),
        }
    }
}

impl Error {
    /// Whether and how the operation may be retried.
    pub fn retry(&self) -> Retry {
        match self {
            Error::Timeout { .. } | Error::Busy { .. } | Error::Crc { .. } | Error::Hid { .. } => {
                Retry::SameHandle
            }
            Error::Unplugged { .. } | Error::NoSuchDevice { .. } => Retry::Reopen,
            Error::EmulatorIo { .. } => Retry::SameHandle,
            _ => Retry::Never,
        }
    }

    /// True when retrying (possibly after reopening the device) may succeed.
    pub fn is_transient(&self) -> bool {
        self.retry() != Retry::Never
    }

    /// A short stable code for GUIs and logs (`unplugged`, `timeout`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unplugged { .. } => "unplugged",
            Error::Timeout { .. } => "timeout",
            Error::Busy { .. } => "busy",
            Error::Crc { .. } => "crc",
            Error::Hid { .. } => "hid_io",
            Error::Rejected { .. } => "rejected",
            Error::NotTouched { .. } => "not_touched",
            Error::WrongPin { .. } => "wrong_pin",
            Error::NotAuthorized { .. } => "not_authorized",
            Error::SlotNotProgrammed { .. } => "slot_not_programmed",
            Error::NotSupported { .. } => "not_supported",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Protocol { .. } => "protocol",
            Error::NoSuchDevice { .. } => "no_such_device",
            Error::EmulatorIo { .. } => "emulator_io",
            Error::EmulatorState { .. } => "emulator_state",
            Error::Enumeration(_) => "enumeration",
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
