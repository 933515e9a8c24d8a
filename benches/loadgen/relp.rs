//! RELP over TLS with a window of outstanding transactions, as omrelp does
//! (`windowSize="1024"`): one `syslog` command per message, many frames per write, and an
//! ack latency per message from its `rsp`.
//!
//! ```text
//! writer: open ─ wait rsp ─┬─ take k window slots ─ encode k frames ─ one write ─┐ (until the plan stops)
//!                          │  ◄────────────────────────────────────────────────────┘
//!                          └─ wait until every slot is back (or the grace ends) ─ close
//! reader:                   rsp 200 → acked, slot back · rsp 500 → refused, slot back
//!                           rsp to close, EOF, serverclose → end
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use proto::relp::{Command, RelpDecoder, Response, Txnr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

use crate::conn::{ConnCtx, Io};
use crate::stats::Counters;

/// Largest answer frame read (answers are a few bytes; `open`'s carries offers).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Frames sent and not yet answered, oldest first: txnr, message index (None for
/// `close`), and the instant latency counts from.
type Outstanding = Arc<Mutex<VecDeque<(Txnr, Option<u64>, Instant)>>>;

/// One RELP session: open, send the plan's messages through the window, close.
pub async fn run(ctx: &ConnCtx, stream: Box<dyn Io>, c: &mut Counters, window: usize) {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut reader = Reader {
        rd,
        buf: Vec::with_capacity(64 * 1024),
        pos: 0,
        decoder: RelpDecoder::new(MAX_ANSWER_BYTES),
    };
    let mut out = Vec::with_capacity(256);
    let mut txnr = Txnr::FIRST;
    let offers = b"relp_version=0\nrelp_software=vigie-loadgen,0.1.0\ncommands=syslog";
    if let Err(e) = proto::relp::encode_frame(txnr, &Command::Open, offers, &mut out) {
        c.error(format!("connection {}: cannot encode open: {e}", ctx.id));
        return;
    }
    if let Err(e) = wr.write_all(&out).await.and(wr.flush().await) {
        c.error(format!("connection {}: write open: {e}", ctx.id));
        return;
    }
    match reader.next(ctx.plan.answer_until).await {
        Ok((t, Command::Rsp, data)) if t == txnr => match Response::parse(&data) {
            Ok(r) if r.is_ok() => {}
            Ok(r) => {
                c.error(format!(
                    "connection {}: open refused: {} {}",
                    ctx.id, r.code, r.text
                ));
                return;
            }
            Err(e) => {
                c.error(format!("connection {}: bad answer to open: {e}", ctx.id));
                return;
            }
        },
        Ok((t, cmd, _)) => {
            c.error(format!(
                "connection {}: unexpected {} {} before the open answer",
                ctx.id,
                t.get(),
                cmd.as_str()
            ));
            return;
        }
        Err(e) => {
            c.error(format!("connection {}: open: {e}", ctx.id));
            return;
        }
    }
    txnr = txnr.next();

    let slots = Arc::new(Semaphore::new(window));
    let outstanding: Outstanding = Arc::new(Mutex::new(VecDeque::with_capacity(window + 1)));
    let mut rc = Counters::default();
    let writer = write_loop(ctx, &mut wr, txnr, &slots, &outstanding, window, c);
    let reading = read_loop(ctx, &mut reader, &slots, &outstanding, &mut rc);
    let (closed, ()) = tokio::join!(writer, reading);
    let left = outstanding
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(_, k, _)| k.is_some())
        .count();
    c.unanswered += left as u64;
    c.merge(&rc);
    if closed {
        let _ = wr.shutdown().await;
    }
}

async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    ctx: &ConnCtx,
    wr: &mut W,
    mut txnr: Txnr,
    slots: &Semaphore,
    outstanding: &Outstanding,
    window: usize,
    c: &mut Counters,
) -> bool {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let now = Instant::now();
        if ctx.plan.done(c.sent, now) {
            break;
        }
        let free = slots.available_permits().max(1) as u64;
        let n = ctx.plan.allowed(c.sent, now, free.min(256));
        if n == 0 {
            ctx.plan.wait_next(c.sent).await;
            continue;
        }
        let Ok(permits) = slots.acquire_many(n as u32).await else {
            // Closed by the reader: the session is over.
            return false;
        };
        permits.forget();
        out.clear();
        let written = Instant::now();
        {
            let mut o = outstanding.lock().unwrap_or_else(PoisonError::into_inner);
            for k in c.sent..c.sent + n {
                if let Err(e) =
                    proto::relp::encode_frame(txnr, &Command::Syslog, ctx.message(k), &mut out)
                {
                    c.error(format!(
                        "connection {}: cannot encode message {k}: {e}",
                        ctx.id
                    ));
                    return false;
                }
                o.push_back((txnr, Some(k), ctx.plan.origin(k, written)));
                txnr = txnr.next();
            }
        }
        if let Err(e) = wr.write_all(&out).await.and(wr.flush().await) {
            c.error(format!("connection {}: write: {e}", ctx.id));
            slots.close();
            return false;
        }
        c.sent += n;
        c.wrote();
        c.bytes += out.len() as u64;
        ctx.progress.sent(n);
    }
    // Every slot back means every message answered.
    let all = tokio::time::timeout_at(
        ctx.plan.answer_until.into(),
        slots.acquire_many(window as u32),
    )
    .await;
    match all {
        Ok(Ok(p)) => p.forget(),
        Ok(Err(_)) => return false,
        Err(_) => {
            c.error(format!(
                "connection {}: acks still missing when the grace period ended",
                ctx.id
            ));
        }
    }
    out.clear();
    let _ = proto::relp::encode_frame(txnr, &Command::Close, b"", &mut out);
    outstanding
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back((txnr, None, Instant::now()));
    if let Err(e) = wr.write_all(&out).await.and(wr.flush().await) {
        c.error(format!("connection {}: write close: {e}", ctx.id));
        slots.close();
        return false;
    }
    true
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    ctx: &ConnCtx,
    reader: &mut Reader<R>,
    slots: &Semaphore,
    outstanding: &Outstanding,
    c: &mut Counters,
) {
    // The writer may wait until `answer_until` before sending `close`; give the answer
    // to `close` a little longer.
    let until = ctx.plan.answer_until + Duration::from_secs(2);
    loop {
        let (t, cmd, data) = match reader.next(until).await {
            Ok(f) => f,
            Err(e) => {
                if !outstanding
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty()
                {
                    c.error(format!("connection {}: read: {e}", ctx.id));
                }
                slots.close();
                return;
            }
        };
        if cmd != Command::Rsp {
            c.error(format!(
                "connection {}: server sent {} (txnr {})",
                ctx.id,
                cmd.as_str(),
                t.get()
            ));
            slots.close();
            return;
        }
        let now = Instant::now();
        let found = {
            let mut o = outstanding.lock().unwrap_or_else(PoisonError::into_inner);
            let at = o.iter().position(|(x, _, _)| *x == t);
            at.and_then(|i| o.remove(i))
        };
        let Some((_, k, origin)) = found else {
            c.error(format!(
                "connection {}: answer to unknown txnr {}",
                ctx.id,
                t.get()
            ));
            slots.close();
            return;
        };
        if k.is_none() {
            // The answer to `close`: the session is over.
            return;
        }
        match Response::parse(&data) {
            Ok(r) if r.is_ok() => {
                c.acked += 1;
                c.latency.record(now.duration_since(origin), 1);
                ctx.progress.acked(1);
            }
            Ok(r) => {
                c.refused += 1;
                if c.first_errors.len() < 5 {
                    c.first_errors
                        .push(format!("connection {}: rsp {} {}", ctx.id, r.code, r.text));
                }
            }
            Err(e) => {
                c.error(format!("connection {}: bad rsp: {e}", ctx.id));
                slots.close();
                return;
            }
        }
        slots.add_permits(1);
    }
}

/// Reads answer frames.
struct Reader<R> {
    rd: R,
    buf: Vec<u8>,
    /// Where the unconsumed bytes of `buf` start.
    pos: usize,
    decoder: RelpDecoder,
}

impl<R: tokio::io::AsyncRead + Unpin> Reader<R> {
    /// The next frame, or an error at EOF, on a malformed frame or after `until`.
    async fn next(&mut self, until: Instant) -> Result<(Txnr, Command, Vec<u8>), String> {
        loop {
            let rest = &self.buf[self.pos..];
            match self.decoder.decode(rest) {
                Ok(Some(f)) => {
                    let data = rest[f.data.clone()].to_vec();
                    self.pos += f.consumed;
                    return Ok((f.txnr, f.command, data));
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.reserve(16 * 1024);
            match tokio::time::timeout_at(until.into(), self.rd.read_buf(&mut self.buf)).await {
                Err(_) => return Err("no answer before the grace period ended".into()),
                Ok(Ok(0)) => return Err("connection closed by the server".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    }
}
