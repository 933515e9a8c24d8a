//! FortiGate SSL-VPN event logs (FortiOS 6.x/7.x key=value syslog format).
//!
//! Understood: messages whose pairs include `type="event"`, `subtype="vpn"`, an
//! `action` below and, when present, a `tunneltype` starting with `ssl` (`ssl-tunnel`,
//! `ssl-web`); IPsec and other VPN events are not claimed.
//!
//! ```text
//! date=2026-03-12 time=14:02:11 devname="FGT-CHU" devid="FG100F0000000000" eventtime=1773320531123456789
//!   tz="+0100" logid="0101039947" type="event" subtype="vpn" level="information" vd="root"
//!   logdesc="SSL VPN tunnel up" action="tunnel-up" tunneltype="ssl-tunnel" tunnelid=1234
//!   remip=203.0.113.7 tunnelip=10.212.134.200 user="jdoe" group="vendor-acme" dst_host="N/A"
//!   reason="tunnel established" msg="SSL tunnel established"
//! ```
//!
//! | `action` (`logid`) | kind |
//! |---|---|
//! | `tunnel-up` (0101039947) | tunnel up |
//! | `tunnel-down` (0101039948) | tunnel down |
//! | `ssl-login-fail` (0101039426) | auth failure, reason = `reason`, else `msg` |
//!
//! Fields: `account` = `user`; `protocol` = `tunneltype` (`ssl-tunnel`, `ssl-web`), else
//! `ssl-vpn`; `source_addr` = `remip`; `session_id` = `tunnelid` (absent when `0`, as on
//! login failures); `occurred_at` = `eventtime` (seconds to nanoseconds since the epoch,
//! by FortiOS version) shown in the offset `tz`, else `date` + `time` + `tz`. `N/A`
//! values count as absent. `group` (a user group, not reliably a vendor) is not used.
//!
//! Factors: none. FortiGate's tunnel logs do not say how the user authenticated
//! (password, certificate, FortiToken), so the second factor of an SSL-VPN session cannot
//! be proven from them.

use std::borrow::Cow;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::model::EventKind;

use super::fields::{Pairs, Pattern, lowercase, parse_ip, parse_time};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "fortigate";

/// Maps a FortiGate SSL-VPN event log (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    let msg = input.msg;
    // Cheap rejection before splitting pairs.
    static SUBTYPE: Pattern = Pattern::new("subtype=");
    static ACTION: Pattern = Pattern::new("action=");
    if !SUBTYPE.is_in(msg) || !ACTION.is_in(msg) {
        return None;
    }
    let p = Pairs::parse(msg);
    if p.get("type") != Some("event") || p.get("subtype") != Some("vpn") {
        return None;
    }
    let tunneltype = p.text("tunneltype");
    if tunneltype.as_ref().is_some_and(|t| !t.starts_with("ssl")) {
        return None;
    }
    let kind = match p.get("action")? {
        "tunnel-up" => EventKind::TunnelUp,
        "tunnel-down" => EventKind::TunnelDown,
        "ssl-login-fail" => EventKind::AuthFailure {
            reason: p
                .value("reason")
                .or_else(|| p.value("msg"))
                .unwrap_or("ssl-login-fail")
                .to_owned(),
        },
        _ => return None,
    };
    let mut m = Mapped::new(NAME, kind);
    m.account = p.text("user");
    m.protocol = Some(lowercase(tunneltype.unwrap_or(Cow::Borrowed("ssl-vpn"))));
    m.source_addr = p.value("remip").and_then(parse_ip);
    m.session_id = p.text("tunnelid").filter(|id| id != "0");
    m.occurred_at = occurred_at(&p);
    Some(m)
}

fn occurred_at(p: &Pairs<'_>) -> Option<OffsetDateTime> {
    let offset = p.value("tz").and_then(parse_offset);
    if let Some(t) = p.value("eventtime").and_then(parse_time) {
        return Some(match offset {
            Some(offset) => t.to_offset(offset),
            None => t,
        });
    }
    let date = parse_date(p.value("date")?)?;
    let time = parse_clock(p.value("time")?)?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset?))
}

/// `+0100`, `-0530`, `+01:00`.
fn parse_offset(text: &str) -> Option<UtcOffset> {
    let text = text.trim().trim_matches('"');
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    // Four digits, colons anywhere ignored.
    let mut hhmm = [0i8; 4];
    let mut count = 0;
    for b in digits.bytes().filter(|b| *b != b':') {
        if !b.is_ascii_digit() || count == 4 {
            return None;
        }
        hhmm[count] = (b - b'0') as i8;
        count += 1;
    }
    if count != 4 {
        return None;
    }
    let hours = hhmm[0] * 10 + hhmm[1];
    let minutes = hhmm[2] * 10 + hhmm[3];
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

fn numbers<const N: usize>(text: &str, sep: char) -> Option<[u32; N]> {
    let mut out = [0u32; N];
    let mut parts = text.split(sep);
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_date(text: &str) -> Option<Date> {
    let [y, m, d] = numbers::<3>(text, '-')?;
    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
}

fn parse_clock(text: &str) -> Option<Time> {
    let [h, m, s] = numbers::<3>(text, ':')?;
    Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn fgt(msg: &str) -> Option<Mapped<'_>> {
        map(&Input {
            hostname: Some("FGT-CHU"),
            msg,
            ..Input::default()
        })
    }

    const UP: &str = r#"date=2026-03-12 time=14:02:11 devname="FGT-CHU" devid="FG100F0000000000" eventtime=1773320531123456789 tz="+0100" logid="0101039947" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN tunnel up" action="tunnel-up" tunneltype="ssl-tunnel" tunnelid=1234 remip=203.0.113.7 tunnelip=10.212.134.200 user="jdoe" group="vendor-acme" dst_host="N/A" reason="tunnel established" msg="SSL tunnel established""#;

    #[test]
    fn tunnel_up() {
        let m = fgt(UP).expect("claimed");
        assert_eq!(m.kind, EventKind::TunnelUp);
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("1234"));
        assert_eq!(m.protocol.as_deref(), Some("ssl-tunnel"));
        assert!(m.factors.is_empty());
        let t = m.occurred_at.expect("time");
        assert_eq!(t, datetime!(2026-03-12 13:02:11.123456789 UTC));
        assert_eq!(t.offset(), UtcOffset::from_hms(1, 0, 0).expect("offset"));
    }

    #[test]
    fn tunnel_down_web_mode_ipv6_without_eventtime() {
        let m = fgt(r#"date=2026-03-12 time=15:30:00 logid="0101039948" type="event" subtype="vpn" level="information" vd="root" tz="+0100" logdesc="SSL VPN tunnel down" action="tunnel-down" tunneltype="ssl-web" tunnelid=1235 remip=2001:db8::7 user="jdoe" group="vendor-acme" dst_host="N/A" reason="connection closed" duration=5269 sentbyte=1234 rcvdbyte=5678 msg="SSL tunnel shutdown""#).expect("claimed");
        assert_eq!(m.kind, EventKind::TunnelDown);
        assert_eq!(m.protocol.as_deref(), Some("ssl-web"));
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 15:30:00 +01:00)));
    }

    #[test]
    fn login_failure() {
        let m = fgt(r#"date=2026-03-12 time=14:01:02 eventtime=1773320462 logid="0101039426" type="event" subtype="vpn" level="alert" vd="root" logdesc="SSL VPN login fail" action="ssl-login-fail" tunneltype="ssl-web" tunnelid=0 remip=198.51.100.23 user="admin" group="N/A" dst_host="N/A" reason="sslvpn_login_permission_denied" msg="SSL user failed to logged in""#).expect("claimed");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "sslvpn_login_permission_denied".into()
            }
        );
        assert_eq!(m.session_id, None);
        assert_eq!(m.account.as_deref(), Some("admin"));
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 13:01:02 UTC)));
    }

    #[test]
    fn messages_it_must_not_claim() {
        for msg in [
            // IPsec tunnel.
            r#"logid="0101037138" type="event" subtype="vpn" action="tunnel-up" tunneltype="ipsec" remip=203.0.113.9"#,
            // Traffic log.
            r#"logid="0000000013" type="traffic" subtype="forward" action="accept" srcip=10.0.0.1"#,
            // SSL-VPN statistics.
            r#"logid="0101039424" type="event" subtype="vpn" action="tunnel-stats" tunneltype="ssl-tunnel""#,
            // A value that merely contains the words.
            r#"msg="type=event subtype=vpn action=tunnel-up""#,
            "Accepted password for bob from 203.0.113.7 port 4242 ssh2",
        ] {
            assert_eq!(fgt(msg), None, "{msg}");
        }
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+0100"), UtcOffset::from_hms(1, 0, 0).ok());
        assert_eq!(parse_offset("-05:30"), UtcOffset::from_hms(-5, -30, 0).ok());
        assert_eq!(parse_offset("+01"), None);
        assert_eq!(parse_offset("+0:1:00"), UtcOffset::from_hms(1, 0, 0).ok());
        assert_eq!(parse_offset("+01:00:00"), None);
        assert_eq!(parse_offset("+99:00"), None);
        assert_eq!(parse_offset("+01x0"), None);
        assert_eq!(parse_offset("é"), None);
    }
}
