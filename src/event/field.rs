//! A field of any event kind, named the way `red` dimensions and `enrich`
//! keys name it, read (and written) without converting the event to a VRL
//! object:
//!
//! - request records: their field names (`service`, `status`, `server_ip` …),
//!   `status_class` (`2xx` … `5xx`), and `tags.NAME` for what `enrich` added;
//! - spans: `service.name`, `span.name`, `span.kind`, `status.code` (the
//!   names of OpenTelemetry's span metrics), `trace_id`, `attributes.KEY`,
//!   `resource.KEY` (keys may hold dots: `attributes.http.route`);
//! - metrics: `name`, `namespace`, `tags.NAME`;
//! - logs: a path, as in VRL (`.kubernetes.pod_ip` or `kubernetes.pod_ip`).

use std::borrow::Cow;

use vrl::path::OwnedValuePath;

use super::{Attributes, Event, EventData, Value};

#[derive(Debug, Clone)]
pub struct FieldPath {
    /// As written in the config, for messages.
    pub written: String,
    /// What a metric tag made from this field is called: the name without
    /// its `tags.`/`attributes.`/`resource.` prefix.
    pub tag_name: String,
    part: Part,
    /// The same text as a log path.
    log_path: OwnedValuePath,
    /// The log paths above it (`host` for `host.name`): a plain value there
    /// is not replaced by an object.
    log_parents: Vec<OwnedValuePath>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Named(String),
    Tag(String),
    Attribute(String),
    Resource(String),
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let bare = text.strip_prefix('.').unwrap_or(text);
        if bare.is_empty() {
            return Err("a field name is empty".into());
        }
        let log_path = vrl::path::parse_value_path(bare).map_err(|e| format!("invalid field `{text}`: {e}"))?;
        let prefixed = |prefix: &str| bare.strip_prefix(prefix).filter(|rest| !rest.is_empty()).map(str::to_string);
        let part = if let Some(name) = prefixed("tags.") {
            Part::Tag(name)
        } else if let Some(key) = prefixed("attributes.") {
            Part::Attribute(key)
        } else if let Some(key) = prefixed("resource.") {
            Part::Resource(key)
        } else {
            Part::Named(bare.to_string())
        };
        let tag_name = match &part {
            Part::Named(name) | Part::Tag(name) | Part::Attribute(name) | Part::Resource(name) => name.clone(),
        };
        let log_parents = (1..log_path.segments.len()).map(|n| OwnedValuePath { segments: log_path.segments[..n].to_vec() }).collect();
        Ok(FieldPath { written: text.to_string(), tag_name, part, log_path, log_parents })
    }

    /// A field named as it is, dots and all: a record's own field or a tag,
    /// a span attribute, a metric tag, a log's top-level key (`k8s.pod.name`,
    /// `k8s.pod.label.app.kubernetes.io/name`).
    pub fn literal(name: &str) -> FieldPath {
        let log_path = OwnedValuePath { segments: vec![vrl::path::OwnedSegment::Field(name.into())] };
        FieldPath {
            written: name.to_string(),
            tag_name: name.to_string(),
            part: Part::Named(name.to_string()),
            log_path,
            log_parents: Vec::new(),
        }
    }

    /// The field's value as text; `None` when the event has no such field.
    pub fn get<'a>(&self, event: &'a Event) -> Option<Cow<'a, str>> {
        match &event.data {
            EventData::Record(record) => match &self.part {
                Part::Named(name) if name == "status_class" => record.status.map(|s| Cow::Owned(format!("{}xx", s / 100))),
                Part::Named(name) => match record.field_ref(name)? {
                    super::FieldRef::Text(text) => Some(Cow::Borrowed(text)),
                    other => Some(Cow::Owned(other.to_text().into_owned())),
                },
                Part::Tag(name) => record.tags.get(name).map(|v| Cow::Borrowed(v.as_str())),
                Part::Attribute(_) | Part::Resource(_) => None,
            },
            EventData::Span(span) => match &self.part {
                Part::Named(name) => match name.as_str() {
                    "service.name" => span.resource.get("service.name").and_then(text_of),
                    "span.name" => Some(Cow::Borrowed(span.name.as_str())),
                    "span.kind" => Some(Cow::Borrowed(span.kind.as_str())),
                    "status.code" => Some(Cow::Borrowed(span.status.code.as_str())),
                    "trace_id" => Some(Cow::Owned(const_hex::encode(span.trace_id))),
                    _ => None,
                },
                Part::Tag(key) | Part::Attribute(key) => span.attributes.get(key.as_str()).and_then(text_of),
                Part::Resource(key) => span.resource.get(key.as_str()).and_then(text_of),
            },
            EventData::Metric(metric) => match &self.part {
                Part::Named(name) if name == "name" => Some(Cow::Borrowed(metric.name.as_str())),
                Part::Named(name) if name == "namespace" => metric.namespace.as_deref().map(Cow::Borrowed),
                Part::Tag(name) => metric.tags.get(name).map(|v| Cow::Borrowed(v.as_str())),
                _ => None,
            },
            EventData::Log(log) => log.get(&self.log_path).and_then(text_of),
        }
    }

    /// Add a value under this field, keeping one already there (enrichment
    /// adds, never replaces). A record's own text fields are filled when empty;
    /// any other name becomes a tag. Returns whether the event changed.
    pub fn set_if_absent(&self, event: &mut Event, value: &str) -> bool {
        fn insert(map: &mut Attributes, key: &str, value: &str) -> bool {
            if map.contains_key(key) {
                return false;
            }
            map.insert(Cow::Owned(key.to_owned()), Value::from(value));
            true
        }
        match &mut event.data {
            EventData::Record(record) => {
                if let Part::Named(name) = &self.part {
                    if let Some(field) = record.text_field_mut(name) {
                        if field.is_some() {
                            return false;
                        }
                        *field = Some(value.to_string());
                        return true;
                    }
                }
                if record.tags.contains_key(&self.tag_name) {
                    return false;
                }
                record.tags.insert(self.tag_name.clone(), value.to_string());
                true
            }
            EventData::Span(span) => match &self.part {
                Part::Resource(key) => insert(&mut span.resource, key, value),
                _ => insert(&mut span.attributes, &self.tag_name, value),
            },
            EventData::Metric(metric) => {
                if metric.tags.contains_key(&self.tag_name) {
                    return false;
                }
                metric.tags.insert(self.tag_name.clone(), value.to_string());
                true
            }
            EventData::Log(log) => {
                let taken = |path: &OwnedValuePath| log.get(path).is_some_and(|v| !matches!(v, Value::Object(_) | Value::Array(_)));
                if log.get(&self.log_path).is_some() || self.log_parents.iter().any(taken) {
                    return false;
                }
                log.insert(&self.log_path, Value::from(value));
                true
            }
        }
    }
}

/// A scalar as text; objects and arrays have none.
fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes)),
        Value::Object(_) | Value::Array(_) | Value::Null => None,
        other => Some(Cow::Owned(other.to_string_lossy().into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Metric, MetricKind, MetricValue, RequestRecord, Span, SpanKind};

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    #[test]
    fn reads_every_event_kind() {
        let record = Event::record(RequestRecord {
            service: Some("orders".into()),
            status: Some(503),
            tags: [("team".into(), "pay".into())].into(),
            ..Default::default()
        });
        assert_eq!(path("service").get(&record).as_deref(), Some("orders"));
        assert_eq!(path("status").get(&record).as_deref(), Some("503"));
        assert_eq!(path("status_class").get(&record).as_deref(), Some("5xx"));
        assert_eq!(path("tags.team").get(&record).as_deref(), Some("pay"));
        assert_eq!(path("route").get(&record), None);

        let mut span = Span { name: "GET /a".into(), kind: SpanKind::Server, ..Default::default() };
        span.resource.insert("service.name".into(), Value::from("shop"));
        span.attributes.insert("http.route".into(), Value::from("/a"));
        let span = Event::span(span);
        assert_eq!(path("service.name").get(&span).as_deref(), Some("shop"));
        assert_eq!(path("span.kind").get(&span).as_deref(), Some("server"));
        assert_eq!(path("status.code").get(&span).as_deref(), Some("unset"));
        assert_eq!(path("attributes.http.route").get(&span).as_deref(), Some("/a"));
        assert_eq!(path("attributes.http.route").tag_name, "http.route");

        let metric = Event::metric(Metric::new("up", MetricKind::Absolute, MetricValue::Gauge { value: 1.0 }).with_tag("host", "a"));
        assert_eq!(path("tags.host").get(&metric).as_deref(), Some("a"));
        let log = Event::log(serde_json::json!({"k8s": {"ip": "10.0.0.1"}, "n": 3}));
        assert_eq!(path(".k8s.ip").get(&log).as_deref(), Some("10.0.0.1"));
        assert_eq!(path("n").get(&log).as_deref(), Some("3"));
    }

    #[test]
    fn sets_only_what_is_absent() {
        let mut record = Event::record(RequestRecord { service: Some("orders".into()), ..Default::default() });
        assert!(!path("service").set_if_absent(&mut record, "other"));
        assert!(path("pod").set_if_absent(&mut record, "web-1"));
        assert!(path("team").set_if_absent(&mut record, "pay"));
        assert!(!path("tags.team").set_if_absent(&mut record, "ops"));
        let EventData::Record(r) = &record.data else { unreachable!() };
        assert_eq!(
            (r.service.as_deref(), r.pod.as_deref(), r.tags.get("team").map(String::as_str)),
            (Some("orders"), Some("web-1"), Some("pay"))
        );

        let mut log = Event::log(serde_json::json!({"a": 1, "host": "web-1"}));
        assert!(path("meta.team").set_if_absent(&mut log, "pay"));
        assert!(!path("a").set_if_absent(&mut log, "x"));
        assert!(!path("host.name").set_if_absent(&mut log, "x"), "a plain value is not replaced by an object");
        assert_eq!(path("host").get(&log).as_deref(), Some("web-1"));
        assert_eq!(path("meta.team").get(&log).as_deref(), Some("pay"));
    }
}
