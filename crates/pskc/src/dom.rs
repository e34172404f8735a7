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

/// One element: local name, attributes by local name, children, text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
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
        if depth > self.limits.max_depth {
            return Err(Error::TooLarge {
                what: "element nesting".into(),
                limit: self.limits.max_depth,
            });
        }
        let mut element = Element {
            name: local_name(start),
            ..Element::default()
        };
        element.attrs = attributes(start)?;
        let used = element.name.len()
            + element
                .attrs
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        spend(budget, used, self.limits.max_section)?;
        if empty {
            return Ok(element);
        }
        if element.name == "Extensions" {
            element.raw = Some(self.capture_raw(start, budget)?);
            return Ok(element);
        }
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(self.buf) {
                Ok(event) => event.into_owned(),
                Err(err) => return Err(self.xml_error(err)),
            };
            match event {
                Event::Start(child) => {
                    let child = self.read_tree(&child, false, depth + 1, budget)?;
                    element.children.push(child);
                }
                Event::Empty(child) => {
                    let child = self.read_tree(&child, true, depth + 1, budget)?;
                    element.children.push(child);
                }
                Event::Text(text) => self.push_text(&mut element, &text.xml10_content(), budget)?,
                Event::CData(text) => {
                    self.push_text(&mut element, &text.xml10_content(), budget)?
                }
                Event::GeneralRef(r) => {
                    let resolved = resolve_ref(&r, &element.name)?;
                    self.push_text(&mut element, &resolved, budget)?;
                }
                Event::End(_) => return Ok(element),
                Event::Eof => {
                    return Err(self.xml_error(format!("unexpected end inside <{}>", element.name)));
                }
                Event::DocType(_) => return Err(Error::DtdForbidden),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            }
        }
    }

    fn push_text(&self, element: &mut Element, text: &str, budget: &mut usize) -> Result<()> {
        if element.text.len() + text.len() > self.limits.max_text {
            let what = format!("text of <{}>", element.name);
            return Err(Error::TooLarge {
                what,
                limit: self.limits.max_text,
            });
        }
        spend(budget, text.len(), self.limits.max_section)?;
        element.text.push_str(text);
        Ok(())
    }

    /// Serialises the content of an `<Extensions>` element verbatim, declaring on each
    /// top-level child the namespaces in scope so the fragment stands on its own.
    fn capture_raw(&mut self, start: &BytesStart<'_>, budget: &mut usize) -> Result<String> {
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
        let end_name = start.name().as_ref().to_owned();
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
pub(crate) fn local_name(start: &BytesStart<'_>) -> String {
    start.local_name().as_ref().to_owned()
}

/// Attributes by local name (keeping `xml:` prefixed ones whole), without namespace
/// declarations, unescaped.
pub(crate) fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>> {
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
            key.to_owned()
        } else {
            attr.key.local_name().as_ref().to_owned()
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
