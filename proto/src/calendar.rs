//! French public holidays and the hospital time ranges of the charters.
//!
//! Charter 002 §5.1 defines off-hours work: the **night range 22:00-07:00**, **weekends**
//! and **French public holidays**, in Europe/Paris local time; it also reserves **02:00-06:00**
//! for planned cuts. The auditor uses these helpers to decide whether an intervention was
//! off-hours (its report is then due the same day).
//!
//! Public holidays are those of the Labour Code (art. L3133-1) for metropolitan France,
//! as the law stands today (not as it stood in a given past year): 1 January, Easter
//! Monday, 1 May, 8 May, Ascension (Easter + 39 days), Whit Monday (Easter + 50 days),
//! 14 July, 15 August, 1 November, 11 November and 25 December. [`Region::AlsaceMoselle`]
//! adds Good Friday and 26 December (local law of Bas-Rhin, Haut-Rhin and Moselle). Easter
//! is computed with the Gregorian computus (Meeus/Jones/Butcher). Names are French.
//!
//! Ranges are half-open: 22:00 is night, 07:00 is not; 02:00 is in the cut range, 06:00
//! is not.

use time::{Date, Duration, Month, OffsetDateTime, Time, Weekday};

use crate::recurrence;

/// The zone of French hospitals' local time.
pub const PARIS: &str = "Europe/Paris";

/// Why off-hours could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The zone is not in the bundled time zone database.
    #[error("unknown time zone {zone:?}")]
    UnknownZone {
        /// The name given.
        zone: String,
    },
    /// The instant cannot be expressed in the zone (beyond the years ±9999).
    #[error("instant {at} out of range for time zone {zone}")]
    OutOfRange {
        /// The instant.
        at: OffsetDateTime,
        /// The zone.
        zone: String,
    },
}

/// Which list of public holidays applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Region {
    /// Metropolitan France.
    #[default]
    Metropolitan,
    /// Alsace-Moselle: metropolitan holidays plus Good Friday and 26 December.
    AlsaceMoselle,
}

/// Easter Sunday of a Gregorian year, `None` outside the years `time` represents.
///
/// # Examples
///
/// ```
/// use proto::calendar::easter_sunday;
/// use time::macros::date;
///
/// assert_eq!(easter_sunday(2026), Some(date!(2026-04-05)));
/// ```
pub fn easter_sunday(year: i32) -> Option<Date> {
    // Anonymous Gregorian algorithm (Meeus, Jones, Butcher).
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

/// The public holidays of metropolitan France in a year, in date order, with their
/// French names.
///
/// # Examples
///
/// ```
/// use proto::calendar::public_holidays;
/// use time::macros::date;
///
/// let holidays = public_holidays(2026);
/// assert_eq!(holidays.len(), 11);
/// assert!(holidays.contains(&(date!(2026-05-14), "Ascension")));
/// ```
pub fn public_holidays(year: i32) -> Vec<(Date, &'static str)> {
    public_holidays_in(year, Region::Metropolitan)
}

/// The public holidays of a region in a year, in date order, with their French names.
pub fn public_holidays_in(year: i32, region: Region) -> Vec<(Date, &'static str)> {
    let mut out: Vec<(Date, &'static str)> = FIXED
        .iter()
        .chain(if region == Region::AlsaceMoselle {
            FIXED_ALSACE_MOSELLE.iter()
        } else {
            [].iter()
        })
        .filter_map(|&(month, day, name)| {
            Date::from_calendar_date(year, month, day)
                .ok()
                .map(|d| (d, name))
        })
        .collect();
    if let Some(easter) = easter_sunday(year) {
        for &(offset, name, regional) in MOVABLE {
            if regional && region != Region::AlsaceMoselle {
                continue;
            }
            if let Some(date) = easter.checked_add(Duration::days(offset)) {
                out.push((date, name));
            }
        }
    }
    out.sort_unstable();
    out
}

/// The French name of the public holiday on `date`, if it is one.
///
/// # Examples
///
/// ```
/// use proto::calendar::{holiday_name, Region};
/// use time::macros::date;
///
/// assert_eq!(holiday_name(date!(2026-05-25), Region::Metropolitan), Some("Lundi de Pentecôte"));
/// assert_eq!(holiday_name(date!(2026-12-26), Region::Metropolitan), None);
/// assert_eq!(holiday_name(date!(2026-12-26), Region::AlsaceMoselle), Some("Saint-Étienne"));
/// ```
pub fn holiday_name(date: Date, region: Region) -> Option<&'static str> {
    let fixed = FIXED.iter().chain(if region == Region::AlsaceMoselle {
        FIXED_ALSACE_MOSELLE.iter()
    } else {
        [].iter()
    });
    for &(month, day, name) in fixed {
        if date.month() == month && date.day() == day {
            return Some(name);
        }
    }
    let easter = easter_sunday(date.year())?;
    let offset = (date - easter).whole_days();
    MOVABLE
        .iter()
        .find(|&&(o, _, regional)| o == offset && (!regional || region == Region::AlsaceMoselle))
        .map(|&(_, name, _)| name)
}

/// Whether `date` is a public holiday in metropolitan France.
pub fn is_public_holiday(date: Date) -> bool {
    holiday_name(date, Region::Metropolitan).is_some()
}

/// Whether `date` is a public holiday in the region.
pub fn is_public_holiday_in(date: Date, region: Region) -> bool {
    holiday_name(date, region).is_some()
}

/// Whether a local time of day is in the night range 22:00-07:00.
pub fn is_night(local: Time) -> bool {
    local.hour() >= 22 || local.hour() < 7
}

/// Whether a local time of day is in the planned-cut range 02:00-06:00.
pub fn is_planned_cut(local: Time) -> bool {
    (2..6).contains(&local.hour())
}

/// Why an instant is off-hours, in a zone's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffHours {
    /// The local time is in 22:00-07:00.
    pub night: bool,
    /// The local date is a Saturday or a Sunday.
    pub weekend: bool,
    /// The local date is a public holiday: its name.
    pub holiday: Option<&'static str>,
}

impl OffHours {
    /// Whether any reason applies.
    pub fn any(&self) -> bool {
        self.night || self.weekend || self.holiday.is_some()
    }
}

/// The reasons `at` is off-hours in `zone` (metropolitan holidays).
///
/// # Errors
///
/// [`CalendarError`] when the zone is unknown or the instant out of its range.
///
/// # Examples
///
/// ```
/// use proto::calendar::{off_hours, PARIS};
/// use time::macros::datetime;
///
/// // 14 July 2026, 10:00 in Paris: a Tuesday, a holiday, not night.
/// let why = off_hours(datetime!(2026-07-14 8:00 UTC), PARIS)?;
/// assert_eq!((why.night, why.weekend, why.holiday), (false, false, Some("Fête nationale")));
/// # Ok::<(), proto::calendar::CalendarError>(())
/// ```
pub fn off_hours(at: OffsetDateTime, zone: &str) -> Result<OffHours, CalendarError> {
    let local = to_zone(at, zone)?;
    Ok(OffHours {
        night: is_night(local.time()),
        weekend: matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday),
        holiday: holiday_name(local.date(), Region::Metropolitan),
    })
}

/// Whether `at` is at night, on a weekend or on a public holiday in `zone`'s local time.
///
/// # Errors
///
/// As [`off_hours`].
///
/// # Examples
///
/// ```
/// use proto::calendar::{is_off_hours, PARIS};
/// use time::macros::datetime;
///
/// assert!(!is_off_hours(datetime!(2026-03-10 9:00 UTC), PARIS)?); // Tuesday 10:00
/// assert!(is_off_hours(datetime!(2026-03-10 21:00 UTC), PARIS)?); // Tuesday 22:00
/// # Ok::<(), proto::calendar::CalendarError>(())
/// ```
pub fn is_off_hours(at: OffsetDateTime, zone: &str) -> Result<bool, CalendarError> {
    off_hours(at, zone).map(|o| o.any())
}

/// The same instant with `zone`'s offset at that instant, for local display and local
/// date and time.
///
/// # Errors
///
/// [`CalendarError`] when the zone is unknown or the instant out of its range.
pub fn to_zone(at: OffsetDateTime, zone: &str) -> Result<OffsetDateTime, CalendarError> {
    let tz = recurrence::time_zone(zone).ok_or_else(|| CalendarError::UnknownZone {
        zone: zone.to_owned(),
    })?;
    recurrence::to_timestamp(at)
        .and_then(|ts| recurrence::to_offset_date_time(ts, &tz))
        .ok_or_else(|| CalendarError::OutOfRange {
            at,
            zone: zone.to_owned(),
        })
}

const FIXED: &[(Month, u8, &str)] = &[
    (Month::January, 1, "Jour de l'an"),
    (Month::May, 1, "Fête du Travail"),
    (Month::May, 8, "Victoire 1945"),
    (Month::July, 14, "Fête nationale"),
    (Month::August, 15, "Assomption"),
    (Month::November, 1, "Toussaint"),
    (Month::November, 11, "Armistice 1918"),
    (Month::December, 25, "Noël"),
];

const FIXED_ALSACE_MOSELLE: &[(Month, u8, &str)] = &[(Month::December, 26, "Saint-Étienne")];

/// Days after Easter Sunday, name, and whether only Alsace-Moselle keeps it.
const MOVABLE: &[(i64, &str, bool)] = &[
    (-2, "Vendredi saint", true),
    (1, "Lundi de Pâques", false),
    (39, "Ascension", false),
    (50, "Lundi de Pentecôte", false),
];

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    #[test]
    fn easter_known_dates() {
        for (year, easter) in [
            (1818, date!(1818 - 03 - 22)),
            (1943, date!(1943 - 04 - 25)),
            (2000, date!(2000 - 04 - 23)),
            (2008, date!(2008 - 03 - 23)),
            (2019, date!(2019 - 04 - 21)),
            (2024, date!(2024 - 03 - 31)),
            (2025, date!(2025 - 04 - 20)),
            (2026, date!(2026 - 04 - 05)),
            (2027, date!(2027 - 03 - 28)),
            (2038, date!(2038 - 04 - 25)),
            (2285, date!(2285 - 03 - 22)),
        ] {
            assert_eq!(easter_sunday(year), Some(easter), "{year}");
        }
        // Always a Sunday, between 22 March and 25 April.
        for year in 1583..=4099 {
            let Some(e) = easter_sunday(year) else {
                panic!("no Easter in {year}");
            };
            assert_eq!(e.weekday(), Weekday::Sunday, "{year}");
            assert!(
                (e.month() == Month::March && e.day() >= 22)
                    || (e.month() == Month::April && e.day() <= 25)
            );
        }
        assert_eq!(easter_sunday(100_000), None);
    }

    #[test]
    fn holidays_2026() {
        let got = public_holidays(2026);
        assert_eq!(
            got,
            [
                (date!(2026 - 01 - 01), "Jour de l'an"),
                (date!(2026 - 04 - 06), "Lundi de Pâques"),
                (date!(2026 - 05 - 01), "Fête du Travail"),
                (date!(2026 - 05 - 08), "Victoire 1945"),
                (date!(2026 - 05 - 14), "Ascension"),
                (date!(2026 - 05 - 25), "Lundi de Pentecôte"),
                (date!(2026 - 07 - 14), "Fête nationale"),
                (date!(2026 - 08 - 15), "Assomption"),
                (date!(2026 - 11 - 01), "Toussaint"),
                (date!(2026 - 11 - 11), "Armistice 1918"),
                (date!(2026 - 12 - 25), "Noël"),
            ]
        );
        for (d, _) in &got {
            assert!(is_public_holiday(*d), "{d}");
        }
        let alsace = public_holidays_in(2026, Region::AlsaceMoselle);
        assert_eq!(alsace.len(), 13);
        assert!(alsace.contains(&(date!(2026 - 04 - 03), "Vendredi saint")));
        assert!(alsace.contains(&(date!(2026 - 12 - 26), "Saint-Étienne")));
        assert!(alsace.is_sorted());
        assert!(!is_public_holiday(date!(2026 - 04 - 03)));
        assert!(is_public_holiday_in(
            date!(2026 - 04 - 03),
            Region::AlsaceMoselle
        ));
    }

    #[test]
    fn holidays_other_years() {
        assert!(
            is_public_holiday(date!(2024 - 04 - 01)),
            "Easter Monday 2024"
        );
        assert!(is_public_holiday(date!(2024 - 05 - 09)), "Ascension 2024");
        assert!(is_public_holiday(date!(2024 - 05 - 20)), "Whit Monday 2024");
        assert!(
            is_public_holiday(date!(2025 - 04 - 21)),
            "Easter Monday 2025"
        );
        assert!(is_public_holiday(date!(2025 - 05 - 29)), "Ascension 2025");
        assert!(is_public_holiday(date!(2025 - 06 - 09)), "Whit Monday 2025");
        assert!(
            is_public_holiday(date!(2027 - 03 - 29)),
            "Easter Monday 2027"
        );
        // In 2008 Ascension fell on 1 May: the date is listed twice, named by the fixed holiday.
        assert_eq!(
            holiday_name(date!(2008 - 05 - 01), Region::Metropolitan),
            Some("Fête du Travail")
        );
        assert_eq!(
            public_holidays(2008)
                .iter()
                .filter(|(d, _)| *d == date!(2008 - 05 - 01))
                .count(),
            2
        );
        for d in [
            date!(2026 - 04 - 05),
            date!(2026 - 04 - 07),
            date!(2026 - 05 - 24),
            date!(2026 - 12 - 24),
            date!(2026 - 12 - 26),
            date!(2026 - 03 - 10),
        ] {
            assert!(!is_public_holiday(d), "{d}");
        }
        // Extreme years do not panic.
        assert_eq!(public_holidays(9999).len(), 11);
        assert!(!public_holidays(-9999).is_empty());
    }

    #[test]
    fn night_and_cut_ranges() {
        assert!(is_night(time!(22:00)));
        assert!(is_night(time!(23:59:59)));
        assert!(is_night(time!(0:00)));
        assert!(is_night(time!(6:59:59)));
        assert!(!is_night(time!(7:00)));
        assert!(!is_night(time!(21:59:59)));
        assert!(!is_night(time!(12:00)));
        assert!(is_planned_cut(time!(2:00)));
        assert!(is_planned_cut(time!(5:59)));
        assert!(!is_planned_cut(time!(6:00)));
        assert!(!is_planned_cut(time!(1:59)));
    }

    #[test]
    fn off_hours_in_paris() {
        let check = |at: OffsetDateTime| match off_hours(at, PARIS) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        // Tuesday 10 March 2026, 10:00 CET: working hours.
        let o = check(datetime!(2026-03-10 9:00 UTC));
        assert!(!o.any());
        // 21:00 UTC is 22:00 CET: night; in summer 21:00 UTC is 23:00 CEST, 05:00 UTC 07:00.
        assert!(check(datetime!(2026-03-10 21:00 UTC)).night);
        assert!(!check(datetime!(2026-03-10 20:59 UTC)).night);
        assert!(!check(datetime!(2026-07-07 5:00 UTC)).night);
        assert!(check(datetime!(2026-07-07 4:59 UTC)).night);
        // Saturday.
        let o = check(datetime!(2026-03-14 10:00 UTC));
        assert!(o.weekend && !o.night && o.holiday.is_none());
        // Ascension 2026 (Thursday), by local date: 13 May 22:30 UTC is 14 May 00:30 CEST.
        assert_eq!(
            check(datetime!(2026-05-13 22:30 UTC)).holiday,
            Some("Ascension")
        );
        assert_eq!(check(datetime!(2026-05-13 21:30 UTC)).holiday, None);
        assert_eq!(
            is_off_hours(datetime!(2026-05-14 10:00 UTC), PARIS),
            Ok(true)
        );
        assert_eq!(
            is_off_hours(datetime!(2026-05-15 10:00 UTC), PARIS),
            Ok(false)
        );
        // Another zone: 10:00 UTC is 06:00 in New York.
        assert_eq!(
            is_off_hours(datetime!(2026-03-10 10:00 UTC), "America/New_York"),
            Ok(true)
        );
        assert!(matches!(
            off_hours(datetime!(2026-03-10 10:00 UTC), "Europe/Pariss"),
            Err(CalendarError::UnknownZone { .. })
        ));
        assert!(matches!(
            off_hours(datetime!(9999-12-31 23:00 UTC), PARIS),
            Err(CalendarError::OutOfRange { .. })
        ));
    }

    #[test]
    fn to_zone_keeps_the_instant() {
        let at = datetime!(2026-07-14 8:00 UTC);
        let Ok(local) = to_zone(at, PARIS) else {
            panic!("Paris is bundled");
        };
        assert_eq!(local, at);
        assert_eq!(local.offset().whole_hours(), 2);
        assert_eq!(local.hour(), 10);
    }
}
