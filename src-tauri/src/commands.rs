//! The Tauri commands: thin adapters from IPC to the station service API
//! (`keyprov_engine::Station`), one per operation of its table. Station calls block (SQLite,
//! HID), so every one runs on the blocking pool, never on the async runtime's workers; long
//! operations stream progress over a `tauri::ipc::Channel`.

use crate::error::CommandError;
use crate::settings::{Settings, SettingsView};
use crate::state::StationState;
use keyprov_engine::api::{
    AuditEvent, AuditQuery, AuditReport, BatchDetail, BatchRequest, BatchSummary, DeviceEvent,
    DeviceInfo, EmulatorRequest, ExportRecord, ExportRequest, ProgressEvent, ReissueRequest,
};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use zeroize::Zeroizing;

/// What the About line and the E2E test read.
#[derive(Debug, Serialize)]
pub struct AppInfo {
    pub version: &'static str,
    /// Milliseconds since the process started.
    pub uptime_ms: u128,
}

#[tauri::command]
pub fn app_info() -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        uptime_ms: crate::STARTED.elapsed().as_millis(),
    }
}

#[tauri::command]
pub fn settings_get(state: State<'_, StationState>) -> SettingsView {
    state.settings_view()
}

#[tauri::command]
pub fn settings_set(
    state: State<'_, StationState>,
    settings: Settings,
    passphrase: Option<String>,
) -> Result<SettingsView, CommandError> {
    state.update_settings(settings, passphrase.map(Zeroizing::new))
}

#[tauri::command]
pub async fn devices<R: Runtime>(app: AppHandle<R>) -> Result<Vec<DeviceInfo>, CommandError> {
    blocking(app, |state| Ok(state.station()?.devices()?)).await
}

/// Streams hotplug events to `on_event` until the next call replaces the watcher.
#[tauri::command]
pub async fn watch_devices<R: Runtime>(
    app: AppHandle<R>,
    on_event: Channel<DeviceEvent>,
) -> Result<(), CommandError> {
    blocking(app, move |state| {
        let watch = state.station()?.watch_devices(move |event| {
            if let Err(e) = on_event.send(event) {
                tracing::debug!(error = %e, "device event not delivered");
            }
        })?;
        state.set_watch(watch);
        Ok(())
    })
    .await
}

#[tauri::command]
pub async fn attach_emulated<R: Runtime>(
    app: AppHandle<R>,
    request: EmulatorRequest,
) -> Result<Vec<DeviceInfo>, CommandError> {
    blocking(app, move |state| {
        Ok(state.station()?.attach_emulated(request)?)
    })
    .await
}

/// Runs a batch, streaming every stage change to `on_progress`.
#[tauri::command]
pub async fn provision<R: Runtime>(
    app: AppHandle<R>,
    mut request: BatchRequest,
    on_progress: Channel<ProgressEvent>,
) -> Result<BatchSummary, CommandError> {
    blocking(app, move |state| {
        let run = state.begin_run()?;
        let station = state.station()?;
        if let Some(export) = request.export.take() {
            request.export = Some(state.export_path(export, &request.name)?);
        }
        let send = |event: ProgressEvent| forward(&on_progress, event);
        Ok(station.provision(request, &send, &run.cancel)?)
    })
    .await
}

/// Raises the running batch's cancel flag; tokens being written finish first.
#[tauri::command]
pub fn cancel_run(state: State<'_, StationState>) -> bool {
    state.cancel_run()
}

/// Gives one token a new key (also the Run screen's retry of a failed token).
#[tauri::command]
pub async fn reissue<R: Runtime>(
    app: AppHandle<R>,
    mut request: ReissueRequest,
    on_progress: Channel<ProgressEvent>,
) -> Result<BatchSummary, CommandError> {
    blocking(app, move |state| {
        let run = state.begin_run()?;
        let station = state.station()?;
        let stem = format!("reissue-{}", request.serial);
        if let Some(export) = request.export.take() {
            request.export = Some(state.export_path(export, &stem)?);
        }
        let send = |event: ProgressEvent| forward(&on_progress, event);
        Ok(station.reissue(request, &send, &run.cancel)?)
    })
    .await
}

#[tauri::command]
pub async fn batches<R: Runtime>(app: AppHandle<R>) -> Result<Vec<BatchSummary>, CommandError> {
    blocking(app, |state| Ok(state.station()?.batches()?)).await
}

#[tauri::command]
pub async fn batch<R: Runtime>(
    app: AppHandle<R>,
    id_or_name: String,
) -> Result<BatchDetail, CommandError> {
    blocking(app, move |state| Ok(state.station()?.batch(&id_or_name)?)).await
}

#[tauri::command]
pub async fn export_batch<R: Runtime>(
    app: AppHandle<R>,
    id_or_name: String,
    request: ExportRequest,
) -> Result<ExportRecord, CommandError> {
    blocking(app, move |state| {
        let request = state.export_path(request, &format!("batch-{id_or_name}"))?;
        Ok(state.station()?.export_batch(&id_or_name, request)?)
    })
    .await
}

#[tauri::command]
pub async fn audit_verify<R: Runtime>(app: AppHandle<R>) -> Result<AuditReport, CommandError> {
    blocking(app, |state| Ok(state.station()?.audit_verify()?)).await
}

/// The event log (of one batch, or all of it), newest first, at most `limit` entries after
/// skipping the `offset` newest.
#[tauri::command]
pub async fn audit_log<R: Runtime>(
    app: AppHandle<R>,
    batch_id: Option<i64>,
    limit: usize,
    offset: Option<usize>,
) -> Result<Vec<AuditEvent>, CommandError> {
    let query = AuditQuery {
        batch_id,
        limit,
        offset: offset.unwrap_or(0),
    };
    blocking(app, move |state| {
        Ok(state.station()?.audit_events(query)?)
    })
    .await
}

/// A key's secret, hex, on the operator's explicit request (History's Reveal button).
#[tauri::command]
pub async fn reveal_secret<R: Runtime>(
    app: AppHandle<R>,
    key_id: String,
) -> Result<Revealed, CommandError> {
    blocking(app, move |state| {
        Ok(Revealed(state.station()?.reveal_secret(&key_id)?))
    })
    .await
}

/// A revealed secret on its way to the window: serialized as a plain string, wiped here.
pub struct Revealed(Zeroizing<String>);

impl Serialize for Revealed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

fn forward(channel: &Channel<ProgressEvent>, event: ProgressEvent) {
    if let Err(e) = channel.send(event) {
        // The window went away; the batch carries on and its outcome is in the store.
        tracing::debug!(error = %e, "progress event not delivered");
    }
}

/// Runs `work` with the station state on Tauri's blocking pool.
async fn blocking<R, T, F>(app: AppHandle<R>, work: F) -> Result<T, CommandError>
where
    R: Runtime,
    T: Send + 'static,
    F: FnOnce(&StationState) -> Result<T, CommandError> + Send + 'static,
{
    tauri::async_runtime::spawn_blocking(move || work(&app.state::<StationState>()))
        .await
        .map_err(|e| CommandError::Internal(format!("worker thread failed: {e}")))?
}
