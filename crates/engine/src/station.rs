//! [`Station`]: the service API the CLI and the GUI call. Each method is one operation of the
//! table in `api`'s documentation; it opens nothing the shell has to manage and returns the
//! API's plain data types.

use std::path::{Path, PathBuf};

use keyprov_drivers::TokenInfo;
use keyprov_store::{
    Batch, BatchMode, BatchState, DeviceOutcome, Export, Key, KeyState, Store, StoreError,
};
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::api::{
    AuditReport, BatchDetail, BatchRequest, BatchSummary, DeviceInfo, EmulatorRequest,
    ExportRecord, ExportRequest, OtpKind, ProgressEvent, ReissueRequest, StationConfig, TokenRow,
};
use crate::cancel::Cancel;
use crate::error::{EngineError, Result};
use crate::lock::StationLock;

/// The station: its store, master key and where it looks for tokens.
#[derive(Debug)]
pub struct Station {
    pub(crate) store: Store,
    pub(crate) config: StationConfig,
}

impl Station {
    /// Opens (creating on first use) the station database and its master key.
    pub fn open(config: StationConfig) -> Result<Station> {
        let db_path = match &config.db_path {
            Some(path) => path.clone(),
            None => Store::default_path()?,
        };
        let store = Store::open(&db_path, config.passphrase.as_deref())?;
        tracing::debug!(db = %db_path.display(), "station opened");
        Ok(Station { store, config })
    }

    /// The station database file.
    pub fn db_path(&self) -> &Path {
        self.store.path()
    }

    /// The attached tokens: real HID devices and the emulator directory, if configured.
    pub fn devices(&self) -> Result<Vec<DeviceInfo>> {
        Ok(self.tokens()?.iter().map(device_info).collect())
    }

    /// Calls `on_event` (from a watcher thread) whenever a token arrives or leaves, until the
    /// returned guard is dropped.
    pub fn watch_devices(
        &self,
        on_event: impl FnMut(crate::api::DeviceEvent) + Send + 'static,
    ) -> Result<crate::tokens::DeviceWatch> {
        crate::tokens::watch(self.emulator_dir(), on_event)
    }

    /// Creates emulated tokens in the configured emulator directory (the GUI's demo switch).
    pub fn attach_emulated(&self, request: EmulatorRequest) -> Result<Vec<DeviceInfo>> {
        let dir = self.emulator_dir().ok_or_else(|| {
            EngineError::invalid("emulator directory", "no emulator directory is configured")
        })?;
        let created = crate::tokens::create_emulated(dir, &request.model, request.count)?;
        Ok(created.iter().map(device_info).collect())
    }

    /// Provisions a batch (or resumes the unfinished batch of that name); see `docs/engine.md`.
    /// Holds the station lock throughout: a second run on the same database, in this process
    /// or another, fails at once with [`EngineError::StationBusy`].
    pub fn provision(
        &self,
        request: BatchRequest,
        on_progress: &(dyn Fn(ProgressEvent) + Sync),
        cancel: &Cancel,
    ) -> Result<BatchSummary> {
        let _lock = StationLock::acquire(self.db_path())?;
        crate::provision::provision(self, request, on_progress, cancel)
    }

    /// Replaces one token's key: a one-token batch whose write revokes the old key. Holds the
    /// station lock as [`Station::provision`] does.
    pub fn reissue(
        &self,
        request: ReissueRequest,
        on_progress: &(dyn Fn(ProgressEvent) + Sync),
        cancel: &Cancel,
    ) -> Result<BatchSummary> {
        let _lock = StationLock::acquire(self.db_path())?;
        crate::provision::reissue(self, request, on_progress, cancel)
    }

    /// Every batch, oldest first.
    pub fn batches(&self) -> Result<Vec<BatchSummary>> {
        self.store
            .list_batches()?
            .iter()
            .map(|b| self.summary(b))
            .collect()
    }

    /// One batch (by name, or by id when no batch has that name) with its tokens.
    pub fn batch(&self, id_or_name: &str) -> Result<BatchDetail> {
        let batch = self.resolve(id_or_name)?;
        let summary = self.summary(&batch)?;
        let keys = self.store.batch_keys(batch.id)?;
        let mut tokens = Vec::new();
        for member in self.store.batch_devices(batch.id)? {
            let mine: Vec<&Key> = keys
                .iter()
                .filter(|k| k.device == member.device.id)
                .collect();
            // An imported token may hold several keys of the file (one per label): list each.
            let live: Vec<&Key> = mine
                .iter()
                .copied()
                .filter(|k| k.state != KeyState::Revoked)
                .collect();
            if batch.mode == BatchMode::Imported && live.len() > 1 {
                tokens.extend(live.iter().map(|k| token_row(&member, Some(k), &batch)));
                continue;
            }
            let key = live.last().or(mine.last()).copied();
            tokens.push(token_row(&member, key, &batch));
        }
        Ok(BatchDetail {
            batch: summary,
            tokens,
        })
    }

    /// Exports the verified keys of a batch to a protected PSKC file.
    pub fn export_batch(&self, id_or_name: &str, request: ExportRequest) -> Result<ExportRecord> {
        crate::export::check(&request)?;
        let batch = self.resolve(id_or_name)?;
        // A batch still open may be running elsewhere: its keys are exported only while no
        // run can change them. A finished batch no longer changes and needs no lock.
        let _lock = match batch.state {
            BatchState::Open => Some(StationLock::acquire(self.db_path())?),
            _ => None,
        };
        crate::export::export(&self.store, &batch, &request)
    }

    /// Checks the event hash chain of the station database.
    pub fn audit_verify(&self) -> Result<AuditReport> {
        let report = self.store.verify_audit()?;
        Ok(AuditReport {
            ok: report.is_intact(),
            events: report.events,
            first_broken: report.first_broken.map(|b| b.to_string()),
        })
    }

    /// The secret of one key, hex, on the operator's explicit request.
    pub fn reveal_secret(&self, key_id: &str) -> Result<Zeroizing<String>> {
        let id = key_id.trim_start_matches('#').parse::<i64>().map_err(|_| {
            EngineError::invalid("key id", format!("{key_id:?} is not a key number"))
        })?;
        let secret = self.store.key_secret(keyprov_store::KeyId(id))?;
        tracing::info!(key = id, "secret revealed on request");
        Ok(Zeroizing::new(hex::encode(&*secret)))
    }

    pub(crate) fn emulator_dir(&self) -> Option<&Path> {
        self.config.emulator_dir.as_deref()
    }

    pub(crate) fn tokens(&self) -> Result<Vec<TokenInfo>> {
        crate::tokens::discover(self.emulator_dir())
    }

    pub(crate) fn resolve(&self, id_or_name: &str) -> Result<Batch> {
        self.store.resolve_batch(id_or_name).map_err(|e| match e {
            StoreError::UnknownBatch(_) | StoreError::UnknownBatchName(_) => {
                EngineError::UnknownBatch(id_or_name.to_string())
            }
            other => other.into(),
        })
    }

    pub(crate) fn summary(&self, batch: &Batch) -> Result<BatchSummary> {
        let members = self.store.batch_devices(batch.id)?;
        let count = |o: DeviceOutcome| members.iter().filter(|m| m.outcome == o).count();
        Ok(BatchSummary {
            id: batch.id.0,
            name: batch.name.clone(),
            state: self.state_word(batch.state).into(),
            otp: otp_kind(batch.profile.algorithm),
            digits: batch.profile.digits,
            period: batch.profile.period,
            hash: crate::hash::listed(batch.profile.hash),
            mode: match batch.mode {
                BatchMode::Local => "local".into(),
                BatchMode::Imported => "imported".into(),
                BatchMode::Central => batch.server_url.clone().unwrap_or_else(|| "central".into()),
            },
            operator: batch.operator.clone(),
            created_at: rfc3339(batch.created_at),
            finished_at: batch.finished_at.map(rfc3339),
            tokens: members.len(),
            verified: count(DeviceOutcome::Done),
            failed: count(DeviceOutcome::Failed),
            exports: crate::export::history(&self.store, batch)?,
        })
    }

    /// The listed state of a batch: an open batch is `running` while a run holds the station
    /// lock (this process or another), else `interrupted` (a resume finishes it).
    fn state_word(&self, state: BatchState) -> &'static str {
        match state {
            BatchState::Open if crate::lock::holder_of(self.db_path()).is_some() => "running",
            BatchState::Open => "interrupted",
            BatchState::Completed => "completed",
            BatchState::Failed => "failed",
            BatchState::Cancelled => "cancelled",
        }
    }
}

/// The API's view of an export row.
pub(crate) fn export_record(e: &Export) -> ExportRecord {
    ExportRecord {
        path: PathBuf::from(&e.file_name),
        sha256: e.sha256.clone(),
        protection: e.protection.clone(),
        target: crate::export::target_named(&e.target),
        keys: e.keys.len(),
        created_at: rfc3339(e.created_at),
        renamed_serials: Vec::new(),
    }
}

fn token_row(member: &keyprov_store::BatchDevice, key: Option<&Key>, batch: &Batch) -> TokenRow {
    let d = &member.device;
    TokenRow {
        key_id: key.map(|k| k.id.0.to_string()).unwrap_or_default(),
        family: d.family.clone(),
        model: d.model.clone(),
        serial: d.serial.clone(),
        slot: key.map(|k| k.slot.clone()).unwrap_or_default(),
        otp: otp_kind(batch.profile.algorithm),
        digits: batch.profile.digits,
        counter: key.and_then(|k| k.counter),
        period: batch.profile.period,
        // A token whose run failed says so, not `pending` (no key) or `revoked` (its key
        // was withdrawn because the write failed).
        state: match (key, member.outcome) {
            (Some(k), DeviceOutcome::Failed) if k.state == KeyState::Revoked => "failed",
            (Some(k), _) => k.state.as_str(),
            (None, DeviceOutcome::Failed) => "failed",
            (None, _) => "pending",
        }
        .into(),
        verification: key.and_then(|k| k.verification.clone()),
        error: member.error.clone(),
        retryable: member.outcome == DeviceOutcome::Failed && member.retryable,
    }
}

pub(crate) fn device_info(t: &TokenInfo) -> DeviceInfo {
    let free = t
        .free_hotp_slots
        .iter()
        .flatten()
        .map(|s| format!("hotp:{s}"))
        .chain(
            t.free_totp_slots
                .iter()
                .flatten()
                .map(|s| format!("totp:{s}")),
        )
        .collect();
    DeviceInfo {
        family: crate::tokens::family(t).into(),
        model: t.model.clone(),
        serial: t.serial.clone(),
        firmware: t.firmware.clone(),
        free_slots: free,
        emulated: t.emulated,
    }
}

pub(crate) fn otp_kind(a: keyprov_store::OtpAlgorithm) -> OtpKind {
    match a {
        keyprov_store::OtpAlgorithm::Hotp => OtpKind::Hotp,
        keyprov_store::OtpAlgorithm::Totp => OtpKind::Totp,
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
