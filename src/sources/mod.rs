//! Sources: where events enter. Each runs until told to stop (or until its
//! input ends), sending batches to its outputs.

pub mod demo;
#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod file;
pub mod http_server;
pub mod internal_metrics;
pub mod kong;
#[cfg(feature = "otlp")]
pub mod opentelemetry;
pub mod prometheus_remote_write;
pub mod socket;
pub mod stdin;
pub mod syslog;
pub mod util;
