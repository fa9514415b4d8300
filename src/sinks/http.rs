//! `http`: Vector's HTTP sink. Events are batched per rendered `uri` (a
//! template: events whose URIs differ never share a request), each batch is
//! encoded once, as it fills, into one body, and sent with `method`.
//!
//! What it promises: an event is reported delivered only once the server
//! answered 2xx to the request that carried it. 5xx (but 501), 408, 429 and
//! network errors (timeouts included) are retried with backoff, waiting at
//! least what a `Retry-After` asks, up to `request.retry_attempts`; then the
//! batch is reported failed. Any other answer (a 4xx: the server will never
//! take this data) is not retried: the batch's events are refused, counted,
//! and the start of the server's answer is logged. An event whose `uri`
//! cannot be rendered, or that cannot be encoded, is dropped and counted.
//!
//! Bodies follow Vector's framing exactly: `json` is one JSON array,
//! `json` with `framing.method = "newline_delimited"` (or Vector's older
//! `ndjson`) one object per line without a newline after the last, `text`
//! one line per event, each ending in a newline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::codec::{Encoding, EncodingCodec, Framing};
use crate::component::{with_causes, Reporter, Result, SinkConfig, SinkContext, Task};
use crate::event::{Event, EventStatus, Kinds};
use crate::net::client::{
    gzip, header_map, http_client, redact_url, retry_after, take_url_credentials, url_credentials_warning, Backoff, ClientAuth,
    RequestConfig,
};
use crate::net::tls::ClientTls;
use crate::sinks::util::{fill_batches, BatchConfig, BatchLimits};
use crate::telemetry::ComponentMetrics;
use crate::template::Template;

/// Each try after a failed one (the sink's own counter).
const RETRIES: &str = "http_retries_total";

/// How much of a refusing server's answer goes to the log.
const ANSWER_LOGGED: usize = 512;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where to send, e.g. `https://logs.example.com/ingest`; may be a
    /// template (`…/ingest/{{ service }}`).
    pub uri: String,
    #[serde(default)]
    pub method: Method,
    pub encoding: HttpEncoding,
    pub framing: Option<Framing>,
    /// Text before the JSON array (`json` without framing only), e.g. `{"data":`.
    #[serde(default)]
    pub payload_prefix: String,
    /// Text after the JSON array, e.g. `}`.
    #[serde(default)]
    pub payload_suffix: String,
    #[serde(default)]
    pub compression: HttpCompression,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub request: HttpRequest,
    pub auth: Option<ClientAuth>,
    #[serde(default)]
    pub tls: ClientTls,
}

/// Vector's methods for the `http` sink.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Get,
    Head,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Trace,
}

impl Method {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
            Method::Trace => reqwest::Method::TRACE,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEncoding {
    pub codec: HttpCodec,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum HttpCodec {
    /// A JSON array of events, or one object per line with `framing`.
    Json,
    /// Vector's name before 0.21 for `json` with newline framing.
    Ndjson,
    /// A log's `message` field (other events as JSON), one per line.
    Text,
}

/// As in Vector, bodies go uncompressed unless asked.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum HttpCompression {
    #[default]
    None,
    Gzip,
    Zstd,
}

/// Vector's `request` of the `http` sink: the retry and timeout options
/// every HTTP sink takes, and `headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RequestOptions")]
pub struct HttpRequest {
    pub headers: BTreeMap<String, String>,
    pub common: RequestConfig,
}

#[derive(Deserialize)]
struct RequestOptions {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The rest, read as `RequestConfig` (which refuses unknown fields).
    #[serde(flatten)]
    common: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<RequestOptions> for HttpRequest {
    type Error = String;

    fn try_from(o: RequestOptions) -> Result<Self, String> {
        let common = RequestConfig::deserialize(serde_json::Value::Object(o.common)).map_err(|e| format!("`request`: {e}"))?;
        Ok(HttpRequest { headers: o.headers, common })
    }
}

/// Vector's defaults for this sink: batches close at 10 MB of encoded
/// events or after 1 s; no limit on the number of events.
const BATCH_DEFAULTS: BatchLimits = BatchLimits { max_events: usize::MAX, max_bytes: Some(10_000_000), timeout: Duration::from_secs(1) };

/// How a batch's events are laid out in the body.
#[derive(Debug)]
enum Layout {
    /// `prefix[e1,e2,…]suffix`
    JsonArray { prefix: String, suffix: String },
    /// `e1\ne2` (no newline after the last, as Vector writes it)
    JsonLines,
    /// `e1\ne2\n`
    TextLines,
}

impl Layout {
    /// Append one event (the batch's first when `first`); on an error the body is left as it was.
    fn append(&self, encoding: &Encoding, body: &mut Vec<u8>, first: bool, event: &Event) -> Result<(), String> {
        let mark = body.len();
        match self {
            Layout::JsonArray { prefix, .. } if first => {
                body.extend_from_slice(prefix.as_bytes());
                body.push(b'[');
            }
            Layout::JsonArray { .. } => body.push(b','),
            Layout::JsonLines | Layout::TextLines => {}
        }
        if let Err(e) = encoding.encode_message(event, body) {
            body.truncate(mark);
            return Err(e);
        }
        if !matches!(self, Layout::JsonArray { .. }) {
            body.push(b'\n');
        }
        Ok(())
    }

    /// Close a batch's body.
    fn finish(&self, body: &mut Vec<u8>) {
        match self {
            Layout::JsonArray { suffix, .. } => {
                body.push(b']');
                body.extend_from_slice(suffix.as_bytes());
            }
            // Vector writes no newline after the last object.
            Layout::JsonLines => {
                body.pop();
            }
            Layout::TextLines => {}
        }
    }
}

impl HttpSinkConfig {
    fn layout(&self) -> Result<Layout, String> {
        let wrapped = !self.payload_prefix.is_empty() || !self.payload_suffix.is_empty();
        let layout = match (self.encoding.codec, &self.framing) {
            (HttpCodec::Json, None) => {
                let example = format!("{}[]{}", self.payload_prefix, self.payload_suffix);
                if wrapped && serde_json::from_str::<serde_json::Value>(&example).is_err() {
                    return Err(format!("`payload_prefix` and `payload_suffix` must make valid JSON around the array: `{example}` is not"));
                }
                return Ok(Layout::JsonArray { prefix: self.payload_prefix.clone(), suffix: self.payload_suffix.clone() });
            }
            (HttpCodec::Json | HttpCodec::Ndjson, _) => Layout::JsonLines,
            (HttpCodec::Text, _) => Layout::TextLines,
        };
        if wrapped {
            return Err(
                "`payload_prefix` and `payload_suffix` wrap the JSON array: they need `encoding.codec = \"json\"` without `framing`".into(),
            );
        }
        Ok(layout)
    }

    /// The shared encoder, for one event: `ndjson` is `json` framed by lines.
    fn encoder(&self) -> Encoding {
        let codec = match self.encoding.codec {
            HttpCodec::Json | HttpCodec::Ndjson => EncodingCodec::Json,
            HttpCodec::Text => EncodingCodec::Text,
        };
        Encoding { codec }
    }

    fn headers(&self, layout: &Layout) -> Result<HeaderMap, String> {
        let content_type = match layout {
            Layout::JsonArray { .. } => "application/json",
            Layout::JsonLines => "application/x-ndjson",
            Layout::TextLines => "text/plain",
        };
        let encoding = match self.compression {
            HttpCompression::None => None,
            HttpCompression::Gzip => Some(("content-encoding", "gzip")),
            HttpCompression::Zstd => Some(("content-encoding", "zstd")),
        };
        if let Some((name, _)) = self.request.headers.iter().find(|(_, v)| v.contains("{{")) {
            // Vector renders header templates per event; sent as written, one would be wrong silently.
            return Err(format!("`request.headers.{name}`: templated header values are not supported; set a fixed value"));
        }
        // Configured headers come last: they may set their own Content-Type.
        let configured = self.request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        header_map([("content-type", content_type)].into_iter().chain(encoding).chain(configured))
    }

    fn uri(&self) -> Result<Uri, String> {
        let escaped = escape_percent_encoding(&self.uri);
        let template = Template::parse(&escaped).map_err(|e| {
            format!("`uri`: {e} (outside a percent-encoded byte such as `%20`, `%` starts a strftime specifier: write `%%` for a `%`)")
        })?;
        let shown = redact_url(&self.uri);
        if !escaped.contains("{{") && !escaped.replace("%%", "").contains('%') {
            let fixed = escaped.replace("%%", "%");
            let url = reqwest::Url::parse(&fixed).map_err(|e| format!("`uri` `{shown}` is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("`uri` `{shown}` must start with http:// or https://"));
            }
            return Ok(Uri::Fixed(fixed));
        }
        if !(self.uri.starts_with("http://") || self.uri.starts_with("https://")) {
            return Err(format!("`uri` `{shown}` must start with http:// or https:// (a template may fill in what follows)"));
        }
        Ok(Uri::Template(template))
    }
}

/// The `uri`: as written, or rendered per event.
enum Uri {
    Fixed(String),
    Template(Template),
}

/// `uri` with each percent-encoded byte (`%` then a digit and a hex digit:
/// `%20`, `%2F`) written `%%`, so that the template keeps it instead of
/// reading a strftime specifier, which starts with a letter (`%Y`), or is
/// `%3f`, `%6f`, `%9f` (fractional seconds). A `%%` stays as it is.
fn escape_percent_encoding(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len() + 8);
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let skip = match rest.as_bytes()[at + 1..] {
            [b'%', ..] => 2,
            [digit, hex, ..] if digit.is_ascii_digit() && hex.is_ascii_hexdigit() && !(b"369".contains(&digit) && hex == b'f') => 1,
            _ => {
                out.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        };
        out.push_str("%%");
        rest = &rest[at + skip..];
    }
    out.push_str(rest);
    out
}

impl SinkConfig for HttpSinkConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn check(&self) -> Result<()> {
        self.uri()?;
        let layout = self.layout()?;
        self.headers(&layout)?;
        self.batch.limits(BATCH_DEFAULTS)?;
        if self.request.common.concurrency == 0 {
            return Err("`request.concurrency` must be at least 1".into());
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        url_credentials_warning("uri", &self.uri, self.auth.as_ref()).into_iter().collect()
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let layout = self.layout()?;
        let headers = self.headers(&layout)?;
        let batch = self.batch.limits(BATCH_DEFAULTS)?;
        let request = self.request.common.clone();
        // A redirect is not followed: a 3xx is a refusal (see `http_client`).
        let client = http_client(Duration::from_secs(request.timeout_secs.max(1)), self.tls.ca_pem()?.as_deref())?;
        // A fixed URI gives up its credentials to `auth` here; a rendered one
        // keeps them (reqwest sends them as basic auth), and is logged redacted.
        let (fixed, auth, template) = match self.uri()? {
            Uri::Fixed(uri) => {
                let (uri, auth) = take_url_credentials(&uri, self.auth.as_ref());
                (uri, auth, None)
            }
            Uri::Template(template) => (self.uri.clone(), self.auth.clone(), Some(template)),
        };
        let SinkContext { id, input, metrics } = cx;
        let writer = Arc::new(Writer {
            method: self.method.as_reqwest(),
            fixed,
            auth,
            client,
            headers,
            compression: self.compression,
            encoding: self.encoder(),
            layout,
            batch,
            request,
            report: Reporter { id, metrics },
            spare: Mutex::default(),
        });
        Ok(Box::pin(async move {
            tracing::info!(component = %writer.report.id, uri = %redact_url(&writer.fixed), "sending over HTTP");
            let concurrency = writer.request.concurrency;
            // The key is the rendered URI; `None` stands for the fixed one (no string per event).
            let key = |event: &Event| match &template {
                None => Some(None),
                Some(template) => match template.render(event) {
                    Ok(uri) => Some(Some(uri)),
                    Err(e) => {
                        writer.report.reject(event, &format!("cannot render `uri`: {e}"));
                        None
                    }
                },
            };
            let add = |batch: &mut Batch, event| writer.add(batch, event);
            fill_batches(input, batch.timeout, concurrency, key, add, |uri, batch| writer.clone().flush(uri, batch)).await;
            Ok(())
        }))
    }
}

struct Writer {
    method: reqwest::Method,
    /// The `uri` when it is fixed, without credentials (those are in `auth`);
    /// else the template as written, for the log.
    fixed: String,
    auth: Option<ClientAuth>,
    client: reqwest::Client,
    headers: HeaderMap,
    compression: HttpCompression,
    encoding: Encoding,
    layout: Layout,
    batch: BatchLimits,
    request: RequestConfig,
    report: Reporter,
    /// Bodies of finished requests, cleared, for the next batches to fill.
    spare: Mutex<Vec<Vec<u8>>>,
}

/// One URI's events and their body, encoded as they came.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    body: Vec<u8>,
}

/// Why a request did not deliver.
enum Failure {
    /// The server's answer says it will never take this data (or the URI is no URL).
    Refused(String),
    /// Retries ran out on errors that might have passed.
    GaveUp(String),
}

impl Writer {
    /// Encode an event into its batch's body; whether the batch is now full.
    fn add(&self, batch: &mut Batch, event: Event) -> bool {
        if batch.body.capacity() == 0 {
            batch.body = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        }
        match self.layout.append(&self.encoding, &mut batch.body, batch.events.is_empty(), &event) {
            Ok(()) => batch.events.push(event),
            Err(e) => self.report.reject(&event, &e),
        }
        batch.events.len() >= self.batch.max_events || self.batch.max_bytes.is_some_and(|max| batch.body.len() >= max)
    }

    async fn flush(self: Arc<Self>, uri: Option<String>, batch: Batch) {
        let Batch { events, mut body } = batch;
        if !events.is_empty() {
            self.layout.finish(&mut body);
            let uri = uri.as_deref().unwrap_or(&self.fixed);
            let compressed = match self.compression {
                HttpCompression::None => None,
                HttpCompression::Gzip => Some(gzip(&body)),
                // Level 0: zstd's default (3).
                HttpCompression::Zstd => Some(zstd::bulk::compress(&body, 0).unwrap_or_default()),
            };
            let payload = match compressed {
                Some(compressed) => Bytes::from(compressed),
                None => Bytes::from(std::mem::take(&mut body)),
            };
            match self.send(uri, &payload).await {
                Ok(()) => self.report.settle(events.iter(), events.len(), Ok(payload.len())),
                Err(Failure::GaveUp(error)) => self.report.settle(events.iter(), events.len(), Err(error)),
                Err(Failure::Refused(error)) => self.refuse(uri, &events, &error),
            }
            if body.capacity() == 0 {
                // Sent as it was: get the buffer back once the client let go of it.
                body = payload.try_into_mut().map(Vec::from).unwrap_or_default();
            }
        }
        body.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if body.capacity() > 0 && spare.len() <= self.request.concurrency {
            spare.push(body);
        }
    }

    /// Send one body until a 2xx, a refusal, or the end of the retries.
    async fn send(&self, uri: &str, payload: &Bytes) -> Result<(), Failure> {
        let url = reqwest::Url::parse(uri)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| Failure::Refused(format!("`uri` rendered as `{}`, which is not an http:// or https:// URL", redact_url(uri))))?;
        let mut backoff = Backoff::new(&self.request);
        let mut attempt: u64 = 0;
        loop {
            let mut request = self.client.request(self.method.clone(), url.clone()).headers(self.headers.clone()).body(payload.clone());
            if let Some(auth) = &self.auth {
                request = auth.apply(request);
            }
            let (error, after) = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let after = retry_after(response.headers());
                    let error = format!("HTTP {status}: {}", answer_start(response).await);
                    if !retryable(status.as_u16()) {
                        return Err(Failure::Refused(error));
                    }
                    (error, after)
                }
                Err(e) => (with_causes(&e), None),
            };
            attempt += 1;
            if attempt > self.request.retry_attempts {
                return Err(Failure::GaveUp(format!("{}: {error} (gave up after {attempt} tries)", redact_url(uri))));
            }
            ComponentMetrics::add(&self.report.metrics.errors, 1);
            self.report.metrics.add_own(RETRIES, 1);
            tracing::warn!(component = %self.report.id, uri = %redact_url(uri), attempt, error, "request failed; retrying");
            backoff.wait(after).await;
        }
    }

    /// The server will never take these events: refused for good (sources
    /// with acknowledgements answer their senders so), counted, logged once.
    fn refuse(&self, uri: &str, events: &[Event], error: &str) {
        ComponentMetrics::add(&self.report.metrics.errors, 1);
        ComponentMetrics::add(&self.report.metrics.discarded_events, events.len());
        for event in events {
            event.finalizers.update_status(EventStatus::Rejected);
        }
        tracing::error!(component = %self.report.id, uri = %redact_url(uri), events = events.len(), error, "the server refused the request; events dropped, not retried");
    }
}

/// Vector's default retry rule: server errors but 501 (it will never be
/// implemented), 408 and 429.
fn retryable(status: u16) -> bool {
    (status >= 500 && status != 501) || status == 408 || status == 429
}

/// The first bytes of an answer, as text for the log.
async fn answer_start(mut response: reqwest::Response) -> String {
    let mut start = Vec::new();
    while start.len() < ANSWER_LOGGED {
        match response.chunk().await {
            Ok(Some(chunk)) => start.extend_from_slice(&chunk[..chunk.len().min(ANSWER_LOGGED - start.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&start).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn config(options: &str) -> HttpSinkConfig {
        toml_edit::de::from_str(&format!("uri = \"http://127.0.0.1:1/x\"\n{options}")).unwrap()
    }

    /// The body a batch of these events gets.
    fn body(options: &str, events: &[serde_json::Value]) -> String {
        let config = config(options);
        let (layout, encoding) = (config.layout().unwrap(), config.encoder());
        let mut body = Vec::new();
        for (i, event) in events.iter().enumerate() {
            layout.append(&encoding, &mut body, i == 0, &Event::log(Value::from(event.clone()))).unwrap();
        }
        layout.finish(&mut body);
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn bodies_are_framed_as_vector_frames_them() {
        let events = [serde_json::json!({"a": 1}), serde_json::json!({"message": "two"})];
        assert_eq!(body("encoding.codec = \"json\"", &events), r#"[{"a":1},{"message":"two"}]"#);
        let lines = "{\"a\":1}\n{\"message\":\"two\"}";
        assert_eq!(body("encoding.codec = \"json\"\nframing.method = \"newline_delimited\"", &events), lines);
        assert_eq!(body("encoding.codec = \"ndjson\"", &events), lines);
        // Text: a log's message, else the event as JSON; every line ends in a newline.
        assert_eq!(body("encoding.codec = \"text\"", &events), "{\"a\":1}\ntwo\n");
        let wrapped = "encoding.codec = \"json\"\npayload_prefix = '{\"data\":'\npayload_suffix = '}'";
        assert_eq!(body(wrapped, &events[..1]), r#"{"data":[{"a":1}]}"#);
    }

    #[test]
    fn options_are_checked() {
        let error = |options: &str| config(options).check().unwrap_err().to_string();
        assert!(error("encoding.codec = \"json\"\npayload_prefix = '{\"data\":'").contains("valid JSON"));
        assert!(error("encoding.codec = \"ndjson\"\npayload_prefix = '{\"data\":'\npayload_suffix = '}'").contains("without `framing`"));
        assert!(error("encoding.codec = \"json\"\nrequest.concurrency = 0").contains("concurrency"));
        assert!(error("encoding.codec = \"json\"\nrequest.headers.\"bad name\" = \"x\"").contains("bad name"));
        assert!(error("encoding.codec = \"json\"\nrequest.headers.X-Service = \"{{ service }}\"").contains("templated header values"));
        let uri = |uri: &str| {
            toml_edit::de::from_str::<HttpSinkConfig>(&format!("uri = \"{uri}\"\nencoding.codec = \"json\""))
                .unwrap()
                .check()
                .map_err(|e| e.to_string())
        };
        assert!(uri("ftp://host/x").unwrap_err().contains("http://"));
        assert!(uri("{{ host }}/x").unwrap_err().contains("http://"));
        assert!(uri("http://host/{{ service }}").is_ok());
        // `request` takes `headers` and every common option, and nothing else.
        let config = config("encoding.codec = \"json\"\nrequest.headers.X-Tenant = \"kong\"\nrequest.retry_attempts = 3");
        assert_eq!((config.request.headers["X-Tenant"].as_str(), config.request.common.retry_attempts), ("kong", 3));
        let unknown = toml_edit::de::from_str::<HttpSinkConfig>("uri = \"http://h/\"\nencoding.codec = \"json\"\nrequest.retry_count = 3");
        assert!(unknown.unwrap_err().to_string().contains("retry_count"));
    }

    #[test]
    fn percent_encoded_bytes_stay_in_the_uri() {
        assert_eq!(escape_percent_encoding("http://h/?q=INSERT%20INTO%20t%2Fx"), "http://h/?q=INSERT%%20INTO%%20t%%2Fx");
        assert_eq!(escape_percent_encoding("/%Y/%m/%%20/%3f/100%"), "/%Y/%m/%%20/%3f/100%");
        let uri = |text: &str| {
            let config: HttpSinkConfig = toml_edit::de::from_str(&format!("uri = \"{text}\"\nencoding.codec = \"json\"")).unwrap();
            match config.uri().unwrap() {
                Uri::Fixed(fixed) => Some(fixed),
                Uri::Template(_) => None,
            }
        };
        let insert = "http://h:1/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow";
        assert_eq!(uri(insert).as_deref(), Some(insert));
        // Vector's way to write a `%` in a template gives the same URI.
        assert_eq!(uri(&insert.replace('%', "%%")).as_deref(), Some(insert));
        assert_eq!(uri("http://h/logs/%Y-%m-%d"), None);
        assert_eq!(uri("http://h/{{ service }}?q=a%20b"), None);
    }

    #[test]
    fn content_type_follows_the_framing_unless_configured() {
        let headers = |options: &str| {
            let config = config(options);
            config.headers(&config.layout().unwrap()).unwrap()
        };
        assert_eq!(headers("encoding.codec = \"json\"")["content-type"], "application/json");
        assert_eq!(headers("encoding.codec = \"ndjson\"\ncompression = \"gzip\"")["content-type"], "application/x-ndjson");
        assert_eq!(headers("encoding.codec = \"ndjson\"\ncompression = \"gzip\"")["content-encoding"], "gzip");
        assert_eq!(headers("encoding.codec = \"text\"")["content-type"], "text/plain");
        assert_eq!(headers("encoding.codec = \"text\"\nrequest.headers.Content-Type = \"text/csv\"")["content-type"], "text/csv");
    }

    #[test]
    fn retries_as_vector_does() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(retryable(status), "{status}");
        }
        for status in [501, 400, 401, 403, 404, 413, 422] {
            assert!(!retryable(status), "{status}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822().replace("+0000", "GMT");
        headers.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        assert!(retry_after(&headers).is_some_and(|wait| wait > Duration::from_secs(100) && wait <= Duration::from_secs(120)));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
