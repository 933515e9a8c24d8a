//! Retention against a real PostgreSQL: the dry run, the refusal to drop before the
//! retention seal, the drop after it, and verification continuing from the cut.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use pg_common::{TestChain, TestDb};
use proto::model::SealKind;
use store::pg::{self, RetentionPolicy, YearMonth};
use time::{Duration, OffsetDateTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_cut_then_verify() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    let now = OffsetDateTime::now_utc();
    pg::ensure_partitions(&client, now, 3).await.unwrap();

    // 24 months of entries, 50 a month, with a checkpoint seal at the end of each month;
    // the rows land in partitions created on demand.
    let mut chain = TestChain::new([0x42; 16]);
    let this_month = YearMonth::of(now);
    let mut month = this_month;
    for _ in 0..24 {
        month = month.previous();
    }
    let mut i = 0u64;
    while month <= this_month {
        let start = month.start();
        let mut rows = Vec::new();
        for k in 0..50i64 {
            let at = (start + Duration::hours(k)).min(now);
            rows.push(if i % 25 == 24 {
                chain.entry(&pg_common::declaration(i, at), at)
            } else {
                chain.entry(&pg_common::event(i, at), at)
            });
            i += 1;
        }
        let sealed_at = (start + Duration::hours(50)).min(now);
        rows.push(chain.seal(SealKind::Checkpoint, sealed_at));
        pg::replicate_rows(&mut client, rows).await.unwrap();
        month = month.next();
    }
    let before = pg_common::count_entries(&client).await;
    assert_eq!(before, 25 * 51);

    // Below the charter: refused, with the reason.
    let err = RetentionPolicy::new(12).unwrap_err();
    assert!(
        err.to_string()
            .contains("charter 001 art. 41: at least 18 rolling months")
    );

    // Dry run: the six oldest months expire (24 back .. 19 back), one cut, no seal yet.
    let policy = RetentionPolicy::new(18).unwrap();
    let plan = pg::retention::plan(&client, policy, now).await.unwrap();
    assert_eq!(plan.expired.len(), 6, "{:?}", plan.expired);
    assert_eq!(plan.cuts.len(), 1);
    let cut = plan.cuts[0].clone();
    assert_eq!(cut.first_seq, 0);
    assert_eq!(cut.cut_seq, 6 * 51);
    assert_eq!(cut.rows, 6 * 51);
    assert_eq!(cut.sealed_by, None);
    assert_eq!(cut.blocked, None);
    assert!(!plan.ready());
    assert_eq!(
        pg_common::count_entries(&client).await,
        before,
        "a dry run changes nothing"
    );

    // Without the seal, apply drops nothing.
    let waited = pg::retention::apply(&mut client, policy, now)
        .await
        .unwrap();
    assert!(waited.dropped.is_empty());
    assert_eq!(pg_common::count_entries(&client).await, before);

    // The chain's writer writes the retention seal; it is replicated; then the drop.
    let seal = chain.seal(cut.seal_kind(), now);
    let seal_seq = seal.seq;
    let tail = vec![
        seal,
        chain.entry(&pg_common::event(i, now), now),
        chain.seal(SealKind::Checkpoint, now),
    ];
    pg::replicate_rows(&mut client, tail).await.unwrap();
    let ready = pg::retention::plan(&client, policy, now).await.unwrap();
    assert_eq!(ready.cuts[0].sealed_by, Some(seal_seq));
    assert!(ready.ready());
    let applied = pg::retention::apply(&mut client, policy, now)
        .await
        .unwrap();
    assert_eq!(applied.dropped, plan.expired);
    assert_eq!(pg_common::count_entries(&client).await, before + 3 - 6 * 51);
    let remaining = pg::schema::partitions(&client).await.unwrap();
    assert!(remaining.iter().all(|m| !plan.expired.contains(m)));
    let drops: i64 = client
        .query_one("SELECT count(*) FROM retention_drops", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(drops, 6);

    // Verification starts at the cut and still checks its first link.
    let report = pg::verify_chain(&client, chain.chain_id(), chain.keys())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.first_seq, Some(cut.cut_seq));
    assert_eq!(report.retention_cut, Some(cut.cut_seq));
    assert_eq!(report.unsealed_tail, None);

    // Nothing more expires until next month.
    let later = pg::retention::plan(&client, policy, now).await.unwrap();
    assert!(later.expired.is_empty() && later.cuts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seal_for_another_cut_does_not_count() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    pg::migrate(&mut client).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::days(31 * 20);
    let mut chain = TestChain::new([0x17; 16]);
    let mut rows: Vec<_> = (0..10)
        .map(|i| chain.entry(&pg_common::event(i, old), old))
        .collect();
    rows.extend((10..20).map(|i| chain.entry(&pg_common::event(i, now), now)));
    // A seal naming the wrong cut (one entry short).
    let wrong = SealKind::RetentionCut {
        cut_seq: 9,
        cut_prev_mac: rows[8].mac,
        cut_epoch: 0,
    };
    rows.push(chain.seal(wrong, now));
    pg::replicate_rows(&mut client, rows).await.unwrap();
    let policy = RetentionPolicy::new(18).unwrap();
    let plan = pg::retention::apply(&mut client, policy, now)
        .await
        .unwrap();
    assert_eq!(plan.cuts.len(), 1);
    assert_eq!(plan.cuts[0].cut_seq, 10);
    assert_eq!(plan.cuts[0].sealed_by, None);
    assert!(plan.dropped.is_empty());
    assert_eq!(pg_common::count_entries(&client).await, 21);
}
