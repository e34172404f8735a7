//! Crash test: `keyprov provision` is SIGKILLed at ≥ 20 random instants across runs and the
//! batch is resumed each time by re-running the same command. Afterwards every token holds
//! exactly one active key, equal to the store's (oathtool over the exported secret gives the
//! token's OTP), the export has no duplicate, and `keyprov audit verify` passes.
//!
//! The seed of the kill instants is printed; set `KEYPROV_CRASH_SEED` to replay a run.

mod station_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keyprov_store::{KeyState, Store};
use station_support::{Bench, PASSWORD, check_export_against_tokens, keyprov, python_pskc};

/// A small xorshift generator: the test needs spread, not quality, and a printable seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn provision_args(bench: &Bench, batch: &str) -> Vec<String> {
    let args = ["provision", "--batch", batch, "--emulator"];
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend([bench.emu_arg(), "--db".into(), bench.db_arg()]);
    v
}

/// Runs a provisioning and kills it after `delay`, if it is still running then.
/// Returns true if the kill landed (the process had not finished).
fn run_and_kill(bench: &Bench, batch: &str, delay: Duration) -> bool {
    let mut child = keyprov()
        .args(provision_args(bench, batch))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn keyprov provision");
    let end = Instant::now() + delay;
    while Instant::now() < end {
        if child.try_wait().expect("poll child").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap child");
    !status.success()
}

fn complete(bench: &Bench, batch: &str) {
    let out = keyprov()
        .args(provision_args(bench, batch))
        .output()
        .expect("run provision");
    assert!(
        out.status.success(),
        "resuming {batch} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_at_random_instants_is_resumed_without_loss_or_duplicates() {
    let bench = Bench::new();
    bench.add_tokens("yubikey", 4);
    bench.add_tokens("nitrokey-pro", 2);
    bench.set_latency(25, 1);

    // How long an uninterrupted run takes sets the window the kills are spread over. The
    // first run also creates the local DSKPP server's RSA key, so the second one is timed.
    complete(&bench, "warm-up");
    let started = Instant::now();
    complete(&bench, "timed");
    let window = started.elapsed().as_millis() as u64 * 6 / 5 + 5;

    let seed = std::env::var("KEYPROV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) | 1
        });
    println!("crash seed {seed} (KEYPROV_CRASH_SEED), kill window {window} ms");
    let mut rng = Rng(seed);

    // Each batch re-provisions every token (replacing the previous batch's keys), so kills
    // land in DSKPP, writes, verification and the replacement of live keys alike.
    let mut kills = 0;
    let mut batch_no = 1;
    let mut rounds = 0;
    while kills < 24 {
        rounds += 1;
        assert!(rounds < 400, "only {kills} kills landed in {rounds} rounds");
        let batch = format!("crash-{batch_no}");
        let delay = Duration::from_millis(rng.below(window));
        if run_and_kill(&bench, &batch, delay) {
            kills += 1;
        } else {
            batch_no += 1;
        }
    }
    let last = format!("crash-{batch_no}");
    complete(&bench, &last);
    println!("{kills} kills over {rounds} rounds and {batch_no} batches");

    // Every token has exactly one active key in the store, from the last batch.
    let store = Store::open_existing_without_key(&bench.db()).expect("open station db");
    let mut active: HashMap<String, usize> = HashMap::new();
    for batch in store.list_batches().unwrap() {
        for key in store.batch_keys(batch.id).unwrap() {
            if KeyState::ACTIVE.contains(&key.state) {
                let device = store.device(key.device).unwrap();
                *active.entry(device.serial).or_default() += 1;
            }
        }
    }
    assert_eq!(active.len(), 6, "{active:?}");
    assert!(
        active.values().all(|n| *n == 1),
        "one active key per token: {active:?}"
    );
    let detail = bench.batch(&last);
    assert_eq!(
        (detail.batch.state.as_str(), detail.batch.verified),
        ("completed", 6)
    );

    // The export of the last batch: one key per token, each the key the token holds.
    let export = bench.path("crash.pskcxml");
    let out = keyprov()
        .args(["batch", "export", &last, "-o"])
        .arg(&export)
        .args(["--password", PASSWORD, "--db", &bench.db_arg()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = python_pskc(&export, PASSWORD).unwrap();
    let mut ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "no duplicate key in the export");
    assert_eq!(check_export_against_tokens(&bench, &export, PASSWORD), 6);
    bench.audit_ok();
}
