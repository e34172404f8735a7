//! The two key sources: the DSKPP server core in-process (local mode: the run state — AC,
//! K_SHARED, session — in memory, issued keys and nonce digests in the `dskpp_` tables of the
//! station database; `keyprov_dskpp::store::LocalStore`) and a central `keyprov serve` over HTTP(S) with a pool of one-time
//! Authentication Codes (central mode). Both run the same 4-pass client with K_SHARED.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use keyprov_dskpp::client::LocalTransport;
use keyprov_dskpp::server::{Server, ServerConfig};
use keyprov_dskpp::store::{AcRecord, LocalStore, SharedKey, SqliteStore, Store as _};
use keyprov_store::{Batch, MasterKey, Store};
use zeroize::Zeroizing;

use crate::api::ProvisioningMode;
use crate::error::{EngineError, Result};
use crate::source::{IssuedKey, KeySource, SourceError, Ticket};
use crate::station::Station;

/// The URL_S the in-process server answers to; never dialled.
pub const LOCAL_URL: &str = "urn:keyprov:station:local";
/// Lifetime of the one-time ACs local mode issues to itself.
const LOCAL_AC_SECONDS: i64 = 3600;

/// The key source for a batch's mode.
pub(crate) fn source(
    station: &Station,
    batch: &Batch,
    mode: &ProvisioningMode,
) -> Result<Box<dyn KeySource>> {
    match mode {
        ProvisioningMode::Local => Ok(Box::new(LocalSource::open(station, batch)?)),
        ProvisioningMode::Central {
            server_url,
            auth_codes,
        } => Ok(Box::new(CentralSource::new(
            &station.store,
            server_url,
            auth_codes,
        )?)),
    }
}

/// Local mode: the server core in-process. A run's AC, K_SHARED and session cannot outlive the
/// process (a resumed batch begins a new run), so they stay in memory; issued keys and nonce
/// digests go to the station database, sealed with the station master key, one transaction per
/// run instead of five (docs/engine.md, Benchmark).
pub(crate) struct LocalSource {
    server: Server,
    store: Arc<LocalStore>,
}

impl LocalSource {
    fn open(station: &Station, batch: &Batch) -> Result<LocalSource> {
        let db = station.store.path();
        let master = MasterKey::load_or_create(
            &Store::master_key_path(db),
            station.config.passphrase.as_deref(),
        )?;
        let persistent = Arc::new(
            SqliteStore::open(db, Arc::new(master))
                .map_err(|e| EngineError::Dskpp(e.to_string()))?,
        );
        let store = Arc::new(LocalStore::new(
            persistent as Arc<dyn keyprov_dskpp::store::Store>,
        ));
        let mut config = ServerConfig::new(LOCAL_URL);
        config.digits = u32::from(batch.profile.digits);
        config.time_step = batch.profile.period.unwrap_or(30);
        let server = Server::new(
            config,
            store.clone() as Arc<dyn keyprov_dskpp::store::Store>,
        )
        .map_err(|e| EngineError::Dskpp(e.to_string()))?;
        Ok(LocalSource { server, store })
    }
}

impl KeySource for LocalSource {
    fn server_url(&self) -> Option<String> {
        None
    }

    fn begin(&self) -> Result<Ticket, SourceError> {
        let client_id = hex::encode_upper(keyprov_dskpp::random::bytes(8));
        let password = Zeroizing::new(hex::encode_upper(keyprov_dskpp::random::bytes(10)));
        let shared = keyprov_dskpp::Secret::random(16);
        let fail =
            |e: &dyn std::fmt::Display| SourceError::permanent(format!("local DSKPP server: {e}"));
        self.store
            .put_authentication_code(&AcRecord {
                client_id: client_id.clone(),
                password: keyprov_dskpp::Secret::from_slice(password.as_bytes()),
                expires: keyprov_dskpp::store::now() + LOCAL_AC_SECONDS,
                used: false,
                failures: 0,
            })
            .map_err(|e| fail(&e))?;
        self.store
            .put_shared_key(
                &client_id,
                &SharedKey {
                    name: format!("station-{client_id}"),
                    secret: shared.clone(),
                },
            )
            .map_err(|e| fail(&e))?;
        let auth_code =
            keyprov_dskpp::ac::encode(&client_id, &password, false).map_err(|e| fail(&e))?;
        Ok(Ticket {
            client_id,
            auth_code,
            shared_key: Some(Zeroizing::new(shared.expose().to_vec())),
        })
    }

    fn obtain(
        &self,
        ticket: Ticket,
        profile: &keyprov_store::KeyProfile,
    ) -> Result<IssuedKey, SourceError> {
        let mut transport = LocalTransport {
            server: &self.server,
        };
        crate::client::four_pass(&mut transport, LOCAL_URL, ticket, profile)
    }

    fn abandon(&self, client_id: &str) -> Result<Vec<String>, SourceError> {
        let fail = |e: keyprov_dskpp::store::StoreError| SourceError::permanent(e.to_string());
        let mut revoked = Vec::new();
        for key in self.store.keys_for_client(client_id).map_err(fail)? {
            let reason =
                format!("DSKPP run {client_id} abandoned: the station never recorded the key");
            if key.revoked.is_none() && self.store.revoke(&key.key_id, &reason).map_err(fail)? {
                revoked.push(key.key_id);
            }
        }
        Ok(revoked)
    }
}

/// One code of a central batch's pool.
struct PoolEntry {
    client_id: String,
    auth_code: Zeroizing<String>,
    shared_key: Option<Zeroizing<Vec<u8>>>,
}

/// Central mode: `keyprov serve` over HTTP(S); each run takes the next unused AC.
pub(crate) struct CentralSource {
    url: String,
    pool: Mutex<Vec<PoolEntry>>,
    http: crate::client::Http,
}

impl CentralSource {
    fn new(store: &Store, url: &str, lines: &[String]) -> Result<CentralSource> {
        // A code is used once a run presented it; a run that never reached the server
        // (`ac_unused`) leaves its code for the next one.
        let mut used = HashSet::new();
        for e in store.events(None)? {
            let Some(id) = e.detail.get("client_id").and_then(|c| c.as_str()) else {
                continue;
            };
            let unused = e.detail.get("ac_unused").and_then(|u| u.as_bool()) == Some(true);
            match e.kind.as_str() {
                "engine.dskpp_started" => {
                    used.insert(id.to_string());
                }
                "engine.dskpp_failed" if unused => {
                    used.remove(id);
                }
                _ => {}
            }
        }
        let mut pool = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            let entry = parse_pool_line(line).map_err(|reason| {
                EngineError::invalid("authentication code", format!("line {}: {reason}", n + 1))
            })?;
            if !used.contains(&entry.client_id) {
                pool.push(entry);
            }
        }
        pool.reverse();
        let http = crate::client::Http::new(url).map_err(|e| EngineError::ServerUnreachable {
            url: url.to_string(),
            reason: e.message,
        })?;
        Ok(CentralSource {
            url: url.to_string(),
            pool: Mutex::new(pool),
            http,
        })
    }
}

/// Parses `AC=<code> [SHARED_KEY=<hex>]` (or a bare code).
fn parse_pool_line(line: &str) -> Result<PoolEntry, String> {
    let mut code = None;
    let mut shared = None;
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("SHARED_KEY=") {
            let bytes = hex::decode(v).map_err(|_| "SHARED_KEY is not hex".to_string())?;
            shared = Some(Zeroizing::new(bytes));
        } else {
            code = Some(word.strip_prefix("AC=").unwrap_or(word).to_string());
        }
    }
    let code = Zeroizing::new(code.ok_or("no AC")?);
    let parsed = keyprov_dskpp::ac::parse(&code).map_err(|e| e.to_string())?;
    Ok(PoolEntry {
        client_id: parsed.client_id,
        auth_code: code,
        shared_key: shared,
    })
}

impl KeySource for CentralSource {
    fn server_url(&self) -> Option<String> {
        Some(self.url.clone())
    }

    fn begin(&self) -> Result<Ticket, SourceError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pool.pop().ok_or_else(|| {
            SourceError::permanent(
                "no unused authentication code left for this run; issue more with \
                 `keyprov ac issue` and pass them with --ac-file",
            )
        })?;
        Ok(Ticket {
            client_id: entry.client_id,
            auth_code: entry.auth_code,
            shared_key: entry.shared_key,
        })
    }

    fn obtain(
        &self,
        ticket: Ticket,
        profile: &keyprov_store::KeyProfile,
    ) -> Result<IssuedKey, SourceError> {
        let mut transport = crate::client::HttpRun(&self.http);
        crate::client::four_pass(&mut transport, &self.url, ticket, profile)
    }

    fn abandon(&self, _client_id: &str) -> Result<Vec<String>, SourceError> {
        // RFC 6063 has no revocation message: the run is recorded as abandoned in the
        // station's journal and its key never reaches an export (docs/engine.md).
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_lines_take_the_client_id_from_the_code() {
        let e = parse_pool_line("AC=108AC00000A20A3582AF0C3E SHARED_KEY=00ff").unwrap();
        assert_eq!(e.client_id, "AC00000A");
        assert_eq!(
            e.shared_key.as_deref().map(|k| k.as_slice()),
            Some(&[0x00, 0xff][..])
        );
        let bare = parse_pool_line("108AC00000A20A3582AF0C3E").unwrap();
        assert_eq!(bare.client_id, "AC00000A");
        assert!(bare.shared_key.is_none());
        assert!(parse_pool_line("SHARED_KEY=zz").is_err());
        assert!(parse_pool_line("").is_err());
    }
}
