//! Journal append with group commit against its physical reference, measured in the same
//! run: raw `pwrite` + `fdatasync` of the same bytes (records of ~300-byte canonical
//! connection events) at the same batch size, on a pre-zeroed file.
//!
//! - `append/N`: one appender, batches of N entries, each call returning once durable; it
//!   also prints the journal/raw ratio measured with the two interleaved, which holds up
//!   when other work shares the machine;
//! - `raw_write_fdatasync/N`: the same byte volume per call, written and fdatasync'ed;
//! - `concurrent_append/T`: T threads appending one entry at a time, so that group commit
//!   is what batches (its reference is `raw_write_fdatasync/1`).

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proto::canonical;
use store::journal::{Journal, JournalConfig, PendingEntry};
use time::OffsetDateTime;

/// Bytes a record adds to its canonical entry (length, CRC, seq, epoch, time, MAC).
const RECORD_OVERHEAD: usize = 60;
/// Size of the pre-zeroed file of the raw reference (a default segment).
const RAW_FILE_BYTES: u64 = 64 << 20;

fn journal(c: &mut Criterion) {
    let encoded: Vec<Vec<u8>> = (0..4096)
        .map(|i| canonical::encode(&vigie::sample_event(i)))
        .collect();
    let mean = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    println!(
        "canonical entry size: mean {mean} bytes; record {} bytes",
        mean + RECORD_OVERHEAD
    );
    let batch_of = |n: usize, from: usize| -> Vec<PendingEntry> {
        let received_at = OffsetDateTime::now_utc();
        (0..n)
            .map(|k| PendingEntry {
                canonical: encoded[(from + k) % encoded.len()].clone(),
                received_at,
            })
            .collect()
    };

    let dir = tempfile::tempdir().expect("temporary directory");
    let journal_dir = dir.path().join("journal");
    store::journal::init(&journal_dir).expect("init");
    let (journal, _) = Journal::open(JournalConfig::new(&journal_dir)).expect("open");

    let raw_path = dir.path().join("raw.bin");
    let raw = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&raw_path)
        .expect("raw file");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..RAW_FILE_BYTES / (1 << 20) {
        raw.write_all_at(&zeros, i * (1 << 20)).expect("zero");
    }
    raw.sync_all().expect("fsync");

    let mut g = c.benchmark_group("journal");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    for batch in [1usize, 64, 1024] {
        let bytes: usize = (0..batch)
            .map(|k| encoded[k % encoded.len()].len() + RECORD_OVERHEAD)
            .sum();
        let buf = vec![0xA5u8; bytes];
        let mut offset = 0u64;
        let mut raw_write_fdatasync = || {
            if offset + bytes as u64 > RAW_FILE_BYTES {
                offset = 0;
            }
            raw.write_all_at(&buf, offset).expect("write");
            raw.sync_data().expect("fdatasync");
            offset += bytes as u64;
        };

        // Each journal append is followed by one raw write + fdatasync of the same bytes,
        // timed apart: the ratio printed below compares the two under the same conditions
        // (the machine may be shared); criterion reports the journal's time.
        g.throughput(Throughput::Elements(batch as u64));
        let mut next = 0usize;
        let (mut journal_time, mut raw_time, mut batches) = (Duration::ZERO, Duration::ZERO, 0u64);
        g.bench_function(BenchmarkId::new("append", batch), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    next += batch;
                    let entries = batch_of(batch, next);
                    let start = Instant::now();
                    black_box(journal.append(entries).expect("append"));
                    elapsed += start.elapsed();
                    let start = Instant::now();
                    raw_write_fdatasync();
                    raw_time += start.elapsed();
                }
                journal_time += elapsed;
                batches += iters;
                elapsed
            })
        });
        let per_second = |t: Duration| (batches * batch as u64) as f64 / t.as_secs_f64();
        if batches > 0 {
            println!(
                "append/{batch}: journal {:.0} entries/s, raw write+fdatasync {:.0} entries/s \
             (interleaved, {batches} batches of {bytes} bytes): journal/raw {:.0}%",
                per_second(journal_time),
                per_second(raw_time),
                100.0 * raw_time.as_secs_f64() / journal_time.as_secs_f64()
            );
        }

        g.bench_function(BenchmarkId::new("raw_write_fdatasync", batch), |b| {
            b.iter(&mut raw_write_fdatasync)
        });
    }

    g.throughput(Throughput::Elements(1));
    for threads in [1usize, 4, 16] {
        g.bench_function(BenchmarkId::new("concurrent_append", threads), |b| {
            b.iter_custom(|iters| {
                let iters = usize::try_from(iters).expect("iterations fit in usize");
                let work: Vec<Vec<PendingEntry>> = (0..threads)
                    .map(|t| batch_of(iters / threads + usize::from(t < iters % threads), t * 7919))
                    .collect();
                let start = Instant::now();
                std::thread::scope(|s| {
                    for entries in work {
                        let journal = &journal;
                        s.spawn(move || {
                            for entry in entries {
                                black_box(journal.append(vec![entry]).expect("append"));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
    journal.close().expect("close");
}

criterion_group!(benches, journal);
criterion_main!(benches);
