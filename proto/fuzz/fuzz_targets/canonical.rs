//! Canonical decoding: never panics, and whatever decodes re-encodes to the very same bytes
//! (one entry, one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = proto::canonical::decode(data) {
        assert_eq!(proto::canonical::encode(&entry), data, "{entry:?}");
    }
});
