//! Every namespace and algorithm identifier DSKPP uses, byte-exact (RFC 6063 §§3, 5, 6, 12).

/// The DSKPP XML namespace.
pub const DSKPP_NS: &str = "urn:ietf:params:xml:ns:keyprov:dskpp";
/// The PSKC XML namespace (RFC 6030).
pub const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// XML Signature.
pub const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Schema instance (for `xsi:type` on extensions).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Protocol version this implementation speaks.
pub const VERSION: &str = "1.0";

/// DSKPP-PRF-AES.
pub const PRF_AES_128: &str = "urn:ietf:params:xml:ns:keyprov:dskpp:prf-aes-128";
/// DSKPP-PRF-SHA256.
pub const PRF_SHA256: &str = "urn:ietf:params:xml:ns:keyprov:dskpp:prf-sha256";

/// Key protection method: key transport (note `xml:schema`, as the RFC writes it).
pub const KPM_TRANSPORT: &str = "urn:ietf:params:xml:schema:keyprov:dskpp:transport";
/// Key protection method: key wrap.
pub const KPM_WRAP: &str = "urn:ietf:params:xml:schema:keyprov:dskpp:wrap";
/// Key protection method: passphrase-based key wrap.
pub const KPM_PASSPHRASE: &str = "urn:ietf:params:xml:schema:keyprov:dskpp:passphrase-wrap";

/// Key package format: PSKC KeyContainer (the mandatory one).
pub const PACKAGE_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:dskpp:pskc-key-container";

/// Key types (PSKC algorithm registry).
pub const KEY_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
/// TOTP (PSKC registry, RFC 6030 §10 / later registrations).
pub const KEY_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

/// RSAES-OAEP with MGF1/SHA-1 (XML Encryption); offered before PKCS#1 v1.5.
pub const RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// RSAES-PKCS1-v1_5 (XML Encryption), mandatory to support.
pub const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
/// The misspelling in RFC 6063's examples, accepted on input only.
pub const RSA_1_5_TYPO: &str = "http://www.w3.org/2001/04/xmlenc#rsa_1_5";
/// AES-128 key wrap, RFC 3394.
pub const KW_AES128: &str = "http://www.w3.org/2001/04/xmlenc#kw-aes128";
/// AES-128 key wrap with padding, RFC 5649 (XML Encryption 1.1 identifier).
pub const KW_AES128_PAD: &str = "http://www.w3.org/2009/xmlenc11#kw-aes-128-pad";
/// AES-128-CBC (with the PSKC MAC over the ciphertext).
pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
