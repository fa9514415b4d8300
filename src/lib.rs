//! tapline: an observability pipeline for API gateways.
//!
//! `config` reads `pipeline.toml`, `topology` runs it; components live in
//! `sources`, `transforms` and `sinks`, events in `event`.

pub mod admin;
pub mod app;
pub mod codec;
pub mod config;
pub mod event;
pub mod graph_view;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod template;
pub mod topology;
pub mod transforms;
