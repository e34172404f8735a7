//! Authentication Code (RFC 6063 §3.4.1.1): the TLV string a user types, carrying the ClientID,
//! the one-time password and an optional checksum.
//!
//! Each TLV is one hex character of type, two hex characters giving the number of hex
//! characters in the value, then the value. Non-hex input is SASLprep-ed, UTF-8 encoded and
//! hex encoded. The ClientID and password used everywhere else (in `<ClientID>`, in the AD MAC,
//! in PBKDF2) are the TLV *value strings* as written; see docs/dskpp.md (decision D5).

use zeroize::Zeroizing;

use crate::secret::Secret;

const TYPE_CLIENT_ID: char = '1';
const TYPE_PASSWORD: char = '2';
const TYPE_CHECKSUM: char = '3';
/// Longest value a two-hex-digit length can announce.
const MAX_VALUE_LEN: usize = 255;

/// A decoded Authentication Code.
#[derive(Clone)]
pub struct AuthenticationCode {
    /// The ClientID value string (hex characters).
    pub client_id: String,
    /// The one-time password value string (hex characters).
    pub password: Secret,
}

impl std::fmt::Debug for AuthenticationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticationCode")
            .field("client_id", &self.client_id)
            .field("password", &self.password)
            .finish()
    }
}

/// Why an Authentication Code was refused. Messages never contain the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcError {
    /// A character outside 0-9, A-F, a-f.
    #[error("authentication code contains a non-hex character at position {0}")]
    NotHex(usize),
    /// The string ends inside a TLV.
    #[error("authentication code is truncated in the TLV starting at position {0}")]
    Truncated(usize),
    /// A mandatory TLV is missing.
    #[error("authentication code has no {0} TLV")]
    Missing(&'static str),
    /// A standard TLV appears twice.
    #[error("authentication code repeats the {0} TLV")]
    Repeated(&'static str),
    /// A type that is neither standard nor vendor-specific (high bit set).
    #[error("authentication code has unknown TLV type {0}")]
    UnknownType(char),
    /// The checksum TLV does not match.
    #[error("authentication code checksum does not match (typing error?)")]
    Checksum,
    /// A value longer than 255 hex characters, or empty.
    #[error("authentication code {0} value must have 1 to 255 hex characters")]
    ValueLength(&'static str),
    /// SASLprep refused the input.
    #[error("{0} is not a valid SASLprep string")]
    Saslprep(&'static str),
}

/// The TLV value for user input: hex input is kept, anything else is SASLprep-ed, UTF-8 encoded
/// and written as upper-case hex.
pub fn tlv_value(input: &str, what: &'static str) -> Result<Zeroizing<String>, AcError> {
    if !input.is_empty() && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Zeroizing::new(input.to_string()));
    }
    let prepared = stringprep::saslprep(input).map_err(|_| AcError::Saslprep(what))?;
    Ok(Zeroizing::new(hex::encode_upper(prepared.as_bytes())))
}

/// Builds the Authentication Code string; `checksum` appends the CRC TLV.
pub fn encode(
    client_id: &str,
    password: &str,
    checksum: bool,
) -> Result<Zeroizing<String>, AcError> {
    let id = tlv_value(client_id, "ClientID")?;
    let pw = tlv_value(password, "password")?;
    let mut out = Zeroizing::new(String::new());
    push_tlv(&mut out, TYPE_CLIENT_ID, &id, "ClientID")?;
    push_tlv(&mut out, TYPE_PASSWORD, &pw, "password")?;
    if checksum {
        let crc = format!("{:04X}", crc16_x25(out.as_bytes()));
        push_tlv(&mut out, TYPE_CHECKSUM, &crc, "checksum")?;
    }
    Ok(out)
}

fn push_tlv(out: &mut String, t: char, value: &str, what: &'static str) -> Result<(), AcError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(AcError::ValueLength(what));
    }
    out.push(t);
    out.push_str(&format!("{:02X}", value.len()));
    out.push_str(value);
    Ok(())
}

/// Parses an Authentication Code; vendor TLVs (type 8-F) are skipped, the checksum (if any) is
/// verified over everything before it.
pub fn parse(code: &str) -> Result<AuthenticationCode, AcError> {
    let code = code.trim();
    if let Some(pos) = code.bytes().position(|b| !b.is_ascii_hexdigit()) {
        return Err(AcError::NotHex(pos));
    }
    let (mut client_id, mut password) = (None, None);
    let mut pos = 0;
    while pos < code.len() {
        if pos + 3 > code.len() {
            return Err(AcError::Truncated(pos));
        }
        let t = char::from(code.as_bytes()[pos]).to_ascii_uppercase();
        // Two hex digits, checked above.
        let len = usize::from_str_radix(&code[pos + 1..pos + 3], 16).expect("hex digits");
        let start = pos + 3;
        let end = start + len;
        if end > code.len() {
            return Err(AcError::Truncated(pos));
        }
        let value = &code[start..end];
        match t {
            TYPE_CLIENT_ID => set_once(&mut client_id, value, "ClientID")?,
            TYPE_PASSWORD => set_once(&mut password, value, "password")?,
            TYPE_CHECKSUM => {
                let expected = format!("{:04X}", crc16_x25(&code.as_bytes()[..pos]));
                if !value.eq_ignore_ascii_case(&expected) {
                    return Err(AcError::Checksum);
                }
            }
            '8'..='9' | 'A'..='F' => {}
            other => return Err(AcError::UnknownType(other)),
        }
        pos = end;
    }
    let client_id = client_id.ok_or(AcError::Missing("ClientID"))?;
    let password = password.ok_or(AcError::Missing("password"))?;
    if client_id.is_empty() {
        return Err(AcError::ValueLength("ClientID"));
    }
    if password.is_empty() {
        return Err(AcError::ValueLength("password"));
    }
    Ok(AuthenticationCode {
        client_id: client_id.to_string(),
        password: Secret::from_slice(password.as_bytes()),
    })
}

fn set_once<'a>(
    slot: &mut Option<&'a str>,
    value: &'a str,
    what: &'static str,
) -> Result<(), AcError> {
    if slot.replace(value).is_some() {
        return Err(AcError::Repeated(what));
    }
    Ok(())
}

/// CRC-16/X-25 (the ISO 3309 HDLC frame check sequence): reflected polynomial 0x8408, initial
/// value 0xFFFF, final XOR 0xFFFF. Chosen for the checksum TLV, see docs/dskpp.md (D6).
pub fn crc16_x25(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_encodes() {
        let code = encode("AC00000A", "3582AF0C3E", false).unwrap();
        assert_eq!(code.as_str(), "108AC00000A20A3582AF0C3E");
    }

    #[test]
    fn rfc_example_parses() {
        let ac = parse("108AC00000A20A3582AF0C3E").unwrap();
        assert_eq!(ac.client_id, "AC00000A");
        assert_eq!(ac.password.expose(), b"3582AF0C3E");
    }

    #[test]
    fn non_hex_input_goes_through_saslprep_and_hex() {
        let code = encode("myclient!D", "mYpas&#rD", false).unwrap();
        assert_eq!(
            code.as_str(),
            "1146D79636C69656E7421442126D5970617326237244"
        );
        let ac = parse(&code).unwrap();
        assert_eq!(ac.client_id, "6D79636C69656E742144");
    }

    #[test]
    fn saslprep_maps_non_ascii_space() {
        // U+00A0 NO-BREAK SPACE maps to U+0020 under SASLprep.
        let v = tlv_value("a\u{00A0}b", "ClientID").unwrap();
        assert_eq!(v.as_str(), "612062");
    }

    #[test]
    fn crc16_x25_check_value() {
        // The catalogue check value of CRC-16/X-25 over "123456789".
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
    }

    #[test]
    fn checksum_round_trips_and_catches_typos() {
        let code = encode("AC00000A", "3582AF0C3E", true).unwrap();
        assert_eq!(code.len(), 24 + 7);
        assert!(parse(&code).is_ok());
        let typo = code.replacen("3582", "3583", 1);
        assert_eq!(parse(&typo).unwrap_err(), AcError::Checksum);
    }

    #[test]
    fn malformed_codes() {
        assert_eq!(
            parse("108AC00000A").unwrap_err(),
            AcError::Missing("password")
        );
        assert_eq!(parse("108AC0000").unwrap_err(), AcError::Truncated(0));
        assert_eq!(parse("108AC00000AZ").unwrap_err(), AcError::NotHex(11));
        assert_eq!(parse("501A").unwrap_err(), AcError::UnknownType('5'));
        assert_eq!(
            parse("108AC00000A108AC00000A").unwrap_err(),
            AcError::Repeated("ClientID")
        );
        // Vendor TLV (high bit set) is skipped.
        let ac = parse("8021F108AC00000A20A3582AF0C3E").unwrap();
        assert_eq!(ac.client_id, "AC00000A");
    }
}
