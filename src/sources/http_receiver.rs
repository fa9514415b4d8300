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
use crate::event::{EventBatch, EventStatus};
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
    let listener = std::net::TcpListener::bind(options.address).map_err(|e| format!("cannot listen on {}: {e}", options.address))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let acceptor = match &options.tls {
        Some(tls) => tls.acceptor()?,
        None => None,
    };
    let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
    let receiver = Arc::new(Receiver { options, decode, out, metrics, acknowledgements });
    Ok(Box::pin(async move {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        tracing::info!(component = %id, address = %receiver.options.address, path = %receiver.options.path, scheme, "listening");
        let app = Router::new().fallback(receive).with_state(receiver);
        let stop = async move { shutdown.triggered().await };
        let served = match acceptor {
            Some(acceptor) => axum::serve(TlsListener::new(listener, acceptor).map_err(|e| e.to_string())?, app).with_graceful_shutdown(stop).await,
            None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        };
        served.map_err(|e| format!("HTTP server failed: {e}"))
    }))
}

struct Receiver {
    options: ServerOptions,
    decode: BodyDecoder,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    acknowledgements: bool,
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into() + "\n").into_response()
}

fn retry_later(message: &str) -> Response {
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn receive(State(receiver): State<Arc<Receiver>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    match receiver.handle(method, uri, headers, body).await {
        Ok(response) => response,
        Err(response) => {
            ComponentMetrics::add(&receiver.metrics.errors, 1);
            response
        }
    }
}

impl Receiver {
    /// `Err` is a refused request (counted as an error).
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response, Response> {
        let path_ok = if self.options.strict_path { uri.path() == self.options.path } else { uri.path().starts_with(&self.options.path) };
        if !path_ok {
            return Err(answer(StatusCode::NOT_FOUND, format!("no log endpoint at {}; Kong's http_endpoint should end in {}", uri.path(), self.options.path)));
        }
        let allowed = match &self.options.method {
            Some(only) => method == *only,
            None => matches!(method, Method::POST | Method::PUT | Method::PATCH),
        };
        if !allowed {
            let allow = self.options.method.as_ref().map_or("POST, PUT, PATCH".to_string(), Method::to_string);
            let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not accepted: use {allow}"));
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            return Err(response);
        }
        self.authorize(&headers)?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Type must be application/json, not `{content_type}`")));
        }
        let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity").trim().to_ascii_lowercase();
        if !matches!(encoding.as_str(), "identity" | "gzip" | "x-gzip") {
            return Err(answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Encoding `{encoding}` is not supported: send identity or gzip")));
        }
        let raw = axum::body::to_bytes(body, self.options.max_body_bytes).await.map_err(|e| {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                answer(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_body_bytes ({} bytes)", self.options.max_body_bytes))
            } else {
                answer(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))
            }
        })?;
        let body = if encoding == "identity" { raw.to_vec() } else { self.gunzip(&raw)? };
        let mut batch = (self.decode)(&body, &RequestParts { uri: &uri, headers: &headers }).map_err(|e| {
            tracing::warn!(component = %self.metrics.id, error = %e, bytes = body.len(), "body refused");
            answer(StatusCode::BAD_REQUEST, e)
        })?;
        let count = batch.len();
        let status = self.acknowledgements.then(|| attach_finalizers(&mut batch));
        if self.out.try_send(batch).is_err() {
            return Err(retry_later("the pipeline is full; retry later"));
        }
        ComponentMetrics::add(&self.metrics.received_events, count);
        ComponentMetrics::add(&self.metrics.received_bytes, raw.len());
        if let Some(status) = status {
            match status.await {
                Ok(EventStatus::Delivered) => ComponentMetrics::add(&self.metrics.acknowledged_events, count),
                Ok(EventStatus::Errored) => return Err(retry_later("the entries were not delivered; retry")),
                Ok(EventStatus::Rejected) | Err(_) => {
                    return Err(answer(StatusCode::INTERNAL_SERVER_ERROR, "a sink refused the entries; see tapline's log"));
                }
            }
        }
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{{\"accepted\":{count}}}")).into_response())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(auth) = &self.options.auth else { return Ok(()) };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (scheme, expected) = match (&auth.username, &auth.password, &auth.token) {
            (Some(user), Some(password), _) => {
                ("Basic", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
            }
            (_, _, Some(token)) => ("Bearer", format!("Bearer {token}")),
            _ => return Ok(()),
        };
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Ok(());
        }
        let mut response = answer(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
        if let Ok(challenge) = HeaderValue::from_str(&format!("{scheme} realm=\"tapline\"")) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        Err(response)
    }

    /// Decompress, refusing to grow past `max_decompressed_bytes`.
    fn gunzip(&self, raw: &[u8]) -> Result<Vec<u8>, Response> {
        let limit = self.options.max_decompressed_bytes;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| answer(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
        if out.len() > limit {
            return Err(answer(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_decompressed_bytes ({limit} bytes) once decompressed")));
        }
        Ok(out)
    }
}

/// Compare secrets without leaking, through timing, how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
