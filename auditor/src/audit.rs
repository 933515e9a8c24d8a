//! One audit run: read the declarations, stream the events through the rule engine,
//! check the chains' integrity and retention coverage, and gather the findings.

use std::path::PathBuf;

use proto::model::Entry;
use proto::verify::{Verifier, VerifyKeys};
use store::journal::{JournalError, VerifierKeys};
use time::{Duration, OffsetDateTime};

use crate::decls::Declarations;
use crate::error::AuditError;
use crate::finding::{EntryRef, Finding, Rule, Severity};
use crate::ledger::{Merged, Source, TAG_EVENT};
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
}

impl Ledger {
    fn all_sources(&self) -> Vec<&Source> {
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

/// Runs the rules over the ledger.
///
/// # Errors
/// [`AuditError`] when a source cannot be read or an entry decoded.
pub fn run(ledger: &Ledger, cfg: RuleConfig, opts: RunOptions) -> Result<Audit, AuditError> {
    let declarations = Declarations::load(&ledger.declarations)?;
    let mut damaged = Vec::new();
    let (mut findings, sessions, stats) = {
        let mut engine = Engine::new(&declarations, cfg.clone());
        let scans = ledger
            .events
            .iter()
            .map(|s| s.scan_time(cfg.from - Duration::days(1), cfg.to + Duration::days(2)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut progress = Progress::new("checking", None);
        let mut read = 0u64;
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
                        damaged.push(f);
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
            if let Entry::Event(e) = located.decode()? {
                engine.push(located.entry_ref(), e);
            }
        }
        if opts.progress {
            progress.done(read);
        }
        engine.finish()
    };
    findings.append(&mut damaged);
    let tenant = cfg.tenant.clone().unwrap_or_else(|| "*".into());
    for source in ledger.all_sources() {
        if opts.check_chains {
            findings.extend(chain_findings(ledger, source, &tenant, cfg.to)?);
        }
        if opts.check_retention {
            findings.extend(retention_finding(source, &tenant, cfg.to)?);
        }
    }
    sort_findings(&mut findings);
    Ok(Audit {
        declarations,
        findings,
        sessions,
        stats,
        config: cfg,
    })
}

fn keys_for(ledger: &Ledger, source: &Source) -> Result<VerifyKeys, AuditError> {
    let dir = source.dir();
    let path = ledger
        .keys
        .iter()
        .find(|(d, _)| d == dir)
        .map(|(_, k)| k.clone())
        .unwrap_or_else(|| dir.join(store::journal::VERIFIER_FILE));
    if !path.exists() {
        return Ok(VerifyKeys::default());
    }
    VerifierKeys::read(&path)
        .map(|k| k.verify_keys())
        .map_err(AuditError::journal(path))
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
    let mut findings = Vec::new();
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
                let mut f = Finding::new(Rule::ChainBroken, tenant, at);
                f.facts.other = Some(source.label().to_owned());
                f.facts.note = Some(e.to_string());
                findings.push(f);
                break;
            }
        }
    }
    progress.done(n);
    let report = verifier.finish();
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
    Ok(findings)
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
    let first = match source.scan_all()?.next() {
        None => return Ok(None),
        Some(Ok(first)) => first,
        // Damage is the chain check's finding; coverage cannot be told.
        Some(Err(AuditError::Journal {
            source: JournalError::Corrupt { .. } | JournalError::BadHeader { .. },
            ..
        })) => return Ok(None),
        Some(Err(e)) => return Err(e),
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
