//! Reading a journal: streaming scans by seq range and by `received_at` range.
//!
//! A scan lists the segments when it starts, uses the index files to find where to begin
//! (seq) or which blocks to read (time; a block's min/max decides, since `received_at`
//! may go backwards), and reads records one at a time through a buffered reader: memory
//! stays bounded by one read buffer and one record, whatever the range. Every record read
//! is checked (CRC, seq, epoch); consecutive segments must continue each other's seqs.
//!
//! Readers never write. A reader opened with [`JournalReader::open`] may run beside the
//! writer, in another process: it stops cleanly at the end of the data. A bad record in
//! the last segment is taken for that end (a write in progress, or a torn tail recovery
//! will truncate) unless a valid record follows it and it is still bad when read again:
//! that is corruption, as anywhere else. A reader from
//! [`Journal::reader`](super::Journal::reader) stops at the durable end the writer
//! published when the scan started, and any bad record before it is an error.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::StoredEntry;
use super::cursor::{self, Cursor, Step};
use super::error::{Corruption, JournalError, io};
use super::files::{self, SegmentFile};
use super::format::HEADER_BYTES;
use super::index::{self, Block};
use super::recovery;
use super::writer::Shared;

/// Reads a journal directory.
#[derive(Debug, Clone)]
pub struct JournalReader {
    dir: PathBuf,
    chain_id: [u8; 16],
    durable: Option<Arc<Shared>>,
}

impl JournalReader {
    /// Opens the journal in `dir` for reading (nothing is written, nothing locked).
    ///
    /// # Errors
    /// [`JournalError::NoSegments`] if `dir` holds no segment, [`JournalError::BadHeader`]
    /// if the first one is not a segment, [`JournalError::Io`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        let dir = dir.as_ref();
        let segments = files::list_segments(dir)?;
        let first = segments.first().ok_or_else(|| JournalError::NoSegments {
            dir: dir.to_path_buf(),
        })?;
        let file = File::open(&first.path).map_err(io("open", &first.path))?;
        let header = cursor::read_header(&file, &first.path, None, first.first_seq)?;
        Ok(JournalReader {
            dir: dir.to_path_buf(),
            chain_id: header.chain_id,
            durable: None,
        })
    }

    pub(crate) fn bounded(dir: PathBuf, chain_id: [u8; 16], durable: Arc<Shared>) -> Self {
        JournalReader {
            dir,
            chain_id,
            durable: Some(durable),
        }
    }

    /// The first seq of each segment, in order (the last is the one being written).
    ///
    /// # Errors
    /// [`JournalError::Io`], [`JournalError::SegmentName`].
    pub fn segment_first_seqs(&self) -> Result<Vec<u64>, JournalError> {
        super::retention::first_seqs(&self.dir)
    }

    /// The chain's identifier (from the segment headers).
    pub fn chain_id(&self) -> [u8; 16] {
        self.chain_id
    }

    /// The entries whose seq is in `range`, in seq order.
    pub fn scan_seq(&self, range: RangeInclusive<u64>) -> Scan {
        self.scan(Filter::Seq {
            start: *range.start(),
            end: *range.end(),
        })
    }

    /// The entries received in `[from, to)`, in seq order.
    pub fn scan_time(&self, from: OffsetDateTime, to: OffsetDateTime) -> Scan {
        let clamp = |t: OffsetDateTime| {
            let nanos = t.unix_timestamp_nanos();
            i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
        };
        self.scan(Filter::Time {
            from: clamp(from),
            to: clamp(to),
        })
    }

    fn scan(&self, filter: Filter) -> Scan {
        Scan {
            dir: self.dir.clone(),
            chain_id: self.chain_id,
            filter,
            limit: self.durable.as_ref().map(|s| s.durable_head().next_seq),
            segments: None,
            next: 0,
            current: None,
            recheck: None,
            done: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Filter {
    Seq { start: u64, end: u64 },
    Time { from: i64, to: i64 },
}

/// A run of records to read: from `offset` (where `first_seq` is), `count` records or to
/// the end of the segment.
#[derive(Debug, Clone, Copy)]
struct Run {
    offset: u64,
    first_seq: u64,
    count: Option<u64>,
}

#[derive(Debug)]
struct Current {
    cursor: Cursor,
    runs: VecDeque<Run>,
    left: Option<u64>,
    last: bool,
}

/// A streaming scan: an iterator of entries, ending after the first error.
#[derive(Debug)]
pub struct Scan {
    dir: PathBuf,
    chain_id: [u8; 16],
    filter: Filter,
    /// The first seq not known durable (bounded readers only).
    limit: Option<u64>,
    segments: Option<Vec<SegmentFile>>,
    next: usize,
    current: Option<Current>,
    /// A bad record in the last segment with a valid one after it, being read again:
    /// `(offset, next_offset, next_seq)`.
    recheck: Option<(u64, u64, u64)>,
    done: bool,
}

impl Iterator for Scan {
    type Item = Result<StoredEntry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                self.current = None;
                None
            }
            Err(e) => {
                self.done = true;
                self.current = None;
                Some(Err(e))
            }
        }
    }
}

impl Scan {
    fn advance(&mut self) -> Result<Option<StoredEntry>, JournalError> {
        if self.segments.is_none() {
            let segments = files::list_segments(&self.dir)?;
            self.next = match self.filter {
                Filter::Seq { start, .. } => segments
                    .partition_point(|s| s.first_seq <= start)
                    .saturating_sub(1),
                Filter::Time { .. } => 0,
            };
            self.segments = Some(segments);
        }
        loop {
            let Some(cur) = self.current.as_mut() else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            if cur.left == Some(0) {
                match cur.runs.pop_front() {
                    Some(run) => {
                        cur.cursor.seek(run.offset, run.first_seq)?;
                        cur.left = run.count;
                    }
                    None => self.current = None,
                }
                continue;
            }
            match cur.cursor.step()? {
                Step::Record { meta, .. } => {
                    let seq = meta.link.seq;
                    if self.limit.is_some_and(|limit| seq >= limit) {
                        return Ok(None);
                    }
                    if let Some(left) = cur.left.as_mut() {
                        *left -= 1;
                    }
                    let wanted = match self.filter {
                        Filter::Seq { start, end } => {
                            if seq > end {
                                return Ok(None);
                            }
                            seq >= start
                        }
                        Filter::Time { from, to } => (from..to).contains(&meta.received_nanos),
                    };
                    if !wanted {
                        continue;
                    }
                    let received_at =
                        OffsetDateTime::from_unix_timestamp_nanos(i128::from(meta.received_nanos))
                            .map_err(|_| JournalError::Corrupt {
                                segment: cur.cursor.path().to_path_buf(),
                                offset: cur.cursor.offset(),
                                seq,
                                what: Corruption::Time {
                                    nanos: meta.received_nanos,
                                },
                            })?;
                    return Ok(Some(StoredEntry {
                        link: meta.link,
                        received_at,
                        canonical: cur.cursor.entry().to_vec(),
                    }));
                }
                Step::End => {
                    let expected = cur.cursor.expected_seq();
                    if let Some(left) = cur.left.filter(|&n| n > 0) {
                        return Err(self.corrupt(Corruption::IndexAhead {
                            next_seq: expected + left,
                        }));
                    }
                    let last = cur.last;
                    self.current = None;
                    if self.filter_done(expected) {
                        return Ok(None);
                    }
                    self.check_next_segment(expected, last)?;
                }
                Step::Bad(what) => {
                    let expected = cur.cursor.expected_seq();
                    let durable = self.limit.is_some_and(|limit| expected < limit);
                    if !cur.last || durable {
                        return Err(self.corrupt(what));
                    }
                    if self.limit.is_none() {
                        // A torn tail or a write in progress, unless a valid record follows.
                        let offset = cur.cursor.offset();
                        if let Some((at, next_offset, next_seq)) = self.recheck.take()
                            && at == offset
                        {
                            return Err(self.corrupt(Corruption::ValidAfter {
                                cause: Box::new(what),
                                next_offset,
                                next_seq,
                            }));
                        }
                        let (file, path) = (cur.cursor.file(), cur.cursor.path());
                        let dirty_end =
                            recovery::last_nonzero(file, path, offset, cur.cursor.file_len())?;
                        let valid = match dirty_end {
                            Some(to) => {
                                recovery::valid_record_after(file, path, offset, to, expected)?
                            }
                            None => None,
                        };
                        if let Some((next_offset, next_seq)) = valid {
                            // Read the bad record once more: a write in progress that
                            // reached a later record has completed it by now.
                            self.recheck = Some((offset, next_offset, next_seq));
                            continue;
                        }
                    }
                    tracing::debug!(
                        segment = %cur.cursor.path().display(),
                        offset = cur.cursor.offset(),
                        cause = %what,
                        "journal scan stops at the end of the last segment"
                    );
                    return Ok(None);
                }
            }
        }
    }

    /// Whether nothing after `next_seq` can match.
    fn filter_done(&self, next_seq: u64) -> bool {
        let past_range = matches!(self.filter, Filter::Seq { end, .. } if next_seq > end);
        past_range || self.limit.is_some_and(|limit| next_seq >= limit)
    }

    /// After reading a segment to its end: the next one must start at `expected`. At the
    /// end of the last listed segment, a bounded scan lists again (the writer may have
    /// rolled since the scan started).
    fn check_next_segment(&mut self, expected: u64, last: bool) -> Result<(), JournalError> {
        if last {
            let Some(limit) = self.limit.filter(|&limit| expected < limit) else {
                return Ok(());
            };
            let segments = files::list_segments(&self.dir)?;
            let pos = segments.partition_point(|s| s.first_seq < expected);
            if pos == segments.len() {
                let segment = segments.last().map(|s| s.path.clone()).unwrap_or_default();
                return Err(JournalError::Corrupt {
                    segment,
                    offset: 0,
                    seq: expected,
                    what: Corruption::DurableMissing {
                        durable_next_seq: limit,
                    },
                });
            }
            self.next = pos;
            self.segments = Some(segments);
        }
        match self.segments.as_ref().and_then(|s| s.get(self.next)) {
            Some(next) if next.first_seq != expected => Err(JournalError::Corrupt {
                segment: next.path.clone(),
                offset: 0,
                seq: expected,
                what: Corruption::Seq {
                    found: next.first_seq,
                },
            }),
            _ => Ok(()),
        }
    }

    fn corrupt(&self, what: Corruption) -> JournalError {
        match &self.current {
            Some(cur) => JournalError::Corrupt {
                segment: cur.cursor.path().to_path_buf(),
                offset: cur.cursor.offset(),
                seq: cur.cursor.expected_seq(),
                what,
            },
            None => JournalError::Corrupt {
                segment: self.dir.clone(),
                offset: 0,
                seq: 0,
                what,
            },
        }
    }

    /// Opens the next segment with something to read; `false` when there is none.
    fn open_next(&mut self) -> Result<bool, JournalError> {
        loop {
            let Some(segments) = self.segments.as_ref() else {
                return Ok(false);
            };
            let Some(seg) = segments.get(self.next).cloned() else {
                return Ok(false);
            };
            self.next += 1;
            let last = self.next == segments.len();
            let past_range = matches!(self.filter, Filter::Seq { end, .. } if seg.first_seq > end);
            if past_range || self.limit.is_some_and(|limit| seg.first_seq >= limit) {
                return Ok(false);
            }
            let file = File::open(&seg.path).map_err(io("open", &seg.path))?;
            let mut runs = self.plan(&seg, &file, last)?;
            let Some(first) = runs.pop_front() else {
                continue;
            };
            cursor::read_header(&file, &seg.path, Some(self.chain_id), seg.first_seq)?;
            let cursor = Cursor::new(file, &seg.path, first.offset, first.first_seq)?;
            self.current = Some(Current {
                cursor,
                runs,
                left: first.count,
                last,
            });
            return Ok(true);
        }
    }

    /// Where to read in a segment, from its index when there is a usable one (never for
    /// the last segment, which the writer may still be filling).
    fn plan(
        &self,
        seg: &SegmentFile,
        file: &File,
        last: bool,
    ) -> Result<VecDeque<Run>, JournalError> {
        let whole = Run {
            offset: HEADER_BYTES,
            first_seq: seg.first_seq,
            count: None,
        };
        if last {
            return Ok(VecDeque::from([whole]));
        }
        let idx_path = files::index_path(&self.dir, seg.first_seq);
        let usable =
            |s: &index::Summary| s.chain_id == self.chain_id && s.first_seq == seg.first_seq;
        let max_blocks = || -> Result<u64, JournalError> {
            let len = file.metadata().map_err(io("stat", &seg.path))?.len();
            Ok(index::max_blocks(len))
        };
        match self.filter {
            Filter::Seq { start, .. } => {
                if start <= seg.first_seq {
                    return Ok(VecDeque::from([whole]));
                }
                let Some(idx) =
                    index::read_index(&idx_path, max_blocks()?).filter(|i| usable(&i.summary))
                else {
                    return Ok(VecDeque::from([whole]));
                };
                let at = idx.blocks.partition_point(|b| b.first_seq <= start);
                Ok(VecDeque::from([idx.blocks.get(at.wrapping_sub(1)).map_or(
                    whole,
                    |b| Run {
                        offset: b.offset,
                        first_seq: b.first_seq,
                        count: None,
                    },
                )]))
            }
            Filter::Time { from, to } => {
                match index::read_summary(&idx_path).filter(usable) {
                    Some(summary) if !summary.overlaps(from, to) => return Ok(VecDeque::new()),
                    Some(_) => {}
                    None => return Ok(VecDeque::from([whole])),
                }
                let Some(idx) =
                    index::read_index(&idx_path, max_blocks()?).filter(|i| usable(&i.summary))
                else {
                    return Ok(VecDeque::from([whole]));
                };
                Ok(merge_runs(
                    idx.blocks.iter().filter(|b| b.overlaps(from, to)),
                ))
            }
        }
    }
}

/// Runs of the given blocks, consecutive blocks merged.
fn merge_runs<'a>(blocks: impl Iterator<Item = &'a Block>) -> VecDeque<Run> {
    let mut runs: VecDeque<Run> = VecDeque::new();
    for b in blocks {
        match runs.back_mut() {
            Some(run) if run.count.is_some_and(|n| run.first_seq + n == b.first_seq) => {
                run.count = run.count.map(|n| n + u64::from(b.count));
            }
            _ => runs.push_back(Run {
                offset: b.offset,
                first_seq: b.first_seq,
                count: Some(u64::from(b.count)),
            }),
        }
    }
    runs
}
