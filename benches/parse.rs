//! Parsing per source profile, as the collector does it for every message:
//!
//! - `parse/<profile>`: one syslog frame into its header and MSG, borrowed from the frame
//!   (`proto::syslog::parse_ref`), then mapped by the profiles a source would try
//!   (`proto::profiles::map_any`) into what the connection event records;
//! - `ingest/<profile>`: the collector's whole step from frame to journal entry
//!   (`collector::ingest::accept`): the same parse and mapping, the tenant read from the
//!   message's structured data and checked against the source, and the canonical encoding.
//!
//! The messages are the load generator's (`benches/loadgen/messages.rs`, about 250-400 bytes
//! each).
//!
//! ```text
//!  cargo bench --bench parse
//! ```
//!
//! Each profile's messages are tried against the built-in profiles in their detection order
//! and the generic `acme-pam` profile of `deploy/collector.toml`, as a collector with
//! auto-detection does: a profile tried late pays for the ones before it.

#[path = "loadgen/messages.rs"]
#[allow(dead_code)]
mod messages;

use std::hint::black_box;

use collector::ingest::{Source, accept};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messages::{Kind, Mix, Pool};
use proto::profiles::{GenericConfig, Input, Profile, map_any};
use proto::syslog::{ParseContext, SyslogRef, parse_ref};
use time::OffsetDateTime;

/// Messages of each profile cycled through.
const POOL: usize = 1024;

/// The generic profiles of the shipped example configuration.
#[derive(serde::Deserialize)]
struct Example {
    generic_profiles: Vec<GenericConfig>,
}

fn profiles() -> Vec<Profile> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/collector.toml");
    let text = std::fs::read_to_string(path).expect("deploy/collector.toml");
    let example: Example = toml::from_str(&text).expect("its generic profiles");
    let mut all = Profile::builtins();
    for g in example.generic_profiles {
        all.push(Profile::Generic(Box::new(
            g.compile().expect("a valid profile"),
        )));
    }
    all
}

fn parse_and_map(c: &mut Criterion) {
    let profiles = profiles();
    let ctx = ParseContext::new(OffsetDateTime::now_utc(), jiff::tz::TimeZone::UTC);
    // One pool of messages per profile, for both groups.
    let pools: Vec<(Kind, Pool)> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let mix = Mix {
                weights: vec![(kind, 1)],
                tenants: 4,
                vendors: 20,
                persons: 200,
            };
            (kind, Pool::generate(&mix, 7, POOL))
        })
        .collect();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (kind, pool) in &pools {
        let kind = *kind;
        // Every message must be understood, by the profile it was written for.
        for m in &pool.messages {
            let frame = parse_ref(m.as_bytes(), &ctx).expect("a syslog frame");
            let mapped = map_any(&profiles, &input(&frame)).expect("a mapped message");
            assert_eq!(mapped.profile, profile_name(kind), "{m}");
        }
        let (_, mean, _) = pool.sizes();
        println!("{}: mean message {mean:.0} bytes", kind.name());
        let mut i = 0usize;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                let m = &pool.messages[i % POOL];
                i += 1;
                let frame = parse_ref(black_box(m.as_bytes()), &ctx).expect("frame");
                // The mapping borrows from the frame: looked at here, dropped with it.
                black_box(&map_any(&profiles, &input(&frame)));
            })
        });
    }
    g.finish();

    // A source of the load generator's tenants that tries the same profiles.
    let source = Source {
        name: "loadgen.localdomain".into(),
        tenants: (0..4).map(messages::tenant_name).collect(),
        default_tenant: messages::tenant_name(0),
        profiles,
    };
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(1));
    for (kind, pool) in &pools {
        for m in &pool.messages {
            let accepted = accept(m.as_bytes(), &source, &ctx).expect("an accepted message");
            assert!(!accepted.unmapped, "{m}");
        }
        let mut i = 0usize;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                let m = &pool.messages[i % POOL];
                i += 1;
                black_box(accept(black_box(m.as_bytes()), &source, &ctx).expect("accepted"))
            })
        });
    }
    g.finish();
}

fn input<'a>(m: &'a SyslogRef<'_>) -> Input<'a> {
    Input {
        app_name: m.app_name.as_deref(),
        hostname: m.hostname.as_deref(),
        proc_id: m.proc_id.as_deref(),
        timestamp: m.timestamp,
        msg: &m.msg,
        json: None,
    }
}

/// The profile a message of `kind` must be mapped by (every generic profile maps as
/// `generic`).
fn profile_name(kind: Kind) -> &'static str {
    kind.name()
}

criterion_group!(benches, parse_and_map);
criterion_main!(benches);
