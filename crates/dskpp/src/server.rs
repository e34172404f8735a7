//! The DSKPP server core (RFC 6063 §§4, 5): one call per HTTP body, no HTTP inside, so the
//! station can run exactly the same messages and MACs in-process ("local mode") while
//! `keyprov serve` wraps it in axum.
//!
//! Each request is parsed, checked, answered and — when a run ends in Success — committed in a
//! single store transaction together with its replay records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyprov_pskc::{Cipher, Hmac, Protection};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use crate::auth::{self, AdInput};
use crate::keys;
use crate::messages::{
    AuthenticationData, AuthenticationMac, ClientHello, ClientNonce, Extension, ExtensionKind,
    KeyInfo, KeyPackage, KeyProtection, Mac, Message, Payload, ServerFinished, ServerHello, Status,
};
use crate::package::{self, KeyMeta};
use crate::prf::Prf;
use crate::secret::Secret;
use crate::store::{
    AcRecord, Commit, CommitError, IssuedKey, KeyType, NonceKey, Session, SessionLookup, SharedKey,
    Store, StoreError, now,
};
use crate::uri;
use crate::xml;

mod four_pass;
mod negotiate;
mod two_pass;

use negotiate::*;

/// The media type of every DSKPP message.
pub const CONTENT_TYPE: &str = "application/dskpp+xml";
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Length of R_S.
const R_S_LEN: usize = 16;
/// Minimum nonce length (schema `NonceType`).
pub const MIN_NONCE_LEN: usize = 16;
/// Name of the server's RSA key (K_SERVER) in the store.
const RSA_SETTING: &str = "k_server_pkcs8";

/// Server policy.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `ServerID` written into key packages and bound into 2-pass MACs.
    pub server_id: String,
    /// Accepted URL_S values: the URLs clients use to reach this server.
    pub service_urls: Vec<String>,
    /// Failed AD verifications after which an AC is locked.
    pub max_ad_failures: u32,
    /// AD verification attempts per ClientID and minute, checked before PBKDF2 runs.
    pub attempts_per_minute: u32,
    /// Seconds a 4-pass session may wait for its ClientNonce.
    pub session_ttl: i64,
    /// OTP digits of issued keys.
    pub digits: u32,
    /// TOTP time step of issued keys.
    pub time_step: u32,
    /// PBKDF2 iterations of the passphrase-wrap KEK.
    pub passphrase_iterations: u32,
    /// Require AD in 4-pass even when K_SHARED authenticates the device (decision D12).
    pub require_ad_with_shared_key: bool,
}

impl ServerConfig {
    /// Defaults for a server reached at `url`.
    pub fn new(url: &str) -> ServerConfig {
        ServerConfig {
            server_id: url.to_string(),
            service_urls: vec![url.to_string()],
            max_ad_failures: 5,
            attempts_per_minute: 10,
            session_ttl: 300,
            digits: 6,
            time_step: 30,
            passphrase_iterations: 100_000,
            require_ad_with_shared_key: false,
        }
    }
}

/// An HTTP-independent answer: the status code the binding must use and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 200 for every processed message (including DSKPP errors), 400/413/500 otherwise.
    pub http_status: u16,
    /// A DSKPP message.
    pub body: Vec<u8>,
}

/// Why the server could not set itself up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored K_SERVER is unreadable.
    #[error("the server RSA key in the database is unreadable")]
    RsaKey,
}

/// How a request failed.
enum Fail {
    /// A DSKPP status for the client.
    Status(Status),
    /// Our own failure: HTTP 500.
    Internal(String),
}

impl From<Status> for Fail {
    fn from(s: Status) -> Fail {
        Fail::Status(s)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Internal(e.to_string())
    }
}

impl From<crate::prf::PrfError> for Fail {
    fn from(e: crate::prf::PrfError) -> Fail {
        tracing::debug!(error = %e, "PRF refused its input");
        Fail::Status(Status::MalformedRequest)
    }
}

/// The DSKPP server core.
pub struct Server {
    config: ServerConfig,
    store: Arc<dyn Store>,
    k_server: rsa::PrivateKey,
    modulus: Vec<u8>,
    attempts: Mutex<HashMap<String, (i64, u32)>>,
    hellos: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("server_id", &self.config.server_id)
            .finish()
    }
}

impl Server {
    /// A server over `store`; K_SERVER is loaded from the store or created once.
    pub fn new(config: ServerConfig, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
        let der = match store.setting(RSA_SETTING)? {
            Some(der) => der,
            None => {
                let key = <rsa::PrivateKey as rsa::Generate>::generate();
                let der = key.to_pkcs8_der().map_err(|_| ServerError::RsaKey)?;
                store.put_setting_once(RSA_SETTING, &Secret::from_slice(der.as_bytes()))?
            }
        };
        let k_server =
            rsa::PrivateKey::from_pkcs8_der(der.expose()).map_err(|_| ServerError::RsaKey)?;
        let modulus = k_server.n_bytes().to_vec();
        Ok(Server {
            config,
            store,
            k_server,
            modulus,
            attempts: Mutex::new(HashMap::new()),
            hellos: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The store behind this server.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Processes one HTTP request body.
    pub fn handle(&self, body: &[u8]) -> Response {
        if body.len() > MAX_BODY {
            return error_response(413, Status::MalformedRequest);
        }
        let root = match xml::parse(body) {
            Ok(root) => root,
            Err(e) => {
                tracing::debug!(error = %e, "request body is not acceptable XML");
                return error_response(400, Status::MalformedRequest);
            }
        };
        if root.ns != uri::DSKPP_NS {
            return error_response(400, Status::MalformedRequest);
        }
        match root.name.as_str() {
            "KeyProvClientHello" | "KeyProvClientNonce" => {}
            "KeyProvTrigger" | "KeyProvServerHello" | "KeyProvServerFinished" => {
                return error_response(400, Status::UnknownRequest);
            }
            _ => return error_response(200, Status::UnknownRequest),
        }
        match Message::from_element(&root) {
            Ok(Message::ClientHello(hello)) => self.on_client_hello(body, &hello),
            Ok(Message::ClientNonce(nonce)) => self.on_client_nonce(body, &nonce),
            Ok(_) => error_response(400, Status::UnknownRequest),
            Err(e) => {
                tracing::debug!(error = %e, "malformed DSKPP request");
                error_response(200, Status::MalformedRequest)
            }
        }
    }

    // ---- ClientHello --------------------------------------------------------------------

    fn on_client_hello(&self, bytes: &[u8], hello: &ClientHello) -> Response {
        let echo = client_info(&hello.extensions);
        match self.client_hello(bytes, hello, &echo) {
            Ok(body) => Response {
                http_status: 200,
                body,
            },
            Err(Fail::Internal(e)) => internal(&e),
            Err(Fail::Status(status)) => {
                tracing::debug!(%status, "ClientHello refused");
                let four_pass_only = hello.variants.as_ref().is_none_or(|v| v.two_pass.is_none());
                let body = if four_pass_only {
                    Message::ServerHello(ServerHello {
                        version: uri::VERSION.into(),
                        status,
                        session_id: None,
                        key_type: None,
                        encryption_algorithm: None,
                        mac_algorithm: None,
                        encryption_key: None,
                        key_package_format: None,
                        payload: None,
                        extensions: echo,
                        mac: None,
                    })
                } else {
                    let mut f = ServerFinished::error(status, None);
                    f.extensions = echo;
                    Message::ServerFinished(f)
                };
                Response {
                    http_status: 200,
                    body: body.to_bytes(),
                }
            }
        }
    }

    fn client_hello(
        &self,
        bytes: &[u8],
        hello: &ClientHello,
        echo: &[Extension],
    ) -> Result<Vec<u8>, Fail> {
        // §3.1.1 / §5.1: version, extensions, then the Security Attribute List in order.
        check_version(&hello.version)?;
        check_extensions(&hello.extensions)?;
        if hello.device_id.is_some() {
            // We never put a DeviceID in a trigger, so a unilateral one is refused (§3.4.3).
            return Err(Status::AccessDenied.into());
        }
        let key_type = hello
            .key_types
            .iter()
            .find_map(|u| KeyType::from_uri(u))
            .ok_or(Status::NoSupportedKeyTypes)?;
        let prf = hello
            .mac_algorithms
            .iter()
            .find_map(|u| Prf::from_uri(u))
            .ok_or(Status::NoSupportedMacAlgorithms)?;
        if let Some(formats) = &hello.key_packages
            && !formats.iter().any(|f| f == uri::PACKAGE_PSKC)
        {
            return Err(Status::NoSupportedKeyPackages.into());
        }
        let client_id = hello.auth.as_ref().and_then(|a| a.client_id.as_deref());
        let shared = match client_id {
            Some(id) => self.store.shared_key(id)?,
            None => None,
        };

        // Variants in the client's order of preference; remember why each was unusable.
        let variants = hello.variants.clone().unwrap_or_default();
        let order: Vec<bool> = match &hello.variants {
            None => vec![true],
            Some(v) if v.two_pass_first => vec![false, true],
            Some(_) => vec![true, false],
        };
        let mut refusal = Status::NoProtocolVariants;
        for four in order {
            if four && (variants.four_pass || hello.variants.is_none()) {
                match four_pass_encryption(hello, shared.is_some()) {
                    Some(enc) => {
                        let nk = shared.as_ref().filter(|_| Prf::from_uri(enc).is_some());
                        return self.server_hello(bytes, hello, key_type, prf, enc, nk, echo);
                    }
                    None => refusal = Status::NoSupportedEncryptionAlgorithms,
                }
            }
            if let (false, Some(kpml)) = (four, &variants.two_pass) {
                let known = kpml.iter().any(|k| !kpm_ciphers(&k.method).is_empty());
                match two_pass_choice(hello, kpml, shared.as_ref()) {
                    Ok(choice) if client_id.is_some() => {
                        return self.two_pass(bytes, hello, key_type, prf, &choice, shared, echo);
                    }
                    // 2-pass cannot run without the AD (§5.2.1).
                    _ if client_id.is_none() && known => {
                        refusal = Status::AuthenticationDataMissing;
                    }
                    Ok(_) => {}
                    Err(status) => {
                        if refusal == Status::NoProtocolVariants {
                            refusal = status;
                        }
                    }
                }
            }
        }
        Err(refusal.into())
    }

    // ---- shared steps --------------------------------------------------------------------

    /// Checks the AC (rate limit first, then state), then the AD MAC. Returns the AC.
    #[allow(clippy::too_many_arguments)]
    fn verify_ad(
        &self,
        prf: Prf,
        ad: &AuthenticationData,
        client_id: &str,
        k: &[u8],
        k_is_secret: bool,
        r_c: &[u8],
        r_s: Option<&[u8]>,
    ) -> Result<AcRecord, Fail> {
        let code_mac = ad
            .code_mac
            .as_ref()
            .ok_or(Status::AuthenticationDataMissing)?;
        if ad.client_id.as_deref().is_some_and(|c| c != client_id) {
            return Err(Status::AuthenticationDataInvalid.into());
        }
        // Rate limit before anything expensive (PBKDF2 may run 100,000 iterations).
        if !self.allow_attempt(client_id) {
            return Err(Status::AccessDenied.into());
        }
        let ac = self
            .store
            .authentication_code(client_id)?
            .ok_or(Status::AuthenticationDataInvalid)?;
        if ac.failures >= self.config.max_ad_failures {
            return Err(Status::AccessDenied.into());
        }
        if ac.used {
            return Err(Status::AuthenticationDataInvalid.into());
        }
        if ac.expires < now() {
            return Err(Status::ProvisioningPeriodExpired.into());
        }
        let iterations = code_mac.iteration_count.unwrap_or(1);
        if !auth::iterations_acceptable(iterations, k_is_secret) {
            return Err(Status::AuthenticationDataInvalid.into());
        }
        let mac_prf = match &code_mac.mac.algorithm {
            Some(a) => Prf::from_uri(a).ok_or(Status::AuthenticationDataInvalid)?,
            None => prf,
        };
        let k_ac = auth::k_ac(ac.password.expose(), r_c, k, iterations);
        let ok = self.config.service_urls.iter().any(|url_s| {
            let input = AdInput {
                client_id,
                url_s,
                r_c,
                r_s,
            };
            auth::ad_mac(mac_prf, &k_ac, &input).is_ok_and(|m| m.ct_eq(&code_mac.mac.value))
        });
        if !ok {
            self.store.record_failure(client_id)?;
            return Err(Status::AuthenticationDataInvalid.into());
        }
        Ok(ac)
    }

    fn allow_attempt(&self, client_id: &str) -> bool {
        let minute = now() / 60;
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (m, _)| *m == minute);
        }
        let entry = map.entry(client_id.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= self.config.attempts_per_minute
    }

    /// The current key `key_id` names, if it belongs to `client_id`.
    fn renewable_key(&self, key_id: &[u8], client_id: Option<&str>) -> Result<IssuedKey, Fail> {
        let id = key_id_text(key_id);
        let key = self.store.issued_key(&id)?.ok_or(Status::AccessDenied)?;
        match client_id {
            Some(c) if c == key.client_id => Ok(key),
            _ => Err(Status::AccessDenied.into()),
        }
    }

    fn issued_key(
        &self,
        client_id: &str,
        key_type: KeyType,
        prf: Prf,
        split: keys::ProvisioningKeys,
    ) -> IssuedKey {
        IssuedKey {
            key_id: hex::encode(crate::random::bytes(8)),
            client_id: client_id.into(),
            key_type,
            prf,
            secret: split.k_token.clone(),
            k_mac: split.k_mac.clone(),
            counter: 0,
            digits: self.config.digits,
            time_step: self.config.time_step,
            issued: now(),
            server_id: self.config.server_id.clone(),
        }
    }

    fn meta(&self, key: &IssuedKey) -> KeyMeta {
        KeyMeta {
            key_id: key.key_id.clone(),
            key_type: key.key_type,
            digits: key.digits,
            counter: key.counter,
            time_step: key.time_step,
            issuer: key.server_id.clone(),
        }
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), Fail> {
        match self.store.commit(commit) {
            Ok(()) => Ok(()),
            Err(CommitError::Replay(what)) => {
                tracing::debug!(what, "replay refused at commit");
                Err(Status::Abort.into())
            }
            Err(CommitError::Store(e)) => Err(e.into()),
        }
    }
}

/// The store's key id for DSKPP KeyID octets (decision D13: lower-case hex).
pub fn key_id_text(key_id: &[u8]) -> String {
    hex::encode(key_id)
}

fn hex_decode(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|_| text.as_bytes().to_vec())
}

/// A bare DSKPP error answer (`KeyProvServerFinished` with `status`) under `http_status`.
pub fn error_response(http_status: u16, status: Status) -> Response {
    Response {
        http_status,
        body: Message::ServerFinished(ServerFinished::error(status, None)).to_bytes(),
    }
}

fn internal(error: &str) -> Response {
    tracing::error!(error, "DSKPP server failure");
    error_response(500, Status::Abort)
}
