//! The 2-pass client (RFC 6063 §5.2): ClientHello with R_C, the KPML and the AD; MAC 2 first,
//! then open the key package, split K_PROV and verify MAC 1 (decision D19).

use super::*;

pub(super) fn two_pass(
    config: &ClientConfig,
    transport: &mut dyn Transport,
) -> Result<ProvisionedKey, ClientError> {
    let ac = config
        .ac
        .as_ref()
        .ok_or(ClientError::Config("2-pass needs an authentication code"))?;
    let prf = config.prfs[0];

    // 1. The KPM with its payload, K for the AD and the key that will open the package.
    let r_c = Secret::random(MIN_NONCE_LEN);
    let mut transport_key = None;
    let (kpm, encryption, k, k_secret) = match config.variant {
        Variant::TwoPassWrap => {
            let dk = config
                .device_key
                .as_ref()
                .ok_or(ClientError::Config("key wrap needs K_SHARED"))?;
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: dk.name.clone(),
                rsa: None,
            });
            let kpm = KeyProtection {
                method: uri::KPM_WRAP.into(),
                payload: Some(payload),
            };
            (
                kpm,
                vec![uri::KW_AES128, uri::AES128_CBC],
                dk.secret.clone(),
                true,
            )
        }
        Variant::TwoPassPassphrase => {
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: Some(ac.client_id.clone()),
                rsa: None,
            });
            let kpm = KeyProtection {
                method: uri::KPM_PASSPHRASE.into(),
                payload: Some(payload),
            };
            (
                kpm,
                vec![uri::KW_AES128, uri::AES128_CBC],
                Secret::default(),
                true,
            )
        }
        _ => {
            let key = <rsa::PrivateKey as rsa::Generate>::generate();
            let (n, e) = (key.n_bytes().to_vec(), key.e_bytes().to_vec());
            transport_key = Some(key);
            let payload = Payload::KeyInfo(KeyInfo {
                key_name: None,
                rsa: Some((n.clone(), e)),
            });
            let kpm = KeyProtection {
                method: uri::KPM_TRANSPORT.into(),
                payload: Some(payload),
            };
            let mut enc = vec![uri::RSA_OAEP];
            if config.allow_rsa_1_5 {
                enc.push(uri::RSA_1_5);
            }
            (kpm, enc, Secret::new(n), false)
        }
    };
    let iterations = if k_secret {
        1
    } else {
        config.public_iterations
    };

    // 2. ClientHello with R_C, the KPML and the AD.
    let mut hello = hello_base(config, encryption);
    hello.client_nonce = Some(r_c.expose().to_vec());
    hello.variants = Some(ProtocolVariants {
        four_pass: false,
        two_pass: Some(vec![kpm.clone()]),
        two_pass_first: true,
    });
    hello.auth = ad(config, prf, k.expose(), iterations, r_c.expose(), None)?;
    let hello_bytes = Message::ClientHello(hello).to_bytes();
    let sf = finished(&send(transport, &hello_bytes)?)?;
    check_client_info(config, &sf.extensions)?;

    // 3. MAC 2 (renewal) needs nothing from the package: check it first.
    let package = sf
        .key_package
        .as_ref()
        .ok_or_else(|| protocol("no KeyPackage"))?;
    let server_id = package
        .server_id
        .clone()
        .ok_or_else(|| protocol("KeyPackage without ServerID"))?;
    if package.key_protection_method.as_deref() != Some(kpm.method.as_str()) {
        return Err(protocol("KeyProtectionMethod was not offered"));
    }
    if let Some(renewal) = &config.renewal {
        let mac2 = sf
            .auth
            .as_ref()
            .ok_or(ClientError::Mac("server authentication"))?;
        let expected =
            keys::two_pass_renewal_mac(renewal.prf, &renewal.k_mac, &server_id, r_c.expose())
                .map_err(|_| ClientError::Mac("server authentication"))?;
        if !expected.ct_eq(&mac2.mac.value) {
            return Err(ClientError::Mac("server authentication"));
        }
    }

    // 4. Open the package, split K_PROV, verify MAC 1, then accept.
    let options = match config.variant {
        Variant::TwoPassWrap => ReadOptions::with_key(keyprov_pskc::Secret::from_slice(k.expose())),
        Variant::TwoPassPassphrase => {
            ReadOptions::with_password(keyprov_pskc::Secret::from_slice(ac.password.expose()))
        }
        _ => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = transport_key
                .as_ref()
                .ok_or(ClientError::Config("transport key"))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|_| ClientError::Config("transport key"))?;
            ReadOptions::with_private_key_pem(&pem).map_err(PackageError::from)?
        }
    };
    let container_el = package
        .key_container
        .as_ref()
        .ok_or_else(|| protocol("no KeyContainer"))?;
    let container = package::open(container_el, &options)?;
    let mut pskc = package::single_key(&container)?.clone();
    let k_prov = pskc
        .data
        .secret
        .take()
        .ok_or_else(|| protocol("key package holds no K_PROV"))?;
    let k_prov = Secret::from_slice(k_prov.expose());
    let mac = sf
        .mac
        .as_ref()
        .ok_or(ClientError::Mac("key confirmation"))?;
    let prf = mac_prf(mac, &config.prfs)?;
    let split = keys::split(prf, &k_prov, config.key_type.token_len())
        .ok_or_else(|| protocol("K_PROV has the wrong length"))?;
    let hash = keys::msg_hash(&[&hello_bytes]);
    let expected = keys::two_pass_mac(prf, &split.k_mac, &hash, &server_id)
        .map_err(|e| protocol(e.to_string()))?;
    if !expected.ct_eq(&mac.value) {
        return Err(ClientError::Mac("key confirmation"));
    }
    accept(config, pskc, split, prf, server_id)
}
