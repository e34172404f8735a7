//! The client side of the HTTP binding (RFC 6063 §7.2): one POST per DSKPP request.

use std::time::Duration;

use anyhow::{Context, Result};
use keyprov_dskpp::client::{Exchange, Transport, TransportError};
use keyprov_dskpp::server::{CONTENT_TYPE, MAX_BODY};

/// A blocking reqwest client posting to one URL.
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    url: String,
}

impl HttpTransport {
    /// A transport for `url`; TLS with rustls (ring) and the platform's trust store.
    pub fn new(url: &str) -> Result<HttpTransport> {
        super::http::install_crypto_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("creating the HTTP client")?;
        Ok(HttpTransport {
            client,
            url: url.to_string(),
        })
    }
}

impl Transport for HttpTransport {
    fn exchange(&mut self, request: &[u8]) -> Result<Exchange, TransportError> {
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE)
            .header("Cache-Control", "no-cache, no-store")
            .header("Pragma", "no-cache")
            .body(request.to_vec())
            .send()
            .map_err(|e| TransportError(format!("POST {}: {}", self.url, with_causes(&e))))?;
        let http_status = response.status().as_u16();
        let body = response
            .bytes()
            .map_err(|e| TransportError(format!("reading response: {}", with_causes(&e))))?;
        if body.len() > 4 * MAX_BODY {
            return Err(TransportError(format!(
                "response of {} octets is too large",
                body.len()
            )));
        }
        Ok(Exchange {
            http_status,
            body: body.to_vec(),
        })
    }
}

/// An error with its chain of causes: reqwest's own message ("error sending request") leaves
/// out what the operator needs ("Connection refused").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text = format!("{text}: {words}");
        }
        source = cause.source();
    }
    text
}
