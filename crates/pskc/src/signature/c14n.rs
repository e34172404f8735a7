//! Canonical XML 1.0 and Exclusive XML Canonicalization 1.0 (both without comments) of a
//! document read as quick-xml events: each start tag is rendered with the namespace
//! declarations its mode calls for, attributes sorted, text and values escaped as the two
//! recommendations require.

use quick_xml::events::BytesStart;

use crate::error::{Error, Location, Result};

const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// Which canonicalization: Canonical XML 1.0 renders every namespace in scope, the exclusive
/// form only those an element or its attributes use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Inclusive,
    Exclusive,
}

/// Where canonical bytes go.
pub(super) trait Output {
    fn put(&mut self, bytes: &[u8]);
}

impl Output for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// One element's start tag, as read.
pub(super) struct Element {
    pub(super) qname: String,
    pub(super) prefix: String,
    pub(super) local: String,
    /// Attributes other than namespace declarations: qualified name, prefix, local name,
    /// normalized value.
    pub(super) attrs: Vec<(String, String, String, String)>,
}

/// Namespace declarations in scope, innermost last.
#[derive(Default)]
pub(super) struct Scope {
    pub(super) bindings: Vec<(String, String)>,
    pub(super) marks: Vec<usize>,
}

impl Scope {
    pub(super) fn lookup(&self, prefix: &str) -> Option<&str> {
        let found = self.bindings.iter().rev().find(|(p, _)| p == prefix);
        found.map(|(_, uri)| uri.as_str())
    }

    /// Every prefix in scope with its innermost binding.
    pub(super) fn in_scope(&self) -> Vec<(&str, &str)> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (prefix, uri) in self.bindings.iter().rev() {
            if !seen.iter().any(|(p, _)| p == prefix) {
                seen.push((prefix, uri));
            }
        }
        seen
    }
}

/// A canonicalizer (without comments) writing to `out`; it knows which namespace
/// declarations its output ancestors rendered.
pub(super) struct Canon<O> {
    pub(super) mode: Mode,
    pub(super) out: O,
    pub(super) rendered: Vec<(String, String)>,
    pub(super) marks: Vec<usize>,
}

impl<O: Output> Canon<O> {
    pub(super) fn new(mode: Mode, out: O) -> Self {
        Canon {
            mode,
            out,
            rendered: Vec::new(),
            marks: Vec::new(),
        }
    }

    fn nearest(&self, prefix: &str) -> Option<&str> {
        let found = self.rendered.iter().rev().find(|(p, _)| p == prefix);
        found.map(|(_, uri)| uri.as_str())
    }

    /// The namespace declarations this element renders: those whose value differs from what
    /// the output ancestors rendered (C14N §2.3; exc-c14n §3: only visibly used prefixes).
    fn declarations(&self, element: &Element, scope: &Scope) -> Result<Vec<(String, String)>> {
        let candidates: Vec<(String, String)> = match self.mode {
            Mode::Inclusive => scope
                .in_scope()
                .into_iter()
                .map(|(p, u)| (p.to_owned(), u.to_owned()))
                .collect(),
            Mode::Exclusive => {
                let mut used = vec![element.prefix.as_str()];
                for (_, prefix, _, _) in &element.attrs {
                    if !prefix.is_empty() && prefix != "xml" && !used.contains(&prefix.as_str()) {
                        used.push(prefix);
                    }
                }
                let mut out = Vec::new();
                for prefix in used {
                    let uri = match scope.lookup(prefix) {
                        Some(uri) => uri,
                        None if prefix.is_empty() => "",
                        None => return Err(unbound(prefix, &element.qname)),
                    };
                    out.push((prefix.to_owned(), uri.to_owned()));
                }
                out
            }
        };
        let mut render: Vec<(String, String)> = candidates
            .into_iter()
            .filter(|(prefix, uri)| match prefix.as_str() {
                "xml" => false,
                "" => uri != self.nearest("").unwrap_or(""),
                _ => self.nearest(prefix) != Some(uri.as_str()),
            })
            .collect();
        render.sort();
        Ok(render)
    }

    pub(super) fn start(&mut self, element: &Element, scope: &Scope) -> Result<()> {
        let decls = self.declarations(element, scope)?;
        let mut attrs: Vec<(&str, &str, &str, &str)> = Vec::new();
        for (qname, prefix, local, value) in &element.attrs {
            let uri = match prefix.as_str() {
                "" => "",
                "xml" => NS_XML,
                p => scope.lookup(p).ok_or_else(|| unbound(p, &element.qname))?,
            };
            attrs.push((uri, local, qname, value));
        }
        attrs.sort();
        self.marks.push(self.rendered.len());
        self.out.put(b"<");
        self.out.put(element.qname.as_bytes());
        for (prefix, uri) in decls {
            self.out.put(b" xmlns");
            if !prefix.is_empty() {
                self.out.put(b":");
                self.out.put(prefix.as_bytes());
            }
            self.out.put(b"=\"");
            escape_attr(&mut self.out, &uri);
            self.out.put(b"\"");
            self.rendered.push((prefix, uri));
        }
        for (_, _, qname, value) in attrs {
            self.out.put(b" ");
            self.out.put(qname.as_bytes());
            self.out.put(b"=\"");
            escape_attr(&mut self.out, value);
            self.out.put(b"\"");
        }
        self.out.put(b">");
        Ok(())
    }

    pub(super) fn end(&mut self, qname: &str) {
        self.out.put(b"</");
        self.out.put(qname.as_bytes());
        self.out.put(b">");
        let mark = self.marks.pop().unwrap_or(0);
        self.rendered.truncate(mark);
    }

    pub(super) fn text(&mut self, text: &str) {
        for &b in text.as_bytes() {
            match b {
                b'&' => self.out.put(b"&amp;"),
                b'<' => self.out.put(b"&lt;"),
                b'>' => self.out.put(b"&gt;"),
                b'\r' => self.out.put(b"&#xD;"),
                _ => self.out.put(&[b]),
            }
        }
    }

    pub(super) fn processing_instruction(&mut self, target: &str, content: &str) {
        self.out.put(b"<?");
        self.out.put(target.as_bytes());
        let content = content.trim_start();
        if !content.is_empty() {
            self.out.put(b" ");
            self.out.put(content.as_bytes());
        }
        self.out.put(b"?>");
    }
}

fn escape_attr(out: &mut impl Output, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'&' => out.put(b"&amp;"),
            b'<' => out.put(b"&lt;"),
            b'"' => out.put(b"&quot;"),
            b'\t' => out.put(b"&#x9;"),
            b'\n' => out.put(b"&#xA;"),
            b'\r' => out.put(b"&#xD;"),
            _ => out.put(&[b]),
        }
    }
}

pub(super) fn unbound(prefix: &str, element: &str) -> Error {
    Error::Xml {
        position: 0,
        reason: format!("namespace prefix \"{prefix}\" of <{element}> is not declared"),
    }
}

/// An element's names, attributes (normalized values) and namespace declarations.
pub(super) fn read_start(start: &BytesStart<'_>) -> Result<(Element, Vec<(String, String)>)> {
    let qname: String = start.name().as_ref().to_owned();
    let (prefix, local) = split_qname(&qname);
    let mut element = Element {
        prefix: prefix.to_owned(),
        local: local.to_owned(),
        qname: qname.clone(),
        attrs: Vec::new(),
    };
    let mut declarations = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xml_error(e.to_string()))?;
        let key: &str = attr.key.as_ref();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|_| Error::UndefinedEntity {
                name: "(in attribute)".into(),
                at: Location::element(format!("{qname}@{key}")),
            })?
            .into_owned();
        if key == "xmlns" {
            declarations.push((String::new(), value));
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            declarations.push((prefix.to_owned(), value));
        } else {
            let (prefix, local) = split_qname(key);
            let attr = (key.to_owned(), prefix.to_owned(), local.to_owned(), value);
            element.attrs.push(attr);
        }
    }
    Ok((element, declarations))
}

fn split_qname(qname: &str) -> (&str, &str) {
    qname.split_once(':').unwrap_or(("", qname))
}

fn xml_error(reason: String) -> Error {
    Error::Xml {
        position: 0,
        reason,
    }
}
