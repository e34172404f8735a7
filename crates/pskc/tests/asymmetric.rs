//! Asymmetric key transport (RFC 6030 §6.3) with a key pair made by the `rsa` crate: written
//! to the public key, read with the private key (PKCS #8 and PKCS #1 PEM), both RSA schemes.

use keyprov_pskc::{
    Cipher, Error, Key, KeyContainer, KeyData, KeyPackage, Protection, ReadOptions, RsaPublicKey,
    Secret, parse, write,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Generate, PrivateKey};

fn container() -> KeyContainer {
    let key = |id: &str, secret: &[u8]| Key {
        id: Some(id.into()),
        algorithm: Some(keyprov_pskc::TOTP.into()),
        data: KeyData {
            secret: Some(Secret::from_slice(secret)),
            time_interval: Some(30),
            time_drift: Some(-2),
            ..KeyData::default()
        },
        ..Key::default()
    };
    let mut container = KeyContainer::new();
    container.id = Some("rsa-test".into());
    for (id, secret) in [("a", &b"12345678901234567890"[..]), ("b", &[0u8; 32][..])] {
        container.key_packages.push(KeyPackage {
            keys: vec![key(id, secret)],
            ..KeyPackage::default()
        });
    }
    container
}

#[test]
fn both_rsa_schemes_round_trip_and_a_wrong_key_is_reported() {
    let private = PrivateKey::generate();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let pkcs8 = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let pkcs1 = private.to_pkcs1_pem(LineEnding::LF).unwrap();
    let public = RsaPublicKey::from_pem(&public_pem).unwrap();
    let original = container();
    for cipher in [Cipher::RsaOaepMgf1p, Cipher::Rsa1_5] {
        let protection = Protection::PublicKey {
            key: public.clone(),
            cipher,
        };
        let xml = write(&original, &protection).unwrap();
        assert!(String::from_utf8_lossy(&xml).contains(cipher.uri()));
        for pem in [pkcs8.as_str(), pkcs1.as_str()] {
            let options = ReadOptions::with_private_key_pem(pem).unwrap();
            let read = parse(&xml, &options).unwrap();
            assert_eq!(read.key_packages, original.key_packages, "{cipher:?}");
        }
        // PKCS #1 v1.5 rejects implicitly: without a certificate in the file a wrong key
        // cannot be told (the CLI tests cover the certificate check); OAEP always can.
        if cipher == Cipher::RsaOaepMgf1p {
            let other = PrivateKey::generate().to_pkcs8_pem(LineEnding::LF).unwrap();
            let options = ReadOptions::with_private_key_pem(&other).unwrap();
            let err = parse(&xml, &options).unwrap_err();
            assert!(matches!(err, Error::WrongKey { .. }), "{err}");
        }
    }
}

#[test]
fn bad_pem_is_a_clear_error() {
    let err = ReadOptions::with_private_key_pem("not a key").unwrap_err();
    assert!(err.to_string().contains("not an RSA private key"), "{err}");
    assert!(
        RsaPublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
            .is_err()
    );
}
