//! XML signature verification (RFC 6030 §7; XML-DSig 1.0, W3C Canonical XML 1.0 and
//! Exclusive XML Canonicalization 1.0): the enveloped `ds:Signature` of a `KeyContainer` is
//! checked against a certificate the caller trusts.
//!
//! The document streams once. It is canonicalized while it is read, the signature element
//! left out (the enveloped-signature transform), both inclusively and exclusively and hashed
//! with SHA-1 and SHA-256 at once, since the `SignedInfo` that names the transform and digest
//! comes last. `SignedInfo` itself is canonicalized both ways too. Then, as XML-DSig §3.2
//! orders it: the reference digest is compared, and the `SignatureValue` (RSA PKCS #1 v1.5
//! with SHA-1 or SHA-256) is verified over the canonical `SignedInfo` with the trusted key.
//!
//! Supported: one `Reference` to the whole document (`URI` absent, `""` or `#` + the root's
//! `Id`); transforms enveloped-signature, optionally followed by Canonical XML 1.0 or
//! exclusive c14n (both without comments, no `InclusiveNamespaces` prefix list); digests
//! SHA-1 and SHA-256. Inherited `xml:` attributes of inclusive c14n for `SignedInfo` are not
//! added (PSKC files have none there). The key is the one given: no certificate chain is
//! built and `ds:KeyInfo` is not trusted.

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use sha1::Digest;
use subtle::ConstantTimeEq;

use crate::algorithm::NS_DS;
use crate::dom::{Capped, Limits};
use crate::encryption::RsaPublicKey;
use crate::error::{Error, Location, Result};
use crate::values;
use c14n::{Canon, Element, Mode, Output, Scope, read_start, unbound};

mod c14n;

const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// DER `DigestInfo` headers that precede the hash in a PKCS #1 v1.5 signature (RFC 8017
/// §9.2, note 1).
const SHA1_DIGEST_INFO: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// What a verified signature used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// `SignatureMethod@Algorithm`.
    pub signature_method: String,
    /// `DigestMethod@Algorithm` of the reference.
    pub digest_method: String,
    /// The canonicalization of the document: exclusive (`true`) or Canonical XML 1.0.
    pub exclusive: bool,
}

/// Verifies the enveloped XML signature of the PSKC document `input` with `trusted` (the
/// signer's certificate or public key). DTDs are refused; `limits.max_text` caps one event.
pub fn verify_signature<R: BufRead>(
    input: R,
    trusted: &RsaPublicKey,
    limits: &Limits,
) -> Result<VerifiedSignature> {
    let mut walk = Walk::default();
    let mut reader = quick_xml::Reader::from_reader(Capped::new(input, limits.max_text));
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        reader.get_mut().refill();
        let event = reader.read_event_into(&mut buf).map_err(|err| Error::Xml {
            position: reader.error_position(),
            reason: err.to_string(),
        })?;
        if !walk.event(event)? {
            break;
        }
    }
    walk.finish(trusted)
}

/// The document's canonical form, hashed both ways it may be asked for, with the processing
/// instructions outside the root (`URI=""`) and without them (`URI="#id"`).
#[derive(Default)]
struct Digests {
    whole: Hashes,
    element: Hashes,
    /// The bytes being written are outside the root element.
    outside: bool,
}

#[derive(Default)]
struct Hashes {
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
}

impl Hashes {
    fn update(&mut self, bytes: &[u8]) {
        self.sha1.update(bytes);
        self.sha256.update(bytes);
    }
}

impl Output for Digests {
    fn put(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        if !self.outside {
            self.element.update(bytes);
        }
    }
}

/// The parts of `ds:Signature` that the verification needs.
#[derive(Default)]
struct Signature {
    canonicalization: Option<String>,
    signature_method: Option<String>,
    references: usize,
    reference_uri: Option<String>,
    transforms: Vec<String>,
    digest_method: Option<String>,
    digest_value: String,
    signature_value: String,
    /// An `InclusiveNamespaces PrefixList` parameter was given.
    prefix_list: bool,
}

/// State of the single pass over the document.
#[derive(Default)]
struct Walk {
    scope: Scope,
    depth: usize,
    root_done: bool,
    root_id: Option<String>,
    /// Open element names, for end tags (the reader expands empty elements).
    names: Vec<(String, String)>,
    document: Option<[Canon<Digests>; 2]>,
    /// Depth of the `ds:Signature` child of the root, while it is open; `seen` after.
    signature_depth: Option<usize>,
    signature_seen: bool,
    signed_info_depth: Option<usize>,
    signed_info: Option<[Canon<Vec<u8>>; 2]>,
    signed_info_done: Option<[Vec<u8>; 2]>,
    signature: Signature,
    /// Which `Signature` child's text is being collected.
    capture: Option<&'static str>,
}

impl Walk {
    fn documents(&mut self) -> &mut [Canon<Digests>; 2] {
        self.document.get_or_insert_with(|| {
            [
                Canon::new(Mode::Inclusive, Digests::default()),
                Canon::new(Mode::Exclusive, Digests::default()),
            ]
        })
    }

    /// Handles one event; `false` at the end of input.
    fn event(&mut self, event: Event<'_>) -> Result<bool> {
        match event {
            Event::Start(start) => self.start(&start)?,
            Event::End(_) => self.end(),
            Event::Text(text) => self.text(&text.xml10_content()),
            Event::CData(text) => self.text(&text.xml10_content()),
            Event::GeneralRef(reference) => {
                let text = resolve_reference(&reference)?;
                self.text(&text);
            }
            Event::PI(pi) => self.processing_instruction(pi.target(), pi.content()),
            Event::DocType(_) => return Err(Error::DtdForbidden),
            Event::Eof => return Ok(false),
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) => {}
        }
        Ok(true)
    }

    fn start(&mut self, start: &BytesStart<'_>) -> Result<()> {
        let (element, declarations) = read_start(start)?;
        self.depth += 1;
        self.scope.marks.push(self.scope.bindings.len());
        self.scope.bindings.extend(declarations);
        let ns = match self.scope.lookup(&element.prefix) {
            Some(uri) => uri.to_owned(),
            None if element.prefix.is_empty() => String::new(),
            None => return Err(unbound(&element.prefix, &element.qname)),
        };
        let in_dsig = ns == NS_DS;
        if self.depth == 1 {
            let id = element.attrs.iter().find(|a| a.2 == "Id" && a.1.is_empty());
            self.root_id = id.map(|a| a.3.clone());
        }
        if self.depth == 2 && in_dsig && element.local == "Signature" {
            if self.signature_seen {
                return Err(self.unsupported("signature", "a second ds:Signature".into()));
            }
            self.signature_depth = Some(self.depth);
            self.signature_seen = true;
        }
        if self.signature_depth.is_none() {
            let scope = &self.scope;
            let documents = self.document.get_or_insert_with(|| {
                [
                    Canon::new(Mode::Inclusive, Digests::default()),
                    Canon::new(Mode::Exclusive, Digests::default()),
                ]
            });
            for canon in documents {
                canon.start(&element, scope)?;
            }
        } else {
            self.signature_child(&element, in_dsig)?;
        }
        self.names.push((element.qname, element.local));
        Ok(())
    }

    /// An element inside `ds:Signature`: `SignedInfo` is canonicalized, algorithm URIs and
    /// values are collected.
    fn signature_child(&mut self, element: &Element, in_dsig: bool) -> Result<()> {
        if self.depth == 3 && in_dsig && element.local == "SignedInfo" {
            self.signed_info_depth = Some(self.depth);
            self.signed_info = Some([
                Canon::new(Mode::Inclusive, Vec::new()),
                Canon::new(Mode::Exclusive, Vec::new()),
            ]);
        }
        if let Some(canons) = &mut self.signed_info {
            for canon in canons {
                canon.start(element, &self.scope)?;
            }
        }
        if element.local == "InclusiveNamespaces" {
            // The exc-c14n PrefixList parameter (`ec:InclusiveNamespaces`): not supported.
            self.signature.prefix_list = true;
        }
        if !in_dsig {
            return Ok(());
        }
        let algorithm = || {
            let found = element.attrs.iter().find(|a| a.2 == "Algorithm");
            found.map(|a| a.3.clone())
        };
        let in_signed_info = self.signed_info.is_some();
        let signature = &mut self.signature;
        match element.local.as_str() {
            "CanonicalizationMethod" if in_signed_info => {
                signature.canonicalization = algorithm();
            }
            "SignatureMethod" if in_signed_info => signature.signature_method = algorithm(),
            "Reference" if in_signed_info => {
                signature.references += 1;
                let uri = element.attrs.iter().find(|a| a.2 == "URI");
                signature.reference_uri = uri.map(|a| a.3.clone());
            }
            "Transform" if in_signed_info => signature.transforms.extend(algorithm()),
            "DigestMethod" if in_signed_info => signature.digest_method = algorithm(),
            "DigestValue" if in_signed_info => self.capture = Some("DigestValue"),
            "SignatureValue" if self.depth == 3 => self.capture = Some("SignatureValue"),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self) {
        let (qname, _) = self.names.pop().unwrap_or_default();
        if let Some(canons) = &mut self.signed_info {
            for canon in canons.iter_mut() {
                canon.end(&qname);
            }
        }
        if self.signed_info_depth == Some(self.depth) {
            self.signed_info_depth = None;
            if let Some([inclusive, exclusive]) = self.signed_info.take() {
                self.signed_info_done = Some([inclusive.out, exclusive.out]);
            }
        }
        if self.signature_depth.is_none() {
            for canon in self.documents() {
                canon.end(&qname);
            }
        }
        if self.signature_depth == Some(self.depth) {
            self.signature_depth = None;
        }
        self.capture = None;
        let mark = self.scope.marks.pop().unwrap_or(0);
        self.scope.bindings.truncate(mark);
        self.depth = self.depth.saturating_sub(1);
        self.root_done |= self.depth == 0;
    }

    fn text(&mut self, text: &str) {
        if self.depth == 0 {
            return;
        }
        match self.capture {
            Some("DigestValue") => self.signature.digest_value.push_str(text),
            Some(_) => self.signature.signature_value.push_str(text),
            None => {}
        }
        if let Some(canons) = &mut self.signed_info {
            for canon in canons {
                canon.text(text);
            }
        }
        if self.signature_depth.is_none() {
            for canon in self.documents() {
                canon.text(text);
            }
        }
    }

    fn processing_instruction(&mut self, target: &str, content: &str) {
        let outside = self.depth == 0;
        let after_root = self.root_done;
        if let Some(canons) = &mut self.signed_info {
            for canon in canons {
                canon.processing_instruction(target, content);
            }
        }
        if self.signature_depth.is_none() {
            for canon in self.documents() {
                canon.out.outside = outside;
                // Outside the root, C14N separates a PI from the root by a line feed.
                if outside && after_root {
                    canon.out.put(b"\n");
                }
                canon.processing_instruction(target, content);
                if outside && !after_root {
                    canon.out.put(b"\n");
                }
                canon.out.outside = false;
            }
        }
    }

    fn unsupported(&self, kind: &'static str, uri: String) -> Error {
        Error::UnsupportedAlgorithm {
            kind,
            uri,
            at: Location::element("Signature/SignedInfo"),
        }
    }

    /// XML-DSig §3.2: reference validation, then signature validation.
    fn finish(mut self, trusted: &RsaPublicKey) -> Result<VerifiedSignature> {
        if !self.signature_seen {
            return Err(Error::SignatureMissing);
        }
        let signature = std::mem::take(&mut self.signature);
        let at = |name: &str| Location::element(format!("Signature/{name}"));
        let missing = |what: &str| Error::Missing {
            what: what.into(),
            at: at("SignedInfo"),
        };
        let [info_inclusive, info_exclusive] = self
            .signed_info_done
            .take()
            .ok_or_else(|| missing("SignedInfo"))?;

        // 1. The reference: the whole document, enveloped-signature then c14n.
        if signature.references != 1 {
            let count = format!("{} References (one is supported)", signature.references);
            return Err(self.unsupported("reference", count));
        }
        // `URI=""` (or none) is the document without comments; `#id` the root element only.
        let whole = match signature.reference_uri.as_deref() {
            None | Some("") => true,
            Some(uri) if uri.strip_prefix('#') == self.root_id.as_deref() => false,
            Some(uri) => return Err(self.unsupported("reference", format!("URI \"{uri}\""))),
        };
        let exclusive = match signature.transforms.as_slice() {
            [enveloped] if enveloped == ENVELOPED => false,
            [enveloped, c14n] if enveloped == ENVELOPED && c14n == C14N => false,
            [enveloped, c14n] if enveloped == ENVELOPED && c14n == EXC_C14N => true,
            other => return Err(self.unsupported("transform", other.join(" "))),
        };
        if signature.prefix_list {
            let what = "exc-c14n with an InclusiveNamespaces PrefixList".to_owned();
            return Err(self.unsupported("canonicalization", what));
        }
        let digest_method = signature
            .digest_method
            .ok_or_else(|| missing("DigestMethod"))?;
        let [inclusive, exclusive_digests] = self.document.take().ok_or(Error::Xml {
            position: 0,
            reason: "no root element".into(),
        })?;
        let digests = if exclusive {
            exclusive_digests.out
        } else {
            inclusive.out
        };
        let digests = if whole {
            digests.whole
        } else {
            digests.element
        };
        let digest = match digest_method.as_str() {
            SHA1 => digests.sha1.finalize().to_vec(),
            SHA256 => digests.sha256.finalize().to_vec(),
            other => return Err(self.unsupported("digest", other.to_owned())),
        };
        let expected = values::base64_decode(&signature.digest_value)
            .ok_or_else(|| Error::invalid(at("DigestValue"), "not valid base64"))?;
        if !bool::from(digest.ct_eq(&expected)) {
            return Err(Error::SignatureMismatch {
                reason: "the DigestValue does not match the document: the signed content \
                         was altered"
                    .into(),
            });
        }

        // 2. The signature over the canonical SignedInfo.
        let info = match signature.canonicalization.as_deref() {
            Some(EXC_C14N) => info_exclusive,
            Some(C14N) => info_inclusive,
            Some(other) => return Err(self.unsupported("canonicalization", other.to_owned())),
            None => return Err(missing("CanonicalizationMethod")),
        };
        let method = signature
            .signature_method
            .ok_or_else(|| missing("SignatureMethod"))?;
        let digest_info = match method.as_str() {
            RSA_SHA1 => [&SHA1_DIGEST_INFO[..], &sha1::Sha1::digest(&info)].concat(),
            RSA_SHA256 => [&SHA256_DIGEST_INFO[..], &sha2::Sha256::digest(&info)].concat(),
            other => return Err(self.unsupported("signature", other.to_owned())),
        };
        let value = values::base64_decode(&signature.signature_value)
            .ok_or_else(|| Error::invalid(at("SignatureValue"), "not valid base64"))?;
        if !trusted.verify_pkcs1v15(&digest_info, &value) {
            return Err(Error::SignatureMismatch {
                reason: "the SignatureValue does not verify with the trusted certificate".into(),
            });
        }
        Ok(VerifiedSignature {
            signature_method: method,
            digest_method,
            exclusive,
        })
    }
}

/// The text of a character reference or one of XML's five predefined entities.
fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<String> {
    if let Ok(Some(ch)) = reference.resolve_char_ref() {
        return Ok(ch.to_string());
    }
    let text = match &**reference {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        name => {
            return Err(Error::UndefinedEntity {
                name: name.to_owned(),
                at: Location::element("document"),
            });
        }
    };
    Ok(text.to_owned())
}
