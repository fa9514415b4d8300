//! A component's outputs: what each carries (`OutputDef`, declared so the
//! config check can refuse a wrong wiring), and the fan-out that feeds every
//! input reading it. The topology owns the list of targets and swaps it on
//! reload; the component only sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::buffer::BufferSender;
use crate::event::{EventBatch, Kinds};
use crate::telemetry::ComponentMetrics;

/// A named output of a component, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDef {
    pub port: Option<String>,
    pub kinds: Kinds,
}

impl OutputDef {
    pub fn default(kinds: Kinds) -> Self {
        OutputDef { port: None, kinds }
    }

    pub fn named(port: impl Into<String>, kinds: Kinds) -> Self {
        OutputDef { port: Some(port.into()), kinds }
    }
}

pub type Targets = Arc<Vec<(String, BufferSender)>>;

/// The targets of one output, shared between the sending component and the topology.
#[derive(Default)]
pub struct TargetList(Mutex<Targets>);

impl TargetList {
    pub fn get(&self) -> Targets {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, targets: Vec<(String, BufferSender)>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(targets);
    }
}

pub struct Fanout {
    pub targets: Arc<TargetList>,
    /// The sending component's counters.
    pub metrics: Arc<ComponentMetrics>,
}

impl Fanout {
    /// Deliver a batch to every target, one after the other; a full target
    /// makes this wait. Waiting here is how backpressure reaches the source.
    pub async fn send(&self, batch: EventBatch) {
        if batch.is_empty() {
            return;
        }
        let targets = self.targets.get();
        let len = batch.len();
        let Some(((last_id, last), rest)) = targets.split_last() else {
            // Validation warned that nothing reads this output.
            ComponentMetrics::add(&self.metrics.discarded_events, len);
            return;
        };
        for (id, target) in rest {
            if target.send(batch.clone()).await.is_err() {
                self.lost(id, len);
            }
        }
        if last.send(batch).await.is_err() {
            self.lost(last_id, len);
        }
        ComponentMetrics::add(&self.metrics.sent_events, len);
    }

    /// Deliver to every target if each has room within `wait`; else hand the
    /// batch back untouched, holding no room (an HTTP source then answers 503).
    pub async fn send_within(&self, batch: EventBatch, wait: Duration) -> Result<(), EventBatch> {
        let targets = self.targets.get();
        let deadline = tokio::time::Instant::now() + wait;
        let mut reservations = Vec::with_capacity(targets.len());
        for (_, target) in targets.iter() {
            match tokio::time::timeout_at(deadline, target.reserve(batch.len())).await {
                Ok(reservation) => reservations.push(reservation),
                Err(_) => return Err(batch),
            }
        }
        let len = batch.len();
        if targets.is_empty() {
            ComponentMetrics::add(&self.metrics.discarded_events, len);
            return Ok(());
        }
        let mut batch = Some(batch);
        let last = targets.len() - 1;
        for (index, ((id, target), reservation)) in targets.iter().zip(reservations).enumerate() {
            let copy = if index == last { batch.take().unwrap_or_default() } else { batch.clone().unwrap_or_default() };
            if target.send_reserved(copy, reservation).is_err() {
                self.lost(id, len);
            }
        }
        ComponentMetrics::add(&self.metrics.sent_events, len);
        Ok(())
    }

    fn lost(&self, target: &str, len: usize) {
        ComponentMetrics::add(&self.metrics.discarded_events, len);
        tracing::error!(component = %self.metrics.id, target, events = len, "target stopped; its copy of the batch is lost");
    }
}
