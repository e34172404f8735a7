//! A device's outcome in a batch keeps whether its failure may go away on a re-run (the
//! engine sets it from the error's kind; the CLI's advice reads it), and a later outcome
//! replaces it.

mod common;

use common::{batch, device, fresh_store};
use keyprov_store::DeviceOutcome;

#[test]
fn a_retryable_failure_is_kept_and_a_later_outcome_replaces_it() {
    let (_dir, _path, store) = fresh_store();
    let b = batch(&store, "b");
    let d = device(&store, "yubikey", "10000001");
    store.add_batch_device(b.id, d.id).unwrap();
    let member = |store: &keyprov_store::Store| store.batch_devices(b.id).unwrap().remove(0);
    assert!(!member(&store).retryable);

    let error = "emulated 10000001: device unplugged during write";
    store
        .set_batch_device_outcome(b.id, d.id, DeviceOutcome::Failed, Some(error), true)
        .unwrap();
    let failed = member(&store);
    assert_eq!(failed.outcome, DeviceOutcome::Failed);
    assert_eq!(failed.error.as_deref(), Some(error));
    assert!(failed.retryable);
    let event = store.events(Some(b.id)).unwrap().pop().unwrap();
    assert_eq!(event.kind, "batch.device_outcome");
    assert_eq!(event.detail["retryable"], true);

    store
        .set_batch_device_outcome(
            b.id,
            d.id,
            DeviceOutcome::Failed,
            Some("no totp slot"),
            false,
        )
        .unwrap();
    assert!(!member(&store).retryable);
    store
        .set_batch_device_outcome(b.id, d.id, DeviceOutcome::Done, None, false)
        .unwrap();
    let done = member(&store);
    assert_eq!(
        (done.outcome, done.error, done.retryable),
        (DeviceOutcome::Done, None, false)
    );
    assert!(store.verify_audit().unwrap().is_intact());
}
