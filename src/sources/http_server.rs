//! `http_server` (and its older name `http`): Vector's HTTP source, so Vector
//! configs that receive Kong's http-log run unchanged. Each JSON object (or
//! each line, or the whole body) becomes a log, with `path`, `source_type`
//! and `timestamp` added as Vector adds them. Same server as `kong_http_log`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::Method;
use serde::Deserialize;

use crate::codec::{Decoding, DecodingCodec};
use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, KeyString, Kinds, Value};
use crate::net::exposure_warning;
use crate::net::server::{Keepalive, ServerAuth, ServerLimits};
use crate::net::tls::ServerTls;
use crate::sources::util::http::{BodyDecoder, RequestParts, ServerOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    pub address: SocketAddr,
    #[serde(default = "crate::defaults::root_path")]
    pub path: String,
    #[serde(default = "crate::defaults::yes")]
    pub strict_path: bool,
    /// The one method accepted (else POST, PUT and PATCH).
    pub method: Option<String>,
    /// Vector's older option: `text`, `ndjson`, `json` or `binary`.
    pub encoding: Option<LegacyEncoding>,
    pub decoding: Option<Decoding>,
    pub framing: Option<Framing>,
    pub auth: Option<ServerAuth>,
    pub tls: Option<ServerTls>,
    /// Request headers to copy into each event, by name.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query parameters to copy into each event, by name.
    #[serde(default)]
    pub query_parameters: Vec<String>,
    /// The field that holds the request path.
    #[serde(default = "default_path_key")]
    pub path_key: String,
    #[serde(default = "crate::defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "crate::defaults::max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Connections, timeouts and memory (see `net::server::ServerLimits`).
    #[serde(default)]
    pub limits: ServerLimits,
    /// Vector's `keepalive.max_connection_age_secs` and its jitter.
    #[serde(default)]
    pub keepalive: Keepalive,
    /// With acknowledgements, the longest wait for delivery before a 503.
    #[serde(default = "crate::defaults::ack_timeout_secs")]
    pub ack_timeout_secs: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LegacyEncoding {
    Text,
    Ndjson,
    Json,
    Binary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framing {
    pub method: FramingMethod,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FramingMethod {
    /// The whole body is one frame.
    Bytes,
    NewlineDelimited,
}

fn default_path_key() -> String {
    "path".into()
}

impl HttpServerConfig {
    fn options(&self) -> Result<ServerOptions, String> {
        let method = match &self.method {
            Some(m) => Some(m.to_ascii_uppercase().parse::<Method>().map_err(|_| format!("`method`: `{m}` is not an HTTP method"))?),
            None => None,
        };
        Ok(ServerOptions {
            address: self.address,
            path: self.path.clone(),
            strict_path: self.strict_path,
            method,
            max_body_bytes: self.max_body_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            auth: self.auth.clone(),
            tls: self.tls.clone(),
            limits: self.limits.clone(),
            keepalive: self.keepalive.clone(),
            ack_timeout_secs: self.ack_timeout_secs,
            json_only: false,
        })
    }

    /// The codec and framing, from `decoding`/`framing` or the older `encoding`.
    fn format(&self) -> (DecodingCodec, FramingMethod) {
        let legacy = match self.encoding {
            Some(LegacyEncoding::Json) => (DecodingCodec::Json, FramingMethod::Bytes),
            Some(LegacyEncoding::Ndjson) => (DecodingCodec::Json, FramingMethod::NewlineDelimited),
            Some(LegacyEncoding::Binary) => (DecodingCodec::Bytes, FramingMethod::Bytes),
            Some(LegacyEncoding::Text) | None => (DecodingCodec::Bytes, FramingMethod::NewlineDelimited),
        };
        let codec = self.decoding.as_ref().map_or(legacy.0, |d| d.codec);
        let framing = self.framing.as_ref().map_or(if self.decoding.is_some() { FramingMethod::Bytes } else { legacy.1 }, |f| f.method);
        (codec, framing)
    }
}

impl SourceConfig for HttpServerConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        if self.encoding.is_some() && self.decoding.is_some() {
            return Err("set `decoding` or the older `encoding`, not both".into());
        }
        self.options()?.check()
    }

    fn warnings(&self) -> Vec<String> {
        let tls = self.tls.as_ref().is_some_and(|t| t.enabled);
        exposure_warning(self.address, self.auth.is_some(), tls, "send events").into_iter().collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let (codec, framing) = self.format();
        let decoding = Decoding { codec };
        let config = self.clone();
        let decode: BodyDecoder = Arc::new(move |body, request| {
            let frames: Vec<&[u8]> = match framing {
                FramingMethod::Bytes => vec![body],
                FramingMethod::NewlineDelimited => body.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect(),
            };
            let mut batch = Vec::new();
            let common = config.common_fields(request);
            let now = Value::Timestamp(chrono::Utc::now());
            for (index, frame) in frames.iter().enumerate() {
                let objects = decoding.decode(frame).map_err(|e| if frames.len() > 1 { format!("line {}: {e}", index + 1) } else { e })?;
                batch.extend(objects.into_iter().map(|mut log| {
                    for (key, value) in &common {
                        log.insert(key.clone(), value.clone());
                    }
                    log.entry("timestamp".into()).or_insert_with(|| now.clone());
                    Event::log(Value::Object(log))
                }));
            }
            Ok(batch)
        });
        crate::sources::util::http::serve(self.options()?, decode, cx)
    }
}

impl HttpServerConfig {
    /// What Vector adds to each event of a request (beside the time, where it
    /// has none): the path, the source type, and the headers and query
    /// parameters asked for (null when absent). Built once per request.
    fn common_fields(&self, request: &RequestParts) -> Vec<(KeyString, Value)> {
        // A static string: copied into every event without a reference count.
        let source_type = Value::Bytes(bytes::Bytes::from_static(b"http_server"));
        let mut fields = vec![(self.path_key.as_str().into(), request.uri.path().into()), ("source_type".into(), source_type)];
        for name in &self.headers {
            let value = request.headers.get(name.as_str()).and_then(|v| v.to_str().ok()).map_or(Value::Null, Value::from);
            fields.push((name.as_str().into(), value));
        }
        for name in &self.query_parameters {
            let value = request
                .uri
                .query()
                .and_then(|q| q.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| k == name).map(|(_, v)| v.to_string()))
                .map_or(Value::Null, Value::from);
            fields.push((name.as_str().into(), value));
        }
        fields
    }
}
