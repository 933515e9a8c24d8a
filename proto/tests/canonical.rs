//! The canonical encoding round-trips every entry exactly, and never panics on bad bytes.

use std::net::IpAddr;

use proptest::prelude::*;
use proto::canonical::{self, DecodeError};
use proto::model::*;
use time::{Date, OffsetDateTime, UtcOffset};

fn instant() -> impl Strategy<Value = OffsetDateTime> {
    // 1900..2200, any offset a source may send.
    (
        -2_208_988_800i64..7_258_118_400i64,
        0u32..1_000_000_000,
        -64_800i32..=64_800,
    )
        .prop_map(|(secs, nanos, off)| {
            let t = OffsetDateTime::from_unix_timestamp(secs).expect("in range")
                + time::Duration::nanoseconds(i64::from(nanos));
            t.to_offset(UtcOffset::from_whole_seconds(off).expect("in range"))
        })
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn factor() -> impl Strategy<Value = AuthFactor> {
    prop_oneof![
        Just(AuthFactor::Password),
        Just(AuthFactor::PublicKey),
        Just(AuthFactor::Certificate),
        Just(AuthFactor::Otp),
        Just(AuthFactor::Push),
        Just(AuthFactor::HardwareKey),
        Just(AuthFactor::Kerberos),
        text().prop_map(AuthFactor::Other),
    ]
}

fn event() -> impl Strategy<Value = ConnectionEvent> {
    let kind = prop_oneof![
        Just(EventKind::SessionStart),
        Just(EventKind::SessionEnd),
        Just(EventKind::AuthSuccess),
        text().prop_map(|reason| EventKind::AuthFailure { reason }),
        Just(EventKind::TunnelUp),
        Just(EventKind::TunnelDown),
        Just(EventKind::Unmapped),
    ];
    let addr = prop::option::of(prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]);
    (
        (kind, text(), text(), opt_text(), opt_text(), opt_text()),
        (opt_text(), opt_text(), addr, opt_text()),
        (
            prop::collection::vec(factor(), 0..4),
            instant(),
            instant(),
            prop::collection::vec(any::<u8>(), 0..64),
        ),
    )
        .prop_map(
            |(
                (kind, tenant, source, vendor, person, account),
                (target, protocol, source_addr, session_id),
                (factors, occurred_at, received_at, raw),
            )| ConnectionEvent {
                kind,
                tenant,
                source,
                vendor,
                person,
                account,
                target,
                protocol,
                source_addr,
                session_id,
                factors,
                occurred_at,
                received_at,
                raw,
            },
        )
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        (instant(), instant())
            .prop_map(|(starts_at, ends_at)| Schedule::OneOff { starts_at, ends_at }),
        (text(), text(), any::<u32>(), text()).prop_map(
            |(zone, first_start_local, duration_seconds, rrule)| Schedule::Recurring {
                zone,
                first_start_local,
                duration_seconds,
                rrule,
            }
        ),
    ]
}

fn member() -> impl Strategy<Value = StaffMember> {
    (
        (text(), text(), text(), text()),
        (texts(), text(), texts(), 1i32..9999, 1u16..=365),
    )
        .prop_map(
            |(
                (person, last_name, first_name, email),
                (accounts, access_level, resources, y, d),
            )| {
                StaffMember {
                    person,
                    last_name,
                    first_name,
                    email,
                    accounts,
                    access_level,
                    resources,
                    start_date: Date::from_ordinal_date(y, d).expect("ordinal 1..=365"),
                }
            },
        )
}

fn body() -> impl Strategy<Value = DeclarationBody> {
    let window = (
        (text(), text(), text(), opt_text(), text()),
        (texts(), texts(), schedule()),
    )
        .prop_map(
            |((id, vendor, reason, ticket, approver), (persons, targets, schedule))| Window {
                id,
                vendor,
                reason,
                ticket,
                approver,
                persons,
                targets,
                schedule,
            },
        );
    prop_oneof![
        (text(), text())
            .prop_map(|(vendor, name)| DeclarationBody::VendorRegistered { vendor, name }),
        (text(), prop::collection::vec(member(), 0..3))
            .prop_map(|(vendor, persons)| DeclarationBody::StaffList { vendor, persons }),
        (text(), text(), instant()).prop_map(|(vendor, person, effective_at)| {
            DeclarationBody::Departure {
                vendor,
                person,
                effective_at,
            }
        }),
        window.prop_map(DeclarationBody::WindowGranted),
        (text(), text(), text()).prop_map(|(vendor, window_id, reason)| {
            DeclarationBody::WindowCancelled {
                vendor,
                window_id,
                reason,
            }
        }),
        (
            (text(), opt_text(), opt_text()),
            (instant(), instant(), text(), opt_text())
        )
            .prop_map(
                |((vendor, person, target), (starts_at, ends_at, reason, ticket))| {
                    DeclarationBody::Emergency {
                        vendor,
                        person,
                        target,
                        starts_at,
                        ends_at,
                        reason,
                        ticket,
                    }
                }
            ),
        (text(), opt_text(), instant(), instant(), text(), texts()).prop_map(
            |(vendor, window_id, started_at, ended_at, nature, persons)| {
                DeclarationBody::InterventionReport {
                    vendor,
                    window_id,
                    started_at,
                    ended_at,
                    nature,
                    persons,
                }
            }
        ),
        (text(), text())
            .prop_map(|(action, scope)| DeclarationBody::AccessRecorded { action, scope }),
    ]
}

fn seal() -> impl Strategy<Value = Seal> {
    let kind = prop_oneof![
        Just(SealKind::Checkpoint),
        (any::<u64>(), any::<[u8; 32]>(), any::<u32>()).prop_map(
            |(cut_seq, cut_prev_mac, cut_epoch)| SealKind::RetentionCut {
                cut_seq,
                cut_prev_mac,
                cut_epoch
            }
        ),
    ];
    (
        kind,
        any::<[u8; 16]>(),
        any::<u32>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        instant(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(
            |(kind, chain_id, epoch, through_seq, head_mac, sealed_at, sig)| Seal {
                kind,
                chain_id,
                epoch,
                through_seq,
                head_mac,
                sealed_at,
                signature: sig.try_into().expect("64 bytes"),
            },
        )
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        event().prop_map(Entry::Event),
        (text(), text(), instant(), body()).prop_map(|(tenant, filed_by, filed_at, body)| {
            Entry::Declaration(Declaration {
                tenant,
                filed_by,
                filed_at,
                body,
            })
        }),
        seal().prop_map(Entry::Seal),
    ]
}

proptest! {
    #[test]
    fn every_entry_round_trips(e in entry()) {
        let bytes = canonical::encode(&e);
        let back = canonical::decode(&bytes).expect("decodes");
        prop_assert_eq!(&back, &e);
        // The offset the source gave is kept, not only the instant.
        if let (Entry::Event(a), Entry::Event(b)) = (&back, &e) {
            prop_assert_eq!(a.occurred_at.offset(), b.occurred_at.offset());
        }
        prop_assert_eq!(canonical::encode(&back), bytes);
    }

    #[test]
    fn every_strict_prefix_is_refused(e in entry(), cut in any::<prop::sample::Index>()) {
        let bytes = canonical::encode(&e);
        let cut = cut.index(bytes.len());
        prop_assert!(canonical::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(e) = canonical::decode(&bytes) {
            prop_assert_eq!(canonical::encode(&e), bytes);
        }
    }

    #[test]
    fn flipped_bytes_never_panic(e in entry(), at in any::<prop::sample::Index>(), x in 1u8..) {
        let mut bytes = canonical::encode(&e);
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        if let Ok(d) = canonical::decode(&bytes) {
            prop_assert_eq!(canonical::encode(&d), bytes);
        }
    }
}

#[test]
fn errors_name_field_and_offset() {
    assert_eq!(
        canonical::decode(&[2, 1]),
        Err(DecodeError::UnknownVersion { version: 2 })
    );
    assert_eq!(
        canonical::decode(&[1, 9]),
        Err(DecodeError::InvalidTag {
            offset: 1,
            field: "entry",
            tag: 9
        })
    );
    let err = canonical::decode(&[1, 1, 1, 0, 0, 0, 5, b'a']).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            offset: 7,
            field: "tenant"
        }
    );
    assert_eq!(
        err.to_string(),
        "entry truncated at byte 7 while reading tenant"
    );
    let huge = [1, 1, 1, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        canonical::decode(&huge),
        Err(DecodeError::TooLong {
            offset: 3,
            field: "tenant",
            ..
        })
    ));
}

#[test]
fn the_layout_is_stable() {
    // A fixed entry's bytes: if this changes, the chain of every deployed journal breaks.
    let e = Entry::Declaration(Declaration {
        tenant: "chu".into(),
        filed_by: "rssi".into(),
        filed_at: time::macros::datetime!(2026-01-02 03:04:05 +01:00),
        body: DeclarationBody::VendorRegistered {
            vendor: "acme".into(),
            name: "ACME".into(),
        },
    });
    let hex: String = canonical::encode(&e)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "0102000000036368750000000472737369\
         1886c7abebdd920000000e10\
         010000000461636d650000000441434d45"
    );
}
