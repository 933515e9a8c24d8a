//! Retention: cut seals, dropping whole segments, and a journal that starts after seq 0.

use proto::model::{Entry, SealKind};

use super::super::{Journal, JournalError, init};
use super::*;

/// Appends `n` entries from variation `from`, in batches of 10.
fn append(journal: &Journal, from: u64, n: u64) {
    let at = base_time();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(10) {
        journal
            .append(chunk.iter().map(|&i| pending(i, at)).collect())
            .unwrap();
    }
}

#[test]
fn a_cut_journal_reopens_appends_and_verifies_from_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let keys = init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    append(&journal, 0, 200);
    journal.seal_now().unwrap();
    let firsts = journal.segment_first_seqs().unwrap();
    assert!(firsts.len() >= 5, "several small segments: {firsts:?}");
    let cut = firsts[3];

    // The seal names the MAC before the cut and the epoch of the first entry kept.
    let all = read_all(dir.path()).unwrap();
    let link = journal.seal_retention_cut(cut).unwrap();
    let sealed = read_all(dir.path()).unwrap().pop().unwrap();
    assert_eq!(sealed.link, link);
    let Entry::Seal(seal) = proto::canonical::decode(&sealed.canonical).unwrap() else {
        panic!("not a seal");
    };
    assert_eq!(
        seal.kind,
        SealKind::RetentionCut {
            cut_seq: cut,
            cut_prev_mac: all[usize::try_from(cut - 1).unwrap()].link.mac,
            cut_epoch: all[usize::try_from(cut).unwrap()].link.epoch,
        }
    );

    // Asked to drop up to a seq inside segment 3: only whole segments below it go.
    let dropped = journal.drop_segments_before(cut + 1).unwrap();
    assert_eq!(dropped.segments.len(), 3);
    assert_eq!((dropped.first_kept, dropped.entries), (cut, cut));
    assert_eq!(journal.segment_first_seqs().unwrap(), firsts[3..]);
    assert!(
        !files::index_path(dir.path(), firsts[0]).exists(),
        "index files go with their segments"
    );
    append(&journal, 200, 20);
    journal.close().unwrap();

    // Readers and the writer accept a journal whose first segment starts after 0.
    let reader = JournalReader::open(dir.path()).unwrap();
    assert_eq!(reader.segment_first_seqs().unwrap()[0], cut);
    let (journal, recovery) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    assert!(recovery.torn_tail.is_none());
    assert!(recovery.head.next_seq > cut);
    append(&journal, 220, 20);
    let head = journal.head();
    journal.close().unwrap();

    let entries = read_all(dir.path()).unwrap();
    assert_eq!(entries.first().map(|e| e.link.seq), Some(cut));
    // The last entry is the closing seal, after the head taken before closing.
    assert_eq!(entries.last().map(|e| e.link.seq), Some(head.next_seq));
    let report = proto::verify::verify_all(keys.verify_keys(), entries.into_iter().map(Into::into));
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.retention_cut, Some(cut));
    assert_eq!(report.first_seq, Some(cut));
    assert!(report.macs_checked && report.signatures_checked);
}

#[test]
fn segments_go_only_behind_a_seal_naming_the_first_seq_kept() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    append(&journal, 0, 150);
    let firsts = journal.segment_first_seqs().unwrap();
    assert!(firsts.len() >= 4, "{firsts:?}");
    let before = snapshot(dir.path());

    // No seal at all.
    let e = journal.drop_segments_before(firsts[2]).unwrap_err();
    assert!(
        matches!(e, JournalError::Retention { seq, .. } if seq == firsts[2]),
        "{e}"
    );
    // A seal for another cut (not at the boundary the drop would leave).
    journal.seal_retention_cut(firsts[2] + 1).unwrap();
    let e = journal.drop_segments_before(firsts[2] + 5).unwrap_err();
    assert!(e.to_string().contains("no retention-cut seal"), "{e}");
    let after = snapshot(dir.path());
    for name in before.keys().filter(|n| n.ends_with(".seg")) {
        assert!(after.contains_key(name), "{name} was deleted");
    }

    // Nothing below the first segment's end: nothing to do, no seal needed.
    let none = journal.drop_segments_before(firsts[1] - 1).unwrap();
    assert!(none.segments.is_empty());
    assert_eq!(none.first_kept, 0);

    // The open segment never goes, whatever the seq.
    journal.seal_retention_cut(*firsts.last().unwrap()).unwrap();
    let dropped = journal.drop_segments_before(u64::MAX).unwrap();
    assert_eq!(dropped.first_kept, *firsts.last().unwrap());
    assert_eq!(
        journal.segment_first_seqs().unwrap(),
        [*firsts.last().unwrap()]
    );
    journal.close().unwrap();
}

#[test]
fn cuts_outside_the_journal_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    append(&journal, 0, 10);
    let next = journal.head().next_seq;
    for cut in [0, next, next + 5] {
        let e = journal.seal_retention_cut(cut).unwrap_err();
        assert!(
            matches!(e, JournalError::Retention { seq, .. } if seq == cut),
            "{cut}: {e}"
        );
    }
    assert_eq!(journal.head().next_seq, next, "nothing written");
    journal.close().unwrap();
}

#[test]
fn a_cut_given_by_another_ledger_must_match_while_the_journal_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 16 << 10)).unwrap();
    append(&journal, 0, 30);
    let all = read_all(dir.path()).unwrap();
    let (mac, epoch) = (all[9].link.mac, all[10].link.epoch);
    let e = journal
        .seal_retention_cut_as(10, [0; 32], epoch)
        .unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    let link = journal.seal_retention_cut_as(10, mac, epoch).unwrap();
    assert_eq!(link.seq, 30);
    journal.close().unwrap();
}
