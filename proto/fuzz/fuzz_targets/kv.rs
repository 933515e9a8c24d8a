//! key=value parsing: never panics; what parses prints and re-parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(pairs) = proto::kv::parse(&text) else {
        return;
    };
    let mut printed = String::new();
    if let Err(e) = proto::kv::write(&pairs, &mut printed) {
        panic!("parsed pairs do not print: {e}");
    }
    match proto::kv::parse(&printed) {
        Ok(again) => assert_eq!(again, pairs, "printed {printed:?}"),
        Err(e) => panic!("printed {printed:?} does not re-parse: {e}"),
    }
});
