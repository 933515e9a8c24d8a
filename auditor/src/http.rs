//! The auditor's HTTP API (JSON) and pages, over HTTPS (rustls, `ring` provider only).
//!
//! ```text
//! GET  /api/v1/tenants/{t}/report?from&to[&vendor][&lang=fr|en][&format=json|csv|html]
//! GET  /api/v1/tenants/{t}/vendors/{v}/journal?from&to[&format=json|csv]
//! GET  /api/v1/tenants/{t}/vendors/{v}/bundle?from&to      (line-based JSON)
//! POST /api/v1/tenants/{t}/declarations   one declaration, or an array filed all or none
//! GET  /api/v1/verify                     every chain of the ledger, verified
//! GET  /t/{t}/[?from&to&lang]             page: vendors, recent sessions, open findings
//! GET  /t/{t}/timeline[?from&to&lang]     page: the SVG timeline of the report
//!
//! 400 bad parameter or body (JSON: {"error": "…", "field": "…"}) · 401 no credentials
//! (WWW-Authenticate: Basic) · 403 unknown token or not allowed · 404 · 405 · 408 body
//! too slow · 413 body too large · 422 declaration refused (names the field)
//! 503 not answered within request_timeout_ms
//! ```
//!
//! Who may call what is [`crate::access`]: users authenticate with a bearer token, with a
//! client certificate (when `[tls] client_ca_file` is set), or both. The certificate is
//! verified during the handshake (an unverifiable one gets no connection) and mapped to a
//! user once per connection; a verified certificate that is no user's (a source's) gets
//! 403 on every route. Every report, journal, bundle and page served is first recorded in
//! the auditor's ledger (`AccessRecorded`, `filed_by` the authenticated user, however
//! they authenticated): nothing is handed out without its trace.
//!
//! Each phase has its own bound: TLS handshake, request headers, request body (size and
//! time), and the answer (`request_timeout_ms`); reports run on blocking threads, at most
//! `max_concurrent_runs` at once. Plain HTTP is served only on a loopback address and only
//! when asked for (`auditor serve --insecure-loopback`), for tests and a local proxy.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use proto::model::DeclarationBody;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{Action, Auth, ClientCert, User, Users, UsersError};
use crate::audit::{self, Audit, Ledger, RunOptions};
use crate::config::{Config, TlsFiles};
use crate::declare::{self, Filer, Origin};
use crate::error::AuditError;
use crate::finding::Lang;
use crate::ledger::Source;
use crate::pages;
use crate::report::{self, Format};
use crate::rules::RuleConfig;
use crate::time_fmt::{parse_instant, rfc3339};

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A PEM file cannot be used.
    #[error("{what} {}: {reason}", path.display())]
    Pem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Tls(String),
    /// The users file is refused.
    #[error("users: {0}")]
    Users(#[from] UsersError),
    /// Plain HTTP asked for on a non-loopback address, or HTTPS without certificate.
    #[error("{0}")]
    Transport(String),
    /// Accepting connections failed.
    #[error("accept on {addr}: {source}")]
    Accept {
        /// The listening address.
        addr: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Builds the TLS server configuration: TLS 1.3 and 1.2, the `ring` provider, the server
/// certificate and key, and the client certificate check. Without `client_ca_file` no
/// client certificate is asked for; with it, one is asked for and verified against those
/// CAs and `client_crl_files`, and is optional unless `require_client_cert` is set (a
/// client without one then authenticates with a token).
///
/// # Errors
/// [`ServeError::Pem`] naming the file, [`ServeError::Tls`]; [`ServeError::Transport`]
/// when `client_crl_files` or `require_client_cert` come without `client_ca_file`.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let pem = |what, path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls_pki_types::pem::Error| ServeError::Pem {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(pem("certificate chain", &files.cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("certificate chain", &files.cert_file))?;
    if chain.is_empty() {
        return Err(ServeError::Pem {
            what: "certificate chain",
            path: files.cert_file.clone(),
            reason: "no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(pem("private key", &files.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = client_verifier(files, &provider)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServeError::Tls(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The check of client certificates `files` asks for: none without `client_ca_file`;
/// otherwise verified against its CAs (and CRLs), optional unless `require_client_cert`.
fn client_verifier(
    files: &TlsFiles,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServeError> {
    let Some(ca_file) = &files.client_ca_file else {
        if files.require_client_cert || !files.client_crl_files.is_empty() {
            return Err(ServeError::Transport(
                "[tls] require_client_cert and client_crl_files need client_ca_file".into(),
            ));
        }
        return Ok(rustls::server::WebPkiClientVerifier::no_client_auth());
    };
    let pem = |what, path: &Path, reason: String| ServeError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let cas = CertificateDer::pem_file_iter(ca_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem("client CA", ca_file, e.to_string()))?;
    if cas.is_empty() {
        return Err(pem("client CA", ca_file, "no certificate".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| pem("client CA", ca_file, e.to_string()))?;
    }
    let mut crls = Vec::new();
    for crl_file in &files.client_crl_files {
        let these = CertificateRevocationListDer::pem_file_iter(crl_file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| pem("client CRL", crl_file, e.to_string()))?;
        if these.is_empty() {
            return Err(pem("client CRL", crl_file, "no X509 CRL block".into()));
        }
        crls.extend(these);
    }
    let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .with_crls(crls);
    if !files.require_client_cert {
        builder = builder.allow_unauthenticated();
    }
    builder
        .build()
        .map_err(|e| ServeError::Tls(format!("client certificate verifier: {e}")))
}

/// How connections are carried.
#[derive(Clone)]
pub enum Transport {
    /// HTTPS.
    Tls(Arc<rustls::ServerConfig>),
    /// Plain HTTP: only on a loopback address.
    PlainLoopback,
}

impl Transport {
    /// The transport the configuration asks for: HTTPS with its `[tls]` files, or plain
    /// HTTP when `insecure_loopback` is set and the address is a loopback one.
    ///
    /// # Errors
    /// [`ServeError`] when the certificate cannot be loaded, `[tls]` is missing, or plain
    /// HTTP is asked for on a non-loopback address.
    pub fn from_config(config: &Config, insecure_loopback: bool) -> Result<Self, ServeError> {
        if insecure_loopback {
            if !config.listen.ip().is_loopback() {
                return Err(ServeError::Transport(format!(
                    "plain HTTP is served only on a loopback address, not {}",
                    config.listen
                )));
            }
            return Ok(Transport::PlainLoopback);
        }
        match &config.tls {
            Some(files) => Ok(Transport::Tls(tls_config(files)?)),
            None => Err(ServeError::Transport(
                "[tls] cert_file and key_file are required (or --insecure-loopback)".into(),
            )),
        }
    }
}

/// What every request needs.
pub struct App {
    config: Config,
    users: Users,
    runs: Arc<Semaphore>,
    /// One writer of the auditor's ledger at a time within this process.
    ledger_lock: Mutex<()>,
    blocking: TaskTracker,
}

impl App {
    /// Builds the application state from the configuration.
    ///
    /// # Errors
    /// [`ServeError::Users`] when the users file is refused.
    pub fn new(config: Config) -> Result<Arc<App>, ServeError> {
        let users = Users::new(&config.users)?;
        let asks_certificates = config
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
        if users.any_by_certificate() && !asks_certificates {
            tracing::warn!(
                "users identified by certificate cannot log in: [tls] client_ca_file is not set"
            );
        }
        Ok(Arc::new(App {
            runs: Arc::new(Semaphore::new(config.limits.max_concurrent_runs.max(1))),
            users,
            config,
            ledger_lock: Mutex::new(()),
            blocking: TaskTracker::new(),
        }))
    }

    /// The ledger as configured. With PostgreSQL, its chains are listed at each call: a
    /// collector's new chain is read without a restart.
    fn ledger(&self) -> Result<Ledger, AuditError> {
        let l = &self.config.ledger;
        let declarations = Source::journal(&l.declarations);
        let mut events: Vec<Source> = l.events.iter().map(Source::journal).collect();
        if let Some(url) = &l.postgres_url {
            // The auditor's own chain is read from its journal, even if replicated too.
            let own = declarations.chain_id().ok();
            events.extend(Source::postgres_chains(&url.0, own.as_slice())?);
        }
        Ok(Ledger {
            declarations: vec![declarations],
            events,
            keys: l
                .verifier_keys
                .iter()
                .map(|k| (k.journal.clone(), k.key.clone()))
                .collect(),
            chain_keys: l.chain_keys.clone(),
        })
    }

    fn rules(&self, from: OffsetDateTime, to: OffsetDateTime) -> RuleConfig {
        let mut cfg = RuleConfig::new(from, to);
        cfg.max_skew = time::Duration::seconds(self.config.rules.max_skew_seconds);
        cfg.silent_after = time::Duration::hours(self.config.rules.silent_after_hours);
        cfg
    }

    fn filer(&self, user: &User, tenant: &str) -> Filer {
        Filer {
            ledger: self.config.ledger.declarations.clone(),
            tenant: tenant.to_owned(),
            filed_by: user.name.clone(),
            filed_at: OffsetDateTime::now_utc(),
        }
    }

    /// Records an access in the ledger, before anything is handed out.
    fn record(&self, user: &User, tenant: &str, action: &str, scope: &str) -> Result<(), ApiError> {
        let _one_writer = self
            .ledger_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        declare::record_access(&self.filer(user, tenant), action, scope)
            .map_err(|e| internal("cannot record the access in the ledger", &e))?;
        tracing::info!(user = %user.name, tenant, action, scope, "access recorded");
        Ok(())
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets the requests in progress
/// finish and waits for every connection and run.
///
/// # Errors
/// [`ServeError::Accept`] when the listener fails.
pub async fn run(
    listener: TcpListener,
    transport: Transport,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let acceptor = match &transport {
        Transport::Tls(config) => Some(tokio_rustls::TlsAcceptor::from(config.clone())),
        Transport::PlainLoopback => None,
    };
    let connections = Arc::new(Semaphore::new(app.config.limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    let result = loop {
        let permit = tokio::select! {
            () = &mut shutdown => break Ok(()),
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(source) => break Err(ServeError::Accept { addr: addr.clone(), source }),
            },
        };
        let app = app.clone();
        let stop = stop.clone();
        let acceptor = acceptor.clone();
        tracker.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(tcp, peer, ClientCert::Absent, app, stop).await,
                Some(acceptor) => {
                    let limit = Duration::from_millis(app.config.limits.handshake_timeout_ms);
                    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let cert = client_cert(&tls, peer, &app);
                            serve_connection(tls, peer, cert, app, stop).await;
                        }
                        Ok(Err(e)) if refused_client_certificate(&e) => {
                            tracing::info!(%peer, error = %e, "client certificate refused");
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    };
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    app.blocking.close();
    app.blocking.wait().await;
    result
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE: wait for a descriptor to be freed
}

/// Whether a handshake failed on the client's certificate (unknown CA, expired, revoked,
/// missing when required): worth a line at the default level, unlike a scanner's noise.
fn refused_client_certificate(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

/// Who the client certificate of a connection (verified by rustls) identifies.
fn client_cert<S>(
    tls: &tokio_rustls::server::TlsStream<S>,
    peer: SocketAddr,
    app: &App,
) -> ClientCert {
    let Some(certificate) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return ClientCert::Absent;
    };
    let cert = app.users.identify(certificate);
    match &cert {
        ClientCert::User(user) => {
            tracing::debug!(%peer, user = %user.name, "client certificate identifies a user");
        }
        ClientCert::NoUser { names } => tracing::warn!(
            %peer,
            certificate_names = ?names,
            "client certificate identifies no user: every request refused"
        ),
        ClientCert::SeveralUsers { users } => tracing::warn!(
            %peer,
            ?users,
            "client certificate identifies several users: every request refused"
        ),
        ClientCert::Absent => {}
    }
    cert
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    cert: ClientCert,
    app: Arc<App>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = Duration::from_millis(app.config.limits.header_timeout_ms);
    let cert = Arc::new(cert);
    let service = hyper::service::service_fn(move |req| {
        let (app, cert) = (app.clone(), cert.clone());
        async move { Ok::<_, Infallible>(handle(req, &cert, &app).await) }
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
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

type Resp = Response<Full<Bytes>>;

/// A refusal, as JSON for the API and as a page for the pages.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        field: Some(field.to_owned()),
    }
}

fn status(status: StatusCode, message: &str) -> ApiError {
    ApiError {
        status,
        message: message.to_owned(),
        field: None,
    }
}

fn internal(what: &str, e: &AuditError) -> ApiError {
    tracing::error!(error = %e, "{what}");
    status(StatusCode::INTERNAL_SERVER_ERROR, what)
}

/// An error of a run: a refused input names its field; anything else is ours.
fn run_error(e: &AuditError) -> ApiError {
    match e {
        AuditError::Input { field, reason, .. } => bad(field, reason.clone()),
        other => internal("cannot read the ledger", other),
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, header(content_type));
    h.insert(CACHE_CONTROL, header("no-store"));
    h.insert("x-content-type-options", header("nosniff"));
    r
}

fn header(value: &str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static(""))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Resp {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

fn html_response(status: StatusCode, html: String) -> Resp {
    let mut r = respond(status, "text/html; charset=utf-8", html);
    r.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        header("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'"),
    );
    r
}

impl ApiError {
    fn into_response(self, page: Option<Lang>) -> Resp {
        let mut r = match page {
            Some(lang) => html_response(
                self.status,
                pages::error_page(self.status.as_u16(), &self.message, lang),
            ),
            None => json_response(
                self.status,
                &ErrorBody {
                    error: &self.message,
                    field: self.field.as_deref(),
                },
            ),
        };
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                header("Basic realm=\"vigie auditor\", charset=\"UTF-8\""),
            );
        }
        r
    }
}

/// The parsed request line.
struct Req {
    method: Method,
    segments: Vec<String>,
    query: HashMap<String, String>,
    raw_query: Option<String>,
}

async fn handle(req: Request<Incoming>, cert: &ClientCert, app: &Arc<App>) -> Resp {
    let path = req.uri().path().to_owned();
    let page = path.starts_with("/t/");
    let query = parse_query(req.uri().query().unwrap_or(""));
    // Pages answer in the language asked for, even their errors.
    let page_lang = page.then(|| {
        if query.get("lang").map(String::as_str) == Some("en") {
            Lang::En
        } else {
            Lang::Fr
        }
    });
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let r = Req {
        method: req.method().clone(),
        segments,
        query,
        raw_query: req.uri().query().map(str::to_owned),
    };
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let user = match app.users.authenticate(cert, authorization.as_deref()) {
        Auth::User(u) => u,
        Auth::Missing => {
            return status(StatusCode::UNAUTHORIZED, "credentials required")
                .into_response(page_lang);
        }
        Auth::Refused(why) => {
            tracing::info!(path, reason = ?why, "credentials refused");
            let message = why.message(page_lang.unwrap_or(Lang::En));
            return status(StatusCode::FORBIDDEN, message).into_response(page_lang);
        }
    };
    let limit = Duration::from_millis(app.config.limits.request_timeout_ms);
    let answer = tokio::time::timeout(limit, route(req, r, &user, app)).await;
    match answer {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(page_lang),
        Err(_) => {
            status(StatusCode::SERVICE_UNAVAILABLE, "not answered in time").into_response(page_lang)
        }
    }
}

async fn route(
    req: Request<Incoming>,
    r: Req,
    user: &User,
    app: &Arc<App>,
) -> Result<Resp, ApiError> {
    let seg: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    let get = r.method == Method::GET;
    let allow_only = |allowed: &'static str| -> Result<Resp, ApiError> {
        let mut resp =
            status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response(None);
        resp.headers_mut().insert(ALLOW, header(allowed));
        Ok(resp)
    };
    match seg.as_slice() {
        ["api", "v1", "verify"] if get => verify(user, app).await,
        ["api", "v1", "tenants", t, "report"] if get => report(t, &r, user, app).await,
        ["api", "v1", "tenants", t, "vendors", v, "journal"] if get => {
            journal(t, v, &r, user, app).await
        }
        ["api", "v1", "tenants", t, "vendors", v, "bundle"] if get => {
            bundle(t, v, &r, user, app).await
        }
        ["api", "v1", "tenants", t, "declarations"] if r.method == Method::POST => {
            declarations(t, req, user, app).await
        }
        ["t", t] if get && !path_ends_with_slash(&req) => {
            // `/t/x` → `/t/x/`, so that relative links resolve.
            let mut resp = respond(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
            let query = r
                .raw_query
                .as_deref()
                .map_or(String::new(), |q| format!("?{q}"));
            resp.headers_mut().insert(
                LOCATION,
                header(&format!("/t/{}/{query}", percent_encode(t))),
            );
            let _ = resp.headers_mut().insert(CONTENT_LENGTH, header("0"));
            Ok(resp)
        }
        ["t", t, rest @ ..] if get && rest.len() <= 1 => {
            let which = match rest {
                [] => Page::Tenant,
                ["timeline"] => Page::Timeline,
                _ => return Err(not_found()),
            };
            page(t, which, &r, user, app).await
        }
        ["api", "v1", "verify"]
        | ["api", "v1", "tenants", _, "report"]
        | [
            "api",
            "v1",
            "tenants",
            _,
            "vendors",
            _,
            "journal" | "bundle",
        ]
        | ["t", _]
        | ["t", _, "timeline"] => allow_only("GET"),
        ["api", "v1", "tenants", _, "declarations"] => allow_only("POST"),
        _ => Err(not_found()),
    }
}

fn path_ends_with_slash<B>(req: &Request<B>) -> bool {
    req.uri().path().ends_with('/')
}

fn not_found() -> ApiError {
    status(StatusCode::NOT_FOUND, "not found")
}

fn forbidden() -> ApiError {
    status(StatusCode::FORBIDDEN, "forbidden")
}

fn lang(q: &HashMap<String, String>) -> Result<Lang, ApiError> {
    match q.get("lang").map(String::as_str) {
        None | Some("fr") => Ok(Lang::Fr),
        Some("en") => Ok(Lang::En),
        Some(other) => Err(bad(
            "lang",
            format!("unknown language {other:?}: expected fr or en"),
        )),
    }
}

fn instant(q: &HashMap<String, String>, field: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    q.get(field)
        .map(|text| {
            parse_instant(text).ok_or_else(|| {
                bad(
                    field,
                    format!(
                        "invalid instant {text:?}: expected RFC 3339 or YYYY-MM-DD[THH:MM] (Paris time)"
                    ),
                )
            })
        })
        .transpose()
}

/// The period `[from, to)` asked for; `default_days` back from now when absent (pages).
fn period(
    q: &HashMap<String, String>,
    default_days: Option<i64>,
) -> Result<(OffsetDateTime, OffsetDateTime), ApiError> {
    let now = OffsetDateTime::now_utc();
    let (from, to) = (instant(q, "from")?, instant(q, "to")?);
    let (from, to) = match (from, to, default_days) {
        (Some(f), Some(t), _) => (f, t),
        (f, t, Some(days)) => {
            let to = t.unwrap_or(now);
            (f.unwrap_or(to - time::Duration::days(days)), to)
        }
        (None, _, None) => return Err(bad("from", "missing")),
        (_, None, None) => return Err(bad("to", "missing")),
    };
    if to <= from {
        return Err(bad("to", "the period ends before it starts"));
    }
    Ok((from, to))
}

/// Runs `f` on a blocking thread, at most `max_concurrent_runs` at once.
async fn blocking<T, F>(app: &Arc<App>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
{
    let permit = app
        .runs
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| status(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let worker = app.clone();
    let task = app.blocking.spawn_blocking(move || {
        let _permit = permit;
        f(&worker)
    });
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "run panicked");
        Err(status(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
    })
}

fn run_audit(app: &App, cfg: RuleConfig, opts: RunOptions) -> Result<Audit, ApiError> {
    let ledger = app.ledger().map_err(|e| run_error(&e))?;
    audit::run(&ledger, cfg, opts).map_err(|e| run_error(&e))
}

/// A vendor's journal of `tenant` over `[from, to)` ([`audit::run_journal`]), and the
/// ledger it was read from.
fn run_journal(
    app: &App,
    (tenant, vendor): (&str, &str),
    (from, to): (OffsetDateTime, OffsetDateTime),
) -> Result<(Ledger, Audit), ApiError> {
    let ledger = app.ledger().map_err(|e| run_error(&e))?;
    let mut cfg = app.rules(from, to);
    cfg.tenant = Some(tenant.to_owned());
    cfg.vendor = Some(vendor.to_owned());
    let audit = audit::run_journal(&ledger, cfg, false).map_err(|e| run_error(&e))?;
    Ok((ledger, audit))
}

fn report_options() -> RunOptions {
    RunOptions {
        progress: false,
        ..RunOptions::default()
    }
}

async fn report(t: &str, r: &Req, user: &User, app: &Arc<App>) -> Result<Resp, ApiError> {
    if !user.may(Action::Report(t)) {
        return Err(forbidden());
    }
    let (from, to) = period(&r.query, None)?;
    let lang = lang(&r.query)?;
    let format: Format = r
        .query
        .get("format")
        .map_or(Ok(Format::Json), |f| f.parse())
        .map_err(|e| bad("format", e))?;
    let vendor = r.query.get("vendor").cloned();
    let (tenant, user) = (t.to_owned(), user.clone());
    let body = blocking(app, move |app| {
        let mut cfg = app.rules(from, to);
        cfg.tenant = Some(tenant.clone());
        cfg.vendor.clone_from(&vendor);
        let audit = run_audit(app, cfg, report_options())?;
        let scope = format!(
            "tenant={tenant} vendor={} from={} to={} via=api",
            vendor.as_deref().unwrap_or("*"),
            rfc3339(from),
            rfc3339(to)
        );
        app.record(&user, &tenant, "report", &scope)?;
        let mut out = Vec::new();
        report::write(&audit, format, lang, OffsetDateTime::now_utc(), &mut out)
            .map_err(|e| internal("cannot write the report", &e))?;
        Ok(out)
    })
    .await?;
    let content_type = match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Html => "text/html; charset=utf-8",
    };
    Ok(if format == Format::Html {
        let mut resp = html_response(StatusCode::OK, String::from_utf8_lossy(&body).into_owned());
        resp.headers_mut()
            .insert(CONTENT_TYPE, header(content_type));
        resp
    } else {
        respond(StatusCode::OK, content_type, body)
    })
}

async fn journal(t: &str, v: &str, r: &Req, user: &User, app: &Arc<App>) -> Result<Resp, ApiError> {
    if !user.may(Action::Journal(t)) {
        return Err(forbidden());
    }
    let (from, to) = period(&r.query, None)?;
    let csv = match r.query.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(bad(
                "format",
                format!("unknown format {other:?}: expected json or csv"),
            ));
        }
    };
    let (tenant, vendor, user) = (t.to_owned(), v.to_owned(), user.clone());
    let body = blocking(app, move |app| {
        let (_, audit) = run_journal(app, (&tenant, &vendor), (from, to))?;
        let scope = format!(
            "vendor={vendor} tenant={tenant} from={} to={} via=api",
            rfc3339(from),
            rfc3339(to)
        );
        app.record(&user, &tenant, "journal_export", &scope)?;
        let mut out = Vec::new();
        let written = if csv {
            crate::export::journal_csv(&audit.sessions, &mut out)
        } else {
            crate::export::journal_json(&audit.sessions, &mut out)
        };
        written.map_err(|e| internal("cannot write the journal", &e))?;
        Ok(out)
    })
    .await?;
    Ok(respond(
        StatusCode::OK,
        if csv {
            "text/csv; charset=utf-8"
        } else {
            "application/json"
        },
        body,
    ))
}

async fn bundle(t: &str, v: &str, r: &Req, user: &User, app: &Arc<App>) -> Result<Resp, ApiError> {
    if !user.may(Action::Journal(t)) {
        return Err(forbidden());
    }
    let (from, to) = period(&r.query, None)?;
    let (tenant, vendor, user) = (t.to_owned(), v.to_owned(), user.clone());
    let body = blocking(app, move |app| {
        let scope = format!(
            "vendor={vendor} tenant={tenant} from={} to={} bundle via=api",
            rfc3339(from),
            rfc3339(to)
        );
        // The vendor's sessions first: those attributed to its staff are in full too.
        let (ledger, audit) = run_journal(app, (&tenant, &vendor), (from, to))?;
        app.record(&user, &tenant, "journal_export", &scope)?;
        let mut out = Vec::new();
        crate::export::write_bundle(
            &ledger,
            crate::export::BundleScope {
                vendor: &vendor,
                tenant: Some(&tenant),
                from,
                to,
                sessions: &audit.sessions,
            },
            OffsetDateTime::now_utc(),
            &mut out,
        )
        .map_err(|e| internal("cannot write the bundle", &e))?;
        Ok(out)
    })
    .await?;
    Ok(respond(StatusCode::OK, "application/x-ndjson", body))
}

#[derive(Serialize)]
struct Filed {
    filed: usize,
    seqs: Vec<u64>,
}

async fn declarations(
    t: &str,
    req: Request<Incoming>,
    user: &User,
    app: &Arc<App>,
) -> Result<Resp, ApiError> {
    if !user.may(Action::Declare(t)) {
        return Err(forbidden());
    }
    let body = read_body(req, app).await?;
    let batch = parse_declarations(&body)?;
    let (tenant, filer_user) = (t.to_owned(), user.clone());
    let seqs = blocking(app, move |app| {
        let filer = app.filer(&filer_user, &tenant);
        let _one_writer = app
            .ledger_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        declare::file(&filer, batch).map_err(|e| match e {
            AuditError::Input {
                field,
                reason,
                line,
                ..
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: if line > 1 {
                    format!("declaration [{}]: {reason}", line - 1)
                } else {
                    reason
                },
                field: Some(field),
            },
            other => internal("cannot file the declaration", &other),
        })
    })
    .await?;
    tracing::info!(user = %user.name, tenant = t, n = seqs.len(), "declarations filed");
    Ok(json_response(
        StatusCode::CREATED,
        &Filed {
            filed: seqs.len(),
            seqs,
        },
    ))
}

async fn read_body(req: Request<Incoming>, app: &App) -> Result<Bytes, ApiError> {
    let max = app.config.limits.max_body_bytes;
    let too_large = || status(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let limit = Duration::from_millis(app.config.limits.body_timeout_ms);
    match tokio::time::timeout(limit, Limited::new(req.into_body(), max).collect()).await {
        Err(_) => Err(status(StatusCode::REQUEST_TIMEOUT, "body too slow")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(status(StatusCode::BAD_REQUEST, "body unreadable")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// One declaration object, or an array of them; a refusal names the field (`[i].field`
/// in an array).
fn parse_declarations(body: &[u8]) -> Result<Vec<(Origin, DeclarationBody)>, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("invalid JSON: {e}")))?;
    let (items, array) = match value {
        serde_json::Value::Array(items) => (items, true),
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(bad("body", "no declaration"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = if array {
                format!("[{i}]")
            } else {
                String::new()
            };
            if item.get("declaration").is_none() {
                return Err(bad(
                    &join_field(&prefix, "declaration"),
                    "missing: the kind of declaration (vendor_registered, staff_list, …)",
                ));
            }
            let item_copy = item.clone();
            let body: DeclarationBody = serde_path_to_error::deserialize(item).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let inner = e.into_inner().to_string();
                // serde names a missing or unknown field in the message, not the path.
                let named = between_backticks(&inner)
                    .filter(|_| inner.starts_with("missing field") || inner.starts_with("unknown"));
                let field = match (path.is_empty(), named) {
                    (true, Some(n)) if inner.starts_with("missing field") => n.to_owned(),
                    (true, _) if inner.starts_with("unknown variant") => "declaration".to_owned(),
                    (false, Some(n)) if inner.starts_with("missing field") => {
                        format!("{path}.{n}")
                    }
                    (true, _) => culprit(&item_copy).unwrap_or_else(|| "body".to_owned()),
                    (false, _) => path,
                };
                bad(&join_field(&prefix, &field), inner)
            })?;
            Ok((
                Origin {
                    file: "request".into(),
                    line: i + 1,
                },
                body,
            ))
        })
        .collect()
}

/// The key whose value is refused. An internally tagged enum buffers its fields, so serde
/// loses their path; the culprit is the key without which the object parses, or fails
/// only for lacking that very key (the derived visitor stops at the first bad value).
fn culprit(item: &serde_json::Value) -> Option<String> {
    let object = item.as_object()?;
    object
        .keys()
        .filter(|k| k.as_str() != "declaration")
        .find(|k| {
            let mut without = object.clone();
            without.remove(k.as_str());
            match serde_json::from_value::<DeclarationBody>(serde_json::Value::Object(without)) {
                Ok(_) => true,
                Err(e) => e.to_string().starts_with(&format!("missing field `{k}`")),
            }
        })
        .cloned()
}

fn join_field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn between_backticks(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let len = s[start..].find('`')?;
    Some(&s[start..start + len])
}

#[derive(Serialize)]
struct VerifyBody {
    intact: bool,
    journals: Vec<JournalVerdict>,
}

#[derive(Serialize)]
struct JournalVerdict {
    journal: String,
    intact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    damage: Option<String>,
    records: u64,
    good_seals: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    macs_checked: bool,
    signatures_checked: bool,
    problems: Vec<String>,
}

async fn verify(user: &User, app: &Arc<App>) -> Result<Resp, ApiError> {
    if !user.may(Action::Verify) {
        return Err(forbidden());
    }
    let verdicts = blocking(app, |app| {
        let ledger = app.ledger().map_err(|e| run_error(&e))?;
        Ok(ledger
            .all_sources()
            .into_iter()
            .map(|source| verdict(&ledger, source))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &VerifyBody {
            intact: verdicts.iter().all(|v| v.intact),
            journals: verdicts,
        },
    ))
}

/// The verdict on one chain; its name is the label findings cite.
fn verdict(ledger: &Ledger, source: &Source) -> JournalVerdict {
    let journal = source.label().to_owned();
    let (report, damage, error) = match crate::verify::source(ledger, source) {
        Ok(crate::verify::Outcome::Read(report)) => (report, None, None),
        Ok(crate::verify::Outcome::Damaged { report, damage }) => (report, Some(damage), None),
        Err(e) => {
            tracing::warn!(journal, error = %e, "cannot verify");
            (proto::verify::Report::default(), None, Some(e.to_string()))
        }
    };
    JournalVerdict {
        journal,
        // A chain whose MACs could not be checked (no verifier key) is not called intact.
        intact: error.is_none() && damage.is_none() && report.is_intact() && report.macs_checked,
        error,
        damage,
        records: report.records,
        good_seals: report.good_seals,
        first_seq: report.first_seq,
        last_seq: report.last_seq,
        macs_checked: report.macs_checked,
        signatures_checked: report.signatures_checked,
        problems: report.problems.iter().map(ToString::to_string).collect(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Page {
    Tenant,
    Timeline,
}

async fn page(
    t: &str,
    which: Page,
    r: &Req,
    user: &User,
    app: &Arc<App>,
) -> Result<Resp, ApiError> {
    if !user.may(Action::Pages(t)) {
        return Err(forbidden());
    }
    let (from, to) = period(&r.query, Some(app.config.rules.page_days))?;
    let lang = lang(&r.query)?;
    let (tenant, user) = (t.to_owned(), user.clone());
    let html = blocking(app, move |app| {
        let mut cfg = app.rules(from, to);
        cfg.tenant = Some(tenant.clone());
        let audit = run_audit(app, cfg, report_options())?;
        let scope = format!(
            "tenant={tenant} vendor=* from={} to={} page={}",
            rfc3339(from),
            rfc3339(to),
            match which {
                Page::Tenant => "tenant",
                Page::Timeline => "timeline",
            }
        );
        app.record(&user, &tenant, "report", &scope)?;
        let now = OffsetDateTime::now_utc();
        Ok(match which {
            Page::Tenant => pages::tenant_page(&audit, &tenant, lang, now),
            Page::Timeline => pages::timeline_page(&audit, &tenant, lang, now),
        })
    })
    .await?;
    Ok(html_response(StatusCode::OK, html))
}

/// Splits a query string into decoded key/value pairs (the last of a repeated key wins).
fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters (for links and redirects).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        let q = parse_query("from=2026-03-01T00%3A00%2B01%3A00&lang=en&x=a+b&flag");
        assert_eq!(q["from"], "2026-03-01T00:00+01:00");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["flag"], "");
        assert_eq!(percent_encode("chu lyon/é"), "chu%20lyon%2F%C3%A9");
        assert_eq!(percent_decode(&percent_encode("chu lyon/é")), "chu lyon/é");
    }

    #[test]
    fn refused_client_certificates_are_told_from_other_handshake_failures() {
        let wrapped = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(refused_client_certificate(&wrapped(
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        )));
        assert!(refused_client_certificate(&wrapped(
            rustls::Error::NoCertificatesPresented
        )));
        assert!(!refused_client_certificate(&wrapped(
            rustls::Error::DecryptError
        )));
        assert!(!refused_client_certificate(
            &std::io::ErrorKind::UnexpectedEof.into()
        ));
    }

    #[test]
    fn declaration_errors_name_the_field() {
        let field = |body: &str| parse_declarations(body.as_bytes()).unwrap_err().field;
        assert_eq!(field("{"), Some("body".into()));
        assert_eq!(field(r#"{"vendor":"x"}"#), Some("declaration".into()));
        assert_eq!(
            field(r#"{"declaration":"nope","vendor":"x"}"#),
            Some("declaration".into())
        );
        assert_eq!(
            field(r#"{"declaration":"vendor_registered","vendor":"x"}"#),
            Some("name".into())
        );
        assert_eq!(
            field(
                r#"[{"declaration":"vendor_registered","vendor":"x","name":"X"},{"declaration":"departure","vendor":"x","person":"p","effective_at":"yesterday"}]"#
            ),
            Some("[1].effective_at".into())
        );
        let ok = parse_declarations(
            br#"{"declaration":"vendor_registered","vendor":"x","name":"X SAS"}"#,
        )
        .expect("parsed");
        assert_eq!(ok.len(), 1);
    }
}
