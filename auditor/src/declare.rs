//! Filing declarations into the auditor's own chain.
//!
//! The auditor writes its own journal (one writer per chain), created with
//! [`store::journal::init`] on first use. A batch of declarations (one from the command
//! line, a whole staff list, every window of an `.ics` file) is validated against the
//! declarations already filed and against itself, **then** appended in one durable batch,
//! all under the ledger's writer lock: an error anywhere files nothing, and nobody files
//! between the checks and the append. Every error names the file (or `command line`), the
//! line and the field.
//!
//! Checks: the vendor is registered (and not registered twice); a departure names a
//! person of the vendor's staff list in force; a window has a unique id, does not end
//! before it starts, has a known zone and a valid rule, and does not overlap a window of
//! the same vendor in force whose persons and targets intersect its own; a cancellation
//! names a window in force; emergencies and reports do not end before they start.

use std::path::{Path, PathBuf};

use proto::model::{Declaration, DeclarationBody, Entry, Schedule, Window};
use proto::recurrence::{Occurrence, Recurrence, RecurrenceError};
use store::journal::{Journal, JournalConfig, JournalError, PendingEntry};
use time::{Duration, OffsetDateTime};

use crate::decls::{Declarations, WindowDecl};
use crate::error::AuditError;
use crate::finding::EntryRef;
use crate::ledger::Source;

/// How far ahead recurring windows are compared for overlaps.
const OVERLAP_HORIZON: Duration = Duration::days(366);

/// How long opening the ledger waits for another writer to finish (another filing, an
/// access being recorded, by this process or another) before saying it is locked. The
/// lock is also held for an instant by a child process another thread starts, until that
/// child runs its program.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the lock is tried again meanwhile.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Where a declaration came from, for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, or `command line`.
    pub file: String,
    /// The line (0 for the command line).
    pub line: usize,
}

impl Origin {
    /// The command line.
    pub fn command_line() -> Self {
        Origin {
            file: "command line".into(),
            line: 0,
        }
    }

    fn err(&self, field: &str, reason: impl Into<String>) -> AuditError {
        AuditError::Input {
            file: self.file.clone(),
            line: self.line,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Who files, for which tenant, into which ledger, and when.
#[derive(Debug, Clone)]
pub struct Filer {
    /// The auditor's journal directory (created on first use).
    pub ledger: PathBuf,
    /// The establishment.
    pub tenant: String,
    /// Who files.
    pub filed_by: String,
    /// When (now, for the command line).
    pub filed_at: OffsetDateTime,
}

/// Opens the auditor's journal for writing, creating it if `dir` is missing or empty;
/// waits up to [`LOCK_WAIT`] for another writer to close it.
///
/// # Errors
/// [`AuditError::Journal`].
pub fn open_ledger(dir: &Path) -> Result<Journal, AuditError> {
    let fresh = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(AuditError::io(dir)(e)),
    };
    if fresh {
        store::journal::init(dir).map_err(AuditError::journal(dir))?;
        tracing::info!(dir = %dir.display(), "auditor ledger created");
    }
    let mut config = JournalConfig::new(dir);
    config.seal_interval = None;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match Journal::open(config.clone()) {
            Err(JournalError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            opened => return opened.map(|(j, _)| j).map_err(AuditError::journal(dir)),
        }
    }
}

/// Reads the declarations already in a ledger (none if it does not exist yet).
///
/// # Errors
/// [`AuditError`] when it cannot be read.
pub fn existing(dir: &Path) -> Result<Declarations, AuditError> {
    let has_segments = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .unwrap_or(false);
    if !has_segments {
        return Ok(Declarations::default());
    }
    Declarations::load(&[Source::journal(dir)])
}

/// Validates and files a batch of declarations; returns their seqs.
///
/// # Errors
/// [`AuditError::Input`] for the first declaration refused (nothing is filed), or
/// [`AuditError::Journal`] when the ledger cannot be written.
pub fn file(filer: &Filer, batch: Vec<(Origin, DeclarationBody)>) -> Result<Vec<u64>, AuditError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // Lock the ledger (one writer) before reading it, so nobody files between the checks
    // and the append.
    let journal = open_ledger(&filer.ledger)?;
    let mut decls = existing(&filer.ledger)?;
    let mut entries = Vec::with_capacity(batch.len());
    for (i, (origin, body)) in batch.into_iter().enumerate() {
        validate(&decls, &filer.tenant, &origin, &body)?;
        let declaration = Declaration {
            tenant: filer.tenant.clone(),
            filed_by: filer.filed_by.clone(),
            filed_at: filer.filed_at,
            body,
        };
        decls.add(
            EntryRef {
                ledger: "pending".into(),
                seq: i as u64,
            },
            declaration.clone(),
        );
        entries.push(PendingEntry {
            canonical: proto::canonical::encode(&Entry::Declaration(declaration)),
            received_at: filer.filed_at,
        });
    }
    let links = journal
        .append(entries)
        .map_err(AuditError::journal(&filer.ledger))?;
    journal
        .close()
        .map_err(AuditError::journal(&filer.ledger))?;
    Ok(links.iter().map(|l| l.seq).collect())
}

/// Records in the ledger that someone read or exported part of it.
///
/// # Errors
/// As [`file`].
pub fn record_access(filer: &Filer, action: &str, scope: &str) -> Result<Vec<u64>, AuditError> {
    file(
        filer,
        vec![(
            Origin::command_line(),
            DeclarationBody::AccessRecorded {
                action: action.into(),
                scope: scope.into(),
            },
        )],
    )
}

fn recurrence_field(e: &RecurrenceError) -> &'static str {
    match e {
        RecurrenceError::UnknownZone { .. } => "zone",
        RecurrenceError::InvalidLocalDateTime { .. } => "first_start",
        RecurrenceError::ZeroDuration | RecurrenceError::DurationTooLong { .. } => "duration",
        _ => "rrule",
    }
}

fn validate(
    decls: &Declarations,
    tenant: &str,
    origin: &Origin,
    body: &DeclarationBody,
) -> Result<(), AuditError> {
    let vendor = body.vendor();
    if let Some(vendor) = vendor {
        if vendor.trim().is_empty() {
            return Err(origin.err("vendor", "empty"));
        }
        let registered = decls.is_registered(tenant, vendor);
        match body {
            DeclarationBody::VendorRegistered { .. } if registered => {
                return Err(origin.err("vendor", format!("vendor {vendor} is already registered")));
            }
            DeclarationBody::VendorRegistered { .. } => {}
            _ if !registered => {
                return Err(origin.err(
                    "vendor",
                    format!("unknown vendor {vendor} for tenant {tenant}: register it first"),
                ));
            }
            _ => {}
        }
    }
    let vd = vendor.and_then(|v| decls.vendor(tenant, v));
    match body {
        DeclarationBody::StaffList { persons, .. } if persons.is_empty() => {
            Err(origin.err("persons", "the staff list is empty"))
        }
        DeclarationBody::Departure { person, .. } => {
            let listed = vd
                .and_then(|v| v.staff_lists.last())
                .is_some_and(|l| l.value.iter().any(|m| &m.person == person));
            if listed {
                Ok(())
            } else {
                Err(origin.err(
                    "person",
                    format!("{person} is not on the vendor's staff list"),
                ))
            }
        }
        DeclarationBody::WindowGranted(w) => validate_window(decls, tenant, origin, w),
        DeclarationBody::WindowCancelled { window_id, .. } => {
            let live = vd.is_some_and(|v| {
                v.windows
                    .iter()
                    .any(|w| &w.grant.value.id == window_id && w.cancelled.is_none())
            });
            if live {
                Ok(())
            } else {
                Err(origin.err(
                    "window_id",
                    format!("no window {window_id} in force for this vendor"),
                ))
            }
        }
        DeclarationBody::Emergency {
            starts_at, ends_at, ..
        } if ends_at <= starts_at => Err(origin.err("end", "the emergency ends before it starts")),
        DeclarationBody::InterventionReport {
            started_at,
            ended_at,
            persons,
            window_id,
            ..
        } => {
            if ended_at < started_at {
                return Err(origin.err("end", "the intervention ends before it starts"));
            }
            if persons.is_empty() {
                return Err(origin.err("persons", "a report names the persons who intervened"));
            }
            if let Some(id) = window_id
                && !vd.is_some_and(|v| v.windows.iter().any(|w| &w.grant.value.id == id))
            {
                return Err(origin.err("window_id", format!("no window {id} for this vendor")));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_window(
    decls: &Declarations,
    tenant: &str,
    origin: &Origin,
    w: &Window,
) -> Result<(), AuditError> {
    if w.id.trim().is_empty() {
        return Err(origin.err("id", "empty"));
    }
    if decls
        .vendors()
        .any(|(t, _, v)| t == tenant && v.windows.iter().any(|x| x.grant.value.id == w.id))
    {
        return Err(origin.err("id", format!("window id {} is already used", w.id)));
    }
    if w.approver.trim().is_empty() {
        return Err(origin.err("approver", "empty"));
    }
    let recurrence = Recurrence::from_schedule(&w.schedule)
        .map_err(|e| origin.err(recurrence_field(&e), e.to_string()))?;
    let new_occurrences: Vec<Occurrence> = match (&w.schedule, &recurrence) {
        (Schedule::OneOff { starts_at, ends_at }, _) => {
            if ends_at <= starts_at {
                return Err(origin.err("end", "the window ends before it starts"));
            }
            vec![Occurrence {
                start: *starts_at,
                end: *ends_at,
            }]
        }
        (Schedule::Recurring { .. }, Some(r)) => {
            let first = r
                .occurrences(
                    OffsetDateTime::UNIX_EPOCH,
                    OffsetDateTime::UNIX_EPOCH + Duration::days(365 * 300),
                )
                .next();
            match first {
                Some(first) => r
                    .occurrences(first.start, first.start + OVERLAP_HORIZON)
                    .take(2000)
                    .collect(),
                None => Vec::new(),
            }
        }
        (Schedule::Recurring { .. }, None) => Vec::new(),
    };
    let Some(vd) = decls.vendor(tenant, &w.vendor) else {
        return Ok(());
    };
    for other in vd.windows.iter().filter(|x| x.cancelled.is_none()) {
        if !scopes_intersect(w, &other.grant.value) {
            continue;
        }
        if let Some(o) = new_occurrences.iter().find(|o| overlaps(other, o)) {
            return Err(origin.err(
                "schedule",
                format!(
                    "overlaps window {} on {}",
                    other.grant.value.id,
                    crate::time_fmt::paris(o.start)
                ),
            ));
        }
    }
    Ok(())
}

fn scopes_intersect(a: &Window, b: &Window) -> bool {
    let meet = |x: &[String], y: &[String]| {
        x.is_empty() || y.is_empty() || x.iter().any(|i| y.contains(i))
    };
    meet(&a.persons, &b.persons) && meet(&a.targets, &b.targets)
}

fn overlaps(w: &WindowDecl, o: &Occurrence) -> bool {
    match (&w.grant.value.schedule, &w.recurrence) {
        (Schedule::OneOff { starts_at, ends_at }, _) => *starts_at < o.end && o.start < *ends_at,
        (Schedule::Recurring { .. }, Some(r)) => r.occurrences(o.start, o.end).next().is_some(),
        (Schedule::Recurring { .. }, None) => false,
    }
}

/// Reads the windows of an `.ics` file for a vendor.
///
/// # Errors
/// [`AuditError::Input`] naming the file, the line and the property.
pub fn windows_from_ics(
    path: &str,
    text: &str,
    template: &Window,
) -> Result<Vec<(Origin, DeclarationBody)>, AuditError> {
    use proto::ics::IcsError;
    let events = proto::ics::parse(text, proto::calendar::PARIS).map_err(|e| {
        let (line, field, reason) = match &e {
            IcsError::Syntax { line, reason } => (*line, "line".to_owned(), reason.to_string()),
            IcsError::Structure { line, reason } => (*line, "component".into(), reason.clone()),
            IcsError::Missing { line, property } => (*line, (*property).into(), "missing".into()),
            IcsError::Property {
                line,
                property,
                reason,
            } => (*line, property.clone(), reason.clone()),
            IcsError::Recurrence {
                line,
                property,
                error,
            } => (*line, (*property).into(), error.to_string()),
            other => (0, "file".into(), other.to_string()),
        };
        AuditError::Input {
            file: path.to_owned(),
            line,
            field,
            reason,
        }
    })?;
    if events.is_empty() {
        return Err(AuditError::Input {
            file: path.to_owned(),
            line: 0,
            field: "VEVENT".into(),
            reason: "no window in the calendar".into(),
        });
    }
    Ok(events
        .into_iter()
        .map(|ev| {
            let reason = ev
                .summary
                .or(ev.description)
                .unwrap_or_else(|| template.reason.clone());
            (
                Origin {
                    file: path.to_owned(),
                    line: ev.line,
                },
                DeclarationBody::WindowGranted(Window {
                    id: ev.uid,
                    reason,
                    schedule: ev.schedule,
                    ..template.clone()
                }),
            )
        })
        .collect())
}
