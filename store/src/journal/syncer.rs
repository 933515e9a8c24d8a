//! The syncer thread: makes the writer's commits durable while the writer prepares the next.
//!
//! The writer places a commit's entries in the chain and writes its records, then hands the
//! commit here as a [`Ticket`] and goes on: the next commit's chain work and write overlap
//! this one's `fdatasync`, which on a slow disk is most of a commit's time. The syncer takes
//! every ticket queued (one `fdatasync` covers all that was written before it), syncs, then
//! publishes the durable head and answers the appenders, in order.
//!
//! A failed `fdatasync` poisons the journal: those tickets fail, and so does everything
//! after them, here and in the writer (it checks [`Shared::fatal`] before each commit).
//!
//! What must follow durability in order on the writer's side (a seal and the state file, a
//! segment roll, closing) first waits until the syncer has answered everything handed to it
//! ([`Syncer::settle`]).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use proto::chain::{ChainHead, Link};

use super::error::{JournalError, io};
use super::writer::{AppendReply, Prepared, Shared, Spent};
use super::{CommitObserver, CommitReport};

/// The segment file a ticket's records were written to, opened again for the syncer.
pub(crate) struct SyncTarget {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl SyncTarget {
    /// `fdatasync` of the segment's data; `faults` may inject a failure (tests).
    pub(crate) fn sync(&self, faults: &SyncFaults) -> Result<(), JournalError> {
        if faults.fails_now() {
            return Err(io("fdatasync", &self.path)(std::io::Error::other(
                "injected fsync failure",
            )));
        }
        self.file.sync_data().map_err(io("fdatasync", &self.path))
    }
}

/// Fault injection shared by the writer and the syncer: the n-th `fdatasync` of segment
/// data (from 0), wherever it happens, fails. Nothing in other builds.
#[derive(Clone, Default)]
pub(crate) struct SyncFaults {
    #[cfg(test)]
    fail_at: Option<u64>,
    #[cfg(test)]
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl SyncFaults {
    /// The `n`-th `fdatasync` fails (none if `None`).
    #[cfg(test)]
    pub(crate) fn failing_at(n: Option<u64>) -> Self {
        SyncFaults {
            fail_at: n,
            count: Arc::default(),
        }
    }

    #[cfg(test)]
    fn fails_now(&self) -> bool {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.fail_at == Some(n)
    }

    #[cfg(not(test))]
    fn fails_now(&self) -> bool {
        false
    }
}

/// One appender's part of a ticket.
pub(crate) struct Answer {
    pub(crate) done: AppendReply,
    pub(crate) entries: Vec<Prepared>,
    pub(crate) links: Vec<Link>,
}

/// A commit written but not yet durable.
pub(crate) struct Ticket {
    pub(crate) target: Arc<SyncTarget>,
    pub(crate) answers: Vec<Answer>,
    /// The chain head after the commit's last entry.
    pub(crate) head: ChainHead,
    /// Records and bytes written since the previous `fdatasync`, for the commit observer.
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

impl Ticket {
    fn fail(self, cause: &Arc<JournalError>) {
        for a in self.answers {
            (a.done)(Err(JournalError::Poisoned(cause.clone())), Spent(a.entries));
        }
    }
}

enum Job {
    Ticket(Ticket),
    /// Answered once every ticket before it is.
    Settle(SyncSender<()>),
}

/// The writer's handle on the syncer thread.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread; `None` if it cannot be started (the writer then syncs itself).
    pub(crate) fn start(
        shared: Arc<Shared>,
        on_commit: Option<CommitObserver>,
        faults: SyncFaults,
    ) -> Option<Syncer> {
        // One ticket queued while one is synced: the writer runs at most two commits ahead
        // of the disk.
        let (tx, rx) = sync_channel(1);
        let in_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("journal-syncer".into())
            .spawn(move || run(&rx, &in_thread, on_commit.as_ref(), &faults));
        match thread {
            Ok(thread) => Some(Syncer {
                shared,
                tx: Some(tx),
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no syncer thread: the journal writer syncs each commit itself");
                None
            }
        }
    }

    /// Hands a ticket over, waiting while one is queued already. If the thread is gone,
    /// the ticket fails and the journal is poisoned.
    pub(crate) fn hand(&self, ticket: Ticket) -> Result<(), Arc<JournalError>> {
        let sent = match &self.tx {
            Some(tx) => tx.send(Job::Ticket(ticket)).map_err(|e| e.0),
            None => Err(Job::Ticket(ticket)),
        };
        let Err(job) = sent else {
            return Ok(());
        };
        let cause = self.shared.poison(JournalError::WriterPanicked);
        if let Job::Ticket(t) = job {
            t.fail(&cause);
        }
        Err(cause)
    }

    /// Waits until every ticket handed over is answered; `false` if the thread is gone.
    pub(crate) fn settle(&self) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        let (done, settled) = sync_channel(1);
        tx.send(Job::Settle(done)).is_ok() && settled.recv().is_ok()
    }
}

impl Drop for Syncer {
    /// Lets the thread answer what it holds, then joins it.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the journal syncer thread panicked");
        }
    }
}

fn run(
    rx: &Receiver<Job>,
    shared: &Shared,
    on_commit: Option<&CommitObserver>,
    faults: &SyncFaults,
) {
    let mut tickets = Vec::new();
    let mut settles = Vec::new();
    while let Ok(job) = rx.recv() {
        let mut next = Some(job);
        // Everything queued behind it too: one fdatasync covers them all.
        while let Some(job) = next.take().or_else(|| rx.try_recv().ok()) {
            match job {
                Job::Ticket(t) => tickets.push(t),
                Job::Settle(s) => settles.push(s),
            }
        }
        if !tickets.is_empty() {
            sync_and_answer(std::mem::take(&mut tickets), shared, on_commit, faults);
        }
        for s in settles.drain(..) {
            // The writer waits on the other end.
            let _ = s.send(());
        }
    }
}

/// Makes `tickets` durable, in order, and answers them.
fn sync_and_answer(
    tickets: Vec<Ticket>,
    shared: &Shared,
    on_commit: Option<&CommitObserver>,
    faults: &SyncFaults,
) {
    let started = Instant::now();
    let mut synced = Ok(());
    if let Some(cause) = shared.fatal.get() {
        synced = Err(cause.clone());
    } else {
        // Tickets share their segment but across a roll; each distinct one is synced.
        let mut last: Option<&Arc<SyncTarget>> = None;
        for t in tickets.iter().rev() {
            if last.is_some_and(|l| Arc::ptr_eq(l, &t.target)) {
                continue;
            }
            last = Some(&t.target);
            if let Err(e) = t.target.sync(faults) {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "journal poisoned");
                synced = Err(shared.poison(e));
                break;
            }
        }
    }
    if let Err(cause) = synced {
        for t in tickets {
            t.fail(&cause);
        }
        return;
    }
    let sync = started.elapsed();
    if let Some(last) = tickets.last() {
        shared.publish(last.head);
    }
    if let Some(observer) = on_commit {
        observer.observe(CommitReport {
            entries: tickets.iter().map(|t| t.entries).sum(),
            bytes: tickets.iter().map(|t| t.bytes).sum(),
            sync,
        });
    }
    for t in tickets {
        for a in t.answers {
            (a.done)(Ok(a.links), Spent(a.entries));
        }
    }
}
