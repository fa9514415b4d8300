//! The HTTP receiver behind `kong_http_log` and Vector's `http_server`:
//! limits, auth, gzip, backpressure and acknowledgement, the same for both;
//! only the way a body becomes events differs.
//!
//! Answers, so that a sender such as Kong neither loses nor duplicates logs:
//! - 200 once the batch is in the pipeline (with acknowledgements: once delivered);
//! - 503 + `Retry-After` when the pipeline stayed full for `ROOM_WAIT`, or
//!   delivery failed: the sender retries;
//! - 400 for a body that cannot be decoded: the whole body is refused, none of
//!   its entries enter the pipeline (the error says where);
//! - 401 bad credentials, 404 other path, 405 other method, 408 a body too
//!   slow to arrive, 413 too large (declared, sent or decompressed), 415 not
//!   JSON (`kong_http_log`) or an unknown encoding, 400 two `Content-Type` headers;
//! - with acknowledgements, 503 when delivery took longer than
//!   `ack_timeout_secs`: the batch is then withdrawn (dropped wherever it
//!   waits, counted), so the sender's retry does not deliver it twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::component::{attach_withdrawable, Result, SourceContext, SourceOutputs, Task};
use crate::event::{BatchStatusReceiver, EventBatch, EventStatus, Withdraw};
use crate::net::server::{
    authorize, content_type, method_not_allowed, read_body, InFlight, Keepalive, Listener, Refusal, ServerAuth, ServerLimits,
};
use crate::net::tls::ServerTls;
use crate::telemetry::ComponentMetrics;

/// How long a decoded batch waits for room downstream before the answer is
/// 503: a burst passes without the sender resending (and this receiver
/// decoding) the body again, while the wait stays short of a sender's timeout
/// (Kong's http-log: 10 s).
pub const ROOM_WAIT: Duration = Duration::from_secs(1);

/// Own counter of the HTTP sources: requests answered 503 because delivery
/// took longer than `ack_timeout_secs` (their batches withdrawn).
pub const ACK_TIMEOUTS: &str = "http_ack_timeouts_total";

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
    pub limits: ServerLimits,
    pub keepalive: Keepalive,
    /// With acknowledgements, how long a request waits for delivery.
    pub ack_timeout_secs: f64,
    /// Refuse a body not declared `application/json` (415). Vector's
    /// `http_server` takes any Content-Type; Kong always sends JSON.
    pub json_only: bool,
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
        self.limits.check()?;
        check_ack_timeout(self.ack_timeout_secs)
    }
}

pub fn check_ack_timeout(ack_timeout_secs: f64) -> Result<()> {
    if ack_timeout_secs.is_nan() || ack_timeout_secs <= 0.0 {
        return Err("`ack_timeout_secs` must be positive".into());
    }
    Ok(())
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
    let acks = acknowledgements.then(|| Duration::from_secs_f64(options.ack_timeout_secs));
    let (limits, keepalive) = (options.limits.clone(), options.keepalive.clone());
    let receiver = Arc::new(Receiver { options, decode, out, metrics: metrics.clone(), acks });
    let app = Router::new().fallback(receive).with_state(receiver);
    Ok(Box::pin(async move { listener.serve(app, &limits, &keepalive, metrics, async move { shutdown.triggered().await }).await }))
}

struct Receiver {
    options: ServerOptions,
    decode: BodyDecoder,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    /// With acknowledgements: how long to wait for delivery.
    acks: Option<Duration>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match receiver.handle(parts, body).await {
        Ok(response) => response,
        Err(refusal) => {
            ComponentMetrics::add(&receiver.metrics.errors, 1);
            refusal.into_response()
        }
    }
}

impl Receiver {
    async fn handle(&self, parts: Parts, body: Body) -> Result<Response, Refusal> {
        let Parts { method, uri, headers, extensions, .. } = parts;
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
        let content_type = content_type(&headers)?;
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if self.options.json_only && !media_type.eq_ignore_ascii_case("application/json") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be application/json, not `{content_type}`"),
            ));
        }
        let in_flight = extensions.get::<InFlight>();
        let (raw_len, body) =
            read_body(body, &headers, in_flight, self.options.max_body_bytes, self.options.max_decompressed_bytes).await?;
        // The refusal is logged (rate-limited) with its message by the server.
        let batch =
            (self.decode)(&body, &RequestParts { uri: &uri, headers: &headers }).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e))?;
        let count = batch.len();
        hand_on(|batch| self.out.send_within(batch, ROOM_WAIT), batch, raw_len, &self.metrics, self.acks).await?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{{\"accepted\":{count}}}")).into_response())
    }
}

/// Hand a decoded batch to the pipeline with `send` (a source's
/// `send_within`): 503 when it stays full. With acknowledgements (`acks`: how
/// long to wait), wait until it is delivered; past the wait, withdraw it and
/// answer 503. Counts what was received.
pub async fn hand_on<Sent: std::future::Future<Output = Result<(), EventBatch>>>(
    send: impl FnOnce(EventBatch) -> Sent,
    mut events: EventBatch,
    bytes: usize,
    metrics: &ComponentMetrics,
    acks: Option<Duration>,
) -> Result<(), Refusal> {
    let count = events.len();
    if count == 0 {
        return Ok(());
    }
    let tracked = acks.map(|wait| (attach_withdrawable(&mut events), wait));
    if send(events).await.is_err() {
        return Err(Refusal::retry_later("the pipeline is full; retry later"));
    }
    ComponentMetrics::add(&metrics.received_events, count);
    ComponentMetrics::add(&metrics.received_bytes, bytes);
    let Some(((status, withdraw), wait)) = tracked else { return Ok(()) };
    // The sender retries unless told "delivered": if it goes away first (its
    // own timeout, the connection's), what still waits must not be delivered too.
    let mut unanswered = WithdrawUnlessAnswered(Some(withdraw));
    match tokio::time::timeout(wait, delivered(status, metrics, count)).await {
        Ok(answer) => {
            unanswered.0 = None;
            answer
        }
        Err(_) => {
            metrics.add_own(ACK_TIMEOUTS, 1);
            Err(Refusal::retry_later(&format!(
                "the entries were not delivered within ack_timeout_secs ({} s) and were withdrawn; retry",
                wait.as_secs_f64()
            )))
        }
    }
}

/// Withdraws its batch when dropped before the outcome came.
struct WithdrawUnlessAnswered(Option<Withdraw>);

impl Drop for WithdrawUnlessAnswered {
    fn drop(&mut self) {
        if let Some(withdraw) = self.0.take() {
            withdraw.withdraw();
        }
    }
}

/// Wait for the outcome of a batch sent with acknowledgements: delivered,
/// or the refusal that tells the sender whether to retry.
async fn delivered(status: BatchStatusReceiver, metrics: &ComponentMetrics, count: usize) -> Result<(), Refusal> {
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
