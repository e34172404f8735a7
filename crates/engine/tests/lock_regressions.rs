//! Regression tests of the breaker's lock findings: a run given a symlink to the station
//! database locked `<link>.lock` and ran beside a run on the database itself (#1), and a batch
//! another run was still writing was listed as `interrupted` (#6).

use keyprov_drivers::Family;
use keyprov_engine::Cancel;
use keyprov_engine::api::BatchRequest;

mod common;
use common::{add_tokens, create_open_batch, hold_lock, open_station};

fn request(name: &str) -> BatchRequest {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "otp": "hotp",
        "digits": 6,
        "mode": { "kind": "local" },
    }))
    .unwrap()
}

#[test]
fn symlinked_db_path_is_refused_while_a_run_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    add_tokens(&tokens, Family::Yubikey, 1, None);
    let real = dir.path().join("st.db");
    let link = dir.path().join("link.db");
    // The database exists before the link is followed, as in the breaker's run.
    drop(open_station(&real, &tokens));
    std::os::unix::fs::symlink("st.db", &link).unwrap();
    let via_link = open_station(&link, &tokens);

    let held = hold_lock(&real);
    let err = via_link
        .provision(request("a"), &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_eq!(err.code(), "station_busy", "{err}");
    assert!(!dir.path().join("link.db.lock").exists());
    drop(held);

    // And the other way round: a run through the link holds the database's own lock.
    let held = hold_lock(&link);
    let err = open_station(real, &tokens)
        .provision(request("a"), &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_eq!(err.code(), "station_busy", "{err}");
    drop(held);
    let summary = via_link
        .provision(request("a"), &|_| {}, &Cancel::new())
        .unwrap();
    assert_eq!((summary.state.as_str(), summary.verified), ("completed", 1));
}

#[test]
fn an_open_batch_is_running_while_the_lock_is_held_and_interrupted_after() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let station = open_station(dir.path().join("station.db"), &tokens);
    create_open_batch(&station, "open");
    assert_eq!(station.batch("open").unwrap().batch.state, "interrupted");

    let held = hold_lock(station.db_path());
    assert_eq!(station.batches().unwrap()[0].state, "running");
    assert_eq!(station.batch("open").unwrap().batch.state, "running");
    drop(held);
    assert_eq!(station.batches().unwrap()[0].state, "interrupted");
}
