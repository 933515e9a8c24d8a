//! CEF parsing: never panics; what parses and prints re-parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(event) = proto::cef::parse(&text) else {
        return;
    };
    let mut printed = String::new();
    if event.write(&mut printed).is_err() {
        return;
    }
    match proto::cef::parse(&printed) {
        Ok(again) => assert_eq!(again, event, "printed {printed:?}"),
        Err(e) => panic!("printed {printed:?} does not re-parse: {e}"),
    }
});
