//! TCP connection events → metrics on the source's `tcp` output, summed
//! per second: connects (and their latency), failed connects, accepts,
//! retransmits and resets, by process and server address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::Utc;
use rustc_hash::FxHashMap;

use super::event::{Event, Kind};
use crate::event::{Bucket, Metric, MetricKind, MetricValue};

/// Connect latency buckets, seconds (loopback to cross-region).
const LATENCY_BOUNDS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Sockets remembered for attributing retransmits and resets (which the
/// kernel reports without a process); forgotten wholesale past this.
const MAX_SOCKETS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Series {
    process_name: Option<String>,
    server: (IpAddr, u16),
}

struct Owner {
    process_name: String,
    server: (IpAddr, u16),
}

#[derive(Default)]
struct Latency {
    counts: Vec<u64>,
    sum: f64,
}

pub struct TcpStats {
    enabled: bool,
    sockets: FxHashMap<u64, Owner>,
    /// Accepts seen at the handshake's end (no process there), by socket,
    /// with their server address: counted under the process that first
    /// reads or writes on the socket, or under none if it closes first.
    unclaimed_accepts: FxHashMap<u64, (IpAddr, u16)>,
    counts: BTreeMap<(&'static str, Series), u64>,
    latencies: BTreeMap<Series, Latency>,
}

impl TcpStats {
    pub fn new(enabled: bool) -> TcpStats {
        TcpStats {
            enabled,
            sockets: FxHashMap::default(),
            unclaimed_accepts: FxHashMap::default(),
            counts: BTreeMap::new(),
            latencies: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, event: &Event) {
        if !self.enabled {
            return;
        }
        let ends = event.endpoints;
        match event.kind {
            // From the accept call (the syscall hooks): its process is known.
            Kind::Accepted if event.pid != 0 => {
                self.remember(event, ends.local);
                self.count("tcp_accepts_total", Series { process_name: Some(event.comm.to_string()), server: ends.local });
            }
            Kind::Accepted => {
                if self.unclaimed_accepts.len() >= MAX_SOCKETS {
                    for (_, server) in std::mem::take(&mut self.unclaimed_accepts) {
                        self.count("tcp_accepts_total", Series { process_name: None, server });
                    }
                }
                self.unclaimed_accepts.insert(event.socket, ends.local);
            }
            Kind::Connected => {
                self.remember(event, ends.remote);
                let series = Series { process_name: Some(event.comm.to_string()), server: ends.remote };
                let seconds = event.value as f64 / 1e9;
                let latency = self.latencies.entry(series.clone()).or_default();
                latency.counts.resize(LATENCY_BOUNDS.len() + 1, 0);
                latency.counts[LATENCY_BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BOUNDS.len())] += 1;
                latency.sum += seconds;
                self.count("tcp_connects_total", series);
            }
            Kind::ConnectFailed => {
                self.count("tcp_connect_failures_total", Series { process_name: Some(event.comm.to_string()), server: ends.remote })
            }
            // A socket seen before is remembered: one lookup per read or write.
            Kind::Data if !self.sockets.contains_key(&event.socket) => match self.unclaimed_accepts.remove(&event.socket) {
                Some(server) => {
                    self.remember(event, server);
                    self.count("tcp_accepts_total", Series { process_name: Some(event.comm.to_string()), server });
                }
                // A connection opened before the capture started: the lower port is the server's.
                None => self.remember(event, if ends.local.1 < ends.remote.1 { ends.local } else { ends.remote }),
            },
            Kind::Data => {}
            Kind::Closed => {
                self.sockets.remove(&event.socket);
                if let Some(server) = self.unclaimed_accepts.remove(&event.socket) {
                    self.count("tcp_accepts_total", Series { process_name: None, server });
                }
            }
            Kind::Retransmit => self.count("tcp_retransmits_total", self.series_of(event)),
            Kind::Reset => {
                let name = if event.value == 0 { "tcp_resets_sent_total" } else { "tcp_resets_received_total" };
                self.count(name, self.series_of(event));
            }
        }
    }

    /// A process left out by name uses `socket`: an accept waiting for its
    /// process is not counted.
    pub fn disown(&mut self, socket: u64) {
        if !self.unclaimed_accepts.is_empty() {
            self.unclaimed_accepts.remove(&socket);
        }
    }

    fn remember(&mut self, event: &Event, server: (IpAddr, u16)) {
        if self.sockets.len() >= MAX_SOCKETS {
            self.sockets.clear();
        }
        self.sockets.insert(event.socket, Owner { process_name: event.comm.to_string(), server });
    }

    fn series_of(&self, event: &Event) -> Series {
        match self.sockets.get(&event.socket) {
            Some(owner) => Series { process_name: Some(owner.process_name.clone()), server: owner.server },
            None if event.connecting => Series { process_name: Some(event.comm.to_string()), server: event.endpoints.remote },
            None => {
                let ends = event.endpoints;
                Series { process_name: None, server: if ends.local.1 < ends.remote.1 { ends.local } else { ends.remote } }
            }
        }
    }

    fn count(&mut self, name: &'static str, series: Series) {
        *self.counts.entry((name, series)).or_default() += 1;
    }

    /// The counts since the last flush, as incremental metrics.
    pub fn flush(&mut self, out: &mut Vec<Metric>) {
        let now = Utc::now();
        let tagged = |metric: Metric, series: &Series| {
            let metric = metric
                .with_tag("server_ip", series.server.0.to_string())
                .with_tag("server_port", series.server.1.to_string())
                .with_timestamp(now);
            match &series.process_name {
                Some(name) => metric.with_tag("process_name", name.clone()),
                None => metric,
            }
        };
        for ((name, series), count) in std::mem::take(&mut self.counts) {
            out.push(tagged(Metric::new(name, MetricKind::Incremental, MetricValue::Counter { value: count as f64 }), &series));
        }
        for (series, latency) in std::mem::take(&mut self.latencies) {
            let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<Bucket> =
                bounds.zip(&latency.counts).map(|(upper_limit, count)| Bucket { upper_limit, count: *count }).collect();
            let count = latency.counts.iter().sum();
            out.push(tagged(
                Metric::new(
                    "tcp_connect_duration_seconds",
                    MetricKind::Incremental,
                    MetricValue::Histogram { buckets, count, sum: latency.sum },
                ),
                &series,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::sources::ebpf::event::{Direction, Endpoints};

    fn event(kind: Kind, socket: u64, local: u16, remote: u16, value: u64) -> Event<'static> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Event {
            kind,
            monotonic_ns: 0,
            socket,
            pid: if matches!(kind, Kind::Retransmit | Kind::Reset) { 0 } else { 42 },
            tid: 42,
            fd: 3,
            comm: "curl",
            endpoints: Endpoints { local: (ip, local), remote: (ip, remote) },
            direction: Direction::Egress,
            tls: false,
            connecting: false,
            tcp_seq: 0,
            syscall_trace_id: 0,
            bytes: 0,
            payload: &[],
            value,
        }
    }

    fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
        metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name} in {metrics:?}"))
    }

    #[test]
    fn connects_retransmits_and_resets_become_counts_per_server() {
        let mut stats = TcpStats::new(true);
        stats.observe(&event(Kind::Connected, 1, 50000, 8080, 300_000));
        stats.observe(&event(Kind::Connected, 2, 50001, 8080, 2_000_000));
        stats.observe(&event(Kind::ConnectFailed, 3, 50002, 9999, 0));
        stats.observe(&event(Kind::Retransmit, 1, 50000, 8080, 0));
        stats.observe(&event(Kind::Retransmit, 1, 50000, 8080, 0));
        stats.observe(&event(Kind::Reset, 2, 50001, 8080, 1));
        let mut metrics = Vec::new();
        stats.flush(&mut metrics);

        let connects = find(&metrics, "tcp_connects_total");
        assert_eq!(connects.value, MetricValue::Counter { value: 2.0 });
        assert_eq!(connects.tags.get("server_port").map(String::as_str), Some("8080"));
        assert_eq!(connects.tags.get("process_name").map(String::as_str), Some("curl"));
        assert_eq!(find(&metrics, "tcp_connect_failures_total").tags.get("server_port").map(String::as_str), Some("9999"));
        // Retransmits carry no process: it is found through the socket.
        let retransmits = find(&metrics, "tcp_retransmits_total");
        assert_eq!(retransmits.value, MetricValue::Counter { value: 2.0 });
        assert_eq!(retransmits.tags.get("process_name").map(String::as_str), Some("curl"));
        assert_eq!(find(&metrics, "tcp_resets_received_total").value, MetricValue::Counter { value: 1.0 });
        let MetricValue::Histogram { buckets, count, sum } = &find(&metrics, "tcp_connect_duration_seconds").value else {
            panic!("a histogram")
        };
        assert_eq!(*count, 2);
        assert!((sum - 0.0023).abs() < 1e-12, "{sum}");
        assert_eq!(buckets.iter().find(|b| b.upper_limit == 0.0005).unwrap().count, 1);
        assert_eq!(buckets.iter().find(|b| b.upper_limit == 0.0025).unwrap().count, 1);
        assert_eq!(buckets.last().unwrap().upper_limit, f64::INFINITY);

        // Counts are per flush.
        let mut again = Vec::new();
        stats.flush(&mut again);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_reset_during_a_connect_is_the_connecting_process_s() {
        let mut stats = TcpStats::new(true);
        // The local port is the lower one, but the socket was connecting out: the remote end is the server.
        stats.observe(&Event { connecting: true, pid: 42, ..event(Kind::Reset, 5, 1025, 8080, 1) });
        let mut metrics = Vec::new();
        stats.flush(&mut metrics);
        let reset = find(&metrics, "tcp_resets_received_total");
        assert_eq!(reset.tags.get("server_port").map(String::as_str), Some("8080"));
        assert_eq!(reset.tags.get("process_name").map(String::as_str), Some("curl"));
    }

    #[test]
    fn a_socket_of_unknown_owner_takes_the_lower_port_as_server() {
        let mut stats = TcpStats::new(true);
        stats.observe(&event(Kind::Reset, 9, 8080, 51000, 0));
        let mut metrics = Vec::new();
        stats.flush(&mut metrics);
        let reset = find(&metrics, "tcp_resets_sent_total");
        assert_eq!(reset.tags.get("server_port").map(String::as_str), Some("8080"));
        assert_eq!(reset.tags.get("process_name"), None);
    }

    #[test]
    fn an_accept_seen_at_the_handshake_goes_to_the_process_that_first_uses_the_socket() {
        let mut stats = TcpStats::new(true);
        let handshake = |socket| Event { pid: 0, comm: "", ..event(Kind::Accepted, socket, 8080, 51000 + socket as u16, 0) };
        stats.observe(&handshake(1));
        stats.observe(&handshake(2));
        stats.observe(&handshake(3));
        // Socket 1 is read by nginx; socket 2 closes unread; socket 3 is not claimed yet.
        stats.observe(&Event { comm: "nginx", ..event(Kind::Data, 1, 8080, 51001, 0) });
        stats.observe(&Event { comm: "nginx", ..event(Kind::Data, 1, 8080, 51001, 0) });
        stats.observe(&Event { pid: 0, ..event(Kind::Closed, 2, 8080, 51002, 0) });
        let mut metrics = Vec::new();
        stats.flush(&mut metrics);
        let accepts: Vec<_> = metrics
            .iter()
            .filter(|m| m.name == "tcp_accepts_total")
            .map(|m| (m.tags.get("process_name").cloned(), m.tags["server_port"].clone(), m.value.clone()))
            .collect();
        assert_eq!(
            accepts,
            [
                (None, "8080".to_string(), MetricValue::Counter { value: 1.0 }),
                (Some("nginx".to_string()), "8080".to_string(), MetricValue::Counter { value: 1.0 }),
            ]
        );
        // A socket whose first user is left out by name is not counted at all.
        stats.observe(&handshake(4));
        stats.disown(4);
        stats.observe(&Event { pid: 0, ..event(Kind::Closed, 4, 8080, 51004, 0) });
        // The claimed socket's later events are nginx's, as with an accept call.
        stats.observe(&event(Kind::Retransmit, 1, 8080, 51001, 0));
        let mut metrics = Vec::new();
        stats.flush(&mut metrics);
        assert_eq!(find(&metrics, "tcp_retransmits_total").tags.get("process_name").map(String::as_str), Some("nginx"));
        assert!(metrics.iter().all(|m| m.name != "tcp_accepts_total"), "{metrics:?}");
    }
}
