//! Sinks: where events leave. A sink consumes batches from its input buffer,
//! delivers them, and settles each event's finalizer.

pub mod blackhole;
pub mod clickhouse;
pub mod console;
pub mod file;
pub mod kafka;

use std::fmt::Debug;
use std::sync::Arc;

use crate::config::registry::Task;
use crate::event::{Event, EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;
use crate::topology::buffer::BufferReceiver;

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
        let status = match written {
            Ok(bytes) => {
                ComponentMetrics::add(&self.metrics.sent_events, count);
                ComponentMetrics::add(&self.metrics.sent_bytes, bytes);
                EventStatus::Delivered
            }
            Err(e) => {
                ComponentMetrics::add(&self.metrics.errors, 1);
                ComponentMetrics::add(&self.metrics.discarded_events, count);
                tracing::error!(component = %self.id, error = %e, events = count, "write failed; events not delivered");
                EventStatus::Errored
            }
        };
        for event in events {
            event.finalizers.update_status(status);
        }
    }

    /// Refuse one event for good (it cannot be encoded or placed).
    pub fn reject(&self, event: &Event, reason: &str) {
        ComponentMetrics::add(&self.metrics.errors, 1);
        ComponentMetrics::add(&self.metrics.discarded_events, 1);
        event.finalizers.update_status(EventStatus::Rejected);
        tracing::error!(component = %self.id, reason, "event dropped");
    }
}
