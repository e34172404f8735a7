//! Resuming an interrupted batch: what to do with each device, given what the store recorded.
//!
//! The store writes every key transition in one transaction with its event, *after* the device
//! operation it records has returned. So for a device the last recorded state bounds what the
//! device may hold (the full argument is in `docs/engine.md`):
//!
//! | recorded key state | the device holds | resume does |
//! |---|---|---|
//! | none | its old configuration | provision from the start |
//! | `reserved` | the old configuration or this key (crash during the write) | revoke it, provision a new key |
//! | `written` | this key, its counter maybe advanced by an interrupted verification | verify with a look-ahead window |
//! | `verified` / `exported` | this key | nothing |
//!
//! A DSKPP run that started but never produced a `reserved` key may still have been completed
//! by the server; those runs are listed separately (see [`orphaned_runs`]) and revoked at the
//! server.

use keyprov_store::{KeyId, KeyState};

/// One key of the device in this batch, as the store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedKey {
    pub id: KeyId,
    pub state: KeyState,
}

/// What resuming does with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Keys to revoke first: issued, possibly written, never confirmed.
    pub revoke: Vec<KeyId>,
    pub next: Next,
}

/// The step a device resumes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the whole pipeline: DSKPP, write, verify.
    Provision,
    /// The write of this key was confirmed; prove it on the device.
    Verify(KeyId),
    /// The device is finished with this key.
    Done(KeyId),
}

/// Decides how a device resumes from the keys recorded for it in this batch.
pub fn plan(keys: &[RecordedKey]) -> Plan {
    let revoke = keys
        .iter()
        .filter(|k| k.state == KeyState::Reserved)
        .map(|k| k.id)
        .collect();
    let finished = keys
        .iter()
        .find(|k| matches!(k.state, KeyState::Verified | KeyState::Exported));
    let written = keys.iter().find(|k| k.state == KeyState::Written);
    let next = match (finished, written) {
        (Some(k), _) => Next::Done(k.id),
        (None, Some(k)) => Next::Verify(k.id),
        (None, None) => Next::Provision,
    };
    Plan { revoke, next }
}

/// DSKPP runs (by client id) that started but produced no key the station recorded.
pub fn orphaned_runs<'a>(
    started: &'a [String],
    recorded: &[Option<String>],
) -> impl Iterator<Item = &'a String> {
    let recorded: Vec<&str> = recorded.iter().flatten().map(String::as_str).collect();
    started
        .iter()
        .filter(move |id| !recorded.contains(&id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, state: KeyState) -> RecordedKey {
        RecordedKey {
            id: KeyId(id),
            state,
        }
    }

    #[test]
    fn a_device_without_keys_is_provisioned() {
        assert_eq!(
            plan(&[]),
            Plan {
                revoke: vec![],
                next: Next::Provision
            }
        );
    }

    #[test]
    fn a_reserved_key_is_revoked_and_replaced() {
        let p = plan(&[key(1, KeyState::Revoked), key(2, KeyState::Reserved)]);
        assert_eq!(p.revoke, [KeyId(2)]);
        assert_eq!(p.next, Next::Provision);
    }

    #[test]
    fn a_written_key_is_verified() {
        let p = plan(&[key(1, KeyState::Revoked), key(2, KeyState::Written)]);
        assert!(p.revoke.is_empty());
        assert_eq!(p.next, Next::Verify(KeyId(2)));
    }

    #[test]
    fn a_verified_or_exported_key_ends_the_device() {
        assert_eq!(
            plan(&[key(3, KeyState::Verified)]).next,
            Next::Done(KeyId(3))
        );
        assert_eq!(
            plan(&[key(4, KeyState::Exported)]).next,
            Next::Done(KeyId(4))
        );
    }

    #[test]
    fn runs_without_a_recorded_key_are_orphans() {
        let started = vec!["a1".to_string(), "b2".to_string(), "c3".to_string()];
        let recorded = vec![Some("b2".to_string()), None];
        let orphans: Vec<&String> = orphaned_runs(&started, &recorded).collect();
        assert_eq!(orphans, ["a1", "c3"]);
    }
}
