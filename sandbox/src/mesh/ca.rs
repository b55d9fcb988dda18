//! istiod's certificate authority: one self-signed root per sandbox, and for every proxy a
//! workload certificate whose only identity is the URI SAN
//! `spiffe://cluster.local/ns/NS/sa/SA`, as Istio issues them (empty subject, critical SAN,
//! client and server auth). Proxies get them as PEM files next to their configuration.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::TRUST_DOMAIN;

/// Issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot issue a certificate for {identity}: {source}")]
    Issue {
        identity: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The mesh's root CA.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
}

/// A workload's key and certificate chain (PEM).
pub struct WorkloadCert {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Where a proxy's TLS files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    pub chain: PathBuf,
    pub key: PathBuf,
    pub root: PathBuf,
}

impl CertPaths {
    /// The files in a proxy's directory (the names istio-agent uses under /etc/certs).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            chain: dir.join("cert-chain.pem"),
            key: dir.join("key.pem"),
            root: dir.join("root-cert.pem"),
        }
    }
}

impl Ca {
    /// A new root, as istiod makes its self-signed `istio-ca-secret` on first start.
    pub fn new() -> Result<Self, CaError> {
        let err = |source| CaError::Issue {
            identity: "the mesh root CA".into(),
            source,
        };
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::OrganizationName, TRUST_DOMAIN);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Self {
            root_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The root certificate (PEM), what `istio-ca-root-cert` holds.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A workload certificate for `spiffe` (e.g. `spiffe://cluster.local/ns/a/sa/b`).
    pub fn issue(&self, spiffe: &str) -> Result<WorkloadCert, CaError> {
        let err = |source| CaError::Issue {
            identity: spiffe.to_string(),
            source,
        };
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.subject_alt_names = vec![SanType::URI(spiffe.try_into().map_err(err)?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(WorkloadCert {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issue for `spiffe` and write key, chain and root to `paths`.
    pub fn write_workload_files(&self, spiffe: &str, paths: &CertPaths) -> Result<(), CaError> {
        let cert = self.issue(spiffe)?;
        for (path, text) in [
            (&paths.chain, cert.chain_pem.as_str()),
            (&paths.key, cert.key_pem.as_str()),
            (&paths.root, self.root_pem.as_str()),
        ] {
            std::fs::write(path, text).map_err(|source| CaError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_spiffe_certificate_signed_by_the_root() {
        let ca = Ca::new().unwrap();
        let cert = ca
            .issue("spiffe://cluster.local/ns/istioinaction/sa/service-a")
            .unwrap();
        assert!(cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert!(ca.root_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        // The SAN is in the DER as an IA5String.
        let der = rustls_pemfile_der(&cert.chain_pem);
        let needle = b"spiffe://cluster.local/ns/istioinaction/sa/service-a";
        assert!(der.windows(needle.len()).any(|w| w == needle));
    }

    fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
