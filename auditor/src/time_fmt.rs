//! Instants for people: Europe/Paris local time with the offset shown; RFC 3339 for
//! machines.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-03-10 22:15:00 +01:00`: the instant in Paris local time, with its offset.
pub fn paris(at: OffsetDateTime) -> String {
    let local = proto::calendar::to_zone(at, proto::calendar::PARIS).unwrap_or(at);
    let (h, m, _) = local.offset().as_hms();
    let sign = if local.offset().is_negative() {
        '-'
    } else {
        '+'
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}:{:02}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        h.unsigned_abs(),
        m.unsigned_abs()
    )
}

/// The Paris local date of an instant.
pub fn paris_date(at: OffsetDateTime) -> time::Date {
    proto::calendar::to_zone(at, proto::calendar::PARIS)
        .unwrap_or(at)
        .date()
}

/// RFC 3339 in Paris local time (`2026-03-10T22:15:00+01:00`).
pub fn rfc3339(at: OffsetDateTime) -> String {
    let local = proto::calendar::to_zone(at, proto::calendar::PARIS).unwrap_or(at);
    local.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Parses an instant given on the command line or in a file: RFC 3339, or a Paris local
/// `YYYY-MM-DD[THH:MM[:SS]]` (a date alone is its midnight).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let text = text.trim();
    let local = if text.len() == 10 {
        format!("{text}T00:00")
    } else {
        text.replace(' ', "T")
    };
    // Resolve through a one-off recurrence of one second: the proto rules for gaps and folds.
    let r =
        proto::recurrence::Recurrence::new(proto::calendar::PARIS, &local, 1, "FREQ=DAILY;COUNT=1")
            .ok()?;
    let far_past = OffsetDateTime::UNIX_EPOCH;
    let far_future = far_past + time::Duration::days(365 * 200);
    r.occurrences(far_past, far_future).next().map(|o| o.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn paris_shows_the_offset_of_the_season() {
        assert_eq!(
            paris(datetime!(2026-01-10 21:00 UTC)),
            "2026-01-10 22:00:00 +01:00"
        );
        assert_eq!(
            paris(datetime!(2026-07-10 21:00 UTC)),
            "2026-07-10 23:00:00 +02:00"
        );
    }

    #[test]
    fn parses_rfc3339_and_paris_local() {
        assert_eq!(
            parse_instant("2026-03-10T22:00:00Z"),
            Some(datetime!(2026-03-10 22:00 UTC))
        );
        assert_eq!(
            parse_instant("2026-03-10T22:00"),
            Some(datetime!(2026-03-10 21:00 UTC))
        );
        assert_eq!(
            parse_instant("2026-07-01"),
            Some(datetime!(2026-06-30 22:00 UTC))
        );
        assert_eq!(parse_instant("2026-13-01"), None);
    }
}
