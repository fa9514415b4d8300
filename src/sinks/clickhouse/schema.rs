//! The built-in tables: their columns, their DDL for the server's version,
//! and the RowBinary encoding of a request record, all from one column list;
//! the span and metric tables, written as JSONEachRow.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map as JsonMap, Value as Json};

use super::quote_identifier;
use crate::event::{Attributes, Metric, MetricValue, RequestRecord, Span, Value};

/// What the server's types allow, from `SELECT version()`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Server {
    /// `DateTime64`, `LowCardinality` (20.1 on).
    pub datetime64: bool,
    /// `Map(K, V)` without an experimental setting (21.8 on).
    pub map: bool,
}

impl Server {
    pub fn from_version(version: &str) -> Server {
        let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Server { datetime64: major >= 20, map: (major, minor) >= (21, 8) }
    }

    fn time(self) -> &'static str {
        if self.datetime64 {
            "DateTime64(3)"
        } else {
            "DateTime"
        }
    }

    fn label(self) -> &'static str {
        if self.datetime64 {
            "LowCardinality(String)"
        } else {
            "String"
        }
    }

    /// A string map column: `Map`, or two parallel arrays `NAME_keys`/`NAME_values`.
    fn map_columns(self, name: &str) -> String {
        if self.map {
            format!("    {name} Map(LowCardinality(String), String)")
        } else {
            format!("    {name}_keys Array(String),\n    {name}_values Array(String)")
        }
    }

    /// A time as `DateTime`/`DateTime64(3)` read it in JSONEachRow without settings.
    pub fn time_text(self, t: DateTime<Utc>) -> String {
        if self.datetime64 {
            t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
        } else {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        }
    }

    /// Insert a string map into a JSON row, in this server's layout.
    fn put_map<'a>(self, row: &mut JsonMap<String, Json>, name: &str, entries: impl Iterator<Item = (&'a str, String)>) {
        let (keys, values): (Vec<&str>, Vec<String>) = entries.unzip();
        if self.map {
            row.insert(name.into(), Json::Object(keys.into_iter().map(String::from).zip(values.into_iter().map(Json::String)).collect()));
        } else {
            row.insert(format!("{name}_keys"), json!(keys));
            row.insert(format!("{name}_values"), json!(values));
        }
    }
}

/// A column's type, written per server generation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    /// `DateTime64(3)`, or `DateTime` on old servers.
    Time,
    /// `LowCardinality(String)`, or `String` on old servers.
    Label,
    Text,
    U16,
    U32,
    U64,
    /// A plain `UInt32`.
    Count,
    /// `Bool` (an alias of `Int8` before 21.12), or `UInt8` on old servers.
    Bool,
    /// A string map: `Map`, or `NAME_keys`/`NAME_values` arrays on old servers.
    Tags,
}

impl Column {
    fn sql(self, modern: bool) -> &'static str {
        match (self, modern) {
            (Column::Time, true) => "DateTime64(3)",
            (Column::Time, false) => "DateTime",
            (Column::Label, true) => "LowCardinality(String)",
            (Column::Label, false) => "String",
            (Column::Text, _) => "Nullable(String)",
            (Column::U16, _) => "Nullable(UInt16)",
            (Column::U32, _) => "Nullable(UInt32)",
            (Column::U64, _) => "Nullable(UInt64)",
            (Column::Count, _) => "UInt32",
            (Column::Bool, true) => "Bool",
            (Column::Bool, false) => "UInt8",
            (Column::Tags, true) => "Map(LowCardinality(String), String)",
            (Column::Tags, false) => "Array(String)",
        }
    }
}

/// The request record's columns, in table order. `record_fields` gives the
/// values in the same order.
const REQUEST_RECORD: &[(&str, Column)] = &[
    ("time", Column::Time),
    ("observation_point", Column::Label),
    ("signal_source", Column::Label),
    ("protocol", Column::Label),
    ("service", Column::Text),
    ("route", Column::Text),
    ("consumer", Column::Text),
    ("workspace", Column::Text),
    ("method", Column::Text),
    ("host", Column::Text),
    ("path", Column::Text),
    ("query", Column::Text),
    ("endpoint", Column::Text),
    ("status", Column::U16),
    ("upstream_status", Column::Text),
    ("duration_us", Column::U64),
    ("gateway_us", Column::U64),
    ("upstream_us", Column::U64),
    ("receive_us", Column::U64),
    ("request_size", Column::U64),
    ("response_size", Column::U64),
    ("trace_id", Column::Text),
    ("span_id", Column::Text),
    ("parent_span_id", Column::Text),
    ("request_id", Column::Text),
    ("response_request_id", Column::Text),
    ("client_ip", Column::Text),
    ("client_port", Column::U16),
    ("server_ip", Column::Text),
    ("server_port", Column::U16),
    ("tries", Column::Count),
    ("response_source", Column::Text),
    ("host_name", Column::Text),
    ("pid", Column::U32),
    ("thread_id", Column::U32),
    ("process_name", Column::Text),
    ("container_id", Column::Text),
    ("pod", Column::Text),
    ("tcp_seq_request", Column::U32),
    ("tcp_seq_response", Column::U32),
    ("syscall_trace_id_request", Column::U64),
    ("syscall_trace_id_response", Column::U64),
    ("tls", Column::Bool),
    ("error", Column::Text),
    ("cmdline", Column::Text),
    ("tags", Column::Tags),
];

/// One field's value, typed as its column.
enum Field<'a> {
    Time(DateTime<Utc>),
    Label(&'a str),
    Text(Option<&'a str>),
    U16(Option<u16>),
    U32(Option<u32>),
    U64(Option<u64>),
    Count(u32),
    Bool(bool),
    Tags(&'a BTreeMap<String, String>),
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

fn record_fields(r: &RequestRecord) -> [Field<'_>; 46] {
    [
        Field::Time(r.time),
        Field::Label(r.observation_point.as_str()),
        Field::Label(r.signal_source.as_str()),
        Field::Label(&r.protocol),
        Field::Text(text(&r.service)),
        Field::Text(text(&r.route)),
        Field::Text(text(&r.consumer)),
        Field::Text(text(&r.workspace)),
        Field::Text(text(&r.method)),
        Field::Text(text(&r.host)),
        Field::Text(text(&r.path)),
        Field::Text(text(&r.query)),
        Field::Text(text(&r.endpoint)),
        Field::U16(r.status),
        Field::Text(text(&r.upstream_status)),
        Field::U64(r.duration_us),
        Field::U64(r.gateway_us),
        Field::U64(r.upstream_us),
        Field::U64(r.receive_us),
        Field::U64(r.request_size),
        Field::U64(r.response_size),
        Field::Text(text(&r.trace_id)),
        Field::Text(text(&r.span_id)),
        Field::Text(text(&r.parent_span_id)),
        Field::Text(text(&r.request_id)),
        Field::Text(text(&r.response_request_id)),
        Field::Text(text(&r.client_ip)),
        Field::U16(r.client_port),
        Field::Text(text(&r.server_ip)),
        Field::U16(r.server_port),
        Field::Count(r.tries),
        Field::Text(text(&r.response_source)),
        Field::Text(text(&r.host_name)),
        Field::U32(r.pid),
        Field::U32(r.thread_id),
        Field::Text(text(&r.process_name)),
        Field::Text(text(&r.container_id)),
        Field::Text(text(&r.pod)),
        Field::U32(r.tcp_seq_request),
        Field::U32(r.tcp_seq_response),
        Field::U64(r.syscall_trace_id_request),
        Field::U64(r.syscall_trace_id_response),
        Field::Bool(r.tls),
        Field::Text(text(&r.error)),
        Field::Text(text(&r.cmdline)),
        Field::Tags(&r.tags),
    ]
}

/// The request record's table. ORDER BY `time` alone: the sorting key may not
/// be Nullable on old servers, and every query of a time range reads few parts;
/// partitions are days, so old data goes by dropping partitions (or by a TTL
/// added with ALTER TABLE on servers that have it).
pub fn request_record_table_sql(database: &str, table: &str, server: Server) -> String {
    create_table(database, table, &request_record_columns(server), "time")
}

/// The request-record table's column definitions, in order (`name Type`).
pub fn request_record_columns(server: Server) -> Vec<String> {
    REQUEST_RECORD
        .iter()
        .map(|(name, column)| match column {
            Column::Tags => server.map_columns(name),
            _ => format!("    {name} {}", column.sql(server.datetime64)),
        })
        .collect()
}

fn create_table(database: &str, table: &str, columns: &[String], order_by: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n) ENGINE = MergeTree PARTITION BY toDate(time) ORDER BY {order_by}",
        quote_identifier(database),
        quote_identifier(table),
        columns.join(",\n")
    )
}

/// The span table (as OpenTelemetry's ClickHouse exporter lays it out, in
/// types 18.16 also has). ORDER BY (service_name, name, time): the queries
/// are "this service's operations over this time"; a trace is read by
/// `trace_id` within a time range. Events and links are JSON text.
pub fn span_table_sql(database: &str, table: &str, server: Server) -> String {
    create_table(database, table, &span_columns(server), "(service_name, name, time)")
}

/// The span table's column definitions, in order.
pub fn span_columns(server: Server) -> Vec<String> {
    let (time, label) = (server.time(), server.label());
    vec![
        format!("    time {time}"),
        "    trace_id String".to_string(),
        "    span_id String".to_string(),
        "    parent_span_id String".to_string(),
        "    trace_state String".to_string(),
        format!("    name {label}"),
        format!("    kind {label}"),
        format!("    service_name {label}"),
        "    start_time_unix_nano UInt64".to_string(),
        "    end_time_unix_nano UInt64".to_string(),
        "    duration_ns UInt64".to_string(),
        format!("    status_code {label}"),
        "    status_message String".to_string(),
        "    scope_name String".to_string(),
        "    scope_version String".to_string(),
        "    request_id String".to_string(),
        // Why `stitch` chose the parent (`tapline.link`): "why is my trace broken" in one column.
        format!("    link {label}"),
        server.map_columns("attributes"),
        server.map_columns("resource"),
        "    events String".to_string(),
        "    links String".to_string(),
    ]
}

/// The metric table: one row per metric event. Counters and gauges fill
/// `value`; histograms and summaries `count`, `sum` and their arrays
/// (histogram buckets are not cumulative). ORDER BY (name, time).
pub fn metric_table_sql(database: &str, table: &str, server: Server) -> String {
    create_table(database, table, &metric_columns(server), "(name, time)")
}

/// The metric table's column definitions, in order.
pub fn metric_columns(server: Server) -> Vec<String> {
    let (time, label) = (server.time(), server.label());
    vec![
        format!("    time {time}"),
        format!("    name {label}"),
        "    namespace String".to_string(),
        format!("    kind {label}"),
        format!("    type {label}"),
        server.map_columns("tags"),
        "    value Float64".to_string(),
        "    count UInt64".to_string(),
        "    sum Float64".to_string(),
        "    bucket_upper_limits Array(Float64)".to_string(),
        "    bucket_counts Array(UInt64)".to_string(),
        "    quantiles Array(Float64)".to_string(),
        "    quantile_values Array(Float64)".to_string(),
    ]
}

/// One span as a JSONEachRow line of the span table.
pub fn span_row(span: &Span, server: Server) -> Vec<u8> {
    let start = DateTime::from_timestamp_nanos(span.start_time_unix_nano as i64);
    let service = span.resource.get("service.name").map(attribute_text).unwrap_or_default();
    let mut row = JsonMap::new();
    row.insert("time".into(), json!(server.time_text(start)));
    let ids = serde_json::to_value(span).unwrap_or_default();
    for id in ["trace_id", "span_id", "parent_span_id"] {
        row.insert(id.into(), json!(ids.get(id).and_then(Json::as_str).unwrap_or_default()));
    }
    row.insert("trace_state".into(), json!(span.trace_state));
    row.insert("name".into(), json!(span.name));
    row.insert("kind".into(), ids.get("kind").cloned().unwrap_or_default());
    row.insert("service_name".into(), json!(service));
    row.insert("start_time_unix_nano".into(), json!(span.start_time_unix_nano));
    row.insert("end_time_unix_nano".into(), json!(span.end_time_unix_nano));
    row.insert("duration_ns".into(), json!(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano)));
    row.insert("status_code".into(), ids.pointer("/status/code").cloned().unwrap_or_default());
    row.insert("status_message".into(), json!(span.status.message));
    row.insert("scope_name".into(), json!(span.scope_name));
    row.insert("scope_version".into(), json!(span.scope_version));
    row.insert("request_id".into(), json!(span.request_id.as_deref().unwrap_or_default()));
    row.insert("link".into(), json!(span.attributes.get("tapline.link").map(attribute_text).unwrap_or_default()));
    server.put_map(&mut row, "attributes", attribute_entries(&span.attributes));
    server.put_map(&mut row, "resource", attribute_entries(&span.resource));
    row.insert("events".into(), json!(ids.get("events").map(Json::to_string).unwrap_or_default()));
    row.insert("links".into(), json!(ids.get("links").map(Json::to_string).unwrap_or_default()));
    line(row)
}

/// One metric as a JSONEachRow line of the metric table.
pub fn metric_row(metric: &Metric, server: Server) -> Vec<u8> {
    let mut row = JsonMap::new();
    row.insert("time".into(), json!(server.time_text(metric.timestamp.unwrap_or_else(Utc::now))));
    row.insert("name".into(), json!(metric.name));
    row.insert("namespace".into(), json!(metric.namespace.as_deref().unwrap_or_default()));
    row.insert("kind".into(), serde_json::to_value(metric.kind).unwrap_or_default());
    server.put_map(&mut row, "tags", metric.tags.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let (kind, value, count, sum) = match &metric.value {
        MetricValue::Counter { value } => ("counter", *value, 0, 0.0),
        MetricValue::Gauge { value } => ("gauge", *value, 0, 0.0),
        MetricValue::Histogram { buckets, count, sum } => {
            row.insert("bucket_upper_limits".into(), json!(buckets.iter().map(|b| b.upper_limit).collect::<Vec<_>>()));
            row.insert("bucket_counts".into(), json!(buckets.iter().map(|b| b.count).collect::<Vec<_>>()));
            ("histogram", 0.0, *count, *sum)
        }
        MetricValue::Summary { quantiles, count, sum } => {
            row.insert("quantiles".into(), json!(quantiles.iter().map(|q| q.quantile).collect::<Vec<_>>()));
            row.insert("quantile_values".into(), json!(quantiles.iter().map(|q| q.value).collect::<Vec<_>>()));
            ("summary", 0.0, *count, *sum)
        }
        MetricValue::Set { values } => ("set", values.len() as f64, 0, 0.0),
        MetricValue::Distribution { samples, .. } => {
            let count = samples.iter().map(|(_, rate)| u64::from(*rate)).sum();
            let sum = samples.iter().map(|(v, rate)| v * f64::from(*rate)).sum();
            ("distribution", 0.0, count, sum)
        }
    };
    row.insert("type".into(), json!(kind));
    // JSON has no NaN or infinity: ClickHouse gets 0 for them.
    row.insert("value".into(), json!(if value.is_finite() { value } else { 0.0 }));
    row.insert("count".into(), json!(count));
    row.insert("sum".into(), json!(if sum.is_finite() { sum } else { 0.0 }));
    line(row)
}

fn line(row: JsonMap<String, Json>) -> Vec<u8> {
    let mut out = serde_json::to_vec(&Json::Object(row)).unwrap_or_default();
    out.push(b'\n');
    out
}

fn attribute_entries(map: &Attributes) -> impl Iterator<Item = (&str, String)> {
    map.iter().map(|(k, v)| (k.as_ref(), attribute_text(v)))
}

/// An attribute value as map text: strings as they are, the rest as JSON.
fn attribute_text(value: &Value) -> String {
    match value.to_str_lossy() {
        Some(text) => text.into_owned(),
        None => serde_json::to_string(value).unwrap_or_default(),
    }
}

/// Append one record in ClickHouse's RowBinary format, columns in table order.
pub fn write_row_binary(record: &RequestRecord, server: Server, out: &mut Vec<u8>) {
    for field in record_fields(record) {
        match field {
            Field::Time(t) if server.datetime64 => out.extend_from_slice(&t.timestamp_millis().to_le_bytes()),
            Field::Time(t) => out.extend_from_slice(&(t.timestamp().clamp(0, u32::MAX as i64) as u32).to_le_bytes()),
            Field::Label(s) => write_string(s, out),
            Field::Count(n) => out.extend_from_slice(&n.to_le_bytes()),
            Field::Bool(b) => out.push(u8::from(b)),
            Field::Text(v) => nullable(v, out, write_string),
            Field::U16(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
            Field::U32(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
            Field::U64(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
            // A Map is its length and the pairs; the old layout is two arrays.
            Field::Tags(tags) if server.map => {
                write_length(tags.len(), out);
                for (key, value) in tags {
                    write_string(key, out);
                    write_string(value, out);
                }
            }
            Field::Tags(tags) => {
                write_length(tags.len(), out);
                tags.keys().for_each(|key| write_string(key, out));
                write_length(tags.len(), out);
                tags.values().for_each(|value| write_string(value, out));
            }
        }
    }
}

/// `Nullable(T)`: a null flag byte, then the value when not null.
fn nullable<T>(value: Option<T>, out: &mut Vec<u8>, write: impl FnOnce(T, &mut Vec<u8>)) {
    match value {
        Some(v) => {
            out.push(0);
            write(v, out);
        }
        None => out.push(1),
    }
}

/// A String: its length as unsigned LEB128, then its bytes.
fn write_string(s: &str, out: &mut Vec<u8>) {
    write_length(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// A length (of a string, an array, a map) as unsigned LEB128.
fn write_length(len: usize, out: &mut Vec<u8>) {
    let mut len = len as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_columns() {
        let record = RequestRecord { tags: [("team".to_string(), "payments".to_string())].into(), ..Default::default() };
        let fields = record_fields(&record);
        assert_eq!(fields.len(), REQUEST_RECORD.len());
        for (field, (name, column)) in fields.iter().zip(REQUEST_RECORD) {
            let expected = match field {
                Field::Time(_) => Column::Time,
                Field::Label(_) => Column::Label,
                Field::Text(_) => Column::Text,
                Field::U16(_) => Column::U16,
                Field::U32(_) => Column::U32,
                Field::U64(_) => Column::U64,
                Field::Count(_) => Column::Count,
                Field::Bool(_) => Column::Bool,
                Field::Tags(_) => Column::Tags,
            };
            assert_eq!(expected, *column, "{name}");
        }
        // Every record field but `raw` has its column.
        let json = serde_json::to_value(&record).unwrap();
        let names: Vec<&str> = REQUEST_RECORD.iter().map(|(n, _)| *n).collect();
        assert_eq!(json.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>().len(), names.len());
        assert!(json.as_object().unwrap().keys().all(|k| names.contains(&k.as_str())));
    }

    #[test]
    fn row_binary_bytes() {
        let mut out = Vec::new();
        write_string(&"x".repeat(200), &mut out);
        assert_eq!(&out[..2], &[0xc8, 0x01]);
        let record = RequestRecord {
            time: DateTime::from_timestamp(1_732_613_000, 121_000_000).unwrap(),
            protocol: "http".into(),
            status: Some(200),
            ..Default::default()
        };
        let mut old = Vec::new();
        write_row_binary(&record, Server::default(), &mut old);
        assert_eq!(&old[..4], &1_732_613_000u32.to_le_bytes());
        let mut modern = Vec::new();
        write_row_binary(&record, Server { datetime64: true, map: true }, &mut modern);
        assert_eq!(&modern[..8], &1_732_613_000_121i64.to_le_bytes());
        // observation_point "gateway", signal_source "kong", protocol "http", then 9 null texts, then status 200.
        assert_eq!(&modern[8..35], b"\x07gateway\x04kong\x04http\x01\x01\x01\x01\x01\x01\x01\x01\x01");
        assert_eq!(&modern[35..38], &[0, 200, 0]);
        // The last four columns: tls, error, cmdline, tags (an empty map; two empty arrays on old servers).
        assert_eq!(&modern[modern.len() - 4..], &[0, 1, 1, 0]);
        assert_eq!(&old[old.len() - 5..], &[0, 1, 1, 0, 0]);
        let mut tls = Vec::new();
        let tags = [("team".to_string(), "pay".to_string())].into();
        write_row_binary(
            &RequestRecord { tls: true, error: Some("timeout".into()), tags, ..record },
            Server { datetime64: true, map: true },
            &mut tls,
        );
        assert_eq!(&tls[tls.len() - 21..], b"\x01\x00\x07timeout\x01\x01\x04team\x03pay");
    }
}
