//! OpenVPN server (2.4 to 2.6), as logged to syslog or to its own log file.
//!
//! Understood when APP-NAME is absent or contains `openvpn`/`ovpn`. A leading file-log
//! timestamp (`2026-03-12 14:02:11 `, `Thu Mar 12 14:02:11 2026 `, then `us=… `) is
//! skipped. Server lines start with the client instance, `ADDR:PORT` before the client
//! is named and `NAME/ADDR:PORT` after; `ADDR` may be IPv6 (`2001:db8::7:51234`,
//! `::ffff:203.0.113.7:51234`).
//!
//! | message | kind |
//! |---|---|
//! | `ADDR:PORT [NAME] Peer Connection Initiated with [AF_INET]ADDR:PORT` | tunnel up |
//! | `NAME/ADDR:PORT SIGTERM[soft,remote-exit] received, client-instance exiting` | tunnel down |
//! | `NAME/ADDR:PORT SIGUSR1[soft,ping-restart] received, client-instance restarting` | tunnel down |
//! | `NAME/ADDR:PORT [NAME] Inactivity timeout (--ping-restart), restarting` | tunnel down |
//! | `ADDR:PORT TLS: Username/Password authentication succeeded for username 'USER'` | auth success |
//! | `ADDR:PORT TLS Auth Error: Auth Username/Password verification failed for peer` | auth failure |
//! | `ADDR:PORT VERIFY ERROR: depth=0, error=certificate has expired: CN=NAME, …` | auth failure |
//! | `ADDR:PORT VERIFY CRL: certificate serial number 5 is revoked` | auth failure |
//! | `AUTH-PAM: BACKGROUND: user 'USER' authenticated` (auth-pam plugin) | auth success |
//! | `AUTH-PAM: BACKGROUND: user 'USER' failed to authenticate: REASON` | auth failure |
//!
//! Not claimed: `MULTI_sva: pool returned IPv4=…` and `MULTI: primary virtual IP for …`
//! (they follow the `Peer Connection Initiated` line of the same instance and would count
//! each tunnel twice), client-side lines (no client instance prefix), everything else.
//! A tunnel can end with both `Inactivity timeout` and the `SIGUSR1` line that follows:
//! both are reported, with the same session id.
//!
//! Fields: `account` = NAME (the certificate's common name, or the user name with
//! `username-as-common-name`) or USER; `protocol` = `openvpn`; `source_addr` = ADDR;
//! `session_id` = `ADDR:PORT` (`[v6]:port` for IPv6), the same on every line of one client
//! instance. The auth-pam plugin's lines carry no address, hence no session id.
//!
//! Factors: a tunnel up shows the client passed the TLS handshake with its certificate
//! (OpenVPN's default; a server with `verify-client-cert none` would be misreported):
//! Certificate. Username/password and PAM lines: Password. Certificate errors:
//! Certificate.

use std::net::IpAddr;

use crate::model::{AuthFactor, EventKind};

use super::fields::{Pattern, contains_ignore_ascii_case, endpoint_id, field, parse_socket};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "openvpn";

/// Maps an OpenVPN server message (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    if input.app_name.is_some_and(|app| !is_openvpn_app(app)) {
        return None;
    }
    static PEER: Pattern = Pattern::new(" Peer Connection Initiated with ");
    static INACTIVITY: Pattern = Pattern::new(" Inactivity timeout");
    static AUTH_OK: Pattern =
        Pattern::new(" TLS: Username/Password authentication succeeded for username '");
    static TLS_AUTH_ERROR: Pattern = Pattern::new(" TLS Auth Error: ");
    static VERIFY_ERROR: Pattern = Pattern::new(" VERIFY ERROR: ");
    static VERIFY_CRL: Pattern = Pattern::new(" VERIFY CRL: ");
    static BACKGROUND_USER: Pattern = Pattern::new("BACKGROUND: user '");
    let msg = skip_file_timestamp(input.msg.trim());
    let mut m = if let Some((prefix, rest)) = PEER.split_once(msg) {
        peer_connection(prefix, rest)?
    } else if let Some(prefix) = signal_prefix(msg) {
        instance_event(prefix, EventKind::TunnelDown)?
    } else if let Some((prefix, _)) = INACTIVITY.split_once(msg) {
        instance_event(strip_bracketed_name(prefix), EventKind::TunnelDown)?
    } else if let Some((prefix, rest)) = AUTH_OK.split_once(msg) {
        let mut m = instance_event(prefix, EventKind::AuthSuccess)?;
        m.account = rest.rsplit_once('\'').and_then(|(user, _)| field(user));
        m.factors = vec![AuthFactor::Password];
        m
    } else if let Some((prefix, reason)) = TLS_AUTH_ERROR.split_once(msg) {
        tls_auth_error(prefix, reason)?
    } else if let Some((prefix, detail)) = VERIFY_ERROR.split_once(msg) {
        verify_error(prefix, detail)?
    } else if let Some((prefix, detail)) = VERIFY_CRL.split_once(msg) {
        let reason = detail.trim().to_owned();
        let mut m = instance_event(prefix, EventKind::AuthFailure { reason })?;
        m.factors = vec![AuthFactor::Certificate];
        m
    } else if let Some((_, rest)) = BACKGROUND_USER.split_once(msg) {
        auth_pam(rest)?
    } else {
        return None;
    };
    m.protocol = Some("openvpn".into());
    Some(m)
}

/// Whether an APP-NAME is OpenVPN's (`openvpn`, `ovpn-server`…, any case).
pub(crate) fn is_openvpn_app(app: &str) -> bool {
    contains_ignore_ascii_case(app, "openvpn") || contains_ignore_ascii_case(app, "ovpn")
}

/// Skips `YYYY-MM-DD HH:MM:SS ` or `Www Mmm DD HH:MM:SS YYYY `, then `us=N `.
fn skip_file_timestamp(msg: &str) -> &str {
    fn shape(text: &str, pattern: &[u8]) -> bool {
        let b = text.as_bytes();
        b.len() >= pattern.len()
            && pattern.iter().zip(b).all(|(p, c)| match p {
                b'9' => c.is_ascii_digit(),
                b'a' => c.is_ascii_alphabetic(),
                b'_' => *c == b' ' || c.is_ascii_digit(),
                other => other == c,
            })
    }
    let mut msg = msg;
    for pattern in ["9999-99-99 99:99:99 ", "aaa aaa _9 99:99:99 9999 "] {
        if shape(msg, pattern.as_bytes()) {
            msg = msg.get(pattern.len()..).unwrap_or("");
            break;
        }
    }
    let micros = msg
        .strip_prefix("us=")
        .and_then(|rest| rest.split_once(' '))
        .filter(|(digits, _)| digits.bytes().all(|b| b.is_ascii_digit()));
    match micros {
        Some((_, rest)) => rest,
        None => msg,
    }
}

/// The client instance of a line: `ADDR:PORT` or `NAME/ADDR:PORT`.
fn instance(prefix: &str) -> Option<(Option<&str>, IpAddr, u16)> {
    let prefix = prefix.trim();
    if let Some((ip, port)) = parse_socket(prefix) {
        return Some((None, ip, port));
    }
    let (name, endpoint) = prefix.rsplit_once('/')?;
    let (ip, port) = parse_socket(endpoint)?;
    Some((Some(name), ip, port))
}

fn instance_event<'a>(prefix: &'a str, kind: EventKind) -> Option<Mapped<'a>> {
    let (name, ip, port) = instance(prefix)?;
    let mut m = Mapped::new(NAME, kind);
    m.account = name.and_then(field);
    m.source_addr = Some(ip);
    m.session_id = Some(endpoint_id(ip, port).into());
    Some(m)
}

static OPEN_BRACKET: Pattern = Pattern::new(" [");
static RECEIVED: Pattern = Pattern::new("] received, client-instance ");
static SIG: Pattern = Pattern::new(" SIG");

/// `NAME/ADDR:PORT [NAME]` → `NAME/ADDR:PORT`.
fn strip_bracketed_name(prefix: &str) -> &str {
    match OPEN_BRACKET.rsplit_once(prefix) {
        Some((head, tail)) if tail.ends_with(']') => head,
        _ => prefix,
    }
}

/// The instance before ` SIGxxx[…] received, client-instance exiting|restarting`.
fn signal_prefix(msg: &str) -> Option<&str> {
    let (head, tail) = RECEIVED.split_once(msg)?;
    if !matches!(tail.trim(), "exiting" | "restarting") {
        return None;
    }
    let (prefix, signal) = SIG.rsplit_once(head)?;
    signal
        .bytes()
        .take_while(|b| *b != b'[')
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .then_some(prefix)
}

fn peer_connection<'a>(prefix: &'a str, peer: &'a str) -> Option<Mapped<'a>> {
    // `ADDR:PORT [NAME]`: the peer address after `with` is the authoritative one.
    let (head, name) = OPEN_BRACKET.split_once(prefix)?;
    let name = name.strip_suffix(']')?;
    instance(head)?;
    let (ip, port) = parse_socket(peer.trim())?;
    let mut m = Mapped::new(NAME, EventKind::TunnelUp);
    m.account = field(name);
    m.source_addr = Some(ip);
    m.session_id = Some(endpoint_id(ip, port).into());
    m.factors = vec![AuthFactor::Certificate];
    Some(m)
}

fn tls_auth_error<'a>(prefix: &'a str, reason: &'a str) -> Option<Mapped<'a>> {
    let reason = reason.trim();
    let mut m = instance_event(
        prefix,
        EventKind::AuthFailure {
            reason: reason.to_owned(),
        },
    )?;
    if let Some((_, rest)) = reason.split_once("common name '") {
        m.account = rest.split_once('\'').and_then(|(name, _)| field(name));
    }
    if reason.contains("Username/Password") {
        m.factors = vec![AuthFactor::Password];
    }
    Some(m)
}

fn verify_error<'a>(prefix: &'a str, detail: &'a str) -> Option<Mapped<'a>> {
    let detail = detail.trim();
    // `depth=0, error=certificate has expired: CN=jdoe, serial=…`
    let reason = match detail.split_once("error=") {
        Some((_, rest)) => rest.split_once(": ").map_or(rest, |(r, _)| r),
        None => detail,
    };
    let mut m = instance_event(
        prefix,
        EventKind::AuthFailure {
            reason: reason.trim().to_owned(),
        },
    )?;
    let subject = detail
        .strip_prefix("depth=0,")
        .and_then(|rest| rest.split_once("CN="));
    if let Some((_, rest)) = subject {
        m.account = field(rest.split(',').next().unwrap_or(""));
    }
    m.factors = vec![AuthFactor::Certificate];
    Some(m)
}

fn auth_pam<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let mut m = if let Some((user, reason)) = rest.rsplit_once("' failed to authenticate: ") {
        let mut m = Mapped::new(
            NAME,
            EventKind::AuthFailure {
                reason: reason.trim().to_owned(),
            },
        );
        m.account = field(user);
        m
    } else {
        let user = rest.trim_end().strip_suffix("' authenticated")?;
        let mut m = Mapped::new(NAME, EventKind::AuthSuccess);
        m.account = field(user);
        m
    };
    m.factors = vec![AuthFactor::Password];
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(app: Option<&'a str>, msg: &'a str) -> Option<Mapped<'a>> {
        map(&Input {
            app_name: app,
            hostname: Some("vpn-gw"),
            msg,
            ..Input::default()
        })
    }

    fn ovpn<'a>(msg: &'a str) -> Mapped<'a> {
        run(Some("openvpn"), msg).unwrap_or_else(|| panic!("not claimed: {msg}"))
    }

    #[test]
    fn peer_connection_initiated_is_tunnel_up() {
        let m = ovpn(
            "203.0.113.7:51234 [jdoe] Peer Connection Initiated with [AF_INET]203.0.113.7:51234",
        );
        assert_eq!(m.kind, EventKind::TunnelUp);
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("203.0.113.7:51234"));
        assert_eq!(m.protocol.as_deref(), Some("openvpn"));
        assert_eq!(m.factors, vec![AuthFactor::Certificate]);
    }

    #[test]
    fn file_log_timestamps_are_skipped() {
        for msg in [
            "2026-03-12 14:02:11 203.0.113.7:51234 [jdoe] Peer Connection Initiated with [AF_INET]203.0.113.7:51234",
            "Thu Mar 12 14:02:11 2026 us=821819 203.0.113.7:51234 [jdoe] Peer Connection Initiated with [AF_INET]203.0.113.7:51234",
            "Thu Mar  5 14:02:11 2026 203.0.113.7:51234 [jdoe] Peer Connection Initiated with [AF_INET]203.0.113.7:51234",
        ] {
            assert_eq!(ovpn(msg).kind, EventKind::TunnelUp, "{msg}");
        }
    }

    #[test]
    fn ipv6_and_mapped_clients() {
        let m = ovpn(
            "2001:db8::7:51234 [jdoe] Peer Connection Initiated with [AF_INET6]2001:db8::7:51234",
        );
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("[2001:db8::7]:51234"));
        let m = ovpn(
            "10.0.34.4:10468 [VM4] Peer Connection Initiated with [AF_INET6]::ffff:10.0.34.4:10468",
        );
        assert_eq!(m.source_addr, "10.0.34.4".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("10.0.34.4:10468"));
        let m = ovpn(
            "jdoe/2001:db8::7:1194 SIGTERM[soft,remote-exit] received, client-instance exiting",
        );
        assert_eq!(m.session_id.as_deref(), Some("[2001:db8::7]:1194"));
        let m = ovpn(
            "jdoe/2001:db8::7:51234 SIGTERM[soft,remote-exit] received, client-instance exiting",
        );
        assert_eq!(m.session_id.as_deref(), Some("[2001:db8::7]:51234"));
    }

    #[test]
    fn tunnel_down_lines() {
        let m = ovpn(
            "jdoe/203.0.113.7:51234 SIGTERM[soft,remote-exit] received, client-instance exiting",
        );
        assert_eq!(m.kind, EventKind::TunnelDown);
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.session_id.as_deref(), Some("203.0.113.7:51234"));
        let m = ovpn(
            "jdoe/203.0.113.7:51234 SIGUSR1[soft,ping-restart] received, client-instance restarting",
        );
        assert_eq!(m.kind, EventKind::TunnelDown);
        let m =
            ovpn("jdoe/203.0.113.7:51234 [jdoe] Inactivity timeout (--ping-restart), restarting");
        assert_eq!(m.kind, EventKind::TunnelDown);
        assert_eq!(m.session_id.as_deref(), Some("203.0.113.7:51234"));
        // A common name with a space and a slash still splits at the last slash.
        let m = ovpn(
            "Jean Doe/ACME/203.0.113.7:51234 SIGTERM[soft,remote-exit] received, client-instance exiting",
        );
        assert_eq!(m.account.as_deref(), Some("Jean Doe/ACME"));
    }

    #[test]
    fn username_password_authentication() {
        let m = ovpn(
            "203.0.113.7:51234 TLS: Username/Password authentication succeeded for username 'jdoe' [CN SET]",
        );
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.factors, vec![AuthFactor::Password]);

        let m = ovpn(
            "203.0.113.7:51234 TLS Auth Error: Auth Username/Password verification failed for peer",
        );
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "Auth Username/Password verification failed for peer".into()
            }
        );
        assert_eq!(m.account, None);
        assert_eq!(m.factors, vec![AuthFactor::Password]);
    }

    #[test]
    fn certificate_failures() {
        let m = ovpn(
            "203.0.113.7:51234 VERIFY ERROR: depth=0, error=certificate has expired: CN=jdoe, serial=4660",
        );
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "certificate has expired".into()
            }
        );
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.factors, vec![AuthFactor::Certificate]);
        let m = ovpn("203.0.113.7:51234 VERIFY CRL: certificate serial number 5 is revoked");
        assert_eq!(m.kind.name(), "auth_failure");
    }

    #[test]
    fn auth_pam_plugin() {
        let m = ovpn("AUTH-PAM: BACKGROUND: user 'jdoe' authenticated");
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.account.as_deref(), Some("jdoe"));
        assert_eq!(m.session_id, None);
        let m = ovpn(
            "PLUGIN AUTH-PAM: BACKGROUND: user 'jdoe' failed to authenticate: Authentication failure",
        );
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "Authentication failure".into()
            }
        );
        assert_eq!(m.account.as_deref(), Some("jdoe"));
    }

    #[test]
    fn lines_it_must_not_claim() {
        for msg in [
            "jdoe/203.0.113.7:51234 MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)",
            "jdoe/203.0.113.7:51234 MULTI: primary virtual IP for jdoe/203.0.113.7:51234: 10.8.0.6",
            // Client side: no client instance.
            "[vpn.example.org] Peer Connection Initiated with [AF_INET]198.51.100.1:1194",
            "Inactivity timeout (--ping-restart), restarting",
            "SIGTERM[hard,] received, process exiting",
            "Initialization Sequence Completed",
        ] {
            assert_eq!(run(Some("openvpn"), msg), None, "{msg}");
        }
        assert_eq!(
            run(
                Some("sshd"),
                "203.0.113.7:51234 [jdoe] Peer Connection Initiated with [AF_INET]203.0.113.7:51234"
            ),
            None
        );
    }
}
