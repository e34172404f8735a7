//! Interop with python-pskc over the whole corpus: every file python-pskc loads is read by
//! `keyprov pskc inspect --json --show-secrets` with identical values; every file it rejects
//! is rejected by keyprov too; `invalid/` and `freeipa/` files are rejected with a message.

mod pskc_common;

use std::path::Path;

use pskc_common::*;
use serde_json::{Value, json};

/// Key or password that unlocks a corpus file (from the files' comments and the README).
fn secrets_for(path: &str) -> (Option<&'static str>, Option<&'static str>) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let key = match name {
        "aes192-cbc.pskcxml" => "123456789012345678901234567890123456789012345678",
        "aes256-cbc.pskcxml" => "1234567890123456789012345678901234567890123456789012345678901234",
        "kw-aes128.pskcxml" => "000102030405060708090a0b0c0d0e0f",
        "kw-aes192.pskcxml" => "000102030405060708090a0b0c0d0e0f1011121314151617",
        "kw-aes256.pskcxml" => "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "kw-tripledes.pskcxml" => "255e0d1c07b646dfb3134cc843ba8aa71f025b7c0838251f",
        "camellia128-cbc.pskcxml" => "200497e673a6fae2256e9749468a67ac",
        "camellia192-cbc.pskcxml" => "e263279877384c84c987661a9d06766affdb9b3211eae801",
        "camellia256-cbc.pskcxml" => {
            "33b37e31c5a0a16f004e7fe727d4ff808fc1f879d85ccd8f06dbb5799565d2f5"
        }
        "kw-camellia128.pskcxml" => "e35b135a09bfff8b314a5a0c32193c37",
        "kw-camellia192.pskcxml" => "5eb0bccad29abe52d143d5aebc1c1ba174b8d379ce763c28",
        "kw-camellia256.pskcxml" => {
            "0e187c656c36975b0d6bded79d7089142209457114ce8e6f4ae78339d71114e8"
        }
        "figure7.pskcxml" | "pskc-figure7.xml" if !path.contains("draft") => {
            return (None, Some("qwerty"));
        }
        "figure5.pskcxml" if path.contains("draft") => return (None, Some("qwerty")),
        "figure6.pskcxml" | "pskc-figure6.xml" if !path.contains("draft") => PSK_F6,
        "figure4.pskcxml" if path.contains("draft") => PSK_F6,
        "aes128-cbc.pskcxml" | "tripledes-cbc.pskcxml" | "integers.pskcxml" => PSK_F6,
        "no-mac-key.pskcxml" | "mac-over-plaintext.pskcxml" => PSK_F6,
        _ => return (None, None),
    };
    (Some(key), None)
}

fn corpus_files() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![corpus_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "xml" || e == "pskcxml")
            {
                let relative = path.strip_prefix(corpus_dir()).unwrap();
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

fn inspect(
    path: &str,
    key: Option<&str>,
    password: Option<&str>,
    secrets: bool,
) -> (bool, Value, String) {
    let mut args = vec!["pskc".to_owned(), "inspect".into(), "--json".into()];
    args.push(corpus(path).to_string_lossy().into_owned());
    if secrets {
        args.push("--show-secrets".into());
    }
    if let Some(key) = key {
        args.extend(["--key".into(), key.into()]);
    }
    if let Some(password) = password {
        args.extend(["--password".into(), password.into()]);
    }
    let out = run_keyprov(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, stderr(&out))
}

/// keyprov writes absent formats as null; python-pskc as objects of nulls.
fn format(value: &Value, fields: &[&str]) -> Value {
    let object = fields
        .iter()
        .map(|f| (f.to_string(), value.get(f).cloned().unwrap_or(Value::Null)));
    Value::Object(object.collect())
}

/// The comparable fields of one key from keyprov's JSON.
fn keyprov_view(key: &Value) -> Value {
    let policy = &key["policy"];
    let pin = &policy["pin_policy"];
    json!({
        "id": key["id"], "algorithm": key["algorithm"], "issuer": key["issuer"],
        "manufacturer": key["manufacturer"], "serial": key["serial"], "model": key["model"],
        "issue_no": key["issue_no"], "crypto_module_id": key["crypto_module_id"],
        "device_user_id": key["device_user_id"], "user_id": key["user_id"],
        "friendly_name": key["friendly_name"], "key_profile_id": key["key_profile_id"],
        "key_reference": key["key_reference"],
        "response_format": format(&key["response_format"], &["encoding", "length", "check_digits"]),
        "challenge_format": format(&key["challenge_format"], &["encoding", "min", "max", "check_digits"]),
        "secret": key["secret"], "counter": key["counter"], "time": key["time"],
        "time_interval": key["time_interval"], "time_drift": key["time_drift"],
        "policy": {
            "start_date": policy["start_date"], "expiry_date": policy["expiry_date"],
            "key_usage": policy["key_usage"],
            "number_of_transactions": policy["number_of_transactions"],
            "pin_key_id": pin["pin_key_id"], "pin_usage_mode": pin["pin_usage_mode"],
            "pin_max_failed_attempts": pin["max_failed_attempts"],
            "pin_min_length": pin["min_length"], "pin_max_length": pin["max_length"],
            "pin_encoding": pin["pin_encoding"], "usable": policy["usable"],
        },
    })
}

/// python-pskc's view with unreadable fields (`{"error": …}`) replaced by null.
fn python_view(key: &Value) -> (Value, bool) {
    let mut key = key.clone();
    let mut unreadable = false;
    for field in ["secret", "counter", "time", "time_interval", "time_drift"] {
        if key[field].get("error").is_some() {
            key[field] = Value::Null;
            unreadable = true;
        }
    }
    (key, unreadable)
}

fn compare(path: &str) -> Result<(), String> {
    let (key, password) = secrets_for(path);
    let python = python_dump(&corpus(path), key, password);
    if let Some(error) = python.get("load_error") {
        let (ok, _, message) = inspect(path, key, password, true);
        return match ok {
            true => Err(format!(
                "python-pskc rejects it ({error}) but keyprov accepted it"
            )),
            false if message.lines().count() == 1 => Ok(()),
            false => Err(format!("keyprov's error is not one line: {message}")),
        };
    }
    let views: Vec<(Value, bool)> = python["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(python_view)
        .collect();
    let unreadable = views.iter().any(|(_, u)| *u);
    let (ok, keyprov, message) = inspect(path, key, password, !unreadable);
    if !ok {
        return Err(format!("keyprov failed: {message}"));
    }
    if keyprov["version"] != python["version"] && python["version"] != Value::Null {
        return Err(format!(
            "version {} vs {}",
            keyprov["version"], python["version"]
        ));
    }
    if keyprov["id"] != python["id"] {
        return Err(format!("id {} vs {}", keyprov["id"], python["id"]));
    }
    let ours: Vec<Value> = keyprov["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(keyprov_view)
        .collect();
    if ours.len() != views.len() {
        return Err(format!(
            "{} keys vs python-pskc's {}",
            ours.len(),
            views.len()
        ));
    }
    for (i, (ours, (theirs, _))) in ours.iter().zip(&views).enumerate() {
        for (field, value) in theirs.as_object().unwrap() {
            if &ours[field] != value {
                return Err(format!(
                    "key #{i} {field}: keyprov {} vs python-pskc {value}",
                    ours[field]
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn corpus_matches_python_pskc() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in corpus_files() {
        // freeipa/ and invalid/ are rejection tests below; the no-IV file needs an API call.
        if path.starts_with("freeipa/") || path.contains("/invalid/") || path.contains("noiv") {
            continue;
        }
        compared += 1;
        if let Err(reason) = compare(&path) {
            failures.push(format!("{path}: {reason}"));
        }
    }
    assert!(compared >= 50, "only {compared} corpus files found");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_and_freeipa_files_are_rejected_with_one_clear_line() {
    let cases = [
        // A foreign root is probed for well-formedness before it is called the wrong root.
        ("python-pskc/invalid/notxml.pskcxml", "not well-formed XML"),
        (
            "python-pskc/invalid/wrongelement.pskcxml",
            "expected a PSKC <KeyContainer>",
        ),
        (
            "python-pskc/invalid/wrongversion.pskcxml",
            "unsupported PSKC version \"1.2\"",
        ),
        (
            "python-pskc/invalid/unknown-encryption.pskcxml",
            "unsupported encryption algorithm",
        ),
        (
            "python-pskc/invalid/missing-encryption.pskcxml",
            "missing EncryptionMethod@Algorithm",
        ),
        (
            "python-pskc/invalid/missing-encryption-method.pskcxml",
            "missing EncryptionMethod",
        ),
        (
            "python-pskc/invalid/incomplete-derivation.pskcxml",
            "incomplete PBKDF2 parameters",
        ),
        (
            "python-pskc/invalid/no-mac-method.pskcxml",
            "declares no MAC algorithm",
        ),
        (
            "python-pskc/invalid/mac-algorithm.pskcxml",
            "unsupported MAC algorithm",
        ),
        (
            "python-pskc/invalid/mac-value.pskcxml",
            "ValueMAC does not match",
        ),
        (
            "python-pskc/invalid/not-integer.pskcxml",
            "is not an integer",
        ),
        (
            "python-pskc/invalid/not-integer2.pskcxml",
            "is not an integer",
        ),
        (
            "python-pskc/invalid/not-boolean.pskcxml",
            "is not a boolean",
        ),
        (
            "freeipa/pskc-entity.xml",
            "DTD or entity declarations are not allowed",
        ),
        ("freeipa/pskc-missingmac.xml", "has no ValueMAC"),
    ];
    for (path, expected) in cases {
        let file = corpus(path);
        let mut args = vec![
            "pskc",
            "inspect",
            "--json",
            "--show-secrets",
            "--key",
            PSK_F6,
        ];
        if path.contains("derivation") {
            args = vec!["pskc", "inspect", "--password", "qwerty"];
        }
        let out = keyprov().args(&args).arg(&file).output().unwrap();
        let message = stderr(&out);
        assert!(!out.status.success(), "{path} was accepted");
        assert_eq!(message.lines().count(), 1, "{path}: {message}");
        assert!(message.starts_with("error: "), "{path}: {message}");
        assert!(
            message.contains(file.to_str().unwrap()),
            "{path}: file not named: {message}"
        );
        assert!(message.contains(expected), "{path}: {message}");
        assert!(
            stdout(&out).is_empty(),
            "{path}: partial output {}",
            stdout(&out)
        );
    }
    // The entity file must not leak the referenced file.
    let out = run_keyprov([
        "pskc",
        "inspect",
        corpus("freeipa/pskc-entity.xml").to_str().unwrap(),
    ]);
    assert!(!stdout(&out).contains("localhost") && !stderr(&out).contains("localhost"));
}

#[test]
fn errors_name_the_key_and_element_and_tell_wrong_key_from_tampering() {
    let figure6 = corpus("python-pskc/rfc6030/figure6.pskcxml");
    let wrong = "12345678901234567890123456789013";
    let out = keyprov()
        .args(["pskc", "inspect", "--show-secrets", "--key", wrong])
        .arg(&figure6)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("wrong key or password"),
        "{}",
        stderr(&out)
    );
    let tampered = corpus("python-pskc/invalid/mac-value.pskcxml");
    let out = keyprov()
        .args(["pskc", "inspect", "--show-secrets", "--key", PSK_F6])
        .arg(&tampered)
        .output()
        .unwrap();
    let message = stderr(&out);
    assert!(
        message.contains("key \"12345678\", <Secret>") && message.contains("altered"),
        "{message}"
    );
    let figure7 = corpus("python-pskc/rfc6030/figure7.pskcxml");
    let out = keyprov()
        .args(["pskc", "inspect", "--show-secrets", "--password", "qwertz"])
        .arg(&figure7)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("wrong key or password"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn secrets_only_with_show_secrets() {
    let figure3 = corpus("python-pskc/rfc6030/figure3.pskcxml");
    let out = keyprov()
        .args(["pskc", "inspect", "--json"])
        .arg(&figure3)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keys"][0]["secret"], Value::Null);
    assert_eq!(json["keys"][0]["counter"], 0);
    let human = keyprov()
        .args(["pskc", "inspect"])
        .arg(&figure3)
        .output()
        .unwrap();
    assert!(!stdout(&human).contains("3132333435"), "{}", stdout(&human));
    let out = keyprov()
        .args(["pskc", "inspect", "--json", "--show-secrets"])
        .arg(&figure3)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["keys"][0]["secret"],
        "3132333435363738393031323334353637383930"
    );
}

#[test]
fn key_and_password_files() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.hex");
    std::fs::write(&key_file, format!("{PSK_F6}\n")).unwrap();
    let out = keyprov()
        .args(["pskc", "inspect", "--json", "--show-secrets", "--key-file"])
        .arg(&key_file)
        .arg(corpus("python-pskc/rfc6030/figure6.pskcxml"))
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(
        json["keys"][0]["secret"],
        "3132333435363738393031323334353637383930"
    );
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "qwerty\n").unwrap();
    let out = keyprov()
        .args([
            "pskc",
            "inspect",
            "--json",
            "--show-secrets",
            "--password-file",
        ])
        .arg(&password_file)
        .arg(corpus("python-pskc/rfc6030/figure7.pskcxml"))
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(
        json["keys"][0]["secret"],
        "3132333435363738393031323334353637383930"
    );
    assert!(Path::new(&password_file).exists());
}
