//! Where keys come from: a DSKPP run per token, against the in-process server core (local
//! mode) or a central `keyprov serve` (central mode).
//!
//! A run has two halves so that the journal can name it before it starts: [`KeySource::begin`]
//! picks the run's client id (local: issues a fresh one-time Authentication Code; central: takes
//! the next unused code of the pool), the engine records `engine.dskpp_started` with that id,
//! and only then [`KeySource::obtain`] talks to the server.

use zeroize::Zeroizing;

use keyprov_store::KeyProfile;

/// One prepared DSKPP run.
pub(crate) struct Ticket {
    /// The AC's ClientID; recorded in the journal.
    pub client_id: String,
    /// The Authentication Code (one-time password inside).
    pub auth_code: Zeroizing<String>,
    /// K_SHARED for 4-pass nonce encryption, if the AC came with one.
    pub shared_key: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A key the server issued and the client accepted (MAC verified).
pub(crate) struct IssuedKey {
    pub secret: Zeroizing<Vec<u8>>,
    /// The server's KeyID.
    pub dskpp_key_id: String,
}

/// Why a run failed; never carries a secret.
#[derive(Debug, Clone)]
pub(crate) struct SourceError {
    pub message: String,
    /// Worth retrying (a network hiccup, a busy server).
    pub transient: bool,
    /// The server could not be reached at all.
    pub unreachable: bool,
}

impl SourceError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            unreachable: false,
        }
    }
}

/// A DSKPP server the engine can obtain keys from.
pub(crate) trait KeySource: Sync {
    /// `local` or the server URL, as recorded with the batch and its keys.
    fn server_url(&self) -> Option<String>;

    /// Prepares a run for one token.
    fn begin(&self) -> Result<Ticket, SourceError>;

    /// Runs 4-pass DSKPP with the ticket and returns the key once the server's MAC verified.
    fn obtain(&self, ticket: Ticket, profile: &KeyProfile) -> Result<IssuedKey, SourceError>;

    /// A run that started but whose key the station never recorded: revokes what the server
    /// issued for it, where the mode allows. Returns the revoked server KeyIDs.
    fn abandon(&self, client_id: &str) -> Result<Vec<String>, SourceError>;
}
