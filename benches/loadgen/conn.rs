//! What every connection shares: its schedule, the messages (pre-encoded for the
//! protocol), progress counters, and how to open the socket (plain TCP or TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::plan::Plan;

/// A byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Counters every connection adds to, for the per-second progress lines.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
}

impl Progress {
    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::Relaxed);
    }
}

/// How to reach the server.
#[derive(Clone)]
pub struct Dialer {
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Dialer {
    pub async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let s = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| std::io::Error::other("tls handshake timed out after 10 s"))??;
                Ok(Box::new(s))
            }
        }
    }
}

/// One connection's share of the run.
#[derive(Clone)]
pub struct ConnCtx {
    pub id: usize,
    pub plan: Plan,
    /// Messages encoded for the protocol (a frame, a RELP payload, a JSON string).
    pub wire: Arc<Vec<Vec<u8>>>,
    /// Where this connection starts in `wire`.
    pub offset: usize,
    pub progress: Arc<Progress>,
    pub dialer: Dialer,
    /// A prefix making HTTPS event ids unique to this run.
    pub run_id: String,
}

impl ConnCtx {
    /// The `k`-th message of this connection.
    pub fn message(&self, k: u64) -> &[u8] {
        &self.wire[(self.offset + k as usize) % self.wire.len()]
    }
}
