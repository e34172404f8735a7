//! The written layout, element by element with namespaces resolved, as the literal importers
//! (FreeIPA, LinOTP, privacyIDEA; spec digest §4b) read it: requests 1–8 of the seed-export
//! engineer. Each file is read back by this crate too.

use keyprov_pskc::{
    Cipher, Hmac, Key, KeyContainer, KeyPackage, Protection, ReadOptions, Secret, parse, write,
    write_container_element,
};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const NS_PKCS5: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";

/// One element with its namespace URI (`None`: no namespace) and direct text, untrimmed.
#[derive(Debug)]
struct Element {
    ns: Option<String>,
    local: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, local: &str) -> &Element {
        self.children
            .iter()
            .find(|c| c.local == local)
            .unwrap_or_else(|| panic!("<{}> has no <{local}>", self.local))
    }

    fn path(&self, path: &str) -> &Element {
        path.split('/').fold(self, |at, local| at.child(local))
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self) -> Vec<&Element> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.all());
        }
        out
    }
}

fn tree(xml: &[u8]) -> Element {
    let mut reader = NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).unwrap();
        let ns = match ns {
            ResolveResult::Bound(ns) => Some(ns.0.to_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => panic!("undeclared prefix {prefix:?}"),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                let attrs = start
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let name = a.key.as_ref().to_owned();
                        (name, a.value.to_string())
                    })
                    .collect();
                let local = start.local_name().as_ref().to_owned();
                stack.push(Element {
                    ns,
                    local,
                    attrs,
                    text: String::new(),
                    children: Vec::new(),
                });
                if empty {
                    close(&mut stack);
                }
            }
            Event::End(_) => {
                if stack.len() == 1 {
                    return stack.pop().unwrap();
                }
                close(&mut stack);
            }
            Event::Text(text) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text.xml10_content());
                }
            }
            Event::Eof => panic!("document ended early"),
            _ => {}
        }
        buf.clear();
    }
}

fn close(stack: &mut Vec<Element>) {
    let done = stack.pop().unwrap();
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None => stack.push(done),
    }
}

fn container() -> KeyContainer {
    let mut key = Key {
        id: Some("k1".into()),
        algorithm: Some("urn:ietf:params:xml:ns:keyprov:pskc:hotp".into()),
        ..Key::default()
    };
    key.data.secret = Some(Secret::from_slice(b"12345678901234567890"));
    key.data.counter = Some(7);
    key.data.time = Some(1_000);
    key.data.time_interval = Some(30);
    key.data.time_drift = Some(-2);
    let package = KeyPackage {
        keys: vec![key],
        ..KeyPackage::default()
    };
    KeyContainer {
        key_packages: vec![package],
        ..KeyContainer::new()
    }
}

fn password(cipher: Cipher) -> Protection {
    Protection::Password {
        password: Secret::from_slice(b"qwerty"),
        iterations: 1000,
        prf: Hmac::Sha256,
        salt: None,
        key_name: Some("Seed password".into()),
        cipher,
        mac: Hmac::Sha1,
    }
}

fn pre_shared(cipher: Cipher) -> Protection {
    let key = Secret::from_hex("12345678901234567890123456789012").unwrap();
    Protection::PreSharedKey {
        key,
        key_name: Some("Batch key 7".into()),
        cipher,
        mac: Hmac::Sha256,
    }
}

/// Requests 1, 3 and 8: `pkcs5:PBKDF2-params` first under `xenc11:DerivedKey`, its
/// children in no namespace even though PSKC is the default namespace.
fn assert_figure7_derived_key(encryption_key: &Element) {
    let derived = &encryption_key.children[0];
    assert_eq!(
        (derived.ns.as_deref(), derived.local.as_str()),
        (Some(NS_XENC11), "DerivedKey")
    );
    let method = derived.child("KeyDerivationMethod");
    assert_eq!(method.ns.as_deref(), Some(NS_XENC11));
    assert_eq!(
        method.attr("Algorithm"),
        Some("http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2")
    );
    let params = method.child("PBKDF2-params");
    assert_eq!(params.ns.as_deref(), Some(NS_PKCS5));
    let names: Vec<_> = params.children.iter().map(|c| c.local.as_str()).collect();
    assert_eq!(names, ["Salt", "IterationCount", "KeyLength", "PRF"]);
    for element in params.all().into_iter().skip(1) {
        assert_eq!(element.ns, None, "<{}> must be unqualified", element.local);
    }
    assert_eq!(params.path("Salt/Specified").text.len(), 24);
    assert_eq!(params.child("IterationCount").text, "1000");
    assert_eq!(params.child("KeyLength").text, "16");
    assert_eq!(
        params.child("PRF").attr("Algorithm"),
        Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
    );
    let name = derived.child("MasterKeyName");
    assert_eq!(
        (name.ns.as_deref(), name.text.as_str()),
        (Some(NS_XENC11), "Seed password")
    );
}

/// Requests 4–7: MACKey with its own EncryptionMethod, one-line base64, a ValueMAC on every
/// encrypted value, plain numbers, every other element in the PSKC namespace.
fn assert_values(root: &Element, cipher: Cipher, mac: Hmac) {
    let mac_key = root.path("MACMethod/MACKey");
    let method = &mac_key.children[0];
    assert_eq!(
        (method.ns.as_deref(), method.local.as_str()),
        (Some(NS_XENC), "EncryptionMethod")
    );
    assert_eq!(method.attr("Algorithm"), Some(cipher.uri()));
    let data = root.path("KeyPackage/Key/Data");
    let secret = data.child("Secret");
    assert_eq!(
        secret
            .path("EncryptedValue/EncryptionMethod")
            .attr("Algorithm"),
        Some(cipher.uri())
    );
    let one_line = |text: &str| !text.is_empty() && !text.bytes().any(|b| b.is_ascii_whitespace());
    assert!(one_line(
        &secret.path("EncryptedValue/CipherData/CipherValue").text
    ));
    assert!(one_line(&mac_key.path("CipherData/CipherValue").text));
    let tag_base64_len = mac.output_len().div_ceil(3) * 4;
    assert_eq!(secret.child("ValueMAC").text.len(), tag_base64_len);
    for (name, value) in [("Counter", "7"), ("Time", "1000"), ("TimeInterval", "30")] {
        assert_eq!(data.path(&format!("{name}/PlainValue")).text, value);
    }
    assert_eq!(data.path("TimeDrift/PlainValue").text, "-2");
    for element in root.all() {
        let expected = match element.local.as_str() {
            "KeyName" | "X509Data" | "X509Certificate" => NS_DS,
            "EncryptionMethod" | "CipherData" | "CipherValue" => NS_XENC,
            "DerivedKey" | "KeyDerivationMethod" | "MasterKeyName" => NS_XENC11,
            "PBKDF2-params" => NS_PKCS5,
            "Salt" | "Specified" | "IterationCount" | "KeyLength" | "PRF" => continue,
            _ => NS_PSKC,
        };
        assert_eq!(element.ns.as_deref(), Some(expected), "<{}>", element.local);
    }
}

#[test]
fn password_protection_is_figure7_with_unqualified_pbkdf2_children() {
    for cipher in [Cipher::Aes128Cbc, Cipher::KwAes128] {
        let xml = write(&container(), &password(cipher)).unwrap();
        let root = tree(&xml);
        assert_eq!(root.ns.as_deref(), Some(NS_PSKC));
        assert_figure7_derived_key(root.child("EncryptionKey"));
        let mac_key = root.path("MACMethod/MACKey");
        assert_eq!(mac_key.children[0].attr("Algorithm"), Some(cipher.uri()));
        let read = parse(
            &xml,
            &ReadOptions::with_password(Secret::from_slice(b"qwerty")),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", cipher.name()));
        let (_, key) = read.keys().next().unwrap();
        assert_eq!(
            key.data.secret.as_ref().unwrap().expose(),
            b"12345678901234567890"
        );
        assert_eq!(read.key_names, ["Seed password"]);
    }
}

#[test]
fn pre_shared_key_names_the_key_first_and_seals_every_secret() {
    let xml = write(&container(), &pre_shared(Cipher::Aes128Cbc)).unwrap();
    let root = tree(&xml);
    let encryption_key = root.child("EncryptionKey");
    let name = &encryption_key.children[0];
    assert_eq!(
        (name.ns.as_deref(), name.local.as_str()),
        (Some(NS_DS), "KeyName")
    );
    assert_eq!(name.text, "Batch key 7");
    assert_values(&root, Cipher::Aes128Cbc, Hmac::Sha256);
    let key = Secret::from_hex("12345678901234567890123456789012").unwrap();
    let read = parse(&xml, &ReadOptions::with_key(key)).unwrap();
    let (_, read_key) = read.keys().next().unwrap();
    assert_eq!(read_key.data.counter, Some(7));
    assert_eq!(read_key.data.time_drift, Some(-2));
}

#[test]
fn password_protection_values_follow_requests_4_to_7() {
    let xml = write(&container(), &password(Cipher::Aes128Cbc)).unwrap();
    assert_values(&tree(&xml), Cipher::Aes128Cbc, Hmac::Sha1);
}

/// Regression (request 8): inside a foreign default namespace (an embedding protocol's),
/// the PBKDF2 children must not land in that namespace either.
#[test]
fn embedded_container_keeps_pbkdf2_children_unqualified() {
    let mut out = quick_xml::Writer::new(Vec::new());
    let namespaces = [("xmlns", "urn:example:outer")];
    write_container_element(
        &mut out,
        "KeyContainer",
        &namespaces,
        &container(),
        &password(Cipher::Aes256Cbc),
    )
    .unwrap();
    let xml = out.into_inner();
    let root = tree(&xml);
    assert_eq!(root.ns.as_deref(), Some("urn:example:outer"));
    let params = root.path("EncryptionKey/DerivedKey/KeyDerivationMethod/PBKDF2-params");
    for element in params.all().into_iter().skip(1) {
        assert_eq!(element.ns, None, "<{}> must be unqualified", element.local);
    }
}
