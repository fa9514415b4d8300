//! How bytes become events (`decoding`) and events become bytes (`encoding`),
//! with Vector's option names.

use bytes::Bytes;
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

/// A JSON document read by `json_values`.
#[derive(Debug, PartialEq)]
pub enum JsonValues {
    One(Value),
    /// The elements of a top-level array.
    Elements(Vec<Value>),
}

/// A JSON document as VRL values (a top-level array as its elements). The
/// strings are not allocated one by one: they are slices of one copy of
/// their element's text, so a value kept long holds its own bytes only, not
/// the whole body. Numbers as VRL reads them: integers up to i64, others as floats.
pub fn json_values(text: &[u8]) -> Result<JsonValues, serde_json::Error> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return json_value(&Bytes::copy_from_slice(text)).map(JsonValues::One);
    }
    // Cut the array into its elements' texts (cheaper than a parse), then
    // parse each from its own copy. On any error, the whole text is parsed
    // again for serde_json's own message and position.
    let whole_text_error = || serde_json::from_slice::<serde_json::Value>(text).err();
    let Some(elements) = array_elements(text) else {
        return Err(whole_text_error().unwrap_or_else(|| serde::de::Error::custom("unbalanced JSON array")));
    };
    let mut values = Vec::with_capacity(elements.len());
    for element in elements {
        match json_value(&Bytes::copy_from_slice(&text[element])) {
            Ok(value) => values.push(value),
            Err(e) => return Err(whole_text_error().unwrap_or(e)),
        }
    }
    Ok(JsonValues::Elements(values))
}

/// One JSON value whose strings are slices of `text` (see `json_values`).
fn json_value(text: &Bytes) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = serde::de::DeserializeSeed::deserialize(SharedText(text), &mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Where each element of a top-level JSON array is, found by tracking only
/// strings and nesting (the parse of each element checks the rest). `None`
/// when the brackets do not balance or something follows the array.
fn array_elements(text: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let skip_space = |mut i: usize| {
        while text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = skip_space(0) + 1; // past the `[`
    let mut elements = Vec::new();
    if text.get(skip_space(i)) == Some(&b']') {
        i = skip_space(i) + 1;
    } else {
        loop {
            let start = skip_space(i);
            let mut depth = 0usize;
            i = start;
            let end = loop {
                match *text.get(i)? {
                    b'"' => {
                        // To the closing quote, past each escaped character.
                        i += 1;
                        loop {
                            i += memchr::memchr2(b'"', b'\\', text.get(i..)?)?;
                            if text[i] == b'"' {
                                break;
                            }
                            i += 2;
                        }
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break i,
                    _ => {}
                }
                i += 1;
            };
            let mut trimmed = end;
            while trimmed > start && text[trimmed - 1].is_ascii_whitespace() {
                trimmed -= 1;
            }
            elements.push(start..trimmed);
            i = end + 1;
            if text[end] == b']' {
                break;
            }
        }
    }
    (skip_space(i) == text.len()).then_some(elements)
}

/// Deserializes a value whose strings, when unescaped in the input, are slices of it.
#[derive(Clone, Copy)]
struct SharedText<'a>(&'a Bytes);

impl<'de> serde::de::DeserializeSeed<'de> for SharedText<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SharedText<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::from_f64_or_zero(v as f64), Value::Integer))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from_f64_or_zero(v))
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Value, E> {
        let inside = self.0.as_ptr_range();
        if inside.contains(&v.as_ptr()) || (v.is_empty() && v.as_ptr() == inside.end) {
            let shared = self.0.slice_ref(v.as_bytes());
            // SAFETY: these are the very bytes of `v`, a `str` serde_json checked: valid UTF-8.
            Ok(Value::String(unsafe { bytestring::ByteString::from_bytes_unchecked(shared) }))
        } else {
            self.visit_str(v)
        }
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = ObjectMap::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// An object's key, allocated once.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = vrl::value::KeyString;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for Key {
    type Value = vrl::value::KeyString;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
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

    /// The shared-text decoder gives what VRL's own deserializer gives.
    #[test]
    fn json_values_match_vrls_own_decoding() {
        let kong = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong/kong3_single.json")).unwrap();
        let documents: [&[u8]; 11] = [
            br#"[{"a": "]\"}[{", "b": [1, [2, {"c": "\\"}]]}, "x,y" , 3 ]"#,
            b"[\n]",
            br#"[{"a": "x", "b": ["y", {"c": "z\u0041"}]}, {}, {"a": ""}, "top", [["n"]]]"#,
            br#" [ ] "#,
            br#"{"dup": 1, "b": 2, "dup": {"x": 3}, "a": 0}"#,
            &kong,
            br#"{"a": "plain", "b": "esc\"aped\n", "c": "", "d": [1, -2, 3.5, 18446744073709551615, true, null], "e": {"f": {}}}"#,
            r#"{"unicode": "h\u00e9llo \u2603", "raw": "héllo ☃", "key\twith\tescapes": 1}"#.as_bytes(),
            br#""""#,
            b"[]",
            b"  {\"trailing\": \"\"}  ",
        ];
        for doc in documents {
            let ours = match json_values(doc).unwrap() {
                JsonValues::One(value) => value,
                JsonValues::Elements(items) => Value::Array(items),
            };
            let theirs: Value = serde_json::from_slice(doc).unwrap();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(doc));
            assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
        }
        // Malformed documents give serde_json's own message and position.
        let malformed: [&[u8]; 9] = [
            b"{\"a\": 1} x",
            b"[1] x",
            b"[1,]",
            b"[1 2]",
            b"[[1],",
            b"[\"unterminated",
            b"[{\"a\": \"\xff\"}]",
            b"[{\"a\": 1},\n {\"b\": tru}]",
            b"[\"a\\",
        ];
        for doc in malformed {
            let ours = json_values(doc).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<serde_json::Value>(doc).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(doc));
        }
    }

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
