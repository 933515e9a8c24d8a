//! One audit run: read the declarations, stream the events through the rule engine,
//! check the chains' integrity and retention coverage, and gather the findings.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use proto::chain::Link;
use proto::verify::{Body, Record, Verifier, VerifyKeys};
use store::journal::{JournalError, VerifierKeys};
use time::{Duration, OffsetDateTime};

use crate::decls::Declarations;
use crate::error::AuditError;
use crate::finding::{EntryRef, Finding, Rule, Severity};
use crate::ledger::{Located, Merged, Source, SourceScan, TAG_EVENT};
use crate::progress::Progress;
use crate::rules::{Engine, RuleConfig, SessionRecord, Stats, sort_findings};

/// Retention every journal must cover: 18 months (548 days).
pub const RETENTION: Duration = Duration::days(548);

/// Most chain problems reported per source (the verifier's full diagnosis is
/// `auditor verify`).
const MAX_CHAIN_FINDINGS: usize = 20;

/// Where the ledger is read from.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Chains holding declarations (the auditor's own chain): read whole.
    pub declarations: Vec<Source>,
    /// Chains holding connection events (the collectors'): streamed by time.
    pub events: Vec<Source>,
    /// Verifier key files, by source directory; a source without one is checked with the
    /// `verifier.key` in its directory if present, for seq continuity only otherwise.
    pub keys: Vec<(PathBuf, PathBuf)>,
    /// Verifier key files matched to sources by the chain id they name (how chains read
    /// from PostgreSQL find theirs; journals too when not given in `keys`).
    pub chain_keys: Vec<PathBuf>,
}

impl Ledger {
    /// The verifier keys of a source: the file named for its directory in `keys`, else the
    /// file of `chain_keys` naming its chain, else the `verifier.key` in its directory;
    /// `None` when there is none (the chain is then checked for seq continuity only).
    ///
    /// # Errors
    /// [`AuditError::Key`] when a key file cannot be read, [`AuditError::Journal`] when the
    /// journal cannot be read.
    pub fn verifier_keys(&self, source: &Source) -> Result<Option<VerifierKeys>, AuditError> {
        let named = source
            .dir()
            .and_then(|dir| self.keys.iter().find(|(d, _)| d == dir))
            .map(|(_, k)| k.clone());
        if let Some(path) = named {
            return read_keys(&path).map(Some);
        }
        if !self.chain_keys.is_empty() {
            let chain_id = source.chain_id()?;
            for path in &self.chain_keys {
                let keys = read_keys(path)?;
                if keys.chain_id == chain_id {
                    return Ok(Some(keys));
                }
            }
        }
        match source.dir() {
            Some(dir) if dir.join(store::journal::VERIFIER_FILE).exists() => {
                read_keys(&dir.join(store::journal::VERIFIER_FILE)).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Every source once, events first.
    pub fn all_sources(&self) -> Vec<&Source> {
        let mut all: Vec<&Source> = Vec::new();
        for s in self.events.iter().chain(&self.declarations) {
            if !all.contains(&s) {
                all.push(s);
            }
        }
        all
    }
}

/// What to check besides the connection rules.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Verify every chain end to end (MACs with the verifier key, seals).
    pub check_chains: bool,
    /// Check each chain covers 18 months back from the end of the range.
    pub check_retention: bool,
    /// Show progress on a terminal.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check_chains: true,
            check_retention: true,
            progress: true,
        }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Audit {
    /// The declarations read.
    pub declarations: Declarations,
    /// Every finding, in time order.
    pub findings: Vec<Finding>,
    /// The sessions judged (up to [`RuleConfig::keep_sessions`]), by start.
    pub sessions: Vec<SessionRecord>,
    /// What was counted.
    pub stats: Stats,
    /// The configuration of the run.
    pub config: RuleConfig,
}

/// Runs the rules for a vendor's journal (`cfg.vendor`): every session of its connections
/// kept, those that named it and those attributed to its staff (by account or person); no
/// chain or retention check (a journal is not a report). Where a source can narrow its
/// reading (PostgreSQL), only the vendor's rows and the events that name no vendor are
/// read.
///
/// # Errors
/// As [`run`].
pub fn run_journal(
    ledger: &Ledger,
    mut cfg: RuleConfig,
    progress: bool,
) -> Result<Audit, AuditError> {
    cfg.keep_sessions = usize::MAX;
    let events = match cfg.vendor.as_deref() {
        Some(vendor) => (ledger.events.iter())
            .map(|s| s.only_vendor(vendor, cfg.tenant.as_deref()))
            .collect(),
        None => ledger.events.clone(),
    };
    let narrowed = Ledger {
        events,
        ..ledger.clone()
    };
    let opts = RunOptions {
        check_chains: false,
        check_retention: false,
        progress,
    };
    run(&narrowed, cfg, opts)
}

/// Runs the rules over the ledger.
///
/// Three threads share the work: one reads the event records (in batches through a
/// bounded channel), the caller's decodes them and runs the rule engine, and one verifies
/// the chains and their retention meanwhile. The outcome is the same as running them one
/// after the other.
///
/// When the chains are checked, each events chain is read once for both: the reading
/// thread reads it whole, hands every record to the chain check and only those of the
/// rules' window to the engine ([`Tee`]). Reading a chain twice cost a second pass over
/// the journal's pages (CRC, copies) or, from PostgreSQL, a second scan of every row.
///
/// ```text
///  events chains ─ whole ─→ Tee ─ every record (copy) ──────→ integrity thread: Verifier
///                            └─ window records ─→ merge ─→ engine (caller's thread)
///  declarations-only chains ─────────────────────────────→ integrity thread: own scan
/// ```
///
/// # Errors
/// [`AuditError`] when a source cannot be read or an entry decoded.
pub fn run(ledger: &Ledger, cfg: RuleConfig, opts: RunOptions) -> Result<Audit, AuditError> {
    let declarations = Declarations::load(&ledger.declarations)?;
    let window = (cfg.from - Duration::days(1), cfg.to + Duration::days(2));
    let (to_check, checked) = if opts.check_chains {
        let (tx, rx) = mpsc::sync_channel::<Checked>(CHECK_QUEUE_BATCHES);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let scans = ledger
        .events
        .iter()
        .enumerate()
        .map(|(index, s)| {
            Ok(match &to_check {
                Some(tx) => Tee {
                    scan: s.scan_all()?,
                    index,
                    to_check: Some(tx.clone()),
                    batch: CheckBatch::with_capacity(CHECK_BATCH),
                    window,
                },
                None => Tee {
                    scan: s.scan_time(window.0, window.1)?,
                    index,
                    to_check: None,
                    batch: CheckBatch::default(),
                    window,
                },
            })
        })
        .collect::<Result<Vec<_>, AuditError>>()?;
    // The tees hold the only senders: the check's channel closes when they are done.
    drop(to_check);
    let tenant = cfg.tenant.clone().unwrap_or_else(|| "*".into());
    let (engine_out, integrity) = std::thread::scope(|scope| {
        let integrity = scope.spawn(|| integrity_findings(ledger, &tenant, cfg.to, opts, checked));
        let (tx, rx) = mpsc::sync_channel::<EventBatch>(READ_QUEUE_BATCHES);
        let reader = scope.spawn(|| read_events(scans, &cfg, opts, tx));
        let mut engine = Engine::new(&declarations, cfg.clone());
        let mut damaged = Vec::new();
        let mut decode_error = None;
        for batch in rx.iter() {
            damaged.extend(batch.damaged);
            for &(label, seq, ref range) in &batch.events {
                // Borrowed from the batch: the engine copies only what it keeps.
                let bytes = batch.bytes.get(range.clone()).unwrap_or_default();
                match proto::canonical::decode_event_ref(bytes) {
                    Ok(e) => {
                        let at = EntryRef {
                            ledger: Arc::clone(&batch.labels[label]),
                            seq,
                        };
                        engine.push(at, &e);
                    }
                    Err(e) => {
                        decode_error = Some(AuditError::Decode {
                            ledger: batch.labels[label].to_string(),
                            seq,
                            reason: e.to_string(),
                        });
                        break;
                    }
                }
            }
            if decode_error.is_some() {
                break;
            }
        }
        // Dropping the receiver stops the reading thread at its next batch.
        drop(rx);
        // The first error in the stream's order: a record that does not decode comes
        // before anything the reader met after it.
        let read = join(reader);
        let read = match decode_error {
            Some(e) => Err(e),
            None => read,
        };
        let engine_out = read.map(|()| {
            let (mut findings, sessions, stats) = engine.finish();
            findings.append(&mut damaged);
            (findings, sessions, stats)
        });
        (engine_out, join(integrity))
    });
    let (mut findings, sessions, stats) = engine_out?;
    findings.extend(integrity?);
    sort_findings(&mut findings);
    Ok(Audit {
        declarations,
        findings,
        sessions,
        stats,
        config: cfg,
    })
}

/// Batches of records waiting for the rule engine.
const READ_QUEUE_BATCHES: usize = 8;
/// Batches of records waiting for the chain check.
const CHECK_QUEUE_BATCHES: usize = 8;
/// Records per batch handed from the reading thread to the chain check.
const CHECK_BATCH: usize = 1024;

/// What the reading thread hands to the chain check of the events chains.
enum Checked {
    /// Records of `ledger.events[i]`, in seq order.
    Records(usize, CheckBatch),
    /// Reading `ledger.events[i]` stopped at this error.
    Failed(usize, String),
}

/// Records for the chain check, their bytes back to back: one allocation per batch made
/// by the reading thread, and the verifier's own copies made (and freed) by its thread.
/// Allocating per record on one thread and freeing on another made the threads wait on
/// the allocator's locks.
#[derive(Default)]
struct CheckBatch {
    bytes: Vec<u8>,
    records: Vec<(Link, Range<usize>)>,
}

impl CheckBatch {
    fn with_capacity(records: usize) -> Self {
        CheckBatch {
            bytes: Vec::with_capacity(records * 512),
            records: Vec::with_capacity(records),
        }
    }

    fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.records.iter().map(|(link, range)| Record {
            link: *link,
            body: Body::Full(self.bytes.get(range.clone()).unwrap_or_default().to_vec()),
        })
    }
}

/// An events chain read whole: every record also goes to the chain check (when there is
/// one), and only the records received in the rules' window come out.
struct Tee {
    scan: SourceScan,
    index: usize,
    /// `None` without a chain check, or once the check is gone.
    to_check: Option<mpsc::SyncSender<Checked>>,
    batch: CheckBatch,
    window: (OffsetDateTime, OffsetDateTime),
}

impl Tee {
    fn send(&mut self, checked: Checked) {
        if let Some(tx) = &self.to_check
            && tx.send(checked).is_err()
        {
            // The check failed on its own (it reports why); reading goes on for the rules.
            self.to_check = None;
        }
    }

    fn flush(&mut self) {
        if self.to_check.is_some() && !self.batch.records.is_empty() {
            let batch = std::mem::replace(&mut self.batch, CheckBatch::with_capacity(CHECK_BATCH));
            self.send(Checked::Records(self.index, batch));
        }
    }
}

impl Iterator for Tee {
    type Item = Result<Located, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.scan.next() {
                None => {
                    self.flush();
                    return None;
                }
                Some(Err(e)) => {
                    self.flush();
                    self.send(Checked::Failed(self.index, e.to_string()));
                    return Some(Err(e));
                }
                Some(Ok(located)) => {
                    if self.to_check.is_some() {
                        let bytes = &mut self.batch.bytes;
                        let start = bytes.len();
                        bytes.extend_from_slice(&located.stored.canonical);
                        let range = start..bytes.len();
                        self.batch.records.push((located.stored.link, range));
                        if self.batch.records.len() >= CHECK_BATCH {
                            self.flush();
                        }
                    }
                    let at = located.stored.received_at;
                    if self.window.0 <= at && at < self.window.1 {
                        return Some(Ok(located));
                    }
                }
            }
        }
    }
}
/// Events per batch handed from the reading thread to the rule engine.
const READ_BATCH_EVENTS: usize = 1024;

/// Events handed from the reading thread to the rule engine, their canonical bytes back
/// to back (one allocation per batch, not per event: see [`CheckBatch`]), and damage the
/// journals' checksums caught, as findings (without the chain check).
struct EventBatch {
    /// The labels of the sources, owned by this batch alone.
    labels: Vec<Arc<str>>,
    bytes: Vec<u8>,
    /// Each event's label (index in `labels`), seq and bytes.
    events: Vec<(usize, u64, Range<usize>)>,
    damaged: Vec<Finding>,
}

impl EventBatch {
    fn new() -> Self {
        EventBatch {
            labels: Vec::new(),
            bytes: Vec::with_capacity(READ_BATCH_EVENTS * 512),
            events: Vec::with_capacity(READ_BATCH_EVENTS),
            damaged: Vec::new(),
        }
    }

    fn push(&mut self, located: &Located) {
        let label = match self.labels.iter().position(|l| **l == *located.ledger) {
            Some(i) => i,
            None => {
                // A copy of the label: the reading thread's Arc stays its own.
                self.labels.push(Arc::from(&*located.ledger));
                self.labels.len() - 1
            }
        };
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&located.stored.canonical);
        let range = start..self.bytes.len();
        self.events.push((label, located.stored.link.seq, range));
    }
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(t) => t,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Reads the event records of the scans merged by time and sends them in batches;
/// stops at the first error that is not damage (or when the engine is gone).
fn read_events(
    scans: Vec<Tee>,
    cfg: &RuleConfig,
    opts: RunOptions,
    tx: mpsc::SyncSender<EventBatch>,
) -> Result<(), AuditError> {
    let mut progress = Progress::new("checking", None);
    let mut read = 0u64;
    let mut batch = EventBatch::new();
    for located in Merged::new(scans) {
        let located = match located {
            Ok(l) => l,
            // Damage the store's checksums catch is evidence: a finding, not an abort.
            Err(AuditError::Journal {
                dir,
                source: e @ (JournalError::Corrupt { .. } | JournalError::BadHeader { .. }),
            }) => {
                tracing::warn!(dir = %dir.display(), error = %e, "journal damaged");
                if !opts.check_chains {
                    let label = Source::journal(&dir).label().to_owned();
                    let mut f = Finding::new(
                        Rule::ChainBroken,
                        cfg.tenant.as_deref().unwrap_or("*"),
                        cfg.to,
                    );
                    f.facts.other = Some(label);
                    f.facts.note = Some(e.to_string());
                    batch.damaged.push(f);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        read += 1;
        if opts.progress {
            let into = (located.stored.received_at - cfg.from).as_seconds_f64();
            progress.tick_at(read, Some(into / (cfg.to - cfg.from).as_seconds_f64()));
        }
        if located.tag() != TAG_EVENT {
            continue;
        }
        batch.push(&located);
        if batch.events.len() >= READ_BATCH_EVENTS {
            let full = std::mem::replace(&mut batch, EventBatch::new());
            if tx.send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.events.is_empty() || !batch.damaged.is_empty() {
        // The engine is gone only when its thread panicked: nothing to report then.
        let _ = tx.send(batch);
    }
    if opts.progress {
        progress.done(read);
    }
    Ok(())
}

/// The chain and retention findings of every source, in the ledger's order. The events
/// chains' records come through `checked` when the reading thread shares its pass with
/// the check (see [`run`]); the other chains are read here.
fn integrity_findings(
    ledger: &Ledger,
    tenant: &str,
    to: OffsetDateTime,
    opts: RunOptions,
    checked: Option<mpsc::Receiver<Checked>>,
) -> Result<Vec<Finding>, AuditError> {
    let sources = ledger.all_sources();
    let mut chain: Vec<Option<Vec<Finding>>> = sources.iter().map(|_| None).collect();
    if let Some(checked) = checked {
        let mut verifiers = (ledger.events.iter())
            .map(|s| Ok((Verifier::new(keys_for(ledger, s)?), None)))
            .collect::<Result<Vec<(Verifier, Option<String>)>, AuditError>>()?;
        for message in checked {
            match message {
                Checked::Records(i, batch) => {
                    for record in batch.records() {
                        verifiers[i].0.push(record);
                    }
                }
                Checked::Failed(i, note) => verifiers[i].1 = Some(note),
            }
        }
        for (source, (verifier, failed)) in ledger.events.iter().zip(verifiers) {
            // A chain listed twice is judged once, on its first reading.
            if let Some(k) = sources.iter().position(|s| *s == source)
                && chain[k].is_none()
            {
                chain[k] = Some(problem_findings(
                    source,
                    tenant,
                    to,
                    failed,
                    &verifier.finish(),
                ));
            }
        }
    }
    let mut findings = Vec::new();
    for (source, shared) in sources.into_iter().zip(chain) {
        if opts.check_chains {
            match shared {
                Some(found) => findings.extend(found),
                None => findings.extend(chain_findings(ledger, source, tenant, to)?),
            }
        }
        if opts.check_retention {
            findings.extend(retention_finding(source, tenant, to)?);
        }
    }
    Ok(findings)
}

fn keys_for(ledger: &Ledger, source: &Source) -> Result<VerifyKeys, AuditError> {
    Ok(ledger
        .verifier_keys(source)?
        .map(|k| k.verify_keys())
        .unwrap_or_default())
}

fn read_keys(path: &std::path::Path) -> Result<VerifierKeys, AuditError> {
    VerifierKeys::read(path).map_err(AuditError::key(path))
}

/// Verifies one chain and turns its problems into findings.
///
/// # Errors
/// [`AuditError`] when the source cannot be opened or the key file read.
pub fn chain_findings(
    ledger: &Ledger,
    source: &Source,
    tenant: &str,
    at: OffsetDateTime,
) -> Result<Vec<Finding>, AuditError> {
    let mut verifier = Verifier::new(keys_for(ledger, source)?);
    let mut failed = None;
    let mut progress = Progress::new("verifying", None);
    let mut n = 0u64;
    for located in source.scan_all()? {
        match located {
            Ok(l) => {
                verifier.push(l.stored.into());
                n += 1;
                progress.tick(n);
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    progress.done(n);
    Ok(problem_findings(
        source,
        tenant,
        at,
        failed,
        &verifier.finish(),
    ))
}

/// The findings of a chain's verification: where its reading stopped, if it did, then its
/// problems (at most [`MAX_CHAIN_FINDINGS`]).
fn problem_findings(
    source: &Source,
    tenant: &str,
    at: OffsetDateTime,
    failed: Option<String>,
    report: &proto::verify::Report,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(note) = failed {
        let mut f = Finding::new(Rule::ChainBroken, tenant, at);
        f.facts.other = Some(source.label().to_owned());
        f.facts.note = Some(note);
        findings.push(f);
    }
    for p in report.problems.iter().take(MAX_CHAIN_FINDINGS) {
        let mut f = Finding::new(Rule::ChainBroken, tenant, at);
        f.entries = vec![EntryRef {
            ledger: source.label().into(),
            seq: p.seq(),
        }];
        f.facts.other = Some(source.label().to_owned());
        f.facts.note = Some(p.to_string());
        findings.push(f);
    }
    findings
}

/// Whether a chain reaches 18 months back from `to`: high when entries were cut by
/// retention too early, info when the journal is simply younger than 18 months.
///
/// # Errors
/// [`AuditError`] when the source cannot be read.
pub fn retention_finding(
    source: &Source,
    tenant: &str,
    to: OffsetDateTime,
) -> Result<Option<Finding>, AuditError> {
    let first = match source.first() {
        Ok(None) => return Ok(None),
        Ok(Some(first)) => first,
        // Damage is the chain check's finding; coverage cannot be told.
        Err(AuditError::Journal {
            source: JournalError::Corrupt { .. } | JournalError::BadHeader { .. },
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let oldest = first.stored.received_at;
    if oldest <= to - RETENTION {
        return Ok(None);
    }
    let mut f = Finding::new(Rule::RetentionShort, tenant, to);
    if first.stored.link.seq == 0 {
        f.severity = Severity::Info;
    }
    f.entries = vec![first.entry_ref()];
    f.facts.when = Some(oldest);
    f.facts.other = Some(source.label().to_owned());
    Ok(Some(f))
}
