//! `auditor verify`: checks a journal's chain end to end and says precisely what is wrong.
//!
//! Progress (entries checked, rate) is shown on a terminal and kept quiet when standard
//! error is piped.

use std::io::Write;
use std::path::Path;

use proto::verify::{Report, Verifier};
use store::journal::{JournalError, JournalReader, VerifierKeys};

use crate::audit::Ledger;
use crate::error::AuditError;
use crate::ledger::Source;
use crate::progress::Progress;

/// Verifies the journal in `dir` with the verifier keys in `keys`.
///
/// # Errors
/// The journal or the key file cannot be read, or a record cannot be read back (the
/// error names the segment and offset).
pub fn journal(dir: &Path, key_file: &Path) -> Result<Outcome, AuditError> {
    let keys = VerifierKeys::read(key_file).map_err(AuditError::key(key_file))?;
    let reader = JournalReader::open(dir).map_err(AuditError::journal(dir))?;
    if reader.chain_id() != keys.chain_id {
        return Err(AuditError::arg(
            "key",
            format!(
                "the key is for chain {} but the journal in {} holds chain {}",
                hex::encode(keys.chain_id),
                dir.display(),
                hex::encode(reader.chain_id())
            ),
        ));
    }
    let ledger = Ledger {
        keys: vec![(dir.to_path_buf(), key_file.to_path_buf())],
        ..Ledger::default()
    };
    source(&ledger, &Source::journal(dir))
}

/// Verifies one chain of the ledger, a journal or a chain in PostgreSQL, with the keys the
/// ledger has for it ([`Ledger::verifier_keys`]; without any, seq continuity only).
///
/// # Errors
/// The chain or its key file cannot be read (PostgreSQL unreachable, a journal missing).
pub fn source(ledger: &Ledger, source: &Source) -> Result<Outcome, AuditError> {
    let keys = ledger
        .verifier_keys(source)?
        .map(|k| k.verify_keys())
        .unwrap_or_default();
    let mut verifier = Verifier::new(keys);
    let mut progress = Progress::new("verifying", None);
    for located in source.scan_all()? {
        match located {
            Ok(located) => verifier.push(located.stored.into()),
            Err(AuditError::Journal {
                source: e @ (JournalError::Corrupt { .. } | JournalError::BadHeader { .. }),
                ..
            }) => {
                progress.done(verifier.report().records);
                return Ok(Outcome::Damaged {
                    report: verifier.finish(),
                    damage: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
        progress.tick(verifier.report().records);
    }
    let report = verifier.finish();
    progress.done(report.records);
    Ok(Outcome::Read(report))
}

/// What verifying a journal found.
#[derive(Debug)]
pub enum Outcome {
    /// Every record was read and checked.
    Read(Report),
    /// Reading stopped at damage the journal's checksums caught; the report covers what
    /// came before it.
    Damaged {
        /// What was checked before the damage.
        report: Report,
        /// Where and what the damage is.
        damage: String,
    },
}

impl Outcome {
    /// Whether the journal is intact.
    pub fn is_intact(&self) -> bool {
        matches!(self, Outcome::Read(r) if r.is_intact())
    }

    /// Prints the outcome for people.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Outcome::Read(report) => print(report, out),
            Outcome::Damaged { report, damage } => {
                writeln!(out, "NOT INTACT: {damage}")?;
                writeln!(out, "before the damage:")?;
                print(report, out)
            }
        }
    }
}

/// Prints a report for people: the verdict first, then each problem on its own line.
pub fn print(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let range = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!("seq {a}..={b}"),
        _ => "no entry".to_string(),
    };
    if report.is_intact() {
        writeln!(
            out,
            "intact: {} records ({range}), {} good seals",
            report.records, report.good_seals
        )?;
    } else {
        writeln!(
            out,
            "NOT INTACT: {} problem(s) in {} records ({range})",
            report.problems.len(),
            report.records
        )?;
        for p in &report.problems {
            writeln!(out, "  {p}")?;
        }
    }
    if let Some(cut) = report.retention_cut {
        writeln!(out, "retention cut: the chain is kept from seq {cut}")?;
    }
    if let Some((from, to)) = report.unsealed_tail {
        writeln!(
            out,
            "unsealed tail: seq {from}..={to} come after the last good seal; truncation there \
             cannot be excluded"
        )?;
    }
    if !report.macs_checked {
        writeln!(out, "warning: MACs were not checked (no K0)")?;
    }
    Ok(())
}
