//! `prometheus_remote_write`: receives Prometheus remote write 1.0 and 2.0
//! (snappy block + protobuf) on `/api/v1/write` (the path is an option) and
//! on DeepFlow's `/api/v1/prometheus`. Samples become metric events (see
//! `crate::prometheus`).
//!
//! Answers as the spec asks: 204 once the samples are in the pipeline (with
//! acknowledgements: delivered), with the `X-Prometheus-Remote-Write-*-Written`
//! counts; 400 for data that will never be taken (the sender drops it);
//! 415 for a content type or encoding it does not speak; 413 over the limits;
//! 503 + `Retry-After` when the pipeline is full (the sender retries).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;
use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, SourceOutputs, Task};
use crate::event::Kinds;
use crate::net::exposure_warning;
use crate::net::server::{
    authorize, content_type, method_not_allowed, read_raw, InFlight, Keepalive, Listener, Refusal, ServerAuth, ServerLimits,
};
use crate::net::tls::ServerTls;
use crate::prometheus::proto::{v1, v2};
use crate::prometheus::{decode_v1, decode_v2, Types};
use crate::sources::util::http::{hand_on, ServerOptions, ROOM_WAIT};
use crate::telemetry::ComponentMetrics;

/// DeepFlow's agent takes remote write here.
const DEEPFLOW_PATH: &str = "/api/v1/prometheus";
/// Framed snappy starts so; remote write is the block format.
const FRAMED_SNAPPY: &[u8] = b"\xff\x06\x00\x00sNaPpY";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusRemoteWriteSourceConfig {
    /// Where to listen, e.g. `0.0.0.0:9090`.
    pub address: SocketAddr,
    #[serde(default = "default_path")]
    pub path: String,
    /// Largest body as sent (snappy-compressed).
    #[serde(default = "crate::defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest body once decompressed (read from the snappy header before decompressing).
    #[serde(default = "crate::defaults::max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    pub auth: Option<ServerAuth>,
    pub tls: Option<ServerTls>,
    /// Connections, timeouts and memory (see `net::server::ServerLimits`).
    #[serde(default)]
    pub limits: ServerLimits,
    #[serde(default)]
    pub keepalive: Keepalive,
    /// With acknowledgements, the longest wait for delivery before a 503.
    #[serde(default = "crate::defaults::ack_timeout_secs")]
    pub ack_timeout_secs: f64,
}

fn default_path() -> String {
    "/api/v1/write".into()
}

impl SourceConfig for PrometheusRemoteWriteSourceConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::METRIC)]
    }

    fn check(&self) -> Result<()> {
        let options = ServerOptions {
            address: self.address,
            path: self.path.clone(),
            strict_path: true,
            method: Some(Method::POST),
            max_body_bytes: self.max_body_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            auth: self.auth.clone(),
            tls: self.tls.clone(),
            limits: self.limits.clone(),
            keepalive: self.keepalive.clone(),
            ack_timeout_secs: self.ack_timeout_secs,
            json_only: false,
        };
        options.check()
    }

    fn warnings(&self) -> Vec<String> {
        let tls = self.tls.as_ref().is_some_and(|t| t.enabled);
        exposure_warning(self.address, self.auth.is_some(), tls, "write samples").into_iter().collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let listener = Listener::bind(self.address, self.tls.as_ref())?;
        let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
        tracing::info!(component = %id, address = %self.address, path = %self.path, scheme = listener.scheme(), "remote write listening");
        let acks = acknowledgements.then(|| Duration::from_secs_f64(self.ack_timeout_secs));
        let receiver = Arc::new(Receiver { config: self.clone(), out, metrics: metrics.clone(), acks, types: Types::default() });
        let app = Router::new().fallback(receive).with_state(receiver);
        let (limits, keepalive) = (self.limits.clone(), self.keepalive.clone());
        Ok(Box::pin(async move { listener.serve(app, &limits, &keepalive, metrics, async move { shutdown.triggered().await }).await }))
    }
}

struct Receiver {
    config: PrometheusRemoteWriteSourceConfig,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    /// With acknowledgements: how long to wait for delivery.
    acks: Option<Duration>,
    types: Types,
}

/// The two protocol versions, told apart by the content type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

async fn receive(State(receiver): State<Arc<Receiver>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match receiver.handle(parts, body).await {
        Ok(response) => response,
        // The server logs the refusal, rate-limited.
        Err(refusal) => {
            ComponentMetrics::add(&receiver.metrics.errors, 1);
            refusal.into_response()
        }
    }
}

fn version(headers: &HeaderMap) -> Result<Version, Refusal> {
    let content_type = content_type(headers)?;
    let mut parts = content_type.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or("");
    let proto = parts.find_map(|p| p.strip_prefix("proto=")).map(|p| p.trim_matches('"'));
    match (media_type.eq_ignore_ascii_case("application/x-protobuf"), proto) {
        (true, None | Some("prometheus.WriteRequest")) => Ok(Version::V1),
        (true, Some("io.prometheus.write.v2.Request")) => Ok(Version::V2),
        _ => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type `{content_type}` is not remote write: send application/x-protobuf (1.0) or application/x-protobuf;proto=io.prometheus.write.v2.Request (2.0)"),
        )),
    }
}

impl Receiver {
    async fn handle(&self, parts: Parts, body: Body) -> Result<Response, Refusal> {
        let Parts { method, uri, headers, extensions, .. } = parts;
        if uri.path() != self.config.path && uri.path() != DEEPFLOW_PATH {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no remote write endpoint at {}; use {}", uri.path(), self.config.path),
            ));
        }
        if method != Method::POST {
            return Err(method_not_allowed(&method, "POST"));
        }
        authorize(self.config.auth.as_ref(), &headers)?;
        let version = version(&headers)?;
        let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !encoding.eq_ignore_ascii_case("snappy") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding `{encoding}` is not supported: remote write is snappy (block format)"),
            ));
        }
        let raw = read_raw(body, &headers, self.config.max_body_bytes).await?;
        let body = self.unsnappy(&raw, extensions.get::<InFlight>())?;
        let decoded = match version {
            Version::V1 => v1::WriteRequest::decode(&body[..])
                .map_err(|e| format!("invalid remote write 1.0 protobuf: {e}"))
                .and_then(|r| decode_v1(r, &self.types)),
            Version::V2 => {
                v2::Request::decode(&body[..]).map_err(|e| format!("invalid remote write 2.0 protobuf: {e}")).and_then(decode_v2)
            }
        }
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e))?;
        let written = [("samples", decoded.samples), ("histograms", decoded.histograms), ("exemplars", decoded.exemplars)];
        hand_on(|events| self.out.send_within(events, ROOM_WAIT), decoded.events, raw.len(), &self.metrics, self.acks).await?;
        let mut response = StatusCode::NO_CONTENT.into_response();
        for (what, count) in written {
            let name = format!("x-prometheus-remote-write-{what}-written");
            if let Ok(name) = header::HeaderName::try_from(name) {
                response.headers_mut().insert(name, HeaderValue::from(count));
            }
        }
        Ok(response)
    }

    /// Undo the snappy block format, refusing to grow past the limit (the
    /// block states its length up front) and framed snappy (a common mistake).
    fn unsnappy(&self, raw: &[u8], in_flight: Option<&InFlight>) -> Result<Vec<u8>, Refusal> {
        if raw.starts_with(FRAMED_SNAPPY) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "the body is framed snappy; remote write uses the snappy block format"));
        }
        let length =
            snap::raw::decompress_len(raw).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not snappy: {e}")))?;
        let limit = self.config.max_decompressed_bytes;
        if length > limit {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than max_decompressed_bytes ({limit} bytes) once decompressed ({length} bytes)"),
            ));
        }
        if let Some(held) = in_flight {
            held.take(length)?;
        }
        snap::raw::Decoder::new()
            .decompress_vec(raw)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not snappy: {e}")))
    }
}
