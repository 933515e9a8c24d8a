//! `collector import`: files connection events given as JSON lines into the journal.
//!
//! One JSON object per line, with the fields of a connection event (the collector sets
//! `received_at` and keeps the line itself as the raw evidence):
//!
//! ```text
//! {"kind":"session_start","tenant":"chu-annecy","source":"bastion-01","vendor":"acme",
//!  "person":"jeanne.martin@acme.example","account":"maint","target":"srv-pacs-01",
//!  "protocol":"ssh","source_addr":"203.0.113.7","session_id":"S-1",
//!  "factors":["public_key","otp"],"occurred_at":"2026-03-10T22:05:00+01:00"}
//! ```
//!
//! `kind` is one of `session_start`, `session_end`, `auth_success`, `auth_failure` (with
//! `reason`), `tunnel_up`, `tunnel_down`. The whole file is checked before anything is
//! written: a bad line stops the import with its line number and nothing is filed.

use std::io::BufRead;
use std::net::IpAddr;

use anyhow::{Context, bail};
use proto::model::{AuthFactor, ConnectionEvent, Entry, EventKind};
use serde::Deserialize;
use store::journal::{Journal, PendingEntry};
use time::OffsetDateTime;

/// Entries written per journal batch.
const BATCH: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: String,
    #[serde(default)]
    reason: Option<String>,
    tenant: String,
    source: String,
    vendor: Option<String>,
    person: Option<String>,
    account: Option<String>,
    target: Option<String>,
    protocol: Option<String>,
    source_addr: Option<IpAddr>,
    session_id: Option<String>,
    #[serde(default)]
    factors: Vec<AuthFactor>,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
}

fn kind(name: &str, reason: Option<String>) -> anyhow::Result<EventKind> {
    Ok(match (name, reason) {
        ("session_start", None) => EventKind::SessionStart,
        ("session_end", None) => EventKind::SessionEnd,
        ("auth_success", None) => EventKind::AuthSuccess,
        ("auth_failure", reason) => EventKind::AuthFailure {
            reason: reason.unwrap_or_default(),
        },
        ("tunnel_up", None) => EventKind::TunnelUp,
        ("tunnel_down", None) => EventKind::TunnelDown,
        (other, Some(_)) if other != "auth_failure" => {
            bail!("field reason: only an auth_failure has a reason")
        }
        (other, _) => bail!(
            "field kind: unknown kind {other:?} (expected session_start, session_end, \
             auth_success, auth_failure, tunnel_up or tunnel_down)"
        ),
    })
}

/// Parses every line of `input` (named `name` in errors) into events received now.
///
/// # Errors
/// The first bad line, with its number.
pub fn parse(input: impl BufRead, name: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let number = i + 1;
        let line = line.with_context(|| format!("{name}:{number}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line =
            serde_json::from_str(&line).with_context(|| format!("{name}:{number}"))?;
        let kind = kind(&parsed.kind, parsed.reason).with_context(|| format!("{name}:{number}"))?;
        out.push(Entry::Event(ConnectionEvent {
            kind,
            tenant: parsed.tenant,
            source: parsed.source,
            vendor: parsed.vendor,
            person: parsed.person,
            account: parsed.account,
            target: parsed.target,
            protocol: parsed.protocol,
            source_addr: parsed.source_addr,
            session_id: parsed.session_id,
            factors: parsed.factors,
            occurred_at: parsed.occurred_at,
            received_at: OffsetDateTime::now_utc(),
            raw: line.into_bytes(),
        }));
    }
    Ok(out)
}

/// Appends `entries` to the journal, durably, in batches; returns how many were filed.
///
/// # Errors
/// Whatever the journal answers; entries of batches already answered stay filed.
pub fn file(journal: &Journal, entries: Vec<Entry>) -> anyhow::Result<usize> {
    let mut filed = 0;
    let mut batch = Vec::with_capacity(BATCH);
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        batch.clear();
        for entry in entries.by_ref().take(BATCH) {
            let received_at = match &entry {
                Entry::Event(e) => e.received_at,
                _ => OffsetDateTime::now_utc(),
            };
            batch.push(PendingEntry {
                canonical: proto::canonical::encode(&entry),
                received_at,
            });
        }
        let links = journal
            .append(std::mem::take(&mut batch))
            .context("journal refused a batch")?;
        filed += links.len();
    }
    Ok(filed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_and_nothing_is_parsed() {
        let good = r#"{"kind":"session_start","tenant":"t","source":"s","occurred_at":"2026-03-10T22:05:00+01:00"}"#;
        let text = format!(
            "{good}\n\n{{\"kind\":\"nap\",\"tenant\":\"t\",\"source\":\"s\",\"occurred_at\":\"2026-03-10T22:05:00Z\"}}\n"
        );
        let err = parse(text.as_bytes(), "events.jsonl").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "events.jsonl:3: field kind: unknown kind \"nap\" (expected session_start, \
             session_end, auth_success, auth_failure, tunnel_up or tunnel_down)"
        );
        let err = parse("{\"kind\":1}".as_bytes(), "x").unwrap_err();
        assert!(
            format!("{err:#}").starts_with("x:1: invalid type"),
            "{err:#}"
        );
        let events = parse(format!("{good}\n{good}").as_bytes(), "x").unwrap();
        assert_eq!(events.len(), 2);
        let Entry::Event(e) = &events[0] else {
            panic!("not an event")
        };
        assert_eq!(e.occurred_at.offset().whole_hours(), 1);
        assert_eq!(e.raw, good.as_bytes());
    }
}
