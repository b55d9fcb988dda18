//! The API server's certificates: a self-signed CA made at start and a serving certificate
//! for 127.0.0.1 and localhost signed by it, both with ring through rcgen.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Certificate generation or TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the sandbox's certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The CA (for the kubeconfig) and a ready server configuration.
pub(crate) struct ServingCerts {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

pub(crate) fn generate() -> Result<ServingCerts, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "happy-sandbox-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    params
        .distinguished_name
        .push(DnType::CommonName, "happy-sandbox-apiserver");
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(server_cert.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    // HTTP/1.1 only: WebSocket upgrades (exec, port-forward) need it, and clients then use it
    // for everything.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServingCerts {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}
