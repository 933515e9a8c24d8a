//! Reading the ledger: one or more chains, merged by time.
//!
//! A [`Source`] is one chain: a local journal directory (the collector's events chain, the
//! auditor's declarations chain) or a chain replicated into PostgreSQL. Scans stream: a
//! journal scan holds one record in memory, a PostgreSQL scan a few batches (read by its
//! own thread, which stops as soon as the scan is dropped), whatever the range.
//!
//! ```text
//!  source 0 (events, journal)       ─┐
//!  source 1 (events, PostgreSQL)    ─┼─ k-way merge on received_at ─→ Located entries
//!  source 2 (declarations, journal) ─┘                                  in time order
//! ```
//!
//! Within a chain records come in seq order; the merge takes, at each step, the source
//! whose next record was received first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use proto::model::Entry;
use store::journal::{JournalReader, Scan, StoredEntry};
use store::pg::PgError;
use time::{OffsetDateTime, PrimitiveDateTime};

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
    /// A chain replicated into PostgreSQL.
    Postgres {
        /// The database.
        url: PgUrl,
        /// The chain.
        chain_id: [u8; 16],
        /// The label findings cite (`pg:` and the chain id's first 8 bytes in hex).
        label: String,
        /// Time scans read only this vendor's entries (see [`Source::only_vendor`]).
        only: Option<VendorOnly>,
    },
}

/// One vendor's entries, in one tenant or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorOnly {
    /// The vendor.
    pub vendor: String,
    /// The tenant (all when `None`).
    pub tenant: Option<String>,
}

/// A PostgreSQL connection string; `Debug` hides it (it may hold a password).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgUrl(pub String);

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgUrl(<redacted>)")
    }
}

/// Records a PostgreSQL scan hands over at once.
const PG_BATCH: usize = 1024;
/// Batches a PostgreSQL scan reads ahead of its consumer.
const PG_QUEUE_BATCHES: usize = 4;

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

    /// A chain held by the PostgreSQL database at `url`.
    pub fn postgres(url: &str, chain_id: [u8; 16]) -> Source {
        Source::Postgres {
            url: PgUrl(url.to_owned()),
            chain_id,
            label: format!("pg:{}", hex::encode(&chain_id[..8])),
            only: None,
        }
    }

    /// This source, its time scans narrowed to one vendor's entries and the events that
    /// name no vendor (some are its staff's, by their account) where the source can do it
    /// cheaply (PostgreSQL, through its vendor index; a journal is read whole). For a
    /// vendor's journal, whose rules drop every other vendor's events anyway; never for
    /// a report (silent sources, shared accounts look across vendors). Whole-chain scans
    /// ([`Source::scan_all`], what verification reads) are never narrowed.
    pub fn only_vendor(&self, vendor: &str, tenant: Option<&str>) -> Source {
        let mut narrowed = self.clone();
        if let Source::Postgres { only, .. } = &mut narrowed {
            *only = Some(VendorOnly {
                vendor: vendor.to_owned(),
                tenant: tenant.map(str::to_owned),
            });
        }
        narrowed
    }

    /// Every chain the PostgreSQL database at `url` holds (those the collectors
    /// replicate), except `skip` (the auditor's own chain, read from its journal).
    ///
    /// # Errors
    /// [`AuditError::Postgres`] when the database cannot be reached or read, or its
    /// schema is not this release's.
    pub fn postgres_chains(url: &str, skip: &[[u8; 16]]) -> Result<Vec<Source>, AuditError> {
        let ids = on_runtime(async {
            let (client, connection) = store::pg::connect(url).await?;
            store::pg::require_current(&client).await?;
            let ids = store::pg::chains(&client).await;
            drop(client);
            connection.abort();
            ids
        })
        .map_err(AuditError::postgres("list the chains"))?;
        Ok(ids
            .into_iter()
            .filter(|id| !skip.contains(id))
            .map(|id| Source::postgres(url, id))
            .collect())
    }

    /// The label findings cite.
    pub fn label(&self) -> &str {
        match self {
            Source::Journal { label, .. } | Source::Postgres { label, .. } => label,
        }
    }

    /// The directory of a journal source.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Source::Journal { dir, .. } => Some(dir),
            Source::Postgres { .. } => None,
        }
    }

    /// The chain's id.
    ///
    /// # Errors
    /// [`AuditError::Journal`] when the journal cannot be opened.
    pub fn chain_id(&self) -> Result<[u8; 16], AuditError> {
        match self {
            Source::Journal { dir, .. } => Ok(JournalReader::open(dir)
                .map_err(AuditError::journal(dir))?
                .chain_id()),
            Source::Postgres { chain_id, .. } => Ok(*chain_id),
        }
    }

    /// The chain's first record (after a retention cut, the oldest kept), without reading
    /// further.
    ///
    /// # Errors
    /// As [`Source::scan_all`]; damage at the first record is an error too.
    pub fn first(&self) -> Result<Option<Located>, AuditError> {
        let Source::Postgres {
            url,
            chain_id,
            label,
            ..
        } = self
        else {
            return self.scan_all()?.next().transpose();
        };
        let mut first = None;
        on_runtime(async {
            let (client, connection) = store::pg::connect(&url.0).await?;
            store::pg::require_current(&client).await?;
            let range = store::pg::StoredRange {
                page_rows: 1,
                ..store::pg::StoredRange::whole()
            };
            store::pg::for_each_stored(&client, *chain_id, range, |stored| {
                first = Some(stored);
                false
            })
            .await?;
            drop(client);
            connection.abort();
            Ok(())
        })
        .map_err(AuditError::postgres(format!("read {label}")))?;
        Ok(first.map(|stored| Located {
            ledger: label.as_str().into(),
            stored,
        }))
    }

    /// The records received in `[from, to)`, in seq order.
    ///
    /// # Errors
    /// [`AuditError::Journal`] when the journal cannot be opened, [`AuditError::Postgres`]
    /// when the reading thread cannot be started (connection errors come with the first
    /// record).
    pub fn scan_time(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<SourceScan, AuditError> {
        match self {
            Source::Journal { dir, label } => {
                let reader = JournalReader::open(dir).map_err(AuditError::journal(dir))?;
                Ok(SourceScan::Journal {
                    scan: Box::new(reader.scan_time(from, to)),
                    dir: dir.clone(),
                    label: label.as_str().into(),
                })
            }
            Source::Postgres {
                url,
                chain_id,
                label,
                only,
            } => PgScan::start(url, *chain_id, (from, to), only.clone(), label),
        }
    }

    /// Every record, in seq order.
    ///
    /// # Errors
    /// As [`Source::scan_time`].
    pub fn scan_all(&self) -> Result<SourceScan, AuditError> {
        match self {
            Source::Journal { dir, label } => {
                let reader = JournalReader::open(dir).map_err(AuditError::journal(dir))?;
                Ok(SourceScan::Journal {
                    scan: Box::new(reader.scan_seq(0..=u64::MAX)),
                    dir: dir.clone(),
                    label: label.as_str().into(),
                })
            }
            Source::Postgres {
                url,
                chain_id,
                label,
                ..
            } => PgScan::start(
                url,
                *chain_id,
                (
                    OffsetDateTime::UNIX_EPOCH,
                    PrimitiveDateTime::MAX.assume_utc(),
                ),
                None,
                label,
            ),
        }
    }
}

/// Runs `work` on a runtime of its own (the auditor's reading is synchronous).
fn on_runtime<T>(work: impl Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PgError::Runtime)?
        .block_on(work)
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
        /// The store's scan (boxed: it is much larger than a PostgreSQL scan).
        scan: Box<Scan>,
        /// The directory, for errors.
        dir: PathBuf,
        /// The label.
        label: Arc<str>,
    },
    /// Of a chain in PostgreSQL.
    Postgres(PgScan),
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
            SourceScan::Postgres(scan) => scan.next(),
        }
    }
}

/// A chain read from PostgreSQL by a thread of its own, in batches through a bounded
/// channel; dropping the scan stops the thread at its next batch.
#[derive(Debug)]
pub struct PgScan {
    batches: mpsc::Receiver<Result<Vec<StoredEntry>, PgError>>,
    batch: std::vec::IntoIter<StoredEntry>,
    label: Arc<str>,
    ended: bool,
}

impl PgScan {
    fn start(
        url: &PgUrl,
        chain_id: [u8; 16],
        (from, to): (OffsetDateTime, OffsetDateTime),
        only: Option<VendorOnly>,
        label: &str,
    ) -> Result<SourceScan, AuditError> {
        let (tx, batches) = mpsc::sync_channel(PG_QUEUE_BATCHES);
        let url = url.0.clone();
        std::thread::Builder::new()
            .name("pg-scan".into())
            .spawn(move || {
                let sent = tx.clone();
                let read = on_runtime(async move {
                    let (client, connection) = store::pg::connect(&url).await?;
                    store::pg::require_current(&client).await?;
                    let tenants = match &only {
                        None => Vec::new(),
                        Some(VendorOnly {
                            tenant: Some(t), ..
                        }) => vec![t.clone()],
                        Some(VendorOnly { tenant: None, .. }) => {
                            store::pg::tenants(&client).await?
                        }
                    };
                    let range = store::pg::StoredRange {
                        from,
                        to,
                        vendor: only
                            .as_ref()
                            .map(|o| (o.vendor.as_str(), tenants.as_slice())),
                        ..store::pg::StoredRange::whole()
                    };
                    let mut batch = Vec::with_capacity(PG_BATCH);
                    let mut gone = false;
                    store::pg::for_each_stored(&client, chain_id, range, |stored| {
                        batch.push(stored);
                        if batch.len() < PG_BATCH {
                            return true;
                        }
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(PG_BATCH));
                        // Blocking here holds the connection back too: back-pressure.
                        gone = sent.send(Ok(full)).is_err();
                        !gone
                    })
                    .await?;
                    if !gone && !batch.is_empty() {
                        let _ = sent.send(Ok(batch));
                    }
                    drop(client);
                    connection.abort();
                    Ok(())
                });
                if let Err(e) = read {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| AuditError::postgres("start reading")(PgError::Runtime(e)))?;
        Ok(SourceScan::Postgres(PgScan {
            batches,
            batch: Vec::new().into_iter(),
            label: label.into(),
            ended: false,
        }))
    }
}

impl Iterator for PgScan {
    type Item = Result<Located, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(stored) = self.batch.next() {
                return Some(Ok(Located {
                    ledger: Arc::clone(&self.label),
                    stored,
                }));
            }
            if self.ended {
                return None;
            }
            match self.batches.recv() {
                Ok(Ok(batch)) => self.batch = batch.into_iter(),
                Ok(Err(e)) => {
                    self.ended = true;
                    return Some(Err(AuditError::postgres(format!("read {}", self.label))(e)));
                }
                Err(mpsc::RecvError) => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }
}

/// Several scans merged by `received_at` (ties: the source given first). A source whose
/// scan fails yields its error once and is dropped; the others continue.
#[derive(Debug)]
pub struct Merged<S = SourceScan> {
    scans: Vec<S>,
    heads: Vec<Option<Located>>,
    heap: BinaryHeap<Reverse<(i128, usize)>>,
    error: Option<AuditError>,
    started: bool,
}

impl<S: Iterator<Item = Result<Located, AuditError>>> Merged<S> {
    /// Merges the scans.
    pub fn new(scans: Vec<S>) -> Self {
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

impl<S: Iterator<Item = Result<Located, AuditError>>> Iterator for Merged<S> {
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
