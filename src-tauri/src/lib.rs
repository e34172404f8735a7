//! KeyProv Station's desktop shell (Tauri 2). It owns no provisioning logic: every command
//! calls the station service API of `keyprov-engine`, the same one the `keyprov` CLI uses.
//! The frontend lives in `ui/` and is embedded at build time.

pub mod commands;
pub mod error;
pub mod settings;
pub mod state;

use std::sync::LazyLock;
use std::time::Instant;
use tauri::{Manager, Runtime};

/// When the process started; `app_info` reports the time since, for the start-up budget.
pub(crate) static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Logs to stderr at the level in `RUST_LOG`; silent when it is unset.
pub fn init_logging() {
    LazyLock::force(&STARTED);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Registers the commands; the app and the command tests share it.
pub fn register<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::app_info,
        commands::settings_get,
        commands::settings_set,
        commands::devices,
        commands::watch_devices,
        commands::attach_emulated,
        commands::provision,
        commands::cancel_run,
        commands::reissue,
        commands::batches,
        commands::batch,
        commands::export_batch,
        commands::audit_verify,
        commands::audit_log,
        commands::reveal_secret,
    ])
}

/// Runs the desktop app until its window closes.
pub fn run() {
    let result = register(tauri::Builder::default())
        .setup(|app| {
            let path = app.path();
            let paths = settings::StationPaths::new(&path.app_config_dir()?, &path.app_data_dir()?);
            if settings::early_settings_file().as_ref() != Some(&paths.settings_file) {
                tracing::warn!(
                    file = %paths.settings_file.display(),
                    "settings file is not where start-up looked; the TLS trust setting is ignored"
                );
            }
            app.manage(state::StationState::new(paths)?);
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("keyprov-station: {e}");
        std::process::exit(1);
    }
}
