//! A local development PKI (rcgen): a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and client certificates naming sources. For first runs and tests only;
//! production configurations name real files in `[tls]`.
//!
//! ```text
//! <data_dir>/dev-pki/
//!   ca.pem            the development CA (trust it on the sources)
//!   ca.key            its key (0600): issues more source certificates
//!   server.pem/.key   the collector's certificate: SAN localhost, 127.0.0.1, ::1
//!   source.pem/.key   one source's client certificate: CN and SAN DNS = the source name
//! ```

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the development PKI cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// rcgen refused.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// A file cannot be written or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn generate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> DevCertError {
    let what = what.into();
    move |source| DevCertError::Generate { what, source }
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A certificate authority that issues server and client certificates.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new self-signed CA named `common_name`.
    ///
    /// # Errors
    /// [`DevCertError::Generate`].
    pub fn new(common_name: &str) -> Result<DevCa, DevCertError> {
        let key = KeyPair::generate().map_err(generate("the CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate("the CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "vigie development");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(generate("the CA"))?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for these DNS names and addresses.
    ///
    /// # Errors
    /// [`DevCertError::Generate`].
    pub fn issue_server(&self, dns: &[&str], ips: &[IpAddr]) -> Result<Issued, DevCertError> {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .map_err(generate("the server certificate"))?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if let Some(first) = dns.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params, "the server certificate")
    }

    /// A client certificate naming source `name` (as CN and SAN DNS name).
    ///
    /// # Errors
    /// [`DevCertError::Generate`].
    pub fn issue_client(&self, name: &str) -> Result<Issued, DevCertError> {
        let mut params = CertificateParams::new(vec![name.to_owned()])
            .map_err(generate(format!("the certificate of {name}")))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.sign(params, &format!("the certificate of {name}"))
    }

    fn sign(&self, params: CertificateParams, what: &str) -> Result<Issued, DevCertError> {
        let key = KeyPair::generate().map_err(generate(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate(what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The files of a development PKI.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// `ca.pem`.
    pub ca_file: PathBuf,
    /// `server.pem`.
    pub server_cert_file: PathBuf,
    /// `server.key`.
    pub server_key_file: PathBuf,
    /// `source.pem`.
    pub source_cert_file: PathBuf,
    /// `source.key`.
    pub source_key_file: PathBuf,
}

impl DevPki {
    /// The file names in `dir`.
    pub fn in_dir(dir: &Path) -> DevPki {
        DevPki {
            ca_file: dir.join("ca.pem"),
            server_cert_file: dir.join("server.pem"),
            server_key_file: dir.join("server.key"),
            source_cert_file: dir.join("source.pem"),
            source_key_file: dir.join("source.key"),
        }
    }

    /// Whether every file exists.
    pub fn exists(&self) -> bool {
        [
            &self.ca_file,
            &self.server_cert_file,
            &self.server_key_file,
            &self.source_cert_file,
            &self.source_key_file,
        ]
        .iter()
        .all(|p| p.exists())
    }

    /// The `[tls]` files of this PKI.
    pub fn tls_files(&self) -> crate::config::TlsFiles {
        crate::config::TlsFiles {
            cert_file: self.server_cert_file.clone(),
            key_file: self.server_key_file.clone(),
            client_ca_file: self.ca_file.clone(),
        }
    }
}

/// Makes the development PKI in `dir` unless it is already there; the source certificate
/// names `source_name`. Returns the files and whether they were generated now.
///
/// # Errors
/// [`DevCertError`].
pub fn ensure(dir: &Path, source_name: &str) -> Result<(DevPki, bool), DevCertError> {
    let pki = DevPki::in_dir(dir);
    if pki.exists() {
        return Ok((pki, false));
    }
    fs::create_dir_all(dir).map_err(|source| DevCertError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = DevCa::new("vigie development CA")?;
    let server = ca.issue_server(
        &["localhost"],
        &[
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
    )?;
    let source = ca.issue_client(source_name)?;
    write(&pki.ca_file, ca.cert_pem(), 0o644)?;
    write(&dir.join("ca.key"), &ca.issuer.key().serialize_pem(), 0o600)?;
    write(&pki.server_cert_file, &server.cert_pem, 0o644)?;
    write(&pki.server_key_file, &server.key_pem, 0o600)?;
    write(&pki.source_cert_file, &source.cert_pem, 0o644)?;
    write(&pki.source_key_file, &source.key_pem, 0o600)?;
    Ok((pki, true))
}

/// Writes a file with `mode`, replacing it.
///
/// # Errors
/// [`DevCertError::Io`].
pub fn write(path: &Path, text: &str, mode: u32) -> Result<(), DevCertError> {
    let io = |action| {
        move |source| DevCertError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io("create"))?;
    f.write_all(text.as_bytes()).map_err(io("write"))?;
    f.sync_all().map_err(io("fsync"))
}

/// How to point rsyslog at the collector with this PKI: an `rsyslog.conf` snippet for
/// syslog over TLS (`syslog_port`) and RELP over TLS (`relp_port`).
pub fn rsyslog_snippet(pki: &DevPki, host: &str, syslog_port: u16, relp_port: u16) -> String {
    format!(
        r#"# /etc/rsyslog.d/60-vigie.conf — forward to the vigie collector over mutual TLS
# (apt-get install rsyslog-gnutls rsyslog-relp; with rsyslog-openssl use "ossl" and "openssl")
global(
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}"
)
# Syslog over TLS (RFC 5425, octet-counted frames):
action(type="omfwd" target="{host}" port="{syslog_port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
       StreamDriver="gtls" StreamDriverMode="1"
       StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="{host}"
       queue.type="LinkedList" queue.filename="vigie-fwd" queue.saveOnShutdown="on"
       action.resumeRetryCount="-1")
# Or RELP over TLS (acknowledged once durable in the journal); a window of 1024:
# module(load="omrelp" tls.tlslib="gnutls")
# action(type="omrelp" target="{host}" port="{relp_port}" windowSize="1024"
#        tls="on" tls.caCert="{ca}" tls.myCert="{cert}" tls.myPrivKey="{key}"
#        tls.authMode="name" tls.permittedPeer=["{host}"]
#        template="RSYSLOG_SyslogProtocol23Format"
#        queue.type="LinkedList" queue.filename="vigie-relp" action.resumeRetryCount="-1")
"#,
        ca = pki.ca_file.display(),
        cert = pki.source_cert_file.display(),
        key = pki.source_key_file.display(),
    )
}
