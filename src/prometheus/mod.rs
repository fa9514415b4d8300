//! Prometheus remote write ⇄ metric events.
//!
//! Each sample becomes one metric event: `__name__` is its name, the other
//! labels its tags, the sample's time its timestamp. Counters (by metadata)
//! become absolute counters, the rest absolute gauges; the series of a classic
//! histogram or summary (`_bucket`, `_sum`, `_count`) are counters. A native
//! histogram becomes a histogram with its bucket bounds computed. A request
//! with an invalid series (labels unsorted, duplicated, empty, no name; a bad
//! symbol reference; buckets that do not match their spans) is refused whole.

pub mod proto;

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard};

use chrono::{DateTime, Utc};

use crate::event::{Bucket, Event, EventBatch, Exemplar, Family, FamilyKind, Metric, MetricKind, MetricValue};
use proto::{v1, v2, Count, Histogram, ZeroCount, TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM, TYPE_SUMMARY};

/// Prometheus's staleness marker: a NaN that means "this series ended".
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// What one request held, as the 2.0 response headers report it.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: EventBatch,
    pub samples: usize,
    pub histograms: usize,
    pub exemplars: usize,
}

/// Metric types learnt from 1.0 metadata, which Prometheus sends in requests
/// of its own, apart from the samples. Bounded: past the limit, new families
/// are not remembered (their samples stay gauges).
#[derive(Default)]
pub struct Types {
    known: RwLock<HashMap<String, i32>>,
}

const TYPES_LIMIT: usize = 100_000;

impl Types {
    fn learn(&self, metadata: &[v1::MetricMetadata]) {
        if metadata.is_empty() {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        for m in metadata {
            if known.len() < TYPES_LIMIT || known.contains_key(&m.metric_family_name) {
                known.insert(m.metric_family_name.clone(), m.r#type);
            }
        }
    }

    /// Read by every request at once; written only by metadata.
    fn known(&self) -> RwLockReadGuard<'_, HashMap<String, i32>> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a series is a counter, given a lookup of its family's type: a
/// counter itself, or the `_bucket`/`_sum`/`_count` of a histogram or summary.
fn counter_by_type(name: &str, type_of: impl Fn(&str) -> Option<i32>) -> bool {
    if type_of(name) == Some(TYPE_COUNTER) {
        return true;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .any(|suffix| name.strip_suffix(suffix).and_then(&type_of).is_some_and(|t| t == TYPE_HISTOGRAM || t == TYPE_SUMMARY))
}

/// The classic family kind of a metadata type.
fn family_kind(metric_type: Option<i32>) -> Option<FamilyKind> {
    match metric_type {
        Some(TYPE_HISTOGRAM) => Some(FamilyKind::Histogram),
        Some(TYPE_SUMMARY) => Some(FamilyKind::Summary),
        _ => None,
    }
}

/// The classic histogram or summary a series is part of, given the type of
/// the family it belongs to and that family's name: `F_bucket`, `F_sum`,
/// `F_count` of either, or `F` itself (a quantile) of a summary.
fn classic_family(name: &str, family: &str, kind: FamilyKind) -> Option<Family> {
    let part = match name.strip_prefix(family)? {
        "_bucket" => kind == FamilyKind::Histogram,
        "_sum" | "_count" => true,
        "" => kind == FamilyKind::Summary,
        _ => false,
    };
    part.then(|| Family { name: family.to_string(), kind })
}

pub fn decode_v1(request: v1::WriteRequest, types: &Types) -> Result<Decoded, String> {
    types.learn(&request.metadata);
    let known = types.known();
    let mut out = Decoded::default();
    for series in request.timeseries {
        let labels: Vec<(String, String)> = series.labels.into_iter().map(|l| (l.name, l.value)).collect();
        let (name, tags) = split_labels(labels)?;
        let type_of = |family: &str| known.get(family).copied();
        let counter = counter_by_type(&name, type_of);
        // 1.0 metadata is by family name: try the name, then without its suffix.
        let stem = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s));
        let family = [Some(name.as_str()), stem]
            .into_iter()
            .flatten()
            .find_map(|f| family_kind(type_of(f)).and_then(|kind| classic_family(&name, f, kind)));
        let exemplars = series
            .exemplars
            .into_iter()
            .map(|e| exemplar(e.value, e.timestamp, e.labels.into_iter().map(|l| (l.name, l.value)).collect()))
            .collect();
        push_series(&mut out, Series { name, tags, counter, family }, series.samples, series.histograms, exemplars)?;
    }
    Ok(out)
}

pub fn decode_v2(request: v2::Request) -> Result<Decoded, String> {
    let symbols = &request.symbols;
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err("symbols must start with the empty string".into());
    }
    let pairs = |refs: &[u32]| -> Result<Vec<(String, String)>, String> {
        if !refs.len().is_multiple_of(2) {
            return Err(format!("labels_refs has an odd length ({})", refs.len()));
        }
        let symbol =
            |r: u32| symbols.get(r as usize).cloned().ok_or_else(|| format!("symbol reference {r} is past the {} symbols", symbols.len()));
        refs.chunks(2).map(|pair| Ok((symbol(pair[0])?, symbol(pair[1])?))).collect()
    };
    let mut out = Decoded::default();
    for series in request.timeseries {
        let (name, tags) = split_labels(pairs(&series.labels_refs)?)?;
        // 2.0 gives the family's type on each series, a histogram's `_bucket` series included.
        let family_type = series.metadata.as_ref().map(|m| m.r#type);
        let counter = counter_by_type(&name, |_| family_type);
        // The type is that of the series' family: `F_sum`'s is F's.
        let stem = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        let family = family_kind(family_type).and_then(|kind| classic_family(&name, stem, kind));
        let mut exemplars = Vec::with_capacity(series.exemplars.len());
        for e in &series.exemplars {
            exemplars.push(exemplar(e.value, e.timestamp, pairs(&e.labels_refs)?));
        }
        push_series(&mut out, Series { name, tags, counter, family }, series.samples, series.histograms, exemplars)?;
    }
    Ok(out)
}

/// `__name__` and the other labels, after the spec's checks.
fn split_labels(labels: Vec<(String, String)>) -> Result<(String, BTreeMap<String, String>), String> {
    let show = || format!("{{{}}}", labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect::<Vec<_>>().join(", "));
    for pair in labels.windows(2) {
        if pair[0].0 >= pair[1].0 {
            let why = if pair[0].0 == pair[1].0 { "duplicate" } else { "unsorted" };
            return Err(format!("series {}: {why} label `{}` (labels must be sorted by name and unique)", show(), pair[1].0));
        }
    }
    if labels.iter().any(|(n, _)| n.is_empty()) {
        return Err(format!("series {}: a label has an empty name", show()));
    }
    if !labels.iter().any(|(n, v)| n == "__name__" && !v.is_empty()) {
        return Err(format!("series {}: no `__name__` label", show()));
    }
    let mut name = String::new();
    let mut tags = BTreeMap::new();
    for (n, v) in labels {
        if n == "__name__" {
            name = v;
        } else {
            tags.insert(n, v);
        }
    }
    Ok((name, tags))
}

fn time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

fn exemplar(value: f64, timestamp: i64, labels: Vec<(String, String)>) -> Exemplar {
    Exemplar { value, timestamp: (timestamp != 0).then(|| time(timestamp)).flatten(), labels: labels.into_iter().collect() }
}

/// One event per sample and per native histogram; the series' exemplars go
/// with its last event, which also takes the name and tags without a copy.
/// One series: its name and labels, what its samples are, and the classic family it is part of.
struct Series {
    name: String,
    tags: BTreeMap<String, String>,
    counter: bool,
    family: Option<Family>,
}

fn push_series(
    out: &mut Decoded,
    Series { name, tags, counter, family }: Series,
    samples: Vec<proto::Sample>,
    histograms: Vec<Histogram>,
    exemplars: Vec<Exemplar>,
) -> Result<(), String> {
    let mut points = Vec::with_capacity(samples.len() + histograms.len());
    for sample in samples {
        if sample.value.to_bits() == STALE_NAN {
            continue;
        }
        let value = if counter { MetricValue::Counter { value: sample.value } } else { MetricValue::Gauge { value: sample.value } };
        points.push((value, time(sample.timestamp)));
        out.samples += 1;
    }
    for histogram in histograms {
        let buckets = native_buckets(&histogram).map_err(|e| format!("series {name}: {e}"))?;
        let count = match histogram.count {
            Some(Count::Int(n)) => n,
            Some(Count::Float(n)) => n.max(0.0).round() as u64,
            None => 0,
        };
        points.push((MetricValue::Histogram { buckets, count, sum: histogram.sum }, time(histogram.timestamp)));
        out.histograms += 1;
    }
    let Some(last) = points.pop() else { return Ok(()) };
    let event = |name: String,
                 tags: BTreeMap<String, String>,
                 (value, timestamp): (MetricValue, Option<DateTime<Utc>>),
                 exemplars: Vec<Exemplar>| {
        let mut metric = Metric::new(name, MetricKind::Absolute, value);
        metric.tags = tags;
        metric.timestamp = timestamp;
        metric.exemplars = exemplars;
        metric.family = family.clone();
        Event::metric(metric)
    };
    for point in points {
        out.events.push(event(name.clone(), tags.clone(), point, Vec::new()));
    }
    out.exemplars += exemplars.len();
    out.events.push(event(name, tags, last, exemplars));
    Ok(())
}

/// A native histogram's buckets with explicit upper bounds, ascending,
/// non-cumulative, ending at +Inf. At schema s, bucket i of base 2^(2^-s)
/// covers (base^(i-1), base^i]; negative buckets mirror them; schema -53
/// takes its bounds from `custom_values`.
fn native_buckets(h: &Histogram) -> Result<Vec<Bucket>, String> {
    let custom = h.schema == -53;
    if !custom && !(-4..=8).contains(&h.schema) {
        return Err(format!("unknown native histogram schema {}", h.schema));
    }
    let base = 2f64.powf(2f64.powi(-h.schema));
    let mut buckets = Vec::new();
    for (index, count) in indexed_counts(&h.negative_spans, &h.negative_deltas, &h.negative_counts)?.into_iter().rev() {
        buckets.push(Bucket { upper_limit: -base.powi(index - 1), count });
    }
    if !custom {
        let zero = match h.zero_count {
            Some(ZeroCount::Int(n)) => n,
            Some(ZeroCount::Float(n)) => n.max(0.0).round() as u64,
            None => 0,
        };
        buckets.push(Bucket { upper_limit: h.zero_threshold, count: zero });
    }
    for (index, count) in indexed_counts(&h.positive_spans, &h.positive_deltas, &h.positive_counts)? {
        let upper_limit = if custom {
            match usize::try_from(index).ok().map(|i| (i, h.custom_values.get(i))) {
                Some((_, Some(bound))) => *bound,
                Some((i, None)) if i == h.custom_values.len() => f64::INFINITY,
                _ => return Err(format!("bucket {index} is past the {} custom bounds", h.custom_values.len())),
            }
        } else {
            base.powi(index)
        };
        buckets.push(Bucket { upper_limit, count });
    }
    if buckets.last().is_none_or(|b| b.upper_limit != f64::INFINITY) {
        let total = match h.count {
            Some(Count::Int(n)) => n,
            Some(Count::Float(n)) => n.max(0.0).round() as u64,
            None => 0,
        };
        let counted: u64 = buckets.iter().map(|b| b.count).sum();
        buckets.push(Bucket { upper_limit: f64::INFINITY, count: total.saturating_sub(counted) });
    }
    Ok(buckets)
}

/// The (bucket index, count) pairs that spans and deltas (or float counts) describe.
fn indexed_counts(spans: &[proto::BucketSpan], deltas: &[i64], floats: &[f64]) -> Result<Vec<(i32, u64)>, String> {
    let total: usize = spans.iter().map(|s| s.length as usize).sum();
    let given = if floats.is_empty() { deltas.len() } else { floats.len() };
    if total != given {
        return Err(format!("the spans cover {total} buckets but {given} counts are given"));
    }
    let mut out = Vec::with_capacity(total);
    let (mut index, mut running, mut position) = (0i32, 0i64, 0usize);
    for (n, span) in spans.iter().enumerate() {
        index = if n == 0 { span.offset } else { index + span.offset };
        for _ in 0..span.length {
            let count = if floats.is_empty() {
                running += deltas[position];
                u64::try_from(running).map_err(|_| format!("bucket {index} has a negative count ({running})"))?
            } else {
                floats[position].max(0.0).round() as u64
            };
            out.push((index, count));
            index += 1;
            position += 1;
        }
    }
    Ok(out)
}

/// A valid Prometheus name, `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names without
/// `:`): any other character becomes `_`, and a leading digit gets a `_` before it.
pub fn sanitize(name: &str, colon: bool) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') { c } else { '_' }).collect();
    if !out.starts_with(|c: char| !c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A float as Go's Prometheus clients write it (`%g`, shortest): `+Inf`,
/// `-Inf`, `NaN`, and an exponent from 1e+06 up and below 1e-04, so that
/// `le` and `quantile` values match theirs.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Rust's `{:e}` gives the shortest digits and the exponent: `1.5e-7`, `1e6`.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else { return scientific };
    match exponent.parse::<i32>() {
        Ok(exponent) if !(-4..6).contains(&exponent) => format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs()),
        _ => value.to_string(),
    }
}

/// A metric's name as Prometheus sees it: `namespace_name` (an empty
/// namespace is none), sanitized.
pub fn full_name(metric: &Metric, default_namespace: Option<&str>) -> String {
    match metric.namespace.as_deref().or(default_namespace).filter(|n| !n.is_empty()) {
        Some(namespace) => sanitize(&format!("{namespace}_{}", metric.name), true),
        None => sanitize(&metric.name, true),
    }
}

/// Metric events as one remote write 1.0 request: one series per name and
/// label set, its samples in time order; histograms and summaries as their
/// classic series (`_bucket` with cumulative counts and `le`, `quantile`,
/// `_sum`, `_count`); each family's type as metadata. Metrics without a time
/// get `now_ms`. Distributions have no such form: the caller refuses them.
pub fn encode_v1<'a>(metrics: impl IntoIterator<Item = &'a Metric>, default_namespace: Option<&str>, now_ms: i64) -> v1::WriteRequest {
    let mut series: BTreeMap<Vec<(String, String)>, Vec<proto::Sample>> = BTreeMap::new();
    let mut families: BTreeMap<String, i32> = BTreeMap::new();
    for metric in metrics {
        let name = full_name(metric, default_namespace);
        let timestamp = metric.timestamp.map_or(now_ms, |t| t.timestamp_millis());
        let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
            let mut labels: Vec<(String, String)> = metric.tags.iter().map(|(k, v)| (sanitize(k, false), v.clone())).collect();
            labels.extend(extra.map(|(k, v)| (k.to_owned(), v)));
            labels.push(("__name__".into(), format!("{name}{suffix}")));
            // Sorted and unique, as the spec asks (a sanitized tag may collide).
            labels.sort_by(|a, b| a.0.cmp(&b.0));
            labels.dedup_by(|a, b| a.0 == b.0);
            series.entry(labels).or_default().push(proto::Sample { value, timestamp });
        };
        let family_type = match &metric.value {
            MetricValue::Counter { value } => {
                push("", None, *value);
                TYPE_COUNTER
            }
            MetricValue::Gauge { value } => {
                push("", None, *value);
                TYPE_GAUGE
            }
            MetricValue::Histogram { buckets, count, sum } => {
                let mut cumulative = 0;
                for bucket in buckets {
                    cumulative += bucket.count;
                    push("_bucket", Some(("le", format_float(bucket.upper_limit))), cumulative as f64);
                }
                if buckets.last().is_none_or(|b| b.upper_limit != f64::INFINITY) {
                    push("_bucket", Some(("le", "+Inf".into())), *count as f64);
                }
                push("_sum", None, *sum);
                push("_count", None, *count as f64);
                TYPE_HISTOGRAM
            }
            MetricValue::Summary { quantiles, count, sum } => {
                for q in quantiles {
                    push("", Some(("quantile", format_float(q.quantile))), q.value);
                }
                push("_sum", None, *sum);
                push("_count", None, *count as f64);
                TYPE_SUMMARY
            }
            // Prometheus has no set: its number of values, as a gauge.
            MetricValue::Set { values } => {
                push("", None, values.len() as f64);
                TYPE_GAUGE
            }
            MetricValue::Distribution { .. } => continue,
        };
        families.insert(name, family_type);
    }
    let timeseries = series
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|s| s.timestamp);
            v1::TimeSeries {
                labels: labels.into_iter().map(|(name, value)| v1::Label { name, value }).collect(),
                samples,
                ..Default::default()
            }
        })
        .collect();
    let metadata = families
        .into_iter()
        .map(|(metric_family_name, r#type)| v1::MetricMetadata { r#type, metric_family_name, ..Default::default() })
        .collect();
    v1::WriteRequest { timeseries, metadata }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::BucketSpan;

    fn label(name: &str, value: &str) -> v1::Label {
        v1::Label { name: name.into(), value: value.into() }
    }

    #[test]
    fn labels_must_be_sorted_unique_and_named() {
        let request = |labels: Vec<v1::Label>| v1::WriteRequest {
            timeseries: vec![v1::TimeSeries { labels, samples: vec![proto::Sample { value: 1.0, timestamp: 1 }], ..Default::default() }],
            metadata: vec![],
        };
        let types = Types::default();
        assert!(decode_v1(request(vec![label("__name__", "up"), label("job", "x")]), &types).is_ok());
        let unsorted = decode_v1(request(vec![label("job", "x"), label("__name__", "up")]), &types).unwrap_err();
        assert!(unsorted.contains("unsorted label `__name__`"), "{unsorted}");
        assert!(decode_v1(request(vec![label("__name__", "up"), label("a", "1"), label("a", "2")]), &types)
            .unwrap_err()
            .contains("duplicate label `a`"));
        assert!(decode_v1(request(vec![label("job", "x")]), &types).unwrap_err().contains("no `__name__`"));
    }

    #[test]
    fn metadata_makes_counters() {
        let types = Types::default();
        types.learn(&[
            v1::MetricMetadata { r#type: TYPE_COUNTER, metric_family_name: "requests_total".into(), ..Default::default() },
            v1::MetricMetadata { r#type: TYPE_HISTOGRAM, metric_family_name: "latency".into(), ..Default::default() },
        ]);
        let known = types.known();
        let is_counter = |name: &str| counter_by_type(name, |family| known.get(family).copied());
        assert!(is_counter("requests_total") && is_counter("latency_bucket") && is_counter("latency_count"));
        assert!(!is_counter("latency") && !is_counter("temperature"));
    }

    #[test]
    fn encoded_series_are_sorted_and_classic() {
        let mut latency = Metric::new(
            "latency.ms",
            MetricKind::Absolute,
            MetricValue::Histogram {
                buckets: vec![Bucket { upper_limit: 10.0, count: 2 }, Bucket { upper_limit: 100.0, count: 3 }],
                count: 6,
                sum: 300.0,
            },
        );
        latency.tags.insert("Zone".into(), "eu".into());
        latency.timestamp = time(1_000);
        let request = encode_v1([&latency], Some("kong"), 5);
        let series: Vec<(String, f64)> = request
            .timeseries
            .iter()
            .map(|s| (s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect::<Vec<_>>().join(","), s.samples[0].value))
            .collect();
        // `Zone` sorts before `__name__` (bytes), and `le` after it.
        assert_eq!(
            series,
            [
                ("Zone=eu,__name__=kong_latency_ms_bucket,le=+Inf".to_string(), 6.0),
                ("Zone=eu,__name__=kong_latency_ms_bucket,le=10".to_string(), 2.0),
                ("Zone=eu,__name__=kong_latency_ms_bucket,le=100".to_string(), 5.0),
                ("Zone=eu,__name__=kong_latency_ms_count".to_string(), 6.0),
                ("Zone=eu,__name__=kong_latency_ms_sum".to_string(), 300.0),
            ]
        );
        assert_eq!(request.timeseries[0].samples[0].timestamp, 1_000);
        assert_eq!(request.metadata[0].metric_family_name, "kong_latency_ms");
        assert_eq!(request.metadata[0].r#type, TYPE_HISTOGRAM);
        assert_eq!(format_float(1e6), "1e+06");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(sanitize("9http.requests", true), "_9http_requests");
    }

    #[test]
    fn a_set_is_written_as_a_gauge_of_its_size() {
        let values = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(String::from).into();
        let clients = Metric::new("clients", MetricKind::Incremental, MetricValue::Set { values });
        let request = encode_v1([&clients], None, 5);
        assert_eq!(request.timeseries[0].samples[0].value, 3.0);
        assert_eq!((request.metadata[0].metric_family_name.as_str(), request.metadata[0].r#type), ("clients", TYPE_GAUGE));
    }

    #[test]
    fn native_histogram_buckets() {
        // Schema 0 (base 2): positive buckets 1 and 2 ((1,2], (2,4]) then, after a gap of 1, bucket 4 ((8,16]).
        let h = Histogram {
            count: Some(Count::Int(12)),
            sum: 50.0,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(ZeroCount::Int(1)),
            positive_spans: vec![BucketSpan { offset: 1, length: 2 }, BucketSpan { offset: 1, length: 1 }],
            positive_deltas: vec![3, 1, -2],
            negative_spans: vec![BucketSpan { offset: 0, length: 1 }],
            negative_deltas: vec![2],
            ..Default::default()
        };
        let buckets: Vec<(f64, u64)> = native_buckets(&h).unwrap().iter().map(|b| (b.upper_limit, b.count)).collect();
        assert_eq!(buckets, vec![(-0.5, 2), (0.001, 1), (2.0, 3), (4.0, 4), (16.0, 2), (f64::INFINITY, 0)]);
        let custom = Histogram {
            count: Some(Count::Float(5.0)),
            schema: -53,
            custom_values: vec![0.1, 1.0],
            positive_spans: vec![BucketSpan { offset: 0, length: 3 }],
            positive_counts: vec![1.0, 3.0, 1.0],
            ..Default::default()
        };
        let buckets: Vec<(f64, u64)> = native_buckets(&custom).unwrap().iter().map(|b| (b.upper_limit, b.count)).collect();
        assert_eq!(buckets, vec![(0.1, 1), (1.0, 3), (f64::INFINITY, 1)]);
        let short = Histogram { positive_spans: vec![BucketSpan { offset: 0, length: 3 }], positive_deltas: vec![1], ..Default::default() };
        assert!(native_buckets(&short).unwrap_err().contains("cover 3 buckets but 1"));
    }
}
