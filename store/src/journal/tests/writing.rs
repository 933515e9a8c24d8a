//! The writer: concurrent appenders, seals, poisoning, refusals.

use std::sync::mpsc;
use std::time::Duration as StdDuration;

use super::super::{Journal, JournalError, init};
use super::*;

#[test]
fn concurrent_appenders_get_contiguous_links() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    let threads = 8;
    let per_thread = 60;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let id = t * 1000 + i;
                        let entry = pending(id, base_time());
                        let canonical = entry.canonical.clone();
                        let links = journal.append(vec![entry]).unwrap();
                        assert_eq!(links.len(), 1);
                        (links[0], canonical)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        let mine = h.join().unwrap();
        assert!(
            mine.windows(2).all(|w| w[0].0.seq < w[1].0.seq),
            "one appender's links in order"
        );
        all.extend(mine);
    }
    all.sort_by_key(|(link, _)| link.seq);
    let seqs: Vec<u64> = all.iter().map(|(l, _)| l.seq).collect();
    assert_eq!(seqs, (0..threads * per_thread).collect::<Vec<_>>());
    assert_eq!(journal.head().next_seq, threads * per_thread);
    journal.close().unwrap();
    let stored = read_all(dir.path()).unwrap();
    assert_eq!(
        stored.len() as u64,
        threads * per_thread + 1,
        "entries and the closing seal"
    );
    for ((link, canonical), entry) in all.iter().zip(&stored) {
        assert_eq!((&entry.link, &entry.canonical), (link, canonical));
    }
    assert!(stored.last().unwrap().is_seal());
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn submit_answers_after_durability_in_order() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        journal
            .submit(
                vec![pending(i, base_time()), pending(i, base_time())],
                move |r| {
                    tx.send(r.unwrap()).unwrap();
                },
            )
            .unwrap();
    }
    drop(tx);
    let answers: Vec<_> = rx.iter().collect();
    assert_eq!(answers.len(), 50);
    for (i, links) in answers.iter().enumerate() {
        assert_eq!(
            links.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![2 * i as u64, 2 * i as u64 + 1]
        );
    }
    journal.close().unwrap();
}

#[test]
fn a_failed_fsync_poisons_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = JournalConfig {
        fail_sync_at: Some(2),
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config.clone()).unwrap();
    journal.append(vec![pending(0, base_time())]).unwrap();
    journal.append(vec![pending(1, base_time())]).unwrap();
    let err = journal.append(vec![pending(2, base_time())]).unwrap_err();
    let JournalError::Poisoned(cause) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            **cause,
            JournalError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{cause:?}"
    );
    // Every later request fails, without being retried.
    assert!(matches!(
        journal.append(vec![pending(3, base_time())]),
        Err(JournalError::Poisoned(_))
    ));
    assert!(matches!(
        journal.submit(vec![pending(4, base_time())], |_| {}),
        Err(JournalError::Poisoned(_))
    ));
    assert!(matches!(journal.seal_now(), Err(JournalError::Poisoned(_))));
    assert_eq!(
        journal.head().next_seq,
        2,
        "the durable head stays before the failure"
    );
    assert!(matches!(journal.close(), Err(JournalError::Poisoned(_))));
    // Recovery keeps what reached the disk (at least everything acknowledged).
    let (journal, recovery) = Journal::open(JournalConfig {
        fail_sync_at: None,
        ..config
    })
    .unwrap();
    assert!(recovery.head.next_seq >= 2);
    journal.append(vec![pending(5, base_time())]).unwrap();
    journal.close().unwrap();
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn pending_requests_of_a_poisoned_batch_all_fail() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let config = JournalConfig {
        fail_sync_at: Some(0),
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        if journal
            .submit_returning(
                vec![pending(i, base_time()), pending(i, base_time())],
                move |r, spent| tx.send((r.is_err(), spent.len())).unwrap(),
            )
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let answers: Vec<(bool, usize)> = rx.iter().collect();
    assert!(!answers.is_empty());
    assert!(
        answers.iter().all(|&(failed, _)| failed),
        "no request acknowledged after the failure"
    );
    assert!(
        answers.iter().all(|&(_, entries)| entries == 2),
        "a failed batch's entries come back too: {answers:?}"
    );
}

#[test]
fn submit_returning_hands_back_each_batch_with_its_links() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    let (tx, rx) = mpsc::channel();
    for size in [1_u64, 3, 0, 2] {
        let tx = tx.clone();
        let batch = (0..size).map(|i| pending(i, base_time())).collect();
        journal
            .submit_returning(batch, move |r, spent| {
                let seqs: Vec<u64> = r.unwrap().iter().map(|l| l.seq).collect();
                tx.send((seqs, spent.len())).unwrap();
            })
            .unwrap();
    }
    drop(tx);
    // The empty batch is answered by submit_returning itself, maybe before the others.
    let mut answers: Vec<_> = rx.iter().collect();
    answers.sort();
    assert_eq!(
        answers,
        vec![
            (vec![], 0),
            (vec![0], 1),
            (vec![1, 2, 3], 3),
            (vec![4, 5], 2)
        ]
    );
    journal.close().unwrap();
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn periodic_seals_only_when_entries_came() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = JournalConfig {
        seal_interval: Some(StdDuration::from_millis(50)),
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config).unwrap();
    journal.append(vec![pending(0, base_time())]).unwrap();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    while journal.head().epoch == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no seal after the interval"
        );
        std::thread::sleep(StdDuration::from_millis(10));
    }
    let head = journal.head();
    assert_eq!((head.next_seq, head.epoch), (2, 1));
    // Idle: no more seals.
    std::thread::sleep(StdDuration::from_millis(200));
    assert_eq!(journal.head(), head);
    drop(journal);
    let stored = read_all(dir.path()).unwrap();
    assert!(stored[1].is_seal());
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn one_writer_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    assert!(matches!(
        Journal::open(small_config(dir.path(), 16 << 10)),
        Err(JournalError::Locked { .. })
    ));
    journal.close().unwrap();
    let (journal, recovery) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    assert_eq!(
        (recovery.head.next_seq, recovery.head.epoch),
        (1, 1),
        "the closing seal"
    );
    drop(journal);
}

#[test]
fn refused_entries_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    let seal = proto::canonical::encode(&proto::model::Entry::Seal(proto::model::Seal {
        kind: proto::model::SealKind::Checkpoint,
        chain_id: journal.chain_id(),
        epoch: 0,
        through_seq: 0,
        head_mac: [0; 32],
        sealed_at: base_time(),
        signature: [0; 64],
    }));
    let cases = [
        (seal, base_time()),
        (vec![1], base_time()),
        (vec![9, 1, 0], base_time()),
        (event_bytes(0, 600, base_time()), base_time()),
        (
            event_bytes(0, 0, base_time()),
            time::macros::datetime!(2300-01-01 0:00 UTC),
        ),
    ];
    for (canonical, received_at) in cases {
        let batch = vec![
            pending(1, base_time()),
            PendingEntry {
                canonical,
                received_at,
            },
        ];
        match journal.append(batch) {
            Err(JournalError::InvalidEntry { index: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    let too_many = (0..5000).map(|i| pending(i, base_time())).collect();
    assert!(matches!(
        journal.append(too_many),
        Err(JournalError::BatchTooLarge { .. })
    ));
    assert_eq!(journal.append(Vec::new()).unwrap(), vec![]);
    assert_eq!(journal.head().next_seq, 0);
    journal.close().unwrap();
}

#[test]
fn closed_handles_refuse_work() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    let other = journal.clone();
    journal.close().unwrap();
    assert!(matches!(
        other.append(vec![pending(0, base_time())]),
        Err(JournalError::Closed)
    ));
    assert!(matches!(other.seal_now(), Err(JournalError::Closed)));
    assert!(matches!(other.close(), Err(JournalError::Closed)));
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Journal>();
    send_sync::<JournalReader>();
}

#[test]
fn the_commit_observer_sees_every_record_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let entries = Arc::new(AtomicUsize::new(0));
    let commits = Arc::new(AtomicUsize::new(0));
    let config = JournalConfig {
        on_commit: Some(super::super::CommitObserver::new({
            let (entries, commits) = (entries.clone(), commits.clone());
            move |report| {
                assert!(report.bytes > report.entries * 52, "{report:?}");
                entries.fetch_add(report.entries, Ordering::Relaxed);
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })),
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config).unwrap();
    for batch in 0..5u64 {
        let batch: Vec<_> = (0..10)
            .map(|i| pending(batch * 10 + i, base_time()))
            .collect();
        journal.append(batch).unwrap();
    }
    journal.close().unwrap();
    // 50 entries and the closing seal, over at least one commit per append.
    assert_eq!(entries.load(Ordering::Relaxed), 51);
    assert!(commits.load(Ordering::Relaxed) >= 5);
}

#[test]
fn direct_and_page_cache_writes_store_the_same_records() {
    // Direct writes; page cache writes; direct writes refused (EINVAL) from the 20th on,
    // in the middle of a segment, as a filesystem with larger blocks would.
    for (direct_writes, refuse_direct_write_at) in [(true, None), (false, None), (true, Some(20))] {
        let dir = tempfile::tempdir().unwrap();
        let keys = init(dir.path()).unwrap();
        let config = JournalConfig {
            direct_writes,
            refuse_direct_write_at,
            ..small_config(dir.path(), 16 << 10)
        };
        let mut appended = Vec::new();
        // Two sessions, each over several segments; the second starts in the middle of
        // the last page the first wrote.
        for session in 0..2u64 {
            let (journal, _) = Journal::open(config.clone()).unwrap();
            for i in 0..150 {
                let batch: Vec<PendingEntry> = (0..1 + i % 3)
                    .map(|k| pending(session * 10_000 + i * 10 + k, base_time()))
                    .collect();
                appended.extend(batch.iter().map(|e| e.canonical.clone()));
                journal.append(batch).unwrap();
            }
            journal.close().unwrap();
        }
        let stored: Vec<Vec<u8>> = read_all(dir.path())
            .unwrap()
            .into_iter()
            .filter(|e| !e.is_seal())
            .map(|e| e.canonical)
            .collect();
        assert_eq!(
            stored, appended,
            "direct_writes = {direct_writes}, refused at {refuse_direct_write_at:?}"
        );
        assert!(
            files::list_segments(dir.path()).unwrap().len() > 3,
            "the test must roll segments"
        );
        assert_chain_intact(dir.path(), &keys);
    }
}

#[test]
fn batches_in_flight_across_rolls_are_answered_in_order_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = JournalConfig {
        fail_sync_at: Some(40),
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config.clone()).unwrap();
    // Queued without waiting: commits reach the syncer while the writer goes on, across
    // segment rolls, until the 41st fdatasync fails.
    let (tx, rx) = mpsc::channel();
    for i in 0..3000_u64 {
        let tx = tx.clone();
        let batch = vec![pending(2 * i, base_time()), pending(2 * i + 1, base_time())];
        let canonical: Vec<Vec<u8>> = batch.iter().map(|e| e.canonical.clone()).collect();
        if journal
            .submit(batch, move |r| tx.send((i, r, canonical)).unwrap())
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let answers: Vec<_> = rx.iter().collect();
    assert!(
        answers.windows(2).all(|w| w[0].0 < w[1].0),
        "answered in the order submitted"
    );
    let failed = answers
        .iter()
        .position(|(_, r, _)| r.is_err())
        .expect("the injected failure is reached");
    assert!(failed > 0, "batches were acknowledged before the failure");
    assert!(
        answers[failed..]
            .iter()
            .all(|(_, r, _)| matches!(r, Err(JournalError::Poisoned(_)))),
        "nothing acknowledged after the failure"
    );
    let acked: Vec<_> = answers[..failed]
        .iter()
        .flat_map(|(_, r, canonical)| r.as_ref().unwrap().iter().copied().zip(canonical.clone()))
        .collect();
    assert!(
        acked
            .iter()
            .enumerate()
            .all(|(n, (link, _))| link.seq == n as u64),
        "acknowledged links are contiguous from 0"
    );
    assert!(matches!(journal.close(), Err(JournalError::Poisoned(_))));
    // Everything acknowledged is there after a reopen, and the chain is intact.
    let (journal, _) = Journal::open(JournalConfig {
        fail_sync_at: None,
        ..config
    })
    .unwrap();
    journal.close().unwrap();
    let stored = read_all(dir.path()).unwrap();
    assert!(
        stored.len() > acked.len(),
        "{} entries and a closing seal",
        acked.len()
    );
    for ((link, canonical), entry) in acked.iter().zip(&stored) {
        assert_eq!((&entry.link, &entry.canonical), (link, canonical));
    }
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn segments_only_reserved_hold_and_recover_like_zeroed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = JournalConfig {
        zero_segments: false,
        ..small_config(dir.path(), 16 << 10)
    };
    let (journal, _) = Journal::open(config.clone()).unwrap();
    for i in 0..100 {
        journal
            .append((0..3).map(|k| pending(3 * i + k, base_time())).collect())
            .unwrap();
    }
    // Dropped without closing: no closing seal; recovery finds the end of the data in
    // blocks that were reserved, never written.
    drop(journal);
    let (journal, recovery) = Journal::open(config).unwrap();
    assert_eq!(
        recovery.head.next_seq, 300,
        "every acknowledged entry is there"
    );
    journal.append(vec![pending(300, base_time())]).unwrap();
    journal.close().unwrap();
    let stored = read_all(dir.path()).unwrap();
    assert_eq!(stored.len(), 302, "301 entries and the closing seal");
    let segments = segment_files(dir.path()).len();
    assert!(
        segments > 3,
        "the entries span several segments: {segments}"
    );
    assert_chain_intact(dir.path(), &keys);
}

#[test]
fn a_writer_does_not_wait_for_zeroes_that_fell_behind() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    // The spare's zeroes stop after their first 256 KiB chunk until the writer needs it.
    let config = JournalConfig {
        hold_zeroes: true,
        ..small_config(dir.path(), 1 << 20)
    };
    let (journal, _) = Journal::open(config.clone()).unwrap();
    let mut next = 0;
    while segment_files(dir.path()).len() < 2 {
        journal
            .append((0..50).map(|k| pending(next + k, base_time())).collect())
            .unwrap();
        next += 50;
    }
    journal.close().unwrap();
    // The second segment was the held spare: zeroes in its first chunk, records from its
    // start, and reserved blocks (a hole to SEEK_HOLE, asked before any read) after both.
    let second = std::fs::File::open(&segment_files(dir.path())[1]).unwrap();
    let hole = rustix::fs::seek(&second, rustix::fs::SeekFrom::Hole(0)).unwrap();
    assert!(
        (256 << 10..1 << 20).contains(&hole),
        "the spare's zeroes went on to {hole} of {} bytes",
        1 << 20
    );
    let (journal, recovery) = Journal::open(config).unwrap();
    assert!(
        recovery.head.next_seq > next,
        "every entry and the seal are there"
    );
    journal.close().unwrap();
    let stored = read_all(dir.path()).unwrap();
    let events: Vec<_> = stored
        .iter()
        .filter(|e| proto::canonical::decode_event_ref(&e.canonical).is_ok())
        .collect();
    assert_eq!(events.len() as u64, next, "every entry read back");
    assert_chain_intact(dir.path(), &keys);
}
