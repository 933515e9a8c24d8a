//! End to end with a real rsyslog (8.2302, `rsyslog-gnutls`, `rsyslog-relp`): messages
//! go into rsyslog's own TCP input and rsyslog forwards them to the collector over syslog
//! TLS (omfwd, octet-counted, client certificate) or RELP TLS (omrelp, window 1024). Each
//! test runs its own rsyslogd with its own config, work directory, pid file and ports;
//! the system's rsyslog is never touched. Without rsyslogd these tests fail: install
//! `rsyslog rsyslog-gnutls rsyslog-relp`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rsyslogd::Rsyslogd;
use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends messages `range` into rsyslog's input, LF-framed, `per_ms` messages per
/// millisecond at most (0: as fast as possible).
fn feed(input: SocketAddr, range: std::ops::Range<usize>, per_ms: usize) {
    let mut s = TcpStream::connect(input).unwrap();
    let mut out = Vec::new();
    for i in range {
        out.extend_from_slice(input_message(i).as_bytes());
        if per_ms > 0 && i % (per_ms * 10) == 0 {
            s.write_all(&out).unwrap();
            out.clear();
            std::thread::sleep(Duration::from_millis(10));
        } else if out.len() > 60_000 {
            s.write_all(&out).unwrap();
            out.clear();
        }
    }
    s.write_all(&out).unwrap();
    s.flush().unwrap();
}

/// A message as a bastion's local syslog would hand it to rsyslog.
fn input_message(i: usize) -> String {
    format!(
        "<86>1 2026-03-01T10:00:01.000000+01:00 bastion sshd 812 - - Accepted publickey for user{i} from 203.0.113.7 port {} ssh2\n",
        1024 + i % 60000
    )
}

/// Polls the journal every `poll` until `want` distinct users are in it; returns the
/// per-user counts.
fn wait_for(
    data: &Path,
    want: usize,
    within: Duration,
    poll: Duration,
    what: &dyn Fn() -> String,
) -> HashMap<String, usize> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = HashMap::new();
        if data.join("verifier.key").exists() {
            for e in events(data) {
                if let Some(a) = e.account {
                    *seen.entry(a).or_insert(0) += 1;
                }
            }
        }
        if seen.len() >= want {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {want} messages reached the journal within {within:?}\n{}",
            seen.len(),
            what()
        );
        std::thread::sleep(poll);
    }
}

/// rsyslog's configuration: `modules`, then the ruleset "forward" of one `action`.
fn forward(modules: &str, action: &str) -> String {
    format!("{modules}\nruleset(name=\"forward\") {{\n{action}\n}}")
}

fn tls_globals(pki: &Pki) -> String {
    format!(
        r#"global(DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")"#,
        ca = pki.ca_file.display(),
        cert = pki.source_cert.display(),
        key = pki.source_key.display(),
    )
}

#[test]
fn rsyslog_forwards_over_syslog_tls_and_every_message_is_journaled() {
    const N: usize = 5000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(Running::start(config(&data, &pki)));
    let action = format!(
        r#"action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
       StreamDriver="gtls" StreamDriverMode="1"
       StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
       queue.type="LinkedList" action.resumeRetryCount="-1" action.resumeInterval="1")"#,
        port = server.syslog().port()
    );
    let rsyslog = Rsyslogd::start(tmp.path(), &forward(&tls_globals(&pki), &action), "forward")
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    feed(rsyslog.input(), 0..N, 0);
    let seen = wait_for(
        &data,
        N,
        Duration::from_secs(60),
        Duration::from_millis(100),
        &|| rsyslog.log(),
    );
    let elapsed = started.elapsed();
    drop(rsyslog);
    runtime.block_on(server.stop()).unwrap();
    let events = events(&data);
    assert_eq!(events.len(), N, "exactly N events");
    assert!(seen.values().all(|&n| n == 1));
    assert!(
        events
            .iter()
            .all(|e| e.source == SOURCE && e.tenant == TENANT)
    );
    // rsyslog's protocol-23 format counts its trailing LF: the raw message keeps it.
    assert!(events[0].raw.ends_with(b"\n"));
    verify(&data);
    eprintln!("syslog/tls: {N} messages through rsyslog in {elapsed:?}");
}

/// The collector binary as a subprocess.
struct Collector {
    child: Child,
    log: PathBuf,
}

impl Collector {
    fn start(config: &Path, log: &Path) -> Collector {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_collector"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("VIGIE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Collector {
            child,
            log: log.to_path_buf(),
        }
    }

    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("collector exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "collector not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!("collector did not stop on SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn rsyslog_relp_loses_no_acknowledged_message_when_the_collector_is_killed() {
    const N: usize = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    let relp_port = free_port();
    let config_file = tmp.path().join("collector.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"data_dir = "{data}"
[journal]
seal_interval_ms = 1000
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{ca}"
[relp_tls]
listen = ["127.0.0.1:{relp_port}"]
[[sources]]
name = "{SOURCE}"
tenants = ["{TENANT}"]
"#,
            data = data.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            ca = pki.ca_file.display(),
        ),
    )
    .unwrap();
    let log = tmp.path().join("collector.log");
    let mut collector = Collector::start(&config_file, &log);
    collector.wait_listening(relp_port);

    let modules = r#"module(load="omrelp" tls.tlslib="gnutls")"#;
    let action = format!(
        r#"action(type="omrelp" target="127.0.0.1" port="{relp_port}" windowSize="1024"
       tls="on" tls.caCert="{ca}" tls.myCert="{cert}" tls.myPrivKey="{key}"
       tls.authMode="name" tls.permittedPeer=["localhost"]
       template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1"
       action.resumeInterval="1")"#,
        ca = pki.ca_file.display(),
        cert = pki.source_cert.display(),
        key = pki.source_key.display(),
    );
    let rsyslog = Rsyslogd::start(tmp.path(), &forward(modules, &action), "forward")
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    // About 10 messages per millisecond: the stream lasts about 2 s.
    let input = rsyslog.input();
    let feeder = std::thread::spawn(move || feed(input, 0..N, 10));

    // Kill the collector mid-stream, once part of the stream is durable.
    let before = wait_for(
        &data,
        N / 10,
        Duration::from_secs(60),
        Duration::from_millis(10),
        &|| format!("{}\n{}", rsyslog.log(), collector.log()),
    );
    collector.kill();
    let after_kill = events(&data).len();
    assert!(
        after_kill < N,
        "the collector was killed mid-stream ({after_kill} of {N} stored)"
    );
    let mut collector = Collector::start(&config_file, &log);
    collector.wait_listening(relp_port);

    feeder.join().unwrap();
    let seen = wait_for(
        &data,
        N,
        Duration::from_secs(120),
        Duration::from_millis(100),
        &|| format!("{}\n{}", rsyslog.log(), collector.log()),
    );
    let elapsed = started.elapsed();
    drop(rsyslog);
    let status = collector.terminate();
    assert!(
        status.success(),
        "collector exit status {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Every message acknowledged before the kill was durable: it is still there, and
    // every message of the stream arrived (resent if unacknowledged).
    for user in before.keys() {
        assert!(
            seen.contains_key(user),
            "{user} acknowledged before the kill but lost"
        );
    }
    assert_eq!(seen.len(), N);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    verify(&data);
    eprintln!(
        "relp/tls: {N} messages through rsyslog in {elapsed:?} with a SIGKILL at {after_kill} stored; {duplicates} resent duplicates"
    );
}
