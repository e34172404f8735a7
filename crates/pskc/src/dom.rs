//! A small element tree for one PSKC section (an `EncryptionKey`, a `KeyPackage`…), built from
//! quick-xml events. The reader never holds more than one section, so documents of any size
//! stream in bounded memory, while each section can be searched like python-pskc's `find`.
//!
//! This is also where hostile XML is stopped: any DTD is refused as soon as it is seen (before
//! any element), entity references other than XML's predefined ones are errors, and depth, text
//! and section sizes are capped.

use std::io::BufRead;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::PrefixDeclaration;

use crate::error::{Error, Location, Result};

mod simple;

pub(crate) use simple::read_section;

/// Size limits applied while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Longest text of one element, in bytes.
    pub max_text: usize,
    /// Largest section (one `KeyPackage`, the `EncryptionKey`…): bytes of names, attributes
    /// and text together.
    pub max_section: usize,
    /// Most `KeyPackage`s in one document.
    pub max_packages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 48,
            max_text: 1 << 20,
            max_section: 4 << 20,
            max_packages: 50_000_000,
        }
    }
}

/// A local name: the PSKC vocabulary is interned, other names are owned.
pub(crate) type Name = std::borrow::Cow<'static, str>;

/// The element and attribute names of RFC 6030 and its drafts.
const VOCABULARY: [&str; 86] = [
    "Algorithm",
    "AlgorithmParameters",
    "CarriedKeyName",
    "ChallengeFormat",
    "CheckDigit",
    "CheckDigits",
    "CipherData",
    "CipherValue",
    "Counter",
    "CryptoModuleInfo",
    "Data",
    "DataReference",
    "DerivedKey",
    "Device",
    "DeviceBinding",
    "DeviceId",
    "DeviceInfo",
    "DigestMethod",
    "Encoding",
    "EncryptedValue",
    "EncryptionKey",
    "EncryptionMethod",
    "EncryptionScheme",
    "Expiry",
    "ExpiryDate",
    "Extensions",
    "FriendlyName",
    "IV",
    "Id",
    "IssueNo",
    "Issuer",
    "IterationCount",
    "Key",
    "KeyAlgorithm",
    "KeyContainer",
    "KeyDerivationMethod",
    "KeyId",
    "KeyLength",
    "KeyName",
    "KeyPackage",
    "KeyProfileId",
    "KeyReference",
    "KeyUsage",
    "Length",
    "MACAlgorithm",
    "MACKey",
    "MACMethod",
    "Manufacturer",
    "MasterKeyName",
    "Max",
    "MaxFailedAttempts",
    "MaxLength",
    "Min",
    "MinLength",
    "Model",
    "Name",
    "NumberOfTransactions",
    "PBKDF2-params",
    "PINEncoding",
    "PINKeyId",
    "PINPolicy",
    "PINUsageMode",
    "PRF",
    "PlainValue",
    "Policy",
    "ReferenceList",
    "ResponseFormat",
    "Salt",
    "Secret",
    "SecretContainer",
    "SerialNo",
    "Signature",
    "Specified",
    "StartDate",
    "Suite",
    "Time",
    "TimeDrift",
    "TimeInterval",
    "Usage",
    "UserId",
    "Value",
    "ValueDigest",
    "ValueMAC",
    "Version",
    "X509Certificate",
    "X509Data",
];

/// Slots of the interning table: [`VOCABULARY`] hashed without collisions (checked when
/// compiling) by [`slot`].
const SLOTS: usize = 512;
const INTERNED: [&str; SLOTS] = interned();

/// A name's slot: length, first, second and last byte, mixed by a multiplier chosen so that
/// no two vocabulary names share a slot. Names shorter than two bytes are not in it.
const fn slot(name: &[u8]) -> usize {
    let key = name.len() as u32
        | (name[0] as u32) << 8
        | (name[1] as u32) << 16
        | (name[name.len() - 1] as u32) << 24;
    (key.wrapping_mul(0x1986_21df) >> (32 - SLOTS.trailing_zeros())) as usize
}

const fn interned() -> [&'static str; SLOTS] {
    let mut table = [""; SLOTS];
    let mut i = 0;
    while i < VOCABULARY.len() {
        let name = VOCABULARY[i];
        let at = slot(name.as_bytes());
        assert!(
            table[at].is_empty(),
            "two vocabulary names share an interning slot"
        );
        table[at] = name;
        i += 1;
    }
    table
}

/// `name` as an interned [`Name`] when it belongs to the vocabulary of RFC 6030 and its
/// drafts (element and attribute names), so that the common case does not allocate.
pub(crate) fn intern(name: &str) -> Name {
    if name.len() >= 2 {
        let known = INTERNED[slot(name.as_bytes())];
        if known == name {
            return Name::Borrowed(known);
        }
    }
    Name::Owned(name.to_owned())
}

const NONE: u32 = u32::MAX;

/// One element of a [`Doc`]: links by index, text and attributes as arena ranges.
#[derive(Debug, Clone)]
struct Node {
    name: Name,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    text: (u32, u32),
    attrs: (u32, u32),
    raw: u32,
}

/// One document section (a `KeyPackage`, the `EncryptionKey`…) as an arena of nodes. The
/// reader reuses one `Doc` for every package, so steady-state reading does not allocate for
/// the tree itself.
#[derive(Debug, Default, Clone)]
pub(crate) struct Doc {
    nodes: Vec<Node>,
    text: String,
    attrs: Vec<(Name, (u32, u32))>,
    raws: Vec<String>,
    /// Namespace declarations seen in this section (for `<Extensions>` fragments).
    decls: Vec<(String, String)>,
}

impl Doc {
    /// Empties the arena, keeping its capacity.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.text.clear();
        self.attrs.clear();
        self.raws.clear();
        self.decls.clear();
    }

    /// The section's top element (the document must not be empty).
    pub fn root(&self) -> El<'_> {
        El { doc: self, id: 0 }
    }

    fn size(&self) -> usize {
        self.text.len() + self.nodes.len() * 64 + self.attrs.len() * 32
    }

    fn str(&self, (start, end): (u32, u32)) -> &str {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// Adds a node under `parent` (`NONE` for the root) and returns its index.
    fn push_node(&mut self, parent: u32, name: Name, attrs: (u32, u32)) -> u32 {
        let id = self.nodes.len() as u32;
        let end = self.text.len() as u32;
        self.nodes.push(Node {
            name,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            text: (end, end),
            attrs,
            raw: NONE,
        });
        if let Some(parent) = self.nodes.get_mut(parent as usize) {
            let previous = parent.last_child;
            parent.last_child = id;
            if previous == NONE {
                parent.first_child = id;
            } else {
                self.nodes[previous as usize].next_sibling = id;
            }
        }
        id
    }

    /// Appends text to node `id`, keeping each node's text contiguous in the arena.
    fn push_text(&mut self, id: u32, text: &str) {
        let end = self.text.len() as u32;
        let node = &self.nodes[id as usize];
        let (start, stop) = node.text;
        if stop != end && start != stop {
            // Mixed content: another node's text came in between; move this one's along.
            let earlier = self.text[start as usize..stop as usize].to_owned();
            self.text.push_str(&earlier);
            self.nodes[id as usize].text = (end, end + earlier.len() as u32);
        } else if start == stop {
            self.nodes[id as usize].text = (end, end);
        }
        self.text.push_str(text);
        self.nodes[id as usize].text.1 = self.text.len() as u32;
    }
}

/// A handle on one element of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct El<'a> {
    doc: &'a Doc,
    id: u32,
}

impl<'a> El<'a> {
    fn node(self) -> &'a Node {
        &self.doc.nodes[self.id as usize]
    }

    /// Local name.
    pub fn name(self) -> &'a str {
        &self.node().name
    }

    /// Children in document order.
    pub fn children(self) -> impl Iterator<Item = El<'a>> + 'a {
        let doc = self.doc;
        let first = self.node().first_child;
        std::iter::successors((first != NONE).then_some(first), move |id| {
            let next = doc.nodes[*id as usize].next_sibling;
            (next != NONE).then_some(next)
        })
        .map(move |id| El { doc, id })
    }

    /// True when the element has child elements.
    pub fn has_children(self) -> bool {
        self.node().first_child != NONE
    }

    /// First child with local name `name` (a plain walk of the sibling links: the reader
    /// asks this a few dozen times per key).
    pub fn child(self, name: &str) -> Option<El<'a>> {
        let mut id = self.node().first_child;
        while id != NONE {
            let node = &self.doc.nodes[id as usize];
            if node.name.len() == name.len() && node.name.as_bytes() == name.as_bytes() {
                return Some(El { doc: self.doc, id });
            }
            id = node.next_sibling;
        }
        None
    }

    /// First child matching any of `names`, in order of preference.
    pub fn child_any(self, names: &[&str]) -> Option<El<'a>> {
        names.iter().find_map(|n| self.child(n))
    }

    /// Children with local name `name`.
    pub fn children_named(self, name: &'a str) -> impl Iterator<Item = El<'a>> + 'a {
        self.children().filter(move |c| c.name() == name)
    }

    /// Descendant along a path of local names.
    pub fn path(self, path: &[&str]) -> Option<El<'a>> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// Attributes as (local name, value).
    pub fn attrs(self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let doc = self.doc;
        let (start, end) = self.node().attrs;
        doc.attrs[start as usize..end as usize]
            .iter()
            .map(move |(k, v)| (&**k, doc.str(*v)))
    }

    /// Attribute value by local name (`xml:lang` is stored with its prefix).
    pub fn attr(self, name: &str) -> Option<&'a str> {
        self.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// First present, non-empty attribute among `names` (for legacy spellings).
    pub fn attr_any(self, names: &[&str]) -> Option<&'a str> {
        names
            .iter()
            .find_map(|n| self.attr(n))
            .filter(|v| !v.is_empty())
    }

    /// Trimmed text, `None` when empty.
    pub fn text(self) -> Option<&'a str> {
        Some(self.doc.str(self.node().text).trim()).filter(|t| !t.is_empty())
    }

    /// Text of the child `name`.
    pub fn child_text(self, name: &str) -> Option<&'a str> {
        self.child(name).and_then(|c| c.text())
    }

    /// For `<Extensions>`: the content serialised verbatim.
    pub fn raw(self) -> Option<&'a str> {
        self.doc
            .raws
            .get(self.node().raw as usize)
            .map(String::as_str)
    }
}

/// The quick-xml readers the PSKC reader runs on: `NsReader` for containers embedded in
/// other XML (its caller keeps namespace scope), [`Plain`] for whole files (faster; the
/// reader only matches local names, so it needs no namespace resolution).
pub(crate) trait Pull {
    /// The next event, borrowing `buf`.
    fn pull<'b>(&mut self, buf: &'b mut Vec<u8>) -> quick_xml::Result<Event<'b>>;
    /// Byte offset for error messages.
    fn position(&self) -> u64;
    /// Bytes read so far.
    fn offset(&self) -> u64;
    /// Namespace declarations in scope (`xmlns…`, URI), for `<Extensions>` fragments.
    fn scope(&self) -> Vec<(String, String)>;
    /// Starts a new section: the raw-input budget (if any) is refilled.
    fn new_section(&mut self) {}
}

impl<R: BufRead> Pull for NsReader<R> {
    fn pull<'b>(&mut self, buf: &'b mut Vec<u8>) -> quick_xml::Result<Event<'b>> {
        self.read_event_into(buf)
    }

    fn position(&self) -> u64 {
        self.error_position()
    }

    fn offset(&self) -> u64 {
        self.buffer_position()
    }

    fn scope(&self) -> Vec<(String, String)> {
        self.resolver()
            .bindings()
            .filter_map(|(prefix, ns)| match prefix {
                PrefixDeclaration::Named("xml") => None,
                PrefixDeclaration::Named(p) => Some((format!("xmlns:{p}"), ns.0.to_owned())),
                PrefixDeclaration::Default => Some(("xmlns".to_owned(), ns.0.to_owned())),
            })
            .collect()
    }
}

/// A plain quick-xml reader plus the namespace declarations of the root element.
pub(crate) struct Plain<R> {
    pub reader: quick_xml::Reader<Capped<R>>,
    pub root_scope: Vec<(String, String)>,
}

/// Caps the raw input one section may span, so that a single huge text or tag cannot make
/// quick-xml's event buffer grow without bound (quick-xml reads a whole event at once).
pub(crate) struct Capped<R> {
    inner: R,
    limit: usize,
    remaining: usize,
}

impl<R> Capped<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Capped {
            inner,
            limit,
            remaining: limit,
        }
    }

    /// Allows another `limit` bytes (a new event or section begins).
    pub fn refill(&mut self) {
        self.remaining = self.limit;
    }

    /// The input underneath, outside the cap (for the package splitter, which keeps its own).
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: std::io::Read> std::io::Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.remaining = self.remaining.saturating_sub(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Capped<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.remaining == 0 {
            let message = format!(
                "one document section exceeds the limit of {} bytes",
                self.limit
            );
            return Err(std::io::Error::other(message));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.remaining = self.remaining.saturating_sub(amount);
        self.inner.consume(amount);
    }
}

impl<R: BufRead> Pull for Plain<R> {
    fn new_section(&mut self) {
        let capped = self.reader.get_mut();
        capped.remaining = capped.limit;
    }

    fn pull<'b>(&mut self, buf: &'b mut Vec<u8>) -> quick_xml::Result<Event<'b>> {
        self.reader.read_event_into(buf)
    }

    fn position(&self) -> u64 {
        self.reader.error_position()
    }

    fn offset(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn scope(&self) -> Vec<(String, String)> {
        self.root_scope.clone()
    }
}

/// The `xmlns` declarations of a start tag.
pub(crate) fn declarations(start: &BytesStart<'_>) -> Vec<(String, String)> {
    let attrs = start.attributes().flatten();
    let decls = attrs.filter(|a| a.key.as_ref() == "xmlns" || a.key.as_ref().starts_with("xmlns:"));
    decls
        .map(|a| (a.key.as_ref().to_owned(), a.value.into_owned()))
        .collect()
}

/// Pulls events from a reader (owned by the caller) with a reused buffer.
pub(crate) struct Source<'a, P> {
    pub reader: &'a mut P,
    buf: &'a mut Vec<u8>,
    pub limits: Limits,
}

/// What came next at the current level.
pub(crate) enum Next {
    /// A child element opened (its start tag; `empty` when self-closing).
    Open {
        start: BytesStart<'static>,
        empty: bool,
    },
    /// The current element closed.
    Close,
    /// End of input.
    Eof,
}

impl<'a, P: Pull> Source<'a, P> {
    pub fn new(reader: &'a mut P, buf: &'a mut Vec<u8>, limits: Limits) -> Self {
        Source {
            reader,
            buf,
            limits,
        }
    }

    fn xml_error(&self, err: impl std::fmt::Display) -> Error {
        Error::Xml {
            position: self.reader.position(),
            reason: err.to_string(),
        }
    }

    /// Skips text, comments and processing instructions; returns the next structural event.
    pub fn next_structural(&mut self) -> Result<Next> {
        self.reader.new_section();
        loop {
            self.buf.clear();
            let event = match self.reader.pull(self.buf) {
                Ok(event) => event.into_owned(),
                Err(err) => return Err(self.xml_error(err)),
            };
            match event {
                Event::Start(start) => {
                    return Ok(Next::Open {
                        start,
                        empty: false,
                    });
                }
                Event::Empty(start) => return Ok(Next::Open { start, empty: true }),
                Event::End(_) => return Ok(Next::Close),
                Event::Eof => return Ok(Next::Eof),
                Event::DocType(_) => return Err(Error::DtdForbidden),
                Event::GeneralRef(r) if !is_predefined(&r) => {
                    return Err(Error::UndefinedEntity {
                        name: r.to_string(),
                        at: Location::element("document"),
                    });
                }
                _ => {}
            }
        }
    }

    /// Reads on through the element whose start tag was just returned, without keeping it,
    /// for at most about `budget` bytes: a cheap check that a document about to be refused for
    /// another reason is XML at all. An error names the XML fault; running out of budget or
    /// input is not one.
    pub fn probe_element(&mut self, budget: u64) -> Result<()> {
        let start = self.reader.offset();
        let mut depth = 1usize;
        while depth > 0 && self.reader.offset() - start < budget {
            self.buf.clear();
            match self.reader.pull(self.buf) {
                Ok(Event::Start(_)) => depth += 1,
                Ok(Event::End(_)) => depth -= 1,
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(err) => return Err(self.xml_error(err)),
            }
        }
        Ok(())
    }

    /// Reads the element whose start tag was just returned into `doc` (cleared first).
    pub fn read_element(
        &mut self,
        start: &BytesStart<'_>,
        empty: bool,
        doc: &mut Doc,
    ) -> Result<()> {
        doc.clear();
        let root = open_element(doc, NONE, start, 1, &self.limits)?;
        if empty {
            return Ok(());
        }
        if doc.nodes[0].name == "Extensions" {
            let raw = self.capture_raw(start.name().as_ref(), doc)?;
            doc.nodes[0].raw = doc.raws.len() as u32;
            doc.raws.push(raw);
            return Ok(());
        }
        self.fill(doc, root, 1)
    }

    /// Reads the content of node `id` up to its end tag. Events are used while borrowed
    /// from the buffer; only names, attributes and text are copied, into the arena.
    fn fill(&mut self, doc: &mut Doc, id: u32, depth: usize) -> Result<()> {
        let limits = self.limits;
        loop {
            self.buf.clear();
            // The event borrows the buffer: copy what is needed, then let it go.
            let (child, empty, qname) = {
                let event = match self.reader.pull(self.buf) {
                    Ok(event) => event,
                    Err(err) => {
                        let position = self.reader.position();
                        return Err(Error::Xml {
                            position,
                            reason: err.to_string(),
                        });
                    }
                };
                match event {
                    Event::Start(ref start) | Event::Empty(ref start) => {
                        let empty = matches!(event, Event::Empty(_));
                        let child = open_element(doc, id, start, depth + 1, &limits)?;
                        let qname = (doc.nodes[child as usize].name == "Extensions" && !empty)
                            .then(|| start.name().as_ref().to_owned());
                        (child, empty, qname)
                    }
                    Event::Text(text) => {
                        push_text(doc, id, &text.xml10_content(), &limits)?;
                        continue;
                    }
                    Event::CData(text) => {
                        push_text(doc, id, &text.xml10_content(), &limits)?;
                        continue;
                    }
                    Event::GeneralRef(r) => {
                        let resolved = resolve_ref(&r, &doc.nodes[id as usize].name)?;
                        push_text(doc, id, &resolved, &limits)?;
                        continue;
                    }
                    Event::End(_) => return Ok(()),
                    Event::Eof => {
                        let position = self.reader.position();
                        let reason =
                            format!("unexpected end inside <{}>", doc.nodes[id as usize].name);
                        return Err(Error::Xml { position, reason });
                    }
                    Event::DocType(_) => return Err(Error::DtdForbidden),
                    Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                }
            };
            if let Some(qname) = qname {
                let raw = self.capture_raw(&qname, doc)?;
                doc.nodes[child as usize].raw = doc.raws.len() as u32;
                doc.raws.push(raw);
            } else if !empty {
                self.fill(doc, child, depth + 1)?;
            }
        }
    }

    /// Serialises the content of an `<Extensions>` element verbatim, declaring on each
    /// top-level child the namespaces in scope so the fragment stands on its own.
    fn capture_raw(&mut self, end_name: &str, doc: &Doc) -> Result<String> {
        // Declarations made inside the section override the outer scope.
        let mut scope = self.reader.scope();
        for (name, uri) in &doc.decls {
            scope.retain(|(n, _)| n != name);
            scope.push((name.clone(), uri.clone()));
        }
        let mut writer = quick_xml::Writer::new(Vec::new());
        let mut depth = 0usize;
        loop {
            self.buf.clear();
            let event = match self.reader.pull(self.buf) {
                Ok(event) => event.into_owned(),
                Err(err) => return Err(self.xml_error(err)),
            };
            let event = match event {
                Event::End(end) if depth == 0 && end.name().as_ref() == end_name => break,
                Event::Eof => return Err(self.xml_error("unexpected end inside <Extensions>")),
                Event::DocType(_) => return Err(Error::DtdForbidden),
                Event::GeneralRef(ref r) if !is_predefined(r) => {
                    return Err(Error::UndefinedEntity {
                        name: r.to_string(),
                        at: Location::element("Extensions"),
                    });
                }
                Event::Start(mut s) if depth == 0 => {
                    depth += 1;
                    declare_scope(&mut s, &scope);
                    Event::Start(s)
                }
                Event::Empty(mut s) if depth == 0 => {
                    declare_scope(&mut s, &scope);
                    Event::Empty(s)
                }
                Event::Start(s) => {
                    depth += 1;
                    Event::Start(s)
                }
                Event::End(e) => {
                    depth = depth.saturating_sub(1);
                    Event::End(e)
                }
                other => other,
            };
            if depth > self.limits.max_depth {
                return Err(Error::TooLarge {
                    what: "element nesting".into(),
                    limit: self.limits.max_depth,
                });
            }
            writer.write_event(event).map_err(|e| self.xml_error(e))?;
            if writer.get_ref().len() > self.limits.max_text {
                return Err(Error::TooLarge {
                    what: "<Extensions>".into(),
                    limit: self.limits.max_text,
                });
            }
        }
        let bytes = writer.into_inner();
        if doc.size() + bytes.len() > self.limits.max_section {
            let what = "one document section".to_owned();
            return Err(Error::TooLarge {
                what,
                limit: self.limits.max_section,
            });
        }
        String::from_utf8(bytes).map_err(|e| self.xml_error(e))
    }
}

/// A new node from its start tag: local name and attributes, within the limits.
fn open_element(
    doc: &mut Doc,
    parent: u32,
    start: &BytesStart<'_>,
    depth: usize,
    limits: &Limits,
) -> Result<u32> {
    if depth > limits.max_depth {
        let what = "element nesting".to_owned();
        return Err(Error::TooLarge {
            what,
            limit: limits.max_depth,
        });
    }
    let first = doc.attrs.len() as u32;
    if start.attributes_raw().contains("xmlns") {
        doc.decls.extend(declarations(start));
    }
    visit_attributes(start, |name, value| {
        let begin = doc.text.len() as u32;
        doc.text.push_str(value);
        doc.attrs.push((name, (begin, doc.text.len() as u32)));
    })?;
    let id = doc.push_node(parent, local_name(start), (first, doc.attrs.len() as u32));
    check_size(doc, limits)?;
    Ok(id)
}

fn push_text(doc: &mut Doc, id: u32, text: &str, limits: &Limits) -> Result<()> {
    let (start, end) = doc.nodes[id as usize].text;
    // Indentation between child elements is never content; skip it.
    if start == end && text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    if (end - start) as usize + text.len() > limits.max_text {
        let what = format!("text of <{}>", doc.nodes[id as usize].name);
        return Err(Error::TooLarge {
            what,
            limit: limits.max_text,
        });
    }
    doc.push_text(id, text);
    check_size(doc, limits)
}

fn check_size(doc: &Doc, limits: &Limits) -> Result<()> {
    if doc.size() > limits.max_section {
        let what = "one document section".to_owned();
        return Err(Error::TooLarge {
            what,
            limit: limits.max_section,
        });
    }
    Ok(())
}

fn declare_scope(start: &mut BytesStart<'_>, scope: &[(String, String)]) {
    let declared: Vec<String> = start
        .attributes()
        .flatten()
        .map(|a| a.key.as_ref().to_owned())
        .filter(|k| k.starts_with("xmlns"))
        .collect();
    for (name, uri) in scope {
        if !declared.iter().any(|d| d == name) {
            start.push_attribute((name.as_str(), uri.as_str()));
        }
    }
}

/// The local name of a start tag.
pub(crate) fn local_name(start: &BytesStart<'_>) -> Name {
    intern(start.local_name().as_ref())
}

/// Attributes by local name (keeping `xml:` prefixed ones whole), without namespace
/// declarations, unescaped.
pub(crate) fn attributes(start: &BytesStart<'_>) -> Result<Vec<(Name, String)>> {
    let mut attrs = Vec::new();
    visit_attributes(start, |name, value| attrs.push((name, value.to_owned())))?;
    Ok(attrs)
}

/// Calls `f` with each attribute's local name and unescaped value.
fn visit_attributes(start: &BytesStart<'_>, mut f: impl FnMut(Name, &str)) -> Result<()> {
    for attr in start.attributes() {
        let attr = attr.map_err(|e| Error::Xml {
            position: 0,
            reason: e.to_string(),
        })?;
        let key = attr.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let name = if key.starts_with("xml:") {
            Name::Owned(key.to_owned())
        } else {
            intern(attr.key.local_name().as_ref())
        };
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| Error::UndefinedEntity {
                name: "(in attribute)".into(),
                at: Location::element(format!("{}@{name}", local_name(start))),
            })?;
        f(name, &value);
    }
    Ok(())
}

fn is_predefined(r: &quick_xml::events::BytesRef<'_>) -> bool {
    r.is_char_ref() || matches!(&**r, "lt" | "gt" | "amp" | "apos" | "quot")
}

fn resolve_ref(r: &quick_xml::events::BytesRef<'_>, element: &str) -> Result<String> {
    let undefined = || Error::UndefinedEntity {
        name: r.to_string(),
        at: Location::element(element),
    };
    if let Ok(Some(ch)) = r.resolve_char_ref() {
        return Ok(ch.to_string());
    }
    let text = match &**r {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return Err(undefined()),
    };
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_interned_and_nothing_else() {
        for name in VOCABULARY {
            assert!(matches!(intern(name), Name::Borrowed(known) if known == name));
        }
        for other in [
            "",
            "K",
            "Keys",
            "KeyPackages",
            "keypackage",
            "MinLengtH",
            "pskc:Key",
        ] {
            assert!(matches!(intern(other), Name::Owned(_)), "{other}");
        }
    }
}
