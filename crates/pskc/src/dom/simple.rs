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

/// Byte classes, one table look-up a byte: whitespace, `>` and `/` end a name (`NAME_END`);
/// quotes, `=` and `<` cannot be in a simple name (`ODD`); `"` ends a value and `<`, tab and
/// newline are not simple in one (`VALUE_STOP`); `:` splits a prefix off (`COLON`).
const NAME_END: u8 = 1;
const ODD: u8 = 2;
const VALUE_STOP: u8 = 4;
const COLON: u8 = 8;
const CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    table[b' ' as usize] = NAME_END;
    table[b'\t' as usize] = NAME_END | VALUE_STOP;
    table[b'\n' as usize] = NAME_END | VALUE_STOP;
    table[b'\r' as usize] = NAME_END;
    table[b'>' as usize] = NAME_END;
    table[b'/' as usize] = NAME_END;
    table[b'"' as usize] = ODD | VALUE_STOP;
    table[b'\'' as usize] = ODD;
    table[b'=' as usize] = ODD;
    table[b'<' as usize] = ODD | VALUE_STOP;
    table[b':' as usize] = COLON;
    table
}

/// The end of the name starting at `from` and the offset after its first `:` (`from` when
/// unprefixed); `None` if a byte that cannot be in a simple name stops it.
fn scan_name(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut local = from;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        let class = CLASS[b as usize];
        if class & COLON != 0 {
            // The prefix ends at the first colon, as quick-xml reads it.
            if local == from {
                local = i + 1;
            }
        } else if class & (NAME_END | ODD) != 0 {
            return Some((i, local));
        }
    }
    None
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
                depth = depth.checked_sub(1)?;
                let name = open[depth].1.as_bytes();
                let after = lt + 2 + name.len();
                if bytes.get(lt + 2..after) != Some(name) {
                    return None;
                }
                let gt = after + blank_len(&bytes[after..]);
                (bytes.get(gt) == Some(&b'>')).then_some(gt + 1)?
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
    let (name_end, local) = scan_name(bytes, lt + 1)?;
    if CLASS[bytes[name_end] as usize] & ODD != 0 || name_end == lt + 1 {
        return None;
    }
    let qname = &text[lt + 1..name_end];
    let local = &text[local..name_end];
    let first = doc.attrs.len() as u32;
    let mut at = name_end;
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
    let (key_end, local) = scan_name(bytes, at)?;
    let eq = key_end + blank_len(&bytes[key_end..]);
    if bytes.get(eq) != Some(&b'=') || key_end == at {
        return None;
    }
    let key = &text[at..key_end];
    if key.starts_with("xmlns") {
        return None;
    }
    let open = eq + 1 + blank_len(&bytes[eq + 1..]);
    if bytes.get(open) != Some(&b'"') {
        return None;
    }
    // `"` closes the value; XML attribute-value normalisation would change tabs and
    // newlines, and `<` is an error: those go to quick-xml.
    let close = open
        + 1
        + bytes[open + 1..]
            .iter()
            .position(|&b| CLASS[b as usize] & VALUE_STOP != 0)?;
    if bytes[close] != b'"' {
        return None;
    }
    let name: Name = if key.starts_with("xml:") {
        Name::Owned(key.to_owned())
    } else {
        intern(&text[local..key_end])
    };
    let begin = doc.text.len() as u32;
    doc.text.push_str(&text[open + 1..close]);
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
            "<KeyPackage a=\"1\"b=\"2\"/>",
            "<KeyPackage a=1/>",
            "<KeyPackage a=\"x<y\"/>",
            "<KeyPackage a/>",
            "<KeyPackage a=\"1",
            "<KeyPackage =\"1\"/>",
            "<KeyPackage/ >",
            "<KeyPackage><Key></Key x></KeyPackage>",
            "<KeyPackage><Key></Ke></KeyPackage>",
            "<KeyPackage></KeyPackage>x",
        ] {
            assert!(!read_section(text, &mut doc, &limits), "{text}");
        }
    }

    #[test]
    fn prefixes_spacing_and_language_are_read_like_quick_xml() {
        let limits = Limits::default();
        let mut doc = Doc::default();
        let text = "<p:KeyPackage><p:Key Id = \"1\"  p:Algorithm=\"a:b\">\n   \
                    <FriendlyName xml:lang=\"de\"> x </FriendlyName ></p:Key ></p:KeyPackage>";
        assert!(read_section(text, &mut doc, &limits));
        let key = doc.root().child("Key").unwrap();
        assert_eq!(key.attr("Id"), Some("1"));
        assert_eq!(key.attr("Algorithm"), Some("a:b"));
        let name = key.child("FriendlyName").unwrap();
        assert_eq!(
            (name.text(), name.attr("xml:lang")),
            (Some("x"), Some("de"))
        );
        assert!(read_section("<a:b:KeyPackage/>", &mut doc, &limits));
        assert_eq!(doc.root().name(), "b:KeyPackage");
    }
}
