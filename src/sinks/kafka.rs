//! `kafka`: one message per event, produced with librdkafka (rdkafka).
//!
//! An event is settled only when its delivery report arrives. While the broker
//! is away librdkafka keeps the messages (its queue is bounded: when it is
//! full the sink stops reading, and the pipeline's buffers push back); a
//! message that times out is produced again, with backoff, until it lands.
//! Errors no retry can cure (unknown topic, authorization, a message too
//! large) reject the event at once, counted and logged with the reason.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use serde::Deserialize;

use crate::codec::{Encoding, EncodingCodec};
use crate::component::{Error, Result, SinkConfig, SinkContext, Task};
use crate::event::{Event, EventData, Kinds, Value};
use crate::sinks::util::{BatchConfig, Healthcheck};
use crate::telemetry::ComponentMetrics;
use crate::template::Template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// A topic name, or a template such as `kong-{{ service }}-%Y%m%d`.
    pub topic: String,
    /// The field whose value is the message key (no key when it is missing).
    pub key_field: Option<String>,
    /// A field holding an object whose entries become message headers (Vector's option).
    pub headers_key: Option<String>,
    /// Headers added to every message; values may be templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "json_encoding")]
    pub encoding: Encoding,
    /// How long librdkafka tries to deliver a message before reporting it
    /// failed; the sink then produces it again.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    #[serde(default = "default_socket_timeout_ms")]
    pub socket_timeout_ms: u64,
    #[serde(default)]
    pub batch: BatchConfig,
    pub sasl: Option<SaslConfig>,
    pub tls: Option<KafkaTlsConfig>,
    /// Any librdkafka property, set last (so it wins over the options above).
    #[serde(default)]
    pub librdkafka_options: BTreeMap<String, String>,
    #[serde(default)]
    pub healthcheck: Healthcheck,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn codec(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    #[serde(default = "crate::defaults::yes")]
    pub enabled: bool,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`.
    pub mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTlsConfig {
    #[serde(default)]
    pub enabled: bool,
    /// CA certificates to verify the brokers with, PEM.
    pub ca_file: Option<String>,
    /// A client certificate, PEM (for brokers that require one).
    pub crt_file: Option<String>,
    pub key_file: Option<String>,
    pub key_pass: Option<String>,
    #[serde(default = "crate::defaults::yes")]
    pub verify_certificate: bool,
    #[serde(default = "crate::defaults::yes")]
    pub verify_hostname: bool,
}

fn json_encoding() -> Encoding {
    Encoding { codec: EncodingCodec::Json }
}

fn default_message_timeout_ms() -> u64 {
    300_000
}

fn default_socket_timeout_ms() -> u64 {
    60_000
}

impl KafkaConfig {
    /// The librdkafka properties: ours first, `librdkafka_options` last.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("compression.codec", self.compression.codec())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("socket.timeout.ms", self.socket_timeout_ms.to_string());
        if let Some(n) = self.batch.max_events {
            config.set("batch.num.messages", n.to_string());
        }
        if let Some(n) = self.batch.max_bytes {
            config.set("batch.size", n.to_string());
        }
        if let Some(secs) = self.batch.timeout_secs {
            config.set("linger.ms", format!("{}", (secs * 1000.0).round() as u64));
        }
        let sasl = self.sasl.as_ref().filter(|s| s.enabled);
        let tls = self.tls.as_ref().filter(|t| t.enabled);
        let protocol = match (sasl.is_some(), tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(sasl) = sasl {
            for (key, value) in [("sasl.mechanism", &sasl.mechanism), ("sasl.username", &sasl.username), ("sasl.password", &sasl.password)]
            {
                if let Some(value) = value {
                    config.set(key, value);
                }
            }
        }
        if let Some(tls) = tls {
            for (key, value) in [
                ("ssl.ca.location", &tls.ca_file),
                ("ssl.certificate.location", &tls.crt_file),
                ("ssl.key.location", &tls.key_file),
                ("ssl.key.password", &tls.key_pass),
            ] {
                if let Some(value) = value {
                    config.set(key, value);
                }
            }
            config.set("enable.ssl.certificate.verification", tls.verify_certificate.to_string());
            config.set("ssl.endpoint.identification.algorithm", if tls.verify_hostname { "https" } else { "none" });
        }
        for (key, value) in &self.librdkafka_options {
            config.set(key, value);
        }
        config
    }

    /// `text` (a librdkafka message) without the values of secret properties.
    fn redact(&self, text: &str) -> String {
        let secret = |key: &str| ["password", "secret", "key.pem", "token"].iter().any(|s| key.contains(s));
        let sasl = self.sasl.as_ref().and_then(|s| s.password.as_deref());
        let key_pass = self.tls.as_ref().and_then(|t| t.key_pass.as_deref());
        let options = self.librdkafka_options.iter().filter(|(key, _)| secret(key)).map(|(_, value)| value.as_str());
        sasl.into_iter()
            .chain(key_pass)
            .chain(options)
            .filter(|v| !v.is_empty())
            .fold(text.to_string(), |text, value| text.replace(value, "***"))
    }
}

impl SinkConfig for KafkaConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn check(&self) -> Result<()> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err("`bootstrap_servers` is empty: give `host:port[,host:port…]`".into());
        }
        Template::parse(&self.topic).map_err(|e| format!("`topic`: {e}"))?;
        for (name, value) in &self.headers {
            Template::parse(value).map_err(|e| format!("`headers.{name}`: {e}"))?;
        }
        for (option, field) in [("key_field", &self.key_field), ("headers_key", &self.headers_key)] {
            if let Some(field) = field {
                field_template(field).map_err(|e| format!("`{option}`: {e}"))?;
            }
        }
        if let Some(sasl) = self.sasl.as_ref().filter(|s| s.enabled) {
            if sasl.mechanism.is_none() {
                return Err("`sasl.enabled` needs `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)".into());
            }
        }
        if matches!(self.batch.timeout_secs, Some(secs) if !(0.0..=900.0).contains(&secs)) {
            return Err("`batch.timeout_secs` must be between 0 and 900".into());
        }
        // librdkafka checks each property's name and value as it is set; its message quotes the value.
        self.client_config()
            .create_native_config()
            .map_err(|e| Error::new(format!("librdkafka refuses the configuration: {}", self.redact(&e.to_string()))))?;
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        let sasl = self.sasl.as_ref().filter(|s| s.enabled);
        let tls = self.tls.as_ref().is_some_and(|t| t.enabled);
        match sasl.and_then(|s| s.mechanism.as_deref()) {
            Some(mechanism) if !tls && mechanism.eq_ignore_ascii_case("PLAIN") => {
                vec!["`sasl.mechanism = \"PLAIN\"` without `tls.enabled`: the password crosses the network in the clear".into()]
            }
            _ => Vec::new(),
        }
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let context = KafkaContext { component: cx.id.clone(), metrics: cx.metrics.clone(), logged: Default::default() };
        let producer: FutureProducer<KafkaContext> = self
            .client_config()
            .create_with_context(context)
            .map_err(|e| Error::new(format!("cannot create the Kafka producer: {}", self.redact(&e.to_string()))))?;
        let headers =
            self.headers.iter().map(|(name, value)| Ok((name.clone(), Template::parse(value)?))).collect::<Result<_, String>>()?;
        let sink = Kafka {
            topic: Template::parse(&self.topic)?,
            key: self.key_field.as_deref().map(field_template).transpose()?,
            headers_key: self.headers_key.as_deref().map(field_path).transpose()?,
            headers,
            config: self.clone(),
            producer,
            cx,
            warnings: Warnings::default(),
        };
        Ok(Box::pin(sink.run()))
    }
}

/// A field name as a template that renders its value.
fn field_template(field: &str) -> Result<Template, String> {
    Template::parse(&format!("{{{{ {} }}}}", field.trim()))
}

fn field_path(field: &str) -> Result<vrl::path::OwnedValuePath, String> {
    let field = field.trim();
    vrl::path::parse_value_path(field.strip_prefix('.').unwrap_or(field)).map_err(|e| format!("invalid field `{field}`: {e}"))
}

/// librdkafka's logs and errors, as tapline's, with the component's id.
struct KafkaContext {
    component: String,
    metrics: Arc<ComponentMetrics>,
    /// When each kind of client error was last logged: a down broker is
    /// reported every few milliseconds, and once in ten seconds is enough to read.
    logged: Mutex<HashMap<String, Instant>>,
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            // Connection failures also arrive through `error`, which logs them once.
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error if facility != "FAIL" => {
                tracing::error!(component = %self.component, facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(component = %self.component, facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(component = %self.component, facility, "librdkafka: {message}")
            }
            _ => tracing::debug!(component = %self.component, facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        ComponentMetrics::add(&self.metrics.errors, 1);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let at = logged.entry(error.to_string()).or_insert_with(|| Instant::now() - Duration::from_secs(60));
        if at.elapsed() < Duration::from_secs(10) {
            return;
        }
        *at = Instant::now();
        tracing::warn!(component = %self.component, error = %error, "Kafka client error: {reason}");
    }
}

/// A message librdkafka holds, and the event waiting for its report.
type InFlight = Pin<Box<dyn Future<Output = Report> + Send>>;

struct Report {
    event: Event,
    bytes: usize,
    /// Deliveries tried before this one.
    attempt: u32,
    result: Result<(), (KafkaError, Option<OwnedMessage>)>,
}

struct Kafka {
    config: KafkaConfig,
    topic: Template,
    key: Option<Template>,
    headers_key: Option<vrl::path::OwnedValuePath>,
    headers: Vec<(String, Template)>,
    producer: FutureProducer<KafkaContext>,
    cx: SinkContext,
    warnings: Warnings,
}

/// Messages librdkafka may hold at once (its `queue.buffering.max.messages` default).
const MAX_IN_FLIGHT: usize = 100_000;

impl Kafka {
    async fn run(mut self) -> Result<()> {
        if self.config.healthcheck.enabled {
            self.healthcheck().await?;
        }
        let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                Some(report) = in_flight.next() => self.settle(report, &mut in_flight),
                next = self.cx.input.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(batch) = next else { break };
                    for event in batch {
                        if let Some(delivery) = self.produce(event).await {
                            in_flight.push(delivery);
                        }
                    }
                }
            }
        }
        while let Some(report) = in_flight.next().await {
            self.settle(report, &mut in_flight);
        }
        Ok(())
    }

    /// The brokers answer a metadata request; a static topic exists.
    async fn healthcheck(&self) -> Result<(), String> {
        let producer = self.producer.clone();
        let timeout = Duration::from_millis(self.config.socket_timeout_ms.clamp(1_000, 10_000));
        let metadata = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| format!("Kafka healthcheck did not finish: {e}"))?
            .map_err(|e| {
                format!("Kafka at {} is unreachable: {e} (set healthcheck.enabled = false to start anyway)", self.config.bootstrap_servers)
            })?;
        if self.topic.is_static() {
            let topic = self.config.topic.as_str();
            if !metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none()) {
                tracing::warn!(
                    component = %self.cx.id,
                    topic,
                    "the topic does not exist on the brokers yet; messages to it fail unless the brokers create topics on first use"
                );
            }
        }
        Ok(())
    }

    /// Encode and hand one event to librdkafka; `None` when it was refused for good.
    async fn produce(&mut self, event: Event) -> Option<InFlight> {
        let topic = match self.topic.render(&event) {
            Ok(topic) => topic,
            Err(e) => {
                self.cx.reject(&event, &format!("cannot render `topic`: {e}"));
                return None;
            }
        };
        let mut payload = Vec::with_capacity(512);
        if let Err(e) = self.config.encoding.encode_message(&event, &mut payload) {
            self.cx.reject(&event, &e);
            return None;
        }
        // A missing key field sends the message without a key (as Vector does).
        let key = self.key.as_ref().and_then(|k| k.render(&event).ok());
        let headers = self.headers(&event);
        let mut record = FutureRecord::to(&topic).payload(&payload);
        if let Some(key) = &key {
            record = record.key(key.as_str());
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        if let Some(ms) = event_millis(&event) {
            record = record.timestamp(ms);
        }
        let bytes = payload.len();
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Some(Box::pin(report(event, bytes, 0, delivery))),
                // librdkafka's queue is full (a slow or absent broker): wait, and
                // meanwhile read no more input, so the pipeline pushes back.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((e, _)) => {
                    self.cx.reject(&event, &refusal(&topic, &e));
                    return None;
                }
            }
        }
    }

    fn headers(&self, event: &Event) -> Option<OwnedHeaders> {
        let from_field = match (&self.headers_key, &event.data) {
            (Some(path), EventData::Log(log)) => match log.get(path) {
                Some(Value::Object(map)) => Some(map),
                _ => None,
            },
            _ => None,
        };
        if self.headers.is_empty() && from_field.is_none() {
            return None;
        }
        let mut headers = OwnedHeaders::new();
        for (name, template) in &self.headers {
            if let Ok(value) = template.render(event) {
                headers = headers.insert(Header { key: name, value: Some(value.as_bytes()) });
            }
        }
        for (name, value) in from_field.into_iter().flatten() {
            let value = match value {
                Value::Bytes(b) => b.to_vec(),
                Value::Null => continue,
                other => other.to_string_lossy().into_owned().into_bytes(),
            };
            headers = headers.insert(Header { key: name.as_str(), value: Some(&value) });
        }
        Some(headers)
    }

    /// A delivery report: settle the event, or try again, or refuse it.
    fn settle(&mut self, report: Report, in_flight: &mut FuturesUnordered<InFlight>) {
        let Report { event, bytes, attempt, result } = report;
        match result {
            Ok(()) => self.cx.settle(std::iter::once(&event), 1, Ok(bytes)),
            Err((error, Some(message))) if !is_permanent(&error) => {
                ComponentMetrics::add(&self.cx.metrics.errors, 1);
                self.warnings.note(&self.cx.id, message.topic(), &error);
                in_flight.push(Box::pin(retry(self.producer.clone(), message, event, bytes, attempt + 1)));
            }
            Err((error, message)) => {
                let topic = message.as_ref().map(|m| m.topic().to_string()).unwrap_or_default();
                self.cx.reject(&event, &refusal(&topic, &error));
            }
        }
    }
}

/// Wait for one delivery report.
async fn report(event: Event, bytes: usize, attempt: u32, delivery: DeliveryFuture) -> Report {
    let result = match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, message))) => Err((error, Some(message))),
        Err(_canceled) => Err((KafkaError::Canceled, None)),
    };
    Report { event, bytes, attempt, result }
}

/// Produce a failed message again after a backoff with jitter (0.1 s doubling, at most 10 s).
async fn retry(producer: FutureProducer<KafkaContext>, message: OwnedMessage, event: Event, bytes: usize, attempt: u32) -> Report {
    let backoff = (0.1 * 2f64.powi(attempt.min(7) as i32)).min(10.0) * rand::rng().random_range(0.5..1.5);
    tokio::time::sleep(Duration::from_secs_f64(backoff)).await;
    let mut record = FutureRecord::to(message.topic()).payload(message.payload().unwrap_or_default());
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(headers) = message.headers() {
        record = record.headers(headers.clone());
    }
    if let Some(ms) = message.timestamp().to_millis() {
        record = record.timestamp(ms);
    }
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return report(event, bytes, attempt, delivery).await,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((error, _)) => {
                let message = message.clone();
                return Report { event, bytes, attempt, result: Err((error, Some(message))) };
            }
        }
    }
}

/// Errors that no retry cures: the event is refused. A broker's "unknown topic
/// or partition" is not one (Kafka calls it retriable: leadership may be
/// moving); librdkafka's own "unknown topic" is, once it has waited
/// `topic.metadata.propagation.max.ms` for the topic to appear.
fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            UnknownTopic
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | TransactionalIdAuthorizationFailed
                | Authentication
                | SaslAuthenticationFailed
                | MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | InvalidRecord
                | InvalidTopic
                | InvalidMessage
                | InvalidArgument
                | Fatal
        )
    ) || matches!(error, KafkaError::Canceled)
}

/// Why a message was refused, in words a user can act on.
fn refusal(topic: &str, error: &KafkaError) -> String {
    use RDKafkaErrorCode::*;
    let hint = match error.rdkafka_error_code() {
        Some(UnknownTopic) => " (the topic does not exist and the brokers do not create topics on first use: create it)",
        Some(TopicAuthorizationFailed | ClusterAuthorizationFailed) => " (the credentials are not allowed to write this topic)",
        Some(Authentication | SaslAuthenticationFailed) => " (check sasl.mechanism, sasl.username and sasl.password)",
        Some(MessageSizeTooLarge | InvalidMessageSize) => " (raise the broker's max.message.bytes or librdkafka's message.max.bytes)",
        _ => "",
    };
    format!("Kafka refused a message for topic `{topic}`: {error}{hint}")
}

/// The event's time in milliseconds, for the message timestamp.
fn event_millis(event: &Event) -> Option<i64> {
    match &event.data {
        EventData::Record(record) => Some(record.time.timestamp_millis()),
        EventData::Log(log) => match log.get(vrl::path!("timestamp")) {
            Some(Value::Timestamp(t)) => Some(t.timestamp_millis()),
            _ => None,
        },
        _ => None,
    }
}

/// Retries are logged once a second at most, with how many there were.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    since_last: u64,
}

impl Warnings {
    fn note(&mut self, component: &str, topic: &str, error: &KafkaError) {
        self.since_last += 1;
        if self.last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        tracing::warn!(component, topic, error = %error, failed = self.since_last, "Kafka delivery failed; producing again");
        self.last = Some(Instant::now());
        self.since_last = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> KafkaConfig {
        toml_edit::de::from_str(toml).unwrap()
    }

    #[test]
    fn options_become_librdkafka_properties_and_passthrough_wins() {
        let c = config(
            r#"
            bootstrap_servers = "127.0.0.1:9092"
            topic = "kong"
            compression = "zstd"
            batch.timeout_secs = 0.05
            sasl = { mechanism = "SCRAM-SHA-256", username = "u", password = "p" }
            tls = { enabled = true, ca_file = "/ca.pem" }
            librdkafka_options = { "linger.ms" = "7", "acks" = "all" }
            "#,
        );
        let props = c.client_config();
        assert_eq!(props.get("compression.codec"), Some("zstd"));
        assert_eq!(props.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(props.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(props.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(props.get("linger.ms"), Some("7"));
        assert_eq!(props.get("acks"), Some("all"));
        assert!(c.check().is_ok());
    }

    #[test]
    fn bad_options_are_config_errors() {
        let unknown = config("bootstrap_servers = \"h:1\"\ntopic = \"t\"\nlibrdkafka_options = { \"no.such.property\" = \"1\" }");
        let e = unknown.check().unwrap_err().to_string();
        assert!(e.contains("no.such.property"), "{e}");
        let bad_value = config("bootstrap_servers = \"h:1\"\ntopic = \"t\"\nlibrdkafka_options = { \"acks\" = \"sometimes\" }");
        assert!(bad_value.check().unwrap_err().to_string().contains("acks"));
        let sasl = config("bootstrap_servers = \"h:1\"\ntopic = \"t\"\nsasl.username = \"u\"");
        assert!(sasl.check().unwrap_err().to_string().contains("sasl.mechanism"));
        assert!(config("bootstrap_servers = \"h:1\"\ntopic = \"{{ x\"").check().unwrap_err().to_string().contains("topic"));
    }

    #[test]
    fn permanent_and_transient_errors() {
        let unknown = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic);
        assert!(is_permanent(&unknown));
        assert!(!is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition)));
        assert!(refusal("t", &unknown).contains("create it"));
        assert!(is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)));
        assert!(!is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure)));
        assert!(!is_permanent(&KafkaError::MessageProduction(RDKafkaErrorCode::NotLeaderForPartition)));
    }
}
