//! The provisioning log as a hash chain, and its audit.
//!
//! Event `n` stores `prev_hash` (the hash of event `n - 1`, 32 zero bytes for the first) and
//! `hash = SHA-256(prev_hash || content)`, where `content` is the canonical encoding of its
//! fields: the tag `keyprov-event-v1`, then seq, time, kind, batch, device, key and detail, each
//! as a 4-byte big-endian length and its UTF-8 text (ids in decimal, absent ones empty; detail
//! is the stored JSON text). Changing, removing or reordering a row breaks the chain at that
//! row. The head (last seq and hash) is also kept in `meta`, so dropping the newest events is
//! caught too. Each key's state must also equal the state its last `key.*` event recorded.
//! Someone who rewrites the whole chain and the head is not: compare the head the
//! audit prints with one noted elsewhere to rule that out.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use crate::error::{SqlContext, StoreError};
use crate::model::{BatchId, DeviceId, KeyId, format_time};

const GENESIS: [u8; 32] = [0; 32];
const HEAD_META: &str = "audit_head";

/// An event about to be appended.
pub(crate) struct Draft<'a> {
    pub kind: &'a str,
    pub batch: Option<BatchId>,
    pub device: Option<DeviceId>,
    pub key: Option<KeyId>,
    pub detail: serde_json::Value,
}

/// The outcome of [`crate::Store::verify_audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Events checked (all of them when the chain holds).
    pub events: u64,
    /// Hash of the last event, hex (`None` for an empty log).
    pub head: Option<String>,
    /// The first link that does not hold.
    pub first_broken: Option<BrokenLink>,
}

impl AuditReport {
    /// Whether every link holds.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The event at which it breaks.
    pub seq: i64,
    /// What does not hold there.
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event #{}: {}", self.seq, self.reason)
    }
}

/// The fields that make up an event's canonical content.
struct Content<'a> {
    seq: i64,
    at: &'a str,
    kind: &'a str,
    batch: Option<i64>,
    device: Option<i64>,
    key: Option<i64>,
    detail: &'a str,
}

impl Content<'_> {
    fn link(&self, prev_hash: &[u8]) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(prev_hash);
        let id = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let seq = self.seq.to_string();
        let fields: [&str; 8] = [
            "keyprov-event-v1",
            &seq,
            self.at,
            self.kind,
            &id(self.batch),
            &id(self.device),
            &id(self.key),
            self.detail,
        ];
        for field in fields {
            // Fields are far below 4 GiB; the length prefix keeps their boundaries unambiguous.
            hash.update((field.len() as u32).to_be_bytes());
            hash.update(field.as_bytes());
        }
        hash.finalize().into()
    }
}

/// Appends an event inside the caller's transaction; returns its seq.
pub(crate) fn append(tx: &Transaction<'_>, draft: Draft<'_>) -> Result<i64, StoreError> {
    let last: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .and_then(|mut head| {
            head.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .ctx("read audit head")?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS.to_vec()));
    let at = format_time(time::OffsetDateTime::now_utc());
    let detail = draft.detail.to_string();
    let content = Content {
        seq: prev_seq + 1,
        at: &at,
        kind: draft.kind,
        batch: draft.batch.map(|b| b.0),
        device: draft.device.map(|d| d.0),
        key: draft.key.map(|k| k.0),
        detail: &detail,
    };
    let hash = content.link(&prev_hash);
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO events (seq, at, kind, batch_id, device_id, key_id, detail, prev_hash,
                 hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .ctx("append event")?;
    insert
        .execute(params![
            content.seq,
            at,
            draft.kind,
            content.batch,
            content.device,
            content.key,
            detail,
            prev_hash,
            hash.as_slice()
        ])
        .ctx("append event")?;
    let head = format!("{}:{}", content.seq, hex::encode(hash));
    tx.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut update| update.execute(params![HEAD_META, head]))
    .ctx("record audit head")?;
    tracing::trace!(seq = content.seq, kind = draft.kind, "event appended");
    Ok(content.seq)
}

/// Walks the chain from the first event and reports the first link that does not hold.
pub(crate) fn verify(tx: &Transaction<'_>) -> Result<AuditReport, StoreError> {
    let mut stmt = tx
        .prepare(
            "SELECT seq, at, kind, batch_id, device_id, key_id, detail, prev_hash, hash
             FROM events ORDER BY seq",
        )
        .ctx("read events")?;
    let mut rows = stmt.query([]).ctx("read events")?;
    let mut expected_prev = GENESIS.to_vec();
    let mut checked = 0u64;
    let broken = |seq: i64, reason: String, checked: u64| AuditReport {
        events: checked,
        head: None,
        first_broken: Some(BrokenLink { seq, reason }),
    };
    while let Some(row) = rows.next().ctx("read event")? {
        let seq: i64 = row.get(0).ctx("read event")?;
        let want_seq = checked as i64 + 1;
        if seq != want_seq {
            let reason = format!("event #{want_seq} is missing (the next one is #{seq})");
            return Ok(broken(want_seq, reason, checked));
        }
        let at: String = row.get(1).ctx("read event")?;
        let kind: String = row.get(2).ctx("read event")?;
        let detail: String = row.get(6).ctx("read event")?;
        let prev_hash: Vec<u8> = row.get(7).ctx("read event")?;
        let hash: Vec<u8> = row.get(8).ctx("read event")?;
        if prev_hash != expected_prev {
            let reason = format!("prev_hash does not match the hash of event #{}", seq - 1);
            return Ok(broken(seq, reason, checked));
        }
        let content = Content {
            seq,
            at: &at,
            kind: &kind,
            batch: row.get(3).ctx("read event")?,
            device: row.get(4).ctx("read event")?,
            key: row.get(5).ctx("read event")?,
            detail: &detail,
        };
        if content.link(&prev_hash).as_slice() != hash.as_slice() {
            let reason = "its content does not match its hash".to_owned();
            return Ok(broken(seq, reason, checked));
        }
        expected_prev = hash;
        checked += 1;
    }
    let link = match check_head(tx, checked, &expected_prev)? {
        Some(link) => Some(link),
        None => check_key_states(tx, checked as i64)?,
    };
    if let Some(link) = link {
        return Ok(AuditReport {
            events: checked,
            head: None,
            first_broken: Some(link),
        });
    }
    let head = (checked > 0).then(|| hex::encode(&expected_prev));
    Ok(AuditReport {
        events: checked,
        head,
        first_broken: None,
    })
}

/// Checks that every key's state is the one its last `key.*` event recorded, so a state
/// edited in the keys table without its event is caught.
fn check_key_states(tx: &Transaction<'_>, last_seq: i64) -> Result<Option<BrokenLink>, StoreError> {
    let mut logged: HashMap<i64, (i64, String)> = HashMap::new();
    let mut stmt = tx
        .prepare(
            "SELECT key_id, seq, detail FROM events
             WHERE key_id IS NOT NULL AND kind LIKE 'key.%' ORDER BY seq",
        )
        .ctx("read key events")?;
    let mut rows = stmt.query([]).ctx("read key events")?;
    while let Some(row) = rows.next().ctx("read key event")? {
        let detail: String = row.get(2).ctx("read key event")?;
        let state = serde_json::from_str::<serde_json::Value>(&detail)
            .ok()
            .and_then(|d| d.get("state").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_default();
        logged.insert(
            row.get(0).ctx("read key event")?,
            (row.get(1).ctx("read key event")?, state),
        );
    }
    let mut stmt = tx
        .prepare("SELECT id, state FROM keys ORDER BY id")
        .ctx("read keys")?;
    let mut rows = stmt.query([]).ctx("read keys")?;
    while let Some(row) = rows.next().ctx("read key")? {
        let id: i64 = row.get(0).ctx("read key")?;
        let state: String = row.get(1).ctx("read key")?;
        match logged.get(&id) {
            None => {
                let reason = format!("key #{id} ({state}) has no event in the log");
                return Ok(Some(BrokenLink {
                    seq: last_seq,
                    reason,
                }));
            }
            Some((seq, logged_state)) if *logged_state != state => {
                let reason = format!(
                    "key #{id} is {state} in the keys table but its last event says {logged_state}"
                );
                return Ok(Some(BrokenLink { seq: *seq, reason }));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Compares the last event with the head recorded in `meta`.
fn check_head(
    tx: &Transaction<'_>,
    last_seq: u64,
    last_hash: &[u8],
) -> Result<Option<BrokenLink>, StoreError> {
    let recorded: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE name = ?1",
            [HEAD_META],
            |row| row.get(0),
        )
        .optional()
        .ctx("read audit head")?;
    let expected = format!("{last_seq}:{}", hex::encode(last_hash));
    match recorded {
        None if last_seq == 0 => Ok(None),
        Some(head) if head == expected => Ok(None),
        None => Ok(Some(BrokenLink {
            seq: last_seq as i64,
            reason: "the recorded head of the chain is missing".to_owned(),
        })),
        Some(head) => {
            let head_seq = head.split(':').next().unwrap_or_default();
            let link = if head_seq == last_seq.to_string() {
                BrokenLink {
                    seq: last_seq as i64,
                    reason: "its hash differs from the recorded head of the chain".to_owned(),
                }
            } else {
                BrokenLink {
                    seq: last_seq as i64 + 1,
                    reason: format!(
                        "the chain ends at event #{last_seq} but its recorded head is #{head_seq}"
                    ),
                }
            };
            Ok(Some(link))
        }
    }
}
