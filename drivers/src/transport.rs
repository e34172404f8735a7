//! The HID transport every driver talks through: feature reports in both directions and
//! input reports with a timeout. [`HidapiTransport`] reaches real devices through hidapi;
//! the emulators implement the same trait, so the codecs above cannot tell them apart.

use std::time::Duration;

use crate::error::Result;

/// One opened HID interface.
///
/// Reports follow hidapi's convention: byte 0 is the report ID (0 for devices without
/// numbered reports, which is every device here), the report data follows.
pub trait HidTransport: Send {
    /// Sends a feature report (`HIDIOCSFEATURE`); `report[0]` is the report ID.
    fn send_feature_report(&mut self, report: &[u8]) -> Result<()>;

    /// Reads a feature report (`HIDIOCGFEATURE`) into `buf`, whose byte 0 holds the report ID
    /// to ask for. Returns the number of bytes written, report ID included.
    fn get_feature_report(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Waits up to `timeout` for an input report (e.g. a keyboard report). Returns `None`
    /// when nothing arrived. The report has no report-ID byte when the device does not use
    /// numbered reports.
    fn read_input_report(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>>;

    /// Sends an output report (interrupt OUT, or SET_REPORT(Output) when the interface has
    /// no OUT endpoint); `report[0]` is the report ID. Keyboard interfaces take LED states here.
    fn send_output_report(&mut self, report: &[u8]) -> Result<()>;

    /// Human-readable name of the interface for error messages (HID path or emulator file).
    fn describe(&self) -> String;
}

#[cfg(feature = "hid")]
pub use hid::HidapiTransport;

#[cfg(feature = "hid")]
mod hid {
    use std::time::Duration;

    use super::HidTransport;
    use crate::error::{Error, Result};

    /// A hidraw node opened through hidapi (pure-Rust Linux backend).
    pub struct HidapiTransport {
        device: hidapi::HidDevice,
        path: String,
    }

    impl HidapiTransport {
        /// Opens the HID interface at `path` (e.g. `/dev/hidraw3`).
        pub fn open(api: &hidapi::HidApi, path: &std::ffi::CStr) -> Result<Self> {
            let name = path.to_string_lossy().into_owned();
            let device = api
                .open_path(path)
                .map_err(|e| map_error(&name, e, "open"))?;
            Ok(HidapiTransport { device, path: name })
        }
    }

    /// hidapi reports a vanished hidraw node as ENODEV / POLLHUP text; everything else is an
    /// I/O error worth retrying.
    fn map_error(path: &str, err: hidapi::HidError, operation: &'static str) -> Error {
        let message = err.to_string();
        let gone = [
            "ENODEV",
            "No such device",
            "disconnected",
            "ENOENT",
            "EPIPE",
        ];
        if gone.iter().any(|needle| message.contains(needle)) {
            Error::Unplugged {
                device: path.to_owned(),
                operation,
            }
        } else {
            Error::Hid {
                device: path.to_owned(),
                message,
            }
        }
    }

    impl HidTransport for HidapiTransport {
        fn send_feature_report(&mut self, report: &[u8]) -> Result<()> {
            self.device
                .send_feature_report(report)
                .map_err(|e| map_error(&self.path, e, "send feature report"))
        }

        fn get_feature_report(&mut self, buf: &mut [u8]) -> Result<usize> {
            self.device
                .get_feature_report(buf)
                .map_err(|e| map_error(&self.path, e, "get feature report"))
        }

        fn read_input_report(
            &mut self,
            buf: &mut [u8],
            timeout: Duration,
        ) -> Result<Option<usize>> {
            let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            let n = self
                .device
                .read_timeout(buf, millis)
                .map_err(|e| map_error(&self.path, e, "read input report"))?;
            Ok((n > 0).then_some(n))
        }

        fn send_output_report(&mut self, report: &[u8]) -> Result<()> {
            let n = self
                .device
                .write(report)
                .map_err(|e| map_error(&self.path, e, "write output report"))?;
            if n != report.len() {
                let message = format!("output report: {n} of {} bytes written", report.len());
                return Err(Error::Hid {
                    device: self.path.clone(),
                    message,
                });
            }
            Ok(())
        }

        fn describe(&self) -> String {
            self.path.clone()
        }
    }
}
