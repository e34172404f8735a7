//! The database schema as numbered migrations, and the connection settings.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Opening a database applies the
//! missing ones in one immediate transaction together with the new version number, so a crash
//! leaves either the old schema or the new one. A database newer than this program is refused.
//!
//! Settings of every connection: WAL journal; `synchronous = NORMAL`, under which a commit is
//! atomic and survives the process being killed at any instant (SIGKILL included), while a
//! power loss may roll back the newest commits (never half of one). Commits that must survive
//! power loss too are followed by [`crate::Store::sync`], which fsyncs the WAL after the lock is
//! released: the same guarantee as `synchronous = FULL` for that commit and every earlier one,
//! but parallel engine threads no longer queue behind each other's fsync (3.5 ms a commit with
//! FULL against 0.3 ms with NORMAL on the development VM). Foreign keys on; a 5 s busy timeout
//! so that a second process (an `audit verify` beside a running batch) waits for the writer.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{SqlContext, StoreError};

/// How long a connection waits for another writer before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2, MIGRATION_3];

const MIGRATION_1: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE batches (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL,
    digits      INTEGER NOT NULL,
    period      INTEGER,
    hash        TEXT NOT NULL,
    mode        TEXT NOT NULL,
    server_url  TEXT,
    operator    TEXT,
    params      TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    finished_at TEXT
) STRICT;

CREATE TABLE devices (
    id         INTEGER PRIMARY KEY,
    family     TEXT NOT NULL,
    model      TEXT NOT NULL,
    serial     TEXT NOT NULL,
    firmware   TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    UNIQUE (family, serial)
) STRICT;
CREATE INDEX devices_by_serial ON devices (serial);

CREATE TABLE batch_devices (
    batch_id   INTEGER NOT NULL REFERENCES batches (id),
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    outcome    TEXT NOT NULL,
    error      TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (batch_id, device_id)
) STRICT;

CREATE TABLE keys (
    id           INTEGER PRIMARY KEY,
    batch_id     INTEGER NOT NULL REFERENCES batches (id),
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    slot         TEXT NOT NULL,
    algorithm    TEXT NOT NULL,
    digits       INTEGER NOT NULL,
    counter      INTEGER,
    period       INTEGER,
    hash         TEXT NOT NULL,
    secret       BLOB NOT NULL,
    state        TEXT NOT NULL,
    dskpp_key_id TEXT,
    server_url   TEXT,
    verification TEXT,
    proof        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX keys_by_batch ON keys (batch_id, state);
CREATE INDEX keys_by_device ON keys (device_id, slot);
-- At most one key is live on a device slot; writing a new one revokes the old one first.
CREATE UNIQUE INDEX one_live_key_per_slot ON keys (device_id, slot)
    WHERE state IN ('written', 'verified', 'exported');

CREATE TABLE exports (
    id         INTEGER PRIMARY KEY,
    batch_id   INTEGER REFERENCES batches (id),
    file_name  TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    protection TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE export_keys (
    export_id INTEGER NOT NULL REFERENCES exports (id),
    key_id    INTEGER NOT NULL REFERENCES keys (id),
    PRIMARY KEY (export_id, key_id)
) STRICT;

-- The provisioning log. hash = SHA-256(prev_hash || canonical content), see audit.rs.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    batch_id  INTEGER,
    device_id INTEGER,
    key_id    INTEGER,
    detail    TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;
CREATE INDEX events_by_batch ON events (batch_id);
";

/// Why a key was revoked, readable with the key (the `key.revoked` event holds it too).
const MIGRATION_2: &str = "
ALTER TABLE keys ADD COLUMN reason TEXT;
";

/// Whether a failed device's failure may go away when its batch is re-run; the engine sets it
/// from the error's kind with the outcome.
const MIGRATION_3: &str = "
ALTER TABLE batch_devices ADD COLUMN retryable INTEGER NOT NULL DEFAULT 0;
";

/// The schema version this program writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the connection settings described in the module doc.
pub(crate) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).ctx("set busy timeout")?;
    // The journal's few statements, prepared once per connection.
    conn.set_prepared_statement_cache_capacity(64);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .ctx("enable WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL journal mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx("set synchronous")?;
    conn.pragma_update(None, "foreign_keys", true)
        .ctx("enable foreign keys")?;
    Ok(())
}

/// Brings the schema up to date in one transaction; returns the version found before.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("begin migration")?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .ctx("read schema version")?;
    let supported = current_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::debug!(version = index + 1, "applying schema migration");
        tx.execute_batch(sql).ctx("apply migration")?;
    }
    if found < supported {
        tx.pragma_update(None, "user_version", supported)
            .ctx("write schema version")?;
    }
    tx.commit().ctx("commit migration")?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_set_the_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(migrate(&mut conn).unwrap(), current_version());
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, current_version());
    }

    #[test]
    fn version_1_databases_gain_the_revocation_reason() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATION_1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 1);
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('keys')")
            .unwrap();
        let columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(stmt);
        assert_eq!(columns.last().map(String::as_str), Some("reason"));
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, current_version());
    }

    #[test]
    fn version_2_databases_gain_the_retryable_flag_false_for_past_failures() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATION_1).unwrap();
        conn.execute_batch(MIGRATION_2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO batches VALUES (1, 'b', 'hotp', 6, NULL, 'sha1', 'local', NULL, NULL,
                                         '{}', 'failed', 't', NULL);
             INSERT INTO devices VALUES (1, 'yubikey', 'm', '1', 'f', 't', 't');
             INSERT INTO batch_devices VALUES (1, 1, 'failed', 'unplugged', 't');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 2);
        let retryable: i64 = conn
            .query_row("SELECT retryable FROM batch_devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(retryable, 0);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: 3
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn failed_migration_leaves_nothing_behind() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A table in the way makes migration 1 fail half-way through.
        conn.execute_batch("CREATE TABLE devices (x INTEGER)")
            .unwrap();
        assert!(migrate(&mut conn).is_err());
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'batches'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0);
    }
}
