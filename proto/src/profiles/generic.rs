//! Generic profile: a mapping users write in TOML for a source no built-in profile knows.
//!
//! The collector deserializes a [`GenericConfig`] (unknown keys are refused) and calls
//! [`GenericConfig::compile`], which validates it into a [`GenericProfile`] ready for
//! [`super::Profile::Generic`]. A message is claimed when every `match` condition holds
//! **and** a kind can be determined; otherwise the next profile is tried.
//!
//! ```toml
//! name = "jumpserver"
//! format = "json"              # "json": fields are dotted paths; "kv": key=value names
//!
//! [match]                      # every condition must hold (all optional)
//! app_name = "jumpserver"      # syslog APP-NAME equals
//! msg_contains = ["\"type\":\"session\""]   # plain substrings of the message
//! field_equals = { "org.name" = "CHU" }     # a field's text equals
//!
//! [fields]                     # path of each event field (all optional)
//! person = "user.username"     # `addr.remote`-style keys with dots are found too
//! account = "account"
//! target = "asset.hostname"
//! protocol = "protocol"
//! source_addr = "remote_addr"  # IP, IP:PORT or [IPv6]:PORT
//! session_id = "id"
//! occurred_at = "date"         # RFC 3339 or Unix time (s, ms, µs, ns)
//! vendor = "org.vendor"
//! reason = "error"             # the reason of an auth_failure (else the kind's value)
//!
//! [kind]                       # either `field` + `values`, or `fixed`
//! field = "action"
//! values = { start = "session_start", end = "session_end", login_failed = "auth_failure" }
//! # fixed = "session_start"
//!
//! [factors]                    # all optional
//! field = "mfa_methods"        # a JSON array, or comma-separated text
//! values = { otp = "otp", pwd = "password", fido = "hardware_key" }
//! fixed = ["certificate"]      # factors every matching message shows
//! ```
//!
//! Kind names: `session_start`, `session_end`, `auth_success`, `auth_failure`,
//! `tunnel_up`, `tunnel_down`. Factor names: `password`, `public_key`, `certificate`,
//! `otp`, `push`, `hardware_key`, `kerberos`, `other:NAME`. A method value not listed in
//! `factors.values` is kept as `other` with its text, never counted as a second factor.
//!
//! With `format = "json"` the document is [`Input::json`], or `msg` parsed when it is
//! an object; a path segment that is a number indexes an array (`participants.0`). With
//! `format = "kv"` the message's `key=value` / `key="value"` pairs are read, and a path is
//! a key name as is. Values `""`, `-`, `N/A`, `none`, `null` count as absent.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{AuthFactor, EventKind};

use super::fields::{
    Pairs, json_of, json_path, json_text, lowercase, owned, parse_endpoint, parse_time, present,
    present_cow,
};
use super::{Input, Mapped};

/// The name reported in [`Mapped::profile`] for every generic profile.
pub const NAME: &str = "generic";

/// A generic profile as configured (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericConfig {
    /// The profile's name, used in errors and by the collector's configuration.
    pub name: String,
    /// How paths are read.
    pub format: GenericFormat,
    /// Conditions every claimed message meets.
    #[serde(default, rename = "match")]
    pub when: MatchConfig,
    /// Paths of the event's fields.
    #[serde(default)]
    pub fields: FieldsConfig,
    /// How the event's kind is determined.
    pub kind: KindConfig,
    /// How authentication factors are read.
    #[serde(default)]
    pub factors: FactorsConfig,
}

/// How a generic profile reads field paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenericFormat {
    /// The message is a JSON object; paths are dotted (`user.name`).
    Json,
    /// The message holds `key=value` pairs; paths are key names.
    Kv,
}

/// Conditions a message must all meet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The syslog APP-NAME equals this.
    #[serde(default)]
    pub app_name: Option<String>,
    /// The message contains each of these strings.
    #[serde(default)]
    pub msg_contains: Vec<String>,
    /// Path → the text the field must equal.
    #[serde(default)]
    pub field_equals: BTreeMap<String, String>,
}

/// Paths of the event's fields; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// The vendor.
    #[serde(default)]
    pub vendor: Option<String>,
    /// The person.
    #[serde(default)]
    pub person: Option<String>,
    /// The account.
    #[serde(default)]
    pub account: Option<String>,
    /// The target resource.
    #[serde(default)]
    pub target: Option<String>,
    /// The protocol (reported lowercase).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The client address.
    #[serde(default)]
    pub source_addr: Option<String>,
    /// The session identifier.
    #[serde(default)]
    pub session_id: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// The reason of an authentication failure.
    #[serde(default)]
    pub reason: Option<String>,
}

/// How the kind is determined: `field` + `values`, or `fixed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindConfig {
    /// Path of the field whose text selects the kind through `values`.
    #[serde(default)]
    pub field: Option<String>,
    /// Field text → kind name. A text not listed: the message is not claimed.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// The kind of every matching message.
    #[serde(default)]
    pub fixed: Option<String>,
}

/// How factors are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorsConfig {
    /// Path of a field listing the methods used: a JSON array, or comma-separated text.
    #[serde(default)]
    pub field: Option<String>,
    /// Method text → factor name.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Factors every matching message shows.
    #[serde(default)]
    pub fixed: Vec<String>,
}

/// Why a generic profile's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericConfigError {
    /// `name` is empty.
    #[error("generic profile has an empty name")]
    EmptyName,
    /// A path is empty.
    #[error("generic profile {profile:?}: {setting} is an empty path")]
    EmptyPath {
        /// The profile.
        profile: String,
        /// The setting, e.g. `fields.person`.
        setting: String,
    },
    /// A dotted JSON path has an empty segment (`user..name`, `.user`).
    #[error("generic profile {profile:?}: {setting}: path {path:?} has an empty segment")]
    EmptySegment {
        /// The profile.
        profile: String,
        /// The setting.
        setting: String,
        /// The path.
        path: String,
    },
    /// An event kind name is not known.
    #[error(
        "generic profile {profile:?}: {setting}: unknown event kind {name:?} (expected session_start, session_end, auth_success, auth_failure, tunnel_up or tunnel_down)"
    )]
    UnknownKind {
        /// The profile.
        profile: String,
        /// The setting.
        setting: String,
        /// The name given.
        name: String,
    },
    /// A factor name is not known.
    #[error(
        "generic profile {profile:?}: {setting}: unknown factor {name:?} (expected password, public_key, certificate, otp, push, hardware_key, kerberos or other:NAME)"
    )]
    UnknownFactor {
        /// The profile.
        profile: String,
        /// The setting.
        setting: String,
        /// The name given.
        name: String,
    },
    /// The kind is given both or neither ways.
    #[error("generic profile {profile:?}: kind needs exactly one of `field` or `fixed`")]
    KindSource {
        /// The profile.
        profile: String,
    },
    /// `kind.field` without `kind.values`, or the reverse.
    #[error("generic profile {profile:?}: kind.field and kind.values go together")]
    KindValues {
        /// The profile.
        profile: String,
    },
    /// `factors.values` without `factors.field`.
    #[error("generic profile {profile:?}: factors.values needs factors.field")]
    FactorValues {
        /// The profile.
        profile: String,
    },
    /// `match.msg_contains` has an empty string.
    #[error("generic profile {profile:?}: match.msg_contains has an empty string")]
    EmptyContains {
        /// The profile.
        profile: String,
    },
    /// A fixed kind with no match condition would claim every message.
    #[error(
        "generic profile {profile:?}: a fixed kind needs at least one match condition, or the profile would claim every message"
    )]
    ClaimsEverything {
        /// The profile.
        profile: String,
    },
}

/// A validated generic profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericProfile {
    name: String,
    format: GenericFormat,
    app_name: Option<String>,
    msg_contains: Vec<String>,
    field_equals: Vec<(FieldPath, String)>,
    fields: Fields,
    kind: KindRule,
    factor_field: Option<FieldPath>,
    factor_values: BTreeMap<String, AuthFactor>,
    fixed_factors: Vec<AuthFactor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    raw: String,
    segments: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields {
    vendor: Option<FieldPath>,
    person: Option<FieldPath>,
    account: Option<FieldPath>,
    target: Option<FieldPath>,
    protocol: Option<FieldPath>,
    source_addr: Option<FieldPath>,
    session_id: Option<FieldPath>,
    occurred_at: Option<FieldPath>,
    reason: Option<FieldPath>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindName {
    SessionStart,
    SessionEnd,
    AuthSuccess,
    AuthFailure,
    TunnelUp,
    TunnelDown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KindRule {
    Fixed(KindName),
    Field {
        path: FieldPath,
        values: BTreeMap<String, KindName>,
    },
}

impl GenericConfig {
    /// Validates the configuration.
    ///
    /// # Errors
    ///
    /// A [`GenericConfigError`] naming the profile and the setting at fault: an empty
    /// name or path, an unknown kind or factor name, a kind given both or neither ways,
    /// values without their field, or a fixed kind without any match condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use proto::profiles::{GenericConfig, GenericConfigError};
    ///
    /// let config: GenericConfig = serde_json::from_str(
    ///     r#"{"name": "x", "format": "kv", "kind": {"field": "ev", "values": {"in": "login"}}}"#,
    /// ).unwrap();
    /// assert!(matches!(config.compile(), Err(GenericConfigError::UnknownKind { .. })));
    /// ```
    pub fn compile(self) -> Result<GenericProfile, GenericConfigError> {
        let profile = self.name.trim().to_owned();
        if profile.is_empty() {
            return Err(GenericConfigError::EmptyName);
        }
        let format = self.format;
        let path = |setting: &str, raw: &str| compile_path(&profile, format, setting, raw);
        let opt_path = |setting: &str, raw: &Option<String>| {
            raw.as_deref().map(|raw| path(setting, raw)).transpose()
        };

        if self.when.msg_contains.iter().any(String::is_empty) {
            return Err(GenericConfigError::EmptyContains {
                profile: profile.clone(),
            });
        }
        let field_equals = self
            .when
            .field_equals
            .iter()
            .map(|(p, v)| Ok((path("match.field_equals", p)?, v.clone())))
            .collect::<Result<Vec<_>, GenericConfigError>>()?;

        let f = &self.fields;
        let fields = Fields {
            vendor: opt_path("fields.vendor", &f.vendor)?,
            person: opt_path("fields.person", &f.person)?,
            account: opt_path("fields.account", &f.account)?,
            target: opt_path("fields.target", &f.target)?,
            protocol: opt_path("fields.protocol", &f.protocol)?,
            source_addr: opt_path("fields.source_addr", &f.source_addr)?,
            session_id: opt_path("fields.session_id", &f.session_id)?,
            occurred_at: opt_path("fields.occurred_at", &f.occurred_at)?,
            reason: opt_path("fields.reason", &f.reason)?,
        };

        let kind = match (&self.kind.field, &self.kind.fixed) {
            (Some(field), None) => {
                if self.kind.values.is_empty() {
                    return Err(GenericConfigError::KindValues {
                        profile: profile.clone(),
                    });
                }
                let values = self
                    .kind
                    .values
                    .iter()
                    .map(|(value, name)| {
                        let setting = format!("kind.values.{value:?}");
                        Ok((value.clone(), kind_name(&profile, &setting, name)?))
                    })
                    .collect::<Result<_, GenericConfigError>>()?;
                KindRule::Field {
                    path: path("kind.field", field)?,
                    values,
                }
            }
            (None, Some(fixed)) => {
                if !self.kind.values.is_empty() {
                    return Err(GenericConfigError::KindValues {
                        profile: profile.clone(),
                    });
                }
                let when = &self.when;
                if when.app_name.is_none()
                    && when.msg_contains.is_empty()
                    && when.field_equals.is_empty()
                {
                    return Err(GenericConfigError::ClaimsEverything {
                        profile: profile.clone(),
                    });
                }
                KindRule::Fixed(kind_name(&profile, "kind.fixed", fixed)?)
            }
            _ => {
                return Err(GenericConfigError::KindSource {
                    profile: profile.clone(),
                });
            }
        };

        if self.factors.field.is_none() && !self.factors.values.is_empty() {
            return Err(GenericConfigError::FactorValues {
                profile: profile.clone(),
            });
        }
        let factor_field = opt_path("factors.field", &self.factors.field)?;
        let factor_values = self
            .factors
            .values
            .iter()
            .map(|(value, name)| {
                let setting = format!("factors.values.{value:?}");
                Ok((value.clone(), factor_name(&profile, &setting, name)?))
            })
            .collect::<Result<_, GenericConfigError>>()?;
        let fixed_factors = self
            .factors
            .fixed
            .iter()
            .map(|name| factor_name(&profile, "factors.fixed", name))
            .collect::<Result<_, _>>()?;

        Ok(GenericProfile {
            name: profile,
            format,
            app_name: self.when.app_name,
            msg_contains: self.when.msg_contains,
            field_equals,
            fields,
            kind,
            factor_field,
            factor_values,
            fixed_factors,
        })
    }
}

fn compile_path(
    profile: &str,
    format: GenericFormat,
    setting: &str,
    raw: &str,
) -> Result<FieldPath, GenericConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(GenericConfigError::EmptyPath {
            profile: profile.to_owned(),
            setting: setting.to_owned(),
        });
    }
    let segments: Vec<String> = match format {
        GenericFormat::Json => raw.split('.').map(str::to_owned).collect(),
        GenericFormat::Kv => vec![raw.to_owned()],
    };
    if segments.iter().any(String::is_empty) {
        return Err(GenericConfigError::EmptySegment {
            profile: profile.to_owned(),
            setting: setting.to_owned(),
            path: raw.to_owned(),
        });
    }
    Ok(FieldPath {
        raw: raw.to_owned(),
        segments,
    })
}

fn kind_name(profile: &str, setting: &str, name: &str) -> Result<KindName, GenericConfigError> {
    Ok(match name {
        "session_start" => KindName::SessionStart,
        "session_end" => KindName::SessionEnd,
        "auth_success" => KindName::AuthSuccess,
        "auth_failure" => KindName::AuthFailure,
        "tunnel_up" => KindName::TunnelUp,
        "tunnel_down" => KindName::TunnelDown,
        _ => {
            return Err(GenericConfigError::UnknownKind {
                profile: profile.to_owned(),
                setting: setting.to_owned(),
                name: name.to_owned(),
            });
        }
    })
}

fn factor_name(profile: &str, setting: &str, name: &str) -> Result<AuthFactor, GenericConfigError> {
    Ok(match name {
        "password" => AuthFactor::Password,
        "public_key" => AuthFactor::PublicKey,
        "certificate" => AuthFactor::Certificate,
        "otp" => AuthFactor::Otp,
        "push" => AuthFactor::Push,
        "hardware_key" => AuthFactor::HardwareKey,
        "kerberos" => AuthFactor::Kerberos,
        _ => match name.strip_prefix("other:").map(str::trim) {
            Some(other) if !other.is_empty() => AuthFactor::Other(other.to_owned()),
            _ => {
                return Err(GenericConfigError::UnknownFactor {
                    profile: profile.to_owned(),
                    setting: setting.to_owned(),
                    name: name.to_owned(),
                });
            }
        },
    })
}

/// The message as the profile reads it.
enum Doc<'a> {
    Json(Cow<'a, serde_json::Value>),
    Kv(Pairs<'a>),
}

impl<'a> Doc<'a> {
    fn text(&self, path: &FieldPath) -> Option<Cow<'_, str>> {
        match self {
            Doc::Json(v) => json_path(v, &path.segments).and_then(json_text),
            Doc::Kv(p) => p.value(&path.raw).map(Cow::Borrowed),
        }
    }

    /// The field's text for the mapping: borrowed from the message where it is there as is
    /// (key=value text, a JSON document received as such), else owned.
    fn field(&self, path: Option<&FieldPath>) -> Option<Cow<'a, str>> {
        let path = path?;
        match self {
            Doc::Kv(p) => p.text(&path.raw),
            Doc::Json(Cow::Borrowed(v)) => json_path(v, &path.segments)
                .and_then(json_text)
                .as_ref()
                .and_then(present_cow),
            Doc::Json(Cow::Owned(_)) => self.text(path).as_deref().and_then(owned),
        }
    }

    /// The items of a list field: a JSON array's scalars, or comma-separated text.
    fn list(&self, path: &FieldPath) -> Vec<String> {
        let array = match self {
            Doc::Json(v) => json_path(v, &path.segments).and_then(serde_json::Value::as_array),
            Doc::Kv(_) => None,
        };
        if let Some(items) = array {
            return items
                .iter()
                .filter_map(json_text)
                .filter_map(|t| present(&t).map(str::to_owned))
                .collect();
        }
        match self.text(path) {
            Some(text) => text
                .split(',')
                .filter_map(|t| present(t).map(str::to_owned))
                .collect(),
            None => Vec::new(),
        }
    }
}

impl GenericProfile {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Maps a message, or `None` when a match condition fails or no kind is found.
    pub fn map<'a>(&self, input: &Input<'a>) -> Option<Mapped<'a>> {
        if self
            .app_name
            .as_deref()
            .is_some_and(|app| input.app_name != Some(app))
        {
            return None;
        }
        if !self
            .msg_contains
            .iter()
            .all(|s| input.msg.contains(s.as_str()))
        {
            return None;
        }
        let doc = match self.format {
            GenericFormat::Json => Doc::Json(json_of(input.json, input.msg)?),
            GenericFormat::Kv => Doc::Kv(Pairs::parse(input.msg)),
        };
        for (path, expected) in &self.field_equals {
            if doc.text(path).as_deref() != Some(expected.as_str()) {
                return None;
            }
        }
        let (kind_name, kind_value) = match &self.kind {
            KindRule::Fixed(k) => (*k, None),
            KindRule::Field { path, values } => {
                let value = doc.text(path)?;
                (*values.get(value.as_ref())?, Some(value.into_owned()))
            }
        };
        let f = &self.fields;
        let kind = match kind_name {
            KindName::SessionStart => EventKind::SessionStart,
            KindName::SessionEnd => EventKind::SessionEnd,
            KindName::AuthSuccess => EventKind::AuthSuccess,
            KindName::TunnelUp => EventKind::TunnelUp,
            KindName::TunnelDown => EventKind::TunnelDown,
            KindName::AuthFailure => EventKind::AuthFailure {
                reason: doc
                    .field(f.reason.as_ref())
                    .map(Cow::into_owned)
                    .or(kind_value)
                    .unwrap_or_else(|| "auth_failure".into()),
            },
        };
        let mut m = Mapped::new(NAME, kind);
        m.vendor = doc.field(f.vendor.as_ref());
        m.person = doc.field(f.person.as_ref());
        m.account = doc.field(f.account.as_ref());
        m.target = doc.field(f.target.as_ref());
        m.protocol = doc.field(f.protocol.as_ref()).map(lowercase);
        m.source_addr = doc
            .field(f.source_addr.as_ref())
            .and_then(|a| parse_endpoint(&a))
            .map(|(ip, _)| ip);
        m.session_id = doc.field(f.session_id.as_ref());
        m.occurred_at = doc
            .field(f.occurred_at.as_ref())
            .and_then(|t| parse_time(&t));
        for factor in &self.fixed_factors {
            m.push_factor(factor.clone());
        }
        if let Some(path) = &self.factor_field {
            for method in doc.list(path) {
                let factor = self
                    .factor_values
                    .get(&method)
                    .cloned()
                    .unwrap_or_else(|| AuthFactor::Other(method.to_ascii_lowercase()));
                m.push_factor(factor);
            }
        }
        Some(m)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;

    use super::*;

    /// The module documentation's TOML example, as JSON (the same serde model).
    pub(crate) const JSON_EXAMPLE: &str = r#"{
        "name": "jumpserver",
        "format": "json",
        "match": {
            "app_name": "jumpserver",
            "msg_contains": ["\"type\":\"session\""],
            "field_equals": {"org.name": "CHU"}
        },
        "fields": {
            "person": "user.username",
            "account": "account",
            "target": "asset.hostname",
            "protocol": "protocol",
            "source_addr": "remote_addr",
            "session_id": "id",
            "occurred_at": "date",
            "vendor": "org.vendor",
            "reason": "error"
        },
        "kind": {
            "field": "action",
            "values": {"start": "session_start", "end": "session_end", "login_failed": "auth_failure"}
        },
        "factors": {
            "field": "mfa_methods",
            "values": {"otp": "otp", "pwd": "password", "fido": "hardware_key"},
            "fixed": ["certificate"]
        }
    }"#;

    /// A key=value source with a fixed kind.
    pub(crate) const KV_EXAMPLE: &str = r#"{
        "name": "rdgw",
        "format": "kv",
        "match": {"msg_contains": ["event=rdp_connect"]},
        "fields": {"person": "user", "target": "host", "source_addr": "src", "session_id": "sid", "occurred_at": "ts"},
        "kind": {"fixed": "session_start"},
        "factors": {"field": "auth", "values": {"pw": "password", "sc": "hardware_key"}}
    }"#;

    fn compile(json: &str) -> Result<GenericProfile, GenericConfigError> {
        serde_json::from_str::<GenericConfig>(json)
            .expect("deserializes")
            .compile()
    }

    fn example() -> GenericProfile {
        compile(JSON_EXAMPLE).expect("valid")
    }

    const SESSION: &str = r#"{"type":"session","action":"start","id":"8a1f","date":"2026-03-12T14:02:11+01:00","user":{"username":"jdoe@acme"},"account":"root","asset":{"hostname":"srv-pacs-01"},"protocol":"SSH","remote_addr":"203.0.113.7","org":{"name":"CHU","vendor":"acme"},"mfa_methods":["pwd","otp","carrier-pigeon"]}"#;

    fn input(msg: &str) -> Input<'_> {
        Input {
            app_name: Some("jumpserver"),
            msg,
            ..Input::default()
        }
    }

    #[test]
    fn json_session_start() {
        let m = example().map(&input(SESSION)).expect("claimed");
        assert_eq!(m.profile, "generic");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person.as_deref(), Some("jdoe@acme"));
        assert_eq!(m.vendor.as_deref(), Some("acme"));
        assert_eq!(m.account.as_deref(), Some("root"));
        assert_eq!(m.target.as_deref(), Some("srv-pacs-01"));
        assert_eq!(m.protocol.as_deref(), Some("ssh"));
        assert_eq!(m.source_addr, "203.0.113.7".parse().ok());
        assert_eq!(m.session_id.as_deref(), Some("8a1f"));
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 14:02:11 +01:00)));
        assert_eq!(
            m.factors,
            vec![
                AuthFactor::Certificate,
                AuthFactor::Password,
                AuthFactor::Otp,
                AuthFactor::Other("carrier-pigeon".into())
            ]
        );
    }

    #[test]
    fn json_failure_ipv6_and_collector_parsed_json() {
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"type":"session","action":"login_failed","error":"bad otp","remote_addr":"2001:db8::7","org":{"name":"CHU"},"mfa_methods":"pwd, otp"}"#,
        )
        .expect("json");
        let msg = r#"{"type":"session"}"#;
        let m = example()
            .map(&Input {
                json: Some(&doc),
                ..input(msg)
            })
            .expect("claimed");
        assert_eq!(
            m.kind,
            EventKind::AuthFailure {
                reason: "bad otp".into()
            }
        );
        assert_eq!(m.source_addr, "2001:db8::7".parse().ok());
        assert_eq!(
            m.factors,
            vec![
                AuthFactor::Certificate,
                AuthFactor::Password,
                AuthFactor::Otp
            ]
        );
    }

    #[test]
    fn messages_the_json_example_must_not_claim() {
        let p = example();
        // Another app.
        assert_eq!(
            p.map(&Input {
                app_name: Some("sshd"),
                ..input(SESSION)
            }),
            None
        );
        // Another organisation.
        let other = SESSION.replace("\"CHU\"", "\"CHR\"");
        assert_eq!(p.map(&input(&other)), None);
        // An action the mapping does not list.
        let other = SESSION.replace("\"start\"", "\"resize\"");
        assert_eq!(p.map(&input(&other)), None);
        // Not JSON.
        assert_eq!(p.map(&input(r#"type="session" action=start"#)), None);
    }

    #[test]
    fn kv_fixed_kind() {
        let p = compile(KV_EXAMPLE).expect("valid");
        let msg = r#"event=rdp_connect user="Jean Dupont" host=ws-radio-01 src=[2001:db8::9]:3389 sid=77 ts=1773320531 auth="pw,sc""#;
        let m = p
            .map(&Input {
                msg,
                ..Input::default()
            })
            .expect("claimed");
        assert_eq!(m.kind, EventKind::SessionStart);
        assert_eq!(m.person.as_deref(), Some("Jean Dupont"));
        assert_eq!(m.source_addr, "2001:db8::9".parse().ok());
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 13:02:11 UTC)));
        assert_eq!(
            m.factors,
            vec![AuthFactor::Password, AuthFactor::HardwareKey]
        );
        assert_eq!(
            p.map(&Input {
                msg: "event=rdp_disconnect user=x",
                ..Input::default()
            }),
            None
        );
    }

    #[test]
    fn validation_errors_are_clear() {
        let err =
            compile(r#"{"name":"x","format":"json","kind":{"field":"a","values":{"in":"login"}}}"#)
                .expect_err("unknown kind");
        assert_eq!(
            err.to_string(),
            r#"generic profile "x": kind.values."in": unknown event kind "login" (expected session_start, session_end, auth_success, auth_failure, tunnel_up or tunnel_down)"#
        );
        let err = compile(r#"{"name":"x","format":"json","fields":{"person":" "},"kind":{"fixed":"session_start"},"match":{"app_name":"a"}}"#)
            .expect_err("empty path");
        assert_eq!(
            err.to_string(),
            r#"generic profile "x": fields.person is an empty path"#
        );
        assert!(matches!(
            compile(
                r#"{"name":"x","format":"json","fields":{"person":"user..name"},"kind":{"fixed":"session_start"},"match":{"app_name":"a"}}"#
            ),
            Err(GenericConfigError::EmptySegment { .. })
        ));
        // In kv, a key may hold dots.
        assert!(compile(r#"{"name":"x","format":"kv","fields":{"person":"user..name"},"kind":{"fixed":"session_start"},"match":{"app_name":"a"}}"#).is_ok());
        assert!(matches!(
            compile(
                r#"{"name":"x","format":"json","kind":{"fixed":"unmapped"},"match":{"app_name":"a"}}"#
            ),
            Err(GenericConfigError::UnknownKind { .. })
        ));
        assert!(matches!(
            compile(r#"{"name":"x","format":"json","kind":{"fixed":"session_start"}}"#),
            Err(GenericConfigError::ClaimsEverything { .. })
        ));
        assert!(matches!(
            compile(r#"{"name":"x","format":"json","kind":{}}"#),
            Err(GenericConfigError::KindSource { .. })
        ));
        assert!(matches!(
            compile(r#"{"name":"x","format":"json","kind":{"field":"a"}}"#),
            Err(GenericConfigError::KindValues { .. })
        ));
        assert!(matches!(
            compile(
                r#"{"name":"x","format":"json","kind":{"field":"a","values":{"b":"session_end"}},"factors":{"values":{"t":"otp"}}}"#
            ),
            Err(GenericConfigError::FactorValues { .. })
        ));
        assert!(matches!(
            compile(
                r#"{"name":"x","format":"json","kind":{"field":"a","values":{"b":"session_end"}},"factors":{"fixed":["sms"]}}"#
            ),
            Err(GenericConfigError::UnknownFactor { .. })
        ));
        assert!(compile(r#"{"name":"x","format":"json","kind":{"field":"a","values":{"b":"session_end"}},"factors":{"fixed":["other:badge"]}}"#).is_ok());
        assert!(matches!(
            compile(
                r#"{"name":"x","format":"json","kind":{"field":"a","values":{"b":"session_end"}},"match":{"msg_contains":[""]}}"#
            ),
            Err(GenericConfigError::EmptyContains { .. })
        ));
        assert_eq!(
            compile(r#"{"name":" ","format":"json","kind":{"fixed":"session_end"}}"#),
            Err(GenericConfigError::EmptyName)
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        for json in [
            r#"{"name":"x","format":"json","kind":{"fixed":"session_end"},"colour":"red"}"#,
            r#"{"name":"x","format":"json","kind":{"fixed":"session_end","extra":1}}"#,
            r#"{"name":"x","format":"json","kind":{"fixed":"session_end"},"fields":{"user":"u"}}"#,
            r#"{"name":"x","format":"json","kind":{"fixed":"session_end"},"match":{"host":"h"}}"#,
            r#"{"name":"x","format":"yaml","kind":{"fixed":"session_end"}}"#,
        ] {
            assert!(
                serde_json::from_str::<GenericConfig>(json).is_err(),
                "{json}"
            );
        }
    }
}
