//! Segment headers and records as bytes: encoding and checking, no I/O.
//!
//! Little-endian throughout (the canonical entry inside a record keeps its own big-endian
//! encoding). The layout is drawn in the [journal](super) module documentation.

use proto::chain::{Link, Mac};

use super::error::{Corruption, HeaderFault};

/// First bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"VIGIEJNL";

/// The segment format written by this release.
pub(crate) const FORMAT_VERSION: u16 = 1;

/// Size of the segment header, padding included: records start here.
pub(crate) const HEADER_BYTES: u64 = 64;

/// Bytes of the header that carry data (magic, version, chain id, first seq), before its CRC.
const HEADER_DATA_BYTES: usize = 8 + 2 + 16 + 8;

/// `len:u32 crc:u32` before the checked part of a record.
pub(crate) const PREFIX_BYTES: usize = 8;

/// `seq:u64 epoch:u32 received_at:i64 mac:[32]`, the fixed part the CRC covers.
pub(crate) const FIXED_BODY_BYTES: usize = 8 + 4 + 8 + 32;

/// Everything of a record but the canonical entry.
pub(crate) const RECORD_OVERHEAD: usize = PREFIX_BYTES + FIXED_BODY_BYTES;

/// Smallest canonical entry: a version byte and a tag.
pub(crate) const MIN_ENTRY_BYTES: usize = 2;

/// Largest canonical entry the format accepts, whatever the configuration.
pub const MAX_ENTRY_BYTES_LIMIT: usize = 64 << 20;

/// CRC-32C (Castagnoli, the iSCSI CRC) of `bytes`: the checksum of segment headers, records,
/// index and key files.
///
/// `crc-fast` runs three streams of the CPU's CRC instruction and folds them with carry-less
/// multiplication, where the `crc32c` crate runs one stream below 768 bytes: 20 against 53 ns
/// for a 495-byte record on a 2-vCPU machine of the benches. The writer thread takes one
/// per record.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    // A 32-bit CRC in a u64: the upper half is zero.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Smallest and largest values of a record's `len` (the bytes after the CRC).
const MIN_BODY: u32 = (FIXED_BODY_BYTES + MIN_ENTRY_BYTES) as u32;
const MAX_BODY: u32 = (FIXED_BODY_BYTES + MAX_ENTRY_BYTES_LIMIT) as u32;

/// The canonical tag of a seal (second byte of the entry).
const SEAL_TAG: u8 = 3;

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) chain_id: [u8; 16],
    pub(crate) first_seq: u64,
}

impl SegmentHeader {
    /// The header bytes, padded with zeroes to [`HEADER_BYTES`].
    pub(crate) fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut out = [0u8; HEADER_BYTES as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..26].copy_from_slice(&self.chain_id);
        out[26..34].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32c(&out[..HEADER_DATA_BYTES]);
        out[34..38].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a header; `bytes` holds the first bytes of the file (at most [`HEADER_BYTES`]).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, HeaderFault> {
        if bytes.len() < HEADER_BYTES as usize {
            return Err(HeaderFault::Short {
                len: bytes.len() as u64,
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(HeaderFault::Magic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let stored_crc = u32::from_le_bytes(array(&bytes[34..38]));
        if crc32c(&bytes[..HEADER_DATA_BYTES]) != stored_crc {
            return Err(HeaderFault::Checksum);
        }
        if version != FORMAT_VERSION {
            return Err(HeaderFault::Version { version });
        }
        Ok(SegmentHeader {
            chain_id: array(&bytes[10..26]),
            first_seq: u64::from_le_bytes(array(&bytes[26..34])),
        })
    }
}

/// Appends one record to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, link: &Link, received_nanos: i64, entry: &[u8]) {
    let body_len = FIXED_BODY_BYTES + entry.len();
    let start = out.len();
    // The writer refuses entries over MAX_ENTRY_BYTES_LIMIT, so the length fits in u32.
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&link.seq.to_le_bytes());
    out.extend_from_slice(&link.epoch.to_le_bytes());
    out.extend_from_slice(&received_nanos.to_le_bytes());
    out.extend_from_slice(&link.mac);
    out.extend_from_slice(entry);
    let crc = crc32c(&out[start + PREFIX_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The 8-byte prefix of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// A zero length: the end of written data in a pre-zeroed segment.
    End,
    /// A record whose checked part is `body_len` bytes long.
    Record { body_len: u32, crc: u32 },
}

impl Prefix {
    /// Reads a prefix; `room` is how many bytes the file holds from the prefix's start.
    pub(crate) fn decode(bytes: &[u8; PREFIX_BYTES], room: u64) -> Result<Prefix, Corruption> {
        let body_len = u32::from_le_bytes(array(&bytes[..4]));
        let crc = u32::from_le_bytes(array(&bytes[4..]));
        if body_len == 0 {
            return Ok(Prefix::End);
        }
        if !(MIN_BODY..=MAX_BODY).contains(&body_len) {
            return Err(Corruption::Length { len: body_len });
        }
        if PREFIX_BYTES as u64 + u64::from(body_len) > room {
            return Err(Corruption::Truncated {
                len: body_len,
                room,
            });
        }
        Ok(Prefix::Record { body_len, crc })
    }
}

/// The fields of a record whose CRC matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordMeta {
    pub(crate) link: Link,
    pub(crate) received_nanos: i64,
}

/// Checks a record's body (the `body_len` bytes after its prefix) against its CRC and
/// returns its fixed fields; the canonical entry is `body[FIXED_BODY_BYTES..]`.
pub(crate) fn decode_body(body: &[u8], crc: u32) -> Result<RecordMeta, Corruption> {
    if body.len() < MIN_BODY as usize {
        return Err(Corruption::Length {
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
        });
    }
    if crc32c(body) != crc {
        return Err(Corruption::Checksum);
    }
    let mac: Mac = array(&body[20..52]);
    Ok(RecordMeta {
        link: Link {
            seq: u64::from_le_bytes(array(&body[..8])),
            epoch: u32::from_le_bytes(array(&body[8..12])),
            mac,
        },
        received_nanos: i64::from_le_bytes(array(&body[12..20])),
    })
}

/// The seq a record body claims, read without checking anything (for the search of a
/// valid record after a bad one).
pub(crate) fn peek_seq(body_start: &[u8]) -> Option<u64> {
    body_start.get(..8).map(|b| u64::from_le_bytes(array(b)))
}

/// Whether canonical entry bytes are a seal: byte 1 is the entry tag.
pub(crate) fn is_seal(entry: &[u8]) -> bool {
    entry.get(1) == Some(&SEAL_TAG)
}

/// The total size of the record holding an entry of `entry_len` bytes.
pub(crate) fn record_bytes(entry_len: usize) -> u64 {
    (RECORD_OVERHEAD + entry_len) as u64
}

/// Copies a slice of known length into an array.
pub(crate) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// CRC-32C one bit at a time, from its definition (reflected polynomial 0x82F63B78,
    /// initial and final value all ones).
    fn crc32c_by_bits(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ if crc & 1 == 1 { 0x82F6_3B78 } else { 0 };
            }
        }
        !crc
    }

    #[test]
    fn crc32c_is_the_castagnoli_crc_at_every_length_and_alignment() {
        // The catalogue's check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..1100).chain([2047, 2048, 2049, 4096, 4500]) {
            for offset in 0..4 {
                let bytes = &data[offset..offset + len];
                assert_eq!(
                    crc32c(bytes),
                    crc32c_by_bits(bytes),
                    "length {len}, offset {offset}"
                );
            }
        }
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = SegmentHeader {
            chain_id: [9; 16],
            first_seq: 1234,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for i in 0..38 {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert!(SegmentHeader::decode(&bad).is_err(), "byte {i}");
        }
        assert_eq!(
            SegmentHeader::decode(&bytes[..10]),
            Err(HeaderFault::Short { len: 10 })
        );
    }

    #[test]
    fn record_round_trips() {
        let link = Link {
            seq: 7,
            epoch: 2,
            mac: [5; 32],
        };
        let mut out = vec![0xAA];
        encode_record(&mut out, &link, -3, b"\x01\x01hello");
        assert_eq!(out.len() as u64, 1 + record_bytes(7));
        let prefix = Prefix::decode(&array(&out[1..9]), 1000).unwrap();
        let Prefix::Record { body_len, crc } = prefix else {
            panic!("not a record")
        };
        let body = &out[9..9 + body_len as usize];
        let meta = decode_body(body, crc).unwrap();
        assert_eq!(meta.link, link);
        assert_eq!(meta.received_nanos, -3);
        assert_eq!(&body[FIXED_BODY_BYTES..], b"\x01\x01hello");
        let mut bad = body.to_vec();
        bad[30] ^= 0x40;
        assert_eq!(decode_body(&bad, crc), Err(Corruption::Checksum));
    }

    #[test]
    fn prefix_bounds() {
        let mut p = [0u8; 8];
        assert_eq!(Prefix::decode(&p, 8), Ok(Prefix::End));
        p[0] = 10;
        assert_eq!(Prefix::decode(&p, 100), Err(Corruption::Length { len: 10 }));
        p[0] = 100;
        assert_eq!(
            Prefix::decode(&p, 50),
            Err(Corruption::Truncated { len: 100, room: 50 })
        );
    }
}
