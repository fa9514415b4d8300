//! `red`: request records and spans in, RED metrics out (rate, errors,
//! duration), per series of dimension values and per window of event time.
//!
//! Windows are aligned to event time (`floor(time / window)`): a record
//! counts in the window of its `time` (when the request started), a span in
//! that of its start. A window is emitted once the pipeline's event clock has
//! passed its end by `allowed_lateness_secs`. The clock is the newest event
//! time seen, moving on with the wall clock while no newer event arrives (so
//! windows also close when traffic stops; an event time ahead of the wall
//! clock counts as now). An event whose window was already
//! emitted is a late event: it is counted (`red_late_events_total`) and still
//! aggregated, into a further delta for its window emitted at the next tick.
//! Metrics are incremental (deltas per window, timestamped with the window's
//! start), so counts stay exact whatever arrives late.
//!
//! Every metric family (metrics that share labels) keeps at most
//! `max_series` label sets; events of a new label set beyond that go to one
//! overflow series (`red_overflow="true"`), counted in
//! `red_overflow_events_total`. A label set unseen for `series_ttl_secs`
//! frees its place.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{
    Bucket, Event, EventBatch, EventData, Exemplar, FieldPath, Kinds, Metric, MetricKind, MetricValue, Quantile, RequestRecord, StatusCode,
};

/// Kong's Prometheus plugin: `upstream_latency_ms` and `request_latency_ms` buckets.
const KONG_REQUEST_BUCKETS_MS: &[f64] = &[25.0, 50.0, 80.0, 100.0, 250.0, 400.0, 700.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0];
/// Kong's Prometheus plugin: `kong_latency_ms` buckets.
const KONG_LATENCY_BUCKETS_MS: &[f64] =
    &[1.0, 2.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 750.0, 1000.0, 3000.0, 6000.0];
const RECORD_DIMENSIONS: &[&str] = &["service", "route", "method", "status_class", "observation_point"];
const SPAN_DIMENSIONS: &[&str] = &["service.name", "span.name", "span.kind", "status.code"];
const OVERFLOW_TAG: &str = "red_overflow";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedConfig {
    /// `tapline` (the default) or `kong`: the metric names and labels of Kong's Prometheus plugin.
    #[serde(default)]
    pub naming: Naming,
    /// Prefix of every metric name: `http` by default, `kong` with Kong's naming.
    pub namespace: Option<String>,
    /// Fields of request records to group by.
    pub dimensions: Option<Vec<String>>,
    /// Fields of spans to group by.
    pub span_dimensions: Option<Vec<String>>,
    #[serde(default = "default_window_secs")]
    pub window_secs: f64,
    #[serde(default = "default_allowed_lateness_secs")]
    pub allowed_lateness_secs: f64,
    /// Statuses that count as errors: classes (`5xx`, `4xx`) or codes (`429`).
    #[serde(default = "default_error_statuses")]
    pub error_statuses: Vec<String>,
    /// Upper bounds of the duration histogram, in seconds.
    pub buckets: Option<Vec<f64>>,
    pub quantiles: Option<Vec<f64>>,
    /// The quantile sketch's relative error (DDSketch's alpha).
    #[serde(default = "default_relative_accuracy")]
    pub relative_accuracy: f64,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    #[serde(default = "default_series_ttl_secs")]
    pub series_ttl_secs: u64,
    /// Attach the trace id of each series' slowest request to its histogram.
    #[serde(default = "crate::defaults::yes")]
    pub exemplars: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    #[default]
    Tapline,
    Kong,
}

fn default_window_secs() -> f64 {
    10.0
}
fn default_allowed_lateness_secs() -> f64 {
    5.0
}
fn default_error_statuses() -> Vec<String> {
    vec!["5xx".into()]
}
fn default_relative_accuracy() -> f64 {
    0.01
}
fn default_max_series() -> usize {
    10_000
}
fn default_series_ttl_secs() -> u64 {
    300
}

impl TransformConfig for RedConfig {
    fn input_kinds(&self) -> Kinds {
        match self.naming {
            Naming::Tapline => Kinds::LOG.union(Kinds::SPAN),
            Naming::Kong => Kinds::LOG,
        }
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::METRIC)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Red::new(self)?))
    }
}

/// What an event contributes to one metric.
#[derive(Debug, Clone, Copy)]
enum Observe {
    /// Count 1 per event.
    One,
    /// Count 1 per event with a status (Kong counts only those).
    Answered,
    /// Count 1 per event that is an error.
    Error,
    /// Add a size in bytes (Kong's bandwidth); nothing when absent or 0.
    RequestSize,
    ResponseSize,
    /// A duration, in the metric's unit (seconds, or Kong's milliseconds).
    Duration(DurationOf, f64),
}

#[derive(Debug, Clone, Copy)]
enum DurationOf {
    Request,
    Upstream,
    Gateway,
}

#[derive(Debug, Clone)]
struct MetricDef {
    name: &'static str,
    observe: Observe,
    /// Histogram bounds; none for a counter.
    buckets: Option<Arc<[f64]>>,
    /// Also a summary with these quantiles, from a sketch.
    quantiles: Option<(&'static str, Arc<[f64]>)>,
    exemplars: bool,
    /// Tags every series of this metric has (Kong's `direction`).
    fixed_tags: &'static [(&'static str, &'static str)],
}

/// One label: its name, and where its value comes from.
#[derive(Debug, Clone)]
struct Dimension {
    tag: String,
    source: DimensionSource,
}

#[derive(Debug, Clone)]
enum DimensionSource {
    Field(FieldPath),
    /// Kong's `source` label: `service` when the upstream answered, else `kong`.
    KongSource,
}

/// Metrics that share labels, and so share series.
struct Family {
    /// Which events it reads.
    kind: Kinds,
    dimensions: Vec<Dimension>,
    /// Kong writes "" for a missing label; tapline leaves the label out.
    missing_as_empty: bool,
    /// Kong records nothing for a request without a route.
    needs_route: bool,
    metrics: Vec<MetricDef>,
    /// Label sets known, by key: the place counted against `max_series`.
    series: HashMap<Box<str>, Series>,
    overflow: Arc<BTreeMap<String, String>>,
    warned_overflow: bool,
}

struct Series {
    tags: Arc<BTreeMap<String, String>>,
    /// Event time (ms) of the latest event seen.
    last_seen: i64,
}

/// One series' sums in one window, per metric of its family.
struct Aggregate {
    tags: Arc<BTreeMap<String, String>>,
    values: Vec<Value>,
}

enum Value {
    Counter(f64),
    Histogram { counts: Vec<u64>, count: u64, sum: f64, quantiles: Option<Quantiles>, slowest: Option<Exemplar> },
}

/// The values a series' quantiles come from: kept as they are while few (exact,
/// and far smaller than a sketch's first kilobyte of bins), then a sketch.
enum Quantiles {
    Few(Vec<f64>),
    Sketch(Box<DDSketch>),
}

/// How many values a series keeps before it starts a sketch.
const FEW: usize = 32;

/// A window: per family, per series key.
type Window = Vec<HashMap<Box<str>, Aggregate>>;

struct Red {
    families: Vec<Family>,
    namespace: String,
    window_ms: i64,
    lateness_ms: i64,
    errors: Vec<(u16, u16)>,
    max_series: usize,
    ttl_ms: i64,
    sketch: SketchConfig,
    /// Open windows by start (ms).
    windows: BTreeMap<i64, Window>,
    /// Windows already emitted end at or before this (ms).
    emitted_until: i64,
    /// The event clock: the newest event time, and when (wall) it was seen.
    clock: Option<(i64, Instant)>,
    /// Reused for building series keys.
    key: String,
}

impl Red {
    fn new(config: &RedConfig) -> Result<Red, String> {
        if !config.window_secs.is_finite() || config.window_secs < 0.001 {
            return Err(format!("`window_secs` must be a positive number of seconds, not {}", config.window_secs));
        }
        if !config.allowed_lateness_secs.is_finite() || config.allowed_lateness_secs < 0.0 {
            return Err(format!("`allowed_lateness_secs` must be 0 or more, not {}", config.allowed_lateness_secs));
        }
        if !(config.relative_accuracy > 0.0 && config.relative_accuracy < 1.0) {
            return Err(format!("`relative_accuracy` must be between 0 and 1 (e.g. 0.01 for 1 %), not {}", config.relative_accuracy));
        }
        if config.max_series == 0 {
            return Err("`max_series` must be at least 1".into());
        }
        let errors = config.error_statuses.iter().map(|s| parse_status_range(s)).collect::<Result<Vec<_>, _>>()?;
        let families = match config.naming {
            Naming::Tapline => tapline_families(config)?,
            Naming::Kong => {
                for (option, set) in [
                    ("dimensions", config.dimensions.is_some()),
                    ("span_dimensions", config.span_dimensions.is_some()),
                    ("buckets", config.buckets.is_some()),
                    ("quantiles", config.quantiles.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "`{option}` cannot be set with `naming = \"kong\"`: Kong's names come with Kong's labels and buckets"
                        ));
                    }
                }
                kong_families()
            }
        };
        let namespace = config.namespace.clone().unwrap_or_else(|| if config.naming == Naming::Kong { "kong" } else { "http" }.to_string());
        Ok(Red {
            families,
            namespace,
            window_ms: (config.window_secs * 1000.0).round() as i64,
            lateness_ms: (config.allowed_lateness_secs * 1000.0).round() as i64,
            errors,
            max_series: config.max_series,
            ttl_ms: (config.series_ttl_secs as i64).saturating_mul(1000),
            sketch: SketchConfig::new(config.relative_accuracy, 2048, 1e-9),
            windows: BTreeMap::new(),
            emitted_until: i64::MIN,
            clock: None,
            key: String::new(),
        })
    }

    fn now(&self) -> Option<i64> {
        self.clock.map(|(time, seen)| time.saturating_add(seen.elapsed().as_millis() as i64))
    }

    /// Move the event clock to `time` if it is ahead.
    fn advance(&mut self, time: i64) {
        if self.now().is_none_or(|now| time > now) {
            self.clock = Some((time, Instant::now()));
        }
    }

    /// Count one event. `wall` is the wall clock (ms): an event time ahead of
    /// it (a skewed host) counts as now, so no window is held open for the future.
    fn observe(&mut self, event: &Event, wall: i64, out: &mut TransformOutput) {
        let Some(time) = event_time_ms(event).map(|time| time.min(wall)) else {
            out.count("red_skipped_events_total", 1);
            return;
        };
        let start = time.div_euclid(self.window_ms) * self.window_ms;
        if start + self.window_ms <= self.emitted_until {
            out.count("red_late_events_total", 1);
        }
        let error = self.is_error(event);
        let family_count = self.families.len();
        let mut used = false;
        for index in 0..family_count {
            let family = &mut self.families[index];
            if !event.kind().contains(family.kind) || !family.applies_to(event) {
                continue;
            }
            used = true;
            family.series_for(event, time, self.max_series, &mut self.key, out);
            let families = &self.families;
            // Sized for the series known: a window mostly sees the same ones.
            let window =
                self.windows.entry(start).or_insert_with(|| families.iter().map(|f| HashMap::with_capacity(f.series.len())).collect());
            let family = &self.families[index];
            let aggregate = match window[index].get_mut(self.key.as_str()) {
                Some(aggregate) => aggregate,
                None => {
                    let values = family.metrics.iter().map(Value::new).collect();
                    window[index].entry(self.key.as_str().into()).or_insert(Aggregate { tags: family.tags(&self.key), values })
                }
            };
            for (metric, value) in family.metrics.iter().zip(aggregate.values.iter_mut()) {
                value.add(metric, event, error, &self.sketch);
            }
        }
        if used {
            self.advance(time);
        } else {
            out.count("red_skipped_events_total", 1);
        }
    }

    fn is_error(&self, event: &Event) -> bool {
        match &event.data {
            EventData::Record(record) => match record.status {
                // A gRPC call's status is its grpc-status code: every code but OK (0) failed.
                Some(status) if record.is_grpc() => status != 0,
                Some(status) => self.errors.iter().any(|&(low, high)| (low..=high).contains(&status)),
                // No answer at all (a timeout, a connection closed first) is an error.
                None => record.error.is_some(),
            },
            EventData::Span(span) => span.status.code == StatusCode::Error,
            _ => false,
        }
    }

    /// Emit the windows that ended `allowed_lateness` ago (all of them at the end).
    fn flush(&mut self, last: bool, out: &mut TransformOutput) {
        let now = self.now();
        let deadline = match (last, now) {
            (true, _) => i64::MAX,
            (false, Some(now)) => now - self.lateness_ms,
            (false, None) => return,
        };
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if start.saturating_add(self.window_ms) > deadline {
                break;
            }
            let window = entry.remove();
            self.emitted_until = self.emitted_until.max(start + self.window_ms);
            let timestamp = DateTime::from_timestamp_millis(start).unwrap_or_default();
            for (family, series) in self.families.iter().zip(window) {
                for (_, aggregate) in series {
                    family.emit(aggregate, &self.namespace, timestamp, &mut out.primary);
                }
            }
        }
        if let Some(now) = now {
            let expired_before = now - self.ttl_ms;
            for family in &mut self.families {
                family.series.retain(|_, series| series.last_seen >= expired_before);
            }
        }
    }
}

impl Transform for Red {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        let wall = Utc::now().timestamp_millis();
        for event in &batch {
            self.observe(event, wall, out);
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis((self.window_ms as u64 / 10).clamp(100, 1000)))
    }

    fn tick(&mut self, last: bool, out: &mut TransformOutput) {
        self.flush(last, out);
    }
}

impl Family {
    fn applies_to(&self, event: &Event) -> bool {
        match &event.data {
            EventData::Record(record) => !self.needs_route || record.route.is_some(),
            _ => true,
        }
    }

    /// Find or make the series of this event; its key is left in `key`.
    fn series_for(&mut self, event: &Event, time: i64, max_series: usize, key: &mut String, out: &mut TransformOutput) {
        key.clear();
        for dimension in &self.dimensions {
            match dimension.value(event) {
                // Length-prefixed: no value can make two label sets one key.
                Some(value) => {
                    let _ = write!(key, "{}:", value.len());
                    key.push_str(&value);
                }
                None if self.missing_as_empty => key.push_str("0:"),
                None => key.push('-'),
            }
        }
        if let Some(series) = self.series.get_mut(key.as_str()) {
            series.last_seen = series.last_seen.max(time);
            return;
        }
        if self.series.len() >= max_series {
            if !self.warned_overflow {
                self.warned_overflow = true;
                let names: Vec<&str> = self.metrics.iter().map(|m| m.name).collect();
                tracing::warn!(metrics = ?names, max_series, "red: too many label sets; new ones go to the overflow series ({OVERFLOW_TAG}=\"true\")");
            }
            out.count("red_overflow_events_total", 1);
            // No series key starts with a letter: this one is apart.
            key.clear();
            key.push_str(OVERFLOW_TAG);
            return;
        }
        let mut tags = BTreeMap::new();
        for dimension in &self.dimensions {
            match dimension.value(event) {
                Some(value) => {
                    tags.insert(dimension.tag.clone(), value.into_owned());
                }
                None if self.missing_as_empty => {
                    tags.insert(dimension.tag.clone(), String::new());
                }
                None => {}
            }
        }
        self.series.insert(key.as_str().into(), Series { tags: Arc::new(tags), last_seen: time });
    }

    /// The tags of the series with this key.
    fn tags(&self, key: &str) -> Arc<BTreeMap<String, String>> {
        self.series.get(key).map_or_else(|| self.overflow.clone(), |series| series.tags.clone())
    }

    fn emit(&self, aggregate: Aggregate, namespace: &str, timestamp: DateTime<Utc>, out: &mut EventBatch) {
        for (metric, value) in self.metrics.iter().zip(aggregate.values) {
            let with_tags = |name: &str, value: MetricValue| {
                let mut m = Metric::new(name, MetricKind::Incremental, value).with_namespace(namespace).with_timestamp(timestamp);
                m.tags = (*aggregate.tags).clone();
                for (k, v) in metric.fixed_tags {
                    m.tags.insert((*k).into(), (*v).into());
                }
                m
            };
            match value {
                Value::Counter(0.0) => {}
                Value::Counter(value) => out.push(Event::metric(with_tags(metric.name, MetricValue::Counter { value }))),
                Value::Histogram { count: 0, .. } => {}
                Value::Histogram { counts, count, sum, quantiles: values, slowest } => {
                    let bounds = metric.buckets.as_deref().unwrap_or_default();
                    let buckets = bounds
                        .iter()
                        .chain([&f64::INFINITY])
                        .zip(counts)
                        .map(|(&upper_limit, count)| Bucket { upper_limit, count })
                        .collect();
                    let mut histogram = with_tags(metric.name, MetricValue::Histogram { buckets, count, sum });
                    histogram.exemplars.extend(slowest);
                    out.push(Event::metric(histogram));
                    if let (Some((name, quantiles)), Some(mut values)) = (&metric.quantiles, values) {
                        let quantiles = quantiles.iter().map(|&q| Quantile { quantile: q, value: values.quantile(q) }).collect();
                        out.push(Event::metric(with_tags(name, MetricValue::Summary { quantiles, count, sum })));
                    }
                }
            }
        }
    }
}

impl Dimension {
    fn value<'a>(&self, event: &'a Event) -> Option<std::borrow::Cow<'a, str>> {
        match &self.source {
            DimensionSource::Field(field) => field.get(event),
            DimensionSource::KongSource => {
                let EventData::Record(record) = &event.data else { return None };
                let upstream = match record.response_source.as_deref() {
                    Some(source) => source == "service" || source == "upstream",
                    None => record.upstream_us.is_some(),
                };
                Some(if upstream { "service" } else { "kong" }.into())
            }
        }
    }
}

impl Value {
    fn new(metric: &MetricDef) -> Value {
        match &metric.buckets {
            None => Value::Counter(0.0),
            Some(bounds) => Value::Histogram {
                counts: vec![0; bounds.len() + 1],
                count: 0,
                sum: 0.0,
                quantiles: metric.quantiles.as_ref().map(|_| Quantiles::Few(Vec::new())),
                slowest: None,
            },
        }
    }

    fn add(&mut self, metric: &MetricDef, event: &Event, error: bool, sketch: &SketchConfig) {
        let amount = match metric.observe {
            Observe::One => Some(1.0),
            Observe::Answered => record(event).and_then(|r| r.status).map(|_| 1.0),
            Observe::Error => error.then_some(1.0),
            Observe::RequestSize => record(event).and_then(|r| r.request_size).filter(|&n| n > 0).map(|n| n as f64),
            Observe::ResponseSize => record(event).and_then(|r| r.response_size).filter(|&n| n > 0).map(|n| n as f64),
            Observe::Duration(of, per_second) => duration_secs(event, of).map(|secs| secs * per_second),
        };
        let Some(amount) = amount else { return };
        match self {
            Value::Counter(total) => *total += amount,
            Value::Histogram { counts, count, sum, quantiles, slowest } => {
                let bounds = metric.buckets.as_deref().unwrap_or_default();
                // Non-cumulative: the first bucket whose bound holds it; past the last, +Inf.
                counts[bounds.partition_point(|&bound| bound < amount)] += 1;
                *count += 1;
                *sum += amount;
                match quantiles {
                    Some(Quantiles::Few(values)) if values.len() < FEW => values.push(amount),
                    Some(Quantiles::Few(values)) => {
                        let mut new = Box::new(DDSketch::new(*sketch));
                        values.iter().for_each(|&v| new.add(v));
                        new.add(amount);
                        *quantiles = Some(Quantiles::Sketch(new));
                    }
                    Some(Quantiles::Sketch(sketch)) => sketch.add(amount),
                    None => {}
                }
                if metric.exemplars && slowest.as_ref().is_none_or(|e| amount > e.value) {
                    if let Some(trace_id) = trace_id(event) {
                        let timestamp = event_time_ms(event).and_then(DateTime::from_timestamp_millis);
                        *slowest =
                            Some(Exemplar { value: amount, timestamp, labels: BTreeMap::from([("trace_id".to_string(), trace_id)]) });
                    }
                }
            }
        }
    }
}

impl Quantiles {
    /// The value at rank ⌊q·(n−1)⌋, as DDSketch ranks: exact while few.
    fn quantile(&mut self, q: f64) -> f64 {
        match self {
            Quantiles::Few(values) => {
                values.sort_unstable_by(f64::total_cmp);
                values.get((q * (values.len().saturating_sub(1)) as f64) as usize).copied().unwrap_or(f64::NAN)
            }
            Quantiles::Sketch(sketch) => sketch.quantile(q).ok().flatten().unwrap_or(f64::NAN),
        }
    }
}

fn record(event: &Event) -> Option<&RequestRecord> {
    match &event.data {
        EventData::Record(record) => Some(record),
        _ => None,
    }
}

fn event_time_ms(event: &Event) -> Option<i64> {
    match &event.data {
        EventData::Record(record) => Some(record.time.timestamp_millis()),
        EventData::Span(span) => Some((span.start_time_unix_nano / 1_000_000) as i64),
        _ => None,
    }
}

fn duration_secs(event: &Event, of: DurationOf) -> Option<f64> {
    match &event.data {
        EventData::Record(record) => {
            let micros = match of {
                DurationOf::Request => record.duration_us,
                DurationOf::Upstream => record.upstream_us,
                DurationOf::Gateway => record.gateway_us,
            };
            micros.map(|us| us as f64 / 1e6)
        }
        EventData::Span(span) if matches!(of, DurationOf::Request) && span.end_time_unix_nano >= span.start_time_unix_nano => {
            Some((span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e9)
        }
        _ => None,
    }
}

fn trace_id(event: &Event) -> Option<String> {
    match &event.data {
        EventData::Record(record) => record.trace_id.clone(),
        EventData::Span(span) => Some(const_hex::encode(span.trace_id)),
        _ => None,
    }
}

/// `5xx` → 500..=599, `429` → 429..=429.
fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let invalid = || format!("`error_statuses`: `{text}` is neither a status class (`4xx`, `5xx`) nor a status code (`429`)");
    let lower = text.trim().to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let class: u16 = class.parse().map_err(|_| invalid())?;
        return if (1..=5).contains(&class) { Ok((class * 100, class * 100 + 99)) } else { Err(invalid()) };
    }
    let code: u16 = lower.parse().map_err(|_| invalid())?;
    if (100..=599).contains(&code) {
        Ok((code, code))
    } else {
        Err(invalid())
    }
}

fn dimensions(names: &[String]) -> Result<Vec<Dimension>, String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .map(|name| {
            let field = FieldPath::parse(name)?;
            if !seen.insert(field.tag_name.clone()) {
                return Err(format!("dimension `{name}` is listed twice"));
            }
            Ok(Dimension { tag: field.tag_name.clone(), source: DimensionSource::Field(field) })
        })
        .collect()
}

fn family(kind: Kinds, dimensions: Vec<Dimension>, missing_as_empty: bool, needs_route: bool, metrics: Vec<MetricDef>) -> Family {
    Family {
        kind,
        dimensions,
        missing_as_empty,
        needs_route,
        metrics,
        series: HashMap::new(),
        overflow: Arc::new(BTreeMap::from([(OVERFLOW_TAG.to_string(), "true".to_string())])),
        warned_overflow: false,
    }
}

fn tapline_families(config: &RedConfig) -> Result<Vec<Family>, String> {
    let buckets: Arc<[f64]> = match &config.buckets {
        Some(buckets) => {
            if buckets.is_empty() || buckets.iter().any(|b| !b.is_finite()) || buckets.windows(2).any(|w| w[0] >= w[1]) {
                return Err("`buckets` must be finite upper bounds in increasing order (seconds; +Inf is implied)".into());
            }
            buckets.clone().into()
        }
        None => KONG_REQUEST_BUCKETS_MS.iter().map(|ms| ms / 1000.0).collect(),
    };
    let quantiles: Arc<[f64]> = config.quantiles.clone().unwrap_or_else(|| vec![0.5, 0.9, 0.99]).into();
    if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return Err(format!("`quantiles`: {q} is not between 0 and 1"));
    }
    let metrics = vec![
        MetricDef { name: "requests_total", observe: Observe::One, buckets: None, quantiles: None, exemplars: false, fixed_tags: &[] },
        MetricDef {
            name: "request_errors_total",
            observe: Observe::Error,
            buckets: None,
            quantiles: None,
            exemplars: false,
            fixed_tags: &[],
        },
        MetricDef {
            name: "request_duration_seconds",
            observe: Observe::Duration(DurationOf::Request, 1.0),
            buckets: Some(buckets),
            quantiles: (!quantiles.is_empty()).then_some(("request_duration_quantiles_seconds", quantiles)),
            exemplars: config.exemplars,
            fixed_tags: &[],
        },
    ];
    let defaults = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let records = dimensions(config.dimensions.as_deref().unwrap_or(&defaults(RECORD_DIMENSIONS)))?;
    let spans = dimensions(config.span_dimensions.as_deref().unwrap_or(&defaults(SPAN_DIMENSIONS)))?;
    Ok(vec![family(Kinds::LOG, records, false, false, metrics.clone()), family(Kinds::SPAN, spans, false, false, metrics)])
}

/// The families of Kong's Prometheus plugin (3.x, http subsystem): its names,
/// labels (in its order), buckets and rules: nothing for a request without a
/// route; `service` is the name (or host), "" when absent, as are
/// `workspace` and `consumer`; bandwidth only for sizes above 0.
fn kong_families() -> Vec<Family> {
    let label = |tag: &str, field: &str| Dimension {
        tag: tag.into(),
        source: DimensionSource::Field(FieldPath::parse(field).expect("a plain field name")),
    };
    let source = Dimension { tag: "source".into(), source: DimensionSource::KongSource };
    let counter = |name, observe, fixed_tags| MetricDef { name, observe, buckets: None, quantiles: None, exemplars: false, fixed_tags };
    let latency = |name, of, buckets: &[f64]| MetricDef {
        name,
        observe: Observe::Duration(of, 1000.0),
        buckets: Some(buckets.into()),
        quantiles: None,
        exemplars: false,
        fixed_tags: &[],
    };
    vec![
        family(
            Kinds::LOG,
            vec![
                label("service", "service"),
                label("route", "route"),
                label("code", "status"),
                source,
                label("workspace", "workspace"),
                label("consumer", "consumer"),
            ],
            true,
            true,
            vec![counter("http_requests_total", Observe::Answered, &[])],
        ),
        family(
            Kinds::LOG,
            vec![label("service", "service"), label("route", "route"), label("workspace", "workspace")],
            true,
            true,
            vec![
                latency("kong_latency_ms", DurationOf::Gateway, KONG_LATENCY_BUCKETS_MS),
                latency("upstream_latency_ms", DurationOf::Upstream, KONG_REQUEST_BUCKETS_MS),
                latency("request_latency_ms", DurationOf::Request, KONG_REQUEST_BUCKETS_MS),
            ],
        ),
        family(
            Kinds::LOG,
            vec![label("service", "service"), label("route", "route"), label("workspace", "workspace"), label("consumer", "consumer")],
            true,
            true,
            vec![
                counter("bandwidth_bytes", Observe::RequestSize, &[("direction", "ingress")]),
                counter("bandwidth_bytes", Observe::ResponseSize, &[("direction", "egress")]),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Span, SpanKind, SpanStatus, Value as VrlValue};
    use rand::{Rng, SeedableRng};

    /// 2024-11-26T09:00:00Z, a window boundary for any window that divides an hour.
    const T0: i64 = 1_732_611_600_000;

    fn config(extra: &str) -> RedConfig {
        toml_edit::de::from_str(extra).unwrap()
    }

    fn record(at_ms: i64, service: &str, status: u16, duration_ms: u64) -> Event {
        Event::record(RequestRecord {
            time: DateTime::from_timestamp_millis(at_ms).unwrap(),
            service: Some(service.into()),
            route: Some(format!("{service}-route")),
            method: Some("GET".into()),
            status: Some(status),
            duration_us: Some(duration_ms * 1000),
            trace_id: Some(format!("{:032x}", duration_ms)),
            ..Default::default()
        })
    }

    fn run(red: &mut Red, events: Vec<Event>, last: bool) -> (Vec<Metric>, TransformOutput) {
        let mut out = TransformOutput::default();
        red.transform(events, &mut out);
        red.tick(last, &mut out);
        let metrics = out.primary.drain(..).map(|e| match e.data {
            EventData::Metric(m) => m,
            other => panic!("not a metric: {other:?}"),
        });
        (metrics.collect(), out)
    }

    fn find<'a>(metrics: &'a [Metric], name: &str, tags: &[(&str, &str)]) -> Vec<&'a Metric> {
        metrics.iter().filter(|m| m.name == name && tags.iter().all(|(k, v)| m.tags.get(*k).map(String::as_str) == Some(*v))).collect()
    }

    fn counter(metric: &Metric) -> f64 {
        match metric.value {
            MetricValue::Counter { value } => value,
            ref other => panic!("not a counter: {other:?}"),
        }
    }

    fn counted(out: &TransformOutput, name: &str) -> u64 {
        out.counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, n)| *n)
    }

    #[test]
    fn exact_counts_errors_and_buckets_per_window() {
        let mut red = Red::new(&config("")).unwrap();
        let events = vec![
            record(T0 + 1_000, "orders", 200, 20),
            record(T0 + 2_000, "orders", 200, 60),
            record(T0 + 3_000, "orders", 503, 3_000),
            record(T0 + 9_999, "orders", 404, 100),
            record(T0 + 4_000, "users", 500, 700),
            record(T0 + 10_000, "orders", 200, 25),
        ];
        let (metrics, _) = run(&mut red, events, true);
        let first = DateTime::from_timestamp_millis(T0).unwrap();
        let second = DateTime::from_timestamp_millis(T0 + 10_000).unwrap();
        let orders_first = [("service", "orders"), ("status_class", "2xx")];
        let requests = find(&metrics, "requests_total", &orders_first);
        assert_eq!(requests.len(), 2, "one series per window");
        let in_first: Vec<_> = requests.iter().filter(|m| m.timestamp == Some(first)).collect();
        assert_eq!(counter(in_first[0]), 2.0);
        assert_eq!(in_first[0].namespace.as_deref(), Some("http"));
        assert_eq!(in_first[0].kind, MetricKind::Incremental);
        assert_eq!(
            in_first[0].tags,
            BTreeMap::from([
                ("service".into(), "orders".into()),
                ("route".into(), "orders-route".into()),
                ("method".into(), "GET".into()),
                ("status_class".into(), "2xx".into()),
                ("observation_point".into(), "gateway".into())
            ])
        );
        assert_eq!(counter(requests.iter().find(|m| m.timestamp == Some(second)).unwrap()), 1.0);
        // 5xx are errors, 4xx are not (by default).
        let errors = find(&metrics, "request_errors_total", &[]);
        let error_services: Vec<(&str, f64)> = errors.iter().map(|m| (m.tags["service"].as_str(), counter(m))).collect();
        assert_eq!(error_services.len(), 2);
        assert!(error_services.contains(&("orders", 1.0)) && error_services.contains(&("users", 1.0)));
        // Kong's request buckets, in seconds: 20 ms and 25 ms in ≤0.025, 60 ms in ≤0.08.
        let histogram = find(&metrics, "request_duration_seconds", &orders_first).into_iter().find(|m| m.timestamp == Some(first)).unwrap();
        let MetricValue::Histogram { buckets, count, sum } = &histogram.value else { panic!() };
        assert_eq!((*count, *sum), (2, 0.08));
        let bounds: Vec<f64> = buckets.iter().map(|b| b.upper_limit).collect();
        assert_eq!(bounds, [0.025, 0.05, 0.08, 0.1, 0.25, 0.4, 0.7, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, f64::INFINITY]);
        let counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // 3 s lands in ≤5, on a bound (0.7 s) in that bucket.
        let slow = find(&metrics, "request_duration_seconds", &[("status_class", "5xx"), ("service", "orders")]);
        let MetricValue::Histogram { buckets, .. } = &slow[0].value else { panic!() };
        assert_eq!(buckets.iter().find(|b| b.count == 1).unwrap().upper_limit, 5.0);
        let users = find(&metrics, "request_duration_seconds", &[("service", "users")]);
        let MetricValue::Histogram { buckets, .. } = &users[0].value else { panic!() };
        assert_eq!(buckets.iter().find(|b| b.count == 1).unwrap().upper_limit, 0.7);
        // The slowest request's trace id rides along.
        assert_eq!(slow[0].exemplars[0].labels["trace_id"], format!("{:032x}", 3000));
        assert_eq!(slow[0].exemplars[0].value, 3.0);
        let summary =
            find(&metrics, "request_duration_quantiles_seconds", &orders_first).into_iter().find(|m| m.timestamp == Some(first)).unwrap();
        // Few values: exact, at rank ⌊q·(n−1)⌋ (here 0 for each).
        let MetricValue::Summary { count: 2, quantiles, .. } = &summary.value else { panic!("{summary:?}") };
        assert_eq!(quantiles.iter().map(|q| (q.quantile, q.value)).collect::<Vec<_>>(), [(0.5, 0.02), (0.9, 0.02), (0.99, 0.02)]);
    }

    #[test]
    fn quantiles_within_the_sketch_error() {
        let mut red = Red::new(&config("relative_accuracy = 0.01")).unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut durations: Vec<u64> = (0..20_000).map(|_| rng.random_range(1..=5_000_000u64)).collect();
        let events = durations
            .iter()
            .map(|&us| {
                Event::record(RequestRecord {
                    time: DateTime::from_timestamp_millis(T0).unwrap(),
                    status: Some(200),
                    duration_us: Some(us),
                    ..Default::default()
                })
            })
            .collect();
        let (metrics, _) = run(&mut red, events, true);
        durations.sort_unstable();
        let summary = find(&metrics, "request_duration_quantiles_seconds", &[]);
        let MetricValue::Summary { quantiles, count, .. } = &summary[0].value else { panic!() };
        assert_eq!(*count, 20_000);
        for q in quantiles {
            // DDSketch's rank: floor(q · (n − 1)).
            let exact = durations[(q.quantile * (durations.len() - 1) as f64) as usize] as f64 / 1e6;
            let error = (q.value - exact).abs() / exact;
            assert!(error <= 0.01, "p{}: {} vs exact {exact}: {error}", q.quantile, q.value);
        }
    }

    #[test]
    fn windows_close_on_the_event_clock_and_late_events_still_count() {
        let mut red = Red::new(&config("window_secs = 10\nallowed_lateness_secs = 5")).unwrap();
        // Nothing closes while the clock is inside the lateness of the first window.
        let (metrics, _) = run(&mut red, vec![record(T0 + 1_000, "a", 200, 1), record(T0 + 14_000, "a", 200, 1)], false);
        assert!(metrics.is_empty(), "{metrics:?}");
        // 15 s: the first window is over and past its lateness.
        let (metrics, _) = run(&mut red, vec![record(T0 + 15_500, "a", 200, 1)], false);
        let requests = find(&metrics, "requests_total", &[]);
        assert_eq!(requests.len(), 1);
        assert_eq!((requests[0].timestamp, counter(requests[0])), (DateTime::from_timestamp_millis(T0), 1.0));
        // A late event for the first window: counted, and emitted as a further delta.
        let (metrics, out) = run(&mut red, vec![record(T0 + 2_000, "a", 500, 1)], false);
        assert_eq!(counted(&out, "red_late_events_total"), 1);
        let late = find(&metrics, "requests_total", &[("status_class", "5xx")]);
        assert_eq!((late.len(), late[0].timestamp), (1, DateTime::from_timestamp_millis(T0)));
        // The end flushes what is still open: the second window, 2 requests.
        let (metrics, _) = run(&mut red, vec![], true);
        let requests = find(&metrics, "requests_total", &[]);
        assert_eq!((requests.len(), counter(requests[0]), requests[0].timestamp), (1, 2.0, DateTime::from_timestamp_millis(T0 + 10_000)));
    }

    #[test]
    fn an_event_from_the_future_counts_as_now() {
        let mut red = Red::new(&config("dimensions = [\"service\"]")).unwrap();
        let now = Utc::now().timestamp_millis();
        let (_, _) = run(&mut red, vec![record(now + 3_600_000, "skewed", 200, 5)], false);
        let open: Vec<i64> = red.windows.keys().copied().collect();
        assert_eq!(open.len(), 1);
        assert!(open[0] <= now && now < open[0] + 10_000, "the window of now, not of an hour ahead");
    }

    #[test]
    fn beyond_max_series_events_go_to_the_overflow_series() {
        let mut red = Red::new(&config("max_series = 3\ndimensions = [\"service\"]")).unwrap();
        let events = (0..5).flat_map(|i| [record(T0, &format!("s{i}"), 200, 5), record(T0 + 1, &format!("s{i}"), 200, 5)]).collect();
        let (metrics, out) = run(&mut red, events, true);
        let requests = find(&metrics, "requests_total", &[]);
        assert_eq!(requests.len(), 4, "3 series and the overflow");
        let overflow = find(&metrics, "requests_total", &[(OVERFLOW_TAG, "true")]);
        assert_eq!(counter(overflow[0]), 4.0);
        assert_eq!(overflow[0].tags.len(), 1);
        assert_eq!(counted(&out, "red_overflow_events_total"), 4);
        assert_eq!(requests.iter().map(|m| counter(m)).sum::<f64>(), 10.0, "nothing lost");
    }

    #[test]
    fn idle_series_expire_and_free_their_place() {
        let mut red = Red::new(&config("max_series = 1\ndimensions = [\"service\"]\nseries_ttl_secs = 60")).unwrap();
        run(&mut red, vec![record(T0, "old", 200, 5)], false);
        // 2 minutes later "old" has been idle past its ttl: "new" takes its place.
        let (_, out) = run(&mut red, vec![record(T0 + 120_000, "other", 200, 5)], false);
        assert_eq!(counted(&out, "red_overflow_events_total"), 1, "the ttl is checked at the tick after");
        let (metrics, out) = run(&mut red, vec![record(T0 + 121_000, "new", 200, 5)], true);
        assert_eq!(counted(&out, "red_overflow_events_total"), 0);
        assert_eq!(find(&metrics, "requests_total", &[("service", "new")]).len(), 1);
    }

    #[test]
    fn spans_by_service_name_kind_and_status() {
        let mut red = Red::new(&config("")).unwrap();
        let span = |status: StatusCode, ms: u64| {
            let start = T0 as u64 * 1_000_000;
            let mut span = Span {
                name: "GET /cart".into(),
                kind: SpanKind::Server,
                start_time_unix_nano: start,
                end_time_unix_nano: start + ms * 1_000_000,
                status: SpanStatus { code: status, message: String::new() },
                trace_id: [7; 16],
                ..Default::default()
            };
            span.resource.insert("service.name".into(), VrlValue::from("cart"));
            Event::span(span)
        };
        let (metrics, _) = run(&mut red, vec![span(StatusCode::Unset, 10), span(StatusCode::Error, 30), span(StatusCode::Unset, 20)], true);
        let ok = find(
            &metrics,
            "requests_total",
            &[("service.name", "cart"), ("span.name", "GET /cart"), ("span.kind", "server"), ("status.code", "unset")],
        );
        assert_eq!(counter(ok[0]), 2.0);
        let errors = find(&metrics, "request_errors_total", &[]);
        assert_eq!((errors.len(), counter(errors[0]), errors[0].tags["status.code"].as_str()), (1, 1.0, "error"));
        let histogram = find(&metrics, "request_duration_seconds", &[("status.code", "error")]);
        assert_eq!(histogram[0].exemplars[0].labels["trace_id"], "07".repeat(16));
    }

    #[test]
    fn error_statuses_and_timeouts() {
        let mut red = Red::new(&config("error_statuses = [\"4xx\", \"5xx\"]\ndimensions = [\"service\"]")).unwrap();
        let mut timeout = record(T0, "a", 200, 5);
        if let EventData::Record(r) = &mut timeout.data {
            r.status = None;
            r.error = Some("timeout".into());
        }
        // gRPC calls: NOT_FOUND (5) failed, OK (0) did not, whatever the HTTP ranges say.
        let grpc = |status| {
            let mut call = record(T0, "a", status, 5);
            if let EventData::Record(r) = &mut call.data {
                r.protocol = "grpc".into();
            }
            call
        };
        let events = vec![record(T0, "a", 404, 5), record(T0, "a", 503, 5), record(T0, "a", 302, 5), timeout, grpc(5), grpc(0)];
        let (metrics, _) = run(&mut red, events, true);
        assert_eq!(counter(find(&metrics, "request_errors_total", &[])[0]), 4.0);
        assert_eq!(parse_status_range("429"), Ok((429, 429)));
        assert!(parse_status_range("6xx").is_err() && parse_status_range("abc").is_err());
    }

    /// The names, labels and buckets of Kong's Prometheus plugin (3.x):
    /// `kong_http_requests_total{service,route,code,source,workspace,consumer}`,
    /// `kong_{kong,upstream,request}_latency_ms{service,route,workspace}`,
    /// `kong_bandwidth_bytes{service,route,direction,workspace,consumer}`.
    #[test]
    fn kong_names_labels_and_buckets() {
        let mut red = Red::new(&config("naming = \"kong\"")).unwrap();
        let mut served = record(T0, "orders", 200, 120);
        if let EventData::Record(r) = &mut served.data {
            (r.gateway_us, r.upstream_us, r.request_size, r.response_size, r.workspace, r.consumer, r.response_source) =
                (Some(3_000), Some(110_000), Some(300), Some(0), Some("default".into()), Some("alice".into()), Some("service".into()));
        }
        let mut refused = record(T0, "orders", 401, 2);
        if let EventData::Record(r) = &mut refused.data {
            (r.gateway_us, r.response_source, r.response_size) = (Some(2_000), Some("exit".into()), Some(50));
        }
        let mut unrouted = record(T0, "orders", 404, 1);
        if let EventData::Record(r) = &mut unrouted.data {
            r.route = None;
        }
        let (metrics, _) = run(&mut red, vec![served, refused, unrouted], true);
        let names: std::collections::BTreeSet<String> =
            metrics.iter().map(|m| format!("{}_{}", m.namespace.as_deref().unwrap(), m.name)).collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "kong_bandwidth_bytes",
                "kong_http_requests_total",
                "kong_kong_latency_ms",
                "kong_request_latency_ms",
                "kong_upstream_latency_ms"
            ]
        );
        let labels =
            |name: &str| -> Vec<Vec<String>> { find(&metrics, name, &[]).iter().map(|m| m.tags.keys().cloned().collect()).collect() };
        let sorted = |names: &[&str]| {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        assert!(labels("http_requests_total")
            .iter()
            .all(|l| *l == sorted(&["service", "route", "code", "source", "workspace", "consumer"])));
        for name in ["kong_latency_ms", "upstream_latency_ms", "request_latency_ms"] {
            assert!(labels(name).iter().all(|l| *l == sorted(&["service", "route", "workspace"])), "{name}");
        }
        assert!(labels("bandwidth_bytes").iter().all(|l| *l == sorted(&["service", "route", "direction", "workspace", "consumer"])));
        // The request without a route is not counted (as Kong does); "" for what is missing.
        let requests = find(&metrics, "http_requests_total", &[]);
        assert_eq!(requests.len(), 2);
        let ok = find(
            &metrics,
            "http_requests_total",
            &[("code", "200"), ("source", "service"), ("consumer", "alice"), ("workspace", "default")],
        );
        let refused = find(&metrics, "http_requests_total", &[("code", "401"), ("source", "kong"), ("consumer", ""), ("workspace", "")]);
        assert_eq!((ok.len(), refused.len()), (1, 1));
        let bandwidth: Vec<(&str, f64)> =
            find(&metrics, "bandwidth_bytes", &[]).iter().map(|m| (m.tags["direction"].as_str(), counter(m))).collect();
        assert_eq!(bandwidth.len(), 2, "no egress for a 0-byte response: {bandwidth:?}");
        assert!(bandwidth.contains(&("ingress", 300.0)) && bandwidth.contains(&("egress", 50.0)));
        let bounds = |name: &str| match &find(&metrics, name, &[])[0].value {
            MetricValue::Histogram { buckets, .. } => buckets.iter().map(|b| b.upper_limit).collect::<Vec<_>>(),
            _ => panic!(),
        };
        assert_eq!(
            bounds("kong_latency_ms"),
            [1.0, 2.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 750.0, 1000.0, 3000.0, 6000.0, f64::INFINITY]
        );
        assert_eq!(
            bounds("request_latency_ms"),
            [25.0, 50.0, 80.0, 100.0, 250.0, 400.0, 700.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0, 60000.0, f64::INFINITY]
        );
        // Milliseconds, as Kong: the upstream latency of 110 ms sums to 110.
        let upstream = find(&metrics, "upstream_latency_ms", &[]);
        assert!(matches!(upstream[0].value, MetricValue::Histogram { count: 1, sum, .. } if sum == 110.0));
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        let error = |text: &str| Red::new(&config(text)).err().unwrap();
        assert!(error("naming = \"kong\"\ndimensions = [\"service\"]").contains("Kong's names"));
        assert!(error("buckets = [1.0, 0.5]").contains("increasing"));
        assert!(error("window_secs = 0").contains("positive"));
        assert!(error("quantiles = [1.5]").contains("between 0 and 1"));
        assert!(error("dimensions = [\"service\", \"tags.service\"]").contains("twice"));
        assert!(error("error_statuses = [\"oops\"]").contains("oops"));
    }
}
