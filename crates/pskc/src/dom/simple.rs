//! A direct tokenizer for the common shape of one `KeyPackage` section: elements, quoted
//! attributes and plain text, with no entity or character references, comments, CDATA,
//! processing instructions, namespace declarations or `<Extensions>`. It builds the same
//! [`Doc`] quick-xml's events would, several times faster (no event copies, one UTF-8 check).
//!
//! Anything outside that shape, and anything malformed or over a limit, answers `false`: the
//! caller then reads the section with quick-xml, which decides and words the error.

use super::{Doc, Limits, NONE, Name, check_size, intern, push_text};

/// Reads `text` (exactly one element, as cut by the splitter) into `doc`; `false` when the
/// section needs the full XML reader.
pub(crate) fn read_section(text: &str, doc: &mut Doc, limits: &Limits) -> bool {
    doc.clear();
    // References and carriage returns need quick-xml.
    let special = memchr::memchr2(b'&', b'\r', text.as_bytes()).is_some();
    !special && read_elements(text, doc, limits).is_some()
}

/// The next `<` at or after `at`: usually right there (indentation was skipped), else
/// after a text, which may be long (base64).
fn next_lt(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'<' => Some(at),
        _ => memchr::memchr(b'<', &bytes[at..]).map(|i| at + i),
    }
}

/// The first `needle` in a short run (a tag): a plain loop beats a vector search's set-up.
fn position(bytes: &[u8], needle: u8) -> Option<usize> {
    bytes.iter().position(|&b| b == needle)
}

/// Deepest nesting the tokenizer handles itself (PSKC needs about 8).
const MAX_OPEN: usize = 32;

/// The tokenizer proper; `None` as soon as the section leaves the simple shape.
fn read_elements(text: &str, doc: &mut Doc, limits: &Limits) -> Option<()> {
    let bytes = text.as_bytes();
    // Open elements: node id and qualified name (for the end-tag check).
    let mut open: [(u32, &str); MAX_OPEN] = [(NONE, ""); MAX_OPEN];
    let mut depth = 0;
    let mut at = 0;
    loop {
        let lt = next_lt(bytes, at)?;
        if depth > 0 && lt > at {
            push_text(doc, open[depth - 1].0, &text[at..lt], limits).ok()?;
        }
        let end = match *bytes.get(lt + 1)? {
            b'!' | b'?' => return None,
            b'/' => {
                let gt = lt + position(&bytes[lt..], b'>')?;
                let name = text[lt + 2..gt].trim_ascii_end();
                depth = depth.checked_sub(1)?;
                if name != open[depth].1 {
                    return None;
                }
                gt + 1
            }
            _ => {
                if depth + 1 > limits.max_depth.min(MAX_OPEN) {
                    return None;
                }
                let parent = if depth > 0 { open[depth - 1].0 } else { NONE };
                let (qname, id, empty, end) = open_node(text, lt, doc, parent, limits)?;
                if !empty {
                    open[depth] = (id, qname);
                    depth += 1;
                }
                end
            }
        };
        if depth == 0 {
            return text[end..].trim_ascii().is_empty().then_some(());
        }
        at = skip_indentation(doc, open[depth - 1].0, bytes, end);
    }
}

/// Where text after a tag at `end` starts: past whitespace that only indents the next tag
/// (text the reader would drop anyway, as the node `id` has no text yet).
fn skip_indentation(doc: &Doc, id: u32, bytes: &[u8], end: usize) -> usize {
    let (start, stop) = doc.nodes[id as usize].text;
    let rest = &bytes[end..];
    let blank = blank_len(rest);
    if start == stop && rest.get(blank) == Some(&b'<') {
        end + blank
    } else {
        end
    }
}

/// Length of the whitespace at the start of `bytes`: indentation is mostly spaces, taken
/// eight at a time.
fn blank_len(bytes: &[u8]) -> usize {
    let mut n = 0;
    loop {
        if bytes.get(n..n + 8) == Some(b"        ") {
            n += 8;
        } else if bytes.get(n).is_some_and(u8::is_ascii_whitespace) {
            n += 1;
        } else {
            return n;
        }
    }
}

/// Reads the start tag at `lt` into a new node under `parent`: its qualified name, node id,
/// whether it is self-closing, and the offset after it. Attributes must be `name="value"`
/// pairs separated by whitespace; anything else (single quotes, `<` or a tab or newline in
/// a value, namespace declarations, `<Extensions>`) is left to quick-xml.
fn open_node<'t>(
    text: &'t str,
    lt: usize,
    doc: &mut Doc,
    parent: u32,
    limits: &Limits,
) -> Option<(&'t str, u32, bool, usize)> {
    let bytes = text.as_bytes();
    let name_len = bytes[lt + 1..]
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
    let qname = &text[lt + 1..lt + 1 + name_len];
    let odd = |b: &u8| matches!(b, b'"' | b'\'' | b'=' | b'<');
    if qname.is_empty() || qname.as_bytes().iter().any(odd) {
        return None;
    }
    let first = doc.attrs.len() as u32;
    let mut at = lt + 1 + name_len;
    let (empty, end) = loop {
        let spaced = bytes.get(at).is_some_and(u8::is_ascii_whitespace);
        at += bytes[at..].iter().position(|b| !b.is_ascii_whitespace())?;
        match bytes[at] {
            b'>' => break (false, at + 1),
            b'/' if bytes.get(at + 1) == Some(&b'>') => break (true, at + 2),
            _ if spaced => at = attribute(text, at, doc)?,
            _ => return None,
        }
    };
    let attrs = &doc.attrs[first as usize..];
    let duplicate = attrs
        .iter()
        .enumerate()
        .any(|(i, (a, _))| attrs[..i].iter().any(|(b, _)| a == b));
    let local = super::super::split::local_part(qname);
    if duplicate || local == "Extensions" {
        return None;
    }
    let id = doc.push_node(parent, intern(local), (first, doc.attrs.len() as u32));
    check_size(doc, limits).ok()?;
    Some((qname, id, empty, end))
}

/// Reads the attribute `name="value"` at `at` into `doc`; the offset after it.
fn attribute(text: &str, at: usize, doc: &mut Doc) -> Option<usize> {
    let bytes = text.as_bytes();
    let eq = at + position(&bytes[at..], b'=')?;
    let key = text[at..eq].trim_ascii_end();
    let odd = |b: &u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'/');
    if key.as_bytes().iter().any(odd) || key.starts_with("xmlns") {
        return None;
    }
    let open = eq
        + 1
        + bytes[eq + 1..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())?;
    if bytes[open] != b'"' {
        return None;
    }
    let close = open + 1 + position(&bytes[open + 1..], b'"')?;
    let value = &text[open + 1..close];
    // XML attribute-value normalisation would change tabs and newlines; `<` is an error.
    if value.bytes().any(|b| matches!(b, b'<' | b'\t' | b'\n')) {
        return None;
    }
    let name: Name = match key.split_once(':') {
        _ if key.starts_with("xml:") => Name::Owned(key.to_owned()),
        Some((_, local)) => intern(local),
        None => intern(key),
    };
    let begin = doc.text.len() as u32;
    doc.text.push_str(value);
    doc.attrs.push((name, (begin, doc.text.len() as u32)));
    Some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_sections_are_left_to_quick_xml() {
        let limits = Limits::default();
        let mut doc = Doc::default();
        assert!(read_section(
            "<KeyPackage><Key Id=\"1\">x</Key></KeyPackage>",
            &mut doc,
            &limits
        ));
        assert_eq!(
            doc.root().child("Key").and_then(|k| k.attr("Id")),
            Some("1")
        );
        for text in [
            "<KeyPackage><Key Id='1'/></KeyPackage>",
            "<KeyPackage><!-- c --></KeyPackage>",
            "<KeyPackage>&amp;</KeyPackage>",
            "<KeyPackage><Key></Yek></KeyPackage>",
            "<KeyPackage xmlns=\"urn:x\"/>",
            "<KeyPackage><Extensions/></KeyPackage>",
            "<KeyPackage a=\"1\" a=\"2\"/>",
            "<KeyPackage a=\"x\ty\"/>",
        ] {
            assert!(!read_section(text, &mut doc, &limits), "{text}");
        }
    }
}
