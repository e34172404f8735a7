//! Key packages (RFC 6063 §5.3 / digest §2.5): a PSKC `KeyContainer` embedded as
//! `<dskpp:KeyContainer>`, written and read by `keyprov-pskc`.
//!
//! The embedded element and a stand-alone PSKC document differ only in the root's namespace,
//! so this module moves between the two by renaming the root of the element tree; all PSKC
//! work (ciphers, MACs, PBKDF2, RSA) is `keyprov-pskc`'s.

use keyprov_pskc::{
    AlgorithmParameters, Key, KeyContainer, KeyData, Protection, ReadOptions, ResponseFormat,
};

use crate::secret::Secret;
use crate::store::KeyType;
use crate::uri;
use crate::xml::{self, Element};

/// Why a key package could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The PSKC layer refused the container (message names the element and cause).
    #[error("PSKC key container: {0}")]
    Pskc(#[from] keyprov_pskc::Error),
    /// The XML tree could not be moved between the embedded and stand-alone forms.
    #[error("PSKC key container: {0}")]
    Xml(#[from] xml::XmlError),
    /// The container does not hold exactly one key.
    #[error("PSKC key container holds {0} keys; DSKPP delivers exactly one")]
    KeyCount(usize),
}

/// The metadata of an issued key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    /// PSKC `Key/@Id`.
    pub key_id: String,
    /// Key type.
    pub key_type: KeyType,
    /// `ResponseFormat/@Length`.
    pub digits: u32,
    /// HOTP counter.
    pub counter: u64,
    /// TOTP time step.
    pub time_step: u32,
    /// `Issuer` (the ServerID).
    pub issuer: String,
}

/// The PSKC key of `meta` with `secret` (K_PROV in 2-pass, none in 4-pass).
pub fn pskc_key(meta: &KeyMeta, secret: Option<&Secret>) -> Key {
    let mut data = KeyData {
        secret: secret.map(|s| keyprov_pskc::Secret::from_slice(s.expose())),
        ..KeyData::default()
    };
    match meta.key_type {
        KeyType::Hotp => data.counter = Some(meta.counter),
        KeyType::Totp => data.time_interval = Some(u64::from(meta.time_step)),
    }
    Key {
        id: Some(meta.key_id.clone()),
        algorithm: Some(meta.key_type.uri().to_string()),
        issuer: Some(meta.issuer.clone()),
        algorithm_parameters: AlgorithmParameters {
            response_format: Some(ResponseFormat {
                encoding: Some("DECIMAL".into()),
                length: Some(meta.digits),
                check_digits: None,
            }),
            ..AlgorithmParameters::default()
        },
        data,
        ..Key::default()
    }
}

/// A one-key container.
pub fn container(key: Key) -> KeyContainer {
    let mut c = KeyContainer::new();
    c.key_packages.push(keyprov_pskc::KeyPackage {
        keys: vec![key],
        ..Default::default()
    });
    c
}

/// Writes `container` under `protection` as a `<dskpp:KeyContainer>` element.
pub fn embed(container: &KeyContainer, protection: &Protection) -> Result<Element, PackageError> {
    let doc = keyprov_pskc::write(container, protection)?;
    let mut root = xml::parse(&doc)?;
    root.ns = uri::DSKPP_NS.to_string();
    Ok(root)
}

/// Reads a `<dskpp:KeyContainer>` element with `options` (the key that opens it).
pub fn open(element: &Element, options: &ReadOptions) -> Result<KeyContainer, PackageError> {
    let mut root = element.clone();
    root.ns = uri::PSKC_NS.to_string();
    let doc = xml::write(&root);
    Ok(keyprov_pskc::parse(&doc, options)?)
}

/// The single key of a delivered container.
pub fn single_key(container: &KeyContainer) -> Result<&Key, PackageError> {
    let keys: Vec<&Key> = container.keys().map(|(_, k)| k).collect();
    match keys.as_slice() {
        [k] => Ok(k),
        other => Err(PackageError::KeyCount(other.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_container_round_trips_with_a_wrapped_secret() {
        let meta = KeyMeta {
            key_id: "0a0b".into(),
            key_type: KeyType::Hotp,
            digits: 6,
            counter: 0,
            time_step: 30,
            issuer: "https://s/".into(),
        };
        let k_prov = Secret::from_slice(&[5u8; 64]);
        let kek = Secret::from_slice(&[9u8; 16]);
        let protection = Protection::PreSharedKey {
            key: keyprov_pskc::Secret::from_slice(kek.expose()),
            key_name: Some("dev".into()),
            cipher: keyprov_pskc::Cipher::KwAes128,
            mac: keyprov_pskc::Hmac::Sha1,
        };
        let el = embed(&container(pskc_key(&meta, Some(&k_prov))), &protection).unwrap();
        assert!(el.is(uri::DSKPP_NS, "KeyContainer"));
        let text = String::from_utf8(xml::write(&el)).unwrap();
        assert!(
            !text.contains("BQUFBQUF"),
            "secret must not be in the clear"
        );
        let opts = ReadOptions::with_key(keyprov_pskc::Secret::from_slice(kek.expose()));
        let back = open(&el, &opts).unwrap();
        let key = single_key(&back).unwrap();
        assert_eq!(key.id.as_deref(), Some("0a0b"));
        assert_eq!(key.data.secret.as_ref().unwrap().expose(), k_prov.expose());
        assert_eq!(key.data.counter, Some(0));
    }
}
