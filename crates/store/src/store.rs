//! [`Store`]: the station database, its location, and the batch and device records.
//!
//! Durability: every write is atomic and survives a killed process; [`Store::sync`] makes the
//! commits so far survive power loss as well (see the crate documentation).
//!
//! Concurrency: one SQLite connection behind a mutex, shared by every clone of the `Store`
//! (`Store` is `Clone + Send + Sync`). SQLite lets one writer in at a time anyway, and every
//! call is a short transaction, so engine threads provisioning in parallel queue for microseconds
//! while their devices take milliseconds. Each write runs in one `BEGIN IMMEDIATE` transaction
//! together with its event: an error anywhere rolls the whole change back.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;

use crate::audit::{self, AuditReport, Draft};
use crate::error::{SqlContext, StoreError};
use crate::model::{
    BatchId, BatchState, DeviceId, DeviceOutcome, KeyProfile, OtpAlgorithm, format_time, parse_time,
};
use crate::records::{Batch, BatchDevice, Device, DeviceIdentity, NewBatch};
use crate::schema;
use crate::vault::{MasterKey, create_private_dirs};

/// Name of the master key file, kept in the database's directory.
pub const MASTER_KEY_FILE: &str = "master.key";
const STORE_ID_META: &str = "store_id";
const MASTER_KEY_META: &str = "master_key_fingerprint";

/// The station database. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    master: Option<MasterKey>,
    /// Random id of this database, part of every sealed secret's binding.
    store_id: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field(
                "master_key",
                &self.inner.master.as_ref().map(|_| "<loaded>"),
            )
            .finish()
    }
}

impl Store {
    /// `$XDG_DATA_HOME/keyprov/station.db`, else `~/.local/share/keyprov/station.db`.
    pub fn default_path() -> Result<PathBuf, StoreError> {
        default_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
    }

    /// The master key file that belongs to the database at `db_path`.
    pub fn master_key_path(db_path: &Path) -> PathBuf {
        db_path.with_file_name(MASTER_KEY_FILE)
    }

    /// Opens (creating if needed) the database at `db_path` with the master key beside it,
    /// creating that key on first use (wrapped by `passphrase` if one is given).
    ///
    /// A missing key file is created only for a database that holds nothing sealed yet: for
    /// one that does, a new key would open none of it, so that is
    /// [`StoreError::MasterKeyLost`], naming both files, and nothing is created.
    pub fn open(db_path: &Path, passphrase: Option<&str>) -> Result<Store, StoreError> {
        create_private_dirs(db_path)?;
        let key_path = Self::master_key_path(db_path);
        let master = match MasterKey::load(&key_path, passphrase) {
            Err(StoreError::MissingKeyFile { .. }) => {
                forget_unused_key(db_path, &key_path)?;
                MasterKey::load_or_create(&key_path, passphrase)?
            }
            other => other?,
        };
        Self::open_with_key(db_path, master).map_err(|e| e.loaded_from(&key_path))
    }

    /// Opens (creating if needed) the database at `db_path`, sealing with `master`.
    pub fn open_with_key(db_path: &Path, master: MasterKey) -> Result<Store, StoreError> {
        create_db_file(db_path)?;
        let conn = Connection::open(db_path)
            .ctx("open")
            .map_err(|e| e.at(db_path))?;
        Self::from_connection(conn, db_path, Some(master))
    }

    /// Opens an existing database without its master key: everything but reserving keys
    /// and reading their secrets works (the audit needs no key).
    pub fn open_existing_without_key(db_path: &Path) -> Result<Store, StoreError> {
        if !db_path.is_file() {
            return Err(StoreError::MissingDatabase {
                path: db_path.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(db_path, flags)
            .ctx("open")
            .map_err(|e| e.at(db_path))?;
        Self::from_connection(conn, db_path, None)
    }

    fn from_connection(
        mut conn: Connection,
        path: &Path,
        master: Option<MasterKey>,
    ) -> Result<Store, StoreError> {
        let at = |e: StoreError| e.at(path);
        schema::configure(&conn).map_err(at)?;
        schema::migrate(&mut conn).map_err(at)?;
        let store_id = init_meta(&mut conn, master.as_ref()).map_err(at)?;
        tracing::debug!(path = %path.display(), keyed = master.is_some(), "store opened");
        let inner = Inner {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            master,
            store_id,
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn master(&self) -> Result<&MasterKey, StoreError> {
        self.inner
            .master
            .as_ref()
            .ok_or(StoreError::MasterKeyNotLoaded)
    }

    pub(crate) fn store_id(&self) -> &str {
        &self.inner.store_id
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A thread that panicked inside a transaction dropped it, which rolled it back, so the
        // connection behind a poisoned lock is still consistent.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one immediate transaction and commits it; any error rolls it all back.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let at = |e: StoreError| e.at(&self.inner.path);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("begin transaction")
            .map_err(at)?;
        let value = f(&tx).map_err(at)?;
        tx.commit().ctx("commit").map_err(at)?;
        Ok(value)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let at = |e: StoreError| e.at(&self.inner.path);
        let tx = conn.transaction().ctx("begin read").map_err(at)?;
        f(&tx).map_err(at)
    }

    /// Makes every commit so far survive power loss (fsyncs the WAL). Without it a commit
    /// survives a killed process but a power loss may roll back the newest ones; see the crate documentation. [`Store::reserve_key`] calls it itself; call it after any other
    /// record that must outlive a power cut (e.g. an engine event logged before a DSKPP run).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        // The connection keeps the WAL open, so it exists unless SQLite fell back to a
        // rollback journal, whose commits are synced by SQLite itself; sync the file anyway.
        let file = match std::fs::File::open(&wal) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.inner.path)
                    .map_err(|e| StoreError::io("open", &self.inner.path, e))?
            }
            Err(e) => return Err(StoreError::io("open", &wal, e)),
        };
        file.sync_data()
            .map_err(|e| StoreError::io("sync", &wal, e))
    }

    /// Checks the event hash chain from its first link; see [`crate::audit`].
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        self.read(audit::verify)
    }

    // ---- Batches ----

    /// Creates an open batch.
    pub fn create_batch(&self, new: &NewBatch) -> Result<Batch, StoreError> {
        check_profile(&new.profile)?;
        if new.name.trim().is_empty() {
            return Err(invalid("batch name", "must not be empty"));
        }
        if !new.params.is_object() {
            return Err(invalid("batch params", "must be a JSON object"));
        }
        let id = self.write(|tx| insert_batch_in(tx, new, BatchState::Open))?;
        tracing::debug!(batch = %id, name = %new.name, "batch created");
        self.batch(id)
    }

    /// The batch with this id.
    pub fn batch(&self, id: BatchId) -> Result<Batch, StoreError> {
        self.read(|tx| batch_in(tx, id))
    }

    /// The batch with this name, if any.
    pub fn find_batch(&self, name: &str) -> Result<Option<Batch>, StoreError> {
        self.read(|tx| {
            tx.query_row(
                &format!("{BATCH_SELECT} WHERE name = ?1"),
                [name],
                batch_from_row,
            )
            .optional()
            .ctx("read batch")
        })
    }

    /// A batch named by the operator: its name, or its numeric id (`7` or `#7`) when no batch
    /// has that name.
    pub fn resolve_batch(&self, id_or_name: &str) -> Result<Batch, StoreError> {
        if let Some(batch) = self.find_batch(id_or_name)? {
            return Ok(batch);
        }
        match id_or_name.trim_start_matches('#').parse::<i64>() {
            Ok(id) => self.batch(BatchId(id)),
            Err(_) => Err(StoreError::UnknownBatchName(id_or_name.to_owned())),
        }
    }

    /// Every batch, oldest first.
    pub fn list_batches(&self) -> Result<Vec<Batch>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!("{BATCH_SELECT} ORDER BY id"))
                .ctx("list batches")?;
            let rows = stmt.query_map([], batch_from_row).ctx("list batches")?;
            rows.collect::<Result<_, _>>().ctx("read batch")
        })
    }

    /// Moves a batch to `state` (re-opening a failed or cancelled batch to resume it).
    pub fn set_batch_state(&self, id: BatchId, state: BatchState) -> Result<(), StoreError> {
        self.write(|tx| {
            let before = batch_in(tx, id)?.state;
            let finished =
                (state != BatchState::Open).then(|| format_time(OffsetDateTime::now_utc()));
            tx.execute(
                "UPDATE batches SET state = ?1, finished_at = ?2 WHERE id = ?3",
                params![state, finished, id],
            )
            .ctx("update batch")?;
            let detail = serde_json::json!({ "from": before, "state": state });
            audit::append(tx, event("batch.state", Some(id), None, detail))?;
            Ok(())
        })
    }

    // ---- Devices ----

    /// Registers a device, or refreshes its model, firmware and last-seen time.
    pub fn upsert_device(&self, identity: &DeviceIdentity) -> Result<Device, StoreError> {
        let id = self.write(|tx| upsert_device_in(tx, identity))?;
        self.device(id)
    }

    /// The device with this id.
    pub fn device(&self, id: DeviceId) -> Result<Device, StoreError> {
        self.read(|tx| device_in(tx, id))
    }

    /// The device of this family and serial, if the station has seen it.
    pub fn find_device(&self, family: &str, serial: &str) -> Result<Option<Device>, StoreError> {
        self.read(|tx| find_device_in(tx, family, serial))
    }

    /// Every device with this serial, whatever its family.
    pub fn find_devices_by_serial(&self, serial: &str) -> Result<Vec<Device>, StoreError> {
        self.read(|tx| {
            let sql = format!("{DEVICE_SELECT} WHERE serial = ?1 ORDER BY id");
            let mut stmt = tx.prepare(&sql).ctx("find devices")?;
            let rows = stmt
                .query_map([serial], device_from_row)
                .ctx("find devices")?;
            rows.collect::<Result<_, _>>().ctx("read device")
        })
    }

    /// Every device the station has seen, in order of registration.
    pub fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!("{DEVICE_SELECT} ORDER BY id"))
                .ctx("list devices")?;
            let rows = stmt.query_map([], device_from_row).ctx("list devices")?;
            rows.collect::<Result<_, _>>().ctx("read device")
        })
    }

    /// Makes `device` part of `batch` (pending); a device already in it is left as it is.
    pub fn add_batch_device(&self, batch: BatchId, device: DeviceId) -> Result<(), StoreError> {
        self.write(|tx| add_batch_device_in(tx, batch, device))
    }

    /// Registers (or refreshes) every device of `identities` and makes it part of `batch`, in
    /// one transaction: [`Store::upsert_device`] then [`Store::add_batch_device`] for each.
    pub fn add_batch_members(
        &self,
        batch: BatchId,
        identities: &[DeviceIdentity],
    ) -> Result<Vec<Device>, StoreError> {
        self.write(|tx| {
            identities
                .iter()
                .map(|identity| {
                    let id = upsert_device_in(tx, identity)?;
                    add_batch_device_in(tx, batch, id)?;
                    device_in(tx, id)
                })
                .collect()
        })
    }

    /// Records how a device of a batch fared: `error` says why it failed (no secret), and
    /// `retryable` whether a re-run of the batch may succeed (the engine knows from the
    /// error's kind: an unplugged or busy token, an unreachable server).
    pub fn set_batch_device_outcome(
        &self,
        batch: BatchId,
        device: DeviceId,
        outcome: DeviceOutcome,
        error: Option<&str>,
        retryable: bool,
    ) -> Result<(), StoreError> {
        self.write(|tx| device_outcome_in(tx, batch, device, outcome, error, retryable))
    }

    /// The devices of a batch with their outcomes, in the order they were added.
    pub fn batch_devices(&self, batch: BatchId) -> Result<Vec<BatchDevice>, StoreError> {
        self.read(|tx| {
            batch_in(tx, batch)?;
            let sql = "SELECT d.id, d.family, d.model, d.serial, d.firmware, d.first_seen,
                              d.last_seen, m.outcome, m.error, m.retryable
                       FROM batch_devices m JOIN devices d ON d.id = m.device_id
                       WHERE m.batch_id = ?1 ORDER BY m.rowid";
            let mut stmt = tx.prepare(sql).ctx("list batch devices")?;
            let rows = stmt
                .query_map([batch], |row| {
                    Ok(BatchDevice {
                        device: device_from_row(row)?,
                        outcome: row.get(7)?,
                        error: row.get(8)?,
                        retryable: row.get(9)?,
                    })
                })
                .ctx("list batch devices")?;
            rows.collect::<Result<_, _>>().ctx("read batch device")
        })
    }
}

/// Sets a batch device's outcome with its `batch.device_outcome` event.
pub(crate) fn device_outcome_in(
    tx: &Transaction<'_>,
    batch: BatchId,
    device: DeviceId,
    outcome: DeviceOutcome,
    error: Option<&str>,
    retryable: bool,
) -> Result<(), StoreError> {
    let changed = tx
        .execute(
            "UPDATE batch_devices SET outcome = ?1, error = ?2, retryable = ?3, updated_at = ?4
             WHERE batch_id = ?5 AND device_id = ?6",
            params![outcome, error, retryable, now_text(), batch, device],
        )
        .ctx("update batch device")?;
    if changed == 0 {
        return Err(invalid(
            "batch device",
            format!("device {device} is not in batch {batch}"),
        ));
    }
    let mut detail = serde_json::json!({ "outcome": outcome, "error": error });
    if retryable {
        detail["retryable"] = serde_json::Value::Bool(true);
    }
    audit::append(
        tx,
        event("batch.device_outcome", Some(batch), Some(device), detail),
    )?;
    Ok(())
}

/// Inserts a batch in `state` (finished now unless open) with its `batch.created` event.
pub(crate) fn insert_batch_in(
    tx: &Transaction<'_>,
    new: &NewBatch,
    state: BatchState,
) -> Result<BatchId, StoreError> {
    let taken: bool = tx
        .query_row(
            "SELECT count(*) FROM batches WHERE name = ?1",
            [&new.name],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
        .ctx("look up batch name")?;
    if taken {
        return Err(StoreError::DuplicateBatch(new.name.clone()));
    }
    let p = &new.profile;
    let now = now_text();
    let finished = (state != BatchState::Open).then_some(&now);
    tx.execute(
        "INSERT INTO batches (name, algorithm, digits, period, hash, mode, server_url,
             operator, params, state, created_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            new.name,
            p.algorithm,
            p.digits,
            p.period,
            p.hash,
            new.mode,
            new.server_url,
            new.operator,
            new.params.to_string(),
            state,
            now,
            finished,
        ],
    )
    .ctx("insert batch")?;
    let id = BatchId(tx.last_insert_rowid());
    let mut detail = serde_json::json!({
        "name": new.name,
        "algorithm": p.algorithm,
        "digits": p.digits,
        "period": p.period,
        "hash": p.hash,
        "mode": new.mode,
        "server_url": new.server_url,
        "operator": new.operator,
    });
    if state != BatchState::Open {
        detail["state"] = state.as_str().into();
    }
    audit::append(tx, event("batch.created", Some(id), None, detail))?;
    Ok(id)
}

/// [`Store::upsert_device`] inside the caller's transaction.
fn upsert_device_in(
    tx: &Transaction<'_>,
    identity: &DeviceIdentity,
) -> Result<DeviceId, StoreError> {
    if identity.family.is_empty() || identity.serial.is_empty() {
        return Err(invalid("device", "family and serial must not be empty"));
    }
    let now = format_time(OffsetDateTime::now_utc());
    let existing = find_device_in(tx, &identity.family, &identity.serial)?;
    let Some(old) = existing else {
        return insert_device_in(tx, identity);
    };
    tx.execute(
        "UPDATE devices SET model = ?1, firmware = ?2, last_seen = ?3 WHERE id = ?4",
        params![identity.model, identity.firmware, now, old.id],
    )
    .ctx("update device")?;
    if old.model != identity.model || old.firmware != identity.firmware {
        let detail = device_detail(identity);
        audit::append(tx, event("device.updated", None, Some(old.id), detail))?;
    }
    Ok(old.id)
}

/// [`Store::add_batch_device`] inside the caller's transaction.
fn add_batch_device_in(
    tx: &Transaction<'_>,
    batch: BatchId,
    device: DeviceId,
) -> Result<(), StoreError> {
    batch_in(tx, batch)?;
    device_in(tx, device)?;
    let added = tx
        .execute(
            "INSERT OR IGNORE INTO batch_devices (batch_id, device_id, outcome, updated_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![batch, device, DeviceOutcome::Pending, now_text()],
        )
        .ctx("add device to batch")?;
    if added > 0 {
        let detail = serde_json::json!({});
        audit::append(
            tx,
            event("batch.device_added", Some(batch), Some(device), detail),
        )?;
    }
    Ok(())
}

/// Inserts a device seen for the first time, with its `device.registered` event.
pub(crate) fn insert_device_in(
    tx: &Transaction<'_>,
    identity: &DeviceIdentity,
) -> Result<DeviceId, StoreError> {
    tx.execute(
        "INSERT INTO devices (family, model, serial, firmware, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            identity.family,
            identity.model,
            identity.serial,
            identity.firmware,
            now_text()
        ],
    )
    .ctx("insert device")?;
    let id = DeviceId(tx.last_insert_rowid());
    let detail = device_detail(identity);
    audit::append(tx, event("device.registered", None, Some(id), detail))?;
    Ok(id)
}

/// The default database path for these values of `XDG_DATA_HOME` and `HOME`. A relative
/// `XDG_DATA_HOME` is ignored, as the XDG base directory specification requires.
fn default_path_from(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, StoreError> {
    let data_home = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let home = home.filter(|h| !h.is_empty())?;
            Some(PathBuf::from(home).join(".local").join("share"))
        })
        .ok_or(StoreError::NoDataDirectory)?;
    Ok(data_home.join("keyprov").join("station.db"))
}

/// Creates an empty database file owner-only, so SQLite's WAL and shm files inherit that mode.
fn create_db_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    create_private_dirs(path)?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io("create database", path, e)),
    }
}

/// Before a master key is created for the database at `db_path`: refuses when the database
/// holds values sealed with a key (the lost one), and otherwise unties it from any key it
/// was opened with before, so that the new key can be recorded. A database file that does
/// not exist yet, or is empty, holds nothing.
fn forget_unused_key(db_path: &Path, key_path: &Path) -> Result<(), StoreError> {
    let exists = std::fs::metadata(db_path).map(|m| m.len() > 0);
    match exists {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("inspect database", db_path, e)),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let at = |e: StoreError| e.at(db_path);
    let mut conn = Connection::open_with_flags(db_path, flags)
        .ctx("open")
        .map_err(at)?;
    conn.busy_timeout(schema::BUSY_TIMEOUT)
        .ctx("set busy timeout")
        .map_err(at)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .ctx("begin")
        .map_err(at)?;
    let sealed = sealed_values(&tx).map_err(at)?;
    if sealed > 0 {
        return Err(StoreError::MasterKeyLost {
            key_path: key_path.to_path_buf(),
            db_path: db_path.to_path_buf(),
            sealed,
        });
    }
    if table_exists(&tx, "meta").map_err(at)? {
        let dropped = tx
            .execute("DELETE FROM meta WHERE name = ?1", [MASTER_KEY_META])
            .ctx("write meta")
            .map_err(at)?;
        if dropped > 0 {
            tracing::warn!(
                db = %db_path.display(),
                "master key missing; the database holds no sealed value, so a new key replaces it"
            );
        }
    }
    tx.commit().ctx("commit meta").map_err(at)
}

/// How many values in the database are sealed with its master key: key secrets and the
/// local DSKPP server's sealed columns.
fn sealed_values(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    const SEALED: [&str; 5] = [
        "keys",
        "dskpp_key",
        "dskpp_ac",
        "dskpp_shared_key",
        "dskpp_setting",
    ];
    let mut total = 0u64;
    for table in SEALED {
        if table_exists(tx, table)? {
            // The table name is one of the constants above, never input.
            let rows: i64 = tx
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .ctx("count sealed values")?;
            total += u64::try_from(rows).unwrap_or(0);
        }
    }
    Ok(total)
}

fn table_exists(tx: &Transaction<'_>, name: &str) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .ctx("read schema")
    .map(|n| n > 0)
}

/// Reads (creating on first open) the store id, and ties the database to its master key.
fn init_meta(conn: &mut Connection, master: Option<&MasterKey>) -> Result<String, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .ctx("begin")?;
    let meta = |name: &str| {
        tx.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .ctx("read meta")
    };
    let store_id = match meta(STORE_ID_META)? {
        Some(id) => id,
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("OS random generator unavailable");
            let id = hex::encode(bytes);
            set_meta(&tx, STORE_ID_META, &id)?;
            id
        }
    };
    if let Some(master) = master {
        let found = master.fingerprint();
        match meta(MASTER_KEY_META)? {
            Some(expected) if expected != found => {
                return Err(StoreError::MasterKeyMismatch {
                    expected,
                    found,
                    key_file: None,
                    db: None,
                });
            }
            Some(_) => {}
            None => set_meta(&tx, MASTER_KEY_META, &found)?,
        }
    }
    tx.commit().ctx("commit meta")?;
    Ok(store_id)
}

fn set_meta(tx: &Transaction<'_>, name: &str, value: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)",
        [name, value],
    )
    .ctx("write meta")?;
    Ok(())
}

pub(crate) fn check_profile(profile: &KeyProfile) -> Result<(), StoreError> {
    if !(6..=10).contains(&profile.digits) {
        return Err(invalid(
            "digits",
            format!("{} is outside 6..=10", profile.digits),
        ));
    }
    match (profile.algorithm, profile.period) {
        (OtpAlgorithm::Totp, Some(period)) if period > 0 => Ok(()),
        (OtpAlgorithm::Totp, _) => Err(invalid("period", "TOTP needs a period above 0")),
        (OtpAlgorithm::Hotp, None) => Ok(()),
        (OtpAlgorithm::Hotp, Some(_)) => Err(invalid("period", "HOTP keys have no period")),
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn now_text() -> String {
    format_time(OffsetDateTime::now_utc())
}

pub(crate) fn event<'a>(
    kind: &'a str,
    batch: Option<BatchId>,
    device: Option<DeviceId>,
    detail: serde_json::Value,
) -> Draft<'a> {
    Draft {
        kind,
        batch,
        device,
        key: None,
        detail,
    }
}

fn device_detail(identity: &DeviceIdentity) -> serde_json::Value {
    serde_json::json!({
        "family": identity.family,
        "model": identity.model,
        "serial": identity.serial,
        "firmware": identity.firmware,
    })
}

/// Reads a timestamp column written by [`format_time`].
pub(crate) fn time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<OffsetDateTime> {
    let text: String = row.get(index)?;
    parse_time(&text).ok_or_else(|| conversion_error(index, format!("bad timestamp {text:?}")))
}

pub(crate) fn conversion_error(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
}

const BATCH_SELECT: &str = "SELECT id, name, algorithm, digits, period, hash, mode, server_url,
    operator, params, state, created_at, finished_at FROM batches";

fn batch_from_row(row: &Row<'_>) -> rusqlite::Result<Batch> {
    let params: String = row.get(9)?;
    Ok(Batch {
        id: row.get(0)?,
        name: row.get(1)?,
        profile: KeyProfile {
            algorithm: row.get(2)?,
            digits: row.get(3)?,
            period: row.get(4)?,
            hash: row.get(5)?,
        },
        mode: row.get(6)?,
        server_url: row.get(7)?,
        operator: row.get(8)?,
        params: serde_json::from_str(&params)
            .map_err(|e| conversion_error(9, format!("batch params: {e}")))?,
        state: row.get(10)?,
        created_at: time_column(row, 11)?,
        finished_at: match row.get::<_, Option<String>>(12)? {
            Some(_) => Some(time_column(row, 12)?),
            None => None,
        },
    })
}

pub(crate) fn batch_in(tx: &Transaction<'_>, id: BatchId) -> Result<Batch, StoreError> {
    tx.query_row(
        &format!("{BATCH_SELECT} WHERE id = ?1"),
        [id],
        batch_from_row,
    )
    .optional()
    .ctx("read batch")?
    .ok_or(StoreError::UnknownBatch(id))
}

const DEVICE_SELECT: &str =
    "SELECT id, family, model, serial, firmware, first_seen, last_seen FROM devices";

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get(0)?,
        family: row.get(1)?,
        model: row.get(2)?,
        serial: row.get(3)?,
        firmware: row.get(4)?,
        first_seen: time_column(row, 5)?,
        last_seen: time_column(row, 6)?,
    })
}

pub(crate) fn device_in(tx: &Transaction<'_>, id: DeviceId) -> Result<Device, StoreError> {
    tx.query_row(
        &format!("{DEVICE_SELECT} WHERE id = ?1"),
        [id],
        device_from_row,
    )
    .optional()
    .ctx("read device")?
    .ok_or(StoreError::UnknownDevice(id))
}

pub(crate) fn find_device_in(
    tx: &Transaction<'_>,
    family: &str,
    serial: &str,
) -> Result<Option<Device>, StoreError> {
    let sql = format!("{DEVICE_SELECT} WHERE family = ?1 AND serial = ?2");
    tx.query_row(&sql, [family, serial], device_from_row)
        .optional()
        .ctx("find device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_follows_xdg_then_home() {
        let path = |xdg: Option<&str>, home: Option<&str>| {
            default_path_from(xdg.map(Into::into), home.map(Into::into))
        };
        assert_eq!(
            path(Some("/data"), Some("/home/op")).unwrap(),
            Path::new("/data/keyprov/station.db")
        );
        assert_eq!(
            path(None, Some("/home/op")).unwrap(),
            Path::new("/home/op/.local/share/keyprov/station.db")
        );
        assert_eq!(
            path(Some("relative"), Some("/home/op")).unwrap(),
            Path::new("/home/op/.local/share/keyprov/station.db")
        );
        assert!(matches!(path(None, None), Err(StoreError::NoDataDirectory)));
    }

    #[test]
    fn master_key_lives_beside_the_database() {
        assert_eq!(
            Store::master_key_path(Path::new("/data/keyprov/station.db")),
            Path::new("/data/keyprov/master.key")
        );
    }

    #[test]
    fn profiles_are_checked() {
        use crate::model::HashAlgorithm;
        let profile = |algorithm, digits, period| KeyProfile {
            algorithm,
            digits,
            period,
            hash: HashAlgorithm::Sha1,
        };
        assert!(check_profile(&profile(OtpAlgorithm::Hotp, 6, None)).is_ok());
        assert!(check_profile(&profile(OtpAlgorithm::Totp, 8, Some(30))).is_ok());
        assert!(check_profile(&profile(OtpAlgorithm::Totp, 8, None)).is_err());
        assert!(check_profile(&profile(OtpAlgorithm::Hotp, 6, Some(30))).is_err());
        assert!(check_profile(&profile(OtpAlgorithm::Hotp, 5, None)).is_err());
    }
}
