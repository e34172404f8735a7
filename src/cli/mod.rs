//! Command groups of the `keyprov` binary and what they share: logging set-up and the one
//! clear error line a failed command prints.

pub mod devices;
pub mod dskpp;
pub mod pskc;
pub mod seeds;
pub mod station;

use std::io::IsTerminal;
use std::process::ExitCode;

/// Logs go to stderr, quiet by default; `RUST_LOG` raises the level. Colours only when
/// stderr is a terminal, so that a log redirected to a file is plain text.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Prints one line for the user (the error and its causes) and picks the exit code.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
