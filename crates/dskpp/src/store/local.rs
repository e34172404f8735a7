//! [`LocalStore`]: the store of a DSKPP server that runs inside the station process and whose
//! only client is that same process (local mode).
//!
//! The AC, K_SHARED and 4-pass session a local run makes cannot outlive the process (a resumed
//! batch starts a new run with a new ticket), so they are kept in memory: secrets in [`Secret`]
//! (wiped on drop), behind one mutex held only for map operations. What must persist — issued
//! keys, client-nonce replay digests, revocations, settings (the RSA key) — goes to the wrapped
//! persistent store, one transaction per successful run (`commit`). This takes four of the five
//! SQLite write transactions of a run off the station database, whose write lock the engine's
//! journal also needs (docs/dskpp.md, decisions).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AcRecord, ClientKey, Commit, CommitError, IssuedKey, Session, SessionLookup, SharedKey, Store,
    StoreError,
};
use crate::secret::Secret;

/// Run state that lives only as long as the process.
#[derive(Default)]
struct Memory {
    acs: HashMap<String, AcRecord>,
    shared: HashMap<String, SharedKey>,
    sessions: HashMap<String, Session>,
    used_sessions: HashSet<String>,
}

/// [`Store`] for local mode: ACs, K_SHARED, sessions, AD failure counts and used SessionIDs in
/// memory; issued keys, nonce digests, revocations and settings in `persistent`.
pub struct LocalStore {
    persistent: Arc<dyn Store>,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.memory();
        f.debug_struct("LocalStore")
            .field("acs", &m.acs.len())
            .field("shared_keys", &m.shared.len())
            .field("sessions", &m.sessions.len())
            .field("used_sessions", &m.used_sessions.len())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// A local-mode store over `persistent` (normally the station database's [`super::SqliteStore`]).
    pub fn new(persistent: Arc<dyn Store>) -> LocalStore {
        LocalStore {
            persistent,
            memory: Mutex::new(Memory::default()),
        }
    }

    /// The in-memory state. A panic while holding the lock leaves the maps consistent (every
    /// update is a single map operation or is undone on failure), so a poisoned lock is used.
    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks and reserves the in-memory part of a commit: ends the session and consumes the
    /// AC. Returns what [`LocalStore::release`] needs to undo it.
    fn reserve(&self, c: &Commit<'_>) -> Result<Option<Session>, CommitError> {
        let mut m = self.memory();
        if let Some(id) = c.session_id
            && (!m.sessions.contains_key(id) || m.used_sessions.contains(id))
        {
            return Err(CommitError::Replay("SessionID"));
        }
        if let Some(client_id) = c.ac_client_id
            && m.acs.get(client_id).is_none_or(|ac| ac.used)
        {
            return Err(CommitError::Replay("authentication code"));
        }
        let session = c.session_id.and_then(|id| {
            m.used_sessions.insert(id.to_string());
            m.sessions.remove(id)
        });
        if let Some(ac) = c.ac_client_id.and_then(|id| m.acs.get_mut(id)) {
            ac.used = true;
        }
        Ok(session)
    }

    /// Undoes [`LocalStore::reserve`] after the persistent part failed, as a rolled-back
    /// SQLite transaction would.
    fn release(&self, c: &Commit<'_>, session: Option<Session>) {
        let mut m = self.memory();
        if let Some(s) = session {
            m.used_sessions.remove(&s.id);
            m.sessions.insert(s.id.clone(), s);
        }
        if let Some(ac) = c.ac_client_id.and_then(|id| m.acs.get_mut(id)) {
            ac.used = false;
        }
    }
}

impl Store for LocalStore {
    fn authentication_code(&self, client_id: &str) -> Result<Option<AcRecord>, StoreError> {
        Ok(self.memory().acs.get(client_id).cloned())
    }

    fn put_authentication_code(&self, ac: &AcRecord) -> Result<(), StoreError> {
        self.memory().acs.insert(ac.client_id.clone(), ac.clone());
        Ok(())
    }

    fn record_failure(&self, client_id: &str) -> Result<(), StoreError> {
        if let Some(ac) = self.memory().acs.get_mut(client_id) {
            ac.failures = ac.failures.saturating_add(1);
        }
        Ok(())
    }

    fn shared_key(&self, client_id: &str) -> Result<Option<SharedKey>, StoreError> {
        Ok(self.memory().shared.get(client_id).cloned())
    }

    fn put_shared_key(&self, client_id: &str, key: &SharedKey) -> Result<(), StoreError> {
        self.memory()
            .shared
            .insert(client_id.to_string(), key.clone());
        Ok(())
    }

    fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut m = self.memory();
        if m.sessions.contains_key(&session.id) || m.used_sessions.contains(&session.id) {
            // Same refusal as the SQLite primary key: a SessionID is never reused.
            return Err(StoreError::Corrupt(format!(
                "local DSKPP session {} already exists",
                session.id
            )));
        }
        m.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    fn session(&self, id: &str) -> Result<SessionLookup, StoreError> {
        let m = self.memory();
        Ok(match m.sessions.get(id) {
            Some(s) => SessionLookup::Active(Box::new(s.clone())),
            None if m.used_sessions.contains(id) => SessionLookup::Used,
            None => SessionLookup::Unknown,
        })
    }

    fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let mut m = self.memory();
        m.sessions.remove(id);
        m.used_sessions.insert(id.to_string());
        Ok(())
    }

    fn purge_sessions(&self, created_before: i64) -> Result<usize, StoreError> {
        let mut m = self.memory();
        let old: Vec<String> = m
            .sessions
            .values()
            .filter(|s| s.created < created_before)
            .map(|s| s.id.clone())
            .collect();
        for id in &old {
            m.sessions.remove(id);
            m.used_sessions.insert(id.clone());
        }
        Ok(old.len())
    }

    fn nonce_seen(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.persistent.nonce_seen(digest)
    }

    fn commit(&self, c: &Commit<'_>) -> Result<(), CommitError> {
        let session = self.reserve(c)?;
        // The session and the AC are this store's; the persistent store records the key and
        // refuses a replayed client nonce, in one transaction.
        let persistent = Commit {
            session_id: None,
            ac_client_id: None,
            ..*c
        };
        match self.persistent.commit(&persistent) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.release(c, session);
                Err(e)
            }
        }
    }

    fn issued_key(&self, key_id: &str) -> Result<Option<IssuedKey>, StoreError> {
        self.persistent.issued_key(key_id)
    }

    fn issued_keys(&self) -> Result<Vec<IssuedKey>, StoreError> {
        self.persistent.issued_keys()
    }

    fn keys_for_client(&self, client_id: &str) -> Result<Vec<ClientKey>, StoreError> {
        self.persistent.keys_for_client(client_id)
    }

    fn revoke(&self, key_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.persistent.revoke(key_id, reason)
    }

    fn setting(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        self.persistent.setting(name)
    }

    fn put_setting_once(&self, name: &str, value: &Secret) -> Result<Secret, StoreError> {
        self.persistent.put_setting_once(name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::super::fixtures::{ac, key, session};
    use super::*;
    use keyprov_store::MasterKey;

    fn stores() -> (tempfile::TempDir, Arc<SqliteStore>, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(
            SqliteStore::open(&dir.path().join("s.db"), Arc::new(MasterKey::generate())).unwrap(),
        );
        let local = LocalStore::new(sqlite.clone() as Arc<dyn Store>);
        (dir, sqlite, local)
    }

    fn commit<'a>(session_id: &'a str, digest: u8, key: &'a IssuedKey) -> Commit<'a> {
        Commit {
            session_id: Some(session_id),
            ac_client_id: Some("C1"),
            nonce_digest: [digest; 32],
            key,
            replaces: None,
        }
    }

    #[test]
    fn run_state_stays_out_of_sqlite_and_keys_go_in() {
        let (dir, sqlite, local) = stores();
        local.put_authentication_code(&ac("C1")).unwrap();
        let shared = SharedKey {
            name: "station-C1".into(),
            secret: Secret::from_slice(b"K_SHARED-C1-0123"),
        };
        local.put_shared_key("C1", &shared).unwrap();
        local.put_session(&session("s1", 100)).unwrap();
        assert!(sqlite.authentication_code("C1").unwrap().is_none());
        assert!(sqlite.shared_key("C1").unwrap().is_none());
        assert!(matches!(
            sqlite.session("s1").unwrap(),
            SessionLookup::Unknown
        ));
        assert_eq!(
            local.shared_key("C1").unwrap().unwrap().secret.expose(),
            b"K_SHARED-C1-0123"
        );
        local.record_failure("C1").unwrap();
        assert_eq!(
            local.authentication_code("C1").unwrap().unwrap().failures,
            1
        );

        let k = key("k1");
        local.commit(&commit("s1", 7, &k)).unwrap();
        assert_eq!(
            sqlite.issued_key("k1").unwrap().unwrap().secret.expose(),
            &[1; 20]
        );
        assert_eq!(local.keys_for_client("C1").unwrap()[0].key_id, "k1");
        assert!(local.nonce_seen(&[7; 32]).unwrap());
        assert!(local.authentication_code("C1").unwrap().unwrap().used);
        let raw = std::fs::read(dir.path().join("s.db")).unwrap();
        let wal = std::fs::read(dir.path().join("s.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(10).any(|w| w == b"3582AF0C3E"));
            assert!(!bytes.windows(16).any(|w| w == b"K_SHARED-C1-0123"));
        }
    }

    #[test]
    fn a_session_commits_once() {
        let (_dir, sqlite, local) = stores();
        local.put_authentication_code(&ac("C1")).unwrap();
        local.put_session(&session("s1", 100)).unwrap();
        let (k1, k2) = (key("k1"), key("k2"));
        local.commit(&commit("s1", 1, &k1)).unwrap();
        assert!(matches!(local.session("s1").unwrap(), SessionLookup::Used));
        // The same session again, even with a fresh nonce: refused, nothing recorded.
        assert!(matches!(
            local.commit(&commit("s1", 2, &k2)),
            Err(CommitError::Replay("SessionID"))
        ));
        assert!(sqlite.issued_key("k2").unwrap().is_none());
        assert!(!local.nonce_seen(&[2; 32]).unwrap());
        // A used SessionID cannot be opened again either.
        assert!(local.put_session(&session("s1", 200)).is_err());
        // A new session with the consumed AC: refused.
        local.put_session(&session("s2", 100)).unwrap();
        assert!(matches!(
            local.commit(&commit("s2", 3, &k2)),
            Err(CommitError::Replay("authentication code"))
        ));
        assert!(matches!(
            local.session("s2").unwrap(),
            SessionLookup::Active(_)
        ));
        // An unknown session: refused.
        assert!(matches!(
            local.commit(&Commit {
                ac_client_id: None,
                ..commit("s9", 4, &k2)
            }),
            Err(CommitError::Replay("SessionID"))
        ));
        assert!(sqlite.issued_key("k2").unwrap().is_none());
    }

    #[test]
    fn a_replayed_nonce_is_refused_and_leaves_the_run_state_unchanged() {
        let (_dir, sqlite, local) = stores();
        local.put_authentication_code(&ac("C1")).unwrap();
        local.put_authentication_code(&ac("C2")).unwrap();
        local.put_session(&session("s1", 100)).unwrap();
        local.put_session(&session("s2", 100)).unwrap();
        let (k1, k2) = (key("k1"), key("k2"));
        local.commit(&commit("s1", 5, &k1)).unwrap();
        let replay = Commit {
            ac_client_id: Some("C2"),
            ..commit("s2", 5, &k2)
        };
        assert!(matches!(
            local.commit(&replay),
            Err(CommitError::Replay("client nonce"))
        ));
        assert!(sqlite.issued_key("k2").unwrap().is_none());
        // Rolled back like the SQLite transaction: the session is still open, the AC unused.
        assert!(matches!(
            local.session("s2").unwrap(),
            SessionLookup::Active(_)
        ));
        assert!(!local.authentication_code("C2").unwrap().unwrap().used);
        let fresh = Commit {
            ac_client_id: Some("C2"),
            ..commit("s2", 6, &k2)
        };
        local.commit(&fresh).unwrap();
        assert!(sqlite.issued_key("k2").unwrap().is_some());
    }

    #[test]
    fn failed_and_abandoned_sessions_are_erased_and_stay_used() {
        let (_dir, _sqlite, local) = stores();
        local.put_authentication_code(&ac("C1")).unwrap();
        local.put_session(&session("s1", 100)).unwrap();
        local.end_session("s1").unwrap();
        assert!(matches!(local.session("s1").unwrap(), SessionLookup::Used));
        assert_eq!(local.memory().sessions.len(), 0);
        let k = key("k1");
        assert!(matches!(
            local.commit(&commit("s1", 1, &k)),
            Err(CommitError::Replay("SessionID"))
        ));
        assert!(!local.authentication_code("C1").unwrap().unwrap().used);

        local.put_session(&session("s2", 100)).unwrap();
        local.put_session(&session("s3", 300)).unwrap();
        assert_eq!(local.purge_sessions(50).unwrap(), 0);
        assert_eq!(local.purge_sessions(200).unwrap(), 1);
        assert!(matches!(local.session("s2").unwrap(), SessionLookup::Used));
        assert!(matches!(
            local.session("s3").unwrap(),
            SessionLookup::Active(_)
        ));
        assert!(matches!(
            local.session("s4").unwrap(),
            SessionLookup::Unknown
        ));
    }

    #[test]
    fn debug_shows_counts_not_secrets() {
        let (_dir, _sqlite, local) = stores();
        local.put_authentication_code(&ac("C1")).unwrap();
        let text = format!("{local:?}");
        assert!(text.contains("acs: 1"), "{text}");
        assert!(!text.contains("3582AF0C3E"));
    }
}
