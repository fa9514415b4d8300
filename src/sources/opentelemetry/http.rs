//! OTLP/HTTP: POST protobuf or JSON to /v1/traces, /v1/metrics, /v1/logs
//! (and DeepFlow's /api/v1/otel/trace). The answer is in the request's
//! encoding: the Export*ServiceResponse on 200, a google.rpc.Status otherwise.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::{grpc_code, Ingest};
use crate::net::server::{authorize, content_type, method_not_allowed, read_body, InFlight, Refusal};
use crate::otlp::rpc::RpcStatus;
use crate::otlp::{logs, metrics, traces, Encoding, Signal};
use crate::telemetry::ComponentMetrics;

struct Server {
    ingest: Arc<Ingest>,
    max_body_bytes: usize,
}

pub fn router(ingest: Arc<Ingest>, max_body_bytes: usize) -> Router {
    Router::new().fallback(receive).with_state(Arc::new(Server { ingest, max_body_bytes }))
}

fn signal(path: &str) -> Option<Signal> {
    match path {
        "/v1/traces" | "/api/v1/otel/trace" => Some(Signal::Traces),
        "/v1/metrics" => Some(Signal::Metrics),
        "/v1/logs" => Some(Signal::Logs),
        _ => None,
    }
}

fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let content_type = content_type(headers).ok()?;
    let media_type = content_type.split(';').next()?.trim();
    if media_type.eq_ignore_ascii_case("application/x-protobuf") || media_type.eq_ignore_ascii_case("application/protobuf") {
        Some(Encoding::Protobuf)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

async fn receive(State(server): State<Arc<Server>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Parts { method, uri, headers, extensions, .. } = parts;
    // The answer's encoding is the request's; protobuf when that is unknown.
    let encoding = encoding(&headers);
    match server.handle(method, &uri, &headers, extensions.get::<InFlight>(), encoding, body).await {
        Ok(response) => response,
        Err(refusal) => {
            ComponentMetrics::add(&server.ingest.metrics.errors, 1);
            let encoding = encoding.unwrap_or(Encoding::Protobuf);
            let status = RpcStatus { code: grpc_code(refusal.status) as i32, message: refusal.message.clone(), details: Vec::new() };
            refusal.into_response_with(encoding.content_type(), encoding.encode(&status))
        }
    }
}

impl Server {
    async fn handle(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        in_flight: Option<&InFlight>,
        encoding: Option<Encoding>,
        body: Body,
    ) -> Result<Response, Refusal> {
        let Some(signal) = signal(uri.path()) else {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no OTLP endpoint at {}: use /v1/traces, /v1/metrics or /v1/logs", uri.path()),
            ));
        };
        if method != Method::POST {
            return Err(method_not_allowed(&method, "POST"));
        }
        authorize(self.ingest.auth.as_ref(), headers)?;
        let Some(encoding) = encoding else {
            let given = content_type(headers)?;
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be application/x-protobuf or application/json, not `{given}`"),
            ));
        };
        let (sent, body) = read_body(body, headers, in_flight, self.max_body_bytes, self.ingest.max_decompressed_bytes).await?;
        // The server logs the refusal, rate-limited.
        let bad = |e: String| Refusal::new(StatusCode::BAD_REQUEST, e);
        let (decoded, answer) = match signal {
            Signal::Traces => {
                let decoded = traces::decode(encoding.decode(&body).map_err(bad)?);
                let answer = encoding.encode(&traces::response(&decoded));
                (decoded, answer)
            }
            Signal::Metrics => {
                let decoded = metrics::decode(encoding.decode(&body).map_err(bad)?);
                let answer = encoding.encode(&metrics::response(&decoded));
                (decoded, answer)
            }
            Signal::Logs => {
                let decoded = logs::decode(encoding.decode(&body).map_err(bad)?);
                let answer = encoding.encode(&logs::response(&decoded));
                (decoded, answer)
            }
        };
        self.ingest.accept(signal, decoded, sent).await?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], answer).into_response())
    }
}
