//! Authentication Data (RFC 6063 §3.4.1.2): the MAC that proves knowledge of the AC password.
//!
//! ```text
//! K_AC = PBKDF2-HMAC-SHA1(password, salt = R_C || K, iter_count, 16)
//! MAC  = DSKPP-PRF(K_AC, ClientID || URL_S || R_C || [R_S], 16)
//! ```

use crate::prf::{Prf, PrfError};
use crate::secret::Secret;

/// Length of K_AC and of the AD MAC.
pub const AD_MAC_LEN: usize = 16;
/// The floor the RFC sets for the iteration count when K is public.
pub const MIN_ITERATIONS_PUBLIC_K: u32 = 100_000;

/// K_AC from the AC password, the client nonce and the key K (K_SERVER's modulus, K_SHARED, the
/// client's public modulus, or empty for passphrase-wrap; see docs/dskpp.md D3, D4).
pub fn k_ac(password: &[u8], r_c: &[u8], k: &[u8], iterations: u32) -> Secret {
    let mut salt = Vec::with_capacity(r_c.len() + k.len());
    salt.extend_from_slice(r_c);
    salt.extend_from_slice(k);
    let mut out = vec![0u8; AD_MAC_LEN];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, &salt, iterations, &mut out);
    let salt = Secret::new(salt);
    drop(salt);
    Secret::new(out)
}

/// Inputs of the AD MAC besides K_AC.
#[derive(Debug, Clone, Copy)]
pub struct AdInput<'a> {
    /// The ClientID value string.
    pub client_id: &'a str,
    /// URL_S: the server URL as the client addressed it.
    pub url_s: &'a str,
    /// The client nonce.
    pub r_c: &'a [u8],
    /// The server nonce (4-pass only).
    pub r_s: Option<&'a [u8]>,
}

/// The AD MAC.
pub fn ad_mac(prf: Prf, k_ac: &Secret, input: &AdInput<'_>) -> Result<Secret, PrfError> {
    let r_s = input.r_s.unwrap_or(&[]);
    prf.derive(
        k_ac.expose(),
        &[
            input.client_id.as_bytes(),
            input.url_s.as_bytes(),
            input.r_c,
            r_s,
        ],
        AD_MAC_LEN,
    )
}

/// Whether `iterations` is acceptable for this K: at least 100,000 when K is public, while a
/// secret K (K_SHARED, passphrase) allows the count of 1 the RFC prescribes for 2-pass.
pub fn iterations_acceptable(iterations: u32, k_is_secret: bool) -> bool {
    iterations >= MIN_ITERATIONS_PUBLIC_K || (k_is_secret && iterations >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// digest §2.6(b): prf-sha256, R_C = 00..0f, R_S = 10..1f, K = K_SHARED = 20..2f,
    /// URL_S = https://www.example.com/dskpp, ClientID AC00000A, password 3582AF0C3E, 100000.
    #[test]
    fn worked_four_pass_ad() {
        let r_c: Vec<u8> = (0x00..=0x0f).collect();
        let r_s: Vec<u8> = (0x10..=0x1f).collect();
        let k: Vec<u8> = (0x20..=0x2f).collect();
        let kac = k_ac(b"3582AF0C3E", &r_c, &k, 100_000);
        assert_eq!(
            hex::encode(kac.expose()),
            "768d57dd1706fb8cf3aadf5d391d34d0"
        );
        let input = AdInput {
            client_id: "AC00000A",
            url_s: "https://www.example.com/dskpp",
            r_c: &r_c,
            r_s: Some(&r_s),
        };
        let mac = ad_mac(Prf::Sha256, &kac, &input).unwrap();
        assert_eq!(
            hex::encode(mac.expose()),
            "fa6b7dc40490b25aff822d0dbb814e31"
        );
    }

    #[test]
    fn iteration_floor() {
        assert!(!iterations_acceptable(1, false));
        assert!(iterations_acceptable(1, true));
        assert!(iterations_acceptable(100_000, false));
        assert!(!iterations_acceptable(0, true));
    }
}
