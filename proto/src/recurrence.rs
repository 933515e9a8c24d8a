//! Recurring maintenance windows in a named time zone.
//!
//! A recurring window ([`crate::model::Schedule::Recurring`]) is an IANA zone, the local
//! civil date-time of its first opening, a length in seconds and an iCalendar RRULE
//! (RFC 5545 §3.3.10). [`Recurrence`] validates the four and expands them, lazily, into
//! [`Occurrence`]s: pairs of instants.
//!
//! # Semantics
//!
//! - **Wall-clock windows.** Both ends of an occurrence are local civil times in the zone:
//!   the end is the local start plus the duration, counted on the wall clock. A window
//!   "every Tuesday 22:00, 4 hours, Europe/Paris" closes at 02:00 local on Wednesday
//!   whatever daylight saving time did that night, so it lasts 3 or 5 hours of real time
//!   on the two nights of a change.
//! - **Gaps** (spring forward): a local time that does not exist is moved forward by the
//!   length of the gap (RFC 5545 §3.3.5: read with the offset in force before the gap):
//!   02:30 on the last Sunday of March in Paris is 03:30 CEST.
//! - **Folds** (fall back): a local time that happens twice is the first (earlier) one:
//!   02:30 on the last Sunday of October in Paris is 02:30 CEST, not CET.
//! - An occurrence is never empty: when its start falls in a gap and its end, resolved as
//!   above, would not come after it (the whole window sits in or just after the gap), it
//!   ends at its start plus the duration in real seconds.
//! - **DTSTART counts**: the first start is always the first occurrence, and counts for
//!   `COUNT`, even when it does not match the rule (RFC 5545 §3.3.10). Every other
//!   occurrence starts at the same local time of day as the first one.
//! - `UNTIL` is inclusive and bounds starts: a UTC value (`…Z`) is compared with the
//!   start instant, a local date-time with the local start, a date with the local date.
//! - Dates a rule names that do not exist (the 31st of a 30-day month, the 5th Friday of a
//!   month with four) are skipped, never moved.
//!
//! # Rule subset
//!
//! `FREQ` = `DAILY`, `WEEKLY`, `MONTHLY` or `YEARLY`; `INTERVAL`; `COUNT` or `UNTIL`;
//! `BYMONTH`; `BYMONTHDAY` (1…31, -1…-31; not with `WEEKLY`); `BYDAY` (`MO`…`SU`, with an
//! ordinal such as `1TU` or `-1FR` only with `MONTHLY`, or `YEARLY` where it counts in
//! the month when `BYMONTH` is given, in the year otherwise); `WKST`. Names and values are
//! case-insensitive. Every other part (`BYSETPOS`, `BYHOUR`, `BYWEEKNO`…) is refused with
//! an error naming it, rather than ignored: a window wider than declared would hide
//! connections outside it.
//!
//! Zones come from the time zone database bundled in `jiff`, never from the host, so an
//! expansion is the same on every machine. Instants are [`time::OffsetDateTime`]; `jiff` is
//! used only to go between local civil times and instants.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use time::{OffsetDateTime, UtcOffset};

use crate::model::Schedule;

/// The longest occurrence accepted, in seconds (31 days).
pub const MAX_DURATION_SECONDS: u32 = 31 * SECONDS_PER_DAY;

/// The largest `INTERVAL` accepted.
pub const MAX_INTERVAL: u32 = 10_000;

const SECONDS_PER_DAY: u32 = 86_400;

/// How far before a query's start to look for occurrences that began earlier and still
/// run: the longest duration plus two days, more than any offset change within a zone.
const LOOKBACK_SECONDS: i64 = MAX_DURATION_SECONDS as i64 + 2 * SECONDS_PER_DAY as i64;

/// Why a recurring window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    /// The zone is not in the bundled time zone database.
    #[error("unknown time zone {zone:?}")]
    UnknownZone {
        /// The name given.
        zone: String,
    },
    /// The first start is not a valid `YYYY-MM-DDTHH:MM[:SS]` local date-time.
    #[error("invalid local date-time {value:?}: expected YYYY-MM-DDTHH:MM[:SS]")]
    InvalidLocalDateTime {
        /// The text given.
        value: String,
    },
    /// The duration is zero.
    #[error("window duration must be positive")]
    ZeroDuration,
    /// The duration is longer than [`MAX_DURATION_SECONDS`].
    #[error("window duration of {seconds} s exceeds the maximum of {max} s")]
    DurationTooLong {
        /// The duration given.
        seconds: u32,
        /// The maximum.
        max: u32,
    },
    /// The RRULE has no `FREQ`.
    #[error("RRULE has no FREQ")]
    MissingFreq,
    /// A part outside the supported subset.
    #[error("unsupported RRULE part {part}")]
    UnsupportedPart {
        /// The part's name, upper-cased.
        part: String,
    },
    /// A frequency outside the supported subset.
    #[error("unsupported RRULE frequency {freq}")]
    UnsupportedFrequency {
        /// The frequency given.
        freq: String,
    },
    /// A part that is not `NAME=VALUE`.
    #[error("malformed RRULE part {part:?}: expected NAME=VALUE")]
    MalformedPart {
        /// The text of the part.
        part: String,
    },
    /// A part whose value is invalid.
    #[error("invalid RRULE part {part}={value:?}: {reason}")]
    InvalidPart {
        /// The part's name.
        part: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A part given twice.
    #[error("RRULE part {part} given twice")]
    DuplicatePart {
        /// The part's name.
        part: String,
    },
    /// Both `COUNT` and `UNTIL` (RFC 5545 forbids it).
    #[error("RRULE has both COUNT and UNTIL")]
    CountAndUntil,
    /// A part that makes no sense with the rule's frequency.
    #[error("RRULE part {part} is not allowed with FREQ={freq}")]
    PartNotAllowed {
        /// The part.
        part: &'static str,
        /// The rule's frequency.
        freq: &'static str,
    },
    /// `UNTIL` comes before the first start: the window would never open.
    #[error("RRULE UNTIL {until} is before the first start {first}")]
    UntilBeforeStart {
        /// The `UNTIL` value.
        until: String,
        /// The first start, local.
        first: String,
    },
}

/// One opening of a recurring window: `[start, end)`.
///
/// Both instants carry the zone's offset in force at that instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Occurrence {
    /// Opening instant (included).
    pub start: OffsetDateTime,
    /// Closing instant (excluded).
    pub end: OffsetDateTime,
}

impl Occurrence {
    /// Whether `at` falls in `[start, end)`.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether the occurrence overlaps `[from, to)`.
    pub fn overlaps(&self, from: OffsetDateTime, to: OffsetDateTime) -> bool {
        self.start < to && self.end > from
    }
}

/// A validated recurring window: zone, first local start, duration and rule.
#[derive(Debug, Clone)]
pub struct Recurrence {
    zone: String,
    tz: TimeZone,
    first: Civil,
    duration_seconds: u32,
    rule: Rule,
}

impl Recurrence {
    /// Validates a recurring window.
    ///
    /// `first_start_local` is `YYYY-MM-DDTHH:MM[:SS]`, a local civil time in `zone`;
    /// `rrule` is the value of an RRULE (`FREQ=WEEKLY;BYDAY=TU`), optionally prefixed with
    /// `RRULE:`. See the [module documentation](self) for the subset supported.
    ///
    /// # Errors
    ///
    /// [`RecurrenceError`] when the zone is unknown, the local date-time malformed or out of
    /// range, the duration zero or longer than [`MAX_DURATION_SECONDS`], or the rule
    /// malformed, outside the subset, or ending before the first start.
    ///
    /// # Examples
    ///
    /// ```
    /// use proto::recurrence::Recurrence;
    /// use time::macros::datetime;
    ///
    /// // Every Tuesday 22:00-02:00, Paris time.
    /// let r = Recurrence::new("Europe/Paris", "2026-01-06T22:00", 4 * 3600, "FREQ=WEEKLY;BYDAY=TU")?;
    /// let o = r.covering(datetime!(2026-01-14 00:30 UTC)).expect("Tuesday night");
    /// assert_eq!(o.start, datetime!(2026-01-13 21:00 UTC));
    /// assert_eq!(o.end, datetime!(2026-01-14 01:00 UTC));
    /// assert!(Recurrence::new("Europe/Paris", "2026-01-06T22:00", 3600, "FREQ=HOURLY").is_err());
    /// # Ok::<(), proto::recurrence::RecurrenceError>(())
    /// ```
    pub fn new(
        zone: &str,
        first_start_local: &str,
        duration_seconds: u32,
        rrule: &str,
    ) -> Result<Recurrence, RecurrenceError> {
        let tz = time_zone(zone).ok_or_else(|| RecurrenceError::UnknownZone {
            zone: zone.to_owned(),
        })?;
        let invalid_local = || RecurrenceError::InvalidLocalDateTime {
            value: first_start_local.to_owned(),
        };
        let first = parse_local(first_start_local).ok_or_else(invalid_local)?;
        if duration_seconds == 0 {
            return Err(RecurrenceError::ZeroDuration);
        }
        if duration_seconds > MAX_DURATION_SECONDS {
            return Err(RecurrenceError::DurationTooLong {
                seconds: duration_seconds,
                max: MAX_DURATION_SECONDS,
            });
        }
        let rule = Rule::parse(rrule, first)?;
        let first_instant = resolve(&tz, first).ok_or_else(invalid_local)?;
        if let Some(until) = &rule.until {
            let before = match until.bound {
                UntilBound::Instant(u) => u < first_instant,
                UntilBound::Local(u) => u < first,
                UntilBound::Date(d) => d < first.day,
            };
            if before {
                return Err(RecurrenceError::UntilBeforeStart {
                    until: until.text.clone(),
                    first: first_start_local.to_owned(),
                });
            }
        }
        Ok(Recurrence {
            zone: zone.to_owned(),
            tz,
            first,
            duration_seconds,
            rule,
        })
    }

    /// Validates the recurring window of a schedule; `None` for a one-off schedule.
    ///
    /// # Errors
    ///
    /// As [`Recurrence::new`].
    pub fn from_schedule(schedule: &Schedule) -> Result<Option<Recurrence>, RecurrenceError> {
        match schedule {
            Schedule::OneOff { .. } => Ok(None),
            Schedule::Recurring {
                zone,
                first_start_local,
                duration_seconds,
                rrule,
            } => Recurrence::new(zone, first_start_local, *duration_seconds, rrule).map(Some),
        }
    }

    /// The zone name, as given.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The length of each occurrence on the wall clock, in seconds.
    pub fn duration_seconds(&self) -> u32 {
        self.duration_seconds
    }

    /// Every occurrence overlapping `[from, to)`, in order of start.
    ///
    /// Lazy: occurrences are computed as the iterator advances, starting near `from`
    /// (from the first start when the rule has a `COUNT`, which must be counted).
    ///
    /// # Examples
    ///
    /// ```
    /// use proto::recurrence::Recurrence;
    /// use time::macros::datetime;
    ///
    /// let r = Recurrence::new("Europe/Paris", "2026-01-30T20:00", 3600, "FREQ=MONTHLY;BYDAY=-1FR")?;
    /// let starts: Vec<_> = r
    ///     .occurrences(datetime!(2026-02-01 0:00 UTC), datetime!(2026-04-01 0:00 UTC))
    ///     .map(|o| o.start)
    ///     .collect();
    /// assert_eq!(starts, [datetime!(2026-02-27 19:00 UTC), datetime!(2026-03-27 19:00 UTC)]);
    /// # Ok::<(), proto::recurrence::RecurrenceError>(())
    /// ```
    pub fn occurrences(&self, from: OffsetDateTime, to: OffsetDateTime) -> Occurrences<'_> {
        let from_day = if self.rule.count.is_some() {
            None
        } else {
            Some(self.local_day(from.unix_timestamp().saturating_sub(LOOKBACK_SECONDS)))
        };
        let end_day = self.local_day(
            to.unix_timestamp()
                .saturating_add(2 * i64::from(SECONDS_PER_DAY)),
        );
        Occurrences {
            recurrence: self,
            days: DayStream::new(&self.rule, self.first.day, from_day, end_day),
            from,
            to,
            yielded: 0,
            done: from >= to,
        }
    }

    /// The occurrence open at `at`, if any (the earliest, if several overlap).
    ///
    /// # Examples
    ///
    /// ```
    /// use proto::recurrence::Recurrence;
    /// use time::macros::datetime;
    ///
    /// let r = Recurrence::new("Europe/Paris", "2026-01-05T08:00", 3600, "FREQ=DAILY")?;
    /// assert!(r.covering(datetime!(2026-03-02 7:59 UTC)).is_some());
    /// assert!(r.covering(datetime!(2026-03-02 8:00 UTC)).is_none());
    /// # Ok::<(), proto::recurrence::RecurrenceError>(())
    /// ```
    pub fn covering(&self, at: OffsetDateTime) -> Option<Occurrence> {
        let next = at.checked_add(time::Duration::NANOSECOND)?;
        self.occurrences(at, next).find(|o| o.contains(at))
    }

    /// The local day (days since 1970-01-01) in the zone at a unix second, clamped to the
    /// range of `jiff`.
    fn local_day(&self, unix_second: i64) -> i64 {
        let clamped = unix_second.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        let ts = Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH);
        local_civil(&self.tz, ts).day
    }

    /// The occurrence starting on `day` at the first start's time of day.
    fn occurrence_on(&self, day: i64) -> Option<(Occurrence, Timestamp)> {
        let start_civil = Civil {
            day,
            second: self.first.second,
        };
        let start = resolve(&self.tz, start_civil)?;
        let end_civil = start_civil.plus_seconds(self.duration_seconds);
        let end = match resolve(&self.tz, end_civil) {
            Some(end) if end > start => end,
            _ => start
                .checked_add(jiff::SignedDuration::from_secs(i64::from(
                    self.duration_seconds,
                )))
                .ok()?,
        };
        let occurrence = Occurrence {
            start: to_offset_date_time(start, &self.tz)?,
            end: to_offset_date_time(end, &self.tz)?,
        };
        Some((occurrence, start))
    }
}

/// The occurrences of a [`Recurrence`] overlapping a range: see
/// [`Recurrence::occurrences`].
#[derive(Debug)]
pub struct Occurrences<'a> {
    recurrence: &'a Recurrence,
    days: DayStream<'a>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    yielded: u32,
    done: bool,
}

impl Iterator for Occurrences<'_> {
    type Item = Occurrence;

    fn next(&mut self) -> Option<Occurrence> {
        while !self.done {
            let rule = &self.recurrence.rule;
            if rule.count.is_some_and(|count| self.yielded >= count) {
                break;
            }
            let Some(day) = self.days.next() else {
                break;
            };
            self.yielded = self.yielded.saturating_add(1);
            let Some((occurrence, start)) = self.recurrence.occurrence_on(day) else {
                break;
            };
            if let Some(until) = &rule.until {
                let after = match until.bound {
                    UntilBound::Instant(u) => start > u,
                    UntilBound::Local(u) => {
                        Civil {
                            day,
                            second: self.recurrence.first.second,
                        } > u
                    }
                    UntilBound::Date(d) => day > d,
                };
                if after {
                    break;
                }
            }
            if occurrence.start >= self.to {
                break;
            }
            if occurrence.end > self.from {
                return Some(occurrence);
            }
        }
        self.done = true;
        None
    }
}

// ---------------------------------------------------------------------------------------
// The rule.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Freq {
    fn name(self) -> &'static str {
        match self {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
            Freq::Yearly => "YEARLY",
        }
    }
}

/// A `BYDAY` item: a weekday (0 = Monday) and an ordinal (0 = every such weekday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WeekdayNum {
    ordinal: i8,
    weekday: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UntilBound {
    Instant(Timestamp),
    Local(Civil),
    Date(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Until {
    bound: UntilBound,
    text: String,
}

#[derive(Debug, Clone)]
struct Rule {
    freq: Freq,
    interval: u32,
    count: Option<u32>,
    until: Option<Until>,
    /// Bit `m` set for month `m` (1…12); 0 when `BYMONTH` is absent.
    by_month: u16,
    by_month_day: Vec<i8>,
    by_day: Vec<WeekdayNum>,
    /// Week start, 0 = Monday.
    wkst: u8,
    /// Month, day of month and weekday of the first start, for the parts a rule leaves out.
    first_month: u32,
    first_month_day: u32,
    first_weekday: u8,
}

const PART_NAMES: [&str; 8] = [
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYMONTH",
    "BYMONTHDAY",
    "BYDAY",
    "WKST",
];

impl Rule {
    fn parse(text: &str, first: Civil) -> Result<Rule, RecurrenceError> {
        let text = text.trim();
        let text = match text.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("RRULE:") => text.get(6..).unwrap_or(""),
            _ => text,
        };
        let (_, first_month, first_month_day) = civil_from_days(first.day);
        let mut rule = Rule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_month: 0,
            by_month_day: Vec::new(),
            by_day: Vec::new(),
            wkst: 0,
            first_month,
            first_month_day,
            first_weekday: weekday(first.day),
        };
        let mut seen = [false; PART_NAMES.len()];
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(RecurrenceError::MalformedPart {
                    part: part.to_owned(),
                });
            };
            let name = name.trim().to_ascii_uppercase();
            let value = value.trim();
            let Some(index) = PART_NAMES.iter().position(|known| *known == name) else {
                return Err(RecurrenceError::UnsupportedPart { part: name });
            };
            if seen[index] {
                return Err(RecurrenceError::DuplicatePart { part: name });
            }
            seen[index] = true;
            let invalid = |reason: &'static str| RecurrenceError::InvalidPart {
                part: name.clone(),
                value: value.to_owned(),
                reason,
            };
            let upper = value.to_ascii_uppercase();
            match name.as_str() {
                "FREQ" => {
                    rule.freq = match upper.as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        "SECONDLY" | "MINUTELY" | "HOURLY" => {
                            return Err(RecurrenceError::UnsupportedFrequency { freq: upper });
                        }
                        _ => return Err(invalid("expected DAILY, WEEKLY, MONTHLY or YEARLY")),
                    }
                }
                "INTERVAL" => {
                    let n = parse_digits(value).ok_or_else(|| invalid("expected a number"))?;
                    if n == 0 || n > MAX_INTERVAL {
                        return Err(invalid("must be between 1 and 10000"));
                    }
                    rule.interval = n;
                }
                "COUNT" => {
                    let n = parse_digits(value).ok_or_else(|| invalid("expected a number"))?;
                    if n == 0 {
                        return Err(invalid("must be positive"));
                    }
                    rule.count = Some(n);
                }
                "UNTIL" => {
                    let bound = parse_until(&upper)
                        .ok_or_else(|| invalid("expected YYYYMMDD, YYYYMMDDTHHMMSS or …Z"))?;
                    rule.until = Some(Until {
                        bound,
                        text: value.to_owned(),
                    });
                }
                "BYMONTH" => {
                    for item in upper.split(',') {
                        let m = parse_digits(item)
                            .filter(|m| (1..=12).contains(m))
                            .ok_or_else(|| invalid("months are 1 to 12"))?;
                        rule.by_month |= 1 << m;
                    }
                }
                "BYMONTHDAY" => {
                    for item in upper.split(',') {
                        let d = parse_signed(item)
                            .filter(|d| (1..=31).contains(&d.unsigned_abs()))
                            .ok_or_else(|| invalid("days are 1 to 31 or -1 to -31"))?;
                        rule.by_month_day.push(d);
                    }
                }
                "BYDAY" => {
                    for item in upper.split(',') {
                        let wd = parse_weekday_num(item)
                            .ok_or_else(|| invalid("expected weekdays like TU, 1TU or -1FR"))?;
                        rule.by_day.push(wd);
                    }
                }
                _ => {
                    // WKST: the only name left.
                    rule.wkst = parse_weekday(&upper).ok_or_else(|| invalid("expected MO … SU"))?;
                }
            }
        }
        if !seen[0] {
            return Err(RecurrenceError::MissingFreq);
        }
        if rule.count.is_some() && rule.until.is_some() {
            return Err(RecurrenceError::CountAndUntil);
        }
        let freq = rule.freq.name();
        if rule.freq == Freq::Weekly && !rule.by_month_day.is_empty() {
            return Err(RecurrenceError::PartNotAllowed {
                part: "BYMONTHDAY",
                freq,
            });
        }
        let max_ordinal = match rule.freq {
            Freq::Daily | Freq::Weekly => 0,
            Freq::Monthly => 5,
            Freq::Yearly if rule.by_month != 0 => 5,
            Freq::Yearly => 53,
        };
        for wd in &rule.by_day {
            if wd.ordinal != 0 && max_ordinal == 0 {
                return Err(RecurrenceError::PartNotAllowed {
                    part: "BYDAY with an ordinal",
                    freq,
                });
            }
            if wd.ordinal.unsigned_abs() > max_ordinal {
                return Err(RecurrenceError::InvalidPart {
                    part: "BYDAY".to_owned(),
                    value: format!("{}{}", wd.ordinal, WEEKDAYS[usize::from(wd.weekday)]),
                    reason: "ordinal out of range for the frequency",
                });
            }
        }
        Ok(rule)
    }

    /// Whether `day` is a date of the rule (its period aside).
    fn matches(&self, day: i64) -> bool {
        let (year, month, month_day) = civil_from_days(day);
        if self.by_month != 0 && self.by_month & (1 << month) == 0 {
            return false;
        }
        let month_len = days_in_month(year, month);
        if !self.by_month_day.is_empty() {
            let hit = self.by_month_day.iter().any(|&d| {
                let resolved = if d > 0 {
                    i64::from(d)
                } else {
                    i64::from(month_len) + 1 + i64::from(d)
                };
                resolved == i64::from(month_day)
            });
            if !hit {
                return false;
            }
        }
        let wd = weekday(day);
        if !self.by_day.is_empty() {
            // The scope ordinals count in: the month, or the year (YEARLY without BYMONTH).
            let (scope_first, scope_last) = if self.freq == Freq::Yearly && self.by_month == 0 {
                (days_from_civil(year, 1, 1), days_from_civil(year, 12, 31))
            } else {
                let first = day - i64::from(month_day) + 1;
                (first, first + i64::from(month_len) - 1)
            };
            let hit = self.by_day.iter().any(|item| {
                item.weekday == wd
                    && match item.ordinal {
                        0 => true,
                        n if n > 0 => (day - scope_first) / 7 == i64::from(n) - 1,
                        n => (scope_last - day) / 7 == -i64::from(n) - 1,
                    }
            });
            if !hit {
                return false;
            }
        }
        // Parts the rule leaves out take their value from the first start.
        let no_day_parts = self.by_day.is_empty() && self.by_month_day.is_empty();
        match self.freq {
            Freq::Daily => true,
            Freq::Weekly => !self.by_day.is_empty() || wd == self.first_weekday,
            Freq::Monthly => !no_day_parts || month_day == self.first_month_day,
            Freq::Yearly => {
                !no_day_parts
                    || (month_day == self.first_month_day
                        && (self.by_month != 0 || month == self.first_month))
            }
        }
    }
}

/// The days of a rule in order: the first start's, then the rule's dates after it, period
/// by period, until a period begins after `end_day`.
#[derive(Debug)]
struct DayStream<'a> {
    rule: &'a Rule,
    first_day: i64,
    /// Anchors: the first period's week start, month index and year.
    week_start: i64,
    month_index: i64,
    year: i64,
    end_day: i64,
    period: i64,
    cursor: i64,
    period_last: i64,
    first_pending: bool,
    done: bool,
}

impl<'a> DayStream<'a> {
    fn new(rule: &'a Rule, first_day: i64, from_day: Option<i64>, end_day: i64) -> DayStream<'a> {
        let (year, month, _) = civil_from_days(first_day);
        let week_start = first_day - i64::from((7 + weekday(first_day) - rule.wkst) % 7);
        let month_index = year * 12 + i64::from(month) - 1;
        let mut stream = DayStream {
            rule,
            first_day,
            week_start,
            month_index,
            year,
            end_day,
            period: 0,
            cursor: 0,
            period_last: -1,
            first_pending: true,
            done: false,
        };
        if let Some(from_day) = from_day {
            // Skip whole periods that end before `from_day`.
            let interval = i64::from(rule.interval);
            let (from_year, from_month, _) = civil_from_days(from_day);
            let period = match rule.freq {
                Freq::Daily => (from_day - first_day).div_euclid(interval),
                Freq::Weekly => (from_day - week_start).div_euclid(7 * interval),
                Freq::Monthly => {
                    (from_year * 12 + i64::from(from_month) - 1 - month_index).div_euclid(interval)
                }
                Freq::Yearly => (from_year - year).div_euclid(interval),
            };
            if period > 0 {
                stream.period = period;
                stream.first_pending = false;
            }
        }
        stream.enter_period();
        stream
    }

    /// Sets the cursor to the first day of the current period.
    fn enter_period(&mut self) {
        let interval = i64::from(self.rule.interval);
        let Some(step) = self.period.checked_mul(interval) else {
            self.done = true;
            return;
        };
        let (first, last) = match self.rule.freq {
            Freq::Daily => {
                let day = self.first_day + step;
                (day, day)
            }
            Freq::Weekly => {
                let day = self.week_start + 7 * step;
                (day, day + 6)
            }
            Freq::Monthly => {
                let index = self.month_index + step;
                let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
                let month = u32::try_from(month).unwrap_or(1);
                let first = days_from_civil(year, month, 1);
                (first, first + i64::from(days_in_month(year, month)) - 1)
            }
            Freq::Yearly => {
                let year = self.year + step;
                (days_from_civil(year, 1, 1), days_from_civil(year, 12, 31))
            }
        };
        if first > self.end_day {
            self.done = true;
        }
        self.cursor = first;
        self.period_last = last;
    }
}

impl Iterator for DayStream<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        if self.first_pending {
            self.first_pending = false;
            return Some(self.first_day);
        }
        while !self.done {
            if self.cursor > self.period_last {
                self.period += 1;
                self.enter_period();
                continue;
            }
            let day = self.cursor;
            self.cursor += 1;
            if day > self.first_day && self.rule.matches(day) {
                return Some(day);
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Civil dates and times, and the boundary with jiff.

const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// A local civil date-time: days since 1970-01-01 and the second of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Civil {
    pub(crate) day: i64,
    pub(crate) second: u32,
}

impl Civil {
    pub(crate) fn new(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<Civil> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then(|| Civil {
            day: days_from_civil(year, month, day),
            second: hour * 3600 + minute * 60 + second,
        })
    }

    pub(crate) fn plus_seconds(self, seconds: u32) -> Civil {
        let total = u64::from(self.second) + u64::from(seconds);
        let days = total / u64::from(SECONDS_PER_DAY);
        Civil {
            day: self.day + i64::try_from(days).unwrap_or(0),
            second: u32::try_from(total % u64::from(SECONDS_PER_DAY)).unwrap_or(0),
        }
    }

    /// Seconds from `earlier` to `self`, on the wall clock.
    pub(crate) fn seconds_since(self, earlier: Civil) -> i64 {
        (self.day - earlier.day) * i64::from(SECONDS_PER_DAY) + i64::from(self.second)
            - i64::from(earlier.second)
    }

    /// `YYYY-MM-DDTHH:MM:SS`.
    pub(crate) fn format(self) -> String {
        let (y, m, d) = civil_from_days(self.day);
        let (h, mi, s) = (self.second / 3600, self.second / 60 % 60, self.second % 60);
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    }
}

/// The bundled time zone database, never the host's.
fn database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// A zone of the bundled database by IANA name (case-insensitive).
pub(crate) fn time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    database().get(name).ok()
}

/// The instant of a local civil time: gaps move forward, folds take the earlier instant.
pub(crate) fn resolve(tz: &TimeZone, civil: Civil) -> Option<Timestamp> {
    let (y, m, d) = civil_from_days(civil.day);
    let dt = jiff::civil::DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(civil.second / 3600).ok()?,
        i8::try_from(civil.second / 60 % 60).ok()?,
        i8::try_from(civil.second % 60).ok()?,
        0,
    )
    .ok()?;
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

/// The local civil time of an instant (sub-seconds dropped).
pub(crate) fn local_civil(tz: &TimeZone, ts: Timestamp) -> Civil {
    let dt = tz.to_datetime(ts);
    let hms = [dt.hour(), dt.minute(), dt.second()].map(|v| u32::try_from(v).unwrap_or(0));
    Civil {
        day: days_from_civil(
            i64::from(dt.year()),
            u32::try_from(dt.month()).unwrap_or(1),
            u32::try_from(dt.day()).unwrap_or(1),
        ),
        second: hms[0] * 3600 + hms[1] * 60 + hms[2],
    }
}

/// The `jiff` instant of a `time` instant.
pub(crate) fn to_timestamp(at: OffsetDateTime) -> Option<Timestamp> {
    Timestamp::new(at.unix_timestamp(), i32::try_from(at.nanosecond()).ok()?).ok()
}

/// The `time` instant of a `jiff` instant, with the zone's offset at that instant.
pub(crate) fn to_offset_date_time(ts: Timestamp, tz: &TimeZone) -> Option<OffsetDateTime> {
    let offset = UtcOffset::from_whole_seconds(tz.to_offset(ts).seconds()).ok()?;
    let nanos = u32::try_from(ts.subsec_nanosecond()).ok()?;
    OffsetDateTime::from_unix_timestamp(ts.as_second())
        .ok()?
        .replace_nanosecond(nanos)
        .ok()?
        .checked_to_offset(offset)
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]`.
pub(crate) fn parse_local(text: &str) -> Option<Civil> {
    let b = text.as_bytes();
    if !(b.len() == 16 || b.len() == 19)
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || (b.len() == 19 && b[16] != b':')
    {
        return None;
    }
    let second = if b.len() == 19 {
        digits(&b[17..19])?
    } else {
        0
    };
    Civil::new(
        i64::from(digits(&b[0..4])?),
        digits(&b[5..7])?,
        digits(&b[8..10])?,
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        second,
    )
}

/// An iCalendar basic date-time `YYYYMMDDTHHMMSS`, with whether it ends in `Z`.
pub(crate) fn parse_basic_date_time(text: &str) -> Option<(Civil, bool)> {
    let (text, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let b = text.as_bytes();
    if b.len() != 15 || !(b[8] == b'T' || b[8] == b't') {
        return None;
    }
    let civil = Civil::new(
        i64::from(digits(&b[0..4])?),
        digits(&b[4..6])?,
        digits(&b[6..8])?,
        digits(&b[9..11])?,
        digits(&b[11..13])?,
        digits(&b[13..15])?,
    )?;
    Some((civil, utc))
}

/// An iCalendar basic date `YYYYMMDD`, as days since 1970-01-01.
pub(crate) fn parse_basic_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 8 {
        return None;
    }
    Civil::new(
        i64::from(digits(&b[0..4])?),
        digits(&b[4..6])?,
        digits(&b[6..8])?,
        0,
        0,
        0,
    )
    .map(|c| c.day)
}

fn parse_until(text: &str) -> Option<UntilBound> {
    if let Some(day) = parse_basic_date(text) {
        return Some(UntilBound::Date(day));
    }
    let (civil, utc) = parse_basic_date_time(text)?;
    if utc {
        resolve(&TimeZone::UTC, civil).map(UntilBound::Instant)
    } else {
        Some(UntilBound::Local(civil))
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| {
        n.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn parse_digits(text: &str) -> Option<u32> {
    digits(text.trim().as_bytes())
}

fn parse_signed(text: &str) -> Option<i8> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest.is_empty() || rest.len() > 2 {
        return None;
    }
    let n = i8::try_from(digits(rest.as_bytes())?).ok()?;
    Some(if negative { -n } else { n })
}

fn parse_weekday(text: &str) -> Option<u8> {
    let index = WEEKDAYS.iter().position(|w| *w == text.trim())?;
    u8::try_from(index).ok()
}

fn parse_weekday_num(text: &str) -> Option<WeekdayNum> {
    let text = text.trim();
    let split = text.len().checked_sub(2)?;
    let (ordinal, day) = (text.get(..split)?, text.get(split..)?);
    let weekday = parse_weekday(day)?;
    let ordinal = if ordinal.is_empty() {
        0
    } else {
        let n = parse_signed(ordinal)?;
        if n == 0 || n.unsigned_abs() > 53 {
            return None;
        }
        n
    };
    Some(WeekdayNum { ordinal, weekday })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a number of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(days: i64) -> u8 {
    u8::try_from((days + 3).rem_euclid(7)).unwrap_or(0)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    fn rec(zone: &str, first: &str, duration: u32, rrule: &str) -> Recurrence {
        match Recurrence::new(zone, first, duration, rrule) {
            Ok(r) => r,
            Err(e) => panic!("{zone} {first} {duration} {rrule}: {e}"),
        }
    }

    fn spans(
        r: &Recurrence,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Vec<(OffsetDateTime, OffsetDateTime)> {
        r.occurrences(from, to).map(|o| (o.start, o.end)).collect()
    }

    #[test]
    fn civil_arithmetic_round_trips() {
        for days in [-719_468, -1, 0, 1, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(weekday(days_from_civil(2026, 3, 29)), 6, "a Sunday");
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    #[test]
    fn weekly_midnight_spanning_window_keeps_wall_clock_across_dst() {
        // Every Tuesday 22:00-02:00 Paris.
        let r = rec(
            "Europe/Paris",
            "2026-03-17T22:00",
            4 * 3600,
            "FREQ=WEEKLY;BYDAY=TU",
        );
        let got = spans(
            &r,
            datetime!(2026-03-17 0:00 UTC),
            datetime!(2026-04-01 0:00 UTC),
        );
        assert_eq!(
            got,
            [
                (
                    datetime!(2026-03-17 21:00 UTC),
                    datetime!(2026-03-18 1:00 UTC)
                ),
                (
                    datetime!(2026-03-24 21:00 UTC),
                    datetime!(2026-03-25 1:00 UTC)
                ),
                // After the change of 29 March: CEST.
                (
                    datetime!(2026-03-31 20:00 UTC),
                    datetime!(2026-04-01 0:00 UTC)
                ),
            ]
        );
        // Offsets are the zone's.
        let first = r
            .occurrences(
                datetime!(2026-03-31 0:00 UTC),
                datetime!(2026-04-02 0:00 UTC),
            )
            .next();
        assert_eq!(first.map(|o| o.start.offset().whole_hours()), Some(2));
        // Across the October change: a Saturday-night window 22:00-04:00 is 7 hours long.
        let r = rec("Europe/Paris", "2026-10-24T22:00", 6 * 3600, "FREQ=WEEKLY");
        let o = r.covering(datetime!(2026-10-25 2:00 UTC));
        assert_eq!(
            o.map(|o| (o.start, o.end)),
            Some((
                datetime!(2026-10-24 20:00 UTC),
                datetime!(2026-10-25 3:00 UTC)
            ))
        );
    }

    #[test]
    fn daily_window_across_both_changes() {
        // Daily 01:30-03:30 local: one real hour on 29 March, three on 25 October 2026.
        let r = rec("Europe/Paris", "2026-01-01T01:30", 2 * 3600, "FREQ=DAILY");
        let march = spans(
            &r,
            datetime!(2026-03-28 0:00 UTC),
            datetime!(2026-03-30 23:00 UTC),
        );
        assert_eq!(
            march,
            [
                (
                    datetime!(2026-03-28 0:30 UTC),
                    datetime!(2026-03-28 2:30 UTC)
                ),
                (
                    datetime!(2026-03-29 0:30 UTC),
                    datetime!(2026-03-29 1:30 UTC)
                ),
                (
                    datetime!(2026-03-29 23:30 UTC),
                    datetime!(2026-03-30 1:30 UTC)
                ),
            ]
        );
        let october = spans(
            &r,
            datetime!(2026-10-24 0:00 UTC),
            datetime!(2026-10-27 0:00 UTC),
        );
        assert_eq!(
            october,
            [
                (
                    datetime!(2026-10-23 23:30 UTC),
                    datetime!(2026-10-24 1:30 UTC)
                ),
                (
                    datetime!(2026-10-24 23:30 UTC),
                    datetime!(2026-10-25 2:30 UTC)
                ),
                (
                    datetime!(2026-10-26 0:30 UTC),
                    datetime!(2026-10-26 2:30 UTC)
                ),
            ]
        );
        // 02:30 on 25 October happens twice: the earlier (CEST) one is taken.
        assert!(r.covering(datetime!(2026-10-25 0:30 UTC)).is_some());
        assert!(r.covering(datetime!(2026-10-25 2:29 UTC)).is_some());
        assert!(r.covering(datetime!(2026-10-25 2:30 UTC)).is_none());
    }

    #[test]
    fn start_in_spring_gap_moves_forward() {
        // 02:30 does not exist on 29 March 2026 in Paris: 03:30 CEST.
        let r = rec(
            "Europe/Paris",
            "2026-03-29T02:30",
            2 * 3600,
            "FREQ=DAILY;COUNT=2",
        );
        assert_eq!(
            spans(
                &r,
                datetime!(2026-03-01 0:00 UTC),
                datetime!(2026-05-01 0:00 UTC)
            ),
            [
                // 03:30 CEST to 04:30 CEST (the wall-clock end).
                (
                    datetime!(2026-03-29 1:30 UTC),
                    datetime!(2026-03-29 2:30 UTC)
                ),
                (
                    datetime!(2026-03-30 0:30 UTC),
                    datetime!(2026-03-30 2:30 UTC)
                ),
            ]
        );
        // A window that sits wholly in the gap keeps its length rather than vanish.
        let r = rec("Europe/Paris", "2026-03-29T02:15", 30 * 60, "FREQ=YEARLY");
        let first = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            )
            .next();
        assert_eq!(
            first.map(|o| (o.start, o.end)),
            Some((
                datetime!(2026-03-29 1:15 UTC),
                datetime!(2026-03-29 1:45 UTC)
            ))
        );
        // An end in the gap moves forward too: 01:00 + 1h30 = 02:30 → 03:30 CEST.
        let r = rec("Europe/Paris", "2026-03-29T01:00", 90 * 60, "FREQ=DAILY");
        assert_eq!(
            r.covering(datetime!(2026-03-29 0:00 UTC)).map(|o| o.end),
            Some(datetime!(2026-03-29 1:30 UTC))
        );
    }

    #[test]
    fn new_york_changes() {
        // Sundays 01:30 for 1 hour: 2 November 2025 is ambiguous (EDT first), 8 March 2026
        // has its 02:00-03:00 gap.
        let r = rec(
            "America/New_York",
            "2025-10-26T01:30",
            3600,
            "FREQ=WEEKLY;BYDAY=SU",
        );
        let got = spans(
            &r,
            datetime!(2025-11-01 0:00 UTC),
            datetime!(2025-11-10 0:00 UTC),
        );
        assert_eq!(
            got,
            [
                (
                    datetime!(2025-11-02 5:30 UTC),
                    datetime!(2025-11-02 7:30 UTC)
                ),
                (
                    datetime!(2025-11-09 6:30 UTC),
                    datetime!(2025-11-09 7:30 UTC)
                ),
            ]
        );
        let r = rec("America/New_York", "2026-03-01T02:30", 3600, "FREQ=WEEKLY");
        let got = spans(
            &r,
            datetime!(2026-03-08 0:00 UTC),
            datetime!(2026-03-09 0:00 UTC),
        );
        assert_eq!(
            got,
            [(
                datetime!(2026-03-08 7:30 UTC),
                datetime!(2026-03-08 7:30 UTC) + Duration::hours(1)
            )]
        );
        assert_eq!(got[0].0.offset().whole_hours(), -4);
    }

    #[test]
    fn count_until_and_first_start() {
        let r = rec(
            "Europe/Paris",
            "2026-01-06T22:00",
            3600,
            "FREQ=WEEKLY;COUNT=3",
        );
        let all = spans(
            &r,
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2030-01-01 0:00 UTC),
        );
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].0, datetime!(2026-01-20 21:00 UTC));
        // COUNT counts occurrences before the query too.
        let late = spans(
            &r,
            datetime!(2026-01-15 0:00 UTC),
            datetime!(2030-01-01 0:00 UTC),
        );
        assert_eq!(late, all[2..]);

        // UNTIL in UTC, inclusive.
        let r = rec(
            "Europe/Paris",
            "2026-01-01T10:00",
            3600,
            "FREQ=DAILY;UNTIL=20260103T090000Z",
        );
        assert_eq!(
            r.occurrences(
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
            .count(),
            3
        );
        let r = rec(
            "Europe/Paris",
            "2026-01-01T10:00",
            3600,
            "FREQ=DAILY;UNTIL=20260103T085959Z",
        );
        assert_eq!(
            r.occurrences(
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
            .count(),
            2
        );
        // UNTIL local, and as a date.
        let r = rec(
            "Europe/Paris",
            "2026-01-01T10:00",
            3600,
            "FREQ=DAILY;UNTIL=20260104T100000",
        );
        assert_eq!(
            r.occurrences(
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
            .count(),
            4
        );
        let r = rec(
            "Europe/Paris",
            "2026-01-01T10:00",
            3600,
            "freq=daily;until=20260105",
        );
        assert_eq!(
            r.occurrences(
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC)
            )
            .count(),
            5
        );

        // The first start counts even when the rule would not produce it (a Monday here).
        let r = rec(
            "Europe/Paris",
            "2026-01-05T22:00",
            3600,
            "FREQ=WEEKLY;BYDAY=TU;COUNT=2",
        );
        let starts: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            )
            .map(|o| o.start)
            .collect();
        assert_eq!(
            starts,
            [
                datetime!(2026-01-05 21:00 UTC),
                datetime!(2026-01-06 21:00 UTC)
            ]
        );
        // Nothing before the first start.
        assert!(r.covering(datetime!(2025-12-30 21:30 UTC)).is_none());
    }

    #[test]
    fn monthly_rules() {
        let r = rec(
            "Europe/Paris",
            "2026-01-30T20:00",
            3600,
            "FREQ=MONTHLY;BYDAY=-1FR",
        );
        let days: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            )
            .map(|o| o.start.to_offset(UtcOffset::UTC).date().day())
            .collect();
        assert_eq!(days, [30, 27, 27, 24, 29, 26, 31, 28, 25, 30, 27, 25]);
        // First Tuesday, every other month.
        let r = rec(
            "Europe/Paris",
            "2026-01-06T21:00",
            3600,
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=1TU",
        );
        let dates: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2026-08-01 0:00 UTC),
            )
            .map(|o| o.start.date())
            .collect();
        assert_eq!(
            dates,
            [
                time::macros::date!(2026 - 01 - 06),
                time::macros::date!(2026 - 03 - 03),
                time::macros::date!(2026 - 05 - 05),
                time::macros::date!(2026 - 07 - 07)
            ]
        );
        // The 31st skips short months; -1 is the last day.
        let r = rec("UTC", "2026-01-31T12:00", 60, "FREQ=MONTHLY");
        let months: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            )
            .map(|o| u8::from(o.start.month()))
            .collect();
        assert_eq!(months, [1, 3, 5, 7, 8, 10, 12]);
        let r = rec(
            "UTC",
            "2026-01-31T12:00",
            60,
            "FREQ=MONTHLY;BYMONTHDAY=-1;BYMONTH=2,4",
        );
        let dates: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2029-01-01 0:00 UTC),
            )
            .map(|o| o.start.date().to_string())
            .collect();
        assert_eq!(
            dates[..4],
            ["2026-01-31", "2026-02-28", "2026-04-30", "2027-02-28"]
        );
        assert!(dates.contains(&"2028-02-29".to_owned()));
        // Fifth Friday: only in months that have one.
        let r = rec("UTC", "2026-01-30T12:00", 60, "FREQ=MONTHLY;BYDAY=5FR");
        let n = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2027-01-01 0:00 UTC),
            )
            .count();
        assert_eq!(n, 4, "Jan, May, Jul, Oct 2026");
    }

    #[test]
    fn yearly_and_across_years() {
        // Last Sunday of March and of October at 02:00: the days of the changes themselves.
        let r = rec(
            "Europe/Paris",
            "2026-03-29T03:00",
            3600,
            "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU",
        );
        let dates: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2028-12-31 0:00 UTC),
            )
            .map(|o| o.start.date().to_string())
            .collect();
        assert_eq!(
            dates,
            [
                "2026-03-29",
                "2026-10-25",
                "2027-03-28",
                "2027-10-31",
                "2028-03-26",
                "2028-10-29"
            ]
        );
        // Weekly query across New Year, and a window spanning midnight on 31 December.
        let r = rec("Europe/Paris", "2025-12-31T22:00", 4 * 3600, "FREQ=WEEKLY");
        let got = spans(
            &r,
            datetime!(2025-12-30 0:00 UTC),
            datetime!(2026-01-10 0:00 UTC),
        );
        assert_eq!(
            got,
            [
                (
                    datetime!(2025-12-31 21:00 UTC),
                    datetime!(2026-01-01 1:00 UTC)
                ),
                (
                    datetime!(2026-01-07 21:00 UTC),
                    datetime!(2026-01-08 1:00 UTC)
                ),
            ]
        );
        // Far from the first start, without materialising the years between.
        let r = rec("Europe/Paris", "2026-01-01T08:00", 3600, "FREQ=DAILY");
        let got = spans(
            &r,
            datetime!(2526-07-01 0:00 UTC),
            datetime!(2526-07-02 0:00 UTC),
        );
        assert_eq!(
            got,
            [(
                datetime!(2526-07-01 6:00 UTC),
                datetime!(2526-07-01 7:00 UTC)
            )]
        );
        // Yearly 29 February: leap years only.
        let r = rec("UTC", "2024-02-29T00:00", 60, "FREQ=YEARLY");
        let years: Vec<_> = r
            .occurrences(
                datetime!(2024-01-01 0:00 UTC),
                datetime!(2033-01-01 0:00 UTC),
            )
            .map(|o| o.start.year())
            .collect();
        assert_eq!(years, [2024, 2028, 2032]);
        // A yearly ordinal counts in the year without BYMONTH: the 20th Monday of 2026.
        let r = rec(
            "UTC",
            "2026-01-05T00:00",
            60,
            "FREQ=YEARLY;BYDAY=20MO;COUNT=2",
        );
        let dates: Vec<_> = r
            .occurrences(
                datetime!(2026-01-01 0:00 UTC),
                datetime!(2030-01-01 0:00 UTC),
            )
            .map(|o| o.start.date().to_string())
            .collect();
        assert_eq!(dates, ["2026-01-05", "2026-05-18"]);
    }

    #[test]
    fn weekly_interval_and_wkst() {
        // Every other week on Tuesday and Sunday; WKST decides which Sunday pairs with
        // which Tuesday (RFC 5545 §3.3.10 example).
        let dates = |rrule: &str| -> Vec<String> {
            let r = rec("UTC", "1997-08-05T09:00", 60, rrule);
            r.occurrences(
                datetime!(1997-01-01 0:00 UTC),
                datetime!(1998-01-01 0:00 UTC),
            )
            .map(|o| o.start.date().to_string())
            .collect()
        };
        assert_eq!(
            dates("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO"),
            ["1997-08-05", "1997-08-10", "1997-08-19", "1997-08-24"]
        );
        assert_eq!(
            dates("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU"),
            ["1997-08-05", "1997-08-17", "1997-08-19", "1997-08-31"]
        );
    }

    #[test]
    fn daily_with_filters_and_overlapping_occurrences() {
        // Working days only.
        let r = rec(
            "Europe/Paris",
            "2026-01-05T08:00",
            3600,
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
        );
        let n = r
            .occurrences(
                datetime!(2026-01-05 0:00 UTC),
                datetime!(2026-01-19 0:00 UTC),
            )
            .count();
        assert_eq!(n, 10);
        // Two-day windows starting every day overlap; covering gives the earliest.
        let r = rec("UTC", "2026-01-01T00:00", 2 * 86_400, "FREQ=DAILY");
        let o = r.covering(datetime!(2026-01-10 12:00 UTC));
        assert_eq!(o.map(|o| o.start), Some(datetime!(2026-01-09 0:00 UTC)));
        // A 31-day window is found from its last day.
        let r = rec(
            "UTC",
            "2026-01-01T00:00",
            MAX_DURATION_SECONDS,
            "FREQ=YEARLY",
        );
        assert!(r.covering(datetime!(2026-01-31 23:59 UTC)).is_some());
        assert!(r.covering(datetime!(2026-02-01 0:00 UTC)).is_none());
    }

    #[test]
    fn empty_and_reversed_ranges() {
        let r = rec("UTC", "2026-01-01T00:00", 60, "FREQ=DAILY");
        let t = datetime!(2026-02-01 0:00 UTC);
        assert_eq!(r.occurrences(t, t).count(), 0);
        assert_eq!(r.occurrences(t, t - Duration::days(3)).count(), 0);
        // Extreme instants never panic.
        let min = datetime!(-9999-01-01 0:00 UTC);
        let max = datetime!(9999-12-31 23:59:59.999_999_999 UTC);
        assert_eq!(
            r.occurrences(min, datetime!(2026-01-03 0:00 UTC)).count(),
            2
        );
        assert!(r.covering(max).is_none());
        assert!(r.covering(min).is_none());
        // jiff's instants end on 9999-12-30 at 22:00 UTC: later occurrences are not made.
        let late = rec("UTC", "9999-12-29T00:00", 3600, "FREQ=DAILY");
        assert_eq!(late.occurrences(min, max).count(), 2);
    }

    #[test]
    fn rules_that_never_match_again_terminate() {
        // Only the first start: no later 30 February, no leap year every four from 2025.
        for rrule in [
            "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
            "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30;COUNT=3",
        ] {
            let r = rec("Europe/Paris", "2025-02-01T10:00", 3600, rrule);
            let n = r
                .occurrences(
                    datetime!(2025-01-01 0:00 UTC),
                    datetime!(9999-12-31 0:00 UTC),
                )
                .count();
            assert_eq!(n, 1, "{rrule}");
        }
    }

    #[test]
    fn from_schedule() {
        let s = Schedule::Recurring {
            zone: "Europe/Paris".into(),
            first_start_local: "2026-01-06T22:00:00".into(),
            duration_seconds: 3600,
            rrule: "RRULE:FREQ=WEEKLY;BYDAY=TU".into(),
        };
        assert!(matches!(Recurrence::from_schedule(&s), Ok(Some(_))));
        let s = Schedule::OneOff {
            starts_at: datetime!(2026-01-01 0:00 UTC),
            ends_at: datetime!(2026-01-02 0:00 UTC),
        };
        assert!(matches!(Recurrence::from_schedule(&s), Ok(None)));
    }

    #[test]
    fn every_error_path() {
        use RecurrenceError as E;
        let err = |zone: &str, first: &str, duration: u32, rrule: &str| match Recurrence::new(
            zone, first, duration, rrule,
        ) {
            Ok(_) => panic!("accepted {zone} {first} {duration} {rrule}"),
            Err(e) => e,
        };
        let ok = ("Europe/Paris", "2026-01-06T22:00", 3600, "FREQ=WEEKLY");
        assert!(Recurrence::new(ok.0, ok.1, ok.2, ok.3).is_ok());

        assert!(matches!(
            err("Europe/Pariss", ok.1, ok.2, ok.3),
            E::UnknownZone { .. }
        ));
        assert!(matches!(err("", ok.1, ok.2, ok.3), E::UnknownZone { .. }));
        for bad in [
            "2026-01-06 22:00",
            "2026-01-06T22",
            "2026-13-01T22:00",
            "2026-02-29T22:00",
            "2026-01-06T24:00",
            "2026-01-06T22:60",
            "2026-01-06T22:00:60",
            "0000-01-06T22:00",
            "2026-01-06T22:00Z",
            "2026-01-06T22:00:00+01:00",
            "２０２６-01-06T22:00",
            "",
        ] {
            assert!(
                matches!(err(ok.0, bad, ok.2, ok.3), E::InvalidLocalDateTime { .. }),
                "{bad}"
            );
        }
        assert_eq!(err(ok.0, ok.1, 0, ok.3), E::ZeroDuration);
        assert!(matches!(
            err(ok.0, ok.1, MAX_DURATION_SECONDS + 1, ok.3),
            E::DurationTooLong { .. }
        ));

        let rule_err = |rrule: &str| err(ok.0, ok.1, ok.2, rrule);
        assert_eq!(rule_err(""), E::MissingFreq);
        assert_eq!(rule_err("INTERVAL=2"), E::MissingFreq);
        let e = rule_err("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=-1");
        assert_eq!(e.to_string(), "unsupported RRULE part BYSETPOS");
        for part in [
            "BYHOUR=3",
            "BYMINUTE=0",
            "BYSECOND=0",
            "BYWEEKNO=1",
            "BYYEARDAY=1",
            "X-FOO=1",
            "RSCALE=GREGORIAN",
        ] {
            assert!(
                matches!(
                    rule_err(&format!("FREQ=DAILY;{part}")),
                    E::UnsupportedPart { .. }
                ),
                "{part}"
            );
        }
        assert!(matches!(
            rule_err("FREQ=HOURLY"),
            E::UnsupportedFrequency { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=FORTNIGHTLY"),
            E::InvalidPart { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=DAILY;COUNT"),
            E::MalformedPart { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=DAILY;FREQ=WEEKLY"),
            E::DuplicatePart { .. }
        ));
        for bad in [
            "INTERVAL=0",
            "INTERVAL=-1",
            "INTERVAL=10001",
            "INTERVAL=x",
            "COUNT=0",
            "COUNT=99999999999",
            "UNTIL=2026-12-31",
            "UNTIL=20261331",
            "UNTIL=20261231T250000Z",
            "BYMONTH=13",
            "BYMONTH=0",
            "BYMONTH=1,,2",
            "BYMONTHDAY=32",
            "BYMONTHDAY=0",
            "BYMONTHDAY=-32",
            "BYDAY=XX",
            "BYDAY=0MO",
            "BYDAY=1",
            "BYDAY=+-1MO",
            "BYDAY=é",
            "WKST=XX",
        ] {
            assert!(
                matches!(
                    rule_err(&format!("FREQ=MONTHLY;{bad}")),
                    E::InvalidPart { .. }
                ),
                "{bad}"
            );
        }
        assert_eq!(
            rule_err("FREQ=DAILY;COUNT=2;UNTIL=20270101"),
            E::CountAndUntil
        );
        assert!(matches!(
            rule_err("FREQ=WEEKLY;BYMONTHDAY=1"),
            E::PartNotAllowed {
                part: "BYMONTHDAY",
                ..
            }
        ));
        assert!(matches!(
            rule_err("FREQ=WEEKLY;BYDAY=1TU"),
            E::PartNotAllowed { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=DAILY;BYDAY=-1FR"),
            E::PartNotAllowed { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=MONTHLY;BYDAY=6TU"),
            E::InvalidPart { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=YEARLY;BYMONTH=1;BYDAY=6TU"),
            E::InvalidPart { .. }
        ));
        assert!(Recurrence::new(ok.0, ok.1, ok.2, "FREQ=YEARLY;BYDAY=53TU").is_ok());
        assert!(matches!(
            rule_err("FREQ=WEEKLY;UNTIL=20260106T205959Z"),
            E::UntilBeforeStart { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=WEEKLY;UNTIL=20260105"),
            E::UntilBeforeStart { .. }
        ));
        assert!(matches!(
            rule_err("FREQ=WEEKLY;UNTIL=20260106T215959"),
            E::UntilBeforeStart { .. }
        ));
        assert!(Recurrence::new(ok.0, ok.1, ok.2, "FREQ=WEEKLY;UNTIL=20260106T210000Z").is_ok());
        // Messages name what failed.
        assert_eq!(
            err("Mars/Olympus", ok.1, ok.2, ok.3).to_string(),
            "unknown time zone \"Mars/Olympus\""
        );
        assert_eq!(
            rule_err("FREQ=DAILY;INTERVAL=0").to_string(),
            "invalid RRULE part INTERVAL=\"0\": must be between 1 and 10000"
        );
    }

    /// A few windows of different shapes, for the properties.
    fn sample(index: usize) -> Recurrence {
        let samples = [
            (
                "Europe/Paris",
                "2024-01-02T22:00",
                4 * 3600,
                "FREQ=WEEKLY;BYDAY=TU",
            ),
            ("Europe/Paris", "2024-01-01T01:30", 2 * 3600, "FREQ=DAILY"),
            (
                "Europe/Paris",
                "2024-03-31T02:30",
                3600,
                "FREQ=DAILY;INTERVAL=3",
            ),
            (
                "Europe/Paris",
                "2024-01-26T20:00",
                10 * 3600,
                "FREQ=MONTHLY;BYDAY=-1FR",
            ),
            (
                "America/New_York",
                "2024-01-07T01:30",
                3600,
                "FREQ=WEEKLY;BYDAY=SU,WE;WKST=SU;INTERVAL=2",
            ),
            (
                "Europe/Paris",
                "2024-01-01T00:00",
                20 * 86_400,
                "FREQ=MONTHLY;BYMONTHDAY=1,-1",
            ),
            (
                "Australia/Lord_Howe",
                "2024-01-01T01:45",
                5400,
                "FREQ=DAILY;BYMONTH=4,10",
            ),
            (
                "Europe/Paris",
                "2024-02-29T23:00",
                MAX_DURATION_SECONDS,
                "FREQ=YEARLY",
            ),
            (
                "Europe/Paris",
                "2024-01-05T12:00",
                3600,
                "FREQ=WEEKLY;BYDAY=FR;COUNT=50",
            ),
            (
                "Europe/Paris",
                "2024-01-05T12:00",
                3600,
                "FREQ=DAILY;UNTIL=20250301T000000Z",
            ),
        ];
        let (zone, first, duration, rrule) = samples[index % samples.len()];
        rec(zone, first, duration, rrule)
    }

    const SAMPLES: usize = 10;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn covering_agrees_with_occurrences(index in 0..SAMPLES, second in 1_700_000_000i64..1_800_000_000) {
            let r = sample(index);
            let Ok(t) = OffsetDateTime::from_unix_timestamp(second) else { return Ok(()) };
            let from = t - Duration::days(32);
            let to = t + Duration::seconds(1);
            let listed = r.occurrences(from, to).find(|o| o.contains(t));
            let covering = r.covering(t);
            prop_assert_eq!(covering.is_some(), listed.is_some());
            prop_assert_eq!(covering, listed);
        }

        #[test]
        fn skipping_ahead_matches_expanding_from_the_start(
            index in 0..SAMPLES,
            second in 1_700_000_000i64..1_800_000_000,
            span_hours in 1i64..2000,
        ) {
            let r = sample(index);
            let Ok(from) = OffsetDateTime::from_unix_timestamp(second) else { return Ok(()) };
            let to = from + Duration::hours(span_hours);
            let lazy: Vec<_> = r.occurrences(from, to).collect();
            let everything: Vec<_> = r
                .occurrences(datetime!(2023-01-01 0:00 UTC), to)
                .filter(|o| o.overlaps(from, to))
                .collect();
            prop_assert_eq!(&lazy, &everything);
            for pair in lazy.windows(2) {
                prop_assert!(pair[0].start < pair[1].start);
            }
            for o in &lazy {
                prop_assert!(o.start < o.end);
                prop_assert!(o.overlaps(from, to));
            }
        }
    }
}
