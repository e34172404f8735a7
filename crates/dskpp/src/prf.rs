//! DSKPP-PRF (RFC 6063 Appendix D): the counter-mode PRF built on AES-CMAC or HMAC-SHA-256.
//!
//! `B_i = F(k, INT(i) || s)` for `i = 1..n`, the output being the first `dsLen` octets of
//! `B_1 || … || B_n`. The counter is a 4-octet big-endian integer, starts at 1 and is prepended
//! (the CT-KIP products appended it; see docs/dskpp.md).

use cmac::Cmac;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;
use crate::uri;

/// The two registered DSKPP-PRF instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// DSKPP-PRF-AES: F = AES-128-CMAC, 16-octet blocks, 16-octet keys only.
    Aes128,
    /// DSKPP-PRF-SHA256: F = HMAC-SHA-256, 32-octet blocks.
    Sha256,
}

/// Why a PRF evaluation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrfError {
    /// AES-128-CMAC takes exactly 16 key octets.
    #[error("DSKPP-PRF-AES needs a 16-octet key, got {0} octets")]
    KeyLength(usize),
    /// The RFC requires k to have at least 16 octets.
    #[error("DSKPP-PRF key of {0} octets is shorter than the 16 octets required")]
    KeyTooShort(usize),
    /// dsLen > (2^32 - 1) * bLen.
    #[error("derived data too long ({0} octets)")]
    TooLong(usize),
}

impl Prf {
    /// Both instances, in the order this implementation prefers them.
    pub const ALL: [Prf; 2] = [Prf::Sha256, Prf::Aes128];

    /// The algorithm URI used in `SupportedMacAlgorithms` and `MacAlgorithm`.
    pub fn uri(self) -> &'static str {
        match self {
            Prf::Aes128 => uri::PRF_AES_128,
            Prf::Sha256 => uri::PRF_SHA256,
        }
    }

    /// The instance named by `uri`, if it is one of the two registered ones.
    pub fn from_uri(uri: &str) -> Option<Prf> {
        Prf::ALL.into_iter().find(|p| p.uri() == uri)
    }

    /// bLen: the output size of F.
    pub fn block_len(self) -> usize {
        match self {
            Prf::Aes128 => 16,
            Prf::Sha256 => 32,
        }
    }

    /// The length of a MAC key (K_MAC) for this PRF: what its F takes naturally.
    pub fn mac_key_len(self) -> usize {
        self.block_len()
    }

    /// DSKPP-PRF(k, s, dsLen) with `s` given as the concatenation of `parts`.
    pub fn derive(self, k: &[u8], parts: &[&[u8]], ds_len: usize) -> Result<Secret, PrfError> {
        if k.len() < 16 {
            return Err(PrfError::KeyTooShort(k.len()));
        }
        if self == Prf::Aes128 && k.len() != 16 {
            return Err(PrfError::KeyLength(k.len()));
        }
        let blocks = ds_len.div_ceil(self.block_len());
        if blocks as u64 > u64::from(u32::MAX) {
            return Err(PrfError::TooLong(ds_len));
        }
        let mut out = Vec::with_capacity(blocks * self.block_len());
        for i in 1..=blocks as u32 {
            self.block(k, &i.to_be_bytes(), parts, &mut out);
        }
        out.truncate(ds_len);
        Ok(Secret::new(out))
    }

    fn block(self, k: &[u8], counter: &[u8; 4], parts: &[&[u8]], out: &mut Vec<u8>) {
        match self {
            Prf::Aes128 => {
                // The key length was checked to be 16 by `derive`.
                let mut mac = <Cmac<aes::Aes128> as KeyInit>::new_from_slice(k)
                    .expect("AES-128 key length checked by the caller");
                Mac::update(&mut mac, counter);
                for part in parts {
                    Mac::update(&mut mac, part);
                }
                out.extend_from_slice(&mac.finalize().into_bytes());
            }
            Prf::Sha256 => {
                // HMAC accepts keys of any length.
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k)
                    .expect("HMAC takes keys of every length");
                mac.update(counter);
                for part in parts {
                    mac.update(part);
                }
                out.extend_from_slice(&mac.finalize().into_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// s = "Key generation" || 16 zero octets || 10..1f (digest §2.6a).
    fn s() -> Vec<u8> {
        let mut s = b"Key generation".to_vec();
        s.extend_from_slice(&[0u8; 16]);
        s.extend((0x10u8..=0x1f).collect::<Vec<_>>());
        s
    }

    fn k(len: u8) -> Vec<u8> {
        (0..len).collect()
    }

    fn run(prf: Prf, k: &[u8], ds_len: usize) -> String {
        hex::encode(prf.derive(k, &[&s()], ds_len).unwrap().expose())
    }

    #[test]
    fn appendix_d_vectors() {
        let vectors = include_str!("../tests/vectors/digest/prf.txt");
        let mut checked = 0;
        for line in vectors
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let prf = match cols[0] {
                "AES" => Prf::Aes128,
                "SHA256" => Prf::Sha256,
                other => panic!("unknown PRF {other}"),
            };
            let key = k(cols[1].parse().unwrap());
            assert_eq!(run(prf, &key, cols[2].parse().unwrap()), cols[3], "{line}");
            checked += 1;
        }
        assert_eq!(checked, 5);
    }

    #[test]
    fn counter_starts_at_one_not_zero() {
        // digest §2.6d: the Ver-ID value is produced with counter 0; the conformant one is this.
        let out = Prf::Sha256.derive(b"12345678901234567890123456789012", &[b"test"], 32);
        assert_eq!(
            hex::encode(out.unwrap().expose()),
            "8b310aee7f76d3cc954138e719c54d1b1872f9942cb8e018f9492e1206ca1714"
        );
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(
            Prf::Aes128.derive(&k(32), &[], 16).unwrap_err(),
            PrfError::KeyLength(32)
        );
        assert_eq!(
            Prf::Sha256.derive(&k(8), &[], 16).unwrap_err(),
            PrfError::KeyTooShort(8)
        );
    }

    #[test]
    fn parts_are_concatenated() {
        let whole = Prf::Aes128.derive(&k(16), &[b"abcdef"], 40).unwrap();
        let split = Prf::Aes128
            .derive(&k(16), &[b"ab", b"", b"cdef"], 40)
            .unwrap();
        assert_eq!(whole.expose(), split.expose());
        assert_eq!(whole.len(), 40);
    }
}
