use std::borrow::Cow;

use litemap::LiteMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::record::{ObservationPoint, RequestRecord, SignalSource};
use super::{ObjectMap, Value};

/// A span's attributes or resource: one sorted vector, its keys static for the
/// names tapline gives (a span made from a record allocates no key).
pub type Attributes = LiteMap<Cow<'static, str>, Value>;

/// An OpenTelemetry span, plus the keys span stitching joins on. Written as
/// JSON (ids in hex), it reads back the same.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Span {
    #[serde(serialize_with = "hex", deserialize_with = "hex_in")]
    pub trace_id: [u8; 16],
    #[serde(serialize_with = "hex", deserialize_with = "hex_in")]
    pub span_id: [u8; 8],
    #[serde(serialize_with = "hex_opt", deserialize_with = "hex_in_opt")]
    pub parent_span_id: Option<[u8; 8]>,
    pub trace_state: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status: SpanStatus,
    #[serde(serialize_with = "as_map")]
    pub attributes: Attributes,
    #[serde(serialize_with = "as_map")]
    pub resource: Attributes,
    /// Static for the spans tapline makes: not an allocation each.
    pub scope_name: Cow<'static, str>,
    pub scope_version: Cow<'static, str>,
    /// Scope, event and link attributes: rare, and only passed through.
    pub scope_attributes: ObjectMap,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    /// W3C trace flags (low byte) and OTLP's remote-parent bits.
    pub flags: u32,
    /// What the sender had to leave out, as it reported it.
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
    /// x-request-id / x-kong-request-id: joins gateway logs, network flows and app spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanStatus {
    pub code: StatusCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: ObjectMap,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpanLink {
    #[serde(serialize_with = "hex", deserialize_with = "hex_in")]
    pub trace_id: [u8; 16],
    #[serde(serialize_with = "hex", deserialize_with = "hex_in")]
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub attributes: ObjectMap,
    pub flags: u32,
    pub dropped_attributes_count: u32,
}

/// Owned text as a value, without copying it. Made exact-size first: `Bytes`
/// takes a boxed slice as it is, but wraps a `String` with room to spare in
/// one more allocation (and the allocator shrinks in place).
fn owned_text(text: String) -> Value {
    Value::Bytes(bytes::Bytes::from(text.into_bytes().into_boxed_slice()))
}

/// Always a map (LiteMap writes an empty one as a list to human-readable formats).
fn as_map<S: Serializer>(map: &Attributes, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter())
}

fn hex<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(const_hex::Buffer::<N>::new().format(bytes))
}

fn hex_opt<S: Serializer>(bytes: &Option<[u8; 8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => hex(b, s),
        None => s.serialize_none(),
    }
}

fn hex_in<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    let text = String::deserialize(d)?;
    const_hex::decode_to_array(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

fn hex_in_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 8]>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(text) => const_hex::decode_to_array(&text).map(Some).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}"))),
        None => Ok(None),
    }
}

/// A W3C `traceparent` header, `00-<trace id>-<parent id>-<flags>` → (trace id, parent span id).
pub fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace, 32) && hex(span, 16)).then(|| (trace.to_ascii_lowercase(), span.to_ascii_lowercase()))
}

/// A span's place in its trace.
#[derive(Debug, Clone, Copy)]
pub struct SpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
}

impl Span {
    /// A request record as the span its observer would have made: a server span
    /// for a gateway, a server process or an app, a client span for a client
    /// process. Attributes follow the HTTP semantic conventions; what they have
    /// no name for goes under `tapline.`. A record without ids gets ids derived
    /// from what identifies it, the same for the same record (`RequestRecord::stable_ids`).
    pub fn from_record(record: &RequestRecord) -> Span {
        let (trace_id, span_id) = (record.trace_id.as_deref().and_then(from_hex), record.span_id.as_deref().and_then(from_hex));
        // Hashed once, and only when an id is missing.
        let stable_id = if trace_id.is_none() || span_id.is_none() { record.stable_ids()[0] } else { [0; 8] };
        let ids = SpanIds {
            trace_id: trace_id.unwrap_or_else(|| trace_id_of(stable_id)),
            span_id: span_id.unwrap_or(stable_id),
            parent_span_id: record.parent_span_id.as_deref().and_then(from_hex),
        };
        let mut span = Self::from_record_with(Cow::Borrowed(record), []);
        span.set_ids(ids);
        span
    }

    /// Place the span in its trace.
    pub fn set_ids(&mut self, ids: SpanIds) {
        (self.trace_id, self.span_id, self.parent_span_id) = (ids.trace_id, ids.span_id, ids.parent_span_id);
    }

    /// `from_record` with more attributes (what stitching adds; one map built
    /// once) and its ids left for the caller to set (`set_ids`). A record
    /// given whole gives its text to the span, uncopied.
    pub fn from_record_with(record: Cow<'_, RequestRecord>, more: impl IntoIterator<Item = (Cow<'static, str>, Value)>) -> Span {
        let kind = match record.observation_point {
            ObservationPoint::ClientProcess => SpanKind::Client,
            ObservationPoint::Gateway | ObservationPoint::ServerProcess | ObservationPoint::App => SpanKind::Server,
        };
        let start = record.time.timestamp_nanos_opt().unwrap_or_default().max(0) as u64;
        let end = start + record.duration_us.unwrap_or_default() * 1000;
        let method = record.method.as_deref().unwrap_or("HTTP");
        let target = record.endpoint.as_deref().or(record.path.as_deref());
        let mut name = String::with_capacity(method.len() + 1 + target.map_or(0, str::len));
        name.push_str(method);
        if let Some(target) = target {
            name.push(' ');
            name.push_str(target);
        }
        // Semantic conventions: 5xx is an error for a server, 4xx too for a
        // client; for gRPC, every code but OK for a client, and UNKNOWN,
        // DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS for a server.
        let failed = match (record.status, record.is_grpc()) {
            (Some(code), true) => code != 0 && (kind == SpanKind::Client || [2, 4, 12, 13, 14, 15].contains(&code)),
            (Some(status), false) => status >= 500 || (kind == SpanKind::Client && status >= 400),
            (None, _) => false,
        };
        let status = if failed { SpanStatus { code: StatusCode::Error, message: String::new() } } else { SpanStatus::default() };
        let service_name = match record.signal_source {
            SignalSource::Kong => Some("kong".to_owned()),
            SignalSource::Ebpf => record.process_name.clone(),
            SignalSource::Otel => record.service.clone(),
        };
        let (observation_point, signal_source) = (record.observation_point, record.signal_source);

        // From here on a field is read once: taken from an owned record, copied from a borrowed one.
        let mut record = record;
        macro_rules! owned {
            ($field:ident) => {
                match &mut record {
                    Cow::Owned(r) => r.$field.take(),
                    Cow::Borrowed(r) => r.$field.clone(),
                }
            };
        }
        macro_rules! text {
            ($field:ident) => {
                match &mut record {
                    Cow::Owned(r) => r.$field.take().map(owned_text),
                    Cow::Borrowed(r) => r.$field.as_deref().map(Value::from),
                }
            };
        }
        // Listed in key order, so the map is made without comparing keys; room
        // for all that can be put, the tags and `more`: the map is allocated once.
        let more = more.into_iter();
        let mut sorted: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(RECORD_ATTRIBUTES + record.tags.len() + more.size_hint().0);
        let mut put = |key: &'static str, value: Option<Value>| {
            if let Some(value) = value {
                sorted.push((Cow::Borrowed(key), value));
            }
        };
        let int = |v: Option<u64>| v.map(|n| Value::Integer(n as i64));
        // A header's value is a list (a header may repeat).
        let header = |id: Value| Value::Array(vec![id]);
        put("client.address", text!(client_ip));
        put("client.port", int(record.client_port.map(u64::from)));
        put("http.request.body.size", int(record.request_size));
        let request_id = owned!(request_id);
        put("http.request.header.x-request-id", request_id.as_deref().map(Value::from).map(header));
        put("http.request.method", text!(method));
        put("http.response.body.size", int(record.response_size));
        put("http.response.header.x-request-id", owned!(response_request_id).map(owned_text).map(header));
        let (grpc_status, http_status) = match record.is_grpc() {
            true => (record.status, None),
            false => (None, record.status),
        };
        put("http.response.status_code", int(http_status.map(u64::from)));
        put("http.route", text!(endpoint));
        put("network.peer.address", text!(server_ip));
        put("network.peer.port", int(record.server_port.map(u64::from)));
        let protocol = (!record.protocol.is_empty()).then(|| match &mut record {
            Cow::Owned(r) => owned_text(std::mem::take(&mut r.protocol)),
            Cow::Borrowed(r) => Value::from(r.protocol.as_str()),
        });
        put("network.protocol.name", protocol);
        put("rpc.grpc.status_code", int(grpc_status.map(u64::from)));
        put("server.address", text!(host));
        put("tapline.consumer", text!(consumer));
        put("tapline.gateway_us", int(record.gateway_us));
        put("tapline.observation_point", Some(Value::from_static_str(observation_point.as_str())));
        put("tapline.receive_us", int(record.receive_us));
        put("tapline.response_source", text!(response_source));
        put("tapline.route", text!(route));
        put("tapline.service", text!(service));
        put("tapline.signal_source", Some(Value::from_static_str(signal_source.as_str())));
        put("tapline.upstream_status", text!(upstream_status));
        put("tapline.upstream_us", int(record.upstream_us));
        put("tapline.workspace", text!(workspace));
        put("thread.id", record.thread_id.map(|thread| Value::Integer(thread.into())));
        put("url.path", text!(path));
        put("url.query", text!(query));
        debug_assert!(sorted.is_sorted_by(|a, b| a.0 < b.0), "attributes listed out of key order");
        debug_assert!(sorted.len() <= RECORD_ATTRIBUTES, "RECORD_ATTRIBUTES counts every attribute put");
        let mut attributes = Attributes::from_sorted_store_unchecked(sorted);
        for (key, value) in &record.tags {
            attributes.insert(Cow::Owned(key.clone()), Value::from(value.as_str()));
        }
        for (key, value) in more {
            attributes.insert(key, value);
        }

        let pid = record.pid;
        let resource = [
            ("container.id", text!(container_id)),
            ("host.name", text!(host_name)),
            ("k8s.pod.name", text!(pod)),
            ("process.executable.name", text!(process_name)),
            ("process.pid", pid.map(|p| Value::Integer(p.into()))),
            ("service.name", service_name.map(owned_text)),
        ];
        let mut sorted = Vec::with_capacity(resource.len());
        sorted.extend(resource.into_iter().filter_map(|(key, value)| Some((Cow::Borrowed(key), value?))));
        let resource = Attributes::from_sorted_store_unchecked(sorted);
        Span {
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status,
            attributes,
            resource,
            scope_name: Cow::Borrowed("tapline"),
            scope_version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            request_id,
            ..Default::default()
        }
    }
}

/// How many attributes `from_record_with` can put from a record's own fields.
const RECORD_ATTRIBUTES: usize = 28;

/// A 16-byte trace id spread from an 8-byte id (for a trace of one record).
pub fn trace_id_of(id: [u8; 8]) -> [u8; 16] {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&id);
    trace[8..].copy_from_slice(&(u64::from_be_bytes(id).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15).to_be_bytes());
    trace
}

/// An id written in hex (trace, span), `None` unless exactly N bytes of it.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    const_hex::decode_to_array(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_written_as_json_reads_back_the_same() {
        let span = Span {
            trace_id: [7; 16],
            span_id: [9; 8],
            name: "GET /a".into(),
            attributes: [(Cow::Borrowed("url.path"), Value::from("/a")), (Cow::Owned("b.custom".to_owned()), Value::Integer(1))]
                .into_iter()
                .collect(),
            ..Span::default()
        };
        let json = serde_json::to_string(&span).unwrap();
        // Attributes in key order; an empty map still a map.
        assert!(json.contains(r#""attributes":{"b.custom":1,"url.path":"/a"},"resource":{}"#), "{json}");
        assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), span);
    }

    /// A gRPC call's status is its grpc-status code: named as such, and an
    /// error as the semantic conventions say (a server's NOT_FOUND is not one).
    #[test]
    fn a_grpc_record_span_carries_its_grpc_status() {
        let call = |point, code| {
            let record =
                RequestRecord { observation_point: point, protocol: "grpc".into(), status: Some(code), ..RequestRecord::default() };
            let span = Span::from_record(&record);
            (
                span.status.code,
                span.attributes.get("rpc.grpc.status_code").cloned(),
                span.attributes.contains_key("http.response.status_code"),
            )
        };
        let (server, client) = (ObservationPoint::ServerProcess, ObservationPoint::ClientProcess);
        assert_eq!(call(server, 0), (StatusCode::Unset, Some(Value::Integer(0)), false));
        assert_eq!(call(server, 5), (StatusCode::Unset, Some(Value::Integer(5)), false));
        assert_eq!(call(server, 13), (StatusCode::Error, Some(Value::Integer(13)), false));
        assert_eq!(call(client, 5), (StatusCode::Error, Some(Value::Integer(5)), false));
        let http = Span::from_record(&RequestRecord { status: Some(404), ..RequestRecord::default() });
        assert_eq!((http.status.code, http.attributes.get("http.response.status_code")), (StatusCode::Unset, Some(&Value::Integer(404))));
    }
}
