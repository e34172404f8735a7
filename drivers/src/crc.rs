//! The two checksums of the HID protocols: YubiKey's CRC-16 (ISO 13239 / X.25 register,
//! as ykcore implements it) and the STM32 hardware CRC-32 that Nitrokey reports carry.

/// Residue of `crc16(data ‖ ~crc16(data) as LE)` when the data is intact (`CRC_OK_RESIDUAL`).
pub const CRC16_OK_RESIDUE: u16 = 0xF0B8;

/// ykcore `yubikey_crc16`: init 0xFFFF, reflected polynomial 0x8408, no final xor.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

/// libnitrokey `stm_crc32`: init 0xFFFFFFFF, polynomial 0x04C11DB7 MSB first, no reflection,
/// no final xor, over 32-bit little-endian words. A trailing partial word is zero-padded
/// (reports always hash whole words).
pub fn stm32_crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xffff_ffff;
    for chunk in data.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        crc ^= u32::from_le_bytes(word);
        for _ in 0..32 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_residue_over_data_and_inverted_crc() {
        let data = b"123456789";
        let stored = !crc16(data);
        let mut framed = data.to_vec();
        framed.extend_from_slice(&stored.to_le_bytes());
        assert_eq!(crc16(&framed), CRC16_OK_RESIDUE);
        // CRC-16/X-25 (same register, final xor 0xFFFF) check value for "123456789".
        assert_eq!(!crc16(data), 0x906E);
    }

    #[test]
    fn stm32_crc32_known_values() {
        // The STM32 CRC unit over the single word 0x00000000 and 0xFFFFFFFF, and over the
        // word sequence of a zeroed 60-byte Nitrokey GET_STATUS report body; the first two are
        // the CRC-32/MPEG-2 check values for the bytes 00 00 00 00 and FF FF FF FF (a single
        // word in big-endian order is the same bit stream MPEG-2 hashes).
        assert_eq!(stm32_crc32(&[0, 0, 0, 0]), 0xC704DD7B);
        assert_eq!(stm32_crc32(&[0xff; 4]), 0xFFFFFFFF ^ 0xFFFFFFFF);
        // Word order: the little-endian word 0x04030201 hashes like MPEG-2 over 04 03 02 01.
        assert_eq!(stm32_crc32(&[1, 2, 3, 4]), crc32_mpeg2(&[4, 3, 2, 1]));
    }

    /// fwupd's self-test values for its Nitrokey CRC (same STM32 algorithm).
    #[test]
    fn stm32_crc32_fwupd_vectors() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(stm32_crc32(&bytes), 0x081B46CA);
        assert_eq!(stm32_crc32(&bytes[..15]), 0xED7320AB);
    }

    /// A GET_DEVICE_STATUS response captured from a Nitrokey Storage 0.53 (fwupd test data):
    /// its CRC field equals the STM32 CRC of the 60 bytes before it.
    #[test]
    fn stm32_crc32_of_a_captured_nitrokey_response() {
        let text =
            include_str!("../tests/vectors/fwupd/nitrokey-storage-0.53-get-device-status.hex");
        let bytes = hex::decode(text.split_whitespace().collect::<String>()).unwrap();
        assert_eq!(bytes.len(), 64);
        let stored = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        assert_eq!(stored, 0xa276_2d14);
        assert_eq!(stm32_crc32(&bytes[..60]), stored);
    }

    /// CRC-32/MPEG-2 bytewise (init 0xFFFFFFFF, poly 0x04C11DB7, no reflection, no xorout).
    fn crc32_mpeg2(bytes: &[u8]) -> u32 {
        let mut crc: u32 = 0xffff_ffff;
        for &b in bytes {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn mpeg2_reference_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376E6E7);
        // A whole report is 15 words: the word-wise CRC equals MPEG-2 over byte-swapped words.
        let body: Vec<u8> = (0u8..60).collect();
        let swapped: Vec<u8> = body
            .chunks(4)
            .flat_map(|w| w.iter().rev().copied())
            .collect();
        assert_eq!(stm32_crc32(&body), crc32_mpeg2(&swapped));
    }
}
