//! The auditor over 18 months of a hospital group: full conformance report time and peak
//! memory, a vendor's journal export from the journal, and the same export from
//! PostgreSQL.
//!
//! ```text
//!  cargo bench --bench audit
//!
//!  target/audit-bench-data/<events>/   generated once, reused while the parameters match
//!    decl/     the auditor's ledger: 200 vendors (registration, staff lists of 10 persons,
//!              a departure for one vendor in ten), 19,800 one-off windows of 4 h and 200
//!              weekly ones, one intervention report per one-off window
//!    events/   the collector's journal: sessions of auth_success + session_start +
//!              session_end, 99.5 % in a one-off window, appended in fsync'd group commits
//!              of 4,096 entries
//!    params    written last: the cache is complete
//! ```
//!
//! Each measurement runs in a child process (this bench, re-invoked with
//! `VIGIE_AUDIT_BENCH_CHILD`), which reads its own peak resident set (`VmHWM`) before it
//! exits; the parent times it from spawn to exit.
//!
//! Environment:
//! - `VIGIE_AUDIT_BENCH_EVENTS`: connection events (default 10,000,000; 200,000 is a quick
//!   run).
//! - `VIGIE_AUDIT_BENCH_RUNS`: report runs (default 3; the table shows each).
//! - `VIGIE_AUDIT_BENCH_PG`: PostgreSQL server (default `host=127.0.0.1 port=5432
//!   user=postgres`); the rows go into the database `vigie_audit_bench_<events>`, created
//!   and filled if missing, reused otherwise. `VIGIE_AUDIT_BENCH_PG=off` skips it.
//!
//! With PostgreSQL, the same full report and vendor journal run with the events read from
//! there (`auditor report|journal --postgres-url`), and the raw vendor journal query
//! (`LedgerQuery::VendorJournal`) over the 18 months is timed too.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use auditor::audit::{self, Ledger, RunOptions};
use auditor::finding::Lang;
use auditor::ledger::Source;
use auditor::report::{self, Format};
use auditor::rules::RuleConfig;
use proto::model::{
    AuthFactor, ConnectionEvent, Declaration, DeclarationBody, Entry, EventKind, Schedule,
    StaffMember, Window,
};
use store::journal::{Journal, JournalConfig, PendingEntry};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const TENANT: &str = "ght-rhone";
const VENDORS: u64 = 200;
const PERSONS_PER_VENDOR: u64 = 10;
const ONE_OFF_WINDOWS: u64 = 19_800;
const WINDOW_HOURS: i64 = 4;
const SOURCES: u64 = 10;
const BATCH: usize = 4096;
/// The first instant of the 18 months.
const T0: OffsetDateTime = datetime!(2025-03-01 0:00 UTC);
const SPAN_DAYS: i64 = 548;
/// Bumped when the generated data changes.
const DATA_VERSION: u32 = 1;

fn main() {
    let events: u64 = env_or("VIGIE_AUDIT_BENCH_EVENTS", 10_000_000);
    let dir = data_dir(events);
    if let Ok(mode) = std::env::var("VIGIE_AUDIT_BENCH_CHILD") {
        child(&mode, &dir);
        return;
    }
    let runs: u64 = env_or("VIGIE_AUDIT_BENCH_RUNS", 3);
    let generated = ensure_data(&dir, events);
    let mut table = Vec::new();
    if let Some(secs) = generated {
        table.push(("generation (journal, fsync'd)".to_owned(), secs, None, None));
    }
    for run in 0..runs {
        let (secs, rss, out) = spawn_child("report", events);
        table.push((
            format!("full report, run {}", run + 1),
            secs,
            Some(rss),
            Some(out),
        ));
    }
    let (secs, rss, out) = spawn_child("journal", events);
    table.push((
        "vendor journal export (journal)".into(),
        secs,
        Some(rss),
        Some(out),
    ));
    let pg = std::env::var("VIGIE_AUDIT_BENCH_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
    if pg != "off" {
        let loaded = postgres(&pg, &dir, events);
        let reachable = !loaded.is_empty();
        for (what, secs, out) in loaded {
            table.push((what, secs, None, Some(out)));
        }
        if reachable {
            let url = format!("{pg} dbname={}", pg_database(events));
            let env = [("VIGIE_AUDIT_BENCH_PG_URL", url.as_str())];
            for run in 0..runs {
                let (secs, rss, out) = spawn_child_with("report-pg", events, &env);
                table.push((
                    format!("full report from PostgreSQL, run {}", run + 1),
                    secs,
                    Some(rss),
                    Some(out),
                ));
            }
            for run in 0..3 {
                let (secs, rss, out) = spawn_child_with("journal-pg", events, &env);
                table.push((
                    format!("vendor journal export (PostgreSQL), {}", run + 1),
                    secs,
                    Some(rss),
                    Some(out),
                ));
            }
        }
    }
    println!(
        "\naudit bench: {events} connection events, {VENDORS} vendors, \
        {} persons, {} windows, 18 months",
        VENDORS * PERSONS_PER_VENDOR,
        ONE_OFF_WINDOWS + VENDORS
    );
    println!(
        "{:<36} {:>10} {:>12}  result",
        "measure", "wall (s)", "peak RSS"
    );
    for (what, secs, rss, out) in table {
        let rss = rss.map_or("-".into(), |kib: u64| format!("{} MiB", kib / 1024));
        println!(
            "{what:<36} {secs:>10.2} {rss:>12}  {}",
            out.unwrap_or_default()
        );
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn data_dir(events: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("audit-bench-data").join(events.to_string())
}

fn params(events: u64) -> String {
    format!(
        "version={DATA_VERSION} events={events} vendors={VENDORS} persons={PERSONS_PER_VENDOR} windows={ONE_OFF_WINDOWS}\n"
    )
}

fn ledger(dir: &Path) -> Ledger {
    Ledger {
        declarations: vec![Source::journal(dir.join("decl"))],
        events: vec![Source::journal(dir.join("events"))],
        keys: Vec::new(),
        chain_keys: Vec::new(),
    }
}

/// The ledger as `auditor report --postgres-url … --key …` reads it: declarations from
/// the auditor's journal, events from every chain in PostgreSQL.
fn pg_ledger(dir: &Path, url: &str) -> Ledger {
    let decl = Source::journal(dir.join("decl"));
    let own = decl.chain_id().expect("the declarations journal");
    Ledger {
        declarations: vec![decl],
        events: Source::postgres_chains(url, &[own]).expect("the chains in PostgreSQL"),
        keys: Vec::new(),
        chain_keys: vec![dir.join("events").join(store::journal::VERIFIER_FILE)],
    }
}

fn pg_database(events: u64) -> String {
    format!("vigie_audit_bench_{events}")
}

fn span() -> (OffsetDateTime, OffsetDateTime) {
    (T0, T0 + Duration::days(SPAN_DAYS))
}

/// Runs one measurement in a child process: (wall seconds, peak RSS in KiB, its summary).
fn spawn_child(mode: &str, events: u64) -> (f64, u64, String) {
    spawn_child_with(mode, events, &[])
}

fn spawn_child_with(mode: &str, events: u64, env: &[(&str, &str)]) -> (f64, u64, String) {
    let exe = std::env::current_exe().expect("the bench's own path");
    let started = Instant::now();
    let out = Command::new(exe)
        .env("VIGIE_AUDIT_BENCH_CHILD", mode)
        .env("VIGIE_AUDIT_BENCH_EVENTS", events.to_string())
        .envs(env.iter().copied())
        .output()
        .expect("run the child");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "child {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rss = 0;
    let mut summary = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("vmhwm_kib=") {
            rss = v.trim().parse().unwrap_or(0);
        } else {
            summary = line.to_owned();
        }
    }
    (secs, rss, summary)
}

/// The child: one report (or journal export) as `auditor report` / `auditor journal` make
/// it, written to a file; prints a summary and its peak RSS.
fn child(mode: &str, dir: &Path) {
    let ledger = match std::env::var("VIGIE_AUDIT_BENCH_PG_URL") {
        Ok(url) if mode.ends_with("-pg") => pg_ledger(dir, &url),
        _ => ledger(dir),
    };
    let (from, to) = span();
    let mut cfg = RuleConfig::new(from, to);
    cfg.tenant = Some(TENANT.into());
    let mut opts = RunOptions {
        progress: false,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let summary = match mode {
        "report" | "report-pg" => {
            let audit = audit::run(&ledger, cfg, opts).expect("report");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(dir.join("report.html")).expect("report file"),
            );
            report::write(
                &audit,
                Format::Html,
                Lang::Fr,
                OffsetDateTime::now_utc(),
                &mut out,
            )
            .expect("write the report");
            format!(
                "{} events, {} connections, {} findings",
                audit.stats.events,
                audit.stats.connections,
                audit.findings.len()
            )
        }
        "journal" | "journal-pg" => {
            cfg.vendor = Some(vendor(0));
            cfg.keep_sessions = usize::MAX;
            opts.check_chains = false;
            opts.check_retention = false;
            // As `auditor journal` does: PostgreSQL reads only the vendor's rows.
            let ledger = Ledger {
                events: (ledger.events.iter())
                    .map(|s| s.only_vendor(&vendor(0), Some(TENANT)))
                    .collect(),
                ..ledger
            };
            let audit = audit::run(&ledger, cfg, opts).expect("journal");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(dir.join("journal.csv")).expect("journal file"),
            );
            auditor::export::journal_csv(&audit.sessions, &mut out).expect("write the journal");
            format!("{} sessions of {}", audit.sessions.len(), vendor(0))
        }
        other => panic!("unknown child mode {other}"),
    };
    println!(
        "{summary} (in-process {:.2} s)",
        started.elapsed().as_secs_f64()
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("vmhwm_kib={hwm}");
}

fn vendor(v: u64) -> String {
    format!("v{v:03}")
}

fn person(v: u64, k: u64) -> String {
    format!("p{k}@v{v:03}.fr")
}

fn account(v: u64, k: u64) -> String {
    format!("v{v:03}.p{k}")
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

fn window_step() -> Duration {
    Duration::seconds(SPAN_DAYS * 86_400 / ONE_OFF_WINDOWS as i64)
}

fn window_start(j: u64) -> OffsetDateTime {
    T0 + window_step() * (j as i32)
}

/// Generates the data unless the cache holds it; returns the generation time.
fn ensure_data(dir: &Path, events: u64) -> Option<f64> {
    if std::fs::read_to_string(dir.join("params")).ok().as_deref() == Some(&params(events)) {
        println!("reusing {}", dir.display());
        return None;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the stale cache");
    }
    std::fs::create_dir_all(dir).expect("create the cache");
    println!("generating {events} events into {}", dir.display());
    let started = Instant::now();
    write_declarations(&dir.join("decl"));
    write_events(&dir.join("events"), events);
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(dir.join("params"), params(events)).expect("write params");
    println!("generated in {secs:.1} s");
    Some(secs)
}

fn open(dir: &Path) -> Journal {
    store::journal::init(dir).expect("init journal");
    let (journal, _) = Journal::open(JournalConfig::new(dir)).expect("open journal");
    journal
}

fn write_declarations(dir: &Path) {
    let mut decls: Vec<(OffsetDateTime, DeclarationBody)> = Vec::new();
    for v in 0..VENDORS {
        decls.push((
            T0 - Duration::days(60),
            DeclarationBody::VendorRegistered {
                vendor: vendor(v),
                name: format!("Vendor {v} SAS"),
            },
        ));
        let persons: Vec<StaffMember> = (0..PERSONS_PER_VENDOR)
            .map(|k| StaffMember {
                person: person(v, k),
                last_name: format!("Nom{k}"),
                first_name: format!("Prénom{k}"),
                email: person(v, k),
                accounts: vec![account(v, k)],
                access_level: "admin".into(),
                resources: vec![format!("srv-v{v:03}-*")],
                start_date: date!(2024 - 01 - 01),
            })
            .collect();
        // Renewed every nine months, so none is older than the 365 days allowed.
        for m in 0..3 {
            decls.push((
                T0 - Duration::days(30) + Duration::days(270 * m),
                DeclarationBody::StaffList {
                    vendor: vendor(v),
                    persons: persons.clone(),
                },
            ));
        }
        if v % 10 == 0 {
            decls.push((
                T0 + Duration::days(400),
                DeclarationBody::Departure {
                    vendor: vendor(v),
                    person: person(v, 9),
                    effective_at: T0 + Duration::days(400),
                },
            ));
        }
        decls.push((
            T0 - Duration::days(10),
            DeclarationBody::WindowGranted(Window {
                id: format!("weekly-{v}"),
                vendor: vendor(v),
                reason: "maintenance hebdomadaire".into(),
                ticket: None,
                approver: "rssi".into(),
                persons: vec![],
                targets: vec![],
                schedule: Schedule::Recurring {
                    zone: "Europe/Paris".into(),
                    first_start_local: format!("2025-03-{:02}T22:00", 3 + v % 7),
                    duration_seconds: 3 * 3600,
                    rrule: "FREQ=WEEKLY".into(),
                },
            }),
        ));
    }
    for j in 0..ONE_OFF_WINDOWS {
        let v = j % VENDORS;
        let start = window_start(j);
        let end = start + Duration::hours(WINDOW_HOURS);
        decls.push((
            start - Duration::days(2),
            DeclarationBody::WindowGranted(Window {
                id: format!("w{j}"),
                vendor: vendor(v),
                reason: "mise à jour".into(),
                ticket: Some(format!("CHG-{j}")),
                approver: "rssi".into(),
                persons: vec![],
                targets: vec![],
                schedule: Schedule::OneOff {
                    starts_at: start,
                    ends_at: end,
                },
            }),
        ));
        decls.push((
            end + Duration::minutes(10),
            DeclarationBody::InterventionReport {
                vendor: vendor(v),
                window_id: Some(format!("w{j}")),
                started_at: start,
                ended_at: end,
                nature: "mise à jour".into(),
                persons: vec![],
            },
        ));
    }
    decls.sort_by_key(|d| d.0);
    let journal = open(dir);
    for chunk in decls.chunks(BATCH) {
        let batch = chunk
            .iter()
            .map(|(at, body)| PendingEntry {
                received_at: *at,
                canonical: proto::canonical::encode(&Entry::Declaration(Declaration {
                    tenant: TENANT.into(),
                    filed_by: "rssi.bench".into(),
                    filed_at: *at,
                    body: body.clone(),
                })),
            })
            .collect();
        journal.append(batch).expect("append declarations");
    }
    journal.close().expect("close declarations");
}

/// One event waiting in time order: (received_at in ns, generation order).
type Queued = Reverse<(i128, u64)>;

fn write_events(dir: &Path, events: u64) {
    let journal = open(dir);
    let sessions = events / 3;
    let gap_ns = (SPAN_DAYS as i128 * 86_400 * 1_000_000_000) / sessions.max(1) as i128;
    let mut rng = Rng(0x5eed);
    let mut heap: BinaryHeap<Queued> = BinaryHeap::new();
    let mut pending: std::collections::HashMap<u64, ConnectionEvent> =
        std::collections::HashMap::new();
    let mut order = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    let flush = |batch: &mut Vec<PendingEntry>| {
        journal
            .append(std::mem::take(batch))
            .expect("append events");
    };
    let step = window_step().whole_seconds();
    let t0_ns = T0.unix_timestamp_nanos();
    for n in 0..sessions {
        // Evenly spread starts, jittered by up to one gap.
        let jitter = (rng.below(1000) as i128 * gap_ns) / 1000;
        let start_ns = t0_ns + n as i128 * gap_ns + jitter;
        let start = OffsetDateTime::from_unix_timestamp_nanos(start_ns).expect("valid instant");
        // Everything received more than a minute before this start is final.
        while let Some(Reverse((at, id))) = heap.peek().copied() {
            if at > start_ns - 60_000_000_000 {
                break;
            }
            heap.pop();
            let e = pending.remove(&id).expect("queued event");
            batch.push(PendingEntry {
                received_at: e.received_at,
                canonical: proto::canonical::encode(&Entry::Event(e)),
            });
            if batch.len() == BATCH {
                flush(&mut batch);
            }
        }
        // A one-off window opened in the last two hours, or (0.5 %) any vendor, any time.
        let since = (start - T0).whole_seconds();
        let v = if rng.chance(5) {
            rng.below(VENDORS)
        } else {
            let last = ((since / step) as u64).min(ONE_OFF_WINDOWS - 1);
            let first = if since >= 2 * 3600 {
                ((since - 2 * 3600) / step) as u64 + 1
            } else {
                0
            };
            let first = first.min(last);
            let j = first + rng.below(last - first + 1);
            j % VENDORS
        };
        let k = rng.below(PERSONS_PER_VENDOR);
        let minutes = 5 + rng.below(85) as i64;
        let end = start + Duration::minutes(minutes);
        let factors = if rng.chance(10) {
            vec![AuthFactor::Password]
        } else {
            vec![AuthFactor::Password, AuthFactor::Otp]
        };
        let target = if rng.chance(5) {
            "db-core".to_owned()
        } else {
            format!("srv-v{v:03}-{:02}", rng.below(8))
        };
        let addr = IpAddr::V4(Ipv4Addr::new(10, (v / 2) as u8, (v % 2 * 100 + k) as u8, 7));
        let source = format!("bastion-{:02}", v % SOURCES);
        let sid = format!("{n:08x}");
        let named = !rng.chance(20);
        let protocol = if v % 3 == 0 { "rdp" } else { "ssh" };
        let mk = |kind: EventKind, at: OffsetDateTime, factors: Vec<AuthFactor>| {
            let raw = format!(
                "<86>1 {} {source} sshd 4242 - - {} for {} from {addr} port 52113 ssh2: \
                 session {sid} target {target} vendor {} ({})",
                at,
                kind.name(),
                account(v, k),
                vendor(v),
                protocol
            );
            ConnectionEvent {
                kind,
                tenant: TENANT.into(),
                source: source.clone(),
                vendor: Some(vendor(v)),
                person: named.then(|| person(v, k)),
                account: Some(account(v, k)),
                target: Some(target.clone()),
                protocol: Some(protocol.into()),
                source_addr: Some(addr),
                session_id: Some(sid.clone()),
                factors,
                occurred_at: at,
                received_at: at + Duration::seconds(1),
                raw: raw.into_bytes(),
            }
        };
        for e in [
            mk(
                EventKind::AuthSuccess,
                start - Duration::seconds(3),
                factors.clone(),
            ),
            mk(EventKind::SessionStart, start, factors),
            mk(EventKind::SessionEnd, end, vec![]),
        ] {
            heap.push(Reverse((e.received_at.unix_timestamp_nanos(), order)));
            pending.insert(order, e);
            order += 1;
        }
    }
    while let Some(Reverse((_, id))) = heap.pop() {
        let e = pending.remove(&id).expect("queued event");
        batch.push(PendingEntry {
            received_at: e.received_at,
            canonical: proto::canonical::encode(&Entry::Event(e)),
        });
        if batch.len() == BATCH {
            flush(&mut batch);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch);
    }
    journal.close().expect("close events");
}

/// Replicates the events into PostgreSQL (once) and times the vendor journal query.
fn postgres(server: &str, dir: &Path, events: u64) -> Vec<(String, f64, String)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let name = pg_database(events);
        let admin = format!("{server} dbname=postgres");
        let (client, conn) = match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => {
                println!("PostgreSQL unreachable at `{admin}` ({e}): skipped");
                return Vec::new();
            }
        };
        tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .expect("look up the bench database")
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the bench database");
        }
        let url = format!("{server} dbname={name}");
        let (mut client, _conn) = store::pg::connect(&url).await.expect("connect");
        store::pg::migrate(&mut client).await.expect("migrate");
        let mut month = store::pg::YearMonth::of(T0 - Duration::days(62));
        for _ in 0..22 {
            store::pg::schema::create_partition(&client, month)
                .await
                .expect("partition");
            month = month.next();
        }
        let mut out = Vec::new();
        for sub in ["decl", "events"] {
            let reader =
                store::journal::JournalReader::open(dir.join(sub)).expect("open the journal");
            let started = Instant::now();
            let done = store::pg::catch_up(&mut client, &reader, store::pg::BatchLimits::default())
                .await
                .expect("replicate");
            if done.rows > 0 {
                let secs = started.elapsed().as_secs_f64();
                out.push((
                    format!("replication of {sub} into PostgreSQL"),
                    secs,
                    format!("{} rows, {:.0} rows/s", done.rows, done.rows as f64 / secs),
                ));
            }
        }
        client
            .batch_execute("ANALYZE entries")
            .await
            .expect("analyze");
        let (from, to) = span();
        for run in 0..3 {
            let started = Instant::now();
            let rows = store::pg::query(
                &client,
                store::pg::LedgerQuery::VendorJournal,
                &[&TENANT, &vendor(0), &from, &to],
            )
            .await
            .expect("vendor journal query");
            let secs = started.elapsed().as_secs_f64();
            out.push((
                format!("vendor journal from PostgreSQL, {}", run + 1),
                secs,
                format!("{} rows of {} over 18 months", rows.len(), vendor(0)),
            ));
        }
        out
    })
}
