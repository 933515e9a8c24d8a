//! Journal tests: crash cuts, corruption, concurrency, keys, and a model-based proptest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corruption;
mod crash;
mod model;
mod readers;
mod retention;
mod writing;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use proto::model::{AuthFactor, ConnectionEvent, Entry, EventKind};
use time::{Duration, OffsetDateTime};

use super::cursor::{Cursor, Step};
use super::format::HEADER_BYTES;
use super::{JournalConfig, JournalReader, PendingEntry, StoredEntry, VerifierKeys, files};

/// A base instant far from the real clock, so entries and seals are told apart by time.
pub(super) fn base_time() -> OffsetDateTime {
    time::macros::datetime!(2024-03-01 09:00 UTC)
}

/// A realistic connection event (about 300 bytes), varied by `i`.
pub(super) fn event_bytes(i: u64, raw_extra: usize, received_at: OffsetDateTime) -> Vec<u8> {
    let event = ConnectionEvent {
        kind: if i.is_multiple_of(3) {
            EventKind::SessionStart
        } else {
            EventKind::AuthSuccess
        },
        tenant: "chu-nord".into(),
        source: "bastion-1.chu-nord.example".into(),
        vendor: Some("medimaint".into()),
        person: Some(format!("j.durand{i}@medimaint.example")),
        account: Some("maint_irm".into()),
        target: Some("irm-console-3".into()),
        protocol: Some("ssh".into()),
        source_addr: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8))),
        session_id: Some(format!("s-{i:08}")),
        factors: vec![AuthFactor::PublicKey, AuthFactor::Otp],
        occurred_at: received_at - Duration::milliseconds(20),
        received_at,
        raw: format!(
            "<38>1 2024-03-01T09:00:00Z bastion-1 sshd 812 - - Accepted publickey for maint_irm from 203.0.113.{} {}",
            i % 250,
            "x".repeat(raw_extra)
        )
        .into_bytes(),
    };
    proto::canonical::encode(&Entry::Event(event))
}

pub(super) fn pending(i: u64, received_at: OffsetDateTime) -> PendingEntry {
    PendingEntry {
        canonical: event_bytes(i, 0, received_at),
        received_at,
    }
}

/// Small segments, no periodic seal.
pub(super) fn small_config(dir: &Path, segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        seal_interval: None,
        max_entry_bytes: 512,
        max_batch_bytes: 64 << 10,
        ..JournalConfig::new(dir)
    }
}

/// The segment files in `dir`, in seq order.
pub(super) fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    paths
}

/// Every entry of the journal in `dir`, or the first error.
pub(super) fn read_all(dir: &Path) -> Result<Vec<StoredEntry>, super::JournalError> {
    JournalReader::open(dir)?.scan_seq(0..=u64::MAX).collect()
}

/// Asserts that the journal in `dir` verifies end to end with the verifier's keys.
pub(super) fn assert_chain_intact(dir: &Path, keys: &VerifierKeys) {
    let entries = read_all(dir).unwrap();
    let report = proto::verify::verify_all(keys.verify_keys(), entries.into_iter().map(Into::into));
    assert!(report.is_intact(), "{:?}", report.problems);
}

/// A record found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rec {
    pub(super) offset: u64,
    pub(super) end: u64,
    pub(super) seq: u64,
    pub(super) seal: bool,
}

/// The records of a segment file, read with the journal's own cursor.
pub(super) fn records(path: &Path) -> Vec<Rec> {
    let first_seq: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut cursor = Cursor::new(File::open(path).unwrap(), path, HEADER_BYTES, first_seq).unwrap();
    let mut out = Vec::new();
    while let Step::Record {
        offset,
        bytes,
        meta,
    } = cursor.step().unwrap()
    {
        out.push(Rec {
            offset,
            end: offset + bytes,
            seq: meta.link.seq,
            seal: super::format::is_seal(cursor.entry()),
        });
    }
    out
}

/// The segment files of `dir`, in order.
pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    files::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// A snapshot of a directory's regular files.
pub(super) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Writes a snapshot into an empty directory.
pub(super) fn restore(snapshot: &BTreeMap<String, Vec<u8>>, dir: &Path) {
    for (name, bytes) in snapshot {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Flips one bit of a file.
pub(super) fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x10;
    fs::write(path, bytes).unwrap();
}
