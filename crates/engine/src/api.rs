//! The station's service API: the request, response and event types that the CLI, the GUI
//! and any other shell exchange with the engine.
//!
//! These types are the one place where the shells and the engine meet. They are plain data,
//! serde-serializable (the GUI receives them as JSON over Tauri IPC; `--json` CLI output uses
//! the same shapes), and carry no secret except where a field says so. Field names are
//! snake_case in JSON. Extend them by adding fields (with `#[serde(default)]`) rather than
//! renaming: scripts and the frontend depend on them.
//!
//! The operations are methods of [`crate::Station`]:
//!
//! | method | request | result |
//! |---|---|---|
//! | `Station::open(StationConfig)` | where the store, master key and emulators are | `Station` |
//! | `devices()` | — | `Vec<DeviceInfo>` (real HID + emulator dir) |
//! | `watch_devices(callback)` | — | `DeviceEvent`s until the returned guard drops |
//! | `attach_emulated(EmulatorRequest)` | demo/testing switch | `Vec<DeviceInfo>` |
//! | `provision(BatchRequest, on_progress, &Cancel)` | a batch | `BatchSummary` |
//! | `batches()` / `batch(id_or_name)` | — | `Vec<BatchSummary>` / `BatchDetail` |
//! | `export_batch(id_or_name, ExportRequest)` | a file and its protection | `ExportRecord` |
//! | `reissue(ReissueRequest, on_progress, &Cancel)` | one token | `BatchSummary` |
//! | `audit_verify()` | — | `AuditReport` |
//! | `audit_events(AuditQuery)` | batch filter, limit, offset | `Vec<AuditEvent>`, newest first |
//! | `reveal_secret(key_id)` | explicit operator request | hex secret (zeroizing) |
//!
//! Errors are `EngineError`s; `EngineError::code()` is a stable identifier for the GUI.
//! `watch_devices` returns a `DeviceWatch` guard; `provision`/`reissue` take the progress
//! callback as `&(dyn Fn(ProgressEvent) + Sync)`, called from worker threads.
//!
//! Changes since the first sketch (all additions): `StationConfig::nitrokey_admin_pin`,
//! `StationConfig::touch_timeout_secs`, `BatchRequest::parallel`; `auth_codes` entries may carry
//! ` SHARED_KEY=<hex>`; `TokenRow::slot` is `hotp:N` / `totp:N`; `BatchSummary::state` is
//! `interrupted` for a batch that is open but not running in this process; `BatchRequest::hash`
//! and `BatchSummary::hash` (issue 7); `TokenRow::retryable` (issue 5).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the station keeps its state. Every field has a default: the XDG data directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StationConfig {
    /// SQLite database file; default `$XDG_DATA_HOME/keyprov/station.db`.
    pub db_path: Option<PathBuf>,
    /// Directory of emulated tokens to treat as attached, besides real HID devices.
    pub emulator_dir: Option<PathBuf>,
    /// Operator passphrase that unwraps the master key, when it is wrapped.
    #[serde(skip_serializing)]
    pub passphrase: Option<String>,
    /// Admin PIN of the Nitrokeys to program; the factory default `12345678` when absent.
    /// (Added by the engine, issue 5.)
    #[serde(skip_serializing)]
    pub nitrokey_admin_pin: Option<String>,
    /// How long verification waits for a person to touch a real YubiKey, in seconds; absent:
    /// no touch, the accepted configuration is the proof (`config-accepted`). Emulated
    /// YubiKeys are touched by the station itself. (Added by the engine, issue 5.)
    pub touch_timeout_secs: Option<u64>,
}

/// The kind of OTP the tokens of a batch get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpKind {
    Hotp,
    Totp,
}

/// The hash under the OTP's HMAC (RFC 4226 SHA-1; RFC 6238 allows SHA-256 and SHA-512). A
/// batch asking for a hash a token cannot compute fails that token before a key is obtained
/// for it: no family computes SHA-512, which only imported seed files carry. (Added for
/// issue 7.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpHash {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl OtpHash {
    /// The name used on the command line and in JSON (`sha1`, `sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            OtpHash::Sha1 => "sha1",
            OtpHash::Sha256 => "sha256",
            OtpHash::Sha512 => "sha512",
        }
    }
}

/// Where keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProvisioningMode {
    /// The DSKPP server code runs in-process, its state in the station store.
    Local,
    /// A central `keyprov serve` over HTTP(S).
    Central {
        server_url: String,
        /// One-time authentication codes the server issued for this batch, one per token run:
        /// each entry is a line as `keyprov ac issue` prints it, `AC=<code>` optionally
        /// followed by ` SHARED_KEY=<hex>` (a bare code is accepted too). A run consumes one
        /// code; a resumed batch takes the next unused one.
        #[serde(default)]
        auth_codes: Vec<String>,
    },
}

/// How an exported PSKC file is protected.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ExportProtection {
    /// PBKDF2 from a password.
    Password { password: String },
    /// A pre-shared AES key, hex.
    Key { key_hex: String },
    /// RSA key transport to the certificate in this PEM file.
    Certificate { cert_pem: PathBuf },
}

impl std::fmt::Debug for ExportProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { .. } => f.write_str("Password(<redacted>)"),
            Self::Key { .. } => f.write_str("Key(<redacted>)"),
            Self::Certificate { cert_pem } => write!(f, "Certificate({})", cert_pem.display()),
        }
    }
}

/// Which importer the export is written for (issue 7); `generic` is canonical RFC 6030.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportTarget {
    #[default]
    Generic,
    Privacyidea,
    Freeipa,
    Linotp,
}

/// An export of a batch (or of one re-issued key) to a PSKC file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRequest {
    pub path: PathBuf,
    pub protection: ExportProtection,
    #[serde(default)]
    pub target: ExportTarget,
}

/// A batch to provision: every attached token (or the first `count`) gets one fresh key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRequest {
    pub name: String,
    pub otp: OtpKind,
    pub digits: u8,
    /// TOTP time step in seconds (ignored for HOTP).
    #[serde(default = "default_period")]
    pub period: u32,
    /// Provision at most this many tokens; all attached ones when absent.
    #[serde(default)]
    pub count: Option<usize>,
    pub mode: ProvisioningMode,
    #[serde(default)]
    pub export: Option<ExportRequest>,
    #[serde(default)]
    pub operator: Option<String>,
    /// Tokens programmed at once; all attached ones (at most 64) when absent. (Added by the
    /// engine, issue 5.)
    #[serde(default)]
    pub parallel: Option<usize>,
    /// The OTP hash of the new keys; SHA-1 when absent. (Added for issue 7.)
    #[serde(default)]
    pub hash: OtpHash,
}

fn default_period() -> u32 {
    30
}

/// Re-issue one token: revoke its key, provision a new one, optionally export that key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReissueRequest {
    pub serial: String,
    pub mode: ProvisioningMode,
    #[serde(default)]
    pub export: Option<ExportRequest>,
}

/// An attached token as the station sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `yubikey` or `nitrokey`.
    pub family: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// Slots that hold no configuration.
    #[serde(default)]
    pub free_slots: Vec<String>,
    /// True for a device served by an emulator directory.
    #[serde(default)]
    pub emulated: bool,
}

/// A token arrived or left.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum DeviceEvent {
    Arrived { device: DeviceInfo },
    Removed { device: DeviceInfo },
}

/// Attach emulated tokens (the GUI's demo switch; `keyprov emulator add` on the CLI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmulatorRequest {
    /// `yubikey`, `nitrokey-pro` or `nitrokey-storage`.
    pub model: String,
    pub count: usize,
}

/// Where one token is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Queued,
    Dskpp,
    Writing,
    Verifying,
    Done,
    Failed,
}

/// One progress report, streamed while a batch runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub batch_id: i64,
    pub serial: String,
    pub family: String,
    pub stage: Stage,
    /// Attempt number for this token, from 1.
    pub attempt: u32,
    /// What went wrong (no secret), for `Failed` and retried stages.
    pub message: Option<String>,
    /// Tokens finished (done or failed) and total, for the batch progress bar.
    pub finished: usize,
    pub total: usize,
}

/// A batch as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSummary {
    pub id: i64,
    pub name: String,
    /// `running`, `completed`, `failed`, `cancelled`, `interrupted`.
    pub state: String,
    pub otp: OtpKind,
    pub digits: u8,
    pub period: Option<u32>,
    /// The OTP hash of the batch's keys. (Added for issue 7.)
    #[serde(default)]
    pub hash: OtpHash,
    /// `local` or the server URL.
    pub mode: String,
    pub operator: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub finished_at: Option<String>,
    pub tokens: usize,
    pub verified: usize,
    pub failed: usize,
    pub exports: Vec<ExportRecord>,
}

/// One token's key within a batch. Never carries the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRow {
    pub key_id: String,
    pub family: String,
    pub model: String,
    pub serial: String,
    pub slot: String,
    pub otp: OtpKind,
    pub digits: u8,
    /// HOTP: the next counter value the device will use.
    pub counter: Option<u64>,
    pub period: Option<u32>,
    /// `reserved`, `written`, `verified`, `exported`, `revoked`; `pending` (no key yet) or
    /// `failed` (its run failed, no key left on it).
    pub state: String,
    /// How the write was proven: `device-otp` or `config-accepted`.
    pub verification: Option<String>,
    pub error: Option<String>,
    /// For a failed token: whether the failure may go away when the batch is re-run (the
    /// token was unplugged, busy or did not answer after every retry; the DSKPP server was
    /// unreachable or busy). The engine sets it from the error's kind; false otherwise.
    /// (Added by the engine, issue 5.)
    #[serde(default)]
    pub retryable: bool,
}

/// A batch with its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchDetail {
    pub batch: BatchSummary,
    pub tokens: Vec<TokenRow>,
}

/// A PSKC file the station wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub path: PathBuf,
    pub sha256: String,
    /// `password`, `key`, `certificate`.
    pub protection: String,
    pub target: ExportTarget,
    pub keys: usize,
    pub created_at: String,
    /// Serials the target's profile wrote differently from the device's (LinOTP's OATH
    /// serials); empty for other targets. Exports listed from the history carry them too.
    #[serde(default)]
    pub renamed_serials: Vec<RenamedSerial>,
}

/// A token serial an export profile rewrote (`10000001` → `UBOH10000001` for LinOTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenamedSerial {
    /// The serial of the device.
    pub device: String,
    /// The serial written in the file, which the validation server will know.
    pub written: String,
}

/// Result of checking the event hash chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub ok: bool,
    pub events: u64,
    /// The first event whose link does not hold, with the reason.
    pub first_broken: Option<String>,
}

/// Which audit events to list: newest first, optionally of one batch, a page at a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only events of this batch.
    #[serde(default)]
    pub batch_id: Option<i64>,
    /// At most this many events (0: no limit).
    #[serde(default)]
    pub limit: usize,
    /// Skip this many of the newest events first.
    #[serde(default)]
    pub offset: usize,
}

/// One event of the station's hash-chained audit log. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When it happened, RFC 3339.
    pub time: String,
    /// What happened (`key.verified`, `export.written`, ...).
    pub kind: String,
    /// The batch it concerns.
    pub batch: Option<i64>,
    /// The serial of the token it concerns.
    pub serial: Option<String>,
    /// The key it concerns (station key number, as `TokenRow::key_id`).
    #[serde(default)]
    pub key: Option<i64>,
    /// Details (a JSON object; never a secret).
    pub detail: serde_json::Value,
    /// The first 12 hex digits of the event's link in the hash chain.
    pub hash_prefix: String,
}
