//! Templates in option values, as Vector writes them: `{{ field.path }}`
//! takes a log field, `%Y-%m-%d` (strftime) the event's time.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use std::borrow::Cow;

use vrl::path::{OwnedSegment, OwnedValuePath};

use crate::event::{Event, EventData, Value};

#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    /// Literal text, strftime specifiers included.
    Text(String),
    Field {
        path: OwnedValuePath,
        written: String,
    },
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else { return Err(format!("unclosed `{{{{` in template `{text}`")) };
            push_text(&mut parts, &rest[..start], text)?;
            let written = rest[start + 2..start + len].trim();
            let path_text = written.strip_prefix('.').unwrap_or(written);
            let path =
                vrl::path::parse_value_path(path_text).map_err(|e| format!("invalid field `{written}` in template `{text}`: {e}"))?;
            parts.push(Part::Field { path, written: written.to_string() });
            rest = &rest[start + len + 2..];
        }
        push_text(&mut parts, rest, text)?;
        Ok(Template { parts })
    }

    /// Whether the result is the same for every event.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(t) if !t.contains('%')))
    }

    pub fn render(&self, event: &Event) -> Result<String, String> {
        self.render_with(event, |value, out| out.push_str(value))
    }

    /// Render a file path: each field's value becomes at most one path
    /// component (`/` and NUL become `_`, a value `.` or `..` becomes `_`),
    /// so an event cannot make a path reach outside what the template names.
    pub fn render_path(&self, event: &Event) -> Result<String, String> {
        self.render_with(event, |value, out| match value {
            "." | ".." => out.push('_'),
            _ => out.extend(value.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c })),
        })
    }

    fn render_with(&self, event: &Event, mut insert: impl FnMut(&str, &mut String)) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) if text.contains('%') => {
                    out.push_str(&event_time(event).format(text).to_string());
                }
                Part::Text(text) => out.push_str(text),
                Part::Field { path, written } => match field(event, path).as_deref() {
                    Some(Value::Bytes(b)) => insert(&String::from_utf8_lossy(b), &mut out),
                    Some(Value::Null) | None => return Err(format!("field `{written}` is missing")),
                    Some(other) => insert(&other.to_string_lossy(), &mut out),
                },
            }
        }
        Ok(out)
    }
}

/// A field of a log, or of a request record (read by name: no conversion).
pub fn field<'a>(event: &'a Event, path: &OwnedValuePath) -> Option<Cow<'a, Value>> {
    match &event.data {
        EventData::Log(log) => log.get(path).map(Cow::Borrowed),
        EventData::Record(record) => {
            let (OwnedSegment::Field(name), rest) = path.segments.split_first()? else { return None };
            let value = record.field(name)?;
            if rest.is_empty() {
                return Some(Cow::Owned(value));
            }
            value.get(&OwnedValuePath::from(rest.to_vec())).cloned().map(Cow::Owned)
        }
        _ => None,
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str, whole: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    if text.contains('%') && StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
        return Err(format!("invalid strftime specifier in template `{whole}`"));
    }
    parts.push(Part::Text(text.to_string()));
    Ok(())
}

/// A record's time, a log's `timestamp` field, else now.
fn event_time(event: &Event) -> DateTime<Utc> {
    match &event.data {
        EventData::Record(record) => record.time,
        EventData::Log(log) => match log.get(vrl::path!("timestamp")) {
            Some(Value::Timestamp(t)) => *t,
            _ => Utc::now(),
        },
        _ => Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_time() {
        let t = Template::parse("/logs/{{ service.name }}/%Y/{{.status}}.log").unwrap();
        let when: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
        let event = Event::log(Value::from(serde_json::json!({"service": {"name": "orders"}, "status": 200})));
        let mut event = event;
        if let EventData::Log(Value::Object(map)) = &mut event.data {
            map.insert("timestamp".into(), Value::Timestamp(when));
        }
        assert_eq!(t.render(&event).unwrap(), "/logs/orders/2024/200.log");
        let missing = Event::log(Value::from(serde_json::json!({"status": 1})));
        assert!(t.render(&missing).unwrap_err().contains("service.name"));
        assert!(Template::parse("/x/%Q").is_err());
        assert!(Template::parse("/x/{{ a").is_err());
    }

    #[test]
    fn a_path_cannot_be_steered_by_field_values() {
        let t = Template::parse("/var/log/out/{{ service }}/{{ route }}.log").unwrap();
        let event = |service: &str, route: &str| Event::log(Value::from(serde_json::json!({"service": service, "route": route})));
        assert_eq!(t.render_path(&event("../../../tmp/x", "r")).unwrap(), "/var/log/out/.._.._.._tmp_x/r.log");
        assert_eq!(t.render_path(&event("..", ".")).unwrap(), "/var/log/out/_/_.log");
        assert_eq!(t.render_path(&event("a/b", "c\0d")).unwrap(), "/var/log/out/a_b/c_d.log");
        assert_eq!(t.render_path(&event("orders", "v1..2")).unwrap(), "/var/log/out/orders/v1..2.log");
        // Elsewhere (a topic, a table) values are inserted as they are.
        assert_eq!(t.render(&event("a/b", "r")).unwrap(), "/var/log/out/a/b/r.log");
    }
}
