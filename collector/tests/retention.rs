//! `collector retention`: the dry run changes nothing and says what would go; applying it
//! seals the cuts, drops PostgreSQL partitions and journal segments, and both ledgers still
//! verify. The PostgreSQL tests need a real server (see `store::pg::testing`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use proto::model::{ConnectionEvent, Entry, EventKind};
use store::journal::{Journal, JournalConfig, JournalReader, PendingEntry, VerifierKeys};
use store::pg::testing::TestDb;
use time::{Duration, OffsetDateTime};

fn event(i: u64, at: OffsetDateTime) -> PendingEntry {
    let entry = Entry::Event(ConnectionEvent {
        kind: EventKind::SessionStart,
        tenant: "CHU-X".into(),
        source: "bastion.chu-x.fr".into(),
        vendor: Some("medimaint".into()),
        person: Some(format!("agent{i}@medimaint.example")),
        account: Some("maint".into()),
        target: Some("pacs-1".into()),
        protocol: Some("ssh".into()),
        source_addr: None,
        session_id: Some(format!("s-{i}")),
        factors: Vec::new(),
        occurred_at: at,
        received_at: at,
        raw: format!("Accepted publickey for agent{i} {}", "x".repeat(200)).into_bytes(),
    });
    PendingEntry {
        canonical: proto::canonical::encode(&entry),
        received_at: at,
    }
}

/// A journal in small segments: 200 entries received 24 months ago, a seal, 100 entries
/// received now, a seal. Returns the verifier keys.
fn old_and_new_journal(dir: &Path) -> VerifierKeys {
    let keys = store::journal::init(dir).unwrap();
    let config = JournalConfig {
        segment_bytes: 16 << 10,
        max_entry_bytes: 2048,
        max_batch_bytes: 64 << 10,
        seal_interval: None,
        ..JournalConfig::new(dir)
    };
    let (journal, _) = Journal::open(config).unwrap();
    let now = OffsetDateTime::now_utc();
    let old = now - Duration::days(730);
    for chunk in (0..200).collect::<Vec<u64>>().chunks(20) {
        journal
            .append(chunk.iter().map(|&i| event(i, old)).collect())
            .unwrap();
    }
    journal.seal_now().unwrap();
    for chunk in (200..300).collect::<Vec<u64>>().chunks(20) {
        journal
            .append(chunk.iter().map(|&i| event(i, now)).collect())
            .unwrap();
    }
    journal.close().unwrap();
    keys
}

fn first_seqs(dir: &Path) -> Vec<u64> {
    JournalReader::open(dir)
        .unwrap()
        .segment_first_seqs()
        .unwrap()
}

fn collector(args: &[&str], data_dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("VIGIE_CONFIG")
        .env_remove("VIGIE_POSTGRES_URL")
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Verifies the journal in `dir` and returns the report.
fn verify_journal(dir: &Path, keys: &VerifierKeys) -> proto::verify::Report {
    let reader = JournalReader::open(dir).unwrap();
    let records = reader
        .scan_seq(0..=u64::MAX)
        .map(|e| proto::verify::Record::from(e.unwrap()));
    let report = proto::verify::verify_all(keys.verify_keys(), records);
    assert!(report.is_intact(), "journal: {report:?}");
    report
}

/// A configuration file with `[postgresql]` for the journal in `data`.
fn config_file(dir: &Path, data: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("collector.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            data_dir = "{}"
            [journal]
            segment_bytes = 2097152
            [relp_tls]
            listen = ["127.0.0.1:0"]
            [postgresql]
            url = "{url}"
            retention_months = 18
            [[sources]]
            name = "bastion.chu-x.fr"
            tenants = ["CHU-X"]
            "#,
            data.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn without_postgresql_segments_past_the_retention_go_behind_a_cut_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let keys = old_and_new_journal(&data);
    let before = first_seqs(&data);
    assert!(before.len() >= 4, "{before:?}");

    let stdout = stdout_ok(&collector(&["retention", "--dry-run"], &data));
    assert!(stdout.contains("postgresql: not configured"), "{stdout}");
    assert!(stdout.contains("segments would be dropped"), "{stdout}");
    assert!(stdout.contains("received before the horizon"), "{stdout}");
    assert_eq!(first_seqs(&data), before, "the dry run deletes nothing");

    let stdout = stdout_ok(&collector(&["retention"], &data));
    let after = first_seqs(&data);
    let first_kept = after[0];
    assert!(first_kept > 0 && first_kept <= 200, "{after:?}");
    assert!(
        stdout.contains(&format!("it now starts at seq {first_kept}")),
        "{stdout}"
    );
    let report = verify_journal(&data, &keys);
    assert_eq!(report.retention_cut, Some(first_kept));
    assert_eq!(report.first_seq, Some(first_kept));

    // Nothing more to drop: a second run changes nothing.
    let stdout = stdout_ok(&collector(&["retention"], &data));
    assert!(stdout.contains("no segment dropped"), "{stdout}");
}

#[test]
fn retention_below_the_charter_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = collector(
        &["retention", "--dry-run", "--retention-months", "17"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("charter 001 art. 41"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_the_dry_run_plans_and_applying_keeps_both_ledgers_verifiable() {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let keys = old_and_new_journal(&data);
    let mut client = db.client().await;
    store::pg::migrate(&mut client).await.unwrap();
    let reader = JournalReader::open(&data).unwrap();
    let copied = store::pg::catch_up(&mut client, &reader, store::pg::BatchLimits::default())
        .await
        .unwrap();
    assert_eq!(copied.rows, 302, "300 events, a seal, the closing seal");
    let partitions_before = store::pg::schema::partitions(&client).await.unwrap();
    let old_month = store::pg::YearMonth::of(OffsetDateTime::now_utc() - Duration::days(730));
    assert!(partitions_before.contains(&old_month));
    let before = first_seqs(&data);
    let config = config_file(tmp.path(), &data, &db.url);
    let config = config.to_str().unwrap();

    // The dry run: the old partition, the cut it needs (seq 200, not sealed yet), and the
    // journal segments PostgreSQL holds behind a seal.
    let stdout = stdout_ok(&collector(
        &["retention", "--dry-run", "--config", config],
        &data,
    ));
    assert!(
        stdout.contains(&format!(
            "partition {} would be dropped once every cut is sealed",
            old_month.partition_name()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("cut at seq 200 (200 rows would be dropped): seal needed"),
        "{stdout}"
    );
    assert!(stdout.contains("segments would be dropped"), "{stdout}");
    assert!(
        stdout.contains("replicated to PostgreSQL up to seq 302"),
        "{stdout}"
    );
    assert_eq!(first_seqs(&data), before, "the dry run deletes no segment");
    assert_eq!(
        store::pg::schema::partitions(&client).await.unwrap(),
        partitions_before,
        "the dry run drops no partition"
    );

    // Applying it.
    let stdout = stdout_ok(&collector(&["retention", "--config", config], &data));
    assert!(
        stdout.contains(&format!("partition {} dropped", old_month.partition_name())),
        "{stdout}"
    );
    assert!(
        stdout.contains("retention-cut seal written for seq 200"),
        "{stdout}"
    );
    let partitions = store::pg::schema::partitions(&client).await.unwrap();
    assert!(!partitions.contains(&old_month), "{partitions:?}");
    let after = first_seqs(&data);
    assert!(after[0] > 0 && after.len() < before.len(), "{after:?}");

    // Both ledgers verify from their cut; PostgreSQL holds the journal's whole tail.
    let report = verify_journal(&data, &keys);
    assert_eq!(report.first_seq, Some(after[0]));
    let journal_last = report.last_seq.unwrap();
    let pg = store::pg::verify_chain(&client, keys.chain_id, keys.verify_keys())
        .await
        .unwrap();
    assert!(pg.is_intact(), "postgresql: {pg:?}");
    assert_eq!(pg.first_seq, Some(200));
    assert_eq!(pg.last_seq, Some(journal_last));
}

#[test]
fn applying_is_refused_while_a_collector_holds_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    old_and_new_journal(&data);
    let (journal, _) = Journal::open(JournalConfig::new(&data)).unwrap();
    let out = collector(&["retention"], &data);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a collector is running"), "{stderr}");
    // The dry run reads beside it.
    let stdout = stdout_ok(&collector(&["retention", "--dry-run"], &data));
    assert!(stdout.contains("would be dropped"), "{stdout}");
    journal.close().unwrap();
}
