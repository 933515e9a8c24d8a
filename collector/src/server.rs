//! The server: binds every configured listener, accepts connections, authenticates them
//! (TLS handshake with client certificate, or the plain listener's allow-list), and hands
//! each to its protocol handler; shuts down gracefully.
//!
//! ```text
//! Server::bind(config)   open the journal (init it if the directory is empty), build TLS,
//!                        bind listeners, start the journal pipeline
//! Server::run(shutdown)  accept loops (one task per address) → one task per connection;
//!                        with [postgresql], the replicator (see `replication`)
//!   shutdown resolves →  stop accepting; connections stop reading, wait until what they
//!                        read is durable, answer it (RELP), close; the pipeline drains;
//!                        the journal writes its closing seal, fsyncs and stops; the
//!                        replicator copies what is left (bounded wait) and stops.
//! ```
//!
//! Every spawned task is tracked and awaited. One bad connection never stops a listener:
//! its errors are logged and counted, and the accept loop goes on (after a short pause
//! if accepting itself fails, e.g. out of file descriptors).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::tz::TimeZone;
use store::journal::{Journal, JournalError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ListenerConfig};
use crate::conn::{ConnCounters, ConnCtx, ConnError};
use crate::devcerts;
use crate::http::{self, Dedup, HttpCtx};
use crate::ingest::{Source, Sources};
use crate::metrics::{self, Metrics};
use crate::pipeline::Pipeline;
use crate::replication::Replication;
use crate::tls::{self, TlsError};
use crate::{relp_conn, syslog_conn};

/// Why the server cannot start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The metrics cannot be registered.
    #[error("cannot set up the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The development PKI cannot be made.
    #[error(transparent)]
    DevCerts(#[from] devcerts::DevCertError),
    /// The journal cannot be opened, failed, or did not close cleanly.
    #[error("journal {dir}: {source}")]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// The cause.
        source: Arc<JournalError>,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        /// The listener.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A background task panicked.
    #[error("{0} task failed")]
    Task(&'static str),
}

/// The addresses the listeners are bound to (ports resolved when 0 was asked).
#[derive(Debug, Clone, Default)]
pub struct BoundAddrs {
    /// Syslog over TLS.
    pub syslog_tls: Vec<SocketAddr>,
    /// RELP over TLS.
    pub relp_tls: Vec<SocketAddr>,
    /// Syslog over TCP.
    pub syslog_tcp: Vec<SocketAddr>,
    /// JSON over HTTPS.
    pub https: Vec<SocketAddr>,
    /// The metrics endpoint.
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    SyslogTls,
    RelpTls,
    SyslogTcp,
    Https,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::SyslogTls => "syslog_tls",
            Protocol::RelpTls => "relp_tls",
            Protocol::SyslogTcp => "syslog_tcp",
            Protocol::Https => "https",
        }
    }
}

struct Bound {
    protocol: Protocol,
    listener: TcpListener,
    limits: Arc<ListenerConfig>,
    /// Connections open on this listener (all its addresses).
    slots: Arc<Semaphore>,
    per_source: PerSource,
}

/// A bound server, ready to run.
pub struct Server {
    config: Config,
    journal: Journal,
    tls: Option<TlsAcceptor>,
    bound: Vec<Bound>,
    metrics_listener: Option<TcpListener>,
    addrs: BoundAddrs,
    metrics: Metrics,
    sources: Sources,
    zone: TimeZone,
    dedup: Option<Dedup>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Binds and runs the server until `shutdown` resolves (or the journal fails).
///
/// # Errors
/// [`ServerError`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}

impl Server {
    /// Opens the journal, builds TLS, binds every listener.
    ///
    /// # Errors
    /// [`ServerError`].
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        config.check()?;
        let zone = TimeZone::get(&config.default_zone).map_err(|_| {
            crate::config::ConfigError::Invalid(format!("unknown zone {:?}", config.default_zone))
        })?;
        let sources = Sources::from_config(&config).map_err(crate::config::ConfigError::Invalid)?;
        let metrics = Metrics::new()?;
        let journal = open_journal(&config, &metrics).await?;
        let tls = if config.uses_tls() {
            let files = match &config.tls {
                Some(files) => files.clone(),
                None => {
                    let source = config
                        .sources
                        .first()
                        .map_or("source.localdomain", |s| s.name.as_str());
                    let (pki, made) = devcerts::ensure(&config.dev_pki_dir(), source)?;
                    tracing::warn!(
                        dir = %config.dev_pki_dir().display(),
                        generated = made,
                        "no [tls] configured: using the development PKI; production configs name real files"
                    );
                    if made {
                        let port = |l: &Option<ListenerConfig>, default| {
                            l.as_ref()
                                .and_then(|l| l.listen.first())
                                .map_or(default, |a| a.port())
                        };
                        tracing::info!(
                            "point rsyslog at the collector with:\n{}",
                            devcerts::rsyslog_snippet(
                                &pki,
                                "localhost",
                                port(&config.syslog_tls, 6514),
                                port(&config.relp_tls, 2514)
                            )
                        );
                    }
                    pki.tls_files()
                }
            };
            Some(TlsAcceptor::from(tls::server_config(&files)?))
        } else {
            None
        };
        let mut bound = Vec::new();
        let mut addrs = BoundAddrs::default();
        // The HTTPS listener's connection limits, in the shape the others use.
        let https_limits = config.https.as_ref().map(|h| ListenerConfig {
            listen: h.listen.clone(),
            max_connections: h.max_connections,
            max_connections_per_source: h.max_connections_per_source,
            handshake_timeout_ms: h.handshake_timeout_ms,
            ..ListenerConfig::default()
        });
        let listeners = [
            (Protocol::SyslogTls, &config.syslog_tls),
            (Protocol::RelpTls, &config.relp_tls),
            (Protocol::SyslogTcp, &config.syslog_tcp),
            (Protocol::Https, &https_limits),
        ];
        for (protocol, listener) in listeners {
            let Some(lc) = listener else { continue };
            let limits = Arc::new(lc.clone());
            let slots = Arc::new(Semaphore::new(lc.max_connections));
            let per_source = PerSource::new(lc.max_connections_per_source);
            if protocol == Protocol::SyslogTcp {
                tracing::warn!(
                    listen = ?lc.listen,
                    allowed = lc.allow.len(),
                    "plain TCP syslog is on: messages travel unencrypted and unauthenticated, peers are named by address only"
                );
            }
            for addr in &lc.listen {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            listener: protocol.name(),
                            addr: *addr,
                            source,
                        })?;
                let local = listener.local_addr().map_err(|source| ServerError::Bind {
                    listener: protocol.name(),
                    addr: *addr,
                    source,
                })?;
                match protocol {
                    Protocol::SyslogTls => addrs.syslog_tls.push(local),
                    Protocol::RelpTls => addrs.relp_tls.push(local),
                    Protocol::SyslogTcp => addrs.syslog_tcp.push(local),
                    Protocol::Https => addrs.https.push(local),
                }
                tracing::info!(listener = protocol.name(), addr = %local, "listening");
                bound.push(Bound {
                    protocol,
                    listener,
                    limits: limits.clone(),
                    slots: slots.clone(),
                    per_source: per_source.clone(),
                });
            }
        }
        let metrics_listener = match &config.metrics {
            Some(m) => {
                let l = TcpListener::bind(m.listen)
                    .await
                    .map_err(|source| ServerError::Bind {
                        listener: "metrics",
                        addr: m.listen,
                        source,
                    })?;
                let local = l.local_addr().map_err(|source| ServerError::Bind {
                    listener: "metrics",
                    addr: m.listen,
                    source,
                })?;
                tracing::info!(url = %metrics::describe(local), "metrics endpoint");
                addrs.metrics = Some(local);
                Some(l)
            }
            None => None,
        };
        let dedup = match &config.https {
            Some(h) => {
                let dedup = Dedup::new(Duration::from_millis(h.dedup_window_ms), h.dedup_max_ids);
                let reader = journal.reader();
                let d = dedup.clone();
                let found = tokio::task::spawn_blocking(move || {
                    d.rebuild(&reader, time::OffsetDateTime::now_utc())
                })
                .await
                .map_err(|_| ServerError::Task("dedup rebuild"))?;
                tracing::info!(
                    ids = found,
                    "https idempotency ids rebuilt from the journal"
                );
                Some(dedup)
            }
            None => None,
        };
        Ok(Server {
            dedup,
            config,
            journal,
            tls,
            bound,
            metrics_listener,
            addrs,
            metrics,
            sources,
            zone,
        })
    }

    /// Where the listeners are bound.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// The server's metrics (e.g. to read counters in tests).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves until `shutdown` resolves or the journal fails, then shuts down gracefully.
    ///
    /// # Errors
    /// [`ServerError::Journal`] if the journal failed or did not close cleanly,
    /// [`ServerError::Task`] if a task panicked.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            config,
            journal,
            tls,
            bound,
            metrics_listener,
            addrs: _,
            metrics,
            sources,
            zone,
            dedup,
        } = self;
        let stop = CancellationToken::new();
        let fatal = CancellationToken::new();
        let tracker = TaskTracker::new();
        let replication = config
            .postgresql
            .as_ref()
            .map(|pg| Replication::start(pg, journal.clone(), &metrics));
        let (pipeline, submitter) = Pipeline::start(
            journal.clone(),
            config.journal.ingest_queue_depth,
            config.journal.max_batch_entries,
            config.journal.max_batch_bytes,
            metrics.clone(),
            fatal.clone(),
        );
        let plain_peers: Arc<HashMap<std::net::IpAddr, Arc<Source>>> = Arc::new(
            config
                .syslog_tcp
                .iter()
                .flat_map(|l| l.allow.iter())
                .filter_map(|p| sources.get(&p.source).map(|s| (p.addr, s.clone())))
                .collect(),
        );
        let https = config.https.clone().map(Arc::new);
        let in_flight = PerSource::new(
            config
                .https
                .as_ref()
                .map_or(1, |h| h.max_requests_in_flight_per_source),
        );
        for b in bound {
            let shared = Shared {
                https: https.clone(),
                dedup: dedup.clone(),
                in_flight: in_flight.clone(),
                protocol: b.protocol,
                limits: b.limits,
                slots: b.slots,
                per_source: b.per_source,
                tls: tls.clone(),
                sources: sources.clone(),
                plain_peers: plain_peers.clone(),
                pipeline: pipeline.clone(),
                metrics: metrics.clone(),
                zone: zone.clone(),
                stop: stop.clone(),
                tracker: tracker.clone(),
            };
            tracker.spawn(accept_loop(b.listener, shared));
        }
        drop(pipeline);
        if let Some(l) = metrics_listener {
            tracker.spawn(metrics::serve(
                l,
                metrics.clone(),
                stop.clone(),
                tracker.clone(),
            ));
        }
        tokio::select! {
            () = shutdown => tracing::info!("shutdown requested: draining"),
            () = fatal.cancelled() => tracing::error!("journal failed: stopping"),
        }
        stop.cancel();
        tracker.close();
        let drain = Duration::from_millis(config.shutdown_timeout_ms);
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(after = ?drain, "connections still draining; waiting for them");
            tracker.wait().await;
        }
        submitter
            .await
            .map_err(|_| ServerError::Task("journal submitter"))?;
        let dir = config.data_dir.clone();
        let head = journal.clone();
        let closed = tokio::task::spawn_blocking(move || journal.close())
            .await
            .map_err(|_| ServerError::Task("journal close"))?;
        if let Some(replication) = replication {
            replication
                .stop(head.head().next_seq)
                .await
                .map_err(ServerError::Task)?;
        }
        drop(head);
        match closed {
            Ok(()) if !fatal.is_cancelled() => {
                tracing::info!(dir = %dir.display(), "journal sealed and closed");
                Ok(())
            }
            Ok(()) => Err(ServerError::Journal {
                dir,
                source: Arc::new(JournalError::Closed),
            }),
            Err(e) => Err(ServerError::Journal {
                dir,
                source: Arc::new(e),
            }),
        }
    }
}

async fn open_journal(config: &Config, metrics: &Metrics) -> Result<Journal, ServerError> {
    let dir = config.data_dir.clone();
    let mut jc = config.journal_config();
    jc.on_commit = Some(metrics.journal_observer());
    let opened = tokio::task::spawn_blocking(move || {
        let empty = std::fs::read_dir(&jc.dir).map_or(true, |mut d| d.next().is_none());
        if empty {
            let keys = store::journal::init(&jc.dir)?;
            tracing::warn!(
                dir = %jc.dir.display(),
                chain_id = %hex::encode(keys.chain_id),
                verifier_key = %jc.dir.join(store::journal::VERIFIER_FILE).display(),
                "created a new journal: move the verifier key off this host"
            );
        }
        Journal::open(jc)
    })
    .await
    .map_err(|_| ServerError::Task("journal open"))?;
    match opened {
        Ok((journal, recovery)) => {
            if let Some(torn) = &recovery.torn_tail {
                tracing::warn!(
                    segment = %torn.segment.display(),
                    discarded_bytes = torn.discarded_bytes,
                    "journal recovery truncated a torn tail"
                );
            }
            Ok(journal)
        }
        Err(e) => Err(ServerError::Journal {
            dir,
            source: Arc::new(e),
        }),
    }
}

/// Open connections (or requests in flight) per source.
#[derive(Clone)]
pub(crate) struct PerSource {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// Releases a source's slot when dropped.
pub(crate) struct SourceSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    name: String,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.name);
            }
        }
    }
}

impl PerSource {
    fn new(max: usize) -> PerSource {
        PerSource {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn acquire(&self, name: &str) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(name.to_owned()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            open: self.open.clone(),
            name: name.to_owned(),
        })
    }
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Shared {
    https: Option<Arc<crate::config::HttpsConfig>>,
    dedup: Option<Dedup>,
    in_flight: PerSource,
    protocol: Protocol,
    limits: Arc<ListenerConfig>,
    slots: Arc<Semaphore>,
    per_source: PerSource,
    tls: Option<TlsAcceptor>,
    sources: Sources,
    plain_peers: Arc<HashMap<std::net::IpAddr, Arc<Source>>>,
    pipeline: Pipeline,
    metrics: Metrics,
    zone: TimeZone,
    stop: CancellationToken,
    tracker: TaskTracker,
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    let name = shared.protocol.name();
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            shared
                .metrics
                .connections_rejected
                .with_label_values(&[name, "max_connections"])
                .inc();
            tracing::warn!(listener = name, %peer, max = shared.limits.max_connections, "connection refused: max_connections reached");
            drop(tcp);
            continue;
        };
        let conn_shared = shared.clone();
        shared.tracker.spawn(async move {
            connection(tcp, peer, permit, conn_shared).await;
        });
    }
    tracing::debug!(listener = name, "stopped accepting");
}

/// Counts a connection in `vigie_connections_open` for as long as it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn count(gauge: prometheus::IntGauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shared: Shared,
) {
    let name = shared.protocol.name();
    let _ = tcp.set_nodelay(true);
    let _open = Open::count(shared.metrics.connections_open.with_label_values(&[name]));
    let refuse = |reason: &str| {
        shared
            .metrics
            .connections_rejected
            .with_label_values(&[name, reason])
            .inc();
    };
    // One of the source's connections, within its limit.
    let slot = |source: &Source| {
        let slot = shared.per_source.acquire(&source.name);
        if slot.is_none() {
            refuse("max_connections_per_source");
            tracing::warn!(listener = name, %peer, source = %source.name, "connection refused: max_connections_per_source reached");
        }
        slot
    };
    match shared.protocol {
        Protocol::SyslogTcp => {
            let Some(source) = shared.plain_peers.get(&peer.ip()).cloned() else {
                refuse("not_allowed");
                tracing::warn!(listener = name, %peer, "connection refused: address not in syslog_tcp.allow");
                return;
            };
            let Some(_slot) = slot(&source) else {
                return;
            };
            let ctx = context(&shared, peer, source);
            finish(&ctx, syslog_conn::serve(tcp, &ctx).await.map(|s| s.frames));
        }
        Protocol::SyslogTls | Protocol::RelpTls | Protocol::Https => {
            let Some(acceptor) = shared.tls.clone() else {
                return;
            };
            let after = Duration::from_millis(shared.limits.handshake_timeout_ms);
            // A handshake under way at shutdown is finished (within its timeout): the
            // handler then drains or says serverclose, as for any open connection.
            let handshake = tokio::time::timeout(after, acceptor.accept(tcp)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared
                        .metrics
                        .handshake_failures
                        .with_label_values(&[name])
                        .inc();
                    tracing::warn!(listener = name, %peer, phase = "handshake", error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    shared
                        .metrics
                        .handshake_failures
                        .with_label_values(&[name])
                        .inc();
                    tracing::warn!(listener = name, %peer, phase = "handshake", ?after, "tls handshake timed out");
                    return;
                }
            };
            let names = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(tls::certificate_names)
                .unwrap_or_default();
            let Some(source) = shared.sources.resolve(&names) else {
                refuse("unknown_source");
                tracing::warn!(listener = name, %peer, certificate_names = ?names, "connection refused: certificate names no configured source");
                return;
            };
            let Some(_slot) = slot(&source) else {
                return;
            };
            tracing::debug!(listener = name, %peer, source = %source.name, "source connected");
            if shared.protocol == Protocol::Https {
                if let (Some(config), Some(dedup)) = (shared.https.clone(), shared.dedup.clone()) {
                    let ctx = HttpCtx {
                        peer,
                        source,
                        config,
                        pipeline: shared.pipeline.clone(),
                        metrics: shared.metrics.clone(),
                        zone: shared.zone.clone(),
                        dedup,
                        in_flight: shared.in_flight.clone(),
                        shutdown: shared.stop.clone(),
                    };
                    http::serve(stream, ctx).await;
                }
                return;
            }
            let ctx = context(&shared, peer, source);
            let result = if shared.protocol == Protocol::RelpTls {
                relp_conn::serve(stream, &ctx).await
            } else {
                syslog_conn::serve(stream, &ctx).await.map(|s| s.frames)
            };
            finish(&ctx, result);
        }
    }
}

fn context(shared: &Shared, peer: SocketAddr, source: Arc<Source>) -> ConnCtx {
    let listener = shared.protocol.name();
    ConnCtx {
        listener,
        peer,
        counters: ConnCounters::new(&shared.metrics, listener, &source.name),
        source,
        limits: shared.limits.clone(),
        pipeline: shared.pipeline.clone(),
        metrics: shared.metrics.clone(),
        zone: shared.zone.clone(),
        shutdown: shared.stop.clone(),
    }
}

fn finish(ctx: &ConnCtx, result: Result<u64, ConnError>) {
    match result {
        Ok(messages) => tracing::debug!(
            listener = ctx.listener, peer = %ctx.peer, source = %ctx.source.name, messages,
            "connection closed"
        ),
        Err(e) => {
            ctx.metrics
                .connections_failed
                .with_label_values(&[ctx.listener, e.reason()])
                .inc();
            tracing::warn!(
                listener = ctx.listener, peer = %ctx.peer, source = %ctx.source.name,
                reason = e.reason(), error = %e, "connection closed on error"
            );
        }
    }
}
