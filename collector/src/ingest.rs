//! From one raw message to one journal entry: parse (RFC 5424 / 3164), decide the tenant,
//! map with the source's profiles, complete with what the collector knows, encode
//! canonically.
//!
//! ```text
//! frame ─ proto::syslog::parse ─┬─ ok ── tenant (SD vigie@32473) ── map_any(profiles) ─┬─ Mapped → event
//!                               │                                                    └─ None   → unmapped event
//!                               └─ not syslog ─────────────────────────────────────────────────→ unmapped event
//! ```
//!
//! **Tenant of a message**: the SD element `[vigie@32473 tenant="CHU-X"]` when present,
//! else the source's `default_tenant` (or its first tenant). A tenant outside the
//! source's configured `tenants` is refused ([`Rejection::TenantNotAllowed`]). The same
//! element may carry `source="…"`: if it names another source than the certificate's, the
//! message is refused ([`Rejection::SourceMismatch`]). Nothing else is ever refused: a
//! message no profile understands, or that is not even syslog, is kept as an unmapped
//! event with its raw bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use proto::profiles::{EventContext, Input, Profile};
use proto::syslog::ParseContext;
use store::journal::PendingEntry;
use time::OffsetDateTime;

use crate::config::Config;

/// The SD-ID of the collector's own structured data (32473 is the example PEN of RFC 5424).
pub const SD_ID: &str = "vigie@32473";

/// A configured source, ready to map its messages.
#[derive(Debug)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// The tenants it may speak for.
    pub tenants: Vec<String>,
    /// The tenant of messages that name none.
    pub default_tenant: String,
    /// The profiles tried in order.
    pub profiles: Vec<Profile>,
}

/// Every configured source, by name.
#[derive(Debug, Clone)]
pub struct Sources {
    by_name: Arc<HashMap<String, Arc<Source>>>,
}

impl Sources {
    /// The sources of a checked configuration.
    ///
    /// # Errors
    /// A message naming a generic profile that does not compile (a checked configuration
    /// has none).
    pub fn from_config(config: &Config) -> Result<Sources, String> {
        let mut generic = HashMap::new();
        for g in &config.generic_profiles {
            let compiled = g
                .clone()
                .compile()
                .map_err(|e| format!("generic profile {:?}: {e}", g.name))?;
            generic.insert(g.name.clone(), Profile::Generic(Box::new(compiled)));
        }
        let mut by_name = HashMap::new();
        for s in &config.sources {
            let profiles = if s.profiles.is_empty() {
                Profile::builtins()
            } else {
                s.profiles
                    .iter()
                    .map(|p| {
                        Profile::from_name(p)
                            .or_else(|| generic.get(p).cloned())
                            .ok_or_else(|| format!("source {:?}: unknown profile {p:?}", s.name))
                    })
                    .collect::<Result<_, _>>()?
            };
            let default_tenant = s
                .default_tenant
                .clone()
                .or_else(|| s.tenants.first().cloned())
                .unwrap_or_default();
            by_name.insert(
                s.name.clone(),
                Arc::new(Source {
                    name: s.name.clone(),
                    tenants: s.tenants.clone(),
                    default_tenant,
                    profiles,
                }),
            );
        }
        Ok(Sources {
            by_name: Arc::new(by_name),
        })
    }

    /// The source of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.by_name.get(name)
    }

    /// The first configured source among `names` (a certificate's names, in order).
    pub fn resolve(&self, names: &[String]) -> Option<Arc<Source>> {
        names.iter().find_map(|n| self.by_name.get(n).cloned())
    }
}

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The message claims a tenant the source may not speak for.
    #[error("source {source_name:?} may not speak for tenant {tenant:?}")]
    TenantNotAllowed {
        /// The source.
        source_name: String,
        /// The tenant claimed.
        tenant: String,
    },
    /// The message claims to come from another source than the authenticated one.
    #[error("message claims source {claimed:?} but the peer is {source_name:?}")]
    SourceMismatch {
        /// The authenticated source.
        source_name: String,
        /// The source claimed.
        claimed: String,
    },
    /// A JSON event that is not well formed.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The event cannot be encoded within the journal's limits.
    #[error("event too large: {bytes} bytes")]
    TooLarge {
        /// Canonical size.
        bytes: usize,
    },
}

impl Rejection {
    /// The `reason` label of the metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::TenantNotAllowed { .. } => "tenant_not_allowed",
            Rejection::SourceMismatch { .. } => "source_mismatch",
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge { .. } => "too_large",
        }
    }
}

/// A message turned into a journal entry.
#[derive(Debug)]
pub struct Accepted {
    /// The entry to submit.
    pub entry: PendingEntry,
    /// Whether no profile understood it.
    pub unmapped: bool,
}

/// Largest canonical entry the collector submits (the journal's default cap).
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// Turns one raw syslog message from `source`, received at `ctx.now`, into an entry.
///
/// # Errors
/// [`Rejection`] when the message claims a tenant or source it may not.
pub fn accept(raw: &[u8], source: &Source, ctx: &ParseContext) -> Result<Accepted, Rejection> {
    let received_at = ctx.now;
    // Borrowed from `raw`: nothing of the message is copied before it is encoded.
    let parsed = proto::syslog::parse_ref(raw, ctx).ok();
    let mut claims = Claims::default();
    if let Some(m) = &parsed {
        for sd in m.structured_data.elements().filter(|sd| sd.id == SD_ID) {
            for (name, value) in sd.params() {
                match name {
                    "tenant" => claims.tenant = Some(value),
                    "source" => claims.source = Some(value),
                    _ => {}
                }
            }
        }
    }
    let input = parsed.as_ref().map(|m| Input {
        app_name: m.app_name.as_deref(),
        hostname: m.hostname.as_deref(),
        proc_id: m.proc_id.as_deref(),
        timestamp: m.timestamp,
        msg: &m.msg,
        json: None,
    });
    build(raw, input, claims, source, received_at)
}

/// One event of a JSON batch (see `deploy/collector-openapi.yaml`), borrowed from the
/// batch's text where it has no escapes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent<'a> {
    /// The client's identifier of the event, for idempotent retries.
    pub id: String,
    /// The tenant the event is for (default: the source's default tenant).
    #[serde(default, borrow)]
    pub tenant: Option<Cow<'a, str>>,
    /// The source the client claims to be; refused unless it is the certificate's.
    #[serde(default, borrow)]
    pub source: Option<Cow<'a, str>>,
    /// The event as a text line (a syslog message, or a bare log line with `app_name`).
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    /// The event as a JSON document (e.g. a Teleport audit event), as sent: the profiles
    /// read the members they need from the text.
    #[serde(default, borrow)]
    pub event: Option<&'a serde_json::value::RawValue>,
    /// The program that logged it, for profiles that match on it (e.g. `sshd`).
    #[serde(default, borrow)]
    pub app_name: Option<Cow<'a, str>>,
}

/// Turns one JSON event into an entry; `raw` is the event's JSON text as sent, kept as
/// evidence.
///
/// # Errors
/// [`Rejection`] when the event claims a tenant or source it may not, or carries
/// neither or both of `message` and `event`.
pub fn accept_json(
    raw: &[u8],
    item: &JsonEvent<'_>,
    source: &Source,
    zone: &TimeZone,
    received_at: OffsetDateTime,
) -> Result<Accepted, Rejection> {
    let claims = Claims {
        tenant: item.tenant.as_deref().map(Cow::Borrowed),
        source: item.source.as_deref().map(Cow::Borrowed),
    };
    match (&item.message, &item.event) {
        (Some(message), None) => {
            let ctx = ParseContext::new(received_at, zone.clone());
            match proto::syslog::parse_ref(message.as_bytes(), &ctx) {
                Ok(m) => {
                    let input = Input {
                        app_name: item.app_name.as_deref().or(m.app_name.as_deref()),
                        hostname: m.hostname.as_deref(),
                        proc_id: m.proc_id.as_deref(),
                        timestamp: m.timestamp,
                        msg: &m.msg,
                        json: None,
                    };
                    build(raw, Some(input), claims, source, received_at)
                }
                Err(_) => {
                    let input = Input {
                        app_name: item.app_name.as_deref(),
                        msg: message,
                        ..Input::default()
                    };
                    build(raw, Some(input), claims, source, received_at)
                }
            }
        }
        (None, Some(event)) => {
            let input = Input {
                app_name: item.app_name.as_deref(),
                msg: event.get(),
                ..Input::default()
            };
            build(raw, Some(input), claims, source, received_at)
        }
        _ => Err(Rejection::Malformed(
            "an event carries exactly one of `message` and `event`".into(),
        )),
    }
}

/// What a message says about who sent it and for whom.
#[derive(Debug, Default, Clone)]
struct Claims<'a> {
    tenant: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
}

fn build(
    raw: &[u8],
    input: Option<Input<'_>>,
    claims: Claims<'_>,
    source: &Source,
    received_at: OffsetDateTime,
) -> Result<Accepted, Rejection> {
    if let Some(claimed) = claims.source
        && claimed != source.name.as_str()
    {
        return Err(Rejection::SourceMismatch {
            source_name: source.name.clone(),
            claimed: claimed.into_owned(),
        });
    }
    let tenant = claims
        .tenant
        .unwrap_or(Cow::Borrowed(&source.default_tenant));
    if !source.tenants.iter().any(|t| *t == *tenant) {
        return Err(Rejection::TenantNotAllowed {
            source_name: source.name.clone(),
            tenant: tenant.into_owned(),
        });
    }
    let ctx = EventContext {
        tenant: &tenant,
        source: &source.name,
        received_at,
        raw,
        fallback_occurred_at: input.as_ref().and_then(|i| i.timestamp),
    };
    let mapped = input
        .as_ref()
        .and_then(|input| proto::profiles::map_any(&source.profiles, input));
    let unmapped = mapped.is_none();
    // Encoded from the mapped fields and the borrowed message: no event is built.
    let canonical = proto::canonical::encode_event(&match &mapped {
        Some(m) => m.parts(&ctx),
        None => proto::profiles::unmapped(&ctx),
    });
    if canonical.len() > MAX_ENTRY_BYTES {
        return Err(Rejection::TooLarge {
            bytes: canonical.len(),
        });
    }
    Ok(Accepted {
        entry: PendingEntry {
            canonical,
            received_at,
        },
        unmapped,
    })
}

#[cfg(test)]
mod tests {
    use proto::model::{Entry, EventKind};
    use time::macros::datetime;

    use super::*;

    fn source() -> Source {
        Source {
            name: "bastion.chu-x.fr".into(),
            tenants: vec!["CHU-X".into(), "CHU-Y".into()],
            default_tenant: "CHU-X".into(),
            profiles: Profile::builtins(),
        }
    }

    fn paris(now: OffsetDateTime) -> ParseContext {
        ParseContext::europe_paris(now).expect("zone")
    }

    fn event(a: &Accepted) -> proto::model::ConnectionEvent {
        match proto::canonical::decode(&a.entry.canonical) {
            Ok(Entry::Event(e)) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn sshd_message_is_mapped_with_default_tenant() {
        let raw = b"<86>1 2026-03-01T10:00:01+01:00 bastion sshd 812 - - Accepted publickey for alice from 203.0.113.7 port 51120 ssh2\n";
        let a = accept(raw, &source(), &paris(datetime!(2026-03-01 9:00:02 UTC))).expect("ok");
        assert!(!a.unmapped);
        let e = event(&a);
        assert_eq!(e.tenant, "CHU-X");
        assert_eq!(e.source, "bastion.chu-x.fr");
        assert_eq!(e.account.as_deref(), Some("alice"));
        assert_eq!(e.raw, raw.to_vec());
    }

    #[test]
    fn tenant_claims_are_checked() {
        let now = paris(datetime!(2026-03-01 9:00:02 UTC));
        let ok = br#"<86>1 2026-03-01T10:00:01+01:00 b app - - [vigie@32473 tenant="CHU-Y"] hello"#;
        let a = accept(ok, &source(), &now).expect("allowed");
        assert_eq!(event(&a).tenant, "CHU-Y");
        assert!(a.unmapped);
        let bad =
            br#"<86>1 2026-03-01T10:00:01+01:00 b app - - [vigie@32473 tenant="CHU-Z"] hello"#;
        assert_eq!(
            accept(bad, &source(), &now).expect_err("refused").reason(),
            "tenant_not_allowed"
        );
        let other = br#"<86>1 - b app - - [vigie@32473 source="gw.chu-z.fr"] hello"#;
        assert_eq!(
            accept(other, &source(), &now)
                .expect_err("refused")
                .reason(),
            "source_mismatch"
        );
    }

    #[test]
    fn garbage_is_kept_unmapped() {
        let a = accept(
            b"\xff\x00 not syslog",
            &source(),
            &paris(datetime!(2026-03-01 9:00:02 UTC)),
        )
        .expect("kept");
        assert!(a.unmapped);
        let e = event(&a);
        assert_eq!(e.kind, EventKind::Unmapped);
        assert_eq!(e.raw, b"\xff\x00 not syslog".to_vec());
    }
}
