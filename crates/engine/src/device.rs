//! The pipeline of one token: DSKPP → write → verify → commit, journalled step by step.
//!
//! Each step's record is committed only after the step returned, and the next step starts only
//! after that commit (the table is in `docs/engine.md`); the records of all workers are
//! group-committed by the batch's [`Writer`]. A device goes through three stages on three pools
//! of threads (`pool::pipeline`): [`Run::prepare`] (resume plan, checks, DSKPP, `reserved`) runs
//! ahead of [`Run::program`] (write, `written`), so that the next device's key is obtained
//! while the current one is written, and [`Run::finish`] (verify, `verified`, outcome) runs
//! behind it, so that proving one device does not delay writing the next. Transient device
//! errors are retried with back-off, reopening the handle when the driver asks for it.

use std::sync::mpsc;

use keyprov_drivers::{
    Credential, Digits, Expected, Factor, OtpHash, Presence, Proof, Retry, SecretKey, Slot, Token,
    TokenInfo,
};
use keyprov_store::{
    Batch, BatchDevice, Device, DeviceOutcome, KeyId, KeyState, NewEvent, OtpAlgorithm, Recorded,
    Store, StoreError, Verification,
};

use crate::api::Stage;
use crate::cancel::Cancel;
use crate::journal::{self, Entry, Next, RecordedKey, Reservation, Writer};
use crate::progress::{Progress, Subject};
use crate::retry::{self, Backoff, Outcome};
use crate::source::KeySource;

/// What a batch's workers share.
pub(crate) struct Run<'a> {
    pub store: &'a Store,
    /// Every record of the batch goes through it (group commit).
    pub journal: &'a Writer<'a>,
    pub batch: &'a Batch,
    pub source: &'a dyn KeySource,
    pub backoff: Backoff,
    pub cancel: &'a Cancel,
    pub progress: &'a Progress<'a>,
    pub credentials: &'a Credentials,
}

/// Write credentials per family.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub nitrokey_admin_pin: keyprov_drivers::Pin,
    /// How long verification waits for a person to touch a real YubiKey; `None`: no touch,
    /// the accepted configuration is the proof. (Emulated YubiKeys are touched by the station.)
    pub touch: Option<std::time::Duration>,
}

/// One device of the batch and, if attached, the token that is it, with what the journal
/// holds for it (read once per batch, not once per device).
pub(crate) struct Job {
    pub member: BatchDevice,
    pub token: Option<TokenInfo>,
    /// Its keys in this batch.
    pub keys: Vec<RecordedKey>,
    /// Client ids of its DSKPP runs cut off by a crash (`journal::orphaned_runs`).
    pub orphans: Vec<String>,
}

/// How a device's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Done,
    /// Failed: why, and whether a re-run may succeed (from the error's kind).
    Failed(String, Rerun),
    Cancelled,
}

/// Whether a failed device may succeed when its batch is re-run (`TokenRow::retryable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rerun {
    /// The token was unplugged, busy or silent after every retry, the DSKPP server was
    /// unreachable or busy, or the station database busy.
    Helps,
    /// It fails the same way again (no slot of that kind, a refusal, a mismatch).
    Futile,
}

/// Why a step stopped the device.
enum Stop {
    Failed(String),
    /// Failed, but a re-run may succeed: see [`Rerun::Helps`].
    Retryable(String),
    Cancelled,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

/// A device after [`Run::prepare`]: its token handle and what is left to do on it.
pub(crate) struct Prepared<'c> {
    device: Device,
    who: Subject,
    handle: Option<Handle<'c>>,
    step: Result<Step, Stop>,
}

/// What [`Run::finish`] does with a prepared device.
enum Step {
    /// Nothing: it holds its verified key.
    Done,
    /// A resumed batch: its written key is proven, or replaced should that fail.
    Verify(KeyId),
    /// Its key is reserved: write it and prove it.
    Write(KeyId),
    /// Its key was just written: prove it.
    Prove(KeyId),
}

impl<'c> Run<'c> {
    /// Everything before the device is written: the resume plan, the OTP hash and slot checks,
    /// and for a device to provision its DSKPP run and `reserved` record (synced). Runs ahead
    /// of [`Run::finish`] so that a key is ready by the time a worker is free to write it.
    pub fn prepare(&self, job: Job) -> Prepared<'c> {
        let device = job.member.device;
        let who = Subject {
            serial: device.serial.clone(),
            family: device.family.clone(),
        };
        self.progress.report(&who, Stage::Queued, 1, None);
        let mut handle = job.token.map(|info| Handle::new(info, self.credentials));
        let step = self.plan(&device, handle.as_mut(), &job.keys, &job.orphans, &who);
        Prepared {
            device,
            who,
            handle,
            step,
        }
    }

    /// Writes a prepared device's reserved key (`written` recorded): the only stage bounded
    /// by the batch's `parallel`, so that proving the write does not hold a writer.
    pub fn program(&self, prepared: Prepared<'c>) -> Prepared<'c> {
        let Prepared {
            device,
            who,
            mut handle,
            step,
        } = prepared;
        let step = step.and_then(|step| match (step, handle.as_mut()) {
            (Step::Write(id), Some(handle)) => {
                self.write(handle, id, &who)?;
                Ok(Step::Prove(id))
            }
            (other, _) => Ok(other),
        });
        Prepared {
            device,
            who,
            handle,
            step,
        }
    }

    /// Proves a programmed device's key, then records how the device ended.
    pub fn finish(&self, prepared: Prepared<'_>) -> End {
        let Prepared {
            device,
            who,
            mut handle,
            step,
        } = prepared;
        let result = step.and_then(|step| match (step, handle.as_mut()) {
            (Step::Done, _) => Ok(()),
            (Step::Verify(id), Some(handle)) => self.resume_verify(handle, &device, id, &who),
            (Step::Write(id), Some(handle)) => {
                self.write(handle, id, &who)?;
                self.verify(handle, id, &who)
            }
            (Step::Prove(id), Some(handle)) => self.verify(handle, id, &who),
            (_, None) => Err(not_attached(&device)),
        });
        let end = match result {
            Ok(()) => End::Done,
            Err(Stop::Failed(message)) => End::Failed(message, Rerun::Futile),
            Err(Stop::Retryable(message)) => End::Failed(message, Rerun::Helps),
            Err(Stop::Cancelled) => End::Cancelled,
            Err(Stop::Store(e)) => {
                let retry = if e.is_transient() {
                    Rerun::Helps
                } else {
                    Rerun::Futile
                };
                End::Failed(format!("station database: {e}"), retry)
            }
        };
        self.settle(&device, &who, &end);
        end
    }

    fn settle(&self, device: &Device, who: &Subject, end: &End) {
        match end {
            End::Done => self.progress.report(who, Stage::Done, 1, None),
            End::Failed(m, _) => self.progress.report(who, Stage::Failed, 1, Some(m.clone())),
            End::Cancelled => self
                .progress
                .report(who, Stage::Failed, 1, Some("cancelled".into())),
        }
        let outcome = match end {
            End::Done => DeviceOutcome::Done,
            End::Failed(..) => DeviceOutcome::Failed,
            End::Cancelled => DeviceOutcome::Pending,
        };
        let retryable = matches!(end, End::Failed(_, Rerun::Helps));
        let error = match end {
            End::Failed(m, _) => Some(m.clone()),
            _ => None,
        };
        let recorded = self.journal.record(Entry::Outcome {
            batch: self.batch.id,
            device: device.id,
            outcome,
            error,
            retryable,
        });
        if let Err(e) = recorded {
            tracing::error!(device = %device.serial, error = %e, "cannot record device outcome");
        }
    }

    /// The resume plan of one device, and its key when it is to be provisioned.
    fn plan(
        &self,
        device: &Device,
        handle: Option<&mut Handle<'_>>,
        keys: &[RecordedKey],
        orphans: &[String],
        who: &Subject,
    ) -> Result<Step, Stop> {
        self.abandon(device, orphans)?;
        let plan = journal::plan(keys);
        for id in &plan.revoke {
            self.revoke(*id, "interrupted before the device confirmed the write")?;
        }
        match (plan.next, handle) {
            (Next::Done(_), _) => Ok(Step::Done),
            (_, None) => Err(not_attached(device)),
            (Next::Verify(id), Some(_)) => Ok(Step::Verify(id)),
            (Next::Provision, Some(handle)) => {
                self.check_cancel()?;
                Ok(Step::Write(self.obtain(handle, device, who)?))
            }
        }
    }

    /// A resumed device's written key is proven; if that fails, a new key replaces it.
    fn resume_verify(
        &self,
        handle: &mut Handle<'_>,
        device: &Device,
        id: KeyId,
        who: &Subject,
    ) -> Result<(), Stop> {
        match self.verify(handle, id, who) {
            Ok(()) => return Ok(()),
            Err(Stop::Failed(message) | Stop::Retryable(message)) => {
                tracing::warn!(device = %device.serial, %message, "resumed verification failed");
                self.revoke(id, &format!("verification failed: {message}"))?;
            }
            Err(other) => return Err(other),
        }
        self.check_cancel()?;
        let key = self.obtain(handle, device, who)?;
        self.write(handle, key, who)?;
        self.verify(handle, key, who)
    }

    /// Step 1–2: DSKPP, then the `reserved` record with the sealed secret.
    fn obtain(&self, handle: &mut Handle, device: &Device, who: &Subject) -> Result<KeyId, Stop> {
        self.progress.report(who, Stage::Dskpp, 1, None);
        self.check_hash(handle, who)?;
        let slot = self.pick_slot(handle, device)?;
        let profile = self.batch.profile.clone();
        let outcome = retry::retry(
            &self.backoff,
            self.cancel,
            |e: &crate::source::SourceError| e.transient,
            |attempt, e| {
                self.progress
                    .report(who, Stage::Dskpp, attempt + 1, Some(e.message.clone()))
            },
            |_| {
                let ticket = self.source.begin()?;
                let client_id = ticket.client_id.clone();
                self.event(
                    device,
                    "engine.dskpp_started",
                    serde_json::json!({ "client_id": client_id }),
                )
                .map_err(|e| crate::source::SourceError::permanent(e.to_string()))?;
                self.source.obtain(ticket, &profile).inspect_err(|e| {
                    let detail = serde_json::json!({
                        "client_id": client_id,
                        "error": e.message,
                        "ac_unused": e.unreachable,
                    });
                    let _ = self.event(device, "engine.dskpp_failed", detail);
                })
            },
        );
        let issued = match outcome {
            Outcome::Done { value, .. } => value,
            Outcome::Failed { error, .. } if error.transient || error.unreachable => {
                return Err(Stop::Retryable(error.message));
            }
            Outcome::Failed { error, .. } => {
                return Err(Stop::Failed(error.message));
            }
            Outcome::Cancelled => return Err(Stop::Cancelled),
        };
        let reserved = self.journal.record(Entry::Reserve(Reservation {
            batch: self.batch.id,
            device: device.id,
            slot: slot.to_string(),
            profile,
            counter: (self.batch.profile.algorithm == OtpAlgorithm::Hotp).then_some(0),
            secret: issued.secret,
            dskpp_key_id: Some(issued.dskpp_key_id),
            server_url: self.source.server_url(),
        }))?;
        match reserved {
            Recorded::Reserved(id) => Ok(id),
            other => unexpected(other),
        }
    }

    /// Step 3: write to the device, then `written` (which revokes the key it replaced).
    fn write(&self, handle: &mut Handle, id: KeyId, who: &Subject) -> Result<(), Stop> {
        self.check_cancel().inspect_err(|_| {
            let _ = self.revoke(id, "cancelled before the write");
        })?;
        let key = self.store.key(id)?;
        let secret = SecretKey::new(self.store.key_secret(id)?.to_vec());
        let slot = parse_slot(&key.slot)?;
        let digits = digits(key.profile.digits)?;
        let hash = otp_hash(&key)?;
        self.progress.report(who, Stage::Writing, 1, None);
        let erased = self.revoke_erased(handle, &key, who).inspect_err(|_| {
            let _ = self.revoke(id, "write not started");
        })?;
        let result = self.device_op(handle, who, Stage::Writing, |token| match slot.kind {
            keyprov_drivers::OtpKind::Hotp => {
                let counter = key.counter.unwrap_or(0);
                token.write_hotp(slot.index, &secret, counter, digits, hash)
            }
            keyprov_drivers::OtpKind::Totp => {
                let period = key.profile.period.unwrap_or(30);
                token.write_totp(slot.index, &secret, period, digits, hash)
            }
        });
        if let Err(stop) = result {
            let reason = match &stop {
                Stop::Failed(m) | Stop::Retryable(m) => format!("write failed: {m}"),
                _ => "write interrupted".to_string(),
            };
            self.revoke(id, &reason)?;
            return Err(if erased {
                slot_now_empty(stop, slot)
            } else {
                stop
            });
        }
        let replaced = match self.journal.record(Entry::Written(id))? {
            Recorded::Written(replaced) => replaced,
            other => return unexpected(other),
        };
        if !replaced.is_empty() {
            tracing::debug!(key = %id, ?replaced, "write replaced earlier keys");
        }
        Ok(())
    }

    /// Step 4: read the device's OTP, then `verified` with the device's next counter.
    fn verify(&self, handle: &mut Handle, id: KeyId, who: &Subject) -> Result<(), Stop> {
        let key = self.store.key(id)?;
        let secret = SecretKey::new(self.store.key_secret(id)?.to_vec());
        let slot = parse_slot(&key.slot)?;
        let digits = digits(key.profile.digits)?;
        let hash = otp_hash(&key)?;
        let factor = match key.profile.algorithm {
            OtpAlgorithm::Hotp => Factor::Counter(key.counter.unwrap_or(0)),
            OtpAlgorithm::Totp => Factor::Period(key.profile.period.unwrap_or(30)),
        };
        self.progress.report(who, Stage::Verifying, 1, None);
        let finger = EmulatorFinger::for_token(&handle.info, slot);
        let presence = match (&finger, self.credentials.touch) {
            (Some(_), _) => Presence::Touch(EmulatorFinger::TIMEOUT),
            (None, Some(wait)) => Presence::Touch(wait),
            (None, None) => Presence::NoTouch,
        };
        let verification = self.device_op(handle, who, Stage::Verifying, |token| {
            let expected = Expected {
                key: &secret,
                digits,
                hash,
                factor,
            };
            let pressing = finger.as_ref().map(EmulatorFinger::press_soon);
            let result = token.verify(slot, &expected, presence);
            // The press must have happened before the outcome is recorded: it moves the
            // device's counter, which the verification reports.
            if let Some(press) = pressing {
                let _ = press.join();
            }
            result
        })?;
        let (method, proof) = match verification.proof {
            Proof::OtpMatched { counter } => (
                "device-otp",
                serde_json::json!({ "matched_counter": counter }).to_string(),
            ),
            Proof::ConfigurationAccepted => ("config-accepted", "{}".to_string()),
        };
        let proof = Verification {
            method: method.into(),
            proof,
            next_counter: verification.next_counter,
        };
        self.journal.record(Entry::Verified(id, proof))?;
        Ok(())
    }

    /// A family whose slot write is not atomic (Nitrokey 3: Delete, then Put) loses the slot's
    /// old key once the Delete succeeded, even when the Put then fails: so the old key of the
    /// slot is revoked in the journal before the write starts, never exported as if the token
    /// still held it. Whether one was revoked (the slot is empty should the write fail).
    fn revoke_erased(
        &self,
        handle: &mut Handle,
        key: &keyprov_store::Key,
        who: &Subject,
    ) -> Result<bool, Stop> {
        let caps = self.device_op(handle, who, Stage::Writing, |t| Ok(t.capabilities()))?;
        if caps.atomic_rewrite {
            return Ok(false);
        }
        let old: Vec<KeyId> = self
            .store
            .device_keys(key.device)?
            .into_iter()
            .filter(|k| k.id != key.id && k.slot == key.slot)
            .filter(|k| KeyState::ACTIVE.contains(&k.state))
            .map(|k| k.id)
            .collect();
        for old_id in &old {
            let reason = format!("{ERASED_BY_REWRITE} of slot {} (key {})", key.slot, key.id);
            self.revoke(*old_id, &reason)?;
        }
        Ok(!old.is_empty())
    }

    /// Runs a device operation with retries; the handle is reopened when the driver says so.
    fn device_op<T>(
        &self,
        handle: &mut Handle,
        who: &Subject,
        stage: Stage,
        mut op: impl FnMut(&mut dyn Token) -> keyprov_drivers::Result<T>,
    ) -> Result<T, Stop> {
        // A token that asks for a touch meanwhile says so on the device's progress line.
        let prompts = handle.prompt_tx.clone().zip(handle.prompt_rx.take());
        // The unplug that ended the operation: retries that then fail to reopen the token
        // report it, not "unplugged during open".
        let mut lost = None;
        let (outcome, prompts) = std::thread::scope(|s| {
            let relay = prompts.map(|(stop, rx)| {
                let relay = s.spawn(move || {
                    for prompt in rx.iter() {
                        match prompt {
                            Prompt::Line(line) => self.progress.report(who, stage, 1, Some(line)),
                            Prompt::Stop => break,
                        }
                    }
                    rx
                });
                (stop, relay)
            });
            let outcome = retry::retry(
                &self.backoff,
                self.cancel,
                keyprov_drivers::Error::is_transient,
                |attempt, e| {
                    if lost.is_none() && unplugged_during_work(e) {
                        lost = Some(e.to_string());
                    }
                    self.progress
                        .report(who, stage, attempt + 1, Some(e.to_string()))
                },
                |_| handle.with(&mut op),
            );
            let prompt_rx = relay.and_then(|(stop, relay)| {
                let _ = stop.send(Prompt::Stop);
                relay.join().ok()
            });
            (outcome, prompt_rx)
        });
        handle.prompt_rx = prompts;
        let message = |error: &keyprov_drivers::Error| match (error, &lost) {
            (keyprov_drivers::Error::Unplugged { .. }, Some(first)) => first.clone(),
            _ => error.to_string(),
        };
        match outcome {
            Outcome::Done { value, .. } => Ok(value),
            // Retries exhausted on a transient error (unplugged, busy, no answer), or a touch
            // not given in time (not retried: a person must act): a re-run may succeed.
            Outcome::Failed { error, .. }
                if error.is_transient()
                    || matches!(error, keyprov_drivers::Error::NotTouched { .. }) =>
            {
                Err(Stop::Retryable(message(&error)))
            }
            Outcome::Failed { error, .. } => Err(Stop::Failed(message(&error))),
            Outcome::Cancelled => Err(Stop::Cancelled),
        }
    }

    /// Before any key is obtained: the token computes the batch's OTP hash (issue 7).
    fn check_hash(&self, handle: &mut Handle, who: &Subject) -> Result<(), Stop> {
        let caps = self.device_op(handle, who, Stage::Dskpp, |t| Ok(t.capabilities()))?;
        let token = format!("{} {}", who.family, who.serial);
        match crate::hash::unsupported(self.batch.profile.hash, &caps, &token) {
            Some(message) => Err(Stop::Failed(message)),
            None => Ok(()),
        }
    }

    /// The slot the new key goes to: the one the device's live key is in, else the first
    /// slot of the batch's kind.
    fn pick_slot(&self, handle: &mut Handle, device: &Device) -> Result<Slot, Stop> {
        let kind = match self.batch.profile.algorithm {
            OtpAlgorithm::Hotp => keyprov_drivers::OtpKind::Hotp,
            OtpAlgorithm::Totp => keyprov_drivers::OtpKind::Totp,
        };
        let live = self.store.device_keys(device.id)?.into_iter().find(|k| {
            KeyState::ACTIVE.contains(&k.state)
                && k.profile.algorithm == self.batch.profile.algorithm
        });
        if let Some(key) = live {
            return parse_slot(&key.slot);
        }
        let caps = self.device_op(
            handle,
            &Subject {
                serial: device.serial.clone(),
                family: device.family.clone(),
            },
            Stage::Dskpp,
            |t| Ok(t.capabilities()),
        )?;
        let slots = match kind {
            keyprov_drivers::OtpKind::Hotp => caps.hotp_slots,
            keyprov_drivers::OtpKind::Totp => caps.totp_slots,
        };
        match slots.first() {
            Some(index) => Ok(Slot {
                kind,
                index: *index,
            }),
            None => Err(Stop::Failed(format!(
                "{} {} has no {} slot",
                device.family, device.serial, self.batch.profile.algorithm
            ))),
        }
    }

    /// Records DSKPP runs a crash cut off, after asking the source to revoke their keys.
    fn abandon(&self, device: &Device, orphans: &[String]) -> Result<(), Stop> {
        for client_id in orphans {
            let revoked = match self.source.abandon(client_id) {
                Ok(keys) => serde_json::json!(keys),
                Err(e) => serde_json::json!({ "error": e.message }),
            };
            let detail = serde_json::json!({
                "client_id": client_id,
                "server_keys_revoked": revoked,
            });
            self.event(device, "engine.dskpp_abandoned", detail)?;
        }
        Ok(())
    }

    fn event(
        &self,
        device: &Device,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<Recorded, StoreError> {
        self.journal.record(Entry::Event(NewEvent {
            kind: kind.to_string(),
            batch: Some(self.batch.id),
            device: Some(device.id),
            key: None,
            detail,
        }))
    }

    fn revoke(&self, id: KeyId, reason: &str) -> Result<(), StoreError> {
        self.journal
            .record(Entry::Revoked(id, reason.to_string()))
            .map(drop)
    }

    fn check_cancel(&self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            Err(Stop::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// The operator's touch for an emulated YubiKey: the station presses the emulated button
/// (`keyprov emulator touch`) once per verification attempt, shortly after the driver starts
/// waiting, so the emulated token is verified by the OTP it types, as a real one is when a
/// person touches it. Real tokens get no finger.
struct EmulatorFinger {
    dir: std::path::PathBuf,
    serial: String,
    slot: u8,
}

impl EmulatorFinger {
    const DELAY: std::time::Duration = std::time::Duration::from_millis(1);
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

    fn for_token(info: &TokenInfo, slot: Slot) -> Option<EmulatorFinger> {
        let keyprov_drivers::Location::Emulator { dir } = &info.location else {
            return None;
        };
        let yubikey_hotp = info.family == keyprov_drivers::Family::Yubikey
            && slot.kind == keyprov_drivers::OtpKind::Hotp;
        yubikey_hotp.then(|| EmulatorFinger {
            dir: dir.clone(),
            serial: info.serial.clone(),
            slot: slot.index,
        })
    }

    fn press_soon(&self) -> std::thread::JoinHandle<()> {
        let (dir, serial, slot) = (self.dir.clone(), self.serial.clone(), self.slot);
        std::thread::spawn(move || {
            std::thread::sleep(Self::DELAY);
            if let Err(e) = keyprov_drivers::emulator::touch(&dir, &serial, Some(slot)) {
                tracing::warn!(%serial, error = %e, "emulated touch failed");
            }
        })
    }
}

/// How the revocation of a key a non-atomic re-write erased begins (a re-issue of the token
/// finds it by this when no key is active).
pub(crate) const ERASED_BY_REWRITE: &str = "erased by the re-write";

/// What a token's touch prompt sends to the relay that reports it as progress.
enum Prompt {
    /// The line for the operator (`touch the Nitrokey 3 00C00001`).
    Line(String),
    /// The device operation ended.
    Stop,
}

/// A token handle that is (re)opened on demand.
struct Handle<'c> {
    info: TokenInfo,
    token: Option<Box<dyn Token>>,
    credentials: &'c Credentials,
    /// For a family that asks for touches (Nitrokey 3): the channel its prompt sends on;
    /// the receiver is lent to the relay of each device operation.
    prompt_tx: Option<mpsc::Sender<Prompt>>,
    prompt_rx: Option<mpsc::Receiver<Prompt>>,
}

impl<'c> Handle<'c> {
    fn new(info: TokenInfo, credentials: &'c Credentials) -> Self {
        let touches = info.family == keyprov_drivers::Family::Nitrokey3;
        let (prompt_tx, prompt_rx) = touches.then(mpsc::channel).unzip();
        Self {
            info,
            token: None,
            credentials,
            prompt_tx,
            prompt_rx,
        }
    }

    fn with<T>(
        &mut self,
        op: &mut impl FnMut(&mut dyn Token) -> keyprov_drivers::Result<T>,
    ) -> keyprov_drivers::Result<T> {
        if self.token.is_none() {
            let mut token = keyprov_drivers::open(&self.info)?;
            if let Some(tx) = &self.prompt_tx {
                let tx = tx.clone();
                token.on_touch_needed(Box::new(move |line: &str| {
                    let _ = tx.send(Prompt::Line(line.to_owned()));
                }));
            }
            token.authenticate(&self.credential())?;
            self.token = Some(token);
        }
        // Just opened above when it was empty.
        let token = self.token.as_mut().expect("token handle is open");
        let result = op(token.as_mut());
        if let Err(e) = &result
            && e.retry() == Retry::Reopen
        {
            self.token = None;
        }
        result
    }

    fn credential(&self) -> Credential {
        match self.info.family {
            keyprov_drivers::Family::Yubikey => Credential::AccessCode {
                current: None,
                new: None,
            },
            _ => Credential::AdminPin(self.credentials.nitrokey_admin_pin.clone()),
        }
    }
}

fn parse_slot(text: &str) -> Result<Slot, Stop> {
    let parsed = text.split_once(':').and_then(|(kind, index)| {
        let index: u8 = index.parse().ok()?;
        match kind {
            "hotp" => Some(Slot::hotp(index)),
            "totp" => Some(Slot::totp(index)),
            _ => None,
        }
    });
    parsed.ok_or_else(|| {
        Stop::Failed(format!(
            "recorded slot {text:?} is not `hotp:N` or `totp:N`"
        ))
    })
}

fn otp_hash(key: &keyprov_store::Key) -> Result<OtpHash, Stop> {
    crate::hash::driver(key.profile.hash)
        .ok_or_else(|| Stop::Failed(format!("{} OTPs are not supported", key.profile.hash)))
}

/// A token unplugged while it was working (not while it was being opened again).
fn unplugged_during_work(e: &keyprov_drivers::Error) -> bool {
    matches!(e, keyprov_drivers::Error::Unplugged { operation, .. } if *operation != "open")
}

/// A failed write after the slot's old key was erased: the operator must know the token's
/// slot is empty now, and that a re-run provisions it.
fn slot_now_empty(stop: Stop, slot: Slot) -> Stop {
    let tell = |m: String| {
        format!(
            "{m}; the token's slot {slot} is now empty (its old key was erased and is revoked): \
             run again to provision it"
        )
    };
    match stop {
        Stop::Failed(m) => Stop::Failed(tell(m)),
        Stop::Retryable(m) => Stop::Retryable(tell(m)),
        other => other,
    }
}

fn not_attached(device: &Device) -> Stop {
    Stop::Retryable(format!(
        "{} {} is not attached",
        device.family, device.serial
    ))
}

/// The journal answered a record with the outcome of another kind of record.
fn unexpected<T>(recorded: Recorded) -> Result<T, Stop> {
    Err(Stop::Failed(format!(
        "station database: unexpected journal answer {recorded:?}"
    )))
}

fn digits(n: u8) -> Result<Digits, Stop> {
    Digits::new(n).ok_or_else(|| Stop::Failed(format!("{n} digits are not supported")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_through_their_recorded_names() {
        for slot in [Slot::hotp(1), Slot::hotp(2), Slot::totp(14)] {
            let parsed = parse_slot(&slot.to_string()).ok().expect("parses");
            assert_eq!(parsed, slot);
        }
        assert!(parse_slot("3").is_err());
        assert!(parse_slot("hmac:1").is_err());
    }
}
