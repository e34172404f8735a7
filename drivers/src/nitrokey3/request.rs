//! Requests as the device side of the Secrets App reads them, for the emulator: the command
//! APDU parser and the Put (Register) parser, following `trussed-secrets-app`
//! `src/command.rs`.

use super::apdu::{StatusWord, kind, tag, tlvs};

/// A parsed command APDU (short or extended Lc; Le ignored).
pub struct Apdu<'a> {
    /// Class byte.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// P1.
    pub p1: u8,
    /// P2.
    pub p2: u8,
    /// Command data.
    pub data: &'a [u8],
}

impl<'a> Apdu<'a> {
    /// Parses `CLA INS P1 P2 [Lc data [Le]] | [Le]`.
    pub fn parse(bytes: &'a [u8]) -> Result<Apdu<'a>, StatusWord> {
        let [cla, ins, p1, p2] = bytes
            .get(..4)
            .and_then(|h| <[u8; 4]>::try_from(h).ok())
            .ok_or(StatusWord::WRONG_LENGTH)?;
        let body = &bytes[4..];
        let data = match body.len() {
            0 | 1 => &[][..],
            _ if body[0] != 0 => {
                let lc = usize::from(body[0]);
                body.get(1..1 + lc).ok_or(StatusWord::WRONG_LENGTH)?
            }
            _ => {
                let lc = usize::from(u16::from_be_bytes([
                    *body.get(1).ok_or(StatusWord::WRONG_LENGTH)?,
                    *body.get(2).ok_or(StatusWord::WRONG_LENGTH)?,
                ]));
                body.get(3..3 + lc).ok_or(StatusWord::WRONG_LENGTH)?
            }
        };
        Ok(Apdu {
            cla,
            ins,
            p1,
            p2,
            data,
        })
    }
}

/// A Put as the device parses it (`src/command.rs` `Register::try_from`).
pub struct Register<'a> {
    /// Credential id.
    pub label: &'a [u8],
    /// Kind nibble.
    pub kind: u8,
    /// Algorithm nibble.
    pub algorithm: u8,
    /// Digits.
    pub digits: u8,
    /// Key bytes.
    pub secret: &'a [u8],
    /// Properties byte (0 when absent).
    pub properties: u8,
    /// Initial counter for HOTP kinds (0 when absent, as the firmware defaults it).
    pub counter: Option<u32>,
}

impl<'a> Register<'a> {
    /// Parses Put data: `71`, `73` (at least 3 bytes), optional `78 p`, optional `7A 04` for
    /// HOTP kinds, then only Password Safe tags; anything else is 6A80.
    pub fn parse(data: &'a [u8]) -> Result<Register<'a>, StatusWord> {
        let bad = StatusWord::INCORRECT_DATA;
        let mut rest = data;
        let next = |rest: &mut &'a [u8]| -> Result<(u8, &'a [u8]), StatusWord> {
            let (tag, value) = tlvs(rest).next().ok_or(bad)?.map_err(|_| bad)?;
            let used = value.as_ptr() as usize + value.len() - rest.as_ptr() as usize;
            *rest = &rest[used..];
            Ok((tag, value))
        };
        let (name_tag, label) = next(&mut rest)?;
        let (key_tag, key) = next(&mut rest)?;
        if name_tag != tag::NAME || key_tag != tag::KEY || key.len() < 3 {
            return Err(bad);
        }
        let kind = key[0] & 0xf0;
        let algorithm = key[0] & 0x0f;
        if ![
            kind::HOTP,
            kind::TOTP,
            kind::HOTP_REVERSE,
            kind::HMAC,
            kind::NOT_SET,
        ]
        .contains(&kind)
            || !(1..=3).contains(&algorithm)
        {
            return Err(bad);
        }
        let mut properties = 0;
        if rest.first() == Some(&tag::PROPERTY) {
            properties = *rest.get(1).ok_or(bad)?;
            rest = &rest[2..];
        }
        let hotp = kind == kind::HOTP || kind == kind::HOTP_REVERSE;
        let mut counter = hotp.then_some(0);
        if hotp && rest.first() == Some(&tag::INITIAL_COUNTER) {
            let (_, value) = next(&mut rest)?;
            if let Ok(bytes) = <[u8; 4]>::try_from(value) {
                counter = Some(u32::from_be_bytes(bytes));
            }
        }
        while !rest.is_empty() {
            let (tag, value) = next(&mut rest)?;
            let pws = [tag::PWS_LOGIN, tag::PWS_PASSWORD, tag::PWS_METADATA].contains(&tag);
            if !pws || value.is_empty() {
                return Err(bad);
            }
        }
        Ok(Register {
            label,
            kind,
            algorithm,
            digits: key[1],
            secret: &key[2..],
            properties,
            counter,
        })
    }
}

/// The first TLV of `data` if it has `tag` (Delete and Calculate start with the id).
pub fn leading(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, value) = tlvs(data).next()?.ok()?;
    if found != tag {
        return None;
    }
    let used = value.as_ptr() as usize + value.len() - data.as_ptr() as usize;
    Some((value, &data[used..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_commands_are_refused() {
        assert_eq!(
            Apdu::parse(&[0, 1, 0]).err(),
            Some(StatusWord::WRONG_LENGTH)
        );
        assert_eq!(
            Apdu::parse(&[0, 1, 0, 0, 5, 1]).err(),
            Some(StatusWord::WRONG_LENGTH)
        );
        // Key shorter than header + 1 byte.
        let short = [0x71, 1, b'a', 0x73, 2, 0x11, 6];
        assert_eq!(
            Register::parse(&short).err(),
            Some(StatusWord::INCORRECT_DATA)
        );
        // Unknown kind nibble 0x50.
        let kind = [0x71, 1, b'a', 0x73, 3, 0x51, 6, 1];
        assert_eq!(
            Register::parse(&kind).err(),
            Some(StatusWord::INCORRECT_DATA)
        );
        // A stray tag after the key.
        let stray = [0x71, 1, b'a', 0x73, 3, 0x21, 6, 1, 0x99, 0];
        assert_eq!(
            Register::parse(&stray).err(),
            Some(StatusWord::INCORRECT_DATA)
        );
    }
}
