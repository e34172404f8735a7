//! Value encryption (RFC 6030 §6.1, §6.3): CBC ciphers with the IV prepended and PKCS #5
//! padding (§6.4), RFC 3394/5649 key wrap for AES and Camellia (RFC 3657), RFC 3217 Triple-DES
//! key wrap, and RSA key transport with a PEM private key or an X.509 certificate.
//!
//! Failures are reported as [`Failure`] so that the caller can attach the location: a bad
//! padding or key-wrap integrity check means a wrong key, a short input means damaged data.

use aes_kw::{AesKw, AesKwp};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::typenum::Unsigned;
use cbc::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    KeyInit, KeyIvInit,
};
use des::{TdesEde2, TdesEde3};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::algorithm::Cipher;
use crate::secret::Secret;

/// Why a decryption or encryption step failed, before the location is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The key has the wrong length for the cipher.
    KeyLength,
    /// Padding or integrity check failed: wrong key (or altered data without a MAC).
    Integrity,
    /// The ciphertext cannot be valid for this cipher (length, missing IV).
    Malformed(&'static str),
    /// RSA failure (message from the rsa crate; contains no key material).
    Rsa(String),
    /// The random generator failed.
    Random,
}

/// Decrypts `data` with a symmetric `cipher`. For CBC the IV is `iv` when given (legacy
/// global IV), else the first block of `data`.
pub(crate) fn decrypt(
    cipher: Cipher,
    key: &[u8],
    data: &[u8],
    iv: Option<&[u8]>,
) -> Result<Secret, Failure> {
    if !cipher.key_lengths().contains(&key.len()) {
        return Err(Failure::KeyLength);
    }
    match cipher {
        Cipher::Aes128Cbc => cbc_decrypt::<aes::Aes128>(key, data, iv),
        Cipher::Aes192Cbc => cbc_decrypt::<aes::Aes192>(key, data, iv),
        Cipher::Aes256Cbc => cbc_decrypt::<aes::Aes256>(key, data, iv),
        Cipher::TripleDesCbc if key.len() == 16 => cbc_decrypt::<TdesEde2>(key, data, iv),
        Cipher::TripleDesCbc => cbc_decrypt::<TdesEde3>(key, data, iv),
        Cipher::Camellia128Cbc => cbc_decrypt::<camellia::Camellia128>(key, data, iv),
        Cipher::Camellia192Cbc => cbc_decrypt::<camellia::Camellia192>(key, data, iv),
        Cipher::Camellia256Cbc => cbc_decrypt::<camellia::Camellia256>(key, data, iv),
        Cipher::KwAes128 => unwrap::<aes::Aes128>(key, data),
        Cipher::KwAes192 => unwrap::<aes::Aes192>(key, data),
        Cipher::KwAes256 => unwrap::<aes::Aes256>(key, data),
        Cipher::KwCamellia128 => unwrap::<camellia::Camellia128>(key, data),
        Cipher::KwCamellia192 => unwrap::<camellia::Camellia192>(key, data),
        Cipher::KwCamellia256 => unwrap::<camellia::Camellia256>(key, data),
        Cipher::KwTripleDes if key.len() == 16 => tdes_unwrap::<TdesEde2>(key, data),
        Cipher::KwTripleDes => tdes_unwrap::<TdesEde3>(key, data),
        Cipher::Rsa1_5 | Cipher::RsaOaepMgf1p => Err(Failure::Malformed("RSA needs a private key")),
    }
}

/// Encrypts `plain` with a symmetric `cipher` (fresh random IV for CBC, prepended).
pub(crate) fn encrypt(cipher: Cipher, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, Failure> {
    if !cipher.key_lengths().contains(&key.len()) {
        return Err(Failure::KeyLength);
    }
    match cipher {
        Cipher::Aes128Cbc => cbc_encrypt::<aes::Aes128>(key, plain),
        Cipher::Aes192Cbc => cbc_encrypt::<aes::Aes192>(key, plain),
        Cipher::Aes256Cbc => cbc_encrypt::<aes::Aes256>(key, plain),
        Cipher::TripleDesCbc if key.len() == 16 => cbc_encrypt::<TdesEde2>(key, plain),
        Cipher::TripleDesCbc => cbc_encrypt::<TdesEde3>(key, plain),
        Cipher::Camellia128Cbc => cbc_encrypt::<camellia::Camellia128>(key, plain),
        Cipher::Camellia192Cbc => cbc_encrypt::<camellia::Camellia192>(key, plain),
        Cipher::Camellia256Cbc => cbc_encrypt::<camellia::Camellia256>(key, plain),
        Cipher::KwAes128 => wrap::<aes::Aes128>(key, plain),
        Cipher::KwAes192 => wrap::<aes::Aes192>(key, plain),
        Cipher::KwAes256 => wrap::<aes::Aes256>(key, plain),
        Cipher::KwCamellia128 => wrap::<camellia::Camellia128>(key, plain),
        Cipher::KwCamellia192 => wrap::<camellia::Camellia192>(key, plain),
        Cipher::KwCamellia256 => wrap::<camellia::Camellia256>(key, plain),
        Cipher::KwTripleDes if key.len() == 16 => tdes_wrap::<TdesEde2>(key, plain),
        Cipher::KwTripleDes => tdes_wrap::<TdesEde3>(key, plain),
        Cipher::Rsa1_5 | Cipher::RsaOaepMgf1p => Err(Failure::Malformed("RSA needs a public key")),
    }
}

fn cbc_decrypt<C: BlockCipherDecrypt + KeyInit>(
    key: &[u8],
    data: &[u8],
    iv: Option<&[u8]>,
) -> Result<Secret, Failure> {
    let inner = C::new_from_slice(key).map_err(|_| Failure::KeyLength)?;
    cbc_decrypt_with(inner, data, iv)
}

/// CBC decryption with a block cipher whose key schedule is already done.
fn cbc_decrypt_with<C: BlockCipherDecrypt>(
    inner: C,
    data: &[u8],
    iv: Option<&[u8]>,
) -> Result<Secret, Failure> {
    let block = C::BlockSize::USIZE;
    let (iv, body) = match iv {
        Some(iv) => (iv, data),
        None if data.len() >= block => data.split_at(block),
        None => return Err(Failure::Malformed("shorter than one IV block")),
    };
    if body.is_empty() || !body.len().is_multiple_of(block) {
        return Err(Failure::Malformed(
            "length is not a multiple of the block size",
        ));
    }
    let mode = cbc::Decryptor::<C>::inner_iv_slice_init(inner, iv)
        .map_err(|_| Failure::Malformed("IV has the wrong length"))?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = mode
        .decrypt_padded::<Pkcs7>(&mut buf)
        .map_err(|_| Failure::Integrity)?
        .len();
    buf.truncate(len);
    Ok(Secret::new(std::mem::take(&mut *buf)))
}

/// An AES-CBC key with its key schedule done once, for the many values of one file
/// (zeroized on drop by the `aes` crate).
#[derive(Clone)]
pub(crate) enum Prepared {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepared([REDACTED])")
    }
}

impl Prepared {
    /// `None` for ciphers other than AES-CBC or a key of the wrong length.
    pub(crate) fn new(cipher: Cipher, key: &[u8]) -> Option<Self> {
        match cipher {
            Cipher::Aes128Cbc => aes::Aes128::new_from_slice(key).ok().map(Prepared::Aes128),
            Cipher::Aes192Cbc => aes::Aes192::new_from_slice(key).ok().map(Prepared::Aes192),
            Cipher::Aes256Cbc => aes::Aes256::new_from_slice(key).ok().map(Prepared::Aes256),
            _ => None,
        }
    }

    /// The cipher this key is prepared for.
    pub(crate) fn cipher(&self) -> Cipher {
        match self {
            Prepared::Aes128(_) => Cipher::Aes128Cbc,
            Prepared::Aes192(_) => Cipher::Aes192Cbc,
            Prepared::Aes256(_) => Cipher::Aes256Cbc,
        }
    }

    /// Like [`decrypt`] with this cipher and key.
    pub(crate) fn decrypt(&self, data: &[u8], iv: Option<&[u8]>) -> Result<Secret, Failure> {
        match self {
            Prepared::Aes128(inner) => cbc_decrypt_with(inner.clone(), data, iv),
            Prepared::Aes192(inner) => cbc_decrypt_with(inner.clone(), data, iv),
            Prepared::Aes256(inner) => cbc_decrypt_with(inner.clone(), data, iv),
        }
    }
}

fn cbc_encrypt<C: BlockCipherEncrypt + KeyInit>(
    key: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, Failure> {
    let block = C::BlockSize::USIZE;
    let mut iv = vec![0u8; block];
    getrandom::fill(&mut iv).map_err(|_| Failure::Random)?;
    let mode = cbc::Encryptor::<C>::new_from_slices(key, &iv).map_err(|_| Failure::KeyLength)?;
    let mut buf = vec![0u8; (plain.len() / block + 1) * block];
    buf[..plain.len()].copy_from_slice(plain);
    let len = mode
        .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
        .map_err(|_| Failure::Malformed("padding buffer"))?
        .len();
    buf.truncate(len);
    iv.extend_from_slice(&buf);
    Ok(iv)
}

/// RFC 3394 unwrap, falling back to RFC 5649 (padded) when the 3394 check fails.
fn unwrap<C>(key: &[u8], data: &[u8]) -> Result<Secret, Failure>
where
    C: BlockCipherDecrypt<BlockSize = cbc::cipher::typenum::U16> + KeyInit,
{
    if data.len() < 16 || !data.len().is_multiple_of(8) {
        return Err(Failure::Malformed("key-wrap data must be 8n bytes, n >= 2"));
    }
    let mut buf = Zeroizing::new(vec![0u8; data.len()]);
    let kw = AesKw::<C>::new_from_slice(key).map_err(|_| Failure::KeyLength)?;
    if let Ok(plain) = kw.unwrap_key(data, &mut buf) {
        return Ok(Secret::from_slice(plain));
    }
    let kwp = AesKwp::<C>::new_from_slice(key).map_err(|_| Failure::KeyLength)?;
    match kwp.unwrap_key(data, &mut buf) {
        Ok(plain) => Ok(Secret::from_slice(plain)),
        Err(_) => Err(Failure::Integrity),
    }
}

/// RFC 3394 wrap for 8n-byte values (n >= 2), RFC 5649 otherwise.
fn wrap<C>(key: &[u8], plain: &[u8]) -> Result<Vec<u8>, Failure>
where
    C: BlockCipherEncrypt<BlockSize = cbc::cipher::typenum::U16> + KeyInit,
{
    let mut buf = vec![0u8; plain.len() + 16];
    let len = if plain.len() >= 16 && plain.len().is_multiple_of(8) {
        let kw = AesKw::<C>::new_from_slice(key).map_err(|_| Failure::KeyLength)?;
        kw.wrap_key(plain, &mut buf)
            .map_err(|_| Failure::Malformed("key-wrap input"))?
            .len()
    } else {
        let kwp = AesKwp::<C>::new_from_slice(key).map_err(|_| Failure::KeyLength)?;
        kwp.wrap_key(plain, &mut buf)
            .map_err(|_| Failure::Malformed("key-wrap input"))?
            .len()
    };
    buf.truncate(len);
    Ok(buf)
}

/// RFC 3217 §3.2 fixed IV of the second encryption pass.
const TDES_KW_IV: [u8; 8] = [0x4a, 0xdd, 0xa2, 0x2c, 0x79, 0xe8, 0x21, 0x05];

/// RFC 3217 §3.2 "Key Unwrap".
fn tdes_unwrap<C: BlockCipherDecrypt + KeyInit>(
    key: &[u8],
    data: &[u8],
) -> Result<Secret, Failure> {
    if data.len() < 24 || !data.len().is_multiple_of(8) {
        return Err(Failure::Malformed(
            "3DES key-wrap data must be 8n bytes, n >= 3",
        ));
    }
    // 3-4. Decrypt with the fixed IV, then reverse the octets: TEMP2 = IV || TEMP1.
    let mut temp3 = Zeroizing::new(data.to_vec());
    cbc::Decryptor::<C>::new_from_slices(key, &TDES_KW_IV)
        .map_err(|_| Failure::KeyLength)?
        .decrypt_padded::<NoPadding>(&mut temp3)
        .map_err(|_| Failure::Integrity)?;
    temp3.reverse();
    let (iv, temp1) = temp3.split_at(8);

    // 5-6. Decrypt TEMP1 with that IV: WKCKS = CEK || ICV.
    let mut wkcks = Zeroizing::new(temp1.to_vec());
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| Failure::KeyLength)?
        .decrypt_padded::<NoPadding>(&mut wkcks)
        .map_err(|_| Failure::Integrity)?;

    // 7. Check the CMS key checksum (first 8 bytes of SHA-1 of the CEK).
    let (cek, icv) = wkcks.split_at(wkcks.len() - 8);
    let digest = Sha1::digest(cek);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&digest[..8], icv)) {
        return Err(Failure::Integrity);
    }
    Ok(Secret::from_slice(cek))
}

/// RFC 3217 §3.1 "Key Wrap".
fn tdes_wrap<C: BlockCipherEncrypt + KeyInit>(
    key: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, Failure> {
    if plain.is_empty() || !plain.len().is_multiple_of(8) {
        return Err(Failure::Malformed(
            "3DES key wrap needs a value of 8n bytes",
        ));
    }
    // 1-2. WKCKS = CEK || first 8 bytes of SHA-1(CEK).
    let mut wkcks = Zeroizing::new(plain.to_vec());
    wkcks.extend_from_slice(&Sha1::digest(plain)[..8]);

    // 3-5. Random IV, TEMP1 = 3DES-CBC(KEK, IV, WKCKS), TEMP2 = IV || TEMP1.
    let mut iv = [0u8; 8];
    getrandom::fill(&mut iv).map_err(|_| Failure::Random)?;
    let len = wkcks.len();
    cbc::Encryptor::<C>::new_from_slices(key, &iv)
        .map_err(|_| Failure::KeyLength)?
        .encrypt_padded::<NoPadding>(&mut wkcks, len)
        .map_err(|_| Failure::Malformed("3DES key-wrap block"))?;
    let mut temp = iv.to_vec();
    temp.extend_from_slice(&wkcks);

    // 6-7. Reverse the octets and encrypt again with the fixed IV.
    temp.reverse();
    let len = temp.len();
    cbc::Encryptor::<C>::new_from_slices(key, &TDES_KW_IV)
        .map_err(|_| Failure::KeyLength)?
        .encrypt_padded::<NoPadding>(&mut temp, len)
        .map_err(|_| Failure::Malformed("3DES key-wrap block"))?;
    Ok(temp)
}

/// An RSA private key for asymmetric key transport (§6.3).
#[derive(Clone)]
pub struct RsaPrivateKey(rsa::PrivateKey);

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPrivateKey([REDACTED])")
    }
}

impl RsaPrivateKey {
    /// Parses a PKCS #8 (`PRIVATE KEY`) or PKCS #1 (`RSA PRIVATE KEY`) PEM document.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::PrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
            .map(RsaPrivateKey)
            .map_err(|_| "not an RSA private key in PKCS #8 or PKCS #1 PEM form".to_owned())
    }

    /// True when this is the private half of `public`.
    pub fn matches(&self, public: &RsaPublicKey) -> bool {
        self.0.to_public_key() == public.key
    }

    pub(crate) fn decrypt(&self, cipher: Cipher, data: &[u8]) -> Result<Secret, Failure> {
        let plain = match cipher {
            Cipher::Rsa1_5 => self.0.pkcs1v15_decrypt(data),
            Cipher::RsaOaepMgf1p => self.0.oaep_decrypt::<Sha1>(data),
            _ => return Err(Failure::Malformed("not an RSA algorithm")),
        };
        plain.map(Secret::new).map_err(|_| Failure::Integrity)
    }
}

/// An RSA public key (from an X.509 certificate or a public key PEM) to write for.
#[derive(Debug, Clone)]
pub struct RsaPublicKey {
    key: rsa::PublicKey,
    /// The certificate, DER, to embed as `ds:X509Certificate` (absent for bare keys).
    pub(crate) certificate: Option<Vec<u8>>,
}

impl RsaPublicKey {
    /// Parses a `CERTIFICATE`, `PUBLIC KEY` or `RSA PUBLIC KEY` PEM document.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        if let Some(der) = pem_block(pem, "CERTIFICATE") {
            let spki = certificate_spki(&der).ok_or("malformed X.509 certificate")?;
            let key = rsa::PublicKey::from_public_key_der(spki)
                .map_err(|_| "the certificate does not hold an RSA public key".to_owned())?;
            return Ok(RsaPublicKey {
                key,
                certificate: Some(der),
            });
        }
        rsa::PublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::PublicKey::from_pkcs1_pem(pem))
            .map(|key| RsaPublicKey {
                key,
                certificate: None,
            })
            .map_err(|_| "not an X.509 certificate or RSA public key in PEM form".to_owned())
    }

    /// The public key of a DER X.509 certificate (as in `ds:X509Certificate`).
    pub fn from_certificate_der(der: Vec<u8>) -> Result<Self, String> {
        use rsa::pkcs8::DecodePublicKey;
        let spki = certificate_spki(&der).ok_or("malformed X.509 certificate")?;
        let key = rsa::PublicKey::from_public_key_der(spki)
            .map_err(|_| "the certificate does not hold an RSA public key".to_owned())?;
        Ok(RsaPublicKey {
            key,
            certificate: Some(der),
        })
    }

    /// True when `signature` is this key's RSASSA-PKCS1-v1_5 signature (RFC 8017 §8.2) of
    /// `digest_info`, a DER `DigestInfo` (hash algorithm header and hash).
    pub(crate) fn verify_pkcs1v15(&self, digest_info: &[u8], signature: &[u8]) -> bool {
        let scheme = rsa::Pkcs1v15Sign::new_unprefixed();
        self.key.verify(scheme, digest_info, signature).is_ok()
    }

    pub(crate) fn encrypt(&self, cipher: Cipher, plain: &[u8]) -> Result<Vec<u8>, Failure> {
        let result = match cipher {
            Cipher::Rsa1_5 => self.key.pkcs1v15_encrypt(plain),
            Cipher::RsaOaepMgf1p => self.key.oaep_encrypt::<Sha1>(plain),
            _ => return Err(Failure::Malformed("not an RSA algorithm")),
        };
        result.map_err(|err| Failure::Rsa(err.to_string()))
    }
}

/// The DER body of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    crate::values::base64_decode(&pem[start..stop])
}

/// One DER TLV: (tag, header length, total length).
fn der_tlv(der: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *der.first()?;
    let first = *der.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = der.get(2..2 + count)?;
        (
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
            2 + count,
        )
    };
    let total = header.checked_add(len)?;
    (total <= der.len()).then_some((tag, header, total))
}

/// The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1), as DER.
fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let (_, header, _) = der_tlv(cert)?;
    let tbs_all = &cert[header..];
    let (_, tbs_header, tbs_len) = der_tlv(tbs_all)?;
    let mut rest = &tbs_all[tbs_header..tbs_len];
    // version [0] is optional; then serial, signature, issuer, validity, subject.
    if rest.first() == Some(&0xa0) {
        rest = &rest[der_tlv(rest)?.2..];
    }
    for _ in 0..5 {
        rest = &rest[der_tlv(rest)?.2..];
    }
    let (tag, _, len) = der_tlv(rest)?;
    (tag == 0x30).then(|| &rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    #[test]
    fn prepared_aes_decrypts_like_decrypt() {
        for (cipher, len) in [
            (Cipher::Aes128Cbc, 16),
            (Cipher::Aes192Cbc, 24),
            (Cipher::Aes256Cbc, 32),
        ] {
            let key: Vec<u8> = (0..len as u8).collect();
            let sealed = encrypt(cipher, &key, b"12345678901234567890").unwrap();
            let prepared = Prepared::new(cipher, &key).unwrap();
            assert_eq!(prepared.cipher(), cipher);
            let once = prepared.decrypt(&sealed, None).unwrap();
            assert_eq!(once.expose(), b"12345678901234567890");
            let again = prepared.decrypt(&sealed, None).unwrap();
            assert_eq!(again, decrypt(cipher, &key, &sealed, None).unwrap());
        }
        assert!(Prepared::new(Cipher::Aes128Cbc, &[0u8; 15]).is_none());
        assert!(Prepared::new(Cipher::KwAes128, &[0u8; 16]).is_none());
    }

    #[test]
    fn rfc3394_4_1_vector() {
        let kek = h("000102030405060708090A0B0C0D0E0F");
        let wrapped = h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
        let plain = decrypt(Cipher::KwAes128, &kek, &wrapped, None).unwrap();
        assert_eq!(plain.expose(), h("00112233445566778899AABBCCDDEEFF"));
    }

    #[test]
    fn rfc5649_6_vector() {
        let kek = h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
        let wrapped = h("afbeb0f07dfbf5419200f2ccb50bb24f");
        let plain = decrypt(Cipher::KwAes192, &kek, &wrapped, None).unwrap();
        assert_eq!(plain.expose(), h("466f7250617369"));
        let again = encrypt(Cipher::KwAes192, &kek, &h("466f7250617369")).unwrap();
        assert_eq!(again, wrapped);
    }

    #[test]
    fn every_symmetric_cipher_round_trips_and_detects_a_wrong_key() {
        for cipher in Cipher::ALL.into_iter().filter(|c| !c.is_asymmetric()) {
            for &len in cipher.key_lengths() {
                let key: Vec<u8> = (0..len as u8).collect();
                let plain = b"12345678901234567890123456789012";
                let sealed = encrypt(cipher, &key, plain).unwrap();
                let opened = decrypt(cipher, &key, &sealed, None).unwrap();
                assert_eq!(opened.expose(), plain, "{cipher:?}");
                let wrong: Vec<u8> = key.iter().map(|b| b ^ 0x5a).collect();
                // A wrong CBC key passes the padding check with probability ~1/256.
                if !cipher.is_cbc() {
                    assert_eq!(
                        decrypt(cipher, &wrong, &sealed, None),
                        Err(Failure::Integrity)
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_key_length_is_reported() {
        let result = decrypt(Cipher::Aes192Cbc, &[0u8; 16], &[0u8; 32], None);
        assert_eq!(result, Err(Failure::KeyLength));
    }

    #[test]
    fn short_ciphertext_is_malformed_not_a_panic() {
        for cipher in Cipher::ALL.into_iter().filter(|c| !c.is_asymmetric()) {
            let key = vec![1u8; cipher.key_lengths()[0]];
            for len in 0..20 {
                let _ = decrypt(cipher, &key, &vec![0u8; len], None);
            }
        }
    }
}
