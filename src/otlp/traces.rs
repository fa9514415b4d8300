//! Spans: OTLP ⇄ `Span` events, and request records as spans.

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span as ProtoSpan, Status};

use super::{attributes_to_map, id, map_to_attributes, resource, resource_map, Decoded, Groups, Scope};
use crate::event::{Attributes, Event, EventData, Span, SpanEvent, SpanKind, SpanLink, SpanStatus, StatusCode, Value};

/// Spans with ids of the wrong length are refused (the spec calls them invalid).
pub fn decode(request: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for resource_spans in request.resource_spans {
        let resource = resource_map(resource_spans.resource);
        for scope_spans in resource_spans.scope_spans {
            let scope = Scope::from_proto(scope_spans.scope);
            for proto in scope_spans.spans {
                match span_from_proto(proto, &resource, &scope) {
                    Ok(span) => out.events.push(Event::span(span)),
                    Err(why) => out.reject(|| why),
                }
            }
        }
    }
    out
}

pub fn response(decoded: &Decoded) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (decoded.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: decoded.rejected as i64,
            error_message: decoded.error.clone().unwrap_or_default(),
        }),
    }
}

fn span_from_proto(proto: ProtoSpan, resource: &Attributes, scope: &Scope) -> Result<Span, String> {
    let trace_id = id(&proto.trace_id)
        .filter(|id| *id != [0; 16])
        .ok_or_else(|| format!("span `{}`: trace_id must be 16 bytes, not all zero (got {} bytes)", proto.name, proto.trace_id.len()))?;
    let span_id = id(&proto.span_id)
        .filter(|id| *id != [0; 8])
        .ok_or_else(|| format!("span `{}`: span_id must be 8 bytes, not all zero (got {} bytes)", proto.name, proto.span_id.len()))?;
    let parent_span_id = match proto.parent_span_id.len() {
        0 => None,
        _ => Some(id(&proto.parent_span_id).ok_or_else(|| {
            format!("span `{}`: parent_span_id must be empty or 8 bytes (got {})", proto.name, proto.parent_span_id.len())
        })?),
    };
    let mut links = Vec::with_capacity(proto.links.len());
    for link in proto.links {
        links.push(SpanLink {
            trace_id: id(&link.trace_id).ok_or_else(|| format!("span `{}`: a link's trace_id must be 16 bytes", proto.name))?,
            span_id: id(&link.span_id).ok_or_else(|| format!("span `{}`: a link's span_id must be 8 bytes", proto.name))?,
            trace_state: link.trace_state,
            attributes: attributes_to_map(link.attributes),
            flags: link.flags,
            dropped_attributes_count: link.dropped_attributes_count,
        });
    }
    let attributes = attributes_to_map(proto.attributes);
    let status = proto.status.unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: proto.trace_state,
        request_id: request_id(&attributes),
        name: proto.name,
        kind: kind_from_proto(proto.kind),
        start_time_unix_nano: proto.start_time_unix_nano,
        end_time_unix_nano: proto.end_time_unix_nano,
        status: SpanStatus { code: code_from_proto(status.code), message: status.message },
        attributes,
        resource: resource.clone(),
        scope_name: scope.name.clone().into(),
        scope_version: scope.version.clone().into(),
        scope_attributes: scope.attributes.clone(),
        events: proto
            .events
            .into_iter()
            .map(|e| SpanEvent {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: attributes_to_map(e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        links,
        flags: proto.flags,
        dropped_attributes_count: proto.dropped_attributes_count,
        dropped_events_count: proto.dropped_events_count,
        dropped_links_count: proto.dropped_links_count,
    })
}

/// The x-request-id that joins this span to gateway logs and network flows:
/// Kong's OpenTelemetry plugin sets `kong.request.id`; instrumented apps may
/// record the header (semantic conventions: a string array; Python's
/// instrumentations write the name with underscores).
fn request_id(attributes: &Attributes) -> Option<String> {
    const KEYS: [&str; 5] = [
        "kong.request.id",
        "http.request.header.x-request-id",
        "http.request.header.x_request_id",
        "http.request.header.x-kong-request-id",
        "http.request.header.x_kong_request_id",
    ];
    KEYS.iter().find_map(|key| match attributes.get(*key)? {
        Value::Array(items) => items.first().map(|v| v.to_string_lossy().into_owned()),
        value => Some(value.to_string_lossy().into_owned()),
    })
}

fn kind_from_proto(kind: i32) -> SpanKind {
    match span::SpanKind::try_from(kind).unwrap_or(span::SpanKind::Unspecified) {
        span::SpanKind::Unspecified => SpanKind::Unspecified,
        span::SpanKind::Internal => SpanKind::Internal,
        span::SpanKind::Server => SpanKind::Server,
        span::SpanKind::Client => SpanKind::Client,
        span::SpanKind::Producer => SpanKind::Producer,
        span::SpanKind::Consumer => SpanKind::Consumer,
    }
}

fn kind_to_proto(kind: SpanKind) -> span::SpanKind {
    match kind {
        SpanKind::Unspecified => span::SpanKind::Unspecified,
        SpanKind::Internal => span::SpanKind::Internal,
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Client => span::SpanKind::Client,
        SpanKind::Producer => span::SpanKind::Producer,
        SpanKind::Consumer => span::SpanKind::Consumer,
    }
}

fn code_from_proto(code: i32) -> StatusCode {
    match status::StatusCode::try_from(code).unwrap_or(status::StatusCode::Unset) {
        status::StatusCode::Unset => StatusCode::Unset,
        status::StatusCode::Ok => StatusCode::Ok,
        status::StatusCode::Error => StatusCode::Error,
    }
}

fn code_to_proto(code: StatusCode) -> status::StatusCode {
    match code {
        StatusCode::Unset => status::StatusCode::Unset,
        StatusCode::Ok => status::StatusCode::Ok,
        StatusCode::Error => status::StatusCode::Error,
    }
}

/// The spans among `events` (request records become spans), as one request.
/// Other events are not spans: the caller does not pass them.
pub fn encode<'a>(events: impl IntoIterator<Item = &'a Event>) -> ExportTraceServiceRequest {
    let mut groups = Groups::new();
    for event in events {
        match &event.data {
            EventData::Span(span) => push(&mut groups, span),
            EventData::Record(record) => push(&mut groups, &Span::from_record(record)),
            EventData::Log(_) | EventData::Metric(_) => {}
        }
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .groups
            .into_iter()
            .map(|(resource_map, scopes)| ResourceSpans {
                resource: resource(&resource_map),
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| ScopeSpans { scope: scope.to_proto(), spans, schema_url: String::new() })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn push(groups: &mut Groups<Attributes, ProtoSpan>, span: &Span) {
    let scope =
        Scope { name: span.scope_name.to_string(), version: span.scope_version.to_string(), attributes: span.scope_attributes.clone() };
    groups.push(span.resource.clone(), scope, span_to_proto(span));
}

fn span_to_proto(span: &Span) -> ProtoSpan {
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        trace_state: span.trace_state.clone(),
        parent_span_id: span.parent_span_id.map(|id| id.to_vec()).unwrap_or_default(),
        flags: span.flags,
        name: span.name.clone(),
        kind: kind_to_proto(span.kind) as i32,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: map_to_attributes(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: map_to_attributes(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links: span
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.to_vec(),
                span_id: l.span_id.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: map_to_attributes(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: span.dropped_links_count,
        status: Some(Status { message: span.status.message.clone(), code: code_to_proto(span.status.code) as i32 }),
    }
}
