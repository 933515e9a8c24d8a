//! One RELP session over TLS: `open`, `syslog`…, `close`; every `syslog` is answered
//! `rsp 200 OK` only once the journal says it is durable.
//!
//! ```text
//!  reader task                                   writer task
//!  read → RelpDecoder → frames of one read       for each Step, in order:
//!    open   → answer (offers)                      wait until its batch is durable
//!    syslog → entry + (txnr, ok) | (txnr, 500)     write its answers (200 / 500)
//!    close  → (txnr, rsp 0), stop                  end: serverclose hint if the server
//!  submit the read's batch ─ Step ─ bounded mpsc ──►  is going away, then close_notify
//! ```
//!
//! The channel holds at most [`MAX_INFLIGHT`] steps: when the journal is slow the reader
//! stops reading. Answers go out in the order the commands came. Any framing error is
//! fatal to the session (RELP cannot resynchronise): `rsp 500` with the reason for the
//! offending transaction when its number can be read, then `serverclose`, and the client
//! resends what was not acknowledged.

use proto::relp::{self, Command, Offers, RelpDecoder, Txnr};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use crate::conn::{ConnCtx, ConnError, MAX_INFLIGHT, Read, Tally, now, wait_durable};
use crate::pipeline::Durable;

/// The software this server names in its offers.
const SOFTWARE: &str = concat!("vigie-collector,", env!("CARGO_PKG_VERSION"));

/// One answer, in command order.
enum Answer {
    /// `rsp 200 OK` once the step's batch is durable.
    Ok(Txnr),
    /// `rsp 500 text`.
    Error(Txnr, String),
    /// Bytes already encoded (open response, close response).
    Raw(Vec<u8>),
}

/// The answers to the commands of one read, and the batch they wait for.
struct Step {
    answers: Vec<Answer>,
    durable: Option<Durable>,
    /// The session ends in error after these answers: send the `serverclose` hint.
    serverclose: bool,
}

/// How the reader stopped.
enum End {
    /// The client sent `close` (answered).
    Closed,
    /// The peer went away without `close`.
    Eof,
    /// Server shutdown: tell the client with `serverclose`.
    Shutdown,
    /// A fatal error: answered with 500 when possible, then `serverclose`.
    Failed(ConnError),
}

/// Serves one RELP session.
pub(crate) async fn serve<S>(stream: S, ctx: &ConnCtx) -> Result<u64, ConnError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Step>(MAX_INFLIGHT);
    // The reader also stops when the writer fails (the peer is gone).
    let mut read_ctx = ctx.clone();
    read_ctx.shutdown = ctx.shutdown.child_token();
    let stop_reader = read_ctx.shutdown.clone();
    let (read_result, write_result) = tokio::join!(read_loop(&mut reader, &read_ctx, tx), async {
        let r = write_loop(writer, ctx, rx).await;
        if r.is_err() {
            stop_reader.cancel();
        }
        r
    });
    let (end, messages) = read_result;
    write_result?;
    match end {
        End::Failed(e) => Err(e),
        End::Closed | End::Eof | End::Shutdown => Ok(messages),
    }
}

async fn read_loop<S: AsyncRead>(
    reader: &mut ReadHalf<S>,
    ctx: &ConnCtx,
    tx: mpsc::Sender<Step>,
) -> (End, u64) {
    let mut decoder = RelpDecoder::new(ctx.limits.max_frame_bytes);
    let mut buf = Vec::new();
    let mut opened = false;
    let mut messages = 0u64;
    loop {
        let eof = match ctx.read(reader, &mut buf).await {
            Ok(Read::Data) => false,
            Ok(Read::Eof) => true,
            Ok(Read::Shutdown) => return (End::Shutdown, messages),
            Err(e) => return (End::Failed(e), messages),
        };
        let (received_at, received) = now();
        let parse = ctx.parse_context(received_at);
        let mut tally = Tally::default();
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        let mut consumed = 0;
        let mut end = None;
        while end.is_none() {
            let rest = &buf[consumed..];
            let frame = match decoder.decode(rest) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let reason = match e {
                        relp::RelpError::TooLarge { .. } => "frame_too_large",
                        _ => "framing",
                    };
                    ctx.metrics.reject(ctx.listener, &ctx.source.name, reason);
                    if let Some(txnr) = leading_txnr(rest) {
                        answers.push(Answer::Error(txnr, e.to_string()));
                    }
                    end = Some(End::Failed(ConnError::Framing(e.to_string())));
                    break;
                }
            };
            let data = &rest[frame.data.clone()];
            consumed += frame.consumed;
            match (&frame.command, opened) {
                (Command::Open, false) => match open_answer(frame.txnr, data) {
                    Ok(bytes) => {
                        opened = true;
                        answers.push(Answer::Raw(bytes));
                    }
                    Err(text) => {
                        answers.push(Answer::Error(frame.txnr, text.clone()));
                        end = Some(End::Failed(ConnError::Protocol(text)));
                    }
                },
                (Command::Syslog, true) => {
                    messages += 1;
                    match ctx.accept(data, &parse, &mut tally) {
                        Ok(entry) => {
                            batch.push(entry);
                            answers.push(Answer::Ok(frame.txnr));
                        }
                        Err(refused) => {
                            answers.push(Answer::Error(frame.txnr, refused.to_string()))
                        }
                    }
                }
                (Command::Close, true) => {
                    let mut bytes = Vec::new();
                    // An empty rsp answers close, as librelp expects.
                    let _ = relp::encode_frame(frame.txnr, &Command::Rsp, b"", &mut bytes);
                    answers.push(Answer::Raw(bytes));
                    end = Some(End::Closed);
                }
                (Command::Other(name), true) => {
                    answers.push(Answer::Error(frame.txnr, format!("unknown command {name}")));
                }
                (command, _) => {
                    let text = format!("unexpected command {}", command.as_str());
                    ctx.metrics
                        .reject(ctx.listener, &ctx.source.name, "protocol");
                    answers.push(Answer::Error(frame.txnr, text.clone()));
                    end = Some(End::Failed(ConnError::Protocol(text)));
                }
            }
        }
        ctx.count(&tally);
        buf.drain(..consumed.min(buf.len()));
        if eof && end.is_none() {
            end = Some(if buf.is_empty() {
                End::Eof
            } else {
                ctx.metrics
                    .reject(ctx.listener, &ctx.source.name, "truncated");
                End::Failed(ConnError::Framing(format!(
                    "session ended inside a frame ({} bytes)",
                    buf.len()
                )))
            });
        }
        let durable = if batch.is_empty() {
            None
        } else {
            ctx.touch(received_at);
            match ctx.pipeline.submit(batch, received).await {
                Ok(d) => Some(d),
                Err(e) => return (End::Failed(e.into()), messages),
            }
        };
        let serverclose = matches!(end, Some(End::Failed(_)));
        if (!answers.is_empty() || durable.is_some() || serverclose)
            && tx
                .send(Step {
                    answers,
                    durable,
                    serverclose,
                })
                .await
                .is_err()
        {
            // The writer failed; its error is reported.
            return (End::Eof, messages);
        }
        if let Some(end) = end {
            return (end, messages);
        }
    }
}

async fn write_loop<S: AsyncWrite>(
    mut writer: WriteHalf<S>,
    ctx: &ConnCtx,
    mut rx: mpsc::Receiver<Step>,
) -> Result<(), ConnError> {
    let mut out = Vec::new();
    while let Some(step) = rx.recv().await {
        out.clear();
        let durable = match step.durable {
            Some(d) => wait_durable(ctx, d).await,
            None => Ok(()),
        };
        if let Err(e) = &durable {
            tracing::error!(peer = %ctx.peer, error = %e, "batch not durable");
        }
        for answer in step.answers {
            match answer {
                Answer::Ok(txnr) if durable.is_ok() => relp::encode_ok(txnr, &mut out),
                Answer::Ok(txnr) => {
                    relp::encode_error(txnr, "journal failure: not stored", &mut out)
                }
                Answer::Error(txnr, text) => relp::encode_error(txnr, &text, &mut out),
                Answer::Raw(bytes) => out.extend_from_slice(&bytes),
            }
        }
        if durable.is_err() || step.serverclose {
            relp::encode_serverclose(&mut out);
        }
        write(&mut writer, ctx, &out).await?;
        durable?;
    }
    // The reader is done: a shutdown or a fatal error ends with the serverclose hint; a
    // client close or EOF needs none. Either way the session ends with close_notify.
    if ctx.shutdown.is_cancelled() {
        out.clear();
        relp::encode_serverclose(&mut out);
        let _ = write(&mut writer, ctx, &out).await;
    }
    match tokio::time::timeout(ctx.write_timeout(), writer.shutdown()).await {
        Err(_) => Err(ConnError::Timeout {
            phase: "close",
            after: ctx.write_timeout(),
        }),
        Ok(r) => r.map_err(|source| ConnError::Io {
            phase: "close",
            source,
        }),
    }
}

async fn write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    ctx: &ConnCtx,
    bytes: &[u8],
) -> Result<(), ConnError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let after = ctx.write_timeout();
    let written = tokio::time::timeout(after, async {
        writer.write_all(bytes).await?;
        writer.flush().await
    })
    .await;
    match written {
        Err(_) => Err(ConnError::Timeout {
            phase: "write",
            after,
        }),
        Ok(r) => r.map_err(|source| ConnError::Io {
            phase: "write",
            source,
        }),
    }
}

/// The answer to `open`: our offers, if the client offers the `syslog` command.
fn open_answer(txnr: Txnr, data: &[u8]) -> Result<Vec<u8>, String> {
    let offers = Offers::parse(data).map_err(|e| e.to_string())?;
    if !offers.commands.is_empty() && !offers.commands.iter().any(|c| c == "syslog") {
        return Err("client does not offer the syslog command".into());
    }
    let mut out = Vec::new();
    relp::encode_open_response(txnr, &Offers::server(SOFTWARE), &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The transaction number at the start of a frame the decoder refused, if readable.
fn leading_txnr(buf: &[u8]) -> Option<Txnr> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || buf.get(digits) != Some(&b' ') {
        return None;
    }
    let n = std::str::from_utf8(&buf[..digits]).ok()?.parse().ok()?;
    Txnr::new(n).filter(|t| *t != Txnr::HINT)
}
