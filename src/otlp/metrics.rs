//! Metrics: OTLP ⇄ `Metric` events.
//!
//! One event per data point. Its tags are the point's attributes, plus the
//! resource's as `resource.<key>` and the scope as `scope.name` /
//! `scope.version` (values as text), so that a sink can rebuild both.
//! Temporality maps to the kind: delta → incremental, cumulative → absolute.
//! A monotonic sum is a counter, any other sum a gauge; an exponential
//! histogram becomes a histogram with its bucket bounds computed. Exemplars
//! are kept, their trace and span ids as `trace_id` / `span_id` labels.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, summary_data_point::ValueAtQuantile, AggregationTemporality, Exemplar as ProtoExemplar,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric as ProtoMetric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint,
};

use super::{from_hex, hex, id, key_value, value_from_any, Decoded, Groups, Scope};
use crate::event::{Bucket, Event, EventData, Exemplar, Metric, MetricKind, MetricValue, Quantile};

const RESOURCE: &str = "resource.";
const SCOPE_NAME: &str = "scope.name";
const SCOPE_VERSION: &str = "scope.version";

pub fn decode(request: ExportMetricsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for resource_metrics in request.resource_metrics {
        let mut common = BTreeMap::new();
        for kv in resource_metrics.resource.map(|r| r.attributes).unwrap_or_default() {
            common.insert(format!("{RESOURCE}{}", kv.key), text(kv.value));
        }
        for scope_metrics in resource_metrics.scope_metrics {
            let mut tags = common.clone();
            if let Some(scope) = scope_metrics.scope {
                if !scope.name.is_empty() {
                    tags.insert(SCOPE_NAME.into(), scope.name);
                }
                if !scope.version.is_empty() {
                    tags.insert(SCOPE_VERSION.into(), scope.version);
                }
            }
            for metric in scope_metrics.metrics {
                decode_metric(metric, &tags, &mut out);
            }
        }
    }
    out
}

pub fn response(decoded: &Decoded) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (decoded.rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: decoded.rejected as i64,
            error_message: decoded.error.clone().unwrap_or_default(),
        }),
    }
}

fn decode_metric(metric: ProtoMetric, tags: &BTreeMap<String, String>, out: &mut Decoded) {
    let name = metric.name;
    if name.is_empty() {
        out.reject(|| "a metric has no name".into());
        return;
    }
    let event = |attributes: Vec<KeyValue>, time: u64, exemplars: &[ProtoExemplar], kind: MetricKind, value: MetricValue| {
        let mut metric = Metric::new(name.clone(), kind, value);
        metric.tags = tags.clone();
        for kv in attributes {
            metric.tags.insert(kv.key, text(kv.value));
        }
        metric.timestamp = nanos_to_time(time);
        metric.exemplars = exemplars.iter().map(exemplar_from_proto).collect();
        Event::metric(metric)
    };
    match metric.data {
        None => out.reject(|| format!("metric `{name}` has no data (gauge, sum, histogram, exponential histogram or summary)")),
        Some(Data::Gauge(Gauge { data_points })) => {
            for point in data_points {
                match number(&point) {
                    Some(value) => out.events.push(event(
                        point.attributes,
                        point.time_unix_nano,
                        &point.exemplars,
                        MetricKind::Absolute,
                        MetricValue::Gauge { value },
                    )),
                    None => out.reject(|| format!("gauge `{name}`: a data point has no value")),
                }
            }
        }
        Some(Data::Sum(Sum { data_points, aggregation_temporality, is_monotonic })) => {
            let kind = kind(aggregation_temporality);
            for point in data_points {
                let Some(value) = number(&point) else {
                    out.reject(|| format!("sum `{name}`: a data point has no value"));
                    continue;
                };
                let value = if is_monotonic { MetricValue::Counter { value } } else { MetricValue::Gauge { value } };
                out.events.push(event(point.attributes, point.time_unix_nano, &point.exemplars, kind, value));
            }
        }
        Some(Data::Histogram(Histogram { data_points, aggregation_temporality })) => {
            let kind = kind(aggregation_temporality);
            for point in data_points {
                // One more count than bounds: the last bucket is (last bound, +Inf].
                if point.bucket_counts.len() != point.explicit_bounds.len() + 1 && !point.bucket_counts.is_empty() {
                    out.reject(|| {
                        format!(
                            "histogram `{name}`: {} bucket counts for {} bounds (want one more count than bounds)",
                            point.bucket_counts.len(),
                            point.explicit_bounds.len()
                        )
                    });
                    continue;
                }
                let upper = point.explicit_bounds.iter().copied().chain(std::iter::once(f64::INFINITY));
                let buckets = upper.zip(&point.bucket_counts).map(|(upper_limit, &count)| Bucket { upper_limit, count }).collect();
                let value = MetricValue::Histogram { buckets, count: point.count, sum: point.sum.unwrap_or(0.0) };
                out.events.push(event(point.attributes, point.time_unix_nano, &point.exemplars, kind, value));
            }
        }
        Some(Data::ExponentialHistogram(histogram)) => {
            let kind = kind(histogram.aggregation_temporality);
            for point in histogram.data_points {
                let value =
                    MetricValue::Histogram { buckets: exponential_buckets(&point), count: point.count, sum: point.sum.unwrap_or(0.0) };
                out.events.push(event(point.attributes, point.time_unix_nano, &point.exemplars, kind, value));
            }
        }
        Some(Data::Summary(Summary { data_points })) => {
            for point in data_points {
                let quantiles = point.quantile_values.iter().map(|q| Quantile { quantile: q.quantile, value: q.value }).collect();
                let value = MetricValue::Summary { quantiles, count: point.count, sum: point.sum };
                out.events.push(event(point.attributes, point.time_unix_nano, &[], MetricKind::Absolute, value));
            }
        }
    }
}

fn nanos_to_time(nanos: u64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| DateTime::<Utc>::from_timestamp_nanos(nanos as i64))
}

fn time_to_nanos(time: DateTime<Utc>) -> u64 {
    time.timestamp_nanos_opt().unwrap_or_default().max(0) as u64
}

/// An OTLP exemplar: its filtered attributes as labels, its trace and span
/// ids as the `trace_id` / `span_id` labels (Prometheus's convention).
fn exemplar_from_proto(e: &ProtoExemplar) -> Exemplar {
    let mut labels: BTreeMap<String, String> = e.filtered_attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.clone()))).collect();
    if let Some(id) = id::<16>(&e.trace_id) {
        labels.insert(TRACE_ID.into(), hex(&id));
    }
    if let Some(id) = id::<8>(&e.span_id) {
        labels.insert(SPAN_ID.into(), hex(&id));
    }
    let value = match e.value {
        Some(exemplar::Value::AsDouble(v)) => v,
        Some(exemplar::Value::AsInt(v)) => v as f64,
        None => 0.0,
    };
    Exemplar { value, timestamp: nanos_to_time(e.time_unix_nano), labels }
}

fn exemplar_to_proto(e: &Exemplar) -> ProtoExemplar {
    let trace_id = e.labels.get(TRACE_ID).and_then(|t| from_hex::<16>(t));
    let span_id = e.labels.get(SPAN_ID).and_then(|s| from_hex::<8>(s));
    let is_id = |key: &str| (key == TRACE_ID && trace_id.is_some()) || (key == SPAN_ID && span_id.is_some());
    ProtoExemplar {
        filtered_attributes: e
            .labels
            .iter()
            .filter(|(k, _)| !is_id(k))
            .map(|(k, v)| key_value(k.clone(), AnyValue { value: Some(any_value::Value::StringValue(v.clone())) }))
            .collect(),
        time_unix_nano: e.timestamp.map(time_to_nanos).unwrap_or_default(),
        value: Some(exemplar::Value::AsDouble(e.value)),
        trace_id: trace_id.map(|id| id.to_vec()).unwrap_or_default(),
        span_id: span_id.map(|id| id.to_vec()).unwrap_or_default(),
    }
}

const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";

fn number(point: &NumberDataPoint) -> Option<f64> {
    match point.value? {
        number_data_point::Value::AsDouble(v) => Some(v),
        number_data_point::Value::AsInt(v) => Some(v as f64),
    }
}

fn kind(temporality: i32) -> MetricKind {
    if temporality == AggregationTemporality::Delta as i32 {
        MetricKind::Incremental
    } else {
        MetricKind::Absolute
    }
}

/// An attribute value as a tag: text as it is, anything else as VRL prints it.
fn text(value: Option<AnyValue>) -> String {
    match value.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => s,
        other => value_from_any(Some(AnyValue { value: other })).to_string_lossy().into_owned(),
    }
}

/// The buckets of an exponential histogram with explicit upper bounds, in
/// ascending order: negative buckets, the zero bucket, positive buckets. At
/// scale s a bucket of index i covers (base^i, base^(i+1)], base = 2^(2^-s).
fn exponential_buckets(point: &ExponentialHistogramDataPoint) -> Vec<Bucket> {
    let base = 2f64.powf(2f64.powi(-point.scale));
    let mut buckets = Vec::new();
    if let Some(negative) = &point.negative {
        for (i, &count) in negative.bucket_counts.iter().enumerate().rev() {
            buckets.push(Bucket { upper_limit: -base.powi(negative.offset + i as i32), count });
        }
    }
    if point.zero_count > 0 || point.positive.is_some() || point.negative.is_some() {
        buckets.push(Bucket { upper_limit: point.zero_threshold, count: point.zero_count });
    }
    if let Some(positive) = &point.positive {
        for (i, &count) in positive.bucket_counts.iter().enumerate() {
            buckets.push(Bucket { upper_limit: base.powi(positive.offset + i as i32 + 1), count });
        }
    }
    // Like every histogram here, it ends at +Inf (empty unless the counts disagree).
    let counted: u64 = buckets.iter().map(|b| b.count).sum();
    buckets.push(Bucket { upper_limit: f64::INFINITY, count: point.count.saturating_sub(counted) });
    buckets
}

/// The metrics among `events`, one data point each. Distributions are left
/// out: the caller refuses them first (see `encodable`).
pub fn encode<'a>(events: impl IntoIterator<Item = &'a Event>) -> ExportMetricsServiceRequest {
    let mut groups = Groups::new();
    for event in events {
        if let EventData::Metric(metric) = &event.data {
            let (resource, scope, attributes) = split_tags(metric);
            if let Some(encoded) = metric_to_proto(metric, attributes) {
                groups.push(resource, scope, encoded);
            }
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: groups
            .groups
            .into_iter()
            .map(|(resource, scopes)| ResourceMetrics {
                resource: super::resource(&resource),
                scope_metrics: scopes
                    .into_iter()
                    .map(|(scope, metrics)| ScopeMetrics { scope: scope.to_proto(), metrics, schema_url: String::new() })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// Whether a metric has an OTLP form (a distribution of raw samples has none).
pub fn encodable(metric: &Metric) -> bool {
    !matches!(metric.value, MetricValue::Distribution { .. })
}

/// Tags back into resource attributes, scope and point attributes.
fn split_tags(metric: &Metric) -> (crate::event::ObjectMap, Scope, Vec<KeyValue>) {
    let mut resource = crate::event::ObjectMap::new();
    let mut scope = Scope::default();
    let mut attributes = Vec::new();
    for (key, value) in &metric.tags {
        if let Some(key) = key.strip_prefix(RESOURCE) {
            resource.insert(key.into(), value.as_str().into());
        } else if key == SCOPE_NAME {
            scope.name = value.clone();
        } else if key == SCOPE_VERSION {
            scope.version = value.clone();
        } else {
            attributes.push(key_value(key.clone(), AnyValue { value: Some(any_value::Value::StringValue(value.clone())) }));
        }
    }
    (resource, scope, attributes)
}

/// One metric as one data point with the given attributes.
fn metric_to_proto(metric: &Metric, attributes: Vec<KeyValue>) -> Option<ProtoMetric> {
    let time_unix_nano = time_to_nanos(metric.timestamp.unwrap_or_else(Utc::now));
    let exemplars: Vec<ProtoExemplar> = metric.exemplars.iter().map(exemplar_to_proto).collect();
    let temporality = match metric.kind {
        MetricKind::Incremental => AggregationTemporality::Delta,
        MetricKind::Absolute => AggregationTemporality::Cumulative,
    } as i32;
    let number = |value: f64| NumberDataPoint {
        attributes: attributes.clone(),
        time_unix_nano,
        exemplars: exemplars.clone(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    let data = match &metric.value {
        MetricValue::Counter { value } => {
            Data::Sum(Sum { data_points: vec![number(*value)], aggregation_temporality: temporality, is_monotonic: true })
        }
        MetricValue::Gauge { value } if metric.kind == MetricKind::Absolute => Data::Gauge(Gauge { data_points: vec![number(*value)] }),
        MetricValue::Gauge { value } => {
            Data::Sum(Sum { data_points: vec![number(*value)], aggregation_temporality: temporality, is_monotonic: false })
        }
        MetricValue::Histogram { buckets, count, sum } => {
            let mut explicit_bounds: Vec<f64> = buckets.iter().map(|b| b.upper_limit).collect();
            let mut bucket_counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
            // OTLP's last bucket is implicit (+Inf): drop its bound, or add it.
            if explicit_bounds.last() == Some(&f64::INFINITY) {
                explicit_bounds.pop();
            } else {
                bucket_counts.push(count.saturating_sub(bucket_counts.iter().sum()));
            }
            let point = HistogramDataPoint {
                attributes,
                time_unix_nano,
                count: *count,
                sum: Some(*sum),
                bucket_counts,
                explicit_bounds,
                exemplars,
                ..Default::default()
            };
            Data::Histogram(Histogram { data_points: vec![point], aggregation_temporality: temporality })
        }
        MetricValue::Summary { quantiles, count, sum } => {
            let quantile_values = quantiles.iter().map(|q| ValueAtQuantile { quantile: q.quantile, value: q.value }).collect();
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes,
                    time_unix_nano,
                    count: *count,
                    sum: *sum,
                    quantile_values,
                    ..Default::default()
                }],
            })
        }
        // OTLP has no set: its number of values, as a gauge.
        MetricValue::Set { values } => Data::Gauge(Gauge { data_points: vec![number(values.len() as f64)] }),
        MetricValue::Distribution { .. } => return None,
    };
    let name = match &metric.namespace {
        Some(namespace) => format!("{namespace}_{}", metric.name),
        None => metric.name.clone(),
    };
    Some(ProtoMetric { name, data: Some(data), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;

    #[test]
    fn exponential_histogram_bounds() {
        // Scale 0: base 2. Positive offset 1: buckets (2,4], (4,8]; negative offset 0: [-2,-1).
        let point = ExponentialHistogramDataPoint {
            scale: 0,
            zero_count: 1,
            positive: Some(Buckets { offset: 1, bucket_counts: vec![3, 4] }),
            negative: Some(Buckets { offset: 0, bucket_counts: vec![2] }),
            count: 10,
            ..Default::default()
        };
        let buckets: Vec<(f64, u64)> = exponential_buckets(&point).iter().map(|b| (b.upper_limit, b.count)).collect();
        assert_eq!(buckets, vec![(-1.0, 2), (0.0, 1), (4.0, 3), (8.0, 4), (f64::INFINITY, 0)]);
    }

    #[test]
    fn histogram_without_infinite_bucket_gets_one() {
        let metric = Metric::new(
            "latency",
            MetricKind::Absolute,
            MetricValue::Histogram { buckets: vec![Bucket { upper_limit: 10.0, count: 2 }], count: 5, sum: 40.0 },
        );
        let Some(Data::Histogram(h)) = metric_to_proto(&metric, Vec::new()).and_then(|m| m.data) else { panic!("not a histogram") };
        assert_eq!(h.data_points[0].explicit_bounds, vec![10.0]);
        assert_eq!(h.data_points[0].bucket_counts, vec![2, 3]);
    }

    #[test]
    fn a_set_is_a_gauge_of_its_size() {
        let values = ["a", "b"].map(String::from).into();
        let metric = Metric::new("users", MetricKind::Incremental, MetricValue::Set { values });
        let Some(Data::Gauge(g)) = metric_to_proto(&metric, Vec::new()).and_then(|m| m.data) else { panic!("not a gauge") };
        assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(2.0)));
    }
}
