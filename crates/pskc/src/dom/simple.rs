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
    // References and carriage returns need quick-xml (`contains` on bytes runs memchr).
    let bytes = text.as_bytes();
    let special = bytes.contains(&b'&') || bytes.contains(&b'\r');
    !special && read_elements(text, doc, limits).is_some()
}

/// Position of the next `<` at or after `from`.
fn next_lt(bytes: &[u8], from: usize) -> Option<usize> {
    find_byte(&bytes[from..], b'<').map(|i| from + i)
}

/// Position of the first `needle` in `haystack`: 16 bytes at a time with a comparison the
/// compiler turns into SIMD, then the exact place within the block.
pub(crate) fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    let mut blocks = haystack.chunks_exact(16);
    let mut offset = 0;
    for block in blocks.by_ref() {
        if block.iter().fold(false, |found, &b| found | (b == needle)) {
            return block.iter().position(|&b| b == needle).map(|i| offset + i);
        }
        offset += 16;
    }
    let rest = blocks.remainder();
    rest.iter().position(|&b| b == needle).map(|i| offset + i)
}

/// The tokenizer proper; `None` as soon as the section leaves the simple shape.
fn read_elements(text: &str, doc: &mut Doc, limits: &Limits) -> Option<()> {
    let bytes = text.as_bytes();
    // Open elements: node id and qualified name (for the end-tag check).
    let mut open: Vec<(u32, &str)> = Vec::with_capacity(16);
    let mut at = 0;
    loop {
        let lt = next_lt(bytes, at)?;
        if let Some(&(id, _)) = open.last() {
            push_text(doc, id, &text[at..lt], limits).ok()?;
        }
        let next = *bytes.get(lt + 1)?;
        if next == b'!' || next == b'?' {
            return None;
        }
        if next == b'/' {
            let gt = lt + find_byte(&bytes[lt..], b'>')?;
            let name = text[lt + 2..gt].trim_ascii_end();
            let (_, expected) = open.pop()?;
            if name != expected {
                return None;
            }
            at = gt + 1;
            if open.is_empty() {
                return text[at..].trim_ascii().is_empty().then_some(());
            }
            continue;
        }
        let (qname, attrs_text, empty, end) = start_tag(text, lt)?;
        if open.len() + 1 > limits.max_depth {
            return None;
        }
        let parent = open.last().map_or(NONE, |&(id, _)| id);
        let id = open_node(doc, parent, qname, attrs_text, limits)?;
        if !empty {
            open.push((id, qname));
        } else if open.is_empty() {
            return text[end..].trim_ascii().is_empty().then_some(());
        }
        at = end;
    }
}

/// Splits the start tag at `lt`: qualified name, attribute text, self-closing, end offset.
fn start_tag(text: &str, lt: usize) -> Option<(&str, &str, bool, usize)> {
    let bytes = text.as_bytes();
    // The first `>` ends the tag unless it sits in a quoted value; tags with a single quote
    // or an odd number of double quotes before it are left to quick-xml.
    let gt = lt + find_byte(&bytes[lt..], b'>')?;
    let tag = &bytes[lt + 1..gt];
    let (lts, doubles, singles) = tag.iter().fold((0u32, 0u32, 0u32), |(l, d, s), &b| {
        (
            l + u32::from(b == b'<'),
            d + u32::from(b == b'"'),
            s + u32::from(b == b'\''),
        )
    });
    if lts != 0 || singles != 0 || doubles % 2 != 0 {
        return None;
    }
    let empty = bytes[gt - 1] == b'/' && gt - 1 > lt;
    let inner = &text[lt + 1..if empty { gt - 1 } else { gt }];
    let name_end = inner
        .bytes()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(inner.len());
    let qname = &inner[..name_end];
    let odd = |b: u8| matches!(b, b'"' | b'\'' | b'=' | b'/');
    if qname.is_empty() || qname.bytes().any(odd) {
        return None;
    }
    Some((qname, &inner[name_end..], empty, gt + 1))
}

/// Adds the element and its attributes (`name="value"` pairs) to `doc`.
fn open_node(doc: &mut Doc, parent: u32, qname: &str, attrs: &str, limits: &Limits) -> Option<u32> {
    let first = doc.attrs.len() as u32;
    let mut rest = attrs.trim_ascii_start();
    while !rest.is_empty() {
        let eq = rest.bytes().position(|b| b == b'=')?;
        let key = rest[..eq].trim_ascii_end();
        let after = rest[eq + 1..].trim_ascii_start();
        // Only double quotes reach here (see `start_tag`).
        if !after.starts_with('"') {
            return None;
        }
        let close = after[1..].bytes().position(|b| b == b'"')? + 1;
        let value = &after[1..close];
        // XML attribute-value normalisation would change these; leave them to quick-xml.
        let space = |b: u8| b.is_ascii_whitespace();
        let tab_or_newline = |b: u8| b == b'\t' || b == b'\n';
        if key.is_empty() || key.bytes().any(space) || value.bytes().any(tab_or_newline) {
            return None;
        }
        if key.starts_with("xmlns") {
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
        rest = after[close + 1..].trim_ascii_start();
        if !rest.is_empty() && !after.as_bytes().get(close + 1).is_some_and(|b| space(*b)) {
            return None;
        }
    }
    let attrs = &doc.attrs[first as usize..];
    let duplicate = attrs
        .iter()
        .enumerate()
        .any(|(i, (a, _))| attrs[..i].iter().any(|(b, _)| a == b));
    if duplicate {
        return None;
    }
    let local = super::super::split::local_part(qname);
    if local == "Extensions" {
        return None;
    }
    let id = doc.push_node(parent, intern(local), (first, doc.attrs.len() as u32));
    check_size(doc, limits).ok()?;
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_position_everywhere() {
        for len in [0, 1, 15, 16, 17, 40] {
            for at in 0..len {
                let mut hay = vec![b'a'; len];
                hay[at] = b'<';
                if at + 3 < len {
                    hay[at + 3] = b'<';
                }
                assert_eq!(find_byte(&hay, b'<'), Some(at), "len {len}, at {at}");
            }
            assert_eq!(find_byte(&vec![b'a'; len], b'<'), None);
        }
    }

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
