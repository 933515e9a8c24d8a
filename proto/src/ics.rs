//! Importing maintenance windows from an iCalendar file (RFC 5545).
//!
//! RSSIs often have their maintenance windows in a calendar (Outlook, Thunderbird,
//! a ticketing tool's export). [`parse`] reads such a file and returns one [`IcsEvent`]
//! per `VEVENT`, whose [`Schedule`] the caller files as a window declaration.
//!
//! ```text
//! BEGIN:VCALENDAR                          ← one or more calendars; other lines outside
//! BEGIN:VTIMEZONE … END:VTIMEZONE          ← skipped: zones come from the bundled tzdb
//! BEGIN:VEVENT                             ← IcsEvent::line is this line's number
//! UID:maint-42@chu.example
//! SUMMARY:Mise à jour PACS
//! DTSTART;TZID=Europe/Paris:20260106T220000
//! DTEND;TZID=Europe/Paris:20260107T020000  ← or DURATION:PT4H
//! RRULE:FREQ=WEEKLY;BYDAY=TU               ← absent: a one-off window
//! BEGIN:VALARM … END:VALARM                ← nested components are skipped
//! END:VEVENT
//! END:VCALENDAR
//! ```
//!
//! - Lines end in CRLF or LF; a line starting with a space or a tab continues the previous
//!   one (unfolding); blank lines are ignored. Property and parameter names are
//!   case-insensitive; text values are unescaped (`\n`, `\,`, `\;`, `\\`).
//! - `DTSTART`/`DTEND` are `…Z` (UTC), `;TZID=zone:…` (an IANA name, or one of the few
//!   Windows names Outlook writes, such as `Romance Standard Time`), floating (no zone:
//!   the caller's default zone), or `;VALUE=DATE:YYYYMMDD` (whole days in the default
//!   zone, `DTEND` exclusive, one day when absent). A date-time `DTSTART` needs `DTEND`
//!   or `DURATION`.
//! - `DURATION`: weeks and days are nominal (wall-clock days in the start's zone), hours,
//!   minutes and seconds exact (RFC 5545 §3.3.6).
//! - A one-off event becomes [`Schedule::OneOff`] with the instants carrying their zone's
//!   offset. An event with an `RRULE` becomes [`Schedule::Recurring`] in the start's zone
//!   (`UTC` for a UTC start), with the wall-clock length from start to end, validated by
//!   [`Recurrence::new`] (see [`crate::recurrence`] for its semantics).
//! - Events with `STATUS:CANCELLED` are skipped: a cancelled meeting grants no window.
//!   `RDATE`, `EXDATE`, `EXRULE` and `RECURRENCE-ID`, and `METHOD:CANCEL`, are refused
//!   with an error rather than ignored, as ignoring them would open windows the calendar
//!   does not. Other unknown properties and components are ignored.
//! - Errors name the line (the first physical line of the property) and the property.
//!   No input panics; the text is capped at [`MAX_ICS_BYTES`].

use jiff::tz::TimeZone;

use crate::model::Schedule;
use crate::recurrence::{self, Civil, Recurrence, RecurrenceError};

/// The largest calendar accepted, in bytes.
pub const MAX_ICS_BYTES: usize = 8 << 20;

/// The deepest nesting of components accepted.
pub const MAX_NESTING: usize = 16;

/// Longest excerpt of a value quoted in an error.
const QUOTE_CHARS: usize = 40;

/// A maintenance window read from a `VEVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsEvent {
    /// The event's `UID`.
    pub uid: String,
    /// `SUMMARY`, unescaped.
    pub summary: Option<String>,
    /// `DESCRIPTION`, unescaped.
    pub description: Option<String>,
    /// When the window is open.
    pub schedule: Schedule,
    /// The line of `BEGIN:VEVENT` (1-based).
    pub line: usize,
}

/// Why a calendar could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    /// The text is longer than [`MAX_ICS_BYTES`].
    #[error("calendar of {len} bytes exceeds the cap of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The caller's default zone is unknown.
    #[error("unknown default time zone {zone:?}")]
    UnknownDefaultZone {
        /// The name given.
        zone: String,
    },
    /// The text holds no `VCALENDAR`.
    #[error("no VCALENDAR in the text")]
    NoCalendar,
    /// A line that is not `NAME[;PARAM=VALUE…]:VALUE`.
    #[error("line {line}: malformed content line: {reason}")]
    Syntax {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Components badly nested or not closed.
    #[error("line {line}: {reason}")]
    Structure {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `VEVENT` without a property it needs.
    #[error("line {line}: VEVENT has no {property}")]
    Missing {
        /// The line of `BEGIN:VEVENT`.
        line: usize,
        /// The property missing.
        property: &'static str,
    },
    /// A property whose value or parameters are invalid or unsupported.
    #[error("line {line}: {property}: {reason}")]
    Property {
        /// The line.
        line: usize,
        /// The property.
        property: String,
        /// What is wrong.
        reason: String,
    },
    /// The recurring window the event describes was refused.
    #[error("line {line}: {property}: {error}")]
    Recurrence {
        /// The line of the property at fault.
        line: usize,
        /// The property at fault (`RRULE`, `DTEND`, `DURATION`…).
        property: &'static str,
        /// Why.
        error: RecurrenceError,
    },
}

/// Reads the `VEVENT`s of an iCalendar text as maintenance windows.
///
/// `default_zone` is the IANA zone of floating date-times and of dates (usually
/// [`crate::calendar::PARIS`]).
///
/// # Errors
///
/// [`IcsError`] on the first problem met, naming its line and property: a malformed line,
/// components badly nested, an event without `UID`, `DTSTART` or end, an invalid date,
/// duration, zone or rule, an unsupported property that would change the window.
///
/// # Examples
///
/// ```
/// use proto::ics::parse;
/// use proto::model::Schedule;
///
/// let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:w1\r\nSUMMARY:Mise à jour\\, PACS\r\n\
///             DTSTART;TZID=Europe/Paris:20260106T220000\r\nDURATION:PT4H\r\n\
///             RRULE:FREQ=WEEKLY;BYDAY=TU\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
/// let events = parse(text, "Europe/Paris")?;
/// assert_eq!(events[0].summary.as_deref(), Some("Mise à jour, PACS"));
/// assert_eq!(
///     events[0].schedule,
///     Schedule::Recurring {
///         zone: "Europe/Paris".into(),
///         first_start_local: "2026-01-06T22:00:00".into(),
///         duration_seconds: 4 * 3600,
///         rrule: "FREQ=WEEKLY;BYDAY=TU".into(),
///     }
/// );
/// let err = parse(&text.replace("20260106T", "20261306T"), "Europe/Paris").unwrap_err();
/// assert_eq!(err.to_string(), "line 5: DTSTART: invalid date-time \"20261306T220000\"");
/// # Ok::<(), proto::ics::IcsError>(())
/// ```
pub fn parse(text: &str, default_zone: &str) -> Result<Vec<IcsEvent>, IcsError> {
    if text.len() > MAX_ICS_BYTES {
        return Err(IcsError::TooLarge {
            len: text.len(),
            max: MAX_ICS_BYTES,
        });
    }
    let default = Zone::lookup(default_zone).ok_or_else(|| IcsError::UnknownDefaultZone {
        zone: default_zone.to_owned(),
    })?;
    let mut events = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut event: Option<EventProps> = None;
    let mut seen_calendar = false;
    for logical in unfold(text)? {
        let prop = parse_content_line(logical.line, &logical.text)?;
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if stack.is_empty() && name != "VCALENDAR" {
                    return Err(IcsError::Structure {
                        line: prop.line,
                        reason: format!("expected BEGIN:VCALENDAR, found BEGIN:{}", quote(&name)),
                    });
                }
                if stack.len() >= MAX_NESTING {
                    return Err(IcsError::Structure {
                        line: prop.line,
                        reason: format!("components nested deeper than {MAX_NESTING}"),
                    });
                }
                if name == "VEVENT" && stack.len() == 1 {
                    event = Some(EventProps::new(prop.line));
                }
                seen_calendar = true;
                stack.push((name, prop.line));
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == name => {}
                    Some((open, open_line)) => {
                        return Err(IcsError::Structure {
                            line: prop.line,
                            reason: format!(
                                "END:{} does not close BEGIN:{open} of line {open_line}",
                                quote(&name)
                            ),
                        });
                    }
                    None => {
                        return Err(IcsError::Structure {
                            line: prop.line,
                            reason: format!("END:{} without BEGIN", quote(&name)),
                        });
                    }
                }
                if name == "VEVENT" && stack.len() == 1 {
                    let finished = event.take().map(|props| props.finish(&default));
                    events.extend(finished.transpose()?.flatten());
                }
            }
            _ => match stack.len() {
                0 => {
                    return Err(IcsError::Structure {
                        line: prop.line,
                        reason: format!("{} outside BEGIN:VCALENDAR", quote(&prop.name)),
                    });
                }
                1 if prop.name == "METHOD" && prop.value.trim().eq_ignore_ascii_case("CANCEL") => {
                    return Err(prop.error("a cancellation carries no window to import"));
                }
                2 => {
                    if let Some(props) = event.as_mut() {
                        props.record(prop)?;
                    }
                }
                _ => {}
            },
        }
    }
    if let Some((name, line)) = stack.pop() {
        return Err(IcsError::Structure {
            line,
            reason: format!("BEGIN:{name} is never closed"),
        });
    }
    if !seen_calendar {
        return Err(IcsError::NoCalendar);
    }
    Ok(events)
}

// ---------------------------------------------------------------------------------------
// Lines.

/// A logical (unfolded) line and the number of its first physical line.
struct Logical {
    line: usize,
    text: String,
}

fn unfold(text: &str) -> Result<Vec<Logical>, IcsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<Logical> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            match out.last_mut() {
                Some(last) => last.text.push_str(rest),
                None => {
                    return Err(IcsError::Syntax {
                        line,
                        reason: "continuation line with no line before it",
                    });
                }
            }
        } else if !raw.is_empty() {
            out.push(Logical {
                line,
                text: raw.to_owned(),
            });
        }
    }
    Ok(out)
}

/// A property: `NAME;PARAM=VALUE,VALUE…:VALUE`.
#[derive(Debug, Clone)]
struct Prop {
    line: usize,
    name: String,
    params: Vec<(String, Vec<String>)>,
    value: String,
}

impl Prop {
    /// The first value of a parameter.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }

    fn error(&self, reason: impl Into<String>) -> IcsError {
        IcsError::Property {
            line: self.line,
            property: self.name.clone(),
            reason: reason.into(),
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn parse_content_line(line: usize, text: &str) -> Result<Prop, IcsError> {
    let syntax = |reason| IcsError::Syntax { line, reason };
    let bytes = text.as_bytes();
    // Every index below sits on an ASCII byte, so on a character boundary.
    let name_end = bytes
        .iter()
        .position(|&b| !is_name_byte(b))
        .unwrap_or(bytes.len());
    if name_end == 0 {
        return Err(syntax("expected a property name"));
    }
    let name = text
        .get(..name_end)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut params = Vec::new();
    let mut i = name_end;
    loop {
        match bytes.get(i) {
            Some(b':') => break,
            Some(b';') => {
                i += 1;
                let start = i;
                while bytes.get(i).is_some_and(|&b| is_name_byte(b)) {
                    i += 1;
                }
                if i == start || bytes.get(i) != Some(&b'=') {
                    return Err(syntax("expected a parameter NAME=VALUE"));
                }
                let param = text.get(start..i).unwrap_or_default().to_ascii_uppercase();
                i += 1;
                let mut values = Vec::new();
                loop {
                    if bytes.get(i) == Some(&b'"') {
                        let close = bytes
                            .get(i + 1..)
                            .and_then(|rest| rest.iter().position(|&b| b == b'"'))
                            .ok_or_else(|| syntax("unterminated quoted parameter value"))?;
                        values.push(
                            text.get(i + 1..i + 1 + close)
                                .unwrap_or_default()
                                .to_owned(),
                        );
                        i += close + 2;
                    } else {
                        let len = bytes
                            .get(i..)
                            .and_then(|rest| {
                                rest.iter().position(|&b| matches!(b, b',' | b';' | b':'))
                            })
                            .unwrap_or(bytes.len().saturating_sub(i));
                        values.push(text.get(i..i + len).unwrap_or_default().to_owned());
                        i += len;
                    }
                    if bytes.get(i) == Some(&b',') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                params.push((param, values));
            }
            _ => {
                return Err(syntax(
                    "expected ':' after the property name and parameters",
                ));
            }
        }
    }
    let value = text.get(i + 1..).unwrap_or_default().to_owned();
    Ok(Prop {
        line,
        name,
        params,
        value,
    })
}

/// Unescapes a TEXT value (RFC 5545 §3.3.11).
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other @ ('\\' | ';' | ',')) => out.push(other),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A value quoted for an error, cut to [`QUOTE_CHARS`] characters.
fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

// ---------------------------------------------------------------------------------------
// Events.

/// A zone: its canonical name and rules.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    tz: TimeZone,
}

/// Windows zone names Outlook writes as TZID, and their IANA zones.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Romance Standard Time", "Europe/Paris"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("Eastern Standard Time", "America/New_York"),
    ("Central Standard Time", "America/Chicago"),
    ("Pacific Standard Time", "America/Los_Angeles"),
];

impl Zone {
    fn lookup(name: &str) -> Option<Zone> {
        let name = name.trim();
        let iana = WINDOWS_ZONES
            .iter()
            .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
            .map_or(name, |(_, iana)| *iana);
        let tz = recurrence::time_zone(iana)?;
        let name = tz.iana_name().unwrap_or(iana).to_owned();
        Some(Zone { name, tz })
    }

    fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }
}

/// A `DTSTART` or `DTEND`: a local date-time in a zone, or a whole date.
struct Stamp {
    civil: Civil,
    zone: Zone,
    is_date: bool,
}

fn parse_stamp(prop: &Prop, default: &Zone) -> Result<Stamp, IcsError> {
    let value = prop.value.trim();
    let is_date = match prop.param("VALUE").map(str::to_ascii_uppercase).as_deref() {
        None => value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()),
        Some("DATE") => true,
        Some("DATE-TIME") => false,
        Some(other) => return Err(prop.error(format!("unsupported VALUE={}", quote(other)))),
    };
    if is_date {
        let day = recurrence::parse_basic_date(value)
            .ok_or_else(|| prop.error(format!("invalid date \"{}\"", quote(value))))?;
        return Ok(Stamp {
            civil: Civil { day, second: 0 },
            zone: default.clone(),
            is_date: true,
        });
    }
    let (civil, utc) = recurrence::parse_basic_date_time(value)
        .ok_or_else(|| prop.error(format!("invalid date-time \"{}\"", quote(value))))?;
    let zone = match (prop.param("TZID"), utc) {
        (Some(_), true) => return Err(prop.error("TZID given with a UTC (…Z) time")),
        (Some(tzid), false) => Zone::lookup(tzid)
            .ok_or_else(|| prop.error(format!("unknown time zone \"{}\"", quote(tzid))))?,
        (None, true) => Zone::utc(),
        (None, false) => default.clone(),
    };
    Ok(Stamp {
        civil,
        zone,
        is_date: false,
    })
}

/// A `DURATION`: nominal days (weeks included) and exact seconds.
fn parse_duration(prop: &Prop) -> Result<(i64, i64), IcsError> {
    let value = prop.value.trim();
    let invalid = || prop.error(format!("invalid duration \"{}\"", quote(value)));
    let (negative, rest) = match value.as_bytes().first() {
        Some(b'-') => (true, value.get(1..).unwrap_or_default()),
        Some(b'+') => (false, value.get(1..).unwrap_or_default()),
        _ => (false, value),
    };
    let rest = rest
        .strip_prefix(['P', 'p'])
        .ok_or_else(invalid)?
        .to_ascii_uppercase();
    let (mut days, mut seconds) = (0i64, 0i64);
    let mut in_time = false;
    let mut number: Option<i64> = None;
    // Components come in the order W, D, T, H, M, S, each at most once.
    let mut last_rank = 0;
    for c in rest.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(digit)))
                    .filter(|n| *n <= 10_000_000)
                    .ok_or_else(invalid)?,
            );
            continue;
        }
        if c == 'T' && number.is_none() && !in_time {
            in_time = true;
            last_rank = 3;
            continue;
        }
        let n = number.take().ok_or_else(invalid)?;
        let (rank, days_per, seconds_per) = match (in_time, c) {
            (false, 'W') => (1, 7, 0),
            (false, 'D') => (2, 1, 0),
            (true, 'H') => (4, 0, 3600),
            (true, 'M') => (5, 0, 60),
            (true, 'S') => (6, 0, 1),
            _ => return Err(invalid()),
        };
        if rank <= last_rank {
            return Err(invalid());
        }
        last_rank = rank;
        days += n * days_per;
        seconds += n * seconds_per;
    }
    // Something after P, and something after T.
    if number.is_some() || last_rank == 0 || last_rank == 3 {
        return Err(invalid());
    }
    if negative && (days, seconds) != (0, 0) {
        return Err(prop.error("a window's duration cannot be negative"));
    }
    Ok((days, seconds))
}

/// The properties of a `VEVENT` that matter, as met.
struct EventProps {
    begin_line: usize,
    uid: Option<Prop>,
    summary: Option<Prop>,
    description: Option<Prop>,
    dtstart: Option<Prop>,
    dtend: Option<Prop>,
    duration: Option<Prop>,
    rrule: Option<Prop>,
    status: Option<Prop>,
}

/// How the end of an event was given.
enum End<'a> {
    At(&'a Prop, Stamp),
    After(&'a Prop, i64, i64),
    OneDay,
}

impl EventProps {
    fn new(begin_line: usize) -> EventProps {
        EventProps {
            begin_line,
            uid: None,
            summary: None,
            description: None,
            dtstart: None,
            dtend: None,
            duration: None,
            rrule: None,
            status: None,
        }
    }

    fn record(&mut self, prop: Prop) -> Result<(), IcsError> {
        let slot = match prop.name.as_str() {
            "UID" => &mut self.uid,
            "SUMMARY" => &mut self.summary,
            "DESCRIPTION" => &mut self.description,
            "DTSTART" => &mut self.dtstart,
            "DTEND" => &mut self.dtend,
            "DURATION" => &mut self.duration,
            "RRULE" => &mut self.rrule,
            "STATUS" => &mut self.status,
            "RDATE" => {
                return Err(prop.error("not supported: import each extra date as its own event"));
            }
            "EXDATE" | "EXRULE" => {
                return Err(prop.error("not supported: a window cannot exclude occurrences"));
            }
            "RECURRENCE-ID" => {
                return Err(prop.error("not supported: a window cannot modify one occurrence"));
            }
            _ => return Ok(()),
        };
        if let Some(first) = slot {
            return Err(prop.error(format!("given twice (first on line {})", first.line)));
        }
        *slot = Some(prop);
        Ok(())
    }

    /// The event as a window; `None` when it is cancelled.
    fn finish(self, default: &Zone) -> Result<Option<IcsEvent>, IcsError> {
        let missing = |property| IcsError::Missing {
            line: self.begin_line,
            property,
        };
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.value.trim().eq_ignore_ascii_case("CANCELLED"))
        {
            return Ok(None);
        }
        let uid = self.uid.as_ref().ok_or_else(|| missing("UID"))?;
        let uid = unescape(uid.value.trim());
        if uid.is_empty() {
            return Err(missing("UID"));
        }
        let dtstart = self.dtstart.as_ref().ok_or_else(|| missing("DTSTART"))?;
        let start = parse_stamp(dtstart, default)?;
        let end = match (&self.dtend, &self.duration) {
            (Some(_), Some(duration)) => {
                return Err(duration.error("cannot be given with DTEND"));
            }
            (Some(dtend), None) => {
                let stamp = parse_stamp(dtend, default)?;
                if stamp.is_date != start.is_date {
                    return Err(dtend.error(if start.is_date {
                        "must be a DATE, like DTSTART"
                    } else {
                        "must be a DATE-TIME, like DTSTART"
                    }));
                }
                End::At(dtend, stamp)
            }
            (None, Some(duration)) => {
                let (days, seconds) = parse_duration(duration)?;
                End::After(duration, days, seconds)
            }
            (None, None) if start.is_date => End::OneDay,
            (None, None) => return Err(missing("DTEND or DURATION")),
        };
        let schedule = match &self.rrule {
            None => one_off(dtstart, &start, &end)?,
            Some(rrule) => recurring(dtstart, &start, &end, rrule)?,
        };
        Ok(Some(IcsEvent {
            uid,
            summary: self.summary.as_ref().map(|p| unescape(&p.value)),
            description: self.description.as_ref().map(|p| unescape(&p.value)),
            schedule,
            line: self.begin_line,
        }))
    }
}

fn instant(prop: &Prop, zone: &Zone, civil: Civil) -> Result<jiff::Timestamp, IcsError> {
    recurrence::resolve(&zone.tz, civil).ok_or_else(|| prop.error("date-time out of range"))
}

fn one_off(dtstart: &Prop, start: &Stamp, end: &End<'_>) -> Result<Schedule, IcsError> {
    let starts = instant(dtstart, &start.zone, start.civil)?;
    let (end_prop, ends) = match end {
        End::At(prop, stamp) => (*prop, instant(prop, &stamp.zone, stamp.civil)?),
        End::After(prop, days, seconds) => {
            let civil = Civil {
                day: start.civil.day + days,
                second: start.civil.second,
            };
            let ends = instant(prop, &start.zone, civil)?
                .checked_add(jiff::SignedDuration::from_secs(*seconds))
                .map_err(|_| prop.error("date-time out of range"))?;
            (*prop, ends)
        }
        End::OneDay => {
            let civil = Civil {
                day: start.civil.day + 1,
                second: 0,
            };
            (dtstart, instant(dtstart, &start.zone, civil)?)
        }
    };
    if ends <= starts {
        return Err(end_prop.error("the window does not end after DTSTART"));
    }
    let convert = |prop: &Prop, ts| {
        recurrence::to_offset_date_time(ts, &start.zone.tz)
            .ok_or_else(|| prop.error("date-time out of range"))
    };
    Ok(Schedule::OneOff {
        starts_at: convert(dtstart, starts)?,
        ends_at: convert(end_prop, ends)?,
    })
}

fn recurring(
    dtstart: &Prop,
    start: &Stamp,
    end: &End<'_>,
    rrule: &Prop,
) -> Result<Schedule, IcsError> {
    let (end_prop, wall_seconds) = match end {
        End::At(prop, stamp) => {
            // The end on the wall clock of the start's zone.
            let local_end = if stamp.zone.name == start.zone.name {
                stamp.civil
            } else {
                let ts = instant(prop, &stamp.zone, stamp.civil)?;
                recurrence::local_civil(&start.zone.tz, ts)
            };
            (*prop, local_end.seconds_since(start.civil))
        }
        End::After(prop, days, seconds) => {
            (*prop, days.saturating_mul(86_400).saturating_add(*seconds))
        }
        End::OneDay => (dtstart, 86_400),
    };
    if wall_seconds <= 0 {
        return Err(end_prop.error("the window does not end after DTSTART"));
    }
    let max = recurrence::MAX_DURATION_SECONDS;
    let duration_seconds = u32::try_from(wall_seconds)
        .ok()
        .filter(|s| *s <= max)
        .ok_or_else(|| {
            end_prop.error(format!(
                "window duration of {wall_seconds} s exceeds the maximum of {max} s"
            ))
        })?;
    let first_start_local = start.civil.format();
    let rule = rrule.value.trim();
    match Recurrence::new(&start.zone.name, &first_start_local, duration_seconds, rule) {
        Ok(_) => Ok(Schedule::Recurring {
            zone: start.zone.name.clone(),
            first_start_local,
            duration_seconds,
            rrule: rule.to_owned(),
        }),
        Err(error) => {
            let (line, property) = match error {
                RecurrenceError::ZeroDuration | RecurrenceError::DurationTooLong { .. } => {
                    (end_prop.line, static_name(&end_prop.name))
                }
                RecurrenceError::UnknownZone { .. }
                | RecurrenceError::InvalidLocalDateTime { .. } => (dtstart.line, "DTSTART"),
                _ => (rrule.line, "RRULE"),
            };
            Err(IcsError::Recurrence {
                line,
                property,
                error,
            })
        }
    }
}

fn static_name(name: &str) -> &'static str {
    match name {
        "DTEND" => "DTEND",
        "DURATION" => "DURATION",
        _ => "DTSTART",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    const PARIS: &str = "Europe/Paris";

    fn calendar(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n")
    }

    fn event(props: &str) -> String {
        calendar(&format!("BEGIN:VEVENT\r\n{props}END:VEVENT\r\n"))
    }

    fn ok(text: &str) -> Vec<IcsEvent> {
        match parse(text, PARIS) {
            Ok(events) => events,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    fn err(text: &str) -> IcsError {
        match parse(text, PARIS) {
            Ok(events) => panic!("accepted {events:?}\n{text}"),
            Err(e) => e,
        }
    }

    const SAMPLE: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r
METHOD:PUBLISH\r
BEGIN:VTIMEZONE\r
TZID:Romance Standard Time\r
BEGIN:STANDARD\r
DTSTART:16011028T030000\r
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:maint-42@chu.example\r
SUMMARY;LANGUAGE=fr:Mise à jour PACS\\, serveur \r
 d'images\r
DESCRIPTION:Ticket INC-1234\\nIntervenant : Dupont\r
DTSTART;TZID=\"Romance Standard Time\":20260106T220000\r
DTEND;TZID=Romance Standard Time:20260107T020000\r
RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20261229T210000Z\r
X-MICROSOFT-CDO-BUSYSTATUS:BUSY\r
BEGIN:VALARM\r
TRIGGER:-PT15M\r
DTSTART:garbage that is not ours\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:once-1\r
DTSTART:20260314T080000Z\r
DURATION:PT2H30M\r
END:VEVENT\r
END:VCALENDAR\r
";

    #[test]
    fn outlook_like_calendar() {
        let events = ok(SAMPLE);
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.uid, "maint-42@chu.example");
        assert_eq!(
            e.summary.as_deref(),
            Some("Mise à jour PACS, serveur d'images")
        );
        assert_eq!(
            e.description.as_deref(),
            Some("Ticket INC-1234\nIntervenant : Dupont")
        );
        assert_eq!(e.line, 14);
        assert_eq!(
            e.schedule,
            Schedule::Recurring {
                zone: "Europe/Paris".into(),
                first_start_local: "2026-01-06T22:00:00".into(),
                duration_seconds: 4 * 3600,
                rrule: "FREQ=WEEKLY;BYDAY=TU;UNTIL=20261229T210000Z".into(),
            }
        );
        assert_eq!(events[1].line, 28);
        assert_eq!(
            events[1].schedule,
            Schedule::OneOff {
                starts_at: datetime!(2026-03-14 8:00 UTC),
                ends_at: datetime!(2026-03-14 10:30 UTC),
            }
        );
        // The same with LF only.
        assert_eq!(ok(&SAMPLE.replace("\r\n", "\n")), events);
    }

    #[test]
    fn start_forms() {
        // TZID: offset of the zone.
        let events = ok(&event(
            "UID:a\r\nDTSTART;TZID=Europe/Paris:20260701T100000\r\nDTEND;TZID=Europe/Paris:20260701T120000\r\n",
        ));
        let Schedule::OneOff { starts_at, ends_at } = events[0].schedule else {
            panic!("one-off expected");
        };
        assert_eq!(
            (starts_at, ends_at),
            (
                datetime!(2026-07-01 8:00 UTC),
                datetime!(2026-07-01 10:00 UTC)
            )
        );
        assert_eq!(starts_at.offset().whole_hours(), 2);
        // Floating: the default zone.
        let floating = ok(&event(
            "UID:a\r\nDTSTART:20260701T100000\r\nDTEND:20260701T120000\r\n",
        ));
        assert_eq!(floating[0].schedule, events[0].schedule);
        let Ok(ny) = parse(
            &event("UID:a\r\nDTSTART:20260701T100000\r\nDURATION:PT1H\r\n"),
            "America/New_York",
        ) else {
            panic!("New York is bundled");
        };
        assert!(
            matches!(ny[0].schedule, Schedule::OneOff { starts_at, .. } if starts_at == datetime!(2026-07-01 14:00 UTC))
        );
        // Dates: whole days in the default zone, DTEND exclusive or one day.
        let day = ok(&event("UID:a\r\nDTSTART;VALUE=DATE:20260714\r\n"));
        assert_eq!(
            day[0].schedule,
            Schedule::OneOff {
                starts_at: datetime!(2026-07-13 22:00 UTC),
                ends_at: datetime!(2026-07-14 22:00 UTC)
            }
        );
        let days = ok(&event(
            "UID:a\r\nDTSTART;VALUE=DATE:20260714\r\nDTEND;VALUE=DATE:20260716\r\n",
        ));
        assert!(
            matches!(days[0].schedule, Schedule::OneOff { ends_at, .. } if ends_at == datetime!(2026-07-15 22:00 UTC))
        );
        // Nominal days in DURATION follow the wall clock across the change of 29 March.
        let d = ok(&event(
            "UID:a\r\nDTSTART;TZID=Europe/Paris:20260328T120000\r\nDURATION:P1DT1H\r\n",
        ));
        assert!(
            matches!(d[0].schedule, Schedule::OneOff { ends_at, .. } if ends_at == datetime!(2026-03-29 11:00 UTC))
        );
        // DTEND in another zone than DTSTART.
        let mixed = ok(&event(
            "UID:a\r\nDTSTART;TZID=Europe/Paris:20260106T220000\r\nDTEND:20260107T010000Z\r\nRRULE:FREQ=DAILY\r\n",
        ));
        assert!(matches!(
            &mixed[0].schedule,
            Schedule::Recurring {
                duration_seconds: 14_400,
                ..
            }
        ));
        // A UTC start with a rule recurs in UTC; a date start in the default zone.
        let utc = ok(&event(
            "UID:a\r\nDTSTART:20260106T220000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=3\r\n",
        ));
        assert!(matches!(&utc[0].schedule, Schedule::Recurring { zone, .. } if zone == "UTC"));
        let daily = ok(&event(
            "UID:a\r\nDTSTART;VALUE=DATE:20260106\r\nRRULE:FREQ=WEEKLY\r\n",
        ));
        assert_eq!(
            daily[0].schedule,
            Schedule::Recurring {
                zone: PARIS.into(),
                first_start_local: "2026-01-06T00:00:00".into(),
                duration_seconds: 86_400,
                rrule: "FREQ=WEEKLY".into(),
            }
        );
    }

    #[test]
    fn lenient_where_harmless() {
        // Lower-case names, a BOM, blank lines, tab folding, unknown properties and
        // components, several calendars, cancelled events skipped.
        let text = "\u{feff}begin:vcalendar\nx-wr-calname:Maintenance\n\nbegin:vevent\nuid:a\n\tb\nsummary:x\ndtstart:20260101T100000Z\ndtend:20260101T110000Z\nX-FOO;X-P=\"a:b;c\":1\nend:vevent\nBEGIN:VTODO\nUID:todo\nEND:VTODO\nend:vcalendar\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:gone\nSTATUS:CANCELLED\nDTSTART:20260101T100000Z\nEND:VEVENT\nEND:VCALENDAR";
        let events = ok(text);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].uid, "ab");
        assert_eq!(events[0].line, 4);
        // An empty calendar is not an error.
        assert_eq!(ok("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"), []);
    }

    #[test]
    fn errors_name_line_and_property() {
        let cases: &[(&str, &str)] = &[
            (
                "UID:a\r\nDTSTART:20261301T220000\r\nDURATION:PT1H\r\n",
                "line 6: DTSTART: invalid date-time \"20261301T220000\"",
            ),
            (
                "UID:a\r\nDTSTART;VALUE=DATE:20260230\r\n",
                "line 6: DTSTART: invalid date \"20260230\"",
            ),
            (
                "UID:a\r\nDTSTART;VALUE=PERIOD:x\r\n",
                "line 6: DTSTART: unsupported VALUE=PERIOD",
            ),
            (
                "UID:a\r\nDTSTART;TZID=Mars/Olympus:20260101T220000\r\nDURATION:PT1H\r\n",
                "line 6: DTSTART: unknown time zone \"Mars/Olympus\"",
            ),
            (
                "UID:a\r\nDTSTART;TZID=Europe/Paris:20260101T220000Z\r\nDURATION:PT1H\r\n",
                "line 6: DTSTART: TZID given with a UTC (…Z) time",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\n",
                "line 4: VEVENT has no DTEND or DURATION",
            ),
            (
                "DTSTART:20260101T220000\r\nDURATION:PT1H\r\n",
                "line 4: VEVENT has no UID",
            ),
            (
                "UID:\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\n",
                "line 4: VEVENT has no UID",
            ),
            (
                "UID:a\r\nDURATION:PT1H\r\n",
                "line 4: VEVENT has no DTSTART",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\nDTEND:20260101T230000\r\n",
                "line 7: DURATION: cannot be given with DTEND",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDTEND:20260101T210000\r\n",
                "line 7: DTEND: the window does not end after DTSTART",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDTEND;VALUE=DATE:20260102\r\n",
                "line 7: DTEND: must be a DATE-TIME, like DTSTART",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:1H\r\n",
                "line 7: DURATION: invalid duration \"1H\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT\r\n",
                "line 7: DURATION: invalid duration \"PT\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P1H\r\n",
                "line 7: DURATION: invalid duration \"P1H\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P1DT\r\n",
                "line 7: DURATION: invalid duration \"P1DT\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H1H\r\n",
                "line 7: DURATION: invalid duration \"PT1H1H\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1S1M\r\n",
                "line 7: DURATION: invalid duration \"PT1S1M\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P99999999D\r\n",
                "line 7: DURATION: invalid duration \"P99999999D\"",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P9999999W\r\n",
                "line 7: DURATION: date-time out of range",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P9999999W\r\nRRULE:FREQ=YEARLY\r\n",
                "line 7: DURATION: window duration of 6047999395200 s exceeds the maximum of 2678400 s",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:-PT1H\r\n",
                "line 7: DURATION: a window's duration cannot be negative",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\nRRULE:FREQ=MONTHLY;BYSETPOS=-1\r\n",
                "line 8: RRULE: unsupported RRULE part BYSETPOS",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:P32D\r\nRRULE:FREQ=MONTHLY\r\n",
                "line 7: DURATION: window duration of 2764800 s exceeds the maximum of 2678400 s",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\nEXDATE:20260108T220000\r\n",
                "line 8: EXDATE: not supported: a window cannot exclude occurrences",
            ),
            (
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\nRDATE:20260108T220000\r\n",
                "line 8: RDATE: not supported: import each extra date as its own event",
            ),
            (
                "UID:a\r\nRECURRENCE-ID:20260108T220000\r\n",
                "line 6: RECURRENCE-ID: not supported: a window cannot modify one occurrence",
            ),
            (
                "UID:a\r\nUID:b\r\n",
                "line 6: UID: given twice (first on line 5)",
            ),
            (
                "UID:a\r\n;X=1:2\r\n",
                "line 6: malformed content line: expected a property name",
            ),
            (
                "UID:a\r\nSUMMARY\r\n",
                "line 6: malformed content line: expected ':' after the property name and parameters",
            ),
            (
                "UID:a\r\nSUMMARY;LANGUAGE:x\r\n",
                "line 6: malformed content line: expected a parameter NAME=VALUE",
            ),
            (
                "UID:a\r\nSUMMARY;X=\"abc:x\r\n",
                "line 6: malformed content line: unterminated quoted parameter value",
            ),
        ];
        for (props, message) in cases {
            assert_eq!(err(&event(props)).to_string(), *message, "{props}");
        }
        assert!(matches!(
            err(&event(
                "UID:a\r\nDTSTART:20260101T220000\r\nDURATION:PT1H\r\nRRULE:FREQ=MONTHLY;BYSETPOS=-1\r\n"
            )),
            IcsError::Recurrence {
                line: 8,
                property: "RRULE",
                error: RecurrenceError::UnsupportedPart { .. }
            }
        ));
    }

    #[test]
    fn structure_errors() {
        let message = |text: &str| err(text).to_string();
        assert_eq!(message(""), "no VCALENDAR in the text");
        assert_eq!(message("\r\n\r\n"), "no VCALENDAR in the text");
        assert_eq!(
            message("BEGIN:VEVENT\r\n"),
            "line 1: expected BEGIN:VCALENDAR, found BEGIN:VEVENT"
        );
        assert_eq!(
            message("SUMMARY:x\r\n"),
            "line 1: SUMMARY outside BEGIN:VCALENDAR"
        );
        assert_eq!(
            message("END:VCALENDAR\r\n"),
            "line 1: END:VCALENDAR without BEGIN"
        );
        assert_eq!(
            message(" folded\r\n"),
            "line 1: malformed content line: continuation line with no line before it"
        );
        assert_eq!(
            message("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n"),
            "line 3: END:VCALENDAR does not close BEGIN:VEVENT of line 2"
        );
        assert_eq!(
            message("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"),
            "line 2: BEGIN:VEVENT is never closed"
        );
        assert_eq!(
            message("BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nEND:VCALENDAR\r\n"),
            "line 2: METHOD: a cancellation carries no window to import"
        );
        let deep = format!("BEGIN:VCALENDAR\r\n{}", "BEGIN:X\r\n".repeat(MAX_NESTING));
        assert!(err(&deep).to_string().contains("nested deeper"));
        assert!(matches!(
            parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "Nowhere/Land"),
            Err(IcsError::UnknownDefaultZone { .. })
        ));
        let huge = " ".repeat(MAX_ICS_BYTES + 1);
        assert!(matches!(
            parse(&huge, PARIS),
            Err(IcsError::TooLarge { .. })
        ));
        // Long values are cut in messages.
        let long = format!("UID:a\r\nDTSTART:{}\r\nDURATION:PT1H\r\n", "9".repeat(200));
        assert!(err(&event(&long)).to_string().ends_with("9999…\""));
    }

    #[test]
    fn imported_windows_expand() {
        let events = ok(SAMPLE);
        let Ok(Some(r)) = Recurrence::from_schedule(&events[0].schedule) else {
            panic!("recurring");
        };
        // Last occurrence: 29 December 2026 (UNTIL 21:00Z = 22:00 CET, inclusive).
        let all: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2028-01-01 0:00 UTC),
            )
            .collect();
        assert_eq!(all.len(), 52);
        assert_eq!(
            all.last().map(|o| o.start),
            Some(datetime!(2026-12-29 21:00 UTC))
        );
    }

    #[test]
    fn unescape_and_quote() {
        assert_eq!(unescape(r"a\,b\;c\\d\ne\Nf\x\"), "a,b;c\\d\ne\nf\\x\\");
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote(&"é".repeat(50)).chars().count(), QUOTE_CHARS + 1);
    }

    /// Characters that matter to the grammar, for mutations.
    const ALPHABET: &[char] = &[
        ':', ';', ',', '=', '"', '\\', '\r', '\n', ' ', '\t', 'T', 'Z', 'P', 'D', 'H', '0', '1',
        '9', '-', '+', 'é', '\u{feff}', 'B',
    ];

    fn mutate(text: &str, edits: &[(usize, usize, usize)]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for &(kind, position, pick) in edits {
            if chars.is_empty() {
                chars.push(ALPHABET[pick % ALPHABET.len()]);
                continue;
            }
            let at = position % chars.len();
            match kind % 4 {
                0 => chars.insert(at, ALPHABET[pick % ALPHABET.len()]),
                1 => {
                    chars.remove(at);
                }
                2 => chars[at] = ALPHABET[pick % ALPHABET.len()],
                _ => {
                    // Duplicate a slice (repeats lines and components).
                    let end = (at + pick % 80).min(chars.len());
                    let slice: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, slice);
                }
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn random_text_never_panics(text in "\\PC*", zone in prop::sample::select(vec![PARIS, "UTC", "America/New_York", "nowhere"])) {
            let _ = parse(&text, zone);
            let _ = parse(&format!("BEGIN:VCALENDAR\r\n{text}"), zone);
        }

        #[test]
        fn random_grammar_text_never_panics(text in "(BEGIN:VCALENDAR|BEGIN:VEVENT|END:VEVENT|DTSTART|DTEND|DURATION|RRULE|UID|;TZID=|:|;|=|\"|[0-9TZP]{1,15}|\r\n|\n| |FREQ=|WEEKLY|BYDAY=|-1FR|COUNT=)*") {
            let _ = parse(&text, PARIS);
        }

        #[test]
        fn mutated_valid_calendars_never_panic(edits in prop::collection::vec((0usize..4, any::<usize>(), any::<usize>()), 1..12)) {
            let text = mutate(SAMPLE, &edits);
            if let Ok(events) = parse(&text, PARIS) {
                // Whatever is accepted expands without panicking either.
                for e in events {
                    if let Ok(Some(r)) = Recurrence::from_schedule(&e.schedule) {
                        let _ = r.occurrences(datetime!(2026-01-01 0:00 UTC), datetime!(2027-01-01 0:00 UTC)).count();
                    }
                }
            }
        }
    }
}
