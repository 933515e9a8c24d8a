//! Wallix-style PAM bastion session log: one line of `key="value"` pairs per event.
//!
//! Real bastions differ in their field names; this is the format the collector expects
//! from a bastion configured (or fronted by a syslog template) to emit it. Understood when
//! the message starts with the `[wallix]` tag or APP-NAME contains `wallix` or `wab`
//! (case-insensitive), and `type` is one of the kinds below.
//!
//! ```text
//! [wallix] type="session_start" time="2026-03-12T14:02:11+01:00" session_id="SESSION-42"
//!   user="jdoe@acme-medical" vendor="acme-medical" account="root" target="srv-pacs-01"
//!   protocol="SSH" client_ip="203.0.113.7" auth_methods="password,otp"
//! [wallix] type="session_end" time="2026-03-12T15:10:40+01:00" session_id="SESSION-42"
//!   user="jdoe@acme-medical" account="root" target="srv-pacs-01" protocol="SSH"
//!   client_ip="203.0.113.7" duration_s="4109"
//! [wallix] type="auth_success" user="jdoe@acme-medical" client_ip="2001:db8::7" auth_methods="password,otp"
//! [wallix] type="auth_failure" user="jdoe@acme-medical" client_ip="203.0.113.7" reason="invalid otp"
//! ```
//!
//! | field | meaning | required |
//! |---|---|---|
//! | `type` | `session_start`, `session_end`, `auth_success`, `auth_failure` | yes |
//! | `time` | when it happened, RFC 3339 or Unix seconds/milliseconds | no (syslog header) |
//! | `session_id` | the bastion's session identifier, the same at start and end | sessions |
//! | `user` | the person's bastion identity (nominative, e.g. an e-mail address) | yes |
//! | `vendor` | the vendor the person works for | no |
//! | `account` | the account used on the target | sessions |
//! | `target` | the target device or resource | sessions |
//! | `protocol` | `SSH`, `RDP`, `VNC`, `HTTPS`, `TELNET`… (reported lowercase) | sessions |
//! | `client_ip` | the person's address, `IP` or `IP:PORT` | yes |
//! | `auth_methods` | comma-separated methods used to reach the bastion | no |
//! | `reason` | why an authentication failed | `auth_failure` |
//!
//! "Required" is what an audit needs; a missing field is left empty, never guessed.
//! `auth_methods` names: `password`, `ldap` → Password; `otp`, `totp`, `hotp`, `sms` →
//! Otp; `push` → Push; `fido2`, `webauthn`, `u2f`, `smartcard` → HardwareKey;
//! `certificate`, `x509` → Certificate; `publickey`, `ssh_key` → PublicKey; `kerberos`,
//! `sso`, `saml`, `oidc` → Kerberos; anything else → Other.

use crate::model::EventKind;

use super::fields::{Pairs, factor_from_source_name, lowercase, parse_endpoint, parse_time};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "wallix";

/// Maps a Wallix-style session log line (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    let msg = input.msg.trim();
    let tagged = msg
        .get(..8)
        .is_some_and(|tag| tag.eq_ignore_ascii_case("[wallix]"));
    let from_bastion = input.app_name.is_some_and(|app| {
        let app = app.to_ascii_lowercase();
        app.contains("wallix") || app.contains("wab")
    });
    if !tagged && !from_bastion {
        return None;
    }
    let p = Pairs::parse(msg);
    let kind = match p.get("type")? {
        "session_start" => EventKind::SessionStart,
        "session_end" => EventKind::SessionEnd,
        "auth_success" => EventKind::AuthSuccess,
        "auth_failure" => EventKind::AuthFailure {
            reason: p.value("reason").unwrap_or("auth_failure").to_owned(),
        },
        _ => return None,
    };
    let mut m = Mapped::new(NAME, kind);
    m.person = p.text("user");
    m.vendor = p.text("vendor");
    m.account = p.text("account");
    m.target = p.text("target");
    m.protocol = p.text("protocol").map(lowercase);
    m.source_addr = p
        .value("client_ip")
        .and_then(parse_endpoint)
        .map(|(ip, _)| ip);
    m.session_id = p.text("session_id");
    m.occurred_at = p.value("time").and_then(parse_time);
    for method in p.value("auth_methods").unwrap_or("").split(',') {
        if let Some(factor) = factor_from_source_name(method) {
            m.push_factor(factor);
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use crate::model::AuthFactor;

    use super::*;

    fn wallix<'a>(app: Option<&'a str>, msg: &'a str) -> Option<Mapped<'a>> {
        map(&Input {
            app_name: app,
            msg,
            ..Input::default()
        })
    }

    #[test]
    fn session_start_with_two_factors() {
        let m = wallix(None, r#"[wallix] type="session_start" time="2026-03-12T14:02:11+01:00" session_id="SESSION-42" user="jdoe@acme-medical" vendor="acme-medical" account="root" target="srv-pacs-01" protocol="SSH" client_ip="203.0.113.7" auth_methods="password,otp""#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person.as_deref(), Some("jdoe@acme-medical"));
        assert_eq!(m.vendor.as_deref(), Some("acme-medical"));
        assert_eq!(m.account.as_deref(), Some("root"));
        assert_eq!(m.target.as_deref(), Some("srv-pacs-01"));
        assert_eq!(m.protocol.as_deref(), Some("ssh"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("SESSION-42"));
        assert_eq!(m.factors, vec![AuthFactor::Password, AuthFactor::Otp]);
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 14:02:11 +01:00)));
    }

    #[test]
    fn session_end_from_the_bastion_app_name() {
        let m = wallix(Some("WAB"), r#"type="session_end" time="1773324640" session_id="SESSION-42" user="jdoe@acme-medical" account="root" target="srv-pacs-01" protocol="RDP" client_ip="203.0.113.7:51234" duration_s="4109""#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.protocol.as_deref(), Some("rdp"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert!(m.factors.is_empty());
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 14:10:40 UTC)));
    }

    #[test]
    fn authentication_success_and_failure_ipv6() {
        let m = wallix(None, r#"[wallix] type="auth_success" user="jdoe@acme-medical" client_ip="2001:db8::7" auth_methods="password, FIDO2""#).expect("claimed");
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
        assert_eq!(
            m.factors,
            vec![AuthFactor::Password, AuthFactor::HardwareKey]
        );
        let m = wallix(None, r#"[WALLIX] type="auth_failure" user="jdoe@acme-medical" client_ip="[2001:db8::7]:50000" reason="invalid otp""#).expect("claimed");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "invalid otp".into()
            }
        );
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
    }

    #[test]
    fn lines_it_must_not_claim() {
        // Untagged, from another program.
        assert_eq!(
            wallix(Some("app"), r#"type="session_start" user="x""#),
            None
        );
        assert_eq!(wallix(None, r#"type="session_start" user="x""#), None);
        // Tagged, unknown type or none.
        assert_eq!(
            wallix(None, r#"[wallix] type="config_change" user="x""#),
            None
        );
        assert_eq!(wallix(None, "[wallix] started"), None);
        assert_eq!(wallix(None, "[wal"), None);
    }
}
