//! The writer thread: group commit, seals, segment rolls, poisoning.
//!
//! It takes the first request from the bounded queue, then whatever else is queued (up to
//! the batch caps), places every entry in the chain, encodes all records into one buffer
//! and writes it with one `pwrite`. A commit of appends only is then handed to the syncer
//! thread ([`super::syncer`]), which makes it durable with one `fdatasync` and answers it
//! while this thread goes on with the next commit. A commit with a seal, or a close, waits
//! for the syncer to be idle and is made durable and answered here, so that the state file
//! follows the seal. Any failed write or fsync poisons the journal: the batch and every
//! later request get [`JournalError::Poisoned`]; nothing is retried.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::chain::{ChainHead, ChainWriter, Digest, Link};
use proto::model::SealKind;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::error::{JournalError, io};
use super::files::{self, SPARE_FILE};
use super::format::{self, HEADER_BYTES, SegmentHeader};
use super::index::SegmentIndex;
use super::keys::WriterState;
use super::recovery::{self, OpenSegment};
use super::syncer::{Answer, SyncFaults, SyncTarget, Syncer, Ticket};

/// Room kept for a seal record: a checkpoint seal is 139 bytes, a retention cut 183.
const MAX_SEAL_BYTES: usize = 256;

/// How an answer reaches an appender.
pub(crate) type Reply<T> = Box<dyn FnOnce(Result<T, JournalError>) + Send>;

/// How an append's answer reaches its appender, with the batch's buffers.
pub(crate) type AppendReply = Box<dyn FnOnce(Result<Vec<Link>, JournalError>, Spent) + Send>;

/// The entries of an appended batch, handed back with its answer.
///
/// Dropping it frees the entries' buffers. An appender that allocated them on another
/// thread than the writer's drops it there: with a thread-caching allocator, a buffer freed
/// by the thread that allocated it is a local free, where the writer thread's free of it
/// is a cross-thread one (it cost a quarter of the writer thread's CPU at full rate).
pub struct Spent(pub(crate) Vec<Prepared>);

impl Spent {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spent")
            .field("entries", &self.0.len())
            .finish()
    }
}

/// An entry checked and digested by its appender, ready for the chain.
pub(crate) struct Prepared {
    pub(crate) canonical: Vec<u8>,
    pub(crate) received_nanos: i64,
    pub(crate) digest: Digest,
}

/// What appenders ask of the writer thread.
pub(crate) enum Request {
    Append {
        entries: Vec<Prepared>,
        done: AppendReply,
    },
    /// A seal of `kind` (a checkpoint, or a retention cut checked by the handle).
    Seal {
        kind: SealKind,
        done: Reply<Link>,
    },
    Close {
        done: Reply<()>,
    },
}

impl Request {
    fn fail(self, error: impl Fn() -> JournalError) {
        match self {
            Request::Append { entries, done } => done(Err(error()), Spent(entries)),
            Request::Seal { done, .. } => done(Err(error())),
            Request::Close { done } => done(Err(error())),
        }
    }

    fn weight(&self) -> (usize, usize) {
        match self {
            Request::Append { entries, .. } => (
                entries.len(),
                entries.iter().map(|e| e.canonical.len()).sum(),
            ),
            Request::Seal { .. } | Request::Close { .. } => (1, MAX_SEAL_BYTES),
        }
    }
}

/// What the writer thread shares with the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The head after the last durable entry.
    pub(crate) head: Mutex<ChainHead>,
    /// Set once, by the first failure.
    pub(crate) fatal: OnceLock<Arc<JournalError>>,
}

impl Shared {
    /// Makes `head` the durable head (after the `fdatasync` that covers it).
    pub(crate) fn publish(&self, head: ChainHead) {
        *self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
    }

    /// Poisons the journal with `error` unless a failure came first; the first cause.
    pub(crate) fn poison(&self, error: JournalError) -> Arc<JournalError> {
        self.fatal.get_or_init(|| Arc::new(error)).clone()
    }

    pub(crate) fn durable_head(&self) -> ChainHead {
        *self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The writer thread's settings.
pub(crate) struct Settings {
    pub(crate) dir: PathBuf,
    pub(crate) segment_bytes: u64,
    pub(crate) max_batch_entries: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) seal_interval: Option<Duration>,
    pub(crate) on_commit: Option<super::CommitObserver>,
    /// Records are written with `O_DIRECT` where the filesystem allows it.
    pub(crate) direct_writes: bool,
    /// New segments are zeroed before use (else only reserved).
    pub(crate) zero_segments: bool,
    /// Fault injection: the n-th `fdatasync` of segment data (from 0) fails.
    pub(crate) faults: SyncFaults,
    /// Fault injection: the n-th direct write (from 0) is refused with EINVAL.
    #[cfg(test)]
    pub(crate) refuse_direct_write_at: Option<u64>,
    /// Tests: the spare's zeroes wait for the writer (see [`files::Pace`]).
    #[cfg(test)]
    pub(crate) hold_zeroes: bool,
}

/// The writer thread's state.
pub(crate) struct Writer {
    settings: Settings,
    chain: ChainWriter,
    seed: Zeroizing<[u8; 32]>,
    seg: OpenSegment,
    /// The segment's bytes from `buf_at` (a page boundary): those of its last written
    /// page up to `seg.end`, then the records not yet written.
    buf: files::AlignedBuf,
    buf_at: u64,
    /// The open segment opened again with `O_DIRECT`, when direct writes are on and the
    /// filesystem takes them.
    direct: Option<files::DirectFile>,
    /// Written but not yet fsynced (nor handed to the syncer).
    unsynced: bool,
    /// The open segment, for the syncer.
    sync_target: Arc<SyncTarget>,
    /// `None` if its thread could not be started: commits are then synced here.
    syncer: Option<Syncer>,
    /// Records and bytes since the last fsync, for the commit observer.
    batch_entries: usize,
    batch_bytes: usize,
    spare: Option<JoinHandle<Result<File, JournalError>>>,
    /// What paces the spare's zeroes: how far this segment is filled, and whether the
    /// writer waits for the spare.
    spare_pace: Arc<files::Pace>,
    shared: Arc<Shared>,
    next_seal: Option<Instant>,
    /// Entries since the last seal.
    dirty: bool,
    /// A seal was placed in the current batch: the state file follows the fsync.
    sealed: bool,
    /// Holds the directory lock while the thread runs.
    _lock: File,
    #[cfg(test)]
    direct_writes: u64,
}

enum Wake {
    Request(Request),
    SealDue,
    Disconnected,
}

enum Flow {
    Continue,
    Stop,
    Poisoned(Arc<JournalError>),
}

impl Writer {
    pub(crate) fn new(
        settings: Settings,
        chain: ChainWriter,
        seed: Zeroizing<[u8; 32]>,
        seg: OpenSegment,
        sealed: bool,
        shared: Arc<Shared>,
        lock: File,
    ) -> Result<Self, JournalError> {
        let next_seal = settings.seal_interval.map(|i| Instant::now() + i);
        let (buf_at, tail) = written_tail(&seg)?;
        let buf = files::AlignedBuf::new(&tail, settings.max_batch_bytes + 2 * PAGE as usize);
        let direct = open_direct(&settings, &seg.path);
        let sync_target = Arc::new(sync_target(&seg)?);
        let syncer = Syncer::start(
            shared.clone(),
            settings.on_commit.clone(),
            settings.faults.clone(),
        );
        let mut writer = Writer {
            settings,
            chain,
            seed,
            seg,
            buf,
            buf_at,
            direct,
            unsynced: false,
            sync_target,
            syncer,
            batch_entries: 0,
            batch_bytes: 0,
            spare: None,
            spare_pace: Arc::default(),
            shared,
            next_seal,
            dirty: !sealed,
            sealed: false,
            _lock: lock,
            #[cfg(test)]
            direct_writes: 0,
        };
        writer.start_spare(None);
        Ok(writer)
    }

    /// The thread's body: runs until closed, poisoned and drained, or every handle is gone.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut requests = Vec::new();
        loop {
            requests.clear();
            match self.wait(&rx) {
                Wake::Request(r) => requests.push(r),
                Wake::SealDue => {}
                Wake::Disconnected => break,
            }
            let (mut entries, mut bytes) = requests.first().map_or((0, 0), Request::weight);
            while entries < self.settings.max_batch_entries
                && bytes < self.settings.max_batch_bytes
                && !matches!(requests.last(), Some(Request::Close { .. }))
            {
                match rx.try_recv() {
                    Ok(r) => {
                        let (e, b) = r.weight();
                        entries += e;
                        bytes += b;
                        requests.push(r);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            match self.commit(std::mem::take(&mut requests)) {
                Flow::Continue => {}
                Flow::Stop => break,
                Flow::Poisoned(cause) => {
                    // Answer everything still coming until close or the last handle drops.
                    for r in rx.iter() {
                        let close = matches!(r, Request::Close { .. });
                        r.fail(|| JournalError::Poisoned(cause.clone()));
                        if close {
                            break;
                        }
                    }
                    break;
                }
            }
        }
        self.shutdown();
    }

    fn wait(&mut self, rx: &Receiver<Request>) -> Wake {
        loop {
            let (Some(at), Some(interval)) = (self.next_seal, self.settings.seal_interval) else {
                return rx.recv().map_or(Wake::Disconnected, Wake::Request);
            };
            let now = Instant::now();
            if now >= at {
                if self.dirty {
                    return Wake::SealDue;
                }
                // Nothing to seal: an idle journal does not grow.
                self.next_seal = Some(now + interval);
                continue;
            }
            match rx.recv_timeout(at - now) {
                Ok(r) => return Wake::Request(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Wake::Disconnected,
            }
        }
    }

    /// Writes a batch, then hands it to the syncer or makes it durable and answers it.
    fn commit(&mut self, requests: Vec<Request>) -> Flow {
        // The syncer failed an earlier commit: once it has answered all it holds, these
        // fail after them (answers keep the order of the requests).
        if let Some(cause) = self.shared.fatal.get().cloned() {
            let _ = self.settle();
            return fail_all(&cause, requests);
        }
        let mut outcomes = Vec::with_capacity(requests.len());
        if let Err(e) = self.write_requests(&requests, &mut outcomes) {
            return self.poison(e, requests);
        }
        let appends_only = requests.iter().all(|r| matches!(r, Request::Append { .. }));
        if appends_only
            && !self.sealed
            && let Some(syncer) = self.syncer.take()
        {
            let handed = syncer.hand(self.ticket(requests, outcomes));
            self.syncer = Some(syncer);
            return match handed {
                Ok(()) => Flow::Continue,
                Err(cause) => Flow::Poisoned(cause),
            };
        }
        // In order behind the commits the syncer holds.
        if let Err(cause) = self.settle() {
            return fail_all(&cause, requests);
        }
        if let Err(e) = self.sync_written() {
            return self.poison(e, requests);
        }
        self.shared.publish(*self.chain.head());
        // Entries are durable: answer their appenders before the state file.
        let mut later = Vec::new();
        for (request, outcome) in requests.into_iter().zip(outcomes) {
            match (request, outcome) {
                (Request::Append { entries, done }, Outcome::Links(links)) => {
                    done(Ok(links), Spent(entries));
                }
                (request, outcome) => later.push((request, outcome)),
            }
        }
        if std::mem::take(&mut self.sealed)
            && let Err(e) = self.write_state()
        {
            return self.poison(e, later.into_iter().map(|(r, _)| r).collect());
        }
        let mut flow = Flow::Continue;
        for (request, outcome) in later {
            match (request, outcome) {
                (Request::Seal { done, .. }, Outcome::Link(link)) => done(Ok(link)),
                (Request::Close { done }, _) => {
                    done(Ok(()));
                    flow = Flow::Stop;
                }
                (request, _) => request.fail(|| JournalError::WriterPanicked),
            }
        }
        flow
    }

    /// A written commit of appends, for the syncer.
    fn ticket(&mut self, requests: Vec<Request>, outcomes: Vec<Outcome>) -> Ticket {
        let mut answers = Vec::with_capacity(requests.len());
        for (request, outcome) in requests.into_iter().zip(outcomes) {
            match (request, outcome) {
                (Request::Append { entries, done }, Outcome::Links(links)) => {
                    answers.push(Answer {
                        done,
                        entries,
                        links,
                    })
                }
                (request, _) => request.fail(|| JournalError::WriterPanicked),
            }
        }
        // The syncer's fdatasync covers it now.
        self.unsynced = false;
        Ticket {
            target: self.sync_target.clone(),
            answers,
            head: *self.chain.head(),
            entries: std::mem::take(&mut self.batch_entries),
            bytes: std::mem::take(&mut self.batch_bytes),
        }
    }

    /// Waits until the syncer has answered every commit handed to it.
    ///
    /// # Errors
    /// The cause, if the journal is poisoned (by the syncer or because it is gone).
    fn settle(&mut self) -> Result<(), Arc<JournalError>> {
        if let Some(syncer) = &self.syncer
            && !syncer.settle()
        {
            self.syncer = None;
            return Err(self.shared.poison(JournalError::WriterPanicked));
        }
        match self.shared.fatal.get() {
            Some(cause) => Err(cause.clone()),
            None => Ok(()),
        }
    }

    fn write_requests(
        &mut self,
        requests: &[Request],
        outcomes: &mut Vec<Outcome>,
    ) -> Result<(), JournalError> {
        for request in requests {
            let outcome = match request {
                Request::Append { entries, .. } => {
                    let mut links = Vec::with_capacity(entries.len());
                    for e in entries {
                        links.push(self.place(&e.canonical, e.received_nanos, &e.digest)?);
                    }
                    Outcome::Links(links)
                }
                Request::Seal { kind, .. } => Outcome::Link(self.place_seal(kind.clone())?),
                Request::Close { .. } => Outcome::Link(self.place_seal(SealKind::Checkpoint)?),
            };
            outcomes.push(outcome);
        }
        if self.dirty && self.next_seal.is_some_and(|at| Instant::now() >= at) {
            self.place_seal(SealKind::Checkpoint)?;
        }
        self.write_out()
    }

    /// Places one entry in the chain and its record in the buffer.
    fn place(&mut self, entry: &[u8], nanos: i64, digest: &Digest) -> Result<Link, JournalError> {
        self.reserve(format::record_bytes(entry.len()))?;
        let link = self.chain.append_digest(digest);
        self.push_record(&link, nanos, entry);
        self.dirty = true;
        Ok(link)
    }

    /// Places a seal (checkpoint or retention cut); the key ratchets.
    fn place_seal(&mut self, kind: SealKind) -> Result<Link, JournalError> {
        self.reserve(format::record_bytes(MAX_SEAL_BYTES))?;
        let now = OffsetDateTime::now_utc();
        let (bytes, link) = self.chain.seal(kind, now);
        let nanos = i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        self.push_record(&link, nanos, &bytes);
        self.dirty = false;
        self.sealed = true;
        self.next_seal = self.settings.seal_interval.map(|i| Instant::now() + i);
        Ok(link)
    }

    fn push_record(&mut self, link: &Link, nanos: i64, entry: &[u8]) {
        let offset = self.buf_at + self.buf.len() as u64;
        let before = self.buf.len();
        self.buf
            .append(|out| format::encode_record(out, link, nanos, entry));
        let bytes = (self.buf.len() - before) as u64;
        self.seg.index.push(link.seq, offset, bytes, nanos);
        self.batch_entries += 1;
        self.batch_bytes += bytes as usize;
    }

    /// Makes room for a record of `bytes`, rolling to a new segment if needed.
    fn reserve(&mut self, bytes: u64) -> Result<(), JournalError> {
        if self.buf_at + self.buf.len() as u64 + bytes <= self.seg.capacity {
            return Ok(());
        }
        self.roll()?;
        if HEADER_BYTES + bytes > self.seg.capacity {
            return Err(JournalError::Config(format!(
                "a record of {bytes} bytes does not fit in a segment of {} bytes",
                self.seg.capacity
            )));
        }
        Ok(())
    }

    /// Writes the records not yet written and fsyncs.
    fn flush(&mut self) -> Result<(), JournalError> {
        self.write_out()?;
        self.sync_written()
    }

    /// Writes the records not yet written.
    ///
    /// The write starts at the last written page's boundary and ends at a page boundary
    /// (padded with the zeroes the file holds there): whole pages only, so the kernel never
    /// reads a page back from disk to complete it, the segment's zeroes having been written
    /// around the page cache (see [`files::create_preallocated`]).
    fn write_out(&mut self) -> Result<(), JournalError> {
        let written = usize::try_from(self.seg.end - self.buf_at).unwrap_or(usize::MAX);
        if self.buf.len() > written {
            let end = self.buf_at + self.buf.len() as u64;
            let data = self.buf.len();
            let page_end = end.next_multiple_of(PAGE).min(self.seg.capacity);
            self.buf
                .resize(usize::try_from(page_end - self.buf_at).unwrap_or(data));
            let wrote = self.write_pages();
            self.buf.resize(data);
            wrote.map_err(|e| io("write", &self.seg.path)(e))?;
            self.seg.end = end;
            self.publish_fill();
            // Keep the last page, partly written, for the next write.
            let last_page = end - end % PAGE;
            self.buf
                .drain_front(usize::try_from(last_page - self.buf_at).unwrap_or(0));
            self.buf_at = last_page;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Fsyncs what [`Writer::write_out`] wrote, if anything.
    fn sync_written(&mut self) -> Result<(), JournalError> {
        if self.unsynced {
            let started = Instant::now();
            self.sync_data()?;
            self.unsynced = false;
            if let Some(observer) = &self.settings.on_commit {
                observer.observe(super::CommitReport {
                    entries: self.batch_entries,
                    bytes: self.batch_bytes,
                    sync: started.elapsed(),
                });
            }
            self.batch_entries = 0;
            self.batch_bytes = 0;
        }
        Ok(())
    }

    /// Writes `buf` at `buf_at`: directly when the segment is open for it and `buf` is
    /// whole blocks, else through the page cache. A filesystem that refuses a direct write
    /// (EINVAL) gets this and every later write through the page cache.
    fn write_pages(&mut self) -> std::io::Result<()> {
        if let Some(direct) = &mut self.direct
            && files::DirectFile::fits(self.buf.len(), self.buf_at)
        {
            #[cfg(test)]
            let injected = {
                let n = self.direct_writes;
                self.direct_writes += 1;
                self.settings.refuse_direct_write_at == Some(n)
            };
            #[cfg(not(test))]
            let injected = false;
            let wrote = if injected {
                Err(rustix::io::Errno::INVAL.into())
            } else {
                direct.write_all_at(&self.buf, self.buf_at)
            };
            match wrote {
                Err(e) if files::is_einval(&e) => {
                    tracing::info!(segment = %self.seg.path.display(), error = %e,
                        "direct writes refused: the journal writes through the page cache");
                    self.direct = None;
                }
                done => return done,
            }
        }
        self.seg.file.write_all_at(self.buf.as_slice(), self.buf_at)
    }

    fn sync_data(&mut self) -> Result<(), JournalError> {
        self.sync_target.sync(&self.settings.faults)
    }

    /// Closes the full segment (durable, index beside it) and opens the next one.
    ///
    /// Every appender waits while this runs, so it does only what the next records need:
    /// the full segment's data fsynced, the next segment's header durable under its name.
    /// The index is written without fsync (checked when read, rebuilt when a crash tore
    /// or lost it: an fsync here cost tens of ms behind the spare's preparation), and the
    /// full segment's pages are dropped by the thread that allocates the next spare.
    fn roll(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        // The full segment is durable to its end before the next one exists: recovery
        // takes a torn record only at the tail of the last segment.
        self.settle().map_err(JournalError::Poisoned)?;
        self.flush()?;
        let dir = self.settings.dir.clone();
        if let Err(e) = recovery::write_index(&dir, &self.seg.index, files::Durability::None) {
            // Only an accelerator: the next open rebuilds it.
            tracing::warn!(segment = %self.seg.path.display(), error = %e, "journal index not written");
        }
        let first_seq = self.chain.head().next_seq;
        let spare_path = dir.join(SPARE_FILE);
        let waiting = Instant::now();
        // Zeroes not done yet stop where they are: the rest of the spare is only reserved.
        self.spare_pace.stop.store(true, Ordering::Relaxed);
        let file = match self.spare.take().map(JoinHandle::join) {
            Some(Ok(Ok(file))) => file,
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(_)) | None => files::create_preallocated(
                &spare_path,
                self.settings.segment_bytes,
                files::Zeroes::for_settings(self.settings.zero_segments, None),
            )?,
        };
        let spare_wait = waiting.elapsed();
        let header = SegmentHeader {
            chain_id: self.chain.head().chain_id,
            first_seq,
        };
        file.write_all_at(&header.encode(), 0)
            .map_err(io("write header to", &spare_path))?;
        file.sync_data().map_err(io("fdatasync", &spare_path))?;
        let path = files::segment_path(&dir, first_seq);
        std::fs::rename(&spare_path, &path).map_err(io("rename", &spare_path))?;
        files::sync_dir(&dir)?;
        let capacity = file.metadata().map_err(io("stat", &path))?.len();
        if self.direct.is_some() {
            self.direct = open_direct(&self.settings, &path);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&header.encode());
        self.buf_at = 0;
        tracing::debug!(
            segment = %path.display(),
            roll_ms = started.elapsed().as_secs_f64() * 1e3,
            spare_wait_ms = spare_wait.as_secs_f64() * 1e3,
            "journal segment opened"
        );
        let full = std::mem::replace(
            &mut self.seg,
            OpenSegment {
                file,
                path,
                end: HEADER_BYTES,
                capacity,
                index: SegmentIndex::new(header.chain_id, first_seq, HEADER_BYTES),
            },
        );
        self.sync_target = Arc::new(sync_target(&self.seg)?);
        self.start_spare(Some(full.file));
        Ok(())
    }

    /// Starts allocating the next segment in the background, after dropping the pages of
    /// the segment just closed (`full`): it is durable and rarely read again.
    fn start_spare(&mut self, full: Option<File>) {
        let path = self.settings.dir.join(SPARE_FILE);
        let size = self.settings.segment_bytes;
        let zero = self.settings.zero_segments;
        let pace = Arc::new(files::Pace {
            #[cfg(test)]
            held: self.settings.hold_zeroes,
            ..files::Pace::default()
        });
        self.spare_pace = pace.clone();
        self.publish_fill();
        let spawned = std::thread::Builder::new()
            .name("journal-prealloc".into())
            .spawn(move || {
                if let Some(full) = full
                    && let Err(e) =
                        rustix::fs::fadvise(&full, 0, None, rustix::fs::Advice::DontNeed)
                {
                    tracing::debug!(error = %e, "fadvise of the closed segment failed");
                }
                files::create_preallocated(
                    &path,
                    size,
                    files::Zeroes::for_settings(zero, Some(&pace)),
                )
            });
        // If no thread can be started, the roll allocates the segment itself.
        self.spare = spawned.ok();
    }

    /// Tells the spare's zeroes how far the open segment is filled (see [`files::Pace`]).
    fn publish_fill(&self) {
        (self.spare_pace.filled)
            .store(self.seg.end.saturating_sub(HEADER_BYTES), Ordering::Relaxed);
    }

    fn write_state(&self) -> Result<(), JournalError> {
        let key = self.chain.key();
        WriterState {
            chain_id: self.chain.head().chain_id,
            epoch: key.epoch(),
            key: Zeroizing::new(*key.secret()),
            seed: self.seed.clone(),
        }
        .write(&self.settings.dir)
    }

    fn poison(&mut self, error: JournalError, requests: Vec<Request>) -> Flow {
        tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "journal poisoned");
        // The commits the syncer holds were written before this failure: they are answered
        // first (acknowledged if their fdatasync succeeds), so answers keep their order.
        let _ = self.settle();
        let cause = self.shared.poison(error);
        for r in requests {
            r.fail(|| JournalError::Poisoned(cause.clone()));
        }
        Flow::Poisoned(cause)
    }

    fn shutdown(&mut self) {
        // Answers what it holds, then stops.
        drop(self.syncer.take());
        // The spare is removed: its zeroes stop where they are.
        self.spare_pace.stop.store(true, Ordering::Relaxed);
        if let Some(Ok(Ok(file))) = self.spare.take().map(JoinHandle::join) {
            drop(file);
            let path = self.settings.dir.join(SPARE_FILE);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(path = %path.display(), error = %e, "spare segment not removed");
            }
        }
    }
}

enum Outcome {
    Links(Vec<Link>),
    Link(Link),
}

/// Fails `requests` on a journal already poisoned by `cause`.
fn fail_all(cause: &Arc<JournalError>, requests: Vec<Request>) -> Flow {
    for r in requests {
        r.fail(|| JournalError::Poisoned(cause.clone()));
    }
    Flow::Poisoned(cause.clone())
}

/// The open segment opened again for the syncer's `fdatasync`.
fn sync_target(seg: &OpenSegment) -> Result<SyncTarget, JournalError> {
    Ok(SyncTarget {
        file: seg.file.try_clone().map_err(io("open again", &seg.path))?,
        path: seg.path.clone(),
    })
}

/// The segment at `path` opened for direct writes, if the settings ask for them and the
/// filesystem takes them (else the writer goes through the page cache, and says why).
fn open_direct(settings: &Settings, path: &std::path::Path) -> Option<files::DirectFile> {
    if !settings.direct_writes {
        return None;
    }
    match files::DirectFile::open(path) {
        Ok(direct) => Some(direct),
        Err(e) => {
            tracing::info!(segment = %path.display(), error = %e,
                "no direct writes: the journal writes through the page cache");
            None
        }
    }
}

/// Bytes per page: the writer writes whole pages.
const PAGE: u64 = 4096;

/// The written bytes of the open segment's last page: where the writer's buffer starts.
fn written_tail(seg: &OpenSegment) -> Result<(u64, Vec<u8>), JournalError> {
    let at = seg.end - seg.end % PAGE;
    let mut tail = vec![0u8; usize::try_from(seg.end - at).unwrap_or(0)];
    let n = files::read_at_most(&seg.file, &mut tail, at).map_err(io("read", &seg.path))?;
    if n != tail.len() {
        return Err(io("read", &seg.path)(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("segment ends at {} before its last record", at + n as u64),
        )));
    }
    Ok((at, tail))
}
