//! TLS for the listeners: one function builds the server configuration (rustls with the
//! `ring` provider only, TLS 1.2 and 1.3, client certificates required and checked
//! against the configured CA), and one reads the source names a client certificate
//! carries.
//!
//! A source is named by its certificate: every SAN DNS name, then the subject CN, is
//! looked up among the configured `[[sources]]`; the first match is the source. The
//! tenants it may speak for come from the configuration (see [`crate::config`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::config::TlsFiles;

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificates, key or options.
    #[error("tls configuration refused: {0}")]
    Rustls(String),
}

/// Builds the server configuration: TLS 1.3 and 1.2, the `ring` provider, the server
/// certificate and key, and client certificates required, verified against
/// `client_ca_file`.
///
/// # Errors
/// [`TlsError::Pem`] naming the file, [`TlsError::Rustls`].
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certs(&files.cert_file, "the server certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| TlsError::Pem {
        what: "the server private key",
        path: files.key_file.clone(),
        reason: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca_file, "the client CA certificates")? {
        roots.add(ca).map_err(|e| TlsError::Pem {
            what: "the client CA certificates",
            path: files.client_ca_file.clone(),
            reason: e.to_string(),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Rustls(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = Vec::new();
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The names a client certificate gives its holder: SAN DNS names in order, then the
/// subject's common names. Empty if the certificate cannot be parsed.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    for cn in parsed.subject().iter_common_name() {
        if let Ok(text) = cn.as_str() {
            names.push(text.to_owned());
        }
    }
    names
}
