//! YubiKey slot configuration (`config_st`, 52 bytes) for OATH-HOTP and HMAC-SHA1
//! challenge-response, and the 64-byte payload of a CONFIG_x write.

use std::fmt;

use sha1::{Digest, Sha1};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crc::{CRC16_OK_RESIDUE, crc16};
use crate::error::{Error, Result};
use crate::secret::{AccessCode, SecretKey};

/// Size of `config_st`.
pub const CONFIG_SIZE: usize = 52;

/// Ticket flags.
pub mod tkt {
    /// Append a carriage return after the OTP.
    pub const APPEND_CR: u8 = 0x20;
    /// OATH-HOTP mode (alias CHAL_RESP with the challenge cfg flags).
    pub const OATH_HOTP: u8 = 0x40;
    /// Challenge-response mode (same bit as OATH_HOTP).
    pub const CHAL_RESP: u8 = 0x40;
}

/// Configuration flags (mode-dependent aliases).
pub mod cfg {
    /// OATH: 8 digits instead of 6.
    pub const OATH_HOTP8: u8 = 0x02;
    /// Challenge-response: HMAC with challenges shorter than 64 bytes.
    pub const HMAC_LT64: u8 = 0x04;
    /// Challenge-response: a touch is needed.
    pub const CHAL_BTN_TRIG: u8 = 0x08;
    /// OATH: first byte of the token id typed as modhex.
    pub const OATH_FIXED_MODHEX1: u8 = 0x10;
    /// HMAC-SHA1 challenge-response (0x22 together with 0x20).
    pub const CHAL_HMAC: u8 = 0x22;
    /// Yubico OTP challenge-response.
    pub const CHAL_YUBICO: u8 = 0x20;
    /// OATH: first two bytes of the token id typed as modhex.
    pub const OATH_FIXED_MODHEX2: u8 = 0x40;
    /// OATH: the whole token id typed as modhex.
    pub const OATH_FIXED_MODHEX: u8 = 0x50;
}

/// Extended flags.
pub mod ext {
    /// The serial is readable over the HID API.
    pub const SERIAL_API_VISIBLE: u8 = 0x04;
    /// Type digits with the numeric keypad scan codes.
    pub const USE_NUMERIC_KEYPAD: u8 = 0x08;
    /// Fast trigger (no long-press delay on slot 1).
    pub const FAST_TRIG: u8 = 0x10;
    /// The slot may be changed with UPDATE_x.
    pub const ALLOW_UPDATE: u8 = 0x20;
}

/// A slot configuration, wiped on drop. Field offsets follow `config_st`.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Config {
    /// Public ID / OATH token id (`fixedSize` bytes used).
    pub fixed: [u8; 16],
    /// Private ID; OATH: key bytes 16..20 then the initial moving factor / 16 (big-endian).
    pub uid: [u8; 6],
    /// AES key, or HMAC key bytes 0..16.
    pub key: [u8; 16],
    /// Access code to set.
    pub acc_code: [u8; 6],
    /// Bytes of `fixed` in use.
    pub fixed_size: u8,
    /// Extended flags.
    pub ext_flags: u8,
    /// Ticket flags.
    pub tkt_flags: u8,
    /// Configuration flags.
    pub cfg_flags: u8,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("fixed_size", &self.fixed_size)
            .field("ext_flags", &format_args!("{:#04x}", self.ext_flags))
            .field("tkt_flags", &format_args!("{:#04x}", self.tkt_flags))
            .field("cfg_flags", &format_args!("{:#04x}", self.cfg_flags))
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Places an HMAC-SHA1 key: up to 20 bytes go to `key[0..16]` and `uid[0..4]`
    /// (zero padding is harmless: HMAC pads short keys with zeros); keys over 64 bytes are
    /// first hashed with SHA-1 exactly as HMAC would; 21..=64 bytes do not fit.
    pub fn set_hmac_key(&mut self, key: &SecretKey) -> Result<()> {
        let hashed;
        let bytes = match key.len() {
            0..=20 => key.expose(),
            65.. => {
                hashed = Zeroizing::new(<[u8; 20]>::from(Sha1::digest(key.expose())));
                &hashed[..]
            }
            n => {
                return Err(Error::InvalidArgument(format!(
                    "a YubiKey slot holds HMAC keys of at most 20 bytes (or longer than 64, \
                     hashed); got {n} bytes"
                )));
            }
        };
        let mut padded = Zeroizing::new([0u8; 20]);
        padded[..bytes.len()].copy_from_slice(bytes);
        self.key.copy_from_slice(&padded[..16]);
        self.uid[..4].copy_from_slice(&padded[16..20]);
        Ok(())
    }

    /// The 20-byte HMAC key a slot holds (emulator side).
    pub fn hmac_key(&self) -> Zeroizing<[u8; 20]> {
        let mut key = Zeroizing::new([0u8; 20]);
        key[..16].copy_from_slice(&self.key);
        key[16..].copy_from_slice(&self.uid[..4]);
        key
    }

    /// Sets the OATH initial moving factor (a multiple of 16 up to 0xFFFF0).
    pub fn set_oath_imf(&mut self, imf: u64) -> Result<()> {
        if !imf.is_multiple_of(16) || imf > 0xF_FFF0 {
            return Err(Error::InvalidArgument(format!(
                "YubiKey initial HOTP counter must be a multiple of 16 up to 1048560, got {imf}"
            )));
        }
        // imf <= 0xFFFF0, so imf >> 4 fits in 16 bits.
        self.uid[4..6].copy_from_slice(&((imf >> 4) as u16).to_be_bytes());
        Ok(())
    }

    /// The OATH initial moving factor.
    pub fn oath_imf(&self) -> u64 {
        u64::from(u16::from_be_bytes([self.uid[4], self.uid[5]])) << 4
    }

    /// Sets the OATH token id as ykpersonalize `oath-id`: OMP, TT, then the serial as eight
    /// BCD digits; marks the first two bytes as modhex and makes the serial API-visible.
    pub fn set_oath_token_id(&mut self, omp: u8, tt: u8, serial: u32) {
        let digits = format!("{:08}", serial % 100_000_000);
        self.fixed = [0; 16];
        self.fixed[0] = omp;
        self.fixed[1] = tt;
        for (i, pair) in digits.as_bytes().chunks(2).enumerate() {
            self.fixed[2 + i] = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
        }
        self.fixed_size = 6;
        self.cfg_flags |= cfg::OATH_FIXED_MODHEX2;
        self.ext_flags |= ext::SERIAL_API_VISIBLE;
    }

    /// Serializes to the 52 bytes with `~crc16` of the first 50 stored little-endian.
    pub fn to_bytes(&self) -> Zeroizing<[u8; CONFIG_SIZE]> {
        let mut out = Zeroizing::new([0u8; CONFIG_SIZE]);
        out[0..16].copy_from_slice(&self.fixed);
        out[16..22].copy_from_slice(&self.uid);
        out[22..38].copy_from_slice(&self.key);
        out[38..44].copy_from_slice(&self.acc_code);
        out[44] = self.fixed_size;
        out[45] = self.ext_flags;
        out[46] = self.tkt_flags;
        out[47] = self.cfg_flags;
        let crc = !crc16(&out[..50]);
        out[50..52].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses 52 bytes, checking the CRC residue (emulator side). `None` if the CRC is bad.
    pub fn parse(bytes: &[u8]) -> Option<Config> {
        if bytes.len() != CONFIG_SIZE || crc16(bytes) != CRC16_OK_RESIDUE {
            return None;
        }
        let mut config = Config::default();
        config.fixed.copy_from_slice(&bytes[0..16]);
        config.uid.copy_from_slice(&bytes[16..22]);
        config.key.copy_from_slice(&bytes[22..38]);
        config.acc_code.copy_from_slice(&bytes[38..44]);
        config.fixed_size = bytes[44];
        config.ext_flags = bytes[45];
        config.tkt_flags = bytes[46];
        config.cfg_flags = bytes[47];
        Some(config)
    }

    /// True for an OATH-HOTP configuration.
    pub fn is_oath_hotp(&self) -> bool {
        self.tkt_flags & tkt::OATH_HOTP != 0 && self.cfg_flags & cfg::CHAL_YUBICO == 0
    }

    /// True for an HMAC-SHA1 challenge-response configuration.
    pub fn is_chal_hmac(&self) -> bool {
        self.tkt_flags & tkt::CHAL_RESP != 0 && self.cfg_flags & cfg::CHAL_HMAC == cfg::CHAL_HMAC
    }
}

/// Payload of a CONFIG_x write: the configuration (or 52 zero bytes to delete the slot) and
/// the access code currently protecting the slot (zeros if none), zero-padded to 64.
pub fn write_payload(config: Option<&Config>, current: Option<&AccessCode>) -> Zeroizing<Vec<u8>> {
    let mut payload = Zeroizing::new(vec![0u8; 64]);
    if let Some(config) = config {
        payload[..CONFIG_SIZE].copy_from_slice(&config.to_bytes()[..]);
    }
    if let Some(code) = current {
        payload[CONFIG_SIZE..CONFIG_SIZE + 6].copy_from_slice(code.expose());
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yubikey::frame::{Frame, SEQUENCE_MASK, command};

    /// ykpers `tests/test_args_to_config.c` `_test_oath_hotp_nist_160_bits`: key 30..43,
    /// `-ooath-hotp -o-append-cr`, firmware 2.1.0 (no ext flags, no modhex token id).
    fn nist_160_bit_config() -> Config {
        let key: Vec<u8> = (0x30..=0x43).collect();
        let mut config = Config {
            tkt_flags: tkt::OATH_HOTP,
            ..Config::default()
        };
        config.set_hmac_key(&SecretKey::new(key)).unwrap();
        config
    }

    #[test]
    fn ykpers_oath_hotp_vector_config_bytes() {
        let bytes = nist_160_bit_config().to_bytes();
        assert_eq!(&bytes[16..22], &[0x40, 0x41, 0x42, 0x43, 0, 0]);
        assert_eq!(&bytes[22..38], &(0x30..0x40).collect::<Vec<u8>>()[..]);
        assert_eq!(bytes[46], 0x40);
        assert_eq!(&bytes[50..52], &[0x6a, 0xb9]);
        assert_eq!(crc16(&bytes[..]), 0xF0B8);
    }

    #[test]
    fn ykpers_oath_hotp_vector_frame() {
        let payload = write_payload(Some(&nist_160_bit_config()), None);
        let frame = Frame::new(command::CONFIG_1, &payload);
        assert_eq!(frame.crc(), 0x5695);
        let reports = frame.reports();
        let seqs: Vec<u8> = reports.iter().map(|r| r[7] & SEQUENCE_MASK).collect();
        assert_eq!(seqs, vec![0, 2, 3, 4, 5, 6, 7, 9]);
        // Chunk 9 holds frame bytes 63..70: payload[63], command, CRC 95 56, filler.
        assert_eq!(&reports[7][..7], &[0x00, 0x01, 0x95, 0x56, 0, 0, 0]);
    }

    #[test]
    fn imf_is_stored_divided_by_sixteen_big_endian() {
        let mut config = Config::default();
        config.set_oath_imf(0x1230).unwrap();
        assert_eq!(&config.uid[4..6], &[0x01, 0x23]);
        assert_eq!(config.oath_imf(), 0x1230);
        assert!(config.set_oath_imf(17).is_err());
        assert!(config.set_oath_imf(0x10_0000).is_err());
    }

    #[test]
    fn keys_of_21_to_64_bytes_do_not_fit() {
        let mut config = Config::default();
        assert!(config.set_hmac_key(&SecretKey::new(vec![1; 32])).is_err());
        assert!(config.set_hmac_key(&SecretKey::new(vec![1; 65])).is_ok());
    }

    #[test]
    fn token_id_is_omp_tt_and_bcd_serial() {
        let mut config = Config::default();
        config.set_oath_token_id(0xe1, 0x63, 1234567);
        assert_eq!(&config.fixed[..6], &[0xe1, 0x63, 0x01, 0x23, 0x45, 0x67]);
        assert_eq!(config.fixed_size, 6);
    }
}
