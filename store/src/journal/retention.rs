//! Retention of the journal: retention-cut seals and the deletion of old segments.
//!
//! ```text
//!  segments:  00…000.seg   00…120.seg   00…250.seg   00…390.seg (open)
//!             [0, 120)     [120, 250)   [250, 390)   [390, …)
//!  seal_retention_cut(250)     → seal RetentionCut { cut_seq 250, cut_prev_mac mac_249,
//!                                cut_epoch epoch_250 } appended at the head, durable,
//!                                state file rewritten (the key ratchets as for any seal)
//!  drop_segments_before(300)   → deletes 00…000.seg and 00…120.seg (and their .idx):
//!                                every record < 250 ≤ 300, the next segment starts at 250
//!                                and a retention-cut seal names 250; the open segment
//!                                never goes
//!  after:     00…250.seg   00…390.seg      the chain starts at 250; verify checks
//!                                          entry 250 against the seal's cut_prev_mac
//! ```
//!
//! A cut may be any seq the journal holds (PostgreSQL cuts at partition boundaries); the
//! journal only deletes whole segments, so it deletes up to a segment start that a seal
//! names exactly (the caller writes that seal first). Segments are deleted oldest first,
//! the directory fsynced after each: a crash in between leaves a journal that starts at
//! an intermediate segment, which recovery accepts and the next call finishes (until then
//! its verification reports the entries before that segment missing).
//!
//! Deleting while readers of the same journal scan the old segments makes those scans fail
//! with a "cannot open" error; the collector deletes only when no server holds the journal.

use std::path::PathBuf;

use proto::chain::Link;
use proto::model::{Entry, SealKind};

use super::Journal;
use super::error::{JournalError, io};
use super::files;
use super::writer::Request;

/// What [`Journal::drop_segments_before`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedSegments {
    /// The segment files deleted, oldest first.
    pub segments: Vec<PathBuf>,
    /// Entries they held (`seq < first_kept`).
    pub entries: u64,
    /// The journal's first seq now.
    pub first_kept: u64,
}

pub(crate) fn first_seqs(dir: &std::path::Path) -> Result<Vec<u64>, JournalError> {
    Ok(files::list_segments(dir)?
        .into_iter()
        .map(|s| s.first_seq)
        .collect())
}

impl Journal {
    /// The first seq of each segment, in order (the last is the one being written).
    ///
    /// # Errors
    /// [`JournalError::Io`], [`JournalError::SegmentName`].
    pub fn segment_first_seqs(&self) -> Result<Vec<u64>, JournalError> {
        first_seqs(&self.inner.dir)
    }

    /// Writes a retention-cut seal `RetentionCut { cut_seq, cut_prev_mac, cut_epoch }`,
    /// with the MAC of entry `cut_seq - 1` and the epoch of entry `cut_seq` read from the
    /// journal, and returns its link once it is durable and the state file rewritten.
    ///
    /// The cut may be any seq the journal holds; to delete segments behind it, it must be
    /// the first seq of a segment (see [`Journal::drop_segments_before`]).
    ///
    /// # Errors
    /// [`JournalError::Retention`] if `cut_seq` is 0 (nothing to cut), not a durable entry
    /// yet, or before the journal's first entry (already cut); read errors of the two
    /// entries; as [`Journal::seal_now`].
    pub fn seal_retention_cut(&self, cut_seq: u64) -> Result<Link, JournalError> {
        self.write_cut(cut_seq, None)
    }

    /// Writes the retention-cut seal another ledger of this chain asks for (PostgreSQL's
    /// retention plan: `store::pg::ChainCut`), with the MAC of entry `cut_seq - 1` and the
    /// epoch of entry `cut_seq` as that ledger holds them. While the journal still holds
    /// those entries they must agree; once it no longer does (its segments went first),
    /// the values are taken as given: a wrong one makes verification of the cut fail, it
    /// cannot hide anything.
    ///
    /// # Errors
    /// As [`Journal::seal_retention_cut`], and [`JournalError::Retention`] when the
    /// journal's entries disagree with the values given.
    pub fn seal_retention_cut_as(
        &self,
        cut_seq: u64,
        cut_prev_mac: [u8; 32],
        cut_epoch: u32,
    ) -> Result<Link, JournalError> {
        self.write_cut(cut_seq, Some((cut_prev_mac, cut_epoch)))
    }

    fn write_cut(
        &self,
        cut_seq: u64,
        given: Option<([u8; 32], u32)>,
    ) -> Result<Link, JournalError> {
        self.check_open()?;
        let refuse = |what: String| JournalError::Retention { seq: cut_seq, what };
        if cut_seq == 0 {
            return Err(refuse("a cut at seq 0 removes nothing".into()));
        }
        let next_seq = self.head().next_seq;
        if cut_seq >= next_seq {
            return Err(refuse(format!(
                "the journal's durable entries end before it (next seq {next_seq})"
            )));
        }
        let links: Vec<Link> = self
            .reader()
            .scan_seq(cut_seq - 1..=cut_seq)
            .map(|e| e.map(|e| e.link))
            .collect::<Result<_, _>>()?;
        let (cut_prev_mac, cut_epoch) = match (&links[..], given) {
            ([before, first_kept], None) => (before.mac, first_kept.epoch),
            ([before, first_kept], Some((mac, epoch))) => {
                if (before.mac, first_kept.epoch) != (mac, epoch) {
                    return Err(refuse(format!(
                        "the cut asked for does not match the journal: entry {} has another MAC, \
                         or entry {cut_seq} is of epoch {} (not {epoch})",
                        cut_seq - 1,
                        first_kept.epoch
                    )));
                }
                (mac, epoch)
            }
            (_, Some(given)) => given,
            (_, None) => {
                let first = first_seqs(&self.inner.dir)?.first().copied().unwrap_or(0);
                return Err(refuse(format!(
                    "entry {} is not in the journal (it starts at seq {first})",
                    cut_seq - 1
                )));
            }
        };
        let kind = SealKind::RetentionCut {
            cut_seq,
            cut_prev_mac,
            cut_epoch,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Request::Seal {
            kind,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })?;
        let link = rx.recv().unwrap_or(Err(JournalError::WriterPanicked))?;
        tracing::info!(cut_seq, seal_seq = link.seq, "journal retention cut sealed");
        Ok(link)
    }

    /// Deletes the closed segments whose records are all below `seq`, oldest first, with
    /// their index files; never the segment being written. The first segment kept must
    /// start at a cut a durable retention-cut seal of this journal names, else nothing is
    /// deleted.
    ///
    /// # Errors
    /// [`JournalError::Retention`] when no retention-cut seal names the first seq kept;
    /// [`JournalError::Io`] (the segments before the failing one are gone);
    /// read errors while looking for the seal.
    pub fn drop_segments_before(&self, seq: u64) -> Result<DroppedSegments, JournalError> {
        self.check_open()?;
        let dir = &self.inner.dir;
        let segments = files::list_segments(dir)?;
        // A segment may go when the next one starts at or below `seq`; the last never.
        let n = segments
            .windows(2)
            .take_while(|pair| pair[1].first_seq <= seq)
            .count();
        let (Some(first), Some(kept)) = (segments.first(), segments.get(n)) else {
            return Ok(DroppedSegments::default());
        };
        let first_kept = kept.first_seq;
        if n == 0 {
            return Ok(DroppedSegments {
                first_kept,
                ..DroppedSegments::default()
            });
        }
        if !self.has_cut_seal(first_kept)? {
            return Err(JournalError::Retention {
                seq: first_kept,
                what: format!(
                    "no retention-cut seal names seq {first_kept} (the first seq kept): \
                     write one with seal_retention_cut first"
                ),
            });
        }
        let mut dropped = DroppedSegments {
            segments: Vec::with_capacity(n),
            entries: first_kept - first.first_seq,
            first_kept,
        };
        for seg in &segments[..n] {
            std::fs::remove_file(&seg.path).map_err(io("remove", &seg.path))?;
            let idx = files::index_path(dir, seg.first_seq);
            match std::fs::remove_file(&idx) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &idx)(e)),
            }
            // Oldest first, each deletion durable before the next: the journal always
            // starts at a segment boundary.
            files::sync_dir(dir)?;
            tracing::info!(segment = %seg.path.display(), "journal segment dropped by retention");
            dropped.segments.push(seg.path.clone());
        }
        Ok(dropped)
    }

    /// Whether a durable retention-cut seal names `cut_seq`. Seals come after their cut
    /// and retention seals are recent: the segments are searched newest first.
    fn has_cut_seal(&self, cut_seq: u64) -> Result<bool, JournalError> {
        let reader = self.reader();
        let chain_id = self.chain_id();
        let mut end = u64::MAX;
        for start in first_seqs(&self.inner.dir)?.into_iter().rev() {
            if end <= cut_seq {
                break;
            }
            for e in reader.scan_seq(start.max(cut_seq)..=end) {
                let e = e?;
                if !e.is_seal() {
                    continue;
                }
                if let Ok(Entry::Seal(seal)) = proto::canonical::decode(&e.canonical)
                    && seal.chain_id == chain_id
                    && matches!(seal.kind, SealKind::RetentionCut { cut_seq: c, .. } if c == cut_seq)
                {
                    return Ok(true);
                }
            }
            end = start.saturating_sub(1);
        }
        Ok(false)
    }
}
