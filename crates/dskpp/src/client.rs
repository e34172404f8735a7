//! The DSKPP client (RFC 6063 §§4.2, 5.2) driven through a [`Transport`]: HTTP in the
//! `keyprov` binary, or a direct call into a [`Server`] for the station's local mode.
//!
//! A run returns a [`ProvisionedKey`] only after the final MAC verified; nothing is handed to
//! the caller before, and every secret of a failed run (R_C, K_PROV, K_MAC, K_AC, the
//! transport key) is a zeroizing value dropped on the error path.

use keyprov_pskc::ReadOptions;
use rsa::traits::PublicKeyParts;

use crate::ac::AuthenticationCode;
use crate::auth::{self, AdInput};
use crate::keys;
use crate::messages::{
    AuthenticationData, AuthenticationMac, ClientHello, ClientNonce, Extension, ExtensionKind,
    KeyInfo, KeyProtection, Mac, Message, Payload, ProtocolVariants, ServerFinished, ServerHello,
    Status, Trigger,
};
use crate::package::{self, PackageError};
use crate::prf::Prf;
use crate::secret::Secret;
use crate::server::{MIN_NONCE_LEN, Server};
use crate::store::KeyType;
use crate::uri;

mod four_pass;
mod two_pass;

use four_pass::four_pass;
use two_pass::two_pass;

/// The HTTP status and body the server answered.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// HTTP status code.
    pub http_status: u16,
    /// Response body.
    pub body: Vec<u8>,
}

/// A transport failure (connection, TLS, timeout).
#[derive(Debug, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

/// Sends one DSKPP request and returns the server's answer.
pub trait Transport {
    /// POSTs `request` and returns the response.
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError>;
}

/// The in-process transport: the same server core, no HTTP.
#[derive(Debug)]
pub struct LocalTransport<'a> {
    /// The server core.
    pub server: &'a Server,
}

impl Transport for LocalTransport<'_> {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let r = self.server.handle(request);
        Ok(Exchange {
            http_status: r.http_status,
            body: r.body,
        })
    }
}

/// Which protocol variant and key protection the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 4-pass key agreement.
    FourPass,
    /// 2-pass, key wrap with K_SHARED.
    TwoPassWrap,
    /// 2-pass, key transport to a fresh client RSA key.
    TwoPassTransport,
    /// 2-pass, passphrase-based key wrap with the AC password.
    TwoPassPassphrase,
}

/// A pre-shared device key on the client side.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    /// Its `ds:KeyName`, if known.
    pub name: Option<String>,
    /// K_SHARED.
    pub secret: Secret,
}

/// What the client needs to renew a key: its KeyID and K_MAC'.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// The DSKPP KeyID octets.
    pub key_id: Vec<u8>,
    /// K_MAC' of the run that delivered that key.
    pub k_mac: Secret,
    /// The PRF of that run.
    pub prf: Prf,
}

/// How to run the protocol.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// URL_S: the server URL exactly as used to reach it.
    pub url_s: String,
    /// Variant.
    pub variant: Variant,
    /// Key type requested.
    pub key_type: KeyType,
    /// MAC algorithms in preference order.
    pub prfs: Vec<Prf>,
    /// The Authentication Code.
    pub ac: Option<AuthenticationCode>,
    /// K_SHARED.
    pub device_key: Option<DeviceKey>,
    /// Renew this key instead of creating a new one.
    pub renewal: Option<Renewal>,
    /// A trigger that started this run.
    pub trigger: Option<Trigger>,
    /// Opaque ClientInfo extension data, checked to come back unchanged.
    pub client_info: Option<Vec<u8>>,
    /// PBKDF2 iterations of the AD when K is public (≥ 100,000).
    pub public_iterations: u32,
    /// Offer PKCS#1 v1.5 besides OAEP.
    pub allow_rsa_1_5: bool,
}

impl ClientConfig {
    /// Defaults: HOTP, prf-sha256 then prf-aes-128, 100,000 iterations, OAEP and v1.5.
    pub fn new(url_s: &str, variant: Variant) -> ClientConfig {
        ClientConfig {
            url_s: url_s.into(),
            variant,
            key_type: KeyType::Hotp,
            prfs: vec![Prf::Sha256, Prf::Aes128],
            ac: None,
            device_key: None,
            renewal: None,
            trigger: None,
            client_info: None,
            public_iterations: auth::MIN_ITERATIONS_PUBLIC_K,
            allow_rsa_1_5: true,
        }
    }
}

/// The key a successful run delivered.
#[derive(Debug, Clone)]
pub struct ProvisionedKey {
    /// PSKC `Key/@Id` (hex of the KeyID octets).
    pub key_id: String,
    /// The key type.
    pub key_type: KeyType,
    /// K_TOKEN: the OTP key.
    pub secret: Secret,
    /// K_MAC, needed to authorise a later renewal.
    pub k_mac: Secret,
    /// The PRF of the run.
    pub prf: Prf,
    /// ServerID of the key package.
    pub server_id: String,
    /// The PSKC key from the package, its secret set to K_TOKEN.
    pub pskc: keyprov_pskc::Key,
}

/// Why a run failed, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The caller's configuration cannot work (missing AC, K_SHARED…).
    #[error("client configuration: {0}")]
    Config(&'static str),
    /// The server could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with an HTTP error.
    #[error("server answered HTTP {0}")]
    Http(u16),
    /// The server ended the run with a DSKPP status.
    #[error("server ended the run with status {0}")]
    Status(Status),
    /// The server's message is malformed or does not fit the run.
    #[error("server message is unacceptable: {0}")]
    Protocol(String),
    /// A MAC from the server did not verify: nothing was committed.
    #[error("{0} MAC from the server does not verify; nothing was stored")]
    Mac(&'static str),
    /// The key package could not be opened.
    #[error(transparent)]
    Package(#[from] PackageError),
}

fn protocol(msg: impl Into<String>) -> ClientError {
    ClientError::Protocol(msg.into())
}

/// Runs DSKPP to completion.
pub fn provision(
    config: &ClientConfig,
    transport: &mut dyn Transport,
) -> Result<ProvisionedKey, ClientError> {
    if config.prfs.is_empty() {
        return Err(ClientError::Config("no MAC algorithm offered"));
    }
    let result = match config.variant {
        Variant::FourPass => four_pass(config, transport),
        _ => two_pass(config, transport),
    };
    if let Err(e) = &result {
        tracing::debug!(error = %e, "DSKPP run failed; its secrets are dropped");
    }
    result
}

fn client_id(config: &ClientConfig) -> Option<String> {
    config.ac.as_ref().map(|a| a.client_id.clone()).or_else(|| {
        config
            .trigger
            .as_ref()
            .and_then(|t| t.auth.client_id.clone())
    })
}

fn key_id(config: &ClientConfig) -> Option<Vec<u8>> {
    config
        .renewal
        .as_ref()
        .map(|r| r.key_id.clone())
        .or_else(|| config.trigger.as_ref().and_then(|t| t.key_id.clone()))
}

fn extensions(config: &ClientConfig) -> Vec<Extension> {
    config
        .client_info
        .iter()
        .map(|d| Extension {
            critical: false,
            kind: ExtensionKind::ClientInfo(d.clone()),
        })
        .collect()
}

fn hello_base(config: &ClientConfig, encryption: Vec<&str>) -> ClientHello {
    ClientHello {
        version: uri::VERSION.into(),
        // A trigger's DeviceID must be echoed (§3.4.3); the server decides whether it issued it.
        device_id: config.trigger.as_ref().and_then(|t| t.device_id.clone()),
        key_id: key_id(config),
        client_nonce: None,
        key_types: vec![config.key_type.uri().into()],
        encryption_algorithms: encryption.into_iter().map(str::to_string).collect(),
        mac_algorithms: config.prfs.iter().map(|p| p.uri().to_string()).collect(),
        variants: None,
        key_packages: Some(vec![uri::PACKAGE_PSKC.into()]),
        auth: None,
        extensions: extensions(config),
    }
}

/// Sends `message`, returns the exact response octets after the HTTP checks.
fn send(transport: &mut dyn Transport, request: &[u8]) -> Result<Vec<u8>, ClientError> {
    let response = transport.exchange(request)?;
    if response.http_status != 200 {
        return Err(ClientError::Http(response.http_status));
    }
    Ok(response.body)
}

fn check_client_info(config: &ClientConfig, exts: &[Extension]) -> Result<(), ClientError> {
    if let Some(sent) = &config.client_info {
        let back = exts
            .iter()
            .any(|e| e.kind == ExtensionKind::ClientInfo(sent.clone()));
        if !back {
            return Err(protocol("ClientInfo extension was not echoed unchanged"));
        }
    }
    if exts
        .iter()
        .any(|e| e.critical && matches!(e.kind, ExtensionKind::Unknown(_)))
    {
        return Err(protocol("unknown critical extension"));
    }
    Ok(())
}

fn finished(body: &[u8]) -> Result<ServerFinished, ClientError> {
    match Message::parse(body).map_err(|e| protocol(e.to_string()))? {
        Message::ServerFinished(f) if f.status == Status::Success => Ok(f),
        Message::ServerFinished(f) => Err(ClientError::Status(f.status)),
        Message::ServerHello(h) if h.status != Status::Continue => {
            Err(ClientError::Status(h.status))
        }
        _ => Err(protocol("expected KeyProvServerFinished")),
    }
}

fn mac_prf(mac: &Mac, offered: &[Prf]) -> Result<Prf, ClientError> {
    let uri = mac
        .algorithm
        .as_deref()
        .ok_or_else(|| protocol("Mac without MacAlgorithm"))?;
    Prf::from_uri(uri)
        .filter(|p| offered.contains(p))
        .ok_or_else(|| protocol("MacAlgorithm not offered"))
}

fn ad(
    config: &ClientConfig,
    prf: Prf,
    k: &[u8],
    iterations: u32,
    r_c: &[u8],
    r_s: Option<&[u8]>,
) -> Result<Option<AuthenticationData>, ClientError> {
    let Some(ac) = &config.ac else {
        return Ok(None);
    };
    let k_ac = auth::k_ac(ac.password.expose(), r_c, k, iterations);
    let input = AdInput {
        client_id: &ac.client_id,
        url_s: &config.url_s,
        r_c,
        r_s,
    };
    let mac = auth::ad_mac(prf, &k_ac, &input).map_err(|_| ClientError::Config("AD MAC"))?;
    Ok(Some(AuthenticationData {
        client_id: Some(ac.client_id.clone()),
        code_mac: Some(AuthenticationMac {
            nonce: None,
            iteration_count: Some(iterations),
            mac: Mac {
                algorithm: Some(prf.uri().into()),
                value: mac.expose().to_vec(),
            },
        }),
        other: None,
    }))
}

fn accept(
    config: &ClientConfig,
    mut pskc: keyprov_pskc::Key,
    split: keys::ProvisioningKeys,
    prf: Prf,
    server_id: String,
) -> Result<ProvisionedKey, ClientError> {
    if pskc.algorithm.as_deref() != Some(config.key_type.uri()) {
        return Err(protocol("key package holds another key type"));
    }
    let key_id = pskc
        .id
        .clone()
        .ok_or_else(|| protocol("key package key has no Id"))?;
    pskc.data.secret = Some(keyprov_pskc::Secret::from_slice(split.k_token.expose()));
    Ok(ProvisionedKey {
        key_id,
        key_type: config.key_type,
        secret: split.k_token.clone(),
        k_mac: split.k_mac.clone(),
        prf,
        server_id,
        pskc,
    })
}

#[cfg(test)]
mod tests;
