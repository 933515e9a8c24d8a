//! The client side of mutual TLS: trust the collector's CA, present a source's
//! certificate (the collector names the source by it).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsConnector;

/// A connector trusting `ca` and presenting `cert` with `key` (PEM files).
pub fn connector(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read CA file {}", ca.display()))?
    {
        let c = c.with_context(|| format!("bad certificate in {}", ca.display()))?;
        roots
            .add(c)
            .with_context(|| format!("unusable CA certificate in {}", ca.display()))?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read certificate file {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad certificate in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot choose TLS versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the client certificate and key do not match")?;
    Ok(TlsConnector::from(Arc::new(config)))
}
