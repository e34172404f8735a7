//! `keyprov serve`, `keyprov ac issue`, `keyprov server export` and `keyprov dskpp provision`:
//! the DSKPP (RFC 6063) server, its operator commands and the software-token client. Thin
//! shells over `keyprov-dskpp`; the HTTP binding lives in [`http`], the client transport in
//! [`transport`].

mod http;
mod transport;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keyprov_dskpp::ac;
use keyprov_dskpp::client::{self, ClientConfig, DeviceKey, Variant};
use keyprov_dskpp::messages::{AuthenticationData, Message, Status, Trigger};
use keyprov_dskpp::package::{self, KeyMeta};
use keyprov_dskpp::store::{AcRecord, KeyType, SharedKey, SqliteStore, Store, now};
use keyprov_dskpp::{Prf, Secret, uri};
use keyprov_pskc::{Cipher, Hmac, KeyContainer, Protection};
use zeroize::Zeroizing;

/// Default database of `keyprov serve` and the operator commands.
const DEFAULT_DB: &str = "keyprov-server.db";

/// Commands of this group.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the DSKPP server (RFC 6063 HTTP binding).
    Serve(ServeArgs),
    /// Authentication codes for DSKPP clients.
    #[command(subcommand)]
    Ac(AcCommand),
    /// Operate on the DSKPP server's database.
    #[command(subcommand)]
    Server(ServerCommand),
    /// DSKPP client commands.
    #[command(subcommand)]
    Dskpp(DskppCommand),
}

/// `keyprov serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8443 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Server database (SQLite); its master key is `<db>.key`.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
    db: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// URL clients use to reach this server (URL_S of the AD MAC; also the ServerID).
    /// Repeatable; default `http[s]://<listen address>/dskpp`.
    #[arg(long, value_name = "URL")]
    url: Vec<String>,
}

/// `keyprov ac …`.
#[derive(Debug, clap::Subcommand)]
pub enum AcCommand {
    /// Create a one-time authentication code for a client; prints `AC=<code>` first.
    Issue {
        /// Server database.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
        db: PathBuf,
        /// The client's identifier (hex is kept, anything else is SASLprep-ed and hex encoded).
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// How long the code is valid: a number with s, m, h or d.
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        expires: String,
        /// Also create a pre-shared device key K_SHARED and print `SHARED_KEY=<hex>`.
        #[arg(long)]
        shared_key: bool,
        /// Also print a KeyProvTrigger document for the client.
        #[arg(long)]
        trigger: bool,
        /// ServerUrl to put in the trigger.
        #[arg(long, value_name = "URL", requires = "trigger")]
        server_url: Option<String>,
    },
}

/// `keyprov server …`.
#[derive(Debug, clap::Subcommand)]
pub enum ServerCommand {
    /// Write the keys the server issued as PSKC (for a validation server).
    Export {
        /// Server database.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
        db: PathBuf,
        /// Output PSKC file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        protection: ProtectionArgs,
    },
}

/// `keyprov dskpp …`.
#[derive(Debug, clap::Subcommand)]
pub enum DskppCommand {
    /// Obtain a key from a DSKPP server as a software token and store it as PSKC.
    Provision {
        /// The DSKPP server URL (used verbatim as URL_S).
        #[arg(long, value_name = "URL")]
        server: String,
        /// The authentication code.
        #[arg(long, value_name = "CODE")]
        ac: String,
        /// Protocol variant.
        #[arg(long, value_enum, default_value = "four-pass")]
        variant: CliVariant,
        /// Pre-shared device key K_SHARED (hex).
        #[arg(long, value_name = "HEX")]
        shared_key: Option<String>,
        /// Key type.
        #[arg(long, value_enum, default_value = "hotp")]
        key_type: CliKeyType,
        /// A KeyProvTrigger document (from `keyprov ac issue --trigger`) that starts this run.
        #[arg(long, value_name = "FILE")]
        trigger: Option<PathBuf>,
        /// Output PSKC file.
        #[arg(short, long, value_name = "KEY.pskcxml")]
        output: PathBuf,
        #[command(flatten)]
        protection: ProtectionArgs,
    },
}

/// `--variant` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CliVariant {
    /// 4-pass key agreement.
    FourPass,
    /// 2-pass key wrap (needs --shared-key).
    TwoPassWrap,
    /// 2-pass key transport to a fresh RSA key.
    TwoPassTransport,
    /// 2-pass passphrase-based key wrap.
    TwoPassPassphrase,
}

/// `--key-type` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CliKeyType {
    /// HOTP (RFC 4226).
    Hotp,
    /// TOTP (RFC 6238).
    Totp,
}

/// How a written PSKC file is protected.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ProtectionArgs {
    /// Encrypt with a key derived from this password (PBKDF2-HMAC-SHA256, AES-128-CBC).
    #[arg(long, value_name = "PW")]
    password: Option<String>,
    /// Encrypt with this pre-shared key (hex; 16, 24 or 32 octets, AES-CBC + HMAC-SHA256).
    #[arg(long, value_name = "HEX")]
    key: Option<String>,
}

impl ProtectionArgs {
    fn protection(&self) -> Result<Protection> {
        let secret = |b: &[u8]| keyprov_pskc::Secret::from_slice(b);
        if let Some(pw) = &self.password {
            return Ok(Protection::Password {
                password: secret(pw.as_bytes()),
                iterations: 100_000,
                prf: Hmac::Sha256,
                salt: None,
                key_name: None,
                cipher: Cipher::Aes128Cbc,
                mac: Hmac::Sha256,
            });
        }
        let hex_key = self
            .key
            .as_deref()
            .context("--password or --key is required")?;
        let key = Zeroizing::new(hex::decode(hex_key.trim()).context("--key is not hex")?);
        let cipher = match key.len() {
            16 => Cipher::Aes128Cbc,
            24 => Cipher::Aes192Cbc,
            32 => Cipher::Aes256Cbc,
            n => bail!("--key has {n} octets; AES needs 16, 24 or 32"),
        };
        Ok(Protection::PreSharedKey {
            key: secret(&key),
            key_name: None,
            cipher,
            mac: Hmac::Sha256,
        })
    }
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Serve(args) => http::serve(args),
        Command::Ac(AcCommand::Issue {
            db,
            client_id,
            expires,
            shared_key,
            trigger,
            server_url,
        }) => {
            let request = IssueRequest {
                client_id,
                expires,
                shared_key,
                trigger,
                server_url,
            };
            issue(&db, &request).with_context(|| db.display().to_string())
        }
        Command::Server(ServerCommand::Export {
            db,
            output,
            protection,
        }) => export(&db, &output, &protection.protection()?)
            .with_context(|| format!("exporting {} to {}", db.display(), output.display())),
        Command::Dskpp(DskppCommand::Provision {
            server,
            ac,
            variant,
            shared_key,
            key_type,
            trigger,
            output,
            protection,
        }) => {
            let request = ProvisionRequest {
                server,
                ac,
                variant,
                shared_key,
                key_type,
                trigger,
            };
            provision(&request, &output, &protection.protection()?)
        }
    }
}

fn open_store(db: &Path) -> Result<SqliteStore> {
    SqliteStore::open_with_key_file(db, None).context("opening the DSKPP server database")
}

/// Parses `30s`, `15m`, `24h`, `7d` into seconds.
fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits
        .parse()
        .with_context(|| format!("--expires {text:?} has no number"))?;
    let factor = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => bail!("--expires unit {other:?} is not s, m, h or d"),
    };
    Ok(n * factor)
}

struct IssueRequest {
    client_id: String,
    expires: String,
    shared_key: bool,
    trigger: bool,
    server_url: Option<String>,
}

fn issue(db: &Path, r: &IssueRequest) -> Result<()> {
    let ttl = parse_duration(&r.expires)?;
    let store = open_store(db)?;
    let password = Zeroizing::new(hex::encode_upper(keyprov_dskpp::random::bytes(8)));
    let code = ac::encode(&r.client_id, &password, false).context("building the code")?;
    // The ClientID as the protocol carries it: the TLV value string.
    let client_id = ac::parse(&code).context("re-reading the code")?.client_id;
    store.put_authentication_code(&AcRecord {
        client_id: client_id.clone(),
        password: Secret::from_slice(password.as_bytes()),
        expires: now() + ttl,
        used: false,
        failures: 0,
    })?;
    println!("AC={}", code.as_str());
    if r.shared_key {
        let secret = Secret::random(16);
        let name = format!("K_SHARED:{client_id}");
        store.put_shared_key(
            &client_id,
            &SharedKey {
                name,
                secret: secret.clone(),
            },
        )?;
        println!("SHARED_KEY={}", hex::encode(secret.expose()));
    }
    if r.trigger {
        let trigger = Trigger {
            version: Some(uri::VERSION.into()),
            device_id: None,
            key_id: None,
            token_platform: None,
            auth: AuthenticationData {
                client_id: Some(client_id),
                ..Default::default()
            },
            server_url: r.server_url.clone(),
        };
        let xml = Message::Trigger(trigger).to_bytes();
        println!("{}", String::from_utf8_lossy(&xml));
    }
    Ok(())
}

fn export(db: &Path, output: &Path, protection: &Protection) -> Result<()> {
    let store = open_store(db)?;
    let mut container = KeyContainer::new();
    for issued in store.issued_keys()? {
        let meta = KeyMeta {
            key_id: issued.key_id.clone(),
            key_type: issued.key_type,
            digits: issued.digits,
            counter: issued.counter,
            time_step: issued.time_step,
            issuer: issued.server_id.clone(),
        };
        let mut key = package::pskc_key(&meta, Some(&issued.secret));
        key.user_id = Some(issued.client_id.clone());
        let mut one = package::container(key);
        container.key_packages.append(&mut one.key_packages);
    }
    let count = container.key_packages.len();
    let xml = keyprov_pskc::write(&container, protection).context("writing PSKC")?;
    write_private(output, &xml)?;
    eprintln!("exported {count} keys to {}", output.display());
    Ok(())
}

/// Writes a file readable by its owner only (it holds key material, even if encrypted).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

struct ProvisionRequest {
    server: String,
    ac: String,
    variant: CliVariant,
    shared_key: Option<String>,
    key_type: CliKeyType,
    trigger: Option<PathBuf>,
}

/// A failed client run as the operator reads it: the cause, plus what to check when the
/// server refused the authentication code.
fn run_error(e: client::ClientError, server: &str) -> anyhow::Error {
    let hint = match &e {
        client::ClientError::Status(Status::AuthenticationDataInvalid) => {
            " (the AC may be used up or wrong, or the URL differs from one the server accepts \
             (see `keyprov serve --url`))"
        }
        _ => "",
    };
    anyhow::anyhow!("DSKPP run against {server}: {e}{hint}")
}

fn provision(r: &ProvisionRequest, output: &Path, protection: &Protection) -> Result<()> {
    let variant = match r.variant {
        CliVariant::FourPass => Variant::FourPass,
        CliVariant::TwoPassWrap => Variant::TwoPassWrap,
        CliVariant::TwoPassTransport => Variant::TwoPassTransport,
        CliVariant::TwoPassPassphrase => Variant::TwoPassPassphrase,
    };
    let mut config = ClientConfig::new(&r.server, variant);
    config.key_type = match r.key_type {
        CliKeyType::Hotp => KeyType::Hotp,
        CliKeyType::Totp => KeyType::Totp,
    };
    config.prfs = vec![Prf::Sha256, Prf::Aes128];
    config.ac = Some(ac::parse(&r.ac).context("--ac")?);
    if let Some(hex_key) = &r.shared_key {
        let bytes = Zeroizing::new(hex::decode(hex_key.trim()).context("--shared-key is not hex")?);
        config.device_key = Some(DeviceKey {
            name: None,
            secret: Secret::from_slice(&bytes),
        });
    }
    if let Some(path) = &r.trigger {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match Message::parse(&bytes).with_context(|| format!("parsing {}", path.display()))? {
            Message::Trigger(t) => config.trigger = Some(t),
            _ => bail!("{} is not a KeyProvTrigger", path.display()),
        }
    }
    // The AC is good for one run: make sure the key can be written before spending it.
    let temp = output.with_file_name(format!(
        ".{}.{}.tmp",
        output.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    write_private(&temp, b"")?;
    let result = run_and_write(&config, r, &temp, protection).and_then(|key_id| {
        std::fs::rename(&temp, output).with_context(|| format!("writing {}", output.display()))?;
        Ok(key_id)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    println!("KEY_ID={}", result?);
    Ok(())
}

/// Runs the protocol and writes the key to `temp`; returns the key id.
fn run_and_write(
    config: &ClientConfig,
    r: &ProvisionRequest,
    temp: &Path,
    protection: &Protection,
) -> Result<String> {
    let mut transport = transport::HttpTransport::new(&r.server)?;
    let key = client::provision(config, &mut transport).map_err(|e| run_error(e, &r.server))?;
    let xml = keyprov_pskc::write(&package::container(key.pskc.clone()), protection)
        .context("writing PSKC")?;
    write_private(temp, &xml)?;
    Ok(key.key_id.to_string())
}
