//! Every component type, one line each: its name, what it does, and how its
//! options are read. The layer above the components: `config` asks it to
//! parse a component's table, `tapline list` prints it.

use serde::de::{DeserializeOwned, IntoDeserializer};

use crate::component::{ComponentKind, SinkConfig, SourceConfig, TransformConfig};
use crate::{sinks, sources, transforms};

/// A component's parsed options, by kind.
#[derive(Debug)]
pub enum ComponentConfig {
    Source(Box<dyn SourceConfig>),
    Transform(Box<dyn TransformConfig>),
    Sink(Box<dyn SinkConfig>),
}

type Parse = fn(toml_edit::Value) -> Result<ComponentConfig, toml_edit::de::Error>;

pub struct ComponentType {
    pub kind: ComponentKind,
    pub name: &'static str,
    pub description: &'static str,
    parse: Parse,
    /// The cargo feature this type needs, when this build was made without it.
    pub missing_feature: Option<&'static str>,
}

const fn source<T: DeserializeOwned + SourceConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType {
        kind: ComponentKind::Source,
        name,
        description,
        parse: |v| Ok(ComponentConfig::Source(Box::new(T::deserialize(v.into_deserializer())?))),
        missing_feature: None,
    }
}

const fn transform<T: DeserializeOwned + TransformConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType {
        kind: ComponentKind::Transform,
        name,
        description,
        parse: |v| Ok(ComponentConfig::Transform(Box::new(T::deserialize(v.into_deserializer())?))),
        missing_feature: None,
    }
}

const fn sink<T: DeserializeOwned + SinkConfig + 'static>(name: &'static str, description: &'static str) -> ComponentType {
    ComponentType {
        kind: ComponentKind::Sink,
        name,
        description,
        parse: |v| Ok(ComponentConfig::Sink(Box::new(T::deserialize(v.into_deserializer())?))),
        missing_feature: None,
    }
}

/// A type left out of this build: still listed, so that choosing it says
/// which feature to build with instead of "unknown type".
#[cfg_attr(all(feature = "ebpf", feature = "kafka", feature = "otlp"), allow(dead_code))]
const fn without_feature(kind: ComponentKind, name: &'static str, description: &'static str, feature: &'static str) -> ComponentType {
    ComponentType { kind, name, description, parse: |_| Err(serde::de::Error::custom("not in this build")), missing_feature: Some(feature) }
}

/// `family::<Config>(name, description)`, or `without_feature` in a build without `feature`.
macro_rules! needs_feature {
    ($feature:literal, $family:ident::<$config:ty>($name:literal, $description:literal)) => {{
        #[cfg(feature = $feature)]
        let ty = $family::<$config>($name, $description);
        #[cfg(not(feature = $feature))]
        let ty = without_feature(kind_of!($family), $name, $description, $feature);
        ty
    }};
}

#[cfg_attr(all(feature = "ebpf", feature = "kafka", feature = "otlp"), allow(unused_macros))]
macro_rules! kind_of {
    (source) => {
        ComponentKind::Source
    };
    (transform) => {
        ComponentKind::Transform
    };
    (sink) => {
        ComponentKind::Sink
    };
}

pub const TYPES: &[ComponentType] = &[
    source::<sources::demo::DemoConfig>("demo", "Generates realistic Kong request logs at a set rate, error share and latency spread"),
    needs_feature!("ebpf", source::<sources::ebpf::EbpfConfig>("ebpf", "Captures HTTP requests and TCP events of every process from the kernel (eBPF, no instrumentation); TCP metrics on ID.tcp")),
    source::<sources::file::FileSourceConfig>("file", "Vector's file source: tails files by glob, one log per line (message, file, host)"),
    source::<sources::http_server::HttpServerConfig>("http", "Vector's older name for http_server"),
    source::<sources::http_server::HttpServerConfig>("http_server", "Vector's HTTP source: JSON, NDJSON or text bodies, one log per object or line"),
    source::<sources::internal_metrics::InternalMetricsConfig>("internal_metrics", "tapline's own per-component counters, as metric events"),
    source::<sources::kong::file_log::KongFileLogConfig>("kong_file_log", "Tails the files Kong's file-log plugin writes, with checkpoints and rotation"),
    source::<sources::kong::http_log::KongHttpLogConfig>("kong_http_log", "Receives Kong's http-log plugin posts; each entry becomes a request record"),
    needs_feature!("otlp", source::<sources::opentelemetry::OpenTelemetrySourceConfig>("opentelemetry", "Receives OTLP traces, metrics and logs over gRPC and HTTP (protobuf or JSON); outputs ID.traces, ID.metrics, ID.logs")),
    source::<sources::prometheus_remote_write::PrometheusRemoteWriteSourceConfig>("prometheus_remote_write", "Receives Prometheus remote write 1.0 and 2.0; each sample becomes a metric"),
    source::<sources::socket::SocketConfig>("socket", "Vector's socket source: TCP (TLS), UDP or Unix sockets, one event per line or datagram; Kong's tcp-log/udp-log entries as request records"),
    source::<sources::stdin::StdinConfig>("stdin", "Reads lines from standard input (raw or JSON); ends at EOF"),
    source::<sources::syslog::SyslogConfig>("syslog", "Vector's syslog source: RFC 5424/3164 over TCP (newline or octet counting), UDP or Unix; Kong's syslog plugin entries as request records"),
    transform::<transforms::aggregate::AggregateConfig>("aggregate", "Vector's aggregate: one metric per series per interval (sum, latest, count, diff, max, min, mean, stdev)"),
    transform::<transforms::dedupe::DedupeConfig>("dedupe", "Vector's dedupe: drops events whose chosen fields repeat one of the last N events (LRU cache)"),
    transform::<transforms::enrich::EnrichConfig>("enrich", "Adds fields to events from lookup tables: CSV/JSON files by key, CIDR prefixes, /proc by pid, this host"),
    transform::<transforms::filter::FilterConfig>("filter", "Keeps the events for which a VRL condition is true"),
    transform::<transforms::log_to_metric::LogToMetricConfig>("log_to_metric", "Vector's log_to_metric: counters, gauges and histogram/summary samples from log fields, with templated names and tags"),
    transform::<transforms::red::RedConfig>("red", "RED metrics (requests, errors, duration histogram and quantiles) per service/route or span, per window; Kong's Prometheus names as an option"),
    transform::<transforms::reduce::ReduceConfig>("reduce", "Vector's reduce: merges the logs of a group into one (merge strategies, starts_when/ends_when, expiry); all held flushed at shutdown"),
    transform::<transforms::remap::RemapConfig>("remap", "Reshapes events with a VRL program"),
    transform::<transforms::route::RouteConfig>("route", "Sends each event to the named outputs whose VRL condition it meets"),
    transform::<transforms::sample::SampleConfig>("sample", "Vector's sample: keeps 1 event in N (or a ratio), per group, or by the hash of a key field"),
    transform::<transforms::stitch::StitchConfig>("stitch", "One trace per request: gateway logs, eBPF records and APM spans joined by verified relations, each span under its parent"),
    transform::<transforms::throttle::ThrottleConfig>("throttle", "Vector's throttle: at most `threshold` events per `window_secs`, per key (GCRA); the rest dropped and counted"),
    sink::<sinks::blackhole::BlackholeConfig>("blackhole", "Counts and discards events (for benchmarks and tests)"),
    sink::<sinks::clickhouse::ClickHouseConfig>("clickhouse", "Inserts logs and request records into ClickHouse over HTTP (JSONEachRow), isolating refused rows"),
    sink::<sinks::console::ConsoleConfig>("console", "Writes events to standard output or standard error"),
    sink::<sinks::file::FileSinkConfig>("file", "Writes events to files whose path may be a template"),
    sink::<sinks::http::HttpSinkConfig>("http", "Vector's HTTP sink: batches per templated URI as JSON, NDJSON or text; retries 5xx/429, refuses on other 4xx"),
    needs_feature!("kafka", sink::<sinks::kafka::KafkaConfig>("kafka", "Produces one Kafka message per event (librdkafka); acknowledges on delivery reports")),
    needs_feature!("otlp", sink::<sinks::opentelemetry::OpenTelemetrySinkConfig>("opentelemetry", "Sends spans, metrics and logs over OTLP (gRPC or HTTP); request records go as spans")),
    sink::<sinks::prometheus_exporter::PrometheusExporterConfig>("prometheus_exporter", "Serves the metrics it receives on /metrics for Prometheus to scrape (text format or OpenMetrics)"),
    sink::<sinks::prometheus_remote_write::PrometheusRemoteWriteSinkConfig>("prometheus_remote_write", "Sends metrics as Prometheus remote write 1.0, with metadata; retries 5xx and 429 only"),
    sink::<sinks::socket::SocketSinkConfig>("socket", "Vector's socket sink: events over TCP or Unix streams (newline framed, reconnecting) or UDP/Unix datagrams"),
];

pub fn names(kind: ComponentKind) -> Vec<&'static str> {
    TYPES.iter().filter(|t| t.kind == kind).map(|t| t.name).collect()
}

pub fn find(kind: ComponentKind, name: &str) -> Option<&'static ComponentType> {
    TYPES.iter().find(|t| t.kind == kind && t.name == name)
}

impl ComponentType {
    /// Read a component's options (without `type`, `inputs` and the other common keys).
    pub fn parse(&self, options: toml_edit::Value) -> Result<ComponentConfig, toml_edit::de::Error> {
        (self.parse)(options)
    }
}
