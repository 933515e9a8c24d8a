//! JSON over HTTPS: `POST /v1/events` batches on a kept-alive connection, one request
//! in flight per connection; every event of a batch is acknowledged by the answer, which
//! comes once the whole batch is durable.
//!
//! ```text
//! POST /v1/events HTTP/1.1        {"events":[{"id":"lg-RUN-C-K","message":"<86>1 …"},…]}
//! 200 {"results":[…],"stored":N,"duplicates":0,"rejected":0}
//! ```
//!
//! A minimal HTTP/1.1 client is enough here: requests carry `Content-Length`, answers
//! too (the collector answers with full bodies).

use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::conn::{ConnCtx, Io};
use crate::stats::Counters;

/// Largest answer accepted (a status per event: ~40 bytes each).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Sends batches of at most `batch` events until the plan stops.
pub async fn run(ctx: &ConnCtx, mut stream: Box<dyn Io>, c: &mut Counters, batch: u64) {
    let host = ctx.dialer.addr.to_string();
    let mut body = Vec::with_capacity(512 * batch as usize);
    let mut req = Vec::with_capacity(512 * batch as usize + 256);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let now = Instant::now();
        if ctx.plan.done(c.sent, now) {
            break;
        }
        let n = ctx.plan.allowed(c.sent, now, batch);
        if n == 0 {
            ctx.plan.wait_next(c.sent).await;
            continue;
        }
        body.clear();
        body.extend_from_slice(b"{\"events\":[");
        for k in c.sent..c.sent + n {
            if k > c.sent {
                body.push(b',');
            }
            body.extend_from_slice(
                format!("{{\"id\":\"{}-{}-{k}\",\"message\":", ctx.run_id, ctx.id).as_bytes(),
            );
            body.extend_from_slice(ctx.message(k));
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        req.clear();
        req.extend_from_slice(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(&body);
        let written = Instant::now();
        if let Err(e) = stream.write_all(&req).await.and(stream.flush().await) {
            c.error(format!("connection {}: write: {e}", ctx.id));
            return;
        }
        c.sent += n;
        c.wrote();
        c.bytes += req.len() as u64;
        ctx.progress.sent(n);
        let answer = tokio::time::timeout_at(
            ctx.plan.answer_until.into(),
            read_answer(&mut stream, &mut buf),
        )
        .await;
        let done = Instant::now();
        let (status, text) = match answer {
            Err(_) => {
                c.unanswered += n;
                c.error(format!(
                    "connection {}: no answer before the grace period ended",
                    ctx.id
                ));
                return;
            }
            Ok(Err(e)) => {
                c.unanswered += n;
                c.error(format!("connection {}: read: {e}", ctx.id));
                return;
            }
            Ok(Ok(a)) => a,
        };
        if status != 200 {
            c.refused += n;
            if c.first_errors.len() < 5 {
                c.first_errors.push(format!(
                    "connection {}: HTTP {status}: {}",
                    ctx.id,
                    String::from_utf8_lossy(&text[..text.len().min(200)])
                ));
            }
            continue;
        }
        let v: serde_json::Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                c.unanswered += n;
                c.error(format!("connection {}: answer is not JSON: {e}", ctx.id));
                return;
            }
        };
        let field = |name: &str| v.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let ok = (field("stored") + field("duplicates")).min(n);
        c.acked += ok;
        c.refused += n - ok;
        ctx.progress.acked(ok);
        // Every event of the batch waited from when it was due (open loop) or written.
        match ctx.plan.due(c.sent - n) {
            None => c.latency.record(done.duration_since(written), ok),
            Some(_) => {
                for k in c.sent - n..c.sent - n + ok {
                    c.latency
                        .record(done.duration_since(ctx.plan.origin(k, written)), 1);
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads one answer: its status and body.
async fn read_answer(
    stream: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("answer headers over 64 KiB".into());
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "answer headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", head.lines().next()))?;
    let mut length = None;
    for l in lines {
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked answers are not supported".into());
            }
        }
    }
    let length = length.ok_or("answer without content-length")?;
    if length > MAX_ANSWER_BYTES {
        return Err(format!("answer of {length} bytes is too large"));
    }
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    Ok((status, buf[head_end..head_end + length].to_vec()))
}

async fn read_more(stream: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(64 * 1024);
    match stream.read_buf(buf).await {
        Ok(0) => Err("connection closed by the server".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
