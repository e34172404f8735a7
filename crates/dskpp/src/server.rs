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

/// The negotiated 2-pass key protection.
struct TwoPassChoice<'a> {
    kpm: &'a KeyProtection,
    encryption: &'static str,
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

    // ---- 4-pass: ServerHello (§4.2.2) ---------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn server_hello(
        &self,
        bytes: &[u8],
        hello: &ClientHello,
        key_type: KeyType,
        prf: Prf,
        encryption: &str,
        shared: Option<&SharedKey>,
        echo: &[Extension],
    ) -> Result<Vec<u8>, Fail> {
        let client_id = hello.auth.as_ref().and_then(|a| a.client_id.clone());
        if hello
            .client_nonce
            .as_ref()
            .is_some_and(|n| n.len() < MIN_NONCE_LEN)
        {
            return Err(Status::MalformedRequest.into());
        }
        let r_s = crate::random::bytes(R_S_LEN);

        // Renewal: prove knowledge of K_MAC' before the client gives up its old key.
        let renewal = match &hello.key_id {
            Some(key_id) => {
                let old = self.renewable_key(key_id, client_id.as_deref())?;
                let mac = keys::four_pass_renewal_mac(
                    old.prf,
                    &old.k_mac,
                    hello.client_nonce.as_deref(),
                    &r_s,
                )?;
                Some((
                    old.key_id,
                    Mac {
                        algorithm: Some(old.prf.uri().into()),
                        value: mac.expose().to_vec(),
                    },
                ))
            }
            None => None,
        };

        let encryption_key = match shared {
            Some(k) => KeyInfo {
                key_name: Some(k.name.clone()),
                rsa: None,
            },
            None => KeyInfo {
                key_name: None,
                rsa: Some((self.modulus.clone(), self.k_server.e_bytes().to_vec())),
            },
        };
        // Now and then, end the sessions whose clients never came back.
        if self
            .hellos
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(1024)
        {
            self.store.purge_sessions(now() - self.config.session_ttl)?;
        }
        let session_id = hex::encode(crate::random::bytes(16));
        let message = Message::ServerHello(ServerHello {
            version: uri::VERSION.into(),
            status: Status::Continue,
            session_id: Some(session_id.clone()),
            key_type: Some(key_type.uri().into()),
            encryption_algorithm: Some(encryption.into()),
            mac_algorithm: Some(prf.uri().into()),
            encryption_key: Some(encryption_key),
            key_package_format: Some(uri::PACKAGE_PSKC.into()),
            payload: Some(Payload::Nonce(r_s.clone())),
            extensions: echo.to_vec(),
            mac: renewal.as_ref().map(|(_, m)| m.clone()),
        });
        let body = message.to_bytes();
        self.store.put_session(&Session {
            id: session_id,
            created: now(),
            client_id,
            prf,
            key_type,
            encryption: encryption.into(),
            nonce_key: if shared.is_some() {
                NonceKey::Shared
            } else {
                NonceKey::Server
            },
            r_s,
            renew_key_id: renewal.map(|(id, _)| id),
            client_hello: bytes.to_vec(),
            server_hello: body.clone(),
        })?;
        Ok(body)
    }

    // ---- 4-pass: ClientNonce → ServerFinished (§4.2.3, §4.2.4) --------------------------

    fn on_client_nonce(&self, bytes: &[u8], nonce: &ClientNonce) -> Response {
        let echo = client_info(&nonce.extensions);
        let session_id = nonce.session_id.clone();
        let result = match self.store.session(&session_id) {
            Err(e) => Err(Fail::from(e)),
            Ok(SessionLookup::Unknown) | Ok(SessionLookup::Used) => Err(Status::Abort.into()),
            Ok(SessionLookup::Active(session)) => {
                let result = self.client_nonce(bytes, nonce, &session, &echo);
                if result.is_err() {
                    // Any status but Success ends the run; the SessionID is never reused.
                    if let Err(e) = self.store.end_session(&session_id) {
                        tracing::error!(error = %e, "could not end a failed session");
                    }
                }
                result
            }
        };
        match result {
            Ok(body) => Response {
                http_status: 200,
                body,
            },
            Err(Fail::Internal(e)) => internal(&e),
            Err(Fail::Status(status)) => {
                tracing::debug!(%status, "ClientNonce refused");
                let mut f = ServerFinished::error(status, Some(session_id));
                f.extensions = echo;
                Response {
                    http_status: 200,
                    body: Message::ServerFinished(f).to_bytes(),
                }
            }
        }
    }

    fn client_nonce(
        &self,
        bytes: &[u8],
        nonce: &ClientNonce,
        session: &Session,
        echo: &[Extension],
    ) -> Result<Vec<u8>, Fail> {
        check_version(&nonce.version)?;
        check_extensions(&nonce.extensions)?;
        if now() - session.created > self.config.session_ttl {
            return Err(Status::Abort.into());
        }
        let prf = session.prf;

        // 1. Recover R_C = D(K, EncryptedNonce) and the K of the derivation.
        let (r_c, k) = match session.nonce_key {
            NonceKey::Shared => {
                let id = session.client_id.as_deref().ok_or(Status::Abort)?;
                let shared = self.store.shared_key(id)?.ok_or(Status::Abort)?;
                let r_c =
                    keys::xor_nonce(prf, &shared.secret, &session.r_s, &nonce.encrypted_nonce)?;
                (r_c, shared.secret)
            }
            NonceKey::Server => {
                let r_c = self.rsa_decrypt(&session.encryption, &nonce.encrypted_nonce);
                (r_c, Secret::from_slice(&self.modulus))
            }
        };
        if r_c.len() < MIN_NONCE_LEN || (prf == Prf::Aes128 && r_c.len() != 16) {
            return Err(Status::MalformedRequest.into());
        }

        // 2. Authenticate the client: AD bound to R_C and R_S, or possession of K_SHARED.
        let (client_id, ac_used) = match &nonce.auth {
            Some(ad) => {
                let id = ad.client_id.clone().or_else(|| session.client_id.clone());
                let id = id.ok_or(Status::AuthenticationDataMissing)?;
                if session.client_id.as_ref().is_some_and(|s| *s != id) {
                    return Err(Status::AuthenticationDataInvalid.into());
                }
                let secret_k = session.nonce_key == NonceKey::Shared;
                self.verify_ad(
                    prf,
                    ad,
                    &id,
                    k.expose(),
                    secret_k,
                    r_c.expose(),
                    Some(&session.r_s),
                )?;
                (id, true)
            }
            None if session.nonce_key == NonceKey::Shared
                && !self.config.require_ad_with_shared_key =>
            {
                (session.client_id.clone().ok_or(Status::Abort)?, false)
            }
            None => return Err(Status::AuthenticationDataMissing.into()),
        };
        if let Some(old) = &session.renew_key_id {
            self.renewable_key(&hex_decode(old), Some(&client_id))?;
        }

        // 3. K_PROV = DSKPP-PRF(R_C, "Key generation" || K || R_S); K_MAC || K_TOKEN.
        let k_prov = keys::four_pass_k_prov(
            prf,
            &r_c,
            k.expose(),
            &session.r_s,
            session.key_type.token_len(),
        )?;
        let split = keys::split(prf, &k_prov, session.key_type.token_len())
            .ok_or_else(|| Fail::Internal("K_PROV length".into()))?;

        // 4. Key package without secret, MAC over the transcript, commit, answer.
        let issued = self.issued_key(&client_id, session.key_type, prf, split);
        let container = package::embed(
            &package::container(package::pskc_key(&self.meta(&issued), None)),
            &Protection::Plain,
        )
        .map_err(|e| Fail::Internal(e.to_string()))?;
        let hash = keys::msg_hash(&[&session.client_hello, &session.server_hello, bytes]);
        let mac = keys::four_pass_mac(prf, &issued.k_mac, &hash)?;
        self.commit(&Commit {
            session_id: Some(&session.id),
            ac_client_id: ac_used.then_some(client_id.as_str()),
            nonce_digest: Sha256::digest(r_c.expose()).into(),
            key: &issued,
            replaces: session.renew_key_id.as_deref(),
        })?;
        tracing::debug!(key_id = %issued.key_id, "4-pass run committed");
        Ok(Message::ServerFinished(ServerFinished {
            version: uri::VERSION.into(),
            status: Status::Success,
            session_id: Some(session.id.clone()),
            key_package: Some(KeyPackage {
                server_id: Some(self.config.server_id.clone()),
                key_protection_method: None,
                key_container: Some(container),
            }),
            extensions: echo.to_vec(),
            mac: Some(Mac {
                algorithm: Some(prf.uri().into()),
                value: mac.expose().to_vec(),
            }),
            auth: None,
        })
        .to_bytes())
    }

    /// RSA decryption of R_C with implicit rejection: a padding failure yields a random
    /// nonce, so the response never tells a padding oracle anything (the run then fails at the
    /// AD or produces a key nobody else knows).
    fn rsa_decrypt(&self, encryption: &str, data: &[u8]) -> Secret {
        let result = if encryption == uri::RSA_OAEP {
            self.k_server.oaep_decrypt::<sha1::Sha1>(data)
        } else {
            self.k_server.pkcs1v15_decrypt(data)
        };
        match result {
            Ok(plain) => Secret::new(plain),
            Err(_) => Secret::random(32),
        }
    }

    // ---- 2-pass: ClientHello → ServerFinished (§5.2) ------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn two_pass(
        &self,
        bytes: &[u8],
        hello: &ClientHello,
        key_type: KeyType,
        prf: Prf,
        choice: &TwoPassChoice<'_>,
        shared: Option<SharedKey>,
        echo: &[Extension],
    ) -> Result<Vec<u8>, Fail> {
        // 1. AD is mandatory and carries R_C (in ClientNonce or AuthenticationCodeMac/Nonce).
        let ad = hello
            .auth
            .as_ref()
            .ok_or(Status::AuthenticationDataMissing)?;
        let client_id = ad
            .client_id
            .clone()
            .ok_or(Status::AuthenticationDataMissing)?;
        let code_mac = ad
            .code_mac
            .as_ref()
            .ok_or(Status::AuthenticationDataMissing)?;
        let r_c = match (&hello.client_nonce, &code_mac.nonce) {
            (Some(a), Some(b)) if a != b => return Err(Status::MalformedRequest.into()),
            (Some(n), _) | (None, Some(n)) => n.clone(),
            (None, None) => return Err(Status::MalformedRequest.into()),
        };
        if r_c.len() < MIN_NONCE_LEN {
            return Err(Status::MalformedRequest.into());
        }

        // 2. K for the AD and the key protection of the package, per KPM.
        let kpm = choice.kpm.method.as_str();
        let cipher =
            cipher_for(choice.encryption).ok_or(Status::NoSupportedEncryptionAlgorithms)?;
        let (k, k_secret) = match kpm {
            uri::KPM_WRAP => {
                let shared = shared
                    .as_ref()
                    .ok_or(Status::NoSupportedEncryptionAlgorithms)?;
                (shared.secret.clone(), true)
            }
            uri::KPM_TRANSPORT => {
                let (n, _) = client_rsa(choice.kpm).ok_or(Status::MalformedRequest)?;
                (Secret::from_slice(&n), false)
            }
            _ => (Secret::default(), true),
        };
        let ac = self.verify_ad(prf, ad, &client_id, k.expose(), k_secret, &r_c, None)?;
        if self.store.nonce_seen(&Sha256::digest(&r_c).into())? {
            return Err(Status::Abort.into());
        }
        let old = match &hello.key_id {
            Some(id) => Some(self.renewable_key(id, Some(&client_id))?),
            None => None,
        };

        // 3. A fresh K_PROV, protected inside a PSKC key package.
        let half = keys::half_len(prf, key_type.token_len());
        let k_prov = Secret::random(2 * half);
        let split = keys::split(prf, &k_prov, key_type.token_len())
            .ok_or_else(|| Fail::Internal("K_PROV length".into()))?;
        let issued = self.issued_key(&client_id, key_type, prf, split);
        let protection = match kpm {
            uri::KPM_WRAP => Protection::PreSharedKey {
                key: pskc_secret(&k),
                key_name: shared.as_ref().map(|s| s.name.clone()),
                cipher,
                mac: Hmac::Sha1,
            },
            uri::KPM_TRANSPORT => {
                let (n, e) = client_rsa(choice.kpm).ok_or(Status::MalformedRequest)?;
                Protection::PublicKey {
                    key: rsa_public(&n, &e).ok_or(Status::MalformedRequest)?,
                    cipher,
                }
            }
            _ => Protection::Password {
                password: pskc_secret(&ac.password),
                iterations: self.config.passphrase_iterations,
                prf: Hmac::Sha1,
                salt: None,
                key_name: Some(passphrase_name(choice.kpm, &client_id)),
                cipher,
                mac: Hmac::Sha1,
            },
        };
        let key = package::pskc_key(&self.meta(&issued), Some(&k_prov));
        let container = package::embed(&package::container(key), &protection)
            .map_err(|e| Fail::Internal(e.to_string()))?;

        // 4. MAC 1 over the ClientHello and ServerID; MAC 2 under K_MAC' for a renewal.
        let server_id = &self.config.server_id;
        let hash = keys::msg_hash(&[bytes]);
        let mac = keys::two_pass_mac(prf, &issued.k_mac, &hash, server_id)?;
        let mac2 = match &old {
            Some(old) => Some(AuthenticationMac {
                nonce: None,
                iteration_count: None,
                mac: Mac {
                    algorithm: Some(old.prf.uri().into()),
                    value: keys::two_pass_renewal_mac(old.prf, &old.k_mac, server_id, &r_c)?
                        .expose()
                        .to_vec(),
                },
            }),
            None => None,
        };
        self.commit(&Commit {
            session_id: None,
            ac_client_id: Some(&client_id),
            nonce_digest: Sha256::digest(&r_c).into(),
            key: &issued,
            replaces: old.as_ref().map(|o| o.key_id.as_str()),
        })?;
        tracing::debug!(key_id = %issued.key_id, kpm, "2-pass run committed");
        Ok(Message::ServerFinished(ServerFinished {
            version: uri::VERSION.into(),
            status: Status::Success,
            session_id: None,
            key_package: Some(KeyPackage {
                server_id: Some(server_id.clone()),
                key_protection_method: Some(kpm.into()),
                key_container: Some(container),
            }),
            extensions: echo.to_vec(),
            mac: Some(Mac {
                algorithm: Some(prf.uri().into()),
                value: mac.expose().to_vec(),
            }),
            auth: mac2,
        })
        .to_bytes())
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

// ---- negotiation helpers -----------------------------------------------------------------

fn check_version(version: &str) -> Result<(), Fail> {
    let major = version
        .trim()
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(1) => Ok(()),
        _ => Err(Status::UnsupportedVersion.into()),
    }
}

fn check_extensions(exts: &[Extension]) -> Result<(), Fail> {
    let unknown = exts
        .iter()
        .any(|e| e.critical && matches!(e.kind, ExtensionKind::Unknown(_)));
    if unknown {
        Err(Status::UnknownCriticalExtension.into())
    } else {
        Ok(())
    }
}

fn client_info(exts: &[Extension]) -> Vec<Extension> {
    exts.iter()
        .filter(|e| matches!(e.kind, ExtensionKind::ClientInfo(_)))
        .cloned()
        .collect()
}

/// The first EncryptionAlgorithm of the client usable for R_C in 4-pass.
fn four_pass_encryption(hello: &ClientHello, have_shared: bool) -> Option<&'static str> {
    hello
        .encryption_algorithms
        .iter()
        .find_map(|a| match a.as_str() {
            uri::PRF_SHA256 if have_shared => Some(uri::PRF_SHA256),
            uri::PRF_AES_128 if have_shared => Some(uri::PRF_AES_128),
            uri::RSA_OAEP => Some(uri::RSA_OAEP),
            uri::RSA_1_5 | uri::RSA_1_5_TYPO => Some(uri::RSA_1_5),
            _ => None,
        })
}

/// The ciphers each KPM may use, as URIs.
fn kpm_ciphers(kpm: &str) -> &'static [&'static str] {
    match kpm {
        uri::KPM_TRANSPORT => &[uri::RSA_OAEP, uri::RSA_1_5],
        uri::KPM_WRAP | uri::KPM_PASSPHRASE => &[uri::KW_AES128, uri::AES128_CBC],
        _ => &[],
    }
}

fn cipher_for(uri_: &str) -> Option<Cipher> {
    match uri_ {
        uri::KW_AES128 => Some(Cipher::KwAes128),
        uri::AES128_CBC => Some(Cipher::Aes128Cbc),
        uri::RSA_OAEP => Some(Cipher::RsaOaepMgf1p),
        uri::RSA_1_5 => Some(Cipher::Rsa1_5),
        _ => None,
    }
}

fn two_pass_choice<'a>(
    hello: &ClientHello,
    kpml: &'a [KeyProtection],
    shared: Option<&SharedKey>,
) -> Result<TwoPassChoice<'a>, Status> {
    let mut refusal = Status::NoProtocolVariants;
    for kpm in kpml {
        let usable = match kpm.method.as_str() {
            uri::KPM_WRAP => shared.is_some_and(|s| match &kpm.payload {
                Some(Payload::KeyInfo(k)) => k.key_name.as_ref().is_none_or(|n| *n == s.name),
                _ => true,
            }),
            uri::KPM_TRANSPORT => client_rsa(kpm).is_some(),
            uri::KPM_PASSPHRASE => true,
            _ => false,
        };
        if !usable {
            continue;
        }
        let allowed = kpm_ciphers(&kpm.method);
        let enc = hello.encryption_algorithms.iter().find_map(|a| {
            let a = if a == uri::RSA_1_5_TYPO {
                uri::RSA_1_5
            } else {
                a.as_str()
            };
            allowed.iter().find(|x| **x == a).copied()
        });
        match enc {
            Some(encryption) => return Ok(TwoPassChoice { kpm, encryption }),
            None => refusal = Status::NoSupportedEncryptionAlgorithms,
        }
    }
    Err(refusal)
}

fn client_rsa(kpm: &KeyProtection) -> Option<(Vec<u8>, Vec<u8>)> {
    match &kpm.payload {
        Some(Payload::KeyInfo(KeyInfo { rsa: Some(rsa), .. })) => Some(rsa.clone()),
        _ => None,
    }
}

fn passphrase_name(kpm: &KeyProtection, client_id: &str) -> String {
    match &kpm.payload {
        Some(Payload::KeyInfo(KeyInfo {
            key_name: Some(n), ..
        })) => n.clone(),
        _ => client_id.to_string(),
    }
}

/// A PSKC public key from the modulus and exponent the client sent.
pub(crate) fn rsa_public(n: &[u8], e: &[u8]) -> Option<keyprov_pskc::RsaPublicKey> {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(n),
        rsa::BoxedUint::from_be_slice_vartime(e),
    )
    .ok()?;
    let pem = key.to_public_key_pem(LineEnding::LF).ok()?;
    keyprov_pskc::RsaPublicKey::from_pem(&pem).ok()
}

fn pskc_secret(s: &Secret) -> keyprov_pskc::Secret {
    keyprov_pskc::Secret::from_slice(s.expose())
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
