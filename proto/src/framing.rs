//! Splitting a syslog byte stream into frames, with no I/O (RFC 6587, RFC 5425).
//!
//! The collector owns the receive buffer; [`FrameDecoder::decode`] looks at its unconsumed
//! bytes and answers with one frame (a range of the buffer and how many bytes to drop), with
//! `Ok(None)` when more bytes are needed, or with a [`FrameError`]. Parsing the frame is the
//! job of [`crate::syslog`].
//!
//! ```text
//! stream        = *frame                       ; the method is chosen again for every frame
//! frame         = octet-counted / lf-terminated
//!
//! octet-counted = MSG-LEN SP SYSLOG-MSG        ; RFC 5425 §4.3, RFC 6587 §3.4.1
//! MSG-LEN       = NONZERO-DIGIT 0*9DIGIT       ; at most 10 digits, at most max_frame_bytes
//! SYSLOG-MSG    = MSG-LEN octets, kept as sent ; rsyslog counts a trailing LF: it stays
//!
//! lf-terminated = *(%x00-09 / %x0B-FF) LF     ; RFC 6587 §3.4.2, "non-transparent"
//!                                              ; the frame is what precedes LF; a CR before
//!                                              ; it stays, a bare LF is an empty frame
//!
//! "77 <13>1 2026-03-01T10:00:01Z bastion sshd 812 - - Accepted publickey for alice\n"
//!  ^^ ^-- octet-counted frame: the 77 octets after the space, LF included
//! "<13>Mar  1 10:00:01 bastion sshd[812]: Accepted publickey for alice\n"
//!  ^-- LF frame: anything but "1-9, digits, SP" starts one (usually "<"); LF excluded
//! ```
//!
//! Every frame has a cap, [`FramingConfig::max_frame_bytes`]; while the decoder answers
//! `Ok(None)` the unconsumed bytes never exceed the cap plus the 11 bytes of an octet-counting
//! header, so a peer cannot make the buffer grow without bound. Over the cap:
//! - an octet-counted frame is fatal ([`FrameError::can_continue`] is false): a count that large
//!   means the peer is misconfigured or the stream is out of step, and skipping it would need
//!   trusting that count;
//! - an over-long line is not: the error asks the caller to drop what it holds, the decoder
//!   then drops the rest of the line up to the next LF (reported as [`Framing::Discarded`]
//!   frames with empty content) and resumes. One bad line costs one message, reported loudly,
//!   instead of closing the connection and making the sender's queue retry it forever.
//!
//! The decoder keeps a little state (how far it already searched for LF, whether it is
//! dropping an over-long line, the stream position for error messages): the caller must pass
//! the same stream every time, starting at the first byte it has not dropped.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Default cap on one frame: 64 KiB (rsyslog's default `maxMessageSize` is 8 KiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Most digits accepted in MSG-LEN.
const MAX_LEN_DIGITS: usize = 10;

/// Framing settings of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FramingConfig {
    /// Largest frame content accepted, in bytes (default 65,536).
    pub max_frame_bytes: usize,
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// How a frame was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG`.
    OctetCounted,
    /// Terminated by LF.
    LineFeed,
    /// Bytes of an over-long line being dropped after a [`FrameError::LineTooLong`]; the
    /// content is empty and there is nothing to parse.
    Discarded,
}

/// One frame found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where the message is in the buffer given to [`FrameDecoder::decode`]. Empty for a bare
    /// LF and for [`Framing::Discarded`].
    pub content: Range<usize>,
    /// How many bytes the caller drops from the front of its buffer before the next call.
    pub consumed: usize,
    /// How the frame was delimited.
    pub framing: Framing,
}

/// Why the stream cannot be split into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An octet count over the cap; the stream cannot continue.
    #[error(
        "octet-counted frame at stream byte {offset} announces {len} bytes, over the cap of {max}"
    )]
    OctetCountTooLarge {
        /// Stream offset of the frame.
        offset: u64,
        /// The announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// A line longer than the cap; the caller drops [`FrameError::discard`] bytes and goes on.
    #[error("line at stream byte {offset} is longer than the cap of {max} bytes")]
    LineTooLong {
        /// Stream offset of the line.
        offset: u64,
        /// The cap.
        max: usize,
        /// Bytes the caller drops from the front of its buffer now.
        discard: usize,
    },
    /// The stream ended inside an octet-counted frame.
    #[error(
        "stream ended {received} bytes into the octet-counted frame of {expected} bytes at stream byte {offset}"
    )]
    Truncated {
        /// Stream offset of the frame.
        offset: u64,
        /// The announced length.
        expected: usize,
        /// The bytes of the message that arrived.
        received: usize,
    },
}

impl FrameError {
    /// Whether decoding may go on after dropping [`FrameError::discard`] bytes.
    pub fn can_continue(&self) -> bool {
        matches!(self, FrameError::LineTooLong { .. })
    }

    /// How many bytes the caller drops from the front of its buffer before going on
    /// (0 when the stream cannot continue).
    pub fn discard(&self) -> usize {
        match self {
            FrameError::LineTooLong { discard, .. } => *discard,
            _ => 0,
        }
    }
}

/// What the start of a frame says about its framing.
enum Header {
    /// Not enough bytes to tell.
    NeedMore,
    /// Octet-counted: the message starts at `start` and is `len` bytes long.
    Counted { start: usize, len: u64 },
    /// LF-terminated.
    Line,
}

fn header(buf: &[u8]) -> Header {
    let Some(&first) = buf.first() else {
        return Header::NeedMore;
    };
    if !(b'1'..=b'9').contains(&first) {
        return Header::Line;
    }
    let mut len = u64::from(first - b'0');
    let mut i = 1;
    while i < buf.len() && i < MAX_LEN_DIGITS && buf[i].is_ascii_digit() {
        len = len * 10 + u64::from(buf[i] - b'0');
        i += 1;
    }
    match buf.get(i) {
        None => Header::NeedMore,
        Some(b' ') => Header::Counted { start: i + 1, len },
        Some(_) => Header::Line,
    }
}

/// Splits a stream into frames; one per connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    config: FramingConfig,
    /// Bytes of the current line already searched for LF.
    scanned: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// Stream offset of the first byte of the caller's buffer.
    position: u64,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new(config: FramingConfig) -> Self {
        FrameDecoder {
            config,
            scanned: 0,
            discarding: false,
            position: 0,
        }
    }

    /// Stream offset of the first byte the caller has not dropped.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Finds the frame at the start of `buf`, the bytes of the stream not yet dropped.
    ///
    /// `Ok(None)` means more bytes are needed; it is only answered while `buf` holds at most
    /// `max_frame_bytes + 11` bytes. After `Ok(Some(frame))` the caller drops
    /// `frame.consumed` bytes; after an error that [can continue](FrameError::can_continue),
    /// it drops [`FrameError::discard`] bytes.
    ///
    /// # Errors
    ///
    /// [`FrameError::OctetCountTooLarge`] for a count over the cap (fatal),
    /// [`FrameError::LineTooLong`] for a line over the cap (the stream goes on).
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        if self.discarding {
            return Ok(self.discard_line(buf));
        }
        let max = self.config.max_frame_bytes;
        match header(buf) {
            Header::NeedMore => Ok(None),
            Header::Counted { start, len } => {
                if len > max as u64 {
                    return Err(FrameError::OctetCountTooLarge {
                        offset: self.position,
                        len,
                        max,
                    });
                }
                // len <= max, which is a usize.
                let end = start + len as usize;
                if buf.len() < end {
                    return Ok(None);
                }
                Ok(Some(self.frame(start..end, end, Framing::OctetCounted)))
            }
            Header::Line => {
                let from = self.scanned.min(buf.len());
                match memchr::memchr(b'\n', &buf[from..]) {
                    Some(at) => {
                        let end = from + at;
                        if end > max {
                            let err = FrameError::LineTooLong {
                                offset: self.position,
                                max,
                                discard: end + 1,
                            };
                            self.skip(end + 1);
                            return Err(err);
                        }
                        Ok(Some(self.frame(0..end, end + 1, Framing::LineFeed)))
                    }
                    None if buf.len() > max => {
                        let err = FrameError::LineTooLong {
                            offset: self.position,
                            max,
                            discard: buf.len(),
                        };
                        self.skip(buf.len());
                        self.discarding = true;
                        Err(err)
                    }
                    None => {
                        self.scanned = buf.len();
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Like [`FrameDecoder::decode`], once the peer has closed the stream: an unterminated
    /// last line is a frame (RFC 6587 lets the last LF be missing); `Ok(None)` once `buf` is
    /// empty.
    ///
    /// # Errors
    ///
    /// As [`FrameDecoder::decode`], and [`FrameError::Truncated`] when the stream stops
    /// inside an octet-counted frame.
    pub fn decode_eof(&mut self, buf: &[u8]) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        match header(buf) {
            Header::Counted { start, len } => Err(FrameError::Truncated {
                offset: self.position,
                // decode() answered Ok(None), so len <= max_frame_bytes.
                expected: len as usize,
                received: buf.len().saturating_sub(start),
            }),
            Header::NeedMore | Header::Line => {
                Ok(Some(self.frame(0..buf.len(), buf.len(), Framing::LineFeed)))
            }
        }
    }

    fn discard_line(&mut self, buf: &[u8]) -> Option<Frame> {
        if buf.is_empty() {
            return None;
        }
        let consumed = match memchr::memchr(b'\n', buf) {
            Some(at) => {
                self.discarding = false;
                at + 1
            }
            None => buf.len(),
        };
        Some(self.frame(0..0, consumed, Framing::Discarded))
    }

    fn frame(&mut self, content: Range<usize>, consumed: usize, framing: Framing) -> Frame {
        self.skip(consumed);
        Frame {
            content,
            consumed,
            framing,
        }
    }

    fn skip(&mut self, consumed: usize) {
        self.scanned = 0;
        self.position += consumed as u64;
    }
}

/// Appends `msg` to `out` as an octet-counted frame: `MSG-LEN SP msg`.
///
/// # Examples
/// ```
/// let mut out = Vec::new();
/// proto::framing::encode_octet_counted(b"<13>1 - - - - - - hi", &mut out);
/// assert_eq!(out, b"20 <13>1 - - - - - - hi");
/// ```
pub fn encode_octet_counted(msg: &[u8], out: &mut Vec<u8>) {
    push_decimal(out, msg.len() as u64);
    out.push(b' ');
    out.extend_from_slice(msg);
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0u8; 20]).as_bytes());
}

/// The decimal digits of `n`, written at the end of `digits`.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only: always UTF-8.
    std::str::from_utf8(&digits[i..]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn config(max: usize) -> FramingConfig {
        FramingConfig {
            max_frame_bytes: max,
        }
    }

    /// What a caller sees: frames' contents (discarded bytes left out) and error kinds.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Frame(Framing, Vec<u8>),
        TooLarge(u64),
        LineTooLong(u64),
        Truncated,
    }

    /// Feeds `chunks` one after the other like a collector would, then ends the stream.
    fn run(max: usize, chunks: &[&[u8]]) -> Vec<Seen> {
        let mut dec = FrameDecoder::new(config(max));
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        let last = chunks.len();
        for (n, chunk) in chunks.iter().chain(std::iter::once(&&b""[..])).enumerate() {
            buf.extend_from_slice(chunk);
            loop {
                assert!(buf.len() <= max + 11 + chunk.len());
                let out = if n == last {
                    dec.decode_eof(&buf)
                } else {
                    dec.decode(&buf)
                };
                match out {
                    Ok(None) => break,
                    Ok(Some(f)) => {
                        if f.framing != Framing::Discarded {
                            seen.push(Seen::Frame(f.framing, buf[f.content].to_vec()));
                        }
                        buf.drain(..f.consumed);
                    }
                    Err(e) => {
                        seen.push(match &e {
                            FrameError::OctetCountTooLarge { offset, .. } => {
                                Seen::TooLarge(*offset)
                            }
                            FrameError::LineTooLong { offset, .. } => Seen::LineTooLong(*offset),
                            FrameError::Truncated { .. } => Seen::Truncated,
                        });
                        if !e.can_continue() {
                            return seen;
                        }
                        buf.drain(..e.discard());
                    }
                }
            }
        }
        seen
    }

    fn frame(framing: Framing, s: &[u8]) -> Seen {
        Seen::Frame(framing, s.to_vec())
    }

    #[test]
    fn rsyslog_octet_counted_frames_keep_their_counted_newline() {
        let msg = b"<13>1 2026-03-01T10:00:01.123456+01:00 bastion sshd 812 - - Accepted\n";
        let mut stream = Vec::new();
        encode_octet_counted(msg, &mut stream);
        encode_octet_counted(b"<13>1 - - - - - -", &mut stream);
        let seen = run(1024, &[&stream]);
        assert_eq!(
            seen,
            vec![
                frame(Framing::OctetCounted, msg),
                frame(Framing::OctetCounted, b"<13>1 - - - - - -"),
            ]
        );
    }

    #[test]
    fn lf_frames_mixed_with_octet_counting() {
        let stream = b"<13>Mar  1 10:00:01 host a: x\r\n5 <1>hi\n\n2026-03-01 no pri\n";
        let seen = run(1024, &[stream]);
        assert_eq!(
            seen,
            vec![
                frame(Framing::LineFeed, b"<13>Mar  1 10:00:01 host a: x\r"),
                frame(Framing::OctetCounted, b"<1>hi"),
                frame(Framing::LineFeed, b""),
                frame(Framing::LineFeed, b""),
                frame(Framing::LineFeed, b"2026-03-01 no pri"),
            ]
        );
    }

    #[test]
    fn not_enough_bytes_is_none_not_an_error() {
        let mut dec = FrameDecoder::new(config(100));
        for partial in [&b""[..], b"1", b"12", b"12 <13>", b"<13>no newline yet"] {
            assert_eq!(dec.decode(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn an_octet_count_over_the_cap_is_fatal() {
        let mut dec = FrameDecoder::new(config(100));
        let err = dec.decode(b"101 <13>").unwrap_err();
        assert_eq!(
            err,
            FrameError::OctetCountTooLarge {
                offset: 0,
                len: 101,
                max: 100
            }
        );
        assert!(!err.can_continue());
        assert_eq!(
            err.to_string(),
            "octet-counted frame at stream byte 0 announces 101 bytes, over the cap of 100"
        );
        // Exactly at the cap is fine.
        assert_eq!(
            run(3, &[b"3 abc"]),
            vec![frame(Framing::OctetCounted, b"abc")]
        );
    }

    #[test]
    fn an_over_long_line_is_skipped_and_the_stream_goes_on() {
        let stream = b"<1>0123456789abcdef\n<1>ok\n";
        // Whole line in the buffer: one error, then the next frame.
        assert_eq!(
            run(8, &[stream]),
            vec![Seen::LineTooLong(0), frame(Framing::LineFeed, b"<1>ok")]
        );
        // Line split over many reads: one error, discarded pieces, then the next frame.
        let chunks: Vec<&[u8]> = stream.chunks(3).collect();
        assert_eq!(
            run(8, &chunks),
            vec![Seen::LineTooLong(0), frame(Framing::LineFeed, b"<1>ok")]
        );
        let mut dec = FrameDecoder::new(config(8));
        let err = dec.decode(b"<1>0123456789").unwrap_err();
        assert!(err.can_continue());
        assert_eq!(err.discard(), 13);
        assert_eq!(
            dec.decode(b"abc\n<1>"),
            Ok(Some(Frame {
                content: 0..0,
                consumed: 4,
                framing: Framing::Discarded
            }))
        );
        assert_eq!(dec.position(), 17);
    }

    #[test]
    fn eleven_digits_start_a_line_not_a_count() {
        assert_eq!(
            run(100, &[b"12345678901 x\n"]),
            vec![frame(Framing::LineFeed, b"12345678901 x")]
        );
    }

    #[test]
    fn end_of_stream() {
        assert_eq!(
            run(100, &[b"<13>last line without LF"]),
            vec![frame(Framing::LineFeed, b"<13>last line without LF")]
        );
        assert_eq!(run(100, &[b"10 <13>ab"]), vec![Seen::Truncated]);
        let mut dec = FrameDecoder::new(config(100));
        assert_eq!(
            dec.decode_eof(b"10 <13>ab").unwrap_err().to_string(),
            "stream ended 6 bytes into the octet-counted frame of 10 bytes at stream byte 0"
        );
        assert_eq!(run(100, &[b""]), vec![]);
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 65_536, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    /// A message and whether it is sent octet-counted.
    fn message() -> impl Strategy<Value = (bool, Vec<u8>)> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..200).prop_map(|m| (true, m)),
            proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..200)
                .prop_map(|mut m| {
                    m.insert(0, b'<');
                    (false, m)
                }),
        ]
    }

    fn splits(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for c in cuts {
            chunks.push(stream[from..c].to_vec());
            from = c;
        }
        chunks.push(stream[from..].to_vec());
        chunks
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            msgs in proptest::collection::vec(message(), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (counted, m) in &msgs {
                if *counted {
                    encode_octet_counted(m, &mut stream);
                    expected.push(frame(Framing::OctetCounted, m));
                } else {
                    stream.extend_from_slice(m);
                    stream.push(b'\n');
                    expected.push(frame(Framing::LineFeed, m));
                }
            }
            let chunks = splits(&stream, &cuts);
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(run(256, &[&stream]), expected.clone());
            prop_assert_eq!(run(256, &chunks), expected);
        }

        #[test]
        fn random_bytes_never_panic_and_split_the_same(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b' '), b'0'..=b'9', any::<u8>()], 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
            max in 1usize..64,
        ) {
            let chunks = splits(&stream, &cuts);
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(run(max, &[&stream]), run(max, &chunks));
        }

        #[test]
        fn encode_then_decode(msg in proptest::collection::vec(any::<u8>(), 1..2000)) {
            let mut out = Vec::new();
            encode_octet_counted(&msg, &mut out);
            let mut dec = FrameDecoder::new(config(2000));
            let f = dec.decode(&out).unwrap().unwrap();
            prop_assert_eq!(&out[f.content], &msg[..]);
            prop_assert_eq!(f.consumed, out.len());
        }
    }
}
