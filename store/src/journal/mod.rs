//! The local journal: the embedded, append-only, fsync'ed ledger every entry goes through
//! before anyone is told it is stored.
//!
//! # Invariants
//!
//! - **Acknowledged means durable.** An append returns (or its callback fires) only after
//!   the `fdatasync` that covers its records has returned. Group commit: one writer thread
//!   takes everything queued (up to `max_batch_entries` / `max_batch_bytes`), places it in
//!   the chain and writes it with one `pwrite`; a syncer thread fsyncs once for every
//!   commit written meanwhile and answers them in order, while the writer goes on.
//! - **A failed write or fsync is fatal.** The journal is poisoned: the batch and every
//!   later request fail with [`JournalError::Poisoned`]; nothing is retried (after a
//!   failed fsync the page cache may say anything). Reopening runs recovery.
//! - **One writer per directory** (an exclusive `flock` on `LOCK`); any number of
//!   [`JournalReader`]s, in this process or another, which stop at the end of the data
//!   (in-process readers from [`Journal::reader`] at the durable end).
//! - **The writer owns the chain**: appenders submit canonical entry bytes
//!   ([`proto::canonical::encode`]), digested on their own thread; the writer thread gives
//!   seq, epoch and MAC ([`proto::chain::ChainWriter`]). Seals are written by the writer
//!   only: every `seal_interval` if an entry came since the last seal (an idle journal does
//!   not grow), on [`Journal::seal_now`], on [`Journal::seal_retention_cut`] and on
//!   [`Journal::close`]. Once a seal is durable the state file is rewritten with the
//!   ratcheted key, so the sealed epoch's key is gone.
//! - **Recovery never skips silently** (see [`recovery`](self#recovery)).
//!
//! # On disk
//!
//! ```text
//! journal/
//!   state                          writer's chain id, epoch, K_epoch, seal seed (0600)
//!   verifier.key                   chain id, K_0, public key: move it off the host (0600)
//!   LOCK                           flock'ed by the writer
//!   00000000000000000000.seg       segment: records from seq 0
//!   00000000000000000000.idx       its sparse index, written when the segment closed
//!   00000000000000183412.seg       the open segment (no .idx yet)
//!   spare.seg.tmp                  the next segment, being allocated in the background
//!
//! segment  (pre-allocated: segment_bytes reserved, zeroed in the background, fsynced before use)
//!   0   magic "VIGIEJNL" | version u16 | chain_id [16] | first_seq u64 | crc32c u32
//!   38  zero padding
//!   64  record | record | … | 0u32 (end of data: the zeroes of the pre-allocation)
//!
//! record   (little-endian)
//!   len u32            bytes after the CRC: 52 + entry length (0 = end of data)
//!   crc32c u32         over everything after it
//!   seq u64 | epoch u32 | received_at i64 (unix nanos) | mac [32]
//!   entry              canonical bytes; byte 1 is the entry tag (3 = seal)
//! ```
//!
//! Writing into a pre-zeroed file changes no metadata, so `fdatasync` flushes data only
//! (about twice the throughput of appending to a growing file). The zeroes are written
//! around the page cache (`O_DIRECT`, after `fallocate`), and the writer writes whole
//! pages only (its last page again, with the new records, up to the page's end), so the
//! kernel never reads a page back to complete a write. Zeroing through the page cache
//! copied every journaled byte into it a second time: about 12% of the collector's CPU at
//! full rate (`perf`); `fallocate` alone left the blocks unwritten, and each `fdatasync`
//! reaching new blocks then committed the filesystem's journal (64-entry batches −20%,
//! README). On a disk short of bandwidth the zeroes cost more than those commits (they
//! double the bytes written): [`JournalConfig::zero_segments`] `false` reserves the blocks
//! only. The zeroes are written in the background, paced so that the writer's own I/O is
//! not queued behind a segment's worth of them, as long as they are ahead of the writer
//! (twice as far into the spare as it is into its segment); behind it, at full speed. A
//! writer that needs the spare before its zeroes are done does not wait for them: they
//! stop, and the rest of the segment is only reserved, as with `zero_segments = false`
//! (zeroes that fell behind mean a disk short of bandwidth, where they cost more than
//! they save). The records themselves are written with `O_DIRECT` too
//! ([`JournalConfig::direct_writes`], on by default), from a buffer aligned in memory: the
//! page cache held a second copy of every record and had the kernel write it back at each
//! `fdatasync` (the writer thread's system time fell about fourfold); each `fdatasync`
//! still follows, to flush the device's cache. A filesystem that refuses direct writes
//! (EINVAL, at open or at a write) gets them through the page cache. The writer rolls to a new
//! segment when the next record does not fit: it closes the full one (data fsynced, index
//! written beside it without fsync), writes and fsyncs the header of the spare, renames it
//! to `{first_seq:020}.seg` and fsyncs the directory, then starts a thread that drops the
//! full segment's pages from the page cache and allocates the next spare. Appenders wait
//! during a roll, so it holds no more fsyncs than the new segment needs: a torn or lost
//! index is caught by its CRCs and rebuilt on open.
//! The index (see `index`) holds, per block of about 64 KiB of records, the first seq,
//! offset and min/max `received_at`; it is only an accelerator, rebuilt when missing.
//!
//! # Recovery
//!
//! On [`Journal::open`]: headers must match the chain of the state file and continue each
//! other's seqs; the last segment is read whole. Where its data stops, the rest of the
//! file must be zeroes (a clean end); if it holds bytes but no valid record, that is a
//! **torn tail**: zeroed, logged with `tracing::warn!` and returned in [`Recovery`]. A
//! valid record after a bad one, a bad record in any other segment, a seq or epoch that
//! does not follow, a header of another chain: [`JournalError::Corrupt`] or
//! [`JournalError::BadHeader`], naming the segment, the byte offset and the seq. Closed
//! segments are read whole on open only when their index is missing (18 months of them
//! are not re-read at every start); every scan checks every record it reads.
//!
//! The chain head is the one after the last record. The state file's key is ratcheted
//! forward if the journal holds seals it has not seen (a crash between a seal and the
//! state file); a key **ahead** of the journal means entries the key saw are gone, and
//! the writer refuses to start ([`JournalError::KeyAhead`]).
//!
//! # Retention
//!
//! Old segments go only behind a retention-cut seal (the drawing is in `retention.rs`):
//! [`Journal::seal_retention_cut`] writes
//! `RetentionCut { cut_seq, cut_prev_mac, cut_epoch }` through the writer thread, and
//! [`Journal::drop_segments_before`] deletes whole closed segments, oldest first, only
//! when the journal holds a retention-cut seal whose `cut_seq` is the first seq of the
//! first segment kept. The journal then starts after seq 0 and still verifies on its own:
//! `proto::verify` takes the first record for the cut and checks it against the seal.
//! Recovery and readers take the first segment's `first_seq` as the start.
//! [`Journal::seal_retention_cut_as`] writes the cut another ledger of the chain asks for
//! (PostgreSQL cuts at partition boundaries, possibly where the journal no longer reaches).
//!
//! A torn write at power loss can persist a later page of the last, unacknowledged batch
//! but not an earlier one: recovery then sees a valid record after a bad one and reports
//! corruption rather than guess (no acknowledged entry is ever dropped quietly). Bit rot
//! in the very last record is indistinguishable from a torn write and is truncated with
//! a warning.

mod cursor;
mod error;
mod files;
mod format;
mod index;
mod keys;
mod reader;
mod recovery;
mod retention;
mod syncer;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use proto::chain::{ChainError, ChainHead, ChainWriter, EpochKey, Link, SealSigner};
use time::OffsetDateTime;

pub use error::{Corruption, HeaderFault, JournalError};

pub use files::VERIFIER_FILE;
pub use format::MAX_ENTRY_BYTES_LIMIT;
pub use keys::{VerifierKeys, init};
pub use reader::{JournalReader, Scan};
pub use retention::DroppedSegments;
pub use writer::Spent;

use error::io;
use files::{DATA_MODE, LOCK_FILE};
use keys::WriterState;
use writer::{Prepared, Request, Settings, Shared, Writer};

/// What one group commit did, as told to a [`CommitObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    /// Entries made durable (seals included).
    pub entries: usize,
    /// Bytes written.
    pub bytes: usize,
    /// Time the `fdatasync` took.
    pub sync: Duration,
}

/// Called on the writer thread after each group commit (for metrics): keep it short and
/// never call the journal from it.
#[derive(Clone)]
pub struct CommitObserver(Arc<dyn Fn(CommitReport) + Send + Sync>);

impl CommitObserver {
    /// An observer calling `f` after each commit.
    pub fn new(f: impl Fn(CommitReport) + Send + Sync + 'static) -> Self {
        CommitObserver(Arc::new(f))
    }

    pub(crate) fn observe(&self, report: CommitReport) {
        (self.0)(report);
    }
}

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}

/// How a journal is written.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The journal directory, made by [`init`].
    pub dir: PathBuf,
    /// Size of a segment file (default 64 MiB).
    pub segment_bytes: u64,
    /// Most entries in one group commit (default 4,096); also the cap of one request.
    pub max_batch_entries: usize,
    /// Most bytes of entries in one group commit (default 4 MiB); also the cap of one
    /// request.
    pub max_batch_bytes: usize,
    /// Requests waiting for the writer before submitters block (default 1,024).
    pub queue_depth: usize,
    /// Time between checkpoint seals while entries come (default 60 s; `None`: only on
    /// [`Journal::seal_now`] and [`Journal::close`]).
    pub seal_interval: Option<Duration>,
    /// Largest canonical entry accepted (default 1 MiB, at most
    /// [`MAX_ENTRY_BYTES_LIMIT`]).
    pub max_entry_bytes: usize,
    /// Told about every group commit (fsync time, entries, bytes), for metrics.
    pub on_commit: Option<CommitObserver>,
    /// Write records with `O_DIRECT` (default `true`): around the page cache, which would
    /// otherwise hold a second copy of every record, written back by the kernel at each
    /// `fdatasync`. Where the filesystem refuses direct writes, the writer goes through
    /// the page cache whatever this says.
    pub direct_writes: bool,
    /// Write a new segment's zeroes before using it (default `true`), so that writing
    /// records into it changes no file metadata. With `false` its blocks are only reserved
    /// (`fallocate`): half the bytes reach the disk, but each `fdatasync` that reaches new
    /// blocks also commits the filesystem's journal. Which is faster depends on the disk:
    /// see README's measurements. With `true`, zeroes not done when the writer needs the
    /// segment stop there, and its rest is only reserved.
    pub zero_segments: bool,
    /// Fault injection: the n-th data `fdatasync` of this writer (from 0) fails.
    #[cfg(test)]
    pub(crate) fail_sync_at: Option<u64>,
    /// Fault injection: the n-th direct write of this writer (from 0) is refused (EINVAL).
    #[cfg(test)]
    pub(crate) refuse_direct_write_at: Option<u64>,
    /// Tests: the spare's zeroes rest after their first chunk until the writer needs it.
    #[cfg(test)]
    pub(crate) hold_zeroes: bool,
}

impl JournalConfig {
    /// The defaults, for the journal in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            max_batch_entries: 4096,
            max_batch_bytes: 4 << 20,
            queue_depth: 1024,
            seal_interval: Some(Duration::from_secs(60)),
            max_entry_bytes: 1 << 20,
            on_commit: None,
            direct_writes: true,
            zero_segments: true,
            #[cfg(test)]
            fail_sync_at: None,
            #[cfg(test)]
            refuse_direct_write_at: None,
            #[cfg(test)]
            hold_zeroes: false,
        }
    }

    fn check(&self) -> Result<(), JournalError> {
        let fail = |what: String| Err(JournalError::Config(what));
        if self.max_entry_bytes < format::MIN_ENTRY_BYTES
            || self.max_entry_bytes > MAX_ENTRY_BYTES_LIMIT
        {
            return fail(format!(
                "max_entry_bytes {} is not between {} and {MAX_ENTRY_BYTES_LIMIT}",
                self.max_entry_bytes,
                format::MIN_ENTRY_BYTES
            ));
        }
        let smallest = format::HEADER_BYTES + format::record_bytes(self.max_entry_bytes.max(256));
        if self.segment_bytes < smallest {
            return fail(format!(
                "segment_bytes {} cannot hold an entry of max_entry_bytes {} ({smallest} needed)",
                self.segment_bytes, self.max_entry_bytes
            ));
        }
        if self.max_batch_entries == 0 || self.queue_depth == 0 {
            return fail("max_batch_entries and queue_depth must be at least 1".into());
        }
        if self.max_batch_bytes < self.max_entry_bytes {
            return fail(format!(
                "max_batch_bytes {} is smaller than max_entry_bytes {}",
                self.max_batch_bytes, self.max_entry_bytes
            ));
        }
        if self.seal_interval == Some(Duration::ZERO) {
            return fail("seal_interval must not be zero".into());
        }
        Ok(())
    }
}

/// An entry to append: its canonical bytes and when the collector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// [`proto::canonical::encode`] of the entry (not a seal: seals are the writer's).
    pub canonical: Vec<u8>,
    /// When it was received, by the collector's clock (indexed for time scans).
    pub received_at: OffsetDateTime,
}

/// A batch checked and digested by [`Journal::prepare`], for [`Journal::submit_prepared`]
/// of the same journal.
pub struct PreparedBatch {
    chain_id: [u8; 16],
    entries: Vec<Prepared>,
}

impl PreparedBatch {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for PreparedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// An entry read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its place in the chain.
    pub link: Link,
    /// When it was received (UTC).
    pub received_at: OffsetDateTime,
    /// Its canonical bytes.
    pub canonical: Vec<u8>,
}

impl StoredEntry {
    /// Whether the entry is a seal (without decoding it).
    pub fn is_seal(&self) -> bool {
        format::is_seal(&self.canonical)
    }
}

impl From<StoredEntry> for proto::verify::Record {
    fn from(e: StoredEntry) -> Self {
        proto::verify::Record {
            link: e.link,
            body: proto::verify::Body::Full(e.canonical),
        }
    }
}

/// What [`Journal::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the chain continues.
    pub head: ChainHead,
    /// Segment files.
    pub segments: usize,
    /// The torn tail truncated, if any.
    pub torn_tail: Option<TornTail>,
    /// `(from, to)` epochs when the state file's key was behind the journal and was
    /// ratcheted forward (a crash between a seal and the state file).
    pub key_ratcheted: Option<(u32, u32)>,
    /// Index files rebuilt because they were missing or damaged.
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Temporary files a crash left behind, removed.
    pub removed_temp_files: Vec<PathBuf>,
}

/// A torn tail found and truncated by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub segment: PathBuf,
    /// Where its data now ends.
    pub offset: u64,
    /// Bytes zeroed after it.
    pub discarded_bytes: u64,
    /// The seq the next entry gets.
    pub next_seq: u64,
}

/// The writer of a journal: a cheap, cloneable handle to its writer thread.
///
/// Dropping the last handle without [`Journal::close`] loses nothing acknowledged (it is
/// fsynced): the thread writes what is queued, stops without a closing seal, and the drop
/// waits for it.
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: RwLock<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    dir: PathBuf,
    chain_id: [u8; 16],
    max_entry_bytes: usize,
    max_batch_entries: usize,
    max_batch_bytes: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(
            self.tx
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // A handle dropped by a callback on the writer thread itself cannot wait for it.
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id())
            && thread.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "journal writer thread panicked");
        }
    }
}

impl Journal {
    /// Opens the journal in `config.dir` for writing: locks it, runs recovery and starts
    /// the writer thread.
    ///
    /// # Errors
    /// [`JournalError::Locked`] if another writer holds it, [`JournalError::Corrupt`] /
    /// [`JournalError::BadHeader`] for damage recovery must not repair,
    /// [`JournalError::KeyAhead`] if the state file is ahead of the journal,
    /// [`JournalError::Config`] for an unusable configuration, [`JournalError::Io`].
    pub fn open(config: JournalConfig) -> Result<(Journal, Recovery), JournalError> {
        config.check()?;
        let dir = config.dir.clone();
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(DATA_MODE)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(JournalError::Locked { dir });
            }
            Err(e) => return Err(io("lock", &lock_path)(e.into())),
        }
        let state = WriterState::read(&dir)?;
        let removed_temp_files = files::remove_temp_files(&dir)?;
        let recovered = recovery::recover(&dir, state.chain_id, config.segment_bytes)?;
        let head = recovered.head;
        let key = EpochKey::new(state.epoch, *state.key);
        let signer = SealSigner::from_seed(*state.seed);
        let chain = ChainWriter::new(head, key, signer).map_err(|e| match e {
            ChainError::KeyAhead {
                key_epoch,
                head_epoch,
            } => JournalError::KeyAhead {
                path: WriterState::path(&dir),
                key_epoch,
                head_epoch,
            },
        })?;
        let mut key_ratcheted = None;
        if state.epoch < head.epoch {
            WriterState {
                epoch: chain.key().epoch(),
                key: zeroize::Zeroizing::new(*chain.key().secret()),
                ..state.clone()
            }
            .write(&dir)?;
            tracing::warn!(
                from = state.epoch,
                to = head.epoch,
                "journal key ratcheted forward"
            );
            key_ratcheted = Some((state.epoch, head.epoch));
        }
        let recovery = Recovery {
            head,
            segments: recovered.segments,
            torn_tail: recovered.torn_tail,
            key_ratcheted,
            rebuilt_indexes: recovered.rebuilt_indexes,
            removed_temp_files,
        };
        tracing::info!(
            dir = %dir.display(),
            next_seq = head.next_seq,
            epoch = head.epoch,
            segments = recovery.segments,
            "journal opened"
        );
        let shared = Arc::new(Shared {
            head: Mutex::new(head),
            fatal: OnceLock::new(),
        });
        let settings = Settings {
            dir: dir.clone(),
            segment_bytes: config.segment_bytes,
            max_batch_entries: config.max_batch_entries,
            max_batch_bytes: config.max_batch_bytes,
            seal_interval: config.seal_interval,
            on_commit: config.on_commit.clone(),
            direct_writes: config.direct_writes,
            zero_segments: config.zero_segments,
            #[cfg(test)]
            faults: syncer::SyncFaults::failing_at(config.fail_sync_at),
            #[cfg(not(test))]
            faults: syncer::SyncFaults::default(),
            #[cfg(test)]
            refuse_direct_write_at: config.refuse_direct_write_at,
            #[cfg(test)]
            hold_zeroes: config.hold_zeroes,
        };
        let writer = Writer::new(
            settings,
            chain,
            state.seed.clone(),
            recovered.open,
            recovered.sealed,
            shared.clone(),
            lock,
        )?;
        let (tx, rx) = sync_channel(config.queue_depth);
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io("start the writer thread for", &dir))?;
        let journal = Journal {
            inner: Arc::new(Inner {
                tx: RwLock::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                shared,
                dir,
                chain_id: head.chain_id,
                max_entry_bytes: config.max_entry_bytes,
                max_batch_entries: config.max_batch_entries,
                max_batch_bytes: config.max_batch_bytes,
            }),
        };
        Ok((journal, recovery))
    }

    /// Appends a batch and blocks until it is durable; returns each entry's link, in order.
    ///
    /// # Errors
    /// As [`Journal::submit`], and any error the writer answers with.
    pub fn append(&self, batch: Vec<PendingEntry>) -> Result<Vec<Link>, JournalError> {
        let (tx, rx) = sync_channel(1);
        self.submit(batch, move |r| {
            // The receiver waits below; if it is gone there is nobody to tell.
            let _ = tx.send(r);
        })?;
        rx.recv().unwrap_or(Err(JournalError::WriterPanicked))
    }

    /// Queues a batch; `done` is called with the links once it is durable (or with the
    /// error that stopped it). Blocks only while the queue is full (back-pressure).
    ///
    /// `done` runs on the writer thread: keep it short and never call the journal from it.
    /// If `submit` returns an error, `done` is never called.
    ///
    /// # Errors
    /// [`JournalError::InvalidEntry`] (not canonical, a seal, too large, `received_at` out
    /// of range), [`JournalError::BatchTooLarge`], [`JournalError::Closed`],
    /// [`JournalError::Poisoned`].
    pub fn submit(
        &self,
        batch: Vec<PendingEntry>,
        done: impl FnOnce(Result<Vec<Link>, JournalError>) + Send + 'static,
    ) -> Result<(), JournalError> {
        self.submit_returning(batch, move |result, _entries| done(result))
    }

    /// As [`Journal::submit`], and `done` is also handed the batch's entries, for the
    /// appender to drop on its own thread (see [`Spent`]).
    ///
    /// # Errors
    /// As [`Journal::submit`].
    pub fn submit_returning(
        &self,
        batch: Vec<PendingEntry>,
        done: impl FnOnce(Result<Vec<Link>, JournalError>, Spent) + Send + 'static,
    ) -> Result<(), JournalError> {
        self.check_open()?;
        let batch = self.prepare(batch)?;
        self.submit_prepared(batch, done)
    }

    /// Checks a batch as [`Journal::submit`] does and takes each entry's SHA-256 digest,
    /// on the caller's thread, without queueing it.
    ///
    /// An appender that hands batches to another thread for [`Journal::submit_prepared`]
    /// prepares them where their bytes were just written: the digest then reads them from
    /// this core's cache, not across cores.
    ///
    /// # Errors
    /// [`JournalError::InvalidEntry`] (not canonical, a seal, too large, `received_at` out
    /// of range), [`JournalError::BatchTooLarge`].
    pub fn prepare(&self, batch: Vec<PendingEntry>) -> Result<PreparedBatch, JournalError> {
        let bytes: usize = batch.iter().map(|e| e.canonical.len()).sum();
        if batch.len() > self.inner.max_batch_entries || bytes > self.inner.max_batch_bytes {
            return Err(JournalError::BatchTooLarge {
                entries: batch.len(),
                bytes,
                max_entries: self.inner.max_batch_entries,
                max_bytes: self.inner.max_batch_bytes,
            });
        }
        let entries = batch
            .into_iter()
            .enumerate()
            .map(|(index, e)| {
                let refuse = |what: String| JournalError::InvalidEntry { index, what };
                let len = e.canonical.len();
                if len > self.inner.max_entry_bytes {
                    return Err(refuse(format!(
                        "{len} bytes, over max_entry_bytes {}",
                        self.inner.max_entry_bytes
                    )));
                }
                match e.canonical.get(..2) {
                    Some(&[proto::canonical::VERSION, 1 | 2]) => {}
                    Some(&[proto::canonical::VERSION, 3]) => {
                        return Err(refuse("seals are written by the journal only".into()));
                    }
                    _ => return Err(refuse("not a canonical event or declaration".into())),
                }
                let received_nanos = i64::try_from(e.received_at.unix_timestamp_nanos())
                    .map_err(|_| refuse("received_at out of range".into()))?;
                let digest = proto::chain::digest(&e.canonical);
                Ok(Prepared {
                    canonical: e.canonical,
                    received_nanos,
                    digest,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedBatch {
            chain_id: self.inner.chain_id,
            entries,
        })
    }

    /// Queues a batch made by [`Journal::prepare`] of this journal, as
    /// [`Journal::submit_returning`] does.
    ///
    /// # Errors
    /// [`JournalError::InvalidEntry`] if the batch was prepared by another journal (its
    /// caps may differ), [`JournalError::Closed`], [`JournalError::Poisoned`].
    pub fn submit_prepared(
        &self,
        batch: PreparedBatch,
        done: impl FnOnce(Result<Vec<Link>, JournalError>, Spent) + Send + 'static,
    ) -> Result<(), JournalError> {
        self.check_open()?;
        if batch.chain_id != self.inner.chain_id {
            return Err(JournalError::InvalidEntry {
                index: 0,
                what: "the batch was prepared by another journal".into(),
            });
        }
        let entries = batch.entries;
        if entries.is_empty() {
            done(Ok(Vec::new()), Spent(entries));
            return Ok(());
        }
        self.send(Request::Append {
            entries,
            done: Box::new(done),
        })
    }

    /// Writes a checkpoint seal now and returns its link once it is durable and the state
    /// file holds the ratcheted key.
    ///
    /// # Errors
    /// [`JournalError::Closed`], [`JournalError::Poisoned`].
    pub fn seal_now(&self) -> Result<Link, JournalError> {
        self.check_open()?;
        let (tx, rx) = sync_channel(1);
        self.send(Request::Seal {
            kind: proto::model::SealKind::Checkpoint,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })?;
        rx.recv().unwrap_or(Err(JournalError::WriterPanicked))
    }

    /// The chain head after the last durable entry.
    pub fn head(&self) -> ChainHead {
        self.inner.shared.durable_head()
    }

    /// The chain's identifier.
    pub fn chain_id(&self) -> [u8; 16] {
        self.inner.chain_id
    }

    /// A reader that sees only durable entries of this journal.
    pub fn reader(&self) -> JournalReader {
        JournalReader::bounded(
            self.inner.dir.clone(),
            self.inner.chain_id,
            self.inner.shared.clone(),
        )
    }

    /// Writes what is queued, a closing seal, the state file, and stops the writer thread.
    /// Other handles get [`JournalError::Closed`] afterwards.
    ///
    /// # Errors
    /// [`JournalError::Closed`] if already closed, [`JournalError::Poisoned`],
    /// [`JournalError::WriterPanicked`].
    pub fn close(self) -> Result<(), JournalError> {
        let tx = self
            .inner
            .tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(JournalError::Closed)?;
        let (reply_tx, reply_rx) = sync_channel(1);
        let sent = tx.send(Request::Close {
            done: Box::new(move |r| {
                let _ = reply_tx.send(r);
            }),
        });
        drop(tx);
        let result = match sent {
            Ok(()) => reply_rx.recv().unwrap_or(Err(JournalError::WriterPanicked)),
            Err(_) => Err(self.stopped_error()),
        };
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            thread.join().map_err(|_| JournalError::WriterPanicked)?;
        }
        result
    }

    fn check_open(&self) -> Result<(), JournalError> {
        match self.inner.shared.fatal.get() {
            Some(cause) => Err(JournalError::Poisoned(cause.clone())),
            None => Ok(()),
        }
    }

    fn stopped_error(&self) -> JournalError {
        match self.inner.shared.fatal.get() {
            Some(cause) => JournalError::Poisoned(cause.clone()),
            None => JournalError::WriterPanicked,
        }
    }

    fn send(&self, request: Request) -> Result<(), JournalError> {
        let tx = self.inner.tx.read().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else {
            return Err(JournalError::Closed);
        };
        tx.send(request).map_err(|_| self.stopped_error())
    }
}
