//! One syslog connection (RFC 5425 over TLS, RFC 6587 over TCP): read, split into frames
//! (octet-counted or LF-terminated, detected per frame by [`proto::framing`]), turn each
//! frame into an entry, submit the batch of each read.
//!
//! Syslog has no acknowledgements: the collector still never drops what it read. A
//! connection keeps at most [`MAX_INFLIGHT`] batches waiting for durability, then waits
//! (and so stops reading); at EOF or shutdown it waits until everything it read is durable
//! before closing. An over-long line costs that line only (counted, logged); an octet
//! count over the cap is fatal to the connection (the stream is out of step).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proto::framing::{FrameDecoder, Framing, FramingConfig};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::conn::{ConnCtx, ConnError, MAX_INFLIGHT, Read, Tally, now, wait_durable};
use crate::pipeline::Durable;

/// At shutdown, how long a connection keeps reading what its peer already sent.
const DRAIN: Duration = Duration::from_secs(2);
/// While draining, a pause this long between bytes means the peer has sent everything.
const DRAIN_GAP: Duration = Duration::from_millis(200);

/// A read while draining: `Shutdown` once the peer pauses (with no frame started) or the
/// drain time is over.
async fn drain_read<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    until: Instant,
) -> Result<Read, ConnError> {
    let left = until.saturating_duration_since(Instant::now());
    let wait = if buf.is_empty() {
        left.min(DRAIN_GAP)
    } else {
        left
    };
    buf.reserve(crate::conn::READ_CHUNK);
    match tokio::time::timeout(wait, stream.read_buf(buf)).await {
        Err(_) => Ok(Read::Shutdown),
        Ok(Err(source)) => Err(ConnError::Io {
            phase: "read",
            source,
        }),
        Ok(Ok(0)) => Ok(Read::Eof),
        Ok(Ok(_)) => Ok(Read::Data),
    }
}

/// What a finished connection did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) frames: u64,
}

/// Serves one connection until EOF, an error, or shutdown.
pub(crate) async fn serve<S>(mut stream: S, ctx: &ConnCtx) -> Result<Summary, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut decoder = FrameDecoder::new(FramingConfig {
        max_frame_bytes: ctx.limits.max_frame_bytes,
    });
    let mut buf = Vec::new();
    let mut inflight: VecDeque<Durable> = VecDeque::new();
    let mut summary = Summary::default();
    let mut drain_until: Option<Instant> = None;
    let mut last_batch = 0;
    let result = loop {
        let read = match drain_until {
            None => ctx.read(&mut stream, &mut buf).await,
            Some(until) => drain_read(&mut stream, &mut buf, until).await,
        };
        let eof = match read {
            Ok(Read::Data) => false,
            Ok(Read::Eof) => true,
            Ok(Read::Shutdown) if drain_until.is_none() => {
                // Syslog has no acknowledgements: what the peer already sent is read and
                // stored before closing, for a bounded time.
                drain_until = Some(Instant::now() + DRAIN);
                continue;
            }
            Ok(Read::Shutdown) => {
                if !buf.is_empty() {
                    ctx.metrics
                        .reject(ctx.listener, &ctx.source.name, "truncated");
                    tracing::warn!(
                        listener = ctx.listener, peer = %ctx.peer, source = %ctx.source.name,
                        bytes = buf.len(), "shutdown: partial frame dropped after draining"
                    );
                }
                break Ok(());
            }
            Err(e) => break Err(e),
        };
        let (received_at, received) = now();
        let parse = ctx.parse_context(received_at);
        let mut tally = Tally::default();
        // Sized like the last read's batch: reads at full rate are alike.
        let mut batch = Vec::with_capacity(last_batch);
        let mut consumed = 0;
        let mut fatal = None;
        loop {
            let rest = &buf[consumed..];
            let decoded = if eof {
                decoder.decode_eof(rest)
            } else {
                decoder.decode(rest)
            };
            match decoded {
                Ok(Some(frame)) => {
                    let content = &rest[frame.content.clone()];
                    consumed += frame.consumed;
                    if frame.framing == Framing::Discarded || content.is_empty() {
                        continue;
                    }
                    summary.frames += 1;
                    if let Ok(entry) = ctx.accept(content, &parse, &mut tally) {
                        batch.push(entry);
                    }
                }
                Ok(None) => break,
                Err(e) if e.can_continue() => {
                    ctx.metrics
                        .reject(ctx.listener, &ctx.source.name, "frame_too_large");
                    tracing::warn!(
                        listener = ctx.listener, peer = %ctx.peer, source = %ctx.source.name,
                        error = %e, "line over max_frame_bytes dropped"
                    );
                    consumed += e.discard();
                }
                Err(e) => {
                    let reason = match e {
                        proto::framing::FrameError::Truncated { .. } => "truncated",
                        _ => "frame_too_large",
                    };
                    ctx.metrics.reject(ctx.listener, &ctx.source.name, reason);
                    fatal = Some(ConnError::Framing(e.to_string()));
                    break;
                }
            }
        }
        ctx.count(&tally);
        buf.drain(..consumed.min(buf.len()));
        last_batch = batch.len();
        if !batch.is_empty() {
            ctx.touch(received_at);
            while inflight.len() >= MAX_INFLIGHT {
                if let Some(oldest) = inflight.pop_front() {
                    wait_durable(ctx, oldest).await?;
                }
            }
            inflight.push_back(ctx.pipeline.submit(batch, received).await?);
        }
        // Batches already durable are let go after each read, freeing their entries, rather
        // than only once the window is full.
        while let Some(answered) = inflight.front_mut().and_then(Durable::try_wait) {
            inflight.pop_front();
            answered?;
        }
        if let Some(e) = fatal {
            break Err(e);
        }
        if eof {
            break Ok(());
        }
    };
    // Whatever was read is made durable before the connection is let go.
    for durable in inflight {
        wait_durable(ctx, durable).await?;
    }
    let closed = tokio::time::timeout(ctx.write_timeout(), stream.shutdown()).await;
    if let Ok(Err(e)) = closed {
        tracing::debug!(peer = %ctx.peer, error = %e, "close failed");
    }
    result.map(|()| summary)
}
