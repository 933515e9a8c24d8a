//! The declarations of the ledger, indexed per (tenant, vendor), and what is in force at
//! an instant.
//!
//! Declarations are few (thousands of windows, not millions of events): they are read
//! whole before the events are streamed, so a connection can be judged against what was
//! in force when it happened *and* against what was filed later ("authorised after the
//! fact"). A declaration is in force from its `filed_at`; a window stops being in force
//! when a cancellation of its id is filed. Departures, emergencies and intervention
//! reports count whenever they were filed: their own dates are the facts (a departure
//! declared late still makes later connections breaches; an emergency is declared after
//! it; a report after the intervention, its filing date judged by the report rules).
//!
//! Recurring windows are expanded lazily through [`OccurrenceCache`]: occurrences are
//! computed per window and per 30-day chunk when a connection first needs them, and old
//! chunks are dropped as the stream moves on.

use std::collections::HashMap;

use proto::model::{Declaration, DeclarationBody, Schedule, StaffMember, Window};
use proto::recurrence::{Occurrence, Recurrence};
use time::OffsetDateTime;

use crate::error::AuditError;
use crate::finding::EntryRef;
use crate::ledger::{Located, Source, TAG_DECLARATION};

/// A declaration's value with where and when it was filed.
#[derive(Debug, Clone)]
pub struct Filed<T> {
    /// The entry.
    pub entry: EntryRef,
    /// When it was filed.
    pub filed_at: OffsetDateTime,
    /// Who filed it.
    pub filed_by: String,
    /// What it declares.
    pub value: T,
}

/// A granted window, validated.
#[derive(Debug, Clone)]
pub struct WindowDecl {
    /// The grant.
    pub grant: Filed<Window>,
    /// Its recurrence, for a recurring window.
    pub recurrence: Option<Recurrence>,
    /// The cancellation, once filed: when and which entry.
    pub cancelled: Option<(OffsetDateTime, EntryRef)>,
    /// A number unique among the ledger's windows (the occurrence cache's key).
    pub uid: usize,
}

impl WindowDecl {
    /// Whether the window is in force at `t` (filed, not yet cancelled).
    pub fn in_force(&self, t: OffsetDateTime) -> bool {
        self.grant.filed_at <= t && self.cancelled.as_ref().is_none_or(|(c, _)| *c > t)
    }

    /// Whether the window applies to this person and target.
    pub fn applies_to(&self, person: Option<&str>, target: Option<&str>) -> bool {
        let w = &self.grant.value;
        (w.persons.is_empty() || person.is_some_and(|p| w.persons.iter().any(|x| x == p)))
            && (w.targets.is_empty() || target.is_some_and(|t| w.targets.iter().any(|x| x == t)))
    }

    /// This window (number `index` of its vendor) as the match of a connection at `t` by
    /// `who` (person, target): when it applies, is open at `t`, and is in force at `t` or,
    /// when `in_force` is false, was granted after `t` and never cancelled.
    pub(crate) fn covering(
        &self,
        index: usize,
        cache: &mut OccurrenceCache,
        t: OffsetDateTime,
        who: (Option<&str>, Option<&str>),
        in_force: bool,
    ) -> Option<WindowMatch> {
        let eligible = if in_force {
            self.in_force(t)
        } else {
            // Granted after the fact, and not withdrawn since.
            self.grant.filed_at > t && self.cancelled.is_none()
        };
        if !eligible || !self.applies_to(who.0, who.1) {
            return None;
        }
        let occurrence = match (&self.grant.value.schedule, &self.recurrence) {
            (Schedule::OneOff { starts_at, ends_at }, _) => {
                let o = Occurrence {
                    start: *starts_at,
                    end: *ends_at,
                };
                o.contains(t).then_some(o)
            }
            (Schedule::Recurring { .. }, Some(r)) => cache.covering(self.uid, r, t),
            (Schedule::Recurring { .. }, None) => None,
        }?;
        Some(WindowMatch {
            index,
            id: self.grant.value.id.clone(),
            occurrence,
            entry: self.grant.entry.clone(),
            filed_at: self.grant.filed_at,
        })
    }
}

/// A declared emergency.
#[derive(Debug, Clone)]
pub struct EmergencyDecl {
    /// The person, when given.
    pub person: Option<String>,
    /// The target, when given.
    pub target: Option<String>,
    /// Start.
    pub starts_at: OffsetDateTime,
    /// End.
    pub ends_at: OffsetDateTime,
    /// Why.
    pub reason: String,
}

/// A filed intervention report.
#[derive(Debug, Clone)]
pub struct ReportDecl {
    /// The window it covers.
    pub window_id: Option<String>,
    /// Start of the intervention.
    pub started_at: OffsetDateTime,
    /// End of the intervention.
    pub ended_at: OffsetDateTime,
    /// Persons who intervened (empty: all).
    pub persons: Vec<String>,
}

/// A departure.
#[derive(Debug, Clone)]
pub struct DepartureDecl {
    /// The person.
    pub person: String,
    /// From when they may not connect.
    pub effective_at: OffsetDateTime,
}

/// Everything declared for one vendor of one tenant.
#[derive(Debug, Clone, Default)]
pub struct VendorDecls {
    /// The registration.
    pub registered: Option<Filed<String>>,
    /// Staff lists, in filing order.
    pub staff_lists: Vec<Filed<Vec<StaffMember>>>,
    /// Departures.
    pub departures: Vec<Filed<DepartureDecl>>,
    /// Windows, in filing order.
    pub windows: Vec<WindowDecl>,
    /// Emergencies.
    pub emergencies: Vec<Filed<EmergencyDecl>>,
    /// Intervention reports.
    pub reports: Vec<Filed<ReportDecl>>,
}

impl VendorDecls {
    /// The staff list in force at `t`: the last one filed at or before it.
    pub fn staff_list_at(&self, t: OffsetDateTime) -> Option<&Filed<Vec<StaffMember>>> {
        self.staff_lists.iter().rev().find(|l| l.filed_at <= t)
    }

    /// The departure of `person` effective at or before `t`, if any (whenever filed: the
    /// declared date is the fact).
    pub fn departure_of(&self, person: &str, t: OffsetDateTime) -> Option<&Filed<DepartureDecl>> {
        self.departures
            .iter()
            .filter(|d| d.value.person == person && d.value.effective_at <= t)
            .min_by_key(|d| d.value.effective_at)
    }

    /// The emergency in force covering a connection, if any.
    pub fn emergency_at(
        &self,
        t: OffsetDateTime,
        person: Option<&str>,
        target: Option<&str>,
    ) -> Option<&Filed<EmergencyDecl>> {
        self.emergencies.iter().find(|e| {
            let v = &e.value;
            v.starts_at <= t
                && t < v.ends_at
                && v.person.as_deref().is_none_or(|p| Some(p) == person)
                && v.target.as_deref().is_none_or(|x| Some(x) == target)
        })
    }
}

/// Where a connection's window was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMatch {
    /// Index of the window in its [`VendorDecls::windows`].
    pub index: usize,
    /// The window's id.
    pub id: String,
    /// The occurrence covering the instant.
    pub occurrence: Occurrence,
    /// The grant's entry.
    pub entry: EntryRef,
    /// When the grant was filed.
    pub filed_at: OffsetDateTime,
}

/// The declarations of a ledger.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    vendors: HashMap<String, HashMap<String, VendorDecls>>,
    windows: usize,
    /// Access records (who exported or reported what), kept for completeness.
    pub access: Vec<Filed<(String, String)>>,
    /// Declarations read.
    pub count: u64,
}

/// Occurrences of recurring windows, computed per 30-day chunk on demand.
#[derive(Debug, Default)]
pub struct OccurrenceCache {
    chunks: HashMap<(usize, i64), Vec<Occurrence>>,
    newest_chunk: i64,
}

const CHUNK_SECONDS: i64 = 30 * 86_400;

impl OccurrenceCache {
    /// The occurrence of the recurring window `uid` covering `t`, if any.
    pub(crate) fn covering(
        &mut self,
        uid: usize,
        recurrence: &Recurrence,
        t: OffsetDateTime,
    ) -> Option<Occurrence> {
        let chunk = t.unix_timestamp().div_euclid(CHUNK_SECONDS);
        if chunk > self.newest_chunk {
            self.newest_chunk = chunk;
            // Events come in time order: chunks two behind are not needed any more.
            self.chunks.retain(|k, _| k.1 + 1 >= chunk);
        }
        let occs = self.chunks.entry((uid, chunk)).or_insert_with(|| {
            let from = OffsetDateTime::from_unix_timestamp(chunk * CHUNK_SECONDS)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let to = from + time::Duration::seconds(CHUNK_SECONDS);
            recurrence.occurrences(from, to).collect()
        });
        // Starts increase and every occurrence has the same wall-clock length, so ends
        // increase too: only the last occurrences starting at or before `t` can hold it.
        let after = occs.partition_point(|o| o.start <= t);
        occs[..after]
            .iter()
            .rev()
            .take(2)
            .find(|o| o.contains(t))
            .copied()
    }
}

impl Declarations {
    /// Reads every declaration of the sources.
    ///
    /// # Errors
    /// [`AuditError`] when a source cannot be read or a declaration decoded.
    pub fn load(sources: &[Source]) -> Result<Declarations, AuditError> {
        let mut decls = Declarations::default();
        for source in sources {
            for located in source.scan_all()? {
                let located = located?;
                if located.tag() == TAG_DECLARATION {
                    decls.add_located(&located)?;
                }
            }
        }
        Ok(decls)
    }

    /// Adds a declaration read from the ledger.
    ///
    /// # Errors
    /// [`AuditError::Decode`] when it cannot be decoded.
    pub fn add_located(&mut self, located: &Located) -> Result<(), AuditError> {
        if let proto::model::Entry::Declaration(d) = located.decode()? {
            self.add(located.entry_ref(), d);
        }
        Ok(())
    }

    /// Adds a declaration. A recurring window whose rule does not validate is kept out
    /// (filing refuses such windows; one in the ledger cannot open anything).
    pub fn add(&mut self, entry: EntryRef, d: Declaration) {
        self.count += 1;
        let Declaration {
            tenant,
            filed_by,
            filed_at,
            body,
        } = d;
        macro_rules! filed {
            ($value:expr) => {
                Filed {
                    entry: entry.clone(),
                    filed_at,
                    filed_by: filed_by.clone(),
                    value: $value,
                }
            };
        }
        if let DeclarationBody::AccessRecorded { action, scope } = body {
            self.access.push(filed!((action, scope)));
            return;
        }
        let Some(vendor) = body.vendor().map(str::to_owned) else {
            return;
        };
        let v = self
            .vendors
            .entry(tenant)
            .or_default()
            .entry(vendor)
            .or_default();
        match body {
            DeclarationBody::VendorRegistered { name, .. } => {
                if v.registered.is_none() {
                    v.registered = Some(filed!(name));
                }
            }
            DeclarationBody::StaffList { persons, .. } => v.staff_lists.push(filed!(persons)),
            DeclarationBody::Departure {
                person,
                effective_at,
                ..
            } => v.departures.push(filed!(DepartureDecl {
                person,
                effective_at,
            })),
            DeclarationBody::WindowGranted(w) => {
                let recurrence = match Recurrence::from_schedule(&w.schedule) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(window = %w.id, error = %e, "window in the ledger does not validate");
                        return;
                    }
                };
                v.windows.push(WindowDecl {
                    grant: filed!(w),
                    recurrence,
                    cancelled: None,
                    uid: self.windows,
                });
                self.windows += 1;
            }
            DeclarationBody::WindowCancelled { window_id, .. } => {
                for w in v
                    .windows
                    .iter_mut()
                    .filter(|w| w.grant.value.id == window_id)
                {
                    if w.cancelled.is_none() {
                        w.cancelled = Some((filed_at, entry.clone()));
                    }
                }
            }
            DeclarationBody::Emergency {
                person,
                target,
                starts_at,
                ends_at,
                reason,
                ..
            } => v.emergencies.push(filed!(EmergencyDecl {
                person,
                target,
                starts_at,
                ends_at,
                reason,
            })),
            DeclarationBody::InterventionReport {
                window_id,
                started_at,
                ended_at,
                persons,
                ..
            } => v.reports.push(filed!(ReportDecl {
                window_id,
                started_at,
                ended_at,
                persons,
            })),
            DeclarationBody::AccessRecorded { .. } => {}
        }
    }

    /// The declarations of a vendor of a tenant.
    pub fn vendor(&self, tenant: &str, vendor: &str) -> Option<&VendorDecls> {
        self.vendors.get(tenant)?.get(vendor)
    }

    /// Every (tenant, vendor) with declarations.
    pub fn vendors(&self) -> impl Iterator<Item = (&str, &str, &VendorDecls)> {
        self.vendors.iter().flat_map(|(t, by_vendor)| {
            by_vendor
                .iter()
                .map(move |(v, decls)| (t.as_str(), v.as_str(), decls))
        })
    }

    /// Whether the vendor is registered with the tenant.
    pub fn is_registered(&self, tenant: &str, vendor: &str) -> bool {
        self.vendor(tenant, vendor)
            .is_some_and(|v| v.registered.is_some())
    }

    /// The first window covering `t` for this connection: among those in force at `t`, or
    /// (when `in_force` is false) among those filed after `t` and never cancelled.
    pub fn windows_covering(
        &self,
        cache: &mut OccurrenceCache,
        key: (&str, &str),
        t: OffsetDateTime,
        who: (Option<&str>, Option<&str>),
        in_force: bool,
    ) -> Option<WindowMatch> {
        let v = self.vendor(key.0, key.1)?;
        for (index, w) in v.windows.iter().enumerate() {
            if let Some(m) = w.covering(index, cache, t, who, in_force) {
                return Some(m);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn window(id: &str, schedule: Schedule) -> Window {
        Window {
            id: id.into(),
            vendor: "acme".into(),
            reason: "maintenance".into(),
            ticket: None,
            approver: "rssi".into(),
            persons: vec![],
            targets: vec![],
            schedule,
        }
    }

    fn decls_with(windows: Vec<(Window, OffsetDateTime)>) -> Declarations {
        let mut d = Declarations::default();
        for (i, (w, filed_at)) in windows.into_iter().enumerate() {
            d.add(
                EntryRef {
                    ledger: "decl".into(),
                    seq: i as u64,
                },
                Declaration {
                    tenant: "chu".into(),
                    filed_by: "rssi".into(),
                    filed_at,
                    body: DeclarationBody::WindowGranted(w),
                },
            );
        }
        d
    }

    fn tuesday_night() -> Window {
        window(
            "tue",
            Schedule::Recurring {
                zone: "Europe/Paris".into(),
                first_start_local: "2026-01-06T22:00".into(),
                duration_seconds: 4 * 3600,
                rrule: "FREQ=WEEKLY;BYDAY=TU".into(),
            },
        )
    }

    fn covers(d: &Declarations, t: OffsetDateTime) -> Option<Occurrence> {
        let mut cache = OccurrenceCache::default();
        d.windows_covering(&mut cache, ("chu", "acme"), t, (None, None), true)
            .map(|m| m.occurrence)
    }

    #[test]
    fn midnight_spanning_window_covers_both_sides_of_midnight() {
        let d = decls_with(vec![(tuesday_night(), datetime!(2026-01-01 0:00 UTC))]);
        // Tuesday 3 March 2026 23:30 and Wednesday 01:30 Paris (CET, +01:00).
        assert!(covers(&d, datetime!(2026-03-03 22:30 UTC)).is_some());
        assert!(covers(&d, datetime!(2026-03-04 0:30 UTC)).is_some());
        // Wednesday 02:00 Paris: closed (end excluded); Tuesday 21:59: not yet open.
        assert!(covers(&d, datetime!(2026-03-04 1:00 UTC)).is_none());
        assert!(covers(&d, datetime!(2026-03-03 20:59 UTC)).is_none());
        // Monday night: no window.
        assert!(covers(&d, datetime!(2026-03-02 22:30 UTC)).is_none());
    }

    #[test]
    fn window_follows_the_wall_clock_across_dst_changes() {
        let d = decls_with(vec![(tuesday_night(), datetime!(2026-01-01 0:00 UTC))]);
        // Summer (CEST, +02:00): Tuesday 7 April 22:00 Paris is 20:00 UTC.
        let o = covers(&d, datetime!(2026-04-07 20:30 UTC)).expect("open in summer");
        assert_eq!(o.start, datetime!(2026-04-07 20:00 UTC));
        assert_eq!(o.end, datetime!(2026-04-08 0:00 UTC));
        // 21:30 UTC on 7 April is 23:30 Paris: open; in winter the same UTC time is 22:30.
        assert!(covers(&d, datetime!(2026-04-07 19:59 UTC)).is_none());
        // The week of the change to summer time (Sunday 29 March): Tuesday 31 March is CEST.
        let o = covers(&d, datetime!(2026-03-31 20:00 UTC)).expect("first summer week");
        assert_eq!(o.start, datetime!(2026-03-31 20:00 UTC));
        // Back to winter on 25 October: Tuesday 27 October 22:00 Paris is 21:00 UTC.
        assert!(covers(&d, datetime!(2026-10-27 20:30 UTC)).is_none());
        assert!(covers(&d, datetime!(2026-10-27 21:00 UTC)).is_some());
    }

    #[test]
    fn window_on_the_night_of_the_change_keeps_its_wall_clock_end() {
        // Saturday 24 October 2026 23:00 → Sunday 03:00 Paris: clocks go back at 03:00
        // CEST that night, so the window lasts 5 hours of real time (21:00 → 02:00 UTC).
        let w = window(
            "sat",
            Schedule::Recurring {
                zone: "Europe/Paris".into(),
                first_start_local: "2026-10-03T23:00".into(),
                duration_seconds: 4 * 3600,
                rrule: "FREQ=WEEKLY;BYDAY=SA".into(),
            },
        );
        let d = decls_with(vec![(w, datetime!(2026-01-01 0:00 UTC))]);
        let o = covers(&d, datetime!(2026-10-25 1:30 UTC)).expect("open in the repeated hour");
        assert_eq!(o.start, datetime!(2026-10-24 21:00 UTC));
        assert_eq!(o.end, datetime!(2026-10-25 2:00 UTC));
        assert!(covers(&d, datetime!(2026-10-25 2:00 UTC)).is_none());
        // The week before, in summer time: 4 hours (21:00 → 01:00 UTC).
        let o = covers(&d, datetime!(2026-10-17 22:00 UTC)).expect("summer");
        assert_eq!(o.end, datetime!(2026-10-18 1:00 UTC));
    }

    #[test]
    fn window_not_in_force_before_it_is_filed_or_after_cancellation() {
        let filed = datetime!(2026-03-10 12:00 UTC);
        let mut d = decls_with(vec![(tuesday_night(), filed)]);
        let t = datetime!(2026-03-03 22:30 UTC);
        assert!(covers(&d, t).is_none());
        let mut cache = OccurrenceCache::default();
        let late = d.windows_covering(&mut cache, ("chu", "acme"), t, (None, None), false);
        assert_eq!(late.map(|m| m.filed_at), Some(filed));
        d.add(
            EntryRef {
                ledger: "decl".into(),
                seq: 9,
            },
            Declaration {
                tenant: "chu".into(),
                filed_by: "rssi".into(),
                filed_at: datetime!(2026-03-12 0:00 UTC),
                body: DeclarationBody::WindowCancelled {
                    vendor: "acme".into(),
                    window_id: "tue".into(),
                    reason: "fin de contrat".into(),
                },
            },
        );
        assert!(covers(&d, datetime!(2026-03-10 22:30 UTC)).is_some());
        assert!(covers(&d, datetime!(2026-03-17 22:30 UTC)).is_none());
    }
}
