//! Negotiation (RFC 6063 §§3.1, 4.2.1, 5.2.1): versions, extensions, encryption algorithms and
//! key protection methods, in the client's order of preference.

use super::*;

/// The negotiated 2-pass key protection.
pub(super) struct TwoPassChoice<'a> {
    pub(super) kpm: &'a KeyProtection,
    pub(super) encryption: &'static str,
}

// ---- negotiation helpers -----------------------------------------------------------------

pub(super) fn check_version(version: &str) -> Result<(), Fail> {
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

pub(super) fn check_extensions(exts: &[Extension]) -> Result<(), Fail> {
    let unknown = exts
        .iter()
        .any(|e| e.critical && matches!(e.kind, ExtensionKind::Unknown(_)));
    if unknown {
        Err(Status::UnknownCriticalExtension.into())
    } else {
        Ok(())
    }
}

pub(super) fn client_info(exts: &[Extension]) -> Vec<Extension> {
    exts.iter()
        .filter(|e| matches!(e.kind, ExtensionKind::ClientInfo(_)))
        .cloned()
        .collect()
}

/// The first EncryptionAlgorithm of the client usable for R_C in 4-pass.
pub(super) fn four_pass_encryption(hello: &ClientHello, have_shared: bool) -> Option<&'static str> {
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
pub(super) fn kpm_ciphers(kpm: &str) -> &'static [&'static str] {
    match kpm {
        uri::KPM_TRANSPORT => &[uri::RSA_OAEP, uri::RSA_1_5],
        uri::KPM_WRAP | uri::KPM_PASSPHRASE => &[uri::KW_AES128, uri::AES128_CBC],
        _ => &[],
    }
}

pub(super) fn cipher_for(uri_: &str) -> Option<Cipher> {
    match uri_ {
        uri::KW_AES128 => Some(Cipher::KwAes128),
        uri::AES128_CBC => Some(Cipher::Aes128Cbc),
        uri::RSA_OAEP => Some(Cipher::RsaOaepMgf1p),
        uri::RSA_1_5 => Some(Cipher::Rsa1_5),
        _ => None,
    }
}

pub(super) fn two_pass_choice<'a>(
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

pub(super) fn client_rsa(kpm: &KeyProtection) -> Option<(Vec<u8>, Vec<u8>)> {
    match &kpm.payload {
        Some(Payload::KeyInfo(KeyInfo { rsa: Some(rsa), .. })) => Some(rsa.clone()),
        _ => None,
    }
}

pub(super) fn passphrase_name(kpm: &KeyProtection, client_id: &str) -> String {
    match &kpm.payload {
        Some(Payload::KeyInfo(KeyInfo {
            key_name: Some(n), ..
        })) => n.clone(),
        _ => client_id.to_string(),
    }
}

/// A PSKC public key from the modulus and exponent the client sent.
pub(super) fn rsa_public(n: &[u8], e: &[u8]) -> Option<keyprov_pskc::RsaPublicKey> {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(n),
        rsa::BoxedUint::from_be_slice_vartime(e),
    )
    .ok()?;
    let pem = key.to_public_key_pem(LineEnding::LF).ok()?;
    keyprov_pskc::RsaPublicKey::from_pem(&pem).ok()
}

pub(super) fn pskc_secret(s: &Secret) -> keyprov_pskc::Secret {
    keyprov_pskc::Secret::from_slice(s.expose())
}
