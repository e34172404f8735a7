//! `keyprov`: the headless shell of KeyProv Station.
//!
//! Every subcommand is a thin layer over the library crates; this file only wires the
//! command groups together and sets up logging. Each group lives in its own module under
//! `cli/` so that the PSKC, DSKPP, device and station commands can grow independently.

mod cli;

use clap::Parser;

/// KeyProv Station: provision HOTP/TOTP tokens with DSKPP and exchange PSKC files.
#[derive(Debug, Parser)]
#[command(name = "keyprov", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Pskc(cli::pskc::Command),
    #[command(flatten)]
    Dskpp(cli::dskpp::Command),
    #[command(flatten)]
    Devices(cli::devices::Command),
    #[command(flatten)]
    Station(cli::station::Command),
    #[command(flatten)]
    Seeds(cli::seeds::Command),
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pskc(cmd) => cli::pskc::run(cmd),
        Command::Dskpp(cmd) => cli::dskpp::run(cmd),
        Command::Devices(cmd) => cli::devices::run(cmd),
        Command::Station(cmd) => cli::station::run(cmd),
        Command::Seeds(cmd) => cli::seeds::run(cmd),
    };
    cli::finish(result)
}
