//! The canonical binary encoding of entries: what the chain hashes and signs.
//!
//! It is deterministic (one entry has exactly one encoding), versioned, and stable across
//! releases: a change of layout takes a new version byte, and decoders keep reading every
//! earlier version. JSON is for interfaces only and is never hashed.
//!
//! ```text
//! entry        := version:u8 (= 1)  tag:u8  body
//!   tag 1 = connection event, 2 = declaration, 3 = seal
//!
//! u8, u16, u32, u64, i64   big-endian, fixed width
//! bool                     u8: 0 or 1
//! str                      len:u32  UTF-8 bytes (at most 16 MiB)
//! bytes                    len:u32  bytes       (at most 16 MiB)
//! opt<T>                   u8: 0 (absent) | 1 then T
//! list<T>                  count:u32  T…        (at most 1,048,576 items)
//! instant                  unix_nanos:i64  offset_seconds:i32   (the source's offset)
//! date                     year:i32  ordinal_day:u16
//! ip                       4 then 4 bytes | 6 then 16 bytes
//!
//! event        := kind  tenant:str  source:str  vendor:opt<str>  person:opt<str>
//!                 account:opt<str>  target:opt<str>  protocol:opt<str>  addr:opt<ip>
//!                 session_id:opt<str>  factors:list<factor>  occurred_at:instant
//!                 received_at:instant  raw:bytes
//! kind         := 1 session start | 2 session end | 3 auth success
//!                 | 4 auth failure, reason:str | 5 tunnel up | 6 tunnel down | 7 unmapped
//! factor       := 1 password | 2 public key | 3 certificate | 4 otp | 5 push
//!                 | 6 hardware key | 7 kerberos | 8 other, name:str
//!
//! declaration  := tenant:str  filed_by:str  filed_at:instant  dtag:u8  dbody
//!   dtag 1 vendor registered   vendor:str name:str
//!        2 staff list          vendor:str list<member>
//!        3 departure           vendor:str person:str effective_at:instant
//!        4 window granted      window
//!        5 window cancelled    vendor:str window_id:str reason:str
//!        6 emergency           vendor:str person:opt<str> target:opt<str>
//!                              starts_at:instant ends_at:instant reason:str ticket:opt<str>
//!        7 intervention report vendor:str window_id:opt<str> started_at:instant
//!                              ended_at:instant nature:str persons:list<str>
//!        8 access recorded     action:str scope:str
//! member       := person:str last_name:str first_name:str email:str accounts:list<str>
//!                 access_level:str resources:list<str> start_date:date
//! window       := id:str vendor:str reason:str ticket:opt<str> approver:str
//!                 persons:list<str> targets:list<str> schedule
//! schedule     := 1 one-off starts_at:instant ends_at:instant
//!               | 2 recurring zone:str first_start_local:str duration_seconds:u32 rrule:str
//!
//! seal         := stag:u8 [cut_seq:u64 cut_prev_mac:[32] cut_epoch:u32 when stag = 2]
//!                 chain_id:[16] epoch:u32 through_seq:u64 head_mac:[32]
//!                 sealed_at:instant signature:[64]
//!   stag 1 checkpoint, 2 retention cut
//! ```
//!
//! Decoding checks every length against the bytes left and the caps above, refuses
//! trailing bytes, and names the byte offset and the field of any error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::{Date, OffsetDateTime, UtcOffset};

use crate::model::{
    AuthFactor, ConnectionEvent, Declaration, DeclarationBody, Entry, EventKind, Schedule, Seal,
    SealKind, StaffMember, Window,
};

/// The version byte written by this release.
pub const VERSION: u8 = 1;

/// Largest string or byte field accepted.
pub const MAX_FIELD_BYTES: usize = 16 << 20;

/// Largest list accepted.
pub const MAX_LIST_ITEMS: usize = 1 << 20;

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("entry truncated at byte {offset} while reading {field}")]
    Truncated {
        /// Offset where the missing bytes should be.
        offset: usize,
        /// The field being read.
        field: &'static str,
    },
    /// A version byte this release does not know.
    #[error("unknown canonical encoding version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// A tag with no meaning at that place.
    #[error("invalid {field} tag {tag} at byte {offset}")]
    InvalidTag {
        /// Offset of the tag.
        offset: usize,
        /// The field being read.
        field: &'static str,
        /// The value found.
        tag: u8,
    },
    /// A length or count over its cap.
    #[error("{field} at byte {offset} is {len} long, over the cap of {cap}")]
    TooLong {
        /// Offset of the length prefix.
        offset: usize,
        /// The field being read.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// A string that is not UTF-8.
    #[error("{field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string.
        offset: usize,
        /// The field being read.
        field: &'static str,
    },
    /// An instant, offset or date out of range.
    #[error("{field} at byte {offset} is out of range")]
    OutOfRange {
        /// Offset of the value.
        offset: usize,
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left after a whole entry.
    #[error("{left} trailing bytes after the entry at byte {offset}")]
    TrailingBytes {
        /// Where the entry ended.
        offset: usize,
        /// How many bytes follow.
        left: usize,
    },
}

/// Encodes an entry canonically.
///
/// # Examples
/// ```
/// # use proto::{canonical, model::*};
/// # use time::macros::datetime;
/// let seal = Entry::Seal(Seal {
///     kind: SealKind::Checkpoint,
///     chain_id: [7; 16],
///     epoch: 0,
///     through_seq: 0,
///     head_mac: [0; 32],
///     sealed_at: datetime!(2026-01-01 0:00 UTC),
///     signature: [0; 64],
/// });
/// let bytes = canonical::encode(&seal);
/// assert_eq!(canonical::decode(&bytes).unwrap(), seal);
/// ```
pub fn encode(entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Event(e) => encode_event(&e.parts()),
        _ => {
            let mut out = Vec::with_capacity(256);
            encode_into(entry, &mut out);
            out
        }
    }
}

/// A connection event's fields, borrowed from wherever they are: what the collector
/// encodes straight from a mapped message, without building a
/// [`ConnectionEvent`] first. [`ConnectionEvent::parts`] gives the view of an owned
/// event; both encode through the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventParts<'a> {
    /// What happened.
    pub kind: &'a EventKind,
    /// The establishment.
    pub tenant: &'a str,
    /// The authenticated source.
    pub source: &'a str,
    /// The vendor.
    pub vendor: Option<&'a str>,
    /// The person.
    pub person: Option<&'a str>,
    /// The account.
    pub account: Option<&'a str>,
    /// The target.
    pub target: Option<&'a str>,
    /// The protocol.
    pub protocol: Option<&'a str>,
    /// The address connected from.
    pub source_addr: Option<IpAddr>,
    /// The source's session identifier.
    pub session_id: Option<&'a str>,
    /// Authentication factors.
    pub factors: &'a [AuthFactor],
    /// When it happened, by the source's clock.
    pub occurred_at: OffsetDateTime,
    /// When the collector received it.
    pub received_at: OffsetDateTime,
    /// The original message.
    pub raw: &'a [u8],
}

impl EventParts<'_> {
    /// The owned event.
    pub fn to_event(&self) -> ConnectionEvent {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        ConnectionEvent {
            kind: self.kind.clone(),
            tenant: self.tenant.to_owned(),
            source: self.source.to_owned(),
            vendor: owned(self.vendor),
            person: owned(self.person),
            account: owned(self.account),
            target: owned(self.target),
            protocol: owned(self.protocol),
            source_addr: self.source_addr,
            session_id: owned(self.session_id),
            factors: self.factors.to_vec(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            raw: self.raw.to_vec(),
        }
    }

    /// The exact length of the event's encoding (as an entry), so that it is allocated
    /// once.
    fn encoded_len(&self) -> usize {
        let str_len = |s: &str| 4 + s.len();
        let opt = |s: Option<&str>| 1 + s.map_or(0, str_len);
        let kind = match self.kind {
            EventKind::AuthFailure { reason } => 1 + str_len(reason),
            _ => 1,
        };
        let addr = match self.source_addr {
            None => 1,
            Some(IpAddr::V4(_)) => 1 + 1 + 4,
            Some(IpAddr::V6(_)) => 1 + 1 + 16,
        };
        let factors: usize = self
            .factors
            .iter()
            .map(|f| match f {
                AuthFactor::Other(name) => 1 + str_len(name),
                _ => 1,
            })
            .sum();
        2 + kind
            + str_len(self.tenant)
            + str_len(self.source)
            + opt(self.vendor)
            + opt(self.person)
            + opt(self.account)
            + opt(self.target)
            + opt(self.protocol)
            + addr
            + opt(self.session_id)
            + 4
            + factors
            + 2 * (8 + 4)
            + 4
            + self.raw.len()
    }
}

impl ConnectionEvent {
    /// The borrowed view the encoder reads.
    pub fn parts(&self) -> EventParts<'_> {
        EventParts {
            kind: &self.kind,
            tenant: &self.tenant,
            source: &self.source,
            vendor: self.vendor.as_deref(),
            person: self.person.as_deref(),
            account: self.account.as_deref(),
            target: self.target.as_deref(),
            protocol: self.protocol.as_deref(),
            source_addr: self.source_addr,
            session_id: self.session_id.as_deref(),
            factors: &self.factors,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            raw: &self.raw,
        }
    }
}

/// The canonical encoding of a connection event entry, in a buffer of its exact size:
/// byte for byte what [`encode`] gives for `Entry::Event` of the same fields.
pub fn encode_event(event: &EventParts<'_>) -> Vec<u8> {
    let len = event.encoded_len();
    let mut out = Vec::with_capacity(len);
    let mut w = Writer(&mut out);
    w.u8(VERSION);
    w.u8(1);
    w.event(event);
    // The length is exact: every event encoded in a test checks it.
    debug_assert_eq!(len, out.len(), "encoded_len is off");
    out
}

/// Appends the canonical encoding of `entry` to `out`.
pub fn encode_into(entry: &Entry, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.u8(VERSION);
    match entry {
        Entry::Event(e) => {
            w.u8(1);
            w.event(&e.parts());
        }
        Entry::Declaration(d) => {
            w.u8(2);
            w.declaration(d);
        }
        Entry::Seal(s) => {
            w.u8(3);
            w.seal(s);
        }
    }
}

/// Decodes one canonical entry, which must fill `bytes` exactly.
///
/// # Errors
/// A [`DecodeError`] naming the byte offset and field where the bytes stop making sense.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion { version });
    }
    let at = r.pos;
    let entry = match r.u8("entry tag")? {
        1 => Entry::Event(r.event()?),
        2 => Entry::Declaration(r.declaration()?),
        3 => Entry::Seal(r.seal()?),
        tag => {
            return Err(DecodeError::InvalidTag {
                offset: at,
                field: "entry",
                tag,
            });
        }
    };
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: r.pos,
            left: bytes.len() - r.pos,
        });
    }
    Ok(entry)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        // Lengths above u32 cannot be decoded (they exceed the caps); saturate so the
        // decoder reports the cap instead of a silently wrapped length.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.str(s);
        }
    }
    fn instant(&mut self, t: &OffsetDateTime) {
        // Nanoseconds since 1970 fit in i64 for years 1678..2262; clamp anything else
        // (never produced by the collector) so encoding stays total and decoding refuses it.
        let nanos = i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        self.i64(nanos);
        self.i32(t.offset().whole_seconds());
    }
    fn date(&mut self, d: &Date) {
        self.i32(d.year());
        self.u16(d.ordinal());
    }
    fn ip(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.u8(4);
                self.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.0.extend_from_slice(&a.octets());
            }
        }
    }

    fn event(&mut self, e: &EventParts<'_>) {
        match e.kind {
            EventKind::SessionStart => self.u8(1),
            EventKind::SessionEnd => self.u8(2),
            EventKind::AuthSuccess => self.u8(3),
            EventKind::AuthFailure { reason } => {
                self.u8(4);
                self.str(reason);
            }
            EventKind::TunnelUp => self.u8(5),
            EventKind::TunnelDown => self.u8(6),
            EventKind::Unmapped => self.u8(7),
        }
        self.str(e.tenant);
        self.str(e.source);
        self.opt_str(e.vendor);
        self.opt_str(e.person);
        self.opt_str(e.account);
        self.opt_str(e.target);
        self.opt_str(e.protocol);
        match e.source_addr {
            None => self.u8(0),
            Some(ip) => {
                self.u8(1);
                self.ip(&ip);
            }
        }
        self.opt_str(e.session_id);
        self.len(e.factors.len());
        for f in e.factors {
            match f {
                AuthFactor::Password => self.u8(1),
                AuthFactor::PublicKey => self.u8(2),
                AuthFactor::Certificate => self.u8(3),
                AuthFactor::Otp => self.u8(4),
                AuthFactor::Push => self.u8(5),
                AuthFactor::HardwareKey => self.u8(6),
                AuthFactor::Kerberos => self.u8(7),
                AuthFactor::Other(name) => {
                    self.u8(8);
                    self.str(name);
                }
            }
        }
        self.instant(&e.occurred_at);
        self.instant(&e.received_at);
        self.bytes(e.raw);
    }

    fn declaration(&mut self, d: &Declaration) {
        self.str(&d.tenant);
        self.str(&d.filed_by);
        self.instant(&d.filed_at);
        match &d.body {
            DeclarationBody::VendorRegistered { vendor, name } => {
                self.u8(1);
                self.str(vendor);
                self.str(name);
            }
            DeclarationBody::StaffList { vendor, persons } => {
                self.u8(2);
                self.str(vendor);
                self.len(persons.len());
                for m in persons {
                    self.str(&m.person);
                    self.str(&m.last_name);
                    self.str(&m.first_name);
                    self.str(&m.email);
                    self.strs(&m.accounts);
                    self.str(&m.access_level);
                    self.strs(&m.resources);
                    self.date(&m.start_date);
                }
            }
            DeclarationBody::Departure {
                vendor,
                person,
                effective_at,
            } => {
                self.u8(3);
                self.str(vendor);
                self.str(person);
                self.instant(effective_at);
            }
            DeclarationBody::WindowGranted(w) => {
                self.u8(4);
                self.str(&w.id);
                self.str(&w.vendor);
                self.str(&w.reason);
                self.opt_str(w.ticket.as_deref());
                self.str(&w.approver);
                self.strs(&w.persons);
                self.strs(&w.targets);
                match &w.schedule {
                    Schedule::OneOff { starts_at, ends_at } => {
                        self.u8(1);
                        self.instant(starts_at);
                        self.instant(ends_at);
                    }
                    Schedule::Recurring {
                        zone,
                        first_start_local,
                        duration_seconds,
                        rrule,
                    } => {
                        self.u8(2);
                        self.str(zone);
                        self.str(first_start_local);
                        self.u32(*duration_seconds);
                        self.str(rrule);
                    }
                }
            }
            DeclarationBody::WindowCancelled {
                vendor,
                window_id,
                reason,
            } => {
                self.u8(5);
                self.str(vendor);
                self.str(window_id);
                self.str(reason);
            }
            DeclarationBody::Emergency {
                vendor,
                person,
                target,
                starts_at,
                ends_at,
                reason,
                ticket,
            } => {
                self.u8(6);
                self.str(vendor);
                self.opt_str(person.as_deref());
                self.opt_str(target.as_deref());
                self.instant(starts_at);
                self.instant(ends_at);
                self.str(reason);
                self.opt_str(ticket.as_deref());
            }
            DeclarationBody::InterventionReport {
                vendor,
                window_id,
                started_at,
                ended_at,
                nature,
                persons,
            } => {
                self.u8(7);
                self.str(vendor);
                self.opt_str(window_id.as_deref());
                self.instant(started_at);
                self.instant(ended_at);
                self.str(nature);
                self.strs(persons);
            }
            DeclarationBody::AccessRecorded { action, scope } => {
                self.u8(8);
                self.str(action);
                self.str(scope);
            }
        }
    }

    fn seal(&mut self, s: &Seal) {
        match &s.kind {
            SealKind::Checkpoint => self.u8(1),
            SealKind::RetentionCut {
                cut_seq,
                cut_prev_mac,
                cut_epoch,
            } => {
                self.u8(2);
                self.u64(*cut_seq);
                self.0.extend_from_slice(cut_prev_mac);
                self.u32(*cut_epoch);
            }
        }
        self.0.extend_from_slice(&s.chain_id);
        self.u32(s.epoch);
        self.u64(s.through_seq);
        self.0.extend_from_slice(&s.head_mac);
        self.instant(&s.sealed_at);
        self.0.extend_from_slice(&s.signature);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                offset: self.pos,
                field,
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }
    fn len(&mut self, field: &'static str, cap: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let len = self.u32(field)? as usize;
        if len > cap {
            return Err(DecodeError::TooLong {
                offset,
                field,
                len,
                cap,
            });
        }
        Ok(len)
    }
    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.len(field, MAX_FIELD_BYTES)?;
        Ok(self.take(len, field)?.to_vec())
    }
    fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let offset = self.pos;
        let bytes = self.bytes(field)?;
        String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { offset, field })
    }
    fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::InvalidTag { offset, field, tag }),
        }
    }
    fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        if self.flag(field)? {
            Ok(Some(self.str(field)?))
        } else {
            Ok(None)
        }
    }
    fn count(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let count = self.len(field, MAX_LIST_ITEMS)?;
        // Every item takes at least one byte: a count beyond the bytes left is a lie, and
        // refusing it here keeps a hostile count from reserving memory.
        if count > self.bytes.len() - self.pos {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                field,
            });
        }
        Ok(count)
    }
    fn strs(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(field)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.str(field)?);
        }
        Ok(out)
    }
    fn instant(&mut self, field: &'static str) -> Result<OffsetDateTime, DecodeError> {
        let offset = self.pos;
        let nanos = self.i64(field)?;
        let off = self.i32(field)?;
        let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|_| DecodeError::OutOfRange { offset, field })?;
        let off = UtcOffset::from_whole_seconds(off)
            .map_err(|_| DecodeError::OutOfRange { offset, field })?;
        utc.checked_to_offset(off)
            .ok_or(DecodeError::OutOfRange { offset, field })
    }
    fn date(&mut self, field: &'static str) -> Result<Date, DecodeError> {
        let offset = self.pos;
        let year = self.i32(field)?;
        let ordinal = self.u16(field)?;
        Date::from_ordinal_date(year, ordinal)
            .map_err(|_| DecodeError::OutOfRange { offset, field })
    }
    fn ip(&mut self, field: &'static str) -> Result<IpAddr, DecodeError> {
        let offset = self.pos;
        match self.u8(field)? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>(field)?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>(field)?))),
            tag => Err(DecodeError::InvalidTag { offset, field, tag }),
        }
    }

    /// An event, owned: the borrowed reading ([`Reader::event_ref`]) copied out, so the
    /// two decoders cannot disagree on what they accept.
    fn event(&mut self) -> Result<ConnectionEvent, DecodeError> {
        self.event_ref().map(|e| e.to_owned())
    }

    fn declaration(&mut self) -> Result<Declaration, DecodeError> {
        let tenant = self.str("tenant")?;
        let filed_by = self.str("filed_by")?;
        let filed_at = self.instant("filed_at")?;
        let offset = self.pos;
        let body = match self.u8("declaration tag")? {
            1 => DeclarationBody::VendorRegistered {
                vendor: self.str("vendor")?,
                name: self.str("vendor name")?,
            },
            2 => {
                let vendor = self.str("vendor")?;
                let n = self.count("staff list")?;
                let mut persons = Vec::with_capacity(n);
                for _ in 0..n {
                    persons.push(StaffMember {
                        person: self.str("person")?,
                        last_name: self.str("last name")?,
                        first_name: self.str("first name")?,
                        email: self.str("email")?,
                        accounts: self.strs("accounts")?,
                        access_level: self.str("access level")?,
                        resources: self.strs("resources")?,
                        start_date: self.date("start date")?,
                    });
                }
                DeclarationBody::StaffList { vendor, persons }
            }
            3 => DeclarationBody::Departure {
                vendor: self.str("vendor")?,
                person: self.str("person")?,
                effective_at: self.instant("effective_at")?,
            },
            4 => {
                let id = self.str("window id")?;
                let vendor = self.str("vendor")?;
                let reason = self.str("reason")?;
                let ticket = self.opt_str("ticket")?;
                let approver = self.str("approver")?;
                let persons = self.strs("window persons")?;
                let targets = self.strs("window targets")?;
                let at = self.pos;
                let schedule = match self.u8("schedule tag")? {
                    1 => Schedule::OneOff {
                        starts_at: self.instant("starts_at")?,
                        ends_at: self.instant("ends_at")?,
                    },
                    2 => Schedule::Recurring {
                        zone: self.str("zone")?,
                        first_start_local: self.str("first_start_local")?,
                        duration_seconds: self.u32("duration_seconds")?,
                        rrule: self.str("rrule")?,
                    },
                    tag => {
                        return Err(DecodeError::InvalidTag {
                            offset: at,
                            field: "schedule",
                            tag,
                        });
                    }
                };
                DeclarationBody::WindowGranted(Window {
                    id,
                    vendor,
                    reason,
                    ticket,
                    approver,
                    persons,
                    targets,
                    schedule,
                })
            }
            5 => DeclarationBody::WindowCancelled {
                vendor: self.str("vendor")?,
                window_id: self.str("window id")?,
                reason: self.str("reason")?,
            },
            6 => DeclarationBody::Emergency {
                vendor: self.str("vendor")?,
                person: self.opt_str("person")?,
                target: self.opt_str("target")?,
                starts_at: self.instant("starts_at")?,
                ends_at: self.instant("ends_at")?,
                reason: self.str("reason")?,
                ticket: self.opt_str("ticket")?,
            },
            7 => DeclarationBody::InterventionReport {
                vendor: self.str("vendor")?,
                window_id: self.opt_str("window id")?,
                started_at: self.instant("started_at")?,
                ended_at: self.instant("ended_at")?,
                nature: self.str("nature")?,
                persons: self.strs("persons")?,
            },
            8 => DeclarationBody::AccessRecorded {
                action: self.str("action")?,
                scope: self.str("scope")?,
            },
            tag => {
                return Err(DecodeError::InvalidTag {
                    offset,
                    field: "declaration",
                    tag,
                });
            }
        };
        Ok(Declaration {
            tenant,
            filed_by,
            filed_at,
            body,
        })
    }

    fn seal(&mut self) -> Result<Seal, DecodeError> {
        let offset = self.pos;
        let kind = match self.u8("seal tag")? {
            1 => SealKind::Checkpoint,
            2 => SealKind::RetentionCut {
                cut_seq: self.u64("cut_seq")?,
                cut_prev_mac: self.array("cut_prev_mac")?,
                cut_epoch: self.u32("cut_epoch")?,
            },
            tag => {
                return Err(DecodeError::InvalidTag {
                    offset,
                    field: "seal",
                    tag,
                });
            }
        };
        Ok(Seal {
            kind,
            chain_id: self.array("chain_id")?,
            epoch: self.u32("epoch")?,
            through_seq: self.u64("through_seq")?,
            head_mac: self.array("head_mac")?,
            sealed_at: self.instant("sealed_at")?,
            signature: self.array("signature")?,
        })
    }
}

/// The kind of a borrowed event ([`EventRef`]): [`EventKind`] without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKindRef<'a> {
    /// [`EventKind::SessionStart`].
    SessionStart,
    /// [`EventKind::SessionEnd`].
    SessionEnd,
    /// [`EventKind::AuthSuccess`].
    AuthSuccess,
    /// [`EventKind::AuthFailure`], with the source's reason.
    AuthFailure {
        /// The source's reason.
        reason: &'a str,
    },
    /// [`EventKind::TunnelUp`].
    TunnelUp,
    /// [`EventKind::TunnelDown`].
    TunnelDown,
    /// [`EventKind::Unmapped`].
    Unmapped,
}

impl EventKindRef<'_> {
    /// The owned kind.
    pub fn to_owned(self) -> EventKind {
        match self {
            EventKindRef::SessionStart => EventKind::SessionStart,
            EventKindRef::SessionEnd => EventKind::SessionEnd,
            EventKindRef::AuthSuccess => EventKind::AuthSuccess,
            EventKindRef::AuthFailure { reason } => EventKind::AuthFailure {
                reason: reason.to_owned(),
            },
            EventKindRef::TunnelUp => EventKind::TunnelUp,
            EventKindRef::TunnelDown => EventKind::TunnelDown,
            EventKindRef::Unmapped => EventKind::Unmapped,
        }
    }
}

/// An authentication factor borrowed from an encoded event ([`AuthFactor`] without
/// allocating the name of [`AuthFactor::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorRef<'a> {
    /// A factor without a name: anything but [`AuthFactor::Other`].
    Known(KnownFactor),
    /// [`AuthFactor::Other`], named as the source names it.
    Other(&'a str),
}

/// The factors of [`AuthFactor`] that carry no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownFactor {
    /// [`AuthFactor::Password`].
    Password,
    /// [`AuthFactor::PublicKey`].
    PublicKey,
    /// [`AuthFactor::Certificate`].
    Certificate,
    /// [`AuthFactor::Otp`].
    Otp,
    /// [`AuthFactor::Push`].
    Push,
    /// [`AuthFactor::HardwareKey`].
    HardwareKey,
    /// [`AuthFactor::Kerberos`].
    Kerberos,
}

impl FactorRef<'_> {
    /// The owned factor.
    pub fn to_owned(self) -> AuthFactor {
        match self {
            FactorRef::Known(KnownFactor::Password) => AuthFactor::Password,
            FactorRef::Known(KnownFactor::PublicKey) => AuthFactor::PublicKey,
            FactorRef::Known(KnownFactor::Certificate) => AuthFactor::Certificate,
            FactorRef::Known(KnownFactor::Otp) => AuthFactor::Otp,
            FactorRef::Known(KnownFactor::Push) => AuthFactor::Push,
            FactorRef::Known(KnownFactor::HardwareKey) => AuthFactor::HardwareKey,
            FactorRef::Known(KnownFactor::Kerberos) => AuthFactor::Kerberos,
            FactorRef::Other(name) => AuthFactor::Other(name.to_owned()),
        }
    }

    /// Whether it is the same factor as `f`.
    pub fn is(self, f: &AuthFactor) -> bool {
        match (self, f) {
            (FactorRef::Other(a), AuthFactor::Other(b)) => a == b,
            (FactorRef::Other(_), _) | (_, AuthFactor::Other(_)) => false,
            (known, f) => known.to_owned() == *f,
        }
    }
}

/// The factors of an [`EventRef`], validated when it was decoded: iterate them with
/// [`Factors::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factors<'a> {
    /// The encoded factors, count prefix excluded.
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Factors<'a> {
    /// How many factors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The factors, in their order in the event.
    pub fn iter(&self) -> impl Iterator<Item = FactorRef<'a>> + 'a {
        let mut r = Reader {
            bytes: self.bytes,
            pos: 0,
        };
        // The bytes were checked by `decode_event_ref`: nothing here can fail.
        (0..self.count).map_while(move |_| r.factor().ok())
    }
}

/// A connection event borrowed from its canonical encoding: every field of
/// [`ConnectionEvent`] without allocating, for readers that stream millions of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// See [`ConnectionEvent::kind`].
    pub kind: EventKindRef<'a>,
    /// See [`ConnectionEvent::tenant`].
    pub tenant: &'a str,
    /// See [`ConnectionEvent::source`].
    pub source: &'a str,
    /// See [`ConnectionEvent::vendor`].
    pub vendor: Option<&'a str>,
    /// See [`ConnectionEvent::person`].
    pub person: Option<&'a str>,
    /// See [`ConnectionEvent::account`].
    pub account: Option<&'a str>,
    /// See [`ConnectionEvent::target`].
    pub target: Option<&'a str>,
    /// See [`ConnectionEvent::protocol`].
    pub protocol: Option<&'a str>,
    /// See [`ConnectionEvent::source_addr`].
    pub source_addr: Option<IpAddr>,
    /// See [`ConnectionEvent::session_id`].
    pub session_id: Option<&'a str>,
    /// See [`ConnectionEvent::factors`].
    pub factors: Factors<'a>,
    /// See [`ConnectionEvent::occurred_at`].
    pub occurred_at: OffsetDateTime,
    /// See [`ConnectionEvent::received_at`].
    pub received_at: OffsetDateTime,
    /// See [`ConnectionEvent::raw`].
    pub raw: &'a [u8],
}

impl EventRef<'_> {
    /// The owned event, equal to what [`decode`] returns for the same bytes.
    pub fn to_owned(&self) -> ConnectionEvent {
        ConnectionEvent {
            kind: self.kind.to_owned(),
            tenant: self.tenant.to_owned(),
            source: self.source.to_owned(),
            vendor: self.vendor.map(str::to_owned),
            person: self.person.map(str::to_owned),
            account: self.account.map(str::to_owned),
            target: self.target.map(str::to_owned),
            protocol: self.protocol.map(str::to_owned),
            source_addr: self.source_addr,
            session_id: self.session_id.map(str::to_owned),
            factors: self.factors.iter().map(FactorRef::to_owned).collect(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            raw: self.raw.to_vec(),
        }
    }
}

/// Decodes a connection event without copying it: the strings borrow `bytes`.
///
/// Checks exactly what [`decode`] checks (lengths, caps, UTF-8, tags, instants, trailing
/// bytes) and fails with the same [`DecodeError`], so a stream read this way stops where
/// the owned decoder would; `Ok` only for an event (entry tag 1).
///
/// # Errors
/// The [`DecodeError`] [`decode`] returns for these bytes; for a valid entry that is not
/// an event (a declaration, a seal), [`DecodeError::InvalidTag`] on the entry tag.
///
/// # Examples
/// ```
/// # use proto::{canonical, model::*};
/// # use time::macros::datetime;
/// let event = ConnectionEvent {
///     kind: EventKind::SessionStart,
///     tenant: "chu".into(),
///     source: "bastion".into(),
///     vendor: Some("acme".into()),
///     person: None,
///     account: Some("ana".into()),
///     target: None,
///     protocol: None,
///     source_addr: None,
///     session_id: Some("42".into()),
///     factors: vec![AuthFactor::Password],
///     occurred_at: datetime!(2026-01-01 0:00 UTC),
///     received_at: datetime!(2026-01-01 0:00 UTC),
///     raw: b"start".to_vec(),
/// };
/// let bytes = canonical::encode(&Entry::Event(event.clone()));
/// let view = canonical::decode_event_ref(&bytes).unwrap();
/// assert_eq!(view.account, Some("ana"));
/// assert_eq!(view.to_owned(), event);
/// ```
pub fn decode_event_ref(bytes: &[u8]) -> Result<EventRef<'_>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion { version });
    }
    let at = r.pos;
    let tag = r.u8("entry tag")?;
    if tag != 1 {
        return Err(DecodeError::InvalidTag {
            offset: at,
            field: "entry",
            tag,
        });
    }
    let event = r.event_ref()?;
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: r.pos,
            left: bytes.len() - r.pos,
        });
    }
    Ok(event)
}

impl<'a> Reader<'a> {
    fn str_ref(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let offset = self.pos;
        let len = self.len(field, MAX_FIELD_BYTES)?;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { offset, field })
    }

    fn opt_str_ref(&mut self, field: &'static str) -> Result<Option<&'a str>, DecodeError> {
        if self.flag(field)? {
            Ok(Some(self.str_ref(field)?))
        } else {
            Ok(None)
        }
    }

    fn factor(&mut self) -> Result<FactorRef<'a>, DecodeError> {
        let offset = self.pos;
        Ok(match self.u8("factor")? {
            1 => FactorRef::Known(KnownFactor::Password),
            2 => FactorRef::Known(KnownFactor::PublicKey),
            3 => FactorRef::Known(KnownFactor::Certificate),
            4 => FactorRef::Known(KnownFactor::Otp),
            5 => FactorRef::Known(KnownFactor::Push),
            6 => FactorRef::Known(KnownFactor::HardwareKey),
            7 => FactorRef::Known(KnownFactor::Kerberos),
            8 => FactorRef::Other(self.str_ref("factor name")?),
            tag => {
                return Err(DecodeError::InvalidTag {
                    offset,
                    field: "factor",
                    tag,
                });
            }
        })
    }

    /// An event, borrowing its strings and raw bytes from the record.
    fn event_ref(&mut self) -> Result<EventRef<'a>, DecodeError> {
        let offset = self.pos;
        let kind = match self.u8("event kind")? {
            1 => EventKindRef::SessionStart,
            2 => EventKindRef::SessionEnd,
            3 => EventKindRef::AuthSuccess,
            4 => EventKindRef::AuthFailure {
                reason: self.str_ref("failure reason")?,
            },
            5 => EventKindRef::TunnelUp,
            6 => EventKindRef::TunnelDown,
            7 => EventKindRef::Unmapped,
            tag => {
                return Err(DecodeError::InvalidTag {
                    offset,
                    field: "event kind",
                    tag,
                });
            }
        };
        let tenant = self.str_ref("tenant")?;
        let source = self.str_ref("source")?;
        let vendor = self.opt_str_ref("vendor")?;
        let person = self.opt_str_ref("person")?;
        let account = self.opt_str_ref("account")?;
        let target = self.opt_str_ref("target")?;
        let protocol = self.opt_str_ref("protocol")?;
        let source_addr = if self.flag("source address")? {
            Some(self.ip("source address")?)
        } else {
            None
        };
        let session_id = self.opt_str_ref("session id")?;
        let count = self.count("factors")?;
        let start = self.pos;
        for _ in 0..count {
            self.factor()?;
        }
        let factors = Factors {
            bytes: &self.bytes[start..self.pos],
            count,
        };
        let occurred_at = self.instant("occurred_at")?;
        let received_at = self.instant("received_at")?;
        let len = self.len("raw", MAX_FIELD_BYTES)?;
        let raw = self.take(len, "raw")?;
        Ok(EventRef {
            kind,
            tenant,
            source,
            vendor,
            person,
            account,
            target,
            protocol,
            source_addr,
            session_id,
            factors,
            occurred_at,
            received_at,
            raw,
        })
    }
}

#[cfg(test)]
mod event_ref_tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn event() -> ConnectionEvent {
        ConnectionEvent {
            kind: EventKind::AuthFailure {
                reason: "bad password".into(),
            },
            tenant: "chu-lyon".into(),
            source: "bastion-01".into(),
            vendor: Some("acme".into()),
            person: Some("ana@acme.fr".into()),
            account: Some("ana".into()),
            target: Some("pacs-01".into()),
            protocol: None,
            source_addr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            session_id: Some("sshd[42]".into()),
            factors: vec![
                AuthFactor::Password,
                AuthFactor::Other("yubico".into()),
                AuthFactor::Otp,
            ],
            occurred_at: datetime!(2026-03-29 1:59:59.5 +1),
            received_at: datetime!(2026-03-29 3:00 +2),
            raw: vec![0xff, 0, 1],
        }
    }

    #[test]
    fn borrows_every_field_of_an_event() {
        let e = event();
        let bytes = encode(&Entry::Event(e.clone()));
        let view = decode_event_ref(&bytes).unwrap();
        assert_eq!(view.tenant, "chu-lyon");
        assert_eq!(
            view.kind,
            EventKindRef::AuthFailure {
                reason: "bad password"
            }
        );
        assert_eq!(view.protocol, None);
        assert_eq!(view.factors.len(), 3);
        assert_eq!(
            view.factors.iter().collect::<Vec<_>>(),
            [
                FactorRef::Known(KnownFactor::Password),
                FactorRef::Other("yubico"),
                FactorRef::Known(KnownFactor::Otp),
            ]
        );
        assert!(
            view.factors
                .iter()
                .nth(1)
                .unwrap()
                .is(&AuthFactor::Other("yubico".into()))
        );
        assert!(!view.factors.iter().nth(1).unwrap().is(&AuthFactor::Otp));
        assert_eq!(view.to_owned(), e);
    }

    #[test]
    fn refuses_what_is_not_an_event_as_the_owned_decoder_would() {
        let seal = Entry::Seal(Seal {
            kind: SealKind::Checkpoint,
            chain_id: [7; 16],
            epoch: 0,
            through_seq: 0,
            head_mac: [0; 32],
            sealed_at: datetime!(2026-01-01 0:00 UTC),
            signature: [0; 64],
        });
        let bytes = encode(&seal);
        assert_eq!(
            decode_event_ref(&bytes),
            Err(DecodeError::InvalidTag {
                offset: 1,
                field: "entry",
                tag: 3
            })
        );
        let mut bytes = encode(&Entry::Event(event()));
        bytes.push(0);
        assert_eq!(decode_event_ref(&bytes).err(), decode(&bytes).err());
        for cut in 0..bytes.len() - 1 {
            assert_eq!(
                decode_event_ref(&bytes[..cut]).err(),
                decode(&bytes[..cut]).err(),
                "cut at {cut}"
            );
        }
    }

    fn opt_string() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zé0-9@.\\-]{0,12}")
    }

    fn factor() -> impl Strategy<Value = AuthFactor> {
        prop_oneof![
            Just(AuthFactor::Password),
            Just(AuthFactor::PublicKey),
            Just(AuthFactor::Certificate),
            Just(AuthFactor::Otp),
            Just(AuthFactor::Push),
            Just(AuthFactor::HardwareKey),
            Just(AuthFactor::Kerberos),
            "[a-z]{0,8}".prop_map(AuthFactor::Other),
        ]
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            Just(EventKind::SessionStart),
            Just(EventKind::SessionEnd),
            Just(EventKind::AuthSuccess),
            ".{0,12}".prop_map(|reason| EventKind::AuthFailure { reason }),
            Just(EventKind::TunnelUp),
            Just(EventKind::TunnelDown),
            Just(EventKind::Unmapped),
        ]
    }

    prop_compose! {
        fn connection_event()(
            kind in kind(),
            tenant in "[a-z\\-]{0,10}",
            source in ".{0,10}",
            strings in proptest::collection::vec(opt_string(), 6),
            addr in proptest::option::of(prop_oneof![
                any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            ]),
            factors in proptest::collection::vec(factor(), 0..5),
            occurred in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
            skew in -86_400_000_000_000i64..86_400_000_000_000,
            offset in -86_399i32..86_400,
            raw in proptest::collection::vec(any::<u8>(), 0..40),
        ) -> ConnectionEvent {
            let at = |nanos: i64| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
                    .unwrap()
                    .to_offset(UtcOffset::from_whole_seconds(offset).unwrap())
            };
            ConnectionEvent {
                kind,
                tenant,
                source,
                vendor: strings[0].clone(),
                person: strings[1].clone(),
                account: strings[2].clone(),
                target: strings[3].clone(),
                protocol: strings[4].clone(),
                source_addr: addr,
                session_id: strings[5].clone(),
                factors,
                occurred_at: at(occurred),
                received_at: at(occurred.saturating_add(skew)),
                raw,
            }
        }
    }

    proptest! {
        #[test]
        fn reads_back_every_encoded_event(e in connection_event()) {
            let bytes = encode(&Entry::Event(e.clone()));
            let view = decode_event_ref(&bytes).unwrap();
            prop_assert_eq!(view.to_owned(), e);
        }

        #[test]
        fn agrees_with_the_owned_decoder_on_damaged_events(
            e in connection_event(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let mut bytes = encode(&Entry::Event(e));
            for (at, v) in flips {
                let i = at % bytes.len();
                bytes[i] = v;
            }
            bytes.truncate(bytes.len() - cut % 3);
            let owned = decode(&bytes);
            // The owned decoder reads an event's body through the borrowing one; what this
            // compares is the entry around it (version, tag, trailing bytes), which each
            // checks on its own. Only bytes tagged as an event are the borrowing one's.
            if bytes.get(..2) == Some(&[VERSION, 1][..]) {
                match (decode_event_ref(&bytes), owned) {
                    (Ok(view), Ok(Entry::Event(event))) => prop_assert_eq!(view.to_owned(), event),
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    (a, b) => prop_assert!(false, "borrowed {a:?}, owned {b:?}"),
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_event_ref(&bytes);
            let mut tagged = vec![VERSION, 1];
            tagged.extend_from_slice(&bytes);
            let owned = decode(&tagged).err();
            prop_assert_eq!(decode_event_ref(&tagged).err(), owned);
        }
    }
}
