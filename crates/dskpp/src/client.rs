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

// ---- 4-pass ------------------------------------------------------------------------------

fn four_pass(
    config: &ClientConfig,
    transport: &mut dyn Transport,
) -> Result<ProvisionedKey, ClientError> {
    // 1. ClientHello: the SAL, the ClientID (or the trigger's AD) so the server finds K_SHARED.
    let mut encryption = Vec::new();
    if config.device_key.is_some() {
        encryption.extend([uri::PRF_SHA256, uri::PRF_AES_128]);
    }
    encryption.push(uri::RSA_OAEP);
    if config.allow_rsa_1_5 {
        encryption.push(uri::RSA_1_5);
    }
    let mut hello = hello_base(config, encryption);
    hello.variants = Some(ProtocolVariants {
        four_pass: true,
        ..Default::default()
    });
    hello.auth = match (&config.trigger, client_id(config)) {
        (Some(t), _) => Some(t.auth.clone()),
        (None, Some(id)) => Some(AuthenticationData {
            client_id: Some(id),
            ..Default::default()
        }),
        (None, None) => None,
    };
    let hello_bytes = Message::ClientHello(hello.clone()).to_bytes();
    let sh_bytes = send(transport, &hello_bytes)?;

    // 2. ServerHello: every choice must be one we offered.
    let sh = match Message::parse(&sh_bytes).map_err(|e| protocol(e.to_string()))? {
        Message::ServerHello(sh) if sh.status == Status::Continue => sh,
        Message::ServerHello(sh) => return Err(ClientError::Status(sh.status)),
        Message::ServerFinished(f) => return Err(ClientError::Status(f.status)),
        _ => return Err(protocol("expected KeyProvServerHello")),
    };
    let chosen = ServerChoice::check(&sh, &hello)?;
    check_client_info(config, &sh.extensions)?;
    if let Some(renewal) = &config.renewal {
        let mac = sh.mac.as_ref().ok_or(ClientError::Mac("renewal"))?;
        let expected = keys::four_pass_renewal_mac(renewal.prf, &renewal.k_mac, None, &chosen.r_s)
            .map_err(|_| ClientError::Mac("renewal"))?;
        if !expected.ct_eq(&mac.value) {
            return Err(ClientError::Mac("renewal"));
        }
    }

    // 3. ClientNonce: R_C encrypted under K; AD bound to R_C and R_S.
    let r_c = Secret::random(if chosen.prf == Prf::Aes128 { 16 } else { 32 });
    let (encrypted, k, k_secret) = encrypt_nonce(config, &chosen, &r_c)?;
    let iterations = if k_secret {
        1
    } else {
        config.public_iterations
    };
    let auth = ad(
        config,
        chosen.prf,
        k.expose(),
        iterations,
        r_c.expose(),
        Some(&chosen.r_s),
    )?;
    let server_info = sh
        .extensions
        .iter()
        .filter(|e| matches!(e.kind, ExtensionKind::ServerInfo(_)))
        .cloned();
    let nonce = ClientNonce {
        version: uri::VERSION.into(),
        session_id: chosen.session_id.clone(),
        encrypted_nonce: encrypted,
        auth,
        extensions: extensions(config).into_iter().chain(server_info).collect(),
    };
    let nonce_bytes = Message::ClientNonce(nonce).to_bytes();
    let sf_bytes = send(transport, &nonce_bytes)?;

    // 4. ServerFinished: derive K_PROV, verify the MAC over the transcript, then accept.
    let sf = finished(&sf_bytes)?;
    if sf.session_id.as_deref() != Some(chosen.session_id.as_str()) {
        return Err(protocol("SessionID of ServerFinished differs"));
    }
    check_client_info(config, &sf.extensions)?;
    let k_prov = keys::four_pass_k_prov(
        chosen.prf,
        &r_c,
        k.expose(),
        &chosen.r_s,
        config.key_type.token_len(),
    )
    .map_err(|e| protocol(e.to_string()))?;
    let split = keys::split(chosen.prf, &k_prov, config.key_type.token_len())
        .ok_or_else(|| protocol("K_PROV length"))?;
    let mac = sf
        .mac
        .as_ref()
        .ok_or(ClientError::Mac("key confirmation"))?;
    let hash = keys::msg_hash(&[&hello_bytes, &sh_bytes, &nonce_bytes]);
    let expected = keys::four_pass_mac(chosen.prf, &split.k_mac, &hash)
        .map_err(|e| protocol(e.to_string()))?;
    if !expected.ct_eq(&mac.value) {
        return Err(ClientError::Mac("key confirmation"));
    }
    let package = sf
        .key_package
        .as_ref()
        .ok_or_else(|| protocol("no KeyPackage"))?;
    let container_el = package
        .key_container
        .as_ref()
        .ok_or_else(|| protocol("no KeyContainer"))?;
    let container = package::open(container_el, &ReadOptions::default())?;
    let pskc = package::single_key(&container)?.clone();
    accept(
        config,
        pskc,
        split,
        chosen.prf,
        package.server_id.clone().unwrap_or_default(),
    )
}

/// The server's choices from a ServerHello, checked against what was offered.
struct ServerChoice {
    session_id: String,
    prf: Prf,
    encryption: String,
    key: KeyInfo,
    r_s: Vec<u8>,
}

impl ServerChoice {
    fn check(sh: &ServerHello, hello: &ClientHello) -> Result<ServerChoice, ClientError> {
        let session_id = sh
            .session_id
            .clone()
            .ok_or_else(|| protocol("no SessionID"))?;
        let offered = |v: &Option<String>, list: &[String], what: &str| match v {
            Some(v) if list.contains(v) => Ok(v.clone()),
            _ => Err(protocol(format!("{what} was not offered"))),
        };
        offered(&sh.key_type, &hello.key_types, "KeyType")?;
        let mac = offered(&sh.mac_algorithm, &hello.mac_algorithms, "MacAlgorithm")?;
        let encryption = offered(
            &sh.encryption_algorithm,
            &hello.encryption_algorithms,
            "EncryptionAlgorithm",
        )?;
        if sh.key_package_format.as_deref() != Some(uri::PACKAGE_PSKC) {
            return Err(protocol("KeyPackageFormat is not PSKC"));
        }
        let r_s = match &sh.payload {
            Some(Payload::Nonce(n)) if n.len() >= MIN_NONCE_LEN => n.clone(),
            _ => return Err(protocol("no R_S of at least 16 octets")),
        };
        Ok(ServerChoice {
            session_id,
            prf: Prf::from_uri(&mac).ok_or_else(|| protocol("MacAlgorithm"))?,
            encryption,
            key: sh
                .encryption_key
                .clone()
                .ok_or_else(|| protocol("no EncryptionKey"))?,
            r_s,
        })
    }
}

/// E(K, R_C) and K (and whether K is secret).
fn encrypt_nonce(
    config: &ClientConfig,
    chosen: &ServerChoice,
    r_c: &Secret,
) -> Result<(Vec<u8>, Secret, bool), ClientError> {
    if let Some(prf) = Prf::from_uri(&chosen.encryption) {
        let dk = config
            .device_key
            .as_ref()
            .ok_or(ClientError::Config("K_SHARED needed"))?;
        if let (Some(want), Some(named)) = (&dk.name, &chosen.key.key_name)
            && want != named
        {
            return Err(protocol("EncryptionKey names another shared key"));
        }
        let enc = keys::xor_nonce(prf, &dk.secret, &chosen.r_s, r_c.expose())
            .map_err(|e| protocol(e.to_string()))?;
        return Ok((enc.expose().to_vec(), dk.secret.clone(), true));
    }
    let (n, e) = chosen
        .key
        .rsa
        .clone()
        .ok_or_else(|| protocol("EncryptionKey has no RSA key"))?;
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    )
    .map_err(|_| protocol("EncryptionKey RSA key is invalid"))?;
    let enc = match chosen.encryption.as_str() {
        uri::RSA_OAEP => key.oaep_encrypt::<sha1::Sha1>(r_c.expose()),
        _ => key.pkcs1v15_encrypt(r_c.expose()),
    }
    .map_err(|_| protocol("RSA encryption of R_C failed"))?;
    Ok((enc, Secret::new(key.n_bytes().to_vec()), false))
}

// ---- 2-pass ------------------------------------------------------------------------------

fn two_pass(
    config: &ClientConfig,
    transport: &mut dyn Transport,
) -> Result<ProvisionedKey, ClientError> {
    let ac = config
        .ac
        .as_ref()
        .ok_or(ClientError::Config("2-pass needs an authentication code"))?;
    let prf = config.prfs[0];

    // 1. The KPM with its payload, K for the AD and the key that will open the package.
    let r_c = Secret::random(MIN_NONCE_LEN);
    let mut transport_key = None;
    let (kpm, encryption, k, k_secret) = match config.variant {
        Variant::TwoPassWrap => {
            let dk = config
                .device_key
                .as_ref()
                .ok_or(ClientError::Config("key wrap needs K_SHARED"))?;
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: dk.name.clone(),
                rsa: None,
            });
            let kpm = KeyProtection {
                method: uri::KPM_WRAP.into(),
                payload: Some(payload),
            };
            (
                kpm,
                vec![uri::KW_AES128, uri::AES128_CBC],
                dk.secret.clone(),
                true,
            )
        }
        Variant::TwoPassPassphrase => {
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: Some(ac.client_id.clone()),
                rsa: None,
            });
            let kpm = KeyProtection {
                method: uri::KPM_PASSPHRASE.into(),
                payload: Some(payload),
            };
            (
                kpm,
                vec![uri::KW_AES128, uri::AES128_CBC],
                Secret::default(),
                true,
            )
        }
        _ => {
            let key = <rsa::PrivateKey as rsa::Generate>::generate();
            let (n, e) = (key.n_bytes().to_vec(), key.e_bytes().to_vec());
            transport_key = Some(key);
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: None,
                rsa: Some((n.clone(), e)),
            });
            let kpm = KeyProtection {
                method: uri::KPM_TRANSPORT.into(),
                payload: Some(payload),
            };
            let mut enc = vec![uri::RSA_OAEP];
            if config.allow_rsa_1_5 {
                enc.push(uri::RSA_1_5);
            }
            (kpm, enc, Secret::new(n), false)
        }
    };
    let iterations = if k_secret {
        1
    } else {
        config.public_iterations
    };

    // 2. ClientHello with R_C, the KPML and the AD.
    let mut hello = hello_base(config, encryption);
    hello.client_nonce = Some(r_c.expose().to_vec());
    hello.variants = Some(ProtocolVariants {
        four_pass: false,
        two_pass: Some(vec![kpm.clone()]),
        two_pass_first: true,
    });
    hello.auth = ad(config, prf, k.expose(), iterations, r_c.expose(), None)?;
    let hello_bytes = Message::ClientHello(hello).to_bytes();
    let sf = finished(&send(transport, &hello_bytes)?)?;
    check_client_info(config, &sf.extensions)?;

    // 3. MAC 2 (renewal) needs nothing from the package: check it first.
    let package = sf
        .key_package
        .as_ref()
        .ok_or_else(|| protocol("no KeyPackage"))?;
    let server_id = package
        .server_id
        .clone()
        .ok_or_else(|| protocol("KeyPackage without ServerID"))?;
    if package.key_protection_method.as_deref() != Some(kpm.method.as_str()) {
        return Err(protocol("KeyProtectionMethod was not offered"));
    }
    if let Some(renewal) = &config.renewal {
        let mac2 = sf
            .auth
            .as_ref()
            .ok_or(ClientError::Mac("server authentication"))?;
        let expected =
            keys::two_pass_renewal_mac(renewal.prf, &renewal.k_mac, &server_id, r_c.expose())
                .map_err(|_| ClientError::Mac("server authentication"))?;
        if !expected.ct_eq(&mac2.mac.value) {
            return Err(ClientError::Mac("server authentication"));
        }
    }

    // 4. Open the package, split K_PROV, verify MAC 1, then accept.
    let options = match config.variant {
        Variant::TwoPassWrap => ReadOptions::with_key(keyprov_pskc::Secret::from_slice(k.expose())),
        Variant::TwoPassPassphrase => {
            ReadOptions::with_password(keyprov_pskc::Secret::from_slice(ac.password.expose()))
        }
        _ => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = transport_key
                .as_ref()
                .ok_or(ClientError::Config("transport key"))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|_| ClientError::Config("transport key"))?;
            ReadOptions::with_private_key_pem(&pem).map_err(PackageError::from)?
        }
    };
    let container_el = package
        .key_container
        .as_ref()
        .ok_or_else(|| protocol("no KeyContainer"))?;
    let container = package::open(container_el, &options)?;
    let mut pskc = package::single_key(&container)?.clone();
    let k_prov = pskc
        .data
        .secret
        .take()
        .ok_or_else(|| protocol("key package holds no K_PROV"))?;
    let k_prov = Secret::from_slice(k_prov.expose());
    let mac = sf
        .mac
        .as_ref()
        .ok_or(ClientError::Mac("key confirmation"))?;
    let prf = mac_prf(mac, &config.prfs)?;
    let split = keys::split(prf, &k_prov, config.key_type.token_len())
        .ok_or_else(|| protocol("K_PROV has the wrong length"))?;
    let hash = keys::msg_hash(&[&hello_bytes]);
    let expected = keys::two_pass_mac(prf, &split.k_mac, &hash, &server_id)
        .map_err(|e| protocol(e.to_string()))?;
    if !expected.ct_eq(&mac.value) {
        return Err(ClientError::Mac("key confirmation"));
    }
    accept(config, pskc, split, prf, server_id)
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
