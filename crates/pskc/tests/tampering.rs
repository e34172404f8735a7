//! Files edited behind the writer's back: a removed encrypted value must not read as a key
//! without a secret.

use std::path::PathBuf;

use keyprov_pskc::{Error, ReadOptions, Secret, parse};

const PSK_F6: &str = "12345678901234567890123456789012";

fn figure6() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/interop/pskc-corpus/python-pskc/rfc6030/figure6.pskcxml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Regression: an empty `<CipherValue>` with its `<ValueMAC>` kept was read as "no secret".
#[test]
fn an_emptied_cipher_value_under_a_value_mac_is_a_mac_mismatch_naming_the_key() {
    let text = figure6();
    // The second CipherValue is the key's secret (the first is the MAC key's).
    let first = text.find("<xenc:CipherValue>").unwrap() + 1;
    let start = first + text[first..].find("<xenc:CipherValue>").unwrap();
    let end = start + text[start..].find("</xenc:CipherValue>").unwrap();
    let emptied = format!("{}<xenc:CipherValue>{}", &text[..start], &text[end..]);
    let options = ReadOptions::with_key(Secret::from_hex(PSK_F6).unwrap());
    let err = parse(emptied.as_bytes(), &options).unwrap_err();
    assert!(matches!(err, Error::MacMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("Secret"), "{message}");
    assert!(message.contains("12345678"), "names the key: {message}");
    assert!(
        parse(text.as_bytes(), &options).is_ok(),
        "the intact file reads"
    );
}
