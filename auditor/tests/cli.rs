//! The `auditor declare` commands end to end: CSV and iCalendar imports from files.

use std::process::Command;

fn auditor(ledger: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditor"));
    c.env("USER", "rssi.test")
        .args(["declare", "--ledger"])
        .arg(ledger)
        .args(["--tenant", "chu-lyon"]);
    c
}

fn run(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().expect("run auditor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn staff_csv_and_ics_imports_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = tmp.path().join("decl");
    let (code, text) =
        run(auditor(&ledger).args(["vendor", "--vendor", "acme", "--name", "Acme SAS"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("filed 1 declaration(s)"), "{text}");

    let csv = tmp.path().join("acme.csv");
    std::fs::write(
        &csv,
        "nom;prénom;email;comptes;niveau;ressources;date_debut\n\
         Martin;Alice;alice@acme.fr;alice.a;admin;srv-*;2026-01-05\n\
         Petit;Paul;paul@acme.fr;paul.a;read;srv-01;2026-13-05\n",
    )
    .expect("write csv");
    let (code, text) = run(auditor(&ledger)
        .args(["staff", "--vendor", "acme", "--csv"])
        .arg(&csv));
    assert_eq!(code, Some(2));
    assert!(
        text.contains("acme.csv:3: start_date: invalid date \"2026-13-05\""),
        "{text}"
    );
    std::fs::write(
        &csv,
        "nom;prénom;email;comptes;niveau;ressources;date_debut\n\
         Martin;Alice;alice@acme.fr;alice.a;admin;srv-*;2026-01-05\n",
    )
    .expect("write csv");
    let (code, text) = run(auditor(&ledger)
        .args(["staff", "--vendor", "acme", "--csv"])
        .arg(&csv));
    assert_eq!(code, Some(0), "{text}");

    let ics = tmp.path().join("maint.ics");
    std::fs::write(
        &ics,
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:tue@chu\r\nSUMMARY:PACS\r\n\
         DTSTART;TZID=Europe/Paris:20260106T220000\r\nDURATION:PT4H\r\n\
         RRULE:FREQ=WEEKLY;BYDAY=TU\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .expect("write ics");
    let (code, text) = run(auditor(&ledger)
        .args([
            "windows-ics",
            "--vendor",
            "acme",
            "--approver",
            "rssi",
            "--file",
        ])
        .arg(&ics));
    assert_eq!(code, Some(0), "{text}");
    // The same calendar again: the window id is taken, nothing filed.
    let (code, text) = run(auditor(&ledger)
        .args([
            "windows-ics",
            "--vendor",
            "acme",
            "--approver",
            "rssi",
            "--file",
        ])
        .arg(&ics));
    assert_eq!(code, Some(2));
    assert!(
        text.contains("maint.ics:2: id: window id tue@chu is already used"),
        "{text}"
    );
    // An unknown zone on the command line names the field.
    let (code, text) = run(auditor(&ledger).args([
        "window",
        "--vendor",
        "acme",
        "--approver",
        "rssi",
        "--id",
        "w2",
        "--reason",
        "r",
        "--rrule",
        "FREQ=DAILY",
        "--first-start",
        "2026-01-07T08:00",
        "--duration",
        "1h",
        "--zone",
        "Mars/Olympus",
    ]));
    assert_eq!(code, Some(2));
    assert!(
        text.contains("command line:0: zone: unknown time zone \"Mars/Olympus\""),
        "{text}"
    );

    let decls = auditor::decls::Declarations::load(&[auditor::ledger::Source::journal(&ledger)])
        .expect("load");
    let v = decls.vendor("chu-lyon", "acme").expect("vendor");
    assert_eq!(v.staff_lists.len(), 1);
    assert_eq!(v.windows.len(), 1);
    assert_eq!(v.windows[0].grant.filed_by, "rssi.test");
}

/// What a missing file makes the auditor say: what it was, where, and the system's reason,
/// once.
#[test]
fn a_missing_file_is_named_with_its_reason_said_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nope = tmp.path().join("nope");
    let nope = nope.to_str().expect("utf-8 path");
    let reason = "No such file or directory";
    for (args, want) in [
        (
            vec!["verify", "--journal", nope, "--key", nope],
            format!("error: verifier key {nope}: cannot read {nope}: {reason}"),
        ),
        (
            vec![
                "report",
                "--by",
                "x",
                "--ledger",
                nope,
                "--events",
                nope,
                "--tenant",
                "t",
                "--from",
                "2026-03-01",
                "--to",
                "2026-04-01",
                "--format",
                "csv",
            ],
            format!("error: journal {nope}: cannot list {nope}: {reason}"),
        ),
    ] {
        let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_auditor")).args(&args));
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.starts_with(&want), "{args:?}: {text}");
        assert_eq!(text.matches(reason).count(), 1, "{args:?}: {text}");
    }
}
