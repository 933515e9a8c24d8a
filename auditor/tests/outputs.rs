//! Reports, journals and export bundles of the month, and the `auditor` binary's exit codes.

mod common;

use std::process::Command;

use auditor::finding::Lang;
use auditor::report::{self, Format};
use common::*;
use proto::model::Entry;

fn audit_of(m: &Month) -> auditor::audit::Audit {
    auditor::audit::run(&ledger(m), config(), options()).expect("run")
}

fn render(audit: &auditor::audit::Audit, format: Format, lang: Lang) -> String {
    let mut out = Vec::new();
    report::write(audit, format, lang, t("2026-04-02T09:00"), &mut out).expect("write");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn report_formats() {
    let m = month();
    let audit = audit_of(&m);
    let json: serde_json::Value =
        serde_json::from_str(&render(&audit, Format::Json, Lang::Fr)).expect("json");
    assert_eq!(json["summary"]["connections"], 15);
    assert_eq!(json["summary"]["by_rule"]["shared_account"], 3);
    assert_eq!(json["summary"]["by_severity"]["critical"], 1);
    assert_eq!(
        json["findings"].as_array().map(Vec::len),
        Some(audit.findings.len())
    );
    assert_eq!(json["summary"]["from"], "2026-03-01T00:00:00+01:00");

    let csv = render(&audit, Format::Csv, Lang::En);
    assert_eq!(csv.lines().count(), audit.findings.len() + 1);
    assert!(csv.starts_with("rule,severity,tenant,vendor,person,account,at,entries,explanation\n"));

    let html = render(&audit, Format::Html, Lang::Fr);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("Rapport de conformité des accès distants"));
    assert!(html.contains("<svg"));
    assert!(html.contains("@media print"));
    // Self-contained: no script, no external resource.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=") && !html.contains("href="));
    assert!(html.contains("mallory@medimage.fr"));
    let en = render(&audit, Format::Html, Lang::En);
    assert!(en.contains("Remote access conformance report"));
}

/// The summary's rows per rule give the severity its findings have, which may be below the
/// rule's usual one (a journal younger than the retention is information only).
#[test]
fn the_html_summary_counts_each_rule_at_the_severity_of_its_findings() {
    let m = month();
    let audit = audit_of(&m);
    let young = |f: &&auditor::finding::Finding| f.rule == auditor::finding::Rule::RetentionShort;
    let retention: Vec<_> = audit.findings.iter().filter(young).collect();
    assert!(
        !retention.is_empty(),
        "the month's journals are younger than 18 months"
    );
    assert!(
        retention
            .iter()
            .all(|f| f.severity == auditor::finding::Severity::Info),
        "they start at seq 0: information only"
    );
    let html = render(&audit, Format::Html, Lang::En);
    // In English a severity's label is its name.
    let row = |severity: &str| {
        format!(
            "<tr class=\"sev-{severity}\"><td>Retention shorter than 18 months <small>(retention_short)</small></td><td>{severity}</td><td>{}</td></tr>",
            retention.len()
        )
    };
    assert!(
        html.contains(&row("info")),
        "no info row for retention_short in the summary"
    );
    assert!(!html.contains(&row("high")));
}

/// The timeline's last day label, centred on the period's end, fits in the picture.
#[test]
fn the_timeline_leaves_room_for_its_last_day_label() {
    let m = month();
    // A week without a clock change: its last day label falls on its end.
    let mut cfg = config();
    (cfg.from, cfg.to) = (t("2026-03-02T00:00"), t("2026-03-09T00:00"));
    let audit = auditor::audit::run(&ledger(&m), cfg, options()).expect("run");
    let html = render(&audit, Format::Html, Lang::En);
    let number_after = |text: &str, key: &str| -> f64 {
        let at = text.find(key).expect(key) + key.len();
        let end = text[at..].find([' ', '"']).expect("end of number");
        text[at..at + end].parse().expect("number")
    };
    let svg = &html[html.find("<svg").expect("timeline")..];
    let width = number_after(svg, "viewBox=\"0 0 ");
    let last_label = svg.rfind("text-anchor=\"middle\"").expect("a day label");
    let label_start = svg[..last_label].rfind("<text x=\"").expect("its x");
    let x = number_after(&svg[label_start..], "<text x=\"");
    // "dd/mm" at 11 px: about 33 px wide, half of it right of x.
    assert!(x + 17.0 <= width, "last label at {x}, picture {width} wide");
}

#[test]
fn journal_and_bundle_verify_offline_and_disclose_only_the_vendor() {
    let m = month();
    let mut cfg = config();
    cfg.vendor = Some("biolab".into());
    cfg.keep_sessions = usize::MAX;
    let audit = auditor::audit::run(&ledger(&m), cfg, options()).expect("run");
    let mut csv = Vec::new();
    auditor::export::journal_csv(&audit.sessions, &mut csv).expect("csv");
    let csv = String::from_utf8(csv).expect("utf-8");
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.contains("erin@biolab.fr,erin.b,10.0.0.1,auto-01,ssh,2026-03-10T09:30:00+01:00,2026-03-10T10:30:00+01:00,3600,password otp,bio-0310,false"));

    let bundle = m._tmp.path().join("biolab.jsonl");
    let mut file = std::fs::File::create(&bundle).expect("create");
    let stats = auditor::export::write_bundle(
        &ledger(&m),
        auditor::export::BundleScope {
            vendor: "biolab",
            tenant: None,
            from: t("2026-03-01T00:00"),
            to: t("2026-04-01T00:00"),
            sessions: &audit.sessions,
        },
        t("2026-04-02T09:00"),
        &mut file,
    )
    .expect("bundle");
    drop(file);
    assert!(stats.full > 0 && stats.redacted > 0);
    // Every entry in full is biolab's, or a seal.
    let text = std::fs::read_to_string(&bundle).expect("read");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("line");
        if let Some(entry) = v["entry"].as_str() {
            let bytes = hex::decode(entry).expect("hex");
            match proto::canonical::decode(&bytes).expect("entry") {
                Entry::Event(e) => assert_eq!(e.vendor.as_deref(), Some("biolab")),
                Entry::Declaration(d) => assert_eq!(d.body.vendor(), Some("biolab")),
                Entry::Seal(_) => {}
            }
        }
    }
    let read_keys = |dir: &std::path::Path| {
        store::journal::VerifierKeys::read(&dir.join(store::journal::VERIFIER_FILE)).expect("keys")
    };
    let keys = [read_keys(&m.events), read_keys(&m.ledger)];
    let outcome = auditor::export::verify_bundle(&bundle, &keys).expect("verify");
    assert!(outcome.is_intact(), "{outcome:?}");
    assert_eq!(outcome.sections.len(), 2);
    assert!(outcome.sections.iter().all(|(_, r)| r.macs_checked));
    assert!(!outcome.self_stated_keys);
    // Without key files: seals against the bundle's own public keys, no MACs.
    let outcome = auditor::export::verify_bundle(&bundle, &[]).expect("verify");
    assert!(outcome.is_intact() && outcome.self_stated_keys);

    // One digest changed: the bundle is not intact, and the diagnosis names the seq.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let i = lines
        .iter()
        .position(|l| l.contains("\"digest\""))
        .expect("a digest");
    let mut v: serde_json::Value = serde_json::from_str(&lines[i]).expect("line");
    let seq = v["seq"].as_u64().expect("seq");
    v["digest"] = serde_json::Value::String("00".repeat(32));
    lines[i] = v.to_string();
    std::fs::write(&bundle, lines.join("\n")).expect("write");
    let outcome = auditor::export::verify_bundle(&bundle, &keys).expect("verify");
    assert!(!outcome.is_intact());
    let mut printed = Vec::new();
    outcome.print(&mut printed).expect("print");
    let printed = String::from_utf8(printed).expect("utf-8");
    assert!(
        printed.contains(&format!("seq {seq}: content altered")),
        "{printed}"
    );
}

#[test]
fn a_vendor_bundle_holds_in_full_the_sessions_attributed_to_its_staff() {
    let m = month();
    let journal = vendor_journal(&m, "medimage");
    let mut out = Vec::new();
    auditor::export::write_bundle(
        &ledger(&m),
        auditor::export::BundleScope {
            vendor: "medimage",
            tenant: Some(TENANT),
            from: t("2026-03-01T00:00"),
            to: t("2026-04-01T00:00"),
            sessions: &journal.sessions,
        },
        t("2026-04-02T09:00"),
        &mut out,
    )
    .expect("bundle");
    let text = String::from_utf8(out).expect("utf-8");
    // In full: medimage's entries, and the start and end of S16 (they name no vendor, and
    // Bob alone holds bob.m); never the gateway's tunnel, which is nobody's.
    let mut unnamed = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("line");
        let Some(entry) = v["entry"].as_str() else {
            continue;
        };
        let bytes = hex::decode(entry).expect("hex");
        match proto::canonical::decode(&bytes).expect("entry") {
            Entry::Event(e) if e.vendor.is_none() => unnamed.push(e.account),
            Entry::Event(e) => assert_eq!(e.vendor.as_deref(), Some("medimage")),
            Entry::Declaration(d) => assert_eq!(d.body.vendor(), Some("medimage")),
            Entry::Seal(_) => {}
        }
    }
    assert_eq!(
        unnamed,
        [Some("bob.m".to_owned()), Some("bob.m".to_owned())]
    );

    let path = m._tmp.path().join("medimage.jsonl");
    std::fs::write(&path, &text).expect("write");
    let read_keys = |dir: &std::path::Path| {
        store::journal::VerifierKeys::read(&dir.join(store::journal::VERIFIER_FILE)).expect("keys")
    };
    let keys = [read_keys(&m.events), read_keys(&m.ledger)];
    let outcome = auditor::export::verify_bundle(&path, &keys).expect("verify");
    assert!(outcome.is_intact(), "{outcome:?}");
}

fn auditor_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditor"));
    c.env("USER", "rssi.test");
    c
}

#[test]
fn cli_exit_codes_and_access_records() {
    let m = month();
    let dir = m._tmp.path();
    // Verify: an intact journal exits 0.
    let out = auditor_cmd()
        .args(["verify", "--journal"])
        .arg(&m.events)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Unknown vendor: exit 2 with the field named.
    let out = auditor_cmd()
        .args(["declare", "--ledger"])
        .arg(&m.ledger)
        .args([
            "--tenant",
            TENANT,
            "window",
            "--vendor",
            "nobody",
            "--approver",
            "rssi",
            "--id",
            "x",
            "--reason",
            "r",
        ])
        .args(["--start", "2026-05-01T10:00", "--end", "2026-05-01T11:00"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vendor: unknown vendor nobody"));
    // A recurring window from the command line.
    let out = auditor_cmd()
        .args(["declare", "--ledger"])
        .arg(&m.ledger)
        .args([
            "--tenant",
            TENANT,
            "window",
            "--vendor",
            "biolab",
            "--approver",
            "rssi",
            "--id",
            "bio-thu",
        ])
        .args([
            "--reason",
            "contrôle",
            "--rrule",
            "FREQ=WEEKLY;BYDAY=TH",
            "--first-start",
            "2026-05-07T22:00",
            "--duration",
            "2h30m",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A report with findings exits 1 and is recorded in the ledger.
    let html = dir.join("report.html");
    let out = auditor_cmd()
        .args(["report", "--ledger"])
        .arg(&m.ledger)
        .arg("--events")
        .arg(&m.events)
        .args([
            "--tenant",
            TENANT,
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "--format",
            "html",
            "--out",
        ])
        .arg(&html)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&html)
            .expect("html")
            .contains("<svg")
    );
    // The journal and its bundle; the bundle verifies with the events chain's key.
    let bundle = dir.join("medimage.jsonl");
    let out = auditor_cmd()
        .args(["journal", "--ledger"])
        .arg(&m.ledger)
        .arg("--events")
        .arg(&m.events)
        .args([
            "--vendor",
            "medimage",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "--format",
            "json",
            "--bundle",
        ])
        .arg(&bundle)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // Nine sessions naming medimage in chu-lyon, one in chu-nord, and S16 (Bob's account).
    assert_eq!(rows.as_array().map(Vec::len), Some(11));
    let out = auditor_cmd()
        .args(["verify", "--bundle"])
        .arg(&bundle)
        .arg("--key")
        .arg(m.events.join(store::journal::VERIFIER_FILE))
        .arg("--key")
        .arg(m.ledger.join(store::journal::VERIFIER_FILE))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let decls = auditor::decls::Declarations::load(&[auditor::ledger::Source::journal(&m.ledger)])
        .expect("load");
    let actions: Vec<(&str, &str)> = decls
        .access
        .iter()
        .map(|a| (a.value.0.as_str(), a.filed_by.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("report", "rssi.test"), ("journal_export", "rssi.test")]
    );
}
