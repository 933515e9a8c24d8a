//! Prometheus metrics, and the tiny plain-HTTP endpoint that serves them.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `vigie_events_accepted_total` | listener, source | events submitted to the journal |
//! | `vigie_events_durable_total` | | of those, events made durable (each answered to its source after this) |
//! | `vigie_events_unmapped_total` | source | of those, events no profile understood |
//! | `vigie_events_rejected_total` | listener, source, reason | messages refused |
//! | `vigie_connections_rejected_total` | listener, reason | connections refused |
//! | `vigie_connections_failed_total` | listener, reason | connections ended by an error (timeout phase, framing, protocol, io, journal) |
//! | `vigie_connections_open` | listener | connections being served |
//! | `vigie_tls_handshake_failures_total` | listener | handshakes failed or timed out |
//! | `vigie_ack_latency_seconds` | | reception of a batch to its durability |
//! | `vigie_ingest_queue_depth` | | batches waiting for the journal submitter |
//! | `vigie_last_event_timestamp_seconds` | source | reception time of its last event |
//! | `vigie_journal_fsync_seconds` | | time of each group commit's `fdatasync` |
//! | `vigie_journal_commit_entries` | | records made durable by one group commit |
//! | `vigie_replication_lag_entries` | | journal entries not yet in PostgreSQL (`[postgresql]` only) |
//! | `vigie_replication_connected` | | 1 while the replicator holds a working PostgreSQL session |

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every metric of the collector, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events submitted, by listener and source.
    pub accepted: IntCounterVec,
    /// Events the journal made durable.
    pub durable: IntCounter,
    /// Events no profile understood, by source.
    pub unmapped: IntCounterVec,
    /// Messages refused, by listener, source and reason.
    pub rejected: IntCounterVec,
    /// Connections refused, by listener and reason.
    pub connections_rejected: IntCounterVec,
    /// Connections ended by an error, by listener and reason.
    pub connections_failed: IntCounterVec,
    /// Open connections, by listener.
    pub connections_open: IntGaugeVec,
    /// Failed TLS handshakes, by listener.
    pub handshake_failures: IntCounterVec,
    /// Reception to durability of a batch.
    pub ack_latency: Histogram,
    /// Batches waiting for the journal.
    pub queue_depth: IntGauge,
    /// Unix time of the last event of each source.
    pub last_event: IntGaugeVec,
    /// Duration of each journal `fdatasync`.
    pub journal_fsync: Histogram,
    /// Records per journal group commit.
    pub journal_commit_entries: Histogram,
    /// Journal entries not yet replicated to PostgreSQL.
    pub replication_lag: IntGauge,
    /// 1 while the replicator is connected to PostgreSQL, else 0.
    pub replication_connected: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Errors
    /// A metric whose name, labels or buckets Prometheus refuses, or registered twice: the
    /// names are constants, so this fails on every start or never (a test starts it).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let accepted = counter(
            "vigie_events_accepted_total",
            "Events submitted to the journal.",
            &["listener", "source"],
        )?;
        let durable = IntCounter::new(
            "vigie_events_durable_total",
            "Events made durable in the journal; each is answered to its source after this.",
        )?;
        registry.register(Box::new(durable.clone()))?;
        let unmapped = counter(
            "vigie_events_unmapped_total",
            "Accepted events that no profile understood (kept with their raw text).",
            &["source"],
        )?;
        let rejected = counter(
            "vigie_events_rejected_total",
            "Messages refused.",
            &["listener", "source", "reason"],
        )?;
        let connections_rejected = counter(
            "vigie_connections_rejected_total",
            "Connections refused.",
            &["listener", "reason"],
        )?;
        let connections_failed = counter(
            "vigie_connections_failed_total",
            "Connections ended by an error (the reason names the phase or the fault).",
            &["listener", "reason"],
        )?;
        let handshake_failures = counter(
            "vigie_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out.",
            &["listener"],
        )?;
        let connections_open = IntGaugeVec::new(
            Opts::new("vigie_connections_open", "Connections being served."),
            &["listener"],
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        let last_event = IntGaugeVec::new(
            Opts::new(
                "vigie_last_event_timestamp_seconds",
                "Unix time the collector received the source's last event.",
            ),
            &["source"],
        )?;
        registry.register(Box::new(last_event.clone()))?;
        let ack_latency = Histogram::with_opts(
            HistogramOpts::new(
                "vigie_ack_latency_seconds",
                "From the reception of a batch to its durability in the journal.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
        )?;
        registry.register(Box::new(ack_latency.clone()))?;
        let queue_depth = IntGauge::new(
            "vigie_ingest_queue_depth",
            "Batches waiting between the listeners and the journal.",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let journal_fsync = histogram(
            "vigie_journal_fsync_seconds",
            "Time each journal group commit's fdatasync took.",
            vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0,
            ],
        )?;
        let journal_commit_entries = histogram(
            "vigie_journal_commit_entries",
            "Records made durable by one journal group commit.",
            vec![1.0, 2.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0],
        )?;
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let replication_lag = gauge(
            "vigie_replication_lag_entries",
            "Journal entries not yet replicated to PostgreSQL.",
        )?;
        let replication_connected = gauge(
            "vigie_replication_connected",
            "1 while the replicator holds a working PostgreSQL session, else 0.",
        )?;
        Ok(Metrics {
            registry,
            replication_lag,
            replication_connected,
            journal_fsync,
            journal_commit_entries,
            accepted,
            durable,
            unmapped,
            rejected,
            connections_rejected,
            connections_failed,
            connections_open,
            handshake_failures,
            ack_latency,
            queue_depth,
            last_event,
        })
    }

    /// An observer feeding the journal's commit metrics.
    pub fn journal_observer(&self) -> store::journal::CommitObserver {
        let (fsync, entries) = (
            self.journal_fsync.clone(),
            self.journal_commit_entries.clone(),
        );
        store::journal::CommitObserver::new(move |report| {
            fsync.observe(report.sync.as_secs_f64());
            entries.observe(report.entries as f64);
        })
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on metric families that are malformed, which
        // registration already refused.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Counts one refused message.
    pub fn reject(&self, listener: &str, source: &str, reason: &str) {
        self.rejected
            .with_label_values(&[listener, source, reason])
            .inc();
    }
}

/// Largest request head read by the endpoint.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `token` is cancelled; each request on its own
/// tracked task.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                tracker.spawn(async move {
                    if let Err(e) =
                        tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics)).await
                    {
                        tracing::debug!(%peer, error = %e, "metrics request timed out");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > MAX_REQUEST_BYTES {
            let _ = stream
                .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let response = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let body = metrics.render();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        (Some(b"GET"), _) => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        }
        _ => "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned(),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The address the endpoint is bound to, for logs.
pub(crate) fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
