//! Shared helpers of the collector's tests: a real PKI, a server on ephemeral ports, TLS
//! and RELP clients, an rsyslogd of the test (`rsyslogd`), and reading the journal back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod rsyslogd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use collector::config::{Config, ListenerConfig, SourceConfig};
use collector::devcerts::{DevCa, Issued, write};
use collector::server::{BoundAddrs, Server};
use proto::model::{ConnectionEvent, Entry};
use proto::relp::{Command, RelpDecoder, Response, Txnr};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const SOURCE: &str = "bastion.chu-x.fr";
pub const TENANT: &str = "CHU-X";

/// A CA with a server certificate and one source certificate, written to `dir`.
pub struct Pki {
    pub ca: DevCa,
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub source: Issued,
    pub source_cert: PathBuf,
    pub source_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = DevCa::new("test CA").unwrap();
        let server = ca
            .issue_server(&["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let source = ca.issue_client(SOURCE).unwrap();
        let p = |n: &str| dir.join(n);
        write(&p("ca.pem"), ca.cert_pem(), 0o644).unwrap();
        write(&p("server.pem"), &server.cert_pem, 0o644).unwrap();
        write(&p("server.key"), &server.key_pem, 0o600).unwrap();
        write(&p("source.pem"), &source.cert_pem, 0o644).unwrap();
        write(&p("source.key"), &source.key_pem, 0o600).unwrap();
        Pki {
            ca,
            dir: dir.to_path_buf(),
            ca_file: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            source,
            source_cert: p("source.pem"),
            source_key: p("source.key"),
        }
    }

    pub fn tls_files(&self) -> collector::config::TlsFiles {
        collector::config::TlsFiles {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: self.ca_file.clone(),
        }
    }

    /// A TLS client trusting this CA, presenting `client` (or no certificate).
    pub fn connector(&self, client: Option<&Issued>) -> TlsConnector {
        connector(self.ca.cert_pem(), client)
    }
}

pub fn connector(ca_pem: &str, client: Option<&Issued>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

pub async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// A configuration with every listener on an ephemeral port and one source.
pub fn config(data_dir: &Path, pki: &Pki) -> Config {
    let text = format!(
        r#"
        data_dir = "{data}"
        shutdown_timeout_ms = 10000
        [journal]
        seal_interval_ms = 3600000
        [tls]
        cert_file = "{cert}"
        key_file = "{key}"
        client_ca_file = "{ca}"
        [syslog_tls]
        listen = ["127.0.0.1:0"]
        max_frame_bytes = 4096
        handshake_timeout_ms = 2000
        [relp_tls]
        listen = ["127.0.0.1:0"]
        max_frame_bytes = 4096
        handshake_timeout_ms = 2000
        [metrics]
        listen = "127.0.0.1:0"
        [[sources]]
        name = "{SOURCE}"
        tenants = ["{TENANT}", "CHU-Y"]
        "#,
        data = data_dir.display(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca_file.display(),
    );
    Config::parse(&text).unwrap()
}

pub fn add_source(config: &mut Config, name: &str, tenants: &[&str]) {
    config.sources.push(SourceConfig {
        name: name.into(),
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        default_tenant: None,
        profiles: Vec::new(),
    });
}

pub fn listener(addr: &str) -> ListenerConfig {
    ListenerConfig::on(vec![addr.parse().unwrap()])
}

/// A server running on its own task; `stop()` shuts it down and returns its result.
pub struct Running {
    pub addrs: BoundAddrs,
    pub metrics: collector::metrics::Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), collector::server::ServerError>>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        let server = Server::bind(config).await.unwrap();
        let addrs = server.addrs().clone();
        let metrics = server.metrics();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            addrs,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    pub fn syslog(&self) -> SocketAddr {
        self.addrs.syslog_tls[0]
    }

    pub fn relp(&self) -> SocketAddr {
        self.addrs.relp_tls[0]
    }

    pub async fn stop(mut self) -> Result<(), collector::server::ServerError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task")
    }
}

/// Every entry of the journal in `dir`, in seq order, with whether it is a seal.
pub fn entries(dir: &Path) -> Vec<(bool, Entry)> {
    let reader = store::journal::JournalReader::open(dir).unwrap();
    reader
        .scan_seq(0..=u64::MAX)
        .map(|e| {
            let e = e.unwrap();
            (e.is_seal(), proto::canonical::decode(&e.canonical).unwrap())
        })
        .collect()
}

/// The connection events of the journal in `dir`.
pub fn events(dir: &Path) -> Vec<ConnectionEvent> {
    entries(dir)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Entry::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Verifies the whole chain with the verifier key; panics with the report if it fails.
pub fn verify(dir: &Path) -> proto::verify::Report {
    let keys =
        store::journal::VerifierKeys::read(&dir.join(store::journal::VERIFIER_FILE)).unwrap();
    let reader = store::journal::JournalReader::open(dir).unwrap();
    let records = reader
        .scan_seq(0..=u64::MAX)
        .map(|e| proto::verify::Record::from(e.unwrap()));
    let report = proto::verify::verify_all(keys.verify_keys(), records);
    assert!(report.is_intact(), "chain does not verify: {report:?}");
    report
}

/// An RFC 5424 message from sshd with a sequence number.
pub fn message(i: usize) -> String {
    format!(
        "<86>1 2026-03-01T10:00:01.000000+01:00 bastion sshd 812 - - Accepted publickey for user{i} from 203.0.113.7 port {} ssh2\n",
        40000 + i % 20000
    )
}

/// A minimal RELP client over any stream.
pub struct Relp<S> {
    pub stream: S,
    buf: Vec<u8>,
    decoder: RelpDecoder,
    next: Txnr,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Relp<S> {
    pub fn new(stream: S) -> Self {
        Relp {
            stream,
            buf: Vec::new(),
            decoder: RelpDecoder::new(1 << 20),
            next: Txnr::FIRST,
        }
    }

    pub async fn send(&mut self, command: Command, data: &[u8]) -> Txnr {
        let txnr = self.next;
        self.next = txnr.next();
        let mut out = Vec::new();
        proto::relp::encode_frame(txnr, &command, data, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
        txnr
    }

    pub async fn open(&mut self) {
        let t = self
            .send(
                Command::Open,
                b"relp_version=0\nrelp_software=test\ncommands=syslog",
            )
            .await;
        let (txnr, command, rsp) = self.recv().await.expect("open answered");
        assert_eq!((txnr, command), (t, Command::Rsp));
        assert!(
            rsp.starts_with(b"200 OK"),
            "{}",
            String::from_utf8_lossy(&rsp)
        );
    }

    /// The next frame from the server, or `None` at EOF / error.
    pub async fn recv(&mut self) -> Option<(Txnr, Command, Vec<u8>)> {
        loop {
            if let Some(f) = self.decoder.decode(&self.buf).unwrap() {
                let data = self.buf[f.data.clone()].to_vec();
                self.buf.drain(..f.consumed);
                return Some((f.txnr, f.command, data));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut chunk)).await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("no answer from the server within 20 s"),
            }
        }
    }

    /// The next `rsp`, parsed.
    pub async fn response(&mut self) -> Option<(Txnr, Response)> {
        let (txnr, command, data) = self.recv().await?;
        assert_eq!(command, Command::Rsp, "expected rsp, got {command:?}");
        Some((txnr, Response::parse(&data).unwrap()))
    }
}

/// A counter's value in the metrics text (summed over the label sets containing `labels`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
