//! What the sinks share: batching events by key with a size and a timeout,
//! a bounded number of writes in flight, and the start-up healthcheck option.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;

use crate::component::BufferReceiver;
use crate::event::Event;

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

/// Add a write to those running, once fewer than `limit` are (so at the
/// limit the sink stops reading: backpressure).
pub async fn start<F: Future<Output = ()>>(running: &mut FuturesUnordered<F>, limit: usize, write: F) {
    while running.len() >= limit {
        running.next().await;
    }
    running.push(write);
}

/// Vector's `batch` options, one shape for every sink. What is unset comes
/// from the sink's own defaults (`BatchLimits`); librdkafka reads them as its
/// `batch.num.messages`, `batch.size` and `linger.ms`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    pub max_events: Option<usize>,
    pub max_bytes: Option<usize>,
    pub timeout_secs: Option<f64>,
}

/// A sink's batch limits, its defaults filled in.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    /// `None`: the sink batches by events and time only.
    pub max_bytes: Option<usize>,
    pub timeout: Duration,
}

impl BatchLimits {
    /// The OTLP and remote write sinks' defaults: 1000 events or 1 s.
    pub const EVENTS_AND_TIME: BatchLimits = BatchLimits { max_events: 1000, max_bytes: None, timeout: Duration::from_secs(1) };
}

impl BatchConfig {
    /// Every value that is set must be positive.
    pub fn check(&self) -> Result<(), String> {
        if self.max_events == Some(0) || self.max_bytes == Some(0) || self.timeout_secs.is_some_and(|t| t.is_nan() || t <= 0.0) {
            return Err("`batch.max_events`, `batch.max_bytes` and `batch.timeout_secs` must be positive".into());
        }
        Ok(())
    }

    /// The limits, with `defaults` where unset. A sink whose defaults have no
    /// `max_bytes` cannot count bytes, and refuses one.
    pub fn limits(&self, defaults: BatchLimits) -> Result<BatchLimits, String> {
        self.check()?;
        if self.max_bytes.is_some() && defaults.max_bytes.is_none() {
            return Err("`batch.max_bytes` is not supported by this sink: it batches by `batch.max_events` and `batch.timeout_secs`".into());
        }
        Ok(BatchLimits {
            max_events: self.max_events.unwrap_or(defaults.max_events),
            max_bytes: self.max_bytes.or(defaults.max_bytes),
            timeout: self.timeout_secs.map_or(defaults.timeout, Duration::from_secs_f64),
        })
    }
}

/// Read events into batches, one per key (`key` refuses an event with
/// `None`), and hand each full or due batch to `flush`, up to `concurrency`
/// at once (at the limit, reading waits: backpressure). Ends when the input does.
pub async fn run_batches<K, F, W>(
    input: BufferReceiver,
    batch: BatchLimits,
    concurrency: usize,
    key: impl FnMut(&Event) -> Option<K>,
    flush: F,
) where
    K: PartialEq,
    F: Fn(K, Vec<Event>) -> W,
    W: Future<Output = ()>,
{
    let add = |events: &mut Vec<Event>, event| {
        events.push(event);
        events.len() >= batch.max_events
    };
    fill_batches(input, batch.timeout, concurrency, key, add, flush).await
}

/// `run_batches` for a sink that builds its batches its own way (encoding
/// each event as it comes, say): `add` puts an event in its key's batch (a
/// new one starts as `B::default()`) and says whether that batch is now full.
pub async fn fill_batches<K, B, F, W>(
    mut input: BufferReceiver,
    timeout: Duration,
    concurrency: usize,
    mut key: impl FnMut(&Event) -> Option<K>,
    mut add: impl FnMut(&mut B, Event) -> bool,
    flush: F,
) where
    K: PartialEq,
    B: Default,
    F: Fn(K, B) -> W,
    W: Future<Output = ()>,
{
    let limit = concurrency.max(1);
    // Few keys (signals, one table): a list beats a map.
    let mut pending: Vec<(K, B, Instant)> = Vec::new();
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
                                pending.push((k, B::default(), Instant::now()));
                                pending.len() - 1
                            }
                        };
                        if add(&mut pending[index].1, event) {
                            let (k, full, _) = pending.swap_remove(index);
                            start(&mut running, limit, flush(k, full)).await;
                        }
                    }
                }
                None => break,
            },
            _ = sleep_until(deadline) => {
                while let Some(index) = pending.iter().position(|(_, _, since)| since.elapsed() >= timeout) {
                    let (k, due, _) = pending.swap_remove(index);
                    start(&mut running, limit, flush(k, due)).await;
                }
            }
        }
    }
    for (k, rest, _) in pending {
        start(&mut running, limit, flush(k, rest)).await;
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
