//! Algorithm and namespace URIs of RFC 6030 and the specs it builds on, and the liberal
//! matching that real files need (spec digest §1d/§1e: suffix after `#`, case-insensitive,
//! both Camellia spellings, `hmac-sha-256` aliases, `pbe-` prefixes).

/// PSKC namespace (RFC 6030 §11.1).
pub const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// XML Digital Signature namespace.
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Encryption namespace.
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// XML Encryption 1.1 namespace.
pub const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
/// PKCS #5 v2.0 schema namespace.
pub const NS_PKCS5: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";

/// HOTP algorithm profile (RFC 6030 §10.1, IANA registered).
pub const HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
/// TOTP profile URI as most vendors write it (not IANA registered).
pub const TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
/// TOTP profile URI of the algorithm-profiles draft.
pub const TOTP_DRAFT: &str = "urn:ietf:params:xml:ns:keyprov:pskc#totp";
/// PIN algorithm profile (RFC 6030 §10.2, IANA registered).
pub const PIN: &str = "urn:ietf:params:xml:ns:keyprov:pskc:pin";
/// OCRA profile URI used with a separate `<Suite>` (not IANA registered).
pub const OCRA: &str = "urn:ietf:params:xml:ns:keyprov:pskc:ocra";

/// PBKDF2 key derivation (PKCS #5 v2.0 URI used by RFC 6030 figure 7).
pub const PBKDF2: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";
/// PBKDF2 key derivation (XML Encryption 1.1 URI).
pub const PBKDF2_XENC11: &str = "http://www.w3.org/2009/xmlenc11#pbkdf2";

/// The OTP algorithm family a `Key@Algorithm` URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// HOTP (RFC 4226).
    Hotp,
    /// TOTP (RFC 6238).
    Totp,
    /// OCRA (RFC 6287).
    Ocra,
    /// A PIN (RFC 6030 §10.2).
    Pin,
}

impl Profile {
    /// Recognises `…pskc:hotp`, `…pskc#hotp`, bare `HOTP`, `…#OCRA-1:…` and friends.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let tail = uri.rsplit([':', '#']).next()?.to_ascii_lowercase();
        let lower = uri.to_ascii_lowercase();
        match tail.as_str() {
            "hotp" => Some(Profile::Hotp),
            "totp" => Some(Profile::Totp),
            "ocra" => Some(Profile::Ocra),
            "pin" => Some(Profile::Pin),
            _ if lower.contains("#ocra-1:") => Some(Profile::Ocra),
            _ => None,
        }
    }
}

/// The OCRA suite carried inside an algorithm URI (`…pskc#OCRA-1:HOTP-SHA512-8:C-QN08`).
pub fn suite_in_uri(uri: &str) -> Option<&str> {
    let (_, fragment) = uri.split_once('#')?;
    fragment
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("OCRA-1"))
        .map(|_| fragment)
}

/// The part of an algorithm URI that identifies it: after the last `#`, trimmed.
fn fragment(uri: &str) -> &str {
    uri.rsplit('#').next().unwrap_or(uri).trim()
}

/// `text` without `prefix`, compared case-insensitively.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

/// Looks `name` up case-insensitively in a table of spellings.
fn lookup<T: Copy>(name: &str, table: &[(&str, T)]) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

const CIPHER_NAMES: [(&str, Cipher); 22] = [
    ("aes128-cbc", Cipher::Aes128Cbc),
    ("aes192-cbc", Cipher::Aes192Cbc),
    ("aes256-cbc", Cipher::Aes256Cbc),
    ("tripledes-cbc", Cipher::TripleDesCbc),
    ("3des-cbc", Cipher::TripleDesCbc),
    ("des3-cbc", Cipher::TripleDesCbc),
    ("camellia128-cbc", Cipher::Camellia128Cbc),
    ("camellia128", Cipher::Camellia128Cbc),
    ("camellia192-cbc", Cipher::Camellia192Cbc),
    ("camellia192", Cipher::Camellia192Cbc),
    ("camellia256-cbc", Cipher::Camellia256Cbc),
    ("camellia256", Cipher::Camellia256Cbc),
    ("kw-aes128", Cipher::KwAes128),
    ("kw-aes192", Cipher::KwAes192),
    ("kw-aes256", Cipher::KwAes256),
    ("kw-tripledes", Cipher::KwTripleDes),
    ("kw-camellia128", Cipher::KwCamellia128),
    ("kw-camellia192", Cipher::KwCamellia192),
    ("kw-camellia256", Cipher::KwCamellia256),
    ("rsa-1_5", Cipher::Rsa1_5),
    ("rsa_1_5", Cipher::Rsa1_5),
    ("rsa-oaep-mgf1p", Cipher::RsaOaepMgf1p),
];

const HMAC_NAMES: [(&str, Hmac); 10] = [
    ("sha1", Hmac::Sha1),
    ("sha-1", Hmac::Sha1),
    ("sha224", Hmac::Sha224),
    ("sha-224", Hmac::Sha224),
    ("sha256", Hmac::Sha256),
    ("sha-256", Hmac::Sha256),
    ("sha384", Hmac::Sha384),
    ("sha-384", Hmac::Sha384),
    ("sha512", Hmac::Sha512),
    ("sha-512", Hmac::Sha512),
];

/// Encryption algorithms for values and MAC keys (RFC 6030 §6.1, §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Cipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    TripleDesCbc,
    Camellia128Cbc,
    Camellia192Cbc,
    Camellia256Cbc,
    KwAes128,
    KwAes192,
    KwAes256,
    KwTripleDes,
    KwCamellia128,
    KwCamellia192,
    KwCamellia256,
    Rsa1_5,
    RsaOaepMgf1p,
}

impl Cipher {
    /// Every cipher, for tests and command-line help.
    pub const ALL: [Cipher; 16] = [
        Cipher::Aes128Cbc,
        Cipher::Aes192Cbc,
        Cipher::Aes256Cbc,
        Cipher::TripleDesCbc,
        Cipher::Camellia128Cbc,
        Cipher::Camellia192Cbc,
        Cipher::Camellia256Cbc,
        Cipher::KwAes128,
        Cipher::KwAes192,
        Cipher::KwAes256,
        Cipher::KwTripleDes,
        Cipher::KwCamellia128,
        Cipher::KwCamellia192,
        Cipher::KwCamellia256,
        Cipher::Rsa1_5,
        Cipher::RsaOaepMgf1p,
    ];

    /// Canonical URI written by this crate.
    pub fn uri(self) -> &'static str {
        match self {
            Cipher::Aes128Cbc => "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            Cipher::Aes192Cbc => "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
            Cipher::Aes256Cbc => "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
            Cipher::TripleDesCbc => "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
            Cipher::Camellia128Cbc => "http://www.w3.org/2001/04/xmldsig-more#camellia128-cbc",
            Cipher::Camellia192Cbc => "http://www.w3.org/2001/04/xmldsig-more#camellia192-cbc",
            Cipher::Camellia256Cbc => "http://www.w3.org/2001/04/xmldsig-more#camellia256-cbc",
            Cipher::KwAes128 => "http://www.w3.org/2001/04/xmlenc#kw-aes128",
            Cipher::KwAes192 => "http://www.w3.org/2001/04/xmlenc#kw-aes192",
            Cipher::KwAes256 => "http://www.w3.org/2001/04/xmlenc#kw-aes256",
            Cipher::KwTripleDes => "http://www.w3.org/2001/04/xmlenc#kw-tripledes",
            Cipher::KwCamellia128 => "http://www.w3.org/2001/04/xmldsig-more#kw-camellia128",
            Cipher::KwCamellia192 => "http://www.w3.org/2001/04/xmldsig-more#kw-camellia192",
            Cipher::KwCamellia256 => "http://www.w3.org/2001/04/xmldsig-more#kw-camellia256",
            Cipher::Rsa1_5 => "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
            Cipher::RsaOaepMgf1p => "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        }
    }

    /// Short name used on the command line (`aes128-cbc`, `kw-aes256`…).
    pub fn name(self) -> &'static str {
        self.uri().rsplit('#').next().unwrap_or_default()
    }

    /// Recognises a URI or a short name, liberally (see the module doc).
    pub fn from_uri(uri: &str) -> Option<Self> {
        let name = strip_prefix_ci(fragment(uri), "pbe-");
        lookup(name, &CIPHER_NAMES).or_else(|| {
            name.eq_ignore_ascii_case("rsa-oaep")
                .then_some(Cipher::RsaOaepMgf1p)
        })
    }

    /// Acceptable symmetric key lengths in bytes (empty for RSA).
    pub fn key_lengths(self) -> &'static [usize] {
        match self {
            Cipher::Aes128Cbc | Cipher::KwAes128 => &[16],
            Cipher::Camellia128Cbc | Cipher::KwCamellia128 => &[16],
            Cipher::Aes192Cbc | Cipher::KwAes192 => &[24],
            Cipher::Camellia192Cbc | Cipher::KwCamellia192 => &[24],
            Cipher::Aes256Cbc | Cipher::KwAes256 => &[32],
            Cipher::Camellia256Cbc | Cipher::KwCamellia256 => &[32],
            Cipher::TripleDesCbc | Cipher::KwTripleDes => &[24, 16],
            Cipher::Rsa1_5 | Cipher::RsaOaepMgf1p => &[],
        }
    }

    /// True for the RSA key-transport algorithms (§6.3).
    pub fn is_asymmetric(self) -> bool {
        matches!(self, Cipher::Rsa1_5 | Cipher::RsaOaepMgf1p)
    }

    /// True for CBC modes, whose IV may be given once for the whole file (legacy).
    pub fn is_cbc(self) -> bool {
        matches!(
            self,
            Cipher::Aes128Cbc
                | Cipher::Aes192Cbc
                | Cipher::Aes256Cbc
                | Cipher::TripleDesCbc
                | Cipher::Camellia128Cbc
                | Cipher::Camellia192Cbc
                | Cipher::Camellia256Cbc
        )
    }
}

/// HMAC algorithms for ValueMAC (§6.1.1) and the PBKDF2 PRF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Hmac {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hmac {
    /// Every HMAC.
    pub const ALL: [Hmac; 5] = [
        Hmac::Sha1,
        Hmac::Sha224,
        Hmac::Sha256,
        Hmac::Sha384,
        Hmac::Sha512,
    ];

    /// Canonical URI.
    pub fn uri(self) -> &'static str {
        match self {
            Hmac::Sha1 => "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
            Hmac::Sha224 => "http://www.w3.org/2001/04/xmldsig-more#hmac-sha224",
            Hmac::Sha256 => "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
            Hmac::Sha384 => "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384",
            Hmac::Sha512 => "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512",
        }
    }

    /// Short name (`hmac-sha256`).
    pub fn name(self) -> &'static str {
        self.uri().rsplit('#').next().unwrap_or_default()
    }

    /// Recognises a URI or short name (`hmac-sha-256`, `HMAC-SHA256`, `sha256`).
    pub fn from_uri(uri: &str) -> Option<Self> {
        lookup(strip_prefix_ci(fragment(uri), "hmac-"), &HMAC_NAMES)
    }

    /// Output (and recommended key) length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hmac::Sha1 => 20,
            Hmac::Sha224 => 28,
            Hmac::Sha256 => 32,
            Hmac::Sha384 => 48,
            Hmac::Sha512 => 64,
        }
    }
}

/// True when `uri` names PBKDF2 (either URI, or a bare `pbkdf2`).
pub fn is_pbkdf2(uri: &str) -> bool {
    fragment(uri).eq_ignore_ascii_case("pbkdf2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphers_round_trip_through_their_uris() {
        for cipher in Cipher::ALL {
            assert_eq!(Cipher::from_uri(cipher.uri()), Some(cipher));
            assert_eq!(Cipher::from_uri(cipher.name()), Some(cipher));
        }
    }

    #[test]
    fn liberal_spellings() {
        let ipa = "http://www.w3.org/2001/04/xmldsig-more#camellia128";
        assert_eq!(Cipher::from_uri(ipa), Some(Cipher::Camellia128Cbc));
        let py = "http://www.w3.org/2001/04/xmlenc#camellia256-cbc";
        assert_eq!(Cipher::from_uri(py), Some(Cipher::Camellia256Cbc));
        assert_eq!(Cipher::from_uri("PBE-AES128-CBC"), Some(Cipher::Aes128Cbc));
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#rsa_1_5"),
            Some(Cipher::Rsa1_5)
        );
        assert_eq!(Cipher::from_uri("http://example.com#unknown"), None);
        assert_eq!(Hmac::from_uri("hmac-sha-256"), Some(Hmac::Sha256));
        assert_eq!(Hmac::from_uri(Hmac::Sha384.uri()), Some(Hmac::Sha384));
        assert_eq!(
            Hmac::from_uri("http://www.w3.org/2000/09/xmldsig#hmac-md4"),
            None
        );
        assert!(is_pbkdf2(PBKDF2) && is_pbkdf2(PBKDF2_XENC11));
    }

    #[test]
    fn profiles_and_suites() {
        assert_eq!(Profile::from_uri(TOTP), Some(Profile::Totp));
        assert_eq!(Profile::from_uri(TOTP_DRAFT), Some(Profile::Totp));
        assert_eq!(Profile::from_uri("HOTP"), Some(Profile::Hotp));
        let ocra = "urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1:HOTP-SHA512-8:C-QN08";
        assert_eq!(Profile::from_uri(ocra), Some(Profile::Ocra));
        assert_eq!(suite_in_uri(ocra), Some("OCRA-1:HOTP-SHA512-8:C-QN08"));
        assert_eq!(suite_in_uri(HOTP), None);
        assert_eq!(
            Profile::from_uri("http://www.yubico.com/#yubikey-aes"),
            None
        );
    }
}
