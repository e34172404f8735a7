//! Running a batch: choose or resume it, fan its devices out over the worker pool, settle its
//! state, export it. Re-issuing one token is a one-device batch of its own.

use keyprov_drivers::{Pin, TokenInfo};
use keyprov_store::{
    Batch, BatchMode, BatchState, DeviceIdentity, KeyProfile, KeyState, NewBatch, OtpAlgorithm,
};

use crate::api::{
    BatchRequest, BatchSummary, OtpHash, OtpKind, ProgressEvent, ProvisioningMode, ReissueRequest,
};
use crate::cancel::Cancel;
use crate::device::{Credentials, End, Job, Run};
use crate::error::{EngineError, Result};
use crate::journal::{self, RecordedKey};
use crate::progress::Progress;
use crate::retry::Backoff;
use crate::station::Station;
use crate::{export, hash, pool, tokens};

/// Default and upper bound of devices programmed at once.
pub const MAX_PARALLEL: usize = 64;

pub(crate) fn provision(
    station: &Station,
    request: BatchRequest,
    on_progress: &(dyn Fn(ProgressEvent) + Sync),
    cancel: &Cancel,
) -> Result<BatchSummary> {
    check(&request)?;
    central_hash(&request)?;
    let attached = station.tokens()?;
    let batch = match station.store.find_batch(&request.name)? {
        Some(batch) => resume_checks(&batch, &request)?,
        None => create(station, &request, &attached)?,
    };
    run(station, &batch, &request, &attached, on_progress, cancel)
}

pub(crate) fn reissue(
    station: &Station,
    request: ReissueRequest,
    on_progress: &(dyn Fn(ProgressEvent) + Sync),
    cancel: &Cancel,
) -> Result<BatchSummary> {
    if let Some(export) = &request.export {
        export::check(export)?;
    }
    let unknown = |reason: &str| EngineError::UnknownToken {
        serial: request.serial.clone(),
        reason: reason.into(),
    };
    let attached = station.tokens()?;
    let token = attached
        .iter()
        .find(|t| t.serial == request.serial)
        .ok_or_else(|| unknown("not attached"))?;
    let device = station
        .store
        .find_device(tokens::family(token), &token.serial)?
        .ok_or_else(|| unknown("the station never provisioned it"))?;
    let keys = station.store.device_keys(device.id)?;
    // A re-write that failed after erasing the slot (Nitrokey 3) left no active key and told
    // the operator to run again: the erased key says what to re-issue.
    let erased = |k: &&keyprov_store::Key| {
        k.reason
            .as_deref()
            .is_some_and(|r| r.starts_with(crate::device::ERASED_BY_REWRITE))
    };
    let live = keys
        .iter()
        .rfind(|k| KeyState::ACTIVE.contains(&k.state))
        .or_else(|| keys.iter().rev().find(erased))
        .ok_or_else(|| unknown("it holds no active key from this station"))?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let batch_request = BatchRequest {
        name: format!("reissue-{}-{stamp}", request.serial),
        otp: crate::station::otp_kind(live.profile.algorithm),
        digits: live.profile.digits,
        period: live.profile.period.unwrap_or(30),
        count: Some(1),
        mode: request.mode.clone(),
        export: request.export.clone(),
        operator: None,
        parallel: Some(1),
        // The new key computes OTPs the way the old one did.
        hash: hash::listed(live.profile.hash),
    };
    central_hash(&batch_request)?;
    let only = vec![token.clone()];
    let batch = create(station, &batch_request, &only)?;
    run(station, &batch, &batch_request, &only, on_progress, cancel)
}

fn check(request: &BatchRequest) -> Result<()> {
    if request.name.trim().is_empty() {
        return Err(EngineError::invalid("batch", "the name is empty"));
    }
    if !matches!(request.digits, 6 | 8) {
        return Err(EngineError::invalid(
            "digits",
            format!("{} (use 6 or 8)", request.digits),
        ));
    }
    if request.otp == OtpKind::Totp && request.period == 0 {
        return Err(EngineError::invalid("period", "must be at least 1 second"));
    }
    if request.count == Some(0) {
        return Err(EngineError::invalid("count", "must be at least 1"));
    }
    if let Some(export) = &request.export {
        export::check(export)?;
    }
    Ok(())
}

/// Central mode provisions SHA-1 keys only, refused before any authentication code is spent:
/// `keyprov serve` records a key without its OTP hash, so its export (no `Suite`) would have
/// validation servers compute SHA-1 OTPs for a token computing SHA-256. Lifted once the DSKPP
/// exchange can carry the hash to the server.
fn central_hash(request: &BatchRequest) -> Result<()> {
    if !matches!(request.mode, ProvisioningMode::Central { .. }) || request.hash == OtpHash::Sha1 {
        return Ok(());
    }
    Err(EngineError::invalid(
        "hash",
        format!(
            "{} keys cannot be provisioned in central mode: the DSKPP server (keyprov serve) \
             records keys without their OTP hash and would export them as SHA-1 (use local \
             mode, or sha1 keys with --server)",
            request.hash.as_str()
        ),
    ))
}

fn profile(request: &BatchRequest) -> KeyProfile {
    let totp = request.otp == OtpKind::Totp;
    KeyProfile {
        algorithm: if totp {
            OtpAlgorithm::Totp
        } else {
            OtpAlgorithm::Hotp
        },
        digits: request.digits,
        period: totp.then_some(request.period),
        hash: hash::stored(request.hash),
    }
}

fn mode(request: &BatchRequest) -> (BatchMode, Option<String>) {
    match &request.mode {
        ProvisioningMode::Local => (BatchMode::Local, None),
        ProvisioningMode::Central { server_url, .. } => {
            (BatchMode::Central, Some(server_url.clone()))
        }
    }
}

/// An existing batch is resumed only with the settings it was created with.
fn resume_checks(batch: &Batch, request: &BatchRequest) -> Result<Batch> {
    let (mode, url) = mode(request);
    let wanted = profile(request);
    if batch.profile != wanted || batch.mode != mode || batch.server_url != url {
        let existing = format!(
            "{} {} digits {}{}, mode {}",
            batch.profile.algorithm,
            batch.profile.digits,
            batch.profile.hash,
            batch
                .profile
                .period
                .map(|p| format!(" period {p}s"))
                .unwrap_or_default(),
            batch.server_url.as_deref().unwrap_or(batch.mode.as_str()),
        );
        return Err(EngineError::BatchMismatch {
            name: batch.name.clone(),
            existing,
        });
    }
    tracing::debug!(batch = %batch.id, state = %batch.state, "resuming batch");
    Ok(batch.clone())
}

fn create(station: &Station, request: &BatchRequest, attached: &[TokenInfo]) -> Result<Batch> {
    let chosen = choose(attached, request.count);
    if chosen.is_empty() {
        let hint = if station.emulator_dir().is_some() {
            " (the emulator directory has no plugged token)"
        } else {
            " (plug tokens in, or pass --emulator DIR)"
        };
        return Err(EngineError::NoDevices { hint: hint.into() });
    }
    let (mode, server_url) = mode(request);
    let batch = station.store.create_batch(&NewBatch {
        name: request.name.clone(),
        profile: profile(request),
        mode,
        server_url,
        operator: request.operator.clone(),
        params: serde_json::json!({ "devices": chosen.len() }),
    })?;
    add_members(station, &batch, &chosen)?;
    Ok(batch)
}

/// The first `count` attached tokens in a stable order (family, serial).
fn choose(attached: &[TokenInfo], count: Option<usize>) -> Vec<TokenInfo> {
    let mut sorted = attached.to_vec();
    sorted.sort_by(|a, b| (tokens::family(a), &a.serial).cmp(&(tokens::family(b), &b.serial)));
    sorted.truncate(count.unwrap_or(usize::MAX));
    sorted
}

fn add_members(station: &Station, batch: &Batch, tokens: &[TokenInfo]) -> Result<()> {
    let identities: Vec<DeviceIdentity> = tokens.iter().map(identity).collect();
    station.store.add_batch_members(batch.id, &identities)?;
    Ok(())
}

fn identity(t: &TokenInfo) -> DeviceIdentity {
    DeviceIdentity {
        family: tokens::family(t).into(),
        model: t.model.clone(),
        serial: t.serial.clone(),
        firmware: t.firmware.clone(),
    }
}

fn run(
    station: &Station,
    batch: &Batch,
    request: &BatchRequest,
    attached: &[TokenInfo],
    on_progress: &(dyn Fn(ProgressEvent) + Sync),
    cancel: &Cancel,
) -> Result<BatchSummary> {
    let store = &station.store;
    if batch.state != BatchState::Completed {
        if batch.state != BatchState::Open {
            store.set_batch_state(batch.id, BatchState::Open)?;
        }
        complete_membership(station, batch, attached)?;
        let batch = store.batch(batch.id)?;
        let members = store.batch_devices(batch.id)?;
        let keys = store.batch_keys(batch.id)?;
        let events = store.events(Some(batch.id))?;
        let jobs: Vec<Job> = members
            .into_iter()
            .map(|member| {
                let token = attached
                    .iter()
                    .find(|t| {
                        tokens::family(t) == member.device.family
                            && t.serial == member.device.serial
                    })
                    .cloned();
                let id = member.device.id;
                let keys = keys
                    .iter()
                    .filter(|k| k.device == id)
                    .map(|k| RecordedKey {
                        id: k.id,
                        state: k.state,
                    })
                    .collect();
                let orphans = journal::orphaned_runs(&events, id);
                Job {
                    member,
                    token,
                    keys,
                    orphans,
                }
            })
            .collect();
        let source = crate::dskpp::source(station, &batch, &request.mode)?;
        let progress = Progress::new(batch.id.0, jobs.len(), on_progress);
        let credentials = credentials(station);
        let workers = request
            .parallel
            .unwrap_or(MAX_PARALLEL)
            .clamp(1, MAX_PARALLEL);
        let journal = journal::Writer::new(store);
        let run = Run {
            store,
            journal: &journal,
            batch: &batch,
            source: source.as_ref(),
            backoff: Backoff::default(),
            cancel,
            progress: &progress,
            credentials: &credentials,
        };
        let ends = pool::pipeline(
            jobs,
            workers,
            |job| run.prepare(job),
            |prepared| run.program(prepared),
            |programmed| run.finish(programmed),
        );
        let state = if ends.contains(&End::Cancelled) || cancel.is_cancelled() {
            BatchState::Cancelled
        } else if ends.iter().all(|e| *e == End::Done) {
            BatchState::Completed
        } else {
            BatchState::Failed
        };
        store.set_batch_state(batch.id, state)?;
        tracing::debug!(batch = %batch.id, state = %state, "batch settled");
    }
    let mut exported = None;
    if let Some(export) = &request.export {
        // With no verified key there is nothing to export; the summary says why.
        let batch = store.batch(batch.id)?;
        let verified = store
            .batch_keys(batch.id)?
            .iter()
            .any(|k| matches!(k.state, KeyState::Verified | KeyState::Exported));
        if verified {
            exported = Some(export::export(store, &batch, export)?);
        }
    }
    let mut summary = station.summary(&store.batch(batch.id)?)?;
    // The record just written carries the serials its profile renamed; the history has not.
    if let Some(record) = exported
        && let Some(listed) = summary
            .exports
            .iter_mut()
            .rfind(|e| e.sha256 == record.sha256)
    {
        *listed = record;
    }
    Ok(summary)
}

/// A crash between creating the batch and recording all its devices is made good on resume.
fn complete_membership(station: &Station, batch: &Batch, attached: &[TokenInfo]) -> Result<()> {
    let wanted = batch
        .params
        .get("devices")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    let members = station.store.batch_devices(batch.id)?;
    if members.len() >= wanted {
        return Ok(());
    }
    let missing: Vec<TokenInfo> = choose(attached, None)
        .into_iter()
        .filter(|t| {
            !members
                .iter()
                .any(|m| m.device.family == tokens::family(t) && m.device.serial == t.serial)
        })
        .take(wanted - members.len())
        .collect();
    add_members(station, batch, &missing)
}

fn credentials(station: &Station) -> Credentials {
    let pin = station
        .config
        .nitrokey_admin_pin
        .clone()
        .unwrap_or_else(|| tokens::NITROKEY_DEFAULT_ADMIN_PIN.to_string());
    Credentials {
        nitrokey_admin_pin: Pin::new(pin),
        touch: station
            .config
            .touch_timeout_secs
            .map(std::time::Duration::from_secs),
    }
}
