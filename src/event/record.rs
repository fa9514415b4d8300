//! The request record: one HTTP (or TCP) request as one observer saw it.
//! Kong's sources and the eBPF source all produce it, so that RED metrics,
//! span stitching and the sinks read the same field names. Modelled on
//! DeepFlow's `l7_flow_log`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Value;

/// Who saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationPoint {
    /// The API gateway (Kong's own log).
    #[default]
    Gateway,
    /// A client process's socket (eBPF).
    ClientProcess,
    /// A server process's socket (eBPF).
    ServerProcess,
    /// The application's own instrumentation (OTel).
    App,
}

/// Which signal it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalSource {
    #[default]
    Kong,
    Ebpf,
    Otel,
}

impl ObservationPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservationPoint::Gateway => "gateway",
            ObservationPoint::ClientProcess => "client_process",
            ObservationPoint::ServerProcess => "server_process",
            ObservationPoint::App => "app",
        }
    }
}

impl SignalSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalSource::Kong => "kong",
            SignalSource::Ebpf => "ebpf",
            SignalSource::Otel => "otel",
        }
    }
}

/// Field names are the record's contract: sinks write them as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RequestRecord {
    /// When the request started.
    pub time: DateTime<Utc>,
    pub observation_point: ObservationPoint,
    pub signal_source: SignalSource,
    /// `http`, `https`, `grpc`, `tcp`, `tls`, `udp`.
    pub protocol: String,
    pub service: Option<String>,
    pub route: Option<String>,
    pub consumer: Option<String>,
    pub workspace: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    /// The path without its query string.
    pub path: Option<String>,
    pub query: Option<String>,
    /// What RED groups by: the route's path pattern when known, else the path.
    pub endpoint: Option<String>,
    pub status: Option<u16>,
    /// As Kong writes it: one status per try, e.g. `"500, 200 : 200, 200"`.
    pub upstream_status: Option<String>,
    /// Whole request, as this observer measured it, in microseconds.
    pub duration_us: Option<u64>,
    /// Time spent in the gateway itself.
    pub gateway_us: Option<u64>,
    /// Time waiting for the upstream (none when the gateway answered alone).
    pub upstream_us: Option<u64>,
    /// Time sending the response to the client.
    pub receive_us: Option<u64>,
    pub request_size: Option<u64>,
    pub response_size: Option<u64>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub parent_span_id: Option<String>,
    /// x-request-id / x-kong-request-id.
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<u16>,
    /// For a gateway: the upstream target of the last try.
    pub server_ip: Option<String>,
    pub server_port: Option<u16>,
    /// Upstream tries (retries + 1); 0 when not proxied.
    pub tries: u32,
    /// Kong's `source`: whether the answer came from `upstream` or from `kong` itself.
    pub response_source: Option<String>,
    pub pid: Option<u32>,
    pub thread_id: Option<u32>,
    pub process_name: Option<String>,
    pub container_id: Option<String>,
    pub pod: Option<String>,
    pub tcp_seq_request: Option<u32>,
    pub tcp_seq_response: Option<u32>,
    pub syscall_trace_id_request: Option<u64>,
    pub syscall_trace_id_response: Option<u64>,
    /// The entry as received, when the source keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

impl RequestRecord {
    /// The record as a VRL object, for `remap` and conditions.
    pub fn to_value(&self) -> Value {
        super::serialize_to_value(self)
    }
}
