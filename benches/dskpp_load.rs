//! DSKPP load benchmark (not a test): starts `keyprov serve` on a loopback port, prepares one
//! authentication code and K_SHARED per session, then drives N concurrent clients over HTTP and
//! prints sessions/s for 2-pass key wrap and for 4-pass with K_SHARED.
//!
//! `cargo bench --bench dskpp_load` — environment: `DSKPP_BENCH_SESSIONS` (per variant,
//! default 3000), `DSKPP_BENCH_CLIENTS` (concurrent clients, default 16).
//! Targets on 2 cores: ≥ 3,000/s (2-pass wrap) and ≥ 1,500/s (4-pass with K_SHARED).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyprov_dskpp::ac;
use keyprov_dskpp::client::{
    self, ClientConfig, DeviceKey, Exchange, Transport, TransportError, Variant,
};
use keyprov_dskpp::store::{AcRecord, SharedKey, SqliteStore, Store, now};
use keyprov_dskpp::{Prf, Secret};

/// A minimal HTTP/1.1 keep-alive client over one loopback connection: the load generator must
/// cost as little CPU as possible, since it shares the two cores with the server.
struct Http {
    stream: BufReader<TcpStream>,
    addr: String,
    path: String,
}

impl Http {
    fn connect(url: &str) -> Http {
        let rest = url.strip_prefix("http://").expect("plain HTTP URL");
        let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(addr).expect("server reachable");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Http {
            stream: BufReader::new(stream),
            addr: addr.to_string(),
            path: path.to_string(),
        }
    }
}

impl Transport for Http {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let io = |e: std::io::Error| TransportError(e.to_string());
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/dskpp+xml\r\n\
             Content-Length: {}\r\n\r\n",
            self.path,
            self.addr,
            request.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(request).map_err(io)?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).map_err(io)?;
        let http_status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| TransportError(format!("bad status line {status_line:?}")))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).map_err(io)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| TransportError(line.into()))?;
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).map_err(io)?;
        Ok(Exchange { http_status, body })
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One client configuration per session, each with its own AC and K_SHARED.
fn prepare(
    store: &SqliteStore,
    url: &str,
    variant: Variant,
    prefix: &str,
    n: usize,
) -> Vec<ClientConfig> {
    (0..n)
        .map(|i| {
            let client_id = format!("{prefix}{i:06X}");
            let password = hex::encode_upper(keyprov_dskpp::random::bytes(8));
            let shared = Secret::random(16);
            let code = ac::encode(&client_id, &password, false).expect("AC encodes");
            // The ClientID as the protocol carries it (hex, see docs/dskpp.md D5).
            let client_id = ac::parse(&code).expect("AC parses").client_id;
            store
                .put_authentication_code(&AcRecord {
                    client_id: client_id.clone(),
                    password: Secret::from_slice(password.as_bytes()),
                    expires: now() + 3600,
                    used: false,
                    failures: 0,
                })
                .expect("AC stored");
            let key = SharedKey {
                name: format!("K_SHARED:{client_id}"),
                secret: shared.clone(),
            };
            store
                .put_shared_key(&client_id, &key)
                .expect("K_SHARED stored");
            let mut c = ClientConfig::new(url, variant);
            c.prfs = vec![Prf::Sha256];
            c.ac = Some(ac::parse(&code).expect("AC parses"));
            c.device_key = Some(DeviceKey {
                name: None,
                secret: shared,
            });
            c
        })
        .collect()
}

fn drive(url: &str, configs: Vec<ClientConfig>, clients: usize) -> (usize, Duration) {
    let total = configs.len();
    let queue = Arc::new(Mutex::new(configs));
    let failures = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (queue, failures, url) = (queue.clone(), failures.clone(), url.to_string());
            std::thread::spawn(move || {
                let mut http = Http::connect(&url);
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some(config) = next else { break };
                    if let Err(e) = client::provision(&config, &mut http)
                        && failures.fetch_add(1, Ordering::Relaxed) < 3
                    {
                        eprintln!("session failed: {e}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = start.elapsed();
    (total - failures.load(Ordering::Relaxed), elapsed)
}

fn main() {
    let sessions = env_or("DSKPP_BENCH_SESSIONS", 3000);
    let clients = env_or("DSKPP_BENCH_CLIENTS", 16);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");

    let mut server: Child = Command::new(env!("CARGO_BIN_EXE_keyprov"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("keyprov serve starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("URL line");
    let url = line.trim().trim_start_matches("listening on ").to_string();

    let store = SqliteStore::open_with_key_file(&db, None).expect("bench store");
    for (name, variant, prefix) in [
        ("2-pass key wrap", Variant::TwoPassWrap, "A"),
        ("4-pass with K_SHARED", Variant::FourPass, "B"),
    ] {
        let configs = prepare(&store, &url, variant, prefix, sessions);
        // Warm up connections and caches outside the measurement.
        let warm = prepare(&store, &url, variant, &format!("W{prefix}"), clients * 2);
        drive(&url, warm, clients);
        let (ok, elapsed) = drive(&url, configs, clients);
        let rate = ok as f64 / elapsed.as_secs_f64();
        println!(
            "{name}: {ok}/{sessions} sessions in {:.2} s with {clients} clients = {rate:.0} sessions/s",
            elapsed.as_secs_f64()
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
