//! No input makes the reader or the signature check panic: corpus files and signed vectors
//! with random byte flips, truncations and splices are read with every option set and
//! verified; each run ends in a value or an `Error`.

use std::path::PathBuf;

use keyprov_pskc::{Limits, ReadOptions, RsaPublicKey, Secret, parse, verify_signature};
use proptest::prelude::*;

fn corpus_files() -> Vec<Vec<u8>> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/pskc-corpus");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "xml" || e == "pskcxml")
            {
                files.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(files.len() > 50);
    files
}

fn option_sets() -> Vec<ReadOptions> {
    let small = Limits {
        max_depth: 8,
        max_text: 256,
        max_section: 4096,
        max_packages: 3,
    };
    vec![
        ReadOptions::default(),
        ReadOptions {
            metadata_only: true,
            ..ReadOptions::default()
        },
        ReadOptions::with_key(Secret::from_hex("12345678901234567890123456789012").unwrap()),
        ReadOptions::with_password(Secret::from_slice(b"qwerty")),
        ReadOptions {
            accept_missing_value_mac: true,
            limits: small,
            ..ReadOptions::default()
        },
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Truncate { at: usize },
    Splice { from: usize, len: usize, to: usize },
    Insert { at: usize, text: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippets = prop::sample::select(vec![
        "<",
        ">",
        "&",
        "&amp;",
        "&#0;",
        "&#x110000;",
        "&undefined;",
        "<!DOCTYPE x>",
        "<![CDATA[",
        "]]>",
        "\"",
        "=",
        "</Key>",
        "<Key>",
        "<KeyPackage>",
        "xmlns:a=\"b\"",
        "<?pi?>",
        "\u{feff}",
        "<EncryptedValue>",
        "<ValueMAC>AAAA</ValueMAC>",
        "<PlainValue>////</PlainValue>",
        "<IterationCount>4294967296</IterationCount>",
        "<KeyLength>0</KeyLength>",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 0usize..200, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Splice { from, len, to }),
        (any::<usize>(), snippets).prop_map(|(at, text)| Mutation::Insert { at, text }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match *m {
            Mutation::Flip { at, byte } => bytes[at % n] ^= byte | 1,
            Mutation::Truncate { at } => bytes.truncate(at % n),
            Mutation::Splice { from, len, to } => {
                let from = from % n;
                let chunk: Vec<u8> = bytes[from..(from + len).min(n)].to_vec();
                let to = to % n;
                bytes.splice(to..to, chunk);
            }
            Mutation::Insert { at, text } => {
                let at = at % n;
                bytes.splice(at..at, text.bytes());
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_files_never_panic(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let files = corpus_files();
        let bytes = apply(files[file.index(files.len())].clone(), &mutations);
        for options in option_sets() {
            let _ = parse(&bytes, &options);
        }
    }

    #[test]
    fn mutated_signed_files_never_panic_the_signature_check(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let files = signed_files();
        let bytes = apply(files[file.index(files.len())].clone(), &mutations);
        let _ = verify_signature(bytes.as_slice(), &signer(), &Limits::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for options in option_sets() {
            let _ = parse(&bytes, &options);
        }
    }
}

fn signed_files() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/xmldsig");
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    files
}

fn signer() -> RsaPublicKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/interop/pskc-corpus/libpskc/pskctool-tests/pskc-ee-crt.pem");
    RsaPublicKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn billion_laughs_and_deep_nesting_are_refused() {
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><KeyContainer Version=\"1.0\">&lol2;</KeyContainer>";
    let err = parse(laughs.as_bytes(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, keyprov_pskc::Error::DtdForbidden), "{err}");
    let deep = format!(
        "<KeyContainer Version=\"1.0\"><KeyPackage>{}{}</KeyPackage></KeyContainer>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let err = parse(deep.as_bytes(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, keyprov_pskc::Error::TooLarge { .. }), "{err}");
    let undefined =
        "<KeyContainer Version=\"1.0\"><KeyPackage><Key Id=\"&x;\"/></KeyPackage></KeyContainer>";
    assert!(parse(undefined.as_bytes(), &ReadOptions::default()).is_err());
}

#[test]
fn a_huge_value_is_refused_without_buffering_it_whole() {
    let huge = "A".repeat(8 << 20);
    let xml = format!(
        "<KeyContainer Version=\"1.0\"><KeyPackage><Key Id=\"1\"><Data><Secret>\
         <PlainValue>{huge}</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>"
    );
    let err = parse(xml.as_bytes(), &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let tag = format!("<KeyContainer Version=\"1.0\"><KeyPackage a=\"{huge}\"/></KeyContainer>");
    let err = parse(tag.as_bytes(), &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

#[test]
fn rsa_container_algorithm_with_a_password_is_an_error_not_a_panic() {
    // Regression: the PBKDF2 key length was taken from the cipher's first key length,
    // which RSA algorithms do not have.
    let xml = r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
      <EncryptionKey Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"><DerivedKey>
        <KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
          <PBKDF2-params><Salt><Specified>Ej7/PEpyEpw=</Specified></Salt>
          <IterationCount>10</IterationCount></PBKDF2-params>
        </KeyDerivationMethod></DerivedKey></EncryptionKey>
      <KeyPackage><Key Id="1"><Data><Secret><EncryptedValue><CipherData>
        <CipherValue>AAAA</CipherValue></CipherData></EncryptedValue></Secret></Data></Key>
      </KeyPackage></KeyContainer>"#;
    let options = ReadOptions::with_password(Secret::from_slice(b"pw"));
    assert!(parse(xml.as_bytes(), &options).is_err());
}
