//! Sinks: where events leave. A sink consumes batches from its input buffer,
//! delivers them, and settles each event's finalizer.

pub mod blackhole;
pub mod console;
pub mod file;

use std::fmt::Debug;
use std::sync::Arc;

use crate::config::registry::Task;
use crate::event::Kinds;
use crate::telemetry::ComponentMetrics;
use crate::topology::buffer::BufferReceiver;

pub trait SinkConfig: Debug + Send + Sync {
    fn input_kinds(&self) -> Kinds;
    fn build(&self, cx: SinkContext) -> Result<Task, String>;
}

pub struct SinkContext {
    pub id: String,
    pub input: BufferReceiver,
    pub metrics: Arc<ComponentMetrics>,
}
