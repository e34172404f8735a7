//! [`Token`] for the YubiKey OTP application: OATH-HOTP in slots 1 and 2, access codes,
//! and verification by the OTP a touch types (or by the accepted configuration).

use std::time::{Duration, Instant};

use tracing::debug;

use super::config::{cfg, tkt, write_payload};
use super::{LOOK_AHEAD, YubiKey, config_command, free_slots};
use crate::error::{Error, Result};
use crate::otp::{Digits, OtpHash, hotp_with, otp_matches};
use crate::secret::SecretKey;
use crate::token::{
    Capabilities, Credential, CredentialKind, Expected, Factor, Presence, Proof, Slot, Token,
    TokenInfo, Verification,
};

impl YubiKey {
    /// Waits for a typed line whose last `digits` characters equal the HOTP value of a
    /// counter in `counter..counter + LOOK_AHEAD`. Lines that match nothing (typed by an
    /// earlier touch, or by the other slot) are skipped; if only such lines arrive before
    /// the deadline the OTP is rejected, if none arrives it is a timeout.
    fn verify_by_touch(
        &mut self,
        slot: Slot,
        expected: &Expected<'_>,
        counter: u64,
        timeout: Duration,
    ) -> Result<Verification> {
        let deadline = Instant::now() + timeout;
        let digits = usize::from(expected.digits.get());
        let mut mismatches = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.read_typed_line(left)? else {
                break;
            };
            let typed = line
                .get(line.len().saturating_sub(digits)..)
                .unwrap_or_default();
            for candidate in counter..counter + LOOK_AHEAD {
                let value = hotp_with(
                    expected.hash,
                    expected.key.expose(),
                    candidate,
                    expected.digits,
                );
                if otp_matches(typed, &value) {
                    debug!(device = %self.device(), %slot, candidate, "typed OTP matched");
                    return Ok(Verification::hotp_matched(candidate));
                }
            }
            mismatches += 1;
        }
        if mismatches == 0 {
            return Err(Error::Timeout {
                device: self.device(),
                operation: "wait for a touch",
                waited_ms: timeout.as_millis() as u64,
            });
        }
        Err(Error::Rejected {
            device: self.device(),
            operation: "verify typed OTP",
            reason: format!(
                "{mismatches} typed OTP(s) for slot {slot} match none of counters {counter}..{}",
                counter + LOOK_AHEAD
            ),
        })
    }
}

impl Token for YubiKey {
    fn info(&self) -> &TokenInfo {
        &self.info
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hotp_slots: vec![1, 2],
            totp_slots: Vec::new(),
            digits: vec![Digits::SIX, Digits::EIGHT],
            hashes: vec![OtpHash::Sha1],
            max_key_len: 20,
            counter_step: 16,
            max_initial_counter: 0xF_FFF0,
            reads_code_without_touch: false,
            credential: CredentialKind::AccessCode,
            atomic_rewrite: true,
        }
    }

    fn authenticate(&mut self, credential: &Credential) -> Result<()> {
        match credential {
            Credential::AccessCode { current, new } => {
                self.current_code = current.clone();
                self.new_code = new.clone();
                Ok(())
            }
            Credential::AdminPin(_) => Err(Error::NotSupported {
                device: self.device(),
                what: "a YubiKey OTP slot is protected by an access code, not a PIN".into(),
            }),
        }
    }

    fn programmed_slots(&mut self) -> Result<Vec<(Slot, bool)>> {
        let status = self.read_status()?;
        self.info.free_hotp_slots = Some(free_slots(&status));
        Ok([1, 2]
            .into_iter()
            .map(|s| (Slot::hotp(s), status.slot_valid(s)))
            .collect())
    }

    fn write_hotp(
        &mut self,
        slot: u8,
        key: &SecretKey,
        initial_counter: u64,
        digits: Digits,
        hash: OtpHash,
    ) -> Result<()> {
        if hash != OtpHash::Sha1 {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!("HOTP with {hash} (the YubiKey OATH-HOTP slot is HMAC-SHA1 only)"),
            });
        }
        if digits != Digits::SIX && digits != Digits::EIGHT {
            return Err(Error::NotSupported {
                device: self.device(),
                what: format!("{} digits (YubiKey OATH-HOTP types 6 or 8)", digits.get()),
            });
        }
        let mut config = self.base_config();
        config.set_hmac_key(key)?;
        config.set_oath_imf(initial_counter)?;
        config.tkt_flags = tkt::OATH_HOTP | tkt::APPEND_CR;
        if digits == Digits::EIGHT {
            config.cfg_flags |= cfg::OATH_HOTP8;
        }
        if let Some((omp, tt)) = self.oath_token_id {
            let serial = self.info.serial.parse().map_err(|_| Error::NotSupported {
                device: self.device(),
                what: "an OATH token id without a readable serial".into(),
            })?;
            config.set_oath_token_id(omp, tt, serial);
        }
        self.write_slot(slot, &config)?;
        self.info.free_hotp_slots = Some(free_slots(&self.status));
        Ok(())
    }

    fn write_totp(&mut self, _: u8, _: &SecretKey, _: u32, _: Digits, _: OtpHash) -> Result<()> {
        Err(Error::NotSupported {
            device: self.device(),
            what: "TOTP: the YubiKey OTP application has no clock (use OATH over CCID)".into(),
        })
    }

    fn erase(&mut self, slot: Slot) -> Result<()> {
        self.check_slot(slot.index)?;
        let payload = write_payload(None, self.current_code.as_ref());
        self.write_config(config_command(slot.index), &payload, "delete slot")?;
        self.info.free_hotp_slots = Some(free_slots(&self.status));
        Ok(())
    }

    fn verify(
        &mut self,
        slot: Slot,
        expected: &Expected<'_>,
        presence: Presence,
    ) -> Result<Verification> {
        self.check_slot(slot.index)?;
        let Factor::Counter(counter) = expected.factor else {
            return Err(Error::NotSupported {
                device: self.device(),
                what: "TOTP".into(),
            });
        };
        let status = self.read_status()?;
        if !status.slot_valid(slot.index) {
            return Err(Error::SlotNotProgrammed {
                device: self.device(),
                slot: slot.to_string(),
            });
        }
        match presence {
            Presence::Touch(timeout) => self.verify_by_touch(slot, expected, counter, timeout),
            Presence::NoTouch => Ok(Verification {
                proof: Proof::ConfigurationAccepted,
                next_counter: Some(counter),
            }),
        }
    }
}
