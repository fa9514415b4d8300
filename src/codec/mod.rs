//! How bytes become events (`decoding`) and events become bytes (`encoding`),
//! with Vector's option names.

use serde::Deserialize;

use crate::event::{Event, EventData, ObjectMap, Value};

mod json;

pub use json::{json_values, JsonValues};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    #[serde(default)]
    pub codec: DecodingCodec,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum DecodingCodec {
    /// The line as the `message` field.
    #[default]
    Bytes,
    /// A JSON object per line; a JSON array gives one event per element.
    Json,
}

impl Decoding {
    pub fn decode(&self, line: &[u8]) -> Result<Vec<ObjectMap>, String> {
        match self.codec {
            DecodingCodec::Bytes => {
                let mut map = ObjectMap::new();
                map.insert("message".into(), Value::Bytes(bytes::Bytes::copy_from_slice(line)));
                Ok(vec![map])
            }
            DecodingCodec::Json => {
                let object = |value: Value, what: &dyn Fn() -> String| match value {
                    Value::Object(map) => Ok(map),
                    other => Err(format!("{} is a {}, not an object", what(), other.kind_str())),
                };
                match json_values(line).map_err(|e| format!("invalid JSON: {e}"))? {
                    JsonValues::One(value) => Ok(vec![object(value, &|| "JSON value".to_string())?]),
                    JsonValues::Elements(items) => {
                        items.into_iter().enumerate().map(|(i, item)| object(item, &|| format!("JSON array element {i}"))).collect()
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    pub codec: EncodingCodec,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum EncodingCodec {
    /// One JSON object per line.
    Json,
    /// The `message` field of a log as it is; other events as JSON.
    Text,
}

impl Encoding {
    /// Append the event and a newline to `out`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        self.encode_message(event, out)?;
        out.push(b'\n');
        Ok(())
    }

    /// Append the event alone, for transports that frame messages themselves (Kafka).
    pub fn encode_message(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        if self.codec == EncodingCodec::Text {
            if let EventData::Log(log) = &event.data {
                if let Some(message) = log.get(vrl::path!("message")) {
                    match message {
                        Value::Bytes(b) => out.extend_from_slice(b),
                        other => out.extend_from_slice(other.to_string_lossy().as_bytes()),
                    }
                    return Ok(());
                }
            }
        }
        event.write_json(out).map_err(|e| format!("cannot encode event as JSON: {e}"))
    }
}

/// Vector's `framing` of sinks that write a stream of events (`socket`
/// over TCP or Unix, `http` with `json`): `newline_delimited` puts `\n`
/// after each event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framing {
    pub method: FramingMethod,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FramingMethod {
    NewlineDelimited,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_decoding_splits_arrays_and_names_bad_elements() {
        let json = Decoding { codec: DecodingCodec::Json };
        let events = json.decode(b" [{\"a\": \"x\"}, {\"a\": \"y\"}]").unwrap();
        assert_eq!(events.iter().map(|e| e["a"].clone()).collect::<Vec<_>>(), [Value::from("x"), Value::from("y")]);
        assert_eq!(json.decode(b"[{\"a\": 1}, 2]").unwrap_err(), "JSON array element 1 is a integer, not an object");
        assert_eq!(json.decode(b"\"text\"").unwrap_err(), "JSON value is a string, not an object");
        assert!(json.decode(b"[{\"a\": 1},").unwrap_err().starts_with("invalid JSON: EOF while parsing"));
    }
}
