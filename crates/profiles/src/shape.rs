//! Shaping a container for one importer: rewrite what the importer reads differently from
//! RFC 6030 (Suite spelling, algorithm URI, serial shape, one key per package), refuse what it
//! cannot represent (a hash it would silently replace, a T0 it ignores, a policy it drops).
//!
//! The engine builds a canonical container for a batch (algorithm URI, `ResponseFormat`,
//! `Suite` naming the OTP hash in any spelling [`Hmac::from_uri`] knows, serials) and calls
//! [`shape()`] before writing it with the protection [`crate::protection`] chose.

use std::collections::HashMap;

use keyprov_pskc::algorithm::{self, Hmac, Profile};
use keyprov_pskc::{Key, KeyContainer, KeyPackage};

use crate::error::{ProfileError, Refusal};
use crate::rules::{self, Rules, SerialShape, Support};
use crate::target::Target;

/// A container ready to be written for a target.
#[derive(Debug, Clone)]
pub struct Shaped {
    /// The rewritten container.
    pub container: KeyContainer,
    /// Serials the profile had to rewrite (LinOTP's OATH identifiers), as `(from, to)`: the
    /// operator needs them to find the tokens in the server.
    pub renamed_serials: Vec<(String, String)>,
}

/// Shapes `source` for `target`, or refuses with every reason found.
pub fn shape(target: Target, source: &KeyContainer) -> Result<Shaped, ProfileError> {
    let rules = Rules::of(target);
    let mut out = KeyContainer {
        key_packages: Vec::new(),
        signed: false,
        ..source.clone()
    };
    let mut refusals = Vec::new();
    let mut renamed_serials = Vec::new();

    for package in &source.key_packages {
        let mut packages = split(&rules, package);
        for package in &mut packages {
            let serial_before = effective_serial(package);
            shape_package(&rules, package, &mut refusals);
            let serial_after = importer_serial(&rules, package);
            if let (Some(from), Some(to)) = (serial_before, serial_after)
                && from != to
            {
                renamed_serials.push((from, to));
            }
        }
        out.key_packages.extend(packages);
    }

    check_unique(&rules, &out, &mut refusals);
    if out.key_packages.iter().all(|p| p.keys.is_empty()) {
        refusals.push(Refusal::file("the batch holds no key"));
    }
    if refusals.is_empty() {
        tracing::debug!(target = %target, keys = out.key_packages.len(), "export shaped");
        Ok(Shaped {
            container: out,
            renamed_serials,
        })
    } else {
        Err(ProfileError::Refused { target, refusals })
    }
}

/// One package per key when the importer reads only the first key; the device info is
/// copied to each.
fn split(rules: &Rules, package: &KeyPackage) -> Vec<KeyPackage> {
    if !rules.first_key_only || package.keys.len() <= 1 {
        return vec![package.clone()];
    }
    package
        .keys
        .iter()
        .map(|key| KeyPackage {
            keys: vec![key.clone()],
            ..package.clone()
        })
        .collect()
}

/// `DeviceInfo/SerialNo`, else the first key's `Key@Id`: what privacyIDEA and LinOTP use.
pub(crate) fn effective_serial(package: &KeyPackage) -> Option<String> {
    package
        .device_info
        .serial_no
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| package.keys.first().and_then(|k| k.id.clone()))
}

/// The serial the importer files the token under. privacyIDEA renames an HOTP key whose
/// `Key@Id` starts like Yubico's `<serial>:<slot>` to `UBOM<serial>_<slot>`, whatever the
/// `SerialNo` says; the others use `SerialNo`, else `Key@Id`.
pub(crate) fn importer_serial(rules: &Rules, package: &KeyPackage) -> Option<String> {
    let key = package.keys.first();
    if rules.target == Target::PrivacyIdea
        && let Some(key) = key
        && key.algorithm.as_deref() == Some(algorithm::HOTP)
        && let Some((serial, slot)) = key.id.as_deref().and_then(yubico_key_id)
    {
        return Some(format!("UBOM{serial}_{slot}"));
    }
    effective_serial(package)
}

/// privacyIDEA's `re.match(r"\d+:\d+", id)`: digits, `:`, digits, then anything. Returns the
/// serial and the slot as privacyIDEA splits them.
fn yubico_key_id(id: &str) -> Option<(&str, &str)> {
    let (serial, rest) = id.split_once(':')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let slot = rest.split(':').next().unwrap_or_default();
    let starts_with_digit = rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
    (digits(serial) && starts_with_digit).then_some((serial, slot))
}

/// `key <Id> (serial <SerialNo>)` for messages.
pub(crate) fn subject(package: &KeyPackage, key: &Key) -> String {
    let id = key.id.as_deref().unwrap_or("<no Id>");
    match package.device_info.serial_no.as_deref() {
        Some(serial) => format!("key {id} (serial {serial})"),
        None => format!("key {id}"),
    }
}

fn shape_package(rules: &Rules, package: &mut KeyPackage, refusals: &mut Vec<Refusal>) {
    if rules.target == Target::Generic {
        for key in &package.keys {
            check_generic(package, key, refusals);
        }
        return;
    }
    let Some(mut key) = package.keys.first().cloned() else {
        return;
    };
    let name = subject(package, &key);
    let mut refuse = |reason: String| {
        refusals.push(Refusal {
            subject: name.clone(),
            reason,
        })
    };

    shape_algorithm(rules, &mut key, &mut refuse);
    shape_format(rules, &mut key, &mut refuse);
    shape_data(rules, &mut key, &mut refuse);
    shape_policy(rules, package, &mut key, &mut refuse);
    shape_identity(rules, package, &mut key, &mut refuse);
    package.keys = vec![key];
}

/// Generic export: RFC 6030 readers take everything; only a key without its secret is useless.
fn check_generic(package: &KeyPackage, key: &Key, refusals: &mut Vec<Refusal>) {
    if key.data.secret.is_none() {
        refusals.push(Refusal {
            subject: subject(package, key),
            reason: "has no secret to export".into(),
        });
    }
}

/// HOTP/TOTP only, with the `:hotp`/`:totp` URI form every importer reads (privacyIDEA and
/// LinOTP take the text after the last `:` as the type), and the hash in the Suite spelling
/// the importer honours.
fn shape_algorithm(rules: &Rules, key: &mut Key, refuse: &mut impl FnMut(String)) {
    let kind = key.profile();
    match kind {
        Some(Profile::Hotp) => key.algorithm = Some(algorithm::HOTP.into()),
        Some(Profile::Totp) => key.algorithm = Some(algorithm::TOTP.into()),
        _ => {
            let uri = key.algorithm.as_deref().unwrap_or("<none>");
            refuse(format!(
                "algorithm {uri} is not HOTP or TOTP, the only kinds exported"
            ));
            return;
        }
    }
    let suite = key.algorithm_parameters.suite.as_deref();
    let hash = match suite.map(Hmac::from_uri) {
        None => Hmac::Sha1,
        Some(Some(hash)) => hash,
        Some(None) => {
            refuse(format!(
                "Suite {:?} names no OTP hash",
                suite.unwrap_or_default()
            ));
            return;
        }
    };
    if !rules.hashes.contains(&hash) {
        let known: Vec<_> = rules.hashes.iter().map(|h| rules::suite_text(*h)).collect();
        refuse(format!(
            "OTP hash {} cannot be represented ({} knows {}); it would validate with another hash",
            rules::suite_text(hash),
            rules.target.product(),
            known.join(", ")
        ));
        return;
    }
    key.algorithm_parameters.suite = Some(rules::suite_text(hash).into());
}

/// `ResponseFormat`: a decimal length the server validates, no check digit it would drop.
fn shape_format(rules: &Rules, key: &mut Key, refuse: &mut impl FnMut(String)) {
    let Some(format) = key.algorithm_parameters.response_format.as_mut() else {
        refuse("no ResponseFormat@Length: the OTP length is unknown".into());
        return;
    };
    match format.length {
        Some(length) if rules.digits.contains(&length) => {}
        Some(length) => refuse(format!(
            "{length}-digit OTPs are not supported (expected {} to {})",
            rules.digits.start(),
            rules.digits.end()
        )),
        None => refuse("no ResponseFormat@Length: the OTP length is unknown".into()),
    }
    match format.encoding.as_deref() {
        None => format.encoding = Some("DECIMAL".into()),
        Some(e) if e.eq_ignore_ascii_case("DECIMAL") => format.encoding = Some("DECIMAL".into()),
        Some(other) => refuse(format!("response encoding {other} is not DECIMAL")),
    }
    if format.check_digits == Some(true) && rules.check_digits != Support::Read {
        refuse("OTPs with a Luhn check digit are not supported".into());
    }
    format.check_digits = None;
    key.algorithm_parameters.challenge_format = None;
}

/// `Data`: a secret, a counter for HOTP, T0 and drift only where the importer reads them.
fn shape_data(rules: &Rules, key: &mut Key, refuse: &mut impl FnMut(String)) {
    let data = &mut key.data;
    if data.secret.is_none() {
        refuse("has no secret to export".into());
    }
    match key.algorithm.as_deref() {
        Some(algorithm::HOTP) => {
            data.counter.get_or_insert(0);
            data.time = None;
            data.time_interval = None;
            data.time_drift = None;
        }
        Some(algorithm::TOTP) => {
            data.counter = None;
            data.time_interval.get_or_insert(30);
        }
        _ => {}
    }
    if data.time.is_some_and(|t| t != 0) {
        match rules.time {
            Support::Read => {}
            _ => refuse("a TOTP start time (Data/Time) other than 0 is not supported".into()),
        }
    }
    data.time = None;
    match data.time_drift {
        Some(0) | None => data.time_drift = None,
        Some(_) if rules.time_drift == Support::Read => {}
        Some(_) => refuse("a clock drift (Data/TimeDrift) would be lost or misread".into()),
    }
}

/// `Policy`: restrictions and validity dates the importer drops or rejects.
fn shape_policy(
    rules: &Rules,
    package: &mut KeyPackage,
    key: &mut Key,
    refuse: &mut impl FnMut(String),
) {
    let policy = &key.policy;
    let restricted = policy.pin_policy.is_some()
        || policy.number_of_transactions.is_some()
        || policy.unknown_elements;
    if restricted && rules.restrictions != Support::Read {
        refuse("its policy (PIN policy, transaction limit) would be dropped or rejected".into());
    }
    if !policy.key_usage.is_empty() && !policy.key_usage.iter().any(|u| u == "OTP") {
        refuse("its key usage does not include OTP".into());
    }
    let info = &package.device_info;
    let dated = policy.start_date.is_some()
        || policy.expiry_date.is_some()
        || info.start_date.is_some()
        || info.expiry_date.is_some();
    if dated && rules.dates != Support::Read {
        refuse("its validity dates would be dropped".into());
    }
    // FreeIPA takes only the first KeyUsage and wants OTP: write just that.
    if !key.policy.key_usage.is_empty() {
        key.policy.key_usage = vec!["OTP".into()];
    }
}

/// `Key@Id` and serial: present, and shaped as the importer requires.
fn shape_identity(
    rules: &Rules,
    package: &mut KeyPackage,
    key: &mut Key,
    refuse: &mut impl FnMut(String),
) {
    let serial = package
        .device_info
        .serial_no
        .clone()
        .filter(|s| !s.trim().is_empty());
    // privacyIDEA would file an HOTP key with a `<serial>:<slot>` id under `UBOM…`, ignoring
    // SerialNo; the serial as id keeps the token under its device serial.
    if rules.target == Target::PrivacyIdea
        && key.id.as_deref().and_then(yubico_key_id).is_some()
        && let Some(serial) = &serial
    {
        key.id = Some(serial.clone());
    }
    if key.id.as_deref().is_none_or(|id| id.trim().is_empty()) {
        match (&serial, rules.key_id_required) {
            (Some(serial), _) => key.id = Some(serial.clone()),
            (None, true) => refuse("has neither Key@Id nor SerialNo".into()),
            (None, false) => {}
        }
    }
    if rules.serial_shape == SerialShape::Oath {
        let current = serial.or_else(|| key.id.clone()).unwrap_or_default();
        match oath_serial(&current, package.device_info.manufacturer.as_deref(), key) {
            Some(oath) => package.device_info.serial_no = Some(oath),
            None => refuse(format!(
                "serial {current:?} is not an OATH token identifier (4 letters or digits and 8 \
                 hex digits) and cannot be made into one; LinOTP would skip it"
            )),
        }
    }
}

/// An OATH token identifier for LinOTP: the serial itself when it already is one, else a
/// two-letter vendor prefix (`UB` Yubico, `NK` Nitrokey, else the manufacturer's first two
/// letters), `OH`/`OT` for OATH HOTP/TOTP, and the serial — up to 8 decimal (YubiKey) or hex
/// (Nitrokey) digits — padded to 8 with zeros.
pub fn oath_serial(serial: &str, manufacturer: Option<&str>, key: &Key) -> Option<String> {
    if rules::is_oath_serial(serial) {
        return Some(serial.to_string());
    }
    if serial.is_empty() || serial.len() > 8 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let vendor = manufacturer.map(vendor_prefix)?;
    let kind = match key.profile() {
        Some(Profile::Totp) => "OT",
        _ => "OH",
    };
    Some(format!("{vendor}{kind}{serial:0>8}"))
}

fn vendor_prefix(manufacturer: &str) -> String {
    let lower = manufacturer.to_ascii_lowercase();
    if lower.contains("yubico") || lower.contains("yubikey") {
        return "UB".into();
    }
    if lower.contains("nitrokey") {
        return "NK".into();
    }
    let letters: String = manufacturer
        .trim_start_matches("oath.")
        .trim_start_matches("iana.")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(2)
        .collect::<String>()
        .to_ascii_uppercase();
    format!("{letters:X<2}")
}

/// The importer keys tokens by serial or by `Key@Id`: a repeat would overwrite a token.
fn check_unique(rules: &Rules, container: &KeyContainer, refusals: &mut Vec<Refusal>) {
    let mut serials: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for package in &container.key_packages {
        if rules.unique_serials
            && let Some(serial) = importer_serial(rules, package)
        {
            *serials.entry(serial).or_default() += 1;
        }
        if rules.unique_key_ids {
            for id in package.keys.iter().filter_map(|k| k.id.clone()) {
                *ids.entry(id).or_default() += 1;
            }
        }
    }
    let mut repeated = |map: HashMap<String, usize>, what: &str| {
        let mut names: Vec<_> = map.into_iter().filter(|(_, n)| *n > 1).collect();
        names.sort();
        for (name, count) in names {
            refusals.push(Refusal::file(format!(
                "{count} keys share {what} {name}; {} keeps one token per {what}, the others \
                 would be overwritten",
                rules.target.product()
            )));
        }
    };
    repeated(serials, "serial");
    repeated(ids, "Key@Id");
}
