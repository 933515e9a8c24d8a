//! A replicator that dies mid-batch, then restarts: PostgreSQL holds each entry exactly
//! once and the chain verifies.
//!
//! Three ways to die: the connection dropped between COPY and COMMIT (the backend is
//! terminated from another session), the replication future dropped at arbitrary points,
//! and the process killed with SIGKILL (this test binary re-invoked as a child that only
//! replicates).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pg_common::TestDb;
use store::journal::JournalReader;
use store::pg::{self, BatchLimits, PgError};

const CHILD_URL: &str = "VIGIE_PG_CHILD_URL";
const CHILD_JOURNAL: &str = "VIGIE_PG_CHILD_JOURNAL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_between_copy_and_commit() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 20_000, 5_000)
    });
    let head = journal.head();
    let reader = journal.reader();
    let limits = BatchLimits {
        max_rows: 3_000,
        max_bytes: 8 << 20,
    };
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    // A first batch commits.
    let rows = pg::read_batch(&reader, 0, limits).unwrap();
    pg::replicate_rows(&mut client, rows).await.unwrap();

    // The second is copied, then its connection is killed before COMMIT.
    let admin = db.client().await;
    let mut victim = db.client().await;
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let mut rows = pg::read_batch(&reader, 3_000, limits).unwrap();
    let tx = victim.transaction().await.unwrap();
    let pos = pg::copy_batch(&tx, &mut rows).await.unwrap();
    assert_eq!(pos.next_seq, 6_000, "copied, not committed");
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    eprintln!("commit after the backend was terminated: {err}");
    drop(victim);

    let after = pg::position(&client, keys.chain_id).await.unwrap().unwrap();
    assert_eq!(
        after.next_seq, 3_000,
        "the position did not move without its rows"
    );
    let visible: i64 = client
        .query_one("SELECT count(*) FROM entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 3_000);

    // A stale batch (one that does not start at the position) is refused.
    let mut stale = pg::read_batch(&reader, 0, limits).unwrap();
    let tx = client.transaction().await.unwrap();
    let err = pg::copy_batch(&tx, &mut stale).await.unwrap_err();
    assert!(
        matches!(
            err,
            PgError::PositionMismatch {
                pg_next_seq: 3_000,
                batch_first_seq: 0,
                ..
            }
        ),
        "{err}"
    );
    drop(tx);

    let done = pg::catch_up(&mut client, &reader, limits).await.unwrap();
    assert_eq!(done.position.next_seq, head.next_seq);
    pg_common::assert_replicated_intact(&client, &keys, head.next_seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_future_aborted_at_any_point() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 30_000, 4_000)
    });
    let head = journal.head();
    let reader = journal.reader();
    let limits = BatchLimits {
        max_rows: 2_500,
        max_bytes: 8 << 20,
    };
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    let mut aborted = 0;
    // Deadlines that fall inside reads, COPYs and commits alike.
    for ms in [3u64, 17, 29, 41, 53, 67, 79, 97, 113, 131] {
        let mut c = db.client().await;
        let attempt = tokio::time::timeout(
            Duration::from_millis(ms),
            pg::catch_up(&mut c, &reader, limits),
        )
        .await;
        if attempt.is_err() {
            aborted += 1;
        }
        // The session dies with its future: whatever was in flight is rolled back.
        drop(c);
    }
    assert!(aborted > 0, "no attempt was cut short");
    // A dropped session may still be committing what it sent: let the sessions end before
    // reading the position again (the replicator retries a mismatch instead).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if others == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{others} sessions linger");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = pg::catch_up(&mut client, &reader, limits).await.unwrap();
    assert_eq!(done.position.next_seq, head.next_seq);
    pg_common::assert_replicated_intact(&client, &keys, head.next_seq).await;
}

/// The child's body: replicates the journal named in the environment until it is done
/// (the parent kills it before). Without the environment (a normal test run) it has
/// nothing to do.
#[test]
fn child_replicator_process() {
    let (Ok(url), Ok(journal)) = (std::env::var(CHILD_URL), std::env::var(CHILD_JOURNAL)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let reader = JournalReader::open(&journal).unwrap();
        let (mut client, _conn) = pg::connect(&url).await.unwrap();
        let limits = BatchLimits {
            max_rows: 1_500,
            max_bytes: 8 << 20,
        };
        pg::catch_up(&mut client, &reader, limits).await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicator_process_killed_with_sigkill_then_restarted() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let (keys, journal) =
        tokio::task::block_in_place(|| pg_common::journal_with(&journal_dir, 60_000, 10_000));
    let head = journal.head();
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    for threshold in [5_000i64, 20_000, 40_000] {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_replicator_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, &db.url)
            .env(CHILD_JOURNAL, &journal_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Kill it past the threshold and inside a transaction (mid-batch).
            let row = client
                .query_one(
                    "SELECT coalesce((SELECT next_seq FROM replication_positions), 0), \
                     (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                      AND pid <> pg_backend_pid() AND xact_start IS NOT NULL)",
                    &[],
                )
                .await
                .unwrap();
            let (copied, in_transaction): (i64, i64) = (row.get(0), row.get(1));
            if copied >= threshold && in_transaction > 0 {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the child replicator exited before it was killed: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the child replicator made no progress"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed, not finished");
        kills += 1;
    }
    assert_eq!(kills, 3);
    let pos = pg::position(&client, keys.chain_id).await.unwrap().unwrap();
    assert!(
        pos.next_seq < head.next_seq,
        "the children were killed before the end"
    );
    // Whatever the kills interrupted is not visible: rows match the position.
    pg_common::assert_exactly_once(&client, keys.chain_id, pos.next_seq).await;

    let done = pg::catch_up(&mut client, &journal.reader(), BatchLimits::default())
        .await
        .unwrap();
    assert_eq!(done.position.next_seq, head.next_seq);
    pg_common::assert_replicated_intact(&client, &keys, head.next_seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_session_killed_mid_copy_leaves_a_contiguous_prefix() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 30_000, 10_000)
    });
    let head = journal.head();
    let config = pg_common::replicator_config(&db.url, 3, 500);
    let replicator = pg::Replicator::new(config, journal.clone());
    let mut status = replicator.status();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(replicator.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    pg_common::wait_for(&mut status, "the replicator connected", |s| s.connected).await;
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut thresholds = vec![3_000u64, 12_000, 21_000].into_iter().peekable();
    let mut kills = 0;
    let mut checks = 0u64;
    loop {
        // Whatever moment a reader looks, it sees 0..position, nothing more, nothing less.
        let next = pg_common::assert_contiguous_prefix(&client, keys.chain_id).await;
        checks += 1;
        if next == head.next_seq {
            break;
        }
        if thresholds.peek().is_some_and(|t| next >= *t) {
            // One worker's backend, in the middle of its COPY.
            let killed = client
                .query_opt(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND state = 'active' AND query LIKE 'COPY%' LIMIT 1",
                    &[],
                )
                .await
                .unwrap();
            if killed.is_some() {
                kills += 1;
                thresholds.next();
            }
        }
        assert!(Instant::now() < deadline, "no end: {:?}", *status.borrow());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(kills, 3, "every kill found a COPY in flight");
    let done = status.borrow_and_update().clone();
    assert!(done.failures >= 1, "{done:?}");
    eprintln!(
        "{kills} workers killed, {} failures, {checks} snapshots checked",
        done.failures
    );
    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    pg_common::assert_replicated_intact(&client, &keys, head.next_seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_turn_commit_in_order_and_refuse_a_moved_position() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 1_000, 0)
    });
    let reader = journal.reader();
    let limits = BatchLimits {
        max_rows: 100,
        max_bytes: 8 << 20,
    };
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    pg::ensure_partitions(&client, time::OffsetDateTime::now_utc(), 3)
        .await
        .unwrap();
    let rows = pg::read_batch(&reader, 0, limits).unwrap();
    let start = pg::replicate_rows(&mut client, rows).await.unwrap();
    assert_eq!(start.next_seq, 100);
    let plan = |from: pg::Position| {
        let rows = pg::read_batch(&reader, from.next_seq, limits).unwrap();
        pg::plan_batch(from, rows).unwrap()
    };
    let b1 = plan(start);
    let b2 = plan(b1.to());

    // Someone else moved the position: the batch fails and leaves nothing.
    client
        .execute("UPDATE replication_positions SET next_seq = 150", &[])
        .await
        .unwrap();
    let mut other = db.client().await;
    let err = pg::copy_in_turn(&mut other, &b1, pg::Turns::default().turn())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PgError::PositionMismatch {
                pg_next_seq: 150,
                batch_first_seq: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(
        pg_common::count_entries(&client).await,
        100,
        "nothing of the batch committed"
    );
    client
        .execute("UPDATE replication_positions SET next_seq = 100", &[])
        .await
        .unwrap();

    // The batch before failed (its turn dropped unused): the next fails, it does not wait.
    let mut turns = pg::Turns::default();
    drop(turns.turn());
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        pg::copy_in_turn(&mut other, &b2, turns.turn()),
    )
    .await
    .expect("no wait for a batch that failed")
    .unwrap_err();
    assert!(
        matches!(
            err,
            PgError::PositionMismatch {
                pg_next_seq: 100,
                batch_first_seq: 200,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(pg_common::count_entries(&client).await, 100);

    // The second batch, started first, waits for the first before committing.
    let mut turns = pg::Turns::default();
    let (t1, t2) = (turns.turn(), turns.turn());
    let mut second_client = db.client().await;
    let second = tokio::spawn(async move {
        let pos = pg::copy_in_turn(&mut second_client, &b2, t2).await;
        drop(second_client);
        pos
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second batch waits for the first"
    );
    assert_eq!(pg_common::count_entries(&client).await, 100);
    let first = pg::copy_in_turn(&mut other, &b1, t1).await.unwrap();
    assert_eq!(first.next_seq, 200);
    assert_eq!(second.await.unwrap().unwrap().next_seq, 300);
    assert_eq!(pg_common::count_entries(&client).await, 300);
    pg_common::assert_exactly_once(&client, keys.chain_id, 300).await;
}
