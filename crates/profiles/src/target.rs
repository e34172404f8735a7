//! The validation servers a seed file can be written for, by the names the CLI and the GUI use
//! (`--for privacyidea|freeipa|linotp|generic`).

use std::fmt;
use std::str::FromStr;

/// Which importer an exported PSKC file is shaped for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Target {
    /// Canonical RFC 6030, for python-pskc, libpskc and anything that reads the whole standard.
    #[default]
    Generic,
    /// privacyIDEA 3.x `POST /token/load` (`importotp.py` `parsePSKCdata`).
    PrivacyIdea,
    /// FreeIPA `ipa-otptoken-import`.
    FreeIpa,
    /// LinOTP `ImportOTP/PSKC.py` `parsePSKCdata`.
    LinOtp,
}

impl Target {
    /// Every target, in the order the CLI lists them.
    pub const ALL: [Target; 4] = [
        Target::Generic,
        Target::PrivacyIdea,
        Target::FreeIpa,
        Target::LinOtp,
    ];

    /// The name used on the command line and in JSON (`privacyidea`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Generic => "generic",
            Target::PrivacyIdea => "privacyidea",
            Target::FreeIpa => "freeipa",
            Target::LinOtp => "linotp",
        }
    }

    /// The product name, for messages (`privacyIDEA`).
    pub fn product(self) -> &'static str {
        match self {
            Target::Generic => "RFC 6030 readers",
            Target::PrivacyIdea => "privacyIDEA",
            Target::FreeIpa => "FreeIPA",
            Target::LinOtp => "LinOTP",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not one of the target names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export target {0:?}; expected generic, privacyidea, freeipa or linotp")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownTarget(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for target in Target::ALL {
            assert_eq!(target.name().parse::<Target>(), Ok(target));
        }
        assert_eq!("PrivacyIDEA".parse::<Target>(), Ok(Target::PrivacyIdea));
        assert!("ipa".parse::<Target>().is_err());
    }
}
