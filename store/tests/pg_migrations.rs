//! Migrations against a real PostgreSQL: idempotent, transactional, refusing a newer
//! schema; partitions created ahead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use pg_common::TestDb;
use store::pg::{self, PgError, SCHEMA_VERSION, YearMonth};
use time::OffsetDateTime;

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    assert_eq!(pg::schema_version(&client).await.unwrap(), 0);
    assert!(matches!(
        pg::require_current(&client).await,
        Err(PgError::SchemaBehind { found: 0, .. })
    ));

    let first = pg::migrate(&mut client).await.unwrap();
    assert_eq!(first.from, 0);
    assert_eq!(first.to, SCHEMA_VERSION);
    assert_eq!(first.applied.len(), pg::MIGRATIONS.len());

    let again = pg::migrate(&mut client).await.unwrap();
    assert_eq!(again.from, SCHEMA_VERSION);
    assert_eq!(again.to, SCHEMA_VERSION);
    assert!(again.applied.is_empty());
    pg::require_current(&client).await.unwrap();

    // Two services starting together: the advisory lock serialises them.
    let (mut a, mut b) = (db.client().await, db.client().await);
    let (ra, rb) = tokio::join!(pg::migrate(&mut a), pg::migrate(&mut b));
    assert!(ra.unwrap().applied.is_empty() && rb.unwrap().applied.is_empty());

    let recorded: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, pg::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let err = pg::migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(err, PgError::SchemaTooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err}"
    );
    assert!(
        err.to_string().contains("newer than this release knows"),
        "{err}"
    );
    assert!(matches!(
        pg::require_current(&client).await,
        Err(PgError::SchemaTooNew { .. })
    ));
}

#[tokio::test]
async fn a_failed_migration_changes_nothing() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    // A table in the way of migration 1: the whole transaction rolls back.
    client
        .batch_execute("CREATE TABLE replication_positions (x int)")
        .await
        .unwrap();
    let err = pg::migrate(&mut client).await.unwrap_err();
    assert!(err.to_string().contains("apply migration"), "{err}");
    assert_eq!(pg::schema_version(&client).await.unwrap(), 0);
    let entries: bool = client
        .query_one("SELECT to_regclass('entries') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!entries, "migration 1 half applied");
}

#[tokio::test]
async fn partitions_are_created_ahead() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let created = pg::ensure_partitions(&client, now, 0).await.unwrap();
    let this = YearMonth::of(now);
    let expected = vec![
        this,
        this.next(),
        this.next().next(),
        this.next().next().next(),
    ];
    assert_eq!(
        created, expected,
        "the current month and at least three ahead"
    );
    assert!(
        pg::ensure_partitions(&client, now, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(pg::schema::partitions(&client).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicator_refuses_a_newer_schema() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_keys, journal) =
        tokio::task::block_in_place(|| pg_common::journal_with(&dir.path().join("journal"), 10, 0));
    let replicator = pg::Replicator::new(pg::ReplicatorConfig::new(db.url.clone()), journal);
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        replicator.run(std::future::pending()),
    )
    .await
    .expect("the replicator stops at once, it does not retry");
    assert!(
        matches!(outcome, Err(PgError::SchemaTooNew { .. })),
        "{outcome:?}"
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing written into a schema it does not know");
}

/// The first column of every row `sql` returns, as text.
async fn texts(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let rows = client.query(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The collation of each of `table`'s text columns, by name.
async fn text_collations(client: &tokio_postgres::Client, table: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT a.attname::text, c.collname::text FROM pg_attribute a \
             JOIN pg_collation c ON c.oid = a.attcollation \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.atttypid = 'text'::regtype ORDER BY a.attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_ledger_of_version_1_moves_to_byte_order_and_keeps_its_rows() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    // A database left at version 1, with a partition and rows in it.
    let v1 = &pg::MIGRATIONS[0];
    assert_eq!(v1.version, 1);
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    client.batch_execute(v1.sql).await.unwrap();
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES (1, $1)",
            &[&v1.name],
        )
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    pg::schema::create_partition(&client, YearMonth::of(now))
        .await
        .unwrap();
    let partition = YearMonth::of(now).partition_name();
    for (seq, vendor) in [(0_i64, "Zeta"), (1, "alpha"), (2, "Émile"), (3, "beta")] {
        client
            .execute(
                "INSERT INTO entries (chain_id, seq, tenant, part_at, epoch, mac, digest, \
                 entry_type, kind, vendor, person, session_id, occurred_at, received_at, \
                 canonical) VALUES (decode(repeat('ab', 16), 'hex'), $1, 'chu-01', $2, 0, \
                 decode(repeat('cd', 32), 'hex'), decode(repeat('ef', 32), 'hex'), 'event', \
                 'session_start', $3, 'p@' || $3, $4, $2, $2, '\\x00')",
                &[&seq, &now, &vendor, &format!("s-{seq}")],
            )
            .await
            .unwrap();
    }
    let default = text_collations(&client, "entries").await;
    assert!(default.iter().all(|(_, c)| c == "default"), "{default:?}");

    let report = pg::migrate(&mut client).await.unwrap();
    assert_eq!((report.from, report.to), (1, SCHEMA_VERSION));
    assert_eq!(report.applied, vec![2]);

    // Every text column but entry_type (a closed set under a CHECK) compares bytes, in
    // the parent and in the partition that existed before.
    for table in ["entries", partition.as_str()] {
        let collations = text_collations(&client, table).await;
        assert_eq!(collations.len(), 9, "{collations:?}");
        for (column, collation) in &collations {
            let want = if column == "entry_type" {
                "default"
            } else {
                "C"
            };
            assert_eq!(collation, want, "{table}.{column}");
        }
    }
    // The rows stayed, the rebuilt indexes are valid and find them, and the order of
    // identifiers is that of their bytes.
    let invalid: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index WHERE indrelid = $1::text::regclass \
             AND NOT (indisvalid AND indisready)",
            &[&partition],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0);
    client
        .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .await
        .unwrap();
    let vendors = texts(
        &client,
        "SELECT vendor FROM entries WHERE tenant = 'chu-01' ORDER BY vendor",
    )
    .await;
    assert_eq!(vendors, ["Zeta", "alpha", "beta", "Émile"]);
    let plan = texts(
        &client,
        "EXPLAIN SELECT seq FROM entries WHERE tenant = 'chu-01' AND person = 'p@beta'",
    )
    .await;
    assert!(
        plan.iter()
            .any(|l| l.contains(&format!("Index Scan using {partition}_tenant_person"))),
        "{plan:?}"
    );
    let found: i64 = client
        .query_one(
            "SELECT seq FROM entries WHERE tenant = 'chu-01' AND person = 'p@beta'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 3);
}
