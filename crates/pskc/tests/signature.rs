//! XML signature verification (RFC 6030 §7) against files signed by xmlsec1 and libpskc
//! (`tests/vectors/xmldsig/README.md`): they verify with the signer's certificate; altered
//! content, another certificate or a changed SignatureValue do not; changes that Canonical
//! XML ignores (attribute order and quotes, empty-element form, references, line ends) do.

use std::path::{Path, PathBuf};

use keyprov_pskc::{Error, Limits, RsaPublicKey, VerifiedSignature, verify_signature};

fn vector(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/xmldsig")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn libpskc(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/interop/pskc-corpus/libpskc/pskctool-tests")
        .join(name)
}

fn certificate(name: &str) -> RsaPublicKey {
    let pem = std::fs::read_to_string(libpskc(name)).unwrap();
    RsaPublicKey::from_pem(&pem).unwrap()
}

fn verify(text: &str, certificate_file: &str) -> Result<VerifiedSignature, Error> {
    verify_signature(
        text.as_bytes(),
        &certificate(certificate_file),
        &Limits::default(),
    )
}

const SIGNER: &str = "pskc-ee-crt.pem";
const VECTORS: [(&str, &str, &str, bool); 4] = [
    (
        "figure6-exc-c14n-rsa-sha256.xml",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        true,
    ),
    (
        "figure6-c14n-rsa-sha256.xml",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
        false,
    ),
    (
        "stress-exc-c14n-rsa-sha256.xml",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        true,
    ),
    (
        "stress-c14n-rsa-sha1-by-id.xml",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
        false,
    ),
];

#[test]
fn xmlsec1_signatures_verify_with_the_signer_certificate() {
    for (name, signature_method, digest_method, exclusive) in VECTORS {
        let verified = verify(&vector(name), SIGNER).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = VerifiedSignature {
            signature_method: signature_method.into(),
            digest_method: digest_method.into(),
            exclusive,
        };
        assert_eq!(verified, expected, "{name}");
    }
}

#[test]
fn the_libpskc_signed_file_verifies() {
    let text = std::fs::read_to_string(libpskc("pskc-all-signed.xml")).unwrap();
    let verified = verify(&text, SIGNER).unwrap();
    assert_eq!(
        verified.signature_method,
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    );
    assert!(!verified.exclusive, "no c14n transform: Canonical XML 1.0");
}

#[test]
fn altered_content_is_a_digest_mismatch() {
    for (name, ..) in VECTORS {
        let text = vector(name);
        for (from, to) in [
            ("<KeyPackage>", "<KeyPackage Id=\"x\">"),
            ("</KeyPackage>", " </KeyPackage>"),
            ("MTIzNDU2", "MTIzNDU3"),
            ("Tom &amp; Jerry", "Tom &amp; Jerri"),
            ("Version=\"1.0\"", "Version=\"1.0\" Extra=\"1\""),
        ] {
            if !text.contains(from) {
                continue;
            }
            let altered = text.replacen(from, to, 1);
            let err = verify(&altered, SIGNER).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, Error::SignatureMismatch { .. }) && message.contains("DigestValue"),
                "{name} {from:?}: {message}"
            );
        }
    }
}

#[test]
fn another_certificate_or_signature_value_does_not_verify() {
    for (name, ..) in VECTORS {
        let text = vector(name);
        let err = verify(&text, "pskc-root-crt.pem").unwrap_err();
        assert!(err.to_string().contains("SignatureValue"), "{name}: {err}");
        let start = text
            .find("<SignatureValue>")
            .or(text.find("<ds:SignatureValue>"));
        let at = start.unwrap() + text[start.unwrap()..].find('>').unwrap() + 5;
        let flipped = if text.as_bytes()[at] == b'A' {
            "B"
        } else {
            "A"
        };
        let altered = format!("{}{flipped}{}", &text[..at], &text[at + 1..]);
        let err = verify(&altered, SIGNER).unwrap_err();
        assert!(
            matches!(err, Error::SignatureMismatch { .. }),
            "{name}: {err}"
        );
    }
}

/// Canonical XML is the same for documents that differ only in syntax.
#[test]
fn syntax_that_canonicalization_ignores_still_verifies() {
    let text = vector("stress-exc-c14n-rsa-sha256.xml");
    for (from, to) in [
        (
            "<ext:Item xmlns:other=\"urn:example:other\" ext:b=\"2\" a=\"1\"",
            "<ext:Item  a = '1'\n ext:b=\"2\" xmlns:other='urn:example:other'",
        ),
        ("<other:Inner/>", "<other:Inner></other:Inner>"),
        ("attr=\"single quoted\"", "attr='single quoted'"),
        (
            "<SerialNo><![CDATA[S<1>&2]]></SerialNo>",
            "<SerialNo>S&lt;1&gt;&amp;2</SerialNo>",
        ),
        ("<!-- a comment inside -->", "<!-- another comment -->"),
        ("AB \"quoted\"", "&#x41;&#66; &quot;quoted&quot;"),
    ] {
        assert!(text.contains(from), "{from}");
        let same = text.replacen(from, to, 1);
        verify(&same, SIGNER).unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"));
    }
    let crlf = text.replace('\n', "\r\n");
    verify(&crlf, SIGNER).unwrap();
}

#[test]
fn unsigned_and_unsupported_signatures_are_named() {
    let plain = std::fs::read_to_string(libpskc("pskc-all.xml")).unwrap();
    assert!(matches!(
        verify(&plain, SIGNER),
        Err(Error::SignatureMissing)
    ));
    let text = vector("figure6-exc-c14n-rsa-sha256.xml");
    let other = text.replace("URI=\"\"", "URI=\"#elsewhere\"");
    let err = verify(&other, SIGNER).unwrap_err();
    assert!(matches!(err, Error::UnsupportedAlgorithm { .. }), "{err}");
    let prefix_list = text.replace(
        "xml-exc-c14n#\"/></ds:Transforms>",
        "xml-exc-c14n#\"><ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" \
         PrefixList=\"xenc\"/></ds:Transform></ds:Transforms>",
    );
    assert_ne!(prefix_list, text);
    let err = verify(&prefix_list, SIGNER).unwrap_err();
    assert!(err.to_string().contains("PrefixList"), "{err}");
    let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{text}");
    assert!(matches!(verify(&dtd, SIGNER), Err(Error::DtdForbidden)));
}
