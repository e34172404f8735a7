//! `keyprov devices` and `keyprov emulator …`: list and watch attached tokens (real HID
//! devices plus an emulator directory), and manage emulated tokens. A thin shell over
//! `keyprov-drivers`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keyprov_drivers::emulator::{self, EmulatedDevice, Latency};
use keyprov_drivers::{DeviceEvent, Family, TokenInfo, Watcher};

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List attached tokens (family, model, serial, firmware, free slots).
    Devices {
        /// Also list the plugged devices of this emulator directory.
        #[arg(long, value_name = "DIR", env = "KEYPROV_EMULATOR_DIR")]
        emulator: Option<PathBuf>,
        /// A JSON array instead of a table (with --watch: one JSON event per line).
        #[arg(long)]
        json: bool,
        /// Keep running and print arrivals and removals.
        #[arg(long)]
        watch: bool,
    },
    /// Manage emulated tokens (byte-exact device sides of the HID protocols).
    #[command(subcommand)]
    Emulator(EmulatorCommand),
}

/// Emulated device families.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EmulatedFamily {
    /// YubiKey OTP application.
    Yubikey,
    /// Nitrokey Pro.
    NitrokeyPro,
    /// Nitrokey Storage.
    NitrokeyStorage,
    /// Nitrokey 3 (Secrets App over CTAPHID; SHA-1 and SHA-256).
    Nitrokey3,
}

impl From<EmulatedFamily> for Family {
    fn from(value: EmulatedFamily) -> Family {
        match value {
            EmulatedFamily::Yubikey => Family::Yubikey,
            EmulatedFamily::NitrokeyPro => Family::NitrokeyPro,
            EmulatedFamily::NitrokeyStorage => Family::NitrokeyStorage,
            EmulatedFamily::Nitrokey3 => Family::Nitrokey3,
        }
    }
}

/// `keyprov emulator …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EmulatorCommand {
    /// Create emulated devices with fresh serials and empty slots.
    #[command(group = clap::ArgGroup::new("which").required(true))]
    Add {
        /// Device family.
        #[arg(group = "which")]
        family: Option<EmulatedFamily>,
        /// Device family, as an option (`--family nitrokey3`).
        #[arg(long = "family", value_name = "FAMILY", group = "which")]
        family_option: Option<EmulatedFamily>,
        /// How many devices.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Firmware version X.Y (YubiKey also X.Y.Z; Nitrokey 3: the Secrets App version,
        /// default 4.13.0); the generation decides the protocol.
        #[arg(long, value_name = "X.Y")]
        firmware: Option<String>,
        /// Latency of slot writes in milliseconds (default: close to the host polling rules).
        #[arg(long, value_name = "MS")]
        write_latency_ms: Option<u64>,
        /// Nitrokey 3: wait for `emulator touch SERIAL --presence` (up to 15 s) when the
        /// device asks for a touch, instead of touching it automatically after 250 ms.
        #[arg(long)]
        manual_touch: bool,
        /// Emulator directory (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// List emulated devices, plugged or not.
    List {
        /// Emulator directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Press the button: prints the OTP the device produces (the HOTP counter advances).
    /// With --totp, prints the code a Nitrokey TOTP slot gives now (GET_CODE; Nitrokey 3:
    /// Calculate at T = now / period).
    Touch {
        /// Device serial.
        serial: String,
        /// Slot (YubiKey 1 or 2, default 1; Nitrokey HOTP 0–2 or TOTP 0–14, default 0).
        #[arg(long)]
        slot: Option<u8>,
        /// Read the Nitrokey TOTP slot instead of the HOTP slot.
        #[arg(long)]
        totp: bool,
        /// TOTP period in seconds for a Nitrokey 3, which keeps none (the host sends T).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, requires = "totp")]
        period: u32,
        /// Nitrokey 3: only confirm the presence a request waits for (prints nothing).
        #[arg(long, conflicts_with_all = ["slot", "totp"])]
        presence: bool,
        /// Emulator directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Unplug a device (open handles fail with "unplugged").
    Unplug {
        /// Device serial.
        serial: String,
        /// Emulator directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Plug a device back in.
    Plug {
        /// Device serial.
        serial: String,
        /// Emulator directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Devices {
            emulator,
            json,
            watch,
        } if watch => watch_devices(emulator, json),
        Command::Devices { emulator, json, .. } => list_devices(emulator.as_deref(), json),
        Command::Emulator(cmd) => run_emulator(cmd),
    }
}

fn run_emulator(cmd: EmulatorCommand) -> Result<()> {
    match cmd {
        EmulatorCommand::Add {
            family,
            family_option,
            count,
            firmware,
            write_latency_ms,
            manual_touch,
            dir,
        } => {
            // clap's required group guarantees one of the two.
            let family = Family::from(family.or(family_option).context("no device family")?);
            // Refused before any device is written: a half-done add leaves devices behind.
            if manual_touch && family != Family::Nitrokey3 {
                anyhow::bail!(
                    "--manual-touch is for nitrokey3 only: a {family} asks for no presence \
                     touch (no device was added)"
                );
            }
            let added = emulator::add(&dir, family, count, firmware.as_deref())
                .with_context(|| format!("cannot add emulated {family} devices"))?;
            for device in &added {
                if let Some(ms) = write_latency_ms {
                    let latency = Latency {
                        write_ms: ms,
                        ..Latency::default_for(family)
                    };
                    emulator::set_latency(&dir, &device.serial, latency)?;
                }
                if manual_touch {
                    let mode = emulator::TouchMode::Manual { timeout_ms: 15_000 };
                    emulator::set_touch_mode(&dir, &device.serial, mode)?;
                }
                println!("{}", emulated_row(device));
            }
            Ok(())
        }
        EmulatorCommand::List { dir, json } => {
            let devices = emulator::list(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                devices.iter().for_each(|d| println!("{}", emulated_row(d)));
            }
            Ok(())
        }
        EmulatorCommand::Touch {
            serial,
            slot,
            totp,
            period,
            presence,
            dir,
        } => {
            // The driver's errors name the device ("emulated 00C00001: ..."): said once.
            if presence {
                return emulator::press(&dir, &serial).context("cannot touch");
            }
            if period == 0 {
                anyhow::bail!("--period must be at least 1 second");
            }
            if let Some(slot) = slot {
                check_slot(&dir, &serial, slot, totp)?;
            }
            let otp = if totp {
                emulator::touch_totp_period(&dir, &serial, slot.unwrap_or(0), period)
            } else {
                emulator::touch(&dir, &serial, slot)
            };
            let otp = otp.context("cannot touch")?;
            if otp.is_empty() {
                eprintln!("touched: the slot answers challenges, nothing was typed");
            } else {
                println!("{otp}");
            }
            Ok(())
        }
        EmulatorCommand::Unplug { serial, dir } => Ok(emulator::set_plugged(&dir, &serial, false)?),
        EmulatorCommand::Plug { serial, dir } => Ok(emulator::set_plugged(&dir, &serial, true)?),
    }
}

/// Refuses a `--slot` the device's family does not have, naming the valid ones. An unknown
/// serial passes: the touch itself names it.
fn check_slot(dir: &Path, serial: &str, slot: u8, totp: bool) -> Result<()> {
    let Some(device) = emulator::list(dir)?
        .into_iter()
        .find(|d| d.serial.eq_ignore_ascii_case(serial.trim()))
    else {
        return Ok(());
    };
    let kind = if totp { "totp" } else { "hotp" };
    let Some(valid) = emulator::touch_slots(device.family, totp) else {
        return Ok(());
    };
    if !valid.contains(&slot) {
        anyhow::bail!(
            "cannot touch: emulated {}: no such slot {kind}:{slot} (valid {}–{})",
            device.serial,
            valid.start(),
            valid.end()
        );
    }
    Ok(())
}

fn emulated_row(device: &EmulatedDevice) -> String {
    let state = if device.plugged {
        "plugged"
    } else {
        "unplugged"
    };
    format!(
        "{:<17} {:<17} {:<10} {:<9}{state}",
        device.family.as_str(),
        device.model,
        device.serial,
        device.firmware
    )
}

fn slots_text(slots: &Option<Vec<u8>>) -> String {
    match slots {
        None => "?".into(),
        Some(s) if s.is_empty() => "-".into(),
        Some(s) => s.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
    }
}

fn token_row(token: &TokenInfo) -> String {
    format!(
        "{:<17} {:<17} {:<10} {:<9}hotp:{} totp:{}{}",
        token.family.as_str(),
        token.model,
        token.serial,
        token.firmware,
        slots_text(&token.free_hotp_slots),
        slots_text(&token.free_totp_slots),
        if token.emulated { " (emulated)" } else { "" }
    )
}

fn list_devices(emulator: Option<&Path>, json: bool) -> Result<()> {
    let tokens = keyprov_drivers::list(emulator).context("cannot list tokens")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
    } else if tokens.is_empty() {
        println!("no tokens attached");
    } else {
        println!(
            "{:<17} {:<17} {:<10} {:<9}FREE SLOTS",
            "FAMILY", "MODEL", "SERIAL", "FIRMWARE"
        );
        tokens.iter().for_each(|t| println!("{}", token_row(t)));
    }
    Ok(())
}

/// Prints every token present as an arrival, then each change as it happens; runs until
/// interrupted.
fn watch_devices(emulator: Option<PathBuf>, json: bool) -> Result<()> {
    let watcher = Watcher::start(emulator.as_deref()).context("cannot watch for tokens")?;
    let mut out = std::io::stdout();
    for token in watcher.present() {
        print_event(&mut out, &arrived(token, json), json)?;
    }
    loop {
        match watcher.next_event(std::time::Duration::from_secs(3600)) {
            Some(DeviceEvent::Arrived(token)) => {
                print_event(&mut out, &arrived(&token, json), json)?
            }
            Some(event) => print_event(&mut out, &event, json)?,
            None => {}
        }
    }
}

/// The arrival to print. The watcher reports a token without opening it; for people the
/// table shows the free slots `devices` lists, read from the device (a Nitrokey takes a
/// second or two). JSON consumers get the event at once, slots unknown (`null`) as reported.
fn arrived(token: &TokenInfo, json: bool) -> DeviceEvent {
    if json {
        DeviceEvent::Arrived(token.clone())
    } else {
        DeviceEvent::Arrived(with_slots(token))
    }
}

/// The token with its free slots read from the device; unchanged when it cannot be read.
fn with_slots(token: &TokenInfo) -> TokenInfo {
    if token.free_hotp_slots.is_some() && token.free_totp_slots.is_some() {
        return token.clone();
    }
    let read = keyprov_drivers::open(token).and_then(|mut device| {
        device.programmed_slots()?;
        Ok(device.info().clone())
    });
    read.unwrap_or_else(|err| {
        tracing::debug!(device = %token.serial, %err, "free slots of an arrival not read");
        token.clone()
    })
}

fn print_event(out: &mut impl Write, event: &DeviceEvent, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)?;
    } else {
        let (sign, token) = match event {
            DeviceEvent::Arrived(token) => ("+", token),
            DeviceEvent::Removed(token) => ("-", token),
        };
        writeln!(out, "{sign} {}", token_row(token))?;
    }
    out.flush()?;
    Ok(())
}
