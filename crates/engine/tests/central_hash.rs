//! Regression test of breaker #3: a central-mode batch with `--hash sha256` wrote SHA-256 keys
//! while `keyprov serve`, which records keys without their hash, exported them as SHA-1. Until
//! the DSKPP exchange carries the hash, central mode refuses any hash but SHA-1, before it
//! creates a batch or spends an authentication code; a re-issue of a SHA-256 key too.

use keyprov_drivers::Family;
use keyprov_drivers::emulator;
use keyprov_engine::api::{
    BatchRequest, OtpHash, OtpKind, ProvisioningMode, ReissueRequest, StationConfig,
};
use keyprov_engine::{Cancel, Station};

/// Nothing listens here: a request that got as far as the server would fail `unreachable`.
fn central() -> ProvisioningMode {
    ProvisioningMode::Central {
        server_url: "http://127.0.0.1:9/dskpp".into(),
        auth_codes: vec!["AC=1234567890".into()],
    }
}

fn request(name: &str, mode: ProvisioningMode, hash: OtpHash) -> BatchRequest {
    BatchRequest {
        name: name.into(),
        otp: OtpKind::Totp,
        digits: 6,
        period: 30,
        count: None,
        mode,
        export: None,
        operator: None,
        parallel: Some(1),
        hash,
    }
}

fn assert_refused_for_the_hash(err: &keyprov_engine::EngineError, hash: &str) {
    assert_eq!(err.code(), "invalid_request", "{err}");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "invalid hash: {hash} keys cannot be provisioned in central mode: the DSKPP server \
             (keyprov serve) records keys without their OTP hash and would export them as SHA-1 \
             (use local mode, or sha1 keys with --server)"
        )
    );
}

#[test]
fn central_mode_refuses_sha256_before_a_batch_or_an_auth_code() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let serial = emulator::add(&tokens, Family::Nitrokey3, 1, None).unwrap()[0]
        .serial
        .clone();
    let station = Station::open(StationConfig {
        db_path: Some(dir.path().join("station.db")),
        emulator_dir: Some(tokens),
        ..StationConfig::default()
    })
    .unwrap();

    let err = station
        .provision(
            request("c", central(), OtpHash::Sha256),
            &|_| {},
            &Cancel::new(),
        )
        .unwrap_err();
    assert_refused_for_the_hash(&err, "sha256");
    assert!(
        station.batches().unwrap().is_empty(),
        "no batch was created"
    );

    // SHA-1 in central mode gets past the check, to the next one (this code is malformed).
    let err = station
        .provision(
            request("c", central(), OtpHash::Sha1),
            &|_| {},
            &Cancel::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid authentication code"), "{err}");

    // A SHA-256 key provisioned locally cannot be re-issued centrally either.
    let local = request("l", ProvisioningMode::Local, OtpHash::Sha256);
    let done = station.provision(local, &|_| {}, &Cancel::new()).unwrap();
    assert_eq!(done.verified, 1);
    let batches = station.batches().unwrap().len();
    let reissue = ReissueRequest {
        serial,
        mode: central(),
        export: None,
    };
    let err = station
        .reissue(reissue, &|_| {}, &Cancel::new())
        .unwrap_err();
    assert_refused_for_the_hash(&err, "sha256");
    assert_eq!(station.batches().unwrap().len(), batches);
    let detail = station.batch("l").unwrap();
    assert_eq!(detail.tokens[0].state, "verified");
}
