//! Corruption anywhere but a torn tail is an error naming segment, offset and seq.

use std::fs;

use super::super::format::{self, SegmentHeader};
use super::super::{Corruption, HeaderFault, Journal, JournalError, init};
use super::*;

/// A journal of `n` entries in segments of `segment_bytes`, closed without a seal.
fn journal_of(n: u64, segment_bytes: u64) -> (tempfile::TempDir, JournalConfig) {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let config = small_config(dir.path(), segment_bytes);
    let (journal, _) = Journal::open(config.clone()).unwrap();
    for i in 0..n {
        journal.append(vec![pending(i, base_time())]).unwrap();
    }
    drop(journal);
    (dir, config)
}

fn expect_corrupt(
    result: Result<impl std::fmt::Debug, JournalError>,
) -> (PathBuf, u64, u64, Corruption) {
    match result {
        Err(JournalError::Corrupt {
            segment,
            offset,
            seq,
            what,
        }) => (segment, offset, seq, what),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_bad_record_followed_by_a_valid_one_is_an_error() {
    let (dir, config) = journal_of(8, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let recs = records(&seg);
    let victim = recs[4];
    flip(&seg, victim.offset + 30);
    let (segment, offset, seq, what) = expect_corrupt(Journal::open(config));
    assert_eq!(
        (segment.as_path(), offset, seq),
        (seg.as_path(), victim.offset, 4)
    );
    match what {
        Corruption::ValidAfter {
            cause,
            next_offset,
            next_seq,
        } => {
            assert_eq!(*cause, Corruption::Checksum);
            assert_eq!((next_offset, next_seq), (recs[5].offset, 5));
        }
        other => panic!("{other:?}"),
    }
    // The message names the file, the offset and the seq.
    let err = Journal::open(small_config(dir.path(), 1 << 20))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(seg.to_str().unwrap())
            && err.contains(&format!("byte {}", victim.offset))
            && err.contains("seq 4"),
        "{err}"
    );
    // Readers stop there with the same diagnosis.
    let (segment, offset, seq, _) = expect_corrupt(read_all(dir.path()));
    assert_eq!((segment, offset, seq), (seg, victim.offset, 4));
}

#[test]
fn a_damaged_length_before_valid_records_is_an_error() {
    let (dir, config) = journal_of(8, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let recs = records(&seg);
    // A length over the cap.
    flip(&seg, recs[2].offset + 3);
    let (_, offset, seq, what) = expect_corrupt(Journal::open(config));
    assert_eq!((offset, seq), (recs[2].offset, 2));
    assert!(
        matches!(what, Corruption::ValidAfter { next_seq: 3, .. }),
        "{what:?}"
    );
}

#[test]
fn a_valid_record_with_the_wrong_seq_is_never_a_torn_tail() {
    let (dir, config) = journal_of(5, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let last = *records(&seg).last().unwrap();
    // Renumber the last record and fix its CRC: a torn write cannot do that.
    let mut bytes = fs::read(&seg).unwrap();
    let at = last.offset as usize;
    bytes[at + 8..at + 16].copy_from_slice(&9u64.to_le_bytes());
    let crc = crate::journal::format::crc32c(&bytes[at + 8..last.end as usize]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&seg, bytes).unwrap();
    let (_, offset, seq, what) = expect_corrupt(Journal::open(config));
    assert_eq!(
        (offset, seq, what),
        (last.offset, 4, Corruption::Seq { found: 9 })
    );
}

#[test]
fn a_bad_record_in_a_closed_segment_is_an_error() {
    let (dir, config) = journal_of(40, 2048);
    let segs = segments(dir.path());
    assert!(segs.len() >= 4);
    let victim_seg = &segs[1];
    let recs = records(victim_seg);
    let victim = *recs.last().unwrap();
    flip(victim_seg, victim.end - 1);
    // Closed segments are trusted through their index on open; scans read every record.
    let (segment, offset, seq, what) = expect_corrupt(read_all(dir.path()));
    assert_eq!(
        (&segment, offset, seq, what),
        (victim_seg, victim.offset, victim.seq, Corruption::Checksum)
    );
    // Without its index the segment is scanned on open: the same error, even at its end.
    fs::remove_file(victim_seg.with_extension("idx")).unwrap();
    let (segment, offset, seq, _) = expect_corrupt(Journal::open(config));
    assert_eq!(
        (&segment, offset, seq),
        (victim_seg, victim.offset, victim.seq)
    );
}

#[test]
fn a_missing_segment_is_a_seq_discontinuity() {
    let (dir, config) = journal_of(40, 2048);
    let segs = segments(dir.path());
    let gone = &segs[2];
    let gone_first = records(gone)[0].seq;
    let after_first = records(&segs[3])[0].seq;
    fs::remove_file(gone).unwrap();
    fs::remove_file(gone.with_extension("idx")).unwrap();
    let (segment, offset, seq, what) = expect_corrupt(Journal::open(config));
    assert_eq!((&segment, offset, seq), (&segs[3], 0, gone_first));
    assert_eq!(what, Corruption::Seq { found: after_first });
    let (segment, _, seq, _) = expect_corrupt(read_all(dir.path()));
    assert_eq!((&segment, seq), (&segs[3], gone_first));
}

#[test]
fn a_segment_of_another_chain_is_refused() {
    let (dir, config) = journal_of(20, 2048);
    let segs = segments(dir.path());
    let first_seq = records(&segs[1])[0].seq;
    let header = SegmentHeader {
        chain_id: [0xEE; 16],
        first_seq,
    };
    let mut bytes = fs::read(&segs[1]).unwrap();
    bytes[..format::HEADER_BYTES as usize].copy_from_slice(&header.encode());
    fs::write(&segs[1], bytes).unwrap();
    match Journal::open(config) {
        Err(JournalError::BadHeader {
            segment,
            what: HeaderFault::WrongChain { found, .. },
        }) => assert_eq!((segment, found), (segs[1].clone(), [0xEE; 16])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_all(dir.path()),
        Err(JournalError::BadHeader { .. })
    ));
}

#[test]
fn garbage_after_the_end_marker_without_a_record_is_a_torn_tail() {
    let (dir, config) = journal_of(3, 1 << 20);
    let seg = segments(dir.path()).pop().unwrap();
    let end = records(&seg).last().unwrap().end;
    // Bytes of a lost page, with nothing valid in them, 100 bytes past the end marker.
    let mut bytes = fs::read(&seg).unwrap();
    bytes[end as usize + 100..end as usize + 140].fill(0x5A);
    fs::write(&seg, bytes).unwrap();
    let (journal, recovery) = Journal::open(config.clone()).unwrap();
    let torn = recovery.torn_tail.unwrap();
    assert_eq!(
        (torn.offset, torn.discarded_bytes, torn.next_seq),
        (end, 140, 3)
    );
    drop(journal);
    let (_, recovery) = Journal::open(config).unwrap();
    assert_eq!(recovery.torn_tail, None);
}
