//! The request record: one HTTP (or TCP) request as one observer saw it.
//! Kong's sources and the eBPF source all produce it, so that RED metrics,
//! span stitching and the sinks read the same field names. Modelled on
//! DeepFlow's `l7_flow_log`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Value;

/// Who saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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

/// Field names are the record's contract: sinks write them as they are, and
/// a record written as JSON reads back the same (a capture replayed).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestRecord {
    /// When the request started.
    pub time: DateTime<Utc>,
    pub observation_point: ObservationPoint,
    pub signal_source: SignalSource,
    /// `http`, `https`, `tcp`, `tls`, `udp` (Kong); the eBPF source adds
    /// `http2`, `grpc`, `redis`, `postgresql`, `mysql`.
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
    /// The HTTP status; for a `grpc` call, its grpc-status code (0 is OK).
    /// None for the databases: a failed statement or command says so in `error`.
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
    /// The request's id (x-request-id, x-kong-request-id) as the request
    /// carried it; for a gateway, the id it gave the request (which it sends
    /// upstream and answers with).
    pub request_id: Option<String>,
    /// The id the response carried (eBPF), when a proxy on the way injected
    /// one: a gateway's client-facing record shows it here, its upstream
    /// call in `request_id`.
    pub response_request_id: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<u16>,
    /// For a gateway: the upstream target of the last try.
    pub server_ip: Option<String>,
    pub server_port: Option<u16>,
    /// Upstream tries (retries + 1); 0 when not proxied.
    pub tries: u32,
    /// Kong's `source`: whether the answer came from `upstream` or from `kong` itself.
    pub response_source: Option<String>,
    /// The machine the record was seen on (eBPF): syscall trace ids and pids are unique per host only.
    pub host_name: Option<String>,
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
    /// Why there is no status (`timeout`, `connection closed before a
    /// response`), or what failed: a gRPC status name and message, a
    /// database's error code and message.
    pub error: Option<String>,
    /// The process's command line.
    pub cmdline: Option<String>,
    /// What `enrich` added (team, zone, namespace, labels …): `tags.NAME` in
    /// `red` dimensions and `enrich` keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The entry as received, when the source keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// The optional text fields by name, for reading and for `enrich` to fill;
/// one list for both.
macro_rules! text_fields {
    ($($name:ident),* $(,)?) => {
        fn text_field(&self, name: &str) -> Option<&Option<String>> {
            match name {
                $(stringify!($name) => Some(&self.$name),)*
                _ => None,
            }
        }

        pub fn text_field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
            match name {
                $(stringify!($name) => Some(&mut self.$name),)*
                _ => None,
            }
        }
    };
}
impl RequestRecord {
    /// A gRPC call: its `status` is a grpc-status code, not an HTTP one.
    pub fn is_grpc(&self) -> bool {
        self.protocol == "grpc"
    }

    /// Span ids for this record, the same every time they are computed for the
    /// same record (from what identifies it: who saw it, when, on which
    /// connection and thread): its own span's, and its call upstream's (a
    /// gateway entry makes two spans).
    pub fn stable_ids(&self) -> [[u8; 8]; 2] {
        use std::hash::{Hash, Hasher};
        let mut hasher = rustc_hash::FxHasher::default();
        (self.signal_source as u8, self.observation_point as u8, self.time).hash(&mut hasher);
        (&self.host_name, self.pid, self.thread_id, self.tcp_seq_request, self.tcp_seq_response).hash(&mut hasher);
        (self.syscall_trace_id_request, self.syscall_trace_id_response, &self.request_id, &self.method, &self.path).hash(&mut hasher);
        (&self.client_ip, self.client_port, &self.server_ip, self.server_port, self.duration_us).hash(&mut hasher);
        let own = hasher.finish();
        // The second, derived: the fields are hashed once.
        hasher.write_u8(1);
        // Zero is no id in OTLP.
        [own.max(1).to_be_bytes(), hasher.finish().max(1).to_be_bytes()]
    }

    /// The record as a VRL object, for `remap` and conditions.
    pub fn to_value(&self) -> Value {
        super::serialize_to_value(self)
    }

    /// One field by name as a VRL value (templates such as a topic or a key
    /// read one or two fields per event).
    pub fn field(&self, name: &str) -> Option<Value> {
        Some(match self.field_ref(name)? {
            FieldRef::Text(text) => Value::from(text),
            FieldRef::Int(n) => Value::Integer(n),
            FieldRef::Bool(b) => Value::Boolean(b),
            FieldRef::Time(t) => Value::Timestamp(t),
            FieldRef::Tags(tags) => Value::Object(tags.iter().map(|(k, v)| (k.as_str().into(), Value::from(v.as_str()))).collect()),
            FieldRef::Raw(raw) => raw.clone(),
        })
    }

    /// One field by name, borrowed: nothing is copied to read it.
    pub fn field_ref(&self, name: &str) -> Option<FieldRef<'_>> {
        fn text(v: &Option<String>) -> Option<FieldRef<'_>> {
            v.as_deref().map(FieldRef::Text)
        }
        fn int<T: TryInto<i64>>(v: Option<T>) -> Option<FieldRef<'static>> {
            v.and_then(|n| n.try_into().ok()).map(FieldRef::Int)
        }
        match name {
            "time" => Some(FieldRef::Time(self.time)),
            "observation_point" => Some(FieldRef::Text(self.observation_point.as_str())),
            "signal_source" => Some(FieldRef::Text(self.signal_source.as_str())),
            "protocol" => Some(FieldRef::Text(&self.protocol)),
            "tries" => Some(FieldRef::Int(self.tries.into())),
            "tls" => Some(FieldRef::Bool(self.tls)),
            "status" => int(self.status),
            "duration_us" => int(self.duration_us),
            "gateway_us" => int(self.gateway_us),
            "upstream_us" => int(self.upstream_us),
            "receive_us" => int(self.receive_us),
            "request_size" => int(self.request_size),
            "response_size" => int(self.response_size),
            "client_port" => int(self.client_port),
            "server_port" => int(self.server_port),
            "pid" => int(self.pid),
            "thread_id" => int(self.thread_id),
            "tcp_seq_request" => int(self.tcp_seq_request),
            "tcp_seq_response" => int(self.tcp_seq_response),
            "syscall_trace_id_request" => int(self.syscall_trace_id_request),
            "syscall_trace_id_response" => int(self.syscall_trace_id_response),
            "tags" => Some(FieldRef::Tags(&self.tags)),
            "raw" => self.raw.as_ref().map(FieldRef::Raw),
            _ => text(self.text_field(name)?),
        }
    }

    text_fields!(
        service,
        route,
        consumer,
        workspace,
        method,
        host,
        path,
        query,
        endpoint,
        upstream_status,
        trace_id,
        span_id,
        parent_span_id,
        request_id,
        response_request_id,
        client_ip,
        server_ip,
        response_source,
        host_name,
        process_name,
        container_id,
        pod,
        error,
        cmdline
    );
}

/// A record field, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    Tags(&'a BTreeMap<String, String>),
    Raw(&'a Value),
}

impl FieldRef<'_> {
    /// The field as text, as a metric tag or a table key holds it.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            FieldRef::Text(text) => Cow::Borrowed(text),
            FieldRef::Int(n) => Cow::Owned(n.to_string()),
            FieldRef::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            FieldRef::Time(t) => Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            FieldRef::Tags(_) => Cow::Borrowed(""),
            FieldRef::Raw(raw) => Cow::Owned(raw.to_string_lossy().into_owned()),
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
            tags: [("team".to_string(), "payments".to_string())].into(),
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
        assert_eq!(whole.len(), 47, "a field was added: add it to `field_ref` too");
        assert_eq!(record.field("nope"), None);
    }
}
