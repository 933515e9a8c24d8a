//! Model-based test: scans return exactly what was appended, across rolls and reopens.

use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

use super::super::{Journal, init};
use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// A batch: for each entry, its raw padding and its time offset in seconds.
    Append(Vec<(usize, i64)>),
    Seal,
    /// Reopen, closing (sealing) first or just dropping the handle.
    Reopen {
        close: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0usize..150, -3600i64..3600), 1..12).prop_map(Op::Append),
        1 => Just(Op::Seal),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

/// What the model knows of an entry: its bytes and time (`None` for seals, made by the
/// writer with the real clock).
#[derive(Debug, Clone)]
struct Known {
    entry: Option<(Vec<u8>, OffsetDateTime)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn scans_return_what_was_appended(
        ops in prop::collection::vec(op(), 1..25),
        seq_ranges in prop::collection::vec((0u64..200, 0u64..60), 4),
        time_ranges in prop::collection::vec((-4000i64..4000, 0i64..4000), 4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let keys = init(dir.path()).unwrap();
        let config = small_config(dir.path(), 2048);
        let (mut journal, _) = Journal::open(config.clone()).unwrap();
        let mut model: Vec<Known> = Vec::new();
        let t0 = base_time();
        for op in ops {
            match op {
                Op::Append(batch) => {
                    let entries: Vec<PendingEntry> = batch
                        .iter()
                        .enumerate()
                        .map(|(k, &(pad, secs))| {
                            let at = t0 + Duration::seconds(secs);
                            PendingEntry { canonical: event_bytes((model.len() + k) as u64, pad, at), received_at: at }
                        })
                        .collect();
                    let links = journal.append(entries.clone()).unwrap();
                    for (link, e) in links.iter().zip(entries) {
                        prop_assert_eq!(link.seq, model.len() as u64);
                        model.push(Known { entry: Some((e.canonical, e.received_at)) });
                    }
                }
                Op::Seal => {
                    let link = journal.seal_now().unwrap();
                    prop_assert_eq!(link.seq, model.len() as u64);
                    model.push(Known { entry: None });
                }
                Op::Reopen { close } => {
                    if close {
                        journal.close().unwrap();
                        model.push(Known { entry: None });
                    } else {
                        drop(journal);
                    }
                    let (reopened, recovery) = Journal::open(config.clone()).unwrap();
                    prop_assert_eq!(recovery.torn_tail, None);
                    prop_assert_eq!(recovery.head.next_seq, model.len() as u64);
                    journal = reopened;
                }
            }
        }
        drop(journal);

        let reader = JournalReader::open(dir.path()).unwrap();
        let check = |got: Vec<StoredEntry>, want: Vec<u64>| -> Result<(), TestCaseError> {
            prop_assert_eq!(got.iter().map(|e| e.link.seq).collect::<Vec<_>>(), want);
            for e in &got {
                match &model[e.link.seq as usize].entry {
                    Some((bytes, at)) => {
                        prop_assert_eq!(&e.canonical, bytes);
                        prop_assert_eq!(e.received_at, *at);
                    }
                    None => prop_assert!(e.is_seal()),
                }
            }
            Ok(())
        };
        let n = model.len() as u64;
        check(reader.scan_seq(0..=u64::MAX).collect::<Result<_, _>>().unwrap(), (0..n).collect())?;
        for (start, len) in seq_ranges {
            let got = reader.scan_seq(start..=start + len).collect::<Result<_, _>>().unwrap();
            check(got, (start..=start + len).filter(|&s| s < n).collect())?;
        }
        for (from, len) in time_ranges {
            let (from, to) = (t0 + Duration::seconds(from), t0 + Duration::seconds(from + len));
            let got: Vec<StoredEntry> = reader.scan_time(from, to).collect::<Result<_, _>>().unwrap();
            let want = (0..n)
                .filter(|&s| model[s as usize].entry.as_ref().is_some_and(|(_, at)| (from..to).contains(at)))
                .collect();
            check(got, want)?;
        }
        assert_chain_intact(dir.path(), &keys);
    }
}
