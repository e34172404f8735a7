//! Key derivation and the protocol MACs (RFC 6063 §§4.1.2, 4.2.3, 4.2.4, 5.2.2).

use sha2::{Digest, Sha256};

use crate::prf::{Prf, PrfError};
use crate::secret::Secret;

/// Label of the K_PROV derivation.
const KEY_GENERATION: &[u8] = b"Key generation";
/// Label of the key confirmation MAC.
const MAC1: &[u8] = b"MAC 1 computation";
/// Label of the 2-pass server authentication MAC.
const MAC2: &[u8] = b"MAC 2 computation";
/// Label of the PRF/XOR nonce encryption.
const ENCRYPTION: &[u8] = b"Encryption";
/// Length of the key confirmation MAC (= len(msg_hash)).
pub const MAC_LEN: usize = 32;

/// K_PROV split into its halves: K_MAC first, K_TOKEN second (§4.1.2; decision D8).
#[derive(Debug, Clone)]
pub struct ProvisioningKeys {
    /// The key of the key-confirmation MAC, kept for later renewals (K_MAC').
    pub k_mac: Secret,
    /// The OTP key, truncated to the key type's length.
    pub k_token: Secret,
}

/// The length of each K_PROV half: the larger of the token length and the MAC key length.
pub fn half_len(prf: Prf, token_len: usize) -> usize {
    token_len.max(prf.mac_key_len())
}

/// Splits K_PROV (`2 * half_len` octets) and truncates each half from the front.
pub fn split(prf: Prf, k_prov: &Secret, token_len: usize) -> Option<ProvisioningKeys> {
    let half = half_len(prf, token_len);
    if k_prov.len() != 2 * half {
        return None;
    }
    let bytes = k_prov.expose();
    Some(ProvisioningKeys {
        k_mac: Secret::from_slice(&bytes[..prf.mac_key_len()]),
        k_token: Secret::from_slice(&bytes[half..half + token_len]),
    })
}

/// 4-pass K_PROV = DSKPP-PRF(R_C, "Key generation" || K || R_S, 2 * half).
pub fn four_pass_k_prov(
    prf: Prf,
    r_c: &Secret,
    k: &[u8],
    r_s: &[u8],
    token_len: usize,
) -> Result<Secret, PrfError> {
    let len = 2 * half_len(prf, token_len);
    prf.derive(r_c.expose(), &[KEY_GENERATION, k, r_s], len)
}

/// PRF/XOR nonce encryption (§4.2.3): `DSKPP-PRF(K_SHARED, "Encryption" || R_S, len) XOR R_C`.
/// Decryption is the same operation.
pub fn xor_nonce(prf: Prf, k_shared: &Secret, r_s: &[u8], data: &[u8]) -> Result<Secret, PrfError> {
    let ds = prf.derive(k_shared.expose(), &[ENCRYPTION, r_s], data.len())?;
    let out = ds.expose().iter().zip(data).map(|(a, b)| a ^ b).collect();
    Ok(Secret::new(out))
}

/// msg_hash = SHA-256 over the exact octets of the messages exchanged so far.
pub fn msg_hash(messages: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for m in messages {
        hasher.update(m);
    }
    hasher.finalize().into()
}

/// 4-pass key confirmation MAC: DSKPP-PRF(K_MAC, "MAC 1 computation" || msg_hash, 32).
pub fn four_pass_mac(prf: Prf, k_mac: &Secret, msg_hash: &[u8; 32]) -> Result<Secret, PrfError> {
    prf.derive(k_mac.expose(), &[MAC1, msg_hash], MAC_LEN)
}

/// 2-pass key confirmation MAC: DSKPP-PRF(K_MAC, "MAC 1 computation" || msg_hash || ServerID, 32).
pub fn two_pass_mac(
    prf: Prf,
    k_mac: &Secret,
    msg_hash: &[u8; 32],
    server_id: &str,
) -> Result<Secret, PrfError> {
    prf.derive(
        k_mac.expose(),
        &[MAC1, msg_hash, server_id.as_bytes()],
        MAC_LEN,
    )
}

/// 2-pass server authentication MAC for a renewal, keyed with the old K_MAC':
/// DSKPP-PRF(K_MAC', "MAC 2 computation" || ServerID || R_C, 32) (decision D11).
pub fn two_pass_renewal_mac(
    prf: Prf,
    k_mac_old: &Secret,
    server_id: &str,
    r_c: &[u8],
) -> Result<Secret, PrfError> {
    prf.derive(
        k_mac_old.expose(),
        &[MAC2, server_id.as_bytes(), r_c],
        MAC_LEN,
    )
}

/// 4-pass renewal MAC in ServerHello, keyed with the old K_MAC':
/// DSKPP-PRF(K_MAC', "MAC 1 computation" || [ClientHello nonce] || R_S, len(R_S))
/// (the input string is unstated in the RFC; decision D10).
pub fn four_pass_renewal_mac(
    prf: Prf,
    k_mac_old: &Secret,
    hello_nonce: Option<&[u8]>,
    r_s: &[u8],
) -> Result<Secret, PrfError> {
    prf.derive(
        k_mac_old.expose(),
        &[MAC1, hello_nonce.unwrap_or(&[]), r_s],
        r_s.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: u8, b: u8) -> Vec<u8> {
        (a..=b).collect()
    }

    /// digest §2.6(b), the worked 4-pass run with prf-sha256 and an HOTP (20-octet) key.
    #[test]
    fn worked_four_pass_run() {
        let r_c = Secret::new(range(0x00, 0x0f));
        let r_s = range(0x10, 0x1f);
        let k = Secret::new(range(0x20, 0x2f));

        let enc = xor_nonce(Prf::Sha256, &k, &r_s, r_c.expose()).unwrap();
        assert_eq!(
            hex::encode(enc.expose()),
            "4177a4cce01aad591458334cd3ae9ff7"
        );
        let dec = xor_nonce(Prf::Sha256, &k, &r_s, enc.expose()).unwrap();
        assert_eq!(dec.expose(), r_c.expose());

        let k_prov = four_pass_k_prov(Prf::Sha256, &r_c, k.expose(), &r_s, 20).unwrap();
        assert_eq!(
            hex::encode(k_prov.expose()),
            "f37bb23ccfb74fbc96cf21e24031ee1d9efb727ee9985dba3dc356b6939c8c9d\
             4a6385ad3ff372ffa351bac44d99ad7ab20cf2cdfaa0e4c29a56b6d5f9c2f5ac"
        );
        let keys = split(Prf::Sha256, &k_prov, 20).unwrap();
        assert_eq!(
            hex::encode(keys.k_token.expose()),
            "4a6385ad3ff372ffa351bac44d99ad7ab20cf2cd"
        );
        assert_eq!(keys.k_mac.expose(), &k_prov.expose()[..32]);

        let hash = msg_hash(&[b"<m1/>", b"<m2/>", b"<m3/>"]);
        assert_eq!(
            hex::encode(hash),
            "4e5cca32ce146c691c9dbeb1392f63a5b5fc67f11594866faed78ccafd4cf7c5"
        );
        let mac = four_pass_mac(Prf::Sha256, &keys.k_mac, &hash).unwrap();
        assert_eq!(
            hex::encode(mac.expose()),
            "387598d2b2617be529e7387d130ea6d114654f0a30156754cfc827b463384570"
        );
    }

    #[test]
    fn aes_halves_follow_the_length_rule() {
        // HOTP 20 octets with prf-aes-128: halves of 20, K_MAC = first 16 of the first half.
        assert_eq!(half_len(Prf::Aes128, 20), 20);
        let k_prov = Secret::new(range(0, 39));
        let keys = split(Prf::Aes128, &k_prov, 20).unwrap();
        assert_eq!(keys.k_mac.expose(), &range(0, 15)[..]);
        assert_eq!(keys.k_token.expose(), &range(20, 39)[..]);
        assert!(split(Prf::Aes128, &k_prov, 16).is_none());
    }
}
