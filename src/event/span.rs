use serde::{Serialize, Serializer};

use super::ObjectMap;

/// An OpenTelemetry span, plus the keys span stitching joins on.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Span {
    #[serde(serialize_with = "hex")]
    pub trace_id: [u8; 16],
    #[serde(serialize_with = "hex")]
    pub span_id: [u8; 8],
    #[serde(serialize_with = "hex_opt")]
    pub parent_span_id: Option<[u8; 8]>,
    pub trace_state: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status: SpanStatus,
    pub attributes: ObjectMap,
    pub resource: ObjectMap,
    pub scope_name: String,
    pub scope_version: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SpanStatus {
    pub code: StatusCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: ObjectMap,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SpanLink {
    #[serde(serialize_with = "hex")]
    pub trace_id: [u8; 16],
    #[serde(serialize_with = "hex")]
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub attributes: ObjectMap,
    pub flags: u32,
    pub dropped_attributes_count: u32,
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

/// A W3C `traceparent` header, `00-<trace id>-<parent id>-<flags>` → (trace id, parent span id).
pub fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace, 32) && hex(span, 16)).then(|| (trace.to_ascii_lowercase(), span.to_ascii_lowercase()))
}
