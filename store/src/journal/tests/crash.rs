//! Crash recovery: a journal cut at every byte offset of its last entries.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt as _;

use time::Duration;

use super::super::keys::WriterState;
use super::super::{Journal, JournalError, files};
use super::*;

#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The file keeps its size; bytes from the cut on are zero (a pre-zeroed segment
    /// whose last write stopped there).
    Zero,
    /// The file ends at the cut.
    Truncate,
}

/// Cuts the last segment of a journal at every byte offset of its last four records (a
/// seal and three entries), in both ways, and checks that recovery keeps exactly the whole
/// records before the cut, reports a torn tail exactly when bytes were discarded, and that
/// appending continues with a chain that still verifies.
#[test]
fn cut_at_every_byte_of_the_last_entries() {
    let origin = tempfile::tempdir().unwrap();
    let keys = init(origin.path()).unwrap();
    let config = small_config(origin.path(), 4096);
    let t = base_time();
    let (journal, _) = Journal::open(config.clone()).unwrap();
    let mut i = 0;
    for size in [1, 3, 2, 1, 4] {
        let batch = (0..size)
            .map(|_| {
                i += 1;
                pending(i, t + Duration::seconds(i as i64))
            })
            .collect();
        journal.append(batch).unwrap();
    }
    let state_before_seal = fs::read(origin.path().join(files::STATE_FILE)).unwrap();
    journal.seal_now().unwrap();
    for _ in 0..3 {
        i += 1;
        journal
            .append(vec![pending(i, t - Duration::seconds(i as i64))])
            .unwrap();
    }
    drop(journal);

    let pristine = snapshot(origin.path());
    let entries = read_all(origin.path()).unwrap();
    let last = segments(origin.path()).pop().unwrap();
    let last_name = last.file_name().unwrap().to_str().unwrap().to_owned();
    let recs = records(&last);
    assert!(
        recs.len() >= 4,
        "the last segment holds the last four records"
    );
    let tail = &recs[recs.len() - 4..];
    assert!(tail[0].seal && !tail[1].seal);
    let original = &pristine[&last_name];

    let mut cuts = 0;
    for c in tail[0].offset..=tail[3].end {
        for how in [Cut::Zero, Cut::Truncate] {
            let intact = |r: &Rec| match how {
                Cut::Zero => {
                    r.end <= c || original[c as usize..r.end as usize].iter().all(|&b| b == 0)
                }
                Cut::Truncate => r.end <= c,
            };
            let kept: Vec<Rec> = recs.iter().copied().take_while(intact).collect();
            let kept_end = kept.last().map_or(HEADER_BYTES, |r| r.end);
            let next_seq = kept.last().map_or(recs[0].seq, |r| r.seq + 1);
            let seal_kept = kept.iter().any(|r| r.seq == tail[0].seq);
            // Zeroing bytes that were already zero (a record ending in 0x00) keeps the
            // record whole, so the kept end may lie past the cut.
            let discarded = kept_end < c
                && original[kept_end as usize..c as usize]
                    .iter()
                    .any(|&b| b != 0);

            let dir = tempfile::tempdir().unwrap();
            restore(&pristine, dir.path());
            let seg = dir.path().join(&last_name);
            let file = OpenOptions::new().write(true).open(&seg).unwrap();
            match how {
                Cut::Zero => {
                    let zeros = vec![0u8; original.len() - c as usize];
                    file.write_all_at(&zeros, c).unwrap();
                }
                Cut::Truncate => file.set_len(c).unwrap(),
            }
            drop(file);
            if !seal_kept {
                // The seal was not durable, so the state file was never rewritten.
                fs::write(dir.path().join(files::STATE_FILE), &state_before_seal).unwrap();
            }

            let config = JournalConfig {
                dir: dir.path().to_path_buf(),
                ..config.clone()
            };
            let (journal, recovery) =
                Journal::open(config).unwrap_or_else(|e| panic!("cut {c} {how:?}: {e}"));
            assert_eq!(recovery.head.next_seq, next_seq, "cut {c} {how:?}");
            assert_eq!(recovery.head.epoch, u32::from(seal_kept), "cut {c} {how:?}");
            assert_eq!(recovery.key_ratcheted, None);
            match &recovery.torn_tail {
                Some(torn) => {
                    assert!(discarded, "cut {c} {how:?}: torn tail reported for nothing");
                    assert_eq!((torn.offset, torn.next_seq), (kept_end, next_seq));
                    assert_eq!(torn.segment, seg);
                }
                None => assert!(!discarded, "cut {c} {how:?}: torn tail not reported"),
            }
            let link = journal.append(vec![pending(1000, t)]).unwrap()[0];
            assert_eq!(link.seq, next_seq);
            drop(journal);

            let after = read_all(dir.path()).unwrap();
            assert_eq!(after.len() as u64, next_seq + 1);
            assert_eq!(
                &after[..next_seq as usize],
                &entries[..next_seq as usize],
                "cut {c} {how:?}"
            );
            assert_chain_intact(dir.path(), &keys);
            cuts += 1;
        }
    }
    assert!(cuts > 2 * 4 * 300);
}

/// The state file saw a seal the journal lost: the writer refuses to start.
#[test]
fn a_key_ahead_of_the_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let config = small_config(dir.path(), 4096);
    let (journal, _) = Journal::open(config.clone()).unwrap();
    journal.append(vec![pending(1, base_time())]).unwrap();
    drop(journal);
    let before_seal = snapshot(dir.path());
    let (journal, _) = Journal::open(config.clone()).unwrap();
    journal.seal_now().unwrap();
    drop(journal);
    // Put back the segment from before the seal; keep the ratcheted state file.
    for path in segments(dir.path()) {
        let name = path.file_name().unwrap().to_str().unwrap();
        fs::write(&path, &before_seal[name]).unwrap();
    }
    match Journal::open(config) {
        Err(JournalError::KeyAhead {
            key_epoch: 1,
            head_epoch: 0,
            ..
        }) => {}
        other => panic!("expected KeyAhead, got {other:?}"),
    }
}

/// A crash after a seal was durable but before the state file was rewritten: reopening
/// ratchets the key forward, rewrites the state file, and the chain goes on.
#[test]
fn a_state_file_behind_the_journal_is_ratcheted_forward() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = small_config(dir.path(), 4096);
    let (journal, _) = Journal::open(config.clone()).unwrap();
    journal.append(vec![pending(1, base_time())]).unwrap();
    let old_state = fs::read(dir.path().join(files::STATE_FILE)).unwrap();
    journal.seal_now().unwrap();
    journal.append(vec![pending(2, base_time())]).unwrap();
    journal.seal_now().unwrap();
    drop(journal);
    fs::write(dir.path().join(files::STATE_FILE), old_state).unwrap();

    let (journal, recovery) = Journal::open(config).unwrap();
    assert_eq!(recovery.key_ratcheted, Some((0, 2)));
    assert_eq!(recovery.head.epoch, 2);
    let state = WriterState::read(dir.path()).unwrap();
    assert_eq!(state.epoch, 2);
    let expected = proto::chain::EpochKey::derive(&keys.k0, 2);
    assert_eq!(*state.key, *expected.secret());
    let link = journal.append(vec![pending(3, base_time())]).unwrap()[0];
    assert_eq!((link.seq, link.epoch), (4, 2));
    journal.close().unwrap();
    assert_chain_intact(dir.path(), &keys);
}

/// A journal of 30 entries in segments of 2 KiB (three at least, closed without a seal),
/// and the index of its second segment.
fn closed_segments_and_an_index() -> (
    tempfile::TempDir,
    VerifierKeys,
    crate::journal::JournalConfig,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let config = small_config(dir.path(), 2048);
    let (journal, _) = Journal::open(config.clone()).unwrap();
    for i in 0..30 {
        journal.append(vec![pending(i, base_time())]).unwrap();
    }
    drop(journal);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let idx = segs[1].with_extension("idx");
    (dir, keys, config, idx)
}

/// Leftovers of a crash during a roll (a spare segment, an index being written) are
/// removed, and a missing index is rebuilt.
#[test]
fn crash_leftovers_are_cleaned_and_indexes_rebuilt() {
    let (dir, keys, config, idx) = closed_segments_and_an_index();
    fs::remove_file(&idx).unwrap();
    fs::write(dir.path().join("00000000000000000009.idx.tmp"), b"partial").unwrap();
    let (journal, recovery) = Journal::open(config).unwrap();
    assert_eq!(recovery.rebuilt_indexes, vec![idx.clone()]);
    assert!(!recovery.removed_temp_files.is_empty());
    assert!(idx.exists());
    journal.close().unwrap();
    assert_chain_intact(dir.path(), &keys);
}

/// The roll writes a closed segment's index without fsync: a crash may leave it empty,
/// cut inside its summary or cut inside its blocks. Each is caught by its CRCs, and the
/// index is rebuilt from the segment on open.
#[test]
fn a_torn_index_is_rebuilt() {
    let (dir, keys, config, idx) = closed_segments_and_an_index();
    let whole = fs::read(&idx).unwrap();
    assert!(whole.len() > super::super::index::SUMMARY_BYTES + 4);
    for cut in [0, super::super::index::SUMMARY_BYTES / 2, whole.len() - 1] {
        fs::write(&idx, &whole[..cut]).unwrap();
        let (journal, recovery) = Journal::open(config.clone()).unwrap();
        if cut < super::super::index::SUMMARY_BYTES {
            assert_eq!(recovery.rebuilt_indexes, vec![idx.clone()], "cut at {cut}");
            assert_eq!(fs::read(&idx).unwrap(), whole, "cut at {cut}");
        }
        journal.close().unwrap();
        // Time scans, which use the index, do not trust a cut one: every entry is found.
        let found = super::super::JournalReader::open(dir.path())
            .unwrap()
            .scan_time(
                base_time() - Duration::days(1),
                base_time() + Duration::days(1),
            )
            .map(Result::unwrap)
            .filter(|e| !e.is_seal())
            .count();
        assert_eq!(found, 30, "cut at {cut}");
        fs::write(&idx, &whole).unwrap();
    }
    assert_chain_intact(dir.path(), &keys);
}

use super::super::init;

/// A crash during a roll, after the full segment's index was written but before the next
/// segment was renamed in: that index describes a segment that is still open. Recovery
/// removes it, so time scans do not skip what is appended later.
#[test]
fn an_index_of_the_open_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let config = small_config(dir.path(), 1 << 20);
    let (journal, _) = Journal::open(config.clone()).unwrap();
    for i in 0..3 {
        journal.append(vec![pending(i, base_time())]).unwrap();
    }
    drop(journal);
    let seg = segments(dir.path()).pop().unwrap();
    let chain_id = JournalReader::open(dir.path()).unwrap().chain_id();
    let mut idx = super::super::index::SegmentIndex::new(chain_id, 0, HEADER_BYTES);
    for r in records(&seg) {
        idx.push(r.seq, r.offset, r.end - r.offset, 0);
    }
    super::super::recovery::write_index(dir.path(), &idx, files::Durability::Bytes).unwrap();
    let idx_path = seg.with_extension("idx");
    assert!(idx_path.exists());
    let (journal, _) = Journal::open(config).unwrap();
    assert!(!idx_path.exists());
    let later = base_time() + Duration::hours(1);
    journal.append(vec![pending(9, later)]).unwrap();
    drop(journal);
    let found: Vec<_> = JournalReader::open(dir.path())
        .unwrap()
        .scan_time(later, later + Duration::seconds(1))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(found.len(), 1);
}
