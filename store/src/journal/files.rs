//! The journal directory: file names, atomic replacement, pre-allocated files, listing.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::{JournalError, io};

/// The writer's state file: chain id, current epoch and key, seal signing seed.
pub(crate) const STATE_FILE: &str = "state";
/// The verifier's key file, to be moved off the host.
pub const VERIFIER_FILE: &str = "verifier.key";
/// Held locked by the one writer.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// The next segment, being allocated ahead of need.
pub(crate) const SPARE_FILE: &str = "spare.seg.tmp";

/// Permissions of files holding secrets.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Permissions of segments and indexes (personal data: no access for others).
pub(crate) const DATA_MODE: u32 = 0o640;

/// Zeroes written per call when zeroing: small enough that a journal write queued behind
/// one waits little.
const ZERO_CHUNK: usize = 256 << 10;

/// What paces the zeroes of the spare segment, written while the writer fills the open
/// one (see [`rest_after`]).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Set when the writer needs the spare: where its blocks are reserved (`fallocate`),
    /// direct zeroes stop after the chunk under way, and the rest of the file stays
    /// reserved, as with `zero_segments = false` (it reads as zeroes; each `fdatasync`
    /// reaching it also commits the filesystem's journal). Zeroes that have not kept up
    /// with the writer are short of disk bandwidth: waiting for them stalled the writer,
    /// and finishing them took that bandwidth from the records (on a disk syncing about
    /// 250 MB/s, 4,000,000 events over TLS, two alternated runs each: 304-314 k events/s
    /// with the roll waiting for the zeroes, 389-406 k with it stopping them). Zeroes that
    /// must go to the end (no `fallocate`, or through the page cache) go at full speed.
    pub(crate) stop: AtomicBool,
    /// Bytes of records the writer has put in the open segment so far (as large as the
    /// spare).
    pub(crate) filled: AtomicU64,
    /// Tests: each rest lasts until the writer stops the zeroes.
    #[cfg(test)]
    pub(crate) held: bool,
}

impl Pace {
    /// Whether the writer has taken the spare (see [`Pace::stop`]).
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether the zeroes may rest, `zeroed` bytes of the spare written: while nobody waits
    /// for it, and they are at least twice as far into the spare as the writer is into the
    /// open segment, on course to be done by the time it is half full.
    fn may_rest(&self, zeroed: u64) -> bool {
        #[cfg(test)]
        if self.held {
            return !self.stopped();
        }
        !self.stopped() && zeroed >= self.filled.load(Ordering::Relaxed).saturating_mul(2)
    }
}

/// When zeroing in the background, a chunk is followed by a rest as long as its write
/// took, while [`Pace::may_rest`]: the zeroes then take at most about half of the disk's
/// time and the writer's own writes and `fdatasync`s the rest. Written at full speed, a
/// segment's zeroes were a burst of 64 MiB in front of the writer's I/O: at 146,000
/// events/s over RELP the p99 ack latency was 58-60 ms with them and 21 ms without any
/// zeroing, on a disk flushing about 400 MB/s. Always resting, they fell behind a writer
/// filling a segment every half second: one roll in ten waited 26-88 ms for its spare
/// (246,000 events/s, p99 51 ms), where a writer ahead of the zeroes now gets them at
/// full speed.
fn rest_after(took: std::time::Duration, pace: Option<&Pace>, zeroed: u64) {
    let Some(pace) = pace else {
        return;
    };
    #[cfg(test)]
    let took = if pace.held {
        std::time::Duration::from_secs(3600)
    } else {
        took
    };
    let until = std::time::Instant::now() + took;
    // In steps, so that a stop or a writer catching up is seen soon.
    while pace.may_rest(zeroed) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(1)));
    }
}

/// `{first_seq:020}.seg`
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// `{first_seq:020}.idx`
pub(crate) fn index_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.idx"))
}

/// A segment file found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
}

/// The segments of a journal directory, in seq order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, JournalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        let path = entry.path();
        let first_seq = (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stem.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| JournalError::SegmentName { path: path.clone() })?;
        out.push(SegmentFile { first_seq, path });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// Removes the `*.tmp` files a crash may have left (writer only); returns their paths.
pub(crate) fn remove_temp_files(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path).map_err(io("remove", &path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// How much of [`write_atomic`]'s work is made durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Nothing is fsynced: only for files a crash may lose or tear because they are
    /// checked when read and rebuilt when damaged (segment indexes).
    None,
    /// The bytes are fsynced before the rename; the directory is not.
    Bytes,
    /// The bytes, and the directory after the rename.
    Full,
}

/// Replaces `dir/name` with `bytes`: write `name.tmp`, fsync (unless
/// [`Durability::None`]), rename, then fsync the directory for [`Durability::Full`]. A
/// stale `name.tmp` is removed first so that `mode` applies.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), JournalError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &tmp)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    if durability != Durability::None {
        file.sync_all().map_err(io("fsync", &tmp))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    if durability == Durability::Full {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes zeroes into `file` from `from` to `to` and makes them durable, a chunk at a time
/// (`fsync` at the end, since the file's size may change).
pub(crate) fn zero_fill(
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
    pace: Option<&Pace>,
) -> Result<(), JournalError> {
    if from >= to {
        return Ok(());
    }
    let zeros = vec![0u8; ZERO_CHUNK.min(usize::try_from(to - from).unwrap_or(ZERO_CHUNK))];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(zeros.len(), |left| left.min(zeros.len()));
        let started = std::time::Instant::now();
        file.write_all_at(&zeros[..n], at)
            .map_err(io("write zeroes to", path))?;
        at += n as u64;
        // Flush as we go: a burst of a whole segment of writeback would queue in front
        // of the writer's fdatasync.
        file.sync_data().map_err(io("fdatasync", path))?;
        rest_after(started.elapsed(), pace, at);
    }
    file.sync_all().map_err(io("fsync", path))
}

/// Creates `path` (replacing a stale one) as a file of `size` zero bytes, written and
/// fsynced, so that writes into it change no file metadata and `fdatasync` flushes data
/// only.
///
/// The blocks are reserved with `fallocate`, then the zeroes are written with `O_DIRECT`:
/// from the device's point of view as before, but without going through the page cache,
/// which cost the collector a second copy of every journaled byte (about 12% of its CPU at
/// full rate, `perf`). The writer then writes whole pages only, so that the kernel never
/// reads one of these pages back to complete it. Where the filesystem refuses `O_DIRECT`,
/// the zeroes go through the page cache; where it has no `fallocate`, they are written
/// all the same.
///
/// `zeroes` says whether they are written at all, and whether paced.
pub(crate) fn create_preallocated(
    path: &Path,
    size: u64,
    zeroes: Zeroes<'_>,
) -> Result<File, JournalError> {
    preallocate(path, size, true, zeroes)
}

/// How [`create_preallocated`] writes a file's zeroes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Zeroes<'a> {
    /// Not at all: the blocks are only reserved (`fallocate`), where the filesystem can.
    Reserved,
    /// As fast as the disk takes them.
    Now,
    /// Paced by the writer (see [`rest_after`]).
    Paced(&'a Pace),
}

impl<'a> Zeroes<'a> {
    /// `zero_segments` from the settings, paced by `pace` if given.
    pub(crate) fn for_settings(zero: bool, pace: Option<&'a Pace>) -> Self {
        match (zero, pace) {
            (false, _) => Zeroes::Reserved,
            (true, None) => Zeroes::Now,
            (true, Some(pace)) => Zeroes::Paced(pace),
        }
    }

    fn pace(self) -> Option<&'a Pace> {
        match self {
            Zeroes::Paced(pace) => Some(pace),
            Zeroes::Reserved | Zeroes::Now => None,
        }
    }
}

/// [`create_preallocated`], with direct writes or (`direct` false) through the page cache.
fn preallocate(
    path: &Path,
    size: u64,
    direct: bool,
    zeroes: Zeroes<'_>,
) -> Result<File, JournalError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", path)(e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(DATA_MODE)
        .open(path)
        .map_err(io("create", path))?;
    let reserved = match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)
    {
        Ok(()) => true,
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => false,
        Err(e) => return Err(io("reserve space for", path)(e.into())),
    };
    // Without fallocate the zeroes are written all the same: a file that grows as records
    // come would change metadata at every fdatasync.
    if reserved && matches!(zeroes, Zeroes::Reserved) {
        file.sync_all().map_err(io("fsync", path))?;
        return Ok(file);
    }
    let pace = zeroes.pace();
    // EINVAL: no O_DIRECT on this filesystem, or blocks larger than the alignment used;
    // the zeroes (or what is left of them) then go through the page cache.
    let direct_end = match direct.then(|| DirectFile::open(path)) {
        Some(Ok(direct)) => match zero_fill_direct(&direct, size, pace) {
            Ok(end) => end,
            Err(e) if is_einval(&e) => 0,
            Err(e) => return Err(io("write zeroes to", path)(e)),
        },
        Some(Err(e)) if !is_einval(&e) => return Err(io("open for direct writes", path)(e)),
        Some(Err(_)) | None => 0,
    };
    // Stopped by the writer: the rest is reserved. Without `fallocate`, or once in the
    // page cache, the zeroes go to the end (the file must reach its size).
    if !(reserved && pace.is_some_and(Pace::stopped)) {
        zero_fill(&file, path, direct_end, size, pace)?;
    }
    file.sync_all().map_err(io("fsync", path))?;
    Ok(file)
}

/// Alignment of direct writes (a multiple of every device's logical block size).
const DIRECT_ALIGN: usize = 4096;

/// Whether an I/O error is EINVAL: what a filesystem or device answers to an `O_DIRECT`
/// open or write it cannot do.
pub(crate) fn is_einval(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// A file opened for writes with `O_DIRECT` (direct writes need the memory, the offset and
/// the length aligned to the device's blocks: the memory is an [`AlignedBuf`]).
pub(crate) struct DirectFile {
    file: File,
}

impl DirectFile {
    /// Opens `path` (which exists) for direct writes.
    pub(crate) fn open(path: &Path) -> std::io::Result<DirectFile> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)?;
        Ok(DirectFile { file })
    }

    /// Whether `len` bytes at `offset` are whole aligned blocks.
    pub(crate) fn fits(len: usize, offset: u64) -> bool {
        len.is_multiple_of(DIRECT_ALIGN) && offset.is_multiple_of(DIRECT_ALIGN as u64)
    }

    /// Writes `buf` (see [`DirectFile::fits`]) at `offset`.
    pub(crate) fn write_all_at(&self, buf: &AlignedBuf, offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(buf.as_slice(), offset)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// A growable byte buffer whose contents start on a [`DIRECT_ALIGN`] boundary in memory,
/// so that they can be written with `O_DIRECT` as they are. It is a `Vec` whose first
/// `skip` bytes are padding; when the `Vec` moves (it grew), the contents move to the new
/// boundary.
pub(crate) struct AlignedBuf {
    bytes: Vec<u8>,
    skip: usize,
}

impl AlignedBuf {
    /// A buffer holding `data`, with room for `capacity` bytes before it moves.
    pub(crate) fn new(data: &[u8], capacity: usize) -> AlignedBuf {
        let mut buf = AlignedBuf {
            bytes: Vec::with_capacity(capacity.max(data.len()) + DIRECT_ALIGN),
            skip: 0,
        };
        buf.realign();
        buf.extend_from_slice(data);
        buf
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - self.skip
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[self.skip..]
    }

    /// Appends with `push`, which is given the underlying `Vec` and may only add to its end.
    pub(crate) fn append(&mut self, push: impl FnOnce(&mut Vec<u8>)) {
        push(&mut self.bytes);
        self.realign();
    }

    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        self.append(|v| v.extend_from_slice(data));
    }

    /// Grows to `len` bytes with zeroes, or truncates to it.
    pub(crate) fn resize(&mut self, len: usize) {
        let total = self.skip + len;
        self.append(|v| v.resize(total, 0));
    }

    /// Drops the first `n` bytes.
    pub(crate) fn drain_front(&mut self, n: usize) {
        let end = self.skip + n.min(self.len());
        self.bytes.drain(self.skip..end);
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.truncate(self.skip);
    }

    /// How far the contents are from an aligned address (0 once aligned).
    #[cfg(test)]
    fn as_ptr_offset(&self) -> usize {
        self.as_slice().as_ptr().align_offset(DIRECT_ALIGN)
    }

    /// Moves the contents to the `Vec`'s aligned position if it moved.
    fn realign(&mut self) {
        // Room for any shift, reserved first: moving the contents must not move the Vec.
        self.bytes.reserve(DIRECT_ALIGN);
        // `align_offset` may decline (usize::MAX): then the contents stay unaligned, and a
        // direct write of them is refused (EINVAL), which falls back to the page cache.
        let want = self
            .bytes
            .as_ptr()
            .align_offset(DIRECT_ALIGN)
            .min(DIRECT_ALIGN);
        if want == self.skip {
            return;
        }
        let len = self.len();
        if want > self.skip {
            self.bytes.resize(want + len, 0);
        }
        self.bytes.copy_within(self.skip..self.skip + len, want);
        self.bytes.truncate(want + len);
        self.skip = want;
    }
}

/// Writes zeroes over `[0, size)` of `direct`, opened with `O_DIRECT`, as far as whole
/// aligned blocks go or until the writer stops them ([`Pace::stop`]), then fdatasyncs;
/// returns where it stopped.
fn zero_fill_direct(direct: &DirectFile, size: u64, pace: Option<&Pace>) -> std::io::Result<u64> {
    let mut zeros = AlignedBuf::new(&[], ZERO_CHUNK);
    let mut at = 0;
    while at < size && !pace.is_some_and(Pace::stopped) {
        let left = usize::try_from(size - at).unwrap_or(ZERO_CHUNK);
        let n = left.min(ZERO_CHUNK) / DIRECT_ALIGN * DIRECT_ALIGN;
        if n == 0 {
            break;
        }
        zeros.resize(n);
        let started = std::time::Instant::now();
        direct.write_all_at(&zeros, at)?;
        at += n as u64;
        rest_after(started.elapsed(), pace, at);
    }
    direct.sync_data()?;
    Ok(at)
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_preallocated(dir: &Path, size: u64, direct: bool) {
        let path = dir.join("spare.seg.tmp");
        fs::write(&path, b"a stale spare left by a crash").expect("stale file");
        let file = preallocate(&path, size, direct, Zeroes::Now).expect("allocated");
        assert_eq!(file.metadata().expect("stat").len(), size);
        let mut back = vec![0xFFu8; usize::try_from(size).expect("fits")];
        assert_eq!(read_at_most(&file, &mut back, 0).expect("read"), back.len());
        assert!(back.iter().all(|&b| b == 0), "not all zeroes");
        file.write_all_at(b"record", 4096).expect("write");
        file.sync_data().expect("fdatasync");
        assert_eq!(file.metadata().expect("stat").len(), size);
        let mut record = [0u8; 6];
        assert_eq!(read_at_most(&file, &mut record, 4096).expect("read"), 6);
        assert_eq!(&record, b"record");
    }

    #[test]
    fn a_preallocated_file_has_its_size_reads_as_zeroes_and_does_not_grow() {
        let dir = tempfile::tempdir().expect("temporary directory");
        // Whole chunks, then a tail that is not a whole number of blocks.
        check_preallocated(dir.path(), (3 << 20) + 4096 * 3 + 100, true);
    }

    #[test]
    fn an_aligned_buffer_stays_aligned_and_keeps_its_bytes_as_it_grows() {
        let mut buf = AlignedBuf::new(b"tail", 16);
        let mut model = b"tail".to_vec();
        for i in 0..2000u32 {
            let record = i.to_le_bytes().repeat(1 + i as usize % 7);
            buf.append(|v| v.extend_from_slice(&record));
            model.extend_from_slice(&record);
            if i % 97 == 0 {
                buf.resize(model.len().next_multiple_of(64));
                assert!(buf.as_slice()[model.len()..].iter().all(|&b| b == 0));
                buf.resize(model.len());
            }
            if i % 301 == 0 {
                buf.drain_front(model.len() / 2);
                model.drain(..model.len() / 2);
            }
            assert_eq!(buf.as_ptr_offset(), 0, "contents aligned after record {i}");
            assert_eq!(buf.as_slice(), &model[..], "contents after record {i}");
        }
        buf.clear();
        assert_eq!(buf.len(), 0);
    }

    #[test]
    fn paced_zeroes_make_the_same_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("spare.seg.tmp");
        let size = (1 << 20) + 100;
        let calm = Pace::default();
        let file = preallocate(&path, size, true, Zeroes::Paced(&calm)).expect("allocated");
        let mut back = vec![0xFFu8; usize::try_from(size).expect("fits")];
        assert_eq!(read_at_most(&file, &mut back, 0).expect("read"), back.len());
        assert!(back.iter().all(|&b| b == 0), "not all zeroes");
    }

    #[test]
    fn a_paced_rest_lasts_as_long_as_the_write_unless_stopped_or_caught_up() {
        use std::time::{Duration, Instant};
        let calm = Pace::default();
        let started = Instant::now();
        rest_after(Duration::from_millis(30), Some(&calm), 0);
        assert!(started.elapsed() >= Duration::from_millis(30), "rested");
        // Unpaced: no rest at all.
        let started = Instant::now();
        rest_after(Duration::from_secs(60), None, 0);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no rest when unpaced"
        );
        // The zeroes rest while twice as far into the spare as the writer is into the
        // open segment, and not once it has caught up with that.
        let pace = Pace::default();
        pace.filled.store(1 << 20, Ordering::Relaxed);
        assert!(pace.may_rest(2 << 20));
        assert!(!pace.may_rest((2 << 20) - 1));
        let started = Instant::now();
        rest_after(Duration::from_secs(60), Some(&pace), 1 << 20);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no rest behind the writer"
        );
        // A stop, or the writer catching up, ends a rest under way.
        for (what, nudge) in [
            (
                "the stop",
                (|p: &Pace| p.stop.store(true, Ordering::Relaxed)) as fn(&Pace),
            ),
            ("the writer", |p: &Pace| {
                p.filled.store(3 << 20, Ordering::Relaxed)
            }),
        ] {
            let pace = std::sync::Arc::new(Pace::default());
            let setter = {
                let pace = pace.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    nudge(&pace);
                })
            };
            let started = Instant::now();
            rest_after(Duration::from_secs(60), Some(&pace), 4 << 20);
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{what} ended the rest"
            );
            setter.join().expect("setter");
        }
    }

    /// Where the file's data starts (`SEEK_DATA` from 0); `None` where it has none: on
    /// ext4 and XFS, blocks only reserved by `fallocate` are not data.
    fn data_start(file: &File) -> Option<u64> {
        rustix::fs::seek(file, rustix::fs::SeekFrom::Data(0)).ok()
    }

    #[test]
    fn zeroes_stopped_by_the_writer_leave_the_rest_of_the_file_reserved() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let size = (1 << 20) + 100;
        let stopped = Pace::default();
        stopped.stop.store(true, Ordering::Relaxed);
        let path = dir.path().join("stopped.seg.tmp");
        let file = preallocate(&path, size, true, Zeroes::Paced(&stopped)).expect("allocated");
        // Written as a reserved file is, not as a zeroed one. This needs a filesystem whose
        // SEEK_DATA tells the two apart, as ext4 and XFS do, and is asked before any read
        // (pages read from reserved blocks count as data).
        let reserved = preallocate(&dir.path().join("reserved"), size, true, Zeroes::Reserved)
            .expect("reserved");
        let zeroed =
            preallocate(&dir.path().join("zeroed"), size, true, Zeroes::Now).expect("zeroed");
        assert_eq!(data_start(&zeroed), Some(0), "zeroes are data");
        assert_eq!(data_start(&reserved), None, "reserved blocks are not data");
        assert_eq!(data_start(&file), None, "no zeroes written once stopped");
        assert_eq!(file.metadata().expect("stat").len(), size);
        let mut back = vec![0xFFu8; usize::try_from(size).expect("fits")];
        assert_eq!(read_at_most(&file, &mut back, 0).expect("read"), back.len());
        assert!(back.iter().all(|&b| b == 0), "not all zeroes");
    }

    #[test]
    fn a_file_only_reserved_has_its_size_and_reads_as_zeroes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("spare.seg.tmp");
        let size = (1 << 20) + 100;
        let file = preallocate(&path, size, true, Zeroes::Reserved).expect("allocated");
        assert_eq!(file.metadata().expect("stat").len(), size);
        let mut back = vec![0xFFu8; usize::try_from(size).expect("fits")];
        assert_eq!(read_at_most(&file, &mut back, 0).expect("read"), back.len());
        assert!(back.iter().all(|&b| b == 0), "not all zeroes");
    }

    #[test]
    fn zeroes_through_the_page_cache_make_the_same_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        check_preallocated(dir.path(), (1 << 20) + 100, false);
    }
}
