//! [`Token`] for Nitrokey Pro / Storage / Librem Key: slots 0–2 (HOTP) and 0–14 (TOTP),
//! admin-PIN authentication, and verification by GET_CODE against the RFC value.

use zeroize::Zeroizing;

use super::packet::{Request, command};
use super::{HOTP_SLOTS, Model, Nitrokey, PASSWORD_LEN, TOTP_SLOTS, internal_slot, unix_now};
use crate::error::{Error, Result};
use crate::otp::{Digits, OtpHash, hotp_with, otp_matches, totp_with};
use crate::secret::SecretKey;
use crate::token::{
    Capabilities, Credential, CredentialKind, Expected, Factor, OtpKind, Presence, Slot, Token,
    TokenInfo, Verification, all_slots, factor_mismatch, free_indices,
};

impl Nitrokey {
    /// Nitrokey Pro / Storage OTP slots compute HMAC-SHA1 only (libnitrokey has no hash field).
    fn check_hash(&self, hash: OtpHash) -> Result<()> {
        if hash == OtpHash::Sha1 {
            return Ok(());
        }
        Err(Error::NotSupported {
            device: self.device(),
            what: format!("{hash} (Nitrokey Pro/Storage OTP slots are HMAC-SHA1 only)"),
        })
    }
}

impl Token for Nitrokey {
    fn info(&self) -> &TokenInfo {
        &self.info
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hotp_slots: (0..HOTP_SLOTS).collect(),
            totp_slots: (0..TOTP_SLOTS).collect(),
            digits: vec![Digits::SIX, Digits::EIGHT],
            hashes: vec![OtpHash::Sha1],
            max_key_len: self.max_key_len(),
            counter_step: 1,
            max_initial_counter: if self.model == Model::Storage && !self.new_firmware() {
                99_999_999
            } else {
                u64::MAX
            },
            reads_code_without_touch: true,
            credential: CredentialKind::AdminPin,
            atomic_rewrite: true,
        }
    }

    fn authenticate(&mut self, credential: &Credential) -> Result<()> {
        match credential {
            Credential::AdminPin(pin) => self.authenticate_admin(pin),
            Credential::AccessCode { .. } => Err(Error::NotSupported {
                device: self.device(),
                what: "Nitrokey writes are authorized by the admin PIN, not an access code".into(),
            }),
        }
    }

    fn programmed_slots(&mut self) -> Result<Vec<(Slot, bool)>> {
        let mut out = Vec::with_capacity(usize::from(HOTP_SLOTS + TOTP_SLOTS));
        for slot in all_slots(HOTP_SLOTS, TOTP_SLOTS) {
            out.push((slot, self.read_slot(slot)?.is_some()));
        }
        self.info.free_hotp_slots = Some(free_indices(&out, OtpKind::Hotp));
        self.info.free_totp_slots = Some(free_indices(&out, OtpKind::Totp));
        Ok(out)
    }

    fn write_hotp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        initial_counter: u64,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()> {
        self.check_hash(hash)?;
        self.write_slot(Slot::hotp(slot), key, initial_counter, digits)
    }

    fn write_totp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        period: u32,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()> {
        self.check_hash(hash)?;
        if period == 0 || (!self.new_firmware() && period > u32::from(u16::MAX)) {
            return Err(Error::InvalidArgument(format!("TOTP period {period} s")));
        }
        self.write_slot(Slot::totp(slot), key, u64::from(period), digits)
    }

    fn erase(&mut self, slot: Slot) -> Result<()> {
        let internal = internal_slot(slot)?;
        let operation = "erase slot";
        if self.new_firmware() {
            let mut payload = Zeroizing::new([0u8; 1 + PASSWORD_LEN]);
            payload[0] = internal;
            payload[1..].copy_from_slice(&self.temporary_admin(operation)?);
            self.transact(command::ERASE_SLOT, &payload[..], operation)?;
        } else {
            let erase = Request::new(command::ERASE_SLOT, &[internal]);
            self.authorize(erase.crc(), operation)?;
            self.exchange(&erase, operation)?;
        }
        Ok(())
    }

    fn verify(
        &mut self,
        slot: Slot,
        expected: &Expected<'_>,
        _presence: Presence,
    ) -> Result<Verification> {
        let key = expected.key.expose();
        match (slot.kind, expected.factor) {
            (OtpKind::Hotp, Factor::Counter(counter)) => {
                let Some((device_counter, _)) = self.read_slot(slot)? else {
                    let device = self.device();
                    return Err(Error::SlotNotProgrammed {
                        device,
                        slot: slot.to_string(),
                    });
                };
                if device_counter != counter {
                    let detail = format!("device counter {device_counter}, expected {counter}");
                    return Err(self.mismatch(slot, detail));
                }
                let code = self.code(slot, expected.digits, 0)?;
                let value = hotp_with(expected.hash, key, counter, expected.digits);
                if !otp_matches(&code, &value) {
                    return Err(
                        self.mismatch(slot, "GET_CODE differs from the RFC 4226 value".into())
                    );
                }
                Ok(Verification::hotp_matched(counter))
            }
            (OtpKind::Totp, Factor::Period(period)) => {
                let code = self.code(slot, expected.digits, period)?;
                let now = unix_now();
                // Accept the neighbouring step in case the clock ticked between the two.
                let matched = [now, now.saturating_sub(u64::from(period))]
                    .iter()
                    .any(|&t| {
                        let value = totp_with(expected.hash, key, t, period, expected.digits);
                        otp_matches(&code, &value)
                    });
                if !matched {
                    return Err(
                        self.mismatch(slot, "GET_CODE differs from the RFC 6238 value".into())
                    );
                }
                Ok(Verification::totp_matched())
            }
            _ => Err(factor_mismatch(slot, expected.factor)),
        }
    }
}
