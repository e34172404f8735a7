//! Listing the station's audit log through the service API, so that shells (the GUI's History
//! screen) need no second database connection. Events are shown as the store recorded them,
//! with the token's serial instead of its row id and only a prefix of the chain hash;
//! `Station::audit_verify` is what checks the chain.

use std::collections::HashMap;

use keyprov_store::{BatchId, DeviceId, Event};
use time::format_description::well_known::Rfc3339;

use crate::Station;
use crate::api::{AuditEvent, AuditQuery};
use crate::error::Result;

/// Hex digits of the chain hash shown with each event.
pub const HASH_PREFIX_LEN: usize = 12;

impl Station {
    /// The audit events `query` asks for, newest first.
    pub fn audit_events(&self, query: AuditQuery) -> Result<Vec<AuditEvent>> {
        let events = self.store.events(query.batch_id.map(BatchId))?;
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        let mut serials: HashMap<DeviceId, String> = HashMap::new();
        events
            .into_iter()
            .rev()
            .skip(query.offset)
            .take(limit)
            .map(|event| {
                let serial = match event.device {
                    Some(id) => Some(self.serial(id, &mut serials)?),
                    None => None,
                };
                Ok(audit_event(event, serial))
            })
            .collect()
    }

    fn serial(&self, id: DeviceId, known: &mut HashMap<DeviceId, String>) -> Result<String> {
        if let Some(serial) = known.get(&id) {
            return Ok(serial.clone());
        }
        let serial = self.store.device(id)?.serial;
        known.insert(id, serial.clone());
        Ok(serial)
    }
}

fn audit_event(event: Event, serial: Option<String>) -> AuditEvent {
    AuditEvent {
        id: event.seq,
        time: event.at.format(&Rfc3339).unwrap_or_default(),
        kind: event.kind,
        batch: event.batch.map(|b| b.0),
        serial,
        key: event.key.map(|k| k.0),
        detail: event.detail,
        hash_prefix: event.hash.chars().take(HASH_PREFIX_LEN).collect(),
    }
}
