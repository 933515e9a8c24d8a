//! Filing declarations: errors that name the file, line and field; nothing half-filed.

mod common;

use auditor::declare::{self, Origin};
use auditor::decls::Declarations;
use auditor::ledger::Source;
use common::*;
use proto::model::{DeclarationBody, Schedule};

fn count(ledger: &std::path::Path) -> u64 {
    Declarations::load(&[Source::journal(ledger)])
        .expect("load")
        .count
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = tmp.path().join("decl");
    file(
        &ledger,
        "2026-01-01T09:00",
        DeclarationBody::VendorRegistered {
            vendor: "medimage".into(),
            name: "Medimage SAS".into(),
        },
    );
    file(
        &ledger,
        "2026-01-02T09:00",
        DeclarationBody::WindowGranted(window(
            "tue",
            "medimage",
            Schedule::Recurring {
                zone: "Europe/Paris".into(),
                first_start_local: "2026-01-06T22:00".into(),
                duration_seconds: 4 * 3600,
                rrule: "FREQ=WEEKLY;BYDAY=TU".into(),
            },
        )),
    );
    (tmp, ledger)
}

fn refused(ledger: &std::path::Path, body: DeclarationBody) -> String {
    declare::file(
        &filer(ledger, "2026-02-01T10:00"),
        vec![(Origin::command_line(), body)],
    )
    .expect_err("refused")
    .to_string()
}

#[test]
fn the_ledger_is_created_on_first_use_and_records_who_and_when() {
    let (_tmp, ledger) = setup();
    assert!(ledger.join(store::journal::VERIFIER_FILE).exists());
    let decls = Declarations::load(&[Source::journal(&ledger)]).expect("load");
    let v = decls.vendor(TENANT, "medimage").expect("vendor");
    let reg = v.registered.as_ref().expect("registered");
    assert_eq!(reg.filed_by, "rssi.dupont");
    assert_eq!(reg.filed_at, t("2026-01-01T09:00"));
    assert_eq!(v.windows.len(), 1);
}

#[test]
fn bad_declarations_are_refused_with_the_field() {
    let (_tmp, ledger) = setup();
    let before = count(&ledger);
    let unknown = refused(
        &ledger,
        DeclarationBody::WindowGranted(window(
            "w2",
            "nobody",
            one_off("2026-02-03T10:00", "2026-02-03T11:00"),
        )),
    );
    assert_eq!(
        unknown,
        "command line:0: vendor: unknown vendor nobody for tenant chu-lyon: register it first"
    );
    let inverted = refused(
        &ledger,
        DeclarationBody::WindowGranted(window(
            "w2",
            "medimage",
            one_off("2026-02-03T11:00", "2026-02-03T10:00"),
        )),
    );
    assert_eq!(
        inverted,
        "command line:0: end: the window ends before it starts"
    );
    // Tuesday 10 February 23:00-23:30 Paris falls in the recurring Tuesday window.
    let overlap = refused(
        &ledger,
        DeclarationBody::WindowGranted(window(
            "w2",
            "medimage",
            one_off("2026-02-10T23:00", "2026-02-10T23:30"),
        )),
    );
    assert_eq!(
        overlap,
        "command line:0: schedule: overlaps window tue on 2026-02-10 23:00:00 +01:00"
    );
    let zone = refused(
        &ledger,
        DeclarationBody::WindowGranted(window(
            "w2",
            "medimage",
            Schedule::Recurring {
                zone: "Europe/Lyon".into(),
                first_start_local: "2026-01-07T22:00".into(),
                duration_seconds: 3600,
                rrule: "FREQ=WEEKLY;BYDAY=WE".into(),
            },
        )),
    );
    assert_eq!(
        zone,
        "command line:0: zone: unknown time zone \"Europe/Lyon\""
    );
    let dup = refused(
        &ledger,
        DeclarationBody::WindowGranted(window(
            "tue",
            "medimage",
            one_off("2026-02-04T10:00", "2026-02-04T11:00"),
        )),
    );
    assert_eq!(dup, "command line:0: id: window id tue is already used");
    let cancel = refused(
        &ledger,
        DeclarationBody::WindowCancelled {
            vendor: "medimage".into(),
            window_id: "nope".into(),
            reason: "x".into(),
        },
    );
    assert_eq!(
        cancel,
        "command line:0: window_id: no window nope in force for this vendor"
    );
    let departure = refused(
        &ledger,
        DeclarationBody::Departure {
            vendor: "medimage".into(),
            person: "ghost@medimage.fr".into(),
            effective_at: t("2026-02-01T00:00"),
        },
    );
    assert_eq!(
        departure,
        "command line:0: person: ghost@medimage.fr is not on the vendor's staff list"
    );
    assert_eq!(count(&ledger), before);
}

const ICS_HEAD: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n";

fn vevent(uid: &str, start: &str, end: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:Mise à jour PACS\r\nDTSTART;TZID=Europe/Paris:{start}\r\nDTEND;TZID=Europe/Paris:{end}\r\nEND:VEVENT\r\n"
    )
}

#[test]
fn ics_import_is_all_or_nothing_and_names_the_line() {
    let (_tmp, ledger) = setup();
    let template = window(
        "",
        "medimage",
        one_off("2026-01-01T00:00", "2026-01-01T01:00"),
    );
    let before = count(&ledger);
    // Two good events, then one overlapping the first: nothing is filed.
    let text = format!(
        "{ICS_HEAD}{}{}{}END:VCALENDAR\r\n",
        vevent("a", "20260204T100000", "20260204T120000"),
        vevent("b", "20260205T100000", "20260205T120000"),
        vevent("c", "20260204T110000", "20260204T130000"),
    );
    let batch = declare::windows_from_ics("maint.ics", &text, &template).expect("parsed");
    assert_eq!(batch.len(), 3);
    let err = declare::file(&filer(&ledger, "2026-02-01T10:00"), batch).expect_err("overlap");
    assert_eq!(
        err.to_string(),
        "maint.ics:15: schedule: overlaps window a on 2026-02-04 11:00:00 +01:00"
    );
    assert_eq!(count(&ledger), before);
    // A malformed date names its line and property.
    let bad = format!(
        "{ICS_HEAD}{}END:VCALENDAR\r\n",
        vevent("d", "20261304T100000", "20260204T120000")
    );
    let err = declare::windows_from_ics("maint.ics", &bad, &template).expect_err("bad date");
    assert_eq!(
        err.to_string(),
        "maint.ics:6: DTSTART: invalid date-time \"20261304T100000\""
    );
    // The good part alone files both windows in one batch.
    let good = format!(
        "{ICS_HEAD}{}{}END:VCALENDAR\r\n",
        vevent("a", "20260204T100000", "20260204T120000"),
        vevent("b", "20260205T100000", "20260205T120000"),
    );
    let batch = declare::windows_from_ics("maint.ics", &good, &template).expect("parsed");
    let seqs = declare::file(&filer(&ledger, "2026-02-01T10:00"), batch).expect("filed");
    assert_eq!(seqs.len(), 2);
    assert_eq!(count(&ledger), before + 2);
}

#[test]
fn staff_list_errors_name_the_file_line_and_field() {
    let bad = MEDIMAGE_CSV.replace("bob@medimage.fr", "bob at medimage");
    let err = auditor::staff_csv::parse("medimage.csv", &bad).expect_err("bad e-mail");
    assert_eq!(
        err.to_string(),
        "medimage.csv:3: email: invalid e-mail address \"bob at medimage\""
    );
}

fn registration(vendor: &str) -> Vec<(Origin, DeclarationBody)> {
    vec![(
        Origin::command_line(),
        DeclarationBody::VendorRegistered {
            vendor: vendor.into(),
            name: format!("{vendor} SAS"),
        },
    )]
}

/// Files a vendor's registration into `ledger`; what it gave, and how long it took.
fn file_timed(
    ledger: &std::path::Path,
) -> (
    Result<Vec<u64>, auditor::error::AuditError>,
    std::time::Duration,
) {
    let started = std::time::Instant::now();
    let filed = declare::file(&filer(ledger, "2026-01-03T09:00"), registration("biolab"));
    (filed, started.elapsed())
}

#[test]
fn a_filing_waits_for_another_writer_to_close_the_ledger() {
    let (_tmp, ledger) = setup();
    let before = count(&ledger);
    let holder = declare::open_ledger(&ledger).expect("the other writer");
    let released = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        holder.close().expect("the other writer closes");
    });
    let (filed, took) = file_timed(&ledger);
    let seqs = filed.expect("filed once the other writer closed the ledger");
    assert!(
        took >= std::time::Duration::from_millis(250),
        "filed after {took:?}, while the ledger was held"
    );
    released.join().expect("holder thread");
    assert_eq!(seqs.len(), 1);
    assert_eq!(count(&ledger), before + 1);
}

#[test]
fn a_ledger_held_too_long_is_reported_locked() {
    let (_tmp, ledger) = setup();
    let before = count(&ledger);
    let holder = declare::open_ledger(&ledger).expect("the other writer");
    let (filed, took) = file_timed(&ledger);
    let err = filed.expect_err("the ledger stays held");
    assert!(
        took >= std::time::Duration::from_secs(4),
        "gave up after {took:?}"
    );
    assert!(
        err.to_string().contains("locked by another writer"),
        "{err}"
    );
    holder.close().expect("close");
    assert_eq!(count(&ledger), before, "nothing filed");
}
