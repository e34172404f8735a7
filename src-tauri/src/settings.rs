//! The station's settings: a small JSON file in the app's config directory, plus the
//! environment overrides (`KEYPROV_DB`, `KEYPROV_EMULATOR_DIR`) that tests and kiosk setups
//! use. The master-key passphrase is never written to disk; it lives in memory only.

use crate::error::CommandError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the operator can change on the Settings screen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// SQLite store; the engine's default (shared with the `keyprov` CLI) when absent.
    pub db_path: Option<PathBuf>,
    /// Default DSKPP server URL offered by the New batch screen.
    pub server_url: Option<String>,
    /// PEM file of the CA that the server's TLS certificate must chain to, besides the
    /// system roots.
    pub server_ca_pem: Option<PathBuf>,
    /// Show the demo switch that attaches emulated tokens.
    pub demo: bool,
}

/// Where settings and default state live, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct StationPaths {
    /// The settings JSON file.
    pub settings_file: PathBuf,
    /// Emulated tokens attached from the UI, unless `KEYPROV_EMULATOR_DIR` says otherwise.
    pub emulator_dir: PathBuf,
    /// Where exports go when the operator names no file.
    pub exports_dir: PathBuf,
}

impl StationPaths {
    /// Paths under the app's config and data directories.
    pub fn new(config_dir: &Path, data_dir: &Path) -> Self {
        Self {
            settings_file: config_dir.join("settings.json"),
            emulator_dir: data_dir.join("emulators"),
            exports_dir: data_dir.join("exports"),
        }
    }
}

/// The settings as the UI shows them: the stored values plus what is actually in force.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub settings: Settings,
    /// The database in use: `KEYPROV_DB`, the setting, or `null` for the engine default.
    pub effective_db_path: Option<PathBuf>,
    /// True when `KEYPROV_DB` overrides the setting.
    pub db_from_env: bool,
    pub emulator_dir: PathBuf,
    /// Where exports without a named file go.
    pub exports_dir: PathBuf,
    /// The CA file the HTTPS client trusts in this process (`SSL_CERT_FILE`), if any; a
    /// changed `server_ca_pem` applies from the next start.
    pub tls_trust_in_force: Option<PathBuf>,
    /// Whether a master-key passphrase was entered in this session.
    pub passphrase_set: bool,
}

impl Settings {
    /// Reads the settings file; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Self, CommandError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                let path = path.to_owned();
                return Err(CommandError::SettingsIo { path, source });
            }
        };
        serde_json::from_str(&text).map_err(|source| CommandError::SettingsFormat {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the settings file atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), CommandError> {
        let io_err = |source| CommandError::SettingsIo {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        // Serializing plain strings, paths and a bool cannot fail.
        let text = serde_json::to_string_pretty(self).expect("settings serialize");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    }

    /// Checks values before they are stored.
    pub fn validate(&self) -> Result<(), CommandError> {
        if let Some(url) = &self.server_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(CommandError::InvalidRequest(format!(
                "server URL {url:?} must start with https:// or http://"
            )));
        }
        if let Some(pem) = &self.server_ca_pem
            && !pem.is_file()
        {
            return Err(CommandError::InvalidRequest(format!(
                "TLS trust file {} does not exist",
                pem.display()
            )));
        }
        Ok(())
    }
}

/// The app's identifier (`tauri.conf.json`), the name of its config and data folders.
pub const IDENTIFIER: &str = "org.keyprov.station";

/// The settings file as Tauri's path resolver places it on Linux
/// (`$XDG_CONFIG_HOME/<identifier>`, else `~/.config/<identifier>`), for use before Tauri
/// starts.
pub fn early_settings_file() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => Path::new(&std::env::var_os("HOME")?).join(".config"),
    };
    Some(config.join(IDENTIFIER).join("settings.json"))
}

/// Makes the configured CA the trust anchor of the station's HTTPS client.
///
/// The engine's client (reqwest over rustls-platform-verifier) reads its roots from the
/// system store, which honours `SSL_CERT_FILE`; so the setting becomes that variable. An
/// `SSL_CERT_FILE` already in the environment wins. Must run before any thread starts.
pub fn apply_tls_trust(settings_file: &Path) {
    if std::env::var_os("SSL_CERT_FILE").is_some() {
        return;
    }
    let Ok(settings) = Settings::load(settings_file) else {
        return; // The app reports a malformed file when it starts.
    };
    if let Some(ca) = settings.server_ca_pem.filter(|ca| ca.is_file()) {
        // SAFETY: called from `main` before Tauri, logging or any other thread starts, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
        tracing::debug!(ca = %ca.display(), "server TLS trust from settings");
    }
}

/// The database path in force: `KEYPROV_DB` wins over the setting.
pub fn effective_db_path(settings: &Settings) -> (Option<PathBuf>, bool) {
    match std::env::var_os("KEYPROV_DB") {
        Some(db) if !db.is_empty() => (Some(PathBuf::from(db)), true),
        _ => (settings.db_path.clone(), false),
    }
}

/// The emulator directory in force: `KEYPROV_EMULATOR_DIR` wins over the app data dir.
pub fn effective_emulator_dir(paths: &StationPaths) -> PathBuf {
    match std::env::var_os("KEYPROV_EMULATOR_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => paths.emulator_dir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults_and_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/settings.json");
        assert_eq!(Settings::load(&file).unwrap(), Settings::default());
        let settings = Settings {
            db_path: Some("/var/lib/keyprov/station.db".into()),
            server_url: Some("https://prov.example.org/dskpp".into()),
            server_ca_pem: None,
            demo: true,
        };
        settings.save(&file).unwrap();
        assert_eq!(Settings::load(&file).unwrap(), settings);
    }

    #[test]
    fn malformed_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.json");
        std::fs::write(&file, "{\"demo\": 3}").unwrap();
        let err = Settings::load(&file).unwrap_err();
        assert_eq!(err.code(), "settings");
        assert!(
            err.to_string().contains("settings.json is malformed"),
            "{err}"
        );
    }

    #[test]
    fn identifier_matches_the_tauri_config() {
        let conf = include_str!("../tauri.conf.json");
        let conf: serde_json::Value = serde_json::from_str(conf).unwrap();
        assert_eq!(conf["identifier"], IDENTIFIER);
    }

    #[test]
    fn rejects_a_server_url_without_scheme() {
        let settings = Settings {
            server_url: Some("prov.example.org".into()),
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("prov.example.org"));
    }
}
