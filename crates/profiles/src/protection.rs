//! Choosing the file protection a target can open.
//!
//! privacyIDEA and LinOTP decrypt only AES-128-CBC with an HMAC-SHA1 ValueMAC, derive password
//! keys with PBKDF2-HMAC-SHA1 and take a pre-shared key of exactly 16 bytes (privacyIDEA's API
//! wants 32 hex digits); LinOTP also wants a 6 to 64 character ASCII password. FreeIPA reads
//! AES-CBC of every size and honours the PBKDF2 PRF, but only opens a file whose
//! `EncryptionKey` names its key. None of them implements RSA key transport (§6.3).

use keyprov_pskc::{Cipher, Hmac, Protection, RsaPublicKey, Secret};

use crate::error::ProfileError;
use crate::rules::Rules;
use crate::target::Target;

/// PBKDF2 iterations written in password-protected exports (python-pskc's default).
pub const PBKDF2_ITERATIONS: u32 = 100_000;

/// `ds:KeyName` written for a pre-shared key.
pub const PSK_KEY_NAME: &str = "Pre-shared-key";

/// `xenc11:MasterKeyName` written for a password.
pub const PASSWORD_KEY_NAME: &str = "Password";

/// How the operator asked for the file to be protected.
#[derive(Debug, Clone)]
pub enum ProtectionRequest {
    /// No encryption (only for an already protected channel).
    Plain,
    /// A password, stretched with PBKDF2.
    Password(Secret),
    /// A pre-shared AES key.
    PreSharedKey(Secret),
    /// RSA key transport to the holder of this key.
    PublicKey(RsaPublicKey),
}

/// The [`Protection`] to write for `target`, or why the target cannot open such a file.
pub fn protection(target: Target, request: ProtectionRequest) -> Result<Protection, ProfileError> {
    let rules = Rules::of(target);
    let refuse = |reason: String| ProfileError::Protection { target, reason };
    // privacyIDEA and LinOTP hard-code HMAC-SHA1 for ValueMAC and for the PBKDF2 PRF.
    let (mac, prf) = match target {
        Target::Generic | Target::FreeIpa => (Hmac::Sha256, Hmac::Sha256),
        Target::PrivacyIdea | Target::LinOtp => (Hmac::Sha1, Hmac::Sha1),
    };
    match request {
        ProtectionRequest::Plain => Ok(Protection::Plain),
        ProtectionRequest::PreSharedKey(key) => {
            if !rules.psk_lengths.contains(&key.len()) {
                let lengths: Vec<String> = rules
                    .psk_lengths
                    .iter()
                    .map(|n| format!("{} hex digits", n * 2))
                    .collect();
                return Err(refuse(format!(
                    "a pre-shared key of {} hex digits; it takes {}",
                    key.len() * 2,
                    lengths.join(" or ")
                )));
            }
            Ok(Protection::PreSharedKey {
                cipher: aes_cbc(key.len()),
                key,
                key_name: Some(PSK_KEY_NAME.into()),
                mac,
            })
        }
        ProtectionRequest::Password(password) => {
            check_password(&rules, &password).map_err(refuse)?;
            Ok(Protection::Password {
                password,
                iterations: PBKDF2_ITERATIONS,
                prf,
                salt: None,
                key_name: Some(PASSWORD_KEY_NAME.into()),
                cipher: Cipher::Aes128Cbc,
                mac,
            })
        }
        ProtectionRequest::PublicKey(key) if rules.certificate => Ok(Protection::PublicKey {
            key,
            cipher: Cipher::RsaOaepMgf1p,
        }),
        ProtectionRequest::PublicKey(_) => Err(refuse(
            "RSA key transport (certificate protection) is not implemented by its importer; \
             use a password or a pre-shared key"
                .into(),
        )),
    }
}

fn aes_cbc(key_len: usize) -> Cipher {
    match key_len {
        24 => Cipher::Aes192Cbc,
        32 => Cipher::Aes256Cbc,
        _ => Cipher::Aes128Cbc,
    }
}

fn check_password(rules: &Rules, password: &Secret) -> Result<(), String> {
    if password.is_empty() {
        return Err("an empty password".into());
    }
    let Ok(text) = std::str::from_utf8(password.expose()) else {
        return Err("a password that is not UTF-8 text".into());
    };
    if rules.password_ascii && !text.is_ascii() {
        return Err("a password with non-ASCII characters".into());
    }
    if let Some(range) = &rules.password_chars {
        let count = text.chars().count();
        if !range.contains(&count) {
            return Err(format!(
                "a password of {count} characters; it takes {} to {}",
                range.start(),
                range.end()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(len: usize) -> ProtectionRequest {
        ProtectionRequest::PreSharedKey(Secret::new(vec![7; len]))
    }

    #[test]
    fn privacyidea_takes_only_aes128_with_hmac_sha1() {
        match protection(Target::PrivacyIdea, psk(16)).unwrap() {
            Protection::PreSharedKey {
                cipher,
                mac,
                key_name,
                ..
            } => {
                assert_eq!((cipher, mac), (Cipher::Aes128Cbc, Hmac::Sha1));
                assert_eq!(key_name.as_deref(), Some(PSK_KEY_NAME));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = protection(Target::PrivacyIdea, psk(32)).unwrap_err();
        assert!(
            err.to_string()
                .contains("64 hex digits; it takes 32 hex digits"),
            "{err}"
        );
    }

    #[test]
    fn freeipa_takes_every_aes_size_and_names_the_key() {
        match protection(Target::FreeIpa, psk(32)).unwrap() {
            Protection::PreSharedKey {
                cipher, key_name, ..
            } => {
                assert_eq!(cipher, Cipher::Aes256Cbc);
                assert!(key_name.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn linotp_password_length_and_charset() {
        let short = ProtectionRequest::Password(Secret::from_slice(b"12345"));
        let err = protection(Target::LinOtp, short).unwrap_err();
        assert!(
            err.to_string().contains("5 characters; it takes 6 to 64"),
            "{err}"
        );
        let accented = ProtectionRequest::Password(Secret::from_slice("pässword".as_bytes()));
        assert!(protection(Target::LinOtp, accented).is_err());
        let good = ProtectionRequest::Password(Secret::from_slice(b"123456"));
        match protection(Target::LinOtp, good).unwrap() {
            Protection::Password {
                prf, cipher, mac, ..
            } => {
                assert_eq!(
                    (prf, cipher, mac),
                    (Hmac::Sha1, Cipher::Aes128Cbc, Hmac::Sha1)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refusals_never_show_the_secret() {
        let err = protection(
            Target::LinOtp,
            ProtectionRequest::Password(Secret::from_slice(b"x")),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("\"x\""));
    }
}
