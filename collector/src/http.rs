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

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::hash::BuildHasher as _;
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

/// One event of a batch, checked before its id is claimed.
enum Checked<'b> {
    /// Refused: its id if it has one, the metric's reason, the message.
    Refused(Option<String>, &'static str, String),
    /// Its id came earlier in the same batch.
    Duplicate(String),
    /// Well formed, within the limits: its text and its fields.
    Ready(&'b str, JsonEvent<'b>),
}

/// Parses and checks one event's JSON `text`; `in_batch` holds the ids seen so far in the
/// batch.
fn check<'b>(text: &'b str, max_event_bytes: usize, in_batch: &mut HashSet<String>) -> Checked<'b> {
    match serde_json::from_str::<JsonEvent>(text) {
        // Its id, if it has a readable one, names it in the answer.
        Err(e) => Checked::Refused(
            readable_id(text.as_bytes()),
            "malformed",
            format!("malformed event: {e}"),
        ),
        Ok(item) if item.id.is_empty() || item.id.len() > MAX_ID_BYTES => Checked::Refused(
            Some(item.id),
            "malformed",
            format!("id must be 1 to {MAX_ID_BYTES} bytes"),
        ),
        Ok(item) if text.len() > max_event_bytes => Checked::Refused(
            Some(item.id),
            "too_large",
            format!(
                "event of {} bytes, over max_event_bytes ({max_event_bytes})",
                text.len()
            ),
        ),
        Ok(item) if !in_batch.insert(item.id.clone()) => Checked::Duplicate(item.id),
        Ok(item) => Checked::Ready(text, item),
    }
}

/// The id of an event's JSON, when it has one the API accepts (a string of 1 to
/// [`MAX_ID_BYTES`] bytes), whatever else is wrong with the event.
fn readable_id(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(json)
        .ok()
        .map(|i| i.id)
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES)
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
    let accepted_total = ctx.metrics.accepted.with_label_values(&[LISTENER, source]);
    let unmapped_total = ctx.metrics.unmapped.with_label_values(&[source]);
    // Every event is checked first, then the ids are claimed under one lock for the batch
    // (a lock per event was contended between connections), then the events are accepted.
    let mut in_batch = HashSet::new();
    let checked: Vec<Checked<'_>> = batch
        .events
        .iter()
        .map(|raw| check(raw.get(), ctx.config.max_event_bytes, &mut in_batch))
        .collect();
    let ids = checked.iter().filter_map(|c| match c {
        Checked::Ready(_, item) => Some(item.id.as_str()),
        _ => None,
    });
    let mut claims = ctx.dedup.claim_all(source, ids, received_at).into_iter();
    for checked in checked {
        let (id, outcome) = match checked {
            Checked::Refused(id, reason, message) => (id, Err((reason, message))),
            Checked::Duplicate(id) => {
                results.push(EventResult {
                    id: Some(id),
                    status: Status::Duplicate,
                    error: None,
                });
                continue;
            }
            Checked::Ready(text, item) => {
                let claim = match claims.next() {
                    Some(Claim::New(number)) => number,
                    other => {
                        let status = match other {
                            Some(Claim::Stored) => Status::Duplicate,
                            _ => Status::InProgress,
                        };
                        results.push(EventResult {
                            id: Some(item.id),
                            status,
                            error: None,
                        });
                        continue;
                    }
                };
                match ingest::accept_json(
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
                        claimed.push(claim);
                        (Some(item.id), Ok(()))
                    }
                    Err(r) => {
                        ctx.dedup.release(claim);
                        (Some(item.id), Err((r.reason(), r.to_string())))
                    }
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
                ctx.metrics.reject(LISTENER, source, reason);
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
            Ok(()) => ctx.dedup.stored(&claimed),
            Err(e) => {
                tracing::error!(listener = LISTENER, peer = %ctx.peer, %source, error = %e, "batch not durable");
                for &number in &claimed {
                    ctx.dedup.release(number);
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
    /// Unknown: now claimed by the caller under this number, who must call `stored` or
    /// `release` with it.
    New(u64),
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

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Its request is storing it.
    Pending,
    /// Durable: a retry is a duplicate.
    Durable,
    /// Given up by its request (refused, or not made durable): the id is free again.
    Released,
}

/// One claim, in the order claims were made.
struct Line {
    /// Its key's hash: eviction finds the claim in `ids` without reading the key again.
    hash: u64,
    at: OffsetDateTime,
    held: Held,
}

/// A key in `ids`: its text, its current claim's number, its hash.
struct Known {
    key: Box<str>,
    number: u64,
    hash: u64,
}

struct DedupInner {
    /// [`pair_key`] of (source, id) with the number of its current claim. Every number
    /// here has its line in `order`, not released. SipHash with a random key: ids come
    /// from the network.
    ids: hashbrown::HashTable<Known>,
    hasher: RandomState,
    /// Claims in order of their numbers, `front` first: a claim's line is found from its
    /// number without hashing (`stored` and `release`), and eviction pops the oldest. A
    /// released claim keeps its line until it reaches the front.
    order: VecDeque<Line>,
    /// The number of `order`'s first line.
    front: u64,
    /// Where a claim's key is built: allocated only for a new id.
    scratch: String,
}

impl DedupInner {
    fn line(&mut self, number: u64) -> Option<&mut Line> {
        let at = usize::try_from(number.checked_sub(self.front)?).ok()?;
        self.order.get_mut(at)
    }

    /// Claims (source, id) (durable or not) unless it is known; returns the known claim's
    /// state or the new claim's number. One hash of the key either way.
    fn claim(
        &mut self,
        source: &str,
        id: &str,
        held: Held,
        at: OffsetDateTime,
    ) -> Result<u64, Held> {
        let number = self.front + self.order.len() as u64;
        let key = pair_key(&mut self.scratch, source, id);
        let hash = self.hasher.hash_one(key);
        match self.ids.entry(hash, |k| *k.key == *key, |k| k.hash) {
            hashbrown::hash_table::Entry::Occupied(known) => {
                let known = known.get().number;
                Err(self.line(known).map_or(Held::Released, |l| l.held))
            }
            hashbrown::hash_table::Entry::Vacant(free) => {
                free.insert(Known {
                    key: Box::from(key),
                    number,
                    hash,
                });
                self.order.push_back(Line { hash, at, held });
                Ok(number)
            }
        }
    }

    /// Forgets claim `number`, whose line has `hash`: found by number, no key compared.
    fn forget(&mut self, hash: u64, number: u64) {
        if let Ok(known) = self.ids.find_entry(hash, |k| k.number == number) {
            known.remove();
        }
    }
}

/// One key for a (source, id) pair, so that a lookup hashes one text: the source's length,
/// a colon, the source, the id. The length makes it unambiguous whatever either holds.
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
                ids: hashbrown::HashTable::new(),
                hasher: RandomState::new(),
                order: VecDeque::new(),
                front: 0,
                scratch: String::new(),
            })),
            window: time::Duration::try_from(window).unwrap_or(time::Duration::HOUR),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DedupInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the claims past the window, and the oldest past the cap; a pending claim
    /// within the cap is never evicted from under its request.
    fn evict(&self, inner: &mut DedupInner, now: OffsetDateTime) {
        while let Some(line) = inner.order.front() {
            let over_max = inner.order.len() > self.max;
            if !over_max && (line.at + self.window >= now || line.held == Held::Pending) {
                break;
            }
            if let Some(line) = inner.order.pop_front() {
                // A released line is no longer in `ids`.
                if line.held != Held::Released {
                    inner.forget(line.hash, inner.front);
                }
                inner.front += 1;
            }
        }
    }

    /// Claims each of `ids` of `source`, in order, under one lock.
    pub(crate) fn claim_all<'i>(
        &self,
        source: &str,
        ids: impl Iterator<Item = &'i str>,
        now: OffsetDateTime,
    ) -> Vec<Claim> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        ids.map(|id| {
            self.evict(inner, now);
            match inner.claim(source, id, Held::Pending, now) {
                Ok(number) => Claim::New(number),
                Err(Held::Durable) => Claim::Stored,
                Err(_) => Claim::InProgress,
            }
        })
        .collect()
    }

    /// Marks these claims durable (the numbers `claim_all` gave).
    pub(crate) fn stored(&self, claims: &[u64]) {
        let mut inner = self.lock();
        for &number in claims {
            // A claim evicted past the cap meanwhile is gone: nothing to mark.
            if let Some(line) = inner.line(number)
                && line.held == Held::Pending
            {
                line.held = Held::Durable;
            }
        }
    }

    /// Gives up a claim: its id may be claimed again.
    pub(crate) fn release(&self, number: u64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(line) = inner.line(number) else {
            return;
        };
        if line.held != Held::Pending {
            return;
        }
        line.held = Held::Released;
        let hash = line.hash;
        inner.forget(hash, number);
    }

    /// Remembers the ids of the events received through this API in the last window,
    /// read from the journal (their raw text is the event's JSON, with its id).
    pub(crate) fn rebuild(
        &self,
        reader: &store::journal::JournalReader,
        now: OffsetDateTime,
    ) -> usize {
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
            let Some(id) = readable_id(&e.raw) else {
                continue;
            };
            let mut guard = self.lock();
            let inner = &mut *guard;
            if inner
                .claim(&e.source, &id, Held::Durable, e.received_at)
                .is_ok()
            {
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

    impl Dedup {
        fn claim(&self, source: &str, id: &str, at: OffsetDateTime) -> Claim {
            self.claim_all(source, [id].into_iter(), at)[0]
        }
    }

    /// The number of a new claim; panics on any other answer.
    fn new_claim(dedup: &Dedup, source: &str, id: &str, at: OffsetDateTime) -> u64 {
        match dedup.claim(source, id, at) {
            Claim::New(number) => number,
            other => panic!("{source}/{id}: {other:?}"),
        }
    }

    #[test]
    fn ids_are_claimed_stored_released_and_forgotten() {
        let dedup = Dedup::new(Duration::from_secs(60), 3);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        let a = new_claim(&dedup, "s", "a", t0);
        assert_eq!(dedup.claim("s", "a", t0), Claim::InProgress);
        new_claim(&dedup, "other", "a", t0); // ids are per source
        dedup.stored(&[a]);
        assert_eq!(dedup.claim("s", "a", t0), Claim::Stored);
        let b = new_claim(&dedup, "s", "b", t0);
        dedup.release(b);
        // A failed id may be retried; releasing the old claim again changes nothing.
        let b = new_claim(&dedup, "s", "b", t0);
        dedup.release(b - 1);
        assert_eq!(dedup.claim("s", "b", t0), Claim::InProgress);
        dedup.stored(&[b]);
        assert_eq!(dedup.claim("s", "b", t0), Claim::Stored);
        // Past the window, ids are forgotten.
        let later = t0 + time::Duration::minutes(2);
        new_claim(&dedup, "s", "a", later);
    }

    #[test]
    fn pairs_never_collide_and_the_oldest_go_past_the_cap() {
        let dedup = Dedup::new(Duration::from_secs(60), 2);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        // The same text once joined: two pairs all the same.
        let abc = new_claim(&dedup, "ab", "c", t0);
        let a_bc = new_claim(&dedup, "a", "bc", t0);
        assert_eq!(dedup.claim("a", "bc", t0), Claim::InProgress);
        dedup.stored(&[abc, a_bc]);
        assert_eq!(dedup.claim("ab", "c", t0), Claim::Stored);
        // A third id goes over the cap of two: the oldest is forgotten.
        new_claim(&dedup, "s", "x", t0);
        new_claim(&dedup, "ab", "c", t0);
        new_claim(&dedup, "a", "bc", t0);
    }

    #[test]
    fn a_released_claim_never_evicts_a_later_claim_of_the_same_id() {
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        let first = new_claim(&dedup, "s", "a", t0);
        dedup.release(first);
        let t1 = t0 + time::Duration::seconds(50);
        let second = new_claim(&dedup, "s", "a", t1);
        // The first claim's line expires: the second claim, pending, stays.
        let t2 = t0 + time::Duration::seconds(70);
        new_claim(&dedup, "s", "b", t2);
        assert_eq!(dedup.claim("s", "a", t2), Claim::InProgress);
        dedup.stored(&[second]);
        assert_eq!(dedup.claim("s", "a", t2), Claim::Stored);
        // And it goes once its own window is over.
        let t3 = t1 + time::Duration::seconds(61);
        new_claim(&dedup, "s", "a", t3);
    }

    #[test]
    fn a_claim_evicted_past_the_cap_never_marks_a_later_claim() {
        let dedup = Dedup::new(Duration::from_secs(60), 1);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        let first = new_claim(&dedup, "s", "a", t0);
        // Over the cap of one, the pending claim is forgotten, and "a" is claimed anew by
        // another request (after "b" pushed the first out).
        new_claim(&dedup, "s", "b", t0);
        let second = new_claim(&dedup, "s", "a", t0);
        // The first request's answer concerns its own claim only.
        dedup.stored(&[first]);
        dedup.release(first);
        assert_eq!(dedup.claim("s", "a", t0), Claim::InProgress);
        dedup.stored(&[second]);
        assert_eq!(dedup.claim("s", "a", t0), Claim::Stored);
    }

    #[test]
    fn a_batch_is_claimed_in_order_within_the_cap() {
        let dedup = Dedup::new(Duration::from_secs(60), 2);
        let t0 = datetime!(2026-03-01 9:00 UTC);
        let a = new_claim(&dedup, "s", "a", t0);
        dedup.stored(&[a]);
        let claims = dedup.claim_all("s", ["a", "b", "c", "b", "d"].into_iter(), t0);
        // "a" is known, "b" and "c" are new, "b" is now being stored; past the cap of two,
        // claiming "d" forgets the oldest, "a".
        assert_eq!(
            claims,
            [
                Claim::Stored,
                Claim::New(a + 1),
                Claim::New(a + 2),
                Claim::InProgress,
                Claim::New(a + 3)
            ]
        );
        assert_eq!(dedup.claim("s", "a", t0), Claim::New(a + 4));
    }

    #[test]
    fn events_are_checked_before_their_ids_are_claimed() {
        let mut seen = HashSet::new();
        let ok = r#"{"id":"e1","message":"hello"}"#;
        assert!(
            matches!(check(ok, 1000, &mut seen), Checked::Ready(t, item) if t == ok && item.id == "e1")
        );
        assert!(matches!(check(ok, 1000, &mut seen), Checked::Duplicate(id) if id == "e1"));
        assert!(matches!(
            check(r#"{"id":"e2","message":"hello"}"#, 10, &mut seen),
            Checked::Refused(Some(id), "too_large", _) if id == "e2"
        ));
        assert!(matches!(
            check(r#"{"id":"","message":"x"}"#, 1000, &mut seen),
            Checked::Refused(Some(_), "malformed", _)
        ));
        assert!(matches!(
            check("{not json", 1000, &mut seen),
            Checked::Refused(None, "malformed", m) if m.starts_with("malformed event")
        ));
        // Malformed otherwise, with an id the answer can name.
        assert!(matches!(
            check(r#"{"id":"e3","kind":"session_start"}"#, 1000, &mut seen),
            Checked::Refused(Some(id), "malformed", m) if id == "e3" && m.contains("unknown field `kind`")
        ));
        assert!(matches!(
            check(r#"{"id":7,"message":"x"}"#, 1000, &mut seen),
            Checked::Refused(None, "malformed", _)
        ));
    }
}
