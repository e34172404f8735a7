//! What can go wrong when shaping an export or reading a seed file, grouped by who must act.
//!
//! A profile never "fixes" a batch silently: what the target would lose or misread comes back
//! as a [`Refusal`] naming the key and the reason, all of them at once so the operator sees
//! the whole list. No message carries a secret; keys are named by `Key@Id` and serial.

use std::fmt;

use crate::target::Target;

/// One key (or the whole file) that a target cannot take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `key <Id> (serial <SerialNo>)`, or `file` for container-wide problems.
    pub subject: String,
    /// What the importer would do wrong, in the operator's terms.
    pub reason: String,
}

impl Refusal {
    pub(crate) fn file(reason: impl Into<String>) -> Self {
        Refusal {
            subject: "file".into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

/// Joins refusals for an error message: `a; b; c`.
fn joined(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(Refusal::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Errors of export shaping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    // ---- The batch does not fit the target: the operator picks another target or batch. ----
    /// Keys (or the file) hold something the target cannot represent.
    #[error("{} would not import this correctly: {}", .target.product(), joined(.refusals))]
    Refused {
        /// The target asked for.
        target: Target,
        /// Every problem found, in document order.
        refusals: Vec<Refusal>,
    },

    // ---- The protection chosen does not fit the target: the operator picks another. ----
    /// The file protection is one the target cannot open.
    #[error("{} cannot open this file: {reason}", .target.product())]
    Protection {
        /// The target asked for.
        target: Target,
        /// Why (never the key or password itself).
        reason: String,
    },
}

/// Errors of reading a vendor seed file into seed tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The file holds no key that can be registered (all skipped, or none at all).
    #[error("no HOTP/TOTP key with a secret in the file{}", skipped_note(.skipped))]
    NothingToImport {
        /// Why each key was skipped.
        skipped: Vec<Refusal>,
    },
    /// Two keys of the file claim the same token (serial and key id) with different contents.
    #[error("{subject} appears twice in the file with different {what}")]
    DuplicateInFile {
        /// The key, as in [`Refusal::subject`].
        subject: String,
        /// `secret`, `algorithm` … (never the values).
        what: String,
    },
}

fn skipped_note(skipped: &[Refusal]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", joined(skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_lists_every_reason() {
        let err = ProfileError::Refused {
            target: Target::LinOtp,
            refusals: vec![
                Refusal {
                    subject: "key a (serial 1)".into(),
                    reason: "x".into(),
                },
                Refusal::file("y"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "LinOTP would not import this correctly: key a (serial 1): x; file: y"
        );
    }
}
