//! CTAPHID framing (FIDO CTAP 2.1 §11.2.4): a message of up to 7609 bytes travels in 64-byte
//! HID reports, an initialization packet `CID(4) | 0x80|CMD | BCNT(2, BE) | data(57)` followed by
//! continuation packets `CID(4) | SEQ(0..=127) | data(59)`. Channels are allocated with
//! CTAPHID_INIT on the broadcast channel; while a request is processed the device sends
//! KEEPALIVE packets, and ERROR reports a framing fault.
//!
//! Both sides use this module: the Nitrokey 3 driver splits requests and assembles responses,
//! the emulator assembles requests and splits responses.

use std::fmt;

/// Size of one CTAPHID report (FIDO HID report descriptor: 64-byte input and output reports).
pub const PACKET_SIZE: usize = 64;
/// Data bytes in an initialization packet.
pub const INIT_DATA: usize = PACKET_SIZE - 7;
/// Data bytes in a continuation packet.
pub const CONT_DATA: usize = PACKET_SIZE - 5;
/// Longest message: one initialization packet and 128 continuation packets (§11.2.4).
pub const MAX_MESSAGE: usize = INIT_DATA + 128 * CONT_DATA;
/// The broadcast channel, on which CTAPHID_INIT allocates a channel.
pub const BROADCAST_CID: u32 = 0xFFFF_FFFF;
/// Bit 7 of byte 4 marks an initialization packet.
pub const TYPE_INIT: u8 = 0x80;

/// CTAPHID commands (without the 0x80 type bit), CTAP 2.1 §11.2.9.
pub mod command {
    /// Echo.
    pub const PING: u8 = 0x01;
    /// CTAP1/U2F message.
    pub const MSG: u8 = 0x03;
    /// Channel allocation: 8-byte nonce in, 17 bytes out.
    pub const INIT: u8 = 0x06;
    /// Blink.
    pub const WINK: u8 = 0x08;
    /// CTAP2 CBOR message.
    pub const CBOR: u8 = 0x10;
    /// Cancel the outstanding request of the channel.
    pub const CANCEL: u8 = 0x11;
    /// Sent by the device while it processes a request (status byte).
    pub const KEEPALIVE: u8 = 0x3B;
    /// Sent by the device on a framing error (error byte).
    pub const ERROR: u8 = 0x3F;
    /// Nitrokey 3 vendor command carrying Secrets App APDUs (`trussed-secrets-app`
    /// `src/ctaphid.rs` `OTP_CCID = VendorCommand::H70`; pynitrokey `App.SECRETS = 0x70`).
    pub const SECRETS: u8 = 0x70;
}

/// KEEPALIVE status bytes (CTAP 2.1 §11.2.9.2.1).
pub mod keepalive {
    /// The device is processing the request.
    pub const PROCESSING: u8 = 1;
    /// The device waits for a touch (user presence).
    pub const UP_NEEDED: u8 = 2;
}

/// ERROR codes (CTAP 2.1 §11.2.9.2.2 and §8.2 error table).
pub mod error {
    /// The command is not known.
    pub const INVALID_CMD: u8 = 0x01;
    /// A parameter is invalid.
    pub const INVALID_PAR: u8 = 0x02;
    /// BCNT is invalid.
    pub const INVALID_LEN: u8 = 0x03;
    /// A continuation packet arrived out of sequence.
    pub const INVALID_SEQ: u8 = 0x04;
    /// The message was not completed in time.
    pub const MSG_TIMEOUT: u8 = 0x05;
    /// Another channel holds the device.
    pub const CHANNEL_BUSY: u8 = 0x06;
    /// The channel is not allocated.
    pub const INVALID_CHANNEL: u8 = 0x0B;
    /// Unspecified error.
    pub const OTHER: u8 = 0x7F;

    /// The error's name in the CTAP specification.
    pub fn name(code: u8) -> &'static str {
        match code {
            INVALID_CMD => "ERR_INVALID_CMD",
            INVALID_PAR => "ERR_INVALID_PAR",
            INVALID_LEN => "ERR_INVALID_LEN",
            INVALID_SEQ => "ERR_INVALID_SEQ",
            MSG_TIMEOUT => "ERR_MSG_TIMEOUT",
            CHANNEL_BUSY => "ERR_CHANNEL_BUSY",
            INVALID_CHANNEL => "ERR_INVALID_CHANNEL",
            _ => "ERR_OTHER",
        }
    }
}

/// One report as it arrives, decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Initialization packet: the first of a message.
    Init {
        /// Channel.
        cid: u32,
        /// Command without the type bit.
        cmd: u8,
        /// Length of the whole message.
        bcnt: u16,
        /// The packet's data bytes (57, the unused tail included).
        data: &'a [u8],
    },
    /// Continuation packet.
    Cont {
        /// Channel.
        cid: u32,
        /// Sequence number 0..=127.
        seq: u8,
        /// The packet's data bytes (59).
        data: &'a [u8],
    },
}

impl fmt::Debug for Packet<'_> {
    /// Only the header: the data may carry key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Init { cid, cmd, bcnt, .. } => {
                write!(f, "Init(cid {cid:08x}, cmd {cmd:#04x}, bcnt {bcnt})")
            }
            Packet::Cont { cid, seq, .. } => write!(f, "Cont(cid {cid:08x}, seq {seq})"),
        }
    }
}

impl<'a> Packet<'a> {
    /// Decodes a 64-byte report; `None` when it is shorter than a header.
    pub fn parse(report: &'a [u8]) -> Option<Packet<'a>> {
        let report = report.get(..PACKET_SIZE.min(report.len()))?;
        let cid = u32::from_be_bytes(report.get(..4)?.try_into().ok()?);
        let byte4 = *report.get(4)?;
        if byte4 & TYPE_INIT != 0 {
            let bcnt = u16::from_be_bytes([*report.get(5)?, *report.get(6)?]);
            let data = &report[7..];
            let cmd = byte4 & !TYPE_INIT;
            return Some(Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            });
        }
        let data = &report[5..];
        Some(Packet::Cont {
            cid,
            seq: byte4,
            data,
        })
    }

    /// The packet's channel.
    pub fn cid(&self) -> u32 {
        match self {
            Packet::Init { cid, .. } | Packet::Cont { cid, .. } => *cid,
        }
    }
}

/// Splits a message into 64-byte reports: one initialization packet, then continuation
/// packets with SEQ 0, 1, ...; unused bytes are zero. The caller zeroizes the reports when
/// the message is secret.
pub fn split(cid: u32, cmd: u8, data: &[u8]) -> Result<Vec<[u8; PACKET_SIZE]>, FramingError> {
    if data.len() > MAX_MESSAGE {
        return Err(FramingError::TooLong(data.len()));
    }
    let mut packets = Vec::with_capacity(1 + data.len().saturating_sub(INIT_DATA) / CONT_DATA + 1);
    let mut first = [0u8; PACKET_SIZE];
    first[..4].copy_from_slice(&cid.to_be_bytes());
    first[4] = TYPE_INIT | cmd;
    // At most 7609 bytes, checked above.
    first[5..7].copy_from_slice(&(data.len() as u16).to_be_bytes());
    let head = data.len().min(INIT_DATA);
    first[7..7 + head].copy_from_slice(&data[..head]);
    packets.push(first);
    for (seq, chunk) in data[head..].chunks(CONT_DATA).enumerate() {
        let mut packet = [0u8; PACKET_SIZE];
        packet[..4].copy_from_slice(&cid.to_be_bytes());
        // At most 128 chunks after the size check.
        packet[4] = seq as u8;
        packet[5..5 + chunk.len()].copy_from_slice(chunk);
        packets.push(packet);
    }
    Ok(packets)
}

/// What went wrong while framing or assembling a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The message is longer than CTAPHID allows.
    TooLong(usize),
    /// A continuation packet arrived before an initialization packet.
    UnexpectedContinuation,
    /// A continuation packet had the wrong sequence number.
    WrongSequence {
        /// The number expected.
        expected: u8,
        /// The number received.
        got: u8,
    },
    /// BCNT is larger than a message can be.
    BadLength(u16),
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::TooLong(n) => write!(f, "message of {n} bytes exceeds {MAX_MESSAGE}"),
            FramingError::UnexpectedContinuation => {
                f.write_str("continuation packet without an initialization packet")
            }
            FramingError::WrongSequence { expected, got } => {
                write!(f, "continuation SEQ {got}, expected {expected}")
            }
            FramingError::BadLength(n) => write!(f, "BCNT {n} exceeds {MAX_MESSAGE}"),
        }
    }
}

/// A complete message on one channel.
pub struct Message {
    /// Channel.
    pub cid: u32,
    /// Command without the type bit.
    pub cmd: u8,
    /// The data, exactly BCNT bytes (wiped on drop: requests carry keys).
    pub data: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Message(cid {:08x}, cmd {:#04x}, {} bytes)",
            self.cid,
            self.cmd,
            self.data.len()
        )
    }
}

/// Reassembles one message from its packets (CTAP 2.1 §11.2.4).
#[derive(Default)]
pub struct Assembler {
    partial: Option<Message>,
    expected_len: usize,
    next_seq: u8,
}

impl Assembler {
    /// Starts a message with its initialization packet; returns it when it fits in one.
    pub fn start(
        &mut self,
        cid: u32,
        cmd: u8,
        bcnt: u16,
        data: &[u8],
    ) -> Result<Option<Message>, FramingError> {
        let len = usize::from(bcnt);
        if len > MAX_MESSAGE {
            return Err(FramingError::BadLength(bcnt));
        }
        let head = len.min(INIT_DATA).min(data.len());
        let mut message = Message {
            cid,
            cmd,
            data: zeroize::Zeroizing::new(Vec::with_capacity(len)),
        };
        message.data.extend_from_slice(&data[..head]);
        self.expected_len = len;
        self.next_seq = 0;
        if message.data.len() >= len {
            self.partial = None;
            return Ok(Some(message));
        }
        self.partial = Some(message);
        Ok(None)
    }

    /// Adds a continuation packet; returns the message once BCNT bytes arrived.
    pub fn push(&mut self, seq: u8, data: &[u8]) -> Result<Option<Message>, FramingError> {
        let Some(message) = self.partial.as_mut() else {
            return Err(FramingError::UnexpectedContinuation);
        };
        if seq != self.next_seq {
            let expected = self.next_seq;
            self.partial = None;
            return Err(FramingError::WrongSequence { expected, got: seq });
        }
        self.next_seq += 1;
        let take = (self.expected_len - message.data.len()).min(data.len());
        message.data.extend_from_slice(&data[..take]);
        if message.data.len() >= self.expected_len {
            return Ok(self.partial.take());
        }
        Ok(None)
    }

    /// The channel of the message being assembled, if any.
    pub fn channel(&self) -> Option<u32> {
        self.partial.as_ref().map(|m| m.cid)
    }

    /// Drops a half-received message.
    pub fn reset(&mut self) {
        self.partial = None;
    }
}

/// The 17-byte CTAPHID_INIT response (CTAP 2.1 §11.2.9.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitResponse {
    /// The nonce of the request.
    pub nonce: [u8; 8],
    /// The allocated channel.
    pub cid: u32,
    /// CTAPHID protocol version (2).
    pub protocol: u8,
    /// Device version major, minor, build.
    pub version: [u8; 3],
    /// Capability flags (0x01 WINK, 0x04 CBOR, 0x08 NMSG).
    pub capabilities: u8,
}

impl InitResponse {
    /// Encodes the response data.
    pub fn to_bytes(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..8].copy_from_slice(&self.nonce);
        out[8..12].copy_from_slice(&self.cid.to_be_bytes());
        out[12] = self.protocol;
        out[13..16].copy_from_slice(&self.version);
        out[16] = self.capabilities;
        out
    }

    /// Decodes response data of at least 17 bytes.
    pub fn parse(data: &[u8]) -> Option<InitResponse> {
        let data: &[u8; 17] = data.get(..17)?.try_into().ok()?;
        Some(InitResponse {
            nonce: data[..8].try_into().ok()?,
            cid: u32::from_be_bytes(data[8..12].try_into().ok()?),
            protocol: data[12],
            version: [data[13], data[14], data[15]],
            capabilities: data[16],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CTAPHID_INIT on the broadcast channel with nonce 01..08, as python-fido2 and every
    /// FIDO host sends it: `ffffffff 86 0008 0102030405060708` then zeros.
    #[test]
    fn init_request_bytes() {
        let packets = split(BROADCAST_CID, command::INIT, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(packets.len(), 1);
        let expected = hex::decode("ffffffff860008 0102030405060708".replace(' ', "")).unwrap();
        assert_eq!(&packets[0][..15], expected.as_slice());
        assert!(packets[0][15..].iter().all(|&b| b == 0));
    }

    /// A 100-byte Secrets App message on channel 0x01020304: 57 bytes in the init packet
    /// (`01020304 f0 0064`), 43 in continuation SEQ 0 (`01020304 00`).
    #[test]
    fn split_and_assemble_a_two_packet_message() {
        let data: Vec<u8> = (0..100u8).collect();
        let packets = split(0x0102_0304, command::SECRETS, &data).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0][..7], [1, 2, 3, 4, 0xf0, 0x00, 0x64]);
        assert_eq!(packets[0][7], 0);
        assert_eq!(packets[0][63], 56);
        assert_eq!(packets[1][..6], [1, 2, 3, 4, 0x00, 57]);
        assert_eq!(packets[1][5 + 42], 99);
        assert!(packets[1][5 + 43..].iter().all(|&b| b == 0));

        let mut assembler = Assembler::default();
        let Some(Packet::Init {
            cid,
            cmd,
            bcnt,
            data: first,
        }) = Packet::parse(&packets[0])
        else {
            panic!("init packet");
        };
        assert!(assembler.start(cid, cmd, bcnt, first).unwrap().is_none());
        let Some(Packet::Cont {
            seq, data: rest, ..
        }) = Packet::parse(&packets[1])
        else {
            panic!("continuation packet");
        };
        let message = assembler.push(seq, rest).unwrap().expect("complete");
        assert_eq!((message.cid, message.cmd), (0x0102_0304, command::SECRETS));
        assert_eq!(message.data.as_slice(), data.as_slice());
    }

    #[test]
    fn sequence_errors_and_limits() {
        let mut assembler = Assembler::default();
        assert_eq!(
            assembler.push(0, &[0; 59]).unwrap_err(),
            FramingError::UnexpectedContinuation
        );
        assembler.start(7, command::SECRETS, 200, &[0; 57]).unwrap();
        let err = assembler.push(1, &[0; 59]).unwrap_err();
        assert_eq!(
            err,
            FramingError::WrongSequence {
                expected: 0,
                got: 1
            }
        );
        assert_eq!(
            split(7, command::SECRETS, &vec![0; MAX_MESSAGE + 1]).unwrap_err(),
            FramingError::TooLong(MAX_MESSAGE + 1)
        );
        let longest = split(7, command::SECRETS, &vec![0; MAX_MESSAGE]).unwrap();
        assert_eq!(longest.len(), 129);
        assert_eq!(longest[128][4], 127);
    }

    #[test]
    fn init_response_round_trip() {
        let response = InitResponse {
            nonce: [8, 7, 6, 5, 4, 3, 2, 1],
            cid: 0x0000_0001,
            protocol: 2,
            version: [1, 7, 0],
            capabilities: 0x05,
        };
        let bytes = response.to_bytes();
        assert_eq!(
            hex::encode(bytes),
            "08070605040302010000000102010700 05".replace(' ', "")
        );
        assert_eq!(InitResponse::parse(&bytes), Some(response));
    }
}
