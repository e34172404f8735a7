//! `Station::audit_events`: the audit log as the GUI's History screen lists it, checked against
//! the store's own event rows (read through a second, key-less connection).

use keyprov_drivers::Family;
use keyprov_engine::Cancel;
use keyprov_engine::api::{
    AuditQuery, BatchRequest, ExportProtection, ExportRequest, OtpHash, OtpKind,
};
use keyprov_store::Store;

mod common;
use common::{add_tokens, batch_request, open_station};

fn request(name: &str) -> BatchRequest {
    batch_request(name, OtpKind::Hotp, OtpHash::Sha1)
}

#[test]
fn audit_events_are_the_stores_events_newest_first_with_serials() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    add_tokens(&tokens, Family::Yubikey, 2, None);
    let db = dir.path().join("station.db");
    let station = open_station(&db, tokens);
    let first = station
        .provision(request("first"), &|_| {}, &Cancel::new())
        .unwrap();
    let export = ExportRequest {
        path: dir.path().join("first.pskcxml"),
        protection: ExportProtection::Password {
            password: "audit-list-password".into(),
        },
        target: Default::default(),
    };
    station.export_batch("first", export).unwrap();
    let second = station
        .provision(request("second"), &|_| {}, &Cancel::new())
        .unwrap();

    let all = station.audit_events(AuditQuery::default()).unwrap();
    let rows = Store::open_existing_without_key(&db)
        .unwrap()
        .events(None)
        .unwrap();
    assert_eq!(all.len(), rows.len());
    assert_eq!(all.len() as u64, station.audit_verify().unwrap().events);
    for (event, row) in all.iter().zip(rows.iter().rev()) {
        assert_eq!(event.id, row.seq);
        assert_eq!(event.kind, row.kind);
        assert_eq!(event.detail, row.detail);
        assert_eq!(event.hash_prefix.len(), 12);
        assert!(row.hash.starts_with(&event.hash_prefix));
        assert_eq!(event.serial.is_some(), row.device.is_some(), "{event:?}");
    }
    let serials: std::collections::BTreeSet<_> =
        all.iter().filter_map(|e| e.serial.as_deref()).collect();
    assert_eq!(
        serials.into_iter().collect::<Vec<_>>(),
        ["10000001", "10000002"]
    );
    assert!(all.iter().any(|e| e.kind.starts_with("export")), "{all:?}");

    // One batch, a page at a time.
    let of_first = station
        .audit_events(AuditQuery {
            batch_id: Some(first.id),
            ..AuditQuery::default()
        })
        .unwrap();
    assert!(!of_first.is_empty());
    assert!(of_first.iter().all(|e| e.batch == Some(first.id)));
    assert!(all.iter().any(|e| e.batch == Some(second.id)));
    let page = station
        .audit_events(AuditQuery {
            batch_id: Some(first.id),
            limit: 2,
            offset: 1,
        })
        .unwrap();
    assert_eq!(page, of_first[1..3]);

    // Never a secret, not even one the operator revealed.
    let key = station.batch("second").unwrap().tokens[0].key_id.clone();
    let secret = station.reveal_secret(&key).unwrap();
    let listed = serde_json::to_string(&all).unwrap();
    assert!(!listed.contains(secret.as_str()));
}
