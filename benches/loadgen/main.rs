//! The load generator: drives a collector (or rsyslog) on loopback with realistic
//! messages over every protocol the collector accepts, and reports what got through,
//! how fast, with which ack latencies, and at what CPU cost to itself.
//!
//! ```text
//! cargo bench --bench loadgen -- --help
//! cargo bench --bench loadgen -- --protocol relp-tls --target 127.0.0.1:2514 \
//!     --ca DIR/ca.pem --cert DIR/source.pem --key DIR/source.key --connections 4 --duration 20
//! ```
//!
//! | protocol     | wire                                         | acks                  |
//! |--------------|----------------------------------------------|-----------------------|
//! | `syslog-tcp` | RFC 6587, `--framing octet` or `lf`           | none                  |
//! | `syslog-tls` | RFC 5425 (octet counting), client certificate | none                  |
//! | `relp-tls`   | RELP, `--window` outstanding `syslog` commands | `rsp 200` per message |
//! | `https`      | `POST /v1/events`, `--batch` events a request  | the answer, per batch |
//!
//! Runs are bounded (`--count`, `--duration`, then `--grace` for the last acks): the
//! generator always stops by itself. Targets must be loopback addresses. Messages come
//! from a pool drawn once with `--seed`, so runs are repeatable; see `messages`.
//!
//! Lessons kept (ANCHORS.md): a generator can be the bottleneck, so frames are packed into
//! 64 KiB writes (many messages per TLS record), RELP frames of a window go out in one
//! write, and the report gives the generator's own CPU time so a run shows who was the
//! limit. `cargo bench` passes `--bench`; it is accepted and ignored, and without
//! `--target` the generator says so and exits 0 (so a plain `cargo bench` skips it).

mod conn;
mod https;
mod messages;
mod plan;
mod relp;
mod stats;
mod syslog;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use rustls_pki_types::ServerName;

use crate::conn::{ConnCtx, Dialer, Progress};
use crate::messages::{Mix, Pool};
use crate::plan::Plan;
use crate::stats::{Counters, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// Syslog over plain TCP (RFC 6587).
    SyslogTcp,
    /// Syslog over TLS (RFC 5425, octet counting).
    SyslogTls,
    /// RELP over TLS.
    RelpTls,
    /// JSON batches over HTTPS (POST /v1/events).
    Https,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Framing {
    /// `LEN SP MSG` (RFC 6587 octet counting).
    Octet,
    /// `MSG LF` (non-transparent framing).
    Lf,
}

/// Load generator for the vigie collector (and rsyslog): loopback only, bounded runs.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// The protocol to speak.
    #[arg(long, value_enum, default_value = "syslog-tls")]
    protocol: Protocol,
    /// The server (a loopback address), e.g. 127.0.0.1:6514.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Syslog framing (syslog-tcp only; syslog-tls is always octet-counted).
    #[arg(long, value_enum, default_value = "octet")]
    framing: Framing,
    /// Parallel connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Target rate in messages per second over all connections (open loop); without it,
    /// closed loop: as fast as the server takes them (and, with acks, answers them).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many messages in all (split over the connections).
    #[arg(long)]
    count: Option<u64>,
    /// Stop sending after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// After sending stops, wait at most this many seconds for outstanding acks.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// RELP: most transactions outstanding per connection (omrelp's windowSize).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// HTTPS: most events per request.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Syslog: bytes gathered before each write.
    #[arg(long, default_value_t = 65536)]
    write_bytes: usize,
    /// The CA certificate that signed the server's certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The client (source) certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Seed of the message pool.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Distinct messages drawn before the run, cycled through.
    #[arg(long, default_value_t = 16384)]
    pool: usize,
    /// Weights of the source profiles.
    #[arg(
        long,
        default_value = "sshd=30,openvpn=15,fortigate=15,teleport=15,guacamole=15,generic=10"
    )]
    mix: String,
    /// Tenants the messages name (CHU-01, CHU-02, …): the source must be allowed them all.
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// Vendors the people work for.
    #[arg(long, default_value_t = 40)]
    vendors: usize,
    /// People who connect.
    #[arg(long, default_value_t = 1000)]
    persons: usize,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print sent/acked rates every second on stderr.
    #[arg(long)]
    progress: bool,
    /// Print this many messages of the pool and exit.
    #[arg(long)]
    print_messages: Option<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the load; `Ok(false)` when messages were refused, lost or connections failed.
fn run(args: Args) -> anyhow::Result<bool> {
    let mix = Mix {
        weights: Mix::parse_weights(&args.mix).map_err(anyhow::Error::msg)?,
        tenants: args.tenants.max(1),
        vendors: args.vendors.max(1),
        persons: args.persons.max(1),
    };
    if let Some(n) = args.print_messages {
        let pool = Pool::generate(&mix, args.seed, n);
        for m in &pool.messages {
            println!("{m}");
        }
        return Ok(true);
    }
    let Some(target) = args.target else {
        eprintln!(
            "loadgen: no --target given, nothing to do (see --help; benches/compare.sh runs it)"
        );
        return Ok(true);
    };
    if !target.ip().is_loopback() {
        bail!("target {target} is not a loopback address: the generator only loads 127.0.0.1/::1");
    }
    if args.connections == 0 || args.window == 0 || args.batch == 0 || args.write_bytes == 0 {
        bail!("--connections, --window, --batch and --write-bytes must be at least 1");
    }
    if !(args.duration > 0.0 && args.grace >= 0.0) {
        bail!("--duration must be positive and --grace not negative");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    let tls = match args.protocol {
        Protocol::SyslogTcp => None,
        _ => {
            let (Some(ca), Some(cert), Some(key)) = (&args.ca, &args.cert, &args.key) else {
                bail!("{:?} needs --ca, --cert and --key", args.protocol);
            };
            let name = ServerName::try_from(args.server_name.clone())
                .with_context(|| format!("bad --server-name {:?}", args.server_name))?;
            Some((tls::connector(ca, cert, key)?, name))
        }
    };

    let pool = Pool::generate(&mix, args.seed, args.pool);
    let sizes = pool.sizes();
    let wire: Vec<Vec<u8>> = pool
        .messages
        .iter()
        .map(|m| encode(args.protocol, args.framing, m))
        .collect::<anyhow::Result<_>>()?;
    let wire = Arc::new(wire);
    drop(pool);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .thread_name("loadgen")
        .build()
        .context("cannot start the async runtime")?;
    let cpu_before = stats::own_cpu();
    let (totals, send_elapsed, elapsed) = runtime.block_on(drive(&args, target, tls, wire));
    let cpu = stats::own_cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let acks = matches!(args.protocol, Protocol::RelpTls | Protocol::Https);
    let report = Report {
        protocol: format!(
            "{}{}",
            args.protocol
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
            if args.protocol == Protocol::SyslogTcp {
                format!(" ({:?} framing)", args.framing).to_lowercase()
            } else {
                String::new()
            }
        ),
        target: target.to_string(),
        mode: match args.rate {
            Some(r) => format!("open loop at {r:.0} msg/s"),
            None => "closed loop".into(),
        },
        connections: args.connections,
        seed: args.seed,
        message_bytes: sizes,
        elapsed,
        send_elapsed,
        cpu,
        acks,
        totals,
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(&report.json()).context("cannot encode the report")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let t = &report.totals;
    Ok(t.errors == 0 && t.refused == 0 && t.unanswered == 0)
}

/// A message as the protocol carries it.
fn encode(protocol: Protocol, framing: Framing, m: &str) -> anyhow::Result<Vec<u8>> {
    Ok(match (protocol, framing) {
        (Protocol::SyslogTls, _) | (Protocol::SyslogTcp, Framing::Octet) => {
            let mut out = Vec::with_capacity(m.len() + 6);
            proto::framing::encode_octet_counted(m.as_bytes(), &mut out);
            out
        }
        (Protocol::SyslogTcp, Framing::Lf) => {
            let mut out = Vec::with_capacity(m.len() + 1);
            out.extend_from_slice(m.as_bytes());
            out.push(b'\n');
            out
        }
        (Protocol::RelpTls, _) => m.as_bytes().to_vec(),
        (Protocol::Https, _) => serde_json::to_vec(m).context("cannot encode a message as JSON")?,
    })
}

/// Runs every connection to its end; returns the merged counters, the time spent
/// sending and the time until the last answer.
async fn drive(
    args: &Args,
    target: SocketAddr,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    wire: Arc<Vec<Vec<u8>>>,
) -> (Counters, Duration, Duration) {
    let n = args.connections;
    let start = Instant::now();
    let send_until = start + Duration::from_secs_f64(args.duration);
    let answer_until = send_until + Duration::from_secs_f64(args.grace);
    let progress = Arc::new(Progress::default());
    let dialer = Dialer { addr: target, tls };
    let run_id = format!(
        "lg{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..n {
        let count = args.count.map_or(u64::MAX, |c| {
            c / n as u64 + u64::from((id as u64) < c % n as u64)
        });
        let ctx = ConnCtx {
            id,
            plan: Plan {
                start,
                send_until,
                count,
                rate: args.rate.map(|r| r / n as f64),
                answer_until,
            },
            offset: id * wire.len() / n,
            wire: wire.clone(),
            progress: progress.clone(),
            dialer: dialer.clone(),
            run_id: run_id.clone(),
        };
        let protocol = args.protocol;
        let (window, batch, write_bytes) = (args.window, args.batch, args.write_bytes);
        tasks.spawn(async move {
            let c = connection(ctx, protocol, window, batch, write_bytes).await;
            (c, Instant::now())
        });
    }
    let reporter = args.progress.then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut s0, mut a0) = (0, 0);
            loop {
                tick.tick().await;
                let s = progress.sent.load(Ordering::Relaxed);
                let a = progress.acked.load(Ordering::Relaxed);
                eprintln!(
                    "loadgen: {:>5.0} s  sent {:>9}/s  acked {:>9}/s  (total sent {s}, acked {a})",
                    start.elapsed().as_secs_f64(),
                    s - s0,
                    a - a0
                );
                (s0, a0) = (s, a);
            }
        })
    });
    let mut totals = Counters::default();
    let mut last = start;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((c, ended)) => {
                totals.merge(&c);
                last = last.max(ended);
            }
            Err(e) => totals.error(format!("a connection task failed: {e}")),
        }
    }
    if let Some(r) = reporter {
        r.abort();
    }
    let send_end = totals.send_end.unwrap_or(start);
    (
        totals,
        send_end.duration_since(start),
        last.duration_since(start),
    )
}

/// One connection slot: connects, runs the protocol, reconnects after a failure while
/// the plan allows.
async fn connection(
    ctx: ConnCtx,
    protocol: Protocol,
    window: usize,
    batch: u64,
    write_bytes: usize,
) -> Counters {
    let mut c = Counters::default();
    let mut failures = 0;
    loop {
        if ctx.plan.done(c.sent, Instant::now()) {
            break;
        }
        let before = c.errors;
        match ctx.dialer.connect().await {
            Err(e) => c.error(format!("connection {}: connect: {e}", ctx.id)),
            Ok(stream) => match protocol {
                Protocol::SyslogTcp | Protocol::SyslogTls => {
                    syslog::run(&ctx, stream, &mut c, write_bytes).await;
                }
                Protocol::RelpTls => relp::run(&ctx, stream, &mut c, window).await,
                Protocol::Https => https::run(&ctx, stream, &mut c, batch).await,
            },
        }
        if c.errors == before {
            break;
        }
        failures += 1;
        if failures >= 10 {
            c.error(format!("connection {}: gave up after 10 failures", ctx.id));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c
}
