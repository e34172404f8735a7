//! Cutting the `KeyPackage`s of a stream into batches of raw sections, so that they can be
//! read on two threads while the document still streams.
//!
//! After the header, [`crate::Reader`] takes a block of input, finds the complete
//! `<KeyPackage>…</KeyPackage>` sections at its start (skipping comments, CDATA and processing
//! instructions, whose text could look like tags) and pushes the rest back into the input.
//! Anything that is not a package — another container child, the end tag, a DTD, bytes that
//! are not UTF-8, a package larger than a block — stops the batch, and the reader's event
//! path handles it, with its checks and error messages.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::mpsc::{Receiver, Sender, channel};

use memchr::memmem;

/// Input with bytes pushed back in front of it.
pub(crate) struct Rewind<R> {
    front: Vec<u8>,
    at: usize,
    inner: R,
}

impl<R: BufRead> Rewind<R> {
    pub fn new(inner: R) -> Self {
        Rewind {
            front: Vec::new(),
            at: 0,
            inner,
        }
    }

    /// Fills `out` with up to `want` bytes of input, overwriting what it held (its old bytes
    /// are space that need not be zeroed again); stops early at the end of input or on an
    /// error (which the event path meets again and reports). Reads go straight into `out`,
    /// past the inner reader's buffer when that is empty.
    fn take(&mut self, out: &mut Vec<u8>, want: usize) {
        out.resize(want, 0);
        let front = &self.front[self.at.min(self.front.len())..];
        let mut filled = front.len().min(want);
        out[..filled].copy_from_slice(&front[..filled]);
        self.consume(filled);
        while filled < want {
            match self.inner.read(&mut out[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out.truncate(filled);
    }

    /// Puts `text` back in front of the unread input.
    pub fn push_back_str(&mut self, text: &str) {
        self.push_back(text.as_bytes());
    }

    /// Puts `bytes` back in front of the unread input.
    fn push_back(&mut self, bytes: &[u8]) {
        let mut front = Vec::with_capacity(bytes.len() + self.front.len() - self.at);
        front.extend_from_slice(bytes);
        front.extend_from_slice(&self.front[self.at..]);
        self.front = front;
        self.at = 0;
    }
}

impl<R: BufRead> Read for Rewind<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Rewind<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.at < self.front.len() {
            return Ok(&self.front[self.at..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if self.at < self.front.len() {
            self.at = (self.at + amount).min(self.front.len());
            if self.at == self.front.len() {
                self.front = Vec::new();
                self.at = 0;
            }
        } else {
            self.inner.consume(amount);
        }
    }
}

/// Complete package sections: `text[start..end]` each, in document order.
pub(crate) struct Batch {
    pub text: String,
    pub spans: Vec<(usize, usize)>,
    /// Number (from 1) of the document's package that the first span holds.
    pub first: usize,
}

impl Batch {
    /// A batch without packages that keeps `text`'s allocation for the next one.
    pub fn empty(mut text: String) -> Self {
        text.clear();
        Batch {
            text,
            spans: Vec::new(),
            first: 0,
        }
    }
}

/// Input taken per batch (a few hundred typical packages).
pub(crate) const BLOCK: usize = 256 * 1024;

/// Cuts the next batch from about `size` bytes of `input`, reusing `spare`'s allocation; an
/// empty batch means the event path must go on.
pub(crate) fn next_batch<R: BufRead>(
    input: &mut Rewind<R>,
    size: usize,
    max_section: usize,
    spare: String,
) -> Batch {
    let mut block = spare.into_bytes();
    input.take(&mut block, size);
    let mut spans = Vec::new();
    let mut ends = Ends::default();
    let mut at = 0;
    loop {
        let start = at + (block.len() - at - block[at..].trim_ascii_start().len());
        match ends.package_end(&block, start) {
            Some(end) if end - start <= max_section => {
                spans.push((start, end));
                at = end;
            }
            _ => break,
        }
    }
    input.push_back(&block[at..]);
    block.truncate(at);
    // One UTF-8 check for the whole batch; invalid bytes end it before their package.
    let text = match String::from_utf8(block) {
        Ok(text) => text,
        Err(err) => {
            let valid = err.utf8_error().valid_up_to();
            let mut bytes = err.into_bytes();
            spans.retain(|&(_, end)| end <= valid);
            let at = spans.last().map_or(0, |&(_, end)| end);
            input.push_back(&bytes[at..]);
            bytes.truncate(at);
            String::from_utf8(bytes).unwrap_or_default()
        }
    };
    Batch {
        text,
        spans,
        first: 0,
    }
}

/// The qualified name of a `<KeyPackage` or `<Device` (any prefix) start tag at the start of
/// `text`.
fn package_name(text: &[u8]) -> Option<&[u8]> {
    let rest = text.strip_prefix(b"<")?;
    let name_end = rest
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
    let qname = &rest[..name_end];
    let local = match qname.iter().position(|&b| b == b':') {
        Some(colon) => &qname[colon + 1..],
        None => qname,
    };
    (local == b"KeyPackage" || local == b"Device").then_some(qname)
}

/// Searchers for the end tag and a nested start tag of the package element, kept while the
/// element's qualified name stays the same (it does for a whole file, normally).
#[derive(Default)]
struct Ends {
    finders: Option<Finders>,
}

struct Finders {
    qname: Vec<u8>,
    end_tag: memmem::Finder<'static>,
    start_tag: memmem::Finder<'static>,
}

impl Ends {
    /// The end of the package starting at `start`: the first `</name>` after it, found with
    /// a substring search; when the section holds markup whose text could fool that
    /// (comments, CDATA, processing instructions, a nested start of the same name), it is
    /// scanned tag by tag instead.
    fn package_end(&mut self, bytes: &[u8], start: usize) -> Option<usize> {
        let qname = package_name(&bytes[start..])?;
        let gt = tag_end(bytes, start)?;
        if bytes[gt - 1] == b'/' {
            return Some(gt + 1);
        }
        let finders = self.finders(qname);
        let body = &bytes[gt + 1..];
        let close = finders.end_tag.find(body)?;
        let inner = &body[..close];
        let after = body[close + finders.end_tag.needle().len()..].trim_ascii_start();
        let plain = after.starts_with(b">")
            && !has_markup_declaration(inner)
            && finders.start_tag.find(inner).is_none();
        if !plain {
            return element_end(bytes, start);
        }
        Some(bytes.len() - after.len() + 1)
    }

    fn finders(&mut self, qname: &[u8]) -> &Finders {
        let current = self.finders.as_ref().is_some_and(|f| f.qname == qname);
        if !current {
            self.finders = None;
        }
        self.finders.get_or_insert_with(|| Finders {
            qname: qname.to_vec(),
            end_tag: memmem::Finder::new(&[b"</", qname].concat()).into_owned(),
            start_tag: memmem::Finder::new(&[b"<", qname].concat()).into_owned(),
        })
    }
}

/// True when `text` holds `<!` or `<?` (comment, CDATA, declaration, processing instruction).
fn has_markup_declaration(text: &[u8]) -> bool {
    memchr::memchr2_iter(b'!', b'?', text).any(|i| i > 0 && text[i - 1] == b'<')
}

/// The end (exclusive) of the element starting at `start`, `None` when it is incomplete
/// in `bytes` or holds a DTD-like `<!` declaration.
fn element_end(bytes: &[u8], start: usize) -> Option<usize> {
    let find = |from: usize, needle: &[u8]| memmem::find(&bytes[from..], needle).map(|i| from + i);
    let mut depth = 0usize;
    let mut at = start;
    loop {
        let rest = &bytes[at..];
        at = match bytes.get(at + 1)? {
            b'/' => {
                depth = depth.checked_sub(1)?;
                find(at, b">")? + 1
            }
            b'!' if rest.starts_with(b"<!--") => find(at + 4, b"-->")? + 3,
            b'!' if rest.starts_with(b"<![CDATA[") => find(at + 9, b"]]>")? + 3,
            b'!' => return None,
            b'?' => find(at + 2, b"?>")? + 2,
            _ => {
                let gt = tag_end(bytes, at)?;
                if bytes[gt - 1] != b'/' {
                    depth += 1;
                }
                gt + 1
            }
        };
        if depth == 0 {
            return Some(at);
        }
        at += memchr::memchr(b'<', &bytes[at..])?;
    }
}

/// The `>` closing the start tag at `lt`, outside quoted attribute values.
fn tag_end(bytes: &[u8], lt: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(lt + 1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// A second thread reading batches with its own copy of the container state; each batch
/// comes back with its results, so that its buffer is used again.
pub(crate) struct Worker<T> {
    to: Sender<Batch>,
    from: Receiver<(VecDeque<T>, Batch)>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts the thread; `None` when threads are unavailable or pointless (one core).
    pub fn spawn<S>(mut state: S, read: fn(&mut S, &Batch) -> VecDeque<T>) -> Option<Self>
    where
        S: Send + 'static,
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        let (to, batches) = channel::<Batch>();
        let (results, from) = channel();
        std::thread::Builder::new()
            .name("pskc-reader".into())
            .spawn(move || {
                for batch in batches {
                    let read = read(&mut state, &batch);
                    if results.send((read, batch)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Worker { to, from })
    }

    /// Hands `batch` to the thread; gives it back if the thread is gone.
    pub fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.to.send(batch).map_err(|err| err.0)
    }

    /// Like [`Worker::receive`] if the results are there already, else `None`.
    pub fn try_receive(&self) -> Option<(VecDeque<T>, Batch)> {
        self.from.try_recv().ok()
    }

    /// The results of the batch sent last, and the batch; `None` if the thread died.
    pub fn receive(&self) -> Option<(VecDeque<T>, Batch)> {
        self.from.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(xml: &str) -> (Vec<&str>, String) {
        let mut input = Rewind::new(xml.as_bytes());
        let batch = next_batch(&mut input, BLOCK, 1 << 20, String::new());
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        let cut = batch.spans.iter().map(|&(s, e)| &xml[s..e]).collect();
        (cut, rest)
    }

    #[test]
    fn packages_are_cut_and_the_rest_is_pushed_back() {
        let xml = "\n <KeyPackage a='>'><Key/></KeyPackage><pskc:KeyPackage/>\
                   <Signature/></KeyContainer>";
        let (cut, rest) = spans(xml);
        assert_eq!(
            cut,
            [
                "<KeyPackage a='>'><Key/></KeyPackage>",
                "<pskc:KeyPackage/>"
            ]
        );
        assert_eq!(rest, "<Signature/></KeyContainer>");
    }

    #[test]
    fn tags_inside_comments_and_cdata_do_not_end_a_package() {
        let xml = "<KeyPackage><!-- </KeyPackage> --><a><![CDATA[</KeyPackage>]]></a>\
                   <?pi </KeyPackage>?></KeyPackage>";
        let (cut, rest) = spans(xml);
        assert_eq!(cut, [xml]);
        assert_eq!(rest, "");
    }

    #[test]
    fn incomplete_or_declaring_packages_go_back_whole() {
        for xml in [
            "<KeyPackage><Key>",
            "<KeyPackage><!DOCTYPE x></KeyPackage>",
            "<KeyPackageX/>",
            "text<KeyPackage/>",
        ] {
            let (cut, rest) = spans(xml);
            assert!(cut.is_empty(), "{xml}");
            assert_eq!(rest, xml);
        }
    }

    #[test]
    fn a_section_over_the_limit_is_left_to_the_event_path() {
        let xml = "<KeyPackage><Key Id='1'/></KeyPackage>";
        let mut input = Rewind::new(xml.as_bytes());
        assert!(
            next_batch(&mut input, BLOCK, 10, String::new())
                .spans
                .is_empty()
        );
    }
}
