//! Parsing one syslog message (one frame from [`crate::framing`] or [`crate::relp`]):
//! RFC 5424, and the older BSD format of RFC 3164 as real devices send it.
//!
//! ```text
//! RFC 5424   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP MSG]
//!   PRI              "<" 0..191 ">"                       facility * 8 + severity
//!   TIMESTAMP        "-" / YYYY-MM-DD "T" hh:mm:ss [.1*9DIGIT] ("Z" / ±hh:mm)
//!   HOSTNAME         "-" / 1*255 PRINTUSASCII            APP-NAME "-" / 1*48,
//!   PROCID           "-" / 1*128 PRINTUSASCII            MSGID    "-" / 1*32
//!   STRUCTURED-DATA  "-" / 1*( "[" SD-ID *(SP NAME "=" %x22 VALUE %x22) "]" )
//!                    SD-ID, NAME: 1*32 PRINTUSASCII but = SP ] "
//!                    VALUE: UTF-8, with \" \\ \] escaped (any other \ is kept as is)
//!   MSG              [BOM] octets                         BOM = EF BB BF
//!
//! RFC 3164   <PRI>[TIMESTAMP SP [HOSTNAME SP]][TAG["[" PID "]"] ":" SP]MSG
//!   TIMESTAMP        Mmm SP dd SP hh:mm:ss [.frac]        dd space- or zero-padded
//!                    / an RFC 3339 timestamp              (rsyslog's high-precision format)
//!   TAG              1*48 octets but SP [ :               e.g. sshd[812]:  postfix/smtpd:
//!
//! <13>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - [timeQuality tzKnown="1"]  Accepted…\n
//! <86>Mar  1 10:00:01 bastion sshd[812]: Accepted publickey for alice from 203.0.113.7 port 51120 ssh2
//! <189>date=2026-03-01 time=10:00:01 devname="FGT60F" … action="tunnel-up"   (FortiGate: no header)
//! ```
//!
//! Strict where the standard is clear, lenient where real peers deviate:
//! - trailing CR and LF are trimmed from the frame first (rsyslog counts one LF inside the
//!   octet count; LF framing may leave a CR);
//! - RFC 5424: one leading space of MSG is dropped, because rsyslog's locally generated
//!   messages start MSG with an extra space (`%msg%` keeps the space that followed the
//!   3164 tag), then a BOM is dropped; MSG is otherwise kept as sent, decoded as UTF-8 with
//!   invalid bytes replaced. Fractional seconds of up to 9 digits are accepted (RFC: 6).
//!   Anything else that breaks the grammar is a [`SyslogError`] naming the field and offset;
//! - RFC 3164: the message needs a PRI and nothing else. Without a recognisable timestamp the
//!   whole rest is MSG (FortiGate, Cisco); a token is a TAG only if it ends with `:` (or
//!   `[pid]:`), otherwise the first token after the timestamp is the HOSTNAME and MSG starts
//!   after it. The year and zone are not on the wire: the zone is
//!   [`ParseContext::default_zone`], the year the one that puts the instant closest to
//!   [`ParseContext::now`] but not more than 31 days ahead of it (a December message received
//!   in January is from last year). A local time repeated when DST ends is resolved the same
//!   way; a local time skipped when DST starts is read with the offset before the gap.
//!
//! [`parse_ref`] gives the message borrowing from the frame ([`SyslogRef`]: no copy of
//! its fields, structured data read in place), which is what the collector does for every
//! message; [`parse`] gives the same message owned ([`SyslogMessage`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The zone of RFC 3164 timestamps unless a source says otherwise.
pub const DEFAULT_ZONE: &str = "Europe/Paris";

/// How far in the future an inferred RFC 3164 timestamp may be.
const FUTURE_SLACK_SECONDS: i64 = 31 * 24 * 3600;

const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROC_ID: usize = 128;
const MAX_MSG_ID: usize = 32;
const MAX_SD_NAME: usize = 32;
const MAX_TAG: usize = 48;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the parser needs to know beyond the message.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// When the collector received the message.
    pub now: OffsetDateTime,
    /// The zone of timestamps that carry no offset (RFC 3164).
    pub default_zone: TimeZone,
}

impl ParseContext {
    /// A context with the given clock and zone.
    pub fn new(now: OffsetDateTime, default_zone: TimeZone) -> Self {
        ParseContext { now, default_zone }
    }

    /// A context in [`DEFAULT_ZONE`], Europe/Paris.
    ///
    /// # Errors
    ///
    /// [`SyslogError::UnknownZone`] if the time zone database lacks Europe/Paris.
    pub fn europe_paris(now: OffsetDateTime) -> Result<Self, SyslogError> {
        let zone = TimeZone::get(DEFAULT_ZONE).map_err(|_| SyslogError::UnknownZone {
            name: DEFAULT_ZONE.to_owned(),
        })?;
        Ok(ParseContext::new(now, zone))
    }
}

/// Which standard the message follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<PRI>1 …`.
    Rfc5424,
    /// The BSD format, or anything else that starts with a PRI.
    Rfc3164,
}

/// One SD-ELEMENT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    /// SD-ID, e.g. `timeQuality` or `origin@32473`.
    pub id: String,
    /// SD-PARAMs in order, values unescaped.
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    /// Facility, 0 to 23 (4 auth, 10 authpriv, 16-23 local0-7).
    pub facility: u8,
    /// Severity, 0 (emergency) to 7 (debug).
    pub severity: u8,
    /// When the source says the event happened; `None` for NILVALUE or no timestamp.
    pub timestamp: Option<OffsetDateTime>,
    /// HOSTNAME.
    pub hostname: Option<String>,
    /// APP-NAME, or the RFC 3164 TAG.
    pub app_name: Option<String>,
    /// PROCID, or the RFC 3164 `[pid]`.
    pub proc_id: Option<String>,
    /// MSGID (RFC 5424 only).
    pub msg_id: Option<String>,
    /// STRUCTURED-DATA (RFC 5424 only).
    pub structured_data: Vec<SdElement>,
    /// MSG, trailing line breaks and BOM removed, invalid UTF-8 replaced.
    pub msg: String,
    /// Which standard the message follows.
    pub format: Format,
}

/// A parsed syslog message that borrows from its frame, as [`parse_ref`] gives it: the
/// same fields as [`SyslogMessage`], without copying them. Text is borrowed unless it
/// had to change (invalid UTF-8 replaced, SD escapes undone); structured data is kept as
/// it was on the wire, checked, and read element by element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogRef<'a> {
    /// Facility, 0 to 23.
    pub facility: u8,
    /// Severity, 0 to 7.
    pub severity: u8,
    /// When the source says the event happened; `None` for NILVALUE or no timestamp.
    pub timestamp: Option<OffsetDateTime>,
    /// HOSTNAME.
    pub hostname: Option<Cow<'a, str>>,
    /// APP-NAME, or the RFC 3164 TAG.
    pub app_name: Option<Cow<'a, str>>,
    /// PROCID, or the RFC 3164 `[pid]`.
    pub proc_id: Option<Cow<'a, str>>,
    /// MSGID (RFC 5424 only).
    pub msg_id: Option<Cow<'a, str>>,
    /// STRUCTURED-DATA (RFC 5424 only).
    pub structured_data: StructuredData<'a>,
    /// MSG, trailing line breaks and BOM removed, invalid UTF-8 replaced.
    pub msg: Cow<'a, str>,
    /// Which standard the message follows.
    pub format: Format,
}

impl From<SyslogRef<'_>> for SyslogMessage {
    fn from(m: SyslogRef<'_>) -> Self {
        SyslogMessage {
            facility: m.facility,
            severity: m.severity,
            timestamp: m.timestamp,
            hostname: m.hostname.map(Cow::into_owned),
            app_name: m.app_name.map(Cow::into_owned),
            proc_id: m.proc_id.map(Cow::into_owned),
            msg_id: m.msg_id.map(Cow::into_owned),
            structured_data: m
                .structured_data
                .elements()
                .map(|e| SdElement {
                    id: e.id.to_owned(),
                    params: e
                        .params()
                        .map(|(name, value)| (name.to_owned(), value.into_owned()))
                        .collect(),
                })
                .collect(),
            msg: m.msg.into_owned(),
            format: m.format,
        }
    }
}

/// STRUCTURED-DATA as received (`[id p="v"…]…`, or nothing for NILVALUE), already checked
/// against the grammar by the parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StructuredData<'a> {
    bytes: Checked<'a>,
    /// Where the parser found the first [`MARKED_ELEMENTS`] elements, so that reading them
    /// does not scan their parameters again.
    marks: [ElementMark; MARKED_ELEMENTS],
}

/// How many SD-ELEMENTs a [`StructuredData`] remembers the bounds of (relays add one or two,
/// e.g. `timeQuality` and the collector's own).
const MARKED_ELEMENTS: usize = 4;

/// One SD-ELEMENT's bounds, as offsets into the STRUCTURED-DATA: the SD-ID ends at `id_end`
/// (its parameters follow), the element at `end` (after its `]`). All zero: not recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ElementMark {
    id_end: u32,
    end: u32,
}

impl<'a> StructuredData<'a> {
    /// Whether there is no SD-ELEMENT.
    pub fn is_empty(&self) -> bool {
        self.bytes.bytes.is_empty()
    }

    /// The SD-ELEMENTs in order.
    pub fn elements(&self) -> SdElements<'a> {
        SdElements {
            bytes: self.bytes,
            marks: self.marks,
            index: 0,
            pos: 0,
        }
    }
}

/// The SD-ELEMENTs of [`StructuredData`], in order.
#[derive(Debug, Clone)]
pub struct SdElements<'a> {
    bytes: Checked<'a>,
    marks: [ElementMark; MARKED_ELEMENTS],
    index: usize,
    pos: usize,
}

impl<'a> Iterator for SdElements<'a> {
    type Item = SdElementRef<'a>;

    fn next(&mut self) -> Option<SdElementRef<'a>> {
        if self.bytes.bytes.get(self.pos) != Some(&b'[') {
            return None;
        }
        let mark = self.marks.get(self.index).filter(|m| m.end != 0);
        self.index += 1;
        let (id, params, end) = match mark {
            Some(m) => {
                let (id_end, end) = (m.id_end as usize, m.end as usize);
                (self.pos + 1..id_end, id_end..end - 1, end)
            }
            // The parser checked these bytes: an error here cannot happen, and would end
            // the iteration.
            None => scan_element(self.bytes.bytes, self.pos).ok()?,
        };
        self.pos = end;
        Some(SdElementRef {
            id: self.bytes.ascii(id),
            params: self.bytes.sub(params),
        })
    }
}

/// One SD-ELEMENT of [`StructuredData`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdElementRef<'a> {
    /// SD-ID.
    pub id: &'a str,
    /// ` name="value"…` as received.
    params: Checked<'a>,
}

impl<'a> SdElementRef<'a> {
    /// The SD-PARAMs in order, values unescaped (and invalid UTF-8 replaced).
    pub fn params(&self) -> SdParams<'a> {
        SdParams {
            bytes: self.params,
            pos: 0,
        }
    }
}

/// The SD-PARAMs of one [`SdElementRef`], in order.
#[derive(Debug, Clone)]
pub struct SdParams<'a> {
    bytes: Checked<'a>,
    pos: usize,
}

impl<'a> Iterator for SdParams<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.bytes.get(self.pos) != Some(&b' ') {
            return None;
        }
        let (name, value, end) = scan_param(self.bytes.bytes, self.pos).ok()?;
        self.pos = end;
        Some((self.bytes.ascii(name), self.bytes.unescape(value)))
    }
}

/// A part of a syslog message, to say where an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `<PRI>`.
    Pri,
    /// VERSION.
    Version,
    /// TIMESTAMP.
    Timestamp,
    /// HOSTNAME.
    Hostname,
    /// APP-NAME.
    AppName,
    /// PROCID.
    ProcId,
    /// MSGID.
    MsgId,
    /// STRUCTURED-DATA.
    StructuredData,
    /// MSG.
    Msg,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Pri => "pri",
            Field::Version => "version",
            Field::Timestamp => "timestamp",
            Field::Hostname => "hostname",
            Field::AppName => "app-name",
            Field::ProcId => "procid",
            Field::MsgId => "msgid",
            Field::StructuredData => "structured-data",
            Field::Msg => "msg",
        })
    }
}

/// Why a frame is not a syslog message, or a message cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    /// The frame breaks the grammar.
    #[error("syslog {field} invalid at byte {offset}: {reason}")]
    Invalid {
        /// The field being read.
        field: Field,
        /// Offset in the frame.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The time zone database has no such zone.
    #[error("unknown time zone {name:?}")]
    UnknownZone {
        /// The zone's name.
        name: String,
    },
    /// A field that RFC 5424 cannot carry.
    #[error("cannot print syslog {field} as rfc 5424: {reason}")]
    Unprintable {
        /// The field.
        field: Field,
        /// What is wrong.
        reason: &'static str,
    },
}

fn invalid(field: Field, offset: usize, reason: &'static str) -> SyslogError {
    SyslogError::Invalid {
        field,
        offset,
        reason,
    }
}

/// Parses one frame as RFC 5424 (`<PRI>1 `) or else RFC 3164.
///
/// # Errors
///
/// [`SyslogError::Invalid`] naming the field and byte offset: a missing or bad PRI in any
/// case, anything off the RFC 5424 grammar for a 5424 message, an impossible date.
///
/// # Examples
/// ```
/// # use proto::syslog::{parse, ParseContext, Format};
/// # use time::macros::datetime;
/// let ctx = ParseContext::europe_paris(datetime!(2026-03-01 9:00:05 UTC)).unwrap();
/// let m = parse(b"<86>Mar  1 10:00:01 bastion sshd[812]: Accepted publickey for alice", &ctx)
///     .unwrap();
/// assert_eq!(m.format, Format::Rfc3164);
/// assert_eq!(m.timestamp, Some(datetime!(2026-03-01 10:00:01 +01:00)));
/// assert_eq!(m.app_name.as_deref(), Some("sshd"));
/// assert_eq!(m.msg, "Accepted publickey for alice");
/// ```
pub fn parse(frame: &[u8], ctx: &ParseContext) -> Result<SyslogMessage, SyslogError> {
    parse_ref(frame, ctx).map(SyslogMessage::from)
}

/// Parses one frame as [`parse`] does, into a message that borrows from the frame (no
/// copy of its fields: what a collector does for every message).
///
/// # Errors
///
/// As [`parse`].
///
/// # Examples
/// ```
/// # use proto::syslog::{parse_ref, ParseContext};
/// # use time::macros::datetime;
/// let ctx = ParseContext::europe_paris(datetime!(2026-03-01 9:00:05 UTC)).unwrap();
/// let frame = br#"<86>1 2026-03-01T10:00:01+01:00 bastion sshd 812 - [vigie@32473 tenant="CHU-X"] Accepted"#;
/// let m = parse_ref(frame, &ctx).unwrap();
/// assert_eq!(m.app_name.as_deref(), Some("sshd"));
/// let sd = m.structured_data.elements().next().unwrap();
/// assert_eq!(sd.id, "vigie@32473");
/// assert_eq!(sd.params().next().unwrap(), ("tenant", "CHU-X".into()));
/// assert_eq!(m.msg, "Accepted");
/// ```
pub fn parse_ref<'a>(frame: &'a [u8], ctx: &ParseContext) -> Result<SyslogRef<'a>, SyslogError> {
    let mut end = frame.len();
    while end > 0 && matches!(frame[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let frame = &frame[..end];
    let (pri, at) = parse_pri(frame)?;
    let facility = pri / 8;
    let severity = pri % 8;
    let checked = Checked::new(frame);
    if frame[at..].starts_with(b"1 ") {
        parse_5424(checked, at + 2, facility, severity)
    } else {
        parse_3164(checked, at, facility, severity, ctx)
    }
}

fn parse_pri(frame: &[u8]) -> Result<(u8, usize), SyslogError> {
    if frame.first() != Some(&b'<') {
        return Err(invalid(Field::Pri, 0, "expected '<'"));
    }
    let mut value = 0u16;
    let mut i = 1;
    while let Some(&b) = frame.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        if i > 3 {
            return Err(invalid(Field::Pri, i, "more than 3 digits"));
        }
        value = value * 10 + u16::from(b - b'0');
        i += 1;
    }
    if i == 1 {
        return Err(invalid(Field::Pri, 1, "expected a digit"));
    }
    if frame.get(i) != Some(&b'>') {
        return Err(invalid(Field::Pri, i, "expected '>'"));
    }
    if value > 191 {
        return Err(invalid(Field::Pri, 1, "above 191"));
    }
    // value <= 191.
    Ok((value as u8, i + 1))
}

/// A cursor over the frame.
struct Cursor<'a> {
    frame: Checked<'a>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.frame.bytes.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        &self.frame.bytes[self.pos.min(self.frame.bytes.len())..]
    }

    /// Expects a space that ends `field`.
    fn space(&mut self, field: Field) -> Result<(), SyslogError> {
        match self.peek() {
            Some(b' ') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(invalid(field, self.pos, "message ends inside the header")),
            Some(_) => Err(invalid(field, self.pos, "expected a space")),
        }
    }

    /// A header field of printable US-ASCII up to the next space; `None` for NILVALUE.
    fn header_field(
        &mut self,
        field: Field,
        max: usize,
    ) -> Result<Option<Cow<'a, str>>, SyslogError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            if !(33..=126).contains(&b) {
                return Err(invalid(field, self.pos, "not printable US-ASCII"));
            }
            if self.pos - start == max {
                return Err(invalid(field, self.pos, "too long"));
            }
            self.pos += 1;
        }
        match &self.frame.bytes[start..self.pos] {
            b"" => Err(invalid(field, start, "empty")),
            b"-" => Ok(None),
            _ => Ok(Some(Cow::Borrowed(self.frame.ascii(start..self.pos)))),
        }
    }
}

/// Bytes of a frame, and the same bytes as text when they are all UTF-8. A frame is
/// checked once, and its fields are then sliced out of the text: checking each field again
/// cost more than the parsing itself. Fields are cut at ASCII delimiters, which are
/// character boundaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Checked<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> Checked<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Checked {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    fn sub(&self, range: Range<usize>) -> Checked<'a> {
        let (bytes, text) = self.at(range);
        Checked { bytes, text }
    }

    /// The bytes of `range`, and the same bytes as text when the frame is UTF-8.
    fn at(&self, range: Range<usize>) -> (&'a [u8], Option<&'a str>) {
        (
            self.bytes.get(range.clone()).unwrap_or_default(),
            self.text.and_then(|t| t.get(range)),
        )
    }

    /// The bytes of `range` as text, invalid UTF-8 replaced.
    fn lossy(&self, range: Range<usize>) -> Cow<'a, str> {
        match self.at(range) {
            (_, Some(text)) => Cow::Borrowed(text),
            (bytes, None) => lossy(bytes),
        }
    }

    /// Printable US-ASCII (checked by the caller) as text.
    fn ascii(&self, range: Range<usize>) -> &'a str {
        match self.at(range) {
            (_, Some(text)) => text,
            (bytes, None) => std::str::from_utf8(bytes).unwrap_or_default(),
        }
    }

    /// An SD param value (see [`unescape`]).
    fn unescape(&self, range: Range<usize>) -> Cow<'a, str> {
        match self.at(range) {
            (raw, _) if raw.contains(&b'\\') => unescape(raw),
            (_, Some(text)) => Cow::Borrowed(text),
            (raw, None) => lossy(raw),
        }
    }

    /// MSG from `at`: BOM dropped, invalid UTF-8 replaced.
    fn msg(&self, mut at: usize) -> Cow<'a, str> {
        if self
            .bytes
            .get(at..)
            .is_some_and(|rest| rest.starts_with(BOM))
        {
            at += BOM.len();
        }
        self.lossy(at.min(self.bytes.len())..self.bytes.len())
    }
}

/// Bytes as text, borrowed when they are UTF-8 (the common case, checked quickly), else
/// with invalid sequences replaced.
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// An SD param value as received (between its quotes) that holds a backslash: `\"`, `\\`
/// and `\]` unescaped; any other backslash is kept as is (RFC 5424 §6.3.3).
fn unescape(raw: &[u8]) -> Cow<'_, str> {
    let mut value = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match raw.get(i + 1) {
            Some(&e @ (b'"' | b'\\' | b']')) if b == b'\\' => {
                value.push(e);
                i += 2;
            }
            _ => {
                value.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(lossy(&value).into_owned())
}

/// The end of an SD-NAME starting at `start`: 1 to 32 printable US-ASCII but `=`, space,
/// `]`, `"`.
fn sd_name_end(buf: &[u8], start: usize) -> Result<usize, SyslogError> {
    let rest = buf.get(start..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&b| !SD_NAME_BYTES[usize::from(b)])
        .unwrap_or(rest.len());
    if len > MAX_SD_NAME {
        return Err(invalid(
            Field::StructuredData,
            start + MAX_SD_NAME,
            "name too long",
        ));
    }
    if len == 0 {
        return Err(invalid(Field::StructuredData, start, "expected a name"));
    }
    Ok(start + len)
}

/// The bytes of an SD-NAME: printable US-ASCII but `=`, `]`, `"` (and space).
static SD_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 33;
    while b <= 126 {
        table[b] = !matches!(b as u8, b'=' | b']' | b'"');
        b += 1;
    }
    table
};

fn sd_expect(buf: &[u8], pos: usize, byte: u8, reason: &'static str) -> Result<(), SyslogError> {
    if buf.get(pos) == Some(&byte) {
        Ok(())
    } else {
        Err(invalid(Field::StructuredData, pos, reason))
    }
}

/// An SD-PARAM ` NAME="VALUE"` whose space is at `pos`: the name, the value as received
/// (between the quotes) and the end.
fn scan_param(buf: &[u8], pos: usize) -> Result<(Range<usize>, Range<usize>, usize), SyslogError> {
    let name_start = pos + 1;
    let name_end = sd_name_end(buf, name_start)?;
    sd_expect(buf, name_end, b'=', "expected '='")?;
    let open = name_end + 1;
    sd_expect(buf, open, b'"', "expected '\"'")?;
    let mut at = open + 1;
    loop {
        let Some(found) = buf
            .get(at..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        else {
            return Err(invalid(
                Field::StructuredData,
                open,
                "unterminated param value",
            ));
        };
        at += found;
        if buf[at] == b'"' {
            return Ok((name_start..name_end, open + 1..at, at + 1));
        }
        // An escaped '"', '\\' or ']' takes two bytes; any other backslash is kept.
        at += if matches!(buf.get(at + 1), Some(b'"' | b'\\' | b']')) {
            2
        } else {
            1
        };
    }
}

/// An SD-ELEMENT whose `[` is at `pos`: its SD-ID, its params (` name="value"…`) and
/// the end.
fn scan_element(
    buf: &[u8],
    pos: usize,
) -> Result<(Range<usize>, Range<usize>, usize), SyslogError> {
    let id_start = pos + 1;
    let id_end = sd_name_end(buf, id_start)?;
    let mut at = id_end;
    while buf.get(at) == Some(&b' ') {
        at = scan_param(buf, at)?.2;
    }
    sd_expect(buf, at, b']', "expected ']' or a space")?;
    Ok((id_start..id_end, id_end..at, at + 1))
}

fn parse_5424(
    frame: Checked<'_>,
    at: usize,
    facility: u8,
    severity: u8,
) -> Result<SyslogRef<'_>, SyslogError> {
    let mut c = Cursor { frame, pos: at };
    let timestamp = if c.rest().starts_with(b"- ") || c.rest() == b"-" {
        c.pos += 1;
        None
    } else {
        let (ts, len) = parse_iso(c.rest(), c.pos)?;
        c.pos += len;
        let offset = ts.offset.ok_or(invalid(
            Field::Timestamp,
            c.pos,
            "expected 'Z' or an offset",
        ))?;
        Some(ts.with_offset(offset, at)?)
    };
    c.space(Field::Timestamp)?;
    let hostname = c.header_field(Field::Hostname, MAX_HOSTNAME)?;
    c.space(Field::Hostname)?;
    let app_name = c.header_field(Field::AppName, MAX_APP_NAME)?;
    c.space(Field::AppName)?;
    let proc_id = c.header_field(Field::ProcId, MAX_PROC_ID)?;
    c.space(Field::ProcId)?;
    let msg_id = c.header_field(Field::MsgId, MAX_MSG_ID)?;
    c.space(Field::MsgId)?;
    let structured_data = parse_sd(&mut c)?;
    let msg = match c.peek() {
        None => Cow::Borrowed(""),
        Some(b' ') => {
            let mut at = c.pos + 1;
            // rsyslog's locally generated messages carry one extra leading space.
            if c.frame.bytes.get(at) == Some(&b' ') {
                at += 1;
            }
            c.frame.msg(at)
        }
        Some(_) => {
            return Err(invalid(
                Field::StructuredData,
                c.pos,
                "expected a space or the end after structured data",
            ));
        }
    };
    Ok(SyslogRef {
        facility,
        severity,
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        msg,
        format: Format::Rfc5424,
    })
}

fn parse_sd<'a>(c: &mut Cursor<'a>) -> Result<StructuredData<'a>, SyslogError> {
    match c.peek() {
        Some(b'-') => {
            c.pos += 1;
            return Ok(StructuredData::default());
        }
        Some(b'[') => {}
        None => {
            return Err(invalid(
                Field::StructuredData,
                c.pos,
                "message ends inside the header",
            ));
        }
        Some(_) => return Err(invalid(Field::StructuredData, c.pos, "expected '[' or '-'")),
    }
    let start = c.pos;
    let mut marks = [ElementMark::default(); MARKED_ELEMENTS];
    let mut index = 0;
    while c.peek() == Some(b'[') {
        let (id, _, end) = scan_element(c.frame.bytes, c.pos)?;
        // Offsets past u32 are not recorded: such elements are scanned again when read.
        if let (Some(mark), Ok(id_end), Ok(rel_end)) = (
            marks.get_mut(index),
            u32::try_from(id.end - start),
            u32::try_from(end - start),
        ) {
            *mark = ElementMark {
                id_end,
                end: rel_end,
            };
        }
        index += 1;
        c.pos = end;
    }
    Ok(StructuredData {
        bytes: c.frame.sub(start..c.pos),
        marks,
    })
}

/// A civil date and time as read, with its offset if it had one.
struct Civil {
    year: i16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanosecond: u32,
    offset: Option<i32>,
}

impl Civil {
    /// The instant at the given UTC offset; `at` is the timestamp's offset in the frame.
    fn with_offset(&self, offset_seconds: i32, at: usize) -> Result<OffsetDateTime, SyslogError> {
        let bad = |reason| invalid(Field::Timestamp, at, reason);
        let month = Month::try_from(self.month).map_err(|_| bad("month out of range"))?;
        let date = Date::from_calendar_date(i32::from(self.year), month, self.day)
            .map_err(|_| bad("day out of range"))?;
        let time = Time::from_hms_nano(self.hour, self.minute, self.second, self.nanosecond)
            .map_err(|_| bad("time out of range"))?;
        let offset = UtcOffset::from_whole_seconds(offset_seconds)
            .map_err(|_| bad("offset out of range"))?;
        let t = PrimitiveDateTime::new(date, time).assume_offset(offset);
        // Keep every instant convertible to UTC (years 0-9999 at an extreme offset are not).
        t.checked_to_offset(UtcOffset::UTC)
            .ok_or(bad("out of range once in UTC"))?;
        Ok(t)
    }

    fn jiff(&self, year: i16) -> Option<DateTime> {
        DateTime::new(
            year,
            i8::try_from(self.month).ok()?,
            i8::try_from(self.day).ok()?,
            i8::try_from(self.hour).ok()?,
            i8::try_from(self.minute).ok()?,
            i8::try_from(self.second).ok()?,
            i32::try_from(self.nanosecond).ok()?,
        )
        .ok()
    }
}

/// `n` ASCII digits at `bytes[at..]`.
fn digits(bytes: &[u8], at: usize, n: usize) -> Option<u32> {
    let d = bytes.get(at..at + n)?;
    d.iter().try_fold(0u32, |v, b| {
        b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0'))
    })
}

/// `.1*9DIGIT` at `bytes[at..]`: nanoseconds and length (0 if absent).
fn fraction(bytes: &[u8], at: usize) -> (u32, usize) {
    if bytes.get(at) != Some(&b'.') {
        return (0, 0);
    }
    let mut n = 0u32;
    let mut len = 0;
    while let Some(b) = bytes.get(at + 1 + len) {
        if !b.is_ascii_digit() || len == 9 {
            break;
        }
        n = n * 10 + u32::from(b - b'0');
        len += 1;
    }
    if len == 0 {
        return (0, 0);
    }
    (n * 10u32.pow(9 - len as u32), len + 1)
}

/// An RFC 3339 timestamp at the start of `bytes` (which is at `base` in the frame); the
/// offset is optional here. Returns the value and its length.
fn parse_iso(bytes: &[u8], base: usize) -> Result<(Civil, usize), SyslogError> {
    let bad = |at: usize, reason| invalid(Field::Timestamp, base + at, reason);
    let num = |at: usize, n: usize, reason| digits(bytes, at, n).ok_or(bad(at, reason));
    let sep = |at: usize, byte: u8, reason| {
        if bytes.get(at) == Some(&byte) {
            Ok(())
        } else {
            Err(bad(at, reason))
        }
    };
    let year = num(0, 4, "expected a 4-digit year")?;
    sep(4, b'-', "expected '-'")?;
    let month = num(5, 2, "expected a 2-digit month")?;
    sep(7, b'-', "expected '-'")?;
    let day = num(8, 2, "expected a 2-digit day")?;
    if !matches!(bytes.get(10), Some(b'T' | b't')) {
        return Err(bad(10, "expected 'T'"));
    }
    let hour = num(11, 2, "expected a 2-digit hour")?;
    sep(13, b':', "expected ':'")?;
    let minute = num(14, 2, "expected 2-digit minutes")?;
    sep(16, b':', "expected ':'")?;
    let second = num(17, 2, "expected 2-digit seconds")?;
    let (nanosecond, frac_len) = fraction(bytes, 19);
    let mut at = 19 + frac_len;
    let offset = match bytes.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let h = num(at + 1, 2, "expected 2-digit offset hours")?;
            sep(at + 3, b':', "expected ':' in the offset")?;
            let m = num(at + 4, 2, "expected 2-digit offset minutes")?;
            if h > 23 || m > 59 {
                return Err(bad(at, "offset out of range"));
            }
            // h <= 23 and m <= 59.
            let seconds = (h * 3600 + m * 60) as i32;
            at += 6;
            Some(if sign == b'-' { -seconds } else { seconds })
        }
        _ => None,
    };
    // All values below fit: 4 or 2 digits.
    let civil = Civil {
        year: year as i16,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        nanosecond,
        offset,
    };
    Ok((civil, at))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss[.frac]` at the start of `bytes`, `dd` space- or zero-padded or one digit;
/// the value (year 0, no offset) and its length.
fn parse_bsd(bytes: &[u8]) -> Option<(Civil, usize)> {
    let name = bytes.get(..3)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    if bytes.get(3) != Some(&b' ') {
        return None;
    }
    let mut at = 4;
    if bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    let day = if let Some(d) = digits(bytes, at, 2) {
        at += 2;
        d
    } else {
        let d = digits(bytes, at, 1)?;
        at += 1;
        d
    };
    if bytes.get(at) != Some(&b' ') {
        return None;
    }
    let hour = digits(bytes, at + 1, 2)?;
    let minute = (bytes.get(at + 3) == Some(&b':'))
        .then(|| digits(bytes, at + 4, 2))
        .flatten()?;
    let second = (bytes.get(at + 6) == Some(&b':'))
        .then(|| digits(bytes, at + 7, 2))
        .flatten()?;
    let (nanosecond, frac_len) = fraction(bytes, at + 9);
    let civil = Civil {
        year: 0,
        // month < 12, the rest 2 digits.
        month: month as u8 + 1,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        nanosecond,
        offset: None,
    };
    Some((civil, at + 9 + frac_len))
}

/// A timestamp read at the start of `bytes`, if it is one followed by a space or the end.
fn parse_3164_timestamp(bytes: &[u8]) -> Option<(Civil, usize, bool)> {
    let (civil, len, bsd) = match parse_bsd(bytes) {
        Some((c, len)) => (c, len, true),
        None => {
            let (c, len) = parse_iso(bytes, 0).ok()?;
            (c, len, false)
        }
    };
    matches!(bytes.get(len), None | Some(b' ')).then_some((civil, len, bsd))
}

fn to_jiff(t: OffsetDateTime) -> Option<Timestamp> {
    Timestamp::from_nanosecond(t.unix_timestamp_nanos()).ok()
}

/// The one place where a jiff instant becomes a `time` one, at the zone's offset.
fn from_jiff(t: Timestamp, zone: &TimeZone) -> Option<OffsetDateTime> {
    let offset = UtcOffset::from_whole_seconds(zone.to_offset(t).seconds()).ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond())
        .ok()
        .map(|t| t.to_offset(offset))
}

/// The instant of a local time in `ctx.default_zone`, in one of `years`: the one closest to
/// `ctx.now`, and when the year was guessed at most [`FUTURE_SLACK_SECONDS`] after it.
fn resolve_local(
    civil: &Civil,
    years: &[i16],
    year_guessed: bool,
    ctx: &ParseContext,
) -> Option<OffsetDateTime> {
    let now = to_jiff(ctx.now)?;
    let zone = &ctx.default_zone;
    let mut best: Option<(i64, Timestamp)> = None;
    for &year in years {
        let Some(dt) = civil.jiff(year) else {
            continue;
        };
        let ambiguous = zone.to_ambiguous_timestamp(dt);
        let offsets = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { offset } => [Some(offset), None],
            AmbiguousOffset::Gap { before, .. } => [Some(before), None],
            AmbiguousOffset::Fold { before, after } => [Some(before), Some(after)],
        };
        for offset in offsets.into_iter().flatten() {
            let Ok(t) = offset.to_timestamp(dt) else {
                continue;
            };
            let ahead = t.as_second() - now.as_second();
            if year_guessed && ahead > FUTURE_SLACK_SECONDS {
                continue;
            }
            if best.is_none_or(|(distance, _)| ahead.abs() < distance) {
                best = Some((ahead.abs(), t));
            }
        }
    }
    from_jiff(best?.1, zone)
}

fn parse_3164<'a>(
    checked: Checked<'a>,
    at: usize,
    facility: u8,
    severity: u8,
    ctx: &ParseContext,
) -> Result<SyslogRef<'a>, SyslogError> {
    let mut message = SyslogRef {
        facility,
        severity,
        timestamp: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: StructuredData::default(),
        msg: Cow::Borrowed(""),
        format: Format::Rfc3164,
    };
    let frame = checked.bytes;
    let Some((civil, len, bsd)) = parse_3164_timestamp(&frame[at..]) else {
        // No header: the whole rest is the message (FortiGate, Cisco…).
        message.msg = checked.msg(at);
        return Ok(message);
    };
    let timestamp = match civil.offset {
        Some(offset) => civil.with_offset(offset, at)?,
        None => {
            let now_year = to_jiff(ctx.now)
                .map(|now| ctx.default_zone.to_datetime(now).year())
                .ok_or(invalid(Field::Timestamp, at, "receive time out of range"))?;
            let years: &[i16] = if bsd {
                &[now_year - 1, now_year, now_year + 1]
            } else {
                &[civil.year]
            };
            resolve_local(&civil, years, bsd, ctx).ok_or(invalid(
                Field::Timestamp,
                at,
                "no such date near the receive time",
            ))?
        }
    };
    message.timestamp = Some(timestamp);
    let mut pos = skip_spaces(frame, at + len);
    let first = token(frame, pos);
    if let Some((app, pid)) = tag(&frame[first.clone()]) {
        message.app_name = Some(app);
        message.proc_id = pid;
        pos = first.end;
    } else if !first.is_empty() {
        message.hostname = Some(checked.lossy(first.clone()));
        pos = skip_spaces(frame, first.end);
        let second = token(frame, pos);
        if let Some((app, pid)) = tag(&frame[second.clone()]) {
            message.app_name = Some(app);
            message.proc_id = pid;
            pos = second.end;
        }
    }
    // The space after "tag:" separates; the rest is the message.
    let mut pos = pos.min(frame.len());
    if frame.get(pos) == Some(&b' ') {
        pos += 1;
    }
    message.msg = checked.msg(pos);
    Ok(message)
}

fn skip_spaces(frame: &[u8], mut pos: usize) -> usize {
    while frame.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// The token at `pos`, up to the next space or the end.
fn token(frame: &[u8], pos: usize) -> std::ops::Range<usize> {
    let start = pos.min(frame.len());
    let len = frame[start..]
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(frame.len() - start);
    start..start + len
}

/// `NAME:` or `NAME[PID]:`, NAME 1 to 48 bytes without `[` or `:`.
fn tag(token: &[u8]) -> Option<(Cow<'_, str>, Option<Cow<'_, str>>)> {
    let body = token.strip_suffix(b":")?;
    let (name, pid) = match body.iter().position(|&b| b == b'[') {
        Some(open) => {
            let pid = body[open + 1..].strip_suffix(b"]")?;
            if pid.is_empty() || pid.len() > MAX_PROC_ID || pid.contains(&b']') {
                return None;
            }
            (&body[..open], Some(pid))
        }
        None => (body, None),
    };
    if name.is_empty() || name.len() > MAX_TAG || name.iter().any(|&b| b == b':' || b == b']') {
        return None;
    }
    Some((lossy(name), pid.map(lossy)))
}

impl SyslogMessage {
    /// The PRI value: facility × 8 + severity.
    pub fn pri(&self) -> u16 {
        u16::from(self.facility) * 8 + u16::from(self.severity)
    }

    /// Appends the message as RFC 5424 (without framing), such that [`parse`] gives it back
    /// (with [`Format::Rfc5424`]).
    ///
    /// # Errors
    ///
    /// [`SyslogError::Unprintable`] naming the field: a facility over 23 or severity over 7, a
    /// timestamp outside years 0-9999 or with an offset in seconds, a header field that is
    /// empty, `-`, too long or not printable US-ASCII, an SD name off the grammar, a MSG that
    /// ends with CR or LF.
    pub fn write_rfc5424(&self, out: &mut Vec<u8>) -> Result<(), SyslogError> {
        let unprintable = |field, reason| SyslogError::Unprintable { field, reason };
        if self.facility > 23 || self.severity > 7 {
            return Err(unprintable(
                Field::Pri,
                "facility over 23 or severity over 7",
            ));
        }
        out.push(b'<');
        crate::framing::push_decimal(out, u64::from(self.pri()));
        out.extend_from_slice(b">1 ");
        match self.timestamp {
            None => out.push(b'-'),
            Some(t) => write_timestamp(t, out)
                .ok_or(unprintable(Field::Timestamp, "year or offset out of range"))?,
        }
        for (field, value, max) in [
            (Field::Hostname, &self.hostname, MAX_HOSTNAME),
            (Field::AppName, &self.app_name, MAX_APP_NAME),
            (Field::ProcId, &self.proc_id, MAX_PROC_ID),
            (Field::MsgId, &self.msg_id, MAX_MSG_ID),
        ] {
            out.push(b' ');
            match value {
                None => out.push(b'-'),
                Some(v) => {
                    if v.is_empty()
                        || v == "-"
                        || v.len() > max
                        || !v.bytes().all(|b| (33..=126).contains(&b))
                    {
                        return Err(unprintable(
                            field,
                            "empty, '-', too long or not printable US-ASCII",
                        ));
                    }
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        out.push(b' ');
        if self.structured_data.is_empty() {
            out.push(b'-');
        }
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= MAX_SD_NAME
                && n.bytes()
                    .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
        };
        for element in &self.structured_data {
            if !valid_name(&element.id) {
                return Err(unprintable(Field::StructuredData, "invalid SD-ID"));
            }
            out.push(b'[');
            out.extend_from_slice(element.id.as_bytes());
            for (name, value) in &element.params {
                if !valid_name(name) {
                    return Err(unprintable(Field::StructuredData, "invalid param name"));
                }
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"=\"");
                for b in value.bytes() {
                    if matches!(b, b'"' | b'\\' | b']') {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
            out.push(b']');
        }
        if !self.msg.is_empty() {
            if self.msg.ends_with(['\r', '\n']) {
                return Err(unprintable(Field::Msg, "ends with a line break"));
            }
            out.push(b' ');
            // What parse() drops: one leading space, then a BOM.
            if self.msg.starts_with(' ') {
                out.push(b' ');
            } else if self.msg.as_bytes().starts_with(BOM) {
                out.extend_from_slice(BOM);
            }
            out.extend_from_slice(self.msg.as_bytes());
        }
        Ok(())
    }
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`; `None` when out of range.
fn write_timestamp(t: OffsetDateTime, out: &mut Vec<u8>) -> Option<()> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let (oh, om, os) = t.offset().as_hms();
    if os != 0 {
        return None;
    }
    let two = |n: u32, out: &mut Vec<u8>| {
        out.push(b'0' + (n / 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    two(year / 100, out);
    two(year % 100, out);
    out.push(b'-');
    two(u32::from(u8::from(t.month())), out);
    out.push(b'-');
    two(u32::from(t.day()), out);
    out.push(b'T');
    two(u32::from(t.hour()), out);
    out.push(b':');
    two(u32::from(t.minute()), out);
    out.push(b':');
    two(u32::from(t.second()), out);
    let nanos = t.nanosecond();
    if nanos != 0 {
        out.push(b'.');
        let digits = format!("{nanos:09}");
        out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
    }
    if (oh, om) == (0, 0) {
        out.push(b'Z');
    } else {
        out.push(if oh < 0 || om < 0 { b'-' } else { b'+' });
        two(oh.unsigned_abs().into(), out);
        out.push(b':');
        two(om.unsigned_abs().into(), out);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn ctx(now: OffsetDateTime) -> ParseContext {
        ParseContext::europe_paris(now).unwrap()
    }

    fn parse_at(frame: &[u8], now: OffsetDateTime) -> SyslogMessage {
        parse(frame, &ctx(now)).unwrap()
    }

    fn err(frame: &[u8]) -> String {
        parse(frame, &ctx(datetime!(2026-03-01 12:00 UTC)))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rsyslog_protocol23_format_with_counted_newline_and_extra_space() {
        let frame = b"<86>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - -  Accepted publickey for alice from 203.0.113.7 port 51120 ssh2: ED25519 SHA256:abc\n";
        let m = parse_at(frame, datetime!(2026-03-01 9:00:02 UTC));
        assert_eq!(
            m,
            SyslogMessage {
                facility: 10,
                severity: 6,
                timestamp: Some(datetime!(2026-03-01 10:00:01.123456 +01:00)),
                hostname: Some("bastion".into()),
                app_name: Some("sshd".into()),
                proc_id: Some("812".into()),
                msg_id: None,
                structured_data: vec![],
                msg: "Accepted publickey for alice from 203.0.113.7 port 51120 ssh2: ED25519 SHA256:abc".into(),
                format: Format::Rfc5424,
            }
        );
        assert_eq!(
            m.timestamp.map(|t| t.offset()),
            Some(time::macros::offset!(+1))
        );
    }

    #[test]
    fn logger_with_time_quality() {
        let frame = "<13>1 2026-03-01T09:00:01.5Z jump01 alice - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] \u{feff}hello été".as_bytes();
        let m = parse_at(frame, datetime!(2026-03-01 9:00:02 UTC));
        assert_eq!(m.facility, 1);
        assert_eq!(m.severity, 5);
        assert_eq!(m.timestamp, Some(datetime!(2026-03-01 9:00:01.5 UTC)));
        assert_eq!(m.proc_id, None);
        assert_eq!(
            m.structured_data,
            vec![SdElement {
                id: "timeQuality".into(),
                params: vec![
                    ("tzKnown".into(), "1".into()),
                    ("isSynced".into(), "0".into())
                ],
            }]
        );
        assert_eq!(m.msg, "hello été");
    }

    #[test]
    fn sd_escapes_nil_values_and_several_elements() {
        let frame = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication\\" eventID="1011\]" path="c:\temp"][examplePriority@32473 class="high"]"#;
        let m = parse_at(frame, datetime!(2003-10-11 22:14:16 UTC));
        assert_eq!(m.msg, "");
        assert_eq!(m.msg_id.as_deref(), Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(
            m.structured_data[0].params,
            vec![
                ("iut".into(), "3".into()),
                ("eventSource".into(), "Appl\"ication\\".into()),
                ("eventID".into(), "1011]".into()),
                ("path".into(), "c:\\temp".into()),
            ]
        );
        let m = parse_at(b"<0>1 - - - - - -", datetime!(2026-01-01 0:00 UTC));
        assert_eq!(
            (m.timestamp, m.hostname, m.app_name, m.msg.as_str()),
            (None, None, None, "")
        );
    }

    #[test]
    fn offsets_and_fractions() {
        let now = datetime!(2026-03-01 12:00 UTC);
        let m = parse_at(
            b"<13>1 2026-03-01T04:00:00.123456789-05:30 h a - - - x",
            now,
        );
        assert_eq!(
            m.timestamp,
            Some(datetime!(2026-03-01 4:00:00.123456789 -05:30))
        );
    }

    #[test]
    fn sshd_bsd_lines() {
        let now = datetime!(2026-03-01 9:00:05 UTC);
        let m = parse_at(
            b"<38>Mar  1 10:00:01 bastion sshd[812]: Accepted publickey for alice from 127.0.0.1 port 51120 ssh2: ED25519 SHA256:x\n",
            now,
        );
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!((m.facility, m.severity), (4, 6));
        assert_eq!(m.timestamp, Some(datetime!(2026-03-01 10:00:01 +01:00)));
        assert_eq!(m.hostname.as_deref(), Some("bastion"));
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        assert_eq!(m.proc_id.as_deref(), Some("812"));
        assert_eq!(
            m.msg,
            "Accepted publickey for alice from 127.0.0.1 port 51120 ssh2: ED25519 SHA256:x"
        );
        let m = parse_at(
            b"<38>Mar 01 10:00:02 bastion sshd[812]: Received disconnect from 127.0.0.1 port 51120:11: disconnected by user",
            now,
        );
        assert_eq!(
            m.msg,
            "Received disconnect from 127.0.0.1 port 51120:11: disconnected by user"
        );
        // No hostname (as sent to a local socket).
        let m = parse_at(
            b"<38>Mar 1 10:00:03 sshd[812]: Disconnected from user alice 127.0.0.1 port 51120",
            now,
        );
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        // No tag.
        let m = parse_at(b"<38>Mar  1 10:00:03 fw01 link up", now);
        assert_eq!(
            (m.hostname.as_deref(), m.app_name, m.msg.as_str()),
            (Some("fw01"), None, "link up")
        );
        let m = parse_at(b"<38>Mar  1 10:00:03 fw01 postfix/smtpd:", now);
        assert_eq!(m.app_name.as_deref(), Some("postfix/smtpd"));
        assert_eq!(m.msg, "");
    }

    #[test]
    fn rsyslog_high_precision_timestamp_in_3164() {
        let m = parse_at(
            b"<86>2026-03-01T10:00:01.123456+01:00 bastion sshd[812]: x",
            datetime!(2026-03-01 9:00 UTC),
        );
        assert_eq!(
            m.timestamp,
            Some(datetime!(2026-03-01 10:00:01.123456 +01:00))
        );
        assert_eq!(m.hostname.as_deref(), Some("bastion"));
        // Without an offset, the default zone.
        let m = parse_at(
            b"<86>2026-07-01T10:00:01 bastion sshd: x",
            datetime!(2026-07-01 8:00 UTC),
        );
        assert_eq!(m.timestamp, Some(datetime!(2026-07-01 10:00:01 +02:00)));
    }

    #[test]
    fn year_rollover() {
        // A December message received in January is from last year.
        let m = parse_at(
            b"<38>Dec 31 23:59:58 bastion sshd[1]: x",
            datetime!(2027-01-01 0:00:30 +01:00),
        );
        assert_eq!(m.timestamp, Some(datetime!(2026-12-31 23:59:58 +01:00)));
        // A January message received on December 31 (sender clock ahead) is from next year.
        let m = parse_at(
            b"<38>Jan  1 00:00:05 bastion sshd[1]: x",
            datetime!(2026-12-31 23:59:50 +01:00),
        );
        assert_eq!(m.timestamp, Some(datetime!(2027-01-01 0:00:05 +01:00)));
        // Late delivery: months old stays in the past.
        let m = parse_at(
            b"<38>Jun 15 12:00:00 bastion sshd[1]: x",
            datetime!(2027-03-01 0:00 UTC),
        );
        assert_eq!(m.timestamp, Some(datetime!(2026-06-15 12:00 +02:00)));
        // Feb 29 exists only in leap years.
        let m = parse_at(
            b"<38>Feb 29 12:00:00 bastion sshd[1]: x",
            datetime!(2028-03-01 0:00 UTC),
        );
        assert_eq!(m.timestamp, Some(datetime!(2028-02-29 12:00 +01:00)));
        assert_eq!(
            err(b"<38>Feb 29 12:00:00 bastion sshd[1]: x"),
            "syslog timestamp invalid at byte 4: no such date near the receive time"
        );
    }

    #[test]
    fn dst_edges_in_paris() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let frame = b"<38>Oct 25 02:30:00 bastion sshd[1]: x";
        let first = parse_at(frame, datetime!(2026-10-25 0:30:02 UTC));
        assert_eq!(first.timestamp, Some(datetime!(2026-10-25 2:30 +02:00)));
        let second = parse_at(frame, datetime!(2026-10-25 1:30:02 UTC));
        assert_eq!(second.timestamp, Some(datetime!(2026-10-25 2:30 +01:00)));
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let gap = parse_at(
            b"<38>Mar 29 02:30:00 bastion sshd[1]: x",
            datetime!(2026-03-29 1:30 UTC),
        );
        assert_eq!(gap.timestamp, Some(datetime!(2026-03-29 1:30 UTC)));
        assert_eq!(
            gap.timestamp.map(|t| t.offset()),
            Some(time::macros::offset!(+2))
        );
    }

    #[test]
    fn fortigate_and_headerless_messages() {
        let frame = br#"<189>date=2026-03-01 time=10:00:01 devname="FGT60F" logid="0101039424" type="event" subtype="vpn" user="jdoe" remip=203.0.113.7 action="tunnel-up""#;
        let m = parse_at(frame, datetime!(2026-03-01 9:00 UTC));
        assert_eq!((m.facility, m.severity), (23, 5));
        assert_eq!(m.timestamp, None);
        assert_eq!(m.hostname, None);
        assert!(m.msg.starts_with("date=2026-03-01 time=10:00:01 devname="));
        let m = parse_at(
            b"<189>123: *Mar  1 10:00:01: %SYS-5-CONFIG_I",
            datetime!(2026-03-01 9:00 UTC),
        );
        assert_eq!(m.msg, "123: *Mar  1 10:00:01: %SYS-5-CONFIG_I");
        let m = parse_at(b"<13>", datetime!(2026-03-01 9:00 UTC));
        assert_eq!(m.msg, "");
    }

    #[test]
    fn errors_name_field_and_offset() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "syslog pri invalid at byte 0: expected '<'"),
            (
                b"Mar  1 10:00:01 host x",
                "syslog pri invalid at byte 0: expected '<'",
            ),
            (b"<>1 -", "syslog pri invalid at byte 1: expected a digit"),
            (
                b"<1234>",
                "syslog pri invalid at byte 4: more than 3 digits",
            ),
            (b"<192>x", "syslog pri invalid at byte 1: above 191"),
            (b"<13x", "syslog pri invalid at byte 3: expected '>'"),
            (
                b"<13>1 2026-3-01T00:00:00Z h a p m -",
                "syslog timestamp invalid at byte 11: expected a 2-digit month",
            ),
            (
                b"<13>1 2026-02-30T00:00:00Z h a p m -",
                "syslog timestamp invalid at byte 6: day out of range",
            ),
            (
                b"<13>1 2026-02-01T24:00:00Z h a p m -",
                "syslog timestamp invalid at byte 6: time out of range",
            ),
            (
                b"<13>1 2026-02-01T23:00:60Z h a p m -",
                "syslog timestamp invalid at byte 6: time out of range",
            ),
            (
                b"<13>1 2026-02-01T23:00:00 h a p m -",
                "syslog timestamp invalid at byte 25: expected 'Z' or an offset",
            ),
            (
                b"<13>1 2026-02-01T23:00:00+1:00 h a p m -",
                "syslog timestamp invalid at byte 26: expected 2-digit offset hours",
            ),
            (
                b"<13>1 - h\xC3\xA9 a p m -",
                "syslog hostname invalid at byte 9: not printable US-ASCII",
            ),
            (
                b"<13>1 -  a p m -",
                "syslog hostname invalid at byte 8: empty",
            ),
            (
                b"<13>1 - h a p",
                "syslog procid invalid at byte 13: message ends inside the header",
            ),
            (
                b"<13>1 - h a p m",
                "syslog msgid invalid at byte 15: message ends inside the header",
            ),
            (
                b"<13>1 - h a p m ",
                "syslog structured-data invalid at byte 16: message ends inside the header",
            ),
            (
                b"<13>1 - h a p m x",
                "syslog structured-data invalid at byte 16: expected '[' or '-'",
            ),
            (
                b"<13>1 - h a p m [id",
                "syslog structured-data invalid at byte 19: expected ']' or a space",
            ),
            (
                b"<13>1 - h a p m [id a]",
                "syslog structured-data invalid at byte 21: expected '='",
            ),
            (
                b"<13>1 - h a p m [id a=b]",
                "syslog structured-data invalid at byte 22: expected '\"'",
            ),
            (
                b"<13>1 - h a p m [id a=\"b]",
                "syslog structured-data invalid at byte 22: unterminated param value",
            ),
            (
                b"<13>1 - h a p m [id a=\"b\"]x",
                "syslog structured-data invalid at byte 26: expected a space or the end after structured data",
            ),
            (
                b"<13>1 - h a p m -x",
                "syslog structured-data invalid at byte 17: expected a space or the end after structured data",
            ),
            (
                b"<13>1 - h a p m [ ]",
                "syslog structured-data invalid at byte 17: expected a name",
            ),
        ];
        for (frame, message) in cases {
            assert_eq!(err(frame), *message, "{:?}", String::from_utf8_lossy(frame));
        }
        let long_app = format!("<13>1 - h {} - - -", "a".repeat(49));
        assert_eq!(
            err(long_app.as_bytes()),
            "syslog app-name invalid at byte 58: too long"
        );
    }

    #[test]
    fn borrowed_parse_copies_nothing_from_a_clean_frame() {
        let frame = br#"<86>1 2026-03-01T10:00:01+01:00 bastion sshd 812 - [timeQuality tzKnown="1"][vigie@32473 tenant="CHU-X" note="a\"b\\c\]d\e"] Accepted"#;
        let m = parse_ref(frame, &ctx(datetime!(2026-03-01 9:00:02 UTC))).unwrap();
        assert!(matches!(m.msg, Cow::Borrowed("Accepted")));
        assert!(matches!(m.hostname, Some(Cow::Borrowed("bastion"))));
        assert!(matches!(m.app_name, Some(Cow::Borrowed("sshd"))));
        let elements: Vec<_> = m.structured_data.elements().collect();
        assert_eq!(
            elements.iter().map(|e| e.id).collect::<Vec<_>>(),
            ["timeQuality", "vigie@32473"]
        );
        let params: Vec<_> = elements[1].params().collect();
        assert!(matches!(params[0], ("tenant", Cow::Borrowed("CHU-X"))));
        // Escapes undone (an unknown escape is kept): the one value that is copied.
        assert_eq!(params[1], ("note", Cow::Owned("a\"b\\c]d\\e".to_owned())));
        // The owned message is the borrowed one, copied.
        let owned = SyslogMessage::from(m.clone());
        assert_eq!(
            owned,
            parse(frame, &ctx(datetime!(2026-03-01 9:00:02 UTC))).unwrap()
        );
        assert_eq!(owned.structured_data[1].params[1].1, "a\"b\\c]d\\e");
        // Invalid UTF-8 is replaced, in MSG and in values.
        let m = parse_ref(
            b"<13>1 - h a - - [x@1 v=\"\xff\"] caf\xe9",
            &ctx(datetime!(2026-03-01 9:00:02 UTC)),
        )
        .unwrap();
        assert_eq!(m.msg, "caf\u{fffd}");
        let sd = m.structured_data.elements().next().unwrap();
        assert_eq!(sd.params().next().unwrap().1, "\u{fffd}");
        // A frame with invalid UTF-8 somewhere still lends its valid fields.
        let m = parse_ref(
            b"<13>1 - h a - - [x@1 v=\"ok\"] caf\xe9",
            &ctx(datetime!(2026-03-01 9:00:02 UTC)),
        )
        .unwrap();
        assert!(matches!(m.hostname, Some(Cow::Borrowed("h"))));
        assert_eq!(m.msg, "caf\u{fffd}");
        let sd = m.structured_data.elements().next().unwrap();
        assert!(matches!(
            sd.params().next().unwrap(),
            ("v", Cow::Borrowed("ok"))
        ));
        assert!(
            parse_ref(b"<13>1 - h a - - -", &ctx(datetime!(2026-03-01 9:00 UTC)))
                .unwrap()
                .structured_data
                .is_empty()
        );
    }

    #[test]
    fn elements_read_from_the_parser_marks_match_a_fresh_scan() {
        let mut frame = String::from("<13>1 - h a - - ");
        for i in 0..MARKED_ELEMENTS + 2 {
            frame.push_str(&format!(r#"[e{i}@1 a="x\]y" b="{i}\"]" c=""]"#));
        }
        frame.push_str(" msg");
        let m = parse_ref(frame.as_bytes(), &ctx(datetime!(2026-03-01 9:00 UTC))).unwrap();
        let read = |it: SdElements<'_>| -> Vec<(String, Vec<(String, String)>)> {
            it.map(|e| {
                let params = e.params().map(|(n, v)| (n.to_owned(), v.into_owned()));
                (e.id.to_owned(), params.collect())
            })
            .collect()
        };
        let marked = read(m.structured_data.elements());
        let scanned = read(SdElements {
            marks: [ElementMark::default(); MARKED_ELEMENTS],
            ..m.structured_data.elements()
        });
        assert_eq!(marked.len(), MARKED_ELEMENTS + 2);
        assert_eq!(marked, scanned);
        assert_eq!(marked[5].0, "e5@1");
        assert_eq!(
            marked[5].1,
            [("a", "x]y"), ("b", "5\"]"), ("c", "")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(m.msg, "msg");
    }

    #[test]
    fn sd_name_length_limit() {
        let name = "n".repeat(32);
        let frame = format!("<13>1 - h a - - [{name} {name}=\"v\"]");
        let m = parse_at(frame.as_bytes(), datetime!(2026-03-01 9:00 UTC));
        assert_eq!(m.structured_data[0].params[0].0, name);
        let long = format!("<13>1 - h a - - [{name}x]");
        assert_eq!(
            err(long.as_bytes()),
            "syslog structured-data invalid at byte 49: name too long"
        );
    }

    #[test]
    fn print_then_parse() {
        let now = datetime!(2026-03-01 9:00:05 UTC);
        for frame in [
            &b"<86>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - -  Accepted\n"[..],
            b"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [a@1 x=\"\\\"\\\\\\]\"][b y=\"\"]   lead",
            b"<38>Mar  1 10:00:01 bastion sshd[812]: Accepted",
            b"<13>1 - - - - - - \xEF\xBB\xBF\xEF\xBB\xBFbom",
        ] {
            let m = parse(frame, &ctx(now)).unwrap();
            let mut out = Vec::new();
            m.write_rfc5424(&mut out).unwrap();
            let again = parse(&out, &ctx(now)).unwrap();
            assert_eq!(
                again,
                SyslogMessage {
                    format: Format::Rfc5424,
                    ..m.clone()
                },
                "{}",
                String::from_utf8_lossy(&out)
            );
            assert_eq!(
                again.timestamp.map(|t| t.offset()),
                m.timestamp.map(|t| t.offset())
            );
        }
        let mut out = Vec::new();
        let m = parse_at(b"<13>1 2026-03-01T10:00:01.5+01:00 h a p m - x", now);
        m.write_rfc5424(&mut out).unwrap();
        assert_eq!(out, b"<13>1 2026-03-01T10:00:01.5+01:00 h a p m - x");
        let bad = SyslogMessage {
            hostname: Some("a b".into()),
            ..m
        };
        assert_eq!(
            bad.write_rfc5424(&mut Vec::new()).unwrap_err().to_string(),
            "cannot print syslog hostname as rfc 5424: empty, '-', too long or not printable US-ASCII"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&frame, &ctx(datetime!(2026-03-01 9:00 UTC)));
        }

        #[test]
        fn random_headers_never_panic_and_reprint(
            pri in 0u16..200,
            body in "(1 )?([0-9T:.+Z-]{0,30}|[A-Z][a-z]{2}  ?[0-9]{1,2} [0-9:.]{0,12}) [ -~]{0,60}",
        ) {
            let frame = format!("<{pri}>{body}");
            let ctx = ctx(datetime!(2026-03-01 9:00 UTC));
            if let Ok(m) = parse(frame.as_bytes(), &ctx) {
                let mut out = Vec::new();
                if m.write_rfc5424(&mut out).is_ok() {
                    let again = parse(&out, &ctx).unwrap();
                    prop_assert_eq!(again, SyslogMessage { format: Format::Rfc5424, ..m });
                }
            }
        }
    }
}
