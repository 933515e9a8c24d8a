//! The rule engine: one streaming pass over the connection events in time order, with
//! state per key, against the declarations in force at each instant.
//!
//! ```text
//!  declarations (read whole, indexed per tenant+vendor) ─┐
//!  events (merged by time, streamed, ─→ Engine::push ────┼─→ findings, closed sessions
//!   borrowed from their records)       state: open sessions by (source, session id),
//!                                      logins waiting for their session, persons per
//!                                      account, sources' last event and skew
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
//! # Who connected
//!
//! A connection is nominative when it names a person and a vendor. One that names no
//! person is named after its account's holder in the staff list in force at its start
//! (the last one filed at or before it, never one filed later):
//!
//! - when it names its vendor, the vendor's list;
//! - when it names none (an OpenSSH login relayed by a bastion knows only the account,
//!   as does any source whose profile does not know the vendor), the lists of every
//!   vendor of the establishment, and the holder's vendor becomes the connection's.
//!
//! A connection that names a person but no vendor is likewise the vendor's whose list in
//! force is the only one to name that person.
//!
//! Only a sole holder names anyone: an account that nobody holds, or that several
//! members hold (of one vendor or of several), leaves the connection not nominative; an
//! ambiguity is never settled by a guess. A connection so named is then judged like one
//! that named that person and vendor (staff list, departure, resources, that vendor's
//! windows and reports), and each of its findings cites the staff list that named the
//! person right after the start's entry.
//!
//! An audit restricted to one vendor reads the events that name it and those that name no
//! vendor (a vendor's journal read from PostgreSQL reads just these), and judges only the
//! connections that are the vendor's once named: those that named it, and those that
//! named none but whose account one of its staff solely holds, or whose person its list
//! alone names. A connection that names no vendor and is nobody's, or another vendor's
//! staff's, is followed (its end, its logins) but neither judged nor listed.
//!
//! # Logins without a session
//!
//! Some sources log only the authentication (an sshd `Accepted publickey` line without
//! the PAM session lines, a VPN gateway reporting logins, sometimes logouts). Every
//! `auth_success` that does not fall inside an open session of its key is therefore a
//! *login* that waits, and is a connection of its own unless a session start claims it:
//!
//! - a `session_start` / `tunnel_up` claims the waiting logins with its key (same source
//!   and session id, or account and address), and those of the same source and the same
//!   account (else person) authenticated at most two minutes before it from the same
//!   address (or with no address on either side: the PAM session line has none). Sources
//!   that log both lines thus count one connection, judged on the session start's event
//!   exactly as before;
//! - a login no start claimed within four minutes of its receipt (or at the end of the
//!   stream) is judged as a connection starting at the authentication, like a session
//!   start: window, staff list, factors, report;
//! - it ends at a `session_end` / `tunnel_down` with its key (before or after it was
//!   judged), and is otherwise an **instant**: never reported "without end", closed as
//!   an instant when a new login takes its key, after [`RuleConfig::open_session_grace`]
//!   or at the end of the run;
//! - logins do not count as open sessions for the concurrent-use check of shared
//!   accounts: an instant overlaps nothing.
//!
//! A start arriving more than four minutes (by the collector's clock) after the
//! authentication it follows within two minutes (by the source's) would count twice;
//! that takes a source whose clock or delivery varies by minutes between two lines.
//!
//! # Cost
//!
//! The engine runs once per event over months (10 million events in the bench): events
//! are borrowed from their records ([`proto::canonical::decode_event_ref`]) and the
//! names it keeps (tenant, source, vendor, person, account, target, protocol) are
//! interned once as numbers, so following a session allocates only its session id,
//! factors and entries; strings are made again only for findings and kept sessions.
//!
//! Per (tenant, vendor), intervention reports and one-off windows are indexed by start
//! when the engine is made, so a session is checked against the few that can overlap it
//! (binary search on the start, bounded by the longest interval) instead of all of them;
//! the first match in filing order is still the one taken.
//!
//! The holder of an account across an establishment's vendors (for connections that name
//! no vendor) is looked for once per (establishment, account) and staff-list version:
//! the lists in force change only when one is filed, so the version is how many of the
//! establishment's lists were filed by the start (a binary search), and the holder is
//! looked for again, through every vendor's list in force, only when it has moved.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use proto::canonical::{EventKindRef, EventRef, Factors};
use proto::model::{AuthFactor, StaffMember};
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};

use crate::decls::{Declarations, OccurrenceCache, VendorDecls, WindowMatch};
use crate::finding::{EntryRef, Facts, Finding, Rule};
use proto::model::Schedule;

/// The bounds and scope of a run.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Only this tenant (all when `None`).
    pub tenant: Option<String>,
    /// Only this vendor's connections (all when `None`): those that name it, and those
    /// that name no vendor but are attributed to its staff (see the module's "Who
    /// connected").
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
    /// The vendor (as reported, or that of the account's holder in the staff lists).
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

/// How long (by the collector's clock) an `auth_success` waits for the session start that
/// would claim it before it is judged as a connection of its own.
const LOGIN_WAIT: Duration = Duration::minutes(4);

/// A string interned by the engine: tenants, sources, vendors, persons, accounts, targets
/// and protocols are few and repeat across millions of events, so the engine's state is
/// keyed by these numbers and each name is allocated once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Sym(u32);

/// The multiply-rotate hash of rustc (FxHash): the engine's maps are keyed by [`Sym`]s and
/// short names from authenticated sources, for which SipHash's flooding resistance costs
/// more than it is worth.
#[derive(Debug, Clone, Copy, Default)]
struct FxBuild;

#[derive(Debug, Clone, Copy, Default)]
struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.add(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    fn finish(&self) -> u64 {
        // The multiply mixes into the high bits only, and the table reads both ends (the
        // low bits for the bucket, the top 7 as a tag): finish with murmur3's avalanche.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl BuildHasher for FxBuild {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

type FxMap<K, V> = HashMap<K, V, FxBuild>;
type FxSet<K> = HashSet<K, FxBuild>;

/// The engine's names, each stored once.
#[derive(Debug, Default)]
struct Interner {
    ids: FxMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> Sym {
        if let Some(&sym) = self.ids.get(name) {
            return sym;
        }
        // More than 4 billion distinct names do not fit in memory long before.
        let sym = Sym(u32::try_from(self.names.len()).unwrap_or(u32::MAX));
        self.names.push(name.into());
        self.ids.insert(name.into(), sym);
        sym
    }

    fn opt(&mut self, name: Option<&str>) -> Option<Sym> {
        name.map(|n| self.intern(n))
    }

    fn name(&self, sym: Sym) -> &str {
        self.names.get(sym.0 as usize).map_or("", |n| n)
    }

    fn owned(&self, sym: Option<Sym>) -> Option<String> {
        sym.map(|s| self.name(s).to_owned())
    }
}

/// What links the events of one session: the source's session id, else the account and
/// address, else the person.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Id(Sym, &'a str),
    Other(OtherKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OtherKey {
    Account(Sym, Sym, Option<IpAddr>),
    Person(Sym, Sym),
}

/// A [`Key`] kept beyond its event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedKey {
    Id(Sym, Box<str>),
    Other(OtherKey),
}

impl OwnedKey {
    fn of(key: Key<'_>) -> Self {
        match key {
            Key::Id(source, id) => OwnedKey::Id(source, id.into()),
            Key::Other(k) => OwnedKey::Other(k),
        }
    }

    fn borrow(&self) -> Key<'_> {
        match self {
            OwnedKey::Id(source, id) => Key::Id(*source, id),
            OwnedKey::Other(k) => Key::Other(*k),
        }
    }
}

/// Values by session [`Key`], found without allocating.
#[derive(Debug)]
struct Keyed<V> {
    ids: FxMap<Sym, FxMap<Box<str>, V>>,
    others: FxMap<OtherKey, V>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            ids: FxMap::default(),
            others: FxMap::default(),
        }
    }
}

impl<V> Keyed<V> {
    fn get_mut(&mut self, key: Key<'_>) -> Option<&mut V> {
        match key {
            Key::Id(source, id) => self.ids.get_mut(&source)?.get_mut(id),
            Key::Other(k) => self.others.get_mut(&k),
        }
    }

    /// Removes and returns the values `pred` selects.
    fn take_where(&mut self, mut pred: impl FnMut(&V) -> bool) -> Vec<V> {
        let mut out = Vec::new();
        for by_id in self.ids.values_mut() {
            let keys: Vec<Box<str>> = by_id
                .iter()
                .filter(|(_, v)| pred(v))
                .map(|(k, _)| k.clone())
                .collect();
            out.extend(keys.iter().filter_map(|k| by_id.remove(k)));
        }
        let keys: Vec<OtherKey> = self
            .others
            .iter()
            .filter(|(_, v)| pred(v))
            .map(|(k, _)| *k)
            .collect();
        out.extend(keys.iter().filter_map(|k| self.others.remove(k)));
        out
    }

    fn remove(&mut self, key: Key<'_>) -> Option<V> {
        match key {
            Key::Id(source, id) => self.ids.get_mut(&source)?.remove(id),
            Key::Other(k) => self.others.remove(&k),
        }
    }

    fn get_or_insert_with(&mut self, key: Key<'_>, make: impl FnOnce() -> V) -> &mut V {
        match key {
            Key::Id(source, id) => {
                let by_id = self.ids.entry(source).or_default();
                if !by_id.contains_key(id) {
                    by_id.insert(id.into(), make());
                }
                by_id.get_mut(id).expect("inserted above")
            }
            Key::Other(k) => self.others.entry(k).or_insert_with(make),
        }
    }

    fn insert(&mut self, key: Key<'_>, v: V) {
        match key {
            Key::Id(source, id) => {
                self.ids.entry(source).or_default().insert(id.into(), v);
            }
            Key::Other(k) => {
                self.others.insert(k, v);
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        for by_id in self.ids.values_mut() {
            by_id.retain(|_, v| keep(v));
        }
        self.others.retain(|_, v| keep(v));
    }

    fn take_all(&mut self) -> Vec<V> {
        let mut all: Vec<V> = Vec::new();
        for (_, by_id) in self.ids.drain() {
            all.extend(by_id.into_values());
        }
        all.extend(self.others.drain().map(|(_, v)| v));
        all
    }
}

/// The names of an event the engine interns first (the others only when needed).
#[derive(Debug, Clone, Copy)]
struct Names {
    tenant: Sym,
    source: Sym,
    account: Option<Sym>,
    person: Option<Sym>,
}

/// An open session's address and start entry.
type OpenStart = (Option<IpAddr>, EntryRef);

/// The staff-list version a member was looked for in, and the member found, as (vendor,
/// person): `None` when no member or several match.
type HolderAt = (usize, Option<(Sym, Sym)>);

/// How a connection that names no vendor is matched to a staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum By {
    /// The member holding its account.
    Account,
    /// The member it names.
    Person,
}

/// A session being followed, its names interned.
#[derive(Debug, Clone)]
struct Session<'d> {
    tenant: Sym,
    source: Sym,
    vendor: Option<Sym>,
    person: Option<Sym>,
    account: Option<Sym>,
    addr: Option<IpAddr>,
    target: Option<Sym>,
    protocol: Option<Sym>,
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
    factors: Vec<AuthFactor>,
    /// The window matched (its id, borrowed from the declarations) and its occurrence.
    window: Option<(&'d str, (OffsetDateTime, OffsetDateTime))>,
    emergency: bool,
    /// The start's entry (and the end's).
    entries: Vec<EntryRef>,
    /// The staff list that named the person, when the connection named no person: its
    /// findings cite it after the start's entry.
    named_by: Option<EntryRef>,
}

#[derive(Debug)]
struct Open<'d> {
    session: Session<'d>,
    judged: bool,
    /// Opened by an `auth_success` no session start claimed: closed by a session end
    /// with its key, else as an instant.
    login: bool,
}

/// An `auth_success` waiting for a session start to claim it.
#[derive(Debug)]
struct Login<'d> {
    key: OwnedKey,
    /// The account, else the person, authenticated.
    who: Option<Sym>,
    received_at: OffsetDateTime,
    session: Session<'d>,
    /// False once claimed by a session or judged.
    waiting: bool,
}

/// `auth_success` events not yet claimed by a session start, in order of receipt, found
/// by key and by (source, account or person) without going through the others: at a
/// gateway that logs every login, those of the last [`LOGIN_WAIT`] are thousands.
#[derive(Debug, Default)]
struct Logins<'d> {
    queue: VecDeque<Login<'d>>,
    /// Logins taken from the front so far: the number of the queue's first.
    taken: u64,
    /// Numbers of the logins in the queue, by key, in order (claimed ones may remain).
    by_key: Keyed<VecDeque<u64>>,
    /// The same by (source, account or person).
    by_who: FxMap<(Sym, Sym), VecDeque<u64>>,
}

/// The login numbered `n` in `queue`, whose first is numbered `taken`.
fn numbered<'q, 'd>(
    queue: &'q mut VecDeque<Login<'d>>,
    taken: u64,
    n: u64,
) -> Option<&'q mut Login<'d>> {
    queue.get_mut(usize::try_from(n.checked_sub(taken)?).ok()?)
}

impl<'d> Logins<'d> {
    fn push(&mut self, login: Login<'d>) {
        let n = self.taken + self.queue.len() as u64;
        self.by_key
            .get_or_insert_with(login.key.borrow(), VecDeque::new)
            .push_back(n);
        if let Some(who) = login.who {
            self.by_who
                .entry((login.session.source, who))
                .or_default()
                .push_back(n);
        }
        self.queue.push_back(login);
    }

    fn front(&self) -> Option<&Login<'d>> {
        self.queue.front()
    }

    /// Takes the first login. Each list that holds its number holds it first: the
    /// numbers before it were taken before it, and taken out of the lists then.
    fn pop_front(&mut self) -> Option<Login<'d>> {
        let login = self.queue.pop_front()?;
        let n = self.taken;
        self.taken += 1;
        let key = login.key.borrow();
        if let Some(ns) = self.by_key.get_mut(key)
            && ns.front() == Some(&n)
        {
            ns.pop_front();
            if ns.is_empty() {
                self.by_key.remove(key);
            }
        }
        if let Some(who) = login.who {
            let k = (login.session.source, who);
            if let Some(ns) = self.by_who.get_mut(&k)
                && ns.front() == Some(&n)
            {
                ns.pop_front();
                if ns.is_empty() {
                    self.by_who.remove(&k);
                }
            }
        }
        Some(login)
    }

    /// The first login with `key` still waiting.
    fn first_waiting(&mut self, key: Key<'_>) -> Option<&mut Login<'d>> {
        let Logins {
            queue,
            taken,
            by_key,
            ..
        } = self;
        let n = by_key
            .get_mut(key)?
            .iter()
            .copied()
            .find(|&n| numbered(queue, *taken, n).is_some_and(|l| l.waiting))?;
        numbered(queue, *taken, n)
    }

    /// Marks the logins a session start `e` with `key` claims: those with its key, and
    /// those of the same source and account (or person) `who` at most
    /// [`AUTH_TO_SESSION`] before it from the same address (or without one on either
    /// side).
    fn claim(&mut self, key: Key<'_>, who: Option<Sym>, e: &EventRef<'_>) {
        let Logins {
            queue,
            taken,
            by_key,
            by_who,
        } = self;
        for n in by_key.remove(key).unwrap_or_default() {
            if let Some(l) = numbered(queue, *taken, n) {
                l.waiting = false;
            }
        }
        let Some(who) = who else { return };
        let k = (source_of(key), who);
        let Some(ns) = by_who.get_mut(&k) else {
            return;
        };
        // Claimed ones leave the list; those still waiting stay.
        ns.retain(|&n| {
            let Some(l) = numbered(queue, *taken, n).filter(|l| l.waiting) else {
                return false;
            };
            let just_before = l.session.start <= e.occurred_at
                && e.occurred_at - l.session.start <= AUTH_TO_SESSION
                && (l.session.addr.is_none()
                    || e.source_addr.is_none()
                    || l.session.addr == e.source_addr);
            if just_before {
                l.waiting = false;
            }
            !just_before
        });
        if ns.is_empty() {
            by_who.remove(&k);
        }
    }
}

#[derive(Debug)]
struct SourceState {
    tenant: Sym,
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
    /// `(started_at, index in reports)`, by `started_at` (as [`nanos`]).
    reports: Vec<(i128, usize)>,
    /// The longest report interval (never negative).
    report_span: Duration,
    /// One-off windows: `(starts_at, index in windows)`, by `starts_at` (as [`nanos`]).
    one_off: Vec<(i128, usize)>,
    /// The longest one-off window (never negative).
    one_off_span: Duration,
    /// Every other window (recurring), by index.
    recurring: Vec<usize>,
}

impl<'d> VendorIndex<'d> {
    fn new(decls: &'d VendorDecls) -> Self {
        let mut reports: Vec<(i128, usize)> = decls
            .reports
            .iter()
            .enumerate()
            .map(|(i, r)| (nanos(r.value.started_at), i))
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
                    one_off.push((nanos(*starts_at), i));
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
        sorted: &[(i128, usize)],
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> &[(i128, usize)] {
        let lo = from.map_or(0, |f| {
            let f = nanos(f);
            sorted.partition_point(|(s, _)| *s < f)
        });
        let hi = to.map_or(sorted.len(), |t| {
            let t = nanos(t);
            sorted.partition_point(|(s, _)| *s <= t)
        });
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

/// The members of a staff list holding the account `name`, or named `name` (`by`).
fn matching<'l, 'a>(
    members: &'l [StaffMember],
    by: By,
    name: &'a str,
) -> impl Iterator<Item = &'l StaffMember> + use<'l, 'a> {
    members.iter().filter(move |m| match by {
        By::Account => m.accounts.iter().any(|a| a == name),
        By::Person => m.person == name,
    })
}

/// The only item, if there is exactly one.
fn sole<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    match (items.next(), items.next()) {
        (Some(item), None) => Some(item),
        _ => None,
    }
}

/// A tenant's vendors and when their staff lists were filed.
#[derive(Debug, Default)]
struct TenantIndex<'d> {
    /// Where each vendor's declarations are in [`Engine::vendors`].
    vendors: HashMap<&'d str, usize>,
    /// When each staff list of the tenant's vendors was filed (as [`nanos`]), sorted: the
    /// lists in force change only at these instants, so how many of them are at or before
    /// `t` names the lists in force at `t` (the staff-list version).
    staff_filed: Vec<i128>,
}

/// The streaming rule engine.
#[derive(Debug)]
pub struct Engine<'d> {
    /// The declarations per tenant and vendor, indexed by time.
    vendors: Vec<VendorIndex<'d>>,
    /// Per tenant, where each vendor of the declarations is in `vendors`.
    by_name: HashMap<&'d str, TenantIndex<'d>>,
    /// The same, by interned names, filled as they are met (`None`: nothing declared).
    by_sym: FxMap<(Sym, Sym), Option<usize>>,
    /// For connections that name no vendor: the member matching each (tenant, account or
    /// person) across the tenant's staff lists.
    holders: FxMap<(Sym, By, Sym), HolderAt>,
    /// Candidate windows of one lookup (kept to reuse its allocation).
    scratch: Vec<usize>,
    cfg: RuleConfig,
    cache: OccurrenceCache,
    paris: ParisHours,
    names: Interner,
    open: Keyed<Open<'d>>,
    /// Open sessions per (tenant, account): address and start entry.
    open_by_account: FxMap<(Sym, Sym), Vec<OpenStart>>,
    /// The last `auth_success` per (source, account): when, and its factors.
    recent_auth: FxMap<(Sym, Sym), (OffsetDateTime, Vec<AuthFactor>)>,
    /// Factors of `auth_success` events waiting for their session's start.
    factors: Keyed<(OffsetDateTime, Vec<AuthFactor>)>,
    /// `auth_success` events not yet claimed by a session start.
    logins: Logins<'d>,
    /// The first person seen on each (tenant, account), and where.
    account_users: FxMap<(Sym, Sym), (Sym, EntryRef)>,
    /// Shared accounts reported: (tenant, account, person).
    shared_reported: FxSet<(Sym, Sym, Sym)>,
    /// Stale staff lists reported: (tenant, vendor, the list's entry).
    stale_reported: FxSet<(Sym, Sym, EntryRef)>,
    sources: FxMap<Sym, SourceState>,
    persons: FxSet<(Sym, Sym)>,
    findings: Vec<Finding>,
    /// Sessions closed since the last [`Engine::take_closed`].
    closed: Vec<SessionRecord>,
    stats: Stats,
}

impl<'d> Engine<'d> {
    /// An engine judging against `decls`.
    pub fn new(decls: &'d Declarations, cfg: RuleConfig) -> Self {
        let mut vendors = Vec::new();
        let mut by_name: HashMap<&str, TenantIndex<'d>> = HashMap::new();
        for (tenant, vendor, vd) in decls.vendors() {
            let index = by_name.entry(tenant).or_default();
            index.vendors.insert(vendor, vendors.len());
            index
                .staff_filed
                .extend(vd.staff_lists.iter().map(|l| nanos(l.filed_at)));
            vendors.push(VendorIndex::new(vd));
        }
        for index in by_name.values_mut() {
            index.staff_filed.sort_unstable();
        }
        Engine {
            vendors,
            by_name,
            by_sym: FxMap::default(),
            holders: FxMap::default(),
            scratch: Vec::new(),
            cfg,
            cache: OccurrenceCache::default(),
            paris: ParisHours::default(),
            names: Interner::default(),
            open: Keyed::default(),
            open_by_account: FxMap::default(),
            recent_auth: FxMap::default(),
            factors: Keyed::default(),
            logins: Logins::default(),
            account_users: FxMap::default(),
            shared_reported: FxSet::default(),
            stale_reported: FxSet::default(),
            sources: FxMap::default(),
            persons: FxSet::default(),
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

    /// Takes one event, in time order (of receipt).
    pub fn push(&mut self, at: EntryRef, e: &EventRef<'_>) {
        if self.cfg.tenant.as_deref().is_some_and(|t| t != e.tenant) {
            return;
        }
        self.stats.events += 1;
        let source = self.names.intern(e.source);
        let tenant = self.track_source(source, &at, e);
        if self.stats.events.is_multiple_of(1 << 16) {
            // Factors whose session never started are forgotten after an hour.
            let horizon = e.received_at - Duration::hours(1);
            self.factors.retain(|(seen, _)| *seen >= horizon);
            self.close_old_logins(e.occurred_at);
        }
        // Another vendor's events are dropped here; those that name no vendor go on, as
        // they may be this vendor's staff's (decided by `judge_start`).
        if let (Some(only), Some(named)) = (self.cfg.vendor.as_deref(), e.vendor)
            && only != named
        {
            return;
        }
        self.judge_waiting_logins(Some(e.received_at));
        let (account, person) = match e.kind {
            EventKindRef::AuthFailure { .. } | EventKindRef::Unmapped => return,
            // An end found by its session id needs no other name.
            EventKindRef::SessionEnd | EventKindRef::TunnelDown if e.session_id.is_some() => {
                (None, None)
            }
            _ => (self.names.opt(e.account), self.names.opt(e.person)),
        };
        let key = match (e.session_id, account, person) {
            (Some(id), _, _) => Some(Key::Id(source, id)),
            (None, Some(account), _) => Some(Key::Other(OtherKey::Account(
                source,
                account,
                e.source_addr,
            ))),
            (None, None, Some(person)) => Some(Key::Other(OtherKey::Person(source, person))),
            (None, None, None) => None,
        };
        match e.kind {
            EventKindRef::AuthSuccess => {
                let mut own = Vec::with_capacity(e.factors.len());
                merge_factors(&mut own, e.factors);
                if let Some(who) = account.or(person) {
                    let recent = self
                        .recent_auth
                        .entry((source, who))
                        .or_insert_with(|| (e.occurred_at, Vec::new()));
                    recent.0 = e.occurred_at;
                    recent.1.clone_from(&own);
                }
                let Some(key) = key else { return };
                match self.open.get_mut(key) {
                    // An authentication within an open session: more factors for it.
                    Some(open) if !open.login => {
                        merge_factors(&mut open.session.factors, e.factors);
                        return;
                    }
                    // A new login where the last one (without end) was: that one was an
                    // instant.
                    Some(_) => {
                        if let Some(previous) = self.take_open(key) {
                            let end = Some(previous.session.start);
                            self.close(previous, end);
                        }
                    }
                    None => {}
                }
                let pending = self
                    .factors
                    .get_or_insert_with(key, || (e.received_at, Vec::new()));
                merge_factors_owned(&mut pending.1, &own);
                let session = self.session_of(
                    Names {
                        tenant,
                        source,
                        account,
                        person,
                    },
                    &at,
                    e,
                    own,
                );
                self.logins.push(Login {
                    key: OwnedKey::of(key),
                    who: account.or(person),
                    received_at: e.received_at,
                    session,
                    waiting: true,
                });
            }
            EventKindRef::SessionStart | EventKindRef::TunnelUp => {
                let Some(key) = key else { return };
                if let Some(previous) = self.take_open(key) {
                    let end = previous.login.then_some(previous.session.start);
                    self.close(previous, end);
                }
                let mut factors = self.factors.remove(key).map(|f| f.1).unwrap_or_default();
                merge_factors(&mut factors, e.factors);
                // Sources that log the authentication and the session under different ids
                // (sshd: `ip:port` for "Accepted", `sshd[pid]` for the PAM session): the
                // factors of the account's authentication just before the start count.
                if let Some(who) = account.or(person)
                    && let Some((at, f)) = self.recent_auth.get(&(source, who))
                    && *at <= e.occurred_at
                    && e.occurred_at - *at <= AUTH_TO_SESSION
                {
                    merge_factors_owned(&mut factors, f);
                }
                self.logins.claim(key, account.or(person), e);
                let session = self.session_of(
                    Names {
                        tenant,
                        source,
                        account,
                        person,
                    },
                    &at,
                    e,
                    factors,
                );
                self.open_session(key, session, false);
            }
            EventKindRef::SessionEnd | EventKindRef::TunnelDown => {
                let Some(key) = key else { return };
                if let Some(mut open) = self.take_open(key) {
                    open.session.entries.push(at);
                    merge_factors(&mut open.session.factors, e.factors);
                    self.close(open, Some(e.occurred_at));
                } else if let Some(login) = self.logins.first_waiting(key) {
                    // A login whose end comes before any session start: one connection
                    // from the authentication to this end.
                    login.waiting = false;
                    let session = login.session.clone();
                    let mut open = self.open_login(session);
                    open.session.entries.push(at);
                    merge_factors(&mut open.session.factors, e.factors);
                    self.close(open, Some(e.occurred_at));
                }
            }
            EventKindRef::AuthFailure { .. } | EventKindRef::Unmapped => {}
        }
    }

    /// A session starting with `e` (`names` already interned), without window or end.
    fn session_of(
        &mut self,
        names: Names,
        at: &EntryRef,
        e: &EventRef<'_>,
        factors: Vec<AuthFactor>,
    ) -> Session<'d> {
        Session {
            tenant: names.tenant,
            source: names.source,
            vendor: self.names.opt(e.vendor),
            person: names.person,
            account: names.account,
            addr: e.source_addr,
            target: self.names.opt(e.target),
            protocol: self.names.opt(e.protocol),
            start: e.occurred_at,
            end: None,
            factors,
            window: None,
            emergency: false,
            entries: vec![at.clone()],
            named_by: None,
        }
    }

    /// Opens a session (judging its start when it is in the range and the scope).
    fn open_session(&mut self, key: Key<'_>, mut session: Session<'d>, login: bool) {
        let judged = self.cfg.from <= session.start
            && session.start < self.cfg.to
            && self.judge_start(&mut session);
        if let Some(account) = session.account
            && !login
        {
            self.open_by_account
                .entry((session.tenant, account))
                .or_default()
                .push((session.addr, session.entries[0].clone()));
        }
        self.open.insert(
            key,
            Open {
                session,
                judged,
                login,
            },
        );
    }

    /// A login judged as a connection, not (yet) in `open`.
    fn open_login(&mut self, mut session: Session<'d>) -> Open<'d> {
        let judged = self.cfg.from <= session.start
            && session.start < self.cfg.to
            && self.judge_start(&mut session);
        Open {
            session,
            judged,
            login: true,
        }
    }

    /// Judges the logins no session start claimed in time (all of them without `now`).
    fn judge_waiting_logins(&mut self, now: Option<OffsetDateTime>) {
        while let Some(front) = self.logins.front() {
            if front.waiting && now.is_some_and(|now| now - front.received_at <= LOGIN_WAIT) {
                return;
            }
            let Some(login) = self.logins.pop_front() else {
                return;
            };
            if !login.waiting {
                continue;
            }
            let key = login.key.borrow();
            if let Some(previous) = self.take_open(key) {
                let end = previous.login.then_some(previous.session.start);
                self.close(previous, end);
            }
            let open = self.open_login(login.session);
            self.open.insert(key, open);
        }
    }

    /// Closes, as instants, the logins open longer than the open-session grace without an
    /// end: most sources that log only logins never log their end.
    fn close_old_logins(&mut self, now: OffsetDateTime) {
        let horizon = now - self.cfg.open_session_grace;
        let mut old = self
            .open
            .take_where(|o| o.login && o.session.start < horizon);
        old.sort_by_key(|o| o.session.start);
        for o in old {
            let end = Some(o.session.start);
            self.close(o, end);
        }
    }

    fn take_open(&mut self, key: Key<'_>) -> Option<Open<'d>> {
        let open = self.open.remove(key)?;
        if let Some(account) = open.session.account
            && !open.login
        {
            let start = &open.session.entries[0];
            // An emptied list is kept, allocated, for the account's next session.
            if let Some(list) = self
                .open_by_account
                .get_mut(&(open.session.tenant, account))
            {
                list.retain(|(_, s)| s != start);
            }
        }
        Some(open)
    }

    /// Follows the source's clock and silences; returns the event's tenant.
    fn track_source(&mut self, source: Sym, at: &EntryRef, e: &EventRef<'_>) -> Sym {
        let in_range = self.cfg.from <= e.received_at && e.received_at < self.cfg.to;
        let names = &mut self.names;
        let state = self.sources.entry(source).or_insert_with(|| SourceState {
            tenant: names.intern(e.tenant),
            last: None,
            skewed: 0,
            worst_skew: 0,
            worst_at: None,
        });
        // A source reports for one tenant: compared, not looked up, per event.
        if names.name(state.tenant) != e.tenant {
            state.tenant = names.intern(e.tenant);
        }
        let tenant = state.tenant;
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
            let mut f = Finding::new(Rule::SilentSource, e.tenant, e.received_at);
            f.entries = vec![last_ref.clone(), at.clone()];
            f.facts.when = Some(*last);
            f.facts.amount = Some((e.received_at - *last).whole_seconds());
            f.facts.note = Some(e.source.to_owned());
            self.findings.push(f);
        }
        if state.last.as_ref().is_none_or(|(l, _)| *l <= e.received_at) {
            state.last = Some((e.received_at, at.clone()));
        }
        tenant
    }

    fn finding(&self, rule: Rule, s: &Session<'_>) -> Finding {
        let names = &self.names;
        let mut f = Finding::new(rule, names.name(s.tenant), s.start);
        f.vendor = names.owned(s.vendor);
        f.person = names.owned(s.person);
        f.account = names.owned(s.account);
        f.entries = vec![s.entries[0].clone()];
        f.entries.extend(s.named_by.clone());
        f.facts = Facts {
            target: names.owned(s.target),
            addr: s.addr.map(|a| a.to_string()),
            ..Facts::default()
        };
        f
    }

    fn record(&self, s: Session<'_>) -> SessionRecord {
        let names = &self.names;
        SessionRecord {
            tenant: names.name(s.tenant).to_owned(),
            source: names.name(s.source).to_owned(),
            vendor: names.owned(s.vendor),
            person: names.owned(s.person),
            account: names.owned(s.account),
            source_addr: s.addr.map(|a| a.to_string()),
            target: names.owned(s.target),
            protocol: names.owned(s.protocol),
            start: s.start,
            end: s.end,
            factors: s.factors,
            window: s.window.map(|(id, _)| id.to_owned()),
            window_interval: s.window.map(|(_, interval)| interval),
            emergency: s.emergency,
            entries: s.entries,
        }
    }

    /// Where the declarations of (tenant, vendor) are in `vendors`.
    fn vendor_slot(&mut self, tenant: Sym, vendor: Sym) -> Option<usize> {
        if let Some(&slot) = self.by_sym.get(&(tenant, vendor)) {
            return slot;
        }
        let slot = self
            .by_name
            .get(self.names.name(tenant))
            .and_then(|index| index.vendors.get(self.names.name(vendor)))
            .copied();
        self.by_sym.insert((tenant, vendor), slot);
        slot
    }

    /// The one member, in the staff lists in force at `t` of every vendor of `tenant`,
    /// holding the account `name` or named `name` (`by`), as (vendor, person); `None` when
    /// no member matches or several do (of one vendor or of several). Kept per (tenant,
    /// `by`, `name`) with the staff-list version it was found for: looked for again only
    /// once a staff list of the tenant was filed in between.
    fn sole_member(
        &mut self,
        tenant: Sym,
        (by, name): (By, Sym),
        t: OffsetDateTime,
    ) -> Option<(Sym, Sym)> {
        let index = self.by_name.get(self.names.name(tenant))?;
        let at = nanos(t);
        let version = index.staff_filed.partition_point(|&filed| filed <= at);
        if let Some(&(seen, member)) = self.holders.get(&(tenant, by, name))
            && seen == version
        {
            return member;
        }
        let sole = {
            let name = self.names.name(name);
            let vendors = &self.vendors;
            sole(index.vendors.iter().flat_map(|(&vendor, &slot)| {
                let decls: &'d VendorDecls = vendors[slot].decls;
                let members = decls.staff_list_at(t).map_or(&[][..], |l| &l.value[..]);
                matching(members, by, name).map(move |m| (vendor, m.person.as_str()))
            }))
        };
        let member =
            sole.map(|(vendor, person)| (self.names.intern(vendor), self.names.intern(person)));
        self.holders.insert((tenant, by, name), (version, member));
        member
    }

    /// Names the connection, and judges its start if it is in the run's vendor scope;
    /// returns whether it was judged (the rest of it is then judged at its close).
    fn judge_start(&mut self, r: &mut Session<'d>) -> bool {
        let t = r.start;
        // Nominative identity: the person reported, else the sole holder of the account in
        // the staff list in force, in the vendor's list or, when the connection names no
        // vendor, in those of every vendor of the tenant (the holder's vendor is then the
        // connection's). A connection that names a person but no vendor is the vendor's
        // whose list in force alone names that person.
        let mut from_list = false;
        let unnamed_vendor = match (r.vendor, r.person, r.account) {
            (Some(_), _, _) | (None, None, None) => None,
            (None, Some(person), _) => Some((By::Person, person)),
            (None, None, Some(account)) => Some((By::Account, account)),
        };
        if let Some(who) = unnamed_vendor
            && let Some((vendor, person)) = self.sole_member(r.tenant, who, t)
        {
            r.vendor = Some(vendor);
            r.person = Some(person);
            from_list = true;
        }
        let slot = r.vendor.and_then(|v| self.vendor_slot(r.tenant, v));
        let vd: Option<&'d VendorDecls> = slot.map(|i| self.vendors[i].decls);
        let list = vd.and_then(|vd| vd.staff_list_at(t));
        if r.person.is_none()
            && let (Some(list), Some(account)) = (list, r.account)
            && let Some(holder) = sole(matching(&list.value, By::Account, self.names.name(account)))
        {
            r.person = Some(self.names.intern(&holder.person));
            from_list = true;
        }
        if from_list {
            r.named_by = list.map(|l| l.entry.clone());
        }
        // Restricted to one vendor: a connection that is not its own, once named (it named
        // no vendor and is nobody's or another vendor's staff's), is not this run's.
        if let Some(only) = self.cfg.vendor.as_deref()
            && r.vendor.is_none_or(|v| self.names.name(v) != only)
        {
            return false;
        }
        self.stats.connections += 1;
        let (Some(vendor), Some(person_sym)) = (r.vendor, r.person) else {
            let f = self.finding(Rule::NotNominative, r);
            self.findings.push(f);
            return true;
        };
        if self.persons.insert((r.tenant, person_sym)) {
            self.stats.persons += 1;
        }
        let empty = VendorDecls::default();
        let vd_or_empty = vd.unwrap_or(&empty);

        // Staff list, departure.
        let (member, departure) = {
            let person = self.names.name(person_sym);
            let member = list.and_then(|l| {
                l.value
                    .iter()
                    .find(|m| m.person == person || m.email.eq_ignore_ascii_case(person))
            });
            let holder_departed = r.account.and_then(|account| {
                let account = self.names.name(account);
                list.and_then(|l| {
                    l.value
                        .iter()
                        .filter(|m| m.accounts.iter().any(|a| a == account))
                        .find_map(|m| vd.and_then(|vd| vd.departure_of(&m.person, t)))
                })
            });
            (
                member,
                vd_or_empty.departure_of(person, t).or(holder_departed),
            )
        };
        if let Some(dep) = departure {
            let mut f = self.finding(Rule::AccountAfterDeparture, r);
            f.entries.push(dep.entry.clone());
            f.facts.when = Some(dep.value.effective_at);
            f.facts.other = Some(dep.value.person.clone());
            self.findings.push(f);
        } else {
            let local_date = self.paris.date(t);
            match member {
                Some(m) if m.start_date <= local_date => {}
                _ => {
                    let mut f = self.finding(Rule::NotOnStaffList, r);
                    if let Some(l) = list
                        && !f.entries.contains(&l.entry)
                    {
                        f.entries.push(l.entry.clone());
                    }
                    self.findings.push(f);
                }
            }
        }
        if let Some(l) = list
            && t - l.filed_at > self.cfg.staff_list_max_age
            && self
                .stale_reported
                .insert((r.tenant, vendor, l.entry.clone()))
        {
            let mut f = self.finding(Rule::StaffListStale, r);
            f.person = None;
            f.account = None;
            if !f.entries.contains(&l.entry) {
                f.entries.push(l.entry.clone());
            }
            f.facts.when = Some(l.filed_at);
            f.facts.amount = Some((t - l.filed_at).whole_days());
            self.findings.push(f);
        }

        // Shared account: several persons, or concurrent sessions from several addresses.
        if let Some(account) = r.account {
            match self.account_users.get(&(r.tenant, account)) {
                None => {
                    self.account_users
                        .insert((r.tenant, account), (person_sym, r.entries[0].clone()));
                }
                Some((first, first_at)) if *first != person_sym => {
                    if self.shared_reported.insert((r.tenant, account, person_sym)) {
                        let mut f = self.finding(Rule::SharedAccount, r);
                        f.entries.push(first_at.clone());
                        f.facts.other = Some(self.names.name(*first).to_owned());
                        self.findings.push(f);
                    }
                }
                Some(_) => {
                    let concurrent = self
                        .open_by_account
                        .get(&(r.tenant, account))
                        .and_then(|list| list.iter().find(|(addr, _)| *addr != r.addr));
                    if let Some((addr, start)) = concurrent {
                        let mut f = self.finding(Rule::SharedAccount, r);
                        f.entries.push(start.clone());
                        f.facts.note = Some("concurrent".into());
                        f.facts.other = addr.map(|a| a.to_string());
                        self.findings.push(f);
                    }
                }
            }
        }

        // Declared resources.
        if let (Some(m), Some(target)) = (member, r.target) {
            let target = self.names.name(target);
            if !m.resources.iter().any(|res| resource_matches(res, target)) {
                let f = self.finding(Rule::UndeclaredTarget, r);
                self.findings.push(f);
            }
        }

        // Window or emergency.
        let person = self.names.name(person_sym);
        let who = (Some(person), r.target.map(|x| self.names.name(x)));
        let index = slot.map(|i| &self.vendors[i]);
        if let Some(em) = vd_or_empty.emergency_at(t, who.0, who.1) {
            r.emergency = true;
            let mut f = self.finding(Rule::Emergency, r);
            f.entries.push(em.entry.clone());
            f.facts.note = Some(em.value.reason.clone());
            self.findings.push(f);
        } else if let Some(m) =
            index.and_then(|i| i.windows_covering(&mut self.cache, &mut self.scratch, t, who, true))
        {
            r.window = vd.map(|vd| window_of(vd, &m));
        } else if let Some(m) = index
            .and_then(|i| i.windows_covering(&mut self.cache, &mut self.scratch, t, who, false))
        {
            r.window = vd.map(|vd| window_of(vd, &m));
            let mut f = self.finding(Rule::WindowAfterFact, r);
            f.entries.push(m.entry.clone());
            f.facts.window_id = Some(m.id.clone());
            f.facts.when = Some(m.filed_at);
            self.findings.push(f);
        } else {
            let f = self.finding(Rule::OutsideWindow, r);
            self.findings.push(f);
        }
        true
    }

    fn close(&mut self, open: Open<'d>, end: Option<OffsetDateTime>) {
        let Open {
            session: mut r,
            judged,
            ..
        } = open;
        r.end = end;
        if !judged {
            return;
        }
        if !r.factors.iter().any(AuthFactor::is_possession) {
            let f = self.finding(Rule::NoSecondFactor, &r);
            self.findings.push(f);
        }
        match end {
            None if r.start < self.cfg.to - self.cfg.open_session_grace => {
                let f = self.finding(Rule::SessionWithoutEnd, &r);
                self.findings.push(f);
            }
            Some(end) => {
                if let Some((id, (_, wend))) = r.window
                    && end > wend + self.cfg.overrun_grace
                {
                    let mut f = self.finding(Rule::SessionOverrun, &r);
                    f.entries.extend(r.entries.get(1).cloned());
                    f.facts.window_id = Some(id.to_owned());
                    f.facts.when = Some(wend);
                    self.findings.push(f);
                }
            }
            None => {}
        }
        self.check_report(&r);
        if self.closed.len() < self.cfg.keep_sessions {
            let record = self.record(r);
            self.closed.push(record);
        } else {
            self.stats.sessions_dropped += 1;
        }
    }

    fn check_report(&mut self, r: &Session<'d>) {
        let (Some(vendor), Some(person)) = (r.vendor, r.person) else {
            return;
        };
        let Some(slot) = self.vendor_slot(r.tenant, vendor) else {
            let f = self.finding(Rule::MissingReport, r);
            self.findings.push(f);
            return;
        };
        let index = &self.vendors[slot];
        let person = self.names.name(person);
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
        let (filed_at, entry) = (report.filed_at, report.entry.clone());
        if self.paris.off_hours(r.start) && self.paris.date(filed_at) > self.paris.date(end) {
            let mut f = self.finding(Rule::LateReport, r);
            f.entries.push(entry);
            f.facts.when = Some(filed_at);
            self.findings.push(f);
        }
    }

    /// Closes what is open and returns every finding, in time order.
    pub fn finish(mut self) -> (Vec<Finding>, Vec<SessionRecord>, Stats) {
        self.judge_waiting_logins(None);
        self.open_by_account = FxMap::default();
        let mut open: Vec<Open> = self.open.take_all();
        open.sort_by_key(|o| o.session.start);
        for o in open {
            // A login without an end was an instant.
            let end = o.login.then_some(o.session.start);
            self.close(o, end);
        }
        let mut sources: Vec<(Sym, SourceState)> = self.sources.drain().collect();
        sources.sort_by(|a, b| self.names.name(a.0).cmp(self.names.name(b.0)));
        for (name, s) in sources {
            let name = self.names.name(name).to_owned();
            let tenant = self.names.name(s.tenant).to_owned();
            if s.skewed > 0
                && let Some((at, entry)) = s.worst_at
            {
                let mut f = Finding::new(Rule::ClockSkew, &tenant, at);
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
                let mut f = Finding::new(Rule::SilentSource, &tenant, self.cfg.to);
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

fn window_of<'d>(
    vd: &'d VendorDecls,
    m: &WindowMatch,
) -> (&'d str, (OffsetDateTime, OffsetDateTime)) {
    let id = vd
        .windows
        .get(m.index)
        .map_or("", |w| w.grant.value.id.as_str());
    (id, (m.occurrence.start, m.occurrence.end))
}

/// An instant as a number, ordered as the instants are (comparing `OffsetDateTime`s
/// normalises their offsets first).
fn nanos(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

/// The Paris date and whether it is off-hours (night, weekend, public holiday), per UTC
/// hour: both depend only on the local date and hour, and Paris changes offset by whole
/// hours on whole UTC hours (01:00 UTC), so every instant of a UTC hour shares them.
/// Computing them takes a time-zone lookup, and a session needs them up to three times.
#[derive(Debug, Default)]
struct ParisHours(FxMap<i64, (Date, bool)>);

impl ParisHours {
    fn get(&mut self, t: OffsetDateTime) -> (Date, bool) {
        *self
            .0
            .entry(t.unix_timestamp().div_euclid(3600))
            .or_insert_with(|| {
                let off = proto::calendar::off_hours(t, proto::calendar::PARIS)
                    .map(|o| o.any())
                    .unwrap_or(false);
                (crate::time_fmt::paris_date(t), off)
            })
    }

    fn date(&mut self, t: OffsetDateTime) -> Date {
        self.get(t).0
    }

    fn off_hours(&mut self, t: OffsetDateTime) -> bool {
        self.get(t).1
    }
}

fn source_of(key: Key<'_>) -> Sym {
    match key {
        Key::Id(source, _)
        | Key::Other(OtherKey::Account(source, _, _) | OtherKey::Person(source, _)) => source,
    }
}

fn merge_factors(into: &mut Vec<AuthFactor>, from: Factors<'_>) {
    for f in from.iter() {
        if !into.iter().any(|have| f.is(have)) {
            into.push(f.to_owned());
        }
    }
}

fn merge_factors_owned(into: &mut Vec<AuthFactor>, from: &[AuthFactor]) {
    for f in from {
        if !into.contains(f) {
            into.push(f.clone());
        }
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
    use proto::model::{
        ConnectionEvent, Declaration, DeclarationBody, Entry, EventKind, Schedule, StaffMember,
        Window,
    };
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

    /// Runs the engine over `events` (in this order, numbered from 0).
    fn run(
        d: &Declarations,
        events: Vec<ConnectionEvent>,
    ) -> (Vec<Finding>, Vec<SessionRecord>, Stats) {
        let mut cfg = RuleConfig::new(
            datetime!(2026-01-01 0:00 UTC),
            datetime!(2026-12-31 0:00 UTC),
        );
        cfg.silent_after = Duration::days(400);
        let mut engine = Engine::new(d, cfg);
        for (i, e) in events.into_iter().enumerate() {
            let bytes = proto::canonical::encode(&Entry::Event(e));
            let view = proto::canonical::decode_event_ref(&bytes).expect("an event");
            engine.push(
                EntryRef {
                    ledger: "ev".into(),
                    seq: i as u64,
                },
                &view,
            );
        }
        engine.finish()
    }

    fn judge(d: &Declarations, events: Vec<ConnectionEvent>) -> Vec<Rule> {
        run(d, events).0.iter().map(|f| f.rule).collect()
    }

    /// An event of `kind` at `at` by Ana on the bastion.
    fn event(kind: EventKind, at: OffsetDateTime, id: Option<&str>) -> ConnectionEvent {
        ConnectionEvent {
            kind,
            tenant: "chu".into(),
            source: "bastion".into(),
            vendor: Some("acme".into()),
            person: Some("ana@acme.fr".into()),
            account: Some("ana".into()),
            target: Some("srv-1".into()),
            protocol: Some("ssh".into()),
            source_addr: Some(IpAddr::from([10, 0, 0, 9])),
            session_id: id.map(Into::into),
            factors: vec![AuthFactor::PublicKey, AuthFactor::Otp],
            occurred_at: at,
            received_at: at,
            raw: Vec::new(),
        }
    }

    #[test]
    fn a_login_without_session_events_is_judged_as_an_instant_connection() {
        let at = datetime!(2026-07-15 8:00 UTC);
        let d = declarations(&[(at, at, at)]);
        let mut login = event(EventKind::AuthSuccess, at, Some("10.0.0.9:50000"));
        login.factors = vec![AuthFactor::Password];
        let (findings, sessions, stats) = run(&d, vec![login]);
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            [Rule::NoSecondFactor]
        );
        assert_eq!(findings[0].entries[0].seq, 0);
        assert_eq!(stats.connections, 1);
        // An instant, not a session without end.
        assert_eq!(sessions.len(), 1);
        assert_eq!((sessions[0].start, sessions[0].end), (at, Some(at)));
        // Its target, its report: judged like any connection.
        let mut night = event(EventKind::AuthSuccess, at, None);
        night.target = Some("db-1".into());
        assert_eq!(
            judge(&declarations(&[]), vec![night]),
            [Rule::UndeclaredTarget, Rule::MissingReport]
        );
    }

    #[test]
    fn a_login_and_its_session_are_one_connection() {
        let (start, end) = (
            datetime!(2026-07-15 8:00 UTC),
            datetime!(2026-07-15 9:00 UTC),
        );
        let d = declarations(&[(start, end, end)]);
        // Same session id.
        let same_id = vec![
            event(
                EventKind::AuthSuccess,
                start - Duration::seconds(3),
                Some("s1"),
            ),
            event(EventKind::SessionStart, start, Some("s1")),
            event(EventKind::SessionEnd, end, Some("s1")),
        ];
        let (findings, sessions, stats) = run(&d, same_id);
        assert_eq!(findings, []);
        assert_eq!(stats.connections, 1);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].entries[0].seq, 1);
        // sshd: "Accepted" under `ip:port`, the PAM session under `sshd[pid]`.
        let sshd = vec![
            event(
                EventKind::AuthSuccess,
                start - Duration::seconds(1),
                Some("10.0.0.9:50000"),
            ),
            event(EventKind::SessionStart, start, Some("sshd[42]")),
            event(EventKind::SessionEnd, end, Some("sshd[42]")),
        ];
        let (findings, _, stats) = run(&d, sshd.clone());
        assert_eq!(findings, []);
        assert_eq!(stats.connections, 1);
        // The PAM session logs no address: still the same login.
        let mut no_addr = sshd.clone();
        no_addr[1].source_addr = None;
        no_addr[2].source_addr = None;
        assert_eq!(run(&d, no_addr).2.connections, 1);
        // From another address, or too long before: a login of its own.
        let mut elsewhere = sshd.clone();
        elsewhere[0].source_addr = Some("10.9.9.9".parse().unwrap());
        assert_eq!(run(&d, elsewhere).2.connections, 2);
        let mut stale = sshd;
        stale[0].occurred_at = start - Duration::minutes(10);
        stale[0].received_at = stale[0].occurred_at;
        assert_eq!(run(&d, stale).2.connections, 2);
    }

    #[test]
    fn a_login_lasts_until_its_session_end() {
        // A VPN gateway logging the login and the logout: 23:30 to 00:30 Paris, past the
        // daily window's midnight end.
        let (start, end) = (
            datetime!(2026-07-15 21:30 UTC),
            datetime!(2026-07-15 22:30 UTC),
        );
        let d = declarations(&[(start, end, end + Duration::minutes(10))]);
        let events = vec![
            event(EventKind::AuthSuccess, start, Some("vpn-7")),
            event(EventKind::TunnelDown, end, Some("vpn-7")),
        ];
        let (findings, sessions, stats) = run(&d, events.clone());
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            [Rule::SessionOverrun]
        );
        assert_eq!(stats.connections, 1);
        assert_eq!(sessions[0].end, Some(end));
        assert_eq!(sessions[0].entries.len(), 2);
        // The same when the end comes long after the login was judged on its own.
        let mut later = events;
        later[1].occurred_at = start + Duration::hours(3);
        later[1].received_at = later[1].occurred_at;
        let (findings, sessions, _) = run(&d, later);
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            [Rule::SessionOverrun]
        );
        assert_eq!(sessions[0].end, Some(start + Duration::hours(3)));
        // A short connection: the end comes while the login still waits for a session
        // start, behind logins of other keys and accounts.
        let mut short = Vec::new();
        for i in 0..50 {
            let mut other = event(EventKind::AuthSuccess, start, Some(&format!("vpn-{i}")));
            other.account = Some(format!("other-{i}"));
            short.push(other);
        }
        short.push(event(EventKind::AuthSuccess, start, Some("vpn-77")));
        short.push(event(
            EventKind::TunnelDown,
            start + Duration::minutes(2),
            Some("vpn-77"),
        ));
        let (_, sessions, stats) = run(&d, short);
        assert_eq!(stats.connections, 51);
        let ended: Vec<_> = sessions.iter().filter(|s| s.entries.len() == 2).collect();
        assert_eq!(ended.len(), 1, "{sessions:?}");
        assert_eq!(ended[0].end, Some(start + Duration::minutes(2)));
        assert_eq!(ended[0].entries[0].seq, 50);
    }

    #[test]
    fn repeated_logins_without_session_id_are_each_a_connection() {
        let at = datetime!(2026-07-15 8:00 UTC);
        let d = declarations(&[(at, at + Duration::hours(2), at)]);
        let events = vec![
            event(EventKind::AuthSuccess, at, None),
            event(EventKind::AuthSuccess, at + Duration::hours(1), None),
        ];
        let (findings, sessions, stats) = run(&d, events);
        assert_eq!(findings, []);
        assert_eq!(stats.connections, 2);
        assert_eq!(sessions.len(), 2);
        // Two instants of one account from one address are not concurrent sessions.
        let mut other_addr = event(EventKind::AuthSuccess, at + Duration::minutes(1), None);
        other_addr.source_addr = Some("10.9.9.9".parse().unwrap());
        let (findings, _, stats) = run(
            &d,
            vec![event(EventKind::AuthSuccess, at, None), other_addr],
        );
        assert_eq!(findings, []);
        assert_eq!(stats.connections, 2);
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
        // Its findings cite the staff list that named Ana, after the start's entry.
        let (findings, sessions, _) = run(&declarations(&[]), session(None, start, end));
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            [Rule::MissingReport]
        );
        assert_eq!(findings[0].person.as_deref(), Some("ana@acme.fr"));
        assert_eq!(findings[0].entries, [entry("ev", 0), entry("decl", 1)]);
        assert_eq!(sessions[0].person.as_deref(), Some("ana@acme.fr"));
    }

    fn entry(ledger: &str, seq: u64) -> EntryRef {
        EntryRef {
            ledger: ledger.into(),
            seq,
        }
    }

    /// A staff list of `vendor` filed at `filed_at`: persons and the accounts they hold.
    fn staff_list(
        seq: u64,
        filed_at: OffsetDateTime,
        vendor: &str,
        members: &[(&str, &[&str])],
    ) -> (EntryRef, Declaration) {
        let persons = members
            .iter()
            .map(|(person, accounts)| StaffMember {
                person: (*person).into(),
                last_name: "N".into(),
                first_name: "P".into(),
                email: (*person).into(),
                accounts: accounts.iter().map(|a| (*a).into()).collect(),
                access_level: "admin".into(),
                resources: vec!["srv-*".into()],
                start_date: date!(2025 - 01 - 01),
            })
            .collect();
        decl(
            seq,
            filed_at,
            DeclarationBody::StaffList {
                vendor: vendor.into(),
                persons,
            },
        )
    }

    /// An OpenSSH login of `account` on `srv-1`, as its sshd logs it: the `Accepted` line,
    /// then the PAM session's lines, which carry neither address nor factors. No line
    /// names a vendor or a person.
    fn openssh(account: &str, start: OffsetDateTime, end: OffsetDateTime) -> Vec<ConnectionEvent> {
        let line = |kind, at, id: &str| ConnectionEvent {
            vendor: None,
            person: None,
            account: Some(account.into()),
            source_addr: None,
            factors: vec![],
            ..event(kind, at, Some(id))
        };
        let mut accepted = line(
            EventKind::AuthSuccess,
            start - Duration::seconds(1),
            "10.0.0.9:50000",
        );
        accepted.source_addr = Some(IpAddr::from([10, 0, 0, 9]));
        accepted.factors = vec![AuthFactor::PublicKey, AuthFactor::Otp];
        vec![
            accepted,
            line(EventKind::SessionStart, start, "sshd[42]"),
            line(EventKind::SessionEnd, end, "sshd[42]"),
        ]
    }

    fn who(findings: &[Finding]) -> Vec<(Rule, Option<&str>, Option<&str>)> {
        findings
            .iter()
            .map(|f| (f.rule, f.vendor.as_deref(), f.person.as_deref()))
            .collect()
    }

    /// Acme's declarations (Ana holding `ana`, a daily window, a report of `start`-`end`)
    /// and a staff list of Beta, which has no window, filed before: `(declarations,
    /// start, end)`.
    fn acme_and_beta(beta: &[(&str, &[&str])]) -> (Declarations, OffsetDateTime, OffsetDateTime) {
        let (start, end) = (
            datetime!(2026-07-15 8:00 UTC),
            datetime!(2026-07-15 9:00 UTC),
        );
        let mut d = declarations(&[(start, end, end)]);
        let (e, list) = staff_list(20, datetime!(2026-01-01 0:00 UTC), "beta", beta);
        d.add(e, list);
        (d, start, end)
    }

    #[test]
    fn a_connection_naming_no_vendor_is_its_account_holders() {
        // Acme's Ana holds `ana`; Beta's Bea holds `bea`.
        let (d, start, end) = acme_and_beta(&[("bea@beta.fr", &["bea"])]);
        let (findings, sessions, stats) = run(&d, openssh("ana", start, end));
        assert_eq!(findings, []);
        assert_eq!(stats.connections, 1);
        assert_eq!(stats.persons, 1);
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            (sessions[0].vendor.as_deref(), sessions[0].person.as_deref()),
            (Some("acme"), Some("ana@acme.fr"))
        );
        assert_eq!(sessions[0].window.as_deref(), Some("daily"));
        // Bea's connection is Beta's, judged against Beta's declarations: no window, no
        // report. Each finding cites the session's start and the list that named her.
        let (findings, sessions, _) = run(&d, openssh("bea", start, end));
        assert_eq!(
            who(&findings),
            [
                (Rule::OutsideWindow, Some("beta"), Some("bea@beta.fr")),
                (Rule::MissingReport, Some("beta"), Some("bea@beta.fr")),
            ]
        );
        for f in &findings {
            assert_eq!(f.account.as_deref(), Some("bea"));
            assert_eq!(f.entries, [entry("ev", 1), entry("decl", 20)]);
        }
        assert_eq!(
            (sessions[0].vendor.as_deref(), sessions[0].person.as_deref()),
            (Some("beta"), Some("bea@beta.fr"))
        );
    }

    #[test]
    fn an_account_held_by_several_members_or_by_nobody_names_nobody() {
        // Beta's Bob also holds `ana`; Beta's Bea and Ben share `ops`.
        let (d, start, end) = acme_and_beta(&[
            ("bob@beta.fr", &["ana"]),
            ("bea@beta.fr", &["ops"]),
            ("ben@beta.fr", &["ops"]),
        ]);
        for account in ["ana", "ops", "nobody"] {
            let (findings, sessions, stats) = run(&d, openssh(account, start, end));
            assert_eq!(
                who(&findings),
                [(Rule::NotNominative, None, None)],
                "{account}"
            );
            assert_eq!(findings[0].account.as_deref(), Some(account));
            assert_eq!(findings[0].entries, [entry("ev", 1)]);
            assert_eq!(
                (sessions[0].vendor.as_deref(), sessions[0].person.as_deref()),
                (None, None)
            );
            assert_eq!(stats.persons, 0);
        }
        // Named with its vendor, `ana` is the holder's in that vendor's list alone.
        let mut acme = openssh("ana", start, end);
        for e in &mut acme {
            e.vendor = Some("acme".into());
        }
        assert_eq!(judge(&d, acme), []);
    }

    #[test]
    fn a_connection_naming_a_person_but_no_vendor_is_the_vendor_listing_them() {
        // Beta lists Bea; Bob is on both Acme's list (as the second list below) and Beta's.
        let (mut d, start, end) =
            acme_and_beta(&[("bea@beta.fr", &["bea"]), ("bob@beta.fr", &["bob"])]);
        let (e, list) = staff_list(
            21,
            datetime!(2026-02-01 0:00 UTC),
            "acme",
            &[("ana@acme.fr", &["ana"]), ("bob@beta.fr", &["bob.a"])],
        );
        d.add(e, list);
        let as_person = |person: &str, account: &str| {
            let mut events = openssh(account, start, end);
            for e in &mut events {
                e.person = Some(person.into());
            }
            events
        };
        let (findings, sessions, _) = run(&d, as_person("bea@beta.fr", "bea"));
        assert_eq!(
            who(&findings),
            [
                (Rule::OutsideWindow, Some("beta"), Some("bea@beta.fr")),
                (Rule::MissingReport, Some("beta"), Some("bea@beta.fr")),
            ]
        );
        for f in &findings {
            assert_eq!(f.entries, [entry("ev", 1), entry("decl", 20)]);
        }
        assert_eq!(sessions[0].vendor.as_deref(), Some("beta"));
        // Listed by two vendors, or by none: the vendor is not guessed.
        for person in ["bob@beta.fr", "zoe@nowhere.fr"] {
            let (findings, sessions, _) = run(&d, as_person(person, "bob"));
            assert_eq!(
                who(&findings),
                [(Rule::NotNominative, None, Some(person))],
                "{person}"
            );
            assert_eq!(sessions[0].vendor, None);
        }
    }

    #[test]
    fn only_the_staff_lists_in_force_at_the_start_name_the_holder() {
        let d = {
            let mut d = declarations(&[]);
            // Beta's first list is filed on 16 July; the one of 20 July gives Bea
            // another account.
            for (seq, filed_at, account) in [
                (20, datetime!(2026-07-16 0:00 UTC), "bea"),
                (21, datetime!(2026-07-20 0:00 UTC), "bea.b"),
            ] {
                let (e, beta) = staff_list(seq, filed_at, "beta", &[("bea@beta.fr", &[account])]);
                d.add(e, beta);
            }
            d
        };
        let mut events = Vec::new();
        for day in [15, 17, 21] {
            let start = datetime!(2026-07-01 8:00 UTC) + Duration::days(day - 1);
            events.extend(openssh("bea", start, start + Duration::hours(1)));
        }
        let (findings, _, stats) = run(&d, events);
        assert_eq!(stats.connections, 3);
        assert_eq!(
            who(&findings),
            [
                // 15 July: Beta's first list was filed the next day.
                (Rule::NotNominative, None, None),
                // 17 July: the list of 16 July names Bea.
                (Rule::OutsideWindow, Some("beta"), Some("bea@beta.fr")),
                (Rule::MissingReport, Some("beta"), Some("bea@beta.fr")),
                // 21 July: the list in force gives `bea` to nobody.
                (Rule::NotNominative, None, None),
            ]
        );
        assert_eq!(findings[1].entries, [entry("ev", 4), entry("decl", 20)]);
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
