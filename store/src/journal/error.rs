//! The journal's errors: each names the file, and for records the byte offset and seq.

use std::path::PathBuf;
use std::sync::Arc;

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A system call on a journal file failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `fdatasync`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A record cannot be trusted, somewhere a torn tail cannot explain.
    #[error("corrupt journal segment {} at byte {offset} (seq {seq}): {what}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad record in the segment.
        offset: u64,
        /// The seq the record should have had.
        seq: u64,
        /// What is wrong with it.
        what: Corruption,
    },
    /// A segment header is not one this journal wrote.
    #[error("bad header in journal segment {}: {what}", segment.display())]
    BadHeader {
        /// The segment file.
        segment: PathBuf,
        /// What is wrong with it.
        what: HeaderFault,
    },
    /// A `.seg` file whose name is not a zero-padded seq.
    #[error("unexpected segment file name {}", path.display())]
    SegmentName {
        /// The file.
        path: PathBuf,
    },
    /// The directory holds no segment: it was never initialised with [`super::init`].
    #[error("no journal segment in {}", dir.display())]
    NoSegments {
        /// The directory.
        dir: PathBuf,
    },
    /// The writer's state file or the verifier key file cannot be read.
    #[error("bad key file {}: {what}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The state file holds a key of a later epoch than the journal reached: the journal
    /// lost entries the key file saw, and the writer refuses to go on.
    #[error(
        "state file {} holds the key of epoch {key_epoch} but the journal ends at epoch {head_epoch}: entries were lost",
        path.display()
    )]
    KeyAhead {
        /// The state file.
        path: PathBuf,
        /// Epoch of the key held.
        key_epoch: u32,
        /// Epoch the journal's last entry implies.
        head_epoch: u32,
    },
    /// [`super::init`] was given a directory that is not empty.
    #[error("journal directory {} is not empty", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// Another process or handle writes this journal.
    #[error("journal directory {} is locked by another writer", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The system's random generator failed.
    #[error("cannot draw random bytes")]
    Random(#[from] getrandom::Error),
    /// A submitted entry is refused; nothing of its batch was written.
    #[error("entry {index} of the batch is refused: {what}")]
    InvalidEntry {
        /// Position of the entry in its batch.
        index: usize,
        /// Why.
        what: String,
    },
    /// A submitted batch is over the configured caps; nothing of it was written.
    #[error(
        "batch of {entries} entries and {bytes} bytes is over the caps of {max_entries} entries and {max_bytes} bytes"
    )]
    BatchTooLarge {
        /// Entries in the batch.
        entries: usize,
        /// Bytes of canonical entries in the batch.
        bytes: usize,
        /// The entry cap.
        max_entries: usize,
        /// The byte cap.
        max_bytes: usize,
    },
    /// The configuration is unusable.
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// The journal was closed.
    #[error("journal is closed")]
    Closed,
    /// An earlier write or fsync failed: the journal accepts nothing more (a failed fsync
    /// is never retried; reopening runs recovery).
    #[error("journal is poisoned by an earlier failure")]
    Poisoned(#[source] Arc<JournalError>),
    /// The writer thread panicked.
    #[error("journal writer thread panicked")]
    WriterPanicked,
    /// A retention cut or a segment drop is refused; nothing was written or deleted.
    #[error("journal retention refused at seq {seq}: {what}")]
    Retention {
        /// The cut (first seq kept) asked for or implied.
        seq: u64,
        /// Why.
        what: String,
    },
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The length prefix is out of the possible range.
    #[error("record length {len} out of range")]
    Length {
        /// The length found.
        len: u32,
    },
    /// The record runs past the end of the file.
    #[error("record of {len} bytes runs past the end of the file ({room} bytes left)")]
    Truncated {
        /// The length found.
        len: u32,
        /// Bytes left in the file.
        room: u64,
    },
    /// The CRC32C does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// A record or segment carries another seq than the one expected.
    #[error("found seq {found}")]
    Seq {
        /// The seq found.
        found: u64,
    },
    /// The epoch changes where no seal explains it.
    #[error("epoch {found} after epoch {previous}{}", if *after_seal { " and a seal" } else { "" })]
    Epoch {
        /// Epoch of the previous record.
        previous: u32,
        /// Whether the previous record was a seal.
        after_seal: bool,
        /// Epoch found.
        found: u32,
    },
    /// `received_at` is not a representable instant.
    #[error("received_at {nanos} ns out of range")]
    Time {
        /// The value found.
        nanos: i64,
    },
    /// A bad record followed by a valid one: not a torn tail.
    #[error(
        "bad record ({cause}) followed by a valid record of seq {next_seq} at byte {next_offset}"
    )]
    ValidAfter {
        /// What is wrong with the bad record.
        cause: Box<Corruption>,
        /// Offset of the valid record found after it.
        next_offset: u64,
        /// Its seq.
        next_seq: u64,
    },
    /// Non-zero bytes after a zero length prefix (the end-of-data marker).
    #[error("data after the end-of-data marker")]
    EndMarker,
    /// The journal ends before entries the writer acknowledged as durable.
    #[error("journal ends before seq {durable_next_seq}, acknowledged as durable")]
    DurableMissing {
        /// The seq after the last durable entry.
        durable_next_seq: u64,
    },
    /// A segment ends before the seq its index promises.
    #[error("segment ends before seq {next_seq}, which its index promises")]
    IndexAhead {
        /// The seq the index promised next.
        next_seq: u64,
    },
}

/// What is wrong with a segment header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// The file is shorter than a header.
    #[error("file of {len} bytes is shorter than a header")]
    Short {
        /// The file's length.
        len: u64,
    },
    /// The magic bytes are wrong.
    #[error("not a journal segment (bad magic)")]
    Magic,
    /// The header CRC does not match.
    #[error("header checksum mismatch")]
    Checksum,
    /// A format version this release does not know.
    #[error("unknown segment format version {version}")]
    Version {
        /// The version found.
        version: u16,
    },
    /// The segment belongs to another chain.
    #[error(
        "chain id {} is not the journal's {}",
        hex::encode(found),
        hex::encode(expected)
    )]
    WrongChain {
        /// The journal's chain id.
        expected: [u8; 16],
        /// The segment's.
        found: [u8; 16],
    },
    /// The header's first seq is not the one in the file name.
    #[error("first seq {header} does not match the file name's {name}")]
    FirstSeq {
        /// From the file name.
        name: u64,
        /// From the header.
        header: u64,
    },
}

/// Maps an I/O error to [`JournalError::Io`].
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.into();
    move |source| JournalError::Io { op, path, source }
}
