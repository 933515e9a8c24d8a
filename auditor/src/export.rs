//! A vendor's connection journal, and the export bundle that verifies offline.
//!
//! The journal lists the vendor's sessions (who, account, from where, to what, start,
//! end, duration, factors, window matched) as CSV or JSON.
//!
//! The bundle is a line-based JSON file (one JSON object per line). It holds one section
//! per chain read; each section carries every record of its chain from seq 0 (or the
//! retention cut) to the end: the vendor's entries in the range, the entries of its
//! sessions (also those that named no vendor but were attributed to its staff)
//! and every seal **in full**, everything else **as its digest** only, so the MAC chain and
//! the seals still verify end to end ([`proto::verify::Body::Redacted`]) and nothing of
//! other vendors is disclosed.
//!
//! ```text
//! {"bundle":"vigie-export","version":1,"vendor":"acme","from":"…","to":"…","made_at":"…"}
//! {"section":"events","chain_id":"<hex 16>","public_key":"<hex 32>"}
//! {"seq":0,"epoch":0,"mac":"<hex 32>","entry":"<hex canonical bytes>"}
//! {"seq":1,"epoch":0,"mac":"<hex 32>","digest":"<hex 32>"}
//! {"section":"declarations","chain_id":"…","public_key":"…"}
//! …
//! ```
//!
//! `auditor verify --bundle FILE [--key verifier.key]` checks every section with
//! [`proto::verify::Verifier`]: MACs when a key file (with `K_0`) is given, seal
//! signatures with its public key (or, failing that, with the one the bundle states —
//! which only proves the bundle is self-consistent).

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

use proto::chain::Link;
use proto::model::Entry;
use proto::verify::{Body, Record, Report, Verifier, VerifyKeys};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::Ledger;
use crate::error::AuditError;
use crate::ledger::{TAG_DECLARATION, TAG_EVENT, TAG_SEAL};
use crate::progress::Progress;
use crate::report::csv_field;
use crate::rules::SessionRecord;
use crate::time_fmt::rfc3339;

/// Writes a vendor's sessions as CSV.
///
/// Columns: `tenant,person,account,source_addr,target,protocol,start,end,duration_seconds,factors,window,emergency,source,entries`.
///
/// # Errors
/// [`AuditError::Output`].
pub fn journal_csv(sessions: &[SessionRecord], out: &mut impl Write) -> Result<(), AuditError> {
    let w = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(
            out,
            "tenant,person,account,source_addr,target,protocol,start,end,duration_seconds,factors,window,emergency,source,entries"
        )?;
        for s in sessions {
            let factors: Vec<String> = s.factors.iter().map(factor_name).collect();
            let entries: Vec<String> = s.entries.iter().map(ToString::to_string).collect();
            let fields = [
                s.tenant.clone(),
                s.person.clone().unwrap_or_default(),
                s.account.clone().unwrap_or_default(),
                s.source_addr.clone().unwrap_or_default(),
                s.target.clone().unwrap_or_default(),
                s.protocol.clone().unwrap_or_default(),
                rfc3339(s.start),
                s.end.map(rfc3339).unwrap_or_default(),
                s.end
                    .map(|e| (e - s.start).whole_seconds().to_string())
                    .unwrap_or_default(),
                factors.join(" "),
                s.window.clone().unwrap_or_default(),
                s.emergency.to_string(),
                s.source.clone(),
                entries.join(" "),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))?;
        }
        Ok(())
    };
    w(out).map_err(AuditError::Output)
}

#[derive(Serialize)]
struct JsonSession<'a> {
    #[serde(flatten)]
    session: &'a SessionRecord,
    duration_seconds: Option<i64>,
}

/// Writes a vendor's sessions as a JSON array.
///
/// # Errors
/// [`AuditError::Output`].
pub fn journal_json(sessions: &[SessionRecord], out: &mut impl Write) -> Result<(), AuditError> {
    let rows: Vec<JsonSession<'_>> = sessions
        .iter()
        .map(|s| JsonSession {
            session: s,
            duration_seconds: s.end.map(|e| (e - s.start).whole_seconds()),
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| AuditError::Output(e.into()))?;
    writeln!(out).map_err(AuditError::Output)
}

fn factor_name(f: &proto::model::AuthFactor) -> String {
    use proto::model::AuthFactor as F;
    match f {
        F::Password => "password".into(),
        F::PublicKey => "public_key".into(),
        F::Certificate => "certificate".into(),
        F::Otp => "otp".into(),
        F::Push => "push".into(),
        F::HardwareKey => "hardware_key".into(),
        F::Kerberos => "kerberos".into(),
        F::Other(name) => format!("other:{name}"),
    }
}

/// The first line of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleHeader {
    /// Always `vigie-export`.
    pub bundle: String,
    /// Format version (1).
    pub version: u32,
    /// The vendor exported.
    pub vendor: String,
    /// The establishment whose entries are in full (absent: every establishment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range (RFC 3339).
    pub to: String,
    /// When the bundle was made.
    pub made_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SectionLine {
    section: String,
    chain_id: String,
    public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordLine {
    seq: u64,
    epoch: u32,
    mac: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    entry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    digest: Option<String>,
}

/// How many records a bundle holds in full and as digests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleStats {
    /// Records in full.
    pub full: u64,
    /// Records as digests.
    pub redacted: u64,
}

/// What an export bundle holds in full.
#[derive(Debug, Clone, Copy)]
pub struct BundleScope<'a> {
    /// The vendor exported.
    pub vendor: &'a str,
    /// Only this establishment's entries in full (an RSSI's bundle); `None`: every one.
    pub tenant: Option<&'a str>,
    /// Start of the range (received time).
    pub from: OffsetDateTime,
    /// End of the range (excluded).
    pub to: OffsetDateTime,
    /// The vendor's sessions, as its journal lists them ([`crate::audit::run_journal`]):
    /// their entries are in full too, as some name no vendor (a connection attributed to
    /// the vendor's staff by its account or person).
    pub sessions: &'a [SessionRecord],
}

/// Writes the export bundle of `scope` (made at `made_at`).
///
/// # Errors
/// [`AuditError`] when a source cannot be read or the output written.
pub fn write_bundle(
    ledger: &Ledger,
    scope: BundleScope<'_>,
    made_at: OffsetDateTime,
    out: &mut impl Write,
) -> Result<BundleStats, AuditError> {
    let BundleScope {
        vendor,
        tenant,
        from,
        to,
        sessions,
    } = scope;
    let of_sessions: HashSet<(&str, u64)> = (sessions.iter())
        .flat_map(|s| s.entries.iter())
        .map(|e| (&*e.ledger, e.seq))
        .collect();
    let header = BundleHeader {
        bundle: "vigie-export".into(),
        version: 1,
        vendor: vendor.into(),
        tenant: tenant.map(str::to_owned),
        from: rfc3339(from),
        to: rfc3339(to),
        made_at: rfc3339(made_at),
    };
    let line = |out: &mut dyn Write, v: &dyn erased::Ser| -> Result<(), AuditError> {
        out.write_all(v.json().as_bytes())
            .map_err(AuditError::Output)?;
        out.write_all(b"\n").map_err(AuditError::Output)
    };
    line(out, &header)?;
    let mut stats = BundleStats::default();
    let mut progress = Progress::new("exporting", None);
    for source in ledger.all_sources() {
        let chain_id = source.chain_id()?;
        let public_key = ledger
            .verifier_keys(source)
            .ok()
            .flatten()
            .map(|k| hex::encode(k.public_key));
        line(
            out,
            &SectionLine {
                section: source.label().to_owned(),
                chain_id: hex::encode(chain_id),
                public_key,
            },
        )?;
        for located in source.scan_all()? {
            let located = located?;
            let s = &located.stored;
            let in_range = from <= s.received_at && s.received_at < to;
            let full = match located.tag() {
                TAG_SEAL => true,
                TAG_EVENT | TAG_DECLARATION if in_range => {
                    let entry = located.decode()?;
                    let ours = match &entry {
                        Entry::Event(e) => {
                            e.vendor.as_deref() == Some(vendor)
                                || of_sessions.contains(&(source.label(), s.link.seq))
                        }
                        Entry::Declaration(d) => d.body.vendor() == Some(vendor),
                        Entry::Seal(_) => true,
                    };
                    ours && tenant.is_none_or(|t| entry.tenant().is_none_or(|et| et == t))
                }
                _ => false,
            };
            let rec = RecordLine {
                seq: s.link.seq,
                epoch: s.link.epoch,
                mac: hex::encode(s.link.mac),
                entry: full.then(|| hex::encode(&s.canonical)),
                digest: (!full).then(|| hex::encode(proto::chain::digest(&s.canonical))),
            };
            if full {
                stats.full += 1;
            } else {
                stats.redacted += 1;
            }
            line(out, &rec)?;
            progress.tick(stats.full + stats.redacted);
        }
    }
    progress.done(stats.full + stats.redacted);
    Ok(stats)
}

mod erased {
    //! Serialising heterogeneous lines through one closure.
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

/// What verifying a bundle found, per section.
#[derive(Debug)]
pub struct BundleOutcome {
    /// The header.
    pub header: BundleHeader,
    /// Each section's label, and its report.
    pub sections: Vec<(String, Report)>,
    /// Whether a section was checked with the public key the bundle states (no key file
    /// for its chain): its MACs were not checked, its seals only against itself.
    pub self_stated_keys: bool,
}

impl BundleOutcome {
    /// Whether every section is intact.
    pub fn is_intact(&self) -> bool {
        !self.sections.is_empty() && self.sections.iter().all(|(_, r)| r.is_intact())
    }

    /// Prints the outcome for people.
    ///
    /// # Errors
    /// When writing fails.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "bundle for vendor {} from {} to {}, made {}",
            self.header.vendor, self.header.from, self.header.to, self.header.made_at
        )?;
        if self.self_stated_keys {
            writeln!(
                out,
                "warning: a section without its verifier key was checked with the public key the bundle states (no MACs); give --key for each chain"
            )?;
        }
        for (label, report) in &self.sections {
            write!(out, "[{label}] ")?;
            crate::verify::print(report, out)?;
            writeln!(
                out,
                "[{label}] {} records redacted to digests",
                report.redacted
            )?;
        }
        Ok(())
    }
}

fn hex_array<const N: usize>(
    path: &Path,
    line: usize,
    what: &str,
    text: &str,
) -> Result<[u8; N], AuditError> {
    hex::decode(text)
        .ok()
        .and_then(|v| <[u8; N]>::try_from(v).ok())
        .ok_or_else(|| AuditError::Bundle {
            path: path.to_path_buf(),
            line,
            reason: format!("{what} is not {N} bytes of hex"),
        })
}

/// Verifies an export bundle. Each of `keys` (`verifier.key` files) gives `K_0` and the
/// public key of the chain with the same id; a section without one is checked with the
/// public key it states (seals only, reported by [`BundleOutcome::self_stated_keys`]).
///
/// # Errors
/// [`AuditError::Bundle`] when the file is malformed (naming the line), [`AuditError::Io`].
pub fn verify_bundle(
    path: &Path,
    keys: &[store::journal::VerifierKeys],
) -> Result<BundleOutcome, AuditError> {
    let file = std::fs::File::open(path).map_err(AuditError::io(path))?;
    let reader = std::io::BufReader::new(file);
    let bad = |line: usize, reason: String| AuditError::Bundle {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut header: Option<BundleHeader> = None;
    let mut sections: Vec<(String, Report)> = Vec::new();
    let mut current: Option<(String, Verifier)> = None;
    let mut self_stated = false;
    let mut progress = Progress::new("verifying", None);
    let mut n = 0u64;
    for (i, text) in reader.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(AuditError::io(path))?;
        if text.trim().is_empty() {
            continue;
        }
        let Some(h) = &header else {
            let h: BundleHeader = serde_json::from_str(&text)
                .map_err(|e| bad(line, format!("not a bundle header: {e}")))?;
            if h.bundle != "vigie-export" || h.version != 1 {
                return Err(bad(
                    line,
                    format!("unsupported bundle {} version {}", h.bundle, h.version),
                ));
            }
            header = Some(h);
            continue;
        };
        let _ = h;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(line, format!("invalid JSON: {e}")))?;
        if value.get("section").is_some() {
            let s: SectionLine = serde_json::from_value(value)
                .map_err(|e| bad(line, format!("invalid section: {e}")))?;
            let chain_id: [u8; 16] = hex_array(path, line, "chain_id", &s.chain_id)?;
            let vk = match keys.iter().find(|k| k.chain_id == chain_id) {
                Some(k) => k.verify_keys(),
                None => {
                    let public_key = match &s.public_key {
                        Some(pk) => {
                            self_stated = true;
                            Some(hex_array(path, line, "public_key", pk)?)
                        }
                        None => None,
                    };
                    VerifyKeys {
                        k0: None,
                        public_key,
                        chain_id: Some(chain_id),
                    }
                }
            };
            if let Some((label, v)) = current.take() {
                sections.push((label, v.finish()));
            }
            current = Some((s.section, Verifier::new(vk)));
            continue;
        }
        let r: RecordLine =
            serde_json::from_value(value).map_err(|e| bad(line, format!("invalid record: {e}")))?;
        let Some((_, verifier)) = current.as_mut() else {
            return Err(bad(line, "record before any section".into()));
        };
        let body = match (&r.entry, &r.digest) {
            (Some(entry), None) => Body::Full(
                hex::decode(entry).map_err(|e| bad(line, format!("entry is not hex: {e}")))?,
            ),
            (None, Some(d)) => Body::Redacted(hex_array(path, line, "digest", d)?),
            _ => {
                return Err(bad(
                    line,
                    "a record has exactly one of entry and digest".into(),
                ));
            }
        };
        verifier.push(Record {
            link: Link {
                seq: r.seq,
                epoch: r.epoch,
                mac: hex_array(path, line, "mac", &r.mac)?,
            },
            body,
        });
        n += 1;
        progress.tick(n);
    }
    progress.done(n);
    if let Some((label, v)) = current.take() {
        sections.push((label, v.finish()));
    }
    let header = header.ok_or_else(|| bad(1, "empty bundle".into()))?;
    Ok(BundleOutcome {
        header,
        sections,
        self_stated_keys: self_stated,
    })
}
