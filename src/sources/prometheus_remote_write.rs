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

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;
use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, SourceOutputs, Task};
use crate::event::Kinds;
use crate::net::server::{authorize, method_not_allowed, read_raw, Listener, Refusal, ServerAuth};
use crate::net::tls::ServerTls;
use crate::prometheus::proto::{v1, v2};
use crate::prometheus::{decode_v1, decode_v2, Types};
use crate::sources::util::http::{hand_on, ServerOptions};
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
        };
        options.check()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let listener = Listener::bind(self.address, self.tls.as_ref())?;
        let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
        tracing::info!(component = %id, address = %self.address, path = %self.path, scheme = listener.scheme(), "remote write listening");
        let receiver = Arc::new(Receiver { config: self.clone(), out, metrics, acknowledgements, types: Types::default() });
        let app = Router::new().fallback(receive).with_state(receiver);
        Ok(Box::pin(async move { listener.serve(app, async move { shutdown.triggered().await }).await }))
    }
}

struct Receiver {
    config: PrometheusRemoteWriteSourceConfig,
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    acknowledgements: bool,
    types: Types,
}

/// The two protocol versions, told apart by the content type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

async fn receive(State(receiver): State<Arc<Receiver>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    match receiver.handle(method, uri, headers, body).await {
        Ok(response) => response,
        Err(refusal) => {
            ComponentMetrics::add(&receiver.metrics.errors, 1);
            if refusal.status == StatusCode::BAD_REQUEST {
                tracing::warn!(component = %receiver.metrics.id, error = %refusal.message, "remote write refused");
            }
            refusal.into_response()
        }
    }
}

fn version(headers: &HeaderMap) -> Result<Version, Refusal> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
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
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response, Refusal> {
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
        let raw = read_raw(body, self.config.max_body_bytes).await?;
        let body = self.unsnappy(&raw)?;
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
        hand_on(|events| self.out.try_send(events), decoded.events, raw.len(), &self.metrics, self.acknowledgements).await?;
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
    fn unsnappy(&self, raw: &[u8]) -> Result<Vec<u8>, Refusal> {
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
        snap::raw::Decoder::new()
            .decompress_vec(raw)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not snappy: {e}")))
    }
}
