//! Reading the ledger: one or more chains, merged by time.
//!
//! A [`Source`] is one chain: today a local journal directory (the collector's events
//! chain, the auditor's declarations chain); a PostgreSQL source will be one more variant
//! of [`Source`] and of [`SourceScan`], nothing else changes. Scans stream: one record in
//! memory per source, whatever the range.
//!
//! ```text
//!  source 0 (events)        ─┐
//!  source 1 (events, node 2) ─┼─ k-way merge on received_at ─→ Located entries in time order
//!  source 2 (declarations)  ─┘
//! ```
//!
//! Within a chain records come in seq order; the merge takes, at each step, the source
//! whose next record was received first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proto::model::Entry;
use store::journal::{JournalReader, Scan, StoredEntry};
use time::OffsetDateTime;

use crate::error::AuditError;
use crate::finding::EntryRef;

/// The canonical entry tag of a connection event.
pub const TAG_EVENT: u8 = 1;
/// The canonical entry tag of a declaration.
pub const TAG_DECLARATION: u8 = 2;
/// The canonical entry tag of a seal.
pub const TAG_SEAL: u8 = 3;

/// One chain of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local journal directory.
    Journal {
        /// The directory.
        dir: PathBuf,
        /// The label findings cite (the directory's name).
        label: String,
    },
}

impl Source {
    /// A local journal directory, labelled with its last path component.
    pub fn journal(dir: impl Into<PathBuf>) -> Source {
        let dir = dir.into();
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Source::Journal { dir, label }
    }

    /// The label findings cite.
    pub fn label(&self) -> &str {
        match self {
            Source::Journal { label, .. } => label,
        }
    }

    /// The directory of a journal source.
    pub fn dir(&self) -> &Path {
        match self {
            Source::Journal { dir, .. } => dir,
        }
    }

    /// The records received in `[from, to)`, in seq order.
    ///
    /// # Errors
    /// [`AuditError::Journal`] when the journal cannot be opened.
    pub fn scan_time(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<SourceScan, AuditError> {
        match self {
            Source::Journal { dir, label } => {
                let reader = JournalReader::open(dir).map_err(AuditError::journal(dir))?;
                Ok(SourceScan::Journal {
                    scan: reader.scan_time(from, to),
                    dir: dir.clone(),
                    label: label.as_str().into(),
                })
            }
        }
    }

    /// Every record, in seq order.
    ///
    /// # Errors
    /// [`AuditError::Journal`] when the journal cannot be opened.
    pub fn scan_all(&self) -> Result<SourceScan, AuditError> {
        match self {
            Source::Journal { dir, label } => {
                let reader = JournalReader::open(dir).map_err(AuditError::journal(dir))?;
                Ok(SourceScan::Journal {
                    scan: reader.scan_seq(0..=u64::MAX),
                    dir: dir.clone(),
                    label: label.as_str().into(),
                })
            }
        }
    }
}

/// A record read from a source, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The source's label.
    pub ledger: Arc<str>,
    /// The stored record.
    pub stored: StoredEntry,
}

impl Located {
    /// The canonical entry tag (event, declaration, seal).
    pub fn tag(&self) -> u8 {
        self.stored.canonical.get(1).copied().unwrap_or(0)
    }

    /// Where the entry is, for findings.
    pub fn entry_ref(&self) -> EntryRef {
        EntryRef {
            ledger: self.ledger.clone(),
            seq: self.stored.link.seq,
        }
    }

    /// Decodes the entry.
    ///
    /// # Errors
    /// [`AuditError::Decode`] naming the ledger and seq.
    pub fn decode(&self) -> Result<Entry, AuditError> {
        proto::canonical::decode(&self.stored.canonical).map_err(|e| AuditError::Decode {
            ledger: self.ledger.to_string(),
            seq: self.stored.link.seq,
            reason: e.to_string(),
        })
    }
}

/// A streaming scan of one source.
#[derive(Debug)]
pub enum SourceScan {
    /// Of a local journal.
    Journal {
        /// The store's scan.
        scan: Scan,
        /// The directory, for errors.
        dir: PathBuf,
        /// The label.
        label: Arc<str>,
    },
}

impl Iterator for SourceScan {
    type Item = Result<Located, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SourceScan::Journal { scan, dir, label } => Some(
                scan.next()?
                    .map(|stored| Located {
                        ledger: Arc::clone(label),
                        stored,
                    })
                    .map_err(AuditError::journal(dir.clone())),
            ),
        }
    }
}

/// Several scans merged by `received_at` (ties: the source given first). A source whose
/// scan fails yields its error once and is dropped; the others continue.
#[derive(Debug)]
pub struct Merged {
    scans: Vec<SourceScan>,
    heads: Vec<Option<Located>>,
    heap: BinaryHeap<Reverse<(i128, usize)>>,
    error: Option<AuditError>,
    started: bool,
}

impl Merged {
    /// Merges the scans.
    pub fn new(scans: Vec<SourceScan>) -> Self {
        let n = scans.len();
        Merged {
            scans,
            heads: (0..n).map(|_| None).collect(),
            heap: BinaryHeap::new(),
            error: None,
            started: false,
        }
    }

    fn fill(&mut self, i: usize) {
        match self.scans[i].next() {
            Some(Ok(located)) => {
                self.heap.push(Reverse((
                    located.stored.received_at.unix_timestamp_nanos(),
                    i,
                )));
                self.heads[i] = Some(located);
            }
            Some(Err(e)) if self.error.is_none() => self.error = Some(e),
            Some(Err(e)) => tracing::warn!(error = %e, "second source error in one step"),
            None => {}
        }
    }
}

impl Iterator for Merged {
    type Item = Result<Located, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.scans.len() {
                self.fill(i);
            }
        }
        // A source that failed is dropped from the merge; the others go on.
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let Reverse((_, i)) = self.heap.pop()?;
        let out = self.heads[i].take();
        self.fill(i);
        out.map(Ok)
    }
}
