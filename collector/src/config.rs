//! The collector's configuration: one TOML file, every option documented in
//! `deploy/collector.toml`, units in the names, unknown keys refused.
//!
//! ```text
//! data_dir = "/var/lib/vigie"          the journal (made by `collector init`); dev-pki/ beside it
//! [journal]                            group commit and seals
//! [tls]                                server cert, key, the CA that signs sources' certs
//! [syslog_tls] [relp_tls]              listeners over mutual TLS (absent: off)
//! [https]                              JSON batches over mutual TLS (absent: off)
//! [syslog_tcp]                         plain TCP, off unless present; peers by allow-list
//! [metrics]                            Prometheus text on plain HTTP (loopback by default)
//! [postgresql]                         replication to PostgreSQL and retention (absent: off);
//!                                      `sessions` parallel COPY sessions (default 2, min 1)
//! [[sources]]                          who may send, for which tenants, with which profiles
//! [[generic_profiles]]                 mappings users write (see proto::profiles::generic)
//! ```
//!
//! A source is named by its client certificate (a SAN DNS name or the subject CN equal to
//! `sources.name`); the configuration, not the certificate, says which tenants it may
//! speak for, so access is changed without reissuing certificates.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use proto::profiles::{GenericConfig, Profile};
use serde::Deserialize;

/// Largest frame a listener may accept: well under the journal's largest entry, so that
/// a frame plus its parsed fields always fits in one canonical entry.
pub const MAX_FRAME_BYTES_LIMIT: usize = 512 * 1024;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (with line and column).
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The journal directory (`collector init` makes it; `run` makes it when it is empty).
    pub data_dir: PathBuf,
    /// The zone of RFC 3164 timestamps, which carry none (default `Europe/Paris`).
    #[serde(default = "default_zone")]
    pub default_zone: String,
    /// How long shutdown waits for connections to drain before closing the journal
    /// (default 30 s).
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Journal settings.
    #[serde(default)]
    pub journal: JournalSettings,
    /// Server certificate, key and client CA; absent: a development PKI under
    /// `data_dir/dev-pki` (generated on first run).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Syslog over TLS (RFC 5425); absent: off.
    #[serde(default)]
    pub syslog_tls: Option<ListenerConfig>,
    /// RELP over TLS; absent: off.
    #[serde(default)]
    pub relp_tls: Option<ListenerConfig>,
    /// Syslog over plain TCP (RFC 6587), for legacy appliances; absent: off.
    #[serde(default)]
    pub syslog_tcp: Option<ListenerConfig>,
    /// JSON batches over HTTPS; absent: off.
    #[serde(default)]
    pub https: Option<HttpsConfig>,
    /// The Prometheus endpoint; absent: off.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Replication to PostgreSQL and the retention of the ledger; absent: the journal alone.
    #[serde(default)]
    pub postgresql: Option<PostgresqlConfig>,
    /// The sources allowed to send.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Generic profiles, referenced by name from `sources.profiles`.
    #[serde(default)]
    pub generic_profiles: Vec<GenericConfig>,
}

fn default_zone() -> String {
    proto::syslog::DEFAULT_ZONE.to_owned()
}

fn default_shutdown_timeout_ms() -> u64 {
    30_000
}

/// Journal settings (see `store::journal::JournalConfig`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSettings {
    /// Size of a segment file (default 64 MiB).
    pub segment_bytes: u64,
    /// Most entries in one group commit (default 4,096).
    pub max_batch_entries: usize,
    /// Most bytes in one group commit (default 4 MiB).
    pub max_batch_bytes: usize,
    /// Requests queued for the journal writer before submitters wait (default 1,024).
    pub queue_depth: usize,
    /// Batches queued between the listeners and the journal (default 256): when full,
    /// listeners stop reading.
    pub ingest_queue_depth: usize,
    /// Time between checkpoint seals while events come, in ms (default 60,000).
    pub seal_interval_ms: u64,
    /// Records written with `O_DIRECT`, around the page cache (default `true`; the journal
    /// falls back to the page cache by itself where the filesystem refuses).
    pub direct_writes: bool,
    /// New segments' zeroes written before use (default `true`); `false` only reserves
    /// their blocks (see `store::journal::JournalConfig::zero_segments`).
    pub zero_segments: bool,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            segment_bytes: 64 << 20,
            max_batch_entries: 4096,
            max_batch_bytes: 4 << 20,
            queue_depth: 1024,
            ingest_queue_depth: 256,
            seal_interval_ms: 60_000,
            direct_writes: true,
            zero_segments: true,
        }
    }
}

/// PEM files of the TLS listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// The CA certificates that sign sources' client certificates.
    pub client_ca_file: PathBuf,
}

/// A listener and the limits of its connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Addresses to listen on, e.g. `["0.0.0.0:6514"]`.
    pub listen: Vec<SocketAddr>,
    /// Plain TCP only (and required there): the only peers accepted, each standing for
    /// one configured source. TLS listeners name sources by certificate instead.
    pub allow: Vec<AllowedPeer>,
    /// Largest message (syslog frame, RELP data) accepted (default 65,536).
    pub max_frame_bytes: usize,
    /// Most open connections on this listener (default 1,024).
    pub max_connections: usize,
    /// Most open connections of one source on this listener (default 64).
    pub max_connections_per_source: usize,
    /// A TLS handshake must end within this (default 10 s).
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing for this long is closed (default 300 s).
    pub idle_timeout_ms: u64,
    /// A frame once started must be complete within this (slow sender; default 30 s).
    pub frame_timeout_ms: u64,
    /// Writing an answer must end within this (default 10 s).
    pub write_timeout_ms: u64,
    /// A batch must be durable within this, else the connection is closed (default 60 s).
    pub durable_timeout_ms: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            listen: Vec::new(),
            allow: Vec::new(),
            max_frame_bytes: proto::framing::DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            max_connections_per_source: 64,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            frame_timeout_ms: 30_000,
            write_timeout_ms: 10_000,
            durable_timeout_ms: 60_000,
        }
    }
}

impl ListenerConfig {
    /// A listener on `listen` with the default limits.
    pub fn on(listen: Vec<SocketAddr>) -> Self {
        ListenerConfig {
            listen,
            ..ListenerConfig::default()
        }
    }
}

/// The JSON-over-HTTPS listener (`POST /v1/events`, see `deploy/collector-openapi.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpsConfig {
    /// Addresses to listen on, e.g. `["0.0.0.0:8443"]`.
    pub listen: Vec<SocketAddr>,
    /// Largest request body (default 8 MiB): larger is answered 413.
    pub max_body_bytes: usize,
    /// Most events in one request (default 10,000): more is answered 413.
    pub max_events_per_request: usize,
    /// Largest single event, as JSON text (default 65,536): larger is rejected.
    pub max_event_bytes: usize,
    /// Most open connections (default 1,024).
    pub max_connections: usize,
    /// Most open connections of one source (default 64).
    pub max_connections_per_source: usize,
    /// Most requests of one source being processed at once (default 8): more is
    /// answered 429.
    pub max_requests_in_flight_per_source: usize,
    /// A TLS handshake must end within this (default 10 s).
    pub handshake_timeout_ms: u64,
    /// Request headers must arrive within this, also between requests (default 30 s).
    pub header_timeout_ms: u64,
    /// The body must arrive within this (default 30 s): else 408.
    pub body_timeout_ms: u64,
    /// A batch must be durable within this (default 60 s): else 503.
    pub durable_timeout_ms: u64,
    /// How long ids are remembered for idempotent retries (default 1 h); rebuilt from
    /// the journal at start.
    pub dedup_window_ms: u64,
    /// Most ids remembered (default 100,000); the oldest are forgotten first. Memory grows
    /// with it (a 2M-event run peaked at 359 MiB of RSS with 1,000,000 ids).
    pub dedup_max_ids: usize,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        HttpsConfig {
            listen: Vec::new(),
            max_body_bytes: 8 << 20,
            max_events_per_request: 10_000,
            max_event_bytes: 64 * 1024,
            max_connections: 1024,
            max_connections_per_source: 64,
            max_requests_in_flight_per_source: 8,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 30_000,
            body_timeout_ms: 30_000,
            durable_timeout_ms: 60_000,
            dedup_window_ms: 3_600_000,
            dedup_max_ids: 100_000,
        }
    }
}

impl HttpsConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::Invalid("https.listen is empty".into()));
        }
        if self.max_event_bytes < 64 || self.max_event_bytes > MAX_FRAME_BYTES_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "https.max_event_bytes {} is not between 64 and {MAX_FRAME_BYTES_LIMIT}",
                self.max_event_bytes
            )));
        }
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_events_per_request", self.max_events_per_request as u64),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_source",
                self.max_connections_per_source as u64,
            ),
            (
                "max_requests_in_flight_per_source",
                self.max_requests_in_flight_per_source as u64,
            ),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("durable_timeout_ms", self.durable_timeout_ms),
            ("dedup_window_ms", self.dedup_window_ms),
            ("dedup_max_ids", self.dedup_max_ids as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "https.{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// A peer address allowed on the plain listener and the source it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedPeer {
    /// The peer's IP address.
    pub addr: IpAddr,
    /// The configured source it speaks as.
    pub source: String,
}

/// The metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the plain HTTP endpoint serving `/metrics` (e.g. `127.0.0.1:9464`).
    pub listen: SocketAddr,
}

/// Replication to PostgreSQL (`store::pg::Replicator`) and retention.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresqlConfig {
    /// The libpq-style connection string or URL (required). It may hold a password:
    /// never printed, `Debug` redacts it.
    pub url: String,
    /// Rolling months kept by `collector retention` (default and minimum 18: charter 001
    /// art. 41; less is refused).
    #[serde(default = "default_retention_months")]
    pub retention_months: u32,
    /// Most entries per replicated batch (default 10,000).
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: usize,
    /// Most bytes of entries per replicated batch (default 8 MiB).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Sessions copying batches in parallel, committed in seq order (default 2, at least
    /// 1: one batch at a time). The replicator holds one more connection, which
    /// coordinates them.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Pause when the journal has nothing new, in ms (default 100).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longest wait between two connection attempts while PostgreSQL is down, in ms
    /// (default 10,000; the first wait is 200 ms, doubled each time).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Longest wait for a connection, in ms (default 10,000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest time one batch may take (COPY and commit), in ms (default 120,000).
    #[serde(default = "default_batch_timeout_ms")]
    pub batch_timeout_ms: u64,
    /// Lag (entries) above which the replicator logs a warning (default 100,000).
    #[serde(default = "default_lag_warn_entries")]
    pub lag_warn_entries: u64,
    /// At shutdown, after the journal's closing seal: how long the replicator may go on
    /// copying what is left while it is connected, in ms (default 10,000). What it does
    /// not copy in time is copied at the next start.
    #[serde(default = "default_shutdown_catch_up_ms")]
    pub shutdown_catch_up_ms: u64,
}

impl std::fmt::Debug for PostgresqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresqlConfig")
            .field("url", &"<redacted>")
            .field("retention_months", &self.retention_months)
            .field("max_batch_rows", &self.max_batch_rows)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("sessions", &self.sessions)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("batch_timeout_ms", &self.batch_timeout_ms)
            .field("lag_warn_entries", &self.lag_warn_entries)
            .field("shutdown_catch_up_ms", &self.shutdown_catch_up_ms)
            .finish()
    }
}

fn default_retention_months() -> u32 {
    store::pg::MIN_RETENTION_MONTHS
}

fn default_max_batch_rows() -> usize {
    store::pg::BatchLimits::default().max_rows
}

fn default_max_batch_bytes() -> usize {
    store::pg::BatchLimits::default().max_bytes
}

fn default_sessions() -> usize {
    store::pg::ReplicatorConfig::new(String::new()).sessions
}

fn default_poll_interval_ms() -> u64 {
    100
}

fn default_retry_max_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

fn default_batch_timeout_ms() -> u64 {
    120_000
}

fn default_lag_warn_entries() -> u64 {
    100_000
}

fn default_shutdown_catch_up_ms() -> u64 {
    10_000
}

impl PostgresqlConfig {
    /// The section with its defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresqlConfig {
            url: url.into(),
            retention_months: default_retention_months(),
            max_batch_rows: default_max_batch_rows(),
            max_batch_bytes: default_max_batch_bytes(),
            sessions: default_sessions(),
            poll_interval_ms: default_poll_interval_ms(),
            retry_max_ms: default_retry_max_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            batch_timeout_ms: default_batch_timeout_ms(),
            lag_warn_entries: default_lag_warn_entries(),
            shutdown_catch_up_ms: default_shutdown_catch_up_ms(),
        }
    }

    /// The retention policy.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the charter's reason below 18 months.
    pub fn retention(&self) -> Result<store::pg::RetentionPolicy, ConfigError> {
        store::pg::RetentionPolicy::new(self.retention_months)
            .map_err(|e| ConfigError::Invalid(format!("postgresql.retention_months: {e}")))
    }

    /// The replicator's configuration.
    pub fn replicator(&self) -> store::pg::ReplicatorConfig {
        use std::time::Duration;
        let mut c = store::pg::ReplicatorConfig::new(self.url.clone());
        c.limits = store::pg::BatchLimits {
            max_rows: self.max_batch_rows,
            max_bytes: self.max_batch_bytes,
        };
        c.sessions = self.sessions;
        c.poll_interval = Duration::from_millis(self.poll_interval_ms);
        c.retry_max = Duration::from_millis(self.retry_max_ms).max(c.retry_initial);
        c.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        c.batch_timeout = Duration::from_millis(self.batch_timeout_ms);
        c.lag_warn_entries = self.lag_warn_entries;
        c
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.url.trim().is_empty() {
            return Err(ConfigError::Invalid("postgresql.url is empty".into()));
        }
        self.retention()?;
        let positive = [
            ("max_batch_rows", self.max_batch_rows as u64),
            ("max_batch_bytes", self.max_batch_bytes as u64),
            ("sessions", self.sessions as u64),
            ("poll_interval_ms", self.poll_interval_ms),
            ("retry_max_ms", self.retry_max_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("batch_timeout_ms", self.batch_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "postgresql.{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// A source (bastion or gateway) allowed to send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Its name: a SAN DNS name or the CN of its client certificate.
    pub name: String,
    /// The tenants (establishments) it may speak for.
    pub tenants: Vec<String>,
    /// The tenant of messages that name none (default: the first of `tenants`).
    #[serde(default)]
    pub default_tenant: Option<String>,
    /// Profiles tried in order (built-in names or generic profiles' names); empty: every
    /// built-in profile (auto-detection).
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `syslog_tls.listen` (enables the listener with default limits if absent).
    pub syslog_tls_listen: Option<Vec<SocketAddr>>,
    /// `relp_tls.listen`.
    pub relp_tls_listen: Option<Vec<SocketAddr>>,
    /// `syslog_tcp.listen` (only if the file configures the listener and its allow-list).
    pub syslog_tcp_listen: Option<Vec<SocketAddr>>,
    /// `https.listen`.
    pub https_listen: Option<Vec<SocketAddr>>,
    /// `metrics.listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `postgresql.url` (enables replication with default settings if absent).
    pub postgres_url: Option<String>,
}

impl Config {
    /// Reads and checks a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::Parse`] (with line and column),
    /// [`ConfigError::Invalid`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and checks a configuration text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`], [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Applies command-line values, then checks the result again.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if let Some(dir) = o.data_dir {
            self.data_dir = dir;
        }
        if let Some(listen) = o.syslog_tls_listen {
            match &mut self.syslog_tls {
                Some(l) => l.listen = listen,
                None => self.syslog_tls = Some(ListenerConfig::on(listen)),
            }
        }
        if let Some(listen) = o.relp_tls_listen {
            match &mut self.relp_tls {
                Some(l) => l.listen = listen,
                None => self.relp_tls = Some(ListenerConfig::on(listen)),
            }
        }
        if let Some(listen) = o.syslog_tcp_listen {
            match &mut self.syslog_tcp {
                Some(l) => l.listen = listen,
                None => {
                    return Err(ConfigError::Invalid(
                        "--syslog-tcp-listen needs a [syslog_tcp] section with its allow-list"
                            .into(),
                    ));
                }
            }
        }
        if let Some(listen) = o.https_listen {
            match &mut self.https {
                Some(h) => h.listen = listen,
                None => {
                    self.https = Some(HttpsConfig {
                        listen,
                        ..HttpsConfig::default()
                    })
                }
            }
        }
        if let Some(listen) = o.metrics_listen {
            self.metrics = Some(MetricsConfig { listen });
        }
        if let Some(url) = o.postgres_url {
            match &mut self.postgresql {
                Some(p) => p.url = url,
                None => self.postgresql = Some(PostgresqlConfig::new(url)),
            }
        }
        self.check()
    }

    /// Whether any TLS listener is on.
    pub fn uses_tls(&self) -> bool {
        self.syslog_tls.is_some() || self.relp_tls.is_some() || self.https.is_some()
    }

    /// Checks values and cross-references.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the option.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |what: String| Err(ConfigError::Invalid(what));
        if self.syslog_tls.is_none()
            && self.relp_tls.is_none()
            && self.syslog_tcp.is_none()
            && self.https.is_none()
        {
            return bad(
                "no listener: configure [syslog_tls], [relp_tls], [https] or [syslog_tcp]".into(),
            );
        }
        if let Some(h) = &self.https {
            h.check()?;
        }
        if let Some(p) = &self.postgresql {
            p.check()?;
        }
        if jiff::tz::TimeZone::get(&self.default_zone).is_err() {
            return bad(format!(
                "default_zone {:?} is not a known time zone",
                self.default_zone
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return bad("shutdown_timeout_ms must be at least 1".into());
        }
        let j = &self.journal;
        if j.ingest_queue_depth == 0 || j.queue_depth == 0 || j.max_batch_entries == 0 {
            return bad("journal queue depths and max_batch_entries must be at least 1".into());
        }
        if j.seal_interval_ms == 0 {
            return bad("journal.seal_interval_ms must be at least 1".into());
        }
        let listeners = [
            ("syslog_tls", &self.syslog_tls),
            ("relp_tls", &self.relp_tls),
            ("syslog_tcp", &self.syslog_tcp),
        ];
        for (name, listener) in listeners {
            let Some(listener) = listener else {
                continue;
            };
            if listener.listen.is_empty() {
                return bad(format!("{name}.listen is empty"));
            }
            if name != "syslog_tcp" && !listener.allow.is_empty() {
                return bad(format!(
                    "{name}.allow: TLS listeners name sources by certificate, not by address"
                ));
            }
            listener.check(name)?;
        }
        if self.sources.is_empty() {
            return bad("no [[sources]]: every connection would be refused".into());
        }
        let mut names = HashSet::new();
        let generic: HashSet<&str> = self
            .generic_profiles
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        if generic.len() != self.generic_profiles.len() {
            return bad("two generic_profiles have the same name".into());
        }
        for g in &self.generic_profiles {
            if Profile::from_name(&g.name).is_some() {
                return bad(format!(
                    "generic profile {:?} has a built-in profile's name",
                    g.name
                ));
            }
            g.clone()
                .compile()
                .map_err(|e| ConfigError::Invalid(format!("generic profile {:?}: {e}", g.name)))?;
        }
        for s in &self.sources {
            if s.name.is_empty() {
                return bad("a source has an empty name".into());
            }
            if !names.insert(s.name.as_str()) {
                return bad(format!("source {:?} is configured twice", s.name));
            }
            if s.tenants.is_empty() || s.tenants.iter().any(String::is_empty) {
                return bad(format!(
                    "source {:?} needs at least one non-empty tenant",
                    s.name
                ));
            }
            if let Some(d) = &s.default_tenant
                && !s.tenants.contains(d)
            {
                return bad(format!(
                    "source {:?}: default_tenant {d:?} is not among its tenants",
                    s.name
                ));
            }
            for p in &s.profiles {
                if Profile::from_name(p).is_none() && !generic.contains(p.as_str()) {
                    return bad(format!(
                        "source {:?}: unknown profile {p:?} (built-in: {}; or a generic_profiles name)",
                        s.name,
                        Profile::BUILTIN_NAMES.join(", ")
                    ));
                }
            }
        }
        if let Some(tcp) = &self.syslog_tcp {
            if tcp.allow.is_empty() {
                return bad(
                    "syslog_tcp.allow is empty: plain TCP needs an explicit allow-list".into(),
                );
            }
            let mut seen = HashSet::new();
            for peer in &tcp.allow {
                if !names.contains(peer.source.as_str()) {
                    return bad(format!(
                        "syslog_tcp.allow: {} names unknown source {:?}",
                        peer.addr, peer.source
                    ));
                }
                if !seen.insert(peer.addr) {
                    return bad(format!("syslog_tcp.allow lists {} twice", peer.addr));
                }
            }
        }
        Ok(())
    }

    /// The journal's configuration.
    pub fn journal_config(&self) -> store::journal::JournalConfig {
        let mut c = store::journal::JournalConfig::new(&self.data_dir);
        c.segment_bytes = self.journal.segment_bytes;
        c.max_batch_entries = self.journal.max_batch_entries;
        c.max_batch_bytes = self.journal.max_batch_bytes;
        c.queue_depth = self.journal.queue_depth;
        c.seal_interval = Some(std::time::Duration::from_millis(
            self.journal.seal_interval_ms,
        ));
        c.direct_writes = self.journal.direct_writes;
        c.zero_segments = self.journal.zero_segments;
        c
    }

    /// Where the development PKI lives when `[tls]` is absent.
    pub fn dev_pki_dir(&self) -> PathBuf {
        self.data_dir.join("dev-pki")
    }
}

impl ListenerConfig {
    fn check(&self, listener: &str) -> Result<(), ConfigError> {
        if self.max_frame_bytes < 64 || self.max_frame_bytes > MAX_FRAME_BYTES_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "{listener}.max_frame_bytes {} is not between 64 and {MAX_FRAME_BYTES_LIMIT}",
                self.max_frame_bytes
            )));
        }
        let positive = [
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_source",
                self.max_connections_per_source as u64,
            ),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("frame_timeout_ms", self.frame_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("durable_timeout_ms", self.durable_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{listener}.{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        data_dir = "/tmp/x"
        [syslog_tls]
        listen = ["127.0.0.1:6514"]
        [[sources]]
        name = "bastion.chu-x.fr"
        tenants = ["CHU-X"]
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        let l = c.syslog_tls.expect("on");
        assert_eq!(l.max_frame_bytes, 65_536);
        assert!(c.relp_tls.is_none() && c.syslog_tcp.is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = MINIMAL.replace("[syslog_tls]", "[syslog_tls]\nmax_frame = 3");
        let e = Config::parse(&text).expect_err("unknown key");
        assert!(e.to_string().contains("max_frame"), "{e}");
    }

    #[test]
    fn default_tenant_must_be_allowed() {
        let text = format!("{MINIMAL}default_tenant = \"CHU-Y\"\n");
        let e = Config::parse(&text).expect_err("bad default tenant");
        assert!(e.to_string().contains("default_tenant"), "{e}");
    }

    #[test]
    fn postgresql_section_defaults_and_refuses_short_retention() {
        let text =
            format!("{MINIMAL}\n[postgresql]\nurl = \"host=db user=vigie password=s3cret\"\n");
        let c = Config::parse(&text).expect("valid");
        let p = c.postgresql.expect("on");
        assert_eq!(p.retention_months, 18);
        assert_eq!(p.replicator().limits, store::pg::BatchLimits::default());
        assert!(!format!("{p:?}").contains("s3cret"));
        let e = Config::parse(&format!("{text}retention_months = 12\n")).expect_err("too short");
        assert!(e.to_string().contains("charter 001 art. 41"), "{e}");
        let e = Config::parse(&format!("{MINIMAL}\n[postgresql]\nretention_months = 24\n"))
            .expect_err("url required");
        assert!(e.to_string().contains("url"), "{e}");
    }

    #[test]
    fn postgresql_sessions_default_to_two_and_refuse_zero() {
        let text = format!("{MINIMAL}\n[postgresql]\nurl = \"host=db user=vigie\"\n");
        let p = Config::parse(&text).expect("valid").postgresql.expect("on");
        assert_eq!(p.sessions, 2);
        assert_eq!(p.replicator().sessions, 2);
        let p = Config::parse(&format!("{text}sessions = 4\n"))
            .expect("valid")
            .postgresql
            .expect("on");
        assert_eq!(p.replicator().sessions, 4);
        let e = Config::parse(&format!("{text}sessions = 0\n")).expect_err("no session");
        assert!(e.to_string().contains("postgresql.sessions"), "{e}");
    }

    #[test]
    fn postgres_url_override_enables_replication() {
        let mut c = Config::parse(MINIMAL).expect("valid");
        c.apply(Overrides {
            postgres_url: Some("host=127.0.0.1 user=postgres".into()),
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(
            c.postgresql.expect("on").url,
            "host=127.0.0.1 user=postgres"
        );
    }

    #[test]
    fn plain_tcp_needs_allow_list_of_known_sources() {
        let text = format!(
            "{MINIMAL}\n[syslog_tcp]\nlisten = [\"127.0.0.1:514\"]\nallow = [{{ addr = \"10.0.0.1\", source = \"nope\" }}]\n"
        );
        let e = Config::parse(&text).expect_err("unknown source");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
