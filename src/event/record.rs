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
    /// Seen through OpenSSL: the plaintext of a TLS connection.
    pub tls: bool,
    /// Why there is no status: `timeout`, `connection closed before a response`.
    pub error: Option<String>,
    /// The process's command line.
    pub cmdline: Option<String>,
    /// The entry as received, when the source keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

impl RequestRecord {
    /// The record as a VRL object, for `remap` and conditions.
    pub fn to_value(&self) -> Value {
        super::serialize_to_value(self)
    }

    /// One field by name, without converting the whole record (templates
    /// such as a topic or a key read one or two fields per event).
    pub fn field(&self, name: &str) -> Option<Value> {
        fn text(v: &Option<String>) -> Option<Value> {
            v.as_deref().map(Value::from)
        }
        fn int<T: Copy + Into<i64>>(v: Option<T>) -> Option<Value> {
            v.map(|n| Value::Integer(n.into()))
        }
        match name {
            "time" => Some(Value::Timestamp(self.time)),
            "observation_point" => Some(Value::from(self.observation_point.as_str())),
            "signal_source" => Some(Value::from(self.signal_source.as_str())),
            "protocol" => Some(Value::from(self.protocol.as_str())),
            "service" => text(&self.service),
            "route" => text(&self.route),
            "consumer" => text(&self.consumer),
            "workspace" => text(&self.workspace),
            "method" => text(&self.method),
            "host" => text(&self.host),
            "path" => text(&self.path),
            "query" => text(&self.query),
            "endpoint" => text(&self.endpoint),
            "status" => int(self.status),
            "upstream_status" => text(&self.upstream_status),
            "duration_us" => int(self.duration_us.map(|n| n as i64)),
            "gateway_us" => int(self.gateway_us.map(|n| n as i64)),
            "upstream_us" => int(self.upstream_us.map(|n| n as i64)),
            "receive_us" => int(self.receive_us.map(|n| n as i64)),
            "request_size" => int(self.request_size.map(|n| n as i64)),
            "response_size" => int(self.response_size.map(|n| n as i64)),
            "trace_id" => text(&self.trace_id),
            "span_id" => text(&self.span_id),
            "parent_span_id" => text(&self.parent_span_id),
            "request_id" => text(&self.request_id),
            "client_ip" => text(&self.client_ip),
            "client_port" => int(self.client_port),
            "server_ip" => text(&self.server_ip),
            "server_port" => int(self.server_port),
            "tries" => Some(Value::Integer(self.tries.into())),
            "response_source" => text(&self.response_source),
            "pid" => int(self.pid),
            "thread_id" => int(self.thread_id),
            "process_name" => text(&self.process_name),
            "container_id" => text(&self.container_id),
            "pod" => text(&self.pod),
            "tcp_seq_request" => int(self.tcp_seq_request),
            "tcp_seq_response" => int(self.tcp_seq_response),
            "syscall_trace_id_request" => int(self.syscall_trace_id_request.map(|n| n as i64)),
            "syscall_trace_id_response" => int(self.syscall_trace_id_response.map(|n| n as i64)),
            "tls" => Some(Value::Boolean(self.tls)),
            "error" => text(&self.error),
            "cmdline" => text(&self.cmdline),
            "raw" => self.raw.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `field` knows every field `to_value` writes, with the same value.
    #[test]
    fn field_by_name_matches_the_whole_record() {
        let record = RequestRecord {
            time: "2024-11-26T09:23:20.121Z".parse().unwrap(),
            protocol: "http".into(),
            service: Some("orders".into()),
            status: Some(502),
            duration_us: Some(1234),
            tries: 2,
            client_port: Some(5555),
            syscall_trace_id_request: Some(77),
            tls: true,
            error: Some("timeout".into()),
            raw: Some(Value::from(serde_json::json!({"a": 1}))),
            ..Default::default()
        };
        let Value::Object(whole) = record.to_value() else { panic!("a record is an object") };
        for (name, value) in &whole {
            let field = record.field(name).unwrap_or(Value::Null);
            match (name.as_str(), &field) {
                ("time", Value::Timestamp(t)) => assert_eq!(Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)), *value),
                _ => assert_eq!(field, *value, "{name}"),
            }
        }
        assert_eq!(whole.len(), 44, "a field was added: add it to `field` too");
        assert_eq!(record.field("nope"), None);
    }
}
