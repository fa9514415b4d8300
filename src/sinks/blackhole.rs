//! `blackhole`: counts what arrives and lets it go. For benchmarks and tests.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::component::{Result, SinkConfig, SinkContext, Task};
use crate::event::{EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// Log the running count this often (0: never).
    #[serde(default)]
    pub print_interval_secs: u64,
}

impl SinkConfig for BlackholeConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task> {
        let every = (self.print_interval_secs > 0).then(|| Duration::from_secs(self.print_interval_secs));
        Ok(Box::pin(async move {
            let mut last_print = tokio::time::Instant::now();
            while let Some(batch) = cx.input.recv().await {
                for event in &batch {
                    event.finalizers.update_status(EventStatus::Delivered);
                }
                ComponentMetrics::add(&cx.metrics.sent_events, batch.len());
                if every.is_some_and(|every| last_print.elapsed() >= every) {
                    last_print = tokio::time::Instant::now();
                    tracing::info!(component = %cx.id, events = cx.metrics.sent_events.load(Ordering::Relaxed), "blackhole: total received");
                }
            }
            tracing::info!(component = %cx.id, events = cx.metrics.sent_events.load(Ordering::Relaxed), "blackhole: total received");
            Ok(())
        }))
    }
}
