//! `console`: events to standard output (or error), one per line.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{SinkConfig, SinkContext};
use crate::codec::Encoding;
use crate::config::registry::Task;
use crate::event::{EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub target: Target,
    pub encoding: Encoding,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    #[default]
    Stdout,
    Stderr,
}

impl SinkConfig for ConsoleConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task, String> {
        let config = self.clone();
        Ok(Box::pin(async move {
            let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match config.target {
                Target::Stdout => Box::new(tokio::io::stdout()),
                Target::Stderr => Box::new(tokio::io::stderr()),
            };
            let mut buf = Vec::new();
            while let Some(batch) = cx.input.recv().await {
                buf.clear();
                for event in &batch {
                    if let Err(e) = config.encoding.encode(event, &mut buf) {
                        ComponentMetrics::add(&cx.metrics.errors, 1);
                        event.finalizers.update_status(EventStatus::Rejected);
                        tracing::error!(component = %cx.id, error = %e, "console: event not written");
                    }
                }
                let status = match async { out.write_all(&buf).await?; out.flush().await }.await {
                    Ok(()) => {
                        ComponentMetrics::add(&cx.metrics.sent_events, batch.len());
                        ComponentMetrics::add(&cx.metrics.sent_bytes, buf.len());
                        EventStatus::Delivered
                    }
                    Err(e) => {
                        ComponentMetrics::add(&cx.metrics.errors, 1);
                        ComponentMetrics::add(&cx.metrics.discarded_events, batch.len());
                        tracing::error!(component = %cx.id, error = %e, events = batch.len(), "console: write failed; batch lost");
                        EventStatus::Errored
                    }
                };
                for event in &batch {
                    event.finalizers.update_status(status);
                }
            }
            Ok(())
        }))
    }
}
