//! [`Token`] for the Nitrokey 3 Secrets App: slots are credential ids (`keyprov-hotp-0..2`,
//! `keyprov-totp-0..14`), a write replaces the credential (Put refuses an existing id, so the
//! old one is deleted first), verification is a Calculate compared with the RFC value.

use super::apdu::{Put, kind};
use super::{HOTP_SLOTS, MAX_KEY_LEN, Nitrokey3, TOTP_SLOTS, credential_id, slot_of, unix_now};
use crate::error::{Error, Result};
use crate::otp::{Digits, OtpHash, hotp_with, otp_matches};
use crate::secret::SecretKey;
use crate::token::{
    Capabilities, Credential, CredentialKind, Expected, Factor, OtpKind, Presence, Slot, Token,
    TokenInfo, Verification, all_slots, factor_mismatch, free_indices,
};

impl Nitrokey3 {
    fn check_slot(&self, slot: Slot) -> Result<()> {
        let limit = match slot.kind {
            OtpKind::Hotp => HOTP_SLOTS,
            OtpKind::Totp => TOTP_SLOTS,
        };
        if slot.index >= limit {
            return Err(Error::InvalidArgument(format!(
                "{}: slot {slot} (Nitrokey 3 slots here: hotp 0–{}, totp 0–{})",
                self.device(),
                HOTP_SLOTS - 1,
                TOTP_SLOTS - 1
            )));
        }
        Ok(())
    }

    /// Deletes the slot's credential if List shows one, then Puts the new one. Each of the
    /// two asks for a touch; Delete asks even for a missing id (`src/authenticator.rs`
    /// `delete` confirms presence before looking), hence the List first.
    fn write_credential(
        &mut self,
        slot: Slot,
        key: &SecretKey,
        counter: Option<u32>,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()> {
        self.check_slot(slot)?;
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!(
                    "a {}-byte key (Nitrokey 3: 1 to {MAX_KEY_LEN} bytes)",
                    key.len()
                ),
            });
        }
        if digits != Digits::SIX && digits != Digits::EIGHT {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!("{} digits (6 or 8)", digits.get()),
            });
        }
        let label = credential_id(slot);
        self.delete_if_listed(label.as_bytes())?;
        let put = Put {
            label: label.as_bytes(),
            kind: if slot.kind == OtpKind::Hotp {
                kind::HOTP
            } else {
                kind::TOTP
            },
            hash,
            digits: digits.get(),
            key: key.expose(),
            counter,
            touch: false,
        };
        self.secrets(&put.to_apdu(), "register credential")?;
        self.forget_free_slots();
        Ok(())
    }

    fn delete_if_listed(&mut self, label: &[u8]) -> Result<()> {
        if self.list()?.iter().any(|entry| entry.label == label) {
            self.delete(label)?;
        }
        Ok(())
    }

    fn forget_free_slots(&mut self) {
        self.info.free_hotp_slots = None;
        self.info.free_totp_slots = None;
    }

    fn mismatch(&self, slot: Slot, what: &str) -> Error {
        Error::Rejected {
            device: self.device(),
            operation: "verify",
            reason: format!("slot {slot}: Calculate differs from the {what} value"),
        }
    }
}

impl Token for Nitrokey3 {
    fn info(&self) -> &TokenInfo {
        &self.info
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hotp_slots: (0..HOTP_SLOTS).collect(),
            totp_slots: (0..TOTP_SLOTS).collect(),
            digits: vec![Digits::SIX, Digits::EIGHT],
            hashes: vec![OtpHash::Sha1, OtpHash::Sha256],
            max_key_len: MAX_KEY_LEN,
            counter_step: 1,
            max_initial_counter: u64::from(u32::MAX),
            reads_code_without_touch: true,
            credential: CredentialKind::Touch,
            atomic_rewrite: false,
        }
    }

    /// Writes are confirmed by a touch on the device, not by a credential: an admin PIN given
    /// for Nitrokeys in general is accepted and unused (the Secrets App PIN only guards
    /// PIN-encrypted credentials, which this driver does not create).
    fn authenticate(&mut self, credential: &Credential) -> Result<()> {
        match credential {
            Credential::AdminPin(_) => Ok(()),
            Credential::AccessCode { .. } => Err(Error::NotSupported {
                device: self.device(),
                what: "a Nitrokey 3 has no access code; writes are confirmed by touch".into(),
            }),
        }
    }

    fn programmed_slots(&mut self) -> Result<Vec<(Slot, bool)>> {
        let entries = self.list()?;
        let used: Vec<Slot> = entries.iter().filter_map(|e| slot_of(&e.label)).collect();
        let out: Vec<(Slot, bool)> = all_slots(HOTP_SLOTS, TOTP_SLOTS)
            .map(|s| (s, used.contains(&s)))
            .collect();
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
        let counter = u32::try_from(initial_counter).map_err(|_| Error::NotSupported {
            device: self.device(),
            what: format!("initial counter {initial_counter} (the Secrets App counter is 32-bit)"),
        })?;
        self.write_credential(Slot::hotp(slot), key, Some(counter), digits, hash)
    }

    /// The period stays on the host: a TOTP credential holds no period, the host sends
    /// `T = time / period` with every Calculate.
    fn write_totp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        period: u32,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()> {
        if period == 0 {
            return Err(Error::InvalidArgument(format!("TOTP period {period} s")));
        }
        self.write_credential(Slot::totp(slot), key, None, digits, hash)
    }

    fn erase(&mut self, slot: Slot) -> Result<()> {
        self.check_slot(slot)?;
        self.delete_if_listed(credential_id(slot).as_bytes())?;
        self.forget_free_slots();
        Ok(())
    }

    fn on_touch_needed(&mut self, prompt: crate::token::TouchPrompt) {
        self.touch_prompt = Some(prompt);
    }

    fn verify(
        &mut self,
        slot: Slot,
        expected: &Expected<'_>,
        _presence: Presence,
    ) -> Result<Verification> {
        self.check_slot(slot)?;
        let key = expected.key.expose();
        let label = credential_id(slot);
        match (slot.kind, expected.factor) {
            (OtpKind::Hotp, Factor::Counter(counter)) => {
                // The device calculates at its own counter and advances it.
                let code = self.calculate(&label, 0)?;
                let value = hotp_with(expected.hash, key, counter, expected.digits);
                if !otp_matches(&code, &value) {
                    return Err(self.mismatch(slot, "RFC 4226"));
                }
                Ok(Verification::hotp_matched(counter))
            }
            (OtpKind::Totp, Factor::Period(period)) if period > 0 => {
                let step = unix_now() / u64::from(period);
                let code = self.calculate(&label, step)?;
                let value = hotp_with(expected.hash, key, step, expected.digits);
                if !otp_matches(&code, &value) {
                    return Err(self.mismatch(slot, "RFC 6238"));
                }
                Ok(Verification::totp_matched())
            }
            _ => Err(factor_mismatch(slot, expected.factor)),
        }
    }
}
