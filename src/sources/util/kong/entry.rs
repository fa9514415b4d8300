//! A Kong log entry (`kong.log.serialize()`), decoded straight into typed
//! fields. Tolerant of what different Kong versions send: sizes as strings,
//! `*_ns` as floats, header values as arrays or `true`, stream (L4) entries,
//! missing service or route. Fields tapline does not use are skipped unread.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KongEntry {
    pub request: Option<Request>,
    pub response: Option<Response>,
    #[serde(deserialize_with = "text")]
    pub upstream_status: Option<String>,
    pub latencies: Latencies,
    #[serde(deserialize_with = "list")]
    pub tries: Vec<Try>,
    pub route: Option<Route>,
    pub service: Option<Service>,
    pub consumer: Option<Consumer>,
    #[serde(deserialize_with = "text")]
    pub client_ip: Option<String>,
    #[serde(deserialize_with = "number")]
    pub started_at: Option<f64>,
    #[serde(deserialize_with = "text")]
    pub source: Option<String>,
    #[serde(deserialize_with = "text")]
    pub workspace: Option<String>,
    #[serde(deserialize_with = "text")]
    pub workspace_name: Option<String>,
    /// Keyed by propagation format: `w3c`, `b3`, `jaeger`, `ot`, `datadog`, `aws`, `gcp`.
    #[serde(deserialize_with = "text_map")]
    pub trace_id: BTreeMap<String, String>,
    #[serde(deserialize_with = "text")]
    pub correlation_id: Option<String>,
    /// Stream (L4) entries only.
    pub session: Option<Session>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub method: Option<String>,
    #[serde(deserialize_with = "text")]
    pub uri: Option<String>,
    #[serde(deserialize_with = "text")]
    pub url: Option<String>,
    #[serde(deserialize_with = "number")]
    pub size: Option<f64>,
    pub headers: Headers,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Response {
    #[serde(deserialize_with = "number")]
    pub status: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub size: Option<f64>,
    pub headers: Headers,
}

/// The few headers tapline reads; a value sent as an array gives its first element.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Headers {
    #[serde(deserialize_with = "text")]
    pub host: Option<String>,
    #[serde(rename = "x-request-id", deserialize_with = "text")]
    pub x_request_id: Option<String>,
    #[serde(rename = "x-kong-request-id", deserialize_with = "text")]
    pub x_kong_request_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub traceparent: Option<String>,
}

/// Milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Latencies {
    #[serde(deserialize_with = "number")]
    pub kong: Option<f64>,
    /// −1 when Kong did not proxy the request.
    #[serde(deserialize_with = "number")]
    pub proxy: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub request: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub receive: Option<f64>,
    /// Stream entries: the whole session.
    #[serde(deserialize_with = "number")]
    pub session: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Try {
    #[serde(deserialize_with = "text")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "number")]
    pub port: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "text_list")]
    pub paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Consumer {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub username: Option<String>,
    #[serde(deserialize_with = "text")]
    pub custom_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Session {
    /// Bytes from the client.
    #[serde(deserialize_with = "number")]
    pub received: Option<f64>,
    /// Bytes to the client.
    #[serde(deserialize_with = "number")]
    pub sent: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub status: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub server_port: Option<f64>,
}

/// What a lenient field visitor found.
enum Scalar {
    Text(String),
    Number(f64),
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    /// An array (a repeated header): its first scalar.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        let first = seq.next_element_seed(ScalarSeed)?.unwrap_or(Scalar::Other);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

struct ScalarSeed;

impl<'de> de::DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A string; a number becomes its text; anything else is absent.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match d.deserialize_any(ScalarVisitor)? {
        Scalar::Text(s) => Some(s),
        Scalar::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{}", n as i64)),
        Scalar::Number(n) => Some(n.to_string()),
        Scalar::Other => None,
    })
}

/// A number, or a string holding one; anything else is absent.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match d.deserialize_any(ScalarVisitor)? {
        Scalar::Number(n) => Some(n),
        Scalar::Text(s) => s.trim().parse().ok(),
        Scalar::Other => None,
    })
}

/// A list; an empty object (how Lua's cjson writes an empty table) or
/// anything else but an array is an empty list.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct ListVisitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(ListVisitor(std::marker::PhantomData))
}

/// One lenient text value, as a list element.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Text)
    }
}

fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(list::<D, Text>(d)?.into_iter().filter_map(|t| t.0).collect())
}

fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if let Scalar::Text(value) = map.next_value_seed(ScalarSeed)? {
                    out.insert(key, value);
                }
            }
            Ok(out)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
    }
    d.deserialize_any(MapVisitor)
}
