//! ValueMAC (RFC 6030 §6.1.1) and PBKDF2 key derivation (§6.2): HMAC with SHA-1 and the
//! SHA-2 family, verified in constant time.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::algorithm::Hmac;
use crate::secret::Secret;

/// HMAC of `data` under `key`.
pub fn hmac(algorithm: Hmac, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Hmac::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, data),
        Hmac::Sha224 => run::<hmac::Hmac<sha2::Sha224>>(key, data),
        Hmac::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, data),
        Hmac::Sha384 => run::<hmac::Hmac<sha2::Sha384>>(key, data),
        Hmac::Sha512 => run::<hmac::Hmac<sha2::Sha512>>(key, data),
    }
}

/// Constant-time check that `tag` is the HMAC of `data`. Truncated tags are not accepted.
pub fn verify(algorithm: Hmac, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let expected = hmac(algorithm, key, data);
    expected.ct_eq(tag).into()
}

/// An HMAC key set up once (inner and outer pads hashed) and cloned for each value, so that
/// a file's thousands of ValueMACs do not redo the key schedule. Zeroized on drop.
#[derive(Clone)]
pub(crate) enum Keyed {
    Sha1(hmac::Hmac<sha1::Sha1>),
    Sha224(hmac::Hmac<sha2::Sha224>),
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha384(hmac::Hmac<sha2::Sha384>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyed([REDACTED])")
    }
}

impl Keyed {
    /// Sets up `key` for `algorithm`.
    pub(crate) fn new(algorithm: Hmac, key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the fallbacks
        // keep the code free of panics all the same.
        fn keyed<M: Mac + KeyInit>(key: &[u8]) -> M {
            <M as KeyInit>::new_from_slice(key).unwrap_or_else(|_| M::new(&Default::default()))
        }
        match algorithm {
            Hmac::Sha1 => Keyed::Sha1(keyed(key)),
            Hmac::Sha224 => Keyed::Sha224(keyed(key)),
            Hmac::Sha256 => Keyed::Sha256(keyed(key)),
            Hmac::Sha384 => Keyed::Sha384(keyed(key)),
            Hmac::Sha512 => Keyed::Sha512(keyed(key)),
        }
    }

    /// Constant-time check that `tag` is the HMAC of `data` (full length only).
    pub(crate) fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + Clone>(mac: &M, data: &[u8], tag: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(data);
            mac.finalize().into_bytes().as_slice().ct_eq(tag).into()
        }
        match self {
            Keyed::Sha1(mac) => run(mac, data, tag),
            Keyed::Sha224(mac) => run(mac, data, tag),
            Keyed::Sha256(mac) => run(mac, data, tag),
            Keyed::Sha384(mac) => run(mac, data, tag),
            Keyed::Sha512(mac) => run(mac, data, tag),
        }
    }
}

/// PBKDF2 (RFC 8018 §5.2) with the HMAC `prf`.
pub fn pbkdf2(prf: Hmac, password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Secret {
    let mut out = vec![0u8; len];
    match prf {
        Hmac::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out),
        Hmac::Sha224 => pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, iterations, &mut out),
        Hmac::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out),
        Hmac::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, iterations, &mut out),
        Hmac::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, &mut out),
    }
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    #[test]
    fn rfc2202_and_rfc4231_case_2() {
        let data = b"what do ya want for nothing?";
        let sha1 = hmac(Hmac::Sha1, b"Jefe", data);
        assert_eq!(sha1, h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
        let sha256 = hmac(Hmac::Sha256, b"Jefe", data);
        assert_eq!(
            sha256,
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let sha224 = hmac(Hmac::Sha224, b"Jefe", data);
        assert_eq!(
            sha224,
            h("a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44")
        );
        assert!(verify(Hmac::Sha1, b"Jefe", data, &sha1));
        assert!(!verify(Hmac::Sha1, b"Jefe", data, &sha1[..19]));
        for algorithm in Hmac::ALL {
            assert_eq!(hmac(algorithm, b"k", b"d").len(), algorithm.output_len());
        }
    }

    #[test]
    fn keyed_verify_agrees_with_hmac() {
        let data = b"what do ya want for nothing?";
        for algorithm in Hmac::ALL {
            let keyed = Keyed::new(algorithm, b"Jefe");
            let tag = hmac(algorithm, b"Jefe", data);
            assert!(keyed.verify(data, &tag));
            assert!(
                keyed.verify(data, &tag),
                "a second use starts from the same key"
            );
            assert!(!keyed.verify(data, &tag[..tag.len() - 1]));
            assert!(!keyed.verify(b"other", &tag));
        }
    }

    #[test]
    fn rfc6070_pbkdf2_sha1() {
        let key = pbkdf2(Hmac::Sha1, b"password", b"salt", 2, 20);
        assert_eq!(key.expose(), h("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"));
    }

    #[test]
    fn rfc6030_figure7_derivation() {
        let salt = crate::values::base64_decode("Ej7/PEpyEpw=").unwrap();
        let key = pbkdf2(Hmac::Sha1, b"qwerty", &salt, 1000, 16);
        assert_eq!(key.expose(), h("651e63cd57008476af1ff6422cd02e41"));
    }
}
