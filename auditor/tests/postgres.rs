//! The auditor reading PostgreSQL: `auditor verify --postgres-url` on the chain as
//! PostgreSQL holds it, intact then tampered; reports, journals and bundles from the events
//! replicated there, the same as from the journal they came from.
//!
//! Needs the PostgreSQL server the test suite uses (`store::pg::testing`); when it is
//! unreachable the test fails and says so.

mod common;
mod serving;

use std::process::Command;

fn verify(url: &str, key: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditor"))
        .args(["verify", "--postgres-url", url, "--key"])
        .arg(key)
        .output()
        .expect("run auditor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_the_chain_from_postgresql_and_names_a_tampered_row() {
    let m = common::month();
    let (_db, url) = replicated(&m).await;
    let key = m.events.join(store::journal::VERIFIER_FILE);

    let (code, out) = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || verify(&url, &key)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("intact:"), "{out}");

    // Someone with write access to the database rewrites one row's account.
    alter_row_7(&url).await;
    let (code, out) = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || verify(&url, &key)
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("seq 7: content altered"), "{out}");

    // The key of a chain that was never replicated there: an error, not "intact".
    let (code, out) = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), m.ledger.join(store::journal::VERIFIER_FILE));
        move || verify(&url, &key)
    })
    .await
    .expect("join");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not in this database"), "{out}");
}

/// The scenario month's events replicated into a fresh database; its URL.
async fn replicated(m: &common::Month) -> (store::pg::testing::TestDb, String) {
    let db = store::pg::testing::TestDb::new().await;
    let url = db.url.clone();
    let (mut client, conn) = store::pg::connect(&url).await.expect("connect");
    store::pg::migrate(&mut client).await.expect("migrate");
    let reader = store::journal::JournalReader::open(&m.events).expect("events journal");
    store::pg::catch_up(&mut client, &reader, store::pg::BatchLimits::default())
        .await
        .expect("replicate");
    drop(client);
    conn.abort();
    (db, url)
}

/// Rewrites one byte of the entry at seq 7, as someone with write access to the database
/// could.
async fn alter_row_7(url: &str) {
    let (client, conn) = store::pg::connect(url).await.expect("connect");
    client
        .batch_execute(
            "UPDATE entries SET canonical = overlay(canonical placing '\\x58'::bytea from 20 for 1) \
             WHERE seq = 7",
        )
        .await
        .expect("tamper");
    drop(client);
    conn.abort();
}

/// The findings as JSON, with the events chain's label replaced by `events`.
fn findings_json(audit: &auditor::audit::Audit, label: &str) -> String {
    serde_json::to_string_pretty(&audit.findings)
        .expect("json")
        .replace(label, "events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_postgresql_is_the_report_from_the_journal() {
    let m = common::month();
    let (_db, url) = replicated(&m).await;
    let key = m.events.join(store::journal::VERIFIER_FILE);
    let (from_journal, from_pg, label) = tokio::task::spawn_blocking({
        let ledger = common::ledger(&m);
        let decl = m.ledger.clone();
        move || {
            let from_journal = auditor::audit::run(&ledger, common::config(), common::options())
                .expect("report from the journal");
            let events =
                auditor::ledger::Source::postgres_chains(&url, &[]).expect("list the chains");
            assert_eq!(events.len(), 1, "one chain replicated");
            let label = events[0].label().to_owned();
            let pg = auditor::audit::Ledger {
                declarations: vec![auditor::ledger::Source::journal(&decl)],
                events,
                keys: vec![],
                chain_keys: vec![key],
            };
            let from_pg = auditor::audit::run(&pg, common::config(), common::options())
                .expect("report from PostgreSQL");
            (from_journal, from_pg, label)
        }
    })
    .await
    .expect("join");
    assert!(label.starts_with("pg:"), "{label}");
    assert_eq!(from_pg.findings.len(), from_journal.findings.len());
    assert_eq!(
        findings_json(&from_pg, &label),
        findings_json(&from_journal, "events")
    );
    let sessions = |a: &auditor::audit::Audit, label: &str| {
        serde_json::to_string(&a.sessions)
            .expect("json")
            .replace(label, "events")
    };
    assert_eq!(
        sessions(&from_pg, &label),
        sessions(&from_journal, "events")
    );
    assert_eq!(
        serde_json::to_string(&from_pg.stats).expect("json"),
        serde_json::to_string(&from_journal.stats).expect("json")
    );
    // The chain check ran with the key: a chain checked for seq continuity only would not
    // tell an altered row (see the tampering test below).
    assert!(
        !from_pg
            .findings
            .iter()
            .any(|f| f.rule == auditor::finding::Rule::ChainBroken),
        "{}",
        findings_json(&from_pg, &label)
    );
}

fn auditor_cmd(args: &[&str], paths: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditor"));
    c.args(args);
    for (flag, path) in paths {
        c.arg(flag).arg(path);
    }
    let out = c
        .env("USER", "auditeur.test")
        .output()
        .expect("run auditor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_bundle_and_report_from_postgresql_on_the_command_line() {
    let m = common::month();
    let (_db, url) = replicated(&m).await;
    let key = m.events.join(store::journal::VERIFIER_FILE);
    let decl_key = m.ledger.join(store::journal::VERIFIER_FILE);
    let bundle = m.events.parent().expect("parent").join("medimage.jsonl");
    let period = ["--from", "2026-03-01", "--to", "2026-04-01"];

    // The subprocesses block this test's thread: nothing else runs on its runtime now.
    let mut args = vec!["journal", "--postgres-url", &url, "--vendor", "medimage"];
    args.extend(period);
    args.extend(["--format", "json"]);
    let (code, out, err) = auditor_cmd(
        &args,
        &[
            ("--ledger", &m.ledger),
            ("--key", &key),
            ("--bundle", &bundle),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    // As from the journal: S16 names no vendor and is read too (Bob's account).
    assert_eq!(rows.as_array().map(Vec::len), Some(11), "{out}");

    // The bundle made from PostgreSQL verifies offline with the chains' keys.
    let (code, out, _) = auditor_cmd(
        &["verify"],
        &[("--bundle", &bundle), ("--key", &key), ("--key", &decl_key)],
    );
    assert_eq!(code, 0, "{out}");

    // A report from PostgreSQL has the findings of the one from the journal.
    let from_journal = report_findings(&m, &[("--events", &m.events)], None);
    let from_pg = report_findings(&m, &[("--key", &key)], Some(&url));
    assert_eq!(from_pg, from_journal);
}

/// How many findings `auditor report` prints for the scenario's tenant and month.
fn report_findings(
    m: &common::Month,
    source: &[(&str, &std::path::Path)],
    url: Option<&str>,
) -> usize {
    let mut args = vec![
        "report",
        "--tenant",
        common::TENANT,
        "--format",
        "json",
        "--from",
        "2026-03-01",
        "--to",
        "2026-04-01",
    ];
    if let Some(url) = url {
        args.extend(["--postgres-url", url]);
    }
    let mut paths = vec![("--ledger", m.ledger.as_path())];
    paths.extend_from_slice(source);
    let (code, out, err) = auditor_cmd(&args, &paths);
    assert_eq!(code, 1, "findings exit 1: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("report json");
    v["findings"].as_array().map(Vec::len).expect("findings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_postgresql_flags_a_row_altered_there() {
    let m = common::month();
    let (_db, url) = replicated(&m).await;
    alter_row_7(&url).await;
    let key = m.events.join(store::journal::VERIFIER_FILE);
    let audit = tokio::task::spawn_blocking({
        let decl = m.ledger.clone();
        move || {
            let pg = auditor::audit::Ledger {
                declarations: vec![auditor::ledger::Source::journal(&decl)],
                events: auditor::ledger::Source::postgres_chains(&url, &[]).expect("chains"),
                keys: vec![],
                chain_keys: vec![key],
            };
            auditor::audit::run(&pg, common::config(), common::options()).expect("report")
        }
    })
    .await
    .expect("join");
    let broken: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f.rule == auditor::finding::Rule::ChainBroken)
        .collect();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].entries[0].seq, 7);
    assert!(broken[0].entries[0].ledger.starts_with("pg:"));
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let m = common::month();
    let (code, _, err) = auditor_cmd(
        &[
            "report",
            "--tenant",
            common::TENANT,
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "--postgres-url",
            "host=127.0.0.1 port=1 user=postgres connect_timeout=2",
        ],
        &[("--ledger", &m.ledger)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PostgreSQL: cannot list the chains"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reads_its_events_from_postgresql() {
    let m = common::month();
    let (_db, url) = replicated(&m).await;
    let mut config = serving::server_config(&m.ledger, &m.events);
    config.ledger.events.clear();
    config.ledger.postgres_url = Some(auditor::ledger::PgUrl(url));
    config.ledger.chain_keys = vec![m.events.join(store::journal::VERIFIER_FILE)];
    let s = serving::Running::start(config, auditor::http::Transport::PlainLoopback).await;
    let a = s.addr;
    let period = format!("from={}&to={}", serving::FROM, serving::TO);

    let r = serving::get(
        a,
        &format!("/api/v1/tenants/{}/report?{period}", common::TENANT),
        "tok-rssi-lyon",
    )
    .await;
    assert_eq!(r.status, 200);
    let findings = r.json()["findings"].as_array().map(Vec::len);
    let from_journal = tokio::task::spawn_blocking({
        let ledger = common::ledger(&m);
        move || auditor::audit::run(&ledger, common::config(), common::options())
    })
    .await
    .expect("join")
    .expect("report from the journal");
    assert_eq!(findings, Some(from_journal.findings.len()));

    let r = serving::get(
        a,
        &format!(
            "/api/v1/tenants/{}/vendors/medimage/journal?{period}",
            common::TENANT
        ),
        "tok-rssi-lyon",
    )
    .await;
    assert_eq!(r.status, 200);
    let sessions = tokio::task::spawn_blocking({
        let ledger = common::ledger(&m);
        move || {
            let mut cfg = common::config();
            cfg.vendor = Some("medimage".into());
            cfg.keep_sessions = usize::MAX;
            auditor::audit::run(&ledger, cfg, common::options())
        }
    })
    .await
    .expect("join")
    .expect("journal from the journal");
    assert!(!sessions.sessions.is_empty());
    assert_eq!(
        r.json().as_array().map(Vec::len),
        Some(sessions.sessions.len())
    );

    // Both chains, the one in PostgreSQL checked with its key, verify.
    let r = serving::get(a, "/api/v1/verify", "tok-auditor").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["intact"], true, "{v}");
    let names: Vec<&str> = (v["journals"].as_array().expect("journals").iter())
        .filter_map(|j| j["journal"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(names.iter().any(|n| n.starts_with("pg:")), "{v}");
    s.stop().await;
}
