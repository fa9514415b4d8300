//! `internal_metrics`: tapline's own counters as metric events, so they can
//! be routed like any other data.

use std::time::Duration;

use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds};
use crate::telemetry;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalMetricsConfig {
    #[serde(default = "default_interval")]
    pub scrape_interval_secs: f64,
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_interval() -> f64 {
    1.0
}

fn default_namespace() -> String {
    "tapline".into()
}

impl SourceConfig for InternalMetricsConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::METRIC)]
    }

    fn check(&self) -> Result<()> {
        if !(self.scrape_interval_secs > 0.0 && self.scrape_interval_secs <= 86_400.0) {
            return Err("`scrape_interval_secs` must be a positive number of seconds (at most a day)".into());
        }
        Ok(())
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let interval = Duration::from_secs_f64(self.scrape_interval_secs);
        let namespace = self.namespace.clone();
        Ok(Box::pin(async move {
            let mut shutdown = cx.shutdown.clone();
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.triggered() => return Ok(()),
                }
                let batch: Vec<Event> = telemetry::metric_events(&namespace).into_iter().map(Event::metric).collect();
                telemetry::ComponentMetrics::add(&cx.metrics.received_events, batch.len());
                cx.out.send(batch).await;
            }
        }))
    }
}
