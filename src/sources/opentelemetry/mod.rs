//! `opentelemetry`: an OTLP receiver, over gRPC (default 127.0.0.1:4317) and
//! HTTP (default 127.0.0.1:4318, protobuf or JSON, also on DeepFlow's
//! `/api/v1/otel/trace`). Spans, metrics and logs leave by the named outputs
//! `ID.traces`, `ID.metrics` and `ID.logs`, as in Vector.
//!
//! Items the spec calls invalid (a span whose ids have the wrong length …)
//! are refused one by one: counted as discarded and reported in the answer's
//! partial success; the rest of the request goes on. A full pipeline is
//! answered with 503 / UNAVAILABLE and a retry delay, so SDKs and collectors
//! retry instead of losing data.

mod grpc;
mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, SourceOutputs, Task};
use crate::event::Kinds;
use crate::net::exposure_warning;
use crate::net::server::{Keepalive, Listener, Refusal, ServerAuth, ServerLimits};
use crate::net::tls::ServerTls;
use crate::otlp::{Decoded, Signal};
use crate::sources::util::http::{check_ack_timeout, hand_on, ROOM_WAIT};
use crate::telemetry::{ComponentMetrics, LogLimiter};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTelemetrySourceConfig {
    #[serde(default = "GrpcConfig::standard")]
    pub grpc: GrpcConfig,
    #[serde(default = "HttpConfig::standard")]
    pub http: HttpConfig,
    /// Largest request once decompressed, both protocols (a gzip bomb is refused).
    #[serde(default = "crate::defaults::max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Credentials every request must carry (`authorization` header or metadata).
    pub auth: Option<ServerAuth>,
    /// Connections, timeouts and memory, for each of the two servers (see `net::server::ServerLimits`).
    #[serde(default)]
    pub limits: ServerLimits,
    #[serde(default)]
    pub keepalive: Keepalive,
    /// With acknowledgements, the longest wait for delivery before a refusal
    /// (503 / UNAVAILABLE, so the SDK retries).
    #[serde(default = "crate::defaults::ack_timeout_secs")]
    pub ack_timeout_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "crate::defaults::yes")]
    pub enabled: bool,
    #[serde(default = "GrpcConfig::default_address")]
    pub address: SocketAddr,
    pub tls: Option<ServerTls>,
}

impl GrpcConfig {
    fn default_address() -> SocketAddr {
        ([127, 0, 0, 1], 4317).into()
    }

    fn standard() -> Self {
        GrpcConfig { enabled: true, address: Self::default_address(), tls: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "crate::defaults::yes")]
    pub enabled: bool,
    #[serde(default = "HttpConfig::default_address")]
    pub address: SocketAddr,
    /// Largest body as sent (compressed or not).
    #[serde(default = "crate::defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    pub tls: Option<ServerTls>,
}

impl HttpConfig {
    fn default_address() -> SocketAddr {
        ([127, 0, 0, 1], 4318).into()
    }

    fn standard() -> Self {
        HttpConfig { enabled: true, address: Self::default_address(), max_body_bytes: crate::defaults::max_body_bytes(), tls: None }
    }
}

impl SourceConfig for OpenTelemetrySourceConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![
            OutputDef::named(Signal::Traces.port(), Kinds::SPAN),
            OutputDef::named(Signal::Metrics.port(), Kinds::METRIC),
            OutputDef::named(Signal::Logs.port(), Kinds::LOG),
        ]
    }

    fn check(&self) -> Result<()> {
        if !self.grpc.enabled && !self.http.enabled {
            return Err("both `grpc` and `http` are disabled: enable at least one".into());
        }
        if self.grpc.enabled && self.http.enabled && self.grpc.address == self.http.address {
            return Err(format!("`grpc.address` and `http.address` are both {}: give each its own port", self.grpc.address).into());
        }
        if self.max_decompressed_bytes == 0 || self.http.max_body_bytes == 0 {
            return Err("`max_decompressed_bytes` and `http.max_body_bytes` must be positive".into());
        }
        for tls in [&self.grpc.tls, &self.http.tls].into_iter().flatten() {
            tls.check()?;
        }
        self.limits.check()?;
        check_ack_timeout(self.ack_timeout_secs)
    }

    fn warnings(&self) -> Vec<String> {
        let servers = [(self.grpc.enabled, self.grpc.address, &self.grpc.tls), (self.http.enabled, self.http.address, &self.http.tls)];
        servers
            .into_iter()
            .filter(|(enabled, _, _)| *enabled)
            .filter_map(|(_, address, tls)| {
                exposure_warning(address, self.auth.is_some(), tls.as_ref().is_some_and(|t| t.enabled), "send telemetry")
            })
            .collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        // Bind both now, so a taken port is a start-up error.
        let grpc = self.grpc.enabled.then(|| Listener::bind(self.grpc.address, self.grpc.tls.as_ref())).transpose()?;
        let http = self.http.enabled.then(|| Listener::bind(self.http.address, self.http.tls.as_ref())).transpose()?;
        let SourceContext { id, out, shutdown, metrics, acknowledgements, .. } = cx;
        let ingest = Arc::new(Ingest {
            out,
            metrics: metrics.clone(),
            acks: acknowledgements.then(|| Duration::from_secs_f64(self.ack_timeout_secs)),
            auth: self.auth.clone(),
            max_decompressed_bytes: self.max_decompressed_bytes,
            invalid_log: LogLimiter::new(Duration::from_secs(10)),
        });
        let mut servers: Vec<Task> = Vec::new();
        if let Some(listener) = grpc {
            tracing::info!(component = %id, address = %self.grpc.address, scheme = listener.scheme(), "OTLP/gRPC listening");
            let (mut stop, metrics, limits, keepalive) = (shutdown.clone(), metrics.clone(), self.limits.clone(), self.keepalive.clone());
            let router = grpc::router(ingest.clone());
            servers.push(Box::pin(async move {
                listener.serve(router, &limits, &keepalive, metrics, async move { stop.triggered().await }).await
            }));
        }
        if let Some(listener) = http {
            tracing::info!(component = %id, address = %self.http.address, scheme = listener.scheme(), "OTLP/HTTP listening");
            let (mut stop, metrics, limits, keepalive) = (shutdown.clone(), metrics.clone(), self.limits.clone(), self.keepalive.clone());
            let router = http::router(ingest, self.http.max_body_bytes);
            servers.push(Box::pin(async move {
                listener.serve(router, &limits, &keepalive, metrics, async move { stop.triggered().await }).await
            }));
        }
        Ok(Box::pin(async move { futures_util::future::try_join_all(servers).await.map(|_| ()) }))
    }
}

/// What both servers share: where events go, and the limits.
struct Ingest {
    out: SourceOutputs,
    metrics: Arc<ComponentMetrics>,
    /// With acknowledgements: how long to wait for delivery.
    acks: Option<Duration>,
    auth: Option<ServerAuth>,
    max_decompressed_bytes: usize,
    invalid_log: LogLimiter,
}

impl Ingest {
    /// Hand the decoded events on: `Err` when the pipeline is full, or (with
    /// acknowledgements) when they were not delivered.
    async fn accept(&self, signal: Signal, decoded: Decoded, bytes: usize) -> Result<(), Refusal> {
        let Decoded { events, rejected, error } = decoded;
        if rejected > 0 {
            ComponentMetrics::add(&self.metrics.discarded_events, rejected as usize);
            if let Some(suppressed) = self.invalid_log.allow(signal as u32) {
                tracing::warn!(component = %self.metrics.id, rejected, items = signal.items(), error = error.as_deref().unwrap_or_default(), suppressed, "refused invalid items (the sender is told in partial_success)");
            }
        }
        hand_on(|events| self.out.send_within_to(signal.port(), events, ROOM_WAIT), events, bytes, &self.metrics, self.acks).await
    }
}

/// The gRPC code that matches an HTTP refusal.
fn grpc_code(status: StatusCode) -> tonic::Code {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => tonic::Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => tonic::Code::Unimplemented,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    }
}
