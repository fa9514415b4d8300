//! The built-in tables: their columns, their DDL for the server's version,
//! and the RowBinary encoding of a request record, all from one column list.

use chrono::{DateTime, Utc};

use super::quote_identifier;
use crate::event::RequestRecord;

/// `DateTime64`, `LowCardinality` and TTL are there from ClickHouse 20.1 on.
pub fn has_datetime64(version: &str) -> bool {
    version.split('.').next().and_then(|major| major.parse::<u32>().ok()).is_some_and(|major| major >= 20)
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
    ("client_ip", Column::Text),
    ("client_port", Column::U16),
    ("server_ip", Column::Text),
    ("server_port", Column::U16),
    ("tries", Column::Count),
    ("response_source", Column::Text),
    ("pid", Column::U32),
    ("thread_id", Column::U32),
    ("process_name", Column::Text),
    ("container_id", Column::Text),
    ("pod", Column::Text),
    ("tcp_seq_request", Column::U32),
    ("tcp_seq_response", Column::U32),
    ("syscall_trace_id_request", Column::U64),
    ("syscall_trace_id_response", Column::U64),
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
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

fn record_fields(r: &RequestRecord) -> [Field<'_>; 40] {
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
        Field::Text(text(&r.client_ip)),
        Field::U16(r.client_port),
        Field::Text(text(&r.server_ip)),
        Field::U16(r.server_port),
        Field::Count(r.tries),
        Field::Text(text(&r.response_source)),
        Field::U32(r.pid),
        Field::U32(r.thread_id),
        Field::Text(text(&r.process_name)),
        Field::Text(text(&r.container_id)),
        Field::Text(text(&r.pod)),
        Field::U32(r.tcp_seq_request),
        Field::U32(r.tcp_seq_response),
        Field::U64(r.syscall_trace_id_request),
        Field::U64(r.syscall_trace_id_response),
    ]
}

/// The request record's table. ORDER BY `time` alone: the sorting key may not
/// be Nullable on old servers, and every query of a time range reads few parts;
/// partitions are days, so old data goes by dropping partitions (or by a TTL
/// added with ALTER TABLE on servers that have it).
pub fn create_table_sql(database: &str, table: &str, modern: bool) -> String {
    let columns: Vec<String> = REQUEST_RECORD.iter().map(|(name, column)| format!("    {name} {}", column.sql(modern))).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n) ENGINE = MergeTree PARTITION BY toDate(time) ORDER BY time",
        quote_identifier(database),
        quote_identifier(table),
        columns.join(",\n")
    )
}

/// Append one record in ClickHouse's RowBinary format, columns in table order.
pub fn write_row_binary(record: &RequestRecord, modern: bool, out: &mut Vec<u8>) {
    for field in record_fields(record) {
        match field {
            Field::Time(t) if modern => out.extend_from_slice(&t.timestamp_millis().to_le_bytes()),
            Field::Time(t) => out.extend_from_slice(&(t.timestamp().clamp(0, u32::MAX as i64) as u32).to_le_bytes()),
            Field::Label(s) => write_string(s, out),
            Field::Count(n) => out.extend_from_slice(&n.to_le_bytes()),
            Field::Text(v) => nullable(v, out, |s, out| write_string(s, out)),
            Field::U16(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
            Field::U32(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
            Field::U64(v) => nullable(v, out, |n, out| out.extend_from_slice(&n.to_le_bytes())),
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
    let mut len = s.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_columns() {
        let record = RequestRecord::default();
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
        let record = RequestRecord { time: DateTime::from_timestamp(1_732_613_000, 121_000_000).unwrap(), protocol: "http".into(), status: Some(200), ..Default::default() };
        let mut old = Vec::new();
        write_row_binary(&record, false, &mut old);
        assert_eq!(&old[..4], &1_732_613_000u32.to_le_bytes());
        let mut modern = Vec::new();
        write_row_binary(&record, true, &mut modern);
        assert_eq!(&modern[..8], &1_732_613_000_121i64.to_le_bytes());
        // observation_point "gateway", signal_source "kong", protocol "http", then 9 null texts, then status 200.
        assert_eq!(&modern[8..35], b"\x07gateway\x04kong\x04http\x01\x01\x01\x01\x01\x01\x01\x01\x01");
        assert_eq!(&modern[35..38], &[0, 200, 0]);
    }
}
