//! A remote maintenance from the bastion to the conformance report, with real parts.
//!
//! The RSSI files the vendor, its staff list and a maintenance window into the auditor's
//! ledger. The hospital's bastion (an rsyslogd of this test only: its own configuration,
//! work directory, pid file and ports; the system's rsyslog is never touched) receives its
//! session manager's and sshd's lines, tags them with the establishment and forwards them
//! over RELP with mutual TLS to the collector, run in this process on the development PKI
//! it makes on its first start. Once every line is in, the collector is shut down
//! gracefully, the vendor files its intervention report, and the auditor verifies the
//! collector's chain and judges every connection. Then one byte of a journal record is
//! changed: verification names the segment, the offset and the seq, and once the record's
//! checksum is forged to match, the chain's MAC still names the seq.
//!
//! Without rsyslogd this test fails: `apt-get install -y rsyslog rsyslog-gnutls rsyslog-relp`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use auditor::audit::{Ledger, RunOptions};
use auditor::declare::{Filer, Origin};
use auditor::finding::{EntryRef, Finding, Rule};
use auditor::ledger::Source;
use auditor::rules::RuleConfig;
use auditor::verify::Outcome;
use collector::devcerts::DevPki;
use collector::server::Server;
use proto::model::{DeclarationBody, Entry, EventKind, Schedule, Window};
use proto::verify::{Alteration, Problem};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use anyhow::{Context as _, anyhow};

// The collector tests' rsyslogd harness; this test does not use all of it.
#[allow(dead_code)]
#[path = "../collector/tests/common/rsyslogd.rs"]
mod rsyslogd;
use rsyslogd::Rsyslogd;

/// The establishment the bastion's lines are for.
const TENANT: &str = "chu-annecy";
/// The bastion also serves this establishment, first in its configuration, so it is where
/// a line that names none would go.
const OTHER_TENANT: &str = "chu-chambery";
/// The bastion, as its client certificate names it.
const SOURCE: &str = "bastion.ght-savoie.fr";
const VENDOR: &str = "imagerie-sa";
const JEANNE: &str = "jeanne.martin@imagerie-sa.example";
const HUGO: &str = "hugo.roux@imagerie-sa.example";
/// Not on the vendor's staff list.
const MALLORY: &str = "mallory.dubois@imagerie-sa.example";
const WINDOW: &str = "W-PACS";

/// A session the bastion's session manager logs (Wallix-style lines) on its start and end.
/// Times are seconds from the moment the bastion logs its lines: every event stays within
/// three minutes of its reception, well inside the rules' five minutes of clock skew.
struct Session {
    id: &'static str,
    person: &'static str,
    account: &'static str,
    target: &'static str,
    client_ip: &'static str,
    start: i64,
    end: i64,
}

/// The maintenance window runs from two hours before until a minute before the bastion
/// logs its lines.
const WINDOW_START: i64 = -2 * 3600;
const WINDOW_END: i64 = -60;

const SESSIONS: [Session; 3] = [
    // Declared, inside the window, on a declared resource, reported: no finding.
    Session {
        id: "WAB-4f1c",
        person: JEANNE,
        account: "maint-pacs",
        target: "srv-pacs-01",
        client_ip: "203.0.113.7",
        start: -170,
        end: -130,
    },
    // Not on the staff list, inside the window, not reported.
    Session {
        id: "WAB-4f2a",
        person: MALLORY,
        account: "mdubois",
        target: "srv-pacs-01",
        client_ip: "198.51.100.66",
        start: -150,
        end: -100,
    },
    // Declared, after the window closed, not reported.
    Session {
        id: "WAB-4f3b",
        person: HUGO,
        account: "hroux",
        target: "srv-lab-02",
        client_ip: "203.0.113.8",
        start: -40,
        end: -10,
    },
];

/// The session whose record is tampered with.
const TAMPERED: &Session = &SESSIONS[2];

/// A line the bastion logs and the event the collector should make of it.
struct Line {
    at: i64,
    text: String,
    kind: EventKind,
    person: Option<&'static str>,
    account: &'static str,
    session_id: String,
}

fn rfc3339(t: OffsetDateTime) -> anyhow::Result<String> {
    t.format(&Rfc3339).context("an instant formats as RFC 3339")
}

/// The bastion's lines in the order it logs them, as its local programs hand them to its
/// syslog (RFC 5424, without the establishment: the forwarding rsyslog adds it).
fn bastion_lines(at: impl Fn(i64) -> OffsetDateTime) -> anyhow::Result<Vec<Line>> {
    let mut lines = Vec::new();
    for s in &SESSIONS {
        let fields = format!(
            r#"session_id="{}" user="{}" vendor="{VENDOR}" account="{}" target="{}" protocol="SSH" client_ip="{}""#,
            s.id, s.person, s.account, s.target, s.client_ip
        );
        for (t, kind, tail) in [
            (
                s.start,
                EventKind::SessionStart,
                r#"auth_methods="publickey,otp""#.to_owned(),
            ),
            (
                s.end,
                EventKind::SessionEnd,
                format!(r#"duration_s="{}""#, s.end - s.start),
            ),
        ] {
            let when = rfc3339(at(t))?;
            let word = match kind {
                EventKind::SessionStart => "session_start",
                _ => "session_end",
            };
            lines.push(Line {
                at: t,
                text: format!(
                    r#"<134>1 {when} bastion-01 wabengine 2211 - - [wallix] type="{word}" time="{when}" {fields} {tail}"#
                ),
                kind,
                person: Some(s.person),
                account: s.account,
                session_id: s.id.to_owned(),
            });
        }
    }
    // The bastion's own maintenance account, logged in over SSH with a key: nobody is
    // named, and a key alone is no second factor.
    let sshd = [
        (
            -30,
            EventKind::AuthSuccess,
            "Accepted publickey for maint from 198.51.100.20 port 50122 ssh2: ED25519 SHA256:3q2+7wXk0aT4b9iEo1sJtQ",
            "198.51.100.20:50122",
        ),
        (
            -30,
            EventKind::SessionStart,
            "pam_unix(sshd:session): session opened for user maint(uid=1001) by (uid=0)",
            "sshd[4242]",
        ),
        (
            -5,
            EventKind::SessionEnd,
            "pam_unix(sshd:session): session closed for user maint",
            "sshd[4242]",
        ),
    ];
    for (t, kind, msg, session_id) in sshd {
        lines.push(Line {
            at: t,
            text: format!("<86>1 {} bastion-01 sshd 4242 - - {msg}", rfc3339(at(t))?),
            kind,
            person: None,
            account: "maint",
            session_id: session_id.to_owned(),
        });
    }
    // Hugo, after the window, over SSH on the bastion with his own account and a key alone:
    // sshd names only the account, which the staff list gives to Hugo and nobody else.
    lines.push(Line {
        at: -3,
        text: format!(
            "<86>1 {} bastion-01 sshd 4301 - - Accepted publickey for hroux from 203.0.113.8 port 50344 ssh2: ED25519 SHA256:Vb8mQ1r2LxkP0c7uYh3dWn",
            rfc3339(at(-3))?
        ),
        kind: EventKind::AuthSuccess,
        person: None,
        account: "hroux",
        session_id: "203.0.113.8:50344".to_owned(),
    });
    lines.sort_by_key(|l| l.at);
    Ok(lines)
}

/// The hospital's bastion: an rsyslogd whose TCP input stands for the bastion's local
/// logging and whose one ruleset forwards everything to the collector. Stopped on drop.
struct Bastion(Rsyslogd);

impl Bastion {
    fn start(dir: &Path, collector: SocketAddr, pki: &DevPki) -> anyhow::Result<Bastion> {
        let relp = [
            ("target", "127.0.0.1".to_owned()),
            ("port", collector.port().to_string()),
            // The collector's certificate names localhost; the bastion presents its own.
            ("tls", "on".to_owned()),
            ("tls.authMode", "name".to_owned()),
            ("tls.permittedPeer", "localhost".to_owned()),
            ("tls.caCert", pki.ca_file.display().to_string()),
            ("tls.myCert", pki.source_cert_file.display().to_string()),
            ("tls.myPrivKey", pki.source_key_file.display().to_string()),
            ("windowSize", "1024".to_owned()),
            ("template", "with_tenant".to_owned()),
            ("action.resumeRetryCount", "-1".to_owned()),
            ("action.resumeInterval", "1".to_owned()),
        ]
        .map(|(name, value)| format!(r#"{name}="{value}""#))
        .join(" ");
        let config = [
            r#"module(load="omrelp" tls.tlslib="gnutls")"#.to_owned(),
            // The bastion's programs do not know the establishment: the forwarding
            // template adds it as the collector's structured-data element.
            format!(
                r#"template(name="with_tenant" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% [vigie@32473 tenant=\"{TENANT}\"] %msg%\n")"#
            ),
            format!(r#"ruleset(name="to_collector") {{ action(type="omrelp" {relp}) }}"#),
        ]
        .join("\n");
        let rsyslogd = Rsyslogd::start(dir, &config, "to_collector")
            .with_context(|| format!("the bastion's rsyslogd ({})", rsyslogd::INSTALL))?;
        Ok(Bastion(rsyslogd))
    }

    /// What rsyslogd said, for failure messages.
    fn log(&self) -> String {
        self.0.log()
    }

    /// Hands lines to the bastion's syslog, one per LF.
    fn log_lines(&self, lines: &[Line]) -> anyhow::Result<()> {
        let text: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
        self.0
            .send(text.as_bytes())
            .context("write to rsyslog's input")
    }
}

/// Calls `ready` every 50 ms until it gives a value; fails with `state()` after `within`.
fn poll<T>(
    within: Duration,
    mut ready: impl FnMut() -> anyhow::Result<Option<T>>,
    state: impl Fn() -> String,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = ready()? {
            return Ok(value);
        }
        assert!(
            Instant::now() < deadline,
            "not ready within {within:?}: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The collector's counters of events and connections, for failure messages.
fn counters(metrics: &collector::metrics::Metrics) -> String {
    let text = metrics.render();
    let wanted = ["vigie_events_", "vigie_connections_", "vigie_tls_"];
    text.lines()
        .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn collector_config(data: &Path) -> anyhow::Result<collector::config::Config> {
    // No [tls]: the collector makes its development PKI under data/dev-pki, with a source
    // certificate for the first source. Small segments: less to zero; a seal only at
    // shutdown.
    let text = format!(
        r#"
        data_dir = "{data}"
        [journal]
        segment_bytes = 4194304
        seal_interval_ms = 3600000
        [relp_tls]
        listen = ["127.0.0.1:0"]
        [[sources]]
        name = "{SOURCE}"
        tenants = ["{OTHER_TENANT}", "{TENANT}"]
        "#,
        data = data.display(),
    );
    collector::config::Config::parse(&text).context("collector configuration")
}

fn file(
    ledger: &Path,
    filed_by: &str,
    filed_at: OffsetDateTime,
    bodies: Vec<DeclarationBody>,
) -> anyhow::Result<()> {
    let filer = Filer {
        ledger: ledger.to_path_buf(),
        tenant: TENANT.into(),
        filed_by: filed_by.into(),
        filed_at,
    };
    let batch = bodies
        .into_iter()
        .map(|b| (Origin::command_line(), b))
        .collect();
    auditor::declare::file(&filer, batch).context("declarations filed")?;
    Ok(())
}

/// Every entry of a journal in seq order: (seq, is a seal, entry).
fn journal_entries(dir: &Path) -> anyhow::Result<Vec<(u64, bool, Entry)>> {
    let reader = store::journal::JournalReader::open(dir).context("open the journal")?;
    reader
        .scan_seq(0..=u64::MAX)
        .map(|stored| {
            let stored = stored.context("read a journal record")?;
            let entry = proto::canonical::decode(&stored.canonical).context("decode an entry")?;
            Ok((stored.link.seq, stored.is_seal(), entry))
        })
        .collect()
}

/// A record located in a segment file, as the journal's module documentation draws it:
/// `len u32 | crc32c u32` then `len` checked bytes, `seq u64 | epoch u32 |
/// received_at i64 | mac [32] | entry`; records start after the 64-byte header and end
/// at a zero length.
struct Record {
    offset: usize,
    len: usize,
    seq: u64,
}

impl Record {
    const CHECKED_FROM: usize = 8;
    const ENTRY_FROM: usize = 8 + 52;

    fn entry<'a>(&self, segment: &'a [u8]) -> &'a [u8] {
        &segment[self.offset + Self::ENTRY_FROM..self.offset + Self::CHECKED_FROM + self.len]
    }
}

fn records(segment: &[u8]) -> anyhow::Result<Vec<Record>> {
    let bytes = |at: usize, n: usize| {
        segment
            .get(at..at + n)
            .with_context(|| format!("the segment ends inside a record, at byte {at}"))
    };
    let mut found = Vec::new();
    let mut offset = 64;
    while offset + 8 <= segment.len() {
        let len = u32::from_le_bytes(bytes(offset, 4)?.try_into()?) as usize;
        if len == 0 {
            break;
        }
        let seq = u64::from_le_bytes(bytes(offset + Record::CHECKED_FROM, 8)?.try_into()?);
        bytes(offset + Record::CHECKED_FROM, len)?;
        found.push(Record { offset, len, seq });
        offset += Record::CHECKED_FROM + len;
    }
    Ok(found)
}

/// A finding reduced to what the expectations name: rule, vendor, person, account, and
/// the other party (the journal, for integrity and retention findings).
type Key = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn key(f: &Finding) -> Key {
    (
        f.rule.id(),
        f.vendor.clone(),
        f.person.clone(),
        f.account.clone(),
        f.facts.other.clone(),
    )
}

/// The expected finding; a connection that names a person is the vendor's.
fn want(
    rule: &'static str,
    person: Option<&str>,
    account: Option<&str>,
    other: Option<&str>,
) -> Key {
    (
        rule,
        person.map(|_| VENDOR.to_owned()),
        person.map(str::to_owned),
        account.map(str::to_owned),
        other.map(str::to_owned),
    )
}

#[test]
fn a_maintenance_from_the_bastion_to_the_conformance_report() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    // The labels findings cite are the directories' names.
    let events_dir = tmp.path().join("events");
    let ledger_dir = tmp.path().join("ledger");

    // The collector, on its development PKI.
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let config = collector_config(&events_dir)?;
    let pki = DevPki::in_dir(&config.dev_pki_dir());
    let server = runtime
        .block_on(Server::bind(config))
        .context("the collector binds")?;
    assert!(
        pki.exists(),
        "no development PKI in {}",
        pki.ca_file.display()
    );
    let relp = *server.addrs().relp_tls.first().context("a RELP listener")?;
    let metrics = server.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // The bastion logs its lines and forwards them. Their times count from this instant,
    // so they reach the collector within the rules' tolerance of clock skew.
    let bastion = Bastion::start(&tmp.path().join("bastion"), relp, &pki)?;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .context("a whole second")?;
    let at = |seconds: i64| now + time::Duration::seconds(seconds);
    let lines = bastion_lines(at)?;
    bastion.log_lines(&lines)?;

    // Earlier in the day the RSSI registered the vendor, imported its staff list and
    // granted the window: filed here while the lines travel, with that filing time.
    // Hugo's resources are the laboratory's servers, Jeanne's the PACS.
    let since = (now - time::Duration::days(400)).date();
    let staff_csv = format!(
        "nom;prénom;email;comptes;niveau;ressources;date_debut\n\
         Martin;Jeanne;{JEANNE};maint-pacs;admin;srv-pacs-*;{since}\n\
         Roux;Hugo;{HUGO};hroux;read;srv-lab-*;{since}\n"
    );
    let staff =
        auditor::staff_csv::parse("staff-imagerie-sa.csv", &staff_csv).context("staff CSV")?;
    file(
        &ledger_dir,
        "rssi.annecy",
        at(-3 * 3600),
        vec![
            DeclarationBody::VendorRegistered {
                vendor: VENDOR.into(),
                name: "Imagerie SA".into(),
            },
            DeclarationBody::StaffList {
                vendor: VENDOR.into(),
                persons: staff,
            },
            DeclarationBody::WindowGranted(Window {
                id: WINDOW.into(),
                vendor: VENDOR.into(),
                reason: "mise à jour PACS".into(),
                ticket: Some("CHG-2211".into()),
                approver: "rssi.annecy".into(),
                persons: vec![],
                targets: vec![],
                schedule: Schedule::OneOff {
                    starts_at: at(WINDOW_START),
                    ends_at: at(WINDOW_END),
                },
            }),
        ],
    )?;

    // Wait until every line is read and durable.
    let n = lines.len() as u64;
    let accepted = metrics.accepted.with_label_values(&["relp_tls", SOURCE]);
    let durable = || metrics.durable.get();
    poll(
        Duration::from_secs(120),
        || Ok((accepted.get() >= n && durable() >= n).then_some(())),
        || {
            format!(
                "the collector accepted {} of {n} lines, {} durable\n--- collector counters\n{}\n--- rsyslogd\n{}",
                accepted.get(),
                durable(),
                counters(&metrics),
                bastion.log()
            )
        },
    )?;
    // Graceful shutdown while the bastion is still connected: what was read is made
    // durable and answered, and the journal is sealed and closed.
    stop.send(())
        .map_err(|()| anyhow!("the collector stopped before it was asked to"))?;
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(90), serving).await })
        .context("the collector stops within 90 s")?
        .context("the collector's task")?
        .context("the collector stops cleanly")?;
    drop(bastion);

    // Every line is in the journal once, for the establishment rsyslog named, from the
    // source the certificate names, mapped by its profile, with the bastion's times.
    let entries = journal_entries(&events_dir)?;
    let events: Vec<_> = entries
        .iter()
        .filter_map(|(_, _, e)| match e {
            Entry::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.person.as_deref(),
                e.account.as_deref(),
                e.session_id.as_deref(),
                e.occurred_at,
            )
        })
        .collect();
    let expected: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.kind.clone(),
                l.person,
                Some(l.account),
                Some(l.session_id.as_str()),
                at(l.at),
            )
        })
        .collect();
    assert_eq!(got, expected, "events in the journal: {events:#?}");
    let tag = format!(r#"[vigie@32473 tenant="{TENANT}"]"#);
    for e in &events {
        assert_eq!(
            (e.tenant.as_str(), e.source.as_str()),
            (TENANT, SOURCE),
            "{e:#?}"
        );
        assert!(
            e.raw.windows(tag.len()).any(|w| w == tag.as_bytes()),
            "the raw message keeps the bastion's tag: {e:#?}"
        );
    }
    assert!(
        entries.last().is_some_and(|(_, seal, _)| *seal),
        "the collector's shutdown seals the chain"
    );

    // The operator moves the verifier key off the host; the chain verifies with it.
    let key_file = tmp.path().join("off-host").join("collector-verifier.key");
    std::fs::create_dir_all(key_file.parent().context("a parent")?).context("key directory")?;
    std::fs::rename(events_dir.join(store::journal::VERIFIER_FILE), &key_file)
        .context("move the verifier key")?;
    match auditor::verify::journal(&events_dir, &key_file).context("verification runs")? {
        Outcome::Read(report) => {
            assert!(report.is_intact(), "{report:#?}");
            assert!(
                report.macs_checked && report.signatures_checked,
                "{report:#?}"
            );
            assert_eq!(report.records, entries.len() as u64, "{report:#?}");
            assert_eq!(report.unsealed_tail, None, "{report:#?}");
        }
        damaged => panic!("the fresh journal is damaged: {damaged:?}"),
    }

    // The vendor reports Jeanne's intervention, and only hers, as it ends.
    let jeanne = &SESSIONS[0];
    file(
        &ledger_dir,
        "imagerie-sa",
        at(jeanne.end),
        vec![DeclarationBody::InterventionReport {
            vendor: VENDOR.into(),
            window_id: Some(WINDOW.into()),
            started_at: at(jeanne.start),
            ended_at: at(jeanne.end),
            nature: "mise à jour du PACS".into(),
            persons: vec![JEANNE.into()],
        }],
    )?;

    // The conformance audit of the day.
    let ledger = Ledger {
        declarations: vec![Source::journal(&ledger_dir)],
        events: vec![Source::journal(&events_dir)],
        keys: vec![],
        chain_keys: vec![key_file.clone()],
    };
    let mut rules = RuleConfig::new(at(-6 * 3600), at(3600));
    rules.tenant = Some(TENANT.into());
    let options = RunOptions {
        progress: false,
        ..RunOptions::default()
    };
    let audit = auditor::audit::run(&ledger, rules.clone(), options).context("the audit runs")?;
    let mut got: Vec<Key> = audit.findings.iter().map(key).collect();
    got.sort();
    let mut expected = vec![
        want("not_on_staff_list", Some(MALLORY), Some("mdubois"), None),
        want("missing_report", Some(MALLORY), Some("mdubois"), None),
        want("outside_window", Some(HUGO), Some("hroux"), None),
        want("missing_report", Some(HUGO), Some("hroux"), None),
        // His SSH login, named by the staff list: the vendor's, after its window too, on
        // the bastion itself (not among his resources), with a key alone.
        want("outside_window", Some(HUGO), Some("hroux"), None),
        want("missing_report", Some(HUGO), Some("hroux"), None),
        want("undeclared_target", Some(HUGO), Some("hroux"), None),
        want("no_second_factor", Some(HUGO), Some("hroux"), None),
        want("not_nominative", None, Some("maint"), None),
        want("no_second_factor", None, Some("maint"), None),
        // Both journals are younger than the 18 months kept (information only).
        want("retention_short", None, None, Some("events")),
        want("retention_short", None, None, Some("ledger")),
    ];
    expected.sort();
    assert_eq!(got, expected, "findings: {:#?}", audit.findings);
    assert_eq!(audit.stats.connections, 5, "{:#?}", audit.stats);
    let session = |person: &str| {
        audit
            .sessions
            .iter()
            .find(|s| s.person.as_deref() == Some(person))
            .unwrap_or_else(|| panic!("no session of {person}: {:#?}", audit.sessions))
    };
    assert_eq!(session(JEANNE).window.as_deref(), Some(WINDOW));
    assert_eq!(session(HUGO).window, None);
    let hugo: Vec<_> = (audit.sessions.iter())
        .filter(|s| s.account.as_deref() == Some("hroux"))
        .map(|s| (s.vendor.as_deref(), s.person.as_deref()))
        .collect();
    assert_eq!(
        hugo,
        [(Some(VENDOR), Some(HUGO)); 2],
        "{:#?}",
        audit.sessions
    );

    // Tampering: one byte of the person's name in the record of Hugo's session start.
    let mut found = None;
    for dir_entry in std::fs::read_dir(&events_dir).context("list the journal")? {
        let path = dir_entry.context("a directory entry")?.path();
        if path.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let bytes = std::fs::read(&path).context("read a segment")?;
        let hugo = records(&bytes)?.into_iter().find(|r| {
            matches!(
                proto::canonical::decode(r.entry(&bytes)),
                Ok(Entry::Event(e)) if e.session_id.as_deref() == Some(TAMPERED.id)
                    && e.kind == EventKind::SessionStart
            )
        });
        if let Some(record) = hugo {
            found = Some((path, bytes, record));
            break;
        }
    }
    let (segment, mut bytes, record) = found.context("the record of Hugo's session start")?;
    let name = TAMPERED.person.as_bytes();
    let in_entry = record
        .entry(&bytes)
        .windows(name.len())
        .position(|w| w == name)
        .context("the person's name in the entry")?;
    let at_byte = record.offset + Record::ENTRY_FROM + in_entry;
    bytes[at_byte] ^= 0x01;
    std::fs::write(&segment, &bytes).context("write the segment")?;

    // The record's checksum no longer matches: verification stops there and says where.
    match auditor::verify::journal(&events_dir, &key_file).context("verification runs")? {
        Outcome::Damaged { report, damage } => {
            let file_name = segment
                .file_name()
                .context("a file name")?
                .to_string_lossy();
            let place = format!("at byte {} (seq {})", record.offset, record.seq);
            assert!(
                damage.contains(file_name.as_ref()) && damage.contains(&place),
                "the damage should name {file_name} {place}: {damage}"
            );
            assert_eq!(report.last_seq, record.seq.checked_sub(1), "{report:#?}");
        }
        read => panic!("a changed byte went unnoticed: {read:?}"),
    }

    // Whoever also forges the checksum still cannot forge the MAC without the key.
    let checked =
        record.offset + Record::CHECKED_FROM..record.offset + Record::CHECKED_FROM + record.len;
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &bytes[checked]) as u32;
    bytes[record.offset + 4..record.offset + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes).context("write the segment")?;
    match auditor::verify::journal(&events_dir, &key_file).context("verification runs")? {
        Outcome::Read(report) => assert_eq!(
            report.problems,
            [Problem::Altered {
                seq: record.seq,
                what: Alteration::Content
            }],
            "{report:#?}"
        ),
        damaged => panic!("the reader refused the record with its forged checksum: {damaged:?}"),
    }
    // And the conformance report says so.
    let audit = auditor::audit::run(&ledger, rules, options).context("the audit runs")?;
    let broken: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f.rule == Rule::ChainBroken)
        .collect();
    assert!(
        matches!(broken.as_slice(), [f] if f.entries == [EntryRef { ledger: "events".into(), seq: record.seq }]),
        "one chain finding at seq {}: {broken:#?}",
        record.seq
    );
    Ok(())
}
