//! The 4-pass variant (RFC 6063 §4.2): ServerHello with R_S and the choices, then ClientNonce
//! with E(K, R_C) and the AD, answered by ServerFinished with the key confirmation MAC.

use super::*;

impl Server {
    // ---- 4-pass: ServerHello (§4.2.2) ---------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn server_hello(
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

    pub(super) fn on_client_nonce(&self, bytes: &[u8], nonce: &ClientNonce) -> Response {
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

    pub(super) fn client_nonce(
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
    pub(super) fn rsa_decrypt(&self, encryption: &str, data: &[u8]) -> Secret {
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
}
