//! Sinks: where events leave. A sink consumes batches from its input buffer,
//! delivers them, and settles each event's finalizer.

pub mod blackhole;
pub mod clickhouse;
pub mod console;
pub mod file;
pub mod kafka;
pub mod opentelemetry;
pub mod prometheus_exporter;
pub mod prometheus_remote_write;

use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::registry::Task;
use crate::event::{Event, EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;
use crate::topology::buffer::BufferReceiver;

/// Vector's `healthcheck.enabled`: check the peer at start (on by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Healthcheck {
    pub enabled: bool,
}

impl Default for Healthcheck {
    fn default() -> Self {
        Healthcheck { enabled: true }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    #[default]
    Gzip,
}

/// Gzip at the fast level: on these paths CPU costs more than bytes.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Vector's `request` options of the HTTP-style sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    pub timeout_secs: u64,
    /// Tries after the first, for errors a retry can help: as in Vector, no
    /// limit by default, so a server that is down is waited for, not given up on.
    pub retry_attempts: u64,
    pub retry_initial_backoff_secs: f64,
    /// The longest wait between two tries (Vector's meaning).
    pub retry_max_duration_secs: f64,
    /// Requests in flight at once (each its own batch).
    pub concurrency: usize,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig { timeout_secs: 60, retry_attempts: u64::MAX, retry_initial_backoff_secs: 0.5, retry_max_duration_secs: 30.0, concurrency: 1 }
    }
}

/// Waits between tries: doubling from the initial backoff up to the cap, with jitter.
pub struct Backoff {
    next: f64,
    max: f64,
}

impl Backoff {
    pub fn new(request: &RequestConfig) -> Self {
        let max = request.retry_max_duration_secs.max(0.01);
        Backoff { next: request.retry_initial_backoff_secs.clamp(0.01, max), max }
    }

    /// Sleep before the next try: at least `asked` when the server said how long.
    pub async fn wait(&mut self, asked: Option<Duration>) {
        let jitter = rand::rng().random_range(0.5..1.5);
        let wait = Duration::from_secs_f64(self.next * jitter).max(asked.unwrap_or_default());
        tokio::time::sleep(wait).await;
        self.next = (self.next * 2.0).min(self.max);
    }
}

/// Add a write to those running, once fewer than `limit` are (so at the
/// limit the sink stops reading: backpressure).
pub async fn start<F: Future<Output = ()>>(running: &mut FuturesUnordered<F>, limit: usize, write: F) {
    while running.len() >= limit {
        running.next().await;
    }
    running.push(write);
}

/// How an HTTP-style sink batches: Vector's `batch.max_events` and `batch.timeout_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventBatchConfig {
    pub max_events: usize,
    pub timeout_secs: f64,
}

impl Default for EventBatchConfig {
    fn default() -> Self {
        EventBatchConfig { max_events: 1000, timeout_secs: 1.0 }
    }
}

impl EventBatchConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.max_events == 0 || !(self.timeout_secs > 0.0) {
            return Err("`batch.max_events` and `batch.timeout_secs` must be positive".into());
        }
        Ok(())
    }
}

/// Read events into batches, one per key (`key` refuses an event with
/// `None`), and hand each full or due batch to `flush`, up to `concurrency`
/// at once (at the limit, reading waits: backpressure). Ends when the input does.
pub async fn run_batches<K, F, W>(mut input: BufferReceiver, batch: &EventBatchConfig, concurrency: usize, mut key: impl FnMut(&Event) -> Option<K>, flush: F)
where
    K: Copy + PartialEq,
    F: Fn(K, Vec<Event>) -> W,
    W: Future<Output = ()>,
{
    let timeout = Duration::from_secs_f64(batch.timeout_secs);
    let limit = concurrency.max(1);
    // Few keys (signals, one table): a list beats a map.
    let mut pending: Vec<(K, Vec<Event>, Instant)> = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        let deadline = pending.iter().map(|(_, _, since)| *since + timeout).min();
        tokio::select! {
            Some(()) = running.next(), if !running.is_empty() => {}
            next = input.recv() => match next {
                Some(events) => {
                    for event in events {
                        let Some(k) = key(&event) else { continue };
                        let index = match pending.iter().position(|(p, _, _)| *p == k) {
                            Some(index) => index,
                            None => {
                                pending.push((k, Vec::new(), Instant::now()));
                                pending.len() - 1
                            }
                        };
                        pending[index].1.push(event);
                        if pending[index].1.len() >= batch.max_events {
                            let (k, events, _) = pending.swap_remove(index);
                            start(&mut running, limit, flush(k, events)).await;
                        }
                    }
                }
                None => break,
            },
            _ = sleep_until(deadline) => {
                while let Some(index) = pending.iter().position(|(_, _, since)| since.elapsed() >= timeout) {
                    let (k, events, _) = pending.swap_remove(index);
                    start(&mut running, limit, flush(k, events)).await;
                }
            }
        }
    }
    for (k, events, _) in pending {
        start(&mut running, limit, flush(k, events)).await;
    }
    while running.next().await.is_some() {}
}

/// Resolve at `deadline`, or never when there is none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// For `https://` endpoints: the receiver's certificate is checked against
/// Mozilla's roots (built in) and `ca_file`, if given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// A PEM file of CA certificates to trust too (a private CA, a self-signed receiver).
    pub ca_file: Option<PathBuf>,
}

impl ClientTls {
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        std::fs::read(path).map(Some).map_err(|e| format!("tls.ca_file {}: {e}", path.display()))
    }
}

/// Configured headers as a header map; a bad name or value is a config error.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in pairs {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`headers`: `{name}` is not a valid header name"))?;
        let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| format!("`headers.{name}`: the value is not a valid header value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// An HTTP client for a sink: its timeout, and more CAs to trust (PEM).
pub fn http_client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut client = reqwest::Client::builder().timeout(timeout);
    if let Some(pem) = ca_pem {
        for certificate in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("tls.ca_file: {e}"))? {
            client = client.add_root_certificate(certificate);
        }
    }
    client.build().map_err(|e| e.to_string())
}

/// An error with its causes: reqwest's own text ("error sending request")
/// hides what went wrong (refused, certificate, timeout).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

pub trait SinkConfig: Debug + Send + Sync {
    fn input_kinds(&self) -> Kinds;
    /// Check option values that serde cannot (ranges, templates); errors are config errors.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    fn build(&self, cx: SinkContext) -> Result<Task, String>;
}

pub struct SinkContext {
    pub id: String,
    pub input: BufferReceiver,
    pub metrics: Arc<ComponentMetrics>,
}

impl SinkContext {
    /// Settle the events of one write: count them, and tell their sources.
    pub fn settle<'a>(&self, events: impl Iterator<Item = &'a Event>, count: usize, written: Result<usize, String>) {
        settle(&self.id, &self.metrics, events, count, written)
    }

    /// Refuse one event for good (it cannot be encoded or placed).
    pub fn reject(&self, event: &Event, reason: &str) {
        reject(&self.id, &self.metrics, event, reason)
    }
}

/// Settling and refusing apart from the input, for writes that run on their own.
#[derive(Clone)]
pub struct Reporter {
    pub id: String,
    pub metrics: Arc<ComponentMetrics>,
}

impl Reporter {
    pub fn settle<'a>(&self, events: impl Iterator<Item = &'a Event>, count: usize, written: Result<usize, String>) {
        settle(&self.id, &self.metrics, events, count, written)
    }

    pub fn reject(&self, event: &Event, reason: &str) {
        reject(&self.id, &self.metrics, event, reason)
    }
}

fn settle<'a>(id: &str, metrics: &ComponentMetrics, events: impl Iterator<Item = &'a Event>, count: usize, written: Result<usize, String>) {
    let status = match written {
        Ok(bytes) => {
            ComponentMetrics::add(&metrics.sent_events, count);
            ComponentMetrics::add(&metrics.sent_bytes, bytes);
            EventStatus::Delivered
        }
        Err(e) => {
            ComponentMetrics::add(&metrics.errors, 1);
            ComponentMetrics::add(&metrics.discarded_events, count);
            tracing::error!(component = %id, error = %e, events = count, "write failed; events not delivered");
            EventStatus::Errored
        }
    };
    for event in events {
        event.finalizers.update_status(status);
    }
}

fn reject(id: &str, metrics: &ComponentMetrics, event: &Event, reason: &str) {
    ComponentMetrics::add(&metrics.errors, 1);
    ComponentMetrics::add(&metrics.discarded_events, 1);
    event.finalizers.update_status(EventStatus::Rejected);
    tracing::error!(component = %id, reason, "event dropped");
}
