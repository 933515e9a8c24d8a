//! The auditor's rule engine on dense traffic: connections packed into four minutes of the
//! collector's clock, as gateways that log every login produce them. A third are sshd's (an
//! authentication under `ip:port`, its session under `sshd[pid]` a second later, the end a
//! minute after), a third VPN logins ended a minute later without a session start, a third
//! VPN logins never ended (judged as instants once they stop waiting for a session start,
//! 4 minutes later). Events are decoded from their canonical bytes as the auditor reads
//! them. The time per event should not grow with the number of connections in flight:
//! each size's throughput is printed side by side.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use auditor::decls::Declarations;
use auditor::finding::EntryRef;
use auditor::rules::{Engine, RuleConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proto::canonical;
use proto::model::{AuthFactor, ConnectionEvent, Entry, EventKind};
use time::{Duration, OffsetDateTime};

/// `connections` starting within four minutes, in the order of the collector's clock.
fn dense(connections: u32) -> Vec<Vec<u8>> {
    let t0 = OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_780_000_000);
    let spacing = Duration::minutes(4) / connections;
    let mut events = Vec::with_capacity(connections as usize * 2);
    for i in 0..connections {
        let at = t0 + spacing * i;
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));
        let event = |kind, at, id: String| ConnectionEvent {
            kind,
            tenant: "chu".into(),
            source: "bastion".into(),
            vendor: None,
            person: None,
            account: Some(format!("acct-{}", i % 2_000)),
            target: Some("srv-1".into()),
            protocol: Some("ssh".into()),
            source_addr: Some(addr),
            session_id: Some(id),
            factors: vec![AuthFactor::PublicKey],
            occurred_at: at,
            received_at: at,
            raw: Vec::new(),
        };
        let end = at + Duration::minutes(1);
        match i % 3 {
            0 => {
                events.push((
                    at,
                    event(EventKind::AuthSuccess, at, format!("{addr}:50000")),
                ));
                let start = at + Duration::seconds(1);
                events.push((
                    start,
                    event(EventKind::SessionStart, start, format!("sshd[{i}]")),
                ));
                events.push((end, event(EventKind::SessionEnd, end, format!("sshd[{i}]"))));
            }
            1 => {
                events.push((at, event(EventKind::AuthSuccess, at, format!("vpn-{i}"))));
                events.push((end, event(EventKind::TunnelDown, end, format!("vpn-{i}"))));
            }
            _ => events.push((at, event(EventKind::AuthSuccess, at, format!("vpn-{i}")))),
        }
    }
    events.sort_by_key(|(at, _)| *at);
    events
        .into_iter()
        .map(|(_, e)| canonical::encode(&Entry::Event(e)))
        .collect()
}

fn rules(c: &mut Criterion) {
    let decls = Declarations::default();
    let ledger: Arc<str> = "events".into();
    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    for connections in [5_000, 20_000, 80_000] {
        let encoded = dense(connections);
        g.throughput(Throughput::Elements(encoded.len() as u64));
        g.bench_function(format!("dense_sshd/{connections}"), |b| {
            b.iter(|| {
                let cfg = RuleConfig::new(
                    OffsetDateTime::UNIX_EPOCH,
                    OffsetDateTime::UNIX_EPOCH + Duration::days(365 * 100),
                );
                let mut engine = Engine::new(&decls, cfg);
                for (seq, bytes) in encoded.iter().enumerate() {
                    let e = canonical::decode_event_ref(bytes).expect("an event");
                    engine.push(
                        EntryRef {
                            ledger: ledger.clone(),
                            seq: seq as u64,
                        },
                        &e,
                    );
                }
                let (_, sessions, stats) = engine.finish();
                assert_eq!(stats.connections, u64::from(connections));
                black_box(sessions.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
