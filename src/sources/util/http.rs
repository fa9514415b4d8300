//! The HTTP receiver behind `kong_http_log` and Vector's `http_server`:
//! limits, auth, gzip, backpressure and acknowledgement, the same for both;
//! only the way a body becomes events differs.
//!
//! Answers, so that a sender such as Kong neither loses nor duplicates logs:
//! - 200 once the batch is in the pipeline (with acknowledgements: once delivered);
//! - 503 + `Retry-After` when the pipeline is full, or delivery failed: the sender retries;
//! - 400 for a body that cannot be decoded: the whole body is refused, none of
//!   its entries enter the pipeline (the error says where);
//! - 401 bad credentials, 404 other path, 405 other method, 413 too large
//!   (before or after gzip), 415 not JSON or an unknown encoding.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::component::{attach_finalizers, Result, SourceContext, SourceOutputs, Task};
use crate::event::{BatchStatusReceiver, EventBatch, EventStatus};
use crate::net::server::{authorize, method_not_allowed, read_body, Listener, Refusal, ServerAuth};
use crate::net::tls::ServerTls;
use crate::telemetry::ComponentMetrics;

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
    pub auth: Option<ServerAuth>,
    pub tls: Option<ServerTls>,
}

impl ServerOptions {
    pub fn check(&self) -> Result<()> {
        if !self.path.starts_with('/') {
            return Err(format!("`path` must start with `/`: `{}`", self.path).into());
        }
        if self.max_body_bytes == 0 || self.max_decompressed_bytes == 0 {
            return Err("`max_body_bytes` and `max_decompressed_bytes` must be positive".into());
        }
        self.tls.as_ref().map_or(Ok(()), ServerTls::check)?;
        Ok(())
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
pub fn serve(options: ServerOptions, decode: BodyDecoder, cx: SourceContext) -> Result<Task> {
    let listener = Listener::bind(options.address, options.tls.as_ref())?;
    let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
    tracing::info!(component = %id, address = %options.address, path = %options.path, scheme = listener.scheme(), "listening");
    let receiver = Arc::new(Receiver { options, decode, out, metrics, acknowledgements });
    let app = Router::new().fallback(receive).with_state(receiver);
    Ok(Box::pin(async move { listener.serve(app, async move { shutdown.triggered().await }).await }))
}

struct Receiver {
    options: ServerOptions,
    decode: BodyDecoder,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    acknowledgements: bool,
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
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no log endpoint at {}; Kong's http_endpoint should end in {}", uri.path(), self.options.path),
            ));
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
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be application/json, not `{content_type}`"),
            ));
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
pub async fn hand_on(
    send: impl FnOnce(EventBatch) -> Result<(), EventBatch>,
    mut events: EventBatch,
    bytes: usize,
    metrics: &ComponentMetrics,
    acknowledgements: bool,
) -> Result<(), Refusal> {
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
        Ok(EventStatus::Rejected) | Err(_) => {
            Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "a sink refused the entries; see tapline's log"))
        }
    }
}
