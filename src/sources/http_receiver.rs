//! The HTTP server behind `kong_http_log` and Vector's `http_server`: limits,
//! auth, gzip, backpressure and acknowledgement, the same for both; only the
//! way a body becomes events differs.
//!
//! Answers, so that a sender such as Kong neither loses nor duplicates logs:
//! - 200 once the batch is in the pipeline (with acknowledgements: once delivered);
//! - 503 + `Retry-After` when the pipeline is full, or delivery failed: the sender retries;
//! - 400 for a body that cannot be decoded: the whole body is refused, none of
//!   its entries enter the pipeline (the error says where);
//! - 401 bad credentials, 404 other path, 405 other method, 413 too large
//!   (before or after gzip), 415 not JSON or an unknown encoding.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;

use crate::config::registry::Task;
use crate::event::{BatchStatusReceiver, EventBatch, EventStatus};
use crate::sources::tls::{TlsConfig, TlsListener};
use crate::sources::{attach_finalizers, SourceContext, SourceOutputs};
use crate::telemetry::ComponentMetrics;

/// Basic auth (Kong sends the URL's userinfo so) or a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Vector's `auth.strategy`; only `basic` and `bearer` exist here.
    pub strategy: Option<AuthStrategy>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    Basic,
    Bearer,
}

impl AuthConfig {
    pub fn check(&self) -> Result<(), String> {
        match (self.strategy, &self.username, &self.password, &self.token) {
            (None | Some(AuthStrategy::Basic), Some(_), Some(_), None) | (None | Some(AuthStrategy::Bearer), None, None, Some(_)) => Ok(()),
            _ => Err("`auth` takes `username` and `password` (basic), or `token` (bearer)".into()),
        }
    }
}

pub fn default_path() -> String {
    "/".into()
}
pub fn yes() -> bool {
    true
}
pub fn default_max_body() -> usize {
    16 << 20
}
pub fn default_max_decompressed() -> usize {
    64 << 20
}

/// What the server does, whatever the body format.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub address: SocketAddr,
    pub path: String,
    pub strict_path: bool,
    /// `None`: POST, PUT and PATCH.
    pub method: Option<Method>,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
}

impl ServerOptions {
    pub fn check(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!("`path` must start with `/`: `{}`", self.path));
        }
        if self.max_body_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err("`max_body_bytes` and `max_decompressed_bytes` must be positive".into());
        }
        self.tls.as_ref().map_or(Ok(()), TlsConfig::check)?;
        self.auth.as_ref().map_or(Ok(()), AuthConfig::check)
    }
}

/// What a decoder sees of the request besides its body.
pub struct RequestParts<'a> {
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// Turns a (decompressed) body into events; `Err` refuses it whole with a 400.
pub type BodyDecoder = Arc<dyn Fn(&[u8], &RequestParts) -> Result<EventBatch, String> + Send + Sync>;

/// Bind now (so a taken port is a start-up error), then serve until shutdown.
pub fn serve(options: ServerOptions, decode: BodyDecoder, cx: SourceContext) -> Result<Task, String> {
    let listener = Listener::bind(options.address, options.tls.as_ref())?;
    let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
    tracing::info!(component = %id, address = %options.address, path = %options.path, scheme = listener.scheme(), "listening");
    let receiver = Arc::new(Receiver { options, decode, out, metrics, acknowledgements });
    let app = Router::new().fallback(receive).with_state(receiver);
    Ok(Box::pin(async move { listener.serve(app, async move { shutdown.triggered().await }).await }))
}

/// A bound socket, with TLS when configured; serves HTTP/1.1 and HTTP/2 (gRPC).
pub struct Listener {
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    pub fn bind(address: SocketAddr, tls: Option<&TlsConfig>) -> Result<Listener, String> {
        let listener = std::net::TcpListener::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let acceptor = match tls {
            Some(tls) => tls.acceptor()?,
            None => None,
        };
        Ok(Listener { listener, acceptor })
    }

    /// Bind, trying again for up to `patience`: on reload, the component
    /// being replaced still holds the address for a moment.
    pub async fn bind_within(address: SocketAddr, tls: Option<&TlsConfig>, patience: std::time::Duration) -> Result<Listener, String> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Listener::bind(address, tls) {
                Ok(listener) => return Ok(listener),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.acceptor.is_some() { "https" } else { "http" }
    }

    pub async fn serve(self, app: Router, stop: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|e| e.to_string())?;
        let served = match self.acceptor {
            Some(acceptor) => axum::serve(TlsListener::new(listener, acceptor).map_err(|e| e.to_string())?, app).with_graceful_shutdown(stop).await,
            None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        };
        served.map_err(|e| format!("HTTP server failed: {e}"))
    }
}

struct Receiver {
    options: ServerOptions,
    decode: BodyDecoder,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    acknowledgements: bool,
}

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
        Refusal { header: Some((header::RETRY_AFTER, HeaderValue::from_static("1"))), ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    /// The refusal as a plain-text response, with its header.
    pub fn into_response_with(self, content_type: &'static str, body: Vec<u8>) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = format!("{}\n", self.message).into_bytes();
        self.into_response_with("text/plain; charset=utf-8", body)
    }
}

async fn receive(State(receiver): State<Arc<Receiver>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    match receiver.handle(method, uri, headers, body).await {
        Ok(response) => response,
        Err(refusal) => {
            ComponentMetrics::add(&receiver.metrics.errors, 1);
            refusal.into_response()
        }
    }
}

impl Receiver {
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response, Refusal> {
        let path_ok = if self.options.strict_path { uri.path() == self.options.path } else { uri.path().starts_with(&self.options.path) };
        if !path_ok {
            return Err(Refusal::new(StatusCode::NOT_FOUND, format!("no log endpoint at {}; Kong's http_endpoint should end in {}", uri.path(), self.options.path)));
        }
        let allowed = match &self.options.method {
            Some(only) => method == *only,
            None => matches!(method, Method::POST | Method::PUT | Method::PATCH),
        };
        if !allowed {
            let allow = self.options.method.as_ref().map_or("POST, PUT, PATCH".to_string(), Method::to_string);
            return Err(method_not_allowed(&method, &allow));
        }
        authorize(self.options.auth.as_ref(), &headers)?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Type must be application/json, not `{content_type}`")));
        }
        let (raw_len, body) = read_body(body, &headers, self.options.max_body_bytes, self.options.max_decompressed_bytes).await?;
        let batch = (self.decode)(&body, &RequestParts { uri: &uri, headers: &headers }).map_err(|e| {
            tracing::warn!(component = %self.metrics.id, error = %e, bytes = body.len(), "body refused");
            Refusal::new(StatusCode::BAD_REQUEST, e)
        })?;
        let count = batch.len();
        hand_on(|batch| self.out.try_send(batch), batch, raw_len, &self.metrics, self.acknowledgements).await?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{{\"accepted\":{count}}}")).into_response())
    }
}

/// Hand a decoded batch to the pipeline with `send` (a source's `try_send`):
/// 503 when it is full; with acknowledgements, wait until it is delivered.
/// Counts what was received.
pub async fn hand_on(send: impl FnOnce(EventBatch) -> Result<(), EventBatch>, mut events: EventBatch, bytes: usize, metrics: &ComponentMetrics, acknowledgements: bool) -> Result<(), Refusal> {
    let count = events.len();
    if count == 0 {
        return Ok(());
    }
    let status = acknowledgements.then(|| attach_finalizers(&mut events));
    if send(events).is_err() {
        return Err(Refusal::retry_later("the pipeline is full; retry later"));
    }
    ComponentMetrics::add(&metrics.received_events, count);
    ComponentMetrics::add(&metrics.received_bytes, bytes);
    match status {
        Some(status) => delivered(status, metrics, count).await,
        None => Ok(()),
    }
}

/// Wait for the outcome of a batch sent with acknowledgements: delivered,
/// or the refusal that tells the sender whether to retry.
pub async fn delivered(status: BatchStatusReceiver, metrics: &ComponentMetrics, count: usize) -> Result<(), Refusal> {
    match status.await {
        Ok(EventStatus::Delivered) => {
            ComponentMetrics::add(&metrics.acknowledged_events, count);
            Ok(())
        }
        Ok(EventStatus::Errored) => Err(Refusal::retry_later("the entries were not delivered; retry")),
        Ok(EventStatus::Rejected) | Err(_) => Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "a sink refused the entries; see tapline's log")),
    }
}

pub fn method_not_allowed(method: &Method, allow: &str) -> Refusal {
    let refusal = Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not accepted: use {allow}"));
    Refusal { header: HeaderValue::from_str(allow).ok().map(|v| (header::ALLOW, v)), ..refusal }
}

/// Check the `Authorization` header against the configured credentials.
pub fn authorize(auth: Option<&AuthConfig>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(auth) = auth else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, expected) = match (&auth.username, &auth.password, &auth.token) {
        (Some(user), Some(password), _) => ("Basic", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))),
        (_, _, Some(token)) => ("Bearer", format!("Bearer {token}")),
        _ => return Ok(()),
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Ok(());
    }
    let refusal = Refusal::new(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    Err(Refusal { header: HeaderValue::from_str(&format!("{scheme} realm=\"tapline\"")).ok().map(|v| (header::WWW_AUTHENTICATE, v)), ..refusal })
}

/// Read the whole body as sent, at most `max_body` bytes (else 413).
pub async fn read_raw(body: Body, max_body: usize) -> Result<axum::body::Bytes, Refusal> {
    axum::body::to_bytes(body, max_body).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_body_bytes ({max_body} bytes)"))
        } else {
            Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))
        }
    })
}

/// Read the whole body (at most `max_body` bytes as sent) and undo its
/// `Content-Encoding` (identity or gzip, at most `max_decompressed` bytes).
/// Returns the size as sent and the decoded body.
pub async fn read_body(body: Body, headers: &HeaderMap, max_body: usize, max_decompressed: usize) -> Result<(usize, Vec<u8>), Refusal> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity").trim().to_ascii_lowercase();
    if !matches!(encoding.as_str(), "identity" | "gzip" | "x-gzip") {
        return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Encoding `{encoding}` is not supported: send identity or gzip")));
    }
    let raw = read_raw(body, max_body).await?;
    if encoding == "identity" {
        return Ok((raw.len(), raw.to_vec()));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(max_decompressed as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
    if out.len() > max_decompressed {
        return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_decompressed_bytes ({max_decompressed} bytes) once decompressed")));
    }
    Ok((raw.len(), out))
}

/// Compare secrets without leaking, through timing, how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
