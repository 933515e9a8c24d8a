//! A realistic month for a hospital group: two establishments, two vendors, staff lists,
//! windows (recurring across the change to summer time, midnight-spanning, one-off, one
//! filed after the fact), an emergency, a departure, shared accounts, missing MFA, late
//! and missing reports, a skewed clock and a silent VPN gateway.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use auditor::declare::{self, Filer, Origin};
use proto::model::{
    AuthFactor, ConnectionEvent, DeclarationBody, Entry, EventKind, Schedule, StaffMember, Window,
};
use store::journal::{Journal, JournalConfig, PendingEntry};
use time::OffsetDateTime;

pub const TENANT: &str = "chu-lyon";

/// Paris local `YYYY-MM-DDTHH:MM`.
pub fn t(local: &str) -> OffsetDateTime {
    auditor::time_fmt::parse_instant(local).expect("valid local time")
}

pub fn filer(ledger: &Path, at: &str) -> Filer {
    Filer {
        ledger: ledger.to_path_buf(),
        tenant: TENANT.into(),
        filed_by: "rssi.dupont".into(),
        filed_at: t(at),
    }
}

pub fn file(ledger: &Path, at: &str, body: DeclarationBody) {
    declare::file(&filer(ledger, at), vec![(Origin::command_line(), body)]).expect("filed");
}

pub const MEDIMAGE_CSV: &str = "nom;prénom;email;comptes;niveau;ressources;date_debut\n\
Martin;Alice;alice@medimage.fr;alice.m;admin;pacs-01|pacs-02;2025-06-01\n\
Bernard;Bob;bob@medimage.fr;bob.m;admin;pacs-*;2025-06-01\n\
Petit;Carol;carol@medimage.fr;carol.m;read;pacs-01;01/06/2025\n\
Durand;Dave;dave@medimage.fr;dave.m;read;pacs-01;01/06/2025\n";

fn member(person: &str, accounts: &[&str], resources: &[&str]) -> StaffMember {
    StaffMember {
        person: person.into(),
        last_name: "Nom".into(),
        first_name: "Prénom".into(),
        email: person.into(),
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        access_level: "admin".into(),
        resources: resources.iter().map(|s| s.to_string()).collect(),
        start_date: time::macros::date!(2024 - 01 - 01),
    }
}

pub fn window(id: &str, vendor: &str, schedule: Schedule) -> Window {
    Window {
        id: id.into(),
        vendor: vendor.into(),
        reason: "maintenance".into(),
        ticket: Some("INC-1".into()),
        approver: "rssi.dupont".into(),
        persons: vec![],
        targets: vec![],
        schedule,
    }
}

pub fn one_off(start: &str, end: &str) -> Schedule {
    Schedule::OneOff {
        starts_at: t(start),
        ends_at: t(end),
    }
}

fn report(vendor: &str, start: &str, end: &str, persons: &[&str]) -> DeclarationBody {
    DeclarationBody::InterventionReport {
        vendor: vendor.into(),
        window_id: None,
        started_at: t(start),
        ended_at: t(end),
        nature: "mise à jour".into(),
        persons: persons.iter().map(|s| s.to_string()).collect(),
    }
}

/// Files the declarations of the month, in filing order.
pub fn declarations(ledger: &Path) {
    let reg = |v: &str| DeclarationBody::VendorRegistered {
        vendor: v.into(),
        name: format!("{v} SAS"),
    };
    file(ledger, "2024-01-01T09:00", reg("biolab"));
    file(
        ledger,
        "2025-01-15T09:00",
        DeclarationBody::StaffList {
            vendor: "biolab".into(),
            persons: vec![
                member("erin@biolab.fr", &["erin.b", "biolab-maint"], &["auto-*"]),
                member("frank@biolab.fr", &["frank.b"], &["auto-01"]),
            ],
        },
    );
    file(ledger, "2025-12-01T09:00", reg("medimage"));
    let persons = auditor::staff_csv::parse("medimage.csv", MEDIMAGE_CSV).expect("csv");
    file(
        ledger,
        "2026-01-10T09:00",
        DeclarationBody::StaffList {
            vendor: "medimage".into(),
            persons,
        },
    );
    file(
        ledger,
        "2026-01-10T09:05",
        DeclarationBody::WindowGranted(window(
            "med-tue",
            "medimage",
            Schedule::Recurring {
                zone: "Europe/Paris".into(),
                first_start_local: "2026-01-06T22:00".into(),
                duration_seconds: 4 * 3600,
                rrule: "FREQ=WEEKLY;BYDAY=TU".into(),
            },
        )),
    );
    file(
        ledger,
        "2026-03-03T23:50",
        report(
            "medimage",
            "2026-03-03T22:30",
            "2026-03-03T23:30",
            &["alice@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-04T12:00",
        report(
            "medimage",
            "2026-03-04T10:00",
            "2026-03-04T11:00",
            &["bob@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-09T15:00",
        DeclarationBody::WindowGranted(window(
            "bio-0310",
            "biolab",
            one_off("2026-03-10T09:00", "2026-03-10T12:00"),
        )),
    );
    file(
        ledger,
        "2026-03-10T11:00",
        report(
            "biolab",
            "2026-03-10T09:30",
            "2026-03-10T10:30",
            &["erin@biolab.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-10T23:00",
        report(
            "medimage",
            "2026-03-10T22:00",
            "2026-03-10T23:00",
            &["alice@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-14T10:00",
        DeclarationBody::Departure {
            vendor: "medimage".into(),
            person: "carol@medimage.fr".into(),
            effective_at: t("2026-03-15T00:00"),
        },
    );
    file(
        ledger,
        "2026-03-17T23:30",
        report(
            "medimage",
            "2026-03-17T22:00",
            "2026-03-17T23:00",
            &["alice@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-20T16:00",
        report(
            "biolab",
            "2026-03-20T14:30",
            "2026-03-20T15:00",
            &["frank@biolab.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-21T09:00",
        DeclarationBody::WindowGranted(window(
            "bio-0320",
            "biolab",
            one_off("2026-03-20T14:00", "2026-03-20T16:00"),
        )),
    );
    file(
        ledger,
        "2026-03-25T08:00",
        report(
            "biolab",
            "2026-03-25T03:30",
            "2026-03-25T04:30",
            &["erin@biolab.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-25T06:00",
        DeclarationBody::Emergency {
            vendor: "biolab".into(),
            person: Some("erin@biolab.fr".into()),
            target: None,
            starts_at: t("2026-03-25T03:00"),
            ends_at: t("2026-03-25T05:00"),
            reason: "automate d'analyses bloqué".into(),
            ticket: Some("URG-7".into()),
        },
    );
    file(
        ledger,
        "2026-03-25T09:00",
        report(
            "medimage",
            "2026-03-24T23:00",
            "2026-03-25T02:30",
            &["bob@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-03-26T10:00",
        report(
            "medimage",
            "2026-03-24T22:00",
            "2026-03-24T23:00",
            &["dave@medimage.fr"],
        ),
    );
    file(
        ledger,
        "2026-04-01T00:45",
        report(
            "medimage",
            "2026-03-31T22:30",
            "2026-04-01T00:30",
            &["alice@medimage.fr"],
        ),
    );
}

/// One session: a start and (optionally) an end event.
pub struct Sess {
    pub tenant: &'static str,
    pub source: &'static str,
    pub vendor: Option<&'static str>,
    pub person: Option<&'static str>,
    pub account: &'static str,
    pub target: &'static str,
    pub addr: &'static str,
    pub id: &'static str,
    pub factors: Vec<AuthFactor>,
    pub start: &'static str,
    pub end: Option<&'static str>,
    /// Seconds the start event reaches the collector late.
    pub start_delay: i64,
}

fn mfa() -> Vec<AuthFactor> {
    vec![AuthFactor::Password, AuthFactor::Otp]
}

fn s(
    vendor: &'static str,
    person: &'static str,
    account: &'static str,
    target: &'static str,
    id: &'static str,
    start: &'static str,
    end: Option<&'static str>,
) -> Sess {
    Sess {
        tenant: TENANT,
        source: "bastion-lyon",
        vendor: Some(vendor),
        person: Some(person),
        account,
        target,
        addr: "10.0.0.1",
        id,
        factors: mfa(),
        start,
        end,
        start_delay: 1,
    }
}

/// The sessions of the month.
pub fn sessions() -> Vec<Sess> {
    let m = "medimage";
    let b = "biolab";
    vec![
        // S1: conforming, Tuesday night, reported the same evening.
        s(
            m,
            "alice@medimage.fr",
            "alice.m",
            "pacs-01",
            "s1",
            "2026-03-03T22:30",
            Some("2026-03-03T23:30"),
        ),
        // S2: conforming, first Tuesday of summer time, across midnight.
        s(
            m,
            "alice@medimage.fr",
            "alice.m",
            "pacs-02",
            "s2",
            "2026-03-31T22:30",
            Some("2026-04-01T00:30"),
        ),
        // S3: Wednesday morning, no window.
        s(
            m,
            "bob@medimage.fr",
            "bob.m",
            "pacs-03",
            "s3",
            "2026-03-04T10:00",
            Some("2026-03-04T11:00"),
        ),
        // S4: after the departure; no report names her.
        s(
            m,
            "carol@medimage.fr",
            "carol.m",
            "pacs-01",
            "s4",
            "2026-03-17T22:30",
            Some("2026-03-17T23:00"),
        ),
        // S5: someone not on the list, on Alice's account, from elsewhere.
        Sess {
            addr: "10.9.9.9",
            ..s(
                m,
                "mallory@medimage.fr",
                "alice.m",
                "pacs-01",
                "s5",
                "2026-03-10T22:15",
                Some("2026-03-10T22:45"),
            )
        },
        // S6: Alice at the same time from her usual address.
        s(
            m,
            "alice@medimage.fr",
            "alice.m",
            "pacs-01",
            "s6",
            "2026-03-10T22:20",
            Some("2026-03-10T22:40"),
        ),
        // S7: undeclared target, password only, report two days late.
        Sess {
            factors: vec![AuthFactor::Password],
            ..s(
                m,
                "dave@medimage.fr",
                "dave.m",
                "ris-01",
                "s7",
                "2026-03-24T22:10",
                Some("2026-03-24T23:00"),
            )
        },
        // S8: runs past the window's 02:00 end.
        s(
            m,
            "bob@medimage.fr",
            "bob.m",
            "pacs-01",
            "s8",
            "2026-03-24T23:00",
            Some("2026-03-25T02:30"),
        ),
        // S9: never ends.
        s(
            m,
            "alice@medimage.fr",
            "alice.m",
            "pacs-01",
            "s9",
            "2026-03-17T22:00",
            None,
        ),
        // S10: in its one-off window; the stale staff list; the start reaches the collector 10 min late.
        Sess {
            start_delay: 600,
            ..s(
                b,
                "erin@biolab.fr",
                "erin.b",
                "auto-01",
                "s10",
                "2026-03-10T09:30",
                Some("2026-03-10T10:30"),
            )
        },
        // S11: covered only by a window filed the next day.
        s(
            b,
            "frank@biolab.fr",
            "frank.b",
            "auto-01",
            "s11",
            "2026-03-20T14:30",
            Some("2026-03-20T15:00"),
        ),
        // S12: emergency at night, factors given by an auth_success event.
        Sess {
            factors: vec![],
            ..s(
                b,
                "erin@biolab.fr",
                "biolab-maint",
                "auto-02",
                "s12",
                "2026-03-25T03:30",
                Some("2026-03-25T04:30"),
            )
        },
        // S13: Frank on Erin's maintenance account, no window, no report.
        s(
            b,
            "frank@biolab.fr",
            "biolab-maint",
            "auto-01",
            "s13",
            "2026-03-26T10:00",
            Some("2026-03-26T10:30"),
        ),
        // S14: a VPN tunnel nobody can be named for, password only; the gateway then falls silent.
        Sess {
            source: "vpn-lyon",
            vendor: None,
            person: None,
            factors: vec![AuthFactor::Password],
            ..s(
                m,
                "-",
                "svc-vpn",
                "lan",
                "v1",
                "2026-03-03T08:00",
                Some("2026-03-03T08:30"),
            )
        },
        // S16: an OpenSSH login that names only its account, held by Bob alone: Bob's
        // (medimage's), in the Tuesday window; the evening's report names only Alice.
        Sess {
            vendor: None,
            person: None,
            addr: "10.0.0.2",
            ..s(
                m,
                "-",
                "bob.m",
                "pacs-03",
                "s16",
                "2026-03-31T23:00",
                Some("2026-03-31T23:30"),
            )
        },
        // Another establishment: outside every window, but not in this report.
        Sess {
            tenant: "chu-nord",
            source: "bastion-nord",
            ..s(
                m,
                "zed@medimage.fr",
                "zed.m",
                "pacs-09",
                "n1",
                "2026-03-05T03:00",
                Some("2026-03-05T04:00"),
            )
        },
    ]
}

fn event(
    s: &Sess,
    kind: EventKind,
    at: OffsetDateTime,
    delay: i64,
    factors: Vec<AuthFactor>,
) -> ConnectionEvent {
    ConnectionEvent {
        kind,
        tenant: s.tenant.into(),
        source: s.source.into(),
        vendor: s.vendor.map(Into::into),
        person: s.person.map(Into::into),
        account: Some(s.account.into()),
        target: Some(s.target.into()),
        protocol: Some("ssh".into()),
        source_addr: s.addr.parse().ok(),
        session_id: Some(s.id.into()),
        factors,
        occurred_at: at,
        received_at: at + time::Duration::seconds(delay),
        raw: format!("{} {}", s.id, s.account).into_bytes(),
    }
}

/// Writes the month's events into a collector journal in `dir`, in order of receipt.
pub fn write_events(dir: &Path, sessions: &[Sess]) {
    store::journal::init(dir).expect("init events journal");
    let mut events = Vec::new();
    for s in sessions {
        let start = t(s.start);
        if s.id == "s12" {
            events.push(event(
                s,
                EventKind::AuthSuccess,
                start - time::Duration::seconds(5),
                1,
                vec![AuthFactor::Password, AuthFactor::Push],
            ));
        }
        events.push(event(
            s,
            EventKind::SessionStart,
            start,
            s.start_delay,
            s.factors.clone(),
        ));
        if let Some(end) = s.end {
            events.push(event(s, EventKind::SessionEnd, t(end), 1, vec![]));
        }
    }
    events.sort_by_key(|e| e.received_at);
    let batch = events
        .into_iter()
        .map(|e| PendingEntry {
            received_at: e.received_at,
            canonical: proto::canonical::encode(&Entry::Event(e)),
        })
        .collect();
    let (journal, _) = Journal::open(JournalConfig::new(dir)).expect("open events journal");
    journal.append(batch).expect("append events");
    journal.close().expect("close events journal");
}

pub struct Month {
    pub _tmp: tempfile::TempDir,
    pub ledger: PathBuf,
    pub events: PathBuf,
}

pub fn month() -> Month {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = tmp.path().join("decl");
    let events = tmp.path().join("events");
    declarations(&ledger);
    write_events(&events, &sessions());
    Month {
        _tmp: tmp,
        ledger,
        events,
    }
}

pub fn ledger(m: &Month) -> auditor::audit::Ledger {
    auditor::audit::Ledger {
        declarations: vec![auditor::ledger::Source::journal(&m.ledger)],
        events: vec![auditor::ledger::Source::journal(&m.events)],
        keys: vec![],
        chain_keys: vec![],
    }
}

pub fn config() -> auditor::rules::RuleConfig {
    let mut cfg = auditor::rules::RuleConfig::new(t("2026-03-01T00:00"), t("2026-04-01T00:00"));
    cfg.tenant = Some(TENANT.into());
    cfg.silent_after = time::Duration::days(8);
    cfg
}

/// The vendor's journal of the month in the scenario's tenant.
pub fn vendor_journal(m: &Month, vendor: &str) -> auditor::audit::Audit {
    let mut cfg = config();
    cfg.vendor = Some(vendor.into());
    auditor::audit::run_journal(&ledger(m), cfg, false).expect("vendor journal")
}

pub fn options() -> auditor::audit::RunOptions {
    auditor::audit::RunOptions {
        progress: false,
        ..Default::default()
    }
}
