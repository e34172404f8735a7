//! Running the DSKPP client (`keyprov_dskpp::client`, 4-pass) for one token, over the
//! in-process server or HTTP(S), and classifying its failures for the engine.

use std::sync::Once;
use std::time::Duration;

use keyprov_dskpp::client::{
    self, ClientConfig, ClientError, DeviceKey, Exchange, Transport, TransportError, Variant,
};
use keyprov_dskpp::store::KeyType;
use keyprov_store::{KeyProfile, OtpAlgorithm};

use crate::source::{IssuedKey, SourceError, Ticket};

/// A blocking HTTP(S) transport to a `keyprov serve` (RFC 6063 §7.2 binding).
pub(crate) struct Http {
    url: String,
    client: reqwest::blocking::Client,
}

impl Http {
    pub fn new(url: &str) -> Result<Http, SourceError> {
        static PROVIDER: Once = Once::new();
        // Another part of the process may have installed a provider already; either is fine.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SourceError::permanent(format!("HTTP client: {e}")))?;
        Ok(Http {
            url: url.to_string(),
            client,
        })
    }
}

/// `Http` as the DSKPP client's transport for one run.
pub(crate) struct HttpRun<'a>(pub &'a Http);

impl Transport for HttpRun<'_> {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let response = self
            .0
            .client
            .post(&self.0.url)
            .header("Content-Type", keyprov_dskpp::server::CONTENT_TYPE)
            .body(request.to_vec())
            .send()
            .map_err(|e| TransportError(describe(&e)))?;
        let http_status = response.status().as_u16();
        let body = response
            .bytes()
            .map_err(|e| TransportError(describe(&e)))?
            .to_vec();
        Ok(Exchange { http_status, body })
    }
}

/// reqwest's error with its causes (the connection error is in the source chain).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Counts the exchanges that reached the server, to tell whether the AC was presented.
struct Counting<'a> {
    inner: &'a mut dyn Transport,
    answered: usize,
}

impl Transport for Counting<'_> {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let answer = self.inner.exchange(request)?;
        self.answered += 1;
        Ok(answer)
    }
}

/// Runs 4-pass DSKPP with the ticket's AC (and K_SHARED when given) for `url_s`.
pub(crate) fn four_pass(
    transport: &mut dyn Transport,
    url_s: &str,
    ticket: Ticket,
    profile: &KeyProfile,
) -> Result<IssuedKey, SourceError> {
    let mut config = ClientConfig::new(url_s, Variant::FourPass);
    config.key_type = match profile.algorithm {
        OtpAlgorithm::Hotp => KeyType::Hotp,
        OtpAlgorithm::Totp => KeyType::Totp,
    };
    config.ac = Some(
        keyprov_dskpp::ac::parse(&ticket.auth_code)
            .map_err(|e| SourceError::permanent(format!("authentication code: {e}")))?,
    );
    config.device_key = ticket.shared_key.as_ref().map(|k| DeviceKey {
        name: None,
        secret: keyprov_dskpp::Secret::from_slice(k),
    });
    let mut counting = Counting {
        inner: transport,
        answered: 0,
    };
    match client::provision(&config, &mut counting) {
        Ok(key) => Ok(IssuedKey {
            secret: zeroize::Zeroizing::new(key.secret.expose().to_vec()),
            dskpp_key_id: key.key_id,
        }),
        Err(e) => Err(classify(e, url_s, counting.answered == 0)),
    }
}

fn classify(e: ClientError, url_s: &str, never_reached: bool) -> SourceError {
    match e {
        ClientError::Transport(t) => SourceError {
            message: format!("DSKPP server {url_s} unreachable: {}", t.0),
            transient: false,
            unreachable: never_reached,
        },
        ClientError::Http(status) if status >= 500 => SourceError {
            message: format!("DSKPP server {url_s} answered HTTP {status}"),
            transient: false,
            unreachable: false,
        },
        other => SourceError::permanent(format!("DSKPP with {url_s}: {other}")),
    }
}
