//! Recovery on open: what the writer trusts before it appends again.
//!
//! - Every segment's header is checked (magic, version, CRC, chain id, first seq equal to
//!   the file name's), and consecutive segments must continue each other's seqs: the next
//!   seq of a closed segment comes from its index summary, or from scanning it when the
//!   index is missing or damaged (the index is then rewritten).
//! - The last segment is read record by record. Where its data stops (a zero length, the
//!   end of the file, or a bad record) the rest of the file is examined: all zeroes is a
//!   clean end; bytes that hold no valid record are a **torn tail**, zeroed (so the
//!   segment is pre-zeroed again past its end) and reported; a valid record after a bad
//!   one is **corruption** and an error naming segment, offset and seq.
//! - The chain head is the one after the last record (a seal ratchets the epoch).
//!
//! Closed segments are not re-read record by record on every open (18 months of them);
//! scans check every record they read.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use proto::chain::{ChainHead, Link};

use super::TornTail;
use super::cursor::{self, Cursor, Step};
use super::error::{Corruption, JournalError, io};
use super::files::{self, DATA_MODE, SegmentFile};
use super::format::{self, HEADER_BYTES, PREFIX_BYTES, Prefix};
use super::index::{self, SegmentIndex};

/// Bytes read at a time when looking past the end of data.
const PROBE_CHUNK: usize = 1 << 20;

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct OpenSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Where the next record goes.
    pub(crate) end: u64,
    /// The file's pre-allocated size.
    pub(crate) capacity: u64,
    pub(crate) index: SegmentIndex,
}

/// What recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) head: ChainHead,
    /// Whether the last record is a seal (or there is none).
    pub(crate) sealed: bool,
    pub(crate) open: OpenSegment,
    pub(crate) segments: usize,
    pub(crate) torn_tail: Option<TornTail>,
    pub(crate) rebuilt_indexes: Vec<PathBuf>,
}

/// The last record of a segment: its link and whether it is a seal.
type Last = Option<(Link, bool)>;

/// Recovers the journal in `dir` whose chain is `chain_id`; the last segment is extended
/// with zeroes to `segment_bytes` if it is shorter.
pub(crate) fn recover(
    dir: &Path,
    chain_id: [u8; 16],
    segment_bytes: u64,
) -> Result<Recovered, JournalError> {
    let segments = files::list_segments(dir)?;
    let Some((last_seg, closed)) = segments.split_last() else {
        return Err(JournalError::NoSegments {
            dir: dir.to_path_buf(),
        });
    };
    let mut rebuilt_indexes = Vec::new();
    let mut next_seq: Option<u64> = None;
    for seg in closed {
        let file = File::open(&seg.path).map_err(io("open", &seg.path))?;
        cursor::read_header(&file, &seg.path, Some(chain_id), seg.first_seq)?;
        check_continues(seg, next_seq)?;
        let idx_path = files::index_path(dir, seg.first_seq);
        let summary = index::read_summary(&idx_path)
            .filter(|s| s.chain_id == chain_id && s.first_seq == seg.first_seq);
        next_seq = Some(match summary {
            Some(s) => s.next_seq,
            None => {
                let (idx, _) = scan_closed(file, seg, chain_id)?;
                write_index(dir, &idx, files::Durability::Bytes)?;
                tracing::info!(segment = %seg.path.display(), "journal index rebuilt");
                rebuilt_indexes.push(idx_path);
                idx.summary.next_seq
            }
        });
    }

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last_seg.path)
        .map_err(io("open", &last_seg.path))?;
    cursor::read_header(&file, &last_seg.path, Some(chain_id), last_seg.first_seq)?;
    check_continues(last_seg, next_seq)?;
    let (index, mut last, end, torn_tail) = scan_last(&file, last_seg, chain_id)?;
    // An index of the open segment is from a crash during a roll: it would go stale.
    let stale = files::index_path(dir, last_seg.first_seq);
    match std::fs::remove_file(&stale) {
        Ok(()) => tracing::info!(index = %stale.display(), "stale journal index removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &stale)(e)),
    }

    // An empty last segment: the head is after the last record of an earlier one.
    for seg in closed.iter().rev() {
        if last.is_some() {
            break;
        }
        let f = File::open(&seg.path).map_err(io("open", &seg.path))?;
        last = scan_closed(f, seg, chain_id)?.1;
    }
    let first_seq = segments.first().map_or(0, |s| s.first_seq);
    let (head, sealed) = match last {
        Some((link, seal)) => (ChainHead::after(chain_id, &link, seal), seal),
        None if first_seq == 0 => (ChainHead::genesis(chain_id), true),
        None => {
            return Err(JournalError::Corrupt {
                segment: last_seg.path.clone(),
                offset: HEADER_BYTES,
                seq: first_seq,
                what: Corruption::Seq { found: first_seq },
            });
        }
    };

    let file_len = file.metadata().map_err(io("stat", &last_seg.path))?.len();
    let capacity = file_len.max(segment_bytes);
    files::zero_fill(&file, &last_seg.path, file_len, capacity, None)?;
    Ok(Recovered {
        head,
        sealed,
        open: OpenSegment {
            file,
            path: last_seg.path.clone(),
            end,
            capacity,
            index,
        },
        segments: segments.len(),
        torn_tail,
        rebuilt_indexes,
    })
}

/// Writes a closed segment's index file beside it. The index is checked (CRCs) when read
/// and rebuilt when missing or damaged, so `durability` may be [`files::Durability::None`]
/// where an fsync would cost more than a rebuild after a crash (the writer's roll).
pub(crate) fn write_index(
    dir: &Path,
    idx: &SegmentIndex,
    durability: files::Durability,
) -> Result<(), JournalError> {
    let name = format!("{:020}.idx", idx.summary.first_seq);
    files::write_atomic(dir, &name, &idx.encode(), DATA_MODE, durability)
}

fn check_continues(seg: &SegmentFile, next_seq: Option<u64>) -> Result<(), JournalError> {
    match next_seq {
        Some(expected) if expected != seg.first_seq => Err(JournalError::Corrupt {
            segment: seg.path.clone(),
            offset: 0,
            seq: expected,
            what: Corruption::Seq {
                found: seg.first_seq,
            },
        }),
        _ => Ok(()),
    }
}

/// Reads a closed segment whole: any bad record is corruption.
fn scan_closed(
    file: File,
    seg: &SegmentFile,
    chain_id: [u8; 16],
) -> Result<(SegmentIndex, Last), JournalError> {
    let mut cursor = Cursor::new(file, &seg.path, HEADER_BYTES, seg.first_seq)?;
    let mut idx = SegmentIndex::new(chain_id, seg.first_seq, HEADER_BYTES);
    let mut last = None;
    loop {
        match cursor.step()? {
            Step::Record {
                offset,
                bytes,
                meta,
            } => {
                idx.push(meta.link.seq, offset, bytes, meta.received_nanos);
                last = Some((meta.link, format::is_seal(cursor.entry())));
            }
            Step::End => return Ok((idx, last)),
            Step::Bad(what) => {
                return Err(JournalError::Corrupt {
                    segment: seg.path.clone(),
                    offset: cursor.offset(),
                    seq: cursor.expected_seq(),
                    what,
                });
            }
        }
    }
}

/// Reads the last segment, repairing a torn tail; returns its index, last record, the
/// end of its data and the torn tail found.
fn scan_last(
    file: &File,
    seg: &SegmentFile,
    chain_id: [u8; 16],
) -> Result<(SegmentIndex, Last, u64, Option<TornTail>), JournalError> {
    let reader = file.try_clone().map_err(io("open", &seg.path))?;
    let mut cursor = Cursor::new(reader, &seg.path, HEADER_BYTES, seg.first_seq)?;
    let mut idx = SegmentIndex::new(chain_id, seg.first_seq, HEADER_BYTES);
    let mut last = None;
    let stop = loop {
        match cursor.step()? {
            Step::Record {
                offset,
                bytes,
                meta,
            } => {
                idx.push(meta.link.seq, offset, bytes, meta.received_nanos);
                last = Some((meta.link, format::is_seal(cursor.entry())));
            }
            Step::End => break None,
            Step::Bad(what) => break Some(what),
        }
    };
    let end = cursor.offset();
    let seq = cursor.expected_seq();
    let file_len = cursor.file_len();
    // A record whose CRC holds but whose seq, epoch or time is wrong was written that
    // way: no torn write explains it.
    if let Some(
        what @ (Corruption::Seq { .. } | Corruption::Epoch { .. } | Corruption::Time { .. }),
    ) = stop
    {
        return Err(JournalError::Corrupt {
            segment: seg.path.clone(),
            offset: end,
            seq,
            what,
        });
    }
    let Some(dirty_end) = last_nonzero(file, &seg.path, end, file_len)? else {
        // Only zeroes after the end: a clean end. (A bad record is never all zeroes.)
        return Ok((idx, last, end, None));
    };
    if let Some((next_offset, next_seq)) = valid_record_after(file, &seg.path, end, dirty_end, seq)?
    {
        return Err(JournalError::Corrupt {
            segment: seg.path.clone(),
            offset: end,
            seq,
            what: Corruption::ValidAfter {
                cause: Box::new(stop.unwrap_or(Corruption::EndMarker)),
                next_offset,
                next_seq,
            },
        });
    }
    files::zero_fill(file, &seg.path, end, dirty_end, None)?;
    let torn = TornTail {
        segment: seg.path.clone(),
        offset: end,
        discarded_bytes: dirty_end - end,
        next_seq: seq,
    };
    tracing::warn!(
        segment = %torn.segment.display(),
        offset = torn.offset,
        discarded_bytes = torn.discarded_bytes,
        next_seq = torn.next_seq,
        cause = %stop.unwrap_or(Corruption::EndMarker),
        "journal torn tail truncated"
    );
    Ok((idx, last, end, Some(torn)))
}

/// One past the last non-zero byte of `file` in `[from, to)`, if any.
pub(crate) fn last_nonzero(
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<Option<u64>, JournalError> {
    let mut buf = vec![0u8; PROBE_CHUNK];
    let mut found = None;
    let mut at = from;
    while at < to {
        let want = usize::try_from(to - at).map_or(buf.len(), |n| n.min(buf.len()));
        let n = files::read_at_most(file, &mut buf[..want], at).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            found = Some(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(found)
}

/// Looks for a record with a good CRC and a plausible seq starting in `(from, to)`.
pub(crate) fn valid_record_after(
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
    expected_seq: u64,
) -> Result<Option<(u64, u64)>, JournalError> {
    let file_len = file.metadata().map_err(io("stat", path))?.len();
    // However the records are laid out, no more than this many fit between from and to.
    let max_seq = expected_seq + (to - from) / format::record_bytes(format::MIN_ENTRY_BYTES) + 1;
    let peek = PREFIX_BYTES + 8;
    let mut window = vec![0u8; PROBE_CHUNK + peek];
    let mut body = Vec::new();
    let mut base = from + 1;
    while base < to {
        let n = files::read_at_most(file, &mut window, base).map_err(io("read", path))?;
        let span = usize::try_from(to - base).map_or(PROBE_CHUNK, |s| s.min(PROBE_CHUNK));
        for i in 0..span.min(n) {
            let Some(head) = window.get(i..i + peek) else {
                break;
            };
            let at = base + i as u64;
            let Ok(Prefix::Record { body_len, crc }) =
                Prefix::decode(&format::array(head), file_len - at)
            else {
                continue;
            };
            let Some(seq) = format::peek_seq(&head[PREFIX_BYTES..]) else {
                continue;
            };
            if !(expected_seq..=max_seq).contains(&seq) {
                continue;
            }
            body.resize(body_len as usize, 0);
            let got = files::read_at_most(file, &mut body, at + PREFIX_BYTES as u64)
                .map_err(io("read", path))?;
            if got == body.len() && format::decode_body(&body, crc).is_ok() {
                return Ok(Some((at, seq)));
            }
        }
        base += PROBE_CHUNK as u64;
    }
    Ok(None)
}
