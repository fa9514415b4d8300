//! OTLP/gRPC: the three collector services (tonic), gzip accepted and
//! answered, served by the same listener code as the HTTP sources.
//!
//! tonic refuses by itself what it cannot read: a message over the size
//! limit, or one that grows past it while decompressing (RESOURCE_EXHAUSTED),
//! protobuf that does not decode (INTERNAL). A layer counts and logs those
//! refusals with ours.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{grpc_code, Ingest};
use crate::net::server::{authorize, BodyLimit, Refusal};
use crate::otlp::{logs, metrics, rpc, traces, Signal};
use crate::telemetry::{ComponentMetrics, LogLimiter};

#[derive(Clone)]
struct Services {
    ingest: Arc<Ingest>,
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    let limit = ingest.max_decompressed_bytes;
    let metrics = ingest.metrics.clone();
    let services = Services { ingest };
    tonic::service::Routes::new(
        TraceServiceServer::new(services.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
    )
    .add_service(
        MetricsServiceServer::new(services.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
    )
    .add_service(
        LogsServiceServer::new(services)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
    )
    .into_axum_router()
    .layer(axum::middleware::map_response_with_state(Arc::new((metrics, LogLimiter::new(Duration::from_secs(10)))), count_refusals))
}

/// Count every refused call, tonic's own (undecodable, too large) and ours,
/// and log it (rate-limited): a call that fails before answering carries its
/// status in the headers. tonic says OUT_OF_RANGE for a message over the
/// limit, which OTLP clients retry: it becomes RESOURCE_EXHAUSTED without a
/// retry delay, which they do not. A body cut short by the receiver's byte
/// budget (tonic says UNKNOWN) becomes UNAVAILABLE, which they retry.
async fn count_refusals(
    State(watch): State<Arc<(Arc<ComponentMetrics>, LogLimiter)>>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    let (metrics, log) = &*watch;
    if let Some(status) = Status::from_header_map(response.headers()).filter(|s| s.code() != tonic::Code::Ok) {
        ComponentMetrics::add(&metrics.errors, 1);
        if let Some(suppressed) = log.allow(status.code() as u32) {
            tracing::warn!(component = %metrics.id, code = ?status.code(), message = status.message(), suppressed, "OTLP/gRPC call refused");
        }
        let code = match status.code() {
            tonic::Code::OutOfRange => Some(tonic::Code::ResourceExhausted),
            tonic::Code::Unknown if status.message().contains(&BodyLimit::Busy.to_string()) => Some(tonic::Code::Unavailable),
            _ => None,
        };
        if let Some(code) = code {
            response.headers_mut().insert("grpc-status", axum::http::HeaderValue::from(code as i32));
        }
    }
    response
}

impl Services {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        authorize(self.ingest.auth.as_ref(), request.metadata().as_ref()).map_err(|refusal| self.refused(refusal))
    }

    async fn accept(&self, signal: Signal, decoded: crate::otlp::Decoded, bytes: usize) -> Result<(), Status> {
        self.ingest.accept(signal, decoded, bytes).await.map_err(|refusal| self.refused(refusal))
    }

    /// A refusal as a gRPC status; one that asks to retry carries `RetryInfo`.
    fn refused(&self, refusal: Refusal) -> Status {
        let code = grpc_code(refusal.status);
        if code == tonic::Code::Unavailable {
            let details = rpc::retry_details(code, &refusal.message, Duration::from_secs(1));
            return Status::with_details(code, refusal.message, details.into());
        }
        Status::new(code, refusal.message)
    }
}

#[tonic::async_trait]
impl TraceService for Services {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let bytes = request.encoded_len();
        let decoded = traces::decode(request);
        let response = traces::response(&decoded);
        self.accept(Signal::Traces, decoded, bytes).await?;
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl MetricsService for Services {
    async fn export(&self, request: Request<ExportMetricsServiceRequest>) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let bytes = request.encoded_len();
        let decoded = metrics::decode(request);
        let response = metrics::response(&decoded);
        self.accept(Signal::Metrics, decoded, bytes).await?;
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl LogsService for Services {
    async fn export(&self, request: Request<ExportLogsServiceRequest>) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let bytes = request.encoded_len();
        let decoded = logs::decode(request);
        let response = logs::response(&decoded);
        self.accept(Signal::Logs, decoded, bytes).await?;
        Ok(Response::new(response))
    }
}
