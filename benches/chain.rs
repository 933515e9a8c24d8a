//! Chain hot paths against their physical reference, measured in the same run:
//! canonical encoding, and one chain step (SHA-256 digest + chained HMAC) against one raw
//! HMAC-SHA256 over the same canonical bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use proto::canonical;
use proto::chain::{ChainHead, ChainWriter, EpochKey, SealSigner};
use proto::verify::{Body, Record, Verifier, VerifyKeys};
use sha2::Sha256;

fn chain(c: &mut Criterion) {
    let entries: Vec<_> = (0..1024).map(vigie::sample_event).collect();
    let encoded: Vec<Vec<u8>> = entries.iter().map(canonical::encode).collect();
    let mean = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    println!("canonical entry size: mean {mean} bytes");

    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    let mut buf = Vec::with_capacity(512);
    g.bench_function("canonical_encode", |b| {
        b.iter(|| {
            buf.clear();
            canonical::encode_into(black_box(&entries[i % entries.len()]), &mut buf);
            i += 1;
            black_box(buf.len())
        })
    });

    let mut writer = ChainWriter::new(
        ChainHead::genesis([1; 16]),
        EpochKey::new(0, [2; 32]),
        SealSigner::from_seed([3; 32]),
    )
    .expect("fresh writer");
    let mut i = 0usize;
    g.bench_function("chain_step_digest_mac", |b| {
        b.iter(|| {
            let link = writer.append(black_box(&encoded[i % encoded.len()]));
            i += 1;
            black_box(link.mac)
        })
    });

    // The physical reference: one HMAC-SHA256 over the same bytes, with the keyed state
    // prepared once (as the chain does).
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&[2; 32]).expect("any key length");
    let mut i = 0usize;
    g.bench_function("raw_hmac_sha256", |b| {
        b.iter(|| {
            let mut h = keyed.clone();
            h.update(black_box(&encoded[i % encoded.len()]));
            i += 1;
            black_box(h.finalize().into_bytes())
        })
    });

    // Verification of a chain held in memory, per entry.
    let mut writer = ChainWriter::new(
        ChainHead::genesis([1; 16]),
        EpochKey::new(0, [2; 32]),
        SealSigner::from_seed([3; 32]),
    )
    .expect("fresh writer");
    let records: Vec<Record> = encoded
        .iter()
        .map(|bytes| Record {
            link: writer.append(bytes),
            body: Body::Full(bytes.clone()),
        })
        .collect();
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("verify_1024", |b| {
        b.iter(|| {
            let mut v = Verifier::new(VerifyKeys {
                k0: Some([2; 32]),
                ..VerifyKeys::default()
            });
            for r in &records {
                v.push(r.clone());
            }
            black_box(v.finish().is_intact())
        })
    });
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
