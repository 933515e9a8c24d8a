//! `collector retention`: what the retention would drop (dry run), and dropping it.
//!
//! ```text
//! with [postgresql]                           without
//! ───────────────────────────────────────     ─────────────────────────────────────────
//! (apply) open the journal's writer: its      (apply) open the journal's writer
//!   lock says no collector runs on it
//! (apply) copy what PostgreSQL lacks
//! partitions: store::pg::retention::plan      —
//! (apply) seal each cut of this chain the
//!   plan needs, copy the seals, apply
//! journal segments: journal_segments_to_drop  journal segments: the closed ones whose
//!   (replicated and behind a replicated         every entry was received before the
//!   seal; the journal is a buffer)              horizon (now - retention_months)
//! (apply) seal a cut at the first seq kept, drop the segments before it
//! (apply) close the journal (closing seal); copy the new seals and the closing seal
//! ```
//!
//! The dry run reads only (a journal reader, a PostgreSQL session) and may run beside a
//! collector. Applying refuses while a collector holds the journal: the cut seal must be
//! written by the chain's only writer. Cuts of other chains (other collectors, the
//! auditor) are reported for their writers; PostgreSQL then drops nothing until they are
//! sealed.

use std::fmt;
use std::path::PathBuf;

use store::journal::{DroppedSegments, Journal, JournalConfig, JournalError, JournalReader};
use store::pg::{
    BatchLimits, ChainId, PgError, Position, RetentionPlan, RetentionPolicy, catch_up,
    journal_segments_to_drop, position,
};
use time::OffsetDateTime;
use tokio_postgres::Client;

/// Why retention failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// A collector (or another writer) holds the journal.
    #[error(
        "a collector is running on the journal in {}: stop it before applying retention (--dry-run needs no stop)",
        dir.display()
    )]
    Running {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The journal failed.
    #[error("journal {}", dir.display())]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// The cause.
        source: JournalError,
    },
    /// PostgreSQL failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A blocking task panicked.
    #[error("{0} task failed")]
    Task(&'static str),
}

/// What to run retention on.
#[derive(Debug, Clone)]
pub struct Request {
    /// The journal (its directory; its settings when the writer is opened).
    pub journal: JournalConfig,
    /// How long everything is kept.
    pub policy: RetentionPolicy,
    /// The PostgreSQL ledger, if there is one.
    pub postgresql: Option<PgTarget>,
    /// The instant the horizon is counted from.
    pub now: OffsetDateTime,
}

/// A PostgreSQL ledger.
#[derive(Clone)]
pub struct PgTarget {
    /// The connection string (never printed).
    pub url: String,
    /// Batch size when copying what it lacks.
    pub limits: BatchLimits,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &"<redacted>")
            .field("limits", &self.limits)
            .finish()
    }
}

/// Why the journal's leading segments may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// PostgreSQL holds them and a seal after them (its position).
    Replicated(Option<Position>),
    /// Every entry in them was received before the horizon.
    Age,
}

/// The journal's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalCut {
    /// Why segments may go.
    pub basis: Basis,
    /// First seq of every segment (before any drop).
    pub segments: Vec<u64>,
    /// How many leading segments go.
    pub drop: usize,
}

impl JournalCut {
    /// The journal's first seq after the drop, if anything goes.
    pub fn first_kept(&self) -> Option<u64> {
        (self.drop > 0).then(|| self.segments.get(self.drop).copied())?
    }
}

/// What retention would do (dry run) or did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whether it was applied.
    pub applied: bool,
    /// Everything received since is kept.
    pub horizon: OffsetDateTime,
    /// The journal's chain.
    pub chain_id: [u8; 16],
    /// The journal directory.
    pub dir: PathBuf,
    /// PostgreSQL's plan (after [`apply`]: with `dropped` filled).
    pub postgresql: Option<RetentionPlan>,
    /// The journal's segments.
    pub journal: JournalCut,
    /// Retention-cut seals written in the journal (cut seqs).
    pub sealed: Vec<u64>,
    /// Segments deleted.
    pub dropped: Option<DroppedSegments>,
}

/// What retention would do; changes nothing.
///
/// # Errors
/// [`RetentionError::Journal`] (the journal cannot be read), [`RetentionError::Pg`].
pub async fn dry_run(request: &Request) -> Result<Outcome, RetentionError> {
    let dir = request.journal.dir.clone();
    let reader = blocking("journal reader", {
        let dir = dir.clone();
        move || JournalReader::open(dir)
    })
    .await?
    .map_err(journal_error(&dir))?;
    let chain_id = reader.chain_id();
    let segments = reader.segment_first_seqs().map_err(journal_error(&dir))?;
    let horizon = request.policy.horizon(request.now);
    let (postgresql, journal) = match &request.postgresql {
        Some(pg) => {
            let (client, connection) = store::pg::connect(&pg.url).await?;
            store::pg::require_current(&client).await?;
            let plan = store::pg::retention::plan(&client, request.policy, request.now).await?;
            let pos = position(&client, chain_id).await?;
            drop(client);
            let _ = connection.await;
            let drop = pos.map_or(0, |p| journal_segments_to_drop(&segments, &p));
            let cut = JournalCut {
                basis: Basis::Replicated(pos),
                segments,
                drop,
            };
            (Some(plan), cut)
        }
        None => {
            let cut = expired_segments(reader, segments, horizon).await?;
            (None, cut)
        }
    };
    Ok(Outcome {
        applied: false,
        horizon,
        chain_id,
        dir,
        postgresql,
        journal,
        sealed: Vec::new(),
        dropped: None,
    })
}

/// Applies retention (see the module's drawing). Refuses while a collector runs on the
/// journal.
///
/// # Errors
/// [`RetentionError::Running`], [`RetentionError::Journal`], [`RetentionError::Pg`]. What
/// was done before an error stays done (seals, drops): running it again goes on.
pub async fn apply(request: &Request) -> Result<Outcome, RetentionError> {
    let dir = request.journal.dir.clone();
    let config = request.journal.clone();
    let opened = blocking("journal open", move || Journal::open(config)).await?;
    let journal = match opened {
        Ok((journal, _)) => journal,
        Err(JournalError::Locked { dir }) => return Err(RetentionError::Running { dir }),
        Err(source) => return Err(RetentionError::Journal { dir, source }),
    };
    let result = apply_open(request, &journal).await;
    let closed = blocking("journal close", move || journal.close()).await?;
    let outcome = result?;
    closed.map_err(journal_error(&dir))?;
    if let Some(pg) = &request.postgresql {
        // The closing seal too: PostgreSQL ends where the journal does.
        let reader = blocking("journal reader", {
            let dir = dir.clone();
            move || JournalReader::open(dir)
        })
        .await?
        .map_err(journal_error(&dir))?;
        let (mut client, connection) = store::pg::connect(&pg.url).await?;
        let copied = catch_up(&mut client, &reader, pg.limits).await;
        drop(client);
        let _ = connection.await;
        copied?;
    }
    Ok(outcome)
}

async fn apply_open(request: &Request, journal: &Journal) -> Result<Outcome, RetentionError> {
    let dir = request.journal.dir.clone();
    let chain_id = journal.chain_id();
    let horizon = request.policy.horizon(request.now);
    let mut sealed = Vec::new();
    let (postgresql, cut) = match &request.postgresql {
        Some(pg) => {
            let (mut client, connection) = store::pg::connect(&pg.url).await?;
            store::pg::require_current(&client).await?;
            let result = apply_pg(request, pg, journal, &mut client, &mut sealed).await;
            drop(client);
            let _ = connection.await;
            result?
        }
        None => {
            let segments = journal.segment_first_seqs().map_err(journal_error(&dir))?;
            let cut = expired_segments(journal.reader(), segments, horizon).await?;
            if let Some(first_kept) = cut.first_kept() {
                seal(journal, first_kept, None, &dir).await?;
                sealed.push(first_kept);
            }
            (None, cut)
        }
    };
    let dropped = match cut.first_kept() {
        Some(first_kept) => {
            let j = journal.clone();
            let dropped = blocking("journal drop", move || j.drop_segments_before(first_kept))
                .await?
                .map_err(journal_error(&dir))?;
            Some(dropped)
        }
        None => None,
    };
    Ok(Outcome {
        applied: true,
        horizon,
        chain_id,
        dir,
        postgresql,
        journal: cut,
        sealed,
        dropped,
    })
}

/// PostgreSQL's part of [`apply`], and the journal's seal: returns the plan applied and
/// the journal's cut (its seal written, its segments not yet dropped).
async fn apply_pg(
    request: &Request,
    pg: &PgTarget,
    journal: &Journal,
    client: &mut Client,
    sealed: &mut Vec<u64>,
) -> Result<(Option<RetentionPlan>, JournalCut), RetentionError> {
    let dir = request.journal.dir.clone();
    let chain_id = journal.chain_id();
    let reader = journal.reader();
    catch_up(client, &reader, pg.limits).await?;
    let plan = store::pg::retention::plan(&*client, request.policy, request.now).await?;
    let mut wrote = false;
    for cut in plan.seals_needed().filter(|c| c.chain_id == chain_id) {
        seal(
            journal,
            cut.cut_seq,
            Some((cut.cut_prev_mac, cut.cut_epoch)),
            &dir,
        )
        .await?;
        sealed.push(cut.cut_seq);
        wrote = true;
    }
    for cut in plan.seals_needed().filter(|c| c.chain_id != chain_id) {
        tracing::warn!(chain = %ChainId(cut.chain_id), cut_seq = cut.cut_seq, "retention waits for the seal of another chain's writer");
    }
    if wrote {
        catch_up(client, &reader, pg.limits).await?;
    }
    let plan = store::pg::retention::apply(client, request.policy, request.now).await?;
    let segments = journal.segment_first_seqs().map_err(journal_error(&dir))?;
    let pos = position(&*client, chain_id).await?;
    let drop = pos.map_or(0, |p| journal_segments_to_drop(&segments, &p));
    let cut = JournalCut {
        basis: Basis::Replicated(pos),
        segments,
        drop,
    };
    if let Some(first_kept) = cut.first_kept() {
        seal(journal, first_kept, None, &dir).await?;
        sealed.push(first_kept);
    }
    Ok((Some(plan), cut))
}

async fn seal(
    journal: &Journal,
    cut_seq: u64,
    given: Option<([u8; 32], u32)>,
    dir: &std::path::Path,
) -> Result<(), RetentionError> {
    let j = journal.clone();
    blocking("journal seal", move || match given {
        Some((mac, epoch)) => j.seal_retention_cut_as(cut_seq, mac, epoch),
        None => j.seal_retention_cut(cut_seq),
    })
    .await?
    .map_err(journal_error(dir))?;
    Ok(())
}

/// The leading closed segments whose every entry was received before `horizon`.
async fn expired_segments(
    reader: JournalReader,
    segments: Vec<u64>,
    horizon: OffsetDateTime,
) -> Result<JournalCut, RetentionError> {
    let dir = PathBuf::new();
    let firsts = segments.clone();
    let drop = blocking("journal scan", move || {
        let mut drop = 0;
        for pair in firsts.windows(2) {
            let mut expired = true;
            for e in reader.scan_seq(pair[0]..=pair[1] - 1) {
                if e?.received_at >= horizon {
                    expired = false;
                    break;
                }
            }
            if !expired {
                break;
            }
            drop += 1;
        }
        Ok::<_, JournalError>(drop)
    })
    .await?
    .map_err(journal_error(&dir))?;
    Ok(JournalCut {
        basis: Basis::Age,
        segments,
        drop,
    })
}

fn journal_error(dir: &std::path::Path) -> impl Fn(JournalError) -> RetentionError + '_ {
    move |source| RetentionError::Journal {
        dir: dir.to_path_buf(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RetentionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| RetentionError::Task(name))
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.applied { "" } else { "would be " };
        let horizon = self
            .horizon
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.horizon.to_string());
        writeln!(
            f,
            "retention: everything received since {horizon} is kept{}",
            if self.applied {
                ""
            } else {
                " (dry run: nothing changed)"
            }
        )?;
        match &self.postgresql {
            None => writeln!(f, "postgresql: not configured")?,
            Some(plan) => {
                if plan.expired.is_empty() {
                    writeln!(f, "postgresql: no partition is past the retention")?;
                }
                for month in &plan.expired {
                    let done = if plan.dropped.contains(month) {
                        "dropped"
                    } else if self.applied {
                        "kept (not ready)"
                    } else if plan.ready() {
                        "would be dropped"
                    } else {
                        "would be dropped once every cut is sealed"
                    };
                    writeln!(f, "postgresql: partition {} {done}", month.partition_name())?;
                }
                for cut in &plan.cuts {
                    let state = match (&cut.blocked, cut.sealed_by) {
                        (Some(why), _) => format!("blocked: {why}"),
                        (None, Some(seq)) => format!("sealed by seq {seq}"),
                        (None, None) if cut.chain_id == self.chain_id => {
                            "seal needed (written by `collector retention`)".to_owned()
                        }
                        (None, None) => "seal needed from that chain's writer".to_owned(),
                    };
                    writeln!(
                        f,
                        "postgresql: chain {} cut at seq {} ({} rows {would}dropped): {state}",
                        ChainId(cut.chain_id),
                        cut.cut_seq,
                        cut.rows,
                    )?;
                }
            }
        }
        let j = &self.journal;
        let why = match &j.basis {
            Basis::Replicated(Some(p)) => format!(
                "replicated to PostgreSQL up to seq {} and sealed up to seq {}",
                p.next_seq,
                p.last_seal_seq.map_or("(none)".into(), |s| s.to_string())
            ),
            Basis::Replicated(None) => "nothing of this chain is in PostgreSQL yet".to_owned(),
            Basis::Age => {
                "a segment goes when every entry in it was received before the horizon".to_owned()
            }
        };
        match j.first_kept() {
            None => writeln!(
                f,
                "journal {}: no segment {would}dropped (of {}; {why})",
                self.dir.display(),
                j.segments.len()
            )?,
            Some(first_kept) => {
                writeln!(
                    f,
                    "journal {}: {} of {} segments {would}dropped, seq {}..={} ({why})",
                    self.dir.display(),
                    j.drop,
                    j.segments.len(),
                    j.segments[0],
                    first_kept - 1,
                )?;
                for pair in j.segments.windows(2).take(j.drop) {
                    writeln!(
                        f,
                        "  {:020}.seg  seq {}..={}",
                        pair[0],
                        pair[0],
                        pair[1] - 1
                    )?;
                }
            }
        }
        for cut in &self.sealed {
            writeln!(f, "journal: retention-cut seal written for seq {cut}")?;
        }
        if let Some(d) = &self.dropped {
            writeln!(
                f,
                "journal: {} segments dropped ({} entries); it now starts at seq {}",
                d.segments.len(),
                d.entries,
                d.first_kept
            )?;
        }
        Ok(())
    }
}
