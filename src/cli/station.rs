//! `keyprov` commands of the station group: `provision`, `batch list|show|export`, `reissue`
//! and `audit verify`. Each is a thin shell over `keyprov_engine::Station`; this module only
//! parses flags, draws progress bars and prints results (`--json`: the API's JSON shapes).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyprov_engine::api::{
    BatchDetail, BatchRequest, BatchSummary, ExportProtection, ExportRecord, ExportRequest,
    ExportTarget, OtpHash, OtpKind, ProgressEvent, ProvisioningMode, ReissueRequest, Stage,
    StationConfig, TokenRow,
};
use keyprov_engine::{Cancel, EngineError, Station};
use keyprov_store::Store;
use zeroize::Zeroizing;

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Provision every attached token (or the first N) with a fresh key obtained over DSKPP,
    /// write and verify it, and optionally export the batch as PSKC. Re-running an unfinished
    /// batch (same --batch) resumes it.
    Provision(ProvisionArgs),
    /// List, show or export batches.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Revoke a token's key, provision a new one on the same token and export that key.
    Reissue(ReissueArgs),
    /// Check the station's provisioning log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `keyprov audit ...`
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the event hash chain; exits non-zero naming the first broken link.
    Verify {
        /// Station database; default `$XDG_DATA_HOME/keyprov/station.db`.
        #[arg(long, value_name = "PATH", env = "KEYPROV_DB")]
        db: Option<PathBuf>,
    },
}

/// Where the station keeps its state.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Station database; default `$XDG_DATA_HOME/keyprov/station.db`.
    #[arg(long, value_name = "PATH", env = "KEYPROV_DB")]
    db: Option<PathBuf>,
}

/// Where keys come from.
#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// Central mode: DSKPP against this `keyprov serve` URL (default: local mode).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Central mode (required with --server): one-time authentication codes the server issued
    /// for this batch, as `keyprov ac issue` prints them (`AC=…` lines, each optionally
    /// followed by a `SHARED_KEY=…` line; outputs of several runs may be concatenated).
    #[arg(long, value_name = "FILE", requires = "server")]
    ac_file: Option<PathBuf>,
}

/// An export file and its protection (`--export FILE` needs exactly one protection).
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write the provisioned keys to this PSKC file.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Protect the export with this password (PBKDF2).
    #[arg(
        long,
        value_name = "PW",
        requires = "export",
        group = "export_protection"
    )]
    export_password: Option<String>,
    /// Protect the export with the password on the first line of this file (keeps it out of
    /// `ps`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "export",
        group = "export_protection"
    )]
    export_password_file: Option<PathBuf>,
    /// Protect the export with this pre-shared AES key (hex).
    #[arg(
        long,
        value_name = "HEX",
        requires = "export",
        group = "export_protection"
    )]
    export_key: Option<String>,
    /// Protect the export for the holder of this certificate (RSA key transport).
    #[arg(
        long,
        value_name = "PEM",
        requires = "export",
        group = "export_protection"
    )]
    export_cert: Option<PathBuf>,
    /// Shape the export for this validation server's importer: generic, privacyidea,
    /// freeipa or linotp.
    #[arg(long = "for", value_name = "TARGET", default_value = "generic", value_parser = target)]
    export_for: ExportTarget,
}

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Batch name; an unfinished batch of this name is resumed.
    #[arg(long, value_name = "NAME")]
    batch: String,
    /// OTP kind of the new keys.
    #[arg(long, value_enum, default_value = "hotp")]
    profile: Profile,
    /// OTP length.
    #[arg(long, default_value_t = 6, value_parser = parse_digits)]
    digits: u8,
    /// TOTP time step in seconds.
    #[arg(long, default_value_t = 30)]
    period: u32,
    /// HMAC hash of the OTPs: sha1, or sha256 (tokens that cannot compute it fail before a
    /// key is obtained for them).
    #[arg(long, value_enum, default_value = "sha1")]
    hash: Hash,
    /// Provision at most this many tokens.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Treat the emulated tokens in this directory as attached.
    #[arg(long, value_name = "DIR", env = "KEYPROV_EMULATOR_DIR")]
    emulator: Option<PathBuf>,
    /// Tokens programmed at once (default: all attached, at most 64).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Operator name recorded with the batch.
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    #[command(flatten)]
    mode: ModeArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    export: ExportArgs,
    /// Print the batch as JSON (the API's `BatchDetail`) instead of progress bars.
    #[arg(long)]
    json: bool,
}

fn parse_digits(text: &str) -> Result<u8, String> {
    match text {
        "6" => Ok(6),
        "8" => Ok(8),
        _ => Err(format!("{text} digits: use 6 or 8")),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Profile {
    Hotp,
    Totp,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Hash {
    Sha1,
    Sha256,
}

#[derive(Debug, clap::Subcommand)]
pub enum BatchCommand {
    /// List the batches of the station.
    List {
        #[command(flatten)]
        db: DbArgs,
        /// Print the batches as JSON (the API's `BatchSummary` list).
        #[arg(long)]
        json: bool,
    },
    /// Show one batch (id or name) with its tokens.
    Show {
        /// Batch id or name.
        id: String,
        #[command(flatten)]
        db: DbArgs,
        /// Print the batch as JSON (the API's `BatchDetail`).
        #[arg(long)]
        json: bool,
    },
    /// Export the active keys of a batch (id or name) as a protected PSKC file.
    Export(BatchExportArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("protection").required(true)))]
pub struct BatchExportArgs {
    /// Batch id or name.
    id: String,
    /// The PSKC file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Protect the file with this password (PBKDF2).
    #[arg(long, value_name = "PW", group = "protection")]
    password: Option<String>,
    /// Protect the file with the password on the first line of this file (keeps it out of
    /// `ps`).
    #[arg(long, value_name = "FILE", group = "protection")]
    password_file: Option<PathBuf>,
    /// Protect the file with this pre-shared AES key (hex).
    #[arg(long, value_name = "HEX", group = "protection")]
    key: Option<String>,
    /// Protect the file for the holder of this certificate.
    #[arg(long, value_name = "PEM", group = "protection")]
    cert: Option<PathBuf>,
    /// Shape the file for this validation server's importer: generic, privacyidea, freeipa
    /// or linotp.
    #[arg(long = "for", value_name = "TARGET", default_value = "generic", value_parser = target)]
    target: ExportTarget,
    #[command(flatten)]
    db: DbArgs,
    /// Print the export record as JSON (the API's `ExportRecord`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReissueArgs {
    /// Serial number of the token to re-issue.
    serial: String,
    /// Treat the emulated tokens in this directory as attached.
    #[arg(long, value_name = "DIR", env = "KEYPROV_EMULATOR_DIR")]
    emulator: Option<PathBuf>,
    #[command(flatten)]
    mode: ModeArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    export: ExportArgs,
    /// Print the re-issue batch as JSON (the API's `BatchDetail`) instead of progress bars.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Provision(args) => provision(args),
        Command::Batch(BatchCommand::List { db, json }) => batch_list(db, json),
        Command::Batch(BatchCommand::Show { id, db, json }) => batch_show(&id, db, json),
        Command::Batch(BatchCommand::Export(args)) => batch_export(args),
        Command::Reissue(args) => reissue(args),
        Command::Audit(AuditCommand::Verify { db }) => audit_verify(db.as_deref()),
    }
}

fn open(db: DbArgs, emulator: Option<PathBuf>) -> anyhow::Result<Station> {
    let config = StationConfig {
        db_path: db.db,
        emulator_dir: emulator,
        passphrase: std::env::var("KEYPROV_PASSPHRASE").ok(),
        nitrokey_admin_pin: std::env::var("KEYPROV_NITROKEY_ADMIN_PIN").ok(),
        ..StationConfig::default()
    };
    Ok(Station::open(config)?)
}

/// Opens a station that must exist already: read-only commands never create the database
/// and its master key.
fn open_existing(db: DbArgs) -> anyhow::Result<Station> {
    let path = db_path(db.db.as_deref())?;
    if !path.exists() {
        bail!(
            "no station database at {} (`keyprov provision` or `keyprov import` creates it; \
             --db or KEYPROV_DB names another)",
            path.display()
        );
    }
    open(DbArgs { db: Some(path) }, None)
}

fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let export = export_request(&args.export)?;
    let mode = mode(&args.mode)?;
    let request = BatchRequest {
        name: args.batch,
        otp: match args.profile {
            Profile::Hotp => OtpKind::Hotp,
            Profile::Totp => OtpKind::Totp,
        },
        digits: args.digits,
        period: args.period,
        count: args.count,
        mode,
        export,
        operator: args.operator,
        parallel: args.parallel,
        hash: match args.hash {
            Hash::Sha1 => OtpHash::Sha1,
            Hash::Sha256 => OtpHash::Sha256,
        },
    };
    let station = open(args.db, args.emulator)?;
    let cancel = interrupt_cancels();
    let bars = Bars::new(args.json);
    let summary = station.provision(request, &|event| bars.update(&event), &cancel)?;
    bars.finish();
    print_summary(&station, &summary, args.json)
}

fn reissue(args: ReissueArgs) -> anyhow::Result<()> {
    let export = export_request(&args.export)?;
    let exported = export.is_some();
    let request = ReissueRequest {
        serial: args.serial,
        mode: mode(&args.mode)?,
        export,
    };
    let attach_hint = args.emulator.is_none();
    let station = open(args.db, args.emulator)?;
    let cancel = interrupt_cancels();
    let bars = Bars::new(args.json);
    let summary = station
        .reissue(request, &|event| bars.update(&event), &cancel)
        .map_err(|e| not_attached_hint(e, attach_hint))?;
    bars.finish();
    print_summary(&station, &summary, args.json)?;
    if !exported {
        eprintln!(
            "note: the new key is not exported yet; export it with\n  keyprov batch export {} \
             -o FILE --password-file PWFILE   (or --key HEX / --cert PEM)",
            summary.name
        );
    }
    Ok(())
}

/// `reissue` of a token that is not attached: the hint `provision` gives when no emulator
/// directory was named.
fn not_attached_hint(e: EngineError, no_emulator_dir: bool) -> anyhow::Error {
    let unattached =
        matches!(&e, EngineError::UnknownToken { reason, .. } if reason == "not attached");
    if unattached && no_emulator_dir {
        anyhow::anyhow!("{e} (plug it in, or pass --emulator DIR / set KEYPROV_EMULATOR_DIR)")
    } else {
        e.into()
    }
}

fn batch_list(db: DbArgs, json: bool) -> anyhow::Result<()> {
    let station = open_existing(db)?;
    let batches = station.batches()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&batches)?);
        return Ok(());
    }
    print!("{}", batch_table(&batches));
    Ok(())
}

/// The `batch list` table, its name column as wide as the longest name.
fn batch_table(batches: &[BatchSummary]) -> String {
    let width = batches
        .iter()
        .map(|b| b.name.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut out = format!(
        "{:>4}  {:<width$}  {:<11} {:<11} {:>6} {:>8} {:>6}  created\n",
        "id", "name", "state", "otp", "tokens", "verified", "failed"
    );
    for b in batches {
        out += &format!(
            "{:>4}  {:<width$}  {:<11} {:<11} {:>6} {:>8} {:>6}  {}\n",
            b.id,
            b.name,
            b.state,
            otp_column(b),
            b.tokens,
            b.verified,
            b.failed,
            b.created_at
        );
    }
    out
}

fn batch_show(id: &str, db: DbArgs, json: bool) -> anyhow::Result<()> {
    let station = open_existing(db)?;
    let detail = station.batch(id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print_detail(&detail);
    }
    Ok(())
}

fn batch_export(args: BatchExportArgs) -> anyhow::Result<()> {
    let password = password(args.password, args.password_file.as_deref())?;
    let protection = protection(password, args.key, args.cert)?
        .context("batch export needs --password, --password-file, --key or --cert")?;
    let request = ExportRequest {
        path: args.output,
        protection,
        target: args.target,
    };
    let station = open_existing(args.db)?;
    let record = station.export_batch(&args.id, request)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print_export(&record);
    }
    Ok(())
}

/// The password given on the command line, or the first line of the password file.
fn password(inline: Option<String>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(file) = file else {
        return Ok(inline);
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the password file {}", file.display()))?,
    );
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        bail!(
            "the password file {} has an empty first line",
            file.display()
        );
    }
    Ok(Some(line.to_string()))
}

fn mode(args: &ModeArgs) -> anyhow::Result<ProvisioningMode> {
    let Some(server_url) = args.server.clone() else {
        return Ok(ProvisioningMode::Local);
    };
    let Some(path) = &args.ac_file else {
        bail!("central mode needs --ac-file (authentication codes from `keyprov ac issue`)");
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read authentication codes from {}", path.display()))?;
    let auth_codes =
        auth_codes(&text).with_context(|| format!("authentication codes in {}", path.display()))?;
    if auth_codes.is_empty() {
        bail!(
            "{} holds no authentication code (expected `AC=…` lines from `keyprov ac issue`)",
            path.display()
        );
    }
    Ok(ProvisioningMode::Central {
        server_url,
        auth_codes,
    })
}

/// The codes of an `--ac-file`: what `keyprov ac issue` prints, possibly several outputs
/// concatenated. Each `AC=…` line starts a code; a `SHARED_KEY=…` line right after it belongs
/// to it. The one-line `AC=… SHARED_KEY=…` form and bare codes are accepted too; a trigger
/// document (`--trigger`) is skipped. Each code
/// becomes one engine entry, `AC=<code>[ SHARED_KEY=<hex>]`.
fn auth_codes(text: &str) -> anyhow::Result<Vec<String>> {
    let mut codes: Vec<String> = Vec::new();
    let mut open = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        // `#` comments; `<…` lines are the KeyProvTrigger `ac issue --trigger` adds.
        if line.is_empty() || line.starts_with('#') || line.starts_with('<') {
            continue;
        }
        if line.starts_with("SHARED_KEY=") {
            match codes.last_mut() {
                Some(code) if open => {
                    code.push(' ');
                    code.push_str(line);
                    open = false;
                }
                _ => bail!("line {}: SHARED_KEY= without an AC= line before it", n + 1),
            }
            continue;
        }
        open = !line.contains("SHARED_KEY=");
        codes.push(line.to_string());
    }
    Ok(codes)
}

fn export_request(args: &ExportArgs) -> anyhow::Result<Option<ExportRequest>> {
    let Some(path) = args.export.clone() else {
        return Ok(None);
    };
    let password = password(
        args.export_password.clone(),
        args.export_password_file.as_deref(),
    )?;
    let protection = protection(password, args.export_key.clone(), args.export_cert.clone())?;
    let Some(protection) = protection else {
        bail!(
            "--export {} needs a protection: --export-password PW, --export-password-file \
             FILE, --export-key HEX or --export-cert PEM (the station never writes keys in \
             the clear)",
            path.display()
        );
    };
    Ok(Some(ExportRequest {
        path,
        protection,
        target: args.export_for,
    }))
}

/// `--for TARGET`: the export profile named as `keyprov_profiles::Target` spells it.
fn target(text: &str) -> Result<ExportTarget, String> {
    use keyprov_profiles::Target;
    Ok(match text.parse::<Target>().map_err(|e| e.to_string())? {
        Target::Generic => ExportTarget::Generic,
        Target::PrivacyIdea => ExportTarget::Privacyidea,
        Target::FreeIpa => ExportTarget::Freeipa,
        Target::LinOtp => ExportTarget::Linotp,
    })
}

fn protection(
    password: Option<String>,
    key: Option<String>,
    cert: Option<PathBuf>,
) -> anyhow::Result<Option<ExportProtection>> {
    Ok(match (password, key, cert) {
        (Some(password), None, None) => Some(ExportProtection::Password { password }),
        (None, Some(key_hex), None) => Some(ExportProtection::Key { key_hex }),
        (None, None, Some(cert_pem)) => Some(ExportProtection::Certificate { cert_pem }),
        (None, None, None) => None,
        _ => bail!("give only one of password, key and certificate"),
    })
}

/// The CLI has no cancel button: Ctrl-C ends the process, which the engine's journal treats
/// like any crash (re-running the command resumes the batch; see `docs/engine.md`).
fn interrupt_cancels() -> Cancel {
    Cancel::new()
}

fn print_summary(station: &Station, summary: &BatchSummary, json: bool) -> anyhow::Result<()> {
    let mut detail = station.batch(&summary.id.to_string())?;
    // The summary's export records carry the serials a profile renamed; the history has not.
    detail.batch.exports = summary.exports.clone();
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print_detail(&detail);
    }
    if summary.failed > 0 {
        let mut reasons: Vec<&str> = detail
            .tokens
            .iter()
            .filter_map(|t| t.error.as_deref())
            .collect();
        reasons.sort();
        reasons.dedup();
        // The engine says which failures may go away on a re-run (from the error's kind).
        let retry = detail
            .tokens
            .iter()
            .any(|t| t.error.is_some() && t.retryable);
        let mut advice = if retry {
            "; re-run the same command to retry them"
        } else {
            ""
        }
        .to_string();
        if reasons
            .iter()
            .any(|r| r.contains("AuthenticationDataInvalid"))
        {
            advice += "; the AC may be used up or wrong, or the URL differs from one the server \
                       accepts (see `keyprov serve --url`)";
        }
        bail!(
            "{} of {} failed ({}){advice}",
            summary.failed,
            plural(summary.tokens, "token"),
            reasons.join("; ")
        );
    }
    if summary.state == "cancelled" {
        bail!(
            "batch {} was cancelled; re-run the same command to resume it",
            summary.name
        );
    }
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn print_detail(detail: &BatchDetail) {
    let b = &detail.batch;
    // SHA-1 is the RFC 4226 default and stays unnamed, as before.
    let hash = match b.hash {
        OtpHash::Sha1 => String::new(),
        other => format!(" {}", other.as_str()),
    };
    println!(
        "batch {} ({}): {}, {}{hash} {} digits{}, mode {}",
        b.id,
        b.name,
        b.state,
        otp_word(b.otp),
        b.digits,
        b.period
            .map(|p| format!(", period {p}s"))
            .unwrap_or_default(),
        b.mode
    );
    let keys = detail
        .tokens
        .iter()
        .filter(|t| !t.key_id.is_empty())
        .count();
    let verified = detail
        .tokens
        .iter()
        .filter(|t| matches!(t.state.as_str(), "verified" | "exported"))
        .count();
    println!(
        "  {}, {}: {} verified, {} failed",
        plural(b.tokens, "token"),
        plural(keys, "key"),
        verified,
        b.failed
    );
    for t in &detail.tokens {
        println!("  {}", token_line(t));
    }
    for e in &b.exports {
        print_export(e);
    }
}

/// One row of `batch show`. A provisioned key sits in a device slot (`hotp:1`); an imported
/// one has no known slot (`-`) and is named by its label in the vendor file (`key` column).
fn token_line(t: &TokenRow) -> String {
    let device_slot = t
        .slot
        .split_once(':')
        .is_some_and(|(kind, n)| matches!(kind, "hotp" | "totp") && n.parse::<u8>().is_ok());
    let (slot, label) = match (device_slot, t.slot.is_empty()) {
        (true, _) => (t.slot.as_str(), "-"),
        (false, true) => ("-", "-"),
        (false, false) => ("-", t.slot.as_str()),
    };
    let id = if t.key_id.is_empty() {
        "-".to_string()
    } else {
        format!("#{}", t.key_id)
    };
    let counter = t
        .counter
        .map(|c| format!(" next counter {c}"))
        .unwrap_or_default();
    let proof = t
        .verification
        .as_deref()
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    let error = t
        .error
        .as_deref()
        .map(|e| format!(" — {e}"))
        .unwrap_or_default();
    format!(
        "{:<10} {:<18} {:<12} slot {:<7} id {:<6} key {:<10} {}{}{}{}",
        t.family, t.model, t.serial, slot, id, label, t.state, proof, counter, error
    )
}

fn print_export(e: &ExportRecord) {
    println!(
        "  export {} ({}, {}-protected, sha256 {})",
        e.path.display(),
        plural(e.keys, "key"),
        e.protection,
        e.sha256
    );
    for renamed in &e.renamed_serials {
        println!(
            "    serial {} is {} in this file (the validation server knows it by that name)",
            renamed.device, renamed.written
        );
    }
}

/// The `batch list` otp column: `hotp`, or `totp/sha256` when the hash is not SHA-1.
fn otp_column(b: &BatchSummary) -> String {
    match b.hash {
        OtpHash::Sha1 => otp_word(b.otp).to_string(),
        other => format!("{}/{}", otp_word(b.otp), other.as_str()),
    }
}

fn otp_word(otp: OtpKind) -> &'static str {
    match otp {
        OtpKind::Hotp => "hotp",
        OtpKind::Totp => "totp",
    }
}

/// One progress bar per token plus a batch bar; hidden with `--json` or without a terminal.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    devices: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(json: bool) -> Self {
        let target = if json || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template("batch  [{bar:30}] {pos}/{len} tokens {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            multi,
            total,
            devices: Mutex::new(HashMap::new()),
        }
    }

    fn update(&self, event: &ProgressEvent) {
        self.total.set_length(event.total as u64);
        self.total.set_position(event.finished as u64);
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let bar = devices.entry(event.serial.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(4));
            bar.set_style(
                ProgressStyle::with_template("{prefix:<22} [{bar:12}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(format!("{} {}", event.family, event.serial));
            bar
        });
        let (position, word) = match event.stage {
            Stage::Queued => (0, "queued"),
            Stage::Dskpp => (1, "dskpp"),
            Stage::Writing => (2, "writing"),
            Stage::Verifying => (3, "verifying"),
            Stage::Done => (4, "verified"),
            Stage::Failed => (4, "FAILED"),
        };
        bar.set_position(position);
        let retry = if event.attempt > 1 {
            format!(" (attempt {})", event.attempt)
        } else {
            String::new()
        };
        let message = event
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        bar.set_message(format!("{word}{retry}{message}"));
        if matches!(event.stage, Stage::Done | Stage::Failed) {
            bar.finish();
        }
    }

    fn finish(&self) {
        self.total.finish();
    }
}

/// The database the operator named, or the default one in the XDG data directory.
fn db_path(db: Option<&Path>) -> anyhow::Result<PathBuf> {
    match db {
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(Store::default_path()?),
    }
}

fn audit_verify(db: Option<&Path>) -> anyhow::Result<()> {
    let path = db_path(db)?;
    // The audit reads no secret, so it runs without the master key or its passphrase.
    let store = Store::open_existing_without_key(&path)?;
    // Store errors name the database file themselves.
    let report = store.verify_audit()?;
    match (&report.first_broken, &report.head) {
        (Some(link), _) => anyhow::bail!(
            "audit chain of {} broken at {link} ({} events before it hold)",
            path.display(),
            report.events
        ),
        (None, Some(head)) => {
            println!("audit chain intact: {} events, head {head}", report.events);
        }
        (None, None) => println!("audit chain intact: no events yet"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, otp: OtpKind, hash: OtpHash) -> BatchSummary {
        BatchSummary {
            id: 7,
            name: name.into(),
            state: "completed".into(),
            otp,
            digits: 6,
            period: None,
            hash,
            mode: "local".into(),
            operator: None,
            created_at: "2026-12-03T18:00:00Z".into(),
            finished_at: None,
            tokens: 2,
            verified: 2,
            failed: 0,
            exports: Vec::new(),
        }
    }

    #[test]
    fn batch_list_otp_column_names_a_hash_other_than_sha1() {
        let table = batch_table(&[
            summary("plain", OtpKind::Hotp, OtpHash::Sha1),
            summary("strong", OtpKind::Totp, OtpHash::Sha256),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "  id  name    state       otp         tokens verified failed  created",
                "   7  plain   completed   hotp             2        2      0  2026-12-03T18:00:00Z",
                "   7  strong  completed   totp/sha256      2        2      0  2026-12-03T18:00:00Z",
            ]
        );
    }
}
