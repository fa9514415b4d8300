//! The integration tests, in one binary (one link instead of one per suite).
//! Each module talks to the real peer its part needs, on loopback; in CI
//! (`CI` set) a missing peer fails its tests, elsewhere they skip and say why.

mod common;

mod clickhouse;
#[cfg(feature = "ebpf")]
mod ebpf;
mod enrich;
mod faults;
mod http_sink;
#[cfg(feature = "kafka")]
mod kafka;
mod kong;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod layers;
#[cfg(feature = "otlp")]
mod otel;
mod prometheus;
mod socket_sink;
mod syslog_socket;
mod topology;
mod transforms;
