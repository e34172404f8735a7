//! Server state: authentication codes, pre-shared device keys (K_SHARED), 4-pass sessions,
//! replay records and the keys the server issued.
//!
//! [`Store`] is what the server core needs; [`SqliteStore`] keeps it in any SQLite database
//! (WAL, `synchronous=NORMAL`), in tables prefixed `dskpp_` so the station can share its own
//! database file. AC passwords, K_SHARED, issued secrets, K_MAC and the server's RSA key are
//! sealed with the station master key (XChaCha20-Poly1305), the table, row and column being the
//! associated data so a sealed value cannot be moved to another row.

#[cfg(test)]
mod fixtures;
mod key_file;
mod local;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keyprov_store::MasterKey;
use rusqlite::{Connection, OptionalExtension, params};

use crate::prf::Prf;
use crate::secret::Secret;

pub use key_file::key_file_path;
pub use local::LocalStore;

/// Why the store failed. Messages name rows, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("DSKPP database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A sealed value did not open with the master key (wrong key file, or tampering).
    #[error("DSKPP database: sealed {0} does not open with this master key")]
    Unseal(String),
    /// A row holds a value this version cannot read.
    #[error("DSKPP database: row {0} is corrupt")]
    Corrupt(String),
    /// The master key could not be loaded.
    #[error(transparent)]
    MasterKey(#[from] keyprov_store::StoreError),
    /// The master key file is missing, but the database holds values sealed with it: a new
    /// key would open none of them. Nothing was created; the file must be restored.
    #[error(
        "master key {} is missing, but the DSKPP server database {} holds {} sealed with it; restore {} from your backup — a new key could not open them",
        key_path.display(),
        db_path.display(),
        secrets(*sealed),
        key_path.display()
    )]
    MasterKeyLost {
        /// Where the master key file should be (`<db>.key`).
        key_path: PathBuf,
        /// The database that needs it.
        db_path: PathBuf,
        /// How many sealed values the database holds.
        sealed: u64,
    },
    /// The database file could not be inspected before its master key was created.
    #[error("cannot inspect DSKPP database {}: {cause}", db_path.display())]
    Inspect {
        /// The database file.
        db_path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// [`Store::revoke`] named a key this server never issued.
    #[error("DSKPP database: no issued key {0}")]
    UnknownKey(String),
}

/// "1 secret", "3 secrets".
fn secrets(n: u64) -> String {
    if n == 1 {
        "1 secret".into()
    } else {
        format!("{n} secrets")
    }
}

/// Why a commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The client nonce, the session or the authentication code was already used.
    #[error("replayed {0}")]
    Replay(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key types this server issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// HOTP (RFC 4226), HMAC-SHA-1, 20-octet key, event counter.
    Hotp,
    /// TOTP (RFC 6238), HMAC-SHA-1, 20-octet key, 30 s time step.
    Totp,
}

impl KeyType {
    /// The PSKC algorithm URI.
    pub fn uri(self) -> &'static str {
        match self {
            KeyType::Hotp => crate::uri::KEY_HOTP,
            KeyType::Totp => crate::uri::KEY_TOTP,
        }
    }

    /// The key type named by `uri`.
    pub fn from_uri(uri: &str) -> Option<KeyType> {
        [KeyType::Hotp, KeyType::Totp]
            .into_iter()
            .find(|k| k.uri() == uri)
    }

    /// The OTP key length in octets.
    pub fn token_len(self) -> usize {
        20
    }
}

/// An authentication code as the server keeps it.
#[derive(Debug, Clone)]
pub struct AcRecord {
    /// ClientID value string.
    pub client_id: String,
    /// Password value string.
    pub password: Secret,
    /// Unix time after which the AC is expired.
    pub expires: i64,
    /// Whether a run already consumed it.
    pub used: bool,
    /// Failed AD verifications so far.
    pub failures: u32,
}

/// A pre-shared device key.
#[derive(Debug, Clone)]
pub struct SharedKey {
    /// The `ds:KeyName` that names it.
    pub name: String,
    /// K_SHARED.
    pub secret: Secret,
}

/// Which key K the 4-pass session uses for R_C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceKey {
    /// K_SHARED with the PRF/XOR encryption.
    Shared,
    /// K_SERVER (RSA).
    Server,
}

/// What the server remembers between ServerHello and ClientNonce.
#[derive(Debug, Clone)]
pub struct Session {
    /// SessionID.
    pub id: String,
    /// Unix time of the ServerHello.
    pub created: i64,
    /// ClientID named in the ClientHello, if any.
    pub client_id: Option<String>,
    /// Negotiated PRF.
    pub prf: Prf,
    /// Negotiated key type.
    pub key_type: KeyType,
    /// Negotiated EncryptionAlgorithm URI.
    pub encryption: String,
    /// Which K encrypts R_C.
    pub nonce_key: NonceKey,
    /// R_S.
    pub r_s: Vec<u8>,
    /// KeyID of the key being renewed.
    pub renew_key_id: Option<String>,
    /// The exact ClientHello octets.
    pub client_hello: Vec<u8>,
    /// The exact ServerHello octets.
    pub server_hello: Vec<u8>,
}

/// What looking up a SessionID found.
#[derive(Debug)]
pub enum SessionLookup {
    /// A session awaiting its ClientNonce.
    Active(Box<Session>),
    /// A session that already ended (replay).
    Used,
    /// No such session.
    Unknown,
}

/// A key the server issued.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// Key id (hex of the DSKPP KeyID octets).
    pub key_id: String,
    /// The ClientID it was issued to.
    pub client_id: String,
    /// Its type.
    pub key_type: KeyType,
    /// The PRF of the run (for renewal MACs).
    pub prf: Prf,
    /// K_TOKEN.
    pub secret: Secret,
    /// K_MAC, the K_MAC' of a later renewal.
    pub k_mac: Secret,
    /// HOTP counter at issue.
    pub counter: u64,
    /// OTP digits.
    pub digits: u32,
    /// TOTP time step in seconds.
    pub time_step: u32,
    /// Unix time of issue.
    pub issued: i64,
    /// The ServerID of the key package.
    pub server_id: String,
}

/// A key issued to one client, as [`Store::keys_for_client`] lists it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Key id.
    pub key_id: String,
    /// Unix time of issue.
    pub issued: i64,
    /// Whether a later renewal replaced it.
    pub replaced: bool,
    /// Its revocation, if revoked.
    pub revoked: Option<Revocation>,
}

/// When and why a key was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Unix time of the revocation.
    pub at: i64,
    /// The reason given.
    pub reason: String,
}

/// Everything a successful run writes, in one transaction.
#[derive(Debug)]
pub struct Commit<'a> {
    /// The 4-pass session that ends here.
    pub session_id: Option<&'a str>,
    /// The AC consumed by this run.
    pub ac_client_id: Option<&'a str>,
    /// SHA-256 of R_C, for replay detection.
    pub nonce_digest: [u8; 32],
    /// The new key.
    pub key: &'a IssuedKey,
    /// The key this one replaces.
    pub replaces: Option<&'a str>,
}

/// Persistence the server core needs.
pub trait Store: Send + Sync {
    /// The AC of `client_id`.
    fn authentication_code(&self, client_id: &str) -> Result<Option<AcRecord>, StoreError>;
    /// Stores an AC, replacing an earlier one of the same ClientID.
    fn put_authentication_code(&self, ac: &AcRecord) -> Result<(), StoreError>;
    /// Counts a failed AD verification.
    fn record_failure(&self, client_id: &str) -> Result<(), StoreError>;
    /// K_SHARED of `client_id`.
    fn shared_key(&self, client_id: &str) -> Result<Option<SharedKey>, StoreError>;
    /// Stores K_SHARED for `client_id`.
    fn put_shared_key(&self, client_id: &str, key: &SharedKey) -> Result<(), StoreError>;
    /// Stores a new 4-pass session.
    fn put_session(&self, session: &Session) -> Result<(), StoreError>;
    /// Looks a session up.
    fn session(&self, id: &str) -> Result<SessionLookup, StoreError>;
    /// Ends a failed session: its state is erased, its id kept as used.
    fn end_session(&self, id: &str) -> Result<(), StoreError>;
    /// Ends every session created before `created_before` (abandoned runs).
    fn purge_sessions(&self, created_before: i64) -> Result<usize, StoreError>;
    /// Whether R_C (by digest) was already used.
    fn nonce_seen(&self, digest: &[u8; 32]) -> Result<bool, StoreError>;
    /// Atomically records a successful run; refuses replays.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), CommitError>;
    /// One issued key, if still current (neither replaced nor revoked).
    fn issued_key(&self, key_id: &str) -> Result<Option<IssuedKey>, StoreError>;
    /// All current issued keys (neither replaced nor revoked), oldest first: what
    /// `keyprov server export` exports.
    fn issued_keys(&self) -> Result<Vec<IssuedKey>, StoreError>;
    /// Every key issued to `client_id`, oldest first, with its revocation.
    fn keys_for_client(&self, client_id: &str) -> Result<Vec<ClientKey>, StoreError>;
    /// Revokes an issued key (e.g. one the client never received: RFC 6063 has no message
    /// for that, so the station tells its server store directly). A revoked key is no longer
    /// current: it is neither exported nor renewable. Returns `false` when it was revoked
    /// already (the first reason stays); fails for a key this server never issued.
    fn revoke(&self, key_id: &str, reason: &str) -> Result<bool, StoreError>;
    /// A sealed server setting (e.g. the RSA key).
    fn setting(&self, name: &str) -> Result<Option<Secret>, StoreError>;
    /// Stores a sealed server setting unless one exists; returns the one in force.
    fn put_setting_once(&self, name: &str, value: &Secret) -> Result<Secret, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dskpp_setting (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dskpp_ac (
    client_id TEXT PRIMARY KEY, password BLOB NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS dskpp_shared_key (
    client_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dskpp_session (
    id TEXT PRIMARY KEY, created INTEGER NOT NULL, client_id TEXT, prf TEXT NOT NULL,
    key_type TEXT NOT NULL, encryption TEXT NOT NULL, nonce_key TEXT NOT NULL, r_s BLOB NOT NULL,
    renew_key_id TEXT, client_hello BLOB NOT NULL, server_hello BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dskpp_used_session (id TEXT PRIMARY KEY, ended INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dskpp_nonce (digest BLOB PRIMARY KEY, used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dskpp_key (
    key_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, key_type TEXT NOT NULL, prf TEXT NOT NULL,
    secret BLOB NOT NULL, k_mac BLOB NOT NULL, counter INTEGER NOT NULL, digits INTEGER NOT NULL,
    time_step INTEGER NOT NULL, issued INTEGER NOT NULL, server_id TEXT NOT NULL,
    replaced_by TEXT);
CREATE TABLE IF NOT EXISTS dskpp_revoked (
    key_id TEXT PRIMARY KEY REFERENCES dskpp_key (key_id), revoked INTEGER NOT NULL,
    reason TEXT NOT NULL);
";

/// Keeps revoked keys out of the "current" queries.
const NOT_REVOKED: &str = "key_id NOT IN (SELECT key_id FROM dskpp_revoked)";

/// [`Store`] over SQLite.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    master: Arc<MasterKey>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// Current Unix time.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// How long a statement waits for another connection's write transaction to end.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Pause between two attempts while waiting.
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_micros(250);

/// SQLite's busy handler for the `dskpp_` connection: try again every quarter millisecond for
/// up to [`BUSY_WAIT`]. (SQLite's own `busy_timeout` sleeps 1, 2, 5, 10 ... 100 ms between
/// attempts, so a run sharing the file with the station's journal waited far longer than the
/// few hundred microseconds the journal's transactions hold the lock.)
fn wait_for_writer(attempts: i32) -> bool {
    let limit = BUSY_WAIT.as_micros() / BUSY_PAUSE.as_micros();
    if u128::try_from(attempts).unwrap_or(0) >= limit {
        return false;
    }
    std::thread::sleep(BUSY_PAUSE);
    true
}

impl SqliteStore {
    /// Opens (or creates) the `dskpp_` tables in the database at `db`, sealing with `master`.
    pub fn open(db: &Path, master: Arc<MasterKey>) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(db)?;
        conn.busy_handler(Some(wait_for_writer))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            master,
        })
    }

    /// Opens the database at `db` with its master key file `<db>.key` ([`key_file_path`]).
    ///
    /// A missing key file is created (mode 0600) only for a database that holds nothing sealed
    /// yet; beside one that does, that is [`StoreError::MasterKeyLost`] and nothing is created.
    pub fn open_with_key_file(db: &Path, passphrase: Option<&str>) -> Result<Self, StoreError> {
        let master = key_file::load_or_create(db, passphrase)?;
        SqliteStore::open(db, Arc::new(master))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seal(&self, aad: &str, value: &Secret) -> Vec<u8> {
        self.master.seal(aad.as_bytes(), value.expose())
    }

    fn open_sealed(&self, aad: &str, sealed: &[u8]) -> Result<Secret, StoreError> {
        let plain = self
            .master
            .open(aad.as_bytes(), sealed)
            .map_err(|_| StoreError::Unseal(aad.into()))?;
        Ok(Secret::from_slice(&plain))
    }

    fn row_to_key(&self, row: &rusqlite::Row<'_>) -> Result<IssuedKey, StoreError> {
        let key_id: String = row.get(0)?;
        let kt: String = row.get(2)?;
        let prf: String = row.get(3)?;
        let corrupt = || StoreError::Corrupt(format!("dskpp_key {key_id}"));
        let secret: Vec<u8> = row.get(4)?;
        let k_mac: Vec<u8> = row.get(5)?;
        Ok(IssuedKey {
            client_id: row.get(1)?,
            key_type: KeyType::from_uri(&kt).ok_or_else(corrupt)?,
            prf: Prf::from_uri(&prf).ok_or_else(corrupt)?,
            secret: self.open_sealed(&format!("dskpp_key/{key_id}/secret"), &secret)?,
            k_mac: self.open_sealed(&format!("dskpp_key/{key_id}/k_mac"), &k_mac)?,
            counter: row.get::<_, i64>(6)? as u64,
            digits: row.get(7)?,
            time_step: row.get(8)?,
            issued: row.get(9)?,
            server_id: row.get(10)?,
            key_id,
        })
    }
}

const KEY_COLUMNS: &str = "key_id, client_id, key_type, prf, secret, k_mac, counter, digits, \
                           time_step, issued, server_id";

impl Store for SqliteStore {
    fn authentication_code(&self, client_id: &str) -> Result<Option<AcRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT password, expires, used, failures FROM dskpp_ac WHERE client_id = ?1",
        )?;
        let row = stmt
            .query_row([client_id], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get(1)?,
                    r.get::<_, bool>(2)?,
                    r.get(3)?,
                ))
            })
            .optional()?;
        drop(stmt);
        drop(conn);
        let Some((sealed, expires, used, failures)) = row else {
            return Ok(None);
        };
        let password = self.open_sealed(&format!("dskpp_ac/{client_id}/password"), &sealed)?;
        Ok(Some(AcRecord {
            client_id: client_id.into(),
            password,
            expires,
            used,
            failures,
        }))
    }

    fn put_authentication_code(&self, ac: &AcRecord) -> Result<(), StoreError> {
        let sealed = self.seal(&format!("dskpp_ac/{}/password", ac.client_id), &ac.password);
        self.conn().execute(
            "INSERT OR REPLACE INTO dskpp_ac (client_id, password, expires, used, failures)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ac.client_id, sealed, ac.expires, ac.used, ac.failures],
        )?;
        Ok(())
    }

    fn record_failure(&self, client_id: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("UPDATE dskpp_ac SET failures = failures + 1 WHERE client_id = ?1")?;
        stmt.execute([client_id])?;
        Ok(())
    }

    fn shared_key(&self, client_id: &str) -> Result<Option<SharedKey>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT name, secret FROM dskpp_shared_key WHERE client_id = ?1")?;
        let row = stmt
            .query_row([client_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        drop(stmt);
        drop(conn);
        let Some((name, sealed)) = row else {
            return Ok(None);
        };
        let secret = self.open_sealed(&format!("dskpp_shared_key/{client_id}/secret"), &sealed)?;
        Ok(Some(SharedKey { name, secret }))
    }

    fn put_shared_key(&self, client_id: &str, key: &SharedKey) -> Result<(), StoreError> {
        let sealed = self.seal(&format!("dskpp_shared_key/{client_id}/secret"), &key.secret);
        self.conn().execute(
            "INSERT OR REPLACE INTO dskpp_shared_key (client_id, name, secret) VALUES (?1, ?2, ?3)",
            params![client_id, key.name, sealed],
        )?;
        Ok(())
    }

    fn put_session(&self, s: &Session) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "INSERT INTO dskpp_session (id, created, client_id, prf, key_type, encryption,
             nonce_key, r_s, renew_key_id, client_hello, server_hello)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let nonce_key = match s.nonce_key {
            NonceKey::Shared => "shared",
            NonceKey::Server => "server",
        };
        stmt.execute(params![
            s.id,
            s.created,
            s.client_id,
            s.prf.uri(),
            s.key_type.uri(),
            s.encryption,
            nonce_key,
            s.r_s,
            s.renew_key_id,
            s.client_hello,
            s.server_hello
        ])?;
        Ok(())
    }

    fn session(&self, id: &str) -> Result<SessionLookup, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT created, client_id, prf, key_type, encryption, nonce_key, r_s, renew_key_id,
             client_hello, server_hello FROM dskpp_session WHERE id = ?1",
        )?;
        let row = stmt
            .query_row([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, Vec<u8>>(9)?,
                ))
            })
            .optional()?;
        let Some((created, client_id, prf, kt, encryption, nk, r_s, renew, ch, sh)) = row else {
            let mut used = conn.prepare_cached("SELECT 1 FROM dskpp_used_session WHERE id = ?1")?;
            let seen = used.exists([id])?;
            return Ok(if seen {
                SessionLookup::Used
            } else {
                SessionLookup::Unknown
            });
        };
        let corrupt = || StoreError::Corrupt(format!("dskpp_session {id}"));
        Ok(SessionLookup::Active(Box::new(Session {
            id: id.into(),
            created,
            client_id,
            prf: Prf::from_uri(&prf).ok_or_else(corrupt)?,
            key_type: KeyType::from_uri(&kt).ok_or_else(corrupt)?,
            encryption,
            nonce_key: match nk.as_str() {
                "shared" => NonceKey::Shared,
                "server" => NonceKey::Server,
                _ => return Err(corrupt()),
            },
            r_s,
            renew_key_id: renew,
            client_hello: ch,
            server_hello: sh,
        })))
    }

    fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached("DELETE FROM dskpp_session WHERE id = ?1")?
            .execute([id])?;
        tx.prepare_cached("INSERT OR IGNORE INTO dskpp_used_session (id, ended) VALUES (?1, ?2)")?
            .execute(params![id, now()])?;
        tx.commit()?;
        Ok(())
    }

    fn purge_sessions(&self, created_before: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO dskpp_used_session (id, ended)
             SELECT id, ?2 FROM dskpp_session WHERE created < ?1",
            params![created_before, now()],
        )?;
        let n = tx.execute(
            "DELETE FROM dskpp_session WHERE created < ?1",
            [created_before],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn nonce_seen(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM dskpp_nonce WHERE digest = ?1")?;
        Ok(stmt.exists([&digest[..]])?)
    }

    fn commit(&self, c: &Commit<'_>) -> Result<(), CommitError> {
        let k = c.key;
        let secret = self.seal(&format!("dskpp_key/{}/secret", k.key_id), &k.secret);
        let k_mac = self.seal(&format!("dskpp_key/{}/k_mac", k.key_id), &k.k_mac);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let t = now();
        if let Some(id) = c.session_id {
            let deleted = tx
                .prepare_cached("DELETE FROM dskpp_session WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(StoreError::from)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO dskpp_used_session (id, ended) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute(params![id, t]))
                .map_err(StoreError::from)?;
            if deleted != 1 || inserted != 1 {
                return Err(CommitError::Replay("SessionID"));
            }
        }
        if let Some(client_id) = c.ac_client_id {
            let n = tx
                .prepare_cached("UPDATE dskpp_ac SET used = 1 WHERE client_id = ?1 AND used = 0")
                .and_then(|mut s| s.execute([client_id]))
                .map_err(StoreError::from)?;
            if n != 1 {
                return Err(CommitError::Replay("authentication code"));
            }
        }
        let n = tx
            .prepare_cached("INSERT OR IGNORE INTO dskpp_nonce (digest, used) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![&c.nonce_digest[..], t]))
            .map_err(StoreError::from)?;
        if n != 1 {
            return Err(CommitError::Replay("client nonce"));
        }
        tx.prepare_cached(&format!(
            "INSERT INTO dskpp_key ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .and_then(|mut s| {
            s.execute(params![
                k.key_id,
                k.client_id,
                k.key_type.uri(),
                k.prf.uri(),
                secret,
                k_mac,
                k.counter as i64,
                k.digits,
                k.time_step,
                k.issued,
                k.server_id
            ])
        })
        .map_err(StoreError::from)?;
        if let Some(old) = c.replaces {
            tx.prepare_cached("UPDATE dskpp_key SET replaced_by = ?1 WHERE key_id = ?2")
                .and_then(|mut s| s.execute(params![k.key_id, old]))
                .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    fn issued_key(&self, key_id: &str) -> Result<Option<IssuedKey>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM dskpp_key WHERE key_id = ?1 AND replaced_by IS NULL \
             AND {NOT_REVOKED}"
        ))?;
        let mut rows = stmt.query([key_id])?;
        match rows.next()? {
            Some(row) => Ok(Some(self.row_to_key(row)?)),
            None => Ok(None),
        }
    }

    fn issued_keys(&self) -> Result<Vec<IssuedKey>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM dskpp_key WHERE replaced_by IS NULL AND {NOT_REVOKED} \
             ORDER BY issued, rowid"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(self.row_to_key(row)?);
        }
        Ok(out)
    }

    fn keys_for_client(&self, client_id: &str) -> Result<Vec<ClientKey>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT k.key_id, k.issued, k.replaced_by IS NOT NULL, r.revoked, r.reason
             FROM dskpp_key k LEFT JOIN dskpp_revoked r ON r.key_id = k.key_id
             WHERE k.client_id = ?1 ORDER BY k.issued, k.rowid",
        )?;
        let rows = stmt.query_map([client_id], |r| {
            let at: Option<i64> = r.get(3)?;
            let reason: Option<String> = r.get(4)?;
            Ok(ClientKey {
                key_id: r.get(0)?,
                issued: r.get(1)?,
                replaced: r.get(2)?,
                revoked: at.map(|at| Revocation {
                    at,
                    reason: reason.unwrap_or_default(),
                }),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke(&self, key_id: &str, reason: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let known = tx
            .prepare_cached("SELECT 1 FROM dskpp_key WHERE key_id = ?1")?
            .exists([key_id])?;
        if !known {
            return Err(StoreError::UnknownKey(key_id.to_owned()));
        }
        let added = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO dskpp_revoked (key_id, revoked, reason) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key_id, now(), reason])?;
        tx.commit()?;
        tracing::debug!(key_id, newly = added == 1, "DSKPP key revoked");
        Ok(added == 1)
    }

    fn setting(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let conn = self.conn();
        let sealed: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM dskpp_setting WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        drop(conn);
        sealed
            .map(|s| self.open_sealed(&format!("dskpp_setting/{name}"), &s))
            .transpose()
    }

    fn put_setting_once(&self, name: &str, value: &Secret) -> Result<Secret, StoreError> {
        let sealed = self.seal(&format!("dskpp_setting/{name}"), value);
        self.conn().execute(
            "INSERT OR IGNORE INTO dskpp_setting (name, value) VALUES (?1, ?2)",
            params![name, sealed],
        )?;
        self.setting(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("dskpp_setting {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{ac, key, session};
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("s.db"), Arc::new(MasterKey::generate()));
        (dir, s.unwrap())
    }

    #[test]
    fn secrets_are_sealed_at_rest() {
        let (dir, s) = store();
        s.put_authentication_code(&ac("C1")).unwrap();
        let raw = std::fs::read(dir.path().join("s.db")).unwrap();
        let wal = std::fs::read(dir.path().join("s.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(10).any(|w| w == b"3582AF0C3E"));
        }
        let ac = s.authentication_code("C1").unwrap().unwrap();
        assert_eq!(ac.password.expose(), b"3582AF0C3E");
    }

    #[test]
    fn commit_refuses_replays() {
        let (_dir, s) = store();
        let k = key("k1");
        let c = Commit {
            session_id: None,
            ac_client_id: None,
            nonce_digest: [7; 32],
            key: &k,
            replaces: None,
        };
        s.commit(&c).unwrap();
        let k2 = key("k2");
        let c2 = Commit { key: &k2, ..c };
        assert!(matches!(
            s.commit(&c2),
            Err(CommitError::Replay("client nonce"))
        ));
        assert!(s.issued_key("k2").unwrap().is_none());
        assert_eq!(
            s.issued_key("k1").unwrap().unwrap().secret.expose(),
            &[1; 20]
        );
    }

    #[test]
    fn abandoned_sessions_are_purged_and_stay_used() {
        let (_dir, s) = store();
        let session = Session {
            client_id: None,
            nonce_key: NonceKey::Server,
            ..session("s1", 100)
        };
        s.put_session(&session).unwrap();
        assert!(matches!(s.session("s1").unwrap(), SessionLookup::Active(_)));
        assert_eq!(s.purge_sessions(50).unwrap(), 0);
        assert_eq!(s.purge_sessions(101).unwrap(), 1);
        assert!(matches!(s.session("s1").unwrap(), SessionLookup::Used));
    }

    #[test]
    fn renewal_hides_the_old_key() {
        let (_dir, s) = store();
        let (k1, k2) = (key("k1"), key("k2"));
        let c = Commit {
            session_id: None,
            ac_client_id: None,
            nonce_digest: [1; 32],
            key: &k1,
            replaces: None,
        };
        s.commit(&c).unwrap();
        let c = Commit {
            nonce_digest: [2; 32],
            key: &k2,
            replaces: Some("k1"),
            ..c
        };
        s.commit(&c).unwrap();
        let ids: Vec<String> = s
            .issued_keys()
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(ids, vec!["k2".to_string()]);
    }

    #[test]
    fn revoked_keys_are_listed_per_client_but_no_longer_current() {
        let (_dir, s) = store();
        let (k1, mut k2) = (key("k1"), key("k2"));
        k2.client_id = "other".into();
        let c = Commit {
            session_id: None,
            ac_client_id: None,
            nonce_digest: [1; 32],
            key: &k1,
            replaces: None,
        };
        s.commit(&c).unwrap();
        let c = Commit {
            nonce_digest: [2; 32],
            key: &k2,
            ..c
        };
        s.commit(&c).unwrap();
        let mine = s.keys_for_client(&k1.client_id).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].key_id.as_str(), &mine[0].revoked), ("k1", &None));

        assert!(s.revoke("k1", "never reached the token").unwrap());
        assert!(!s.revoke("k1", "a second reason").unwrap(), "revoked once");
        let mine = s.keys_for_client(&k1.client_id).unwrap();
        let revocation = mine[0].revoked.as_ref().expect("revoked");
        assert_eq!(revocation.reason, "never reached the token");
        assert!(revocation.at > 0);
        assert!(s.issued_key("k1").unwrap().is_none(), "not renewable");
        let current: Vec<String> = s
            .issued_keys()
            .unwrap()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(current, ["k2"], "a revoked key is not exported");
        assert!(matches!(
            s.revoke("nope", "typo"),
            Err(StoreError::UnknownKey(id)) if id == "nope"
        ));
    }
}
