//! Kong's log entries (`kong.log.serialize()`), as its http-log, file-log,
//! tcp-log, udp-log and syslog plugins write them, and their normalization
//! into the request record. Shared by every source that reads Kong entries
//! (`kong_http_log`, `kong_file_log`, and `socket`/`syslog` with the `kong`
//! codec), so there is one decoder.

mod entry;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

pub use entry::KongEntry;

use crate::event::{parse_traceparent, ObservationPoint, RequestRecord, SignalSource, Value};

/// Decode a body or line: one entry (an object) or several (an array).
/// All or nothing: any bad entry fails the whole body, with its position.
pub fn decode(body: &[u8], keep_raw: bool) -> Result<Vec<RequestRecord>, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let entries: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
        entries
            .into_iter()
            .enumerate()
            .map(|(index, raw)| decode_one(raw.get(), keep_raw).map_err(|e| format!("entry {index} of the array: {e}")))
            .collect()
    } else {
        let text = std::str::from_utf8(body).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        Ok(vec![decode_one(text, keep_raw)?])
    }
}

fn decode_one(text: &str, keep_raw: bool) -> Result<RequestRecord, String> {
    if !text.trim_start().starts_with('{') {
        return Err("a Kong log entry must be a JSON object".into());
    }
    let entry: KongEntry = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    let mut record = normalize(entry);
    if keep_raw {
        record.raw = Some(serde_json::from_str::<Value>(text).map_err(|e| json_error(&e))?);
    }
    Ok(record)
}

fn json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    // serde_json ends its message with " at line L column C"; say it first.
    match message.rfind(" at line ") {
        Some(at) => format!("invalid JSON at line {} column {}: {}", e.line(), e.column(), &message[..at]),
        None => format!("invalid JSON: {message}"),
    }
}

/// Kong's entry → the request record, as the gateway observed the request.
pub fn normalize(entry: KongEntry) -> RequestRecord {
    let us = |ms: Option<f64>| ms.filter(|v| *v >= 0.0).map(|v| (v * 1000.0).round() as u64);
    let count = |v: Option<f64>| v.filter(|v| *v >= 0.0).map(|v| v as u64);
    let KongEntry {
        request,
        response,
        upstream_status,
        latencies,
        tries,
        route,
        service,
        consumer,
        client_ip,
        started_at,
        source,
        workspace,
        workspace_name,
        trace_id,
        correlation_id,
        session,
        ..
    } = entry;
    let request = request.unwrap_or_default();
    let response = response.unwrap_or_default();

    let (path, query) = match request.uri.as_deref() {
        Some(uri) => match uri.split_once('?') {
            Some((path, query)) => (Some(path.to_string()), Some(query.to_string())),
            None => (Some(uri.to_string()), None),
        },
        None => (None, None),
    };
    let scheme = request.url.as_deref().and_then(|u| u.split_once("://")).map(|(s, _)| s.to_ascii_lowercase());
    let host = request.headers.host.clone().or_else(|| {
        let rest = request.url.as_deref()?.split_once("://")?.1;
        Some(rest.split(['/', '?']).next()?.to_string())
    });
    let endpoint = route
        .as_ref()
        .and_then(|r| r.paths.iter().find(|p| path.as_deref().is_some_and(|path| path.starts_with(p.as_str()))).cloned())
        .or_else(|| path.clone());
    let (mut trace, mut parent_span) = (trace_id_of(&trace_id), None);
    // The incoming traceparent's span is the caller's: the parent of Kong's own span.
    if let Some((t, s)) = request.headers.traceparent.as_deref().and_then(parse_traceparent) {
        if trace.as_ref().is_none_or(|known| *known == t) {
            trace = Some(t);
            parent_span = Some(s);
        }
    }
    let last_try = tries.last();
    let (protocol, status, duration, request_size, response_size) = match &session {
        // A stream (L4) entry: sizes and status live in `session`.
        Some(s) => ("tcp".to_string(), s.status, latencies.session, s.received, s.sent),
        None => (scheme.unwrap_or_else(|| "http".into()), response.status, latencies.request, request.size, response.size),
    };
    RequestRecord {
        time: started_at.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)).unwrap_or_else(Utc::now),
        observation_point: ObservationPoint::Gateway,
        signal_source: SignalSource::Kong,
        protocol,
        service: service.as_ref().and_then(|s| s.name.clone().or_else(|| s.host.clone()).or_else(|| s.id.clone())),
        route: route.as_ref().and_then(|r| r.name.clone().or_else(|| r.id.clone())),
        consumer: consumer.and_then(|c| c.username.or(c.custom_id).or(c.id)),
        workspace: workspace_name.or(workspace),
        method: request.method,
        host,
        path,
        query,
        endpoint,
        status: status.filter(|s| (0.0..1000.0).contains(s)).map(|s| s as u16),
        upstream_status,
        duration_us: us(duration),
        gateway_us: us(latencies.kong),
        upstream_us: us(latencies.proxy),
        receive_us: us(latencies.receive),
        request_size: count(request_size),
        response_size: count(response_size),
        trace_id: trace,
        span_id: None,
        parent_span_id: parent_span,
        request_id: request.id.or(request.headers.x_request_id).or(response.headers.x_kong_request_id).or(correlation_id),
        client_ip,
        client_port: None,
        server_ip: last_try.and_then(|t| t.ip.clone()),
        server_port: last_try.and_then(|t| t.port).filter(|p| (0.0..65536.0).contains(p)).map(|p| p as u16),
        tries: tries.len() as u32,
        response_source: source,
        ..RequestRecord::default()
    }
}

/// The trace id Kong logged, as 32 lowercase hex digits where the format allows.
fn trace_id_of(ids: &std::collections::BTreeMap<String, String>) -> Option<String> {
    for format in ["w3c", "b3", "ot", "jaeger", "gcp", "aws", "datadog"] {
        let Some(id) = ids.get(format) else { continue };
        let hex = match format {
            // aws: "1-<8 hex time>-<24 hex>"; the id is the two hex parts.
            "aws" => id.split('-').skip(1).collect::<String>(),
            // datadog: a decimal 64-bit id.
            "datadog" => match id.parse::<u64>() {
                Ok(n) => format!("{n:032x}"),
                Err(_) => id.clone(),
            },
            _ => id.clone(),
        };
        let hex = hex.to_ascii_lowercase();
        return Some(if hex.len() < 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) { format!("{hex:0>32}") } else { hex });
    }
    None
}

#[cfg(test)]
mod tests;
