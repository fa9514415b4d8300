//! Sinks: where events leave. A sink consumes batches from its input buffer,
//! delivers them, and settles each event's finalizer.

pub mod blackhole;
pub mod clickhouse;
pub mod console;
pub mod file;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "otlp")]
pub mod opentelemetry;
pub mod prometheus_exporter;
pub mod prometheus_remote_write;
pub mod socket;
pub mod util;
