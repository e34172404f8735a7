//! `keyprov serve`: the HTTP/1.1 binding of RFC 6063 §7.2 around the server core — POST only,
//! `application/dskpp+xml`, 200 for every processed message (DSKPP errors included), no-cache
//! headers, bounded bodies, TLS with rustls (ring provider).

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use keyprov_dskpp::Status;
use keyprov_dskpp::server::{self, CONTENT_TYPE, MAX_BODY, Server, ServerConfig};
use keyprov_dskpp::store::SqliteStore;

use super::ServeArgs;

/// Installs rustls' ring provider as the process default (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The one line `serve` prints once bound: the address really bound (`--listen` port 0 picks
/// one) and, when `--url` was given, the URLs the server accepts (they may name a proxy).
fn listening_line(
    scheme: &str,
    addr: std::net::SocketAddr,
    urls: &[String],
    configured: bool,
) -> String {
    if configured {
        format!(
            "listening on {scheme}://{addr} (accepting {})",
            urls.join(", ")
        )
    } else {
        format!("listening on {}", urls[0])
    }
}

pub fn serve(args: ServeArgs) -> Result<()> {
    install_crypto_provider();
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let configured = !args.url.is_empty();
    let urls = if args.url.is_empty() {
        vec![format!("{scheme}://{addr}/dskpp")]
    } else {
        args.url
    };
    let store = SqliteStore::open_with_key_file(&args.db, None)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let mut config = ServerConfig::new(&urls[0]);
    config.service_urls = urls.clone();
    let core = Arc::new(Server::new(config, Arc::new(store)).context("starting the server core")?);
    let app = Router::new().fallback(any(dskpp)).with_state(core);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let handle = axum_server::Handle::new();
        tokio::spawn(shutdown_on_signal(handle.clone()));
        println!("{}", listening_line(scheme, addr, &urls, configured));
        let service = app.into_make_service();
        match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .with_context(|| format!("loading TLS key pair {}", cert.display()))?;
                axum_server::from_tcp_rustls(listener, tls)?
                    .handle(handle)
                    .serve(service)
                    .await?;
            }
            _ => {
                axum_server::from_tcp(listener)?
                    .handle(handle)
                    .serve(service)
                    .await?
            }
        }
        Ok(())
    })
}

async fn shutdown_on_signal(handle: axum_server::Handle<std::net::SocketAddr>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
}

/// Every path: POST a DSKPP request, get a DSKPP response.
async fn dskpp(
    State(core): State<Arc<Server>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, Vec::new());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if !accepts_dskpp(&headers) {
        // §7.2.6: the request asked for something else; 406 with the DSKPP type.
        return reply(StatusCode::NOT_ACCEPTABLE, Vec::new());
    }
    if !is_dskpp_content(&headers) {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let r = server::error_response(413, Status::MalformedRequest);
            return reply(StatusCode::PAYLOAD_TOO_LARGE, r.body);
        }
    };
    match tokio::task::spawn_blocking(move || core.handle(&bytes)).await {
        Ok(r) => reply(
            StatusCode::from_u16(r.http_status).unwrap_or(StatusCode::OK),
            r.body,
        ),
        Err(e) => {
            tracing::error!(error = %e, "DSKPP handler panicked");
            let r = server::error_response(500, Status::Abort);
            reply(StatusCode::INTERNAL_SERVER_ERROR, r.body)
        }
    }
}

/// Content-Type is `application/dskpp+xml`, with at most a UTF-8 charset.
fn is_dskpp_content(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    media.eq_ignore_ascii_case(CONTENT_TYPE)
        && parts.all(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                let v = v.trim().trim_matches('"');
                v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// No Accept header, or one that admits the DSKPP type.
fn accepts_dskpp(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or("").trim();
        media == "*/*"
            || media.eq_ignore_ascii_case("application/*")
            || media.eq_ignore_ascii_case(CONTENT_TYPE)
    })
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    // §7.2.4, verbatim (no-must-revalidate is the RFC's spelling).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-must-revalidate, private"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
