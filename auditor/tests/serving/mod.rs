//! Shared by the HTTP and browser tests: the auditor server on an ephemeral loopback port
//! over the month's ledger, its users, and a bare HTTP/1.1 client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use auditor::access::{Role, UserConfig, token_sha256_hex};
use auditor::config::{Config, LedgerConfig, Limits, RulesConfig};
use auditor::http::{App, Transport};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// (name, token, role, tenants)
pub const USERS: &[(&str, &str, Role, &[&str])] = &[
    ("rssi.dupont", "tok-rssi-lyon", Role::Rssi, &["chu-lyon"]),
    ("rssi.nice", "tok-rssi-nice", Role::Rssi, &["chu-nice"]),
    ("rssi.groupe", "tok-rssi-group", Role::Rssi, &["*"]),
    ("audit.martin", "tok-auditor", Role::Auditor, &["chu-lyon"]),
    (
        "decl.medimage",
        "tok-declarant",
        Role::Declarant,
        &["chu-lyon"],
    ),
];

pub const FROM: &str = "2026-03-01T00:00:00%2B01:00";
pub const TO: &str = "2026-04-01T00:00:00%2B02:00";

/// The server's configuration over the month's ledger; rule settings as
/// `common::config()`.
pub fn server_config(ledger: &Path, events: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: None,
        limits: Limits {
            max_body_bytes: 64 * 1024,
            ..Limits::default()
        },
        ledger: LedgerConfig {
            declarations: ledger.to_path_buf(),
            events: vec![events.to_path_buf()],
            verifier_keys: vec![],
            postgres_url: None,
            chain_keys: vec![],
        },
        rules: RulesConfig {
            silent_after_hours: 8 * 24,
            ..RulesConfig::default()
        },
        users: USERS
            .iter()
            .map(|(name, token, role, tenants)| UserConfig {
                name: (*name).into(),
                token_sha256: Some(token_sha256_hex(token)),
                cert_subject: None,
                cert_sha256: None,
                role: *role,
                tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            })
            .collect(),
    }
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), auditor::http::ServeError>>,
}

impl Running {
    pub async fn start(config: Config, transport: Transport) -> Running {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App::new(config).expect("app");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(auditor::http::run(listener, transport, app, async move {
            let _ = rx.await;
        }));
        Running {
            addr,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("join").expect("served");
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
pub async fn request_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    request_on(tcp, method, path, token, body).await
}

pub async fn get(addr: SocketAddr, path: &str, token: &str) -> Reply {
    request(addr, "GET", path, Some(token), None).await
}

/// The `AccessRecorded` declarations of the ledger: (tenant, filed_by, action, scope).
pub fn accesses(ledger: &Path) -> Vec<(String, String, String, String)> {
    let reader = store::journal::JournalReader::open(ledger).expect("open ledger");
    reader
        .scan_seq(0..=u64::MAX)
        .filter_map(|s| {
            let s = s.expect("record");
            match proto::canonical::decode(&s.canonical).ok()? {
                proto::model::Entry::Declaration(d) => match d.body {
                    proto::model::DeclarationBody::AccessRecorded { action, scope } => {
                        Some((d.tenant, d.filed_by, action, scope))
                    }
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}
