//! What the app keeps between commands: settings, the session's passphrase, the station
//! (opened on first use, reopened when settings change), the running batch's cancel flag and
//! the device watcher.

use crate::error::CommandError;
use crate::settings::{self, Settings, SettingsView, StationPaths};
use keyprov_engine::api::{ExportRequest, StationConfig};
use keyprov_engine::{Cancel, DeviceWatch, Station};
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Managed Tauri state (`app.manage`), shared by every command.
pub struct StationState {
    paths: StationPaths,
    settings: Mutex<Settings>,
    /// The master-key passphrase entered in Settings; memory only, wiped on drop.
    passphrase: Mutex<Option<Zeroizing<String>>>,
    station: Mutex<Option<Arc<Station>>>,
    /// The cancel flag of the batch (or re-issue) in progress; the station runs one at a time.
    run: Arc<Mutex<Option<Cancel>>>,
    watch: Mutex<Option<DeviceWatch>>,
}

/// Marks a run as in progress; dropping it (success, error or panic) ends the run.
pub struct RunGuard {
    slot: Arc<Mutex<Option<Cancel>>>,
    pub cancel: Cancel,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        *lock(&self.slot) = None;
    }
}

impl StationState {
    /// Loads the settings file; fails if it exists but is unreadable.
    pub fn new(paths: StationPaths) -> Result<Self, CommandError> {
        let settings = Settings::load(&paths.settings_file)?;
        Ok(Self {
            paths,
            settings: Mutex::new(settings),
            passphrase: Mutex::new(None),
            station: Mutex::new(None),
            run: Arc::new(Mutex::new(None)),
            watch: Mutex::new(None),
        })
    }

    pub fn settings_view(&self) -> SettingsView {
        let settings = lock(&self.settings).clone();
        let (effective_db_path, db_from_env) = settings::effective_db_path(&settings);
        SettingsView {
            settings,
            effective_db_path,
            db_from_env,
            emulator_dir: settings::effective_emulator_dir(&self.paths),
            exports_dir: self.paths.exports_dir.clone(),
            tls_trust_in_force: std::env::var_os("SSL_CERT_FILE").map(Into::into),
            passphrase_set: lock(&self.passphrase).is_some(),
        }
    }

    /// Validates and stores new settings; `passphrase` replaces the session's passphrase
    /// when given (an empty string forgets it). The station reopens on its next use.
    pub fn update_settings(
        &self,
        new: Settings,
        passphrase: Option<Zeroizing<String>>,
    ) -> Result<SettingsView, CommandError> {
        new.validate()?;
        new.save(&self.paths.settings_file)?;
        *lock(&self.settings) = new;
        if let Some(pass) = passphrase {
            *lock(&self.passphrase) = (!pass.is_empty()).then_some(pass);
        }
        *lock(&self.station) = None;
        Ok(self.settings_view())
    }

    /// The open station, opening it with the current settings first if needed. Blocking
    /// (SQLite, master-key unwrap): call it from a blocking thread.
    pub fn station(&self) -> Result<Arc<Station>, CommandError> {
        let mut slot = lock(&self.station);
        if let Some(station) = &*slot {
            return Ok(Arc::clone(station));
        }
        let station = Arc::new(Station::open(self.station_config())?);
        *slot = Some(Arc::clone(&station));
        Ok(station)
    }

    fn station_config(&self) -> StationConfig {
        let settings = lock(&self.settings).clone();
        StationConfig {
            db_path: settings::effective_db_path(&settings).0,
            emulator_dir: Some(settings::effective_emulator_dir(&self.paths)),
            passphrase: lock(&self.passphrase).as_ref().map(|p| p.to_string()),
            ..StationConfig::default()
        }
    }

    /// Starts a run, or refuses with `Busy` while another one is in progress.
    pub fn begin_run(&self) -> Result<RunGuard, CommandError> {
        let mut slot = lock(&self.run);
        if slot.is_some() {
            return Err(CommandError::Busy);
        }
        let cancel = Cancel::new();
        *slot = Some(cancel.clone());
        Ok(RunGuard {
            slot: Arc::clone(&self.run),
            cancel,
        })
    }

    /// Raises the running batch's cancel flag; false when nothing runs.
    pub fn cancel_run(&self) -> bool {
        match &*lock(&self.run) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Keeps the device watcher alive, replacing (and so stopping) the previous one.
    pub fn set_watch(&self, watch: DeviceWatch) {
        *lock(&self.watch) = Some(watch);
    }

    /// Fills in an export request's empty path: a new file in the app's exports folder,
    /// which is created on first use.
    pub fn export_path(
        &self,
        mut request: ExportRequest,
        stem: &str,
    ) -> Result<ExportRequest, CommandError> {
        if request.path.as_os_str().is_empty() {
            let dir = &self.paths.exports_dir;
            std::fs::create_dir_all(dir).map_err(|source| CommandError::ExportsDir {
                path: dir.clone(),
                source,
            })?;
            request.path = dir.join(export_file_name(stem));
        }
        Ok(request)
    }
}

/// `<stem>-<unix seconds>.pskcxml`, with every character outside `[A-Za-z0-9._-]` replaced.
fn export_file_name(stem: &str) -> String {
    let safe: String = stem
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{safe}-{secs}.pskcxml")
}

/// Locks a mutex, recovering from poisoning: the guarded values stay consistent because
/// every critical section is a plain assignment, take or clone.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_file_names_are_safe() {
        let name = export_file_name("line 3/../x");
        assert!(name.starts_with("line_3_.._x-"), "{name}");
        assert!(name.ends_with(".pskcxml"));
    }

    #[test]
    fn one_run_at_a_time_and_cancel_reaches_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = StationState::new(StationPaths::new(dir.path(), dir.path())).unwrap();
        assert!(!state.cancel_run());
        let guard = state.begin_run().unwrap();
        assert!(matches!(state.begin_run(), Err(CommandError::Busy)));
        assert!(state.cancel_run());
        assert!(guard.cancel.is_cancelled());
        drop(guard);
        let again = state.begin_run().unwrap();
        assert!(!again.cancel.is_cancelled());
    }
}
