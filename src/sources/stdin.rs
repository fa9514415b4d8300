//! `stdin`: one event per line of standard input. At EOF the source ends, and
//! once every source has ended the pipeline drains and exits, so
//! `cat entries.jsonl | tapline run` works as a batch job.

use std::io::{BufRead, BufReader, Read};

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::codec::Decoding;
use crate::component::{Context, OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, EventBatch, Kinds, Value};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    #[serde(default)]
    pub decoding: Decoding,
    /// Longer lines are cut to this many bytes and counted as errors.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
}

fn default_max_length() -> usize {
    102_400
}

const MAX_BATCH: usize = 1000;

impl SourceConfig for StdinConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn build(&self, mut cx: SourceContext) -> Result<Task> {
        let config = self.clone();
        Ok(Box::pin(async move {
            // Reading stdin blocks; a thread reads, this task sends.
            let (tx, mut rx) = mpsc::channel::<(EventBatch, usize)>(4);
            let metrics = cx.metrics.clone();
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || read_lines(BufReader::with_capacity(1 << 16, std::io::stdin()), &config, &metrics, &tx))
                .context("cannot start the stdin reader")?;
            let mut shutdown = cx.shutdown.clone();
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    _ = shutdown.triggered(), if !shutdown.is_triggered() => {
                        // Stop reading, but hand on the lines already read.
                        rx.close();
                        continue;
                    }
                };
                let Some((mut batch, bytes)) = next else {
                    cx.acknowledged_all().await;
                    return Ok(());
                };
                ComponentMetrics::add(&cx.metrics.received_events, batch.len());
                ComponentMetrics::add(&cx.metrics.received_bytes, bytes);
                let n = batch.len();
                let receiver = cx.finalize(&mut batch);
                cx.out.send(batch).await;
                if let Some(receiver) = receiver {
                    cx.count_acknowledgement(receiver, n);
                }
            }
        }))
    }
}

/// Read lines into batches; a batch goes out when full or when no more input
/// is buffered, so a slow writer's lines are not held back.
fn read_lines(mut reader: BufReader<impl Read>, config: &StdinConfig, metrics: &ComponentMetrics, tx: &mpsc::Sender<(EventBatch, usize)>) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n;
                line_number += 1;
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if line.len() > config.max_length {
                    line.truncate(config.max_length);
                    ComponentMetrics::add(&metrics.errors, 1);
                    tracing::warn!(line = line_number, max_length = config.max_length, "stdin: line too long, cut");
                }
                if !line.is_empty() {
                    match config.decoding.decode(&line) {
                        Ok(objects) => batch.extend(objects.into_iter().map(|mut map| {
                            map.entry("source_type".into()).or_insert_with(|| "stdin".into());
                            map.entry("timestamp".into()).or_insert_with(|| Value::Timestamp(chrono::Utc::now()));
                            Event::log(Value::Object(map))
                        })),
                        Err(e) => {
                            ComponentMetrics::add(&metrics.errors, 1);
                            ComponentMetrics::add(&metrics.discarded_events, 1);
                            tracing::error!(line = line_number, error = %e, "stdin: cannot decode line; dropped");
                        }
                    }
                }
            }
            Err(e) => {
                ComponentMetrics::add(&metrics.errors, 1);
                tracing::error!(error = %e, "stdin: read failed");
                break;
            }
        }
        let due = batch.len() >= MAX_BATCH || (reader.buffer().is_empty() && !batch.is_empty());
        if due && tx.blocking_send((std::mem::take(&mut batch), std::mem::take(&mut bytes))).is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send((batch, bytes));
    }
}
