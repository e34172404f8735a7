//! Errors of the PSKC reader and writer, grouped by who is at fault.
//!
//! Every message says what was wrong and where: the element and, when known, the key Id. The
//! file name is the caller's to add (the library reads from any `BufRead`). No message ever
//! contains secret material.

use std::fmt;

/// Where in a PSKC document a problem was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Local name of the element (or `Element@Attribute`).
    pub element: String,
    /// `Key@Id` of the key being read, when known.
    pub key_id: Option<String>,
}

impl Location {
    /// A location naming only an element.
    pub fn element(element: impl Into<String>) -> Self {
        Location {
            element: element.into(),
            key_id: None,
        }
    }

    /// A location naming an element inside the key `key_id`.
    pub fn in_key(element: impl Into<String>, key_id: Option<&str>) -> Self {
        Location {
            element: element.into(),
            key_id: key_id.map(str::to_owned),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key_id {
            Some(id) => write!(f, "key \"{id}\", <{}>", self.element),
            None => write!(f, "<{}>", self.element),
        }
    }
}

/// Everything that can go wrong reading or writing PSKC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- The document is malformed.
    /// The input is not well-formed XML.
    #[error("not well-formed XML at byte {position}: {reason}")]
    Xml {
        /// Byte offset in the input.
        position: u64,
        /// What the XML parser reported.
        reason: String,
    },
    /// The document declares a DTD or entities, which PSKC never needs (XXE, billion laughs).
    #[error("DTD or entity declarations are not allowed in PSKC (refused before parsing)")]
    DtdForbidden,
    /// The text uses an entity that is not one of XML's five predefined ones.
    #[error("undefined entity reference &{name}; at {at}")]
    UndefinedEntity {
        /// Entity name.
        name: String,
        /// Where.
        at: Location,
    },
    /// The root element is not a `KeyContainer`.
    #[error("root element is <{found}>, expected a PSKC <KeyContainer>")]
    WrongRoot {
        /// Local name of the root element found.
        found: String,
    },
    /// A value does not have the form its element requires.
    #[error("invalid value at {at}: {reason}")]
    InvalidValue {
        /// Where.
        at: Location,
        /// What was expected.
        reason: String,
    },
    /// A required element or attribute is missing.
    #[error("missing {what} at {at}")]
    Missing {
        /// The element or attribute.
        what: String,
        /// Where.
        at: Location,
    },
    /// A configured size limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What grew too large.
        what: String,
        /// The limit.
        limit: usize,
    },

    // ---- The document uses something this implementation does not support.
    /// `KeyContainer@Version` is not 1.0.
    #[error("unsupported PSKC version \"{0}\" (only 1.0 is defined)")]
    UnsupportedVersion(String),
    /// An algorithm URI that is not known.
    #[error("unsupported {kind} algorithm \"{uri}\" at {at}")]
    UnsupportedAlgorithm {
        /// "encryption", "MAC", "key derivation" or "PRF".
        kind: &'static str,
        /// The URI as written.
        uri: String,
        /// Where.
        at: Location,
    },

    // ---- Keys and integrity.
    /// The document is encrypted and no key, password or private key was given.
    #[error("{at} is encrypted; a {needed} is needed to read it")]
    KeyRequired {
        /// What to supply: "pre-shared key", "password", "private key".
        needed: &'static str,
        /// Where.
        at: Location,
    },
    /// The supplied key has the wrong length for the cipher.
    #[error("the decryption key is {actual} bytes but {cipher} needs {expected} at {at}")]
    KeyLength {
        /// Cipher name.
        cipher: &'static str,
        /// Acceptable length(s), as text.
        expected: String,
        /// Supplied length.
        actual: usize,
        /// Where.
        at: Location,
    },
    /// Decryption failed (bad padding, key-wrap integrity check): the key or password is wrong.
    #[error("decryption failed at {at}: wrong key or password")]
    WrongKey {
        /// Where.
        at: Location,
    },
    /// The ValueMAC does not match although the MAC key decrypted: the value was altered.
    #[error("ValueMAC does not match at {at}: the encrypted value was altered")]
    MacMismatch {
        /// Where.
        at: Location,
    },
    /// A MACMethod is declared but this encrypted value carries no ValueMAC.
    #[error(
        "{at} has no ValueMAC although the file declares a MACMethod \
         (refused; accept with the missing-ValueMAC option)"
    )]
    MissingValueMac {
        /// Where.
        at: Location,
    },
    /// A ValueMAC is present but no MAC algorithm is declared.
    #[error("{at} has a ValueMAC but the file declares no MAC algorithm")]
    NoMacAlgorithm {
        /// Where.
        at: Location,
    },
    /// PBKDF2 parameters are incomplete.
    #[error("incomplete PBKDF2 parameters at {at}: {missing} missing")]
    IncompleteDerivation {
        /// What is missing.
        missing: &'static str,
        /// Where.
        at: Location,
    },
    /// An RSA operation failed (bad key, wrong private key).
    #[error("RSA {operation} failed at {at}: {reason}")]
    Rsa {
        /// "decryption", "encryption", "key parsing".
        operation: &'static str,
        /// Library reason (never contains key material).
        reason: String,
        /// Where.
        at: Location,
    },

    /// An XML signature is to be verified but the document has none.
    #[error("the document has no XML signature (ds:Signature) to verify")]
    SignatureMissing,
    /// The XML signature (§7) does not verify: altered content or another signer.
    #[error("the XML signature does not verify: {reason}")]
    SignatureMismatch {
        /// Which check failed.
        reason: String,
    },

    // ---- The caller asked for something impossible.
    /// Options or protection settings are inconsistent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidValue`].
    pub(crate) fn invalid(at: Location, reason: impl Into<String>) -> Self {
        Error::InvalidValue {
            at,
            reason: reason.into(),
        }
    }

    /// True when the error means "the key or password is wrong" rather than damaged data.
    pub fn is_wrong_key(&self) -> bool {
        matches!(self, Error::WrongKey { .. } | Error::KeyLength { .. })
    }
}

impl From<getrandom::Error> for Error {
    fn from(err: getrandom::Error) -> Self {
        Error::Random(err.to_string())
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
