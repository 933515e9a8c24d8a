//! The rule engine: one streaming pass over the connection events in time order, with
//! state per key, against the declarations in force at each instant.
//!
//! ```text
//!  declarations (read whole, indexed per tenant+vendor) ─┐
//!  events (merged by time, streamed) ─→ Engine::push ────┼─→ findings, closed sessions
//!                                      state: open sessions by (source, session id),
//!                                      persons per account, sources' last event and skew
//! ```
//!
//! A session opens on `session_start` / `tunnel_up` and closes on `session_end` /
//! `tunnel_down` with the same `(source, session_id)` (without a session id: the same
//! account and address). Sessions that **start** in `[from, to)` are judged; events
//! before `from` or after `to` only complete them. At the start: nominative identity,
//! staff list, departure, shared account, declared resources, window or emergency. At the
//! close: second factor (factors of the start, of `auth_success` events of the session or,
//! within two minutes before the start, of the same account on the same source),
//! end and overrun of the window, intervention report (any report filed, whenever, whose
//! interval overlaps the session, within [`RuleConfig::report_slack`], naming the person
//! or nobody).
//!
//! Per (tenant, vendor), intervention reports and one-off windows are indexed by start
//! when the engine is made, so a session is checked against the few that can overlap it
//! (binary search on the start, bounded by the longest interval) instead of all of them;
//! the first match in filing order is still the one taken.

use std::collections::{HashMap, HashSet};

use proto::model::{AuthFactor, ConnectionEvent, EventKind, StaffMember};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::decls::{Declarations, OccurrenceCache, VendorDecls, WindowMatch};
use crate::finding::{EntryRef, Facts, Finding, Rule};
use proto::model::Schedule;

/// The bounds and scope of a run.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Only this tenant (all when `None`).
    pub tenant: Option<String>,
    /// Only this vendor (all when `None`).
    pub vendor: Option<String>,
    /// Sessions starting from this instant are judged…
    pub from: OffsetDateTime,
    /// … up to this one (excluded).
    pub to: OffsetDateTime,
    /// Largest accepted difference between `occurred_at` and `received_at` (default 5 min).
    pub max_skew: Duration,
    /// A source silent longer than this is reported (default 24 h).
    pub silent_after: Duration,
    /// A session still open this long before `to` is reported without end (default 12 h).
    pub open_session_grace: Duration,
    /// A session may run this long past its window's end (default 5 min).
    pub overrun_grace: Duration,
    /// Largest age of the staff list in force (default 365 days).
    pub staff_list_max_age: Duration,
    /// Slack around a report's interval when matching sessions (default 1 h).
    pub report_slack: Duration,
    /// Closed sessions kept for the timeline (default 20,000).
    pub keep_sessions: usize,
}

impl RuleConfig {
    /// The defaults over `[from, to)`.
    pub fn new(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        RuleConfig {
            tenant: None,
            vendor: None,
            from,
            to,
            max_skew: Duration::minutes(5),
            silent_after: Duration::hours(24),
            open_session_grace: Duration::hours(12),
            overrun_grace: Duration::minutes(5),
            staff_list_max_age: Duration::days(365),
            report_slack: Duration::hours(1),
            keep_sessions: 20_000,
        }
    }
}

/// A session as the journal and the timeline show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// The establishment.
    pub tenant: String,
    /// The source that reported it.
    pub source: String,
    /// The vendor.
    pub vendor: Option<String>,
    /// The person (as reported, or from the staff list by account).
    pub person: Option<String>,
    /// The account.
    pub account: Option<String>,
    /// Where from.
    pub source_addr: Option<String>,
    /// The target reached.
    pub target: Option<String>,
    /// The protocol.
    pub protocol: Option<String>,
    /// Start.
    #[serde(serialize_with = "ser_t")]
    pub start: OffsetDateTime,
    /// End, if recorded.
    #[serde(serialize_with = "ser_opt_t")]
    pub end: Option<OffsetDateTime>,
    /// Factors used.
    pub factors: Vec<AuthFactor>,
    /// The window matched, if any.
    pub window: Option<String>,
    /// The occurrence of that window.
    #[serde(skip)]
    pub window_interval: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Covered by an emergency.
    pub emergency: bool,
    /// The start's entry (and the end's).
    pub entries: Vec<EntryRef>,
}

fn ser_t<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time_fmt::rfc3339(*t))
}

fn ser_opt_t<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_t(t, s),
        None => s.serialize_none(),
    }
}

/// What a run counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Events read (in scope).
    pub events: u64,
    /// Connections (sessions started in the range).
    pub connections: u64,
    /// Distinct persons who connected.
    pub persons: u64,
    /// Sessions not kept for the timeline (over [`RuleConfig::keep_sessions`]).
    pub sessions_dropped: u64,
}

/// Longest time between an authentication and the session start it opened.
const AUTH_TO_SESSION: Duration = Duration::minutes(2);

/// Values per tenant (or source) and per name (account, person), looked up without allocating.
#[derive(Debug)]
struct ByTenant<V>(HashMap<String, HashMap<String, V>>);

impl<V> Default for ByTenant<V> {
    fn default() -> Self {
        ByTenant(HashMap::new())
    }
}

impl<V: Default> ByTenant<V> {
    fn get(&self, tenant: &str, name: &str) -> Option<&V> {
        self.0.get(tenant)?.get(name)
    }

    fn entry(&mut self, tenant: &str, name: &str) -> &mut V {
        if !self.0.contains_key(tenant) {
            self.0.insert(tenant.to_owned(), HashMap::new());
        }
        let by_name = self.0.get_mut(tenant).expect("tenant inserted above");
        if !by_name.contains_key(name) {
            by_name.insert(name.to_owned(), V::default());
        }
        by_name.get_mut(name).expect("name inserted above")
    }

    /// Applies `keep` to the value; removes it when `keep` says so.
    fn retain_in(&mut self, tenant: &str, name: &str, keep: impl FnOnce(&mut V) -> bool) {
        if let Some(by_name) = self.0.get_mut(tenant)
            && let Some(v) = by_name.get_mut(name)
            && !keep(v)
        {
            by_name.remove(name);
        }
    }
}

/// An open session's address and start entry.
type OpenStart = (Option<String>, EntryRef);

#[derive(Debug)]
struct Open {
    record: SessionRecord,
    judged: bool,
}

#[derive(Debug, Default)]
struct SourceState {
    tenant: String,
    last: Option<(OffsetDateTime, EntryRef)>,
    skewed: u64,
    worst_skew: i64,
    worst_at: Option<(OffsetDateTime, EntryRef)>,
}

/// A vendor's declarations with its reports and one-off windows indexed by start, so a
/// connection is judged against the few that can concern it rather than all of them.
#[derive(Debug)]
struct VendorIndex<'d> {
    decls: &'d VendorDecls,
    /// `(started_at, index in reports)`, by `started_at`.
    reports: Vec<(OffsetDateTime, usize)>,
    /// The longest report interval (never negative).
    report_span: Duration,
    /// One-off windows: `(starts_at, index in windows)`, by `starts_at`.
    one_off: Vec<(OffsetDateTime, usize)>,
    /// The longest one-off window (never negative).
    one_off_span: Duration,
    /// Every other window (recurring), by index.
    recurring: Vec<usize>,
}

impl<'d> VendorIndex<'d> {
    fn new(decls: &'d VendorDecls) -> Self {
        let mut reports: Vec<(OffsetDateTime, usize)> = decls
            .reports
            .iter()
            .enumerate()
            .map(|(i, r)| (r.value.started_at, i))
            .collect();
        reports.sort();
        let report_span = decls
            .reports
            .iter()
            .map(|r| r.value.ended_at - r.value.started_at)
            .fold(Duration::ZERO, Duration::max);
        let mut one_off = Vec::new();
        let mut one_off_span = Duration::ZERO;
        let mut recurring = Vec::new();
        for (i, w) in decls.windows.iter().enumerate() {
            match &w.grant.value.schedule {
                Schedule::OneOff { starts_at, ends_at } => {
                    one_off.push((*starts_at, i));
                    one_off_span = one_off_span.max(*ends_at - *starts_at);
                }
                Schedule::Recurring { .. } => recurring.push(i),
            }
        }
        one_off.sort();
        VendorIndex {
            decls,
            reports,
            report_span,
            one_off,
            one_off_span,
            recurring,
        }
    }

    /// Entries of `sorted` whose instant is in `[from, to]` (all when a bound overflows).
    fn range(
        sorted: &[(OffsetDateTime, usize)],
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> &[(OffsetDateTime, usize)] {
        let lo = from.map_or(0, |f| sorted.partition_point(|(s, _)| *s < f));
        let hi = to.map_or(sorted.len(), |t| sorted.partition_point(|(s, _)| *s <= t));
        sorted.get(lo..hi).unwrap_or(&[])
    }

    /// As [`Declarations::windows_covering`]: the first window (in filing order) covering
    /// `t` for this connection, among those in force at `t` or, when `in_force` is false,
    /// those filed after `t` and never cancelled.
    fn windows_covering(
        &self,
        cache: &mut OccurrenceCache,
        scratch: &mut Vec<usize>,
        t: OffsetDateTime,
        who: (Option<&str>, Option<&str>),
        in_force: bool,
    ) -> Option<WindowMatch> {
        scratch.clear();
        scratch.extend(
            Self::range(&self.one_off, t.checked_sub(self.one_off_span), Some(t))
                .iter()
                .map(|&(_, i)| i),
        );
        scratch.extend_from_slice(&self.recurring);
        scratch.sort_unstable();
        for &index in scratch.iter() {
            let w = &self.decls.windows[index];
            if let Some(m) = w.covering(index, cache, t, who, in_force) {
                return Some(m);
            }
        }
        None
    }
}

/// The streaming rule engine.
#[derive(Debug)]
pub struct Engine<'d> {
    /// The declarations per tenant and vendor, indexed by time.
    index: HashMap<&'d str, HashMap<&'d str, VendorIndex<'d>>>,
    /// Candidate windows of one lookup (kept to reuse its allocation).
    scratch: Vec<usize>,
    cfg: RuleConfig,
    cache: OccurrenceCache,
    open: HashMap<(String, String), Open>,
    /// Open sessions per (tenant, account): address and start entry.
    open_by_account: ByTenant<Vec<OpenStart>>,
    /// The last `auth_success` per (source, account): when, and its factors.
    recent_auth: ByTenant<(Option<OffsetDateTime>, Vec<AuthFactor>)>,
    /// Factors of `auth_success` events waiting for their session's start.
    factors: HashMap<(String, String), (OffsetDateTime, Vec<AuthFactor>)>,
    account_users: ByTenant<(String, EntryRef)>,
    reported: HashSet<(Rule, String, String, String)>,
    sources: HashMap<String, SourceState>,
    persons: ByTenant<()>,
    person_count: u64,
    findings: Vec<Finding>,
    /// Sessions closed since the last [`Engine::take_closed`].
    closed: Vec<SessionRecord>,
    stats: Stats,
}

impl<'d> Engine<'d> {
    /// An engine judging against `decls`.
    pub fn new(decls: &'d Declarations, cfg: RuleConfig) -> Self {
        let mut index: HashMap<&str, HashMap<&str, VendorIndex>> = HashMap::new();
        for (tenant, vendor, vd) in decls.vendors() {
            index
                .entry(tenant)
                .or_default()
                .insert(vendor, VendorIndex::new(vd));
        }
        Engine {
            index,
            scratch: Vec::new(),
            cfg,
            cache: OccurrenceCache::default(),
            open: HashMap::new(),
            open_by_account: ByTenant::default(),
            factors: HashMap::new(),
            recent_auth: ByTenant::default(),
            account_users: ByTenant::default(),
            reported: HashSet::new(),
            sources: HashMap::new(),
            persons: ByTenant::default(),
            person_count: 0,
            findings: Vec::new(),
            closed: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// What has been counted so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The sessions closed since the last call (judged ones only), in closing order.
    pub fn take_closed(&mut self) -> Vec<SessionRecord> {
        std::mem::take(&mut self.closed)
    }

    /// Takes one event, in time order.
    pub fn push(&mut self, at: EntryRef, e: ConnectionEvent) {
        if self.cfg.tenant.as_deref().is_some_and(|t| t != e.tenant) {
            return;
        }
        self.stats.events += 1;
        self.track_source(&at, &e);
        if self.stats.events.is_multiple_of(1 << 16) {
            // Factors whose session never started are forgotten after an hour.
            let horizon = e.received_at - Duration::hours(1);
            self.factors.retain(|_, (seen, _)| *seen >= horizon);
        }
        if self
            .cfg
            .vendor
            .as_deref()
            .is_some_and(|v| e.vendor.as_deref() != Some(v))
        {
            return;
        }
        let key = session_key(&e);
        match e.kind {
            EventKind::AuthSuccess => {
                if let Some(account) = e.account.as_deref().or(e.person.as_deref()) {
                    let recent = self.recent_auth.entry(&e.source, account);
                    recent.0 = Some(e.occurred_at);
                    recent.1.clone_from(&e.factors);
                }
                if let Some(key) = key {
                    if let Some(open) = self.open.get_mut(&key) {
                        merge_factors(&mut open.record.factors, &e.factors);
                    } else {
                        let pending = self
                            .factors
                            .entry(key)
                            .or_insert_with(|| (e.received_at, Vec::new()));
                        merge_factors(&mut pending.1, &e.factors);
                    }
                }
            }
            EventKind::SessionStart | EventKind::TunnelUp => {
                let Some(key) = key else { return };
                if let Some(previous) = self.take_open(&key) {
                    self.close(previous, None);
                }
                let mut factors = self.factors.remove(&key).map(|f| f.1).unwrap_or_default();
                merge_factors(&mut factors, &e.factors);
                // Sources that log the authentication and the session under different ids
                // (sshd: `ip:port` for "Accepted", `sshd[pid]` for the PAM session): the
                // factors of the account's authentication just before the start count.
                if let Some(account) = e.account.as_deref().or(e.person.as_deref())
                    && let Some((Some(at), f)) = self.recent_auth.get(&e.source, account)
                    && *at <= e.occurred_at
                    && e.occurred_at - *at <= AUTH_TO_SESSION
                {
                    merge_factors(&mut factors, f);
                }
                let start = e.occurred_at;
                let source_addr = e.source_addr.map(|a| a.to_string());
                let ConnectionEvent {
                    tenant,
                    source,
                    vendor,
                    person,
                    account,
                    target,
                    protocol,
                    ..
                } = e;
                let mut record = SessionRecord {
                    tenant,
                    source,
                    vendor,
                    person,
                    account,
                    source_addr,
                    target,
                    protocol,
                    start,
                    end: None,
                    factors,
                    window: None,
                    window_interval: None,
                    emergency: false,
                    entries: vec![at.clone()],
                };
                let judged = self.cfg.from <= start && start < self.cfg.to;
                if judged {
                    self.judge_start(&at, &mut record);
                }
                if let Some(account) = &record.account {
                    self.open_by_account
                        .entry(&record.tenant, account)
                        .push((record.source_addr.clone(), at));
                }
                self.open.insert(key, Open { record, judged });
            }
            EventKind::SessionEnd | EventKind::TunnelDown => {
                let Some(key) = key else { return };
                if let Some(mut open) = self.take_open(&key) {
                    open.record.entries.push(at);
                    merge_factors(&mut open.record.factors, &e.factors);
                    self.close(open, Some(e.occurred_at));
                }
            }
            EventKind::AuthFailure { .. } | EventKind::Unmapped => {}
        }
    }

    fn take_open(&mut self, key: &(String, String)) -> Option<Open> {
        let open = self.open.remove(key)?;
        if let Some(account) = &open.record.account {
            let start = &open.record.entries[0];
            self.open_by_account
                .retain_in(&open.record.tenant, account, |list| {
                    list.retain(|(_, s)| s != start);
                    !list.is_empty()
                });
        }
        Some(open)
    }

    fn track_source(&mut self, at: &EntryRef, e: &ConnectionEvent) {
        let in_range = self.cfg.from <= e.received_at && e.received_at < self.cfg.to;
        if !self.sources.contains_key(&e.source) {
            self.sources
                .insert(e.source.clone(), SourceState::default());
        }
        let Some(state) = self.sources.get_mut(&e.source) else {
            return;
        };
        if state.tenant != e.tenant {
            state.tenant.clone_from(&e.tenant);
        }
        let skew = (e.received_at - e.occurred_at).whole_seconds();
        if in_range && skew.abs() > self.cfg.max_skew.whole_seconds() {
            state.skewed += 1;
            if skew.abs() > state.worst_skew.abs() {
                state.worst_skew = skew;
                state.worst_at = Some((e.occurred_at, at.clone()));
            }
        }
        if in_range
            && let Some((last, last_ref)) = &state.last
            && e.received_at - *last > self.cfg.silent_after
        {
            let mut f = Finding::new(Rule::SilentSource, &e.tenant, e.received_at);
            f.entries = vec![last_ref.clone(), at.clone()];
            f.facts.when = Some(*last);
            f.facts.amount = Some((e.received_at - *last).whole_seconds());
            f.facts.note = Some(e.source.clone());
            self.findings.push(f);
        }
        if state.last.as_ref().is_none_or(|(l, _)| *l <= e.received_at) {
            state.last = Some((e.received_at, at.clone()));
        }
    }

    fn finding(&self, rule: Rule, r: &SessionRecord) -> Finding {
        let mut f = Finding::new(rule, &r.tenant, r.start);
        f.vendor.clone_from(&r.vendor);
        f.person.clone_from(&r.person);
        f.account.clone_from(&r.account);
        f.entries = vec![r.entries[0].clone()];
        f.facts = Facts {
            target: r.target.clone(),
            addr: r.source_addr.clone(),
            ..Facts::default()
        };
        f
    }

    fn judge_start(&mut self, at: &EntryRef, r: &mut SessionRecord) {
        self.stats.connections += 1;
        let t = r.start;
        let index = r
            .vendor
            .as_deref()
            .and_then(|v| self.index.get(r.tenant.as_str())?.get(v));
        let vd = index.map(|i| i.decls);
        let list = vd.and_then(|vd| vd.staff_list_at(t));
        // Nominative identity: the person reported, or the holder of the account.
        if r.person.is_none()
            && let (Some(list), Some(account)) = (list, r.account.as_deref())
        {
            let holders: Vec<&StaffMember> = list
                .value
                .iter()
                .filter(|m| m.accounts.iter().any(|a| a == account))
                .collect();
            if let [holder] = holders[..] {
                r.person = Some(holder.person.clone());
            }
        }
        let (Some(vendor), Some(person)) = (r.vendor.clone(), r.person.clone()) else {
            let f = self.finding(Rule::NotNominative, r);
            self.findings.push(f);
            return;
        };
        if self.persons.get(&r.tenant, &person).is_none() {
            *self.persons.entry(&r.tenant, &person) = ();
            self.person_count += 1;
            self.stats.persons = self.person_count;
        }
        let empty = VendorDecls::default();
        let vd = vd.unwrap_or(&empty);

        // Staff list, departure.
        let member = list.and_then(|l| {
            l.value
                .iter()
                .find(|m| m.person == person || m.email.eq_ignore_ascii_case(&person))
        });
        let holder_departed = r.account.as_deref().and_then(|account| {
            list.and_then(|l| {
                l.value
                    .iter()
                    .filter(|m| m.accounts.iter().any(|a| a == account))
                    .find_map(|m| vd.departure_of(&m.person, t))
            })
        });
        if let Some(dep) = vd.departure_of(&person, t).or(holder_departed) {
            let mut f = self.finding(Rule::AccountAfterDeparture, r);
            f.entries.push(dep.entry.clone());
            f.facts.when = Some(dep.value.effective_at);
            f.facts.other = Some(dep.value.person.clone());
            self.findings.push(f);
        } else {
            let local_date = crate::time_fmt::paris_date(t);
            match member {
                Some(m) if m.start_date <= local_date => {}
                _ => {
                    let mut f = self.finding(Rule::NotOnStaffList, r);
                    if let Some(l) = list {
                        f.entries.push(l.entry.clone());
                    }
                    self.findings.push(f);
                }
            }
        }
        if let Some(l) = list
            && t - l.filed_at > self.cfg.staff_list_max_age
            && self.reported.insert((
                Rule::StaffListStale,
                r.tenant.clone(),
                vendor.clone(),
                l.entry.to_string(),
            ))
        {
            let mut f = self.finding(Rule::StaffListStale, r);
            f.person = None;
            f.account = None;
            f.entries.push(l.entry.clone());
            f.facts.when = Some(l.filed_at);
            f.facts.amount = Some((t - l.filed_at).whole_days());
            self.findings.push(f);
        }

        // Shared account: several persons, or concurrent sessions from several addresses.
        if let Some(account) = r.account.clone() {
            match self.account_users.get(&r.tenant, &account) {
                None => {
                    *self.account_users.entry(&r.tenant, &account) = (person.clone(), at.clone());
                }
                Some((first, first_at)) if *first != person => {
                    if self.reported.insert((
                        Rule::SharedAccount,
                        r.tenant.clone(),
                        account.clone(),
                        person.clone(),
                    )) {
                        let mut f = self.finding(Rule::SharedAccount, r);
                        f.entries.push(first_at.clone());
                        f.facts.other = Some(first.clone());
                        self.findings.push(f);
                    }
                }
                Some(_) => {
                    let concurrent = self
                        .open_by_account
                        .get(&r.tenant, &account)
                        .and_then(|list| list.iter().find(|(addr, _)| *addr != r.source_addr));
                    if let Some((addr, start)) = concurrent {
                        let mut f = self.finding(Rule::SharedAccount, r);
                        f.entries.push(start.clone());
                        f.facts.note = Some("concurrent".into());
                        f.facts.other.clone_from(addr);
                        self.findings.push(f);
                    }
                }
            }
        }

        // Declared resources.
        if let (Some(m), Some(target)) = (member, r.target.as_deref())
            && !m.resources.iter().any(|res| resource_matches(res, target))
        {
            let f = self.finding(Rule::UndeclaredTarget, r);
            self.findings.push(f);
        }

        // Window or emergency.
        let who = (Some(person.as_str()), r.target.as_deref());
        if let Some(em) = vd.emergency_at(t, who.0, who.1) {
            r.emergency = true;
            let mut f = self.finding(Rule::Emergency, r);
            f.entries.push(em.entry.clone());
            f.facts.note = Some(em.value.reason.clone());
            self.findings.push(f);
        } else if let Some(m) =
            index.and_then(|i| i.windows_covering(&mut self.cache, &mut self.scratch, t, who, true))
        {
            set_window(r, &m);
        } else if let Some(m) = index
            .and_then(|i| i.windows_covering(&mut self.cache, &mut self.scratch, t, who, false))
        {
            let mut f = self.finding(Rule::WindowAfterFact, r);
            f.entries.push(m.entry.clone());
            f.facts.window_id = Some(m.id.clone());
            f.facts.when = Some(m.filed_at);
            self.findings.push(f);
            set_window(r, &m);
        } else {
            let f = self.finding(Rule::OutsideWindow, r);
            self.findings.push(f);
        }
    }

    fn close(&mut self, open: Open, end: Option<OffsetDateTime>) {
        let Open { mut record, judged } = open;
        record.end = end;
        if !judged {
            return;
        }
        let r = &record;
        if !r.factors.iter().any(AuthFactor::is_possession) {
            let f = self.finding(Rule::NoSecondFactor, r);
            self.findings.push(f);
        }
        match end {
            None if r.start < self.cfg.to - self.cfg.open_session_grace => {
                let f = self.finding(Rule::SessionWithoutEnd, r);
                self.findings.push(f);
            }
            Some(end) => {
                if let (Some((_, wend)), Some(id)) = (r.window_interval, &r.window)
                    && end > wend + self.cfg.overrun_grace
                {
                    let mut f = self.finding(Rule::SessionOverrun, r);
                    f.entries.extend(r.entries.get(1).cloned());
                    f.facts.window_id = Some(id.clone());
                    f.facts.when = Some(wend);
                    self.findings.push(f);
                }
            }
            None => {}
        }
        self.check_report(r);
        if self.closed.len() < self.cfg.keep_sessions {
            self.closed.push(record);
        } else {
            self.stats.sessions_dropped += 1;
        }
    }

    fn check_report(&mut self, r: &SessionRecord) {
        let (Some(vendor), Some(person)) = (r.vendor.as_deref(), r.person.as_deref()) else {
            return;
        };
        let Some(index) = self
            .index
            .get(r.tenant.as_str())
            .and_then(|by_vendor| by_vendor.get(vendor))
        else {
            let f = self.finding(Rule::MissingReport, r);
            self.findings.push(f);
            return;
        };
        let vd = index.decls;
        let end = r.end.unwrap_or(r.start);
        let slack = self.cfg.report_slack;
        // Only reports starting in [start - slack - longest report, end + slack] can
        // overlap; among those that do, the first filed (ties: the first in filing order).
        let candidates = VendorIndex::range(
            &index.reports,
            r.start.checked_sub(slack + index.report_span),
            end.checked_add(slack),
        );
        let report = candidates
            .iter()
            .map(|&(_, i)| (i, &vd.reports[i]))
            .filter(|(_, rep)| {
                rep.value.started_at - slack <= end
                    && r.start <= rep.value.ended_at + slack
                    && (rep.value.persons.is_empty()
                        || rep.value.persons.iter().any(|p| p == person))
            })
            .min_by_key(|(i, rep)| (rep.filed_at, *i))
            .map(|(_, rep)| rep);
        let Some(report) = report else {
            let f = self.finding(Rule::MissingReport, r);
            self.findings.push(f);
            return;
        };
        let off = proto::calendar::off_hours(r.start, proto::calendar::PARIS)
            .map(|o| o.any())
            .unwrap_or(false);
        if off && crate::time_fmt::paris_date(report.filed_at) > crate::time_fmt::paris_date(end) {
            let mut f = self.finding(Rule::LateReport, r);
            f.entries.push(report.entry.clone());
            f.facts.when = Some(report.filed_at);
            self.findings.push(f);
        }
    }

    /// Closes what is open and returns every finding, in time order.
    pub fn finish(mut self) -> (Vec<Finding>, Vec<SessionRecord>, Stats) {
        self.open_by_account = ByTenant::default();
        let mut open: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        open.sort_by_key(|o| o.record.start);
        for o in open {
            self.close(o, None);
        }
        let mut sources: Vec<(String, SourceState)> = self.sources.drain().collect();
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, s) in sources {
            if s.skewed > 0
                && let Some((at, entry)) = s.worst_at
            {
                let mut f = Finding::new(Rule::ClockSkew, &s.tenant, at);
                f.entries = vec![entry];
                f.facts.amount = Some(s.worst_skew);
                f.facts.note = Some(name.clone());
                self.findings.push(f);
            }
            if let Some((last, last_ref)) = s.last
                && last >= self.cfg.from
                && self.cfg.to - last > self.cfg.silent_after
                && self.cfg.to <= OffsetDateTime::now_utc()
            {
                let mut f = Finding::new(Rule::SilentSource, &s.tenant, self.cfg.to);
                f.entries = vec![last_ref];
                f.facts.when = Some(last);
                f.facts.amount = Some((self.cfg.to - last).whole_seconds());
                f.facts.note = Some(name);
                self.findings.push(f);
            }
        }
        sort_findings(&mut self.findings);
        let mut sessions = std::mem::take(&mut self.closed);
        sessions.sort_by_key(|s| s.start);
        (self.findings, sessions, self.stats)
    }
}

/// Sorts findings by instant, then rule, person and account.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.at, a.rule, &a.person, &a.account, &a.entries)
            .cmp(&(b.at, b.rule, &b.person, &b.account, &b.entries))
    });
}

fn set_window(r: &mut SessionRecord, m: &WindowMatch) {
    r.window = Some(m.id.clone());
    r.window_interval = Some((m.occurrence.start, m.occurrence.end));
}

fn merge_factors(into: &mut Vec<AuthFactor>, from: &[AuthFactor]) {
    for f in from {
        if !into.contains(f) {
            into.push(f.clone());
        }
    }
}

fn session_key(e: &ConnectionEvent) -> Option<(String, String)> {
    match (&e.session_id, &e.account) {
        (Some(id), _) => Some((e.source.clone(), format!("id:{id}"))),
        (None, Some(account)) => Some((
            e.source.clone(),
            format!(
                "acct:{account}|{}",
                e.source_addr.map(|a| a.to_string()).unwrap_or_default()
            ),
        )),
        (None, None) => e
            .person
            .as_ref()
            .map(|p| (e.source.clone(), format!("person:{p}"))),
    }
}

/// Whether a declared resource names a target: equal, or a prefix pattern ending in `*`.
pub fn resource_matches(declared: &str, target: &str) -> bool {
    match declared.strip_suffix('*') {
        Some(prefix) => target.starts_with(prefix),
        None => declared == target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::model::{Declaration, DeclarationBody, Schedule, Window};
    use time::macros::{date, datetime};

    fn decl(seq: u64, filed_at: OffsetDateTime, body: DeclarationBody) -> (EntryRef, Declaration) {
        (
            EntryRef {
                ledger: "decl".into(),
                seq,
            },
            Declaration {
                tenant: "chu".into(),
                filed_by: "rssi".into(),
                filed_at,
                body,
            },
        )
    }

    /// A vendor with one person, a window open every day 00:00-24:00 and the given reports
    /// (start, end, filed).
    fn declarations(reports: &[(OffsetDateTime, OffsetDateTime, OffsetDateTime)]) -> Declarations {
        let mut d = Declarations::default();
        let t0 = datetime!(2026-01-01 0:00 UTC);
        let mut all = vec![
            decl(
                0,
                t0,
                DeclarationBody::VendorRegistered {
                    vendor: "acme".into(),
                    name: "Acme".into(),
                },
            ),
            decl(
                1,
                t0,
                DeclarationBody::StaffList {
                    vendor: "acme".into(),
                    persons: vec![StaffMember {
                        person: "ana@acme.fr".into(),
                        last_name: "A".into(),
                        first_name: "Ana".into(),
                        email: "ana@acme.fr".into(),
                        accounts: vec!["ana".into()],
                        access_level: "admin".into(),
                        resources: vec!["srv-*".into()],
                        start_date: date!(2025 - 01 - 01),
                    }],
                },
            ),
            decl(
                2,
                t0,
                DeclarationBody::WindowGranted(Window {
                    id: "daily".into(),
                    vendor: "acme".into(),
                    reason: "r".into(),
                    ticket: None,
                    approver: "rssi".into(),
                    persons: vec![],
                    targets: vec![],
                    schedule: Schedule::Recurring {
                        zone: "Europe/Paris".into(),
                        first_start_local: "2026-01-01T00:00".into(),
                        duration_seconds: 86_400,
                        rrule: "FREQ=DAILY".into(),
                    },
                }),
            ),
        ];
        for (i, (start, end, filed)) in reports.iter().enumerate() {
            all.push(decl(
                10 + i as u64,
                *filed,
                DeclarationBody::InterventionReport {
                    vendor: "acme".into(),
                    window_id: None,
                    started_at: *start,
                    ended_at: *end,
                    nature: "n".into(),
                    persons: vec!["ana@acme.fr".into()],
                },
            ));
        }
        for (e, d2) in all {
            d.add(e, d2);
        }
        d
    }

    fn session(
        person: Option<&str>,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Vec<ConnectionEvent> {
        let ev = |kind, at| ConnectionEvent {
            kind,
            tenant: "chu".into(),
            source: "bastion".into(),
            vendor: Some("acme".into()),
            person: person.map(Into::into),
            account: Some("ana".into()),
            target: Some("srv-1".into()),
            protocol: Some("rdp".into()),
            source_addr: None,
            session_id: Some(format!("{start}")),
            factors: vec![AuthFactor::Password, AuthFactor::HardwareKey],
            occurred_at: at,
            received_at: at,
            raw: Vec::new(),
        };
        vec![
            ev(EventKind::SessionStart, start),
            ev(EventKind::SessionEnd, end),
        ]
    }

    fn judge(d: &Declarations, events: Vec<ConnectionEvent>) -> Vec<Rule> {
        let mut cfg = RuleConfig::new(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2026-12-31 0:00 UTC),
        );
        cfg.silent_after = Duration::days(400);
        let mut engine = Engine::new(d, cfg);
        for (i, e) in events.into_iter().enumerate() {
            engine.push(
                EntryRef {
                    ledger: "ev".into(),
                    seq: i as u64,
                },
                e,
            );
        }
        engine.finish().0.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn an_intervention_on_a_public_holiday_is_reported_the_same_day() {
        // Tuesday 14 July 2026 (Fête nationale), 10:00-11:00 Paris: off-hours.
        let (start, end) = (
            datetime!(2026-07-14 8:00 UTC),
            datetime!(2026-07-14 9:00 UTC),
        );
        let next_day = datetime!(2026-07-15 8:00 UTC);
        let late = declarations(&[(start, end, next_day)]);
        assert_eq!(
            judge(&late, session(Some("ana@acme.fr"), start, end)),
            [Rule::LateReport]
        );
        let same_day = declarations(&[(start, end, datetime!(2026-07-14 20:00 UTC))]);
        assert_eq!(
            judge(&same_day, session(Some("ana@acme.fr"), start, end)),
            []
        );
        // The same hours on Wednesday 15 July, a working day: the next day is fine.
        let (start, end) = (
            datetime!(2026-07-15 8:00 UTC),
            datetime!(2026-07-15 9:00 UTC),
        );
        let d = declarations(&[(start, end, datetime!(2026-07-16 8:00 UTC))]);
        assert_eq!(judge(&d, session(Some("ana@acme.fr"), start, end)), []);
        // Without any report.
        assert_eq!(
            judge(&declarations(&[]), session(Some("ana@acme.fr"), start, end)),
            [Rule::MissingReport]
        );
    }

    #[test]
    fn factors_of_the_authentication_just_before_count_for_the_session() {
        let (start, end) = (
            datetime!(2026-07-15 8:00 UTC),
            datetime!(2026-07-15 9:00 UTC),
        );
        let d = declarations(&[(start, end, end)]);
        let mut events = session(Some("ana@acme.fr"), start, end);
        for e in &mut events {
            e.factors = vec![AuthFactor::Password];
            e.session_id = Some("sshd[42]".into());
        }
        let mut auth = events[0].clone();
        auth.kind = EventKind::AuthSuccess;
        auth.session_id = Some("10.0.0.9:50000".into());
        auth.factors = vec![AuthFactor::PublicKey, AuthFactor::Otp];
        auth.occurred_at = start - Duration::seconds(3);
        let mut with_auth = vec![auth.clone()];
        with_auth.extend(events.clone());
        assert_eq!(judge(&d, with_auth), []);
        // Too long before: it does not count.
        auth.occurred_at = start - Duration::minutes(10);
        auth.received_at = auth.occurred_at;
        let mut stale = vec![auth];
        stale.extend(events);
        assert_eq!(judge(&d, stale), [Rule::NoSecondFactor]);
    }

    #[test]
    fn a_session_without_person_is_named_by_its_account_holder() {
        let (start, end) = (
            datetime!(2026-07-15 8:00 UTC),
            datetime!(2026-07-15 9:00 UTC),
        );
        let d = declarations(&[(start, end, end)]);
        assert_eq!(judge(&d, session(None, start, end)), []);
    }

    #[test]
    fn resources_match_exactly_or_by_prefix() {
        assert!(resource_matches("pacs-01", "pacs-01"));
        assert!(resource_matches("pacs-*", "pacs-02"));
        assert!(!resource_matches("pacs-01", "pacs-02"));
        assert!(!resource_matches("pacs-*", "ris-01"));
    }

    #[test]
    fn off_hours_covers_nights_weekends_and_public_holidays() {
        use proto::calendar::{PARIS, off_hours};
        use time::macros::datetime;
        // Tuesday 14 July 2026, 10:00 Paris: a public holiday.
        assert!(
            off_hours(datetime!(2026-07-14 8:00 UTC), PARIS)
                .unwrap()
                .any()
        );
        // Thursday 14 May 2026 (Ascension), 15:00.
        assert!(
            off_hours(datetime!(2026-05-14 13:00 UTC), PARIS)
                .unwrap()
                .any()
        );
        // Wednesday 15 July 2026, 10:00: working hours.
        assert!(
            !off_hours(datetime!(2026-07-15 8:00 UTC), PARIS)
                .unwrap()
                .any()
        );
        // Wednesday 22:30: night.
        assert!(
            off_hours(datetime!(2026-07-15 20:30 UTC), PARIS)
                .unwrap()
                .any()
        );
    }
}
