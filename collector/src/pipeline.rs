//! The path from the listeners to the journal, bounded at every step.
//!
//! ```text
//! connection tasks ──submit(batch).await──► bounded mpsc (ingest_queue_depth batches)
//!                                             │  one blocking task ("journal-submitter")
//!                                             ▼
//!                                  Journal::submit(chunk, callback)   blocks while the
//!                                             │                       journal's queue is full
//!                                 writer thread: chain, write, fdatasync
//!                                             │
//!                      callback ──► oneshot ──► Durable::wait() in the connection: ack now
//! ```
//!
//! When the journal is slow its queue fills, the submitter blocks, the mpsc fills, and
//! `submit().await` waits: connections stop reading (back-pressure, no memory growth).
//! Batches are split into chunks within the journal's caps and queued in order, so the
//! chain keeps each connection's arrival order. A failed journal (poisoned) is fatal: the
//! error reaches every waiting connection and the server's fatal token is cancelled.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use store::journal::{Journal, JournalError, PendingEntry};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Why a batch is not durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The journal refused or failed the batch.
    #[error("journal: {0}")]
    Journal(Arc<JournalError>),
    /// The pipeline is stopping.
    #[error("the journal pipeline is closed")]
    Closed,
}

type Reply = oneshot::Sender<Result<(), PipelineError>>;

struct Job {
    entries: Vec<PendingEntry>,
    received: Instant,
    done: Reply,
}

/// A handle for submitting batches; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    metrics: Metrics,
    max_batch_entries: usize,
    max_batch_bytes: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// The answer to a submitted batch: resolves once every chunk is durable.
#[derive(Debug)]
pub struct Durable {
    chunks: Vec<oneshot::Receiver<Result<(), PipelineError>>>,
}

impl Durable {
    /// Waits until the whole batch is durable.
    ///
    /// # Errors
    /// The first chunk's error.
    pub async fn wait(self) -> Result<(), PipelineError> {
        for chunk in self.chunks {
            chunk.await.unwrap_or(Err(PipelineError::Closed))?;
        }
        Ok(())
    }
}

impl Pipeline {
    /// Starts the submitter on a blocking task; it ends once every `Pipeline` handle is
    /// dropped and the queue is drained. `fatal` is cancelled if the journal fails.
    pub fn start(
        journal: Journal,
        queue_depth: usize,
        max_batch_entries: usize,
        max_batch_bytes: usize,
        metrics: Metrics,
        fatal: CancellationToken,
    ) -> (Pipeline, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue_depth);
        let m = metrics.clone();
        let handle = tokio::task::spawn_blocking(move || submitter(journal, rx, m, fatal));
        (
            Pipeline {
                tx,
                metrics,
                max_batch_entries,
                // Room for the journal's per-request accounting.
                max_batch_bytes,
            },
            handle,
        )
    }

    /// Queues a batch for the journal (waiting while the queue is full) and returns what
    /// resolves once it is durable.
    ///
    /// # Errors
    /// [`PipelineError::Closed`] if the submitter has stopped.
    pub async fn submit(
        &self,
        entries: Vec<PendingEntry>,
        received: Instant,
    ) -> Result<Durable, PipelineError> {
        let mut chunks = Vec::new();
        let mut rest = entries.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(next) = rest.peek() {
                let len = next.canonical.len();
                if !chunk.is_empty()
                    && (chunk.len() >= self.max_batch_entries || bytes + len > self.max_batch_bytes)
                {
                    break;
                }
                bytes += len;
                if let Some(e) = rest.next() {
                    chunk.push(e);
                }
            }
            let (done, answer) = oneshot::channel();
            self.tx
                .send(Job {
                    entries: chunk,
                    received,
                    done,
                })
                .await
                .map_err(|_| PipelineError::Closed)?;
            self.metrics
                .queue_depth
                .set((self.tx.max_capacity() - self.tx.capacity()) as i64);
            chunks.push(answer);
        }
        Ok(Durable { chunks })
    }
}

fn submitter(
    journal: Journal,
    mut rx: mpsc::Receiver<Job>,
    metrics: Metrics,
    fatal: CancellationToken,
) {
    while let Some(job) = rx.blocking_recv() {
        metrics.queue_depth.set(rx.len() as i64);
        let slot: Arc<Mutex<Option<Reply>>> = Arc::new(Mutex::new(Some(job.done)));
        let in_callback = slot.clone();
        let latency = metrics.ack_latency.clone();
        let received = job.received;
        let fatal_in_callback = fatal.clone();
        let submitted = journal.submit(job.entries, move |result| {
            latency.observe(received.elapsed().as_secs_f64());
            let reply = result.map(|_| ()).map_err(|e| {
                fatal_in_callback.cancel();
                PipelineError::Journal(Arc::new(e))
            });
            let done = in_callback
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(done) = done {
                let _ = done.send(reply);
            }
        });
        if let Err(e) = submitted {
            let fatal_error = matches!(
                e,
                JournalError::Poisoned(_) | JournalError::Closed | JournalError::WriterPanicked
            );
            tracing::error!(error = %e, "journal refused a batch");
            if fatal_error {
                fatal.cancel();
            }
            let done = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(done) = done {
                let _ = done.send(Err(PipelineError::Journal(Arc::new(e))));
            }
        }
    }
    metrics.queue_depth.set(0);
}
