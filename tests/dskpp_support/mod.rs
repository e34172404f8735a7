//! Shared helpers of the DSKPP integration tests: a `keyprov serve` child process on a loopback
//! port, the operator commands, and an HTTP transport for the library client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use keyprov_dskpp::client::{Exchange, Transport, TransportError};

pub const KEYPROV: &str = env!("CARGO_BIN_EXE_keyprov");
/// Export / output protection key used by the tests.
pub const FILE_KEY: &str = "000102030405060708090a0b0c0d0e0f";

/// A running `keyprov serve`.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub listen: String,
    pub db: PathBuf,
}

impl ServerProcess {
    /// Starts `keyprov serve --listen <listen> --db <db>` and waits for its "listening on" line.
    pub fn start(db: &Path, listen: &str) -> ServerProcess {
        ServerProcess::start_with(db, listen, &[])
    }

    /// Like [`start`](Self::start) with extra `keyprov serve` arguments (TLS files…).
    pub fn start_with(db: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(KEYPROV)
            .args(["serve", "--listen", listen, "--db"])
            .arg(db)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("keyprov serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("serve prints its URL");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_string();
        let listen = url
            .trim_start_matches("http://")
            .trim_end_matches("/dskpp")
            .to_string();
        ServerProcess {
            child,
            url,
            listen,
            db: db.to_path_buf(),
        }
    }

    /// Stops the process and starts it again on the same address and database.
    pub fn restart(&mut self) {
        self.stop();
        let again = ServerProcess::start(&self.db, &self.listen);
        *self = again;
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `keyprov` with `args`.
pub fn keyprov(args: &[&str]) -> Output {
    Command::new(KEYPROV)
        .args(args)
        .output()
        .expect("keyprov runs")
}

/// `keyprov ac issue`; returns the AC and, with `--shared-key`, the hex K_SHARED.
pub fn issue(db: &Path, client_id: &str, extra: &[&str]) -> (String, Option<String>, String) {
    let mut args = vec![
        "ac",
        "issue",
        "--db",
        db.to_str().unwrap(),
        "--client-id",
        client_id,
    ];
    args.extend_from_slice(extra);
    let out = keyprov(&args);
    assert!(
        out.status.success(),
        "ac issue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let ac = lines
        .next()
        .unwrap()
        .strip_prefix("AC=")
        .expect("first line AC=")
        .to_string();
    let shared = text
        .lines()
        .find_map(|l| l.strip_prefix("SHARED_KEY="))
        .map(str::to_string);
    (ac, shared, text)
}

/// `keyprov dskpp provision … -o out --key FILE_KEY`.
pub fn provision(url: &str, ac: &str, variant: &str, shared: Option<&str>, out: &Path) -> Output {
    let mut args = vec![
        "dskpp",
        "provision",
        "--server",
        url,
        "--ac",
        ac,
        "--variant",
        variant,
    ];
    if let Some(k) = shared {
        args.extend(["--shared-key", k]);
    }
    args.extend(["-o", out.to_str().unwrap(), "--key", FILE_KEY]);
    keyprov(&args)
}

/// `keyprov server export --db db -o out --key FILE_KEY`.
pub fn export(db: &Path, out: &Path) {
    let o = keyprov(&[
        "server",
        "export",
        "--db",
        db.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--key",
        FILE_KEY,
    ]);
    assert!(
        o.status.success(),
        "export: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Reads a PSKC file written with FILE_KEY.
pub fn read_pskc(path: &Path) -> keyprov_pskc::KeyContainer {
    let key = keyprov_pskc::Secret::from_slice(&hex::decode(FILE_KEY).unwrap());
    let bytes = std::fs::read(path).unwrap();
    keyprov_pskc::parse(&bytes, &keyprov_pskc::ReadOptions::with_key(key)).unwrap()
}

/// A blocking HTTP transport for the library client.
pub struct Http {
    pub client: reqwest::blocking::Client,
    pub url: String,
}

impl Http {
    pub fn new(url: &str) -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            client: reqwest::blocking::Client::new(),
            url: url.to_string(),
        }
    }

    /// POSTs raw bytes with the given content type.
    pub fn post(&self, body: Vec<u8>, content_type: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .post(&self.url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .expect("server reachable");
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }
}

impl Transport for Http {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let r = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/dskpp+xml")
            .body(request.to_vec())
            .send()
            .map_err(|e| TransportError(e.to_string()))?;
        let http_status = r.status().as_u16();
        let body = r
            .bytes()
            .map_err(|e| TransportError(e.to_string()))?
            .to_vec();
        Ok(Exchange { http_status, body })
    }
}

/// The DSKPP Status of a response body.
pub fn status_of(body: &[u8]) -> keyprov_dskpp::Status {
    use keyprov_dskpp::Message;
    match Message::parse(body).expect("a DSKPP response") {
        Message::ServerHello(h) => h.status,
        Message::ServerFinished(f) => f.status,
        other => panic!("not a response: {other:?}"),
    }
}
