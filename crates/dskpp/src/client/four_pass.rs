//! The 4-pass client (RFC 6063 §4.2): ClientHello, check the ServerHello's choices (and the
//! renewal MAC), send E(K, R_C) with the AD, verify the key confirmation MAC.

use super::*;

pub(super) fn four_pass(
    config: &ClientConfig,
    transport: &mut dyn Transport,
) -> Result<ProvisionedKey, ClientError> {
    // 1. ClientHello: the SAL, the ClientID (or the trigger's AD) so the server finds K_SHARED.
    let mut encryption = Vec::new();
    if config.device_key.is_some() {
        encryption.extend([uri::PRF_SHA256, uri::PRF_AES_128]);
    }
    encryption.push(uri::RSA_OAEP);
    if config.allow_rsa_1_5 {
        encryption.push(uri::RSA_1_5);
    }
    let mut hello = hello_base(config, encryption);
    hello.variants = Some(ProtocolVariants {
        four_pass: true,
        ..Default::default()
    });
    hello.auth = match (&config.trigger, client_id(config)) {
        (Some(t), _) => Some(t.auth.clone()),
        (None, Some(id)) => Some(AuthenticationData {
            client_id: Some(id),
            ..Default::default()
        }),
        (None, None) => None,
    };
    let hello_bytes = Message::ClientHello(hello.clone()).to_bytes();
    let sh_bytes = send(transport, &hello_bytes)?;

    // 2. ServerHello: every choice must be one we offered.
    let sh = match Message::parse(&sh_bytes).map_err(|e| protocol(e.to_string()))? {
        Message::ServerHello(sh) if sh.status == Status::Continue => sh,
        Message::ServerHello(sh) => return Err(ClientError::Status(sh.status)),
        Message::ServerFinished(f) => return Err(ClientError::Status(f.status)),
        _ => return Err(protocol("expected KeyProvServerHello")),
    };
    let chosen = ServerChoice::check(&sh, &hello)?;
    check_client_info(config, &sh.extensions)?;
    if let Some(renewal) = &config.renewal {
        let mac = sh.mac.as_ref().ok_or(ClientError::Mac("renewal"))?;
        let expected = keys::four_pass_renewal_mac(renewal.prf, &renewal.k_mac, None, &chosen.r_s)
            .map_err(|_| ClientError::Mac("renewal"))?;
        if !expected.ct_eq(&mac.value) {
            return Err(ClientError::Mac("renewal"));
        }
    }

    // 3. ClientNonce: R_C encrypted under K; AD bound to R_C and R_S.
    let r_c = Secret::random(if chosen.prf == Prf::Aes128 { 16 } else { 32 });
    let (encrypted, k, k_secret) = encrypt_nonce(config, &chosen, &r_c)?;
    let iterations = if k_secret {
        1
    } else {
        config.public_iterations
    };
    let auth = ad(
        config,
        chosen.prf,
        k.expose(),
        iterations,
        r_c.expose(),
        Some(&chosen.r_s),
    )?;
    let server_info = sh
        .extensions
        .iter()
        .filter(|e| matches!(e.kind, ExtensionKind::ServerInfo(_)))
        .cloned();
    let nonce = ClientNonce {
        version: uri::VERSION.into(),
        session_id: chosen.session_id.clone(),
        encrypted_nonce: encrypted,
        auth,
        extensions: extensions(config).into_iter().chain(server_info).collect(),
    };
    let nonce_bytes = Message::ClientNonce(nonce).to_bytes();
    let sf_bytes = send(transport, &nonce_bytes)?;

    // 4. ServerFinished: derive K_PROV, verify the MAC over the transcript, then accept.
    let sf = finished(&sf_bytes)?;
    if sf.session_id.as_deref() != Some(chosen.session_id.as_str()) {
        return Err(protocol("SessionID of ServerFinished differs"));
    }
    check_client_info(config, &sf.extensions)?;
    let k_prov = keys::four_pass_k_prov(
        chosen.prf,
        &r_c,
        k.expose(),
        &chosen.r_s,
        config.key_type.token_len(),
    )
    .map_err(|e| protocol(e.to_string()))?;
    let split = keys::split(chosen.prf, &k_prov, config.key_type.token_len())
        .ok_or_else(|| protocol("K_PROV length"))?;
    let mac = sf
        .mac
        .as_ref()
        .ok_or(ClientError::Mac("key confirmation"))?;
    let hash = keys::msg_hash(&[&hello_bytes, &sh_bytes, &nonce_bytes]);
    let expected = keys::four_pass_mac(chosen.prf, &split.k_mac, &hash)
        .map_err(|e| protocol(e.to_string()))?;
    if !expected.ct_eq(&mac.value) {
        return Err(ClientError::Mac("key confirmation"));
    }
    let package = sf
        .key_package
        .as_ref()
        .ok_or_else(|| protocol("no KeyPackage"))?;
    let container_el = package
        .key_container
        .as_ref()
        .ok_or_else(|| protocol("no KeyContainer"))?;
    let container = package::open(container_el, &ReadOptions::default())?;
    let pskc = package::single_key(&container)?.clone();
    accept(
        config,
        pskc,
        split,
        chosen.prf,
        package.server_id.clone().unwrap_or_default(),
    )
}

/// The server's choices from a ServerHello, checked against what was offered.
struct ServerChoice {
    session_id: String,
    prf: Prf,
    encryption: String,
    key: KeyInfo,
    r_s: Vec<u8>,
}

impl ServerChoice {
    fn check(sh: &ServerHello, hello: &ClientHello) -> Result<ServerChoice, ClientError> {
        let session_id = sh
            .session_id
            .clone()
            .ok_or_else(|| protocol("no SessionID"))?;
        let offered = |v: &Option<String>, list: &[String], what: &str| match v {
            Some(v) if list.contains(v) => Ok(v.clone()),
            _ => Err(protocol(format!("{what} was not offered"))),
        };
        offered(&sh.key_type, &hello.key_types, "KeyType")?;
        let mac = offered(&sh.mac_algorithm, &hello.mac_algorithms, "MacAlgorithm")?;
        let encryption = offered(
            &sh.encryption_algorithm,
            &hello.encryption_algorithms,
            "EncryptionAlgorithm",
        )?;
        if sh.key_package_format.as_deref() != Some(uri::PACKAGE_PSKC) {
            return Err(protocol("KeyPackageFormat is not PSKC"));
        }
        let r_s = match &sh.payload {
            Some(Payload::Nonce(n)) if n.len() >= MIN_NONCE_LEN => n.clone(),
            _ => return Err(protocol("no R_S of at least 16 octets")),
        };
        Ok(ServerChoice {
            session_id,
            prf: Prf::from_uri(&mac).ok_or_else(|| protocol("MacAlgorithm"))?,
            encryption,
            key: sh
                .encryption_key
                .clone()
                .ok_or_else(|| protocol("no EncryptionKey"))?,
            r_s,
        })
    }
}

/// E(K, R_C) and K (and whether K is secret).
fn encrypt_nonce(
    config: &ClientConfig,
    chosen: &ServerChoice,
    r_c: &Secret,
) -> Result<(Vec<u8>, Secret, bool), ClientError> {
    if let Some(prf) = Prf::from_uri(&chosen.encryption) {
        let dk = config
            .device_key
            .as_ref()
            .ok_or(ClientError::Config("K_SHARED needed"))?;
        if let (Some(want), Some(named)) = (&dk.name, &chosen.key.key_name)
            && want != named
        {
            return Err(protocol("EncryptionKey names another shared key"));
        }
        let enc = keys::xor_nonce(prf, &dk.secret, &chosen.r_s, r_c.expose())
            .map_err(|e| protocol(e.to_string()))?;
        return Ok((enc.expose().to_vec(), dk.secret.clone(), true));
    }
    let (n, e) = chosen
        .key
        .rsa
        .clone()
        .ok_or_else(|| protocol("EncryptionKey has no RSA key"))?;
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    )
    .map_err(|_| protocol("EncryptionKey RSA key is invalid"))?;
    let enc = match chosen.encryption.as_str() {
        uri::RSA_OAEP => key.oaep_encrypt::<sha1::Sha1>(r_c.expose()),
        _ => key.pkcs1v15_encrypt(r_c.expose()),
    }
    .map_err(|_| protocol("RSA encryption of R_C failed"))?;
    Ok((enc, Secret::new(key.n_bytes().to_vec()), false))
}
