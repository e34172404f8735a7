//! The records the store keeps, as the engine sees them: ids, states and the rows read back.
//!
//! Every enum here is stored as the lowercase word its `as_str` returns; a row holding any
//! other word is reported as corrupt rather than guessed at.

use std::fmt;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "#{}", self.0)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    };
}

row_id!(
    /// A batch's row id.
    BatchId
);
row_id!(
    /// A device's row id.
    DeviceId
);
row_id!(
    /// A key's row id; also what the key's sealed secret is bound to.
    KeyId
);
row_id!(
    /// An export's row id.
    ExportId
);

/// Defines an enum stored as text, with `as_str`, `parse` and `Display`.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The word stored in the database (and shown to users).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant stored as `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    let what = format!("unknown {} {text:?}", stringify!($name));
                    FromSqlError::Other(what.into())
                })
            }
        }
    };
}

text_enum!(
    /// Where a key's life stands. Keys move forward only:
    /// reserved → written → verified → exported, and any of them → revoked.
    KeyState {
        /// Issued (the secret is recorded) but not yet on the device.
        Reserved = "reserved",
        /// Written to the device, not yet proven.
        Written = "written",
        /// The device produced the expected OTP.
        Verified = "verified",
        /// Included in at least one export file.
        Exported = "exported",
        /// Withdrawn: never delivered, superseded, or revoked by the operator.
        Revoked = "revoked",
    }
);

impl KeyState {
    /// States in which the key is (or may be) the one live on its device slot.
    pub const ACTIVE: [KeyState; 3] = [KeyState::Written, KeyState::Verified, KeyState::Exported];

    /// Whether the life cycle allows going from `self` to `to`.
    ///
    /// Rewriting a written key (`written → written`) and exporting again are allowed, since a
    /// resumed batch repeats the step it was interrupted in.
    pub fn allows(self, to: KeyState) -> bool {
        use KeyState::*;
        matches!(
            (self, to),
            (Reserved, Written)
                | (Written, Written)
                | (Written, Verified)
                | (Verified, Exported)
                | (Exported, Exported)
                | (Reserved | Written | Verified | Exported, Revoked)
        )
    }
}

text_enum!(
    /// The OTP algorithm of a key.
    OtpAlgorithm {
        /// RFC 4226 event-based OTP.
        Hotp = "hotp",
        /// RFC 6238 time-based OTP.
        Totp = "totp",
    }
);

text_enum!(
    /// The hash under the OTP's HMAC.
    HashAlgorithm {
        /// HMAC-SHA-1 (RFC 4226 default).
        Sha1 = "sha1",
        /// HMAC-SHA-256.
        Sha256 = "sha256",
        /// HMAC-SHA-512.
        Sha512 = "sha512",
    }
);

text_enum!(
    /// Where a batch's keys come from.
    BatchMode {
        /// The DSKPP server runs inside the station.
        Local = "local",
        /// A central `keyprov serve` over HTTP(S).
        Central = "central",
        /// Registered from a vendor seed file (`keyprov import`): the vendor programmed the
        /// tokens, no DSKPP run took place.
        Imported = "import",
    }
);

text_enum!(
    /// Where a batch stands.
    BatchState {
        /// Created and not finished: running, or interrupted and waiting to be resumed.
        Open = "open",
        /// Every device was handled.
        Completed = "completed",
        /// Ended with devices that could not be provisioned; re-running resumes it.
        Failed = "failed",
        /// Stopped by the operator; its keys stay as they are.
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// How one device of a batch fared.
    DeviceOutcome {
        /// Not handled yet, or interrupted.
        Pending = "pending",
        /// Holds its verified key.
        Done = "done",
        /// Gave up after retries; the error says why.
        Failed = "failed",
    }
);

/// What the keys of a batch look like.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProfile {
    /// HOTP or TOTP.
    pub algorithm: OtpAlgorithm,
    /// OTP length (6 or 8).
    pub digits: u8,
    /// TOTP time step in seconds (`None` for HOTP).
    pub period: Option<u32>,
    /// Hash under the HMAC.
    pub hash: HashAlgorithm,
}

/// Formats a time the way the store keeps it (RFC 3339, UTC).
pub(crate) fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    // RFC 3339 formatting fails only for years outside 0..=9999, which `now_utc` never gives.
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("timestamp within RFC 3339 range")
}

/// Parses a time written by [`format_time`].
pub(crate) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_states_move_forward_only() {
        use KeyState::*;
        assert!(Reserved.allows(Written));
        assert!(Written.allows(Verified));
        assert!(Verified.allows(Exported));
        assert!(Exported.allows(Revoked));
        assert!(!Reserved.allows(Verified));
        assert!(!Verified.allows(Written));
        assert!(!Revoked.allows(Reserved));
        assert!(!Revoked.allows(Revoked));
        assert!(!Exported.allows(Verified));
    }

    #[test]
    fn enums_round_trip_through_their_words() {
        for state in [KeyState::Reserved, KeyState::Exported, KeyState::Revoked] {
            assert_eq!(KeyState::parse(state.as_str()), Some(state));
        }
        assert_eq!(HashAlgorithm::parse("sha256"), Some(HashAlgorithm::Sha256));
        assert_eq!(OtpAlgorithm::parse("HOTP"), None);
    }
}
