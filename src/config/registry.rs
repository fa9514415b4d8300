//! Every component type, one line each: its name, what it does, and how its
//! options are read.

use std::future::Future;
use std::pin::Pin;

use serde::de::{DeserializeOwned, IntoDeserializer};

use super::{ComponentConfig, ComponentKind};
use crate::{sinks, sources, transforms};

/// A running component: ends with `Ok` when its input is drained or it was told to stop.
pub type Task = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

type Parse = fn(toml_edit::Value) -> Result<ComponentConfig, toml_edit::de::Error>;

pub struct ComponentType {
    pub kind: ComponentKind,
    pub name: &'static str,
    pub description: &'static str,
    parse: Parse,
}

const fn source<T: DeserializeOwned + sources::SourceConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType { kind: ComponentKind::Source, name, description, parse: |v| Ok(ComponentConfig::Source(Box::new(T::deserialize(v.into_deserializer())?))) }
}

const fn transform<T: DeserializeOwned + transforms::TransformConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType { kind: ComponentKind::Transform, name, description, parse: |v| Ok(ComponentConfig::Transform(Box::new(T::deserialize(v.into_deserializer())?))) }
}

const fn sink<T: DeserializeOwned + sinks::SinkConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType { kind: ComponentKind::Sink, name, description, parse: |v| Ok(ComponentConfig::Sink(Box::new(T::deserialize(v.into_deserializer())?))) }
}

pub const TYPES: &[ComponentType] = &[
    source::<sources::demo::DemoConfig>("demo", "Generates realistic Kong request logs at a set rate, error share and latency spread"),
    source::<sources::ebpf::EbpfConfig>("ebpf", "Captures HTTP requests and TCP events of every process from the kernel (eBPF, no instrumentation); TCP metrics on ID.tcp"),
    source::<sources::file::FileSourceConfig>("file", "Vector's file source: tails files by glob, one log per line (message, file, host)"),
    source::<sources::http_server::HttpServerConfig>("http", "Vector's older name for http_server"),
    source::<sources::http_server::HttpServerConfig>("http_server", "Vector's HTTP source: JSON, NDJSON or text bodies, one log per object or line"),
    source::<sources::internal_metrics::InternalMetricsConfig>("internal_metrics", "tapline's own per-component counters, as metric events"),
    source::<sources::kong::file_log::KongFileLogConfig>("kong_file_log", "Tails the files Kong's file-log plugin writes, with checkpoints and rotation"),
    source::<sources::kong::http_log::KongHttpLogConfig>("kong_http_log", "Receives Kong's http-log plugin posts; each entry becomes a request record"),
    source::<sources::opentelemetry::OpenTelemetryConfig>("opentelemetry", "Receives OTLP traces, metrics and logs over gRPC and HTTP (protobuf or JSON); outputs ID.traces, ID.metrics, ID.logs"),
    source::<sources::prometheus_remote_write::PrometheusRemoteWriteConfig>("prometheus_remote_write", "Receives Prometheus remote write 1.0 and 2.0; each sample becomes a metric"),
    source::<sources::stdin::StdinConfig>("stdin", "Reads lines from standard input (raw or JSON); ends at EOF"),
    transform::<transforms::enrich::EnrichConfig>("enrich", "Adds fields to events from lookup tables: CSV/JSON files by key, CIDR prefixes, /proc by pid, this host"),
    transform::<transforms::filter::FilterConfig>("filter", "Keeps the events for which a VRL condition is true"),
    transform::<transforms::red::RedConfig>("red", "RED metrics (requests, errors, duration histogram and quantiles) per service/route or span, per window; Kong's Prometheus names as an option"),
    transform::<transforms::remap::RemapConfig>("remap", "Reshapes events with a VRL program"),
    transform::<transforms::route::RouteConfig>("route", "Sends each event to the named outputs whose VRL condition it meets"),
    sink::<sinks::blackhole::BlackholeConfig>("blackhole", "Counts and discards events (for benchmarks and tests)"),
    sink::<sinks::clickhouse::ClickHouseConfig>("clickhouse", "Inserts logs and request records into ClickHouse over HTTP (JSONEachRow), isolating refused rows"),
    sink::<sinks::console::ConsoleConfig>("console", "Writes events to standard output or standard error"),
    sink::<sinks::file::FileConfig>("file", "Writes events to files whose path may be a template"),
    sink::<sinks::kafka::KafkaConfig>("kafka", "Produces one Kafka message per event (librdkafka); acknowledges on delivery reports"),
    sink::<sinks::opentelemetry::OpenTelemetrySinkConfig>("opentelemetry", "Sends spans, metrics and logs over OTLP (gRPC or HTTP); request records go as spans"),
    sink::<sinks::prometheus_exporter::PrometheusExporterConfig>("prometheus_exporter", "Serves the metrics it receives on /metrics for Prometheus to scrape (text format or OpenMetrics)"),
    sink::<sinks::prometheus_remote_write::PrometheusRemoteWriteSinkConfig>("prometheus_remote_write", "Sends metrics as Prometheus remote write 1.0, with metadata; retries 5xx and 429 only"),
];

pub fn names(kind: ComponentKind) -> Vec<&'static str> {
    TYPES.iter().filter(|t| t.kind == kind).map(|t| t.name).collect()
}

pub fn parse(kind: ComponentKind, name: &str, options: toml_edit::Value) -> Result<ComponentConfig, toml_edit::de::Error> {
    let ty = TYPES.iter().find(|t| t.kind == kind && t.name == name).expect("type checked against the registry before");
    (ty.parse)(options)
}
