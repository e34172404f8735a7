//! `keyprov import`: registers the tokens of a vendor seed file (PSKC) in the station store,
//! so they can be exported per validation server (`--for`) and re-issued later.
//!
//! The file is read and decrypted completely before the store is opened: a wrong password or
//! key changes nothing, not even by creating the database. The import then holds the station
//! lock (`keyprov_engine::StationLock`) from before the store is opened until its batch is
//! written: beside a running provisioning or re-issue run it fails at once, and such a run
//! fails at once beside it. Which keys are registered, how duplicates and conflicts are
//! handled, lives in `keyprov_profiles::{seed, register}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use keyprov_engine::StationLock;
use keyprov_profiles::{ImportReport, ImportSource, Registered, SeedFile, register, seed_tokens};
use keyprov_pskc::{ReadOptions, Secret};
use keyprov_store::Store;
use serde_json::json;
use zeroize::Zeroizing;

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Register the HOTP/TOTP tokens of a vendor seed file (PSKC) in the station store.
    /// Tokens already registered with the same key are left alone; a token registered with a
    /// different key refuses the whole file. Nothing is written unless every token fits.
    Import(ImportArgs),
}

/// `keyprov import FILE (--password PW | --key HEX | --key-file PATH | --private-key PEM)`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The PSKC seed file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Password of a PBKDF2-protected file.
    #[arg(long, value_name = "PW", group = "protection")]
    password: Option<String>,
    /// Pre-shared key of the file, hex.
    #[arg(long, value_name = "HEX", group = "protection")]
    key: Option<String>,
    /// File holding the pre-shared key: hex text, or the raw key bytes.
    #[arg(long, value_name = "PATH", group = "protection")]
    key_file: Option<PathBuf>,
    /// RSA private key (PEM file) of a file protected by key transport.
    #[arg(long, value_name = "PEM", group = "protection")]
    private_key: Option<PathBuf>,
    /// Name of the batch the tokens are registered under [default: import-<file>-<sha256>].
    #[arg(long, value_name = "NAME")]
    batch: Option<String>,
    /// Station database; default `$XDG_DATA_HOME/keyprov/station.db`.
    #[arg(long, value_name = "PATH", env = "KEYPROV_DB")]
    db: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Import(args) => import(args),
    }
}

fn import(mut args: ImportArgs) -> anyhow::Result<()> {
    let shown = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {shown}"))?;
    let options = read_options(&mut args)?;
    let container =
        keyprov_pskc::parse(&bytes, &options).with_context(|| format!("reading {shown}"))?;
    let seeds = seed_tokens(&container).with_context(|| format!("importing {shown}"))?;

    let source = ImportSource::of(&shown, &bytes);
    let batch = args
        .batch
        .clone()
        .unwrap_or_else(|| source.default_batch_name());
    let db = match &args.db {
        Some(path) => path.clone(),
        None => Store::default_path()?,
    };
    let lock = StationLock::acquire(&db)?;
    let passphrase = std::env::var("KEYPROV_PASSPHRASE").ok().map(Zeroizing::new);
    let store = Store::open(&db, passphrase.as_deref().map(String::as_str))
        .with_context(|| format!("opening the station store {}", db.display()))?;
    let report =
        register(&store, &seeds, &batch, &source).with_context(|| format!("importing {shown}"))?;
    drop(lock);

    let expired = expired(&seeds);
    // What the operator must read goes to stderr, also with --json (whose copy is on stdout).
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        let mut json = report_json(&source, &report);
        json["expired"] = expired
            .iter()
            .map(|(key, at)| json!({"key": key, "expired": at}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_report(&report);
        for (key, at) in &expired {
            println!("  note: {key}: its policy expired on {at}");
        }
    }
    Ok(())
}

/// Keys whose `Policy/ExpiryDate` has passed (the store keeps no validity dates, so the
/// operator is told here): (`key <id> (serial <serial>)`, RFC 3339 date).
fn expired(seeds: &SeedFile) -> Vec<(String, String)> {
    let now = time::OffsetDateTime::now_utc();
    seeds
        .tokens
        .iter()
        .filter_map(|t| t.expires.filter(|at| *at < now).map(|at| (t, at)))
        .map(|(t, at)| {
            let when = at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| at.to_string());
            (format!("key {} (serial {})", t.key_id, t.serial), when)
        })
        .collect()
}

/// The key material the options name, read without copying it into unprotected buffers.
fn read_options(args: &mut ImportArgs) -> anyhow::Result<ReadOptions> {
    // The command-line copies are wiped once the options hold their own.
    if let Some(password) = args.password.take().map(Zeroizing::new) {
        return Ok(ReadOptions::with_password(Secret::from_slice(
            password.as_bytes(),
        )));
    }
    if let Some(hex) = args.key.take().map(Zeroizing::new) {
        let key = Secret::from_hex(&hex).context("--key is not hexadecimal")?;
        return Ok(ReadOptions::with_key(key));
    }
    if let Some(path) = &args.key_file {
        return Ok(ReadOptions::with_key(key_from_file(path)?));
    }
    if let Some(path) = &args.private_key {
        let pem = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the private key {}", path.display()))?,
        );
        return ReadOptions::with_private_key_pem(&pem)
            .with_context(|| format!("reading the private key {}", path.display()));
    }
    Ok(ReadOptions::default())
}

/// A key file holds hex text (whitespace ignored) or, failing that, the raw key bytes (what
/// FreeIPA's `--keyfile` takes).
fn key_from_file(path: &Path) -> anyhow::Result<Secret> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("reading the key file {}", path.display()))?,
    );
    if bytes.is_empty() {
        bail!("the key file {} is empty", path.display());
    }
    let hex_text = std::str::from_utf8(&bytes)
        .ok()
        .map(|text| Zeroizing::new(text.split_whitespace().collect::<String>()))
        .and_then(|text| Secret::from_hex(&text));
    Ok(hex_text.unwrap_or_else(|| Secret::from_slice(&bytes)))
}

fn print_report(report: &ImportReport) {
    match &report.batch {
        Some((id, name)) => println!(
            "imported {} token(s) into batch {name} ({id}); {} already registered, {} skipped",
            report.added.len(),
            report.unchanged.len(),
            report.skipped.len()
        ),
        None => println!(
            "nothing new: {} token(s) already registered, {} skipped",
            report.unchanged.len(),
            report.skipped.len()
        ),
    }
    for token in &report.added {
        println!("  + {}", describe(token));
    }
    for skipped in &report.skipped {
        println!("  skipped {skipped}");
    }
}

fn describe(token: &Registered) -> String {
    let timing = match (token.counter, token.period) {
        (Some(counter), _) => format!("counter {counter}"),
        (None, Some(period)) => format!("{period} s"),
        (None, None) => String::new(),
    };
    format!(
        "{} {} key {}: {} {} {} digits, {timing}",
        token.family, token.serial, token.key_id, token.algorithm, token.hash, token.digits
    )
}

fn report_json(source: &ImportSource, report: &ImportReport) -> serde_json::Value {
    let token = |t: &Registered| {
        json!({
            "key": t.key.0,
            "family": t.family,
            "serial": t.serial,
            "key_id": t.key_id,
            "algorithm": t.algorithm.as_str(),
            "hash": t.hash.as_str(),
            "digits": t.digits,
            "counter": t.counter,
            "period": t.period,
        })
    };
    json!({
        "file": source.file,
        "sha256": source.sha256,
        "batch": report.batch.as_ref().map(|(id, name)| json!({"id": id.0, "name": name})),
        "added": report.added.iter().map(token).collect::<Vec<_>>(),
        "unchanged": report.unchanged.iter().map(token).collect::<Vec<_>>(),
        "skipped": report.skipped.iter()
            .map(|s| json!({"key": s.subject, "reason": s.reason}))
            .collect::<Vec<_>>(),
        "warnings": report.warnings.iter()
            .map(|w| json!({"key": w.subject, "warning": w.reason}))
            .collect::<Vec<_>>(),
    })
}
