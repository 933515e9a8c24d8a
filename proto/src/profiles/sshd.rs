//! OpenSSH `sshd` (checked against OpenSSH 9.2's wording).
//!
//! Understood when APP-NAME is absent or starts with `sshd` (`sshd`, `sshd-session` of
//! OpenSSH 9.8+):
//!
//! | message | kind |
//! |---|---|
//! | `Accepted METHOD for USER from ADDR port N ssh2[: KEYTYPE SHA256:…]` | auth success |
//! | `Failed METHOD for [invalid user ]USER from ADDR port N ssh2[: …]` | auth failure |
//! | `Invalid user USER from ADDR port N` | auth failure (`invalid user`) |
//! | `pam_unix(sshd:session): session opened for user USER[(uid=…)] by …` | session start |
//! | `pam_unix(sshd:session): session closed for user USER` | session end |
//! | `Received disconnect from ADDR port N:11: …` (not `[preauth]`) | session end |
//! | `Disconnected from user USER ADDR port N` | session end |
//!
//! Not claimed: `Partial METHOD for …` (one method of several passed: the login is not
//! complete, and the `Accepted` line that follows names the last method; the partial
//! line stays in the journal as an unmapped event), `[preauth]` disconnections, and
//! everything else.
//!
//! Fields: `account` = USER (a Unix login; `person` is left to the staff lists);
//! `target` = the syslog HOSTNAME (the server reached); `protocol` = `ssh`;
//! `source_addr` = ADDR.
//!
//! Session id: sshd has none. Lines carrying the client endpoint use `ADDR:PORT`
//! (`[v6]:port` for IPv6), which links `Accepted` to `Disconnected from user`; the
//! `pam_unix` lines carry no address and use `sshd[PID]` from the syslog header
//! ([`Input::proc_id`]), since the privileged monitor process logs both the opening and
//! the closing (none when the header has no pid).
//!
//! Factors of `METHOD`: `password` → Password; `publickey` → PublicKey, or Certificate
//! when the key type is an OpenSSH certificate (`…-CERT`); `gssapi-with-mic` → Kerberos;
//! `hostbased` → Other; `keyboard-interactive[/pam]` → **Otp**: keyboard-interactive is a
//! PAM challenge whose content the line does not show, and on a maintenance bastion it
//! is enabled for the one-time code (`AuthenticationMethods
//! publickey,keyboard-interactive`); a site whose PAM stack asks only for a password
//! there should map such sources with a generic profile instead.
//!
//! USER comes before ADDR, and for failures it is chosen by the client: the address is
//! read at the *last* ` from ADDR port N` that forms a valid tail, so a user name that
//! embeds ` from 10.0.0.1 port 22` cannot forge the source address.

use crate::model::{AuthFactor, EventKind};

use super::fields::{Pattern, endpoint_id, parse_ip};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "sshd";

const PAM_OPENED: &str = "pam_unix(sshd:session): session opened for user ";
const PAM_CLOSED: &str = "pam_unix(sshd:session): session closed for user ";

/// Maps an sshd message (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    if input.app_name.is_some_and(|app| !app.starts_with("sshd")) {
        return None;
    }
    let msg = input.msg.trim();
    let mut m = if let Some(rest) = msg.strip_prefix("Accepted ") {
        accepted(rest)?
    } else if let Some(rest) = msg.strip_prefix("Failed ") {
        failed(rest)?
    } else if let Some(rest) = msg.strip_prefix("Invalid user ") {
        invalid_user(rest)?
    } else if let Some(rest) = msg.strip_prefix(PAM_OPENED) {
        pam_session(rest, EventKind::SessionStart, input.proc_id)?
    } else if let Some(rest) = msg.strip_prefix(PAM_CLOSED) {
        pam_session(rest, EventKind::SessionEnd, input.proc_id)?
    } else if let Some(rest) = msg.strip_prefix("Received disconnect from ") {
        received_disconnect(rest)?
    } else if let Some(rest) = msg.strip_prefix("Disconnected from user ") {
        disconnected(rest)?
    } else {
        return None;
    };
    m.protocol = Some("ssh".into());
    m.target = input.hostname.and_then(super::fields::field);
    Some(m)
}

/// `USER from ADDR port N TAIL`, split at the last ` from ` whose tail is valid.
struct UserFrom<'a> {
    user: &'a str,
    ip: std::net::IpAddr,
    port: u16,
    /// What follows the port: `ssh2`, `ssh2: ED25519 SHA256:…`, or nothing.
    tail: &'a str,
}

static FROM: Pattern = Pattern::new(" from ");
static PORT: Pattern = Pattern::new(" port ");
static FOR: Pattern = Pattern::new(" for ");

fn user_from(text: &str) -> Option<UserFrom<'_>> {
    FROM.rsplits(text).find_map(|(user, rest)| {
        let (addr, rest) = PORT.split_once(rest)?;
        let ip = parse_ip(addr)?;
        let (port, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let port = port.parse().ok()?;
        let valid_tail =
            tail.is_empty() || tail == "ssh2" || tail.starts_with("ssh2: ") || tail == "[preauth]";
        valid_tail.then_some(UserFrom {
            user,
            ip,
            port,
            tail,
        })
    })
}

fn method_factor(method: &str, tail: &str) -> Option<AuthFactor> {
    match method {
        "password" => Some(AuthFactor::Password),
        "publickey" => {
            let key_type = tail
                .strip_prefix("ssh2: ")
                .and_then(|t| t.split(' ').next())
                .unwrap_or("");
            if key_type.ends_with("-CERT") {
                Some(AuthFactor::Certificate)
            } else {
                Some(AuthFactor::PublicKey)
            }
        }
        "keyboard-interactive" | "keyboard-interactive/pam" => Some(AuthFactor::Otp),
        "gssapi-with-mic" | "gssapi-keyex" => Some(AuthFactor::Kerberos),
        "none" => None,
        other => Some(AuthFactor::Other(other.to_owned())),
    }
}

fn with_user<'a>(kind: EventKind, u: &UserFrom<'a>) -> Mapped<'a> {
    let mut m = Mapped::new(NAME, kind);
    m.account = super::fields::field(u.user);
    m.source_addr = Some(u.ip);
    m.session_id = Some(endpoint_id(u.ip, u.port).into());
    m
}

fn accepted<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let (method, rest) = FOR.split_once(rest)?;
    let u = user_from(rest)?;
    if u.tail == "[preauth]" {
        return None;
    }
    let mut m = with_user(EventKind::AuthSuccess, &u);
    if let Some(f) = method_factor(method, u.tail) {
        m.factors.push(f);
    }
    Some(m)
}

fn failed<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let (method, rest) = FOR.split_once(rest)?;
    if method.contains(' ') {
        return None;
    }
    let u = user_from(rest)?;
    let (user, invalid) = match u.user.strip_prefix("invalid user ") {
        Some(user) => (user, true),
        None => (u.user, false),
    };
    let reason = if invalid {
        format!("failed {method} for invalid user")
    } else {
        format!("failed {method}")
    };
    let mut m = with_user(EventKind::AuthFailure { reason }, &u);
    m.account = super::fields::field(user);
    if let Some(f) = method_factor(method, u.tail) {
        m.factors.push(f);
    }
    Some(m)
}

fn invalid_user<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    let u = user_from(rest)?;
    Some(with_user(
        EventKind::AuthFailure {
            reason: "invalid user".into(),
        },
        &u,
    ))
}

fn pam_session<'a>(rest: &'a str, kind: EventKind, proc_id: Option<&str>) -> Option<Mapped<'a>> {
    let end = rest.find(['(', ' ']).unwrap_or(rest.len());
    let user = super::fields::field(&rest[..end])?;
    let mut m = Mapped::new(NAME, kind);
    m.account = Some(user);
    m.session_id = proc_id
        .and_then(super::fields::present)
        .map(|pid| format!("sshd[{pid}]").into());
    Some(m)
}

fn received_disconnect<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    if rest.ends_with("[preauth]") {
        return None;
    }
    let (addr, rest) = PORT.split_once(rest)?;
    let ip = parse_ip(addr)?;
    let port_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let port = rest[..port_end].parse().ok()?;
    let mut m = Mapped::new(NAME, EventKind::SessionEnd);
    m.source_addr = Some(ip);
    m.session_id = Some(endpoint_id(ip, port).into());
    Some(m)
}

fn disconnected<'a>(rest: &'a str) -> Option<Mapped<'a>> {
    if rest.ends_with("[preauth]") {
        return None;
    }
    let (before, port) = PORT.rsplit_once(rest)?;
    let port = port.trim().parse().ok()?;
    let (user, addr) = before.rsplit_once(' ')?;
    let ip = parse_ip(addr)?;
    let mut m = Mapped::new(NAME, EventKind::SessionEnd);
    m.account = Some(super::fields::field(user)?);
    m.source_addr = Some(ip);
    m.session_id = Some(endpoint_id(ip, port).into());
    Some(m)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn run<'a>(app: Option<&'a str>, msg: &'a str) -> Option<Mapped<'a>> {
        map(&Input {
            app_name: app,
            hostname: Some("srv-pacs-01"),
            proc_id: Some("4242"),
            msg,
            ..Input::default()
        })
    }

    fn sshd<'a>(msg: &'a str) -> Mapped<'a> {
        run(Some("sshd"), msg).unwrap_or_else(|| panic!("not claimed: {msg}"))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn accepted_publickey_as_openssh_9_2_logs_it() {
        let m = sshd(
            "Accepted publickey for alice from 127.0.0.1 port 51120 ssh2: ED25519 SHA256:Xy1+abc/def",
        );
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.account.as_deref(), Some("alice"));
        assert_eq!(m.person, None);
        assert_eq!(m.source_addr, ip("127.0.0.1"));
        assert_eq!(m.session_id.as_deref(), Some("127.0.0.1:51120"));
        assert_eq!(m.target.as_deref(), Some("srv-pacs-01"));
        assert_eq!(m.protocol.as_deref(), Some("ssh"));
        assert_eq!(m.factors, vec![AuthFactor::PublicKey]);
    }

    #[test]
    fn accepted_methods_map_to_factors() {
        let m = sshd("Accepted password for bob from 203.0.113.7 port 4242 ssh2");
        assert_eq!(m.factors, vec![AuthFactor::Password]);
        let m = sshd("Accepted keyboard-interactive/pam for bob from 203.0.113.7 port 4242 ssh2");
        assert_eq!(m.factors, vec![AuthFactor::Otp]);
        let m = sshd(
            "Accepted publickey for bob from 203.0.113.7 port 4242 ssh2: ED25519-CERT SHA256:abc ID bob@acme (serial 7) CA ED25519 SHA256:def",
        );
        assert_eq!(m.factors, vec![AuthFactor::Certificate]);
        let m = sshd("Accepted gssapi-with-mic for bob from 203.0.113.7 port 4242 ssh2");
        assert_eq!(m.factors, vec![AuthFactor::Kerberos]);
    }

    #[test]
    fn partial_authentication_is_not_claimed() {
        assert_eq!(
            run(
                Some("sshd"),
                "Partial publickey for alice from 203.0.113.7 port 51120 ssh2: ED25519 SHA256:abc"
            ),
            None
        );
    }

    #[test]
    fn ipv6_clients_get_bracketed_session_ids() {
        let m = sshd("Accepted password for alice from 2001:db8::7 port 51234 ssh2");
        assert_eq!(m.source_addr, ip("2001:db8::7"));
        assert_eq!(m.session_id.as_deref(), Some("[2001:db8::7]:51234"));
        let m = sshd("Disconnected from user alice 2001:db8::7 port 51234");
        assert_eq!(m.session_id.as_deref(), Some("[2001:db8::7]:51234"));
    }

    #[test]
    fn failures_carry_a_reason() {
        let m = sshd("Failed password for root from 203.0.113.7 port 4242 ssh2");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "failed password".into()
            }
        );
        assert_eq!(m.account.as_deref(), Some("root"));
        assert_eq!(m.factors, vec![AuthFactor::Password]);

        let m = sshd("Failed password for invalid user admin from 203.0.113.7 port 4242 ssh2");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "failed password for invalid user".into()
            }
        );
        assert_eq!(m.account.as_deref(), Some("admin"));

        let m = sshd("Invalid user admin from 203.0.113.7 port 4242");
        assert_eq!(m.kind.name(), "auth_failure");
        assert_eq!(m.account.as_deref(), Some("admin"));
    }

    #[test]
    fn a_user_name_cannot_forge_the_address() {
        let m = sshd(
            "Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from 203.0.113.7 port 4242 ssh2",
        );
        assert_eq!(m.source_addr, ip("203.0.113.7"));
        assert_eq!(m.account.as_deref(), Some("x from 10.0.0.1 port 22 ssh2"));
    }

    #[test]
    fn pam_sessions_use_the_pid() {
        let m = sshd("pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.account.as_deref(), Some("alice"));
        assert_eq!(m.session_id.as_deref(), Some("sshd[4242]"));
        let m = sshd("pam_unix(sshd:session): session opened for user alice by (uid=0)");
        assert_eq!(m.account.as_deref(), Some("alice"));
        let m = sshd("pam_unix(sshd:session): session closed for user alice");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.session_id.as_deref(), Some("sshd[4242]"));
    }

    #[test]
    fn disconnections_end_the_session() {
        let m = sshd("Received disconnect from 127.0.0.1 port 51120:11: disconnected by user");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.session_id.as_deref(), Some("127.0.0.1:51120"));
        assert_eq!(m.account, None);
        let m = sshd("Disconnected from user alice 127.0.0.1 port 51120");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.account.as_deref(), Some("alice"));
        assert_eq!(m.session_id.as_deref(), Some("127.0.0.1:51120"));
    }

    #[test]
    fn lines_it_must_not_claim() {
        for msg in [
            "Received disconnect from 203.0.113.7 port 4242:11: Bye Bye [preauth]",
            "Disconnected from authenticating user root 203.0.113.7 port 4242 [preauth]",
            "Connection closed by 203.0.113.7 port 4242 [preauth]",
            "Server listening on 0.0.0.0 port 22.",
            "Accepted publickey for alice from somewhere port 1 ssh2",
            "Failed password for root from 203.0.113.7 port notaport ssh2",
        ] {
            assert_eq!(run(Some("sshd"), msg), None, "{msg}");
        }
        // The right words from another program are not sshd's.
        assert_eq!(
            run(
                Some("openvpn"),
                "Accepted password for bob from 203.0.113.7 port 4242 ssh2"
            ),
            None
        );
        assert!(
            run(
                None,
                "Accepted password for bob from 203.0.113.7 port 4242 ssh2"
            )
            .is_some()
        );
        assert!(
            run(
                Some("sshd-session"),
                "Accepted password for bob from 203.0.113.7 port 4242 ssh2"
            )
            .is_some()
        );
    }
}
