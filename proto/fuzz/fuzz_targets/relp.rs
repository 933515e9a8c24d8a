//! RELP decoding: never panics, gives the same frames whatever the read sizes, and every frame
//! re-encodes to one that decodes the same; offers and responses parse, print and re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::relp::{Command, Offers, RelpDecoder, Response, encode_frame};

type Seen = (u32, Command, Vec<u8>);

fn run(max: usize, stream: &[u8], chunk: usize) -> (Vec<Seen>, Option<String>) {
    let mut dec = RelpDecoder::new(max);
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for c in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(c);
        loop {
            match dec.decode(&buf) {
                Ok(None) => {
                    assert!(buf.len() <= max + 55);
                    break;
                }
                Ok(Some(f)) => {
                    assert!(f.data.end < f.consumed && f.consumed <= buf.len());
                    frames.push((f.txnr.get(), f.command, buf[f.data].to_vec()));
                    buf.drain(..f.consumed);
                }
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[cap, chunk], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(cap) * 8;
    let whole = run(max, stream, stream.len());
    assert_eq!(whole, run(max, stream, usize::from(chunk) % 17 + 1));
    for (txnr, command, payload) in &whole.0 {
        let mut out = Vec::new();
        let Some(txnr) = proto::relp::Txnr::new(*txnr) else {
            panic!("decoded txnr {txnr} out of range");
        };
        if encode_frame(txnr, command, payload, &mut out).is_err() {
            panic!("decoded frame does not re-encode: {command:?}");
        }
        let again = run(max, &out, out.len());
        assert_eq!(
            again,
            (vec![(txnr.get(), command.clone(), payload.clone())], None)
        );
        if let Ok(offers) = Offers::parse(payload) {
            let mut printed = Vec::new();
            if offers.encode(&mut printed).is_ok() {
                assert_eq!(Offers::parse(&printed).ok(), Some(offers));
            }
        }
        let _ = Response::parse(payload);
    }
});
