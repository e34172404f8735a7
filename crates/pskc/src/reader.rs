//! Reading PSKC: [`parse`] for a whole document, [`Reader`] to stream `KeyPackage`s from any
//! `BufRead`, and [`read_container_element`] for a container embedded in another protocol
//! (DSKPP's `<dskpp:KeyContainer>`).
//!
//! The container header (version, `EncryptionKey`, `MACMethod`) is read first; keys are derived
//! once (PBKDF2 runs once per file); then each `KeyPackage` is read as a small tree, decrypted,
//! MAC-checked and handed out before the next one is read.

use std::collections::VecDeque;
use std::io::BufRead;

use quick_xml::NsReader;
use quick_xml::events::BytesStart;

use crate::algorithm::{Cipher, Hmac, is_pbkdf2};
use crate::dom::{Doc, El, Limits, Next, Plain, Pull, Source};
use crate::encryption::{self, Failure, RsaPrivateKey};
use crate::error::{Error, Location, Result};
use crate::mac;
use crate::model::{
    AlgorithmParameters, ChallengeFormat, DeviceInfo, Extension, Key, KeyContainer, KeyData,
    KeyPackage, PinPolicy, Policy, ResponseFormat,
};
use crate::secret::Secret;
use crate::split::{self, Batch, Rewind, Worker};
use crate::values;

/// How to read a document: keys to decrypt with and what to tolerate.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Pre-shared key (`EncryptionKey/ds:KeyName`, §6.1).
    pub pre_shared_key: Option<Secret>,
    /// Password for PBKDF2-derived keys (§6.2).
    pub password: Option<Secret>,
    /// RSA private key for asymmetric key transport (§6.3).
    pub private_key: Option<RsaPrivateKey>,
    /// Accept encrypted values without `ValueMAC` although a `MACMethod` is declared
    /// (python-pskc does; FreeIPA and this crate refuse by default).
    pub accept_missing_value_mac: bool,
    /// Without a key, leave encrypted values unset instead of failing (metadata only).
    pub metadata_only: bool,
    /// CBC IV for files that give it once, outside the ciphertext (legacy).
    pub iv: Option<Vec<u8>>,
    /// MAC key for files whose `MACMethod` names it by `MACKeyReference` (known out of band);
    /// without it such files fall back to the encryption key, as legacy files do.
    pub mac_key: Option<Secret>,
    /// Size limits.
    pub limits: Limits,
}

impl ReadOptions {
    /// Options with a pre-shared key.
    pub fn with_key(key: Secret) -> Self {
        ReadOptions {
            pre_shared_key: Some(key),
            ..Self::default()
        }
    }

    /// Options with a password.
    pub fn with_password(password: Secret) -> Self {
        ReadOptions {
            password: Some(password),
            ..Self::default()
        }
    }

    /// Options with an RSA private key given as PEM (PKCS #8 or PKCS #1).
    pub fn with_private_key_pem(pem: &str) -> Result<Self> {
        let key = RsaPrivateKey::from_pem(pem).map_err(|reason| Error::Rsa {
            operation: "key parsing",
            reason,
            at: Location::element("private key"),
        })?;
        Ok(ReadOptions {
            private_key: Some(key),
            ..Self::default()
        })
    }
}

/// Reads a whole document held in memory.
pub fn parse(bytes: &[u8], options: &ReadOptions) -> Result<KeyContainer> {
    let mut reader = Reader::new(bytes, options.clone())?;
    let mut packages = Vec::new();
    for package in reader.by_ref() {
        packages.push(package?);
    }
    let mut container = reader.header().clone();
    container.key_packages = packages;
    Ok(container)
}

/// Streams the `KeyPackage`s of a document from any `BufRead`.
///
/// After the header, packages are cut from the input in batches of raw sections
/// ([`crate::split`]); with two or more cores a second thread reads every other batch, so
/// parsing, decryption and MAC checks run in parallel while memory stays bounded (two batches
/// of input and their packages).
pub struct Reader<R> {
    xml: Plain<Rewind<R>>,
    buf: Vec<u8>,
    state: ContainerState,
    /// Packages read ahead, in document order.
    ready: VecDeque<Result<KeyPackage>>,
    worker: Option<Worker<Result<KeyPackage>>>,
    /// No second thread is started again once starting one failed.
    worker_failed: bool,
    /// Batch buffers to reuse (large allocations freed and made again cost more).
    spare: Vec<String>,
    /// The size of this thread's batch in sixteenths of the second thread's: this thread
    /// also cuts both, so it reads less; adjusted after each round so that neither waits.
    share: usize,
}

/// Batches of at least this many packages are worth handing to the second thread.
const PARALLEL_MIN: usize = 16;

/// Smallest share (in sixteenths) of a round this thread reads itself.
const SHARE_MIN: usize = 4;

impl<R: BufRead> Reader<R> {
    /// Reads up to the first `KeyPackage`: root, version, encryption and MAC set-up.
    pub fn new(input: R, options: ReadOptions) -> Result<Self> {
        let input = Rewind::new(input);
        let capped = crate::dom::Capped::new(input, options.limits.max_section);
        let mut reader = quick_xml::Reader::from_reader(capped);
        reader.config_mut().check_end_names = true;
        let mut xml = Plain {
            reader,
            root_scope: Vec::new(),
        };
        let mut buf = Vec::with_capacity(8192);
        let mut source = Source::new(&mut xml, &mut buf, options.limits);
        let Next::Open { start, empty } = source.next_structural()? else {
            return Err(Error::Xml {
                position: 0,
                reason: "no root element".into(),
            });
        };
        source.reader.root_scope = crate::dom::declarations(&start);
        let mut state = ContainerState::open(&mut source, &start, empty, options)?;
        state.root_scope = xml.root_scope.clone();
        Ok(Reader {
            xml,
            buf,
            state,
            ready: VecDeque::new(),
            worker: None,
            worker_failed: false,
            spare: Vec::new(),
            share: 12,
        })
    }

    /// Reads the next batches of packages (two, one per thread, when worthwhile) into
    /// `ready`; `false` when the input does not continue with packages.
    fn read_ahead(&mut self) -> bool {
        let first = self.next_batch(split::BLOCK);
        if first.spans.is_empty() {
            self.spare.push(first.text);
            return false;
        }
        if first.spans.len() < PARALLEL_MIN || !self.start_worker() {
            self.read_here(first);
            return true;
        }
        // The second thread starts on the first batch while this one cuts and reads the
        // second, whose size follows which thread finished first last time.
        if let Some(Err(first)) = self.worker.as_ref().map(|w| w.send(first)) {
            self.worker = None;
            self.worker_failed = true;
            self.read_here(first);
            return true;
        }
        let second = self.next_batch(split::BLOCK * self.share / 16);
        let mine = self.state.read_batch(&second);
        self.spare.push(second.text);
        let theirs = self.worker.as_ref().and_then(|worker| {
            if let Some(done) = worker.try_receive() {
                self.share = self.share.saturating_sub(1).max(SHARE_MIN);
                return Some(done);
            }
            self.share = (self.share + 1).min(16);
            worker.receive()
        });
        match theirs {
            Some((theirs, batch)) => {
                self.ready.extend(theirs);
                self.spare.push(batch.text);
            }
            None => {
                let stopped = std::io::Error::other("the reader thread stopped");
                self.ready.push_back(Err(Error::Io(stopped)));
            }
        }
        self.ready.extend(mine);
        true
    }

    /// Reads a batch on this thread.
    fn read_here(&mut self, batch: Batch) {
        self.ready.extend(self.state.read_batch(&batch));
        self.spare.push(batch.text);
    }

    /// Cuts a batch, unless the package limit would be crossed (the event path reports it).
    fn next_batch(&mut self, size: usize) -> Batch {
        let limits = self.state.options.limits;
        let input = self.xml.reader.get_mut().inner_mut();
        let spare = self.spare.pop().unwrap_or_default();
        let batch = split::next_batch(input, size, limits.max_section, spare);
        if self.state.packages + batch.spans.len() > limits.max_packages {
            let (start, _) = batch.spans.first().copied().unwrap_or_default();
            input.push_back_str(&batch.text[start..]);
            return Batch::empty(batch.text);
        }
        let first = self.state.packages + 1;
        self.state.packages += batch.spans.len();
        Batch { first, ..batch }
    }

    fn start_worker(&mut self) -> bool {
        if self.worker.is_none() && !self.worker_failed {
            self.worker = Worker::spawn(self.state.clone(), ContainerState::read_batch);
            self.worker_failed = self.worker.is_none();
        }
        self.worker.is_some()
    }

    /// Container metadata (everything but the packages); `signed` is final after the end.
    pub fn header(&self) -> &KeyContainer {
        &self.state.header
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<KeyPackage>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(package) = self.ready.pop_front() {
            return Some(package);
        }
        if !self.state.pending && !self.state.finished && self.read_ahead() {
            return self.ready.pop_front();
        }
        let mut source = Source::new(&mut self.xml, &mut self.buf, self.state.options.limits);
        self.state.next_package(&mut source).transpose()
    }
}

/// Reads a container whose start tag (`start`, any name) the caller has just read from
/// `reader`; returns after its end tag. For PSKC embedded in other XML (RFC 6063).
pub fn read_container_element<R: BufRead>(
    reader: &mut NsReader<R>,
    start: &BytesStart<'_>,
    options: &ReadOptions,
) -> Result<KeyContainer> {
    let mut buf = Vec::new();
    let mut source = Source::new(reader, &mut buf, options.limits);
    let mut state = ContainerState::open_embedded(&mut source, start, options.clone())?;
    let mut packages = Vec::new();
    while let Some(package) = state.next_package(&mut source)? {
        packages.push(package);
    }
    state.header.key_packages = packages;
    Ok(state.header)
}

/// Bytes of a foreign root element read to tell "not XML" from "wrong root".
const WELL_FORMED_PROBE: u64 = 64 * 1024;

/// What the reader knows between packages.
#[derive(Clone)]
struct ContainerState {
    /// Namespace declarations of the root (for `<Extensions>` of sections read apart).
    root_scope: Vec<(String, String)>,
    options: ReadOptions,
    header: KeyContainer,
    crypto: Crypto,
    /// The arena reused for every package.
    doc: Doc,
    /// `doc` holds a package read while looking for the end of the header.
    pending: bool,
    finished: bool,
    packages: usize,
    /// A value's decoded ValueMAC and ciphertext (not secret), kept for the next value.
    mac_buf: Vec<u8>,
    cipher_buf: Vec<u8>,
}

impl ContainerState {
    fn open<P: Pull>(
        source: &mut Source<'_, P>,
        start: &BytesStart<'_>,
        empty: bool,
        options: ReadOptions,
    ) -> Result<Self> {
        let name = crate::dom::local_name(start);
        if name != "KeyContainer" && name != "SecretContainer" {
            // A file that is not XML beyond its first tag is reported as such, not as a
            // wrong root; the probe reads a bounded prefix, so streaming is kept.
            if !empty {
                source.probe_element(WELL_FORMED_PROBE)?;
            }
            return Err(Error::WrongRoot {
                found: name.into_owned(),
            });
        }
        let mut state = Self::from_root(start, &name, options)?;
        if empty {
            state.finished = true;
        } else {
            state.read_header(source)?;
        }
        Ok(state)
    }

    fn open_embedded<P: Pull>(
        source: &mut Source<'_, P>,
        start: &BytesStart<'_>,
        options: ReadOptions,
    ) -> Result<Self> {
        let mut state = Self::from_root(start, "KeyContainer", options)?;
        state.read_header(source)?;
        Ok(state)
    }

    /// RFC 6030 §4.1: Version must be 1.0; the OATH drafts' `SecretContainer` is exempt.
    fn from_root(start: &BytesStart<'_>, name: &str, options: ReadOptions) -> Result<Self> {
        let attrs = crate::dom::attributes(start)?;
        let attr_any = |names: &[&str]| {
            let value = names
                .iter()
                .find_map(|n| attrs.iter().find(|(k, _)| k == n));
            value.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
        };
        let version = attr_any(&["Version", "version"])
            .unwrap_or("1.0")
            .trim()
            .to_owned();
        if name == "KeyContainer" && version != "1.0" && version != "1" {
            return Err(Error::UnsupportedVersion(version));
        }
        let header = KeyContainer {
            version,
            id: attr_any(&["Id", "ID", "id"]).map(str::to_owned),
            ..KeyContainer::default()
        };
        Ok(ContainerState {
            root_scope: Vec::new(),
            crypto: Crypto::default(),
            options,
            header,
            doc: Doc::default(),
            pending: false,
            finished: false,
            packages: 0,
            mac_buf: Vec::new(),
            cipher_buf: Vec::new(),
        })
    }

    /// Reads container children up to the first `KeyPackage` (kept pending).
    fn read_header<P: Pull>(&mut self, source: &mut Source<'_, P>) -> Result<()> {
        let mut encryption_key = None;
        let mut mac_method = None;
        let mut mac_algorithm = None;
        loop {
            let mut doc = Doc::default();
            if !self.next_child(source, &mut doc)? {
                break;
            }
            match doc.root().name() {
                "KeyPackage" | "Device" => {
                    self.doc = doc;
                    self.pending = true;
                    break;
                }
                "EncryptionKey" | "EncryptionMethod" => encryption_key = Some(doc),
                "MACMethod" | "DigestMethod" => mac_method = Some(doc),
                "MACAlgorithm" => mac_algorithm = doc.root().text().map(str::to_owned),
                _ => self.container_child(doc.root()),
            }
        }
        self.crypto = Crypto::new(encryption_key, mac_method, mac_algorithm, &self.options)?;
        self.header.key_names = self.crypto.key_names.clone();
        self.header.mac_key_reference = self.crypto.mac_key_reference.clone();
        Ok(())
    }

    fn container_child(&mut self, element: El<'_>) {
        match element.name() {
            "Signature" => self.header.signed = true,
            "Extensions" => self
                .header
                .extensions
                .extend(extension("container", element)),
            other => tracing::debug!(element = other, "ignoring unknown container child"),
        }
    }

    /// Reads the next child element of the container into `doc`; `false` at the end.
    fn next_child<P: Pull>(&mut self, source: &mut Source<'_, P>, doc: &mut Doc) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        match source.next_structural()? {
            Next::Open { start, empty } => source.read_element(&start, empty, doc).map(|()| true),
            Next::Close => {
                self.finished = true;
                Ok(false)
            }
            Next::Eof => Err(Error::Xml {
                position: 0,
                reason: "document ends inside <KeyContainer>".into(),
            }),
        }
    }

    fn next_package<P: Pull>(&mut self, source: &mut Source<'_, P>) -> Result<Option<KeyPackage>> {
        // The arena is taken out while the package is interpreted, then put back for reuse.
        let mut doc = std::mem::take(&mut self.doc);
        let result = self.next_package_in(source, &mut doc);
        self.doc = doc;
        result
    }

    fn next_package_in<P: Pull>(
        &mut self,
        source: &mut Source<'_, P>,
        doc: &mut Doc,
    ) -> Result<Option<KeyPackage>> {
        loop {
            if !std::mem::take(&mut self.pending) && !self.next_child(source, doc)? {
                return Ok(None);
            }
            let element = doc.root();
            if element.name() != "KeyPackage" && element.name() != "Device" {
                self.container_child(element);
                continue;
            }
            self.packages += 1;
            if self.packages > self.options.limits.max_packages {
                return Err(Error::TooLarge {
                    what: "number of KeyPackages".into(),
                    limit: self.options.limits.max_packages,
                });
            }
            return self.package(element).map(Some);
        }
    }

    /// Reads every package of a batch, in order.
    fn read_batch(&mut self, batch: &Batch) -> VecDeque<Result<KeyPackage>> {
        let mut doc = std::mem::take(&mut self.doc);
        let packages = batch
            .spans
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                self.section(&batch.text[start..end], &mut doc)
                    .map_err(|err| in_package(err, batch.first + i))
            })
            .collect();
        self.doc = doc;
        packages
    }

    /// One package from its raw section: the direct tokenizer, else quick-xml.
    fn section(&mut self, text: &str, doc: &mut Doc) -> Result<KeyPackage> {
        let limits = self.options.limits;
        if !crate::dom::read_section(text, doc, &limits) {
            let capped = crate::dom::Capped::new(text.as_bytes(), limits.max_section);
            let mut reader = quick_xml::Reader::from_reader(capped);
            reader.config_mut().check_end_names = true;
            let root_scope = self.root_scope.clone();
            let mut xml = Plain { reader, root_scope };
            let mut buf = Vec::new();
            let mut source = Source::new(&mut xml, &mut buf, limits);
            let Next::Open { start, empty } = source.next_structural()? else {
                let reason = "a KeyPackage section without an element".into();
                return Err(Error::Xml {
                    position: 0,
                    reason,
                });
            };
            source.read_element(&start, empty, doc)?;
        }
        self.package(doc.root())
    }

    fn package(&mut self, element: El<'_>) -> Result<KeyPackage> {
        // A `Key` is large: without a capacity the first push would reserve room for four.
        let keys = element
            .children()
            .filter(|c| matches!(c.name(), "Key" | "Secret"))
            .count();
        let mut package = KeyPackage {
            device_info: device_info(element)?,
            crypto_module_id: element.path(&["CryptoModuleInfo", "Id"]).and_then(text),
            keys: Vec::with_capacity(keys),
            ..KeyPackage::default()
        };
        for child in element.children() {
            match child.name() {
                "Key" | "Secret" => package.keys.push(self.key(child)?),
                "Extensions" => package.extensions.extend(extension("package", child)),
                _ => {}
            }
        }
        Ok(package)
    }

    fn key(&mut self, element: El<'_>) -> Result<Key> {
        let id = element
            .attr_any(&["Id", "KeyId", "SecretId"])
            .map(str::to_owned);
        let at = |name: &str| Location::in_key(name, id.as_deref());
        let mut key = Key {
            algorithm: element
                .attr_any(&["Algorithm", "KeyAlgorithm", "SecretAlgorithm"])
                .map(str::to_owned),
            issuer: element.child_text("Issuer").map(str::to_owned),
            key_profile_id: element.child_text("KeyProfileId").map(str::to_owned),
            key_reference: element.child_text("KeyReference").map(str::to_owned),
            friendly_name: element.child_text("FriendlyName").map(str::to_owned),
            friendly_name_lang: element
                .child("FriendlyName")
                .and_then(|f| f.attr("xml:lang"))
                .map(str::to_owned),
            user_id: element.child_text("UserId").map(str::to_owned),
            algorithm_parameters: algorithm_parameters(element, &at)?,
            policy: policy(element, &at)?,
            ..Key::default()
        };
        for child in element.children() {
            if child.name() == "Extensions" {
                key.extensions.extend(extension("key", child));
            }
        }
        if let Some(parameters) = element.child("AlgorithmParameters") {
            for child in parameters.children_named("Extensions") {
                key.extensions.extend(extension("parameters", child));
            }
        }
        key.data = self.key_data(element, id.as_deref())?;
        key.id = id;
        Ok(key)
    }

    /// `<Data>` (§4.3.3) and the drafts' `<Data Name="SECRET">` form.
    fn key_data(&mut self, element: El<'_>, id: Option<&str>) -> Result<KeyData> {
        let mut out = KeyData::default();
        if let Some(data) = element.child("Data") {
            for child in data.children() {
                self.data_field(&mut out, child.name(), child, id)?;
            }
        }
        for data in element.children_named("Data") {
            let legacy = match data.attr("Name").map(str::to_ascii_lowercase).as_deref() {
                Some("secret") => "Secret",
                Some("counter") => "Counter",
                Some("time") => "Time",
                Some("time_interval") | Some("timeinterval") => "TimeInterval",
                Some("time_drift") | Some("timedrift") => "TimeDrift",
                _ => continue,
            };
            self.data_field(&mut out, legacy, data, id)?;
        }
        Ok(out)
    }

    /// One `<Data>` child (`name`: its local name, or the legacy `Name` attribute's).
    fn data_field(
        &mut self,
        out: &mut KeyData,
        name: &str,
        field: El<'_>,
        id: Option<&str>,
    ) -> Result<()> {
        if !matches!(
            name,
            "Secret" | "Counter" | "Time" | "TimeInterval" | "TimeDrift"
        ) {
            return Ok(());
        }
        let at = At {
            element: name,
            key_id: id,
        };
        let Some(bytes) = self.value(field, at)? else {
            return Ok(());
        };
        match name {
            "Secret" => out.secret = Some(bytes.into_secret(at)?),
            "Counter" => out.counter = Some(bytes.unsigned(at)?),
            "Time" => out.time = Some(bytes.unsigned(at)?),
            "TimeInterval" => out.time_interval = Some(bytes.unsigned(at)?),
            "TimeDrift" => out.time_drift = Some(bytes.signed(at)?),
            _ => {}
        }
        Ok(())
    }

    /// A `PlainValue` or `EncryptedValue` (+ `ValueMAC`) element's content. The MAC and the
    /// ciphertext are decoded into buffers kept for the next value.
    fn value<'a>(&mut self, field: El<'a>, at: At<'_>) -> Result<Option<RawValue<'a>>> {
        if let Some(plain) = field.child("PlainValue") {
            return Ok(plain.text().map(RawValue::Plain));
        }
        let mac = field
            .child_any(&["ValueMAC", "ValueDigest"])
            .and_then(El::text);
        if let Some(mac) = mac {
            decode_base64_into(mac, &mut self.mac_buf, at)?;
        }
        let mac = mac.map(|_| self.mac_buf.as_slice());
        let cipher_value = &mut self.cipher_buf;
        if let Some(encrypted) = field.child("EncryptedValue") {
            let (algorithm, text) = encrypted_value(encrypted);
            let Some(text) = text else {
                // An emptied CipherValue under a kept ValueMAC is a removed value, not "no
                // secret": the MAC of the original ciphertext cannot match nothing.
                if mac.is_some() {
                    return Err(Error::MacMismatch { at: at.location() });
                }
                return Ok(None);
            };
            decode_base64_into(text, cipher_value, at)?;
            let plain = self
                .crypto
                .decrypt(algorithm, cipher_value, mac, at, &self.options)?;
            return Ok(plain.map(RawValue::Decrypted));
        }
        if let Some(value) = field.child("Value").and_then(El::text) {
            if self.crypto.algorithm.is_some() && mac.is_some() {
                decode_base64_into(value, cipher_value, at)?;
                let plain = self
                    .crypto
                    .decrypt(None, cipher_value, mac, at, &self.options)?;
                return Ok(plain.map(RawValue::Decrypted));
            }
            return Ok(Some(RawValue::Plain(value)));
        }
        Ok(None)
    }
}

/// Where a value is, for error messages: the [`Location`] is only built for an error.
#[derive(Clone, Copy)]
struct At<'a> {
    element: &'a str,
    key_id: Option<&'a str>,
}

impl At<'_> {
    /// A container-level element (no key).
    const fn element(element: &'static str) -> At<'static> {
        At {
            element,
            key_id: None,
        }
    }

    fn location(self) -> Location {
        Location::in_key(self.element, self.key_id)
    }
}

/// XML errors of a section read apart count bytes from the section's start: say which.
fn in_package(err: Error, number: usize) -> Error {
    match err {
        Error::Xml { position, reason } => Error::Xml {
            position,
            reason: format!("{reason} (offset within KeyPackage #{number})"),
        },
        other => other,
    }
}

/// A value before it is typed: plain text or decrypted bytes.
enum RawValue<'a> {
    Plain(&'a str),
    Decrypted(Secret),
}

impl RawValue<'_> {
    fn into_secret(self, at: At<'_>) -> Result<Secret> {
        match self {
            RawValue::Plain(text) => values::base64_decode(text)
                .map(Secret::new)
                .ok_or_else(|| Error::invalid(at.location(), "not valid base64")),
            RawValue::Decrypted(secret) => Ok(secret),
        }
    }

    fn unsigned(&self, at: At<'_>) -> Result<u64> {
        let parsed = match self {
            RawValue::Plain(text) => values::plain_int(text),
            RawValue::Decrypted(bytes) => values::int_from_bytes(bytes.expose()),
        };
        parsed.ok_or_else(|| Error::invalid(at.location(), "not an unsigned integer"))
    }

    fn signed(&self, at: At<'_>) -> Result<i64> {
        let parsed = match self {
            RawValue::Plain(text) => values::plain_signed(text),
            RawValue::Decrypted(bytes) => values::signed_from_bytes(bytes.expose()),
        };
        parsed.ok_or_else(|| Error::invalid(at.location(), "not an integer"))
    }
}

fn text(element: El<'_>) -> Option<String> {
    element.text().map(str::to_owned)
}

fn decode_base64(text: &str, at: &Location) -> Result<Vec<u8>> {
    values::base64_decode(text).ok_or_else(|| Error::invalid(at.clone(), "not valid base64"))
}

/// Decodes base64 `text` into `buf` (cleared first).
fn decode_base64_into(text: &str, buf: &mut Vec<u8>, at: At<'_>) -> Result<()> {
    if values::base64_decode_into(text, buf) {
        return Ok(());
    }
    Err(Error::invalid(at.location(), "not valid base64"))
}

/// `EncryptionMethod@Algorithm` (or a legacy `EncryptionScheme`) and the `CipherValue` text.
fn encrypted_value(element: El<'_>) -> (Option<&str>, Option<&str>) {
    let method = element.child("EncryptionMethod");
    let scheme = method
        .and_then(|m| m.child("EncryptionScheme"))
        .and_then(|s| s.attr("Algorithm"));
    let algorithm = scheme.or_else(|| method.and_then(|m| m.attr("Algorithm")));
    let cipher_value = element
        .path(&["CipherData", "CipherValue"])
        .and_then(El::text);
    (algorithm, cipher_value)
}

fn extension(scope: &'static str, element: El<'_>) -> Option<Extension> {
    let xml = element.raw()?.trim();
    (!xml.is_empty()).then(|| Extension {
        scope,
        xml: xml.to_owned(),
    })
}

fn date(
    element: El<'_>,
    name: &str,
    at: &dyn Fn(&str) -> Location,
) -> Result<Option<time::OffsetDateTime>> {
    let Some(text) = element.child_text(name) else {
        return Ok(None);
    };
    values::date_time(text)
        .map(Some)
        .ok_or_else(|| Error::invalid(at(name), format!("\"{text}\" is not a date-time")))
}

fn device_info(package: El<'_>) -> Result<DeviceInfo> {
    let Some(info) = package.child_any(&["DeviceInfo", "DeviceId"]) else {
        return Ok(DeviceInfo::default());
    };
    let at = |name: &str| Location::element(format!("DeviceInfo/{name}"));
    let field = |name: &str| info.child_text(name).map(str::to_owned);
    let expiry = match date(info, "ExpiryDate", &at)? {
        Some(date) => Some(date),
        None => date(info, "Expiry", &at)?,
    };
    Ok(DeviceInfo {
        manufacturer: field("Manufacturer"),
        serial_no: field("SerialNo"),
        model: field("Model"),
        issue_no: field("IssueNo"),
        device_binding: field("DeviceBinding"),
        start_date: date(info, "StartDate", &at)?,
        expiry_date: expiry,
        user_id: field("UserId"),
        extensions: info
            .children_named("Extensions")
            .filter_map(|e| extension("device", e))
            .collect(),
    })
}

fn int_attr(element: El<'_>, names: &[&str], at: &dyn Fn(&str) -> Location) -> Result<Option<u32>> {
    let Some(text) = element.attr_any(names) else {
        return Ok(None);
    };
    values::attr_int(text).map(Some).ok_or_else(|| {
        Error::invalid(
            at(&format!("{}@{}", element.name(), names[0])),
            format!("\"{text}\" is not an integer"),
        )
    })
}

fn bool_attr(
    element: El<'_>,
    names: &[&str],
    at: &dyn Fn(&str) -> Location,
) -> Result<Option<bool>> {
    let Some(text) = element.attr_any(names) else {
        return Ok(None);
    };
    values::boolean(text).map(Some).ok_or_else(|| {
        Error::invalid(
            at(&format!("{}@{}", element.name(), names[0])),
            format!("\"{text}\" is not a boolean"),
        )
    })
}

/// `<AlgorithmParameters>` (§4.3.4), or the drafts' `<Usage>`.
fn algorithm_parameters(key: El<'_>, at: &dyn Fn(&str) -> Location) -> Result<AlgorithmParameters> {
    let mut out = AlgorithmParameters {
        suite: key.path(&["AlgorithmParameters", "Suite"]).and_then(text),
        ..AlgorithmParameters::default()
    };
    let holder = |name: &str| {
        key.path(&["AlgorithmParameters", name])
            .or_else(|| key.path(&["Usage", name]))
    };
    if let Some(challenge) = holder("ChallengeFormat") {
        out.challenge_format = Some(ChallengeFormat {
            encoding: challenge
                .attr_any(&["Encoding", "Format", "format"])
                .map(str::to_owned),
            min: int_attr(challenge, &["Min", "min"], at)?,
            max: int_attr(challenge, &["Max", "max"], at)?,
            check_digits: bool_attr(challenge, &["CheckDigits", "CheckDigit"], at)?,
        });
    }
    if let Some(response) = holder("ResponseFormat") {
        out.response_format = Some(ResponseFormat {
            encoding: response
                .attr_any(&["Encoding", "Format", "format"])
                .map(str::to_owned),
            length: int_attr(response, &["Length", "length"], at)?,
            check_digits: bool_attr(response, &["CheckDigits", "CheckDigit"], at)?,
        });
    }
    Ok(out)
}

const PIN_ATTRIBUTES: [&str; 6] = [
    "PINKeyId",
    "PINUsageMode",
    "MaxFailedAttempts",
    "MinLength",
    "MaxLength",
    "PINEncoding",
];
const POLICY_CHILDREN: [&str; 5] = [
    "StartDate",
    "ExpiryDate",
    "NumberOfTransactions",
    "KeyUsage",
    "PINPolicy",
];

/// `<Policy>` (§5), the drafts' `<Usage OTP="true">` and key-level dates.
fn policy(key: El<'_>, at: &dyn Fn(&str) -> Location) -> Result<Policy> {
    let mut out = Policy::default();
    if let Some(policy) = key.child("Policy") {
        out.start_date = date(policy, "StartDate", at)?;
        out.expiry_date = date(policy, "ExpiryDate", at)?;
        out.number_of_transactions = match policy.child_text("NumberOfTransactions") {
            Some(text) => Some(
                values::plain_int(text)
                    .filter(|_| text.trim().bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        Error::invalid(
                            at("NumberOfTransactions"),
                            format!("\"{text}\" is not an integer"),
                        )
                    })?,
            ),
            None => None,
        };
        out.key_usage = policy.children_named("KeyUsage").filter_map(text).collect();
        if let Some(pin) = policy.child("PINPolicy") {
            out.pin_policy = Some(PinPolicy {
                pin_key_id: pin.attr("PINKeyId").map(str::to_owned),
                pin_usage_mode: pin.attr("PINUsageMode").map(str::to_owned),
                max_failed_attempts: int_attr(pin, &["MaxFailedAttempts"], at)?,
                min_length: int_attr(pin, &["MinLength"], at)?,
                max_length: int_attr(pin, &["MaxLength"], at)?,
                pin_encoding: pin.attr("PINEncoding").map(str::to_owned),
            });
            let unknown_attr = pin.attrs().any(|(k, _)| !PIN_ATTRIBUTES.contains(&k));
            out.unknown_elements |= unknown_attr || pin.has_children();
        }
        out.unknown_elements |= policy
            .children()
            .any(|c| !POLICY_CHILDREN.contains(&c.name()));
    }
    if let Some(usage) = key.child("Usage") {
        for name in ["OTP", "CR", "Integrity", "Encrypt", "Unlock"] {
            if bool_attr(usage, &[name], at)? == Some(true) {
                out.key_usage.push(name.to_owned());
            }
        }
    }
    if let Some(start) = date(key, "StartDate", at)? {
        out.start_date = Some(start);
    }
    if let Some(expiry) = date(key, "ExpiryDate", at)? {
        out.expiry_date = Some(expiry);
    }
    Ok(out)
}

/// PBKDF2 parameters from `DerivedKey/KeyDerivationMethod` or legacy `PBESalt`.
#[derive(Debug, Default, Clone)]
struct Derivation {
    algorithm: Option<String>,
    salt: Option<Vec<u8>>,
    iterations: Option<u32>,
    key_length: Option<usize>,
    prf: Option<String>,
}

/// The container's protection, as read, and the keys derived from it (once).
#[derive(Default, Clone)]
struct Crypto {
    algorithm: Option<String>,
    key_names: Vec<String>,
    derivation: Option<Derivation>,
    asymmetric: bool,
    /// The recipient certificate's key (`ds:X509Certificate`), to check the private key.
    certificate: Option<crate::encryption::RsaPublicKey>,
    /// Cache: the private key was checked against `certificate`.
    private_key_checked: bool,
    iv: Option<Vec<u8>>,
    mac_declared: bool,
    mac_key_reference: Option<String>,
    mac_algorithm: Option<String>,
    mac_key_encrypted: Option<(Option<String>, Vec<u8>)>,
    /// Cache: the symmetric key (pre-shared or derived).
    key: Option<Secret>,
    /// Cache: the MAC algorithm and decrypted MAC key (`None` inside: use the key).
    mac: Option<(Hmac, Option<Secret>)>,
    /// Cache: the key with its AES key schedule done, for the cipher it names.
    prepared: Option<encryption::Prepared>,
    /// Cache: the MAC key of `mac` (or the key) set up for HMAC once.
    mac_keyed: Option<mac::Keyed>,
    /// Cache: the last value algorithm URI and its cipher.
    cipher_cache: Option<(String, Cipher)>,
}

impl Crypto {
    fn new(
        encryption_key: Option<Doc>,
        mac_method: Option<Doc>,
        mac_algorithm: Option<String>,
        options: &ReadOptions,
    ) -> Result<Self> {
        let mut crypto = Crypto {
            iv: options.iv.clone(),
            ..Crypto::default()
        };
        if let Some(key_info) = &encryption_key {
            crypto.read_encryption_key(key_info.root())?;
        }
        if let Some(method) = mac_method.as_ref().map(Doc::root) {
            crypto.mac_declared = true;
            crypto.mac_key_reference = method.child_text("MACKeyReference").map(str::to_owned);
            crypto.mac_algorithm = method
                .attr_any(&["Algorithm", "algorithm"])
                .map(str::to_owned);
            if let Some(mac_key) = method.child("MACKey") {
                let at = Location::element("MACMethod/MACKey");
                // An empty <MACKey/> is treated as absent (legacy: the key is the MAC key).
                if let (algorithm, Some(value)) = encrypted_value(mac_key) {
                    let value = decode_base64(value, &at)?;
                    crypto.mac_key_encrypted = Some((algorithm.map(str::to_owned), value));
                }
            }
        }
        if mac_algorithm.is_some() {
            crypto.mac_algorithm = mac_algorithm;
        }
        crypto.prepare_key(options)?;
        Ok(crypto)
    }

    fn read_encryption_key(&mut self, key_info: El<'_>) -> Result<()> {
        self.algorithm = key_info
            .attr_any(&["Algorithm", "algorithm"])
            .map(str::to_owned);
        self.key_names
            .extend(key_info.children_named("KeyName").filter_map(text));
        if let Some(derived) = key_info.child("DerivedKey") {
            for name in ["MasterKeyName", "CarriedKeyName"] {
                self.key_names
                    .extend(derived.children_named(name).filter_map(text));
            }
        }
        self.asymmetric = key_info.child("X509Data").is_some();
        let certificate = key_info
            .path(&["X509Data", "X509Certificate"])
            .and_then(El::text);
        if let Some(der) = certificate.and_then(values::base64_decode) {
            // An unparsable certificate only disables the private-key check below.
            self.certificate = crate::encryption::RsaPublicKey::from_certificate_der(der).ok();
        }
        if let Some(iv) = key_info.child_text("IV") {
            self.iv = Some(decode_base64(iv, &Location::element("EncryptionKey/IV"))?);
        }
        let at = |name: &str| Location::element(format!("EncryptionKey/{name}"));
        let mut derivation = Derivation::default();
        let method = key_info.path(&["DerivedKey", "KeyDerivationMethod"]);
        if let Some(method) = method {
            derivation.algorithm = method.attr("Algorithm").map(str::to_owned);
            if let Some(params) = method.child("PBKDF2-params") {
                let salt = params.path(&["Salt", "Specified"]).and_then(El::text);
                derivation.salt = salt.map(|s| decode_base64(s, &at("Salt"))).transpose()?;
                derivation.iterations =
                    parse_param(params.child_text("IterationCount"), &at("IterationCount"))?;
                derivation.key_length =
                    parse_param(params.child_text("KeyLength"), &at("KeyLength"))?;
                derivation.prf = params
                    .child("PRF")
                    .and_then(|p| p.attr("Algorithm"))
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned);
            }
        }
        if let Some(salt) = key_info.child_text("PBESalt") {
            derivation.salt = Some(decode_base64(salt, &at("PBESalt"))?);
        }
        if let Some(count) = key_info.child_text("PBEIterationCount") {
            derivation.iterations = parse_param(Some(count), &at("PBEIterationCount"))?;
        }
        let legacy_pbe = self
            .algorithm
            .as_deref()
            .is_some_and(|a| a.to_ascii_lowercase().starts_with("pbe"));
        if legacy_pbe && derivation.algorithm.is_none() {
            derivation.algorithm = Some("pbkdf2".into());
        }
        if method.is_some() || derivation.algorithm.is_some() {
            self.derivation = Some(derivation);
        }
        Ok(())
    }

    /// Derives the key once, up front, when its length is known.
    fn prepare_key(&mut self, options: &ReadOptions) -> Result<()> {
        if let Some(key) = &options.pre_shared_key {
            self.key = Some(key.clone());
            return Ok(());
        }
        if let (Some(password), Some(derivation)) = (&options.password, &self.derivation) {
            let cipher = self.algorithm.as_deref().and_then(Cipher::from_uri);
            let length = derivation
                .key_length
                .or_else(|| cipher.and_then(|c| c.key_lengths().first().copied()));
            if let Some(length) = length {
                self.key = Some(derive(derivation, password, length)?);
            }
        }
        Ok(())
    }

    fn needed(&self) -> &'static str {
        if self.asymmetric {
            "private key"
        } else if self.derivation.is_some() {
            "password"
        } else {
            "pre-shared key"
        }
    }

    /// Makes the symmetric key available (given, or derived once and cached). `false` when
    /// there is none and metadata-only reading was asked for.
    fn ensure_key(&mut self, cipher: Cipher, at: At<'_>, options: &ReadOptions) -> Result<bool> {
        if self.key.is_some() {
            return Ok(true);
        }
        if let (Some(password), Some(derivation)) = (&options.password, &self.derivation) {
            let length = derivation
                .key_length
                .or(cipher.key_lengths().first().copied());
            self.key = Some(derive(derivation, password, length.unwrap_or(16))?);
            return Ok(true);
        }
        if options.password.is_some() && self.derivation.is_none() {
            let what = "KeyDerivationMethod for the password".into();
            return Err(Error::Missing {
                what,
                at: at.location(),
            });
        }
        if options.metadata_only {
            return Ok(false);
        }
        Err(Error::KeyRequired {
            needed: self.needed(),
            at: at.location(),
        })
    }

    /// The cipher named by a value's (or the container's) algorithm URI; the last URI's
    /// answer is cached, as every value of a file normally names the same one.
    fn cipher(&mut self, algorithm: Option<&str>, at: At<'_>) -> Result<Cipher> {
        let uri = algorithm
            .or(self.algorithm.as_deref())
            .ok_or_else(|| Error::Missing {
                what: "EncryptionMethod@Algorithm".into(),
                at: at.location(),
            })?;
        if let Some((cached, cipher)) = &self.cipher_cache
            && cached == uri
        {
            return Ok(*cipher);
        }
        let cipher = Cipher::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            kind: "encryption",
            uri: uri.to_owned(),
            at: at.location(),
        })?;
        self.cipher_cache = Some((uri.to_owned(), cipher));
        Ok(cipher)
    }

    /// Decrypts one value, checking its ValueMAC (§6.1.1) first.
    fn decrypt(
        &mut self,
        algorithm: Option<&str>,
        cipher_value: &[u8],
        value_mac: Option<&[u8]>,
        at: At<'_>,
        options: &ReadOptions,
    ) -> Result<Option<Secret>> {
        // 1. Which cipher: the value's own EncryptionMethod, else the container's.
        if self.algorithm.is_none() {
            self.algorithm = algorithm.map(str::to_owned);
        }
        let cipher = self.cipher(algorithm, at)?;

        // 2. Asymmetric key transport (§6.3): no MAC key exists to check with.
        if cipher.is_asymmetric() {
            return self.decrypt_asymmetric(cipher, cipher_value, at, options);
        }
        if !self.ensure_key(cipher, at, options)? {
            return Ok(None);
        }
        if self.prepared.as_ref().map(encryption::Prepared::cipher) != Some(cipher) {
            let key = self.key.as_ref();
            self.prepared = key.and_then(|key| encryption::Prepared::new(cipher, key.expose()));
        }

        // 3. ValueMAC present: verify over IV||ciphertext; legacy files MAC the plaintext.
        if let Some(tag) = value_mac {
            self.ensure_mac(at, options)?;
            let (Some(key), Some((algorithm, mac_key))) = (&self.key, &self.mac) else {
                return Err(Error::InvalidRequest("MAC set-up incomplete".into()));
            };
            let mac_key_decrypted = mac_key.is_some();
            let mac_key = mac_key.as_ref().unwrap_or(key);
            let valid = match &self.mac_keyed {
                Some(keyed) => keyed.verify(cipher_value, tag),
                None => mac::verify(*algorithm, mac_key.expose(), cipher_value, tag),
            };
            if valid {
                return self.open_value(cipher, key, cipher_value, at).map(Some);
            }
            return match self.open_value(cipher, key, cipher_value, at) {
                Ok(plain) if mac::verify(*algorithm, mac_key.expose(), plain.expose(), tag) => {
                    Ok(Some(plain))
                }
                Err(err) if !mac_key_decrypted => Err(err),
                _ => Err(Error::MacMismatch { at: at.location() }),
            };
        }

        // 4. No ValueMAC although a MACMethod is declared: refused unless allowed.
        if self.mac_declared && !options.accept_missing_value_mac {
            return Err(Error::MissingValueMac { at: at.location() });
        }
        let Some(key) = &self.key else {
            return Ok(None);
        };
        self.open_value(cipher, key, cipher_value, at).map(Some)
    }

    fn decrypt_asymmetric(
        &mut self,
        cipher: Cipher,
        cipher_value: &[u8],
        at: At<'_>,
        options: &ReadOptions,
    ) -> Result<Option<Secret>> {
        let Some(private_key) = &options.private_key else {
            if options.metadata_only {
                return Ok(None);
            }
            return Err(Error::KeyRequired {
                needed: "private key",
                at: at.location(),
            });
        };
        // PKCS #1 v1.5 decryption rejects implicitly (a wrong key yields random bytes),
        // so the private key is checked against the file's certificate when there is one.
        if !self.private_key_checked {
            if let Some(certificate) = &self.certificate
                && !private_key.matches(certificate)
            {
                return Err(Error::WrongKey { at: at.location() });
            }
            self.private_key_checked = true;
        }
        private_key
            .decrypt(cipher, cipher_value)
            .map(Some)
            .map_err(|_| Error::WrongKey { at: at.location() })
    }

    /// [`Crypto::open`] for a value under the container key, with the key schedule cached.
    fn open_value(&self, cipher: Cipher, key: &Secret, data: &[u8], at: At<'_>) -> Result<Secret> {
        match &self.prepared {
            Some(prepared) if prepared.cipher() == cipher => {
                let iv = self.iv.as_deref();
                prepared
                    .decrypt(data, iv)
                    .map_err(|failure| failure_error(failure, cipher, key.len(), at))
            }
            _ => self.open(cipher, key, data, at),
        }
    }

    fn open(&self, cipher: Cipher, key: &Secret, data: &[u8], at: At<'_>) -> Result<Secret> {
        let iv = self.iv.as_deref().filter(|_| cipher.is_cbc());
        encryption::decrypt(cipher, key.expose(), data, iv)
            .map_err(|failure| failure_error(failure, cipher, key.len(), at))
    }

    /// Sets up the MAC algorithm and key once. The key is `None` when the file has no
    /// `MACKey` (legacy: the encryption key is the MAC key).
    fn ensure_mac(&mut self, at: At<'_>, options: &ReadOptions) -> Result<()> {
        if self.mac.is_some() {
            return Ok(());
        }
        let uri = self.mac_algorithm.as_deref();
        let uri = uri.ok_or_else(|| Error::NoMacAlgorithm { at: at.location() })?;
        let algorithm = Hmac::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            kind: "MAC",
            uri: uri.to_owned(),
            at: at.location(),
        })?;
        let mac_key = match &self.mac_key_encrypted {
            None => options.mac_key.clone(),
            Some((mac_cipher, value)) => {
                let mac_at = At::element("MACMethod/MACKey");
                let cipher_uri = mac_cipher.as_deref().or(self.algorithm.as_deref());
                let cipher_uri = cipher_uri.ok_or_else(|| Error::Missing {
                    what: "EncryptionMethod@Algorithm".into(),
                    at: mac_at.location(),
                })?;
                let cipher =
                    Cipher::from_uri(cipher_uri).ok_or_else(|| Error::UnsupportedAlgorithm {
                        kind: "encryption",
                        uri: cipher_uri.to_owned(),
                        at: mac_at.location(),
                    })?;
                let Some(key) = &self.key else {
                    return Err(Error::KeyRequired {
                        needed: self.needed(),
                        at: mac_at.location(),
                    });
                };
                Some(self.open(cipher, key, value, mac_at)?)
            }
        };
        let effective = mac_key.as_ref().or(self.key.as_ref());
        self.mac_keyed = effective.map(|key| mac::Keyed::new(algorithm, key.expose()));
        self.mac = Some((algorithm, mac_key));
        Ok(())
    }
}

fn parse_param<T: std::str::FromStr>(text: Option<&str>, at: &Location) -> Result<Option<T>> {
    text.map(|t| {
        t.trim()
            .parse()
            .map_err(|_| Error::invalid(at.clone(), format!("\"{t}\" is not an integer")))
    })
    .transpose()
}

/// Most PBKDF2 iterations accepted (a hostile file must not buy minutes of CPU).
const MAX_ITERATIONS: u32 = 10_000_000;

fn derive(derivation: &Derivation, password: &Secret, length: usize) -> Result<Secret> {
    let at = Location::element("EncryptionKey/DerivedKey");
    let algorithm = derivation.algorithm.as_deref().unwrap_or_default();
    if !is_pbkdf2(algorithm) {
        return Err(Error::UnsupportedAlgorithm {
            kind: "key derivation",
            uri: algorithm.to_owned(),
            at,
        });
    }
    let prf = match &derivation.prf {
        None => Hmac::Sha1,
        Some(uri) => Hmac::from_uri(uri).ok_or_else(|| Error::UnsupportedAlgorithm {
            kind: "PRF",
            uri: uri.clone(),
            at: at.clone(),
        })?,
    };
    let salt = derivation
        .salt
        .as_deref()
        .ok_or(Error::IncompleteDerivation {
            missing: "Salt",
            at: at.clone(),
        })?;
    let iterations = derivation.iterations.filter(|i| *i > 0);
    let iterations = iterations.ok_or(Error::IncompleteDerivation {
        missing: "IterationCount",
        at: at.clone(),
    })?;
    if length == 0 || length > 1024 {
        return Err(Error::invalid(at, "KeyLength must be between 1 and 1024"));
    }
    if iterations > MAX_ITERATIONS {
        return Err(Error::invalid(
            at,
            format!("IterationCount above {MAX_ITERATIONS}"),
        ));
    }
    tracing::debug!(iterations, length, ?prf, "deriving the PBKDF2 key");
    Ok(mac::pbkdf2(
        prf,
        password.expose(),
        salt,
        iterations,
        length,
    ))
}

fn failure_error(failure: Failure, cipher: Cipher, key_len: usize, at: At<'_>) -> Error {
    match failure {
        Failure::KeyLength => Error::KeyLength {
            cipher: cipher.name(),
            expected: cipher
                .key_lengths()
                .iter()
                .map(|l| format!("{l} bytes"))
                .collect::<Vec<_>>()
                .join(" or "),
            actual: key_len,
            at: at.location(),
        },
        Failure::Integrity => Error::WrongKey { at: at.location() },
        Failure::Malformed(reason) => Error::invalid(at.location(), format!("ciphertext {reason}")),
        Failure::Rsa(reason) => Error::Rsa {
            operation: "decryption",
            reason,
            at: at.location(),
        },
        Failure::Random => Error::Random("while decrypting".into()),
    }
}
