//! Umbrella package of the remote-maintenance connection journal.
//!
//! It owns the end-to-end tests in `tests/` (a real rsyslog forwarding to the collector
//! over RELP with mutual TLS, then the auditor's declarations, verification and report)
//! and the benches in `benches/`; the product itself lives in the workspace members
//! `proto`, `store`, `collector` and `auditor`. This library re-exports the first two and
//! holds the sample event the benches share.

pub use proto;
pub use store;

use std::net::{IpAddr, Ipv4Addr};

use proto::model::{AuthFactor, ConnectionEvent, Entry, EventKind};
use time::OffsetDateTime;

/// A realistic connection event (an OpenSSH login relayed by a bastion, about 300 bytes
/// once canonical), varied by `i`, for benches and load tests.
pub fn sample_event(i: usize) -> Entry {
    let at = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_780_000_000 + i as i64);
    let person = format!("agent{:04}@vendor{:03}.example", i % 2000, i % 200);
    let addr = Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1);
    let raw = format!(
        "<38>1 2026-05-28T20:26:40+02:00 bastion-01 sshd 4242 - - Accepted publickey for \
         {person} from {addr} port {} ssh2: ED25519 SHA256:3q2+7wXk0aT4b9iEo1sJtQ",
        40000 + i % 20000
    );
    Entry::Event(ConnectionEvent {
        kind: EventKind::SessionStart,
        tenant: format!("chu-{:02}", i % 8),
        source: "bastion-01".into(),
        vendor: Some(format!("vendor{:03}", i % 200)),
        person: Some(person),
        account: Some("maint".into()),
        target: Some(format!("srv-pacs-{:02}", i % 40)),
        protocol: Some("ssh".into()),
        source_addr: Some(IpAddr::V4(addr)),
        session_id: Some(format!("{addr}:{}", 40000 + i % 20000)),
        factors: vec![AuthFactor::PublicKey, AuthFactor::Otp],
        occurred_at: at,
        received_at: at,
        raw: raw.into_bytes(),
    })
}
