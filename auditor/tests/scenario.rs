//! The month of a hospital group, judged: the exact set of findings.

mod common;

use auditor::finding::{Lang, Rule, Severity};
use common::*;

fn key(f: &auditor::finding::Finding) -> (String, Option<String>, Option<String>, Option<String>) {
    (
        f.rule.id().to_owned(),
        f.vendor.clone(),
        f.person.clone(),
        f.account.clone(),
    )
}

#[test]
fn the_month_gives_exactly_the_expected_findings() {
    let m = month();
    let audit = auditor::audit::run(&ledger(&m), config(), options()).expect("run");
    let mut got: Vec<_> = audit.findings.iter().map(key).collect();
    got.sort();
    let e = |rule: &str, vendor: Option<&str>, person: Option<&str>, account: Option<&str>| {
        (
            rule.to_owned(),
            vendor.map(Into::into),
            person.map(Into::into),
            account.map(Into::into),
        )
    };
    let (med, bio) = (Some("medimage"), Some("biolab"));
    let mut want = vec![
        e(
            "outside_window",
            med,
            Some("bob@medimage.fr"),
            Some("bob.m"),
        ),
        e(
            "account_after_departure",
            med,
            Some("carol@medimage.fr"),
            Some("carol.m"),
        ),
        e(
            "missing_report",
            med,
            Some("carol@medimage.fr"),
            Some("carol.m"),
        ),
        e(
            "not_on_staff_list",
            med,
            Some("mallory@medimage.fr"),
            Some("alice.m"),
        ),
        e(
            "shared_account",
            med,
            Some("mallory@medimage.fr"),
            Some("alice.m"),
        ),
        e(
            "missing_report",
            med,
            Some("mallory@medimage.fr"),
            Some("alice.m"),
        ),
        e(
            "shared_account",
            med,
            Some("alice@medimage.fr"),
            Some("alice.m"),
        ),
        e(
            "undeclared_target",
            med,
            Some("dave@medimage.fr"),
            Some("dave.m"),
        ),
        e(
            "no_second_factor",
            med,
            Some("dave@medimage.fr"),
            Some("dave.m"),
        ),
        e("late_report", med, Some("dave@medimage.fr"), Some("dave.m")),
        // S16, named by the staff list after its account.
        e(
            "missing_report",
            med,
            Some("bob@medimage.fr"),
            Some("bob.m"),
        ),
        e(
            "session_overrun",
            med,
            Some("bob@medimage.fr"),
            Some("bob.m"),
        ),
        e(
            "session_without_end",
            med,
            Some("alice@medimage.fr"),
            Some("alice.m"),
        ),
        e("staff_list_stale", bio, None, None),
        e("clock_skew", None, None, None),
        e(
            "window_after_fact",
            bio,
            Some("frank@biolab.fr"),
            Some("frank.b"),
        ),
        e(
            "emergency",
            bio,
            Some("erin@biolab.fr"),
            Some("biolab-maint"),
        ),
        e(
            "outside_window",
            bio,
            Some("frank@biolab.fr"),
            Some("biolab-maint"),
        ),
        e(
            "shared_account",
            bio,
            Some("frank@biolab.fr"),
            Some("biolab-maint"),
        ),
        e(
            "missing_report",
            bio,
            Some("frank@biolab.fr"),
            Some("biolab-maint"),
        ),
        e("not_nominative", None, None, Some("svc-vpn")),
        e("no_second_factor", None, None, Some("svc-vpn")),
        e("silent_source", None, None, None),
        e("retention_short", None, None, None),
    ];
    want.sort();
    assert_eq!(got, want, "findings: {:#?}", audit.findings);

    // Counts: 15 sessions of chu-lyon; chu-nord is not in the report.
    assert_eq!(audit.stats.connections, 15);
    assert!(audit.findings.iter().all(|f| f.tenant == TENANT));

    // Evidence: each finding cites its entries; the departure cites the declaration.
    let dep = audit
        .findings
        .iter()
        .find(|f| f.rule == Rule::AccountAfterDeparture)
        .expect("departure");
    assert_eq!(dep.entries.len(), 2);
    assert_eq!(&*dep.entries[0].ledger, "events");
    assert_eq!(&*dep.entries[1].ledger, "decl");
    assert!(audit.findings.iter().all(|f| !f.entries.is_empty()));

    // Severities: the emergency is information; the young journal's coverage too.
    let sev = |r: Rule| {
        audit
            .findings
            .iter()
            .find(|f| f.rule == r)
            .map(|f| f.severity)
    };
    assert_eq!(sev(Rule::Emergency), Some(Severity::Info));
    assert_eq!(sev(Rule::RetentionShort), Some(Severity::Info));
    assert_eq!(sev(Rule::AccountAfterDeparture), Some(Severity::Critical));

    // Explanations: French by default, English on request, Paris time with the offset.
    let late = audit
        .findings
        .iter()
        .find(|f| f.rule == Rule::WindowAfterFact)
        .expect("late window");
    assert_eq!(
        late.explain(Lang::Fr),
        "La connexion de frank@biolab.fr (biolab) le 2026-03-20 14:30:00 +01:00 n'est couverte que par la plage bio-0320, déclarée après coup le 2026-03-21 09:00:00 +01:00."
    );
    assert!(
        late.explain(Lang::En).starts_with(
            "The connection of frank@biolab.fr (biolab) on 2026-03-20 14:30:00 +01:00"
        )
    );
    let skew = audit
        .findings
        .iter()
        .find(|f| f.rule == Rule::ClockSkew)
        .expect("skew");
    assert_eq!(skew.facts.amount, Some(600));
    assert_eq!(skew.facts.note.as_deref(), Some("bastion-lyon"));
    let silent = audit
        .findings
        .iter()
        .find(|f| f.rule == Rule::SilentSource)
        .expect("silent");
    assert_eq!(silent.facts.note.as_deref(), Some("vpn-lyon"));
}

#[test]
fn a_vendor_report_keeps_only_that_vendor() {
    let m = month();
    let mut cfg = config();
    cfg.vendor = Some("biolab".into());
    let opts = auditor::audit::RunOptions {
        check_chains: false,
        check_retention: false,
        progress: false,
    };
    let audit = auditor::audit::run(&ledger(&m), cfg, opts).expect("run");
    let mut rules: Vec<&str> = audit.findings.iter().map(|f| f.rule.id()).collect();
    rules.sort();
    // Source-level findings (the bastion's clock, the silent gateway) concern every
    // vendor whose staff goes through that source.
    assert_eq!(
        rules,
        [
            "clock_skew",
            "emergency",
            "missing_report",
            "outside_window",
            "shared_account",
            "silent_source",
            "staff_list_stale",
            "window_after_fact"
        ]
    );
    assert_eq!(audit.stats.connections, 4);
}

#[test]
fn a_vendor_journal_holds_the_connections_attributed_to_its_staff() {
    let m = month();
    let audit = vendor_journal(&m, "medimage");
    // S1-S9 named medimage; S16 named only bob.m, which Bob alone holds.
    assert_eq!(audit.stats.connections, 10);
    assert_eq!(audit.sessions.len(), 10);
    let s16: Vec<_> = (audit.sessions.iter())
        .filter(|s| s.account.as_deref() == Some("bob.m") && s.start == t("2026-03-31T23:00"))
        .collect();
    assert_eq!(s16.len(), 1, "{:#?}", audit.sessions);
    assert_eq!(s16[0].vendor.as_deref(), Some("medimage"));
    assert_eq!(s16[0].person.as_deref(), Some("bob@medimage.fr"));
    assert_eq!(s16[0].entries.len(), 2, "start and end");
    // Its finding is medimage's and cites the staff list that named Bob.
    let missing: Vec<_> = (audit.findings.iter())
        .filter(|f| f.rule == Rule::MissingReport && f.account.as_deref() == Some("bob.m"))
        .collect();
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert_eq!(missing[0].entries.len(), 2);
    assert_eq!(&*missing[0].entries[1].ledger, "decl");
    // The gateway's tunnel names no vendor and nobody holds its account: not medimage's.
    assert!(
        (audit.findings.iter()).all(|f| f.account.as_deref() != Some("svc-vpn")),
        "{:#?}",
        audit.findings
    );
    assert!(
        audit
            .sessions
            .iter()
            .all(|s| s.account.as_deref() != Some("svc-vpn"))
    );

    // Nor is S16 biolab's.
    let audit = vendor_journal(&m, "biolab");
    assert_eq!(audit.sessions.len(), 4);
    assert!(
        audit
            .sessions
            .iter()
            .all(|s| s.vendor.as_deref() == Some("biolab"))
    );
}

#[test]
fn a_tampered_events_journal_is_a_chain_finding() {
    let m = month();
    // Flip one byte inside the first record's entry of the events journal.
    let seg = std::fs::read_dir(&m.events)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("segment");
    let mut bytes = std::fs::read(&seg).expect("read");
    // Header 64 bytes, then len, crc, seq, epoch, received_at, mac (60 bytes), then the entry.
    let at = 64 + 8 + 52 + 20;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, bytes).expect("write");
    // The store's CRC catches the flip: the report still comes, with the damage as a
    // critical finding naming the journal.
    let audit = auditor::audit::run(&ledger(&m), config(), options()).expect("run");
    let broken: Vec<_> = audit
        .findings
        .iter()
        .filter(|f| f.rule == Rule::ChainBroken)
        .collect();
    assert_eq!(broken.len(), 1, "{broken:#?}");
    assert_eq!(broken[0].facts.other.as_deref(), Some("events"));
    assert!(
        broken[0]
            .explain(Lang::En)
            .starts_with("Journal events is not intact: ")
    );
    // Without the end-to-end check, the streaming pass reports it.
    let opts = auditor::audit::RunOptions {
        check_chains: false,
        ..options()
    };
    let audit = auditor::audit::run(&ledger(&m), config(), opts).expect("run");
    assert_eq!(
        audit
            .findings
            .iter()
            .filter(|f| f.rule == Rule::ChainBroken)
            .count(),
        1
    );
}
