//! The OTP hash of a batch (issue 7) in the three vocabularies it crosses: the API's
//! [`OtpHash`], the store's [`HashAlgorithm`] column and the drivers' hash, plus the check
//! that a token can compute the hash a batch asks for.

use keyprov_store::HashAlgorithm;

use crate::api::OtpHash;

/// The store's column value of an API hash.
pub(crate) fn stored(hash: OtpHash) -> HashAlgorithm {
    match hash {
        OtpHash::Sha1 => HashAlgorithm::Sha1,
        OtpHash::Sha256 => HashAlgorithm::Sha256,
        OtpHash::Sha512 => HashAlgorithm::Sha512,
    }
}

/// The API hash of a stored batch or key (listing; a re-issued key keeps its old one).
pub(crate) fn listed(hash: HashAlgorithm) -> OtpHash {
    match hash {
        HashAlgorithm::Sha1 => OtpHash::Sha1,
        HashAlgorithm::Sha256 => OtpHash::Sha256,
        HashAlgorithm::Sha512 => OtpHash::Sha512,
    }
}

/// The drivers' hash of a stored key's hash.
pub(crate) fn driver(hash: HashAlgorithm) -> Option<keyprov_drivers::OtpHash> {
    match hash {
        HashAlgorithm::Sha1 => Some(keyprov_drivers::OtpHash::Sha1),
        HashAlgorithm::Sha256 => Some(keyprov_drivers::OtpHash::Sha256),
        HashAlgorithm::Sha512 => None,
    }
}

/// Why a token cannot take keys of `hash`, or `None` when it can: the message a failed token
/// shows, naming the token, the hash and what it computes instead.
pub(crate) fn unsupported(
    hash: HashAlgorithm,
    caps: &keyprov_drivers::Capabilities,
    token: &str,
) -> Option<String> {
    if driver(hash).is_some_and(|h| caps.hashes.contains(&h)) {
        return None;
    }
    let known: Vec<&str> = caps.hashes.iter().map(|h| h.as_str()).collect();
    Some(format!(
        "{token} cannot compute {hash} OTPs (it supports {}); no key was obtained for it",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_and_store_names_agree() {
        for hash in [OtpHash::Sha1, OtpHash::Sha256, OtpHash::Sha512] {
            assert_eq!(stored(hash).as_str(), hash.as_str());
            assert_eq!(listed(stored(hash)), hash);
        }
        for hash in [OtpHash::Sha1, OtpHash::Sha256] {
            assert_eq!(driver(stored(hash)).unwrap().as_str(), hash.as_str());
        }
        assert_eq!(driver(HashAlgorithm::Sha512), None);
    }
}
