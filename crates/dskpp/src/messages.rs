//! The five DSKPP messages (RFC 6063 §§3.1–3.2, 4.2, 5.2, schema in §8) as Rust values, read
//! from and written to the `urn:ietf:params:xml:ns:keyprov:dskpp` namespace.
//!
//! Parsing is deliberately about *content*: element order is not enforced, unknown elements in
//! foreign namespaces are kept where the schema has `xs:any`, and base64/anyURI values are
//! whitespace-collapsed (their schema facet is "collapse"), xs:string values are not.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::uri::{self, DS_NS, DSKPP_NS, XSI_NS};
use crate::xml::{self, Element, XmlError};

/// DSKPP status codes (§3.1.1 `StatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Status {
    Continue,
    Success,
    Abort,
    AccessDenied,
    MalformedRequest,
    UnknownRequest,
    UnknownCriticalExtension,
    UnsupportedVersion,
    NoSupportedKeyTypes,
    NoSupportedEncryptionAlgorithms,
    NoSupportedMacAlgorithms,
    NoProtocolVariants,
    NoSupportedKeyPackages,
    AuthenticationDataMissing,
    AuthenticationDataInvalid,
    InitializationFailed,
    ProvisioningPeriodExpired,
}

const STATUSES: [(Status, &str); 17] = [
    (Status::Continue, "Continue"),
    (Status::Success, "Success"),
    (Status::Abort, "Abort"),
    (Status::AccessDenied, "AccessDenied"),
    (Status::MalformedRequest, "MalformedRequest"),
    (Status::UnknownRequest, "UnknownRequest"),
    (Status::UnknownCriticalExtension, "UnknownCriticalExtension"),
    (Status::UnsupportedVersion, "UnsupportedVersion"),
    (Status::NoSupportedKeyTypes, "NoSupportedKeyTypes"),
    (
        Status::NoSupportedEncryptionAlgorithms,
        "NoSupportedEncryptionAlgorithms",
    ),
    (Status::NoSupportedMacAlgorithms, "NoSupportedMacAlgorithms"),
    (Status::NoProtocolVariants, "NoProtocolVariants"),
    (Status::NoSupportedKeyPackages, "NoSupportedKeyPackages"),
    (
        Status::AuthenticationDataMissing,
        "AuthenticationDataMissing",
    ),
    (
        Status::AuthenticationDataInvalid,
        "AuthenticationDataInvalid",
    ),
    (Status::InitializationFailed, "InitializationFailed"),
    (
        Status::ProvisioningPeriodExpired,
        "ProvisioningPeriodExpired",
    ),
];

impl Status {
    /// The schema spelling.
    pub fn as_str(self) -> &'static str {
        STATUSES
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or("Abort")
    }

    /// Parses the schema spelling; the draft-00 spellings are accepted on input (D14).
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "NoSupportedMACAlgorithms" => Some(Status::NoSupportedMacAlgorithms),
            "NoSupportedKeyContainers" => Some(Status::NoSupportedKeyPackages),
            _ => STATUSES.iter().find(|(_, n)| *n == s).map(|(st, _)| *st),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a document is not an acceptable DSKPP message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// The octets are not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The root element is not a DSKPP message.
    #[error("root element {{{ns}}}{name} is not a DSKPP message")]
    NotDskpp {
        /// Its namespace.
        ns: String,
        /// Its local name.
        name: String,
    },
    /// A required element or attribute is missing.
    #[error("{parent} lacks the required {what}")]
    Missing {
        /// Where it was expected.
        parent: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A value is not of its schema type.
    #[error("{what} is invalid: {reason}")]
    Invalid {
        /// The element or attribute.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

fn missing(parent: &'static str, what: &'static str) -> MessageError {
    MessageError::Missing { parent, what }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// A `Mac` element: the value and its optional `MacAlgorithm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac {
    /// `MacAlgorithm` attribute.
    pub algorithm: Option<String>,
    /// The MAC octets.
    pub value: Vec<u8>,
}

/// `AuthenticationMacType`: the AD MAC (or, in ServerFinished, the MAC 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationMac {
    /// `Nonce` (R_C in 2-pass as the RFC's examples place it).
    pub nonce: Option<Vec<u8>>,
    /// `IterationCount` for PBKDF2.
    pub iteration_count: Option<u32>,
    /// `Mac`.
    pub mac: Mac,
}

/// `AuthenticationDataType`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticationData {
    /// `ClientID`.
    pub client_id: Option<String>,
    /// `AuthenticationCodeMac`.
    pub code_mac: Option<AuthenticationMac>,
    /// A foreign-namespace authentication element, kept as is.
    pub other: Option<Element>,
}

/// The parts of `ds:KeyInfo` DSKPP uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyInfo {
    /// `ds:KeyName`.
    pub key_name: Option<String>,
    /// `ds:KeyValue/ds:RSAKeyValue`: (modulus, exponent), big-endian octets.
    pub rsa: Option<(Vec<u8>, Vec<u8>)>,
}

/// `PayloadType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `Nonce`.
    Nonce(Vec<u8>),
    /// `ds:KeyInfo`.
    KeyInfo(KeyInfo),
}

/// One `SupportedKeyProtectionMethod` with its optional `Payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProtection {
    /// The KPM URI.
    pub method: String,
    /// What the client says about its key for this method.
    pub payload: Option<Payload>,
}

/// `SupportedProtocolVariants`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtocolVariants {
    /// `FourPass` present.
    pub four_pass: bool,
    /// `TwoPass` present, with its key protection method list (KPML).
    pub two_pass: Option<Vec<KeyProtection>>,
    /// Which of the two came first in the document (the client's preference).
    pub two_pass_first: bool,
}

/// An extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `Critical`.
    pub critical: bool,
    /// What it is.
    pub kind: ExtensionKind,
}

/// The extension types this implementation knows, and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionKind {
    /// `ClientInfoType`: echoed by the server in its next response.
    ClientInfo(Vec<u8>),
    /// `ServerInfoType`: echoed by the client in ClientNonce.
    ServerInfo(Vec<u8>),
    /// Anything else (its `xsi:type` in Clark notation, if any).
    Unknown(String),
}

/// `KeyPackageType`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPackage {
    /// `ServerID`.
    pub server_id: Option<String>,
    /// `KeyProtectionMethod`.
    pub key_protection_method: Option<String>,
    /// The `dskpp:KeyContainer` element (PSKC content).
    pub key_container: Option<Element>,
}

/// `KeyProvTrigger` / `InitializationTrigger`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trigger {
    /// `Version` (optional on the trigger).
    pub version: Option<String>,
    /// `DeviceIdentifierData`, kept as is.
    pub device_id: Option<Element>,
    /// `KeyID` (a renewal names the key it replaces).
    pub key_id: Option<Vec<u8>>,
    /// `TokenPlatformInfo` (KeyLocation / AlgorithmLocation attributes), kept as is.
    pub token_platform: Option<Element>,
    /// `AuthenticationData`.
    pub auth: AuthenticationData,
    /// `ServerUrl`.
    pub server_url: Option<String>,
}

/// `KeyProvClientHello`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `Version`.
    pub version: String,
    /// `DeviceIdentifierData`, kept as is.
    pub device_id: Option<Element>,
    /// `KeyID`.
    pub key_id: Option<Vec<u8>>,
    /// `ClientNonce` (R_C in 2-pass).
    pub client_nonce: Option<Vec<u8>>,
    /// `SupportedKeyTypes`.
    pub key_types: Vec<String>,
    /// `SupportedEncryptionAlgorithms`.
    pub encryption_algorithms: Vec<String>,
    /// `SupportedMacAlgorithms`.
    pub mac_algorithms: Vec<String>,
    /// `SupportedProtocolVariants`.
    pub variants: Option<ProtocolVariants>,
    /// `SupportedKeyPackages`.
    pub key_packages: Option<Vec<String>>,
    /// `AuthenticationData`.
    pub auth: Option<AuthenticationData>,
    /// `Extensions`.
    pub extensions: Vec<Extension>,
}

/// `KeyProvServerHello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// `Version`.
    pub version: String,
    /// `Status`.
    pub status: Status,
    /// `SessionID`.
    pub session_id: Option<String>,
    /// `KeyType`.
    pub key_type: Option<String>,
    /// `EncryptionAlgorithm`.
    pub encryption_algorithm: Option<String>,
    /// `MacAlgorithm`.
    pub mac_algorithm: Option<String>,
    /// `EncryptionKey`.
    pub encryption_key: Option<KeyInfo>,
    /// `KeyPackageFormat`.
    pub key_package_format: Option<String>,
    /// `Payload` (R_S).
    pub payload: Option<Payload>,
    /// `Extensions`.
    pub extensions: Vec<Extension>,
    /// `Mac` (renewal).
    pub mac: Option<Mac>,
}

/// `KeyProvClientNonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNonce {
    /// `Version`.
    pub version: String,
    /// `SessionID`.
    pub session_id: String,
    /// `EncryptedNonce`.
    pub encrypted_nonce: Vec<u8>,
    /// `AuthenticationData`.
    pub auth: Option<AuthenticationData>,
    /// `Extensions`.
    pub extensions: Vec<Extension>,
}

/// `KeyProvServerFinished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFinished {
    /// `Version`.
    pub version: String,
    /// `Status`.
    pub status: Status,
    /// `SessionID`.
    pub session_id: Option<String>,
    /// `KeyPackage`.
    pub key_package: Option<KeyPackage>,
    /// `Extensions`.
    pub extensions: Vec<Extension>,
    /// `Mac` (key confirmation).
    pub mac: Option<Mac>,
    /// `AuthenticationData` (the 2-pass MAC 2 of a renewal).
    pub auth: Option<AuthenticationMac>,
}

impl ServerFinished {
    /// A final error response.
    pub fn error(status: Status, session_id: Option<String>) -> ServerFinished {
        ServerFinished {
            version: uri::VERSION.into(),
            status,
            session_id,
            key_package: None,
            extensions: Vec::new(),
            mac: None,
            auth: None,
        }
    }
}

/// Any DSKPP message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// `KeyProvTrigger`.
    Trigger(Trigger),
    /// `KeyProvClientHello`.
    ClientHello(ClientHello),
    /// `KeyProvServerHello`.
    ServerHello(ServerHello),
    /// `KeyProvClientNonce`.
    ClientNonce(ClientNonce),
    /// `KeyProvServerFinished`.
    ServerFinished(ServerFinished),
}

impl Message {
    /// Parses a document.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        Message::from_element(&xml::parse(bytes)?)
    }

    /// Reads a message from an already parsed document.
    pub fn from_element(root: &Element) -> Result<Message, MessageError> {
        if root.ns != DSKPP_NS {
            return Err(MessageError::NotDskpp {
                ns: root.ns.clone(),
                name: root.name.clone(),
            });
        }
        match root.name.as_str() {
            "KeyProvTrigger" => read_trigger(root).map(Message::Trigger),
            "KeyProvClientHello" => read_client_hello(root).map(Message::ClientHello),
            "KeyProvServerHello" => read_server_hello(root).map(Message::ServerHello),
            "KeyProvClientNonce" => read_client_nonce(root).map(Message::ClientNonce),
            "KeyProvServerFinished" => read_server_finished(root).map(Message::ServerFinished),
            _ => Err(MessageError::NotDskpp {
                ns: root.ns.clone(),
                name: root.name.clone(),
            }),
        }
    }

    /// Writes the message as a UTF-8 document.
    pub fn to_bytes(&self) -> Vec<u8> {
        let el = match self {
            Message::Trigger(m) => write_trigger(m),
            Message::ClientHello(m) => write_client_hello(m),
            Message::ServerHello(m) => write_server_hello(m),
            Message::ClientNonce(m) => write_client_nonce(m),
            Message::ServerFinished(m) => write_server_finished(m),
        };
        xml::write(&el)
    }
}

// ---- value helpers ----------------------------------------------------------------------

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn b64(what: &'static str, text: &str) -> Result<Vec<u8>, MessageError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(compact)
        .map_err(|e| invalid(what, e.to_string()))
}

fn text_el(name: &str, text: impl Into<String>) -> Element {
    Element::dskpp(name).with_text(text)
}

fn b64_el(name: &str, bytes: &[u8]) -> Element {
    Element::dskpp(name).with_text(B64.encode(bytes))
}

fn opt_b64(el: &Element, name: &'static str) -> Result<Option<Vec<u8>>, MessageError> {
    el.child(DSKPP_NS, name)
        .map(|c| b64(name, &c.text))
        .transpose()
}

fn opt_uri(el: &Element, name: &str) -> Option<String> {
    el.child(DSKPP_NS, name).map(|c| collapse(&c.text))
}

fn version(el: &Element, what: &'static str) -> Result<String, MessageError> {
    el.attr("Version")
        .map(str::to_string)
        .ok_or_else(|| missing(what, "Version attribute"))
}

fn status(el: &Element, what: &'static str) -> Result<Status, MessageError> {
    let s = el
        .attr("Status")
        .ok_or_else(|| missing(what, "Status attribute"))?;
    Status::parse(s.trim()).ok_or_else(|| invalid("Status", format!("unknown status {s:?}")))
}

fn algorithms(el: &Element, name: &'static str, item: &str) -> Result<Vec<String>, MessageError> {
    let list = el
        .child(DSKPP_NS, name)
        .ok_or_else(|| missing("KeyProvClientHello", name))?;
    let items: Vec<String> = list
        .children_named(DSKPP_NS, item)
        .map(|c| collapse(&c.text))
        .collect();
    if items.is_empty() {
        return Err(invalid(name, "the list is empty"));
    }
    Ok(items)
}

fn algorithms_el(name: &str, item: &str, values: &[String]) -> Element {
    let mut el = Element::dskpp(name);
    for v in values {
        el.push(text_el(item, v.clone()));
    }
    el
}

fn read_mac(el: &Element) -> Result<Mac, MessageError> {
    Ok(Mac {
        algorithm: el.attr("MacAlgorithm").map(collapse),
        value: b64("Mac", &el.text)?,
    })
}

fn write_mac(name: &str, mac: &Mac) -> Element {
    let mut el = b64_el(name, &mac.value);
    if let Some(a) = &mac.algorithm {
        el = el.with_attr("MacAlgorithm", a.clone());
    }
    el
}

fn read_auth_mac(el: &Element) -> Result<AuthenticationMac, MessageError> {
    let iteration_count = match el.child(DSKPP_NS, "IterationCount") {
        Some(c) => Some(
            c.text
                .trim()
                .parse::<u32>()
                .map_err(|_| invalid("IterationCount", c.text.clone()))?,
        ),
        None => None,
    };
    let mac = el
        .child(DSKPP_NS, "Mac")
        .ok_or_else(|| missing("AuthenticationCodeMac", "Mac"))?;
    Ok(AuthenticationMac {
        nonce: opt_b64(el, "Nonce")?,
        iteration_count,
        mac: read_mac(mac)?,
    })
}

fn write_auth_mac(name: &str, m: &AuthenticationMac) -> Element {
    let mut el = Element::dskpp(name);
    if let Some(n) = &m.nonce {
        el.push(b64_el("Nonce", n));
    }
    if let Some(i) = m.iteration_count {
        el.push(text_el("IterationCount", i.to_string()));
    }
    el.with_child(write_mac("Mac", &m.mac))
}

fn read_auth(el: &Element) -> Result<AuthenticationData, MessageError> {
    let client_id = el.child(DSKPP_NS, "ClientID").map(|c| c.text.clone());
    if client_id.as_ref().is_some_and(|c| c.chars().count() > 128) {
        return Err(invalid("ClientID", "longer than 128 characters"));
    }
    let code_mac = el
        .child(DSKPP_NS, "AuthenticationCodeMac")
        .map(read_auth_mac)
        .transpose()?;
    let other = el.children.iter().find(|c| c.ns != DSKPP_NS).cloned();
    Ok(AuthenticationData {
        client_id,
        code_mac,
        other,
    })
}

fn write_auth(a: &AuthenticationData) -> Element {
    let mut el = Element::dskpp("AuthenticationData");
    if let Some(id) = &a.client_id {
        el.push(text_el("ClientID", id.clone()));
    }
    if let Some(m) = &a.code_mac {
        el.push(write_auth_mac("AuthenticationCodeMac", m));
    }
    if let Some(o) = &a.other {
        el.push(o.clone());
    }
    el
}

fn read_key_info(el: &Element) -> Result<KeyInfo, MessageError> {
    let key_name = el
        .child(DS_NS, "KeyName")
        .map(|c| c.text.trim().to_string());
    let rsa = match el
        .child(DS_NS, "KeyValue")
        .and_then(|v| v.child(DS_NS, "RSAKeyValue"))
    {
        Some(rsa) => {
            let m = rsa
                .child(DS_NS, "Modulus")
                .ok_or_else(|| missing("RSAKeyValue", "Modulus"))?;
            let e = rsa
                .child(DS_NS, "Exponent")
                .ok_or_else(|| missing("RSAKeyValue", "Exponent"))?;
            Some((b64("Modulus", &m.text)?, b64("Exponent", &e.text)?))
        }
        None => None,
    };
    Ok(KeyInfo { key_name, rsa })
}

fn write_key_info(ns: &str, name: &str, k: &KeyInfo) -> Element {
    let mut el = Element::new(ns, name);
    if let Some(n) = &k.key_name {
        el.push(Element::new(DS_NS, "KeyName").with_text(n.clone()));
    }
    if let Some((m, e)) = &k.rsa {
        let rsa = Element::new(DS_NS, "RSAKeyValue")
            .with_child(Element::new(DS_NS, "Modulus").with_text(B64.encode(m)))
            .with_child(Element::new(DS_NS, "Exponent").with_text(B64.encode(e)));
        el.push(Element::new(DS_NS, "KeyValue").with_child(rsa));
    }
    el
}

fn read_payload(el: &Element) -> Result<Payload, MessageError> {
    if let Some(n) = el.child(DSKPP_NS, "Nonce") {
        return Ok(Payload::Nonce(b64("Nonce", &n.text)?));
    }
    match el.child(DS_NS, "KeyInfo") {
        Some(k) => Ok(Payload::KeyInfo(read_key_info(k)?)),
        None => Err(invalid("Payload", "neither Nonce nor ds:KeyInfo")),
    }
}

fn write_payload(p: &Payload) -> Element {
    let el = Element::dskpp("Payload");
    match p {
        Payload::Nonce(n) => el.with_child(b64_el("Nonce", n)),
        Payload::KeyInfo(k) => el.with_child(write_key_info(DS_NS, "KeyInfo", k)),
    }
}

fn read_extensions(el: &Element) -> Result<Vec<Extension>, MessageError> {
    let Some(list) = el.child(DSKPP_NS, "Extensions") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ext in list.children_named(DSKPP_NS, "Extension") {
        let critical = match ext.attr("Critical").map(str::trim) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return Err(invalid("Critical", other.to_string())),
        };
        let ty = ext.attr_ns(XSI_NS, "type").unwrap_or("").to_string();
        let data = || -> Result<Vec<u8>, MessageError> {
            let d = ext
                .child(DSKPP_NS, "Data")
                .ok_or_else(|| missing("Extension", "Data"))?;
            b64("Data", &d.text)
        };
        let kind = if ty == format!("{{{DSKPP_NS}}}ClientInfoType") {
            ExtensionKind::ClientInfo(data()?)
        } else if ty == format!("{{{DSKPP_NS}}}ServerInfoType") {
            ExtensionKind::ServerInfo(data()?)
        } else {
            ExtensionKind::Unknown(ty)
        };
        out.push(Extension { critical, kind });
    }
    Ok(out)
}

fn write_extensions(parent: &mut Element, exts: &[Extension]) {
    if exts.is_empty() {
        return;
    }
    let mut list = Element::dskpp("Extensions");
    for e in exts {
        let (ty, data) = match &e.kind {
            ExtensionKind::ClientInfo(d) => (format!("{{{DSKPP_NS}}}ClientInfoType"), Some(d)),
            ExtensionKind::ServerInfo(d) => (format!("{{{DSKPP_NS}}}ServerInfoType"), Some(d)),
            ExtensionKind::Unknown(t) => (t.clone(), None),
        };
        let mut el = Element::dskpp("Extension").with_attr("Critical", e.critical.to_string());
        if !ty.is_empty() {
            el = el.with_attr_ns(XSI_NS, "type", ty);
        }
        if let Some(d) = data {
            el.push(b64_el("Data", d));
        }
        list.push(el);
    }
    parent.push(list);
}

fn root(name: &str, version: &str) -> Element {
    Element::dskpp(name).with_attr("Version", version.to_string())
}

// ---- messages ---------------------------------------------------------------------------

fn read_trigger(el: &Element) -> Result<Trigger, MessageError> {
    let init = el
        .child(DSKPP_NS, "InitializationTrigger")
        .ok_or_else(|| missing("KeyProvTrigger", "InitializationTrigger"))?;
    let auth = init
        .child(DSKPP_NS, "AuthenticationData")
        .ok_or_else(|| missing("InitializationTrigger", "AuthenticationData"))?;
    Ok(Trigger {
        version: el.attr("Version").map(str::to_string),
        device_id: init.child(DSKPP_NS, "DeviceIdentifierData").cloned(),
        key_id: opt_b64(init, "KeyID")?,
        token_platform: init.child(DSKPP_NS, "TokenPlatformInfo").cloned(),
        auth: read_auth(auth)?,
        server_url: opt_uri(init, "ServerUrl"),
    })
}

fn write_trigger(t: &Trigger) -> Element {
    let mut init = Element::dskpp("InitializationTrigger");
    if let Some(d) = &t.device_id {
        init.push(d.clone());
    }
    if let Some(k) = &t.key_id {
        init.push(b64_el("KeyID", k));
    }
    if let Some(p) = &t.token_platform {
        init.push(p.clone());
    }
    init.push(write_auth(&t.auth));
    if let Some(u) = &t.server_url {
        init.push(text_el("ServerUrl", u.clone()));
    }
    let mut el = Element::dskpp("KeyProvTrigger");
    if let Some(v) = &t.version {
        el = el.with_attr("Version", v.clone());
    }
    el.with_child(init)
}

fn read_variants(el: &Element) -> Result<ProtocolVariants, MessageError> {
    let mut v = ProtocolVariants::default();
    for c in &el.children {
        if c.is(DSKPP_NS, "FourPass") {
            v.four_pass = true;
        } else if c.is(DSKPP_NS, "TwoPass") {
            v.two_pass_first = !v.four_pass;
            let mut kpml = Vec::new();
            let mut pending: Option<KeyProtection> = None;
            for k in &c.children {
                if k.is(DSKPP_NS, "SupportedKeyProtectionMethod") {
                    kpml.extend(pending.take());
                    pending = Some(KeyProtection {
                        method: collapse(&k.text),
                        payload: None,
                    });
                } else if k.is(DSKPP_NS, "Payload") {
                    let slot = pending
                        .as_mut()
                        .ok_or_else(|| invalid("Payload", "before any method"))?;
                    slot.payload = Some(read_payload(k)?);
                }
            }
            kpml.extend(pending);
            v.two_pass = Some(kpml);
        }
    }
    Ok(v)
}

fn write_variants(v: &ProtocolVariants) -> Element {
    let mut el = Element::dskpp("SupportedProtocolVariants");
    let two = v.two_pass.as_ref().map(|kpml| {
        let mut t = Element::dskpp("TwoPass");
        for k in kpml {
            t.push(text_el("SupportedKeyProtectionMethod", k.method.clone()));
            if let Some(p) = &k.payload {
                t.push(write_payload(p));
            }
        }
        t
    });
    let four = v.four_pass.then(|| Element::dskpp("FourPass"));
    let (first, second) = if v.two_pass_first {
        (two, four)
    } else {
        (four, two)
    };
    el.children.extend(first);
    el.children.extend(second);
    el
}

fn read_client_hello(el: &Element) -> Result<ClientHello, MessageError> {
    const W: &str = "KeyProvClientHello";
    Ok(ClientHello {
        version: version(el, W)?,
        device_id: el.child(DSKPP_NS, "DeviceIdentifierData").cloned(),
        key_id: opt_b64(el, "KeyID")?,
        client_nonce: opt_b64(el, "ClientNonce")?,
        key_types: algorithms(el, "SupportedKeyTypes", "Algorithm")?,
        encryption_algorithms: algorithms(el, "SupportedEncryptionAlgorithms", "Algorithm")?,
        mac_algorithms: algorithms(el, "SupportedMacAlgorithms", "Algorithm")?,
        variants: el
            .child(DSKPP_NS, "SupportedProtocolVariants")
            .map(read_variants)
            .transpose()?,
        key_packages: match el.child(DSKPP_NS, "SupportedKeyPackages") {
            Some(_) => Some(algorithms(el, "SupportedKeyPackages", "KeyPackageFormat")?),
            None => None,
        },
        auth: el
            .child(DSKPP_NS, "AuthenticationData")
            .map(read_auth)
            .transpose()?,
        extensions: read_extensions(el)?,
    })
}

fn write_client_hello(m: &ClientHello) -> Element {
    let mut el = root("KeyProvClientHello", &m.version);
    if let Some(d) = &m.device_id {
        el.push(d.clone());
    }
    if let Some(k) = &m.key_id {
        el.push(b64_el("KeyID", k));
    }
    if let Some(n) = &m.client_nonce {
        el.push(b64_el("ClientNonce", n));
    }
    el.push(algorithms_el(
        "SupportedKeyTypes",
        "Algorithm",
        &m.key_types,
    ));
    el.push(algorithms_el(
        "SupportedEncryptionAlgorithms",
        "Algorithm",
        &m.encryption_algorithms,
    ));
    el.push(algorithms_el(
        "SupportedMacAlgorithms",
        "Algorithm",
        &m.mac_algorithms,
    ));
    if let Some(v) = &m.variants {
        el.push(write_variants(v));
    }
    if let Some(p) = &m.key_packages {
        el.push(algorithms_el("SupportedKeyPackages", "KeyPackageFormat", p));
    }
    if let Some(a) = &m.auth {
        el.push(write_auth(a));
    }
    write_extensions(&mut el, &m.extensions);
    el
}

fn read_server_hello(el: &Element) -> Result<ServerHello, MessageError> {
    const W: &str = "KeyProvServerHello";
    Ok(ServerHello {
        version: version(el, W)?,
        status: status(el, W)?,
        session_id: el.attr("SessionID").map(str::to_string),
        key_type: opt_uri(el, "KeyType"),
        encryption_algorithm: opt_uri(el, "EncryptionAlgorithm"),
        mac_algorithm: opt_uri(el, "MacAlgorithm"),
        encryption_key: el
            .child(DSKPP_NS, "EncryptionKey")
            .map(read_key_info)
            .transpose()?,
        key_package_format: opt_uri(el, "KeyPackageFormat"),
        payload: el
            .child(DSKPP_NS, "Payload")
            .map(read_payload)
            .transpose()?,
        extensions: read_extensions(el)?,
        mac: el.child(DSKPP_NS, "Mac").map(read_mac).transpose()?,
    })
}

fn write_server_hello(m: &ServerHello) -> Element {
    let mut el = root("KeyProvServerHello", &m.version).with_attr("Status", m.status.as_str());
    if let Some(s) = &m.session_id {
        el = el.with_attr("SessionID", s.clone());
    }
    for (name, v) in [
        ("KeyType", &m.key_type),
        ("EncryptionAlgorithm", &m.encryption_algorithm),
        ("MacAlgorithm", &m.mac_algorithm),
    ] {
        if let Some(v) = v {
            el.push(text_el(name, v.clone()));
        }
    }
    if let Some(k) = &m.encryption_key {
        el.push(write_key_info(DSKPP_NS, "EncryptionKey", k));
    }
    if let Some(f) = &m.key_package_format {
        el.push(text_el("KeyPackageFormat", f.clone()));
    }
    if let Some(p) = &m.payload {
        el.push(write_payload(p));
    }
    write_extensions(&mut el, &m.extensions);
    if let Some(mac) = &m.mac {
        el.push(write_mac("Mac", mac));
    }
    el
}

fn read_client_nonce(el: &Element) -> Result<ClientNonce, MessageError> {
    const W: &str = "KeyProvClientNonce";
    let nonce = el
        .child(DSKPP_NS, "EncryptedNonce")
        .ok_or_else(|| missing(W, "EncryptedNonce"))?;
    Ok(ClientNonce {
        version: version(el, W)?,
        session_id: el
            .attr("SessionID")
            .ok_or_else(|| missing(W, "SessionID attribute"))?
            .into(),
        encrypted_nonce: b64("EncryptedNonce", &nonce.text)?,
        auth: el
            .child(DSKPP_NS, "AuthenticationData")
            .map(read_auth)
            .transpose()?,
        extensions: read_extensions(el)?,
    })
}

fn write_client_nonce(m: &ClientNonce) -> Element {
    let mut el =
        root("KeyProvClientNonce", &m.version).with_attr("SessionID", m.session_id.clone());
    el.push(b64_el("EncryptedNonce", &m.encrypted_nonce));
    if let Some(a) = &m.auth {
        el.push(write_auth(a));
    }
    write_extensions(&mut el, &m.extensions);
    el
}

fn read_key_package(el: &Element) -> KeyPackage {
    KeyPackage {
        server_id: opt_uri(el, "ServerID"),
        key_protection_method: opt_uri(el, "KeyProtectionMethod"),
        key_container: el.child(DSKPP_NS, "KeyContainer").cloned(),
    }
}

fn write_key_package(p: &KeyPackage) -> Element {
    let mut el = Element::dskpp("KeyPackage");
    if let Some(s) = &p.server_id {
        el.push(text_el("ServerID", s.clone()));
    }
    if let Some(k) = &p.key_protection_method {
        el.push(text_el("KeyProtectionMethod", k.clone()));
    }
    if let Some(c) = &p.key_container {
        el.push(c.clone());
    }
    el
}

fn read_server_finished(el: &Element) -> Result<ServerFinished, MessageError> {
    const W: &str = "KeyProvServerFinished";
    Ok(ServerFinished {
        version: version(el, W)?,
        status: status(el, W)?,
        session_id: el.attr("SessionID").map(str::to_string),
        key_package: el.child(DSKPP_NS, "KeyPackage").map(read_key_package),
        extensions: read_extensions(el)?,
        mac: el.child(DSKPP_NS, "Mac").map(read_mac).transpose()?,
        auth: el
            .child(DSKPP_NS, "AuthenticationData")
            .map(read_auth_mac)
            .transpose()?,
    })
}

fn write_server_finished(m: &ServerFinished) -> Element {
    let mut el = root("KeyProvServerFinished", &m.version).with_attr("Status", m.status.as_str());
    if let Some(s) = &m.session_id {
        el = el.with_attr("SessionID", s.clone());
    }
    if let Some(p) = &m.key_package {
        el.push(write_key_package(p));
    }
    write_extensions(&mut el, &m.extensions);
    if let Some(mac) = &m.mac {
        el.push(write_mac("Mac", mac));
    }
    if let Some(a) = &m.auth {
        el.push(write_auth_mac("AuthenticationData", a));
    }
    el
}

#[cfg(test)]
mod tests;
