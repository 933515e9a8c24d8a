//! Syslog parsing: never panics; what parses and prints as RFC 5424 re-parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::syslog::{Format, ParseContext, SyslogMessage, parse};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    // The first 4 bytes move the receive clock up to ±68 years around 2026-03-01.
    let Some((clock, frame)) = data.split_first_chunk::<4>() else {
        return;
    };
    let now = 1_772_355_600 + i64::from(i32::from_le_bytes(*clock));
    let Ok(now) = OffsetDateTime::from_unix_timestamp(now) else {
        return;
    };
    let Ok(ctx) = ParseContext::europe_paris(now) else {
        panic!("no Europe/Paris");
    };
    let Ok(message) = parse(frame, &ctx) else {
        return;
    };
    let mut printed = Vec::new();
    if message.write_rfc5424(&mut printed).is_err() {
        return;
    }
    let again = match parse(&printed, &ctx) {
        Ok(again) => again,
        Err(e) => panic!(
            "printed {:?} does not re-parse: {e}",
            String::from_utf8_lossy(&printed)
        ),
    };
    assert_eq!(
        again,
        SyslogMessage {
            format: Format::Rfc5424,
            ..message.clone()
        }
    );
    assert_eq!(
        again.timestamp.map(|t| t.offset()),
        message.timestamp.map(|t| t.offset())
    );
});
