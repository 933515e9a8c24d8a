//! The sparse index of a segment: blocks of records with their seq, offset and the
//! min/max `received_at` of the block, so that a seq or time range is found without
//! reading the whole journal.
//!
//! The writer keeps the index of the open segment in memory and writes it beside the
//! segment as `{first_seq:020}.idx` when the segment is closed. It is only an
//! accelerator: a missing or damaged index file is rebuilt by scanning its segment.
//! `received_at` may go backwards (clock steps), so blocks keep a min and a max and
//! nothing assumes order.
//!
//! ```text
//! summary  magic "VIGIEIDX" | version u16 | chain_id [16] | first_seq u64
//!          | next_seq u64 (one past the last record) | data_end u64 | records u64
//!          | min_received i64 | max_received i64 | blocks u32 | crc32c u32
//! blocks   (first_seq u64 | offset u64 | count u32 | min_received i64 | max_received i64)*
//!          | crc32c u32 (over the blocks)
//! ```
//! The summary has its own CRC so that a time scan can skip a segment after reading
//! 82 bytes of its index.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use super::format::{array, crc32c};

const MAGIC: &[u8; 8] = b"VIGIEIDX";
const VERSION: u16 = 1;
/// Size of the summary, CRC included.
pub(crate) const SUMMARY_BYTES: usize = 8 + 2 + 16 + 8 * 4 + 8 * 2 + 4 + 4;
const BLOCK_BYTES_ON_DISK: usize = 8 + 8 + 4 + 8 + 8;

/// A block is closed once it spans this many bytes of records…
#[cfg(not(test))]
pub(crate) const BLOCK_SPAN_BYTES: u64 = 64 << 10;
/// …or holds this many records.
#[cfg(not(test))]
pub(crate) const BLOCK_MAX_RECORDS: u32 = 1024;
// Tests use small segments: small blocks exercise the index.
#[cfg(test)]
pub(crate) const BLOCK_SPAN_BYTES: u64 = 1024;
#[cfg(test)]
pub(crate) const BLOCK_MAX_RECORDS: u32 = 4;

/// A run of consecutive records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) first_seq: u64,
    pub(crate) offset: u64,
    pub(crate) count: u32,
    pub(crate) min_received: i64,
    pub(crate) max_received: i64,
}

impl Block {
    /// Whether some record of the block may have `received_at` in `[from, to)`.
    pub(crate) fn overlaps(&self, from: i64, to: i64) -> bool {
        self.count > 0 && self.max_received >= from && self.min_received < to
    }
}

/// What an index says about its segment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) chain_id: [u8; 16],
    pub(crate) first_seq: u64,
    pub(crate) next_seq: u64,
    pub(crate) data_end: u64,
    pub(crate) records: u64,
    pub(crate) min_received: i64,
    pub(crate) max_received: i64,
    pub(crate) blocks: u32,
}

impl Summary {
    /// Whether some record of the segment may have `received_at` in `[from, to)`.
    pub(crate) fn overlaps(&self, from: i64, to: i64) -> bool {
        self.records > 0 && self.max_received >= from && self.min_received < to
    }
}

/// The index of one segment, built record by record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    pub(crate) summary: Summary,
    pub(crate) blocks: Vec<Block>,
    /// Bytes spanned by the last block.
    last_span: u64,
}

impl SegmentIndex {
    /// An empty index of a segment whose records start at `data_start`.
    pub(crate) fn new(chain_id: [u8; 16], first_seq: u64, data_start: u64) -> Self {
        SegmentIndex {
            summary: Summary {
                chain_id,
                first_seq,
                next_seq: first_seq,
                data_end: data_start,
                records: 0,
                min_received: i64::MAX,
                max_received: i64::MIN,
                blocks: 0,
            },
            blocks: Vec::new(),
            last_span: 0,
        }
    }

    /// Adds the record of `seq` at `offset`, `bytes` long, received at `received`.
    pub(crate) fn push(&mut self, seq: u64, offset: u64, bytes: u64, received: i64) {
        let open = self
            .blocks
            .last_mut()
            .filter(|b| b.count < BLOCK_MAX_RECORDS && self.last_span < BLOCK_SPAN_BYTES);
        match open {
            Some(block) => {
                block.count += 1;
                block.min_received = block.min_received.min(received);
                block.max_received = block.max_received.max(received);
                self.last_span += bytes;
            }
            None => {
                self.blocks.push(Block {
                    first_seq: seq,
                    offset,
                    count: 1,
                    min_received: received,
                    max_received: received,
                });
                self.last_span = bytes;
            }
        }
        let s = &mut self.summary;
        s.next_seq = seq + 1;
        s.data_end = offset + bytes;
        s.records += 1;
        s.min_received = s.min_received.min(received);
        s.max_received = s.max_received.max(received);
        s.blocks = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX);
    }

    /// The index file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let s = &self.summary;
        let mut out =
            Vec::with_capacity(SUMMARY_BYTES + self.blocks.len() * BLOCK_BYTES_ON_DISK + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&s.chain_id);
        for v in [s.first_seq, s.next_seq, s.data_end, s.records] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&s.min_received.to_le_bytes());
        out.extend_from_slice(&s.max_received.to_le_bytes());
        out.extend_from_slice(&s.blocks.to_le_bytes());
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let blocks_start = out.len();
        for b in &self.blocks {
            out.extend_from_slice(&b.first_seq.to_le_bytes());
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.count.to_le_bytes());
            out.extend_from_slice(&b.min_received.to_le_bytes());
            out.extend_from_slice(&b.max_received.to_le_bytes());
        }
        let crc = crc32c(&out[blocks_start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// Decodes a summary (the first [`SUMMARY_BYTES`] of an index file).
pub(crate) fn decode_summary(bytes: &[u8]) -> Option<Summary> {
    let b = bytes.get(..SUMMARY_BYTES)?;
    if &b[..8] != MAGIC || u16::from_le_bytes([b[8], b[9]]) != VERSION {
        return None;
    }
    let crc_at = SUMMARY_BYTES - 4;
    if crc32c(&b[..crc_at]) != u32::from_le_bytes(array(&b[crc_at..])) {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(array(&b[i..]));
    let summary = Summary {
        chain_id: array(&b[10..26]),
        first_seq: u64_at(26),
        next_seq: u64_at(34),
        data_end: u64_at(42),
        records: u64_at(50),
        min_received: i64::from_le_bytes(array(&b[58..])),
        max_received: i64::from_le_bytes(array(&b[66..])),
        blocks: u32::from_le_bytes(array(&b[74..])),
    };
    let consistent = summary.next_seq.checked_sub(summary.first_seq) == Some(summary.records)
        && u64::from(summary.blocks) <= summary.records;
    consistent.then_some(summary)
}

/// Decodes the blocks that follow a summary.
fn decode_blocks(summary: &Summary, bytes: &[u8]) -> Option<Vec<Block>> {
    let n = usize::try_from(summary.blocks).ok()?;
    let len = n.checked_mul(BLOCK_BYTES_ON_DISK)?;
    if bytes.len() != len + 4 {
        return None;
    }
    if crc32c(&bytes[..len]) != u32::from_le_bytes(array(&bytes[len..])) {
        return None;
    }
    let blocks: Vec<Block> = bytes[..len]
        .chunks_exact(BLOCK_BYTES_ON_DISK)
        .map(|c| Block {
            first_seq: u64::from_le_bytes(array(c)),
            offset: u64::from_le_bytes(array(&c[8..])),
            count: u32::from_le_bytes(array(&c[16..])),
            min_received: i64::from_le_bytes(array(&c[20..])),
            max_received: i64::from_le_bytes(array(&c[28..])),
        })
        .collect();
    // Blocks must tile the seq range of the summary.
    let mut seq = summary.first_seq;
    for b in &blocks {
        if b.first_seq != seq || b.count == 0 {
            return None;
        }
        seq = seq.checked_add(u64::from(b.count))?;
    }
    (seq == summary.next_seq).then_some(blocks)
}

/// Reads the summary of an index file; `None` if it is missing or damaged.
pub(crate) fn read_summary(path: &Path) -> Option<Summary> {
    let mut file = File::open(path).ok()?;
    let mut buf = [0u8; SUMMARY_BYTES];
    file.read_exact(&mut buf).ok()?;
    decode_summary(&buf)
}

/// Reads a whole index file; `None` if it is missing or damaged. `max_blocks` caps what
/// is read (the segment's size bounds how many blocks it can have).
pub(crate) fn read_index(path: &Path, max_blocks: u64) -> Option<SegmentIndex> {
    let mut file = File::open(path).ok()?;
    let mut head = [0u8; SUMMARY_BYTES];
    file.read_exact(&mut head).ok()?;
    let summary = decode_summary(&head)?;
    if u64::from(summary.blocks) > max_blocks {
        return None;
    }
    let mut rest = Vec::new();
    let want = u64::from(summary.blocks) * BLOCK_BYTES_ON_DISK as u64 + 4;
    file.take(want + 1).read_to_end(&mut rest).ok()?;
    let blocks = decode_blocks(&summary, &rest)?;
    let last_span = 0;
    Some(SegmentIndex {
        summary,
        blocks,
        last_span,
    })
}

/// How many blocks a segment of `segment_bytes` can have at most.
pub(crate) fn max_blocks(segment_bytes: u64) -> u64 {
    segment_bytes / super::format::record_bytes(super::format::MIN_ENTRY_BYTES) + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_by_bytes_and_records_and_round_trip() {
        let mut idx = SegmentIndex::new([1; 16], 100, 64);
        let mut offset = 64;
        for i in 0..3000u64 {
            // received_at goes backwards every 7 records.
            let t = (i as i64 % 7) * -10 + i as i64 * 3;
            idx.push(100 + i, offset, 100, t);
            offset += 100;
        }
        assert!(idx.blocks.len() >= 3000 / BLOCK_MAX_RECORDS as usize);
        for w in idx.blocks.windows(2) {
            assert_eq!(w[0].first_seq + u64::from(w[0].count), w[1].first_seq);
        }
        let bytes = idx.encode();
        let summary = decode_summary(&bytes).unwrap();
        assert_eq!(summary, idx.summary);
        let blocks = decode_blocks(&summary, &bytes[SUMMARY_BYTES..]).unwrap();
        assert_eq!(blocks, idx.blocks);
        let mut bad = bytes.clone();
        bad[SUMMARY_BYTES + 3] ^= 1;
        assert!(decode_blocks(&summary, &bad[SUMMARY_BYTES..]).is_none());
        bad[3] ^= 1;
        assert!(decode_summary(&bad).is_none());
    }

    #[test]
    fn overlap_uses_min_and_max() {
        let b = Block {
            first_seq: 0,
            offset: 0,
            count: 2,
            min_received: 10,
            max_received: 20,
        };
        assert!(b.overlaps(20, 21));
        assert!(b.overlaps(0, 11));
        assert!(!b.overlaps(0, 10));
        assert!(!b.overlaps(21, 30));
    }
}
