//! Frame decoding: never panics, keeps its buffer bound, gives the same frames whatever the
//! read sizes, and octet-counted frames re-encode to what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::framing::{FrameDecoder, FrameError, Framing, FramingConfig, encode_octet_counted};

/// Frames (discarded pieces left out) and errors as a caller sees them.
#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Framing, Vec<u8>),
    Error(&'static str, u64),
}

fn run(max: usize, stream: &[u8], chunk: usize) -> Vec<Seen> {
    let mut dec = FrameDecoder::new(FramingConfig {
        max_frame_bytes: max,
    });
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut chunks = stream.chunks(chunk.max(1)).peekable();
    loop {
        let last = chunks.peek().is_none();
        if let Some(c) = chunks.next() {
            buf.extend_from_slice(c);
        }
        loop {
            let before = buf.len();
            let out = if last {
                dec.decode_eof(&buf)
            } else {
                dec.decode(&buf)
            };
            match out {
                Ok(None) => {
                    assert!(before <= max + 11, "buffer of {before} over the cap {max}");
                    break;
                }
                Ok(Some(f)) => {
                    assert!(f.consumed > 0 && f.consumed <= buf.len());
                    assert!(f.content.end <= f.consumed);
                    if f.framing != Framing::Discarded {
                        seen.push(Seen::Frame(f.framing, buf[f.content].to_vec()));
                    }
                    buf.drain(..f.consumed);
                }
                Err(e) => {
                    let (kind, offset) = match e {
                        FrameError::OctetCountTooLarge { offset, .. } => ("too large", offset),
                        FrameError::LineTooLong { offset, .. } => ("line too long", offset),
                        FrameError::Truncated { offset, .. } => ("truncated", offset),
                    };
                    seen.push(Seen::Error(kind, offset));
                    if !e.can_continue() {
                        return seen;
                    }
                    assert!(e.discard() > 0 && e.discard() <= buf.len());
                    buf.drain(..e.discard());
                }
            }
        }
        if last {
            return seen;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[cap, chunk], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(cap) + 1;
    let whole = run(max, stream, stream.len());
    assert_eq!(whole, run(max, stream, usize::from(chunk) % 17 + 1));
    for seen in &whole {
        if let Seen::Frame(Framing::OctetCounted, msg) = seen {
            let mut out = Vec::new();
            encode_octet_counted(msg, &mut out);
            assert_eq!(
                run(max, &out, out.len()),
                vec![Seen::Frame(Framing::OctetCounted, msg.clone())]
            );
        }
    }
});
