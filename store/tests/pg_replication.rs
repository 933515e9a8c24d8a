//! Replication of a large journal into a real PostgreSQL, then verification of the chain
//! from what PostgreSQL holds; the auditor's queries on the result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::time::Instant;

use pg_common::TestDb;
use proto::model::Entry;
use store::pg::{self, BatchLimits, LedgerQuery};
use time::{Duration, OffsetDateTime};

const ENTRIES: u64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_journal_replicates_and_verifies_from_postgresql() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), ENTRIES, 50_000)
    });
    let head = journal.head();
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    pg::ensure_partitions(&client, OffsetDateTime::now_utc(), 3)
        .await
        .unwrap();

    let started = Instant::now();
    let done = pg::catch_up(&mut client, &journal.reader(), BatchLimits::default())
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!(
        "replicated {} rows in {} batches in {took:?} ({:.0} rows/s)",
        done.rows,
        done.batches,
        done.rows as f64 / took.as_secs_f64()
    );
    assert_eq!(done.rows, head.next_seq);
    assert_eq!(done.position.next_seq, head.next_seq);
    assert_eq!(done.position.last_seal_seq, Some(head.next_seq - 1));

    // Nothing more to copy: a second pass is a no-op.
    let again = pg::catch_up(&mut client, &journal.reader(), BatchLimits::default())
        .await
        .unwrap();
    assert_eq!(again.rows, 0);

    let report = pg_common::assert_replicated_intact(&client, &keys, head.next_seq).await;
    assert_eq!(report.records, head.next_seq);
    assert!(report.macs_checked && report.signatures_checked);
    assert_eq!(report.unsealed_tail, None);
    assert!(report.good_seals >= 4, "{report:?}");

    // The chain is read in pages of 65,536 rows. A copy of the last row of the first page
    // under another tenant is a second row with that seq, first on the next page: it is
    // read, and verification says the seq is stored twice.
    let n = client
        .execute(
            "INSERT INTO entries SELECT chain_id, seq, 'zz-forged', part_at, epoch, mac, digest, \
             entry_type, kind, source, vendor, person, account, target, session_id, \
             source_addr, occurred_at, received_at, canonical FROM entries WHERE seq = 65535",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let report = pg::verify_chain(&client, keys.chain_id, keys.verify_keys())
        .await
        .unwrap();
    assert_eq!(report.records, head.next_seq + 1);
    assert_eq!(
        report.problems,
        vec![proto::verify::Problem::Duplicated { seq: 65535 }],
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_queries_events_declarations_and_seals() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 5_000, 0)
    });
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    pg::catch_up(
        &mut client,
        &journal.reader(),
        BatchLimits {
            max_rows: 700,
            max_bytes: 1 << 20,
        },
    )
    .await
    .unwrap();

    let now = OffsetDateTime::now_utc();
    let (from, to) = (now - Duration::hours(1), now + Duration::hours(1));
    let tenant = "chu-01".to_owned();
    let vendor = "vendor05".to_owned();
    let rows = pg::query(
        &client,
        LedgerQuery::VendorJournal,
        &[&tenant, &vendor, &from, &to],
    )
    .await
    .unwrap();
    // i % 4 == 1 and i % 20 == 5: every 20th entry.
    assert_eq!(rows.len(), 250);
    assert!(
        rows.iter()
            .all(|r| r.tenant == tenant && r.vendor.as_deref() == Some("vendor05"))
    );
    for r in &rows {
        let entry = proto::canonical::decode(&r.canonical).unwrap();
        assert_eq!(entry.vendor(), Some("vendor05"));
    }

    let person = "agent0005@vendor05.example".to_owned();
    let sessions = pg::query(
        &client,
        LedgerQuery::PersonSessions,
        &[&tenant, &person, &from, &to],
    )
    .await
    .unwrap();
    assert_eq!(sessions.len(), 10);
    assert!(sessions.iter().all(|r| r.entry_type == "event"));

    let windows = pg::query(
        &client,
        LedgerQuery::WindowSessions,
        &[&tenant, &vendor, &from, &to],
    )
    .await
    .unwrap();
    assert_eq!(windows.len(), 250);

    let session = "s-00000002".to_owned();
    let chu00 = "chu-00".to_owned();
    let one = pg::query(&client, LedgerQuery::SessionEvents, &[&chu00, &session])
        .await
        .unwrap();
    assert_eq!(
        one.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ["session_start"],
        "seq 4 starts s-00000002, seq 5 (its end) is chu-01's"
    );

    // Declarations: every 1000th entry (i = 999, 1999, …), i % 4 == 3.
    let chu03 = "chu-03".to_owned();
    let declarations = pg::query(&client, LedgerQuery::Declarations, &[&chu03, &to])
        .await
        .unwrap();
    assert_eq!(declarations.len(), 5);
    for d in &declarations {
        assert_eq!(d.kind, "departure");
        assert_eq!(d.source.as_deref(), Some("rssi@chu.example"));
        assert!(d.person.is_some());
        assert!(matches!(
            proto::canonical::decode(&d.canonical).unwrap(),
            Entry::Declaration(_)
        ));
    }

    // Seals: chain-level rows under the chain tenant.
    let seals: i64 = client
        .query_one(
            "SELECT count(*) FROM entries WHERE tenant = $1 AND entry_type = 'seal'",
            &[&pg::CHAIN_TENANT],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seals, 1);
    let report = pg::verify_chain(&client, keys.chain_id, keys.verify_keys())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_missing_what_postgresql_needs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    store::journal::init(&journal_dir).unwrap();
    let mut config = store::journal::JournalConfig::new(&journal_dir);
    config.seal_interval = None;
    config.max_entry_bytes = 4096;
    config.max_batch_bytes = 1 << 20;
    config.segment_bytes = 256 << 10;
    let (journal, _) = store::journal::Journal::open(config).unwrap();
    tokio::task::block_in_place(|| pg_common::append(&journal, 0, 3_000, 0));
    journal.close().unwrap();
    // The first segment is gone (deleted by hand, or PostgreSQL restored from an old copy).
    let first = journal_dir.join(format!("{:020}.seg", 0));
    std::fs::remove_file(&first).unwrap();
    let _ = std::fs::remove_file(journal_dir.join(format!("{:020}.idx", 0)));
    let reader = store::journal::JournalReader::open(&journal_dir).unwrap();
    let err = pg::read_batch(&reader, 0, BatchLimits::default()).unwrap_err();
    assert!(
        matches!(err, pg::PgError::JournalMissing { expected: 0, found, .. } if found > 0),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sessions_replicate_exactly_what_one_session_does() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    // Months past the partitions made ahead at start: created mid-run, each by the batch
    // that first reaches into it.
    let mut far = pg::YearMonth::of(now);
    for _ in 0..5 {
        far = far.next();
    }
    let (keys, journal) = tokio::task::block_in_place(|| {
        let (keys, journal) = pg_common::journal_with(&dir.path().join("journal"), 1_500, 700);
        pg_common::append_at(&journal, 1_500, 1_000, far.start() + Duration::days(3));
        pg_common::append_at(&journal, 2_500, 800, far.next().start() + Duration::days(1));
        journal.seal_now().unwrap();
        // Received earlier than the rows before them: carried forward into the later month.
        pg_common::append_at(&journal, 3_300, 300, far.start() + Duration::days(9));
        pg_common::append(&journal, 3_600, 500, 0);
        journal.seal_now().unwrap();
        (keys, journal)
    });
    let head = journal.head();

    let mut dumps = Vec::new();
    for sessions in [3, 1] {
        let db = TestDb::new().await;
        let config = pg_common::replicator_config(&db.url, sessions, 100);
        let status =
            pg_common::replicate_all(pg::Replicator::new(config, journal.clone()), &journal).await;
        assert_eq!(status.rows_copied, head.next_seq, "{sessions} sessions");
        assert_eq!(status.failures, 0, "{status:?}");
        let client = db.client().await;
        let pos = pg::position(&client, keys.chain_id).await.unwrap().unwrap();
        assert_eq!(pos.next_seq, head.next_seq);
        assert_eq!(pos.last_seal_seq, Some(head.next_seq - 1));
        assert_eq!(
            pos.last_part_at.map(pg::YearMonth::of),
            Some(far.next()),
            "part_at carried forward across batches"
        );
        pg_common::assert_exactly_once(&client, keys.chain_id, head.next_seq).await;
        for month in [far, far.next()] {
            let rows: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {}", month.partition_name()),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(rows > 0, "{} holds rows", month.partition_name());
        }
        let report = pg::verify_chain(&client, keys.chain_id, keys.verify_keys())
            .await
            .unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        dumps.push(pg_common::dump_entries(&client).await);
    }
    assert_eq!(dumps[0].len() as u64, head.next_seq);
    assert!(dumps[0] == dumps[1], "3 sessions wrote other rows than 1");
}
