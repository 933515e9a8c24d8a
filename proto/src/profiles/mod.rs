//! Source profiles: turning a message from a known bastion or VPN gateway into a
//! [`ConnectionEvent`].
//!
//! The collector parses the transport (syslog header, JSON document, key=value body) and
//! hands each message to the profiles as an [`Input`]. A profile either understands the
//! message and returns a [`Mapped`] (everything the message says about the connection), or
//! returns `None`. The collector then adds what only it knows (tenant, authenticated
//! source, reception time, raw bytes) with [`Mapped::into_event`]; a message no profile
//! understands still becomes an event of kind [`EventKind::Unmapped`] through
//! [`unmapped`], so nothing a source sent is ever dropped.
//!
//! ```text
//!  Input { app_name, hostname, proc_id, timestamp, msg, json }
//!     │
//!     ├─ Profile::map ──► Some(Mapped) ── into_event(EventContext) ──► ConnectionEvent
//!     │                   None ─────────── unmapped(EventContext) ───► ConnectionEvent (Unmapped)
//!     └─ map_any(&[Profile]) tries the profiles in order (auto-detection)
//! ```
//!
//! The profiles, and the messages each understands, are documented in their modules:
//! [`sshd`] (OpenSSH), [`openvpn`], [`fortigate`] (SSL-VPN), [`teleport`] (audit JSON),
//! [`guacamole`] (web application and guacd), [`wallix`] (bastion session log),
//! [`generic`] (a mapping users configure in TOML).
//!
//! # Conventions shared by all profiles
//!
//! - **person / account**: `account` is the identity the source authenticated (a Unix
//!   login, a VPN user, a certificate's common name); `person` is set only when the source
//!   itself tells the human apart from the account (bastions: Teleport's `user` vs
//!   `login`, Wallix's `user` vs `account`, Guacamole's user). The auditor resolves an
//!   account to a person through the declared staff lists.
//! - **vendor** is set only when the message names it (Wallix `vendor`, generic mapping).
//! - **factors** are what the message shows, never guessed from configuration; each
//!   module says how its methods map to [`AuthFactor`]s. On a failure they are the factor
//!   that was tried, when the line says.
//! - **occurred_at** is the time the message body gives (Teleport `time`, FortiGate
//!   `eventtime`, Wallix `time`), else the transport header's [`Input::timestamp`]; when
//!   neither exists [`Mapped::into_event`] falls back on the context's clocks.
//! - **session_id** links the events of one session; where the source has none, the
//!   module documents what it uses (`ADDR:PORT` of the client, in [`std::net::SocketAddr`]
//!   notation, `[v6]:port` for IPv6), or leaves it empty.
//! - IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`) are reported as IPv4.
//!
//! Nothing here panics on any input: every profile is covered by a property test feeding
//! it random text.

mod fields;
pub mod fortigate;
pub mod generic;
pub mod guacamole;
pub mod openvpn;
pub mod sshd;
pub mod teleport;
pub mod wallix;

use std::borrow::Cow;
use std::net::IpAddr;

use time::OffsetDateTime;

pub use generic::{GenericConfig, GenericConfigError, GenericProfile};

use crate::canonical::EventParts;
use crate::model::{AuthFactor, ConnectionEvent, EventKind};

/// A message already parsed out of its transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// Syslog APP-NAME (RFC 5424) or TAG (RFC 3164), e.g. `sshd`, `openvpn`.
    pub app_name: Option<&'a str>,
    /// Syslog HOSTNAME: the host that logged the message.
    pub hostname: Option<&'a str>,
    /// Syslog PROCID (RFC 5424) or the pid of an RFC 3164 `TAG[pid]`.
    pub proc_id: Option<&'a str>,
    /// The timestamp of the transport header, if any.
    pub timestamp: Option<OffsetDateTime>,
    /// The MSG part, or the whole document for JSON sources.
    pub msg: &'a str,
    /// The message as JSON, when it is JSON. Profiles that read JSON parse `msg`
    /// themselves when this is `None` and `msg` looks like a JSON object.
    pub json: Option<&'a serde_json::Value>,
}

/// Everything of a [`ConnectionEvent`] that a message tells, its text borrowed from the
/// message where it is there as is (no allocation per field on the collector's path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped<'a> {
    /// The name of the profile that understood the message (`sshd`, `generic`, …).
    pub profile: &'static str,
    /// What happened.
    pub kind: EventKind,
    /// The vendor, when the message names it.
    pub vendor: Option<Cow<'a, str>>,
    /// The person, when the source tells the person apart from the account.
    pub person: Option<Cow<'a, str>>,
    /// The account authenticated or used.
    pub account: Option<Cow<'a, str>>,
    /// The target resource reached.
    pub target: Option<Cow<'a, str>>,
    /// The protocol, lowercase (`ssh`, `rdp`, `openvpn`, `ssl-tunnel`…).
    pub protocol: Option<Cow<'a, str>>,
    /// The address the person connected from.
    pub source_addr: Option<IpAddr>,
    /// The source's session identifier, or what the profile uses in its stead.
    pub session_id: Option<Cow<'a, str>>,
    /// Authentication factors the message shows.
    pub factors: Vec<AuthFactor>,
    /// When it happened: the message body's time, else the transport header's.
    pub occurred_at: Option<OffsetDateTime>,
}

impl<'a> Mapped<'a> {
    /// A mapped message of `kind` with nothing else known yet.
    pub fn new(profile: &'static str, kind: EventKind) -> Self {
        Mapped {
            profile,
            kind,
            vendor: None,
            person: None,
            account: None,
            target: None,
            protocol: None,
            source_addr: None,
            session_id: None,
            factors: Vec::new(),
            occurred_at: None,
        }
    }

    /// The connection event's fields, completed with what the collector knows, borrowed
    /// for [`crate::canonical::encode_event`].
    ///
    /// `occurred_at` is the mapped time, else `ctx.fallback_occurred_at`, else
    /// `ctx.received_at`.
    pub fn parts<'p>(&'p self, ctx: &EventContext<'p>) -> EventParts<'p> {
        EventParts {
            kind: &self.kind,
            tenant: ctx.tenant,
            source: ctx.source,
            vendor: self.vendor.as_deref(),
            person: self.person.as_deref(),
            account: self.account.as_deref(),
            target: self.target.as_deref(),
            protocol: self.protocol.as_deref(),
            source_addr: self.source_addr,
            session_id: self.session_id.as_deref(),
            factors: &self.factors,
            occurred_at: self
                .occurred_at
                .or(ctx.fallback_occurred_at)
                .unwrap_or(ctx.received_at),
            received_at: ctx.received_at,
            raw: ctx.raw,
        }
    }

    /// The owned connection event (see [`Mapped::parts`]).
    pub fn into_event(self, ctx: &EventContext<'_>) -> ConnectionEvent {
        self.parts(ctx).to_event()
    }

    /// Adds a factor unless it is already listed.
    fn push_factor(&mut self, factor: AuthFactor) {
        if !self.factors.contains(&factor) {
            self.factors.push(factor);
        }
    }
}

/// What the collector adds to a mapped message to make an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventContext<'a> {
    /// The establishment (tenant).
    pub tenant: &'a str,
    /// The authenticated source (bastion or gateway).
    pub source: &'a str,
    /// When the collector received the message.
    pub received_at: OffsetDateTime,
    /// The original message, byte for byte.
    pub raw: &'a [u8],
    /// The occurrence time to use when the message gives none (usually the transport
    /// header's timestamp); `received_at` is used when this is `None` too.
    pub fallback_occurred_at: Option<OffsetDateTime>,
}

/// The event for a message no profile understood: kind [`EventKind::Unmapped`], the raw
/// message kept as evidence, occurred at `ctx.fallback_occurred_at` or `ctx.received_at`.
pub fn unmapped<'a>(ctx: &EventContext<'a>) -> EventParts<'a> {
    EventParts {
        kind: &EventKind::Unmapped,
        tenant: ctx.tenant,
        source: ctx.source,
        vendor: None,
        person: None,
        account: None,
        target: None,
        protocol: None,
        source_addr: None,
        session_id: None,
        factors: &[],
        occurred_at: ctx.fallback_occurred_at.unwrap_or(ctx.received_at),
        received_at: ctx.received_at,
        raw: ctx.raw,
    }
}

/// A source profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// OpenSSH `sshd` (see [`sshd`]).
    Sshd,
    /// OpenVPN server (see [`openvpn`]).
    OpenVpn,
    /// FortiGate SSL-VPN event logs (see [`fortigate`]).
    FortiGate,
    /// Teleport audit events (see [`teleport`]).
    Teleport,
    /// Apache Guacamole (see [`guacamole`]).
    Guacamole,
    /// Wallix-style bastion session log (see [`wallix`]).
    Wallix,
    /// A mapping configured by users (see [`generic`]).
    Generic(Box<GenericProfile>),
}

impl Profile {
    /// The names [`Profile::from_name`] accepts, in the order [`Profile::builtins`] tries
    /// them.
    pub const BUILTIN_NAMES: [&'static str; 6] = [
        "teleport",
        "fortigate",
        "wallix",
        "sshd",
        "openvpn",
        "guacamole",
    ];

    /// The built-in profile of that name (see [`Profile::BUILTIN_NAMES`]); generic
    /// profiles are built from their configuration with [`GenericConfig::compile`].
    pub fn from_name(name: &str) -> Option<Profile> {
        match name {
            "sshd" => Some(Profile::Sshd),
            "openvpn" => Some(Profile::OpenVpn),
            "fortigate" => Some(Profile::FortiGate),
            "teleport" => Some(Profile::Teleport),
            "guacamole" => Some(Profile::Guacamole),
            "wallix" => Some(Profile::Wallix),
            _ => None,
        }
    }

    /// Every built-in profile, structured formats first, for auto-detection.
    pub fn builtins() -> Vec<Profile> {
        vec![
            Profile::Teleport,
            Profile::FortiGate,
            Profile::Wallix,
            Profile::Sshd,
            Profile::OpenVpn,
            Profile::Guacamole,
        ]
    }

    /// The profile's name: a built-in name, or the generic profile's configured name.
    pub fn name(&self) -> &str {
        match self {
            Profile::Sshd => sshd::NAME,
            Profile::OpenVpn => openvpn::NAME,
            Profile::FortiGate => fortigate::NAME,
            Profile::Teleport => teleport::NAME,
            Profile::Guacamole => guacamole::NAME,
            Profile::Wallix => wallix::NAME,
            Profile::Generic(g) => g.name(),
        }
    }

    /// Maps the message, or `None` when this profile does not understand it.
    pub fn map<'a>(&self, input: &Input<'a>) -> Option<Mapped<'a>> {
        // Completed where it lies: a `Mapped` is a few hundred bytes, and taking it out of
        // its `Option` and wrapping it again copied it twice per message.
        let mut mapped = match self {
            Profile::Sshd => sshd::map(input),
            Profile::OpenVpn => openvpn::map(input),
            Profile::FortiGate => fortigate::map(input),
            Profile::Teleport => teleport::map(input),
            Profile::Guacamole => guacamole::map(input),
            Profile::Wallix => wallix::map(input),
            Profile::Generic(g) => g.map(input),
        };
        if let Some(m) = &mut mapped
            && m.occurred_at.is_none()
        {
            m.occurred_at = input.timestamp;
        }
        mapped
    }
}

/// Tries the profiles in order and returns the first mapping, or `None` when none of
/// them understands the message.
pub fn map_any<'a>(profiles: &[Profile], input: &Input<'a>) -> Option<Mapped<'a>> {
    for profile in profiles {
        let mapped = profile.map(input);
        if mapped.is_some() {
            return mapped;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn ctx() -> EventContext<'static> {
        EventContext {
            tenant: "chu-exemple",
            source: "bastion-01",
            received_at: datetime!(2026-03-12 13:02:12 UTC),
            raw: b"raw",
            fallback_occurred_at: Some(datetime!(2026-03-12 14:02:11 +01:00)),
        }
    }

    #[test]
    fn into_event_prefers_the_mapped_time_then_the_fallback_then_reception() {
        let mut m = Mapped::new("sshd", EventKind::SessionStart);
        m.account = Some("alice".into());
        m.occurred_at = Some(datetime!(2026-03-12 14:00:00 +01:00));
        let e = m.clone().into_event(&ctx());
        assert_eq!(e.occurred_at, datetime!(2026-03-12 14:00:00 +01:00));
        assert_eq!(e.account.as_deref(), Some("alice"));
        assert_eq!(e.tenant, "chu-exemple");
        assert_eq!(e.raw, b"raw");

        m.occurred_at = None;
        let e = m.clone().into_event(&ctx());
        assert_eq!(e.occurred_at, datetime!(2026-03-12 14:02:11 +01:00));

        let mut c = ctx();
        c.fallback_occurred_at = None;
        assert_eq!(
            m.into_event(&c).occurred_at,
            datetime!(2026-03-12 13:02:12 UTC)
        );
    }

    #[test]
    fn unmapped_keeps_the_raw_message() {
        let e = unmapped(&ctx()).to_event();
        assert_eq!(e.kind, EventKind::Unmapped);
        assert_eq!(e.raw, b"raw");
        assert_eq!(e.occurred_at, datetime!(2026-03-12 14:02:11 +01:00));
    }

    #[test]
    fn from_name_knows_every_builtin() {
        for name in Profile::BUILTIN_NAMES {
            let p = Profile::from_name(name).expect("builtin");
            assert_eq!(p.name(), name);
        }
        assert_eq!(Profile::from_name("cyberark"), None);
        let names: Vec<String> = Profile::builtins()
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        assert_eq!(names, Profile::BUILTIN_NAMES);
    }

    #[test]
    fn map_any_auto_detects_and_fills_the_header_time() {
        let profiles = Profile::builtins();
        let ts = datetime!(2026-03-12 14:02:11 +01:00);
        let input = Input {
            app_name: Some("sshd"),
            hostname: Some("srv-pacs-01"),
            timestamp: Some(ts),
            msg: "Accepted publickey for alice from 127.0.0.1 port 51120 ssh2: ED25519 SHA256:AbC",
            ..Input::default()
        };
        let m = map_any(&profiles, &input).expect("sshd");
        assert_eq!(m.profile, "sshd");
        assert_eq!(m.occurred_at, Some(ts));

        let input = Input {
            msg: r#"{"event":"session.start","code":"T2000I","time":"2026-03-12T13:02:11.5Z","user":"alice@vendor","login":"root","sid":"s-1"}"#,
            ..Input::default()
        };
        let m = map_any(&profiles, &input).expect("teleport");
        assert_eq!(m.profile, "teleport");
        assert_eq!(m.occurred_at, Some(datetime!(2026-03-12 13:02:11.5 UTC)));

        let input = Input {
            msg: "kernel: eth0 link up",
            ..Input::default()
        };
        assert_eq!(map_any(&profiles, &input), None);
    }

    fn all_profiles() -> Vec<Profile> {
        let mut v = Profile::builtins();
        for config in [generic::tests::JSON_EXAMPLE, generic::tests::KV_EXAMPLE] {
            let config: GenericConfig = serde_json::from_str(config).expect("example config");
            v.push(Profile::Generic(Box::new(config.compile().expect("valid"))));
        }
        v
    }

    fn check_no_panic(profiles: &[Profile], app: Option<&str>, msg: &str) {
        let json: Option<serde_json::Value> = serde_json::from_str(msg).ok();
        for json in [None, json.as_ref()] {
            let input = Input {
                app_name: app,
                hostname: Some("h"),
                proc_id: Some("1"),
                timestamp: None,
                msg,
                json,
            };
            for p in profiles {
                let _ = p.map(&input);
            }
        }
    }

    const PREFIXES: &[&str] = &[
        "Accepted password for ",
        "Accepted publickey for a from ",
        "Failed password for invalid user ",
        "Invalid user ",
        "pam_unix(sshd:session): session opened for user ",
        "Received disconnect from ",
        "Disconnected from user ",
        "1.2.3.4:5 [x] Peer Connection Initiated with ",
        "x/1.2.3.4:5 SIGTERM[",
        "x/[::1]:5 Inactivity timeout",
        "1.2.3.4:5 VERIFY ERROR: ",
        "AUTH-PAM: BACKGROUND: user '",
        "TLS: Username/Password authentication succeeded for username '",
        "logid=\"0101039947\" type=\"event\" subtype=\"vpn\" action=\"tunnel-up\" ",
        "[wallix] type=\"session_start\" ",
        "User \"",
        "Authentication attempt from [",
        "Connection \"",
        "{\"event\":\"user.login\",\"code\":\"T1000I\",",
    ];

    proptest! {
        #[test]
        fn random_text_never_panics(app in proptest::option::of("[a-z]{0,8}"), msg in "\\PC{0,200}") {
            check_no_panic(&all_profiles(), app.as_deref(), &msg);
        }

        #[test]
        fn known_prefixes_with_random_tails_never_panic(
            prefix in proptest::sample::select(PREFIXES),
            tail in "[ -~\u{e9}\u{2028}]{0,120}",
        ) {
            let msg = format!("{prefix}{tail}");
            check_no_panic(&all_profiles(), None, &msg);
        }

        #[test]
        fn key_value_soup_never_panics(
            pairs in proptest::collection::vec(("[a-z_.]{0,6}", "\"?[ -~]{0,12}\"?"), 0..12),
        ) {
            let msg: String = pairs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
            check_no_panic(&all_profiles(), None, &format!("[wallix] {msg}"));
            check_no_panic(&all_profiles(), None, &msg);
        }

        #[test]
        fn random_json_never_panics(
            event in proptest::sample::select(&["session.start", "session.end", "user.login", "auth", "db.session.start"][..]),
            fields in proptest::collection::vec(
                (proptest::sample::select(&["user", "login", "time", "addr.remote", "sid", "success", "error", "mfa_device", "method", "server_hostname", "required_private_key_policy", "proto"][..]),
                 prop_oneof![
                     Just(serde_json::Value::Null),
                     any::<bool>().prop_map(serde_json::Value::from),
                     any::<i64>().prop_map(serde_json::Value::from),
                     "\\PC{0,20}".prop_map(serde_json::Value::from),
                     Just(serde_json::json!({"mfa_device_type": "TOTP"})),
                     Just(serde_json::json!([1, "x"])),
                 ]),
                0..10),
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert("event".into(), event.into());
            obj.insert("code".into(), "T0000I".into());
            for (k, v) in fields {
                obj.insert(k.to_owned(), v);
            }
            let msg = serde_json::Value::Object(obj).to_string();
            check_no_panic(&all_profiles(), None, &msg);
        }
    }
}
