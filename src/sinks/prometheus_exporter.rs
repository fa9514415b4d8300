//! `prometheus_exporter`: serves the metrics it receives on `GET /metrics` for
//! Prometheus to scrape, as Vector's sink of that name does: the text format
//! 0.0.4, or OpenMetrics 1.0 text when the scraper asks for it.
//!
//! Each series (name and tags) keeps one value: incremental metrics add to it,
//! absolute ones replace it. A series not updated for `flush_period_secs` is
//! dropped, so a source that went away does not linger in the scrapes.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::component::{Result, SinkConfig, SinkContext, Task};
use crate::event::{Bucket, EventData, Exemplar, Family, FamilyKind, Kinds, Metric, MetricKind, MetricValue, Quantile};
use crate::net::exposure_warning;
use crate::net::server::{authorize, Keepalive, Listener, Refusal, ServerAuth, ServerLimits};
use crate::net::tls::ServerTls;
use crate::prometheus::{format_float, full_name, sanitize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusExporterConfig {
    pub address: SocketAddr,
    /// The namespace of metrics that have none: the name becomes `namespace_name`.
    pub default_namespace: Option<String>,
    /// A series not updated for longer than this is dropped from the scrapes.
    pub flush_period_secs: u64,
    /// Upper limits of the histograms distributions are counted into.
    pub buckets: Vec<f64>,
    /// Quantiles of the summaries distributions become, with `distributions_as_summaries`.
    pub quantiles: Vec<f64>,
    pub distributions_as_summaries: bool,
    pub auth: Option<ServerAuth>,
    pub tls: Option<ServerTls>,
    /// Leave the events' timestamps out: Prometheus then stamps samples with the scrape time.
    pub suppress_timestamp: bool,
    /// Answer OpenMetrics to a scraper that asks for it; `false` always serves
    /// the text format 0.0.4, as Kong's plugin does (OpenMetrics would store a
    /// counter such as `kong_bandwidth_bytes` as `kong_bandwidth_bytes_total`).
    pub openmetrics: bool,
    /// Connections, timeouts and memory (see `net::server::ServerLimits`).
    pub limits: ServerLimits,
    pub keepalive: Keepalive,
}

/// Vector's defaults.
impl Default for PrometheusExporterConfig {
    fn default() -> Self {
        PrometheusExporterConfig {
            address: SocketAddr::from(([0, 0, 0, 0], 9598)),
            default_namespace: None,
            flush_period_secs: 60,
            buckets: vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            quantiles: vec![0.5, 0.75, 0.9, 0.95, 0.99],
            distributions_as_summaries: false,
            auth: None,
            tls: None,
            suppress_timestamp: false,
            openmetrics: true,
            limits: ServerLimits::default(),
            keepalive: Keepalive::default(),
        }
    }
}

impl SinkConfig for PrometheusExporterConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::METRIC
    }

    fn check(&self) -> Result<()> {
        if self.flush_period_secs == 0 {
            return Err("`flush_period_secs` must be positive".into());
        }
        // A bound twice, or out of order, would write buckets that are not cumulative.
        if self.buckets.iter().any(|b| !b.is_finite()) || !self.buckets.windows(2).all(|w| w[0] < w[1]) {
            return Err("`buckets` must be finite and strictly ascending (the +Inf bucket is always added)".into());
        }
        if self.quantiles.iter().any(|q| !(0.0..=1.0).contains(q)) {
            return Err("`quantiles` must be between 0 and 1".into());
        }
        self.tls.as_ref().map_or(Ok(()), ServerTls::check)?;
        self.limits.check()?;
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        let tls = self.tls.as_ref().is_some_and(|t| t.enabled);
        exposure_warning(self.address, self.auth.is_some(), tls, "read every metric it serves").into_iter().collect()
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task> {
        // Bind now if the port is free; else (a reload: the sink this one
        // replaces still serves there until it has drained) a little later.
        let bound = Listener::bind(self.address, self.tls.as_ref());
        let (address, tls, limits, keepalive) = (self.address, self.tls.clone(), self.limits.clone(), self.keepalive.clone());
        let store = Arc::new(Mutex::new(Store::new(self.clone())));
        let scrapes = Arc::new(Scrapes { store: store.clone(), auth: self.auth.clone(), openmetrics: self.openmetrics });
        let app = Router::new().route("/metrics", get(scrape)).with_state(scrapes);
        let flush_period = Duration::from_secs(self.flush_period_secs);
        Ok(Box::pin(async move {
            let listener = match bound {
                Ok(listener) => listener,
                Err(_) => Listener::bind_within(address, tls.as_ref(), BIND_PATIENCE).await?,
            };
            tracing::info!(component = %cx.id, %address, path = "/metrics", scheme = listener.scheme(), "listening");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = listener.serve(app, &limits, &keepalive, cx.metrics.clone(), async move {
                let _ = stopped.await;
            });
            let receiving = async move {
                // Expired series are also skipped when rendering; this frees them even if nobody scrapes.
                let mut sweep = tokio::time::interval(flush_period);
                loop {
                    tokio::select! {
                        batch = cx.input.recv() => {
                            let Some(batch) = batch else { break };
                            let now = Instant::now();
                            let mut stored = Vec::with_capacity(batch.len());
                            let mut locked = lock(&store);
                            for event in &batch {
                                match &event.data {
                                    EventData::Metric(metric) => {
                                        locked.insert(metric, now);
                                        stored.push(event);
                                    }
                                    _ => cx.reject(event, "prometheus_exporter takes metrics only"),
                                }
                            }
                            drop(locked);
                            // Delivered: from now on the next scrape serves them.
                            cx.settle(stored.iter().copied(), stored.len(), Ok(0));
                        }
                        _ = sweep.tick() => lock(&store).expire(Instant::now()),
                    }
                }
                // The input is drained: stop serving so that the sink ends.
                let _ = stop.send(());
            };
            let ((), served) = tokio::join!(receiving, serving);
            served
        }))
    }
}

/// How long a replacing exporter waits for its address (a taken port fails after this).
const BIND_PATIENCE: Duration = Duration::from_secs(5);

struct Scrapes {
    store: Arc<Mutex<Store>>,
    auth: Option<ServerAuth>,
    openmetrics: bool,
}

async fn scrape(State(scrapes): State<Arc<Scrapes>>, headers: HeaderMap) -> Result<Response, Refusal> {
    authorize(scrapes.auth.as_ref(), &headers)?;
    let format = if scrapes.openmetrics { Format::negotiate(&headers) } else { Format::Text };
    let body = render(&lock(&scrapes.store), format, Instant::now());
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper lists it in `Accept` (Prometheus does, first).
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let openmetrics = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("application/openmetrics-text")));
        if openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

type Labels = BTreeMap<String, String>;

/// The series served: families by sanitized name, in each its series by labels,
/// so that the exposition comes out sorted.
pub struct Store {
    config: PrometheusExporterConfig,
    families: BTreeMap<String, BTreeMap<Labels, Series>>,
    /// Classic histograms and summaries received series by series (remote
    /// write): their latest parts, by family and labels (without `le` or `quantile`).
    classic: BTreeMap<(String, Labels), Parts>,
}

/// The parts of one classic histogram or summary series.
#[derive(Default)]
struct Parts {
    /// (`le`, cumulative count), as received.
    buckets: Vec<(f64, f64)>,
    quantiles: Vec<Quantile>,
    sum: f64,
    count: f64,
}

impl Parts {
    fn set(list: &mut Vec<(f64, f64)>, key: f64, value: f64) {
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => list.push((key, value)),
        }
    }

    /// The family's value from its parts: a histogram with non-cumulative
    /// buckets (as events hold them), or a summary.
    fn value(&self, kind: FamilyKind) -> MetricValue {
        let count = self.count.max(0.0).round() as u64;
        match kind {
            FamilyKind::Histogram => {
                let mut cumulative: Vec<(f64, f64)> = self.buckets.iter().copied().filter(|(le, _)| le.is_finite()).collect();
                cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut below = 0.0;
                let buckets = cumulative
                    .into_iter()
                    .map(|(upper_limit, total)| {
                        let count = (total - below).max(0.0).round() as u64;
                        below = total;
                        Bucket { upper_limit, count }
                    })
                    .collect();
                MetricValue::Histogram { buckets, count, sum: self.sum }
            }
            FamilyKind::Summary => {
                let mut quantiles = self.quantiles.clone();
                quantiles.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
                MetricValue::Summary { quantiles, count, sum: self.sum }
            }
        }
    }
}

struct Series {
    /// A distribution is kept as a histogram over the configured buckets, or
    /// (as summaries) as its samples, whose quantiles are computed when rendered.
    value: MetricValue,
    timestamp: Option<DateTime<Utc>>,
    updated: Instant,
    /// The latest exemplars received (a trace id among their labels), shown on
    /// histogram buckets in OpenMetrics.
    exemplars: Vec<Exemplar>,
}

impl Store {
    pub fn new(config: PrometheusExporterConfig) -> Self {
        Store { config, families: BTreeMap::new(), classic: BTreeMap::new() }
    }

    /// Fold one metric into its series, as of `now`.
    pub fn insert(&mut self, metric: &Metric, now: Instant) {
        if let (Some(family), MetricValue::Counter { value } | MetricValue::Gauge { value }) = (&metric.family, &metric.value) {
            return self.insert_part(metric, family, *value, now);
        }
        let value = match &metric.value {
            MetricValue::Distribution { samples, .. } if !self.config.distributions_as_summaries => {
                histogram_of(samples, &self.config.buckets)
            }
            MetricValue::Histogram { buckets, count, sum } => {
                // Sorted, so that summing them up gives cumulative counts.
                let mut buckets = buckets.clone();
                buckets.sort_by(|a, b| a.upper_limit.total_cmp(&b.upper_limit));
                MetricValue::Histogram { buckets, count: *count, sum: *sum }
            }
            value => value.clone(),
        };
        let name = full_name(metric, self.config.default_namespace.as_deref());
        let labels: Labels = metric.tags.iter().map(|(k, v)| (sanitize(k, false), v.clone())).collect();
        self.put(name, labels, value, metric, now);
    }

    /// One part of a classic histogram or summary: kept, and the family's
    /// value rebuilt from its latest parts, so that it is served as one family.
    fn insert_part(&mut self, metric: &Metric, family: &Family, value: f64, now: Instant) {
        let mut labels: Labels = metric.tags.iter().map(|(k, v)| (sanitize(k, false), v.clone())).collect();
        let mut bound = |label: &str| labels.remove(label).and_then(|v| v.parse::<f64>().ok());
        let (le, quantile) = (bound("le"), bound("quantile"));
        let mut named = Metric::new(family.name.clone(), metric.kind, MetricValue::Gauge { value });
        named.namespace.clone_from(&metric.namespace);
        let name = full_name(&named, self.config.default_namespace.as_deref());
        let parts = self.classic.entry((name.clone(), labels.clone())).or_default();
        match (metric.name.strip_prefix(family.name.as_str()).unwrap_or_default(), le, quantile) {
            ("_bucket", Some(le), _) => Parts::set(&mut parts.buckets, le, value),
            ("", _, Some(quantile)) => match parts.quantiles.iter_mut().find(|q| q.quantile == quantile) {
                Some(q) => q.value = value,
                None => parts.quantiles.push(Quantile { quantile, value }),
            },
            ("_sum", ..) => parts.sum = value,
            ("_count", ..) => parts.count = value,
            // Not a part after all: served as it came.
            _ => {
                let name = full_name(metric, self.config.default_namespace.as_deref());
                let labels = metric.tags.iter().map(|(k, v)| (sanitize(k, false), v.clone())).collect();
                return self.put(name, labels, metric.value.clone(), metric, now);
            }
        }
        let value = parts.value(family.kind);
        // Parts stored on their own before the metadata said what they are.
        for suffix in ["_bucket", "_sum", "_count"] {
            self.families.remove(&format!("{name}{suffix}"));
        }
        self.put(name, labels, value, &Metric { kind: MetricKind::Absolute, ..metric.clone() }, now);
    }

    /// Store `value` (of `metric`) in the series `name{labels}`.
    fn put(&mut self, name: String, labels: Labels, value: MetricValue, metric: &Metric, now: Instant) {
        let family = self.families.entry(name).or_default();
        // A family has one type: a metric of another type starts it afresh.
        if family.values().next().is_some_and(|s| type_name(&s.value) != type_name(&value)) {
            family.clear();
        }
        match family.get_mut(&labels) {
            Some(series) => {
                merge(&mut series.value, value, metric.kind);
                series.timestamp = metric.timestamp;
                series.updated = now;
                if !metric.exemplars.is_empty() {
                    series.exemplars.clone_from(&metric.exemplars);
                }
            }
            None => {
                family.insert(labels, Series { value, timestamp: metric.timestamp, updated: now, exemplars: metric.exemplars.clone() });
            }
        }
    }

    /// Forget the series not updated for longer than the flush period.
    pub fn expire(&mut self, now: Instant) {
        let period = self.flush_period();
        for family in self.families.values_mut() {
            family.retain(|_, series| fresh(series, now, period));
        }
        self.families.retain(|_, family| !family.is_empty());
        let families = &self.families;
        self.classic.retain(|(name, labels), _| families.get(name).is_some_and(|f| f.contains_key(labels)));
    }

    fn flush_period(&self) -> Duration {
        Duration::from_secs(self.config.flush_period_secs)
    }
}

fn fresh(series: &Series, now: Instant, period: Duration) -> bool {
    now.saturating_duration_since(series.updated) <= period
}

/// Add an incremental value to the stored one (counters, gauges, histograms
/// with the same bounds, distributions); anything else replaces it.
fn merge(stored: &mut MetricValue, new: MetricValue, kind: MetricKind) {
    use MetricValue::{Counter, Distribution, Gauge, Histogram, Set};
    let added = kind == MetricKind::Incremental
        && match (&mut *stored, &new) {
            (Counter { value: a }, Counter { value: b }) | (Gauge { value: a }, Gauge { value: b }) => {
                *a += b;
                true
            }
            (Histogram { buckets: a, count: a_count, sum: a_sum }, Histogram { buckets: b, count: b_count, sum: b_sum })
                if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.upper_limit == y.upper_limit) =>
            {
                for (x, y) in a.iter_mut().zip(b) {
                    x.count += y.count;
                }
                *a_count += b_count;
                *a_sum += b_sum;
                true
            }
            (Distribution { samples: a, statistic: x }, Distribution { samples: b, statistic: y }) if x == y => {
                a.extend_from_slice(b);
                true
            }
            (Set { values: a }, Set { values: b }) => {
                a.extend(b.iter().cloned());
                true
            }
            _ => false,
        };
    if !added {
        *stored = new;
    }
}

/// A distribution's samples counted into `bounds`, as a Prometheus client's
/// histogram would (non-cumulative, like the histograms of events); samples
/// above the last bound count only in the total, that is in `+Inf`.
fn histogram_of(samples: &[(f64, u32)], bounds: &[f64]) -> MetricValue {
    let mut buckets: Vec<Bucket> = bounds.iter().map(|&upper_limit| Bucket { upper_limit, count: 0 }).collect();
    let (mut count, mut sum) = (0, 0.0);
    for &(value, rate) in samples {
        if let Some(bucket) = buckets.iter_mut().find(|b| value <= b.upper_limit) {
            bucket.count += u64::from(rate);
        }
        count += u64::from(rate);
        sum += value * f64::from(rate);
    }
    MetricValue::Histogram { buckets, count, sum }
}

/// The quantiles (nearest rank), count and sum of samples, each weighted by its rate.
fn summarize(samples: &[(f64, u32)], quantiles: &[f64]) -> (Vec<Quantile>, u64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count: u64 = sorted.iter().map(|&(_, rate)| u64::from(rate)).sum();
    let sum = sorted.iter().map(|&(value, rate)| value * f64::from(rate)).sum();
    let quantiles = quantiles
        .iter()
        .map(|&quantile| {
            let rank = (quantile * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            // NaN when there is no sample, as Prometheus clients write an empty summary.
            let value = sorted.iter().find(|&&(_, rate)| {
                seen += u64::from(rate);
                seen >= rank
            });
            Quantile { quantile, value: value.map_or(f64::NAN, |&(value, _)| value) }
        })
        .collect();
    (quantiles, count, sum)
}

fn type_name(value: &MetricValue) -> &'static str {
    match value {
        MetricValue::Counter { .. } => "counter",
        // Prometheus has no set: its number of values, as a gauge.
        MetricValue::Gauge { .. } | MetricValue::Set { .. } => "gauge",
        MetricValue::Histogram { .. } => "histogram",
        MetricValue::Summary { .. } | MetricValue::Distribution { .. } => "summary",
    }
}

/// Render every series updated within the flush period as of `now`: per
/// family a HELP (the name itself, as Vector writes; sanitized, it needs no
/// escaping) and a TYPE line, then its samples.
pub fn render(store: &Store, format: Format, now: Instant) -> String {
    let mut out = String::new();
    let period = store.flush_period();
    for (name, family) in &store.families {
        let live: Vec<(&Labels, &Series)> = family.iter().filter(|(_, series)| fresh(series, now, period)).collect();
        let Some((_, first)) = live.first() else { continue };
        let kind = type_name(&first.value);
        // OpenMetrics names a counter's family without `_total` and its sample with it.
        let (family_name, suffix) = match (format, kind) {
            (Format::OpenMetrics, "counter") => (name.strip_suffix("_total").filter(|n| !n.is_empty()).unwrap_or(name), "_total"),
            _ => (name.as_str(), ""),
        };
        // Each format's usual order: Prometheus clients write HELP first, OpenMetrics asks for TYPE first.
        let (help, kind_line) = (format!("# HELP {family_name} {family_name}\n"), format!("# TYPE {family_name} {kind}\n"));
        match format {
            Format::Text => out.extend([help, kind_line]),
            Format::OpenMetrics => out.extend([kind_line, help]),
        }
        for (labels, series) in live {
            let timestamp = series.timestamp.filter(|_| !store.config.suppress_timestamp);
            let mut lines = Lines { out: &mut out, format, name: family_name, labels, timestamp, exemplar: None };
            match &series.value {
                MetricValue::Counter { value } | MetricValue::Gauge { value } => lines.sample(suffix, None, format_float(*value)),
                MetricValue::Set { values } => lines.sample("", None, values.len()),
                MetricValue::Histogram { buckets, count, sum } => {
                    // Events count per bucket; Prometheus counts everything at or below each bound.
                    // An exemplar goes on the bucket its value falls in (OpenMetrics only).
                    let (mut cumulative, mut below) = (0, f64::NEG_INFINITY);
                    let exemplar_in = |low: f64, high: f64| {
                        series.exemplars.iter().filter(|_| format == Format::OpenMetrics).find(|e| e.value > low && e.value <= high)
                    };
                    for bucket in buckets.iter().filter(|b| b.upper_limit.is_finite()) {
                        cumulative += bucket.count;
                        lines.exemplar = exemplar_in(below, bucket.upper_limit);
                        lines.sample("_bucket", Some(("le", bucket.upper_limit)), cumulative);
                        below = bucket.upper_limit;
                    }
                    lines.exemplar = exemplar_in(below, f64::INFINITY);
                    lines.sample("_bucket", Some(("le", f64::INFINITY)), count);
                    lines.exemplar = None;
                    lines.sample("_sum", None, format_float(*sum));
                    lines.sample("_count", None, count);
                }
                MetricValue::Summary { quantiles, count, sum } => lines.summary(quantiles, *count, *sum),
                MetricValue::Distribution { samples, .. } => {
                    let (quantiles, count, sum) = summarize(samples, &store.config.quantiles);
                    lines.summary(&quantiles, count, sum);
                }
            }
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Writes the samples of one series.
struct Lines<'a> {
    out: &'a mut String,
    format: Format,
    name: &'a str,
    labels: &'a Labels,
    timestamp: Option<DateTime<Utc>>,
    /// Written after the next sample: ` # {labels} value [timestamp]`.
    exemplar: Option<&'a Exemplar>,
}

impl Lines<'_> {
    fn summary(&mut self, quantiles: &[Quantile], count: u64, sum: f64) {
        for q in quantiles {
            self.sample("", Some(("quantile", q.quantile)), format_float(q.value));
        }
        self.sample("_sum", None, format_float(sum));
        self.sample("_count", None, count);
    }

    /// `name_suffix{labels,extra} value [timestamp]`; `extra` is `le` or `quantile`.
    fn sample(&mut self, suffix: &str, extra: Option<(&str, f64)>, value: impl Display) {
        let mut labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        if let Some((key, bound)) = extra {
            labels.push(format!("{key}=\"{}\"", self.label_number(bound)));
        }
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            let _ = write!(self.out, "{{{}}}", labels.join(","));
        }
        let _ = write!(self.out, " {value}");
        match (self.timestamp, self.format) {
            (Some(t), Format::Text) => {
                let _ = write!(self.out, " {}", t.timestamp_millis());
            }
            // Seconds; a float's shortest form never has an exponent in Rust, as OpenMetrics wants.
            (Some(t), Format::OpenMetrics) => {
                let _ = write!(self.out, " {}", t.timestamp_millis() as f64 / 1000.0);
            }
            (None, _) => {}
        }
        if let Some(e) = self.exemplar {
            let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{}=\"{}\"", sanitize(k, false), escape(v))).collect();
            let _ = write!(self.out, " # {{{}}} {}", labels.join(","), format_float(e.value));
            if let Some(t) = e.timestamp {
                let _ = write!(self.out, " {}", t.timestamp_millis() as f64 / 1000.0);
            }
        }
        self.out.push('\n');
    }

    /// `le` and `quantile` values: OpenMetrics wants them canonical, `1.0` rather than `1`.
    fn label_number(&self, value: f64) -> String {
        let mut text = format_float(value);
        if self.format == Format::OpenMetrics && value.is_finite() && !text.contains(['.', 'e']) {
            text.push_str(".0");
        }
        text
    }
}

/// Label values: `\`, `"` and newline escaped, in both formats.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use chrono::TimeZone;

    use super::*;
    use crate::component::attach_finalizers;
    use crate::component::buffer::{self, BufferConfig};
    use crate::event::{Event, EventStatus, Statistic};

    fn counter(name: &str, kind: MetricKind, value: f64) -> Metric {
        Metric::new(name, kind, MetricValue::Counter { value })
    }

    fn histogram(kind: MetricKind, buckets: &[(f64, u64)], count: u64, sum: f64) -> Metric {
        let buckets = buckets.iter().map(|&(upper_limit, count)| Bucket { upper_limit, count }).collect();
        Metric::new("latency_seconds", kind, MetricValue::Histogram { buckets, count, sum })
    }

    fn store_of(config: PrometheusExporterConfig, metrics: &[Metric], now: Instant) -> Store {
        let mut store = Store::new(config);
        for metric in metrics {
            store.insert(metric, now);
        }
        store
    }

    fn text(metrics: &[Metric]) -> String {
        let now = Instant::now();
        render(&store_of(PrometheusExporterConfig::default(), metrics, now), Format::Text, now)
    }

    #[test]
    fn incremental_counters_add_up_and_absolute_ones_replace() {
        let metrics = [
            counter("requests_total", MetricKind::Incremental, 2.0).with_tag("code", "200"),
            counter("requests_total", MetricKind::Incremental, 3.0).with_tag("code", "200"),
            counter("requests_total", MetricKind::Incremental, 1.0).with_tag("code", "500"),
            counter("bytes_total", MetricKind::Absolute, 100.0),
            counter("bytes_total", MetricKind::Absolute, 40.0),
        ];
        let expected = "# HELP bytes_total bytes_total\n# TYPE bytes_total counter\nbytes_total 40\n\
                        # HELP requests_total requests_total\n# TYPE requests_total counter\n\
                        requests_total{code=\"200\"} 5\nrequests_total{code=\"500\"} 1\n";
        assert_eq!(text(&metrics), expected);
    }

    #[test]
    fn gauges_namespaces_and_timestamps() {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(250);
        let metrics = [
            Metric::new("queue_depth", MetricKind::Absolute, MetricValue::Gauge { value: 7.0 }).with_timestamp(at),
            Metric::new("queue_depth", MetricKind::Incremental, MetricValue::Gauge { value: -2.5 }).with_timestamp(at),
            Metric::new("temperature", MetricKind::Absolute, MetricValue::Gauge { value: 21.5 }).with_namespace("room"),
        ];
        let config = PrometheusExporterConfig { default_namespace: Some("app".into()), ..Default::default() };
        let now = Instant::now();
        let store = store_of(config, &metrics, now);
        let expected = "# HELP app_queue_depth app_queue_depth\n# TYPE app_queue_depth gauge\napp_queue_depth 4.5 1714564800250\n\
                        # HELP room_temperature room_temperature\n# TYPE room_temperature gauge\nroom_temperature 21.5\n";
        assert_eq!(render(&store, Format::Text, now), expected);
        let suppressed = store_of(PrometheusExporterConfig { suppress_timestamp: true, ..Default::default() }, &metrics[..1], now);
        assert!(render(&suppressed, Format::Text, now).ends_with("\nqueue_depth 7\n"));
    }

    #[test]
    fn histograms_have_cumulative_buckets_and_inf() {
        // Unsorted and with OTLP's own +Inf bucket: sorted, and +Inf written once, as the count.
        let first = histogram(MetricKind::Incremental, &[(1.0, 3), (0.1, 2), (f64::INFINITY, 1)], 6, 4.5);
        let second = histogram(MetricKind::Incremental, &[(0.1, 1), (1.0, 0), (f64::INFINITY, 0)], 1, 0.05);
        let expected = "# HELP latency_seconds latency_seconds\n# TYPE latency_seconds histogram\n\
                        latency_seconds_bucket{le=\"0.1\"} 3\nlatency_seconds_bucket{le=\"1\"} 6\nlatency_seconds_bucket{le=\"+Inf\"} 7\n\
                        latency_seconds_sum 4.55\nlatency_seconds_count 7\n";
        assert_eq!(text(&[first.clone(), second]), expected);
        // Other bounds, or an absolute histogram: replaced, not added.
        let other = histogram(MetricKind::Incremental, &[(5.0, 1)], 1, 2.0);
        assert!(text(&[first.clone(), other]).contains("latency_seconds_bucket{le=\"5\"} 1\nlatency_seconds_bucket{le=\"+Inf\"} 1\n"));
        let absolute = histogram(MetricKind::Absolute, &[(0.1, 1), (1.0, 0)], 1, 0.05);
        assert!(text(&[first, absolute]).contains("latency_seconds_count 1\n"));
    }

    #[test]
    fn summaries_are_replaced() {
        let summary = |count, sum| {
            let quantiles = vec![Quantile { quantile: 0.5, value: 0.2 }, Quantile { quantile: 0.99, value: 1.5 }];
            Metric::new("rpc_seconds", MetricKind::Incremental, MetricValue::Summary { quantiles, count, sum }).with_tag("method", "get")
        };
        let expected = "# HELP rpc_seconds rpc_seconds\n# TYPE rpc_seconds summary\n\
                        rpc_seconds{method=\"get\",quantile=\"0.5\"} 0.2\nrpc_seconds{method=\"get\",quantile=\"0.99\"} 1.5\n\
                        rpc_seconds_sum{method=\"get\"} 30\nrpc_seconds_count{method=\"get\"} 20\n";
        assert_eq!(text(&[summary(10, 12.0), summary(20, 30.0)]), expected);
    }

    #[test]
    fn incremental_sets_unite_and_show_their_size() {
        let set = |kind, values: &[&str]| {
            Metric::new("clients", kind, MetricValue::Set { values: values.iter().map(|v| v.to_string()).collect() })
        };
        let expected = |n| format!("# HELP clients clients\n# TYPE clients gauge\nclients {n}\n");
        let incremental = [set(MetricKind::Incremental, &["a", "b"]), set(MetricKind::Incremental, &["b", "c"])];
        assert_eq!(text(&incremental), expected(3));
        // An absolute set replaces what was there.
        assert_eq!(text(&[incremental[0].clone(), set(MetricKind::Absolute, &["z"])]), expected(1));
    }

    #[test]
    fn distributions_become_histograms_or_summaries() {
        let distribution = |samples: Vec<(f64, u32)>| {
            Metric::new("size_bytes", MetricKind::Incremental, MetricValue::Distribution { samples, statistic: Statistic::Histogram })
        };
        let metrics = [distribution(vec![(50.0, 1), (150.0, 2)]), distribution(vec![(5000.0, 1), (100.0, 1)])];
        let config = PrometheusExporterConfig { buckets: vec![100.0, 1000.0], ..Default::default() };
        let now = Instant::now();
        let expected = "# HELP size_bytes size_bytes\n# TYPE size_bytes histogram\n\
                        size_bytes_bucket{le=\"100\"} 2\nsize_bytes_bucket{le=\"1000\"} 4\nsize_bytes_bucket{le=\"+Inf\"} 5\n\
                        size_bytes_sum 5450\nsize_bytes_count 5\n";
        assert_eq!(render(&store_of(config, &metrics, now), Format::Text, now), expected);

        // Samples 50, 100, 150, 150, 5000: nearest rank.
        let config = PrometheusExporterConfig { distributions_as_summaries: true, quantiles: vec![0.2, 0.5, 0.99], ..Default::default() };
        let expected = "# HELP size_bytes size_bytes\n# TYPE size_bytes summary\n\
                        size_bytes{quantile=\"0.2\"} 50\nsize_bytes{quantile=\"0.5\"} 150\nsize_bytes{quantile=\"0.99\"} 5000\n\
                        size_bytes_sum 5450\nsize_bytes_count 5\n";
        assert_eq!(render(&store_of(config.clone(), &metrics, now), Format::Text, now), expected);
        let empty = render(&store_of(config, &[distribution(vec![])], now), Format::Text, now);
        assert!(empty.contains("size_bytes{quantile=\"0.5\"} NaN\n") && empty.contains("size_bytes_count 0\n"));
    }

    #[test]
    fn names_are_sanitized_and_label_values_escaped() {
        let metric = counter("http.requests-total", MetricKind::Absolute, 1.0)
            .with_namespace("9kong")
            .with_tag("route.name", "a\"b\\c\nd")
            .with_tag("1st", "x")
            .with_tag("a:b", "é");
        let expected = "# HELP _9kong_http_requests_total _9kong_http_requests_total\n# TYPE _9kong_http_requests_total counter\n\
                        _9kong_http_requests_total{_1st=\"x\",a_b=\"é\",route_name=\"a\\\"b\\\\c\\nd\"} 1\n";
        assert_eq!(text(&[metric]), expected);
        assert_eq!(sanitize("job:rate5m", true), "job:rate5m");
        assert_eq!(sanitize("", false), "_");
    }

    #[test]
    fn numbers_are_written_as_prometheus_clients_write_them() {
        let cases = [
            (1.0, "1"),
            (0.005, "0.005"),
            (123456.5, "123456.5"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (0.0, "0"),
        ];
        for (value, written) in cases {
            assert_eq!(format_float(value), written);
        }
        assert_eq!([format_float(f64::INFINITY), format_float(f64::NEG_INFINITY), format_float(f64::NAN)], ["+Inf", "-Inf", "NaN"]);
    }

    #[test]
    fn a_metric_of_another_type_restarts_its_family() {
        let metrics = [
            counter("jobs", MetricKind::Absolute, 3.0).with_tag("queue", "a"),
            Metric::new("jobs", MetricKind::Absolute, MetricValue::Gauge { value: 1.0 }).with_tag("queue", "b"),
        ];
        assert_eq!(text(&metrics), "# HELP jobs jobs\n# TYPE jobs gauge\njobs{queue=\"b\"} 1\n");
    }

    #[test]
    fn series_not_updated_within_the_flush_period_expire() {
        let config = PrometheusExporterConfig { flush_period_secs: 60, ..Default::default() };
        let start = Instant::now();
        let mut store = Store::new(config);
        store.insert(&counter("old_total", MetricKind::Incremental, 1.0), start);
        store.insert(&counter("live_total", MetricKind::Incremental, 1.0), start);
        store.insert(&counter("live_total", MetricKind::Incremental, 1.0), start + Duration::from_secs(50));
        let at = |secs| start + Duration::from_secs(secs);
        assert!(render(&store, Format::Text, at(60)).contains("old_total 1\n"));
        let later = render(&store, Format::Text, at(61));
        assert!(!later.contains("old_total") && later.contains("live_total 2\n"), "{later}");
        store.expire(at(61));
        assert_eq!(store.families.keys().collect::<Vec<_>>(), ["live_total"]);
        store.expire(at(111));
        assert!(store.families.is_empty());
        assert_eq!(render(&store, Format::Text, at(111)), "");
    }

    #[test]
    fn openmetrics_output() {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(250);
        let metrics = [
            counter("requests", MetricKind::Absolute, 5.0).with_tag("code", "200").with_timestamp(at),
            counter("errors_total", MetricKind::Absolute, 1.0),
            histogram(MetricKind::Absolute, &[(0.5, 1), (1.0, 1)], 3, 2.0),
            Metric::new(
                "rpc_seconds",
                MetricKind::Absolute,
                MetricValue::Summary { quantiles: vec![Quantile { quantile: 1.0, value: 2.0 }], count: 1, sum: 2.0 },
            ),
        ];
        let now = Instant::now();
        let expected = "# TYPE errors counter\n# HELP errors errors\nerrors_total 1\n\
                        # TYPE latency_seconds histogram\n# HELP latency_seconds latency_seconds\n\
                        latency_seconds_bucket{le=\"0.5\"} 1\nlatency_seconds_bucket{le=\"1.0\"} 2\nlatency_seconds_bucket{le=\"+Inf\"} 3\n\
                        latency_seconds_sum 2\nlatency_seconds_count 3\n\
                        # TYPE requests counter\n# HELP requests requests\nrequests_total{code=\"200\"} 5 1714564800.25\n\
                        # TYPE rpc_seconds summary\n# HELP rpc_seconds rpc_seconds\nrpc_seconds{quantile=\"1.0\"} 2\nrpc_seconds_sum 2\nrpc_seconds_count 1\n\
                        # EOF\n";
        assert_eq!(render(&store_of(PrometheusExporterConfig::default(), &metrics, now), Format::OpenMetrics, now), expected);
        assert_eq!(render(&Store::new(PrometheusExporterConfig::default()), Format::OpenMetrics, now), "# EOF\n");
    }

    #[test]
    fn the_format_follows_accept() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::negotiate(&headers), Format::Text);
        // What Prometheus sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        headers.insert(header::ACCEPT, prometheus.parse().unwrap());
        assert_eq!(Format::negotiate(&headers), Format::OpenMetrics);
        headers.insert(header::ACCEPT, "text/plain".parse().unwrap());
        assert_eq!(Format::negotiate(&headers), Format::Text);
    }

    #[test]
    fn check_refuses_bad_options() {
        assert!(PrometheusExporterConfig::default().check().is_ok());
        for bad in [
            PrometheusExporterConfig { flush_period_secs: 0, ..Default::default() },
            PrometheusExporterConfig { buckets: vec![1.0, 0.5], ..Default::default() },
            PrometheusExporterConfig { buckets: vec![1.0, f64::INFINITY], ..Default::default() },
            PrometheusExporterConfig { quantiles: vec![1.5], ..Default::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    /// One of each kind, with names promtool's lint accepts.
    fn every_kind() -> Store {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let metrics = [
            counter("http_requests_total", MetricKind::Incremental, 3.0).with_tag("path", "/a \"b\"\\").with_timestamp(at),
            counter("http_requests_total", MetricKind::Incremental, 1.0).with_tag("path", "/c\nd").with_timestamp(at),
            Metric::new("queue_depth", MetricKind::Absolute, MetricValue::Gauge { value: 1e-7 }),
            histogram(MetricKind::Absolute, &[(0.25, 2), (2.5, 1), (f64::INFINITY, 1)], 4, 3.5).with_tag("route", "orders"),
            Metric::new(
                "rpc_duration_seconds",
                MetricKind::Absolute,
                MetricValue::Summary {
                    quantiles: vec![Quantile { quantile: 0.5, value: 0.1 }, Quantile { quantile: 0.9, value: f64::NAN }],
                    count: 9,
                    sum: 1.25,
                },
            ),
            Metric::new(
                "response_size_bytes",
                MetricKind::Incremental,
                MetricValue::Distribution { samples: vec![(0.2, 2), (7.0, 1), (1e6, 1)], statistic: Statistic::Summary },
            ),
        ];
        store_of(PrometheusExporterConfig::default(), &metrics, Instant::now())
    }

    /// `promtool check metrics < file`: its exit code and what it printed.
    fn promtool(exposition: &str) -> (Option<i32>, String) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(exposition.as_bytes()).unwrap();
        let output = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::from(file.reopen().unwrap()))
            .output()
            .expect("promtool (Debian's prometheus package) is installed");
        (output.status.code(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    /// OpenMetrics carries a histogram's exemplars on the bucket of their value;
    /// the text format has no place for them.
    #[test]
    fn exemplars_on_their_buckets_in_openmetrics() {
        let now = Instant::now();
        let mut metric = histogram(MetricKind::Incremental, &[(0.1, 2), (1.0, 1), (f64::INFINITY, 0)], 3, 0.9);
        let at = DateTime::from_timestamp(1_732_613_000, 500_000_000);
        metric.exemplars = vec![Exemplar {
            value: 0.7,
            timestamp: at,
            labels: BTreeMap::from([("trace_id".to_string(), "4bf92f3577b34da6a3ce929d0e0e4736".to_string())]),
        }];
        let store = store_of(PrometheusExporterConfig { suppress_timestamp: true, ..Default::default() }, &[metric], now);
        let open = render(&store, Format::OpenMetrics, now);
        assert!(open.contains("latency_seconds_bucket{le=\"0.1\"} 2\nlatency_seconds_bucket{le=\"1.0\"} 3 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.7 1732613000.5\nlatency_seconds_bucket{le=\"+Inf\"} 3\n"), "{open}");
        assert!(!render(&store, Format::Text, now).contains("trace_id"));
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let store = every_kind();
        let exposition = render(&store, Format::Text, Instant::now());
        assert_eq!(promtool(&exposition), (Some(0), String::new()), "{exposition}");

        // promtool reads the text format only: it cannot parse OpenMetrics' timestamps in
        // seconds, and takes a counter's `_total` sample for another family, one without
        // HELP. Apart from that it must find nothing to say.
        let store = Store { config: PrometheusExporterConfig { suppress_timestamp: true, ..Default::default() }, ..store };
        let exposition = render(&store, Format::OpenMetrics, Instant::now());
        assert!(exposition.starts_with("# TYPE http_requests counter\n") && exposition.ends_with("# EOF\n"), "{exposition}");
        assert_eq!(promtool(&exposition), (Some(3), "http_requests_total no help text\n".to_string()), "{exposition}");
    }

    #[tokio::test]
    async fn serves_get_metrics_with_auth() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let auth = ServerAuth::Bearer { token: "secret".into() };
        let config = PrometheusExporterConfig { address: SocketAddr::from(([127, 0, 0, 1], port)), auth: Some(auth), ..Default::default() };
        config.check().unwrap();
        let metrics = crate::telemetry::component("prometheus_exporter_test", "sink", "prometheus_exporter");
        let (sender, input) = buffer::channel(&BufferConfig::default(), metrics.clone());
        let sink = tokio::spawn(config.build(SinkContext { id: "prometheus_exporter_test".into(), input, metrics }).unwrap());

        let mut batch = vec![Event::metric(counter("requests_total", MetricKind::Incremental, 2.0))];
        let status = attach_finalizers(&mut batch);
        sender.send(batch).await.unwrap();
        assert_eq!(status.await.unwrap(), EventStatus::Delivered);

        let url = format!("http://127.0.0.1:{port}/metrics");
        let client = reqwest::Client::new();
        let response = client.get(&url).bearer_auth("secret").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], Format::Text.content_type());
        assert!(response.text().await.unwrap().ends_with("\nrequests_total 2\n"));
        let response = client
            .get(&url)
            .bearer_auth("secret")
            .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], Format::OpenMetrics.content_type());
        assert!(response.text().await.unwrap().ends_with("\nrequests_total 2\n# EOF\n"));

        assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
        assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);
        assert_eq!(client.post(&url).bearer_auth("secret").send().await.unwrap().status(), 405);
        assert_eq!(client.get(format!("http://127.0.0.1:{port}/")).bearer_auth("secret").send().await.unwrap().status(), 404);

        // The input ends: the sink stops serving and ends.
        drop(sender);
        tokio::time::timeout(Duration::from_secs(10), sink).await.unwrap().unwrap().unwrap();
    }
}
