//! What the PostgreSQL tests share: a throwaway database per test, journals and chains of
//! realistic entries.
//!
//! Each test creates its own database with a random name and drops it at the end, so
//! tests never share state and run in parallel. PostgreSQL must be reachable (by default
//! `host=127.0.0.1 port=5432 user=postgres`, or `VIGIE_TEST_PG`): when it is not, the test
//! fails and says so; it never skips.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Instant;

use proto::chain::{ChainHead, ChainWriter, EpochKey, SealSigner};
use proto::model::{
    AuthFactor, ConnectionEvent, Declaration, DeclarationBody, Entry, EventKind, SealKind,
};
use store::journal::{Journal, JournalConfig, PendingEntry, StoredEntry, VerifierKeys};
use store::pg::{BatchLimits, EntryRow, ReplicationStatus, Replicator, ReplicatorConfig};
use time::{Duration, OffsetDateTime};

pub use store::pg::testing::TestDb;
use tokio::sync::watch;
use tokio_postgres::Client;

/// A realistic connection event (about 300 bytes canonical), varied by `i`.
pub fn event(i: u64, received_at: OffsetDateTime) -> Entry {
    let person = format!("agent{:04}@vendor{:02}.example", i % 500, i % 20);
    let addr = Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1);
    Entry::Event(ConnectionEvent {
        kind: if i.is_multiple_of(2) {
            EventKind::SessionStart
        } else {
            EventKind::SessionEnd
        },
        tenant: format!("chu-{:02}", i % 4),
        source: "bastion-01".into(),
        vendor: Some(format!("vendor{:02}", i % 20)),
        person: Some(person.clone()),
        account: Some("maint".into()),
        target: Some(format!("srv-pacs-{:02}", i % 40)),
        protocol: Some("ssh".into()),
        source_addr: Some(IpAddr::V4(addr)),
        session_id: Some(format!("s-{:08}", i / 2)),
        factors: vec![AuthFactor::PublicKey, AuthFactor::Otp],
        occurred_at: received_at - Duration::milliseconds(15),
        received_at,
        raw: format!(
            "<38>1 2026-05-28T20:26:40+02:00 bastion-01 sshd 4242 - - Accepted publickey for \
             {person} from {addr} port {} ssh2: ED25519 SHA256:3q2+7wXk0aT4b9iEo1sJtQ",
            40000 + i % 20000
        )
        .into_bytes(),
    })
}

/// A departure declaration, varied by `i`.
pub fn declaration(i: u64, filed_at: OffsetDateTime) -> Entry {
    Entry::Declaration(Declaration {
        tenant: format!("chu-{:02}", i % 4),
        filed_by: "rssi@chu.example".into(),
        filed_at,
        body: DeclarationBody::Departure {
            vendor: format!("vendor{:02}", i % 20),
            person: format!("agent{:04}@vendor{:02}.example", i % 500, i % 20),
            effective_at: filed_at,
        },
    })
}

/// A new journal in `dir` holding `n` entries (every 1000th a declaration), sealed at the
/// end; returns the verifier keys and the open journal.
pub fn journal_with(dir: &Path, n: u64, seal_interval_entries: u64) -> (VerifierKeys, Journal) {
    let keys = store::journal::init(dir).unwrap();
    let mut config = JournalConfig::new(dir);
    config.seal_interval = None;
    config.segment_bytes = 16 << 20;
    let (journal, _) = Journal::open(config).unwrap();
    append(&journal, 0, n, seal_interval_entries);
    journal.seal_now().unwrap();
    (keys, journal)
}

/// Appends entries `from..from + n` (by their variation index) in batches, with a seal
/// every `seal_every` entries.
pub fn append(journal: &Journal, from: u64, n: u64, seal_every: u64) {
    let now = OffsetDateTime::now_utc();
    let mut i = from;
    while i < from + n {
        let end = (i + 2000).min(from + n);
        let batch: Vec<PendingEntry> = (i..end)
            .map(|k| {
                let entry = if k % 1000 == 999 {
                    declaration(k, now)
                } else {
                    event(k, now)
                };
                PendingEntry {
                    canonical: proto::canonical::encode(&entry),
                    received_at: now,
                }
            })
            .collect();
        journal.append(batch).unwrap();
        if seal_every > 0 && end / seal_every > i / seal_every {
            journal.seal_now().unwrap();
        }
        i = end;
    }
}

/// A chain written without a journal (for rows with chosen `received_at` and retention
/// seals): the test plays the chain's writer.
pub struct TestChain {
    pub writer: ChainWriter,
    pub k0: [u8; 32],
    pub public_key: [u8; 32],
}

impl TestChain {
    pub fn new(chain_id: [u8; 16]) -> Self {
        let k0 = [7u8; 32];
        let signer = SealSigner::from_seed([9u8; 32]);
        let public_key = signer.public_key();
        let writer =
            ChainWriter::new(ChainHead::genesis(chain_id), EpochKey::new(0, k0), signer).unwrap();
        TestChain {
            writer,
            k0,
            public_key,
        }
    }

    pub fn chain_id(&self) -> [u8; 16] {
        self.writer.head().chain_id
    }

    pub fn keys(&self) -> proto::verify::VerifyKeys {
        proto::verify::VerifyKeys {
            k0: Some(self.k0),
            public_key: Some(self.public_key),
            chain_id: Some(self.chain_id()),
        }
    }

    /// Places an entry received at `at` and returns its row.
    pub fn entry(&mut self, entry: &Entry, at: OffsetDateTime) -> EntryRow {
        let canonical = proto::canonical::encode(entry);
        let link = self.writer.append(&canonical);
        self.row(link, at, canonical)
    }

    /// Places a seal made at `at` and returns its row.
    pub fn seal(&mut self, kind: SealKind, at: OffsetDateTime) -> EntryRow {
        let (canonical, link) = self.writer.seal(kind, at);
        self.row(link, at, canonical)
    }

    fn row(&self, link: proto::chain::Link, at: OffsetDateTime, canonical: Vec<u8>) -> EntryRow {
        EntryRow::from_stored(
            self.chain_id(),
            StoredEntry {
                link,
                received_at: at,
                canonical,
            },
        )
        .unwrap()
    }
}

/// Checks that PostgreSQL holds each seq of the chain exactly once, `0..next_seq`.
pub async fn assert_exactly_once(client: &Client, chain_id: [u8; 16], next_seq: u64) {
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT seq), coalesce(min(seq), -1), coalesce(max(seq), -1) \
             FROM entries WHERE chain_id = $1",
            &[&&chain_id[..]],
        )
        .await
        .unwrap();
    let (count, distinct, min, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let n = i64::try_from(next_seq).unwrap();
    assert_eq!(
        (count, distinct, min, max),
        (n, n, 0, n - 1),
        "rows (count, distinct seqs, min, max) of the chain"
    );
}

/// PostgreSQL holds seqs `0..next_seq` of the chain exactly once, and the chain verifies
/// from PostgreSQL with its keys; returns the verification report.
pub async fn assert_replicated_intact(
    client: &Client,
    keys: &VerifierKeys,
    next_seq: u64,
) -> proto::verify::Report {
    assert_exactly_once(client, keys.chain_id, next_seq).await;
    let report = store::pg::verify_chain(client, keys.chain_id, keys.verify_keys())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    report
}

/// Rows in `entries`, all chains.
pub async fn count_entries(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM entries", &[])
        .await
        .unwrap()
        .get(0)
}

/// Appends events `from..from + n` (by their variation index), all received at `at`.
pub fn append_at(journal: &Journal, from: u64, n: u64, at: OffsetDateTime) {
    let batch: Vec<PendingEntry> = (from..from + n)
        .map(|k| PendingEntry {
            canonical: proto::canonical::encode(&event(k, at)),
            received_at: at,
        })
        .collect();
    journal.append(batch).unwrap();
}

/// Waits (at most 60 s) until the replicator's status satisfies `until`.
pub async fn wait_for(
    status: &mut watch::Receiver<ReplicationStatus>,
    what: &str,
    until: impl Fn(&ReplicationStatus) -> bool,
) -> ReplicationStatus {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        {
            let s = status.borrow_and_update();
            if until(&s) {
                return s.clone();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}: {:?}",
            *status.borrow()
        );
        let _ = tokio::time::timeout(left, status.changed()).await;
    }
}

/// A replicator configuration for tests: `sessions` sessions, batches of `max_rows`,
/// quick retries and polls.
pub fn replicator_config(url: &str, sessions: usize, max_rows: usize) -> ReplicatorConfig {
    let mut config = ReplicatorConfig::new(url);
    config.sessions = sessions;
    config.limits = BatchLimits {
        max_rows,
        max_bytes: 8 << 20,
    };
    config.retry_initial = std::time::Duration::from_millis(20);
    config.retry_max = std::time::Duration::from_millis(200);
    config.poll_interval = std::time::Duration::from_millis(10);
    config
}

/// Runs `replicator` until PostgreSQL holds the journal up to its head, then stops it;
/// returns its last status.
pub async fn replicate_all(replicator: Replicator, journal: &Journal) -> ReplicationStatus {
    let head = journal.head().next_seq;
    let mut status = replicator.status();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let running = tokio::spawn(replicator.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let done = wait_for(&mut status, "the journal's head in PostgreSQL", |s| {
        s.position.is_some_and(|p| p.next_seq == head)
    })
    .await;
    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    done
}

/// Checks, in one snapshot, that PostgreSQL holds exactly seqs `0..next_seq` of the chain,
/// where `next_seq` is its position (0 without one): no hole, nothing past the position,
/// nothing twice. Returns `next_seq`.
pub async fn assert_contiguous_prefix(client: &Client, chain_id: [u8; 16]) -> u64 {
    let row = client
        .query_one(
            "SELECT coalesce((SELECT next_seq FROM replication_positions WHERE chain_id = $1), 0), \
             count(*), count(DISTINCT seq), coalesce(max(seq), -1) \
             FROM entries WHERE chain_id = $1",
            &[&&chain_id[..]],
        )
        .await
        .unwrap();
    let (next, count, distinct, max): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (count, distinct, max),
        (next, next, next - 1),
        "rows (count, distinct seqs, max seq) against the position {next}"
    );
    u64::try_from(next).unwrap()
}

/// Every row of `entries`, as text, in chain and seq order.
pub async fn dump_entries(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT e::text FROM entries e ORDER BY chain_id, seq, tenant",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}
