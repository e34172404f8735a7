//! `keyprov-station`: the desktop window of KeyProv Station.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Before any thread exists: it may set SSL_CERT_FILE.
    if let Some(settings) = keyprov_station::settings::early_settings_file() {
        keyprov_station::settings::apply_tls_trust(&settings);
    }
    keyprov_station::init_logging();
    keyprov_station::run();
}
