//! The PSKC data model (RFC 6030 §4–§5): a `KeyContainer` of `KeyPackage`s, each with device
//! information and `Key`s whose data and policy this crate reads and writes.
//!
//! Values are held decrypted; how they are protected in a file is a property of reading
//! ([`crate::ReadOptions`]) and writing ([`crate::Protection`]), not of the model.

use time::OffsetDateTime;

use crate::algorithm::{self, Profile};
use crate::secret::Secret;

/// `<KeyContainer>`: the document root.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyContainer {
    /// `@Version`; `"1.0"` for RFC 6030 (older drafts wrote other values).
    pub version: String,
    /// `@Id`.
    pub id: Option<String>,
    /// Names of the pre-shared or derived key (`EncryptionKey/ds:KeyName`) as read.
    pub key_names: Vec<String>,
    /// `MACMethod/MACKeyReference` as read: the MAC key is known out of band
    /// (see `ReadOptions::mac_key`).
    pub mac_key_reference: Option<String>,
    /// The `<KeyPackage>`s, in document order.
    pub key_packages: Vec<KeyPackage>,
    /// Container-level `<Extensions>`, kept verbatim.
    pub extensions: Vec<Extension>,
    /// True when the file carried an XML signature (`ds:Signature`, §7); it is not verified.
    pub signed: bool,
}

impl KeyContainer {
    /// An empty container with version 1.0.
    pub fn new() -> Self {
        KeyContainer {
            version: "1.0".into(),
            ..Default::default()
        }
    }

    /// All keys of all packages with their package, in document order.
    pub fn keys(&self) -> impl Iterator<Item = (&KeyPackage, &Key)> {
        self.key_packages
            .iter()
            .flat_map(|p| p.keys.iter().map(move |k| (p, k)))
    }
}

/// `<KeyPackage>` (or `<Device>` in pre-RFC drafts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyPackage {
    /// `<DeviceInfo>`.
    pub device_info: DeviceInfo,
    /// `<CryptoModuleInfo><Id>`.
    pub crypto_module_id: Option<String>,
    /// The keys (RFC 6030 allows one; legacy files carry several).
    pub keys: Vec<Key>,
    /// Package-level `<Extensions>`.
    pub extensions: Vec<Extension>,
}

/// `<DeviceInfo>` (§4.3.1).
#[derive(Debug, Clone, PartialEq, Default)]
#[allow(missing_docs)]
pub struct DeviceInfo {
    pub manufacturer: Option<String>,
    pub serial_no: Option<String>,
    pub model: Option<String>,
    pub issue_no: Option<String>,
    pub device_binding: Option<String>,
    pub start_date: Option<OffsetDateTime>,
    pub expiry_date: Option<OffsetDateTime>,
    pub user_id: Option<String>,
    /// `<DeviceInfo><Extensions>`.
    pub extensions: Vec<Extension>,
}

impl DeviceInfo {
    /// True when no field is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        *self == DeviceInfo::default()
    }
}

/// `<Key>` (§4.3.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Key {
    /// `@Id`.
    pub id: Option<String>,
    /// `@Algorithm` URI as written (see [`algorithm`] for constants).
    pub algorithm: Option<String>,
    /// `<Issuer>`.
    pub issuer: Option<String>,
    /// `<AlgorithmParameters>`.
    pub algorithm_parameters: AlgorithmParameters,
    /// `<KeyProfileId>`.
    pub key_profile_id: Option<String>,
    /// `<KeyReference>`.
    pub key_reference: Option<String>,
    /// `<FriendlyName>`.
    pub friendly_name: Option<String>,
    /// `<FriendlyName xml:lang>`.
    pub friendly_name_lang: Option<String>,
    /// `<UserId>`.
    pub user_id: Option<String>,
    /// `<Data>`.
    pub data: KeyData,
    /// `<Policy>`.
    pub policy: Policy,
    /// `<Extensions>` of the key and of its `<AlgorithmParameters>`.
    pub extensions: Vec<Extension>,
}

impl Key {
    /// The OTP family of `algorithm`, if recognised.
    pub fn profile(&self) -> Option<Profile> {
        self.algorithm.as_deref().and_then(Profile::from_uri)
    }

    /// The OCRA suite: `<Suite>`, else the suite carried in the algorithm URI.
    pub fn suite(&self) -> Option<&str> {
        self.algorithm_parameters
            .suite
            .as_deref()
            .or_else(|| self.algorithm.as_deref().and_then(algorithm::suite_in_uri))
    }
}

/// `<AlgorithmParameters>` (§4.3.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlgorithmParameters {
    /// `<Suite>`.
    pub suite: Option<String>,
    /// `<ChallengeFormat>`.
    pub challenge_format: Option<ChallengeFormat>,
    /// `<ResponseFormat>`.
    pub response_format: Option<ResponseFormat>,
}

/// `<ChallengeFormat>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct ChallengeFormat {
    pub encoding: Option<String>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub check_digits: Option<bool>,
}

/// `<ResponseFormat>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct ResponseFormat {
    pub encoding: Option<String>,
    pub length: Option<u32>,
    pub check_digits: Option<bool>,
}

/// `<Data>` (§4.3.3), decrypted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyData {
    /// `<Secret>`.
    pub secret: Option<Secret>,
    /// `<Counter>` (xs:unsignedLong).
    pub counter: Option<u64>,
    /// `<Time>` (seconds since the epoch, or a start offset).
    pub time: Option<u64>,
    /// `<TimeInterval>` in seconds.
    pub time_interval: Option<u64>,
    /// `<TimeDrift>` in intervals, signed.
    pub time_drift: Option<i64>,
}

/// `<Policy>` (§5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `<StartDate>`.
    pub start_date: Option<OffsetDateTime>,
    /// `<ExpiryDate>`.
    pub expiry_date: Option<OffsetDateTime>,
    /// `<PINPolicy>`.
    pub pin_policy: Option<PinPolicy>,
    /// `<KeyUsage>` values (IANA registry: OTP, CR, Encrypt, Integrity, Verify, Unlock,
    /// Decrypt, KeyWrap, Unwrap, Derive, Generate).
    pub key_usage: Vec<String>,
    /// `<NumberOfTransactions>`.
    pub number_of_transactions: Option<u64>,
    /// True when the policy had elements or attributes this implementation does not know;
    /// RFC 6030 §5 then requires that the key is not used.
    pub unknown_elements: bool,
}

impl Policy {
    /// Whether the key may be used at `now`: no unknown policy content and within dates.
    pub fn may_use(&self, now: OffsetDateTime) -> bool {
        !self.unknown_elements
            && self.start_date.is_none_or(|start| start <= now)
            && self.expiry_date.is_none_or(|expiry| expiry >= now)
    }

    /// [`Policy::may_use`] at the current time.
    pub fn may_use_now(&self) -> bool {
        self.may_use(OffsetDateTime::now_utc())
    }

    /// True when nothing is set (the element is then not written).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// `<PINPolicy>` attributes (§5.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct PinPolicy {
    pub pin_key_id: Option<String>,
    pub pin_usage_mode: Option<String>,
    pub max_failed_attempts: Option<u32>,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub pin_encoding: Option<String>,
}

/// An `<Extensions>` element's content, kept as XML text so nothing is lost on rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Where it was: `"container"`, `"package"`, `"device"`, `"key"`, `"parameters"`.
    pub scope: &'static str,
    /// The children of `<Extensions>`, serialised with the namespace declarations they use.
    pub xml: String,
}
