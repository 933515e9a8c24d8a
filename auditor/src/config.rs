//! The configuration of `auditor serve` (TOML, unknown fields refused); the example with
//! every field is `deploy/auditor.toml`.
//!
//! ```toml
//! listen = "0.0.0.0:8443"
//! [tls]                      # HTTPS (rustls, ring); plain HTTP only with
//! cert_file = "…"            # `--insecure-loopback`, on a loopback address
//! key_file = "…"
//! client_ca_file = "…"       # optional: users may log in with a client certificate
//! client_crl_files = ["…"]   # optional: CRLs of the client CA (default none)
//! require_client_cert = false  # true: no certificate, no handshake (default false)
//! [limits]                   # every field has a default
//! max_body_bytes = 1048576
//! [ledger]
//! declarations = "/var/lib/vigie/auditor"
//! events = ["/var/lib/vigie/data"]
//! postgres_url = "host=… dbname=vigie"      # optional: events from PostgreSQL too
//! chain_keys = ["/etc/vigie/keys/c1.key"]   # verifier keys, matched by chain id
//! [[users]]                  # one of token_sha256, cert_subject, cert_sha256 at least
//! name = "rssi.dupont"
//! token_sha256 = "<64 hex digits>"
//! cert_subject = "rssi.dupont@chu-lyon.fr"   # SAN e-mail or DNS name (CN if no SAN)
//! cert_sha256 = "<64 hex digits>"            # optional pin of one certificate
//! role = "rssi"
//! tenants = ["chu-lyon"]
//! ```
//!
//! With `client_ca_file`, the server asks every client for a certificate and verifies the
//! one it gets against that CA (and the CRLs): an unverifiable certificate fails the
//! handshake. A client without a certificate still logs in with a token, unless
//! `require_client_cert` is set. How a certificate names a user, and what happens when a
//! request carries both a certificate and a token, is [`crate::access`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::access::UserConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The server certificate and key (required unless serving plain HTTP on loopback).
    pub tls: Option<TlsFiles>,
    /// Bounds on requests.
    #[serde(default)]
    pub limits: Limits,
    /// Where the ledger is read from and written to.
    pub ledger: LedgerConfig,
    /// Rule settings.
    #[serde(default)]
    pub rules: RulesConfig,
    /// The users (see [`crate::access`]).
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// The server certificate chain and key, PEM files, and what users' client certificates
/// are checked against.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert_file: PathBuf,
    /// Private key.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that issue users' client certificates. When set, the server
    /// asks for a client certificate and verifies it against them; absent (the default),
    /// no certificate is asked for and users log in with tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM) of the client CAs, read at start; with
    /// any, the revocation status of every certificate of a client's chain must be known
    /// (default: none, no revocation check). Needs `client_ca_file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_crl_files: Vec<PathBuf>,
    /// Refuse the handshake to a client without a certificate, so that tokens alone no
    /// longer open anything (default false). Needs `client_ca_file`.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Bounds on requests and work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (default 1 MiB).
    pub max_body_bytes: usize,
    /// Time to complete the TLS handshake (default 10 s).
    pub handshake_timeout_ms: u64,
    /// Time to receive a request's headers (default 10 s).
    pub header_timeout_ms: u64,
    /// Time to receive a request's body (default 10 s).
    pub body_timeout_ms: u64,
    /// Time to answer once the request is read (default 120 s): 503 past it.
    pub request_timeout_ms: u64,
    /// Reports, journals and bundles computed at once; others wait (default 2).
    pub max_concurrent_runs: usize,
    /// Connections served at once; others wait in the accept queue (default 256).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 120_000,
            max_concurrent_runs: 2,
            max_connections: 256,
        }
    }
}

/// The ledger's chains.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The auditor's own journal: declarations, and the record of every access.
    pub declarations: PathBuf,
    /// The collectors' journals of connection events.
    pub events: Vec<PathBuf>,
    /// Verifier key files (`K_0` and public key) per journal, for chain checks and
    /// `GET /api/v1/verify`; a journal without one here uses `verifier.key` in its own
    /// directory.
    #[serde(default)]
    pub verifier_keys: Vec<KeyFile>,
    /// Read connection events from this PostgreSQL database too: every chain the
    /// collectors replicate there (never printed: it may hold a password).
    #[serde(default)]
    pub postgres_url: Option<crate::ledger::PgUrl>,
    /// Verifier key files matched to chains by the chain id they name: how the chains read
    /// from PostgreSQL are checked end to end.
    #[serde(default)]
    pub chain_keys: Vec<PathBuf>,
}

/// A journal and its verifier key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The journal's directory.
    pub journal: PathBuf,
    /// Its verifier key file.
    pub key: PathBuf,
}

/// Rule settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Largest clock skew accepted (default 300 s).
    pub max_skew_seconds: i64,
    /// A source silent longer than this is reported (default 24 h).
    pub silent_after_hours: i64,
    /// Period of the pages when none is asked for (default 30 days back from now).
    pub page_days: i64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            max_skew_seconds: 300,
            silent_after_hours: 24,
            page_days: 30,
        }
    }
}

/// Why the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with the line.
        reason: String,
    },
}

impl Config {
    /// Reads the configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file (and the line, for TOML errors).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|reason| ConfigError::Parse {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a configuration text.
    ///
    /// # Errors
    /// The TOML error's message.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
