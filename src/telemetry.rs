//! tapline's own counters, per component. Plain atomics: a component bumps
//! them once per batch, the admin server and `internal_metrics` read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::event::{Metric, MetricKind, MetricValue};

#[derive(Debug)]
pub struct ComponentMetrics {
    pub id: String,
    pub kind: &'static str,
    pub type_name: String,
    pub received_events: AtomicU64,
    pub received_bytes: AtomicU64,
    pub sent_events: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Events this component let go of without delivering them (counted, never silent).
    pub discarded_events: AtomicU64,
    /// Events waiting in this component's input buffer.
    pub buffer_events: AtomicU64,
    /// Events whose delivery was confirmed back to this source.
    pub acknowledged_events: AtomicU64,
    /// Counters and gauges only some component types have
    /// (`red_overflow_events_total`, `enrich_misses_total`, `stitch_traces_held` …), by name.
    pub own: Mutex<BTreeMap<&'static str, (&'static str, u64)>>,
}

impl ComponentMetrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_own(&self, name: &'static str, n: u64) {
        self.own.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_insert(("counter", 0)).1 += n;
    }

    /// Set one of the component's own gauges (what it holds now).
    pub fn set_own_gauge(&self, name: &'static str, value: u64) {
        self.own.lock().unwrap_or_else(|e| e.into_inner()).insert(name, ("gauge", value));
    }

    /// (name, `counter` or `gauge`, value) of the component's own metrics.
    fn own_metrics(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.own.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(name, (kind, n))| (*name, *kind, *n)).collect()
    }

    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 8] {
        [
            ("component_received_events_total", "counter", &self.received_events),
            ("component_received_bytes_total", "counter", &self.received_bytes),
            ("component_sent_events_total", "counter", &self.sent_events),
            ("component_sent_bytes_total", "counter", &self.sent_bytes),
            ("component_errors_total", "counter", &self.errors),
            ("component_discarded_events_total", "counter", &self.discarded_events),
            ("component_acknowledged_events_total", "counter", &self.acknowledged_events),
            ("buffer_events", "gauge", &self.buffer_events),
        ]
    }
}

fn registry() -> &'static Mutex<Vec<Arc<ComponentMetrics>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<ComponentMetrics>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// The counters of a component. A component rebuilt on reload keeps its
/// counters, so they stay monotonic.
pub fn component(id: &str, kind: &'static str, type_name: &str) -> Arc<ComponentMetrics> {
    started();
    let mut all = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = all.iter().find(|m| m.id == id && m.kind == kind && m.type_name == type_name) {
        return existing.clone();
    }
    let metrics = Arc::new(ComponentMetrics {
        id: id.to_string(),
        kind,
        type_name: type_name.to_string(),
        received_events: AtomicU64::new(0),
        received_bytes: AtomicU64::new(0),
        sent_events: AtomicU64::new(0),
        sent_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        discarded_events: AtomicU64::new(0),
        buffer_events: AtomicU64::new(0),
        acknowledged_events: AtomicU64::new(0),
        own: Mutex::default(),
    });
    all.push(metrics.clone());
    metrics
}

fn snapshot() -> Vec<Arc<ComponentMetrics>> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// All counters in the Prometheus text exposition format.
pub fn prometheus_text() -> String {
    let components = snapshot();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP tapline_uptime_seconds Seconds since tapline started.");
    let _ = writeln!(out, "# TYPE tapline_uptime_seconds gauge");
    let _ = writeln!(out, "tapline_uptime_seconds {}", started().elapsed().as_secs_f64());
    let _ = writeln!(out, "# TYPE tapline_build_info gauge");
    let _ = writeln!(out, "tapline_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    let Some(first) = components.first() else { return out };
    for (index, (name, kind, _)) in first.counters().iter().enumerate() {
        let _ = writeln!(out, "# TYPE tapline_{name} {kind}");
        for c in &components {
            let value = c.counters()[index].2.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tapline_{name}{{component_id=\"{}\",component_kind=\"{}\",component_type=\"{}\"}} {value}",
                escape_label(&c.id),
                c.kind,
                escape_label(&c.type_name)
            );
        }
    }
    // Each component's own metrics, by name: (kind, the components' values).
    type Series<'a> = (&'static str, Vec<(&'a ComponentMetrics, u64)>);
    let mut own: BTreeMap<&'static str, Series> = BTreeMap::new();
    for c in &components {
        for (name, kind, value) in c.own_metrics() {
            own.entry(name).or_insert((kind, Vec::new())).1.push((c, value));
        }
    }
    for (name, (kind, values)) in own {
        let _ = writeln!(out, "# TYPE tapline_{name} {kind}");
        for (c, value) in values {
            let _ = writeln!(
                out,
                "tapline_{name}{{component_id=\"{}\",component_kind=\"{}\",component_type=\"{}\"}} {value}",
                escape_label(&c.id),
                c.kind,
                escape_label(&c.type_name)
            );
        }
    }
    out
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One line per component with its totals, logged when tapline stops.
pub fn summary_lines() -> Vec<String> {
    snapshot()
        .iter()
        .map(|c| {
            let mut counters: Vec<String> =
                c.counters().iter().map(|(name, _, v)| format!("{name}={}", v.load(Ordering::Relaxed))).collect();
            counters.extend(c.own_metrics().iter().map(|(name, _, v)| format!("{name}={v}")));
            format!("{} {} ({}): {}", c.kind, c.id, c.type_name, counters.join(" "))
        })
        .collect()
}

/// All counters as Metric events, for the `internal_metrics` source.
pub fn metric_events(namespace: &str) -> Vec<Metric> {
    let now = chrono::Utc::now();
    let mut metrics =
        vec![Metric::new("uptime_seconds", MetricKind::Absolute, MetricValue::Gauge { value: started().elapsed().as_secs_f64() })
            .with_namespace(namespace)
            .with_timestamp(now)];
    for c in snapshot() {
        let own = c.own_metrics();
        for (name, kind, value) in
            c.counters().into_iter().map(|(name, kind, counter)| (name, kind, counter.load(Ordering::Relaxed))).chain(own)
        {
            let value = value as f64;
            let value = if kind == "gauge" { MetricValue::Gauge { value } } else { MetricValue::Counter { value } };
            metrics.push(
                Metric::new(name, MetricKind::Absolute, value)
                    .with_namespace(namespace)
                    .with_timestamp(now)
                    .with_tag("component_id", c.id.clone())
                    .with_tag("component_kind", c.kind)
                    .with_tag("component_type", c.type_name.clone()),
            );
        }
    }
    metrics
}

/// At most one log line per `every` for each kind of message (a key: a
/// status code, say), so that a flood of bad requests cannot flood the log;
/// the lines held back are counted and the count goes with the next line.
pub struct LogLimiter {
    every: Duration,
    /// Per key: when the last line was let through, and how many were held back since.
    state: Mutex<BTreeMap<u32, (Instant, u64)>>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter { every, state: Mutex::default() }
    }

    /// `Some(lines held back since the last one)` when a line of this kind may be written now.
    pub fn allow(&self, kind: u32) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get_mut(&kind) {
            Some((last, held_back)) if last.elapsed() < self.every => {
                *held_back += 1;
                None
            }
            Some((last, held_back)) => {
                *last = Instant::now();
                Some(std::mem::take(held_back))
            }
            None => {
                state.insert(kind, (Instant::now(), 0));
                Some(0)
            }
        }
    }
}
