//! OTLP ⇄ events, for the `opentelemetry` source and sink.
//!
//! Each signal has a `decode` (an Export*ServiceRequest into events, refusing
//! the items the spec calls invalid and saying why) and an `encode` (events
//! into one request, grouped by resource and scope as the SDKs send them).
//! Protobuf goes through prost; OTLP/JSON through the serde derives of
//! `opentelemetry-proto`, which know the spec's quirks (hex ids, int64 as
//! strings, lowerCamelCase).

pub mod logs;
pub mod metrics;
pub mod rpc;
pub mod traces;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

use crate::event::{from_hex, EventBatch, ObjectMap, Value};

/// The events of one request, and the items refused (counted, with the first reason).
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: EventBatch,
    pub rejected: u64,
    pub error: Option<String>,
}

impl Decoded {
    fn reject(&mut self, why: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.error.is_none() {
            self.error = Some(why());
        }
    }
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The name of the source's output, and of the signal in logs.
    pub fn port(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// What the spec counts in a partial success.
    pub fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }

    /// The OTLP/HTTP path.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// The body encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Decode a request body; the error says what is wrong with it.
    pub fn decode<T: prost::Message + Default + for<'de> serde::Deserialize<'de>>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Encoding::Protobuf => T::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}")),
            Encoding::Json => serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}")),
        }
    }

    pub fn encode<T: prost::Message + Serialize>(self, message: &T) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            // The proto types serialize infallibly (string keys, no maps).
            Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
        }
    }
}

/// An OTLP value as a VRL value: text as a string, bytes as bytes; a NaN
/// double becomes null (VRL floats are never NaN).
pub fn value_from_any(value: Option<AnyValue>) -> Value {
    use any_value::Value as V;
    match value.and_then(|v| v.value) {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::from(s),
        Some(V::BoolValue(b)) => Value::Boolean(b),
        Some(V::IntValue(i)) => Value::Integer(i),
        Some(V::DoubleValue(d)) if d.is_nan() => Value::Null,
        Some(V::DoubleValue(d)) => Value::from_f64_or_zero(d),
        Some(V::BytesValue(b)) => Value::Bytes(b.into()),
        Some(V::ArrayValue(a)) => Value::Array(a.values.into_iter().map(|v| value_from_any(Some(v))).collect()),
        Some(V::KvlistValue(kv)) => Value::Object(attributes_to_map(kv.values)),
        // An index into a profile's string table: meaningless outside profiles.
        Some(V::StringValueStrindex(_)) => Value::Null,
    }
}

/// A VRL value as an OTLP value: text that is not UTF-8 goes as bytes,
/// timestamps as RFC 3339 text.
pub fn value_to_any(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::Null => None,
        Value::Bytes(b) => Some(match std::str::from_utf8(b) {
            Ok(s) => V::StringValue(s.to_owned()),
            Err(_) => V::BytesValue(b.to_vec()),
        }),
        Value::String(s) => Some(V::StringValue(s.to_string())),
        Value::Boolean(b) => Some(V::BoolValue(*b)),
        Value::Integer(i) => Some(V::IntValue(*i)),
        Value::Float(f) => Some(V::DoubleValue(f.into_inner())),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue { values: items.iter().map(value_to_any).collect() })),
        Value::Object(map) => Some(V::KvlistValue(KeyValueList { values: map_to_attributes(map) })),
        Value::Timestamp(t) => Some(V::StringValue(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
        Value::Regex(r) => Some(V::StringValue(r.as_str().to_owned())),
    };
    AnyValue { value }
}

/// OTLP attributes as a map: a VRL object (`ObjectMap`) or a span's `Attributes`.
pub fn attributes_to_map<K: From<String>, M: FromIterator<(K, Value)>>(attributes: Vec<KeyValue>) -> M {
    attributes.into_iter().map(|kv| (K::from(kv.key), value_from_any(kv.value))).collect()
}

pub fn map_to_attributes<'a, K: AsRef<str> + 'a>(map: impl IntoIterator<Item = (&'a K, &'a Value)>) -> Vec<KeyValue> {
    map.into_iter().map(|(key, value)| key_value(key.as_ref().to_owned(), value_to_any(value))).collect()
}

pub fn key_value(key: String, value: AnyValue) -> KeyValue {
    KeyValue { key, value: Some(value), ..Default::default() }
}

fn resource_map<K: From<String>, M: FromIterator<(K, Value)> + Default>(resource: Option<Resource>) -> M {
    resource.map(|r| attributes_to_map(r.attributes)).unwrap_or_default()
}

fn resource<'a, K: AsRef<str> + 'a>(map: impl IntoIterator<Item = (&'a K, &'a Value)>) -> Option<Resource> {
    Some(Resource { attributes: map_to_attributes(map), ..Default::default() })
}

/// A scope's name, version and attributes.
#[derive(Debug, Clone, PartialEq, Default)]
struct Scope {
    name: String,
    version: String,
    attributes: ObjectMap,
}

impl Scope {
    fn from_proto(scope: Option<InstrumentationScope>) -> Self {
        let scope = scope.unwrap_or_default();
        Scope { name: scope.name, version: scope.version, attributes: attributes_to_map(scope.attributes) }
    }

    fn to_proto(&self) -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: self.name.clone(),
            version: self.version.clone(),
            attributes: map_to_attributes(&self.attributes),
            dropped_attributes_count: 0,
        })
    }
}

/// Items grouped by resource, then by scope, keeping first-seen order. A batch
/// holds few distinct resources, so a linear search is cheaper than hashing values.
struct Groups<K, T> {
    groups: Vec<(K, Vec<ScopeItems<T>>)>,
}

/// One scope's items.
type ScopeItems<T> = (Scope, Vec<T>);

impl<K: PartialEq, T> Groups<K, T> {
    fn new() -> Self {
        Groups { groups: Vec::new() }
    }

    fn push(&mut self, resource: K, scope: Scope, item: T) {
        let index = match self.groups.iter().position(|(r, _)| *r == resource) {
            Some(i) => i,
            None => {
                self.groups.push((resource, Vec::new()));
                self.groups.len() - 1
            }
        };
        let scopes = &mut self.groups[index].1;
        match scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, items)) => items.push(item),
            None => scopes.push((scope, vec![item])),
        }
    }
}

/// Fixed-size ids: `None` for the wrong length (the spec's "invalid").
fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_round_trip() {
        let value = Value::from(serde_json::json!({"s": "text", "i": -3, "f": 1.5, "b": true, "n": null, "a": [1, "x"], "o": {"k": "v"}}));
        let Value::Object(map) = &value else { unreachable!() };
        let back = attributes_to_map(map_to_attributes(map));
        assert_eq!(Value::Object(back), value);
    }

    #[test]
    fn bytes_that_are_not_text_stay_bytes() {
        let any = value_to_any(&Value::Bytes(vec![0xff, 0x00].into()));
        assert_eq!(any.value, Some(any_value::Value::BytesValue(vec![0xff, 0x00])));
        assert_eq!(value_from_any(Some(any)), Value::Bytes(vec![0xff, 0x00].into()));
    }

    #[test]
    fn hex_ids() {
        assert_eq!(from_hex::<4>("0a1bFF00"), Some([0x0a, 0x1b, 0xff, 0x00]));
        assert_eq!(from_hex::<4>("0a1b"), None);
        assert_eq!(from_hex::<2>("zz00"), None);
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
