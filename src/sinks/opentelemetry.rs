//! `opentelemetry`: sends spans, metrics and logs to an OTLP receiver over
//! gRPC or HTTP (protobuf or JSON). Request records go as spans (see
//! `Span::from_record`), so Kong and eBPF data reach any OTLP
//! backend.
//!
//! Each signal is batched apart. A failed request is retried as the OTLP
//! spec says: gRPC UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED,
//! OUT_OF_RANGE, DATA_LOSS (and RESOURCE_EXHAUSTED with a retry delay);
//! HTTP 429, 502, 503, 504 and network errors; waiting at least the delay
//! the server asks for (RetryInfo, Retry-After). Anything else is final: the
//! events are counted as discarded. Items the receiver refuses in a partial
//! success are counted as discarded too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::component::{with_causes, Context, Reporter, Result, SinkConfig, SinkContext, Task};
use crate::event::{Event, EventData, Kinds};
use crate::net::client::{
    gzip, has_credentials, header_map, http_client, redact_url, take_url_credentials, Backoff, Compression, RequestConfig,
};
use crate::net::tls::ClientTls;
use crate::otlp::rpc::{retry_delay, RpcStatus};
use crate::otlp::{logs, metrics, traces, Encoding, Signal};
use crate::sinks::util::{run_batches, BatchConfig, BatchLimits};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTelemetrySinkConfig {
    /// gRPC: the server, `http://host:4317`. HTTP: the base URL,
    /// `http://host:4318`, to which `/v1/traces`, `/v1/metrics`, `/v1/logs` are added.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: Protocol,
    /// HTTP only: a signal's whole URL, used as it is (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    #[serde(default)]
    pub compression: Compression,
    /// Sent with every request (HTTP headers, gRPC metadata), e.g. `authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Items per request (default 1000; receivers limit a request's size,
    /// 4 MiB is gRPC's usual default: lower it for large spans) and the longest wait.
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub request: RequestConfig,
    #[serde(default)]
    pub tls: ClientTls,
}

/// The values of OTEL_EXPORTER_OTLP_PROTOCOL.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OpenTelemetrySinkConfig {
    fn url(&self, signal: Signal) -> String {
        let own = match signal {
            Signal::Traces => &self.traces_endpoint,
            Signal::Metrics => &self.metrics_endpoint,
            Signal::Logs => &self.logs_endpoint,
        };
        own.clone().unwrap_or_else(|| format!("{}{}", self.endpoint.trim_end_matches('/'), signal.path()))
    }

    fn http_headers(&self) -> Result<HeaderMap, String> {
        header_map(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl SinkConfig for OpenTelemetrySinkConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn check(&self) -> Result<()> {
        let endpoints = [Some(&self.endpoint), self.traces_endpoint.as_ref(), self.metrics_endpoint.as_ref(), self.logs_endpoint.as_ref()];
        for url in endpoints.into_iter().flatten() {
            let shown = redact_url(url);
            let parsed: axum::http::Uri = url.parse().map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) {
                return Err(format!("`{shown}`: the endpoint must start with http:// or https://").into());
            }
        }
        if self.protocol == Protocol::Grpc
            && (self.traces_endpoint.is_some() || self.metrics_endpoint.is_some() || self.logs_endpoint.is_some())
        {
            return Err(
                "`traces_endpoint`, `metrics_endpoint` and `logs_endpoint` are for HTTP; with gRPC, `endpoint` serves all signals".into()
            );
        }
        self.batch.limits(BatchLimits::EVENTS_AND_TIME)?;
        self.http_headers()?;
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        let authorized = self.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"));
        if authorized && has_credentials(&self.endpoint) {
            return vec![
                "`endpoint` holds credentials and `headers.authorization` is set: the header is used, the URL's credentials are ignored"
                    .into(),
            ];
        }
        Vec::new()
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let mut config = self.clone();
        let mut headers = self.http_headers()?;
        // Credentials in the URL are basic auth unless `headers` authorize already (see `take_url_credentials`).
        let (endpoint, from_url) = take_url_credentials(&self.endpoint, None);
        config.endpoint = endpoint;
        if let Some(auth) = from_url.filter(|_| !headers.contains_key(AUTHORIZATION)) {
            headers.insert(AUTHORIZATION, auth.header_value().map_err(|e| format!("`endpoint` credentials: {e}"))?);
        }
        let timeout = Duration::from_secs(self.request.timeout_secs.max(1));
        let ca = self.tls.ca_pem()?;
        let batch = self.batch.limits(BatchLimits::EVENTS_AND_TIME)?;
        let SinkContext { id, input, metrics } = cx;
        let report = Reporter { id, metrics };
        Ok(Box::pin(async move {
            let transport = match config.protocol {
                Protocol::Grpc => {
                    let mut endpoint = Channel::from_shared(config.endpoint.clone()).context("`endpoint`")?.timeout(timeout);
                    if config.endpoint.starts_with("https://") {
                        let mut tls = ClientTlsConfig::new().with_webpki_roots();
                        if let Some(pem) = &ca {
                            tls = tls.ca_certificate(Certificate::from_pem(pem));
                        }
                        endpoint = endpoint.tls_config(tls).context("tls")?;
                    }
                    // Lazy: a receiver that is not up yet is waited for by the retries.
                    Transport::Grpc { channel: endpoint.connect_lazy(), metadata: MetadataMap::from_headers(headers) }
                }
                Protocol::HttpProtobuf | Protocol::HttpJson => {
                    let client = http_client(timeout, ca.as_deref())?;
                    let encoding = if config.protocol == Protocol::HttpJson { Encoding::Json } else { Encoding::Protobuf };
                    Transport::Http { client, encoding, headers, urls: Signal::ALL.map(|s| config.url(s)) }
                }
            };
            tracing::info!(component = %report.id, endpoint = %config.endpoint, protocol = ?config.protocol, "sending OTLP");
            // Each signal is batched apart: one request carries one signal.
            let sender = Arc::new(Sender { config, transport, report });
            let concurrency = sender.config.request.concurrency;
            run_batches(input, batch, concurrency, |event| sender.signal(event), |signal, events| sender.clone().flush(signal, events))
                .await;
            Ok(())
        }))
    }
}

enum Transport {
    Grpc { channel: Channel, metadata: MetadataMap },
    Http { client: reqwest::Client, encoding: Encoding, headers: HeaderMap, urls: [String; 3] },
}

struct Sender {
    config: OpenTelemetrySinkConfig,
    transport: Transport,
    report: Reporter,
}

/// The request of one signal.
enum Export {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// How one try went.
enum Attempt {
    /// Sent; the receiver refused this many items (partial success), saying why.
    Sent {
        bytes: usize,
        rejected: i64,
        error: String,
    },
    Retry {
        error: String,
        after: Option<Duration>,
    },
    Fail(String),
}

impl Sender {
    /// The signal an event goes as; `None` (refused, counted) when it has no OTLP form.
    fn signal(&self, event: &Event) -> Option<Signal> {
        match &event.data {
            EventData::Span(_) | EventData::Record(_) => Some(Signal::Traces),
            EventData::Metric(metric) if metrics::encodable(metric) => Some(Signal::Metrics),
            EventData::Metric(metric) => {
                self.report.reject(
                    event,
                    &format!("metric `{}` is a distribution (raw samples), which OTLP cannot carry: aggregate it first", metric.name),
                );
                None
            }
            EventData::Log(_) => Some(Signal::Logs),
        }
    }

    fn export(signal: Signal, events: &[Event]) -> Export {
        match signal {
            Signal::Traces => Export::Traces(traces::encode(events)),
            Signal::Metrics => Export::Metrics(metrics::encode(events)),
            Signal::Logs => Export::Logs(logs::encode(events)),
        }
    }

    async fn flush(self: Arc<Self>, signal: Signal, events: Vec<Event>) {
        let mut backoff = Backoff::new(&self.config.request);
        let mut attempt: u64 = 0;
        let written = loop {
            // Encoded again for each try: tries after the first are rare.
            let (error, after) = match self.send(signal, Self::export(signal, &events)).await {
                Attempt::Sent { bytes, rejected, error } => {
                    if rejected > 0 {
                        ComponentMetrics::add(&self.report.metrics.discarded_events, rejected as usize);
                        tracing::warn!(component = %self.report.id, rejected, items = signal.items(), error, "the receiver refused part of a request (partial success)");
                    }
                    break Ok(bytes);
                }
                Attempt::Fail(error) => break Err(error),
                Attempt::Retry { error, after } => (error, after),
            };
            attempt += 1;
            if attempt > self.config.request.retry_attempts {
                break Err(error);
            }
            ComponentMetrics::add(&self.report.metrics.errors, 1);
            tracing::warn!(component = %self.report.id, signal = signal.port(), attempt, error, "OTLP export failed; retrying");
            backoff.wait(after).await;
        };
        self.report.settle(events.iter(), events.len(), written.map_err(|e| format!("{} export: {e}", signal.port())));
    }

    async fn send(&self, signal: Signal, export: Export) -> Attempt {
        match &self.transport {
            Transport::Grpc { channel, metadata } => send_grpc(channel.clone(), metadata.clone(), self.config.compression, export).await,
            Transport::Http { client, encoding, headers, urls } => {
                let url = &urls[signal as usize];
                let body = match &export {
                    Export::Traces(request) => encoding.encode(request),
                    Export::Metrics(request) => encoding.encode(request),
                    Export::Logs(request) => encoding.encode(request),
                };
                let mut request = client.post(url).headers(headers.clone()).header(CONTENT_TYPE, encoding.content_type());
                let body = match self.config.compression {
                    Compression::Gzip => {
                        request = request.header(CONTENT_ENCODING, "gzip");
                        gzip(&body)
                    }
                    Compression::None => body,
                };
                let bytes = body.len();
                send_http(request.body(body), signal, *encoding, url, bytes).await
            }
        }
    }
}

async fn send_http(request: reqwest::RequestBuilder, signal: Signal, encoding: Encoding, url: &str, bytes: usize) -> Attempt {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Attempt::Retry { error: format!("{url}: {}", with_causes(&e)), after: None },
    };
    let status = response.status();
    let after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        // An unreadable answer still means accepted: the status says so.
        let (rejected, error) = match signal {
            Signal::Traces => encoding
                .decode::<ExportTraceServiceResponse>(&body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Metrics => encoding
                .decode::<ExportMetricsServiceResponse>(&body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Logs => encoding
                .decode::<ExportLogsServiceResponse>(&body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_log_records, p.error_message)),
        }
        .unwrap_or_default();
        return Attempt::Sent { bytes, rejected, error };
    }
    let message = match encoding.decode::<RpcStatus>(&body) {
        Ok(rpc) if !rpc.message.is_empty() => rpc.message,
        _ => String::from_utf8_lossy(&body).trim().chars().take(300).collect(),
    };
    let error = format!("{url}: HTTP {status}: {message}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => Attempt::Retry { error, after },
        _ => Attempt::Fail(error),
    }
}

async fn send_grpc(channel: Channel, metadata: MetadataMap, compression: Compression, export: Export) -> Attempt {
    fn request<T>(message: T, metadata: MetadataMap) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata;
        request
    }
    use prost::Message;
    let gzip = compression == Compression::Gzip;
    let bytes = match &export {
        Export::Traces(message) => message.encoded_len(),
        Export::Metrics(message) => message.encoded_len(),
        Export::Logs(message) => message.encoded_len(),
    };
    let answer = match export {
        Export::Traces(message) => {
            let mut client = TraceServiceClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client
                .export(request(message, metadata))
                .await
                .map(|r| r.into_inner().partial_success.map(|p| (p.rejected_spans, p.error_message)))
        }
        Export::Metrics(message) => {
            let mut client = MetricsServiceClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client
                .export(request(message, metadata))
                .await
                .map(|r| r.into_inner().partial_success.map(|p| (p.rejected_data_points, p.error_message)))
        }
        Export::Logs(message) => {
            let mut client = LogsServiceClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client
                .export(request(message, metadata))
                .await
                .map(|r| r.into_inner().partial_success.map(|p| (p.rejected_log_records, p.error_message)))
        }
    };
    match answer {
        Ok(partial) => {
            let (rejected, error) = partial.unwrap_or_default();
            Attempt::Sent { bytes, rejected, error }
        }
        Err(status) => {
            use tonic::Code;
            let after = retry_delay(&status);
            let error = format!("gRPC {:?}: {}", status.code(), status.message());
            match status.code() {
                Code::Cancelled | Code::DeadlineExceeded | Code::Aborted | Code::OutOfRange | Code::Unavailable | Code::DataLoss => {
                    Attempt::Retry { error, after }
                }
                Code::ResourceExhausted if after.is_some() => Attempt::Retry { error, after },
                _ => Attempt::Fail(error),
            }
        }
    }
}
