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

/// Element and attribute names of RFC 6030 and its drafts, shared instead of allocated.
const VOCABULARY: [&str; 86] = [
    "KeyContainer",
    "SecretContainer",
    "EncryptionKey",
    "EncryptionMethod",
    "KeyName",
    "DerivedKey",
    "KeyDerivationMethod",
    "PBKDF2-params",
    "Salt",
    "Specified",
    "IterationCount",
    "KeyLength",
    "PRF",
    "MasterKeyName",
    "CarriedKeyName",
    "ReferenceList",
    "DataReference",
    "X509Data",
    "X509Certificate",
    "MACMethod",
    "MACKey",
    "MACAlgorithm",
    "DigestMethod",
    "KeyPackage",
    "Device",
    "DeviceInfo",
    "DeviceId",
    "Manufacturer",
    "SerialNo",
    "Model",
    "IssueNo",
    "DeviceBinding",
    "StartDate",
    "ExpiryDate",
    "Expiry",
    "UserId",
    "CryptoModuleInfo",
    "Id",
    "Key",
    "Secret",
    "Issuer",
    "AlgorithmParameters",
    "Suite",
    "ChallengeFormat",
    "ResponseFormat",
    "Usage",
    "KeyProfileId",
    "KeyReference",
    "FriendlyName",
    "Data",
    "Counter",
    "Time",
    "TimeInterval",
    "TimeDrift",
    "PlainValue",
    "EncryptedValue",
    "CipherData",
    "CipherValue",
    "ValueMAC",
    "ValueDigest",
    "Value",
    "Policy",
    "PINPolicy",
    "KeyUsage",
    "NumberOfTransactions",
    "Extensions",
    "Signature",
    "Algorithm",
    "Version",
    "Encoding",
    "Length",
    "CheckDigits",
    "CheckDigit",
    "Min",
    "Max",
    "PINKeyId",
    "PINUsageMode",
    "MaxFailedAttempts",
    "MinLength",
    "MaxLength",
    "PINEncoding",
    "KeyId",
    "KeyAlgorithm",
    "Name",
    "EncryptionScheme",
    "IV",
];

/// `name` as an interned [`Name`] when it belongs to the vocabulary.
pub(crate) fn intern(name: &str) -> Name {
    match VOCABULARY.iter().find(|v| **v == name) {
        Some(known) => Name::Borrowed(known),
        None => Name::Owned(name.to_owned()),
    }
}

/// One element: local name, attributes by local name, children, text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Element {
    pub name: Name,
    pub attrs: Vec<(Name, String)>,
    pub children: Vec<Element>,
    pub text: String,
    /// For `<Extensions>`: the content serialised verbatim.
    pub raw: Option<String>,
}

impl Element {
    /// First child with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// First child matching any of `names`, in order of preference.
    pub fn child_any(&self, names: &[&str]) -> Option<&Element> {
        names.iter().find_map(|n| self.child(n))
    }

    /// Children with local name `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Descendant along a path of local names.
    pub fn path(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// Attribute value by local name (`xml:lang` is stored with its prefix).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First present attribute among `names` (for legacy spellings).
    pub fn attr_any(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.attr(n))
            .filter(|v| !v.is_empty())
    }

    /// Trimmed text, `None` when empty.
    pub fn text(&self) -> Option<&str> {
        Some(self.text.trim()).filter(|t| !t.is_empty())
    }

    /// Text of the child `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(Element::text)
    }
}

/// Pulls events from a namespace-aware reader (owned by the caller) with a reused buffer.
pub(crate) struct Source<'a, R> {
    pub reader: &'a mut NsReader<R>,
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

impl<'a, R: BufRead> Source<'a, R> {
    pub fn new(reader: &'a mut NsReader<R>, buf: &'a mut Vec<u8>, limits: Limits) -> Self {
        Source {
            reader,
            buf,
            limits,
        }
    }

    fn xml_error(&self, err: impl std::fmt::Display) -> Error {
        Error::Xml {
            position: self.reader.error_position(),
            reason: err.to_string(),
        }
    }

    /// Skips text, comments and processing instructions; returns the next structural event.
    pub fn next_structural(&mut self) -> Result<Next> {
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(self.buf) {
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

    /// Reads the element whose start tag was just returned into a tree.
    pub fn read_element(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<Element> {
        let mut budget = self.limits.max_section;
        self.read_tree(start, empty, 1, &mut budget)
    }

    fn read_tree(
        &mut self,
        start: &BytesStart<'_>,
        empty: bool,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Element> {
        let mut element = open_element(start, depth, &self.limits, budget)?;
        if empty {
            return Ok(element);
        }
        if element.name == "Extensions" {
            element.raw = Some(self.capture_raw(start.name().as_ref(), budget)?);
            return Ok(element);
        }
        self.fill(element, depth, budget)
    }

    /// Reads the content of `element` up to its end tag. Events are used while borrowed
    /// from the buffer; only element names, attributes and text are copied.
    fn fill(&mut self, mut element: Element, depth: usize, budget: &mut usize) -> Result<Element> {
        let limits = self.limits;
        loop {
            self.buf.clear();
            // The event borrows the buffer: copy what is needed, then let it go.
            let (mut child, empty, qname) = {
                let event = match self.reader.read_event_into(self.buf) {
                    Ok(event) => event,
                    Err(err) => {
                        let position = self.reader.error_position();
                        return Err(Error::Xml {
                            position,
                            reason: err.to_string(),
                        });
                    }
                };
                match event {
                    Event::Start(ref start) | Event::Empty(ref start) => {
                        let empty = matches!(event, Event::Empty(_));
                        let child = open_element(start, depth + 1, &limits, budget)?;
                        let qname = (child.name == "Extensions" && !empty)
                            .then(|| start.name().as_ref().to_owned());
                        (child, empty, qname)
                    }
                    Event::Text(text) => {
                        push_text(&mut element, &text.xml10_content(), &limits, budget)?;
                        continue;
                    }
                    Event::CData(text) => {
                        push_text(&mut element, &text.xml10_content(), &limits, budget)?;
                        continue;
                    }
                    Event::GeneralRef(r) => {
                        let resolved = resolve_ref(&r, &element.name)?;
                        push_text(&mut element, &resolved, &limits, budget)?;
                        continue;
                    }
                    Event::End(_) => return Ok(element),
                    Event::Eof => {
                        let position = self.reader.error_position();
                        let reason = format!("unexpected end inside <{}>", element.name);
                        return Err(Error::Xml { position, reason });
                    }
                    Event::DocType(_) => return Err(Error::DtdForbidden),
                    Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                }
            };
            if let Some(qname) = qname {
                child.raw = Some(self.capture_raw(&qname, budget)?);
                element.children.push(child);
                continue;
            }
            let child = if empty {
                child
            } else {
                self.fill(child, depth + 1, budget)?
            };
            element.children.push(child);
        }
    }

    /// Serialises the content of an `<Extensions>` element verbatim, declaring on each
    /// top-level child the namespaces in scope so the fragment stands on its own.
    fn capture_raw(&mut self, end_name: &str, budget: &mut usize) -> Result<String> {
        let scope: Vec<(String, String)> = self
            .reader
            .resolver()
            .bindings()
            .filter_map(|(prefix, ns)| match prefix {
                PrefixDeclaration::Named("xml") => None,
                PrefixDeclaration::Named(p) => Some((format!("xmlns:{p}"), ns.0.to_owned())),
                PrefixDeclaration::Default => Some(("xmlns".to_owned(), ns.0.to_owned())),
            })
            .collect();
        let mut writer = quick_xml::Writer::new(Vec::new());
        let mut depth = 0usize;
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(self.buf) {
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
            spend(budget, 0, self.limits.max_section)?;
            if writer.get_ref().len() > self.limits.max_text {
                return Err(Error::TooLarge {
                    what: "<Extensions>".into(),
                    limit: self.limits.max_text,
                });
            }
        }
        let bytes = writer.into_inner();
        spend(budget, bytes.len(), self.limits.max_section)?;
        String::from_utf8(bytes).map_err(|e| self.xml_error(e))
    }
}

/// A new element from its start tag: local name and attributes, within the limits.
fn open_element(
    start: &BytesStart<'_>,
    depth: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Result<Element> {
    if depth > limits.max_depth {
        let what = "element nesting".to_owned();
        return Err(Error::TooLarge {
            what,
            limit: limits.max_depth,
        });
    }
    let element = Element {
        name: local_name(start),
        attrs: attributes(start)?,
        ..Element::default()
    };
    let used = element.name.len()
        + element
            .attrs
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    spend(budget, used, limits.max_section)?;
    Ok(element)
}

fn push_text(element: &mut Element, text: &str, limits: &Limits, budget: &mut usize) -> Result<()> {
    // Indentation between child elements is never content; skip it without allocating.
    if element.text.is_empty() && text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    if element.text.len() + text.len() > limits.max_text {
        let what = format!("text of <{}>", element.name);
        return Err(Error::TooLarge {
            what,
            limit: limits.max_text,
        });
    }
    spend(budget, text.len(), limits.max_section)?;
    element.text.push_str(text);
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

fn spend(budget: &mut usize, amount: usize, limit: usize) -> Result<()> {
    *budget = budget.checked_sub(amount).ok_or_else(|| Error::TooLarge {
        what: "one document section".into(),
        limit,
    })?;
    Ok(())
}

/// The local name of a start tag.
pub(crate) fn local_name(start: &BytesStart<'_>) -> Name {
    intern(start.local_name().as_ref())
}

/// Attributes by local name (keeping `xml:` prefixed ones whole), without namespace
/// declarations, unescaped.
pub(crate) fn attributes(start: &BytesStart<'_>) -> Result<Vec<(Name, String)>> {
    let mut attrs = Vec::new();
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
        attrs.push((name, value.into_owned()));
    }
    Ok(attrs)
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
