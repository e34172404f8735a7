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
            .map_err(|e| TransportError(format!("POST {}: {e}", self.url)))?;
        let http_status = response.status().as_u16();
        let body = response
            .bytes()
            .map_err(|e| TransportError(format!("reading response: {e}")))?;
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
