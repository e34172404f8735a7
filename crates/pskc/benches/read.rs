//! Read benchmark (not a timed test): keyprov's read + decrypt + MAC check against
//! python-pskc and `pskctool --info`, measured in the same run on the same files.
//!
//! Generates 10,000- and 100,000-key files (plain; AES-128-CBC + HMAC-SHA1; PBKDF2) and a
//! ~100 MB encrypted file, then prints the ratios and keyprov's peak RSS.
//!
//! Every program is timed by wall clock, best of a few runs (the machine is shared):
//! keyprov's `Reader` in this process (it uses a second thread when there are two cores),
//! python-pskc's load plus reading every secret and counter inside its interpreter (start-up
//! and imports not counted), and the whole `pskctool --info` process.
//! Run: `cargo bench -p keyprov-pskc --bench read` (needs `scripts/setup.sh` for the oracles).
//! `PSKC_BENCH_SIZES=10000` limits the sizes; `KEYPROV_VENV` selects python-pskc's venv.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyprov_pskc::{
    Cipher, DeviceInfo, Hmac, Key, KeyContainer, KeyData, KeyPackage, Protection, ReadOptions,
    Reader, ResponseFormat, Secret, Writer,
};

const PSK: &str = "12345678901234567890123456789012";
const PASSWORD: &str = "benchmark password";
const ITERATIONS: u32 = 100_000;

/// python-pskc: load, then read every secret and counter (decryption and MAC check).
const PYTHON: &str = r#"
import sys, time, pskc
path, key, password = sys.argv[1], sys.argv[2], sys.argv[3]
start, cpu = time.perf_counter(), time.process_time()
p = pskc.PSKC(path)
if key: p.encryption.key = bytes.fromhex(key)
if password: p.encryption.derive_key(password)
n = 0
for k in p.keys:
    assert k.secret is not None
    n += k.counter or 0
print(time.perf_counter() - start, time.process_time() - cpu)
"#;

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Aes,
    Pbkdf2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Aes => "aes128-cbc+hmac-sha1",
            Kind::Pbkdf2 => "pbkdf2-sha256+aes128-cbc",
        }
    }

    fn protection(self) -> Protection {
        match self {
            Kind::Plain => Protection::Plain,
            Kind::Aes => Protection::PreSharedKey {
                key: Secret::from_hex(PSK).unwrap(),
                key_name: None,
                cipher: Cipher::Aes128Cbc,
                mac: Hmac::Sha1,
            },
            Kind::Pbkdf2 => Protection::Password {
                password: Secret::from_slice(PASSWORD.as_bytes()),
                iterations: ITERATIONS,
                prf: Hmac::Sha256,
                salt: None,
                key_name: None,
                cipher: Cipher::Aes128Cbc,
                mac: Hmac::Sha1,
            },
        }
    }

    fn options(self) -> ReadOptions {
        match self {
            Kind::Plain => ReadOptions::default(),
            Kind::Aes => ReadOptions::with_key(Secret::from_hex(PSK).unwrap()),
            Kind::Pbkdf2 => ReadOptions::with_password(Secret::from_slice(PASSWORD.as_bytes())),
        }
    }
}

fn package(i: usize) -> KeyPackage {
    let secret: Vec<u8> = (0..20).map(|b| (i as u8).wrapping_add(b)).collect();
    KeyPackage {
        device_info: DeviceInfo {
            manufacturer: Some("oath.KP".into()),
            serial_no: Some(format!("KP{i:010}")),
            ..DeviceInfo::default()
        },
        keys: vec![Key {
            id: Some(format!("KP{i:010}#1")),
            algorithm: Some(keyprov_pskc::HOTP.into()),
            issuer: Some("KeyProv Station".into()),
            algorithm_parameters: keyprov_pskc::AlgorithmParameters {
                response_format: Some(ResponseFormat {
                    encoding: Some("DECIMAL".into()),
                    length: Some(6),
                    check_digits: None,
                }),
                ..Default::default()
            },
            data: KeyData {
                secret: Some(Secret::new(secret)),
                counter: Some(i as u64),
                ..KeyData::default()
            },
            ..Key::default()
        }],
        ..KeyPackage::default()
    }
}

fn generate(path: &Path, kind: Kind, keys: usize) {
    let out = BufWriter::new(File::create(path).unwrap());
    let mut writer = Writer::new(out, &KeyContainer::new(), &kind.protection()).unwrap();
    for i in 0..keys {
        writer.write_package(&package(i)).unwrap();
    }
    writer.finish().unwrap().flush().unwrap();
}

/// CPU time of waited-for children (`cutime + cstime` of `/proc/self/stat`, 10 ms ticks).
fn children_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = text.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(13) + tick(14)) * 10)
}

/// CPU time of this process, all threads (`utime + stime` of `/proc/self/stat`, 10 ms ticks).
fn process_cpu() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// CPU time of the calling thread (`/proc/thread-self/stat`, 10 ms ticks).
fn thread_cpu() -> Duration {
    stat_cpu("/proc/thread-self/stat")
}

fn stat_cpu(path: &str) -> Duration {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = text.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state, ppid, … utime and stime are the 12th and 13th (0-based 11, 12).
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

/// Wall-clock time of reading every package of `path` (file opened inside the timing).
fn keyprov_read(path: &Path, kind: Kind) -> Duration {
    let start = Instant::now();
    let file = BufReader::with_capacity(64 * 1024, File::open(path).unwrap());
    let mut count = 0u64;
    for package in Reader::new(file, kind.options()).unwrap() {
        let package = package.unwrap();
        let key = &package.keys[0];
        assert!(key.data.secret.as_ref().is_some_and(|s| s.len() == 20));
        count += key.data.counter.unwrap_or(0);
    }
    std::hint::black_box(count);
    start.elapsed()
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

fn python_path() -> PathBuf {
    let venv = std::env::var_os("KEYPROV_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/keyprov/venv")
        });
    venv.join("bin/python")
}

/// python-pskc's wall-clock and CPU time of load + read (measured inside the interpreter).
fn python_read(path: &Path, kind: Kind) -> Option<(Duration, Duration)> {
    let (key, password) = match kind {
        Kind::Plain => ("", ""),
        Kind::Aes => (PSK, ""),
        Kind::Pbkdf2 => ("", PASSWORD),
    };
    let out = Command::new(python_path())
        .args(["-c", PYTHON])
        .arg(path)
        .args([key, password])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python-pskc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut seconds = text
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok());
    let wall = Duration::from_secs_f64(seconds.next()?);
    Some((wall, Duration::from_secs_f64(seconds.next()?)))
}

/// Wall-clock time of the whole `pskctool --info` process.
fn pskctool_info(path: &Path) -> Option<Duration> {
    let start = Instant::now();
    let status = Command::new("pskctool")
        .args(["--info", "--quiet"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| start.elapsed())
}

/// Peak resident set of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn ratio(theirs: Option<Duration>, ours: Duration) -> String {
    match theirs {
        Some(t) => format!("{:.0}x", t.as_secs_f64() / ours.as_secs_f64()),
        None => "n/a (oracle missing: run scripts/setup.sh)".into(),
    }
}

/// Bare quick-xml event loop over a file: the floor any reader built on it can reach.
fn raw_events(path: &Path) -> Duration {
    let start = Instant::now();
    let file = BufReader::with_capacity(64 * 1024, File::open(path).unwrap());
    let mut reader = quick_xml::Reader::from_reader(file);
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        match reader.read_event_into(&mut buf).unwrap() {
            quick_xml::events::Event::Eof => break,
            _ => n += 1,
        }
    }
    std::hint::black_box(n);
    start.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let dir = tempfile::tempdir().unwrap();
    if let Ok(keys) = std::env::var("PSKC_BENCH_PROFILE") {
        let keys: usize = keys.parse().unwrap();
        // `PSKC_BENCH_KIND=aes` (or `plain`) profiles one kind; `PSKC_BENCH_RUNS` reads.
        let only = std::env::var("PSKC_BENCH_KIND").ok();
        let runs: u32 = std::env::var("PSKC_BENCH_RUNS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(20);
        for kind in [Kind::Plain, Kind::Aes] {
            if only.as_deref().is_some_and(|k| !kind.name().starts_with(k)) {
                continue;
            }
            let path = dir.path().join("profile.pskcxml");
            generate(&path, kind, keys);
            if only.is_none() {
                let raw = best_of(5, || raw_events(&path));
                println!("{}: raw events {}", kind.name(), ms(raw));
            }
            let (cpu, main_cpu) = (process_cpu(), thread_cpu());
            let total: Duration = (0..runs).map(|_| keyprov_read(&path, kind)).sum();
            let (cpu, main_cpu) = (process_cpu() - cpu, thread_cpu() - main_cpu);
            println!(
                "{}: keyprov {} wall, {} CPU (all threads; {} this thread) per read",
                kind.name(),
                ms(total / runs),
                ms(cpu / runs),
                ms(main_cpu / runs),
            );
            if let Ok(keep) = std::env::var("PSKC_BENCH_KEEP") {
                std::fs::copy(&path, keep).unwrap();
            }
        }
        return;
    }
    let sizes: Vec<usize> = std::env::var("PSKC_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    println!("Wall-clock time of read + decrypt + MAC check of every key, same files, same run.");
    println!("keyprov: Reader in process, best of 5; python-pskc: PSKC() + every secret and");
    println!("counter, best of 2; pskctool: the whole `--info --quiet` process, best of 5.");
    println!(
        "Cores available: {}.",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<26} {:>7} {:>12} {:>14} {:>9} {:>14} {:>9}",
        "file", "keys", "keyprov", "python-pskc", "ratio", "pskctool", "ratio"
    );
    let mut cpu_rows = Vec::new();
    for &keys in &sizes {
        for kind in [Kind::Plain, Kind::Aes, Kind::Pbkdf2] {
            let path = dir.path().join(format!("{}-{keys}.pskcxml", kind.name()));
            generate(&path, kind, keys);
            let cpu = process_cpu();
            let ours = best_of(5, || keyprov_read(&path, kind));
            let ours_cpu = (process_cpu() - cpu) / 5;
            let pythons: Vec<_> = (0..2).filter_map(|_| python_read(&path, kind)).collect();
            let python = pythons.iter().map(|(wall, _)| *wall).min();
            let python_cpu = pythons.iter().map(|(_, cpu)| *cpu).min();
            let mut tool_cpu = None;
            let (tool_text, tool_ratio) = match kind {
                Kind::Plain => {
                    let cpu = children_cpu();
                    let tool = (0..5).filter_map(|_| pskctool_info(&path)).min();
                    tool_cpu = tool.map(|_| (children_cpu() - cpu) / 5);
                    (tool.map(ms).unwrap_or("n/a".into()), ratio(tool, ours))
                }
                _ => ("(cannot decrypt)".to_owned(), "-".to_owned()),
            };
            cpu_rows.push((kind.name(), keys, ours_cpu, python_cpu, tool_cpu));
            println!(
                "{:<26} {keys:>7} {:>12} {:>14} {:>9} {:>14} {:>9}",
                kind.name(),
                ms(ours),
                python.map(ms).unwrap_or("n/a".into()),
                ratio(python, ours),
                tool_text,
                tool_ratio,
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    println!(
        "targets (issue 2): >= 100x python-pskc on the 10k encrypted file, >= 5x pskctool on plain"
    );
    println!(
        "For reference, CPU time (all threads; keyprov and pskctool: mean of 5, 10 ms ticks):"
    );
    for (name, keys, ours, python, tool) in cpu_rows {
        println!(
            "{name:<26} {keys:>7} {:>12} {:>14} {:>9} {:>14} {:>9}",
            ms(ours),
            python.map(ms).unwrap_or("n/a".into()),
            ratio(python, ours),
            tool.map(ms).unwrap_or("-".into()),
            tool.map_or("-".into(), |t| ratio(Some(t), ours)),
        );
    }

    // Streaming: a ~100 MB encrypted file read with bounded memory (target <= 64 MiB RSS).
    let big = dir.path().join("big.pskcxml");
    let keys = 150_000;
    generate(&big, Kind::Aes, keys);
    let size = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    let before = peak_rss_mib();
    let wall = Instant::now();
    keyprov_read(&big, Kind::Aes);
    let elapsed = wall.elapsed();
    println!(
        "streaming: {size:.0} MB, {keys} encrypted keys read in {}; peak RSS of this process {:.1} MiB (before reading {before:.1} MiB)",
        ms(elapsed),
        peak_rss_mib(),
    );
}
