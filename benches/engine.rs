//! Engine benchmark (not a test): 64 emulated YubiKeys whose configuration writes take 200 ms
//! are provisioned in one local-mode batch. Prints the batch wall time divided by the
//! device-latency bound, one 200 ms write per parallel wave: `ceil(64 / parallel) × 200 ms`.
//! Target ≤ 1.05; it must not exceed 1.5.
//!
//! Every other device command takes 1 ms, so that what the bound leaves out is the engine's
//! own work plus the drivers' protocol overhead (YubiKey status polling around a write, the
//! typed OTP read during verification). Token discovery is timed on its own and reported
//! separately; the second ratio is the batch without it. A second line gives, per token, the
//! mean time of each stage (from one progress report to the next), when the first token was
//! queued, and when the first and the last write started and the last token finished, to show
//! where the time beyond the bound goes.
//!
//! `cargo bench --bench engine` (set `KEYPROV_BENCH_PARALLEL=16,32,64` to choose the widths).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use keyprov_drivers::Family;
use keyprov_drivers::emulator::{self, Latency};
use keyprov_engine::api::{
    BatchRequest, OtpKind, ProgressEvent, ProvisioningMode, Stage, StationConfig,
};
use keyprov_engine::{Cancel, Station};

const TOKENS: u32 = 64;
const WRITE: Duration = Duration::from_millis(200);
/// Every other command: short, so that the bound (writes only) is what the devices cost.
const OTHER: Duration = Duration::from_millis(1);

fn request(name: &str, parallel: usize, count: Option<usize>) -> BatchRequest {
    BatchRequest {
        name: name.into(),
        otp: OtpKind::Hotp,
        digits: 6,
        period: 30,
        count,
        mode: ProvisioningMode::Local,
        export: None,
        operator: None,
        parallel: Some(parallel),
        hash: Default::default(),
    }
}

fn main() {
    let widths: Vec<usize> = std::env::var("KEYPROV_BENCH_PARALLEL")
        .unwrap_or_else(|_| "16,32,64".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    for parallel in widths {
        run(parallel);
    }
}

fn run(parallel: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    let added = emulator::add(&tokens, Family::Yubikey, TOKENS, None).expect("emulators");
    let latency = Latency {
        write_ms: WRITE.as_millis() as u64,
        other_ms: OTHER.as_millis() as u64,
    };
    for token in &added {
        emulator::set_latency(&tokens, &token.serial, latency).expect("latency");
    }
    let station = Station::open(StationConfig {
        db_path: Some(dir.path().join("station").join("station.db")),
        emulator_dir: Some(tokens),
        ..StationConfig::default()
    })
    .expect("open station");
    // The first local run creates the DSKPP server's RSA key; keep that out of the timing.
    let quiet = |_| {};
    station
        .provision(request("warm-up", 1, Some(1)), &quiet, &Cancel::new())
        .expect("warm-up batch");

    // Discovery (keyprov-drivers' `list`, which opens the tokens in parallel) is timed on its
    // own, since the operator's device list exists before the batch starts.
    let discovery_started = Instant::now();
    let attached = station.devices().expect("discovery").len();
    let discovery = discovery_started.elapsed();
    assert_eq!(attached, TOKENS as usize);

    let marks = Mutex::new(Vec::new());
    let mark = |event: ProgressEvent| {
        let now = Instant::now();
        marks
            .lock()
            .expect("marks")
            .push((event.serial, event.stage, now));
    };
    let started = Instant::now();
    let summary = station
        .provision(request("bench", parallel, None), &mark, &Cancel::new())
        .expect("benchmark batch");
    let wall = started.elapsed();
    assert_eq!(summary.verified, TOKENS as usize, "every token verified");

    let waves = (TOKENS as usize).div_ceil(parallel.min(keyprov_engine::MAX_PARALLEL));
    let bound = (WRITE * waves as u32).as_secs_f64();
    let batch = wall.saturating_sub(discovery).as_secs_f64();
    println!(
        "engine: {TOKENS} tokens, writes {} ms, other commands {} ms, parallel {parallel} \
         ({waves} waves): bound {bound:.3} s; wall {:.3} s (ratio {:.2}), of which discovery \
         {:.3} s; batch without discovery {batch:.3} s (ratio {:.2}); target <= 1.05, limit 1.5",
        WRITE.as_millis(),
        OTHER.as_millis(),
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound,
        discovery.as_secs_f64(),
        batch / bound,
    );
    let marks = marks.into_inner().expect("marks");
    println!("  {}", stages(&marks, started));
}

/// Mean time per token of each stage (from one progress report to the token's next one),
/// and when the first token was queued: where the time beyond the bound goes.
fn stages(marks: &[(String, Stage, Instant)], started: Instant) -> String {
    let names = [
        (Stage::Queued, "open+slot"),
        // With keys obtained a wave ahead, this includes waiting for a free writer.
        (Stage::Dskpp, "dskpp+reserve(+wait)"),
        (Stage::Writing, "write"),
        (Stage::Verifying, "verify+commit"),
    ];
    let mut text = String::new();
    let first = marks.iter().map(|m| m.2).min().unwrap_or(started);
    text.push_str(&format!(
        "first token queued after {:.1} ms; mean per token:",
        (first - started).as_secs_f64() * 1e3
    ));
    for (stage, name) in names {
        let spans: Vec<f64> = marks
            .iter()
            .filter(|m| m.1 == stage)
            .filter_map(|(serial, _, at)| {
                let next = marks
                    .iter()
                    .filter(|m| &m.0 == serial && m.2 > *at)
                    .map(|m| m.2)
                    .min()?;
                Some((next - *at).as_secs_f64() * 1e3)
            })
            .collect();
        let mean = spans.iter().sum::<f64>() / spans.len().max(1) as f64;
        text.push_str(&format!(" {name} {mean:.1} ms"));
    }
    let since = |stage: Stage| -> Vec<f64> {
        marks
            .iter()
            .filter(|m| m.1 == stage)
            .map(|m| (m.2 - started).as_secs_f64() * 1e3)
            .collect()
    };
    let (writes, done) = (since(Stage::Writing), since(Stage::Done));
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    text.push_str(&format!(
        "; writes started from {:.1} to {:.1} ms; last token done at {:.1} ms",
        min(&writes),
        max(&writes),
        max(&done)
    ));
    text
}
