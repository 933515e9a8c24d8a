//! JSON over HTTPS: `POST /v1/events` with a batch of events, each with a client-chosen
//! id; answered once the whole batch is durable, with a status per event. The API is
//! documented in `deploy/collector-openapi.yaml`.
//!
//! ```text
//! POST /v1/events   {"events": [{"id": "e-1", "message": "<86>1 … sshd … Accepted …"},
//!                               {"id": "e-2", "tenant": "CHU-X", "event": {…json…}}]}
//! 200               {"results": [{"id": "e-1", "status": "stored"},
//!                                {"id": "e-2", "status": "duplicate"}],
//!                    "stored": 1, "duplicates": 1, "rejected": 0}
//! 400 bad JSON · 404 · 405 · 408 body too slow · 413 body or batch too large
//! 429 too many requests of this source in flight · 503 not durable (journal failure,
//!     shutdown): retry the same ids
//! ```
//!
//! **Idempotency**: `(source, id)` pairs are remembered for `dedup_window_ms` (at most
//! `dedup_max_ids`, oldest forgotten first) and rebuilt at start from the journal's recent
//! entries, whose raw text is the event's JSON as sent. A retried id already stored is
//! answered `duplicate` and not stored again; one still being stored by another request
//! is answered `in_progress` (retry later). An id is remembered only once durable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::config::HttpsConfig;
use crate::ingest::{self, JsonEvent, Source};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// Longest id accepted.
const MAX_ID_BYTES: usize = 256;

const LISTENER: &str = "https";

/// What every request of a connection needs.
#[derive(Clone)]
pub(crate) struct HttpCtx {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) source: Arc<Source>,
    pub(crate) config: Arc<HttpsConfig>,
    pub(crate) pipeline: Pipeline,
    pub(crate) metrics: Metrics,
    pub(crate) zone: TimeZone,
    pub(crate) dedup: Dedup,
    pub(crate) in_flight: crate::server::PerSource,
    pub(crate) shutdown: CancellationToken,
}

/// Serves HTTP/1.1 on one authenticated connection until it closes or shutdown, which
/// lets the request in progress finish (and become durable) first.
pub(crate) async fn serve<S>(stream: S, ctx: HttpCtx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = ctx.shutdown.clone();
    let peer = ctx.peer;
    let header_timeout = Duration::from_millis(ctx.config.header_timeout_ms);
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(listener = LISTENER, %peer, error = %e, "http connection ended");
    }
}

/// The status of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Stored,
    Duplicate,
    InProgress,
    Rejected,
    Failed,
}

#[derive(Debug, Serialize)]
struct EventResult {
    id: Option<String>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct BatchResult {
    results: Vec<EventResult>,
    stored: usize,
    duplicates: usize,
    rejected: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": message }).to_string())
}

/// A refused body is still read, up to this many times `max_body_bytes`, before the
/// answer (see [`discard_body`]).
const DISCARD_FACTOR: u64 = 4;

/// Reads and drops what the client sends of a refused body, at most `cap` bytes and within
/// `timeout`: a connection closed with bytes unread is answered by the kernel with a reset,
/// which can destroy the 413 on its way to a client still sending.
async fn discard_body(mut body: Incoming, cap: u64, timeout: Duration) {
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// A request body as read by [`read_body`].
enum Body {
    Complete(Bytes),
    /// Over `max_body_bytes`: the rest, still to be read and dropped.
    TooLarge(Incoming),
    Failed,
}

/// Reads the body up to `max` bytes. A body announced longer is refused at once; one that
/// grows longer (chunked) stops being kept at `max`: either way what is left of it comes
/// back, to be drained before the answer.
async fn read_body(mut body: Incoming, max: usize, announced: Option<u64>) -> Body {
    if announced.is_some_and(|n| n > max as u64) {
        return Body::TooLarge(body);
    }
    let mut kept =
        Vec::with_capacity(announced.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max)));
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Body::Failed;
        };
        if let Some(data) = frame.data_ref() {
            if kept.len() + data.len() > max {
                return Body::TooLarge(body);
            }
            kept.extend_from_slice(data);
        }
    }
    Body::Complete(Bytes::from(kept))
}

async fn handle(req: Request<Incoming>, ctx: &HttpCtx) -> Response<Full<Bytes>> {
    if req.uri().path() != "/v1/events" {
        return error(StatusCode::NOT_FOUND, "no such resource: POST /v1/events");
    }
    if req.method() != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only POST");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
        return r;
    }
    let source = &ctx.source.name;
    let Some(_slot) = ctx.in_flight.acquire(source) else {
        ctx.metrics.reject(LISTENER, source, "too_many_requests");
        tracing::warn!(listener = LISTENER, peer = %ctx.peer, %source, "request refused: too many in flight");
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests of this source in flight",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
        return r;
    };
    let max = ctx.config.max_body_bytes;
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body_timeout = Duration::from_millis(ctx.config.body_timeout_ms);
    let started = Instant::now();
    let body = match tokio::time::timeout(body_timeout, read_body(req.into_body(), max, announced))
        .await
    {
        Err(_) => {
            ctx.metrics.reject(LISTENER, source, "body_timeout");
            return error(StatusCode::REQUEST_TIMEOUT, "body not received in time");
        }
        Ok(Body::TooLarge(rest)) => {
            ctx.metrics.reject(LISTENER, source, "body_too_large");
            tracing::warn!(listener = LISTENER, peer = %ctx.peer, %source, ?announced, max, "request refused: body too large");
            let left = body_timeout.saturating_sub(started.elapsed());
            discard_body(rest, DISCARD_FACTOR * max as u64, left).await;
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body over max_body_bytes ({max})"),
            );
        }
        Ok(Body::Failed) => return error(StatusCode::BAD_REQUEST, "cannot read the body"),
        Ok(Body::Complete(b)) => b,
    };
    let (received_at, received) = crate::conn::now();
    let batch: Batch<'_> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            ctx.metrics.reject(LISTENER, source, "malformed");
            return error(StatusCode::BAD_REQUEST, &format!("invalid batch: {e}"));
        }
    };
    if batch.events.len() > ctx.config.max_events_per_request {
        ctx.metrics.reject(LISTENER, source, "batch_too_large");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "{} events, over max_events_per_request ({})",
                batch.events.len(),
                ctx.config.max_events_per_request
            ),
        );
    }
    process(batch, ctx, received_at, received).await
}

async fn process(
    batch: Batch<'_>,
    ctx: &HttpCtx,
    received_at: OffsetDateTime,
    received: Instant,
) -> Response<Full<Bytes>> {
    let source = &ctx.source.name;
    let mut results = Vec::with_capacity(batch.events.len());
    let mut entries = Vec::new();
    let mut claimed = Vec::new();
    let mut in_batch = HashSet::new();
    let accepted_total = ctx.metrics.accepted.with_label_values(&[LISTENER, source]);
    let unmapped_total = ctx.metrics.unmapped.with_label_values(&[source]);
    for raw in batch.events {
        let text = raw.get();
        let (id, outcome) = match serde_json::from_str::<JsonEvent>(text) {
            Err(e) => (
                None,
                Err((Some("malformed"), format!("malformed event: {e}"))),
            ),
            Ok(item) if item.id.is_empty() || item.id.len() > MAX_ID_BYTES => (
                Some(item.id),
                Err((
                    Some("malformed"),
                    format!("id must be 1 to {MAX_ID_BYTES} bytes"),
                )),
            ),
            Ok(item) if text.len() > ctx.config.max_event_bytes => (
                Some(item.id),
                Err((
                    Some("too_large"),
                    format!(
                        "event of {} bytes, over max_event_bytes ({})",
                        text.len(),
                        ctx.config.max_event_bytes
                    ),
                )),
            ),
            Ok(item) => {
                let status = if !in_batch.insert(item.id.clone()) {
                    Some(Status::Duplicate)
                } else {
                    match ctx.dedup.claim(source, &item.id, received_at) {
                        Claim::New => None,
                        Claim::Stored => Some(Status::Duplicate),
                        Claim::InProgress => Some(Status::InProgress),
                    }
                };
                match status {
                    Some(status) => {
                        results.push(EventResult {
                            id: Some(item.id),
                            status,
                            error: None,
                        });
                        continue;
                    }
                    None => match ingest::accept_json(
                        text.as_bytes(),
                        &item,
                        &ctx.source,
                        &ctx.zone,
                        received_at,
                    ) {
                        Ok(accepted) => {
                            accepted_total.inc();
                            if accepted.unmapped {
                                unmapped_total.inc();
                            }
                            entries.push(accepted.entry);
                            claimed.push(item.id.clone());
                            (Some(item.id), Ok(()))
                        }
                        Err(r) => {
                            ctx.dedup.release(source, &item.id);
                            (Some(item.id), Err((Some(r.reason()), r.to_string())))
                        }
                    },
                }
            }
        };
        match outcome {
            Ok(()) => results.push(EventResult {
                id,
                status: Status::Stored,
                error: None,
            }),
            Err((reason, message)) => {
                if let Some(reason) = reason {
                    ctx.metrics.reject(LISTENER, source, reason);
                }
                tracing::warn!(listener = LISTENER, peer = %ctx.peer, %source, id = ?id, error = %message, "event refused");
                results.push(EventResult {
                    id,
                    status: Status::Rejected,
                    error: Some(message),
                });
            }
        }
    }
    let mut status = StatusCode::OK;
    if !entries.is_empty() {
        ctx.metrics
            .last_event
            .with_label_values(&[source])
            .set(received_at.unix_timestamp());
        let after = Duration::from_millis(ctx.config.durable_timeout_ms);
        let durable = match ctx.pipeline.submit(entries, received).await {
            Ok(d) => match tokio::time::timeout(after, d.wait()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("durable timed out after {after:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        match durable {
            Ok(()) => ctx.dedup.stored(source, &claimed),
            Err(e) => {
                tracing::error!(listener = LISTENER, peer = %ctx.peer, %source, error = %e, "batch not durable");
                for id in &claimed {
                    ctx.dedup.release(source, id);
                }
                for r in results.iter_mut().filter(|r| r.status == Status::Stored) {
                    r.status = Status::Failed;
                    r.error = Some(format!("not stored: {e}; retry"));
                }
                status = StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let body = BatchResult {
        stored: count(Status::Stored),
        duplicates: count(Status::Duplicate),
        rejected: count(Status::Rejected),
        results,
    };
    reply(
        status,
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned()),
    )
}

/// What the dedup memory says of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Unknown: now claimed by the caller, who must call `stored` or `release`.
    New,
    /// Already durable.
    Stored,
    /// Being stored by another request.
    InProgress,
}

/// The ids remembered for idempotent retries.
#[derive(Clone)]
pub(crate) struct Dedup {
    inner: Arc<Mutex<DedupInner>>,
    window: time::Duration,
    max: usize,
}

struct DedupInner {
    /// [`pair_key`] of (source, id) → (durable?, the claim's number).
    ids: HashMap<Arc<str>, (bool, u64)>,
    /// Claims in order, with their time and number, for eviction. A released claim leaves
    /// its line here (removing it would scan the whole queue under the lock, once per
    /// refused event); eviction drops such lines without touching a later claim of the
    /// same id, which has another number.
    order: VecDeque<(Arc<str>, OffsetDateTime, u64)>,
    /// The next claim's number.
    next: u64,
    /// Where lookups build their key: no allocation per lookup.
    scratch: String,
}

/// One key for a (source, id) pair, so that a lookup hashes one text and allocates
/// nothing: the source's length, a colon, the source, the id. The length makes it
/// unambiguous whatever either holds.
fn pair_key<'k>(scratch: &'k mut String, source: &str, id: &str) -> &'k str {
    use std::fmt::Write as _;
    scratch.clear();
    // Writing into a String cannot fail.
    let _ = write!(scratch, "{}:", source.len());
    scratch.push_str(source);
    scratch.push_str(id);
    scratch
}

impl Dedup {
    pub(crate) fn new(window: Duration, max: usize) -> Dedup {
        Dedup {
            inner: Arc::new(Mutex::new(DedupInner {
                ids: HashMap::new(),
                order: VecDeque::new(),
                next: 0,
                scratch: String::new(),
            })),
            window: time::Duration::try_from(window).unwrap_or(time::Duration::HOUR),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DedupInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evict(&self, inner: &mut DedupInner, now: OffsetDateTime) {
        while let Some((key, at, number)) = inner.order.front() {
            let over_max = inner.order.len() > self.max;
            if !over_max && *at + self.window >= now {
                break;
            }
            let live = inner.ids.get(key).copied();
            // Pending ids are never evicted from under their request.
            if !over_max && live == Some((false, *number)) {
                break;
            }
            let current = live.is_some_and(|(_, n)| n == *number);
            if let Some((key, _, _)) = inner.order.pop_front()
                && current
            {
                inner.ids.remove(&key);
            }
        }
    }

    /// Records a claim of `key`, durable or not.
    fn remember(inner: &mut DedupInner, key: Arc<str>, durable: bool, at: OffsetDateTime) {
        let number = inner.next;
        inner.next += 1;
        inner.ids.insert(key.clone(), (durable, number));
        inner.order.push_back((key, at, number));
    }

    pub(crate) fn claim(&self, source: &str, id: &str, now: OffsetDateTime) -> Claim {
        let mut guard = self.lock();
        let inner = &mut *guard;
        self.evict(inner, now);
        let key = pair_key(&mut inner.scratch, source, id);
        match inner.ids.get(key) {
            Some((true, _)) => Claim::Stored,
            Some((false, _)) => Claim::InProgress,
            None => {
                let key: Arc<str> = Arc::from(key);
                Self::remember(inner, key, false, now);
                Claim::New
            }
        }
    }

    pub(crate) fn stored(&self, source: &str, ids: &[String]) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for id in ids {
            let key = pair_key(&mut inner.scratch, source, id);
            if let Some((durable, _)) = inner.ids.get_mut(key) {
                *durable = true;
            }
        }
    }

    pub(crate) fn release(&self, source: &str, id: &str) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let key = pair_key(&mut inner.scratch, source, id);
        if inner.ids.get(key).is_some_and(|(durable, _)| !durable) {
            inner.ids.remove(key);
        }
    }

    /// Remembers the ids of the events received through this API in the last window,
    /// read from the journal (their raw text is the event's JSON, with its id).
    pub(crate) fn rebuild(
        &self,
        reader: &store::journal::JournalReader,
        now: OffsetDateTime,
    ) -> usize {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let mut found = 0;
        let from = now - self.window;
        for stored in reader.scan_time(from, now + time::Duration::DAY) {
            let Ok(stored) = stored else { break };
            if stored.is_seal() {
                continue;
            }
            let Ok(proto::model::Entry::Event(e)) = proto::canonical::decode(&stored.canonical)
            else {
                continue;
            };
            if e.raw.first() != Some(&b'{') {
                continue;
            }
            let Ok(Id { id }) = serde_json::from_slice::<Id>(&e.raw) else {
                continue;
            };
            let mut guard = self.lock();
            let inner = &mut *guard;
            let key = pair_key(&mut inner.scratch, &e.source, &id);
            if !inner.ids.contains_key(key) {
                let key: Arc<str> = Arc::from(key);
                Self::remember(inner, key, true, e.received_at);
                found += 1;
            }
            self.evict(inner, now);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ids_are_claimed_stored_released_and_forgotten() {
        let dedup = Dedup::new(Duration::from_secs(60), 3);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        assert_eq!(dedup.claim("s", "a", t0), Claim::New);
        assert_eq!(dedup.claim("s", "a", t0), Claim::InProgress);
        assert_eq!(
            dedup.claim("other", "a", t0),
            Claim::New,
            "ids are per source"
        );
        dedup.stored("s", &["a".to_owned()]);
        assert_eq!(dedup.claim("s", "a", t0), Claim::Stored);
        assert_eq!(dedup.claim("s", "b", t0), Claim::New);
        dedup.release("s", "b");
        assert_eq!(
            dedup.claim("s", "b", t0),
            Claim::New,
            "a failed id may be retried"
        );
        dedup.stored("s", &["b".to_owned()]);
        // Past the window, ids are forgotten.
        let later = t0 + time::Duration::minutes(2);
        assert_eq!(dedup.claim("s", "a", later), Claim::New);
    }

    #[test]
    fn pairs_never_collide_and_the_oldest_go_past_the_cap() {
        let dedup = Dedup::new(Duration::from_secs(60), 2);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        // The same text once joined: two pairs all the same.
        assert_eq!(dedup.claim("ab", "c", t0), Claim::New);
        assert_eq!(dedup.claim("a", "bc", t0), Claim::New);
        assert_eq!(dedup.claim("a", "bc", t0), Claim::InProgress);
        dedup.stored("ab", &["c".to_owned()]);
        dedup.stored("a", &["bc".to_owned()]);
        assert_eq!(dedup.claim("ab", "c", t0), Claim::Stored);
        // A third id goes over the cap of two: the oldest is forgotten.
        assert_eq!(dedup.claim("s", "x", t0), Claim::New);
        assert_eq!(dedup.claim("ab", "c", t0), Claim::New);
        assert_eq!(dedup.claim("a", "bc", t0), Claim::New);
    }

    #[test]
    fn a_released_claim_never_evicts_a_later_claim_of_the_same_id() {
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        assert_eq!(dedup.claim("s", "a", t0), Claim::New);
        dedup.release("s", "a");
        let t1 = t0 + time::Duration::seconds(50);
        assert_eq!(dedup.claim("s", "a", t1), Claim::New);
        // The first claim's line expires: the second claim, pending, stays.
        let t2 = t0 + time::Duration::seconds(70);
        assert_eq!(dedup.claim("s", "b", t2), Claim::New);
        assert_eq!(dedup.claim("s", "a", t2), Claim::InProgress);
        dedup.stored("s", &["a".to_owned()]);
        assert_eq!(dedup.claim("s", "a", t2), Claim::Stored);
        // And it goes once its own window is over.
        let t3 = t1 + time::Duration::seconds(61);
        assert_eq!(dedup.claim("s", "a", t3), Claim::New);
    }
}
