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

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::model::{AuthFactor, EventKind};

use super::fields::{parse_endpoint, parse_time, present_cow};
use super::{Input, Mapped};

/// The profile's name.
pub const NAME: &str = "teleport";

/// Maps a Teleport audit event (see the module documentation).
pub fn map<'a>(input: &Input<'a>) -> Option<Mapped<'a>> {
    let doc = match input.json {
        Some(value) => Doc::deserialize_from(value).ok()?,
        None => {
            let msg = input.msg.trim();
            if !msg.starts_with('{') {
                return None;
            }
            let mut de = serde_json::Deserializer::from_str(msg);
            let doc = Doc::deserialize_from(&mut de).ok()?;
            de.end().ok()?;
            doc
        }
    };
    let text = |v: &Option<Cow<'a, str>>| v.as_ref().and_then(present_cow);
    let code = doc.code.as_deref()?;
    if !code.starts_with('T') {
        return None;
    }
    let event = doc.event.as_deref()?;
    let success = doc.success;
    let failure = || EventKind::AuthFailure {
        reason: text(&doc.error)
            .map(Cow::into_owned)
            .unwrap_or_else(|| format!("{event} failed")),
    };

    let mut m = match event {
        "user.login" => {
            let kind = if success == Some(false) {
                failure()
            } else {
                EventKind::AuthSuccess
            };
            let mut m = Mapped::new(NAME, kind);
            login_factors(&doc, &mut m);
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
                    text(&doc.server_hostname).or_else(|| text(&doc.server_addr)),
                    text(&doc.login),
                    Some(text(&doc.proto).unwrap_or_else(|| "ssh".into())),
                ),
                "db.session" => (
                    text(&doc.db_service),
                    text(&doc.db_user),
                    text(&doc.db_protocol),
                ),
                "windows.desktop.session" => (
                    text(&doc.desktop_name).or_else(|| text(&doc.desktop_addr)),
                    text(&doc.windows_user),
                    Some("rdp".into()),
                ),
                "app.session" => (text(&doc.app_name), None, Some("https".into())),
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
            m.protocol = protocol.map(|p| p.to_ascii_lowercase().into());
            m.session_id = text(&doc.sid).or_else(|| text(&doc.session_id));
            m
        }
    };
    m.person = text(&doc.user);
    m.source_addr = doc
        .addr_remote
        .as_deref()
        .and_then(parse_endpoint)
        .map(|(ip, _)| ip);
    m.occurred_at = doc.time.as_deref().and_then(parse_time);
    Some(m)
}

fn login_factors(doc: &Doc<'_>, m: &mut Mapped) {
    match doc.method.as_deref() {
        Some("local") => m.push_factor(AuthFactor::Password),
        Some("passwordless") => m.push_factor(AuthFactor::HardwareKey),
        Some("saml" | "oidc" | "github") => m.push_factor(AuthFactor::Kerberos),
        _ => {}
    }
    if let Some(device_type) = doc.mfa_device_type.as_deref() {
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
    if doc
        .required_private_key_policy
        .as_deref()
        .is_some_and(|p| p.starts_with("hardware_key"))
    {
        m.push_factor(AuthFactor::HardwareKey);
    }
}

/// The members of a Teleport event the profile reads, borrowed from the JSON text where it
/// has no escapes; every other member is skipped without being built. Read as a JSON object
/// is read into a map: a member of another type than expected counts as absent (a string
/// where a string is expected, a boolean for `success`, an object for `mfa_device`), and
/// of a member given twice the last one counts.
#[derive(Debug, Default)]
struct Doc<'a> {
    code: Option<Cow<'a, str>>,
    event: Option<Cow<'a, str>>,
    success: Option<bool>,
    error: Option<Cow<'a, str>>,
    user: Option<Cow<'a, str>>,
    login: Option<Cow<'a, str>>,
    server_hostname: Option<Cow<'a, str>>,
    server_addr: Option<Cow<'a, str>>,
    proto: Option<Cow<'a, str>>,
    db_service: Option<Cow<'a, str>>,
    db_user: Option<Cow<'a, str>>,
    db_protocol: Option<Cow<'a, str>>,
    desktop_name: Option<Cow<'a, str>>,
    desktop_addr: Option<Cow<'a, str>>,
    windows_user: Option<Cow<'a, str>>,
    app_name: Option<Cow<'a, str>>,
    sid: Option<Cow<'a, str>>,
    session_id: Option<Cow<'a, str>>,
    addr_remote: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    required_private_key_policy: Option<Cow<'a, str>>,
    /// `mfa_device.mfa_device_type`.
    mfa_device_type: Option<Cow<'a, str>>,
}

impl<'de> Doc<'de> {
    fn deserialize_from<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Teleport event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut doc = Doc::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let slot = match &*key {
                "code" => &mut doc.code,
                "event" => &mut doc.event,
                "error" => &mut doc.error,
                "user" => &mut doc.user,
                "login" => &mut doc.login,
                "server_hostname" => &mut doc.server_hostname,
                "server_addr" => &mut doc.server_addr,
                "proto" => &mut doc.proto,
                "db_service" => &mut doc.db_service,
                "db_user" => &mut doc.db_user,
                "db_protocol" => &mut doc.db_protocol,
                "desktop_name" => &mut doc.desktop_name,
                "desktop_addr" => &mut doc.desktop_addr,
                "windows_user" => &mut doc.windows_user,
                "app_name" => &mut doc.app_name,
                "sid" => &mut doc.sid,
                "session_id" => &mut doc.session_id,
                "addr.remote" => &mut doc.addr_remote,
                "time" => &mut doc.time,
                "method" => &mut doc.method,
                "required_private_key_policy" => &mut doc.required_private_key_policy,
                "success" => {
                    doc.success = map.next_value::<Lenient<bool>>()?.0;
                    continue;
                }
                "mfa_device" => {
                    doc.mfa_device_type = map
                        .next_value::<Lenient<MfaDeviceType<'de>>>()?
                        .0
                        .map(|t| t.0);
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0);
        }
        Ok(doc)
    }
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value: `Some` when it is a `T` (a string, a boolean, an object `T` reads),
/// `None` otherwise.
struct Lenient<T>(Option<T>);

impl<'de, T: LenientValue<'de>> de::Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(std::marker::PhantomData))
    }
}

/// What a [`Lenient`] keeps.
trait LenientValue<'de>: Sized {
    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de> LenientValue<'de> for Text<'de> {
    fn from_str(v: Cow<'de, str>) -> Option<Self> {
        Some(Text(v))
    }
}

impl LenientValue<'_> for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: LenientValue<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Lenient<T>, E> {
        Ok(Lenient(T::from_str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient<T>, E> {
        Ok(Lenient(T::from_str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient<T>, E> {
        Ok(Lenient(T::from_str(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Lenient<T>, E> {
        Ok(Lenient(T::from_bool(v)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
        T::from_map(map).map(Lenient)
    }
}

/// `mfa_device`: its `mfa_device_type` when it is an object with a string there.
struct MfaDeviceType<'a>(Cow<'a, str>);

impl<'de> LenientValue<'de> for MfaDeviceType<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut device_type = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == "mfa_device_type" {
                device_type = map
                    .next_value::<Lenient<Text<'de>>>()?
                    .0
                    .map(|t| MfaDeviceType(t.0));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(device_type)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn tp(msg: &str) -> Option<Mapped<'_>> {
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

    /// The text and the parsed-document paths read the same document the same way.
    fn both(msg: &str) -> Option<Mapped<'_>> {
        let from_text = tp(msg);
        let json = serde_json::from_str::<serde_json::Value>(msg).ok();
        let from_value = json.as_ref().and_then(|json| {
            map(&Input {
                msg: "",
                json: Some(json),
                ..Input::default()
            })
        });
        assert_eq!(from_text, from_value, "{msg}");
        from_text
    }

    #[test]
    fn members_of_another_type_count_as_absent() {
        let m = both(r#"{"event":"session.start","code":"T2000I","user":7,"login":null,"server_hostname":["db01"],"server_addr":{"a":1},"sid":"s-1","success":"yes","time":1.5,"extra":{"nested":[1,{"x":"y"}]}}"#)
            .expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person, None);
        assert_eq!(m.account, None);
        assert_eq!(m.target, None);
        assert_eq!(m.session_id.as_deref(), Some("s-1"));
        assert_eq!(m.occurred_at, None);
        // A login whose mfa_device is not an object: no factor from it.
        let m = both(r#"{"event":"user.login","code":"T1000I","user":"a","method":"local","mfa_device":"TOTP"}"#)
            .expect("claimed");
        assert_eq!(m.factors, vec![AuthFactor::Password]);
        // `success` that is not a boolean does not make a failure.
        let m = both(r#"{"event":"user.login","code":"T1000W","success":0}"#).expect("claimed");
        assert_eq!(m.kind, EventKind::AuthSuccess);
    }

    #[test]
    fn escapes_and_repeated_members_read_as_a_json_map_reads_them() {
        let m = both(r#"{"event":"session.start","code":"T2000I","user":"mallory","user":"al\u0069ce\"x","login":"r\\oot","sid":"s\/1"}"#)
            .expect("claimed");
        assert_eq!(m.person.as_deref(), Some("alice\"x"));
        assert_eq!(m.account.as_deref(), Some("r\\oot"));
        assert_eq!(m.session_id.as_deref(), Some("s/1"));
        let m = both(r#"{"ev\u0065nt":"user.login","code":"T1000I","mfa_device":{"mfa_device_type":"x","mfa_device_type":"WebAuthn"},"mfa_device":{"mfa_device_name":"k"}}"#)
            .expect("claimed");
        assert_eq!(m.factors, Vec::new());
        assert_eq!(
            both(r#"{"event":"session.start","code":"T2000I"} trailing"#),
            None
        );
    }
}
