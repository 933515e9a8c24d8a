//! Reading the records of one segment in order through a buffered reader.
//!
//! A [`Cursor`] answers one [`Step`] at a time: a record whose CRC, seq and epoch check
//! out, the end of written data (a zero length prefix, or the end of the file), or a bad
//! record with what is wrong with it. It never decides what a bad record means: recovery
//! and scans apply their own policy (torn tail or corruption).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::{Corruption, HeaderFault, JournalError, io};
use super::files;
use super::format::{
    self, FIXED_BODY_BYTES, HEADER_BYTES, PREFIX_BYTES, Prefix, RecordMeta, SegmentHeader,
};

/// Read buffer of a cursor.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// One step through a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A good record at `offset`, `bytes` long; its entry is [`Cursor::entry`].
    Record {
        offset: u64,
        bytes: u64,
        meta: RecordMeta,
    },
    /// No more written data at the cursor's offset.
    End,
    /// The record at the cursor's offset is bad; the cursor stays there.
    Bad(Corruption),
}

/// Reads and checks a segment's header.
pub(crate) fn read_header(
    file: &File,
    path: &Path,
    chain_id: Option<[u8; 16]>,
    name_seq: u64,
) -> Result<SegmentHeader, JournalError> {
    let mut bytes = [0u8; HEADER_BYTES as usize];
    let n = files::read_at_most(file, &mut bytes, 0).map_err(io("read header of", path))?;
    let bad = |what| JournalError::BadHeader {
        segment: path.to_path_buf(),
        what,
    };
    let header = SegmentHeader::decode(&bytes[..n]).map_err(bad)?;
    if let Some(expected) = chain_id
        && header.chain_id != expected
    {
        return Err(bad(HeaderFault::WrongChain {
            expected,
            found: header.chain_id,
        }));
    }
    if header.first_seq != name_seq {
        return Err(bad(HeaderFault::FirstSeq {
            name: name_seq,
            header: header.first_seq,
        }));
    }
    Ok(header)
}

/// A reading position in one segment.
#[derive(Debug)]
pub(crate) struct Cursor {
    path: PathBuf,
    reader: BufReader<File>,
    file_len: u64,
    offset: u64,
    expected_seq: u64,
    /// Epoch of the previous record and whether it was a seal.
    previous: Option<(u32, bool)>,
    body: Vec<u8>,
}

impl Cursor {
    /// A cursor at `offset` of `file`, where the record of `expected_seq` should be.
    pub(crate) fn new(
        file: File,
        path: &Path,
        offset: u64,
        expected_seq: u64,
    ) -> Result<Self, JournalError> {
        let file_len = file.metadata().map_err(io("stat", path))?.len();
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(io("seek in", path))?;
        Ok(Cursor {
            path: path.to_path_buf(),
            reader,
            file_len,
            offset,
            expected_seq,
            previous: None,
            body: Vec::new(),
        })
    }

    /// Moves to `offset`, where the record of `expected_seq` should be.
    pub(crate) fn seek(&mut self, offset: u64, expected_seq: u64) -> Result<(), JournalError> {
        if offset != self.offset {
            self.reader
                .seek(SeekFrom::Start(offset))
                .map_err(io("seek in", &self.path))?;
        }
        self.offset = offset;
        self.expected_seq = expected_seq;
        self.previous = None;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the next record.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The seq the next record should have.
    pub(crate) fn expected_seq(&self) -> u64 {
        self.expected_seq
    }

    pub(crate) fn file(&self) -> &File {
        self.reader.get_ref()
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The canonical entry of the record last returned.
    pub(crate) fn entry(&self) -> &[u8] {
        &self.body[FIXED_BODY_BYTES..]
    }

    /// Reads the next record. After [`Step::End`] or [`Step::Bad`] the cursor stays where
    /// it was.
    pub(crate) fn step(&mut self) -> Result<Step, JournalError> {
        let step = self.step_inner()?;
        if !matches!(step, Step::Record { .. }) {
            self.reader
                .seek(SeekFrom::Start(self.offset))
                .map_err(io("seek in", &self.path))?;
        }
        Ok(step)
    }

    fn step_inner(&mut self) -> Result<Step, JournalError> {
        let room = self.file_len.saturating_sub(self.offset);
        if room < PREFIX_BYTES as u64 {
            // Fewer bytes than a prefix: the end, unless they are not zero.
            let mut tail = Vec::new();
            (&mut self.reader)
                .take(room)
                .read_to_end(&mut tail)
                .map_err(io("read", &self.path))?;
            return Ok(if tail.iter().all(|&b| b == 0) {
                Step::End
            } else {
                Step::Bad(Corruption::Truncated { len: 0, room })
            });
        }
        let mut prefix = [0u8; PREFIX_BYTES];
        if !self.read_exact(&mut prefix)? {
            return Ok(Step::Bad(Corruption::Truncated { len: 0, room }));
        }
        let (body_len, crc) = match Prefix::decode(&prefix, room) {
            Ok(Prefix::End) => return Ok(Step::End),
            Ok(Prefix::Record { body_len, crc }) => (body_len, crc),
            Err(c) => return Ok(Step::Bad(c)),
        };
        self.body.resize(body_len as usize, 0);
        let mut body = std::mem::take(&mut self.body);
        let complete = self.read_exact(&mut body);
        self.body = body;
        if !complete? {
            return Ok(Step::Bad(Corruption::Truncated {
                len: body_len,
                room,
            }));
        }
        let meta = match format::decode_body(&self.body, crc) {
            Ok(meta) => meta,
            Err(c) => return Ok(Step::Bad(c)),
        };
        if meta.link.seq != self.expected_seq {
            return Ok(Step::Bad(Corruption::Seq {
                found: meta.link.seq,
            }));
        }
        if let Some((previous, after_seal)) = self.previous
            && meta.link.epoch != previous + u32::from(after_seal)
        {
            return Ok(Step::Bad(Corruption::Epoch {
                previous,
                after_seal,
                found: meta.link.epoch,
            }));
        }
        if time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(meta.received_nanos)).is_err()
        {
            return Ok(Step::Bad(Corruption::Time {
                nanos: meta.received_nanos,
            }));
        }
        let offset = self.offset;
        let bytes = PREFIX_BYTES as u64 + u64::from(body_len);
        self.offset += bytes;
        self.expected_seq += 1;
        self.previous = Some((meta.link.epoch, format::is_seal(self.entry())));
        Ok(Step::Record {
            offset,
            bytes,
            meta,
        })
    }

    /// Fills `buf`; `false` if the file ended first (it shrank under us).
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<bool, JournalError> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(io("read", &self.path)(e)),
        }
    }
}
