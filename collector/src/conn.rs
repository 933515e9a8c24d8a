//! What every connection handler shares: its context, its errors (each naming the phase
//! that failed), reading with the right timeout, and turning frames into a batch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use prometheus::{IntCounter, IntGauge};
use proto::syslog::ParseContext;
use store::journal::PendingEntry;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerConfig;
use crate::ingest::{self, Rejection, Source};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError};

/// Bytes asked of the socket per read.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Batches of one connection submitted and not yet durable, at most.
pub(crate) const MAX_INFLIGHT: usize = 8;

/// Everything a connection handler needs.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) listener: &'static str,
    pub(crate) peer: SocketAddr,
    pub(crate) source: Arc<Source>,
    pub(crate) limits: Arc<ListenerConfig>,
    pub(crate) pipeline: Pipeline,
    pub(crate) metrics: Metrics,
    /// This connection's per-message metrics, looked up once.
    pub(crate) counters: ConnCounters,
    pub(crate) zone: TimeZone,
    /// Cancelled at shutdown: stop reading, drain, close.
    pub(crate) shutdown: CancellationToken,
}

/// The messages of one read accepted, and how many of them no profile understood:
/// counted into the metrics once per read, since the counters are shared by every
/// connection of a source.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    accepted: u64,
    unmapped: u64,
}

/// The metrics a connection updates for every message or read, with their labels resolved
/// once per connection rather than looked up (hash, lock) per message.
#[derive(Clone)]
pub(crate) struct ConnCounters {
    accepted: IntCounter,
    unmapped: IntCounter,
    last_event: IntGauge,
}

impl ConnCounters {
    /// The counters of `source` on `listener`.
    pub(crate) fn new(metrics: &Metrics, listener: &str, source: &str) -> ConnCounters {
        ConnCounters {
            accepted: metrics.accepted.with_label_values(&[listener, source]),
            unmapped: metrics.unmapped.with_label_values(&[source]),
            last_event: metrics.last_event.with_label_values(&[source]),
        }
    }
}

/// Why a connection ended in error.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A phase did not end in time.
    #[error("{phase} timed out after {after:?}")]
    Timeout {
        /// `handshake`, `idle`, `frame`, `write`, `durable`, `close`.
        phase: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The socket failed.
    #[error("{phase} failed: {source}")]
    Io {
        /// `handshake`, `read`, `write`, `close`.
        phase: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer broke the framing; the stream cannot continue.
    #[error("framing: {0}")]
    Framing(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The journal did not take the batch.
    #[error("journal: {0}")]
    Pipeline(#[from] PipelineError),
}

impl ConnError {
    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ConnError::Timeout { phase, .. } => phase,
            ConnError::Io { .. } => "io",
            ConnError::Framing(_) => "framing",
            ConnError::Protocol(_) => "protocol",
            ConnError::Pipeline(_) => "journal",
        }
    }
}

/// What a read gave.
pub(crate) enum Read {
    /// Bytes were appended.
    Data,
    /// The peer closed its side.
    Eof,
    /// Shutdown began: stop reading.
    Shutdown,
}

impl ConnCtx {
    /// Reads more bytes into `buf`: the idle timeout applies while no frame is started
    /// (`buf` empty), the frame timeout (slow sender) while one is.
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &self,
        stream: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Read, ConnError> {
        let (phase, after) = if buf.is_empty() {
            ("idle", Duration::from_millis(self.limits.idle_timeout_ms))
        } else {
            ("frame", Duration::from_millis(self.limits.frame_timeout_ms))
        };
        buf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => Ok(Read::Shutdown),
            r = tokio::time::timeout(after, stream.read_buf(buf)) => match r {
                Err(_) => Err(ConnError::Timeout { phase, after }),
                Ok(Err(source)) => Err(ConnError::Io { phase: "read", source }),
                Ok(Ok(0)) => Ok(Read::Eof),
                Ok(Ok(_)) => Ok(Read::Data),
            },
        }
    }

    /// What messages read at `received_at` are parsed with (one per read: the zone is
    /// shared by every connection, and cloning it is an atomic increment).
    pub(crate) fn parse_context(&self, received_at: OffsetDateTime) -> ParseContext {
        ParseContext::new(received_at, self.zone.clone())
    }

    /// Turns one message into an entry, counting it in `tally`; `Err` carries the refusal
    /// after it was counted and logged.
    pub(crate) fn accept(
        &self,
        raw: &[u8],
        parse: &ParseContext,
        tally: &mut Tally,
    ) -> Result<PendingEntry, Rejection> {
        match ingest::accept(raw, &self.source, parse) {
            Ok(a) => {
                tally.accepted += 1;
                if a.unmapped {
                    tally.unmapped += 1;
                }
                Ok(a.entry)
            }
            Err(r) => {
                self.metrics
                    .reject(self.listener, &self.source.name, r.reason());
                tracing::warn!(
                    listener = self.listener,
                    peer = %self.peer,
                    source = %self.source.name,
                    reason = r.reason(),
                    error = %r,
                    "message refused"
                );
                Err(r)
            }
        }
    }

    /// Adds what `tally` counted to the metrics.
    pub(crate) fn count(&self, tally: &Tally) {
        if tally.accepted > 0 {
            self.counters.accepted.inc_by(tally.accepted);
        }
        if tally.unmapped > 0 {
            self.counters.unmapped.inc_by(tally.unmapped);
        }
    }

    /// Notes that events of this source were received now.
    pub(crate) fn touch(&self, received_at: OffsetDateTime) {
        self.counters.last_event.set(received_at.unix_timestamp());
    }

    /// The durability limit.
    pub(crate) fn durable_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.durable_timeout_ms)
    }

    /// The write limit.
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.write_timeout_ms)
    }
}

/// Waits for a batch to be durable within the limit.
pub(crate) async fn wait_durable(
    ctx: &ConnCtx,
    durable: crate::pipeline::Durable,
) -> Result<(), ConnError> {
    let after = ctx.durable_timeout();
    match tokio::time::timeout(after, durable.wait()).await {
        Err(_) => Err(ConnError::Timeout {
            phase: "durable",
            after,
        }),
        Ok(r) => Ok(r?),
    }
}

/// The instant a batch read now counts from, for the ack latency.
pub(crate) fn now() -> (OffsetDateTime, Instant) {
    (OffsetDateTime::now_utc(), Instant::now())
}
