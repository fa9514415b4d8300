//! How bytes become events (`decoding`) and events become bytes (`encoding`),
//! with Vector's option names.

use serde::Deserialize;

use crate::event::{Event, EventData, ObjectMap, Value};

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
            DecodingCodec::Json => match serde_json::from_slice::<Value>(line).map_err(|e| format!("invalid JSON: {e}"))? {
                Value::Object(map) => Ok(vec![map]),
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::Object(map) => Ok(map),
                        other => Err(format!("JSON array element {i} is a {}, not an object", other.kind_str())),
                    })
                    .collect(),
                other => Err(format!("JSON value is a {}, not an object", other.kind_str())),
            },
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
