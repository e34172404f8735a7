//! Tests against real tokens. Ignored by default; each picks its device by serial from an
//! environment variable and overwrites one slot (see drivers/README.md, "Testing with real
//! hardware"). They run one at a time through a process-wide lock.

use std::sync::Mutex;
use std::time::Duration;

use keyprov_drivers::{
    Credential, Digits, Factor, Family, OtpHash, Pin, Presence, Proof, SecretKey, Slot, Token,
    TokenInfo,
};

mod support;
use support::{expectation, write_and_verify};

static HARDWARE: Mutex<()> = Mutex::new(());

/// The attached token whose serial the variable names.
fn device(variable: &str, families: &[Family]) -> TokenInfo {
    let serial = std::env::var(variable).unwrap_or_else(|_| {
        panic!("set {variable} to the serial of the token to test (drivers/README.md)")
    });
    let tokens = keyprov_drivers::list(None).expect("list HID tokens");
    tokens
        .into_iter()
        .find(|t| t.serial.eq_ignore_ascii_case(&serial) && families.contains(&t.family))
        .unwrap_or_else(|| panic!("no attached token with serial {serial}"))
}

fn random_key() -> SecretKey {
    let mut key = vec![0u8; 20];
    rand::fill(&mut key[..]);
    SecretKey::new(key)
}

#[test]
#[ignore = "needs a YubiKey; set KEYPROV_TEST_YUBIKEY_SERIAL"]
fn yubikey_slot2_hotp_by_touch_and_hmac() {
    let _guard = HARDWARE.lock().unwrap_or_else(|e| e.into_inner());
    let info = device("KEYPROV_TEST_YUBIKEY_SERIAL", &[Family::Yubikey]);
    let mut token = keyprov_drivers::open(&info).unwrap();
    let key = random_key();
    let expected = expectation(&key, Digits::SIX, OtpHash::Sha1, Factor::Counter(0));
    let accepted = write_and_verify(&mut *token, Slot::hotp(2), &expected);
    assert_eq!(accepted.proof, Proof::ConfigurationAccepted);
    eprintln!("long-press the YubiKey (slot 2) within 30 s");
    let verification = token
        .verify(
            Slot::hotp(2),
            &expected,
            Presence::Touch(Duration::from_secs(30)),
        )
        .unwrap();
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(0) });
    drop(token);

    let mut key = keyprov_drivers::open_yubikey(&info).unwrap();
    key.write_hmac_sha1(2, &SecretKey::from_slice(b"Jefe"), false)
        .unwrap();
    let mac = key
        .challenge_hmac(2, b"what do ya want for nothing?")
        .unwrap();
    assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    key.erase(Slot::hotp(2)).unwrap();
}

#[test]
#[ignore = "needs a Nitrokey Pro/Storage/Librem Key; set KEYPROV_TEST_NITROKEY_SERIAL"]
fn nitrokey_hotp_and_totp_by_get_code() {
    let _guard = HARDWARE.lock().unwrap_or_else(|e| e.into_inner());
    let families = [Family::NitrokeyPro, Family::NitrokeyStorage];
    let info = device("KEYPROV_TEST_NITROKEY_SERIAL", &families);
    let pin = std::env::var("KEYPROV_TEST_NITROKEY_ADMIN_PIN").unwrap_or("12345678".into());
    let mut token: Box<dyn Token> = keyprov_drivers::open(&info).unwrap();
    token
        .authenticate(&Credential::AdminPin(Pin::new(pin)))
        .unwrap();
    let key = SecretKey::from_slice(b"12345678901234567890");
    let expected = expectation(&key, Digits::SIX, OtpHash::Sha1, Factor::Counter(0));
    let verification = write_and_verify(&mut *token, Slot::hotp(2), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(0) });
    assert_eq!(verification.next_counter, Some(1));

    let expected = expectation(&key, Digits::EIGHT, OtpHash::Sha1, Factor::Period(30));
    let verification = write_and_verify(&mut *token, Slot::totp(14), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: None });
    token.erase(Slot::hotp(2)).unwrap();
    token.erase(Slot::totp(14)).unwrap();
}

#[test]
#[ignore = "needs a Nitrokey 3; set KEYPROV_TEST_NITROKEY3_SERIAL"]
fn nitrokey3_sha256_totp_and_sha1_hotp_by_calculate() {
    let _guard = HARDWARE.lock().unwrap_or_else(|e| e.into_inner());
    let info = device("KEYPROV_TEST_NITROKEY3_SERIAL", &[Family::Nitrokey3]);
    let mut token: Box<dyn Token> = keyprov_drivers::open(&info).unwrap();
    eprintln!("touch the Nitrokey 3 each time it blinks (a delete and a register per write)");
    let key = random_key();
    let expected = expectation(&key, Digits::SIX, OtpHash::Sha1, Factor::Counter(0));
    let verification = write_and_verify(&mut *token, Slot::hotp(2), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: Some(0) });
    assert_eq!(verification.next_counter, Some(1));

    let key = SecretKey::from_slice(b"12345678901234567890123456789012");
    let expected = expectation(&key, Digits::EIGHT, OtpHash::Sha256, Factor::Period(30));
    let verification = write_and_verify(&mut *token, Slot::totp(14), &expected);
    assert_eq!(verification.proof, Proof::OtpMatched { counter: None });
    let slots = token.programmed_slots().unwrap();
    assert!(slots.contains(&(Slot::hotp(2), true)));
    assert!(slots.contains(&(Slot::totp(14), true)));
    token.erase(Slot::hotp(2)).unwrap();
    token.erase(Slot::totp(14)).unwrap();
}
