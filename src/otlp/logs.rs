//! Logs: OTLP ⇄ log events, with Vector's field names so that its users'
//! programs keep working: `message` (the body), `attributes`, `resources`,
//! `scope`, `severity_text`, `severity_number`, `trace_id`, `span_id` (hex),
//! `flags`, `dropped_attributes_count`, `event_name`, `timestamp`,
//! `observed_timestamp`, `source_type`. Empty fields are left out.

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::{
    attributes_to_map, from_hex, hex, key_value, map_to_attributes, resource_map, value_from_any, value_to_any, Decoded, Groups, Scope,
};
use crate::event::{Event, EventData, KeyString, ObjectMap, Value};

/// Fields the encoder reads; any other top-level field becomes an attribute.
const KNOWN: &[&str] = &[
    "message",
    "attributes",
    "resources",
    "scope",
    "severity_text",
    "severity_number",
    "trace_id",
    "span_id",
    "flags",
    "dropped_attributes_count",
    "event_name",
    "timestamp",
    "observed_timestamp",
    "source_type",
];

pub fn decode(request: ExportLogsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for resource_logs in request.resource_logs {
        let resource = resource_map(resource_logs.resource);
        for scope_logs in resource_logs.scope_logs {
            let scope = Scope::from_proto(scope_logs.scope);
            for record in scope_logs.log_records {
                match log_from_proto(record, &resource, &scope) {
                    Ok(log) => out.events.push(Event::log(log)),
                    Err(why) => out.reject(|| why),
                }
            }
        }
    }
    out
}

pub fn response(decoded: &Decoded) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (decoded.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: decoded.rejected as i64,
            error_message: decoded.error.clone().unwrap_or_default(),
        }),
    }
}

fn log_from_proto(record: LogRecord, resource: &ObjectMap, scope: &Scope) -> Result<Value, String> {
    if !matches!(record.trace_id.len(), 0 | 16) || !matches!(record.span_id.len(), 0 | 8) {
        return Err(format!(
            "a log record's trace_id must be empty or 16 bytes and its span_id empty or 8 (got {} and {})",
            record.trace_id.len(),
            record.span_id.len()
        ));
    }
    let mut log = ObjectMap::new();
    let mut put = |key: &str, value: Value| {
        log.insert(key.into(), value);
    };
    if record.body.is_some() {
        put("message", value_from_any(record.body));
    }
    if !record.attributes.is_empty() {
        put("attributes", Value::Object(attributes_to_map(record.attributes)));
    }
    if !resource.is_empty() {
        put("resources", Value::Object(resource.clone()));
    }
    if *scope != Scope::default() {
        let mut object = ObjectMap::new();
        object.insert("name".into(), Value::from(scope.name.as_str()));
        object.insert("version".into(), Value::from(scope.version.as_str()));
        if !scope.attributes.is_empty() {
            object.insert("attributes".into(), Value::Object(scope.attributes.clone()));
        }
        put("scope", Value::Object(object));
    }
    if !record.severity_text.is_empty() {
        put("severity_text", Value::from(record.severity_text));
    }
    if record.severity_number != 0 {
        put("severity_number", Value::Integer(record.severity_number.into()));
    }
    if !record.trace_id.is_empty() {
        put("trace_id", Value::from(hex(&record.trace_id)));
    }
    if !record.span_id.is_empty() {
        put("span_id", Value::from(hex(&record.span_id)));
    }
    if record.flags != 0 {
        put("flags", Value::Integer(record.flags.into()));
    }
    if record.dropped_attributes_count != 0 {
        put("dropped_attributes_count", Value::Integer(record.dropped_attributes_count.into()));
    }
    if !record.event_name.is_empty() {
        put("event_name", Value::from(record.event_name));
    }
    if record.time_unix_nano != 0 {
        put("timestamp", Value::Timestamp(DateTime::<Utc>::from_timestamp_nanos(record.time_unix_nano as i64)));
    }
    if record.observed_time_unix_nano != 0 {
        put("observed_timestamp", Value::Timestamp(DateTime::<Utc>::from_timestamp_nanos(record.observed_time_unix_nano as i64)));
    }
    put("source_type", Value::from("opentelemetry"));
    Ok(Value::Object(log))
}

/// The logs among `events`, grouped by their `resources` and `scope`.
pub fn encode<'a>(events: impl IntoIterator<Item = &'a Event>) -> ExportLogsServiceRequest {
    let mut groups = Groups::new();
    for event in events {
        match &event.data {
            EventData::Log(Value::Object(log)) => {
                let resource = match log.get("resources") {
                    Some(Value::Object(map)) => map.clone(),
                    _ => ObjectMap::new(),
                };
                groups.push(resource, scope(log), log_to_proto(log));
            }
            // A log that is not an object (a bare string …) is the body itself.
            EventData::Log(body) => {
                groups.push(ObjectMap::new(), Scope::default(), LogRecord { body: Some(value_to_any(body)), ..Default::default() })
            }
            EventData::Record(_) | EventData::Metric(_) | EventData::Span(_) => {}
        }
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .groups
            .into_iter()
            .map(|(resource, scopes)| ResourceLogs {
                resource: super::resource(&resource),
                scope_logs: scopes
                    .into_iter()
                    .map(|(scope, log_records)| ScopeLogs { scope: scope.to_proto(), log_records, schema_url: String::new() })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn scope(log: &ObjectMap) -> Scope {
    let Some(Value::Object(scope)) = log.get("scope") else { return Scope::default() };
    let text = |key: &str| scope.get(key).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let attributes = match scope.get("attributes") {
        Some(Value::Object(map)) => map.clone(),
        _ => ObjectMap::new(),
    };
    Scope { name: text("name"), version: text("version"), attributes }
}

fn log_to_proto(log: &ObjectMap) -> LogRecord {
    let text = |key: &str| log.get(key).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let int = |key: &str| match log.get(key) {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    };
    let nanos = |key: &str| match log.get(key) {
        Some(Value::Timestamp(t)) => t.timestamp_nanos_opt().unwrap_or_default().max(0) as u64,
        _ => 0,
    };
    let mut attributes = match log.get("attributes") {
        Some(Value::Object(map)) => map_to_attributes(map),
        _ => Vec::new(),
    };
    let others = log.iter().filter(|(key, _)| !KNOWN.contains(&key.as_str()));
    attributes.extend(others.map(|(key, value): (&KeyString, &Value)| key_value(key.to_string(), value_to_any(value))));
    LogRecord {
        time_unix_nano: nanos("timestamp"),
        observed_time_unix_nano: nanos("observed_timestamp"),
        severity_number: int("severity_number") as i32,
        severity_text: text("severity_text"),
        body: log.get("message").map(value_to_any),
        attributes,
        dropped_attributes_count: int("dropped_attributes_count") as u32,
        flags: int("flags") as u32,
        trace_id: from_hex::<16>(&text("trace_id")).map(|id| id.to_vec()).unwrap_or_default(),
        span_id: from_hex::<8>(&text("span_id")).map(|id| id.to_vec()).unwrap_or_default(),
        event_name: text("event_name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_fields_become_attributes_and_bare_values_bodies() {
        let log = Value::from(serde_json::json!({"message": "hi", "status": 502, "attributes": {"a": 1}, "source_type": "http_server"}));
        let request = encode(&[Event::log(log), Event::log(Value::from("plain text"))]);
        let records = &request.resource_logs[0].scope_logs[0].log_records;
        let keys: Vec<&str> = records[0].attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["a", "status"]);
        assert_eq!(value_from_any(records[0].body.clone()), Value::from("hi"));
        assert_eq!(value_from_any(records[1].body.clone()), Value::from("plain text"));
    }
}
