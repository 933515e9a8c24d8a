//! Verification of a chain, whole or redacted, with a precise diagnosis.
//!
//! The verifier reads stored records (link + entry bytes, or only the entry's digest for a
//! redacted export) in stored order and checks each MAC against the one before it, with
//! the key of the epoch the record's position implies (derived from `K_0`). When a link
//! fails, a short lookahead tells what happened to it:
//!
//! ```text
//!  stored:   … P │ r │ n …          r fails to link from P
//!  n links from r.mac               → r's content was altered (its stored MAC is genuine)
//!  n links from MAC(P, r)           → r's MAC field was altered (its content is genuine)
//!  n links from P at r's seq        → r was inserted before n
//!  n links from P at r's seq, but n is numbered one higher
//!                                   → r was inserted and the rest renumbered
//!  n links from r.mac one seq higher→ an entry was deleted and the rest renumbered
//!  none of these                    → r altered; n cannot be checked (its predecessor is
//!                                     damaged) and is reported as unverifiable if it fails
//! ```
//!
//! A seq that jumps forward is a gap (entries missing) unless the expected record is found
//! a little later in the lookahead (reordered); a seq that goes backwards is a duplicate
//! (same bytes as the record before) or an insertion. The chain may start after seq 0 only
//! where a retention-cut seal says so; that seal carries the MAC before the cut, so the
//! first kept entry is checked once the seal is read.
//!
//! Seals are checked for their chain id, position, head MAC, Ed25519 signature and epoch.
//! A seal claiming a later epoch than the entries it covers is refused (the flaw of
//! CVE-2023-31439 in systemd-journald, where old entries re-sealed with a newer key were
//! accepted). Entries after the last good seal are reported as the **unsealed tail**:
//! nothing proves that the chain was not truncated there (CVE-2023-31438).
//!
//! Without `K_0` the verifier still checks seq continuity and the seals' signatures, but
//! not the MACs; [`Report::macs_checked`] says which it did.

use std::collections::VecDeque;
use std::fmt;

use crate::canonical::{self, DecodeError};
use crate::chain::{self, Digest, EpochKey, GENESIS_MAC, Link, Mac};
use crate::model::{Entry, Seal, SealKind};

/// How many records the verifier looks ahead to diagnose a failed link.
const LOOKAHEAD: usize = 8;

/// What the verifier is given to check with.
#[derive(Clone, Default)]
pub struct VerifyKeys {
    /// The chain's initial MAC key; without it MACs are not checked.
    pub k0: Option<[u8; 32]>,
    /// The Ed25519 public key of the chain's seals; without it signatures are not checked.
    pub public_key: Option<[u8; 32]>,
    /// The expected chain id; without it the first seal's chain id is taken.
    pub chain_id: Option<[u8; 16]>,
}

impl fmt::Debug for VerifyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKeys")
            .field("k0", &self.k0.map(|_| "<redacted>"))
            .field(
                "public_key",
                &self.public_key.map(|k| crate::model::hex_bytes::encode(&k)),
            )
            .field(
                "chain_id",
                &self.chain_id.map(|k| crate::model::hex_bytes::encode(&k)),
            )
            .finish()
    }
}

/// A record's entry: in full, or only its digest (redacted export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The canonical entry bytes.
    Full(Vec<u8>),
    /// The SHA-256 digest of the canonical entry, the entry itself withheld.
    Redacted(Digest),
}

/// One stored record as the verifier reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The stored link (seq, epoch, MAC).
    pub link: Link,
    /// The entry or its digest.
    pub body: Body,
}

impl Record {
    fn digest(&self) -> Digest {
        match &self.body {
            Body::Full(bytes) => chain::digest(bytes),
            Body::Redacted(d) => *d,
        }
    }

    fn looks_like_seal(&self) -> bool {
        matches!(&self.body, Body::Full(b) if b.len() > 1 && b[0] == canonical::VERSION && b[1] == 3)
    }
}

/// Which part of an entry was found altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alteration {
    /// The entry's bytes (its stored MAC is genuine).
    Content,
    /// The stored MAC (the entry's bytes are genuine).
    Mac,
    /// The stored seq number.
    Seq,
    /// The stored epoch number.
    Epoch,
    /// The record does not link and the lookahead cannot tell which part changed.
    Unknown,
}

/// Why a seal is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealFault {
    /// The seal's bytes are not a canonical seal.
    Undecodable(DecodeError),
    /// The seal belongs to another chain.
    WrongChain,
    /// The seal does not sit at the seq it claims to.
    WrongPosition {
        /// The seq the seal claims.
        claimed: u64,
    },
    /// The head MAC in the seal is not the MAC of the entry before it.
    HeadMismatch,
    /// The Ed25519 signature does not verify.
    BadSignature,
    /// The seal claims an earlier epoch than its position implies.
    EpochBehind {
        /// The epoch the seal claims.
        seal_epoch: u32,
        /// The epoch of the entries it covers.
        entries_epoch: u32,
    },
}

impl fmt::Display for SealFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealFault::Undecodable(e) => write!(f, "undecodable seal: {e}"),
            SealFault::WrongChain => f.write_str("seal of another chain"),
            SealFault::WrongPosition { claimed } => write!(f, "seal claims seq {claimed}"),
            SealFault::HeadMismatch => f.write_str("head MAC differs from the entry before it"),
            SealFault::BadSignature => f.write_str("Ed25519 signature does not verify"),
            SealFault::EpochBehind {
                seal_epoch,
                entries_epoch,
            } => write!(
                f,
                "seal epoch {seal_epoch} is behind the entries' epoch {entries_epoch}"
            ),
        }
    }
}

/// One thing wrong with a chain, placed by seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry at `seq` was altered.
    Altered {
        /// Where.
        seq: u64,
        /// What.
        what: Alteration,
    },
    /// The entries `from..=to` are missing.
    Missing {
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// The records after a deletion or insertion were renumbered by `shift` from `from`.
    Renumbered {
        /// First renumbered seq (in the chain's original numbering).
        from: u64,
        /// Stored seq minus original seq.
        shift: i64,
    },
    /// A record that does not belong to the chain was inserted before `before_seq`.
    Inserted {
        /// The genuine entry it precedes.
        before_seq: u64,
    },
    /// The entry at `seq` is stored twice.
    Duplicated {
        /// Where.
        seq: u64,
    },
    /// The entry at `seq` is stored out of order.
    Reordered {
        /// Where.
        seq: u64,
    },
    /// The entry at `seq` cannot be checked because the entry before it is damaged.
    Unverifiable {
        /// Where.
        seq: u64,
    },
    /// The seal at `seq` is refused.
    BadSeal {
        /// Where.
        seq: u64,
        /// Why.
        fault: SealFault,
    },
    /// The seal at `seq` claims a later epoch than the entries it covers: it was made with
    /// a key that did not exist when those entries were written.
    SealEpochAhead {
        /// Where.
        seq: u64,
        /// The epoch the seal claims.
        seal_epoch: u32,
        /// The epoch of the entries it covers.
        entries_epoch: u32,
    },
}

impl Problem {
    /// The seq the problem is placed at (the first one for a range).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Altered { seq, .. }
            | Problem::Duplicated { seq }
            | Problem::Reordered { seq }
            | Problem::Unverifiable { seq }
            | Problem::BadSeal { seq, .. }
            | Problem::SealEpochAhead { seq, .. } => *seq,
            Problem::Missing { from, .. } | Problem::Renumbered { from, .. } => *from,
            Problem::Inserted { before_seq } => *before_seq,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered { seq, what } => {
                let part = match what {
                    Alteration::Content => "content",
                    Alteration::Mac => "MAC",
                    Alteration::Seq => "seq number",
                    Alteration::Epoch => "epoch number",
                    Alteration::Unknown => "content or MAC",
                };
                write!(f, "seq {seq}: {part} altered")
            }
            Problem::Missing { from, to } if from == to => write!(f, "seq {from}: missing"),
            Problem::Missing { from, to } => write!(f, "seq {from}..={to}: missing"),
            Problem::Renumbered { from, shift } => {
                write!(f, "seq {from} onwards: renumbered by {shift:+}")
            }
            Problem::Inserted { before_seq } => {
                write!(
                    f,
                    "seq {before_seq}: a foreign record was inserted before it"
                )
            }
            Problem::Duplicated { seq } => write!(f, "seq {seq}: stored twice"),
            Problem::Reordered { seq } => write!(f, "seq {seq}: stored out of order"),
            Problem::Unverifiable { seq } => {
                write!(
                    f,
                    "seq {seq}: cannot be checked, the entry before it is damaged"
                )
            }
            Problem::BadSeal { seq, fault } => write!(f, "seq {seq}: seal refused: {fault}"),
            Problem::SealEpochAhead {
                seq,
                seal_epoch,
                entries_epoch,
            } => write!(
                f,
                "seq {seq}: seal made with the key of epoch {seal_epoch}, later than the \
                 epoch {entries_epoch} of the entries it covers"
            ),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// Records that were only digests.
    pub redacted: u64,
    /// Seals that passed every check.
    pub good_seals: u64,
    /// Seq of the first record read.
    pub first_seq: Option<u64>,
    /// Seq of the last record read.
    pub last_seq: Option<u64>,
    /// Seq of the last good seal.
    pub last_good_seal: Option<u64>,
    /// Entries after the last good seal: truncation there cannot be excluded.
    pub unsealed_tail: Option<(u64, u64)>,
    /// Where a retention cut starts the chain (first kept seq), if one does.
    pub retention_cut: Option<u64>,
    /// Whether MACs were checked (the verifier had `K_0`).
    pub macs_checked: bool,
    /// Whether seal signatures were checked (the verifier had the public key).
    pub signatures_checked: bool,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Expect {
    seq: u64,
    prev: Mac,
    epoch: u32,
    /// The previous record failed and could not be repaired: its stored MAC is suspect.
    prev_damaged: bool,
}

struct PendingCut {
    seq: u64,
    epoch: u32,
    digest: Digest,
    mac: Mac,
}

/// A streaming verifier: [`push`](Verifier::push) records in stored order, then
/// [`finish`](Verifier::finish).
///
/// # Examples
/// ```
/// use proto::chain::{ChainHead, ChainWriter, EpochKey, SealSigner};
/// use proto::model::SealKind;
/// use proto::verify::{Body, Record, VerifyKeys, Verifier};
/// # use time::macros::datetime;
/// let k0 = [1u8; 32];
/// let signer = SealSigner::from_seed([2; 32]);
/// let public_key = signer.public_key();
/// let mut writer = ChainWriter::new(ChainHead::genesis([3; 16]), EpochKey::new(0, k0), signer).unwrap();
/// let mut verifier = Verifier::new(VerifyKeys { k0: Some(k0), public_key: Some(public_key), chain_id: None });
/// for bytes in [b"a".to_vec(), b"b".to_vec()] {
///     let link = writer.append(&bytes);
///     verifier.push(Record { link, body: Body::Full(bytes) });
/// }
/// let (bytes, link) = writer.seal(SealKind::Checkpoint, datetime!(2026-01-01 0:00 UTC));
/// verifier.push(Record { link, body: Body::Full(bytes) });
/// let report = verifier.finish();
/// assert!(report.is_intact(), "{:?}", report.problems);
/// assert_eq!(report.unsealed_tail, None);
/// ```
pub struct Verifier {
    keys: VerifyKeys,
    key: Option<EpochKey>,
    chain_id: Option<[u8; 16]>,
    buffer: VecDeque<Record>,
    expect: Option<Expect>,
    shift: i64,
    pending_cut: Option<PendingCut>,
    missing: Vec<(u64, u64)>,
    report: Report,
}

impl Verifier {
    /// A verifier holding the given keys.
    pub fn new(keys: VerifyKeys) -> Self {
        let report = Report {
            macs_checked: keys.k0.is_some(),
            signatures_checked: keys.public_key.is_some(),
            ..Report::default()
        };
        Verifier {
            key: keys.k0.map(|k0| EpochKey::new(0, k0)),
            chain_id: keys.chain_id,
            keys,
            buffer: VecDeque::with_capacity(LOOKAHEAD + 1),
            expect: None,
            shift: 0,
            pending_cut: None,
            missing: Vec::new(),
            report,
        }
    }

    /// The report so far (records processed lag `push` by the lookahead).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Reads the next stored record.
    pub fn push(&mut self, record: Record) {
        self.report.records += 1;
        if matches!(record.body, Body::Redacted(_)) {
            self.report.redacted += 1;
        }
        self.report.first_seq.get_or_insert(record.link.seq);
        self.report.last_seq = Some(record.link.seq);
        self.buffer.push_back(record);
        while self.buffer.len() > LOOKAHEAD {
            self.step();
        }
    }

    /// Checks what is left and returns the report.
    pub fn finish(mut self) -> Report {
        while !self.buffer.is_empty() {
            self.step();
        }
        if let Some(cut) = self.pending_cut.take() {
            self.report.problems.push(Problem::Missing {
                from: 0,
                to: cut.seq - 1,
            });
        }
        let tail_from = match (self.report.last_good_seal, self.report.first_seq) {
            (Some(s), _) => s + 1,
            (None, Some(first)) => first,
            (None, None) => 0,
        };
        if let Some(last) = self.report.last_seq.filter(|&last| last >= tail_from) {
            self.report.unsealed_tail = Some((tail_from, last));
        }
        self.report
    }

    fn eff_seq(&self, r: &Record) -> Option<u64> {
        u64::try_from(i128::from(r.link.seq) - i128::from(self.shift)).ok()
    }

    /// Whether `r` links from `prev` at `seq` with the key of `epoch` (always true without
    /// `K_0`: only seq continuity and seals are checked then).
    fn links(&mut self, prev: &Mac, epoch: u32, seq: u64, r: &Record) -> bool {
        self.mac_for(prev, epoch, seq, &r.digest())
            .is_none_or(|mac| mac == r.link.mac)
    }

    fn mac_for(&mut self, prev: &Mac, epoch: u32, seq: u64, digest: &Digest) -> Option<Mac> {
        let k0 = self.keys.k0?;
        let key = self.key.get_or_insert_with(|| EpochKey::new(0, k0));
        if key.epoch() > epoch {
            *key = EpochKey::new(0, k0);
        }
        while key.epoch() < epoch {
            key.ratchet();
        }
        Some(key.mac(prev, seq, digest))
    }

    fn step(&mut self) {
        let Some(r) = self.buffer.pop_front() else {
            return;
        };
        let Some(eff) = self.eff_seq(&r) else {
            self.report.problems.push(Problem::Inserted {
                before_seq: self.expect.as_ref().map_or(0, |e| e.seq),
            });
            return;
        };
        let Some(exp) = self.expect.as_ref() else {
            self.first(r, eff);
            return;
        };
        let (e_seq, e_prev, e_epoch) = (exp.seq, exp.prev, exp.epoch);
        if eff == e_seq {
            if self.links(&e_prev, e_epoch, e_seq, &r) {
                if r.link.epoch != e_epoch {
                    self.report.problems.push(Problem::Altered {
                        seq: e_seq,
                        what: Alteration::Epoch,
                    });
                }
                self.accept(&r, e_seq, e_prev, e_epoch, r.link.mac);
            } else if self.expect.as_ref().is_some_and(|e| e.prev_damaged) {
                self.report
                    .problems
                    .push(Problem::Unverifiable { seq: e_seq });
                self.accept(&r, e_seq, e_prev, e_epoch, r.link.mac);
            } else {
                self.diagnose(r, e_seq, e_prev, e_epoch);
            }
        } else if self.keys.k0.is_some() && self.links(&e_prev, e_epoch, e_seq, &r) {
            self.report.problems.push(Problem::Altered {
                seq: e_seq,
                what: Alteration::Seq,
            });
            self.accept(&r, e_seq, e_prev, e_epoch, r.link.mac);
        } else if eff > e_seq {
            self.ahead(r, eff, e_seq, e_prev, e_epoch);
        } else {
            self.behind(r, eff, e_seq, e_prev);
        }
    }

    fn first(&mut self, r: Record, eff: u64) {
        let seq_altered = eff != 0 && self.keys.k0.is_some() && self.links(&GENESIS_MAC, 0, 0, &r);
        let zero_later = (0..self.buffer.len()).any(|i| {
            let q = &self.buffer[i];
            self.eff_seq(q) == Some(0)
        });
        if eff == 0 || seq_altered || zero_later {
            self.expect = Some(Expect {
                seq: 0,
                prev: GENESIS_MAC,
                epoch: 0,
                prev_damaged: false,
            });
            self.buffer.push_front(r);
            self.step();
            return;
        }
        // The chain starts after 0: only a retention cut may explain it; check the first
        // entry once the cut's seal gives the MAC before it.
        self.pending_cut = Some(PendingCut {
            seq: eff,
            epoch: r.link.epoch,
            digest: r.digest(),
            mac: r.link.mac,
        });
        let (prev, epoch) = (r.link.mac, r.link.epoch);
        self.accept(&r, eff, prev, epoch, prev);
    }

    /// `r` did not link from the expected predecessor: tell why, with the next record.
    fn diagnose(&mut self, r: Record, seq: u64, prev: Mac, epoch: u32) {
        let r_mac = r.link.mac;
        let recomputed = self.mac_for(&prev, epoch, seq, &r.digest());
        let next = self.buffer.front().cloned();
        if let Some(n) = next.as_ref() {
            let n_eff = self.eff_seq(n);
            let epochs = [epoch, epoch + 1];
            if n_eff == Some(seq + 1) {
                for ne in epochs {
                    if self.links(&r_mac, ne, seq + 1, n) {
                        self.altered(seq, Alteration::Content);
                        self.accept_with_epoch(&r, seq, prev, r_mac, ne);
                        return;
                    }
                }
                if let Some(m) = recomputed {
                    for ne in epochs {
                        if self.links(&m, ne, seq + 1, n) {
                            self.altered(seq, Alteration::Mac);
                            self.accept_with_epoch(&r, seq, prev, m, ne);
                            return;
                        }
                    }
                }
                if self.links(&prev, epoch, seq, n) {
                    // n is the genuine `seq`, numbered one higher: r was inserted and the
                    // rest renumbered.
                    self.report
                        .problems
                        .push(Problem::Inserted { before_seq: seq });
                    self.shift += 1;
                    self.report.problems.push(Problem::Renumbered {
                        from: seq,
                        shift: self.shift,
                    });
                    return;
                }
                for ne in epochs {
                    if self.links(&r_mac, ne, seq + 2, n) {
                        // r is the genuine `seq + 1`, numbered one lower: `seq` was
                        // deleted and the rest renumbered.
                        self.missing(seq, seq);
                        self.shift -= 1;
                        self.report.problems.push(Problem::Renumbered {
                            from: seq + 1,
                            shift: self.shift,
                        });
                        self.accept_with_epoch(&r, seq + 1, prev, r_mac, ne);
                        return;
                    }
                }
            } else if n_eff == Some(seq) && self.links(&prev, epoch, seq, n) {
                self.report
                    .problems
                    .push(Problem::Inserted { before_seq: seq });
                return;
            }
        }
        if next.is_none() {
            // The last record: a seal tells where it thought it stood.
            if let Some(claimed) = self.claimed_seq(&r).filter(|&c| c > seq) {
                self.missing(seq, claimed - 1);
                self.shift -= i64::try_from(claimed - seq).unwrap_or(i64::MAX);
                self.report.problems.push(Problem::Renumbered {
                    from: claimed,
                    shift: self.shift,
                });
                return;
            }
        }
        self.altered(seq, Alteration::Unknown);
        let was_seal = r.looks_like_seal();
        self.accept(&r, seq, prev, epoch, r_mac);
        if let Some(e) = self.expect.as_mut() {
            e.prev_damaged = true;
            // A seal altered past recognition still ratcheted the key: the stored epoch of
            // the next record tells.
            if !was_seal {
                e.epoch = self.buffer.front().map_or(e.epoch, |n| {
                    if n.link.epoch == e.epoch + 1 {
                        n.link.epoch
                    } else {
                        e.epoch
                    }
                });
            }
        }
    }

    /// The seq a genuinely signed seal claims for itself.
    fn claimed_seq(&self, r: &Record) -> Option<u64> {
        let pk = self.keys.public_key.as_ref()?;
        match &r.body {
            Body::Full(bytes) if r.looks_like_seal() => match canonical::decode(bytes) {
                Ok(Entry::Seal(seal)) if chain::seal_signature_valid(&seal, pk) => {
                    Some(seal.through_seq)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// `r` is numbered past the expected seq.
    fn ahead(&mut self, r: Record, eff: u64, seq: u64, prev: Mac, epoch: u32) {
        let found = (0..self.buffer.len()).find(|&i| {
            let q = self.buffer[i].clone();
            self.eff_seq(&q) == Some(seq) && self.links(&prev, epoch, seq, &q)
        });
        if let Some(i) = found {
            self.report.problems.push(Problem::Reordered { seq });
            if let Some(q) = self.buffer.remove(i) {
                self.buffer.push_front(r);
                self.buffer.push_front(q);
            }
            self.step();
            return;
        }
        self.missing(seq, eff - 1);
        // The entries in between may have held seals: trust the stored epoch within the
        // bound that many seals allow.
        let gap = u32::try_from(eff - seq).unwrap_or(u32::MAX);
        let stored = r.link.epoch;
        let epoch = if stored >= epoch && stored - epoch <= gap {
            stored
        } else {
            epoch
        };
        let mac = r.link.mac;
        self.accept(&r, eff, mac, epoch, mac);
        if let Some(e) = self.expect.as_mut() {
            // r's own link could not be checked; what follows links from its stored MAC.
            e.prev_damaged = false;
        }
    }

    /// `r` is numbered before the expected seq.
    fn behind(&mut self, r: Record, eff: u64, seq: u64, prev: Mac) {
        if eff + 1 == seq && r.link.mac == prev {
            self.report.problems.push(Problem::Duplicated { seq: eff });
            return;
        }
        if let Some(i) = self
            .missing
            .iter()
            .position(|&(from, to)| from <= eff && eff <= to)
        {
            let (from, to) = self.missing[i];
            self.missing.remove(i);
            self.report
                .problems
                .retain(|p| *p != Problem::Missing { from, to });
            if from < eff {
                self.missing(from, eff - 1);
            }
            if eff < to {
                self.missing(eff + 1, to);
            }
            self.report.problems.push(Problem::Reordered { seq: eff });
            return;
        }
        self.report
            .problems
            .push(Problem::Inserted { before_seq: seq });
    }

    fn missing(&mut self, from: u64, to: u64) {
        self.missing.push((from, to));
        self.report.problems.push(Problem::Missing { from, to });
    }

    fn altered(&mut self, seq: u64, what: Alteration) {
        self.report.problems.push(Problem::Altered { seq, what });
    }

    fn accept_with_epoch(&mut self, r: &Record, seq: u64, prev: Mac, mac: Mac, next_epoch: u32) {
        let epoch = if r.looks_like_seal() {
            next_epoch.saturating_sub(1)
        } else {
            next_epoch
        };
        self.accept(r, seq, prev, epoch, mac);
        if let Some(e) = self.expect.as_mut() {
            e.epoch = next_epoch;
        }
    }

    /// Takes `r` as the entry at `seq` (epoch `epoch`, following `prev`); `mac` is what the
    /// next entry links from.
    fn accept(&mut self, r: &Record, seq: u64, prev: Mac, epoch: u32, mac: Mac) {
        let mut next_epoch = epoch;
        if r.looks_like_seal() {
            next_epoch = epoch.saturating_add(1);
            if let Body::Full(bytes) = &r.body {
                self.check_seal(bytes, seq, prev, epoch);
            }
        }
        self.expect = Some(Expect {
            seq: seq + 1,
            prev: mac,
            epoch: next_epoch,
            prev_damaged: false,
        });
    }

    fn check_seal(&mut self, bytes: &[u8], seq: u64, prev: Mac, epoch: u32) {
        let seal: Seal = match canonical::decode(bytes) {
            Ok(Entry::Seal(seal)) => seal,
            Ok(_) => return,
            Err(e) => {
                self.report.problems.push(Problem::BadSeal {
                    seq,
                    fault: SealFault::Undecodable(e),
                });
                return;
            }
        };
        let mut faults = Vec::new();
        match self.chain_id {
            Some(id) if id != seal.chain_id => faults.push(SealFault::WrongChain),
            Some(_) => {}
            None => self.chain_id = Some(seal.chain_id),
        }
        if seal.through_seq != seq {
            faults.push(SealFault::WrongPosition {
                claimed: seal.through_seq,
            });
        }
        // The first kept entry after a retention cut has no checked predecessor.
        let anchored = self.pending_cut.as_ref().is_none_or(|c| c.seq != seq);
        if anchored && seal.head_mac != prev {
            faults.push(SealFault::HeadMismatch);
        }
        if let Some(pk) = &self.keys.public_key
            && !chain::seal_signature_valid(&seal, pk)
        {
            faults.push(SealFault::BadSignature);
        }
        if seal.epoch < epoch {
            faults.push(SealFault::EpochBehind {
                seal_epoch: seal.epoch,
                entries_epoch: epoch,
            });
        }
        let ahead = seal.epoch > epoch;
        if ahead {
            self.report.problems.push(Problem::SealEpochAhead {
                seq,
                seal_epoch: seal.epoch,
                entries_epoch: epoch,
            });
        }
        let good = faults.is_empty() && !ahead;
        for fault in faults {
            self.report.problems.push(Problem::BadSeal { seq, fault });
        }
        if let SealKind::RetentionCut {
            cut_seq,
            cut_prev_mac,
            cut_epoch,
        } = seal.kind
        {
            self.report.retention_cut = Some(cut_seq);
            if let Some(cut) = self.pending_cut.take_if(|c| c.seq == cut_seq) {
                let linked = cut.epoch == cut_epoch
                    && self
                        .mac_for(&cut_prev_mac, cut_epoch, cut.seq, &cut.digest)
                        .is_none_or(|m| m == cut.mac);
                if !linked {
                    self.altered(cut.seq, Alteration::Unknown);
                }
            }
        }
        if good {
            self.report.good_seals += 1;
            self.report.last_good_seal = Some(seq);
        }
    }
}

/// Verifies a whole sequence of records.
pub fn verify_all(keys: VerifyKeys, records: impl IntoIterator<Item = Record>) -> Report {
    let mut v = Verifier::new(keys);
    for r in records {
        v.push(r);
    }
    v.finish()
}
