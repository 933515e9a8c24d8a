//! The replicator: a long-running task that copies the journal into PostgreSQL and keeps
//! going through outages, copying several batches at once in parallel sessions and
//! committing them in seq order.
//!
//! ```text
//!  loop
//!    connect ── fails ──► warn (with the lag), publish status, wait (backoff ≤ retry_max_ms)
//!    coordinator session: migrate, ensure partitions, create the chain's position if
//!      missing, read it (ahead of the journal: PositionAhead, permanent)
//!    open N worker sessions (ReplicatorConfig::sessions)
//!    loop (coordinator)
//!      read batch k from the journal (batch k+1 read ahead on a blocking thread)
//!      plan it in seq order: part_at floor, last seal, the position after it, new months
//!      a new month: wait until every batch in flight is committed, then CREATE … PARTITION
//!        OF on the coordinator session (never beside a worker's COPY)
//!      at most N+1 batches in flight: else wait for the oldest to commit
//!      hand batch k to worker k mod N (queue of one)
//!      publish each commit, in order (rows copied, position, lag)
//!      nothing new: wait for all in flight, publish status, sleep poll_interval
//!
//!    worker w (batches w, w+N, w+2N, …), each batch within batch_timeout:
//!      BEGIN
//!      ⏳ batch k-1 began its COPY ─► COPY batch k         (parallel with the others)
//!      ⏳ batch k-1 updated the position
//!      SELECT … FOR UPDATE the position ⏳ PostgreSQL: until batch k-1 commits
//!      next_seq == first seq of k ?  else PositionMismatch
//!      UPDATE the position ─► batch k+1 may lock it
//!      COMMIT ─► answer the coordinator
//!
//!    any error in any session: every session dropped (open transactions roll back);
//!    transient (connection lost, server restarting, a timeout, a position mismatch):
//!    back to connect, which reads the position again
//!  until shutdown (everything in flight rolled back, copied again at the next start);
//!  a permanent error (schema too new, journal behind PostgreSQL, an entry that is not
//!  canonical) stops it with that error
//! ```
//!
//! Waits only ever go from a batch to batches before it (⏳ above), so they cannot form a
//! cycle: batch k waits for k-1 to begin its COPY (a client-side signal) before taking
//! its own lock on `entries`, so an earlier batch never queues for `entries` behind a
//! stronger lock that itself waits for a later batch; it waits for k-1's position update
//! (client-side) and commit (the row lock, seen by PostgreSQL) before its own. A batch
//! whose predecessor failed sees its signal dropped, or the position unmoved, and fails
//! with [`PgError::PositionMismatch`] instead of waiting. The coordinator creates
//! partitions with nothing in flight: it never waits for a worker holding `entries` while
//! another waits for it.
//!
//! The journal goes on accepting while PostgreSQL is away: the lag grows (bounded by disk),
//! is published in [`ReplicationStatus`] (the collector's metric) and logged at most every
//! [`ReplicatorConfig::lag_log_interval`]. Catching up runs batch after batch without
//! pause, at COPY speed, well above the ingest rate.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::copy_in::{self, BatchLimits, PlannedBatch, Position, Turn, Turns};
use super::error::ChainId;
use super::{PgError, connect, schema};
use crate::error_chain;
use crate::journal::Journal;

/// How the replicator runs.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicatorConfig {
    /// The libpq-style connection string or URL (may hold a password: never printed).
    pub url: String,
    /// Batch size.
    pub limits: BatchLimits,
    /// Worker sessions copying batches in parallel, besides the replicator's own (default
    /// 2; 0 is taken as 1, which copies one batch at a time).
    pub sessions: usize,
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
            .field("sessions", &self.sessions)
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
            sessions: 2,
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
        let mut workers = Workers::default();
        loop {
            let outcome = {
                let session = pin!(self.session(&mut workers, &mut backoff));
                tokio::select! {
                    () = &mut shutdown => None,
                    outcome = session => Some(outcome),
                }
            };
            // Whatever the session left in flight rolls back with its worker sessions.
            workers.close().await;
            let error = match outcome {
                None | Some(Ok(())) => return Ok(()),
                Some(Err(e)) if e.is_transient() => e,
                Some(Err(e)) => {
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

    /// One session: connect, prepare the schema, open the worker sessions, then copy until
    /// an error.
    async fn session(
        &mut self,
        workers: &mut Workers,
        backoff: &mut Duration,
    ) -> Result<(), PgError> {
        let timeout = self.config.connect_timeout;
        let (mut client, connection) = connect_within(&self.config.url, timeout).await?;
        let result = self.copy_loop(&mut client, workers, backoff).await;
        drop(client);
        // The connection task ends once the client is gone.
        let _ = connection.await;
        result
    }

    async fn copy_loop(
        &mut self,
        client: &mut Client,
        workers: &mut Workers,
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
        // The workers lock the position row: it exists before they start.
        copy_in::create_position(&*client, chain_id).await?;
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
        let sessions = self.config.sessions.max(1);
        workers.open(&self.config, sessions).await?;
        tracing::info!(chain = %ChainId(chain_id), next_seq = pos.next_seq, journal_next_seq, sessions, "replication connected");
        *backoff = self.config.retry_initial;
        self.publish(true, pos, 0);
        let limits = self.config.limits;
        let batch_timeout = self.config.batch_timeout;
        // Where the position stands once every batch handed out is in.
        let mut planned = pos;
        let mut turns = Turns::default();
        let mut in_flight = VecDeque::with_capacity(sessions + 1);
        let mut dispatched = 0usize;
        let mut pending = Some(copy_in::spawn_read(&reader, planned.next_seq, limits));
        loop {
            let rows = match pending.take() {
                Some(handle) => handle.await.map_err(PgError::Task)??,
                None => copy_in::spawn_read(&reader, planned.next_seq, limits)
                    .await
                    .map_err(PgError::Task)??,
            };
            let Some(last) = rows.last().map(|r| r.seq) else {
                while let Some(batch) = in_flight.pop_front() {
                    pos = self.landed(workers, batch).await?;
                }
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
            pending = Some(copy_in::spawn_read(&reader, last + 1, limits));
            let batch = copy_in::plan_batch(planned, rows)?;
            if batch.months().next().is_some() {
                // CREATE … PARTITION OF locks `entries` against every COPY: it runs with no
                // batch in flight, so that no worker waits for it while a later batch it
                // waits for holds `entries`.
                while let Some(batch) = in_flight.pop_front() {
                    pos = self.landed(workers, batch).await?;
                }
                tokio::time::timeout(batch_timeout, async {
                    for month in batch.months() {
                        schema::create_partition(&*client, month).await?;
                    }
                    Ok::<_, PgError>(())
                })
                .await
                .map_err(|_| PgError::Timeout {
                    op: "create a partition",
                    after: batch_timeout,
                })??;
            }
            // At most one batch waits for each worker beyond those being copied.
            while in_flight.len() > sessions
                && let Some(batch) = in_flight.pop_front()
            {
                pos = self.landed(workers, batch).await?;
            }
            planned = batch.to();
            let rows = batch.rows().len() as u64;
            let worker = dispatched % sessions;
            dispatched += 1;
            let (done, answer) = oneshot::channel();
            workers
                .hand(
                    worker,
                    Job {
                        batch,
                        turn: turns.turn(),
                        done,
                    },
                )
                .await;
            in_flight.push_back(InFlight {
                worker,
                rows,
                answer,
            });
        }
    }

    /// Waits for a batch handed to a worker to be committed, and publishes it.
    ///
    /// # Errors
    /// The worker's error (it fails the session).
    async fn landed(
        &mut self,
        workers: &mut Workers,
        batch: InFlight,
    ) -> Result<Position, PgError> {
        match batch.answer.await {
            Ok(pos) => {
                self.publish(true, pos, batch.rows);
                Ok(pos)
            }
            Err(_) => Err(workers.failure(batch.worker).await),
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

/// Connects within `timeout`.
async fn connect_within(url: &str, timeout: Duration) -> Result<(Client, JoinHandle<()>), PgError> {
    tokio::time::timeout(timeout, connect(url))
        .await
        .map_err(|_| PgError::Timeout {
            op: "connect",
            after: timeout,
        })?
}

/// A batch handed to a worker session: copy it in its turn, answer with the position.
#[derive(Debug)]
struct Job {
    batch: PlannedBatch,
    turn: Turn,
    done: oneshot::Sender<Position>,
}

/// A batch handed out and not yet known to be committed.
#[derive(Debug)]
struct InFlight {
    worker: usize,
    rows: u64,
    answer: oneshot::Receiver<Position>,
}

/// The worker sessions of one replication session, each a connection driven by a task of
/// its own; batch `k` goes to worker `k mod N`, through a queue of one.
#[derive(Debug, Default)]
struct Workers {
    sessions: Vec<Worker>,
}

#[derive(Debug)]
struct Worker {
    jobs: mpsc::Sender<Job>,
    /// Ends only with the worker's first error (or when aborted).
    task: Option<JoinHandle<PgError>>,
    connection: JoinHandle<()>,
}

impl Workers {
    /// Opens `n` worker sessions.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Timeout`].
    async fn open(&mut self, config: &ReplicatorConfig, n: usize) -> Result<(), PgError> {
        for _ in 0..n {
            let (client, connection) = connect_within(&config.url, config.connect_timeout).await?;
            let (jobs, queue) = mpsc::channel(1);
            let task = tokio::spawn(work(client, queue, config.batch_timeout));
            self.sessions.push(Worker {
                jobs,
                task: Some(task),
                connection,
            });
        }
        Ok(())
    }

    /// Hands `job` to worker `i`. A worker that has stopped drops the job unanswered: its
    /// error is found by [`Workers::failure`] when the job's answer is awaited.
    async fn hand(&self, i: usize, job: Job) {
        if let Some(worker) = self.sessions.get(i) {
            let _ = worker.jobs.send(job).await;
        }
    }

    /// Why worker `i` left a batch unanswered: the error it stopped on.
    async fn failure(&mut self, i: usize) -> PgError {
        let task = self.sessions.get_mut(i).and_then(|w| w.task.take());
        match task {
            Some(task) => task.await.unwrap_or_else(PgError::Task),
            // Not reached: a worker is asked once, and the session ends with its answer.
            None => PgError::Timeout {
                op: "hand a batch to a worker session",
                after: Duration::ZERO,
            },
        }
    }

    /// Stops every worker (a transaction in flight rolls back with its connection) and
    /// waits until their tasks and connections are gone.
    async fn close(&mut self) {
        for w in &self.sessions {
            if let Some(task) = &w.task {
                task.abort();
            }
            w.connection.abort();
        }
        for w in self.sessions.drain(..) {
            if let Some(task) = w.task {
                let _ = task.await;
            }
            let _ = w.connection.await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &self.sessions {
            if let Some(task) = &w.task {
                task.abort();
            }
            w.connection.abort();
        }
    }
}

/// A worker session: copies the batches it is handed, each in its turn and within
/// `batch_timeout`, until the first error, which it returns (dropping the batches queued
/// behind it unanswered).
async fn work(
    mut client: Client,
    mut jobs: mpsc::Receiver<Job>,
    batch_timeout: Duration,
) -> PgError {
    loop {
        let Some(Job { batch, turn, done }) = jobs.recv().await else {
            // The coordinator dropped the queue: it aborts this task.
            return std::future::pending().await;
        };
        let copied = tokio::time::timeout(
            batch_timeout,
            copy_in::copy_in_turn(&mut client, &batch, turn),
        )
        .await;
        match copied {
            Ok(Ok(pos)) => {
                let _ = done.send(pos);
            }
            Ok(Err(e)) => return e,
            Err(_) => {
                return PgError::Timeout {
                    op: "copy a batch",
                    after: batch_timeout,
                };
            }
        }
    }
}
