//! Writing canonical RFC 6030: [`write`] for a whole container, [`Writer`] to stream
//! `KeyPackage`s to any `Write`, and [`write_container_element`] to embed a container in
//! another protocol's XML under a caller-chosen element name (DSKPP).
//!
//! Protection is chosen at write time ([`Protection`]): plain, a pre-shared key, a PBKDF2
//! password, or an RSA public key. Secrets are encrypted with a fresh IV each; symmetric
//! protection always adds a fresh random MAC key and a ValueMAC per value (§6.1.1).

use std::io::Write;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::algorithm::{Cipher, Hmac, NS_DS, NS_PKCS5, NS_PSKC, NS_XENC, NS_XENC11, PBKDF2};
use crate::encryption::{self, Failure, RsaPublicKey};
use crate::error::{Error, Location, Result};
use crate::mac;
use crate::model::{DeviceInfo, Extension, Key, KeyContainer, KeyPackage, Policy};
use crate::secret::Secret;
use crate::values::{base64_encode, format_date_time};

/// Namespace of the marker written for policy content that was not understood.
pub const NS_UNKNOWN_POLICY: &str = "urn:keyprov-station:pskc:unsupported-policy";

/// How secrets are protected in the written file.
#[derive(Debug, Clone, Default)]
pub enum Protection {
    /// Secrets as `PlainValue` (only for transport over an already protected channel).
    #[default]
    Plain,
    /// A pre-shared key (§6.1).
    PreSharedKey {
        /// The key; its length must suit `cipher`.
        key: Secret,
        /// `ds:KeyName` to write, so the recipient knows which key to use.
        key_name: Option<String>,
        /// Value cipher.
        cipher: Cipher,
        /// ValueMAC algorithm (a fresh MAC key is generated).
        mac: Hmac,
    },
    /// A key derived from a password with PBKDF2 (§6.2).
    Password {
        /// The password.
        password: Secret,
        /// PBKDF2 iteration count.
        iterations: u32,
        /// PBKDF2 PRF.
        prf: Hmac,
        /// Salt; a random 16-byte salt when `None`.
        salt: Option<Vec<u8>>,
        /// `xenc11:MasterKeyName` to write.
        key_name: Option<String>,
        /// Value cipher.
        cipher: Cipher,
        /// ValueMAC algorithm.
        mac: Hmac,
    },
    /// Asymmetric key transport to the holder of an RSA key (§6.3).
    PublicKey {
        /// The recipient's key (or certificate, which is then embedded).
        key: RsaPublicKey,
        /// `Cipher::Rsa1_5` or `Cipher::RsaOaepMgf1p`.
        cipher: Cipher,
    },
}

/// Choices about the written file beyond its [`Protection`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Encrypt every `<Data>` value, not only `Secret`: `Counter`, `Time`, `TimeInterval` and
    /// `TimeDrift` become `EncryptedValue` (+ `ValueMAC`) too (RFC 6030 §4.3.3, §6). The
    /// plaintext of an integer is its 8-byte big-endian two's complement (xs:long). Needs a
    /// protection with a key; many importers read only `PlainValue` there.
    pub encrypt_all_data: bool,
}

/// Writes `container` as a complete document.
pub fn write(container: &KeyContainer, protection: &Protection) -> Result<Vec<u8>> {
    write_with(container, protection, &WriteOptions::default())
}

/// [`write`] with [`WriteOptions`].
pub fn write_with(
    container: &KeyContainer,
    protection: &Protection,
    options: &WriteOptions,
) -> Result<Vec<u8>> {
    let mut writer = Writer::with_options(Vec::new(), container, protection, options)?;
    for package in &container.key_packages {
        writer.write_package(package)?;
    }
    writer.finish()
}

/// Streams a document: header on creation, packages one by one, trailer on [`finish`].
///
/// [`finish`]: Writer::finish
pub struct Writer<W: Write> {
    xml: quick_xml::Writer<W>,
    sealer: Sealer,
    extensions: Vec<Extension>,
}

impl<W: Write> Writer<W> {
    /// Writes the XML declaration, the `KeyContainer` start and the protection header.
    /// `header` supplies version, id and container extensions; its packages are ignored.
    pub fn new(out: W, header: &KeyContainer, protection: &Protection) -> Result<Self> {
        Self::with_options(out, header, protection, &WriteOptions::default())
    }

    /// [`Writer::new`] with [`WriteOptions`].
    pub fn with_options(
        out: W,
        header: &KeyContainer,
        protection: &Protection,
        options: &WriteOptions,
    ) -> Result<Self> {
        if options.encrypt_all_data && matches!(protection, Protection::Plain) {
            return Err(Error::InvalidRequest(
                "encrypting every Data value needs a key, password or public key".into(),
            ));
        }
        let mut xml = quick_xml::Writer::new_with_indent(out, b' ', 2);
        let decl = BytesDecl::new("1.0", Some("UTF-8"), None);
        xml.write_event(Event::Decl(decl)).map_err(io_error)?;
        let namespaces = [("xmlns", NS_PSKC)];
        let mut sealer = open_container(
            &mut xml,
            "KeyContainer",
            "",
            &namespaces,
            header,
            protection,
        )?;
        sealer.encrypt_all_data = options.encrypt_all_data;
        Ok(Writer {
            xml,
            sealer,
            extensions: header.extensions.clone(),
        })
    }

    /// Writes one package (a package with several keys becomes several packages).
    pub fn write_package(&mut self, package: &KeyPackage) -> Result<()> {
        write_package(&mut self.xml, "", &mut self.sealer, package)
    }

    /// Replaces the container-level extensions written by [`Writer::finish`] (a streaming
    /// reader only knows them once the input is consumed).
    pub fn set_container_extensions(&mut self, extensions: Vec<Extension>) {
        self.extensions = extensions;
    }

    /// Writes container extensions and the end tag; returns the output.
    pub fn finish(mut self) -> Result<W> {
        close_container(&mut self.xml, "KeyContainer", "", &self.extensions)?;
        let mut out = self.xml.into_inner();
        out.write_all(b"\n")?;
        Ok(out)
    }
}

/// Writes `container` as the element `qname` (e.g. `dskpp:KeyContainer`) into `xml`, declaring
/// `namespaces` (`("xmlns:dskpp", uri)`…) on it; PSKC children use the `pskc:` prefix, which
/// is declared too unless the caller already did.
pub fn write_container_element<W: Write>(
    xml: &mut quick_xml::Writer<W>,
    qname: &str,
    namespaces: &[(&str, &str)],
    container: &KeyContainer,
    protection: &Protection,
) -> Result<()> {
    let mut declared: Vec<(&str, &str)> = namespaces.to_vec();
    if !declared.iter().any(|(name, _)| *name == "xmlns:pskc") {
        declared.push(("xmlns:pskc", NS_PSKC));
    }
    let mut sealer = open_container(xml, qname, "pskc:", &declared, container, protection)?;
    for package in &container.key_packages {
        write_package(xml, "pskc:", &mut sealer, package)?;
    }
    close_container(xml, qname, "pskc:", &container.extensions)
}

/// Keys and settings used to protect each value.
struct Sealer {
    cipher: Option<Cipher>,
    key: Option<Secret>,
    public_key: Option<RsaPublicKey>,
    mac: Option<(Hmac, Secret)>,
    /// Counters and times are encrypted too ([`WriteOptions::encrypt_all_data`]).
    encrypt_all_data: bool,
}

impl Sealer {
    /// Encrypts `plain` and computes its ValueMAC.
    fn seal(&self, plain: &[u8], at: &Location) -> Result<(Cipher, Vec<u8>, Option<Vec<u8>>)> {
        let Some(cipher) = self.cipher else {
            return Err(Error::InvalidRequest("no cipher configured".into()));
        };
        let sealed = match (&self.public_key, &self.key) {
            (Some(public_key), _) => public_key.encrypt(cipher, plain),
            (None, Some(key)) => encryption::encrypt(cipher, key.expose(), plain),
            (None, None) => return Err(Error::InvalidRequest("no key configured".into())),
        };
        let sealed = sealed.map_err(|failure| seal_error(failure, cipher, at))?;
        let tag = self
            .mac
            .as_ref()
            .map(|(algorithm, key)| mac::hmac(*algorithm, key.expose(), &sealed));
        Ok((cipher, sealed, tag))
    }
}

fn seal_error(failure: Failure, cipher: Cipher, at: &Location) -> Error {
    let reason = match failure {
        Failure::KeyLength => format!(
            "the key length does not suit {} (needs {:?} bytes)",
            cipher.name(),
            cipher.key_lengths()
        ),
        Failure::Malformed(reason) => {
            format!("{} cannot protect this value: {reason}", cipher.name())
        }
        Failure::Rsa(reason) => format!("RSA encryption failed: {reason}"),
        Failure::Integrity => "encryption failed".to_owned(),
        Failure::Random => return Error::Random("while encrypting".into()),
    };
    Error::InvalidRequest(format!("{at}: {reason}"))
}

fn io_error(err: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(err.to_string()))
}

/// Small helpers over quick-xml's writer with a fixed element prefix.
struct Out<'a, W: Write> {
    xml: &'a mut quick_xml::Writer<W>,
    prefix: &'a str,
}

impl<W: Write> Out<'_, W> {
    fn name(&self, local: &str) -> String {
        if local.contains(':') {
            local.to_owned()
        } else {
            format!("{}{local}", self.prefix)
        }
    }

    fn start(&mut self, local: &str, attrs: &[(&str, &str)]) -> Result<()> {
        let mut start = BytesStart::new(self.name(local));
        start.extend_attributes(attrs.iter().copied());
        self.xml.write_event(Event::Start(start)).map_err(io_error)
    }

    fn end(&mut self, local: &str) -> Result<()> {
        self.xml
            .write_event(Event::End(BytesEnd::new(self.name(local))))
            .map_err(io_error)
    }

    fn empty(&mut self, local: &str, attrs: &[(&str, &str)]) -> Result<()> {
        let mut start = BytesStart::new(self.name(local));
        start.extend_attributes(attrs.iter().copied());
        self.xml.write_event(Event::Empty(start)).map_err(io_error)
    }

    fn leaf(&mut self, local: &str, text: &str) -> Result<()> {
        self.leaf_with(local, &[], text)
    }

    fn leaf_with(&mut self, local: &str, attrs: &[(&str, &str)], text: &str) -> Result<()> {
        let name = self.name(local);
        let mut start = BytesStart::new(name.as_str());
        start.extend_attributes(attrs.iter().copied());
        self.xml
            .write_event(Event::Start(start))
            .map_err(io_error)?;
        self.xml
            .write_event(Event::Text(BytesText::new(text)))
            .map_err(io_error)?;
        self.xml
            .write_event(Event::End(BytesEnd::new(name)))
            .map_err(io_error)
    }

    fn opt(&mut self, local: &str, text: Option<&str>) -> Result<()> {
        match text {
            Some(text) => self.leaf(local, text),
            None => Ok(()),
        }
    }

    fn extensions(&mut self, extensions: &[Extension], scope: &str) -> Result<()> {
        for extension in extensions.iter().filter(|e| e.scope == scope) {
            self.start("Extensions", &[])?;
            let raw = BytesText::from_escaped(extension.xml.as_str());
            self.xml.write_event(Event::Text(raw)).map_err(io_error)?;
            self.end("Extensions")?;
        }
        Ok(())
    }

    /// `<xenc:EncryptionMethod/><xenc:CipherData><xenc:CipherValue>` (§6.1).
    fn encrypted(&mut self, cipher: Cipher, value: &[u8]) -> Result<()> {
        self.empty("xenc:EncryptionMethod", &[("Algorithm", cipher.uri())])?;
        self.start("xenc:CipherData", &[])?;
        self.leaf("xenc:CipherValue", &base64_encode(value))?;
        self.end("xenc:CipherData")
    }
}

fn open_container<W: Write>(
    xml: &mut quick_xml::Writer<W>,
    qname: &str,
    prefix: &str,
    namespaces: &[(&str, &str)],
    header: &KeyContainer,
    protection: &Protection,
) -> Result<Sealer> {
    let mut attrs: Vec<(&str, &str)> = namespaces.to_vec();
    let uses = |ns| !matches!(protection, Protection::Plain) && !attrs_declare(namespaces, ns);
    let mut extra = Vec::new();
    if uses(NS_DS) {
        extra.push(("xmlns:ds", NS_DS));
    }
    if uses(NS_XENC) {
        extra.push(("xmlns:xenc", NS_XENC));
    }
    if matches!(protection, Protection::Password { .. }) {
        extra.push(("xmlns:xenc11", NS_XENC11));
        extra.push(("xmlns:pkcs5", NS_PKCS5));
    }
    attrs.extend(extra);
    attrs.push(("Version", "1.0"));
    if let Some(id) = &header.id {
        attrs.push(("Id", id));
    }
    let mut start = BytesStart::new(qname);
    start.extend_attributes(attrs.iter().copied());
    xml.write_event(Event::Start(start)).map_err(io_error)?;
    let mut out = Out { xml, prefix };
    protection_header(&mut out, protection)
}

fn attrs_declare(namespaces: &[(&str, &str)], ns: &str) -> bool {
    namespaces.iter().any(|(_, uri)| *uri == ns)
}

/// `<EncryptionKey>` and `<MACMethod>` for `protection`; returns what sealing needs.
fn protection_header<W: Write>(out: &mut Out<'_, W>, protection: &Protection) -> Result<Sealer> {
    match protection {
        Protection::Plain => Ok(Sealer {
            cipher: None,
            key: None,
            public_key: None,
            mac: None,
            encrypt_all_data: false,
        }),
        Protection::PreSharedKey {
            key,
            key_name,
            cipher,
            mac,
        } => {
            check_symmetric(*cipher, key)?;
            out.start("EncryptionKey", &[])?;
            out.leaf(
                "ds:KeyName",
                key_name.as_deref().unwrap_or("Pre-shared-key"),
            )?;
            out.end("EncryptionKey")?;
            symmetric_sealer(out, *cipher, key.clone(), *mac)
        }
        Protection::Password {
            password,
            iterations,
            prf,
            salt,
            key_name,
            cipher,
            mac,
        } => {
            let salt = match salt {
                Some(salt) => salt.clone(),
                None => Secret::random(16)?.expose().to_vec(),
            };
            let length = cipher.key_lengths().first().copied().unwrap_or(16);
            if cipher.is_asymmetric() || *iterations == 0 {
                return Err(Error::InvalidRequest(
                    "PBKDF2 needs a symmetric cipher and iterations > 0".into(),
                ));
            }
            let key = mac::pbkdf2(*prf, password.expose(), &salt, *iterations, length);
            derived_key_header(out, &salt, *iterations, length, *prf, key_name.as_deref())?;
            symmetric_sealer(out, *cipher, key, *mac)
        }
        Protection::PublicKey { key, cipher } => {
            if !cipher.is_asymmetric() {
                return Err(Error::InvalidRequest(format!(
                    "{} is not an RSA algorithm",
                    cipher.name()
                )));
            }
            out.start("EncryptionKey", &[])?;
            match &key.certificate {
                Some(der) => {
                    out.start("ds:X509Data", &[])?;
                    out.leaf("ds:X509Certificate", &base64_encode(der))?;
                    out.end("ds:X509Data")?;
                }
                None => out.leaf("ds:KeyName", "RSA public key")?,
            }
            out.end("EncryptionKey")?;
            Ok(Sealer {
                cipher: Some(*cipher),
                key: None,
                public_key: Some(key.clone()),
                mac: None,
                encrypt_all_data: false,
            })
        }
    }
}

fn check_symmetric(cipher: Cipher, key: &Secret) -> Result<()> {
    if cipher.is_asymmetric() {
        return Err(Error::InvalidRequest(format!(
            "{} needs a public key",
            cipher.name()
        )));
    }
    if !cipher.key_lengths().contains(&key.len()) {
        return Err(Error::InvalidRequest(format!(
            "a {}-byte key does not suit {} (needs {:?} bytes)",
            key.len(),
            cipher.name(),
            cipher.key_lengths()
        )));
    }
    Ok(())
}

/// RFC 6030 figure 7 layout: `xenc11:DerivedKey` with `pkcs5:PBKDF2-params`.
fn derived_key_header<W: Write>(
    out: &mut Out<'_, W>,
    salt: &[u8],
    iterations: u32,
    length: usize,
    prf: Hmac,
    key_name: Option<&str>,
) -> Result<()> {
    out.start("EncryptionKey", &[])?;
    out.start("xenc11:DerivedKey", &[])?;
    out.start("xenc11:KeyDerivationMethod", &[("Algorithm", PBKDF2)])?;
    // The PKCS #5 schema leaves these children unqualified (figure 7); undeclaring the
    // default namespace keeps them out of the PSKC namespace that `Writer` makes the default.
    out.start("pkcs5:PBKDF2-params", &[("xmlns", "")])?;
    out.xml
        .create_element("Salt")
        .write_inner_content(|w| {
            w.create_element("Specified")
                .write_text_content(BytesText::new(&base64_encode(salt)))?;
            Ok(())
        })
        .map_err(io_error)?;
    let text = |w: &mut quick_xml::Writer<W>, name: &str, value: String| {
        w.create_element(name)
            .write_text_content(BytesText::new(&value))
            .map(|_| ())
            .map_err(io_error)
    };
    text(out.xml, "IterationCount", iterations.to_string())?;
    text(out.xml, "KeyLength", length.to_string())?;
    out.xml
        .create_element("PRF")
        .with_attribute(("Algorithm", prf.uri()))
        .write_empty()
        .map_err(io_error)?;
    out.end("pkcs5:PBKDF2-params")?;
    out.end("xenc11:KeyDerivationMethod")?;
    out.leaf("xenc11:MasterKeyName", key_name.unwrap_or("Password"))?;
    out.end("xenc11:DerivedKey")?;
    out.end("EncryptionKey")
}

/// Writes `<MACMethod>` with a fresh MAC key encrypted under the value key.
fn symmetric_sealer<W: Write>(
    out: &mut Out<'_, W>,
    cipher: Cipher,
    key: Secret,
    mac: Hmac,
) -> Result<Sealer> {
    check_symmetric(cipher, &key)?;
    // Key-wrap ciphers need 8n bytes (3DES key wrap has no padded variant).
    let length = match cipher {
        Cipher::KwTripleDes | Cipher::KwAes128 | Cipher::KwAes192 | Cipher::KwAes256 => {
            mac.output_len().div_ceil(8) * 8
        }
        Cipher::KwCamellia128 | Cipher::KwCamellia192 | Cipher::KwCamellia256 => {
            mac.output_len().div_ceil(8) * 8
        }
        _ => mac.output_len(),
    };
    let mac_key = Secret::random(length)?;
    let sealed = encryption::encrypt(cipher, key.expose(), mac_key.expose())
        .map_err(|failure| seal_error(failure, cipher, &Location::element("MACMethod/MACKey")))?;
    out.start("MACMethod", &[("Algorithm", mac.uri())])?;
    out.start("MACKey", &[])?;
    out.encrypted(cipher, &sealed)?;
    out.end("MACKey")?;
    out.end("MACMethod")?;
    Ok(Sealer {
        cipher: Some(cipher),
        key: Some(key),
        public_key: None,
        mac: Some((mac, mac_key)),
        encrypt_all_data: false,
    })
}

fn close_container<W: Write>(
    xml: &mut quick_xml::Writer<W>,
    qname: &str,
    prefix: &str,
    extensions: &[Extension],
) -> Result<()> {
    let mut out = Out { xml, prefix };
    out.extensions(extensions, "container")?;
    out.xml
        .write_event(Event::End(BytesEnd::new(qname)))
        .map_err(io_error)
}

fn write_package<W: Write>(
    xml: &mut quick_xml::Writer<W>,
    prefix: &str,
    sealer: &mut Sealer,
    package: &KeyPackage,
) -> Result<()> {
    let mut out = Out { xml, prefix };
    let keys: Vec<Option<&Key>> = if package.keys.is_empty() {
        vec![None]
    } else {
        package.keys.iter().map(Some).collect()
    };
    for key in keys {
        out.start("KeyPackage", &[])?;
        device_info(&mut out, &package.device_info)?;
        if let Some(id) = &package.crypto_module_id {
            out.start("CryptoModuleInfo", &[])?;
            out.leaf("Id", id)?;
            out.end("CryptoModuleInfo")?;
        }
        if let Some(key) = key {
            write_key(&mut out, sealer, key)?;
        }
        out.extensions(&package.extensions, "package")?;
        out.end("KeyPackage")?;
    }
    Ok(())
}

fn device_info<W: Write>(out: &mut Out<'_, W>, info: &DeviceInfo) -> Result<()> {
    if info.is_empty() {
        return Ok(());
    }
    out.start("DeviceInfo", &[])?;
    out.opt("Manufacturer", info.manufacturer.as_deref())?;
    out.opt("SerialNo", info.serial_no.as_deref())?;
    out.opt("Model", info.model.as_deref())?;
    out.opt("IssueNo", info.issue_no.as_deref())?;
    out.opt("DeviceBinding", info.device_binding.as_deref())?;
    out.opt(
        "StartDate",
        info.start_date.map(format_date_time).as_deref(),
    )?;
    out.opt(
        "ExpiryDate",
        info.expiry_date.map(format_date_time).as_deref(),
    )?;
    out.opt("UserId", info.user_id.as_deref())?;
    out.extensions(&info.extensions, "device")?;
    out.end("DeviceInfo")
}

fn write_key<W: Write>(out: &mut Out<'_, W>, sealer: &Sealer, key: &Key) -> Result<()> {
    let mut attrs = Vec::new();
    if let Some(id) = &key.id {
        attrs.push(("Id", id.as_str()));
    }
    if let Some(algorithm) = &key.algorithm {
        attrs.push(("Algorithm", algorithm.as_str()));
    }
    out.start("Key", &attrs)?;
    out.opt("Issuer", key.issuer.as_deref())?;
    algorithm_parameters(out, key)?;
    out.opt("KeyProfileId", key.key_profile_id.as_deref())?;
    out.opt("KeyReference", key.key_reference.as_deref())?;
    if let Some(name) = &key.friendly_name {
        match &key.friendly_name_lang {
            Some(lang) => out.leaf_with("FriendlyName", &[("xml:lang", lang)], name)?,
            None => out.leaf("FriendlyName", name)?,
        }
    }
    key_data(out, sealer, key)?;
    out.opt("UserId", key.user_id.as_deref())?;
    policy(out, &key.policy)?;
    out.extensions(&key.extensions, "key")?;
    out.end("Key")
}

fn algorithm_parameters<W: Write>(out: &mut Out<'_, W>, key: &Key) -> Result<()> {
    let params = &key.algorithm_parameters;
    let has_extensions = key.extensions.iter().any(|e| e.scope == "parameters");
    if params.suite.is_none()
        && params.challenge_format.is_none()
        && params.response_format.is_none()
        && !has_extensions
    {
        return Ok(());
    }
    out.start("AlgorithmParameters", &[])?;
    out.opt("Suite", params.suite.as_deref())?;
    if let Some(challenge) = &params.challenge_format {
        let (min, max) = (
            challenge.min.map(|v| v.to_string()),
            challenge.max.map(|v| v.to_string()),
        );
        let check = challenge.check_digits.map(|v| v.to_string());
        let mut attrs = Vec::new();
        push_opt(&mut attrs, "Encoding", challenge.encoding.as_deref());
        push_opt(&mut attrs, "Min", min.as_deref());
        push_opt(&mut attrs, "Max", max.as_deref());
        push_opt(&mut attrs, "CheckDigits", check.as_deref());
        out.empty("ChallengeFormat", &attrs)?;
    }
    if let Some(response) = &params.response_format {
        let length = response.length.map(|v| v.to_string());
        let check = response.check_digits.map(|v| v.to_string());
        let mut attrs = Vec::new();
        push_opt(&mut attrs, "Encoding", response.encoding.as_deref());
        push_opt(&mut attrs, "Length", length.as_deref());
        push_opt(&mut attrs, "CheckDigits", check.as_deref());
        out.empty("ResponseFormat", &attrs)?;
    }
    out.extensions(&key.extensions, "parameters")?;
    out.end("AlgorithmParameters")
}

fn push_opt<'a>(attrs: &mut Vec<(&'a str, &'a str)>, name: &'a str, value: Option<&'a str>) {
    if let Some(value) = value {
        attrs.push((name, value));
    }
}

fn key_data<W: Write>(out: &mut Out<'_, W>, sealer: &Sealer, key: &Key) -> Result<()> {
    let data = &key.data;
    if data.secret.is_none()
        && data.counter.is_none()
        && data.time.is_none()
        && data.time_interval.is_none()
        && data.time_drift.is_none()
    {
        return Ok(());
    }
    out.start("Data", &[])?;
    if let Some(secret) = &data.secret {
        out.start("Secret", &[])?;
        if sealer.cipher.is_some() {
            sealed_value(out, sealer, secret.expose(), "Secret", key)?;
        } else {
            let text = zeroize::Zeroizing::new(base64_encode(secret.expose()));
            out.leaf("PlainValue", &text)?;
        }
        out.end("Secret")?;
    }
    // Unsigned values are below 2^63 in practice; `as` keeps their bits either way.
    let numbers = [
        ("Counter", data.counter.map(|v| v as i64)),
        ("Time", data.time.map(|v| v as i64)),
        ("TimeInterval", data.time_interval.map(|v| v as i64)),
        ("TimeDrift", data.time_drift),
    ];
    for (name, value) in numbers {
        let Some(value) = value else {
            continue;
        };
        out.start(name, &[])?;
        if sealer.encrypt_all_data && sealer.cipher.is_some() {
            sealed_value(out, sealer, &value.to_be_bytes(), name, key)?;
        } else if name == "TimeDrift" {
            out.leaf("PlainValue", &value.to_string())?;
        } else {
            out.leaf("PlainValue", &(value as u64).to_string())?;
        }
        out.end(name)?;
    }
    out.end("Data")
}

/// `<EncryptedValue>` and `<ValueMAC>` of `plain`, the value of `<name>` in `key` (§6.1).
fn sealed_value<W: Write>(
    out: &mut Out<'_, W>,
    sealer: &Sealer,
    plain: &[u8],
    name: &str,
    key: &Key,
) -> Result<()> {
    let at = Location::in_key(name, key.id.as_deref());
    let (cipher, sealed, tag) = sealer.seal(plain, &at)?;
    out.start("EncryptedValue", &[])?;
    out.encrypted(cipher, &sealed)?;
    out.end("EncryptedValue")?;
    if let Some(tag) = tag {
        out.leaf("ValueMAC", &base64_encode(&tag))?;
    }
    Ok(())
}

fn policy<W: Write>(out: &mut Out<'_, W>, policy: &Policy) -> Result<()> {
    if policy.is_empty() {
        return Ok(());
    }
    out.start("Policy", &[])?;
    out.opt(
        "StartDate",
        policy.start_date.map(format_date_time).as_deref(),
    )?;
    out.opt(
        "ExpiryDate",
        policy.expiry_date.map(format_date_time).as_deref(),
    )?;
    if let Some(pin) = &policy.pin_policy {
        let numbers = [pin.max_failed_attempts, pin.min_length, pin.max_length]
            .map(|v| v.map(|n| n.to_string()));
        let mut attrs = Vec::new();
        push_opt(&mut attrs, "PINKeyId", pin.pin_key_id.as_deref());
        push_opt(&mut attrs, "PINUsageMode", pin.pin_usage_mode.as_deref());
        push_opt(&mut attrs, "MaxFailedAttempts", numbers[0].as_deref());
        push_opt(&mut attrs, "MinLength", numbers[1].as_deref());
        push_opt(&mut attrs, "MaxLength", numbers[2].as_deref());
        push_opt(&mut attrs, "PINEncoding", pin.pin_encoding.as_deref());
        out.empty("PINPolicy", &attrs)?;
    }
    for usage in &policy.key_usage {
        out.leaf("KeyUsage", usage)?;
    }
    if let Some(count) = policy.number_of_transactions {
        out.leaf("NumberOfTransactions", &count.to_string())?;
    }
    if policy.unknown_elements {
        // The original content is not understood; an element in a foreign namespace
        // (allowed by the schema's xs:any) keeps the key unusable for every reader (§5).
        let marker = [("xmlns:kps", NS_UNKNOWN_POLICY)];
        out.empty("kps:UnsupportedPolicy", &marker)?;
    }
    out.end("Policy")
}
