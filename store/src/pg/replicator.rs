//! The replicator: a long-running task that copies the journal into PostgreSQL and keeps
//! going through outages.
//!
//! ```text
//!  loop
//!    connect ── fails ──► warn (with the lag), publish status, wait (backoff ≤ retry_max_ms)
//!    migrate, ensure partitions, read the position
//!    loop
//!      batch k+1 read from the journal on a blocking thread  ┐ overlap
//!      batch k COPYed and committed with the position         ┘
//!      nothing new: publish status, sleep poll_interval
//!    any transient error (connection lost, server restarting, a connection or a batch
//!    past its timeout): back to connect
//!  until shutdown; a permanent error (schema too new, journal behind PostgreSQL,
//!  an entry that is not canonical) stops it with that error
//! ```
//!
//! The journal goes on accepting while PostgreSQL is away: the lag grows (bounded by disk),
//! is published in [`ReplicationStatus`] (the collector's metric) and logged at most every
//! [`ReplicatorConfig::lag_log_interval`]. Catching up runs batch after batch without
//! pause, at COPY speed, well above the ingest rate.
//!
//! Stopping (the shutdown future resolves) drops the batch in flight: its transaction is
//! rolled back and the next start copies it again.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_postgres::Client;

use super::copy_in::{self, BatchLimits, Position};
use super::error::ChainId;
use super::{PgError, connect, schema};
use crate::journal::Journal;

/// How the replicator runs.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicatorConfig {
    /// The libpq-style connection string or URL (may hold a password: never printed).
    pub url: String,
    /// Batch size.
    pub limits: BatchLimits,
    /// Pause when the journal has nothing new (default 100 ms).
    pub poll_interval: Duration,
    /// First wait after a failure (default 200 ms), doubled each time up to
    /// `retry_max` (default 10 s).
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// Months of partitions kept ready ahead (default and minimum 3).
    pub months_ahead: u32,
    /// Longest wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest time one batch may take, COPY and commit (default 120 s): past it the
    /// session is taken for hung (a network that drops packets silently), dropped, and a
    /// new one started; the batch rolls back and is copied again.
    pub batch_timeout: Duration,
    /// Lag (entries) above which a warning is logged (default 100,000).
    pub lag_warn_entries: u64,
    /// Shortest time between two lag log lines (default 30 s).
    pub lag_log_interval: Duration,
}

impl fmt::Debug for ReplicatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicatorConfig")
            .field("url", &"<redacted>")
            .field("limits", &self.limits)
            .field("poll_interval", &self.poll_interval)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("months_ahead", &self.months_ahead)
            .field("connect_timeout", &self.connect_timeout)
            .field("batch_timeout", &self.batch_timeout)
            .field("lag_warn_entries", &self.lag_warn_entries)
            .field("lag_log_interval", &self.lag_log_interval)
            .finish()
    }
}

impl ReplicatorConfig {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ReplicatorConfig {
            url: url.into(),
            limits: BatchLimits::default(),
            poll_interval: Duration::from_millis(100),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            months_ahead: schema::MIN_MONTHS_AHEAD,
            connect_timeout: Duration::from_secs(10),
            batch_timeout: Duration::from_secs(120),
            lag_warn_entries: 100_000,
            lag_log_interval: Duration::from_secs(30),
        }
    }
}

/// What the replicator publishes after each batch, poll or failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Whether it holds a working session.
    pub connected: bool,
    /// PostgreSQL's position, as last read or written.
    pub position: Option<Position>,
    /// The journal's next seq when last looked at.
    pub journal_next_seq: u64,
    /// Entries in the journal not yet in PostgreSQL (the metric).
    pub lag_entries: u64,
    /// Rows copied since start.
    pub rows_copied: u64,
    /// Failures since start.
    pub failures: u64,
    /// The last failure's message (its cause chain).
    pub last_error: Option<String>,
}

/// Copies one journal into PostgreSQL until shut down.
#[derive(Debug)]
pub struct Replicator {
    config: ReplicatorConfig,
    journal: Journal,
    status: watch::Sender<ReplicationStatus>,
    last_lag_log: Option<Instant>,
}

impl Replicator {
    /// A replicator of `journal` (it reads durable entries through [`Journal::reader`]).
    pub fn new(config: ReplicatorConfig, journal: Journal) -> Self {
        let (status, _) = watch::channel(ReplicationStatus {
            journal_next_seq: journal.head().next_seq,
            ..ReplicationStatus::default()
        });
        Replicator {
            config,
            journal,
            status,
            last_lag_log: None,
        }
    }

    /// Follows the status (for the collector's metrics and health endpoint).
    pub fn status(&self) -> watch::Receiver<ReplicationStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` resolves (then `Ok`), retrying transient failures forever.
    ///
    /// # Errors
    /// A permanent failure: [`PgError::SchemaTooNew`], [`PgError::PositionAhead`],
    /// [`PgError::Decode`], [`PgError::Journal`], or a statement PostgreSQL refuses for
    /// another reason than the connection (see [`PgError::is_transient`]).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), PgError> {
        let mut shutdown = pin!(shutdown);
        let mut backoff = self.config.retry_initial;
        loop {
            let outcome = {
                let session = pin!(self.session(&mut backoff));
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    outcome = session => outcome,
                }
            };
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => e,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "replication stopped");
                    self.status.send_modify(|s| {
                        s.connected = false;
                        s.failures += 1;
                        s.last_error = Some(error_chain(&e));
                    });
                    return Err(e);
                }
            };
            let journal_next_seq = self.journal.head().next_seq;
            let mut lag = 0;
            self.status.send_modify(|s| {
                s.connected = false;
                s.failures += 1;
                s.last_error = Some(error_chain(&error));
                s.journal_next_seq = journal_next_seq;
                s.lag_entries =
                    journal_next_seq.saturating_sub(s.position.map_or(0, |p| p.next_seq));
                lag = s.lag_entries;
            });
            tracing::warn!(
                error = %error_chain(&error),
                lag_entries = lag,
                retry_in_ms = backoff.as_millis() as u64,
                "replication to PostgreSQL failed; the journal keeps accepting"
            );
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.retry_max);
        }
    }

    /// One session: connect, prepare the schema, then copy until an error.
    async fn session(&mut self, backoff: &mut Duration) -> Result<(), PgError> {
        let timeout = self.config.connect_timeout;
        let (mut client, connection) = tokio::time::timeout(timeout, connect(&self.config.url))
            .await
            .map_err(|_| PgError::Timeout {
                op: "connect",
                after: timeout,
            })??;
        let result = self.copy_loop(&mut client, backoff).await;
        drop(client);
        // The connection task ends once the client is gone.
        let _ = connection.await;
        result
    }

    async fn copy_loop(
        &mut self,
        client: &mut Client,
        backoff: &mut Duration,
    ) -> Result<(), PgError> {
        schema::migrate(client).await?;
        schema::ensure_partitions(
            &*client,
            OffsetDateTime::now_utc(),
            self.config.months_ahead,
        )
        .await?;
        let mut partitions_checked = Instant::now();
        let chain_id = self.journal.chain_id();
        let reader = self.journal.reader();
        let mut pos = copy_in::position(&*client, chain_id)
            .await?
            .unwrap_or(Position::empty(chain_id));
        let journal_next_seq = self.journal.head().next_seq;
        if pos.next_seq > journal_next_seq {
            return Err(PgError::PositionAhead {
                chain: ChainId(chain_id),
                pg_next_seq: pos.next_seq,
                journal_next_seq,
            });
        }
        tracing::info!(chain = %ChainId(chain_id), next_seq = pos.next_seq, journal_next_seq, "replication connected");
        *backoff = self.config.retry_initial;
        self.publish(true, pos, 0);
        let limits = self.config.limits;
        let mut pending = Some(copy_in::spawn_read(&reader, pos.next_seq, limits));
        loop {
            let rows = match pending.take() {
                Some(handle) => handle.await.map_err(PgError::Task)??,
                None => copy_in::spawn_read(&reader, pos.next_seq, limits)
                    .await
                    .map_err(PgError::Task)??,
            };
            let Some(last) = rows.last().map(|r| r.seq) else {
                self.publish(true, pos, 0);
                if partitions_checked.elapsed() > Duration::from_secs(3600) {
                    schema::ensure_partitions(
                        &*client,
                        OffsetDateTime::now_utc(),
                        self.config.months_ahead,
                    )
                    .await?;
                    partitions_checked = Instant::now();
                }
                tokio::time::sleep(self.config.poll_interval).await;
                continue;
            };
            let n = rows.len() as u64;
            pending = Some(copy_in::spawn_read(&reader, last + 1, limits));
            let timeout = self.config.batch_timeout;
            pos = tokio::time::timeout(timeout, copy_in::replicate_rows(client, rows))
                .await
                .map_err(|_| PgError::Timeout {
                    op: "copy a batch",
                    after: timeout,
                })??;
            self.publish(true, pos, n);
        }
    }

    fn publish(&mut self, connected: bool, pos: Position, copied: u64) {
        let journal_next_seq = self.journal.head().next_seq;
        let lag = journal_next_seq.saturating_sub(pos.next_seq);
        self.status.send_modify(|s| {
            s.connected = connected;
            s.position = Some(pos);
            s.journal_next_seq = journal_next_seq;
            s.lag_entries = lag;
            s.rows_copied += copied;
        });
        if lag >= self.config.lag_warn_entries
            && self
                .last_lag_log
                .is_none_or(|t| t.elapsed() >= self.config.lag_log_interval)
        {
            tracing::warn!(
                lag_entries = lag,
                next_seq = pos.next_seq,
                journal_next_seq,
                "replication behind the journal"
            );
            self.last_lag_log = Some(Instant::now());
        }
    }
}

/// An error and its causes, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
