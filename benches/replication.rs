//! Replication into PostgreSQL against its physical reference, measured in the same run:
//! the replicator (journal read, rows split out of canonical entries, binary COPY in
//! 10,000-row transactions with the position) with 1, 2 and 4 COPY sessions (the
//! `Replicator` itself, from its start, connections included, until PostgreSQL holds the
//! whole journal) beside a raw binary COPY of the very same rows, already in memory, into
//! the same partitioned and indexed table (22 monthly partitions, five indexes), in one
//! session, in transactions of the same size and in one single COPY. Server CPU is that of
//! every PostgreSQL process (backends, including those that ended, and background
//! workers), client CPU that of this process.
//!
//! Needs PostgreSQL (`VIGIE_BENCH_PG`, default `host=127.0.0.1 port=5432 user=postgres`);
//! creates and drops its own database. `VIGIE_BENCH_ROWS` sets the row count (default
//! 300,000), `VIGIE_BENCH_EXPLAIN=1` also prints the plans of the auditor's queries,
//! `VIGIE_BENCH_LOCALE` (such as `fr_FR.UTF-8`) creates the database with that locale
//! instead of the server's default.

use std::pin::pin;
use std::time::{Duration, Instant};

use store::journal::{Journal, JournalConfig, PendingEntry};
use store::pg::{
    self, BatchLimits, EntryRow, LedgerQuery, Replicator, ReplicatorConfig, YearMonth,
};
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

const ROUNDS: usize = 5;

/// The replicator's session counts measured.
const SESSIONS: [usize; 3] = [1, 2, 4];

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn admin(server: &str) -> Client {
    let url = format!("{server} dbname=postgres");
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL unreachable at `{url}`: {e}"));
    tokio::spawn(conn);
    client
}

async fn run() {
    let server = std::env::var("VIGIE_BENCH_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
    let rows: u64 = std::env::var("VIGIE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let name = format!("vigie_bench_{}", std::process::id());
    let locale = match std::env::var("VIGIE_BENCH_LOCALE") {
        Ok(l) => format!(" TEMPLATE template0 LOCALE '{}'", l.replace('\'', "''")),
        Err(_) => String::new(),
    };
    admin(&server)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}{locale}"))
        .await
        .expect("create the bench database");
    let url = format!("{server} dbname={name}");
    // A panic in the bench still drops its database.
    let result = tokio::spawn(async move { bench(&url, rows).await }).await;
    admin(&server)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the bench database");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn bench(url: &str, n: u64) {
    let (mut client, _conn) = pg::connect(url).await.expect("connect");
    pg::migrate(&mut client).await.expect("migrate");
    let collate: String = client
        .query_one(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .expect("the database's collation");
    println!("database collation (LC_COLLATE): {collate}");
    let now = OffsetDateTime::now_utc();
    let mut month = YearMonth::of(now);
    for _ in 0..18 {
        month = month.previous();
    }
    for _ in 0..22 {
        pg::schema::create_partition(&client, month)
            .await
            .expect("partition");
        month = month.next();
    }

    let dir = tempfile::tempdir().expect("temporary directory");
    let journal_dir = dir.path().join("journal");
    store::journal::init(&journal_dir).expect("init");
    let mut config = JournalConfig::new(&journal_dir);
    config.seal_interval = None;
    let (journal, _) = Journal::open(config).expect("open");
    let mut i = 0u64;
    while i < n {
        let end = (i + 4096).min(n);
        let batch = (i..end)
            .map(|k| PendingEntry {
                canonical: proto::canonical::encode(&vigie::sample_event(k as usize)),
                received_at: now,
            })
            .collect();
        journal.append(batch).expect("append");
        i = end;
    }
    let reader = journal.reader();
    let limits = BatchLimits::default();

    // The same rows, in memory, for the raw COPY.
    let mut batches: Vec<Vec<EntryRow>> = Vec::new();
    let mut next = 0;
    let reading = Instant::now();
    loop {
        let rows = pg::read_batch(&reader, next, limits).expect("read");
        let Some(last) = rows.last() else { break };
        next = last.seq + 1;
        batches.push(rows);
    }
    let read = reading.elapsed();
    let bytes: usize = batches.iter().flatten().map(|r| r.canonical.len()).sum();
    println!(
        "journal read and split into rows alone (one thread): {:.0} rows/s",
        n as f64 / read.as_secs_f64()
    );
    println!(
        "{n} rows, canonical entry mean {} bytes, batches of {} rows",
        bytes / n as usize,
        limits.max_rows
    );

    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0);
    let postmaster = parent_pid(&backend.to_string());
    // Methods: the replicator with each of SESSIONS, then raw batched, then raw single.
    let methods = SESSIONS.len() + 2;
    let (raw_batched_i, raw_single_i) = (SESSIONS.len(), SESSIONS.len() + 1);
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); methods];
    // (client, server) CPU seconds per method, over all rounds.
    let mut cpu = vec![(0.0f64, 0.0f64); methods];
    for round in 0..ROUNDS {
        // Alternate the order so drift does not favour one side.
        let mut order: Vec<usize> = (0..methods).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for which in order {
            reset(&client).await;
            let (client_cpu, server_cpu) = (cpu_seconds("self"), server_seconds(&postmaster));
            let started = Instant::now();
            if which == raw_batched_i {
                for batch in &batches {
                    let tx = client.transaction().await.expect("begin");
                    raw_copy(&tx, batch).await;
                    tx.commit().await.expect("commit");
                }
            } else if which == raw_single_i {
                let tx = client.transaction().await.expect("begin");
                raw_copy(&tx, batches.iter().flatten()).await;
                tx.commit().await.expect("commit");
            } else {
                replicate(url, &journal, SESSIONS[which], limits, n).await;
            }
            runs[which].push(started.elapsed());
            cpu[which].0 += cpu_seconds("self") - client_cpu;
            cpu[which].1 += server_seconds(&postmaster) - server_cpu;
        }
    }
    let rate = |d: &Duration| n as f64 / d.as_secs_f64();
    let medians: Vec<Duration> = runs
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.sort();
            v[v.len() / 2]
        })
        .collect();
    let raw = rate(&medians[raw_batched_i]);
    let per_row = |(c, s): (f64, f64)| {
        let rows = (n as usize * ROUNDS) as f64;
        format!(
            "client {:.1} µs, server {:.1} µs",
            c * 1e6 / rows,
            s * 1e6 / rows
        )
    };
    let names: Vec<String> = SESSIONS
        .iter()
        .map(|s| {
            format!(
                "replicator, {s} session{}: journal -> rows -> binary COPY + position, 10k-row transactions",
                if *s == 1 { "" } else { "s" }
            )
        })
        .chain([
            "raw binary COPY of the same rows, 10k-row transactions, one session".to_owned(),
            "raw binary COPY of the same rows, one transaction".to_owned(),
        ])
        .collect();
    println!();
    println!(
        "| method (median of {ROUNDS}, {n} rows) | rows/s | vs raw COPY, same batches | CPU per row |"
    );
    println!("|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let r = rate(&medians[i]);
        println!(
            "| {name} | {r:.0} | {:.0}% | {} |",
            100.0 * r / raw,
            per_row(cpu[i])
        );
    }
    println!("all runs, rows/s:");
    for (i, name) in names.iter().enumerate() {
        println!(
            "  {name}: {:?}",
            runs[i].iter().map(|d| rate(d) as u64).collect::<Vec<_>>()
        );
    }

    if std::env::var("VIGIE_BENCH_EXPLAIN").is_ok_and(|v| v == "1") {
        reset(&client).await;
        let mut first = YearMonth::of(now);
        for _ in 0..17 {
            first = first.previous();
        }
        let from = YearMonth::of(now).previous().previous();
        let spread = spread_rows(n, first.start(), now);
        for batch in spread.chunks(10_000) {
            let tx = client.transaction().await.expect("begin");
            raw_copy(&tx, batch).await;
            tx.commit().await.expect("commit");
        }
        explain(&client, from.start()).await;
    }
}

/// `n` rows received evenly between `from` and `to` (18 months of a hospital group's
/// traffic at a small scale), one declaration in 500, for the plans.
fn spread_rows(n: u64, from: OffsetDateTime, to: OffsetDateTime) -> Vec<EntryRow> {
    let step = (to - from) / n as f64;
    (0..n)
        .map(|k| {
            let at = from + step * k as f64;
            let entry = if k % 500 == 499 {
                proto::model::Entry::Declaration(proto::model::Declaration {
                    tenant: format!("chu-{:02}", k % 8),
                    filed_by: "rssi@chu.example".into(),
                    filed_at: at,
                    body: proto::model::DeclarationBody::VendorRegistered {
                        vendor: format!("vendor{:03}", k % 200),
                        name: "Vendor".into(),
                    },
                })
            } else {
                match vigie::sample_event(k as usize) {
                    proto::model::Entry::Event(mut e) => {
                        e.occurred_at = at;
                        e.received_at = at;
                        proto::model::Entry::Event(e)
                    }
                    other => other,
                }
            };
            let stored = store::journal::StoredEntry {
                link: proto::chain::Link {
                    seq: k,
                    epoch: 0,
                    mac: [0; 32],
                },
                received_at: at,
                canonical: proto::canonical::encode(&entry),
            };
            EntryRow::from_stored([1; 16], stored).expect("row")
        })
        .collect()
}

/// Runs a `Replicator` with `sessions` COPY sessions from its start until PostgreSQL
/// holds the journal's `n` entries, then stops it.
async fn replicate(url: &str, journal: &Journal, sessions: usize, limits: BatchLimits, n: u64) {
    let mut config = ReplicatorConfig::new(url);
    config.sessions = sessions;
    config.limits = limits;
    config.poll_interval = Duration::from_millis(1);
    let replicator = Replicator::new(config, journal.clone());
    let mut status = replicator.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(replicator.run(async move {
        let _ = stopped.await;
    }));
    status
        .wait_for(|s| s.position.is_some_and(|p| p.next_seq == n) || s.failures > 0)
        .await
        .expect("replicator status");
    let failures = status.borrow().failures;
    assert_eq!(failures, 0, "replication failed: {:?}", *status.borrow());
    let _ = stop.send(());
    running.await.expect("replicator task").expect("replicator");
}

/// The fields of `/proc/{pid}/stat` after the command name (which may hold spaces): the
/// state is field 0, the parent 1, utime 11, stime 12, cutime 13, cstime 14.
fn stat_fields(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().map(str::to_owned).collect()
}

fn ticks(fields: &[String], i: usize) -> f64 {
    fields
        .get(i)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let fields = stat_fields(pid);
    (ticks(&fields, 11) + ticks(&fields, 12)) / 100.0
}

/// The parent of process `pid`.
fn parent_pid(pid: &str) -> String {
    stat_fields(pid).get(1).cloned().unwrap_or_default()
}

/// CPU seconds used so far by the PostgreSQL server: its live children (backends and
/// background workers) and the postmaster itself, with its reaped children (ended
/// backends).
fn server_seconds(postmaster: &str) -> f64 {
    let own = stat_fields(postmaster);
    let mut total = (ticks(&own, 11) + ticks(&own, 12) + ticks(&own, 13) + ticks(&own, 14)) / 100.0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return total;
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let fields = stat_fields(pid);
        if fields.get(1).map(String::as_str) == Some(postmaster) {
            total += (ticks(&fields, 11) + ticks(&fields, 12)) / 100.0;
        }
    }
    total
}

async fn reset(client: &Client) {
    client
        .batch_execute("TRUNCATE entries, replication_positions; CHECKPOINT")
        .await
        .expect("truncate");
}

async fn raw_copy<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    rows: impl IntoIterator<Item = &'a EntryRow>,
) {
    let sink = tx.copy_in(pg::COPY_ENTRIES).await.expect("copy in");
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &pg::COPY_TYPES));
    for r in rows {
        let seq = r.seq as i64;
        let epoch = i64::from(r.epoch);
        let values: [&(dyn ToSql + Sync); 19] = [
            &&r.chain_id[..],
            &seq,
            &r.tenant,
            &r.part_at,
            &epoch,
            &&r.mac[..],
            &&r.digest[..],
            &r.entry_type,
            &r.kind,
            &r.source,
            &r.vendor,
            &r.person,
            &r.account,
            &r.target,
            &r.session_id,
            &r.source_addr,
            &r.occurred_at,
            &r.received_at,
            &&r.canonical[..],
        ];
        writer.as_mut().write(&values).await.expect("write row");
    }
    writer.as_mut().finish().await.expect("finish");
}

async fn explain(client: &Client, from: OffsetDateTime) {
    client
        .batch_execute("ANALYZE entries")
        .await
        .expect("analyze");
    let to = from + time::Duration::days(7);
    let tenant = "chu-05".to_owned();
    let vendor = "vendor005".to_owned();
    let person = "agent0005@vendor005.example".to_owned();
    let session = "203.0.113.6:40005".to_owned();
    // Declarations are every 500th row, for tenants chu-03 and chu-07.
    let declaring = "chu-03".to_owned();
    let counts = client
        .query_one("SELECT count(*), count(DISTINCT tenant), count(DISTINCT vendor), count(DISTINCT person), min(part_at)::text, max(part_at)::text FROM entries", &[])
        .await
        .expect("counts");
    println!(
        "\nplans over {} rows, {} tenants, {} vendors, {} persons, {} .. {}",
        counts.get::<_, i64>(0),
        counts.get::<_, i64>(1),
        counts.get::<_, i64>(2),
        counts.get::<_, i64>(3),
        counts.get::<_, String>(4),
        counts.get::<_, String>(5)
    );
    let queries: [(&str, LedgerQuery, Vec<&(dyn ToSql + Sync)>); 5] = [
        (
            "a vendor's journal over a week",
            LedgerQuery::VendorJournal,
            vec![&tenant, &vendor, &from, &to],
        ),
        (
            "a person's sessions over a week",
            LedgerQuery::PersonSessions,
            vec![&tenant, &person, &from, &to],
        ),
        (
            "a window's sessions (one week, one vendor)",
            LedgerQuery::WindowSessions,
            vec![&tenant, &vendor, &from, &to],
        ),
        (
            "the events of one session",
            LedgerQuery::SessionEvents,
            vec![&tenant, &session],
        ),
        (
            "declarations filed before an instant",
            LedgerQuery::Declarations,
            vec![&declaring, &to],
        ),
    ];
    for (title, q, params) in queries {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", q.sql());
        let rows = client.query(&sql, &params).await.expect("explain");
        println!("\n### {title}\n```sql\n{}\n```\n```text", q.sql());
        for r in rows {
            let line: String = r.get(0);
            println!("{line}");
        }
        println!("```");
    }
    let sql = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT seq, epoch, mac, canonical FROM entries \
               WHERE chain_id = $1 AND seq >= $2 ORDER BY seq";
    let chain: Vec<u8> = client
        .query_one("SELECT chain_id FROM entries LIMIT 1", &[])
        .await
        .expect("chain")
        .get(0);
    let rows = client.query(sql, &[&chain, &0i64]).await.expect("explain");
    println!("\n### a chain in seq order (verification)\n```text");
    for r in rows {
        let line: String = r.get(0);
        println!("{line}");
    }
    println!("```");
}
