//! Teleport audit events (JSON, as the audit log, `tctl audit` exports and the event
//! handler plugin write them).
//!
//! Understood: a JSON object with a string `event` below and a Teleport event `code`
//! (`T2000I`…); the document is [`Input::json`], or `msg` parsed when that is `None`.
//!
//! ```text
//! {"event":"session.start","code":"T2000I","uid":"…","time":"2026-03-12T13:02:11.123Z",
//!  "cluster_name":"bastion.chu.example","user":"alice@vendor","login":"root",
//!  "server_hostname":"db01","server_addr":"10.0.0.5:3022","addr.remote":"203.0.113.7:51234",
//!  "sid":"5b3555dc-…","proto":"ssh"}
//! {"event":"user.login","code":"T1000I","time":"…","user":"alice@vendor","method":"local",
//!  "success":true,"mfa_device":{"mfa_device_name":"yk","mfa_device_uuid":"…","mfa_device_type":"WebAuthn"},
//!  "addr.remote":"203.0.113.7:51234"}
//! {"event":"user.login","code":"T1000W","success":false,"error":"invalid username, password or second factor",…}
//! ```
//!
//! | `event` | kind | target, account, protocol |
//! |---|---|---|
//! | `session.start` / `session.end` | session start / end | `server_hostname` (else `server_addr`), `login`, `proto` else `ssh` |
//! | `db.session.start` / `db.session.end` | session start / end | `db_service`, `db_user`, `db_protocol` |
//! | `windows.desktop.session.start` / `.end` | session start / end | `desktop_name` (else `desktop_addr`), `windows_user`, `rdp` |
//! | `app.session.start` / `app.session.end` | session start / end | `app_name`, —, `https` |
//! | `user.login` | auth success, or failure when `success` is `false` (reason `error`) | — |
//! | `auth` with `success: false` | auth failure (reason `error`) | — |
//!
//! Fields: `person` = `user` (the Teleport identity); `source_addr` = `addr.remote`;
//! `session_id` = `sid` (`session_id` for app sessions); `occurred_at` = `time`. A
//! `*.start` event whose `success` is `false` (a refused database or desktop session) is
//! an auth failure instead.
//!
//! Factors (login events only; session events do not show them): `method` `local` →
//! Password, `passwordless` → HardwareKey, `saml`/`oidc`/`github` → Kerberos (single
//! sign-on); `mfa_device.mfa_device_type` `TOTP` → Otp, `WebAuthn`/`U2F` → HardwareKey,
//! other types → Other; a `required_private_key_policy` starting with `hardware_key` →
//! HardwareKey.

use crate::model::{AuthFactor, EventKind};

use super::fields::{json_of, owned, parse_endpoint, parse_time};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "teleport";

/// Maps a Teleport audit event (see the module documentation).
pub fn map(input: &Input<'_>) -> Option<Mapped> {
    let doc = json_of(input.json, input.msg)?;
    let obj = doc.as_object()?;
    let text = |key: &str| obj.get(key).and_then(|v| v.as_str()).and_then(owned);
    let code = obj.get("code")?.as_str()?;
    if !code.starts_with('T') {
        return None;
    }
    let event = obj.get("event")?.as_str()?;
    let success = obj.get("success").and_then(serde_json::Value::as_bool);
    let failure = || EventKind::AuthFailure {
        reason: text("error").unwrap_or_else(|| format!("{event} failed")),
    };

    let mut m = match event {
        "user.login" => {
            let kind = if success == Some(false) {
                failure()
            } else {
                EventKind::AuthSuccess
            };
            let mut m = Mapped::new(NAME, kind);
            login_factors(obj, &mut m);
            m
        }
        "auth" if success == Some(false) => Mapped::new(NAME, failure()),
        _ => {
            let (start, family) = if let Some(family) = event.strip_suffix(".start") {
                (true, family)
            } else if let Some(family) = event.strip_suffix(".end") {
                (false, family)
            } else {
                return None;
            };
            let (target, account, protocol) = match family {
                "session" => (
                    text("server_hostname").or_else(|| text("server_addr")),
                    text("login"),
                    Some(text("proto").unwrap_or_else(|| "ssh".into())),
                ),
                "db.session" => (text("db_service"), text("db_user"), text("db_protocol")),
                "windows.desktop.session" => (
                    text("desktop_name").or_else(|| text("desktop_addr")),
                    text("windows_user"),
                    Some("rdp".into()),
                ),
                "app.session" => (text("app_name"), None, Some("https".into())),
                _ => return None,
            };
            let kind = match (start, success) {
                (true, Some(false)) => failure(),
                (true, _) => EventKind::SessionStart,
                (false, _) => EventKind::SessionEnd,
            };
            let mut m = Mapped::new(NAME, kind);
            m.target = target;
            m.account = account;
            m.protocol = protocol.map(|p| p.to_ascii_lowercase());
            m.session_id = text("sid").or_else(|| text("session_id"));
            m
        }
    };
    m.person = text("user");
    m.source_addr = obj
        .get("addr.remote")
        .and_then(|v| v.as_str())
        .and_then(parse_endpoint)
        .map(|(ip, _)| ip);
    m.occurred_at = obj
        .get("time")
        .and_then(|v| v.as_str())
        .and_then(parse_time);
    Some(m)
}

fn login_factors(obj: &serde_json::Map<String, serde_json::Value>, m: &mut Mapped) {
    match obj.get("method").and_then(|v| v.as_str()) {
        Some("local") => m.push_factor(AuthFactor::Password),
        Some("passwordless") => m.push_factor(AuthFactor::HardwareKey),
        Some("saml" | "oidc" | "github") => m.push_factor(AuthFactor::Kerberos),
        _ => {}
    }
    let device_type = obj
        .get("mfa_device")
        .and_then(|d| d.get("mfa_device_type"))
        .and_then(|t| t.as_str());
    if let Some(device_type) = device_type {
        let factor = match device_type.to_ascii_lowercase().as_str() {
            "" => None,
            "totp" => Some(AuthFactor::Otp),
            "webauthn" | "u2f" => Some(AuthFactor::HardwareKey),
            other => Some(AuthFactor::Other(other.to_owned())),
        };
        if let Some(factor) = factor {
            m.push_factor(factor);
        }
    }
    let key_policy = obj
        .get("required_private_key_policy")
        .and_then(|v| v.as_str());
    if key_policy.is_some_and(|p| p.starts_with("hardware_key")) {
        m.push_factor(AuthFactor::HardwareKey);
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn tp(msg: &str) -> Option<Mapped> {
        map(&Input {
            msg,
            ..Input::default()
        })
    }

    #[test]
    fn session_start_and_end() {
        let m = tp(r#"{"event":"session.start","code":"T2000I","uid":"0f6a","time":"2026-03-12T13:02:11.123Z","cluster_name":"bastion.chu.example","user":"alice@vendor","login":"root","server_hostname":"db01","server_addr":"10.0.0.5:3022","addr.remote":"203.0.113.7:51234","sid":"5b3555dc-729f-11ea-b66a-507b9dd95841","proto":"ssh","namespace":"default"}"#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person.as_deref(), Some("alice@vendor"));
        assert_eq!(m.account.as_deref(), Some("root"));
        assert_eq!(m.target.as_deref(), Some("db01"));
        assert_eq!(m.protocol.as_deref(), Some("ssh"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert_eq!(
            m.session_id.as_deref(),
            Some("5b3555dc-729f-11ea-b66a-507b9dd95841")
        );
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 13:02:11.123 UTC)));

        let m = tp(r#"{"event":"session.end","code":"T2004I","time":"2026-03-12T14:10:00Z","user":"alice@vendor","login":"root","server_hostname":"db01","sid":"5b3555dc-729f-11ea-b66a-507b9dd95841","participants":["alice@vendor"],"interactive":true}"#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.source_addr, None);
        assert_eq!(
            m.session_id.as_deref(),
            Some("5b3555dc-729f-11ea-b66a-507b9dd95841")
        );
    }

    #[test]
    fn login_with_mfa_and_ipv6() {
        let json: serde_json::Value = serde_json::from_str(r#"{"ei":0,"event":"user.login","uid":"b675","code":"T1000I","time":"2026-03-12T13:00:50.628Z","cluster_name":"bastion.chu.example","user":"alice@vendor","required_private_key_policy":"none","success":true,"method":"local","mfa_device":{"mfa_device_name":"otp-device","mfa_device_uuid":"d07b","mfa_device_type":"TOTP"},"addr.remote":"[2001:db8::7]:50332"}"#).expect("json");
        let m = map(&Input {
            msg: "ignored when json is given",
            json: Some(&json),
            ..Input::default()
        })
        .expect("claimed");
        assert_eq!(m.kind, EventKind::AuthSuccess);
        assert_eq!(m.factors, vec![AuthFactor::Password, AuthFactor::Otp]);
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
        assert_eq!(m.session_id, None);

        let m = tp(r#"{"event":"user.login","code":"T1000I","user":"bob","success":true,"method":"passwordless","mfa_device":{"mfa_device_type":"WebAuthn"},"required_private_key_policy":"hardware_key_touch"}"#).expect("claimed");
        assert_eq!(m.factors, vec![AuthFactor::HardwareKey]);
        let m = tp(
            r#"{"event":"user.login","code":"T1001I","user":"bob","success":true,"method":"saml"}"#,
        )
        .expect("claimed");
        assert_eq!(m.factors, vec![AuthFactor::Kerberos]);
    }

    #[test]
    fn login_failure() {
        let m = tp(r#"{"event":"user.login","code":"T1000W","time":"2026-03-12T13:00:40Z","user":"alice@vendor","success":false,"method":"local","error":"invalid username, password or second factor","addr.remote":"203.0.113.7:50330"}"#).expect("claimed");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "invalid username, password or second factor".into()
            }
        );
        let m = tp(r#"{"event":"auth","code":"T3007W","user":"alice@vendor","success":false,"error":"ssh: principal \"root\" not in the set of valid principals"}"#).expect("claimed");
        assert_eq!(m.kind.name(), "auth_failure");
    }

    #[test]
    fn database_and_desktop_sessions() {
        let m = tp(r#"{"event":"db.session.start","code":"TDB00I","user":"alice@vendor","db_service":"pacs-pg","db_user":"postgres","db_protocol":"postgres","sid":"s-2","success":true}"#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.target.as_deref(), Some("pacs-pg"));
        assert_eq!(m.account.as_deref(), Some("postgres"));
        assert_eq!(m.protocol.as_deref(), Some("postgres"));
        let m = tp(r#"{"event":"db.session.start","code":"TDB00W","user":"alice@vendor","db_service":"pacs-pg","success":false,"error":"access denied"}"#).expect("claimed");
        assert_eq!(m.kind.name(), "auth_failure");
        let m = tp(r#"{"event":"windows.desktop.session.end","code":"TDP01I","user":"alice@vendor","desktop_name":"ws-radio-01","windows_user":"Administrator","sid":"s-3"}"#).expect("claimed");
        assert_eq!(m.kind, EventKind::SessionEnd);
        assert_eq!(m.protocol.as_deref(), Some("rdp"));
    }

    #[test]
    fn documents_it_must_not_claim() {
        for msg in [
            r#"{"event":"session.join","code":"T2001I","user":"bob","sid":"s-1"}"#,
            r#"{"event":"session.start","user":"bob"}"#,
            r#"{"event":"session.start","code":"X1","user":"bob"}"#,
            r#"{"event":"auth","code":"T3007I","success":true}"#,
            r#"["session.start"]"#,
            r#"{"event":"session.start","code":"T2000I""#,
            "Accepted password for bob from 203.0.113.7 port 4242 ssh2",
        ] {
            assert_eq!(tp(msg), None, "{msg}");
        }
    }
}
