//! Readers beside a running writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use time::Duration;

use super::super::{Journal, init};
use super::*;

#[test]
fn readers_stop_cleanly_while_the_writer_runs() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 4096)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let journal = journal.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 3000 {
                let batch = (0..(i % 5 + 1))
                    .map(|k| pending(i + k, base_time()))
                    .collect();
                journal.append(batch).unwrap();
                i += 5;
            }
        })
    };
    let unbounded = JournalReader::open(dir.path()).unwrap();
    let bounded = journal.reader();
    let mut scans = 0;
    let mut last_len = 0;
    while !writer.is_finished() || scans < 5 {
        let durable = journal.head().next_seq;
        // A bounded reader sees exactly what was durable when its scan started, or more.
        let seen: Vec<_> = bounded
            .scan_seq(0..=u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(seen.len() as u64 >= durable);
        assert!(seen.iter().enumerate().all(|(i, e)| e.link.seq == i as u64));
        // An unbounded reader stops at the end of what it can read, never with an error.
        let seen: Vec<_> = unbounded
            .scan_seq(0..=u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(seen.len() >= last_len);
        assert!(seen.iter().enumerate().all(|(i, e)| e.link.seq == i as u64));
        last_len = seen.len();
        scans += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let head = journal.head();
    journal.close().unwrap();
    assert_eq!(
        read_all(dir.path()).unwrap().len() as u64,
        head.next_seq + 1
    );
    assert!(scans >= 5);
}

#[test]
fn time_scans_use_min_and_max_when_the_clock_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    let (journal, _) = Journal::open(small_config(dir.path(), 2048)).unwrap();
    let t = base_time();
    // The clock runs forward, steps back an hour at entry 40, and runs forward again.
    let times: Vec<_> = (0..80i64)
        .map(|i| {
            if i < 40 {
                t + Duration::minutes(i)
            } else {
                t - Duration::hours(1) + Duration::minutes(i)
            }
        })
        .collect();
    for (i, at) in times.iter().enumerate() {
        journal.append(vec![pending(i as u64, *at)]).unwrap();
    }
    drop(journal);
    assert!(segments(dir.path()).len() > 5);
    let reader = JournalReader::open(dir.path()).unwrap();
    for (from, to) in [(0, 10), (10, 50), (35, 45), (-60, -30), (-5, 200), (79, 80)] {
        let (from, to) = (t + Duration::minutes(from), t + Duration::minutes(to));
        let got: Vec<u64> = reader
            .scan_time(from, to)
            .map(|e| e.unwrap().link.seq)
            .collect();
        let want: Vec<u64> = (0..80u64)
            .filter(|&i| (from..to).contains(&times[i as usize]))
            .collect();
        assert_eq!(got, want, "{from} .. {to}");
    }
}
