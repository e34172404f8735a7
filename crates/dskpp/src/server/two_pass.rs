//! The 2-pass variant (RFC 6063 §5.2): one ClientHello with R_C, the KPML and the AD, answered
//! by ServerFinished with K_PROV protected in a PSKC key package.

use super::*;

impl Server {
    // ---- 2-pass: ClientHello → ServerFinished (§5.2) ------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn two_pass(
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
}
