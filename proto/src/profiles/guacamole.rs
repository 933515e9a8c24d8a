//! Apache Guacamole: the web application's log (Tomcat/logback, 1.x) and guacd's.
//!
//! The message may be a whole logback line (`14:02:11.354 [http-nio-8080-exec-5] INFO
//! o.a.g.r.auth.AuthenticationService - User "jdoe" …`): the phrases below are found
//! anywhere in it. User names are typed by the client, so each phrase is read from its
//! fixed end (`" successfully authenticated from `, `" failed.`…) backwards.
//!
//! | message | kind |
//! |---|---|
//! | `User "jdoe" successfully authenticated from 203.0.113.7.` | auth success |
//! | `Authentication attempt from 203.0.113.7 for user "jdoe" failed.` | auth failure |
//! | `User "jdoe" connected to connection "12".` (also `connection group`, `sharing profile`) | session start |
//! | `User "jdoe" disconnected from connection "12". Duration: 1234 milliseconds` | session end |
//! | guacd: `User "@8d3e…" joined connection "$c2a1…" (1 users now present)` | session start |
//! | guacd: `Connection "$c2a1…" removed.` | session end |
//!
//! Not claimed when APP-NAME names another daemon a profile reads (`sshd…`, `openvpn`):
//! user names in those logs are chosen by clients and could spell a Guacamole phrase.
//! For the same reason the address of a login line must parse as an IP address.
//!
//! Addresses: Guacamole logs the remote address, or `[X-Forwarded-For, remote]` behind a
//! proxy (`[198.51.100.2, 10.0.0.1]`); the address kept is the last X-Forwarded-For hop,
//! the one the nearest proxy saw, since earlier hops are written by the client and can be
//! forged. Java's IPv6 notation (`0:0:0:0:0:0:0:1`) is understood.
//!
//! Fields: `person` = the Guacamole user (the web application's lines; guacd's user ids
//! `@…` are internal and not kept); `target` = the connection identifier (a number with
//! the database back-ends, a name with `user-mapping.xml`; prefixed `group:` or
//! `sharing-profile:` for those types); `session_id` = guacd's connection id (`$…`) on
//! guacd's lines, none on the web application's (they carry no session identifier: start
//! and end pair by person and target). No protocol and no factors: the lines name neither
//! (authentication may be a password, LDAP, TOTP, SSO…).

use std::borrow::Cow;

use crate::model::EventKind;

use super::fields::{Pattern, field, parse_ip, starts_with_ignore_ascii_case};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "guacamole";

/// Maps a Guacamole message (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    let foreign = input.app_name.is_some_and(|app| {
        starts_with_ignore_ascii_case(app, "sshd") || super::openvpn::is_openvpn_app(app)
    });
    if foreign {
        return None;
    }
    let msg = input.msg.trim();
    // Most lines name a user: look for it once.
    match after_user(msg) {
        Some(rest) => authenticated(rest)
            .or_else(|| auth_failed(msg))
            .or_else(|| tunnel(rest))
            .or_else(|| joined(rest)),
        None => auth_failed(msg).or_else(|| removed(msg)),
    }
}

static AUTHENTICATED_FROM: Pattern = Pattern::new("\" successfully authenticated from ");
static FOR_USER: Pattern = Pattern::new(" for user \"");
static CONNECTED_TO: Pattern = Pattern::new("\" connected to ");
static DISCONNECTED_FROM: Pattern = Pattern::new("\" disconnected from ");
static DURATION: Pattern = Pattern::new(". Duration: ");
static JOINED: Pattern = Pattern::new("\" joined connection \"");

/// The text after the first `User "` in `msg`.
fn after_user(msg: &str) -> Option<&str> {
    static USER: Pattern = Pattern::new("User \"");
    USER.split_once(msg).map(|(_, rest)| rest)
}

/// `rest` follows `User "`.
fn authenticated<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let (user, addr) = AUTHENTICATED_FROM.rsplit_once(rest)?;
    let mut m = Mapped::new(NAME, EventKind::AuthSuccess);
    m.person = field(user);
    m.source_addr = Some(client_addr(addr.strip_suffix('.')?)?);
    Some(m)
}

fn auth_failed<'a>(msg: &'a str) -> Option<Mapped<'a>> {
    static ATTEMPT: Pattern = Pattern::new("Authentication attempt from ");
    let (_, rest) = ATTEMPT.split_once(msg)?;
    let rest = rest.strip_suffix(" failed.")?;
    let (addr, user) = match FOR_USER.split_once(rest) {
        Some((addr, user)) => (addr, user.strip_suffix('"')?),
        None => (rest.strip_suffix(" without username")?, ""),
    };
    let mut m = Mapped::new(
        NAME,
        EventKind::AuthFailure {
            reason: "authentication failed".into(),
        },
    );
    m.person = field(user);
    m.source_addr = Some(client_addr(addr)?);
    Some(m)
}

/// `ADDR`, or `[XFF…, ADDR]`: the last X-Forwarded-For hop when there is one.
fn client_addr(text: &str) -> Option<std::net::IpAddr> {
    let text = text.trim();
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(list) => {
            let hops: Vec<&str> = list.split(',').map(str::trim).collect();
            let pick = if hops.len() >= 2 {
                hops[hops.len() - 2]
            } else {
                hops.first().copied().unwrap_or("")
            };
            parse_ip(pick)
        }
        None => parse_ip(text),
    }
}

/// `TYPE "ID"` → the target: the id, prefixed for groups and sharing profiles.
fn target(kind_and_id: &str) -> Option<Cow<'_, str>> {
    let (kind, id) = kind_and_id.split_once(" \"")?;
    let id = field(id.strip_suffix('"')?)?;
    match kind {
        "connection" => Some(id),
        "connection group" | "group" => Some(format!("group:{id}").into()),
        "sharing profile" => Some(format!("sharing-profile:{id}").into()),
        _ => None,
    }
}

/// `rest` follows `User "`.
fn tunnel<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let (user, kind, what) = if let Some((user, what)) = CONNECTED_TO.rsplit_once(rest) {
        let what = what.strip_suffix('.').unwrap_or(what);
        (user, EventKind::SessionStart, what)
    } else {
        let (user, what) = DISCONNECTED_FROM.rsplit_once(rest)?;
        let (what, _) = DURATION.rsplit_once(what)?;
        (user, EventKind::SessionEnd, what)
    };
    let mut m = Mapped::new(NAME, kind);
    m.person = field(user);
    m.target = Some(target(what)?);
    Some(m)
}

/// guacd: `User "…" joined connection "…"`; `rest` follows `User "`.
fn joined<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let (user, what) = JOINED.split_once(rest)?;
    let (id, count) = what.rsplit_once("\" (")?;
    if !count.ends_with(" users now present)") {
        return None;
    }
    let mut m = Mapped::new(NAME, EventKind::SessionStart);
    m.person = field(user).filter(|u| !u.starts_with('@'));
    m.session_id = Some(field(id)?);
    Some(m)
}

/// guacd: `Connection "…" removed.`
fn removed<'a>(msg: &'a str) -> Option<Mapped<'a>> {
    static CONNECTION: Pattern = Pattern::new("Connection \"");
    let (_, rest) = CONNECTION.split_once(msg)?;
    let id = rest.strip_suffix("\" removed.")?;
    let mut m = Mapped::new(NAME, EventKind::SessionEnd);
    m.session_id = Some(field(id)?);
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guac<'a>(msg: &'a str) -> Option<Mapped<'a>> {
        map(&Input {
            app_name: Some("guacamole"),
            msg,
            ..Input::default()
        })
    }

    #[test]
    fn successful_authentication() {
        let m = guac(r#"14:02:11.354 [http-nio-8080-exec-5] INFO  o.a.g.r.auth.AuthenticationService - User "jdoe" successfully authenticated from 203.0.113.7."#).expect("claimed");
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.person.as_deref(), Some("jdoe"));
        assert_eq!(m.account, None);
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert!(m.factors.is_empty());
    }

    #[test]
    fn behind_a_proxy_and_ipv6() {
        let m = guac(r#"User "jdoe" successfully authenticated from [198.51.100.66, 203.0.113.7, 10.0.0.1]."#).expect("claimed");
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        let m = guac(r#"User "jdoe" successfully authenticated from 0:0:0:0:0:0:0:1."#)
            .expect("claimed");
        assert_eq!(m.source_addr, "::1".parse().ok());
        let m = guac(r#"Authentication attempt from [2001:db8::7] for user "jdoe" failed."#)
            .expect("claimed");
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
    }

    #[test]
    fn failed_authentication() {
        let m = guac(r#"14:01:02.001 [http-nio-8080-exec-2] WARN  o.a.g.r.auth.AuthenticationService - Authentication attempt from 203.0.113.7 for user "jdoe" failed."#).expect("claimed");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "authentication failed".into()
            }
        );
        assert_eq!(m.person.as_deref(), Some("jdoe"));
        // A user name with quotes and the phrase itself.
        let m = guac(r#"Authentication attempt from 203.0.113.7 for user "x" failed." failed."#)
            .expect("claimed");
        assert_eq!(m.person.as_deref(), Some(r#"x" failed."#));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
    }

    #[test]
    fn connection_start_and_end() {
        let m = guac(r#"14:05:00.010 [http-nio-8080-exec-9] INFO  o.a.g.tunnel.TunnelRequestService - User "jdoe" connected to connection "12"."#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person.as_deref(), Some("jdoe"));
        assert_eq!(m.target.as_deref(), Some("12"));
        let m = guac(
            r#"User "jdoe" disconnected from connection "12". Duration: 1234567 milliseconds"#,
        )
        .expect("claimed");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.target.as_deref(), Some("12"));
        let m = guac(r#"User "jdoe" connected to connection group "3"."#).expect("claimed");
        assert_eq!(m.target.as_deref(), Some("group:3"));
    }

    #[test]
    fn guacd_connections() {
        let m = guac(r#"User "@8d3e5b1c-4a7f-4c0b-9d0e-2f1a6b7c8d9e" joined connection "$c2a1f0e3-7b6d-4e5f-8a9b-0c1d2e3f4a5b" (1 users now present)"#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person, None);
        assert_eq!(
            m.session_id.as_deref(),
            Some("$c2a1f0e3-7b6d-4e5f-8a9b-0c1d2e3f4a5b")
        );
        let m = guac(r#"Connection "$c2a1f0e3-7b6d-4e5f-8a9b-0c1d2e3f4a5b" removed."#)
            .expect("claimed");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(
            m.session_id.as_deref(),
            Some("$c2a1f0e3-7b6d-4e5f-8a9b-0c1d2e3f4a5b")
        );
    }

    #[test]
    fn lines_it_must_not_claim() {
        for msg in [
            r#"User "@8d3e" disconnected (0 users remain)"#,
            r#"Connection "12" does not exist for user "jdoe"."#,
            r#"User "jdoe" connected to printer "lp0"."#,
            r#"Last user of connection "$c2a1" disconnected"#,
            "Creating new client for protocol \"rdp\"",
            "Accepted password for bob from 203.0.113.7 port 4242 ssh2",
        ] {
            assert_eq!(guac(msg), None, "{msg}");
        }
        // Client-chosen text in another daemon's log.
        let forged = r#"Connection closed by invalid user User "admin" successfully authenticated from 10.0.0.1. 203.0.113.7 port 22 [preauth]"#;
        assert_eq!(guac(forged), None);
        let forged = r#"Invalid user User "admin" successfully authenticated from 10.0.0.1."#;
        assert_eq!(
            map(&Input {
                app_name: Some("sshd"),
                msg: forged,
                ..Input::default()
            }),
            None
        );
        assert!(guac(forged).is_some());
        assert_eq!(
            guac(r#"User "jdoe" successfully authenticated from proxy.chu.example."#),
            None
        );
    }
}
