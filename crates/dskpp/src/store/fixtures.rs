//! Records the store tests share: an authentication code, a session and an issued key, each
//! with fixed values the tests check against.

use super::{AcRecord, IssuedKey, KeyType, NonceKey, Session};
use crate::prf::Prf;
use crate::secret::Secret;

/// An unused, never-expiring authentication code of `client_id` (password `3582AF0C3E`).
pub(crate) fn ac(client_id: &str) -> AcRecord {
    AcRecord {
        client_id: client_id.into(),
        password: Secret::from_slice(b"3582AF0C3E"),
        expires: i64::MAX,
        used: false,
        failures: 0,
    }
}

/// A 4-pass HOTP session of client `C1` under K_SHARED, created at `created`.
pub(crate) fn session(id: &str, created: i64) -> Session {
    Session {
        id: id.into(),
        created,
        client_id: Some("C1".into()),
        prf: Prf::Sha256,
        key_type: KeyType::Hotp,
        encryption: crate::uri::RSA_OAEP.into(),
        nonce_key: NonceKey::Shared,
        r_s: vec![1; 16],
        renew_key_id: None,
        client_hello: b"<a/>".to_vec(),
        server_hello: b"<b/>".to_vec(),
    }
}

/// An HOTP key of client `C1`: secret `[1; 20]`, K_MAC `[2; 32]`, counter 0, 6 digits.
pub(crate) fn key(id: &str) -> IssuedKey {
    IssuedKey {
        key_id: id.into(),
        client_id: "C1".into(),
        key_type: KeyType::Hotp,
        prf: Prf::Sha256,
        secret: Secret::from_slice(&[1; 20]),
        k_mac: Secret::from_slice(&[2; 32]),
        counter: 0,
        digits: 6,
        time_step: 30,
        issued: 1,
        server_id: "https://s/".into(),
    }
}
