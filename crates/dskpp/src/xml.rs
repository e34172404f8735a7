//! A small namespace-aware element tree over quick-xml's `NsReader`, with the hardening DSKPP
//! needs: UTF-8 only, no DTD, no entities beyond the five predefined ones, bounded depth and
//! element count. Names are matched on (namespace URI, local name), never on prefixes.

use std::collections::BTreeMap;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};

use crate::uri;

/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document.
const MAX_ELEMENTS: usize = 20_000;

/// Why a document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// The octets are not UTF-8, or the declaration names another encoding.
    #[error("document is not UTF-8")]
    NotUtf8,
    /// The document has a `<!DOCTYPE`.
    #[error("document contains a DTD, which DSKPP does not allow")]
    Dtd,
    /// An entity reference other than the predefined five or a character reference.
    #[error("document references the undeclared entity &{0};")]
    Entity(String),
    /// A prefix without a namespace declaration.
    #[error("prefix {0} is not bound to a namespace")]
    UnboundPrefix(String),
    /// Nesting or size limit exceeded.
    #[error("document exceeds the {0} limit")]
    Limit(&'static str),
    /// Not well-formed.
    #[error("document is not well-formed XML: {0}")]
    Syntax(String),
    /// No root element.
    #[error("document has no root element")]
    Empty,
}

/// An attribute; `ns` is empty for unqualified attributes (the DSKPP schema's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI or "".
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Normalized value. `xsi:type` values are stored in Clark notation `{uri}local`.
    pub value: String,
}

/// An element with its attributes, child elements and concatenated character data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI or "".
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Character data directly inside this element.
    pub text: String,
}

impl Element {
    /// A new empty element.
    pub fn new(ns: &str, name: &str) -> Element {
        Element {
            ns: ns.to_string(),
            name: name.to_string(),
            ..Element::default()
        }
    }

    /// A new element in the DSKPP namespace.
    pub fn dskpp(name: &str) -> Element {
        Element::new(uri::DSKPP_NS, name)
    }

    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// All children `{ns}name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// An unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// A namespaced attribute.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Builder: adds an unqualified attribute.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Element {
        self.attrs.push(Attr {
            ns: String::new(),
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Builder: adds a namespaced attribute.
    pub fn with_attr_ns(mut self, ns: &str, name: &str, value: impl Into<String>) -> Element {
        self.attrs.push(Attr {
            ns: ns.into(),
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Builder: sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Element {
        self.text = text.into();
        self
    }

    /// Builder: appends a child.
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    /// Appends a child.
    pub fn push(&mut self, child: Element) {
        self.children.push(child);
    }
}

/// Parses a complete document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut count = 0usize;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(syntax)?;
        match event {
            Event::Decl(decl) => check_encoding(&decl)?,
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(XmlError::Syntax("content after the root element".into()));
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::Limit("element count"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::Limit("nesting depth"));
                }
                let ns = namespace(resolved, &start)?;
                stack.push(element(&reader, ns, &start)?);
            }
            Event::Empty(start) => {
                count += 1;
                let ns = namespace(resolved, &start)?;
                let el = element(&reader, ns, &start)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("stray end tag".into()))?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => push_text(&mut stack, &c.into_inner())?,
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(syntax)? {
                    Some(ch) => ch.to_string(),
                    None => predefined(&r.into_inner())?.to_string(),
                };
                push_text(&mut stack, &ch)?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("document ends inside an element".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn syntax(err: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax(err.to_string())
}

fn check_encoding(decl: &quick_xml::events::BytesDecl<'_>) -> Result<(), XmlError> {
    if let Some(enc) = decl.encoding() {
        let enc = enc.map_err(syntax)?;
        let enc = enc.to_ascii_lowercase();
        if enc != "utf-8" && enc != "utf8" {
            return Err(XmlError::NotUtf8);
        }
    }
    Ok(())
}

fn predefined(name: &str) -> Result<char, XmlError> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(XmlError::Entity(other.to_string())),
    }
}

fn namespace(resolved: ResolveResult<'_>, start: &BytesStart<'_>) -> Result<String, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => Ok(ns.as_ref().to_string()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(_) => {
            Err(XmlError::UnboundPrefix(start.name().as_ref().to_string()))
        }
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let local = start.local_name();
    let name = local.as_ref();
    let mut el = Element::new(&ns, name);
    for attr in start.attributes() {
        let attr = attr.map_err(syntax)?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (res, local) = reader.resolver().resolve_attribute(attr.key);
        let ns = match res {
            ResolveResult::Bound(ns) => ns.as_ref().to_string(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => return Err(XmlError::UnboundPrefix(p)),
        };
        let name = local.as_ref().to_string();
        let mut value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(syntax)?
            .into_owned();
        if ns == uri::XSI_NS && name == "type" {
            value = clark(reader, &value)?;
        }
        el.attrs.push(Attr { ns, name, value });
    }
    Ok(el)
}

/// Resolves a QName-valued attribute into `{uri}local`.
fn clark(reader: &NsReader<&[u8]>, qname: &str) -> Result<String, XmlError> {
    let q = QName(qname.trim());
    let (local, prefix) = q.decompose();
    let local = local.as_ref().to_string();
    match reader.resolver().resolve_prefix(prefix, true) {
        ResolveResult::Bound(ns) => Ok(format!("{{{}}}{local}", ns.as_ref())),
        ResolveResult::Unbound => Ok(local),
        ResolveResult::Unknown(p) => Err(XmlError::UnboundPrefix(p)),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Prefixes used when writing; any other namespace gets `ns1`, `ns2`, ….
const PREFIXES: &[(&str, &str)] = &[
    ("dskpp", uri::DSKPP_NS),
    ("pskc", uri::PSKC_NS),
    ("ds", uri::DS_NS),
    ("xsi", uri::XSI_NS),
    ("xenc", "http://www.w3.org/2001/04/xmlenc#"),
    ("xenc11", "http://www.w3.org/2009/xmlenc11#"),
    ("dkey", "http://www.w3.org/2009/xmlsec-derivedkey#"),
    (
        "pkcs5",
        "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#",
    ),
];

/// Writes a document (UTF-8 declaration, all namespaces declared on the root).
pub fn write(root: &Element) -> Vec<u8> {
    let mut prefixes = BTreeMap::new();
    collect_namespaces(root, &mut prefixes);
    let mut out = String::with_capacity(1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_element(root, &prefixes, true, &mut out);
    out.into_bytes()
}

fn collect_namespaces(el: &Element, map: &mut BTreeMap<String, String>) {
    let mut add = |ns: &str| {
        if ns.is_empty() || map.contains_key(ns) {
            return;
        }
        let prefix = PREFIXES
            .iter()
            .find(|(_, u)| *u == ns)
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| format!("ns{}", map.len() + 1));
        map.insert(ns.to_string(), prefix);
    };
    add(&el.ns);
    for a in &el.attrs {
        add(&a.ns);
        if let Some((ns, _)) = split_clark(&a.value).filter(|_| a.ns == uri::XSI_NS) {
            add(ns);
        }
    }
    for c in &el.children {
        collect_namespaces(c, map);
    }
}

fn split_clark(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix('{')?;
    rest.split_once('}')
}

fn qualified(ns: &str, name: &str, prefixes: &BTreeMap<String, String>) -> String {
    match prefixes.get(ns) {
        Some(p) => format!("{p}:{name}"),
        None => name.to_string(),
    }
}

fn write_element(el: &Element, prefixes: &BTreeMap<String, String>, root: bool, out: &mut String) {
    let tag = qualified(&el.ns, &el.name, prefixes);
    out.push('<');
    out.push_str(&tag);
    if root {
        for (ns, p) in prefixes {
            out.push_str(&format!(" xmlns:{p}=\""));
            escape(ns, true, out);
            out.push('"');
        }
    }
    for a in &el.attrs {
        out.push(' ');
        out.push_str(&qualified(&a.ns, &a.name, prefixes));
        out.push_str("=\"");
        let value = match split_clark(&a.value) {
            Some((ns, local)) if a.ns == uri::XSI_NS => qualified(ns, local, prefixes),
            _ => a.value.clone(),
        };
        escape(&value, true, out);
        out.push('"');
    }
    if el.children.is_empty() && el.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape(&el.text, false, out);
    for c in &el.children {
        write_element(c, prefixes, false, out);
    }
    out.push_str("</");
    out.push_str(&tag);
    out.push('>');
}

fn escape(s: &str, attr: bool, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_on_namespace_not_prefix() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<x:A xmlns:x="urn:ietf:params:xml:ns:keyprov:dskpp" Version="1.0"><x:B>t&amp;&#65;</x:B>
<C xmlns="urn:other"/></x:A>"#;
        let root = parse(doc).unwrap();
        assert!(root.is(uri::DSKPP_NS, "A"));
        assert_eq!(root.attr("Version"), Some("1.0"));
        assert_eq!(root.child(uri::DSKPP_NS, "B").unwrap().text, "t&A");
        assert!(root.child("urn:other", "C").is_some());
    }

    #[test]
    fn refuses_dtd_and_entities() {
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#;
        assert_eq!(parse(dtd).unwrap_err(), XmlError::Dtd);
        assert_eq!(
            parse(b"<a>&x;</a>").unwrap_err(),
            XmlError::Entity("x".into())
        );
    }

    #[test]
    fn refuses_other_encodings_and_bad_utf8() {
        let latin = br#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#;
        assert_eq!(parse(latin).unwrap_err(), XmlError::NotUtf8);
        assert_eq!(parse(b"<a>\xff</a>").unwrap_err(), XmlError::NotUtf8);
    }

    #[test]
    fn refuses_malformed() {
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse(b"<a>"), Err(XmlError::Syntax(_))));
        assert_eq!(parse(b"  ").unwrap_err(), XmlError::Empty);
        assert!(matches!(
            parse(b"<p:a/>"),
            Err(XmlError::UnboundPrefix(_) | XmlError::Syntax(_))
        ));
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err(),
            XmlError::Limit("nesting depth")
        );
    }

    #[test]
    fn xsi_type_round_trips_through_clark_notation() {
        let el = Element::dskpp("Extension")
            .with_attr_ns(
                uri::XSI_NS,
                "type",
                format!("{{{}}}ClientInfoType", uri::DSKPP_NS),
            )
            .with_attr("Critical", "false")
            .with_child(Element::dskpp("Data").with_text("AAEC<&>\"x"));
        let bytes = write(&el);
        let back = parse(&bytes).unwrap();
        assert_eq!(back, el);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(r#"xsi:type="dskpp:ClientInfoType""#),
            "{text}"
        );
    }
}
