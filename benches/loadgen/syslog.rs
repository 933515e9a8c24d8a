//! Syslog over TCP or TLS (RFC 6587 / RFC 5425): frames packed into large writes, no
//! answers; at the end the connection is closed and read until the server closes it too,
//! which tells when the server has taken everything. Over TLS one 64 KiB write becomes four full 16 KiB records, so the per-record
//! cost is paid once per ~50 messages, not once per message.

use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::conn::{ConnCtx, Io};
use crate::stats::Counters;

/// Sends until the plan says stop or the connection fails; then closes cleanly (TLS
/// `close_notify`, TCP FIN) so the server reads everything.
pub async fn run(ctx: &ConnCtx, mut stream: Box<dyn Io>, c: &mut Counters, write_bytes: usize) {
    let mut buf = Vec::with_capacity(write_bytes + 1024);
    loop {
        let now = Instant::now();
        if ctx.plan.done(c.sent, now) {
            break;
        }
        let n = ctx.plan.allowed(c.sent, now, u64::MAX);
        if n == 0 {
            ctx.plan.wait_next(c.sent).await;
            continue;
        }
        buf.clear();
        let mut k = 0;
        while k < n && buf.len() < write_bytes {
            buf.extend_from_slice(ctx.message(c.sent + k));
            k += 1;
        }
        let written = async {
            stream.write_all(&buf).await?;
            stream.flush().await
        };
        if let Err(e) = written.await {
            c.error(format!("connection {}: write: {e}", ctx.id));
            return;
        }
        c.sent += k;
        c.wrote();
        c.bytes += buf.len() as u64;
        ctx.progress.sent(k);
    }
    if let Err(e) = stream.shutdown().await {
        c.error(format!("connection {}: close: {e}", ctx.id));
        return;
    }
    // Read until the server closes its side: it has then read everything (the collector
    // also waits until it is durable). Closing with unread bytes (TLS 1.3 session
    // tickets) would make the kernel answer with a reset, and the server could lose what
    // it had not read yet.
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(ctx.plan.answer_until.into(), stream.read(&mut sink)).await {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            // The server closed the TCP connection without a TLS close_notify (rsyslog's
            // gtls driver does): the same answer as a clean close, since syslog has no
            // acknowledgements and nothing is left to read.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Ok(Err(e)) => {
                c.error(format!("connection {}: after close: {e}", ctx.id));
                return;
            }
            Err(_) => {
                c.error(format!(
                    "connection {}: the server did not close within the grace period",
                    ctx.id
                ));
                return;
            }
        }
    }
}
