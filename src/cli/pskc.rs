//! `keyprov pskc …`: inspect and convert PSKC (RFC 6030) files. A thin shell over
//! `keyprov-pskc`; both commands stream, so files of any size run in bounded memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keyprov_pskc::{
    Cipher, Hmac, Key, KeyPackage, Limits, Protection, ReadOptions, Reader, RsaPrivateKey,
    RsaPublicKey, Secret, VerifiedSignature, WriteOptions, Writer, values::format_date_time,
    verify_signature,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Read, check and convert PSKC (RFC 6030) key files.
    #[command(subcommand)]
    Pskc(PskcCommand),
}

/// `keyprov pskc …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PskcCommand {
    /// Print the keys of a PSKC file (secrets only with --show-secrets).
    Inspect {
        /// The PSKC file.
        file: PathBuf,
        #[command(flatten)]
        decrypt: DecryptArgs,
        /// One JSON object instead of a human summary.
        #[arg(long)]
        json: bool,
        /// Include the secrets (lowercase hex).
        #[arg(long)]
        show_secrets: bool,
    },
    /// Re-protect a PSKC file, keeping every field.
    Convert {
        /// The PSKC file to read.
        file: PathBuf,
        /// Where to write the new file.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        decrypt: DecryptArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Overwrite the output file when it exists.
        #[arg(long)]
        force: bool,
    },
}

/// How to decrypt the input.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// Pre-shared key, hex.
    #[arg(long, value_name = "HEX", conflicts_with = "key_file")]
    key: Option<String>,
    /// File holding the pre-shared key (hex, or raw bytes when not hex).
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Password for PBKDF2-protected files.
    #[arg(long, value_name = "PW", conflicts_with = "password_file")]
    password: Option<String>,
    /// File whose first line is the password.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// RSA private key (PEM file) for asymmetrically protected files.
    #[arg(long, value_name = "PEM")]
    private_key: Option<PathBuf>,
    /// Accept encrypted values without ValueMAC although the file declares a MACMethod.
    #[arg(long)]
    accept_missing_mac: bool,
    /// Verify the file's XML signature with the signer's certificate or RSA public key
    /// (PEM) before reading; an unsigned file or a signature that does not verify fails.
    #[arg(long, value_name = "PEM")]
    verify_cert: Option<PathBuf>,
}

/// How to protect the output.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .multiple(false)
        .args(["plain", "to_key", "to_key_file", "to_password", "to_cert"])
))]
pub struct TargetArgs {
    /// Write secrets in plain text.
    #[arg(long)]
    plain: bool,
    /// Encrypt with this pre-shared key (hex).
    #[arg(long, value_name = "HEX")]
    to_key: Option<String>,
    /// Encrypt with the pre-shared key in this file.
    #[arg(long, value_name = "PATH")]
    to_key_file: Option<PathBuf>,
    /// Encrypt with a key derived from this password (PBKDF2).
    #[arg(long, value_name = "PW")]
    to_password: Option<String>,
    /// Encrypt for the holder of this certificate or RSA public key (PEM).
    #[arg(long, value_name = "PEM")]
    to_cert: Option<PathBuf>,
    /// PBKDF2 iterations.
    #[arg(long, default_value_t = 100_000, requires = "to_password")]
    iterations: u32,
    /// PBKDF2 pseudo-random function.
    #[arg(long, default_value = "hmac-sha256", requires = "to_password")]
    prf: String,
    /// Value cipher: aes128-cbc, aes192-cbc, aes256-cbc, tripledes-cbc, camellia128-cbc…,
    /// kw-aes128…, kw-tripledes, kw-camellia128…, rsa-1_5, rsa-oaep-mgf1p.
    #[arg(long)]
    cipher: Option<String>,
    /// ValueMAC algorithm: hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512.
    #[arg(long, default_value = "hmac-sha256")]
    mac: String,
    /// Encrypt every Data value (Counter, Time, TimeInterval, TimeDrift), not only the
    /// secret. Many importers read only plain counters.
    #[arg(long, conflicts_with = "plain")]
    encrypt_all: bool,
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Pskc(PskcCommand::Inspect {
            file,
            decrypt,
            json,
            show_secrets,
        }) => {
            let mut options = decrypt.options()?;
            options.metadata_only = !show_secrets && !decrypt.has_key();
            let verified = decrypt.verify(&file)?;
            let locked = options.metadata_only.then(|| Locked::new(&file));
            let shown = Shown {
                json,
                secrets: show_secrets,
                signature: verified.as_ref(),
            };
            inspect(&file, options, shown, locked.as_ref())
                .with_context(|| file.display().to_string())
        }
        Command::Pskc(PskcCommand::Convert {
            file,
            output,
            decrypt,
            target,
            force,
        }) => {
            let options = decrypt.options()?;
            decrypt.verify(&file)?;
            let protection = target.protection()?;
            let write = WriteOptions {
                encrypt_all_data: target.encrypt_all,
            };
            // Errors name the file at fault themselves: the input, or the output.
            convert(&file, &output, options, (&protection, &write), force)
        }
    }
}

impl DecryptArgs {
    /// With `--verify-cert`: checks the XML signature of `file` (RFC 6030 §7).
    fn verify(&self, file: &Path) -> Result<Option<(PathBuf, VerifiedSignature)>> {
        let Some(cert) = &self.verify_cert else {
            return Ok(None);
        };
        let trusted = RsaPublicKey::from_pem(&read_text(cert)?)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", cert.display()))?;
        let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let verified = verify_signature(BufReader::new(input), &trusted, &Limits::default())
            .with_context(|| {
                format!(
                    "{}: signature check with {}",
                    file.display(),
                    cert.display()
                )
            })?;
        tracing::debug!(file = %file.display(), method = %verified.signature_method, "signature verified");
        Ok(Some((cert.clone(), verified)))
    }

    fn has_key(&self) -> bool {
        self.key.is_some()
            || self.key_file.is_some()
            || self.password.is_some()
            || self.password_file.is_some()
            || self.private_key.is_some()
    }

    fn options(&self) -> Result<ReadOptions> {
        let mut options = ReadOptions {
            accept_missing_value_mac: self.accept_missing_mac,
            ..ReadOptions::default()
        };
        options.pre_shared_key = match (&self.key, &self.key_file) {
            (Some(hex), _) => Some(hex_key(hex, "--key")?),
            (None, Some(path)) => Some(key_file(path)?),
            (None, None) => None,
        };
        options.password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(Secret::from_slice(password.as_bytes())),
            (None, Some(path)) => Some(password_file(path)?),
            (None, None) => None,
        };
        if let Some(path) = &self.private_key {
            let pem = Zeroizing::new(read_text(path)?);
            let key = RsaPrivateKey::from_pem(&pem)
                .map_err(|reason| anyhow::anyhow!("{}: {reason}", path.display()))?;
            options.private_key = Some(key);
        }
        Ok(options)
    }
}

impl TargetArgs {
    fn protection(&self) -> Result<Protection> {
        let mac =
            Hmac::from_uri(&self.mac).with_context(|| format!("unknown --mac {}", self.mac))?;
        let cipher = |default: Cipher| -> Result<Cipher> {
            match &self.cipher {
                None => Ok(default),
                Some(name) => {
                    Cipher::from_uri(name).with_context(|| format!("unknown --cipher {name}"))
                }
            }
        };
        if let Some(hex) = &self.to_key {
            let key = hex_key(hex, "--to-key")?;
            let cipher = cipher(default_cipher(key.len()))?;
            return Ok(Protection::PreSharedKey {
                key,
                key_name: None,
                cipher,
                mac,
            });
        }
        if let Some(path) = &self.to_key_file {
            let key = key_file(path)?;
            let cipher = cipher(default_cipher(key.len()))?;
            return Ok(Protection::PreSharedKey {
                key,
                key_name: None,
                cipher,
                mac,
            });
        }
        if let Some(password) = &self.to_password {
            let prf =
                Hmac::from_uri(&self.prf).with_context(|| format!("unknown --prf {}", self.prf))?;
            return Ok(Protection::Password {
                password: Secret::from_slice(password.as_bytes()),
                iterations: self.iterations,
                prf,
                salt: None,
                key_name: None,
                cipher: cipher(Cipher::Aes128Cbc)?,
                mac,
            });
        }
        if let Some(path) = &self.to_cert {
            let key = RsaPublicKey::from_pem(&read_text(path)?)
                .map_err(|reason| anyhow::anyhow!("{}: {reason}", path.display()))?;
            return Ok(Protection::PublicKey {
                key,
                cipher: cipher(Cipher::RsaOaepMgf1p)?,
            });
        }
        if !self.plain {
            bail!(
                "choose the output protection: --plain, --to-key, --to-key-file, --to-password or --to-cert"
            );
        }
        Ok(Protection::Plain)
    }
}

fn default_cipher(key_len: usize) -> Cipher {
    match key_len {
        24 => Cipher::Aes192Cbc,
        32 => Cipher::Aes256Cbc,
        _ => Cipher::Aes128Cbc,
    }
}

fn hex_key(text: &str, flag: &str) -> Result<Secret> {
    Secret::from_hex(text).with_context(|| format!("{flag} must be hexadecimal"))
}

fn key_file(path: &Path) -> Result<Secret> {
    let bytes = Zeroizing::new(std::fs::read(path).with_context(|| path.display().to_string())?);
    let text = std::str::from_utf8(&bytes).ok();
    Ok(text
        .and_then(Secret::from_hex)
        .unwrap_or_else(|| Secret::from_slice(&bytes)))
}

fn password_file(path: &Path) -> Result<Secret> {
    let text = Zeroizing::new(read_text(path)?);
    let line = text.lines().next().unwrap_or_default();
    Ok(Secret::from_slice(line.as_bytes()))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| path.display().to_string())
}

fn open(path: &Path, options: ReadOptions) -> Result<Reader<BufReader<File>>> {
    let file = File::open(path)?;
    Ok(Reader::new(
        BufReader::with_capacity(64 * 1024, file),
        options,
    )?)
}

/// Collects output and passes it to stdout in large chunks, so that a file that fails
/// early prints nothing but the error line (large files stream).
struct Pending {
    buf: Vec<u8>,
}

impl Pending {
    const CHUNK: usize = 1 << 20;

    fn flush_if_full(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= Self::CHUNK {
            self.flush_all()?;
        }
        Ok(())
    }

    fn flush_all(&mut self) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&self.buf)?;
        self.buf.clear();
        stdout.flush()
    }
}

impl Write for Pending {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `inspect` prints: JSON or the human summary, secrets, a verified signature.
struct Shown<'a> {
    json: bool,
    secrets: bool,
    signature: Option<&'a (PathBuf, VerifiedSignature)>,
}

fn inspect(
    path: &Path,
    options: ReadOptions,
    shown: Shown<'_>,
    locked: Option<&Locked>,
) -> Result<()> {
    let Shown {
        json,
        secrets: show_secrets,
        signature,
    } = shown;
    let mut reader = open(path, options)?;
    let mut out = Pending {
        buf: Vec::with_capacity(Pending::CHUNK + 4096),
    };
    let header = reader.header();
    if json {
        let start = json!({"version": header.version, "id": header.id});
        let start = serde_json::to_string(&start)?;
        // Stream: `{"version":…,"id":…,"keys":[ … ]}` with one key object at a time.
        write!(out, "{},\"keys\":[", &start[..start.len() - 1])?;
    } else {
        writeln!(
            out,
            "PSKC version {}, id {}",
            header.version,
            header.id.as_deref().unwrap_or("-")
        )?;
        if let Some((cert, verified)) = signature {
            let method = verified
                .signature_method
                .rsplit(['#', '/'])
                .next()
                .unwrap_or("");
            writeln!(out, "signature verified with {} ({method})", cert.display())?;
        }
    }
    let mut count = 0usize;
    for package in reader.by_ref() {
        let package = package?;
        for key in &package.keys {
            if json {
                let object = key_json(&package, key, show_secrets);
                let separator = if count == 0 { "" } else { "," };
                write!(out, "{separator}{}", serde_json::to_string(&object)?)?;
            } else {
                human(&mut out, &package, key, show_secrets, locked)?;
            }
            count += 1;
        }
        out.flush_if_full()?;
    }
    if json {
        writeln!(out, "]}}")?;
    } else {
        writeln!(out, "{count} key(s)")?;
    }
    out.flush_all()?;
    Ok(())
}

/// RFC 3339 text of an optional date, or null.
macro_rules! date {
    ($value:expr) => {
        $value
            .map(format_date_time)
            .map_or(Value::Null, Value::String)
    };
}

/// The `keys[]` object of `inspect --json` (issue 2 fixes its shape).
fn key_json(package: &KeyPackage, key: &Key, show_secrets: bool) -> Value {
    let device = &package.device_info;
    let params = &key.algorithm_parameters;
    let response = params.response_format.as_ref().map(
        |r| json!({"encoding": r.encoding, "length": r.length, "check_digits": r.check_digits}),
    );
    let challenge = params.challenge_format.as_ref().map(|c| {
        json!({"encoding": c.encoding, "min": c.min, "max": c.max, "check_digits": c.check_digits})
    });
    let policy = &key.policy;
    let pin_policy = policy.pin_policy.as_ref().map(|p| {
        json!({
            "pin_key_id": p.pin_key_id,
            "pin_usage_mode": p.pin_usage_mode,
            "max_failed_attempts": p.max_failed_attempts,
            "min_length": p.min_length,
            "max_length": p.max_length,
            "pin_encoding": p.pin_encoding,
        })
    });
    let key_usage = (!policy.key_usage.is_empty()).then_some(&policy.key_usage);
    let secret = match (&key.data.secret, show_secrets) {
        (Some(secret), true) => Value::String(secret.to_hex().to_string()),
        _ => Value::Null,
    };
    json!({
        "id": key.id,
        "algorithm": key.algorithm,
        "issuer": key.issuer,
        "manufacturer": device.manufacturer,
        "serial": device.serial_no,
        "model": device.model,
        "issue_no": device.issue_no,
        "crypto_module_id": package.crypto_module_id,
        "device_user_id": device.user_id,
        "user_id": key.user_id,
        "friendly_name": key.friendly_name,
        "key_profile_id": key.key_profile_id,
        "key_reference": key.key_reference,
        "suite": key.suite(),
        "response_format": response,
        "challenge_format": challenge,
        "secret": secret,
        "counter": key.data.counter,
        "time": key.data.time,
        "time_interval": key.data.time_interval,
        "time_drift": key.data.time_drift,
        "policy": {
            "start_date": date!(policy.start_date),
            "expiry_date": date!(policy.expiry_date),
            "key_usage": key_usage,
            "number_of_transactions": policy.number_of_transactions,
            "pin_policy": pin_policy,
            "usable": policy.may_use_now(),
        },
    })
}

/// One key of the human summary.
fn human(
    out: &mut impl Write,
    package: &KeyPackage,
    key: &Key,
    show_secrets: bool,
    locked: Option<&Locked>,
) -> Result<()> {
    let device = &package.device_info;
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
    writeln!(out, "key {}", or_dash(key.id.as_deref()))?;
    writeln!(out, "  algorithm:    {}", or_dash(key.algorithm.as_deref()))?;
    let line = |label: &str, value: Option<String>| match value {
        Some(value) => format!("  {label:<13} {value}\n"),
        None => String::new(),
    };
    let response = key.algorithm_parameters.response_format.as_ref();
    let text = [
        line("issuer:", key.issuer.clone()),
        line("manufacturer:", device.manufacturer.clone()),
        line("serial:", device.serial_no.clone()),
        line("model:", device.model.clone()),
        line("suite:", key.suite().map(str::to_owned)),
        line(
            "response:",
            response.map(|r| {
                format!(
                    "{} x{}",
                    r.encoding.as_deref().unwrap_or("?"),
                    r.length.unwrap_or(0)
                )
            }),
        ),
        line("counter:", key.data.counter.map(|v| v.to_string())),
        line("time:", key.data.time.map(|v| v.to_string())),
        line("interval:", key.data.time_interval.map(|v| v.to_string())),
        line("drift:", key.data.time_drift.map(|v| v.to_string())),
        line("not before:", key.policy.start_date.map(format_date_time)),
        line("not after:", key.policy.expiry_date.map(format_date_time)),
    ]
    .concat();
    write!(out, "{text}")?;
    let secret = match (&key.data.secret, show_secrets) {
        (Some(secret), true) => secret.to_hex().to_string(),
        (Some(secret), false) => format!("({} bytes, hidden)", secret.len()),
        (None, _) if locked.is_some_and(Locked::encrypted) => {
            "encrypted (give --key/--password/--private-key to decrypt)".to_owned()
        }
        (None, _) => "-".to_owned(),
    };
    writeln!(out, "  secret:       {secret}")?;
    if !key.policy.may_use_now() {
        writeln!(out, "  usable:       no (policy)")?;
    }
    Ok(())
}

/// Inspecting without a key: whether the file holds encrypted values, looked up (once, on
/// the first key without a secret) by scanning the file for `EncryptedValue`.
struct Locked {
    path: PathBuf,
    encrypted: std::sync::OnceLock<bool>,
}

impl Locked {
    fn new(path: &Path) -> Self {
        Locked {
            path: path.to_path_buf(),
            encrypted: std::sync::OnceLock::new(),
        }
    }

    fn encrypted(&self) -> bool {
        *self
            .encrypted
            .get_or_init(|| contains(&self.path, b"EncryptedValue").unwrap_or(false))
    }
}

/// Whether the file holds `needle`, read in chunks (the file may be large).
fn contains(path: &Path, needle: &[u8]) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut window = Vec::with_capacity(64 * 1024 + needle.len());
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        window.extend_from_slice(&chunk[..n]);
        if window.windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        let keep = window.len().saturating_sub(needle.len() - 1);
        window.drain(..keep);
    }
}

/// Streams `input` into `output` under `protection`. The output is created 0600 (it may hold
/// secrets in the clear) and only when it does not exist, unless `force`; a partial output is
/// removed on error.
fn convert(
    input: &Path,
    output: &Path,
    options: ReadOptions,
    protection: (&Protection, &WriteOptions),
    force: bool,
) -> Result<()> {
    refuse_same_file(input, output)?;
    let special = std::fs::metadata(output).is_ok_and(|m| !m.is_file());
    if special {
        // A device or FIFO cannot be replaced by a rename; write in place, never remove it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(output)
            .with_context(|| format!("opening {}", output.display()))?;
        return convert_stream(input, file, output, options, protection);
    }
    if !force && std::fs::symlink_metadata(output).is_ok() {
        bail!("{} exists; give --force to overwrite it", output.display());
    }
    let temp = temp_sibling(output);
    let file = create_private(&temp, false)?;
    let result = convert_stream(input, file, output, options, protection)
        .and_then(|()| place(&temp, output, force));
    if result.is_err() {
        // Only the temporary file is ours; an existing output is left as it was.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Refuses `-o` naming the input itself (same file, by device and inode).
fn refuse_same_file(input: &Path, output: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(());
    };
    if a.dev() == b.dev() && a.ino() == b.ino() {
        bail!(
            "output {} is the input file; write to another path",
            output.display()
        );
    }
    Ok(())
}

/// `.NAME.PID.tmp` next to `path`, so that the final rename stays on one file system.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Moves the finished temporary file into place: a rename with `force`, else a hard link
/// (which fails rather than replace a file created meanwhile) and the temporary removed.
fn place(temp: &Path, output: &Path, force: bool) -> Result<()> {
    let placed = if force {
        std::fs::rename(temp, output)
    } else {
        std::fs::hard_link(temp, output).and_then(|()| std::fs::remove_file(temp))
    };
    placed.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists; give --force to overwrite it", output.display())
        }
        _ => anyhow::Error::new(e).context(format!("writing {}", output.display())),
    })
}

fn create_private(path: &Path, force: bool) -> Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut open = std::fs::OpenOptions::new();
    open.write(true).mode(0o600);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let file = open.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists; give --force to overwrite it", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("creating {}", path.display())),
    })?;
    // An overwritten file keeps its old mode; it may now hold plaintext secrets.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", path.display()))?;
    Ok(file)
}

fn convert_stream(
    input: &Path,
    file: File,
    output: &Path,
    options: ReadOptions,
    (protection, write): (&Protection, &WriteOptions),
) -> Result<()> {
    let mut reader = open(input, options).with_context(|| input.display().to_string())?;
    let out = BufWriter::new(file);
    let mut writer = Writer::with_options(out, reader.header(), protection, write)?;
    let mut count = 0usize;
    let written = || format!("writing {}", output.display());
    for package in reader.by_ref() {
        let package = package.with_context(|| input.display().to_string())?;
        writer.write_package(&package).with_context(written)?;
        count += 1;
    }
    writer.set_container_extensions(reader.header().extensions.clone());
    let mut out = writer.finish().with_context(written)?;
    out.flush().with_context(written)?;
    tracing::info!(packages = count, output = %output.display(), "converted");
    Ok(())
}
