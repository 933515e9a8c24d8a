//! The path from the listeners to the journal, bounded at every step.
//!
//! ```text
//! connection tasks ──submit(batch).await──► bounded mpsc (ingest_queue_depth batches)
//!   (each chunk checked and digested             │  one blocking task ("journal-submitter")
//!    by Journal::prepare, in the task)           ▼
//!                            Journal::submit_prepared(chunk, callback)   blocks while the
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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use store::journal::{Journal, JournalError, PendingEntry, PreparedBatch, Spent};
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

/// A chunk's answer, with its entries for the connection to free (see [`Spent`]).
type Answer = (Result<(), PipelineError>, Option<Spent>);
type Reply = oneshot::Sender<Answer>;

struct Job {
    entries: PreparedBatch,
    received: Instant,
    done: Reply,
}

/// A handle for submitting batches; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    /// For [`Journal::prepare`] in the connection's task.
    journal: Journal,
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
    chunks: VecDeque<oneshot::Receiver<Answer>>,
}

impl Durable {
    /// Waits until the whole batch is durable.
    ///
    /// The entries are freed here, in the connection's task (on a runtime thread, as when
    /// they were allocated), not on the journal's writer thread.
    ///
    /// # Errors
    /// The first chunk's error.
    pub async fn wait(self) -> Result<(), PipelineError> {
        for chunk in self.chunks {
            let (result, _entries) = chunk.await.unwrap_or((Err(PipelineError::Closed), None));
            result?;
        }
        Ok(())
    }

    /// The batch's outcome if every chunk has been answered; `None` while one has not.
    ///
    /// # Errors
    /// The first chunk's error (inside the `Some`).
    pub fn try_wait(&mut self) -> Option<Result<(), PipelineError>> {
        while let Some(chunk) = self.chunks.front_mut() {
            let (result, _entries) = match chunk.try_recv() {
                Ok(answer) => answer,
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => (Err(PipelineError::Closed), None),
            };
            self.chunks.pop_front();
            if let Err(e) = result {
                return Some(Err(e));
            }
        }
        Some(Ok(()))
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
        let submitting = journal.clone();
        let handle = tokio::task::spawn_blocking(move || submitter(submitting, rx, m, fatal));
        (
            Pipeline {
                tx,
                journal,
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
    /// Each chunk is checked and its entries digested here, on the caller's thread, where
    /// their bytes were just written. A chunk the journal refuses (an entry not canonical
    /// or too large) answers with that error; the other chunks go on.
    ///
    /// # Errors
    /// [`PipelineError::Closed`] if the submitter has stopped.
    pub async fn submit(
        &self,
        entries: Vec<PendingEntry>,
        received: Instant,
    ) -> Result<Durable, PipelineError> {
        let mut chunks = VecDeque::new();
        for chunk in split(entries, self.max_batch_entries, self.max_batch_bytes) {
            let (done, answer) = oneshot::channel();
            chunks.push_back(answer);
            let entries = match self.journal.prepare(chunk) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::error!(error = %e, "journal refused a batch");
                    let _ = done.send((Err(PipelineError::Journal(Arc::new(e))), None));
                    continue;
                }
            };
            self.tx
                .send(Job {
                    entries,
                    received,
                    done,
                })
                .await
                .map_err(|_| PipelineError::Closed)?;
            self.metrics
                .queue_depth
                .set((self.tx.max_capacity() - self.tx.capacity()) as i64);
        }
        Ok(Durable { chunks })
    }
}

/// Splits a batch into chunks within the journal's caps, in order; a single entry over
/// `max_bytes` makes a chunk of its own (the journal judges it). A batch within the caps,
/// the usual case, is returned as it is, without moving its entries.
fn split(
    mut entries: Vec<PendingEntry>,
    max_entries: usize,
    max_bytes: usize,
) -> Vec<Vec<PendingEntry>> {
    let mut starts = Vec::new();
    let (mut count, mut bytes) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        let len = e.canonical.len();
        if count > 0 && (count >= max_entries || bytes + len > max_bytes) {
            starts.push(i);
            (count, bytes) = (0, 0);
        }
        count += 1;
        bytes += len;
    }
    // Split from the end, so that each entry is moved at most once.
    let mut chunks = Vec::with_capacity(starts.len() + 1);
    for &at in starts.iter().rev() {
        chunks.push(entries.split_off(at));
    }
    if !entries.is_empty() {
        chunks.push(entries);
    }
    chunks.reverse();
    chunks
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
        let durable = metrics.durable.clone();
        let received = job.received;
        let fatal_in_callback = fatal.clone();
        // The entries go back with the answer, to be freed by the connection that
        // allocated them rather than by the writer thread.
        let submitted = journal.submit_prepared(job.entries, move |result, entries| {
            latency.observe(received.elapsed().as_secs_f64());
            if let Ok(links) = &result {
                durable.inc_by(links.len() as u64);
            }
            let reply = result.map(|_| ()).map_err(|e| {
                fatal_in_callback.cancel();
                PipelineError::Journal(Arc::new(e))
            });
            let done = in_callback
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(done) = done {
                let _ = done.send((reply, Some(entries)));
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
                let _ = done.send((Err(PipelineError::Journal(Arc::new(e))), None));
            }
        }
    }
    metrics.queue_depth.set(0);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::profiles::Profile;
    use store::journal::JournalConfig;
    use time::OffsetDateTime;

    use super::*;
    use crate::ingest::{Source, accept};

    fn entries(n: usize) -> Vec<PendingEntry> {
        let source = Source {
            name: "bastion.chu-x.fr".into(),
            tenants: vec!["CHU-X".into()],
            default_tenant: "CHU-X".into(),
            profiles: Profile::builtins(),
        };
        let ctx =
            proto::syslog::ParseContext::europe_paris(OffsetDateTime::now_utc()).expect("zone");
        (0..n)
            .map(|i| {
                let raw = format!(
                    "<86>1 2026-03-01T10:00:0{i}+01:00 bastion sshd 812 - - Accepted publickey for alice from 203.0.113.7 port 5112{i} ssh2"
                );
                accept(raw.as_bytes(), &source, &ctx).expect("accepted").entry
            })
            .collect()
    }

    #[test]
    fn split_keeps_order_within_the_caps() {
        let sized = |lens: &[usize]| -> Vec<PendingEntry> {
            lens.iter()
                .map(|&len| PendingEntry {
                    canonical: vec![0; len],
                    received_at: OffsetDateTime::UNIX_EPOCH,
                })
                .collect()
        };
        let lens = |chunks: Vec<Vec<PendingEntry>>| -> Vec<Vec<usize>> {
            chunks
                .iter()
                .map(|c| c.iter().map(|e| e.canonical.len()).collect())
                .collect()
        };
        assert!(split(Vec::new(), 2, 100).is_empty());
        // Within the caps: one chunk, the same vector.
        let batch = sized(&[1, 2, 3]);
        let at = batch.as_ptr();
        let chunks = split(batch, 3, 6);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].as_ptr(), at, "not moved");
        // The entry cap.
        assert_eq!(
            lens(split(sized(&[1, 2, 3, 4, 5]), 2, 100)),
            [vec![1, 2], vec![3, 4], vec![5]]
        );
        // The byte cap; an entry over it alone.
        assert_eq!(
            lens(split(sized(&[4, 5, 20, 1, 1, 9]), 10, 10)),
            [vec![4, 5], vec![20], vec![1, 1], vec![9]]
        );
    }

    /// A pipeline over a new journal in `dir`, two entries per chunk, and a reader of it.
    fn started(
        dir: &std::path::Path,
        fatal: CancellationToken,
    ) -> (
        Pipeline,
        tokio::task::JoinHandle<()>,
        store::journal::JournalReader,
    ) {
        store::journal::init(dir).expect("init");
        let mut config = JournalConfig::new(dir);
        config.seal_interval = None;
        let (journal, _) = Journal::open(config).expect("open");
        let reader = journal.reader();
        let metrics = Metrics::new().expect("metrics");
        let (pipeline, submitter) = Pipeline::start(journal, 4, 2, 1 << 20, metrics, fatal);
        (pipeline, submitter, reader)
    }

    #[tokio::test]
    async fn try_wait_answers_once_every_chunk_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Two entries per chunk: five entries make three chunks.
        let (pipeline, submitter, reader) = started(dir.path(), CancellationToken::new());
        let mut durable = pipeline
            .submit(entries(5), Instant::now())
            .await
            .expect("submitted");
        assert_eq!(durable.chunks.len(), 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        let answered = loop {
            if let Some(answered) = durable.try_wait() {
                break answered;
            }
            assert!(Instant::now() < deadline, "not durable within 10 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        answered.expect("durable");
        assert!(durable.chunks.is_empty(), "every chunk's answer was taken");
        assert!(matches!(durable.try_wait(), Some(Ok(()))));
        assert_eq!(
            reader.scan_seq(0..=u64::MAX).count(),
            5,
            "all five are in the journal"
        );
        drop(pipeline);
        submitter.await.expect("submitter ends");
    }

    #[tokio::test]
    async fn a_refused_chunk_answers_with_the_error_and_the_others_are_filed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fatal = CancellationToken::new();
        let (pipeline, submitter, reader) = started(dir.path(), fatal.clone());
        // Chunks [0, 1], [not canonical, 3], [4].
        let mut batch = entries(5);
        batch[2].canonical = b"not canonical".to_vec();
        let kept: Vec<Vec<u8>> = [0, 1, 4].map(|i| batch[i].canonical.clone()).into();
        let durable = pipeline
            .submit(batch, Instant::now())
            .await
            .expect("submitted");
        let refused = durable
            .wait()
            .await
            .expect_err("the second chunk is refused");
        assert!(
            matches!(&refused, PipelineError::Journal(e)
                if matches!(**e, JournalError::InvalidEntry { index: 0, .. })),
            "{refused}"
        );
        // A batch after it is durable only once the third chunk is.
        pipeline
            .submit(entries(1), Instant::now())
            .await
            .expect("submitted")
            .wait()
            .await
            .expect("durable");
        let filed: Vec<_> = reader
            .scan_seq(0..=u64::MAX)
            .map(|e| e.expect("readable").canonical)
            .collect();
        assert_eq!(filed.len(), 4, "0, 1, 4 and the later one");
        assert_eq!(filed[..3], kept[..]);
        assert!(!fatal.is_cancelled(), "a refused entry is not fatal");
        drop(pipeline);
        submitter.await.expect("submitter ends");
    }
}
