//! The sink contract: a sink reads batches from its input buffer, delivers
//! them, and settles each event's finalizer (delivered, failed or refused), so
//! that the sources that asked learn the outcome.

use std::fmt::Debug;
use std::sync::Arc;

use super::buffer::BufferReceiver;
use super::{Result, Task};
use crate::event::{Event, EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;

pub trait SinkConfig: Debug + Send + Sync {
    fn input_kinds(&self) -> Kinds;
    /// Check option values that serde cannot (ranges, templates); errors are config errors.
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// Choices that work but are risky (secrets sent in the clear, a server
    /// open to every address): `validate` and `run` print them.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    fn build(&self, cx: SinkContext) -> Result<Task>;
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
