//! The HTTP server side shared by every receiver (the HTTP sources, the
//! Prometheus exporter, the admin API): a listener with optional TLS that
//! serves HTTP/1.1 and HTTP/2, server auth, bodies read within limits, and
//! refusals that tell the client what to do.
//!
//! Whatever clients do, a receiver keeps to its `ServerLimits`: a cap on
//! connections (more are closed at once), header, body and idle timeouts,
//! a budget of request bytes held across all requests (503 past it), a
//! `Content-Length` over the limit refused before the body is read, and a
//! bounded number of HTTP/2 streams per connection. Every refusal and timeout
//! is counted, and logged at most once per 10 s with the count of those held
//! back.

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tower_service::Service;

use super::tls::ServerTls;
use super::AuthStrategy;
use crate::component::{Context, Error};
use crate::telemetry::{ComponentMetrics, LogLimiter};

/// Credentials a client must send: `username` + `password` (basic; Kong
/// sends its `http_endpoint`'s userinfo so) or `token` (bearer). `strategy`
/// (Vector's) may name which; without it the fields tell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ServerAuthOptions")]
pub enum ServerAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerAuthOptions {
    strategy: Option<AuthStrategy>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl TryFrom<ServerAuthOptions> for ServerAuth {
    type Error = String;

    fn try_from(o: ServerAuthOptions) -> Result<Self, String> {
        match (o.strategy, o.username, o.password, o.token) {
            (None | Some(AuthStrategy::Basic), Some(username), Some(password), None) => Ok(ServerAuth::Basic { username, password }),
            (None | Some(AuthStrategy::Bearer), None, None, Some(token)) => Ok(ServerAuth::Bearer { token }),
            _ => Err("`auth` takes `username` and `password` (basic), or `token` (bearer)".into()),
        }
    }
}

/// What every receiver holds to, whatever a client does: nginx-like limits
/// on connections, time and memory, so that one client can neither take the
/// receiver down nor starve the others. Set per receiver under `limits`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Connections open at once; one more is accepted and closed at once (counted, logged).
    pub max_connections: usize,
    /// A request's headers (and a TLS handshake) must arrive within this: slowloris.
    pub header_timeout_secs: f64,
    /// A request's whole body must arrive within this (else 408).
    pub body_timeout_secs: f64,
    /// A connection with no byte either way for this long is closed (idle keep-alive).
    pub idle_timeout_secs: f64,
    /// Request bytes held at once across all requests, as sent and once
    /// decompressed: past it, a request is refused with 503 (the sender retries).
    pub max_in_flight_bytes: usize,
    /// Streams at once on one HTTP/2 connection (gRPC).
    pub http2_max_concurrent_streams: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout_secs: 30.0,
            body_timeout_secs: 60.0,
            idle_timeout_secs: 75.0,
            max_in_flight_bytes: 64 << 20,
            http2_max_concurrent_streams: 32,
        }
    }
}

impl ServerLimits {
    pub fn check(&self) -> Result<(), String> {
        let times = [self.header_timeout_secs, self.body_timeout_secs, self.idle_timeout_secs];
        if self.max_connections == 0
            || self.max_in_flight_bytes == 0
            || self.http2_max_concurrent_streams == 0
            || times.iter().any(|t| t.is_nan() || *t <= 0.0)
        {
            return Err("every `limits.*` value must be positive".into());
        }
        if self.max_in_flight_bytes > MAX_BUDGET {
            return Err(format!("`limits.max_in_flight_bytes` can be at most {MAX_BUDGET}"));
        }
        Ok(())
    }
}

/// Vector's `keepalive`: a connection is closed gracefully after this age (±
/// the jitter), so that clients spread over new servers when there are more.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Keepalive {
    pub max_connection_age_secs: u64,
    pub max_connection_age_jitter_factor: f64,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { max_connection_age_secs: 300, max_connection_age_jitter_factor: 0.1 }
    }
}

/// How long a stopping receiver waits for its connections to finish their requests.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(15);

/// The semaphore's own cap on permits.
const MAX_BUDGET: usize = usize::MAX >> 4;

/// Own counters of every receiver (`tapline_<name>` on /metrics).
pub const CONNECTIONS_REFUSED: &str = "http_connections_refused_total";
pub const TIMEOUTS: &str = "http_timeouts_total";
pub const REFUSED_REQUESTS: &str = "http_requests_refused_total";

/// A bound socket, with TLS when configured; serves HTTP/1.1 and HTTP/2 (gRPC).
pub struct Listener {
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    pub fn bind(address: SocketAddr, tls: Option<&ServerTls>) -> Result<Listener, Error> {
        let listener = std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
        listener.set_nonblocking(true).context("cannot make the socket non-blocking")?;
        let acceptor = match tls {
            Some(tls) => tls.acceptor()?,
            None => None,
        };
        Ok(Listener { listener, acceptor })
    }

    /// Bind, trying again for up to `patience`: on reload, the component
    /// being replaced still holds the address for a moment.
    pub async fn bind_within(address: SocketAddr, tls: Option<&ServerTls>, patience: std::time::Duration) -> Result<Listener, Error> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Listener::bind(address, tls) {
                Ok(listener) => return Ok(listener),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().context("the bound address")
    }

    pub fn scheme(&self) -> &'static str {
        if self.acceptor.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serve `app` until `stop`, then let the connections finish what they
    /// are doing. Refusals, timeouts and closed connections are counted in
    /// `metrics` and logged at most every few seconds (`LogLimiter`).
    pub async fn serve(
        self,
        app: Router,
        limits: &ServerLimits,
        keepalive: &Keepalive,
        metrics: Arc<ComponentMetrics>,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::from_std(self.listener).context("cannot serve on the socket")?;
        let limits = limits.clone();
        let watch = Arc::new(Watch::new(metrics));
        let budget = Arc::new(Semaphore::new(limits.max_in_flight_bytes.min(MAX_BUDGET)));
        let app = app.layer(axum::middleware::from_fn_with_state(
            RequestGuard { budget, body_timeout: Duration::from_secs_f64(limits.body_timeout_secs), watch: watch.clone() },
            guard_request,
        ));
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs_f64(limits.header_timeout_secs));
        http.http2().timer(TokioTimer::new()).max_concurrent_streams(limits.http2_max_concurrent_streams);
        let http = Arc::new(http);
        let connections = Arc::new(Semaphore::new(limits.max_connections.min(u32::MAX as usize)));
        let (closing, closed) = tokio::sync::watch::channel(false);
        tokio::pin!(stop);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to be freed.
                        watch.log_refusal(ACCEPT_FAILED, &format!("cannot accept a connection: {e}"), None);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                watch.metrics.add_own(CONNECTIONS_REFUSED, 1);
                let what = format!("connection closed at once: {} connections are open (limits.max_connections)", limits.max_connections);
                watch.log_refusal(AT_CONNECTION_CAP, &what, Some(peer));
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let age = connection_age(keepalive);
            let connection = Connection { http: http.clone(), app: app.clone(), watch: watch.clone(), limits: limits.clone(), peer };
            let (acceptor, closed) = (self.acceptor.clone(), closed.clone());
            tokio::spawn(async move {
                connection.run(tcp, acceptor, age, closed).await;
                drop(permit);
            });
        }
        // Stop accepting; open connections finish their requests and close (a
        // client stuck mid-request is not waited for past SHUTDOWN_PATIENCE).
        let _ = closing.send(true);
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, connections.acquire_many(all)).await;
        Ok(())
    }
}

/// The age at which a connection is closed gracefully: Vector's keepalive with its jitter.
fn connection_age(keepalive: &Keepalive) -> Option<Duration> {
    if keepalive.max_connection_age_secs == 0 {
        return None;
    }
    let jitter = keepalive.max_connection_age_jitter_factor.clamp(0.0, 1.0);
    let factor = 1.0 + rand::random_range(-jitter..=jitter);
    Some(Duration::from_secs_f64(keepalive.max_connection_age_secs as f64 * factor))
}

/// One accepted connection and what it needs.
struct Connection {
    http: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    watch: Arc<Watch>,
    limits: ServerLimits,
    peer: SocketAddr,
}

impl Connection {
    async fn run(
        self,
        tcp: TcpStream,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        age: Option<Duration>,
        closed: tokio::sync::watch::Receiver<bool>,
    ) {
        let idle = Duration::from_secs_f64(self.limits.idle_timeout_secs);
        match acceptor {
            None => self.serve(IdleTimeout::new(tcp, idle), age, closed).await,
            Some(acceptor) => {
                match tokio::time::timeout(Duration::from_secs_f64(self.limits.header_timeout_secs), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => self.serve(IdleTimeout::new(tls, idle), age, closed).await,
                    Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
                    Err(_) => {
                        self.watch.metrics.add_own(TIMEOUTS, 1);
                        self.watch.log_refusal(
                            TIMED_OUT,
                            "TLS handshake not done within limits.header_timeout_secs: connection closed",
                            Some(self.peer),
                        );
                    }
                }
            }
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        io: IdleTimeout<S>,
        age: Option<Duration>,
        mut closed: tokio::sync::watch::Receiver<bool>,
    ) {
        let peer = self.peer;
        let app = self.app;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            app.clone().call(request.map(Body::new))
        });
        let connection = self.http.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let aged = async {
            match age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(aged);
        let mut closing = false;
        let ended = loop {
            tokio::select! {
                ended = connection.as_mut() => break ended,
                _ = &mut aged, if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = closed.wait_for(|closed| *closed), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = ended {
            // hyper's header timeout, or ours (`IdleTimeout`), anywhere in the chain.
            let timed_out = std::iter::successors(Some(e.as_ref() as &(dyn std::error::Error + 'static)), |e| e.source()).any(|e| {
                e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
                    || e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            });
            if timed_out {
                self.watch.metrics.add_own(TIMEOUTS, 1);
                self.watch.log_refusal(TIMED_OUT, &format!("connection closed: {e}"), Some(peer));
            } else {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    }
}

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A receiver's counters and its log of refusals, rate-limited per kind, so
/// that a flood of one kind (400s, say) hides neither another (a failed
/// authentication) nor its own count.
struct Watch {
    metrics: Arc<ComponentMetrics>,
    log: LogLimiter,
}

/// Kinds of refusal below the HTTP statuses (which are their own kinds).
const ACCEPT_FAILED: u32 = 1;
const AT_CONNECTION_CAP: u32 = 2;
const TIMED_OUT: u32 = 3;

impl Watch {
    fn new(metrics: Arc<ComponentMetrics>) -> Self {
        Watch { metrics, log: LogLimiter::new(Duration::from_secs(10)) }
    }

    fn log_refusal(&self, kind: u32, what: &str, peer: Option<SocketAddr>) {
        if let Some(suppressed) = self.log.allow(kind) {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(component = %self.metrics.id, peer, suppressed, "{what}");
        }
    }
}

/// What the middleware of every receiver holds.
#[derive(Clone)]
struct RequestGuard {
    budget: Arc<Semaphore>,
    body_timeout: Duration,
    watch: Arc<Watch>,
}

/// Every request: its body counted against the in-flight budget and given a
/// deadline; its refusal, if any, counted and logged (rate-limited).
async fn guard_request(State(guard): State<RequestGuard>, request: Request, next: Next) -> Response {
    let held = InFlight::new(guard.budget.clone());
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(held.clone());
    let body = GuardedBody {
        inner: body,
        held: held.clone(),
        deadline: Box::pin(tokio::time::sleep(guard.body_timeout)),
        timeout: guard.body_timeout,
    };
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    if let Some(Refused(message)) = response.extensions().get::<Refused>() {
        guard.watch.metrics.add_own(REFUSED_REQUESTS, 1);
        let status = response.status();
        let what = match status {
            StatusCode::UNAUTHORIZED => "authentication failed (401): missing or wrong credentials".to_string(),
            _ => format!("request refused: {} {message}", status.as_u16()),
        };
        guard.watch.log_refusal(u32::from(status.as_u16()), &what, peer);
    }
    // The request's bytes are released here, once its answer is made.
    drop(held);
    response
}

/// Bytes one request holds against its receiver's budget, given back when
/// the last clone goes.
#[derive(Clone)]
pub struct InFlight(Arc<Held>);

struct Held {
    budget: Arc<Semaphore>,
    bytes: AtomicUsize,
}

impl InFlight {
    fn new(budget: Arc<Semaphore>) -> Self {
        InFlight(Arc::new(Held { budget, bytes: AtomicUsize::new(0) }))
    }

    /// Hold `bytes` more, or refuse (503) when the receiver is over its budget.
    pub fn take(&self, bytes: usize) -> Result<(), Refusal> {
        let refused =
            || Refusal::retry_later("too many request bytes in flight on this receiver (limits.max_in_flight_bytes); retry later");
        let n = u32::try_from(bytes).map_err(|_| refused())?;
        self.0.budget.try_acquire_many(n).map_err(|_| refused())?.forget();
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.add_permits(*self.bytes.get_mut());
    }
}

/// Why a guarded body stopped.
#[derive(Debug)]
pub enum BodyLimit {
    Timeout(Duration),
    Busy,
}

impl std::fmt::Display for BodyLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyLimit::Timeout(t) => write!(f, "the body did not arrive within {} s (limits.body_timeout_secs)", t.as_secs_f64()),
            BodyLimit::Busy => f.write_str("too many request bytes in flight on this receiver (limits.max_in_flight_bytes)"),
        }
    }
}

impl std::error::Error for BodyLimit {}

/// A request body that takes its bytes from the budget as they arrive, and
/// fails past its deadline.
struct GuardedBody {
    inner: Body,
    held: InFlight,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                return match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyLimit::Timeout(this.timeout))))),
                    Poll::Pending => Poll::Pending,
                };
            }
            Poll::Ready(frame) => frame,
        };
        let bytes = match &frame {
            Some(Ok(frame)) => frame.data_ref().map_or(0, Bytes::len),
            _ => 0,
        };
        if bytes > 0 && this.held.take(bytes).is_err() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyLimit::Busy))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that fails with `TimedOut` when no byte moved either way for
/// `idle`: idle keep-alive connections, and clients that stopped sending.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// A write's outcome: bytes written move the deadline; waiting past it fails.
    fn written(&mut self, cx: &mut std::task::Context<'_>, poll: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                self.moved();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle past limits.idle_timeout_secs: closed")
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        self.written(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The message of a refused request, left on its response for the log.
#[derive(Debug, Clone)]
struct Refused(String);

/// A refused request: its status, what to tell the sender, and a header
/// that goes with the status (`Allow`, `WWW-Authenticate`, `Retry-After`).
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub header: Option<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), header: None }
    }

    /// 503 + `Retry-After`: the sender should try again.
    pub fn retry_later(message: &str) -> Self {
        Refusal {
            header: Some((header::RETRY_AFTER, HeaderValue::from_static("1"))),
            ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// The refusal as a response with this body, its header, and a note
    /// (`Refused`) by which the receiver counts and logs it.
    pub fn into_response_with(self, content_type: &'static str, body: Vec<u8>) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(Refused(self.message));
        response
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = format!("{}\n", self.message).into_bytes();
        self.into_response_with("text/plain; charset=utf-8", body)
    }
}

pub fn method_not_allowed(method: &Method, allow: &str) -> Refusal {
    let refusal = Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not accepted: use {allow}"));
    Refusal { header: HeaderValue::from_str(allow).ok().map(|v| (header::ALLOW, v)), ..refusal }
}

/// Check the `Authorization` header against the configured credentials.
pub fn authorize(auth: Option<&ServerAuth>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(auth) = auth else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, expected) = match auth {
        ServerAuth::Basic { username, password } => {
            ("Basic", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))))
        }
        ServerAuth::Bearer { token } => ("Bearer", format!("Bearer {token}")),
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Ok(());
    }
    let refusal = Refusal::new(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    Err(Refusal {
        header: HeaderValue::from_str(&format!("{scheme} realm=\"tapline\"")).ok().map(|v| (header::WWW_AUTHENTICATE, v)),
        ..refusal
    })
}

/// The request's `Content-Type` (empty if none). Sent twice, it is refused:
/// two readers of the request could each believe a different one.
pub fn content_type(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let first = values.next().map(|v| v.to_str().unwrap_or("")).unwrap_or("");
    if values.next().is_some() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the request has two Content-Type headers: send one"));
    }
    Ok(first)
}

/// A body declared too large but at most this is read and thrown away before
/// the 413: closing with it unread makes the sender's kernel see a reset, and
/// the sender never reads the answer.
const MAX_DISCARDED_BODY: u64 = 8 << 20;

/// Read the whole body as sent, at most `max_body` bytes: a larger
/// `Content-Length` is refused (413) without keeping a byte (read and thrown
/// away up to `MAX_DISCARDED_BODY`, not at all when the sender waits for
/// `100 Continue`).
pub async fn read_raw(body: Body, headers: &HeaderMap, max_body: usize) -> Result<Bytes, Refusal> {
    let too_large = || Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_body_bytes ({max_body} bytes)"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max_body as u64) {
        let waits = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if len <= MAX_DISCARDED_BODY && !waits {
            discard(body).await;
        }
        return Err(too_large());
    }
    axum::body::to_bytes(body, max_body).await.map_err(|e| {
        let causes = || std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| e.source());
        if causes().any(|c| c.is::<http_body_util::LengthLimitError>()) {
            return too_large();
        }
        match causes().find_map(|c| c.downcast_ref::<BodyLimit>()) {
            Some(BodyLimit::Timeout(_)) => Refusal::new(StatusCode::REQUEST_TIMEOUT, e.to_string()),
            Some(BodyLimit::Busy) => Refusal::retry_later(&e.to_string()),
            None => Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")),
        }
    })
}

/// Read a body to its end, keeping nothing (its guard bounds the time).
async fn discard(mut body: Body) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

/// Read the whole body (at most `max_body` bytes as sent) and undo its
/// `Content-Encoding` (identity or gzip, at most `max_decompressed` bytes,
/// each held against the receiver's budget). Returns the size as sent and
/// the decoded body.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    in_flight: Option<&InFlight>,
    max_body: usize,
    max_decompressed: usize,
) -> Result<(usize, Bytes), Refusal> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity").trim().to_ascii_lowercase();
    if !matches!(encoding.as_str(), "identity" | "gzip" | "x-gzip") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding `{encoding}` is not supported: send identity or gzip"),
        ));
    }
    let raw = read_raw(body, headers, max_body).await?;
    if encoding == "identity" {
        return Ok((raw.len(), raw));
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]);
    let (mut out, mut piece) = (Vec::new(), vec![0u8; 64 << 10]);
    loop {
        let n = decoder.read(&mut piece).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
        if n == 0 {
            break;
        }
        if out.len() + n > max_decompressed {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than max_decompressed_bytes ({max_decompressed} bytes) once decompressed"),
            ));
        }
        if let Some(held) = in_flight {
            held.take(n)?;
        }
        out.extend_from_slice(&piece[..n]);
    }
    Ok((raw.len(), out.into()))
}

/// Compare secrets without leaking, through timing, how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
