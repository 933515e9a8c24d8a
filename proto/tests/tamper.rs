//! Randomised tampering: every alteration of a valid chain is flagged at the right place.

use proptest::prelude::*;
use proto::chain::{self, ChainHead, ChainWriter, EpochKey, Link, SealSigner};
use proto::model::SealKind;
use proto::verify::{Alteration, Body, Problem, Record, VerifyKeys, verify_all};
use time::macros::datetime;

const K0: [u8; 32] = [0x5a; 32];
const SEED: [u8; 32] = [0x17; 32];
const CHAIN: [u8; 16] = [0xc4; 16];

fn keys() -> VerifyKeys {
    VerifyKeys {
        k0: Some(K0),
        public_key: Some(SealSigner::from_seed(SEED).public_key()),
        chain_id: Some(CHAIN),
    }
}

fn writer() -> ChainWriter {
    ChainWriter::new(
        ChainHead::genesis(CHAIN),
        EpochKey::new(0, K0),
        SealSigner::from_seed(SEED),
    )
    .expect("fresh writer")
}

/// A valid chain of `n` records with a checkpoint seal every `seal_every` entries and, if
/// asked, a final seal.
fn build(n: usize, seal_every: usize, end_with_seal: bool) -> (ChainWriter, Vec<Record>) {
    let mut w = writer();
    let mut out = Vec::with_capacity(n);
    let t = datetime!(2026-03-29 01:00 UTC);
    while out.len() < n {
        let last = out.len() + 1 == n;
        if (out.len() + 1) % seal_every == 0 || (last && end_with_seal) {
            let (bytes, link) = w.seal(SealKind::Checkpoint, t);
            out.push(Record {
                link,
                body: Body::Full(bytes),
            });
        } else {
            let bytes = format!("entry {} of a test chain, some padding", out.len()).into_bytes();
            let link = w.append(&bytes);
            out.push(Record {
                link,
                body: Body::Full(bytes),
            });
        }
    }
    (w, out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    AlterContent,
    AlterMac,
    AlterSeq,
    AlterEpoch,
    Delete,
    DeleteRenumber,
    InsertForged,
    InsertForgedRenumber,
    Duplicate,
    SwapNext,
}

const OPS: [Op; 10] = [
    Op::AlterContent,
    Op::AlterMac,
    Op::AlterSeq,
    Op::AlterEpoch,
    Op::Delete,
    Op::DeleteRenumber,
    Op::InsertForged,
    Op::InsertForgedRenumber,
    Op::Duplicate,
    Op::SwapNext,
];

fn forged(seq: u64, epoch: u32) -> Record {
    Record {
        link: Link {
            seq,
            epoch,
            mac: [0xee; 32],
        },
        body: Body::Full(b"forged entry".to_vec()),
    }
}

/// Applies `op` at the record whose original seq is `p`. Records are located by their
/// current index, which equals the original seq as long as operations are applied from the
/// highest position down.
fn apply(records: &mut Vec<Record>, op: Op, p: usize, salt: u8) {
    let seq = p as u64;
    match op {
        Op::AlterContent => match &mut records[p].body {
            Body::Full(bytes) => {
                let i = usize::from(salt) % bytes.len();
                bytes[i] ^= 1 | salt;
            }
            Body::Redacted(d) => d[0] ^= 1,
        },
        Op::AlterMac => records[p].link.mac[usize::from(salt) % 32] ^= 0x80,
        Op::AlterSeq => records[p].link.seq = seq + 1 + u64::from(salt % 7),
        Op::AlterEpoch => records[p].link.epoch += 1 + u32::from(salt % 3),
        Op::Delete => {
            records.remove(p);
        }
        Op::DeleteRenumber => {
            records.remove(p);
            for r in &mut records[p..] {
                r.link.seq -= 1;
            }
        }
        Op::InsertForged => {
            let epoch = records[p].link.epoch;
            records.insert(p, forged(seq, epoch));
        }
        Op::InsertForgedRenumber => {
            for r in &mut records[p..] {
                r.link.seq += 1;
            }
            let epoch = records[p].link.epoch;
            records.insert(p, forged(seq, epoch));
        }
        Op::Duplicate => {
            let copy = records[p].clone();
            records.insert(p + 1, copy);
        }
        Op::SwapNext => records.swap(p, p + 1),
    }
}

fn flagged(op: Op, p: u64, problems: &[Problem]) -> bool {
    problems.iter().any(|pr| match (op, pr) {
        (Op::AlterContent | Op::AlterMac, Problem::Altered { seq, .. }) => *seq == p,
        (Op::AlterContent, Problem::BadSeal { seq, .. }) => *seq == p,
        (Op::AlterSeq, Problem::Altered { seq, what }) => *seq == p && *what == Alteration::Seq,
        (Op::AlterEpoch, Problem::Altered { seq, what }) => *seq == p && *what == Alteration::Epoch,
        (Op::Delete | Op::DeleteRenumber, Problem::Missing { from, to }) => *from == p && *to == p,
        (Op::InsertForged | Op::InsertForgedRenumber, Problem::Inserted { before_seq }) => {
            *before_seq == p
        }
        (Op::Duplicate, Problem::Duplicated { seq }) => *seq == p,
        (Op::SwapNext, Problem::Reordered { seq }) => *seq == p || *seq == p + 1,
        _ => false,
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (0..OPS.len()).prop_map(|i| OPS[i])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn single_tampering_is_flagged_at_its_place(
        n in 6usize..60,
        seal_every in 3usize..12,
        end_with_seal in any::<bool>(),
        op in op_strategy(),
        pos in any::<prop::sample::Index>(),
        salt in any::<u8>(),
    ) {
        let (_, mut records) = build(n, seal_every, end_with_seal);
        // Deleting or moving the very last record is truncation, which only the unsealed
        // tail can reveal (tested separately); every other place is fair game.
        let max = match op {
            Op::Delete | Op::DeleteRenumber | Op::SwapNext => n - 1,
            _ => n,
        };
        let p = pos.index(max);
        apply(&mut records, op, p, salt);
        let report = verify_all(keys(), records);
        prop_assert!(!report.is_intact(), "{op:?} at {p} not detected");
        // Without a successor, deleting the last-but-one entry and renumbering the last one
        // looks exactly like altering the last one: the place is right, the kind cannot be.
        let renumbered_last = op == Op::DeleteRenumber && p + 2 == n
            && report.problems.contains(&Problem::Altered { seq: p as u64, what: Alteration::Unknown });
        prop_assert!(renumbered_last || flagged(op, p as u64, &report.problems),
            "{op:?} at {p} misplaced: {:?}", report.problems);
        for pr in &report.problems {
            prop_assert!(pr.seq() + 1 >= p as u64 && pr.seq() <= p as u64 + 2,
                "{op:?} at {p}: far problem {pr:?} in {:?}", report.problems);
        }
    }

    #[test]
    fn several_tamperings_are_each_flagged(
        n in 40usize..120,
        seal_every in 3usize..15,
        picks in prop::collection::vec((op_strategy(), any::<prop::sample::Index>(), any::<u8>()), 2..5),
    ) {
        let (_, mut records) = build(n, seal_every, true);
        // Spread the positions at least 6 apart, then apply from the highest down.
        let slots = (n - 2) / 6;
        let mut chosen: Vec<(usize, Op, u8)> = Vec::new();
        for (op, idx, salt) in picks {
            let p = 6 * idx.index(slots) + 1;
            if chosen.iter().all(|&(q, _, _)| q != p) {
                chosen.push((p, op, salt));
            }
        }
        chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
        for &(p, op, salt) in &chosen {
            apply(&mut records, op, p, salt);
        }
        let report = verify_all(keys(), records);
        for &(p, op, _) in &chosen {
            // Without a successor, deleting the last-but-one entry and renumbering the last one
        // looks exactly like altering the last one: the place is right, the kind cannot be.
        let renumbered_last = op == Op::DeleteRenumber && p + 2 == n
            && report.problems.contains(&Problem::Altered { seq: p as u64, what: Alteration::Unknown });
        prop_assert!(renumbered_last || flagged(op, p as u64, &report.problems),
                "{op:?} at {p} not flagged among {chosen:?}: {:?}", report.problems);
        }
        for pr in &report.problems {
            prop_assert!(chosen.iter().any(|&(p, _, _)| pr.seq() + 1 >= p as u64 && pr.seq() <= p as u64 + 2),
                "problem {pr:?} near no tampering of {chosen:?}");
        }
    }

    #[test]
    fn redacted_chains_verify(n in 5usize..80, seal_every in 2usize..10, mask in any::<u64>()) {
        let (_, records) = build(n, seal_every, true);
        let mut redacted = 0;
        let records: Vec<Record> = records.into_iter().enumerate().map(|(i, r)| {
            let is_seal = matches!(&r.body, Body::Full(b) if b.get(1) == Some(&3));
            if !is_seal && mask >> (i % 64) & 1 == 1 {
                redacted += 1;
                let Body::Full(bytes) = &r.body else { unreachable!() };
                Record { link: r.link, body: Body::Redacted(chain::digest(bytes)) }
            } else {
                r
            }
        }).collect();
        let report = verify_all(keys(), records);
        prop_assert!(report.is_intact(), "{:?}", report.problems);
        prop_assert_eq!(report.redacted, redacted);
        prop_assert_eq!(report.unsealed_tail, None);
    }
}

#[test]
fn clean_chain_is_intact_and_reports_its_unsealed_tail() {
    let (_, records) = build(35, 10, false);
    let report = verify_all(keys(), records);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert!(report.macs_checked && report.signatures_checked);
    assert_eq!(report.good_seals, 3);
    assert_eq!(report.last_good_seal, Some(29));
    assert_eq!(report.unsealed_tail, Some((30, 34)));
}

#[test]
fn truncation_after_the_last_seal_shows_only_as_unsealed_tail() {
    let (_, mut records) = build(40, 10, true);
    records.truncate(35);
    let report = verify_all(keys(), records);
    assert!(report.is_intact());
    assert_eq!(report.unsealed_tail, Some((30, 34)));
}

#[test]
fn without_k0_seals_and_gaps_are_still_checked() {
    let (_, mut records) = build(30, 10, true);
    records.remove(12);
    let report = verify_all(VerifyKeys { k0: None, ..keys() }, records);
    assert!(!report.macs_checked);
    assert_eq!(report.problems, vec![Problem::Missing { from: 12, to: 12 }]);
}

#[test]
fn wrong_k0_fails_everything() {
    let (_, records) = build(10, 5, true);
    let report = verify_all(
        VerifyKeys {
            k0: Some([0; 32]),
            ..keys()
        },
        records,
    );
    assert!(!report.is_intact());
}

#[test]
fn retention_cut_lets_verification_start_after_it() {
    let (mut w, mut records) = build(50, 10, false);
    let cut = 20usize;
    let before = records[cut - 1].link;
    let cut_epoch = records[cut].link.epoch;
    let (bytes, link) = w.seal(
        SealKind::RetentionCut {
            cut_seq: cut as u64,
            cut_prev_mac: before.mac,
            cut_epoch,
        },
        datetime!(2027-09-01 00:00 UTC),
    );
    records.push(Record {
        link,
        body: Body::Full(bytes),
    });
    let kept: Vec<Record> = records[cut..].to_vec();
    let report = verify_all(keys(), kept.clone());
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.retention_cut, Some(cut as u64));

    // The same cut without its seal is a missing head.
    let report = verify_all(keys(), kept[..kept.len() - 1].to_vec());
    assert_eq!(
        report.problems,
        vec![Problem::Missing {
            from: 0,
            to: cut as u64 - 1
        }]
    );

    // A cut seal that does not match the first kept entry flags it.
    let mut bad = kept;
    if let Body::Full(b) = &mut bad[0].body {
        b[3] ^= 1;
    }
    let report = verify_all(keys(), bad);
    assert!(report.problems.contains(&Problem::Altered {
        seq: cut as u64,
        what: Alteration::Unknown
    }));
}

#[test]
fn a_seal_made_with_a_later_key_is_refused() {
    // An attacker who stole the writer at epoch 5 re-seals entries of epoch 2 with the
    // key and signer it holds.
    let (_, records) = build(30, 10, false);
    let mut thief = ChainWriter::new(
        ChainHead {
            chain_id: CHAIN,
            next_seq: 25,
            head_mac: records[24].link.mac,
            epoch: 5,
        },
        EpochKey::derive(&K0, 5),
        SealSigner::from_seed(SEED),
    )
    .expect("thief writer");
    let (bytes, link) = thief.seal(SealKind::Checkpoint, datetime!(2026-04-01 00:00 UTC));
    let mut tampered = records[..25].to_vec();
    tampered.push(Record {
        link,
        body: Body::Full(bytes),
    });
    let report = verify_all(keys(), tampered);
    assert!(
        report.problems.contains(&Problem::SealEpochAhead {
            seq: 25,
            seal_epoch: 5,
            entries_epoch: 2
        }),
        "{:?}",
        report.problems
    );
    assert_eq!(report.last_good_seal, Some(19));
    assert_eq!(report.unsealed_tail, Some((20, 25)));
}

#[test]
fn forward_security_old_epochs_cannot_be_rewritten_with_the_current_key() {
    let (w, records) = build(30, 10, true);
    // The current key cannot produce the MAC of any entry of an earlier epoch.
    let current = w.key();
    for r in &records {
        if r.link.epoch < current.epoch() {
            let prev = if r.link.seq == 0 {
                chain::GENESIS_MAC
            } else {
                records[r.link.seq as usize - 1].link.mac
            };
            let Body::Full(bytes) = &r.body else {
                unreachable!()
            };
            assert_ne!(
                current.mac(&prev, r.link.seq, &chain::digest(bytes)),
                r.link.mac
            );
        }
    }
    // And the verifier derives every epoch key from K0.
    assert_eq!(
        EpochKey::derive(&K0, current.epoch()).secret(),
        current.secret()
    );
}
