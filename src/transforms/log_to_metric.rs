//! `log_to_metric`: Vector's transform that derives metrics from each log,
//! one per entry of `metrics`: a counter (1 per log, or the field's value
//! with `increment_by_value`), a gauge (absolute), a histogram or summary
//! sample (an incremental distribution of one sample), or a set (the field's
//! value as text, an incremental set of one value). Names, namespaces,
//! tag names and tag values are templates; a tag name ending in `*` takes a
//! whole object (`"*" = "{{ labels }}"`), one tag per key.
//!
//! All or none, as in Vector: when a log lacks a metric's field (or holds
//! null, or text that is not a number), or a name does not render, none of
//! its metrics is made; the log is counted as an error and a discarded event
//! and logged (at most once per 10 s per kind of failure). A tag that does not
//! render is left out and counted as an error, and the metric is made.
//!
//! Metrics carry the log's `timestamp` when it is a timestamp (a request
//! record's `time`), else the time they were made. Request records are read
//! by field name, without conversion.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use vrl::path::OwnedValuePath;

use super::util::value_path;
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{Event, EventBatch, EventData, Kinds, Metric, MetricKind, MetricValue, Statistic, Value};
use crate::telemetry::LogLimiter;
use crate::template::{self, Template};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogToMetricConfig {
    pub metrics: Vec<MetricConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    #[serde(rename = "type")]
    pub metric_type: MetricType,
    /// The field whose value makes the metric.
    pub field: String,
    /// A template; the field's name when absent.
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Tag name → value, both templates.
    pub tags: Option<BTreeMap<String, String>>,
    /// Counters: add the field's value rather than 1.
    pub increment_by_value: Option<bool>,
    /// Counters: `incremental` (the default) or `absolute`.
    pub kind: Option<CounterKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Set,
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    Incremental,
    Absolute,
}

impl TransformConfig for LogToMetricConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::METRIC)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        if self.metrics.is_empty() {
            return Err("`metrics` lists no metric".into());
        }
        let metrics = self
            .metrics
            .iter()
            .enumerate()
            .map(|(n, m)| Spec::new(m).map_err(|e| format!("`metrics[{n}]`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Box::new(LogToMetric { metrics, log: LogLimiter::new(Duration::from_secs(10)) }))
    }
}

/// One entry of `metrics`, compiled.
struct Spec {
    field: OwnedValuePath,
    written: String,
    name: Template,
    namespace: Option<Template>,
    tags: Vec<Tag>,
    make: Make,
}

struct Tag {
    name: Template,
    /// A name ending in `*`: the value is an object, one tag per key, named
    /// by this prefix and the key.
    expand: Option<String>,
    value: Template,
}

#[derive(Clone, Copy)]
enum Make {
    Counter {
        by_value: bool,
        kind: MetricKind,
    },
    Gauge,
    /// Histogram and summary: one sample of an incremental distribution.
    Sample(Statistic),
    /// The field's value, as text, in an incremental set.
    Set,
}

/// Why a log made no metrics.
#[derive(Clone, Copy)]
enum Failure {
    Missing,
    Null,
    NotANumber,
    Template,
    Expansion,
}

impl Spec {
    fn new(config: &MetricConfig) -> Result<Spec, String> {
        let counter_only = |set: bool, option: &str| match (set, config.metric_type) {
            (true, MetricType::Counter) | (false, _) => Ok(()),
            (true, _) => Err(format!("`{option}` applies to counters only")),
        };
        counter_only(config.increment_by_value.is_some(), "increment_by_value")?;
        counter_only(config.kind.is_some(), "kind")?;
        let make = match config.metric_type {
            MetricType::Counter => Make::Counter {
                by_value: config.increment_by_value.unwrap_or(false),
                kind: match config.kind.unwrap_or(CounterKind::Incremental) {
                    CounterKind::Incremental => MetricKind::Incremental,
                    CounterKind::Absolute => MetricKind::Absolute,
                },
            },
            MetricType::Gauge => Make::Gauge,
            MetricType::Histogram => Make::Sample(Statistic::Histogram),
            MetricType::Summary => Make::Sample(Statistic::Summary),
            MetricType::Set => Make::Set,
        };
        let template = |what: &str, text: &str| Template::parse(text).map_err(|e| format!("`{what}`: {e}"));
        let mut tags = Vec::new();
        for (name, value) in config.tags.iter().flatten() {
            let expand = name.strip_suffix('*').map(str::to_string);
            tags.push(Tag { name: template("tags", name)?, expand, value: template("tags", value)? });
        }
        // Tags named outright win over those an expansion makes.
        tags.sort_by_key(|tag| tag.expand.is_none());
        Ok(Spec {
            field: value_path(&config.field)?,
            written: config.field.clone(),
            name: template("name", config.name.as_deref().unwrap_or(&config.field))?,
            namespace: config.namespace.as_deref().map(|n| template("namespace", n)).transpose()?,
            tags,
            make,
        })
    }

    fn metric(&self, event: &Event, timestamp: DateTime<Utc>, tag_errors: &mut usize) -> Result<Metric, (Failure, String)> {
        let value = match template::field(event, &self.field) {
            None => return Err((Failure::Missing, format!("field `{}` is missing", self.written))),
            Some(value) if matches!(*value, Value::Null) => return Err((Failure::Null, format!("field `{}` is null", self.written))),
            Some(value) => value,
        };
        let number = || {
            value
                .to_string_lossy()
                .trim()
                .parse::<f64>()
                .map_err(|_| (Failure::NotANumber, format!("field `{}` is not a number: {}", self.written, value.to_string_lossy())))
        };
        let (kind, value) = match self.make {
            Make::Counter { by_value, kind } => (kind, MetricValue::Counter { value: if by_value { number()? } else { 1.0 } }),
            Make::Gauge => (MetricKind::Absolute, MetricValue::Gauge { value: number()? }),
            Make::Sample(statistic) => (MetricKind::Incremental, MetricValue::Distribution { samples: vec![(number()?, 1)], statistic }),
            Make::Set => (MetricKind::Incremental, MetricValue::Set { values: [value.to_string_lossy().into_owned()].into() }),
        };
        let name = self.name.render(event).map_err(|e| (Failure::Template, format!("`name`: {e}")))?;
        let mut metric = Metric::new(name, kind, value).with_timestamp(timestamp);
        if let Some(namespace) = &self.namespace {
            metric.namespace = Some(namespace.render(event).map_err(|e| (Failure::Template, format!("`namespace`: {e}")))?);
        }
        for tag in &self.tags {
            let (Ok(name), Ok(value)) = (tag.name.render(event), tag.value.render(event)) else {
                // As Vector: a tag that does not render is left out.
                *tag_errors += 1;
                continue;
            };
            match &tag.expand {
                None => {
                    metric.tags.insert(name, value);
                }
                Some(prefix) => {
                    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&value)
                        .map_err(|e| (Failure::Expansion, format!("tag `{name}`: the value is not an object ({e}): {value}")))?;
                    for (key, value) in object {
                        let value = Value::from(value);
                        if value != Value::Null {
                            metric.tags.insert(slug(&format!("{prefix}{key}")), value.to_string_lossy().into_owned());
                        }
                    }
                }
            }
        }
        Ok(metric)
    }
}

/// A tag name made from an object key, as Vector makes it: lowercase, and
/// anything but letters, digits and `_` as `_`.
fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect()
}

struct LogToMetric {
    metrics: Vec<Spec>,
    log: LogLimiter,
}

impl LogToMetric {
    fn run(&mut self, batch: EventBatch, now: DateTime<Utc>, out: &mut TransformOutput) {
        let mut made = Vec::with_capacity(self.metrics.len());
        for event in batch {
            let timestamp = match &event.data {
                EventData::Log(log) => match log.get(vrl::path!("timestamp")) {
                    Some(Value::Timestamp(t)) => *t,
                    _ => now,
                },
                EventData::Record(record) => record.time,
                _ => now,
            };
            made.clear();
            let mut tag_errors = 0;
            let failed = self.metrics.iter().try_for_each(|spec| spec.metric(&event, timestamp, &mut tag_errors).map(|m| made.push(m)));
            out.errors += tag_errors;
            match failed {
                Ok(()) => {
                    // The log's acknowledgements go with its metrics.
                    let mut metrics = made.drain(..).map(Event::metric).collect::<Vec<_>>();
                    if let Some(last) = metrics.last_mut() {
                        last.finalizers = event.finalizers;
                    }
                    out.primary.extend(metrics);
                }
                Err((failure, message)) => {
                    out.errors += 1;
                    out.discarded += 1;
                    if let Some(held_back) = self.log.allow(failure as u32) {
                        tracing::warn!(error = %message, held_back, "log_to_metric: no metrics made from a log; it is dropped");
                    }
                }
            }
        }
    }
}

impl Transform for LogToMetric {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        self.run(batch, Utc::now(), out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::RequestRecord;

    fn transform(config: &str) -> LogToMetric {
        let config: LogToMetricConfig = toml_edit::de::from_str(config).unwrap();
        let metrics = config.metrics.iter().map(|m| Spec::new(m).unwrap()).collect();
        LogToMetric { metrics, log: LogLimiter::new(Duration::from_secs(10)) }
    }

    /// The metrics made from `log`, their time checked to be when they were made (the
    /// documented outputs leave it out: Vector stamps them with the time too).
    fn run(t: &mut LogToMetric, log: serde_json::Value) -> (Vec<Metric>, TransformOutput) {
        let now = Utc::now();
        let mut out = TransformOutput::default();
        t.run(vec![Event::log(Value::from(log))], now, &mut out);
        let metrics = take_metrics(&mut out)
            .into_iter()
            .inspect(|m| assert_eq!(m.timestamp, Some(now)))
            .map(|m| Metric { timestamp: None, ..m })
            .collect();
        (metrics, out)
    }

    fn take_metrics(out: &mut TransformOutput) -> Vec<Metric> {
        out.primary
            .drain(..)
            .map(|e| match e.data {
                EventData::Metric(m) => m,
                other => panic!("not a metric: {other:?}"),
            })
            .collect()
    }

    fn tagged(mut metric: Metric, tags: &[(&str, &str)]) -> Metric {
        for (k, v) in tags {
            metric = metric.with_tag(*k, *v);
        }
        metric
    }

    /// Vector's documented example "Counter".
    #[test]
    fn vector_example_counter() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "counter"
            field = "status"
            name = "response_total"
            namespace = "service"
            tags.status = "{{status}}"
            tags.host = "{{host}}"
            "#,
        );
        let (metrics, out) = run(&mut t, json!({"host": "10.22.11.222", "message": "Sent 200 in 54.2ms", "status": 200}));
        let expected =
            Metric::new("response_total", MetricKind::Incremental, MetricValue::Counter { value: 1.0 }).with_namespace("service");
        assert_eq!(metrics, [tagged(expected, &[("status", "200"), ("host", "10.22.11.222")])]);
        assert_eq!((out.errors, out.discarded), (0, 0));
    }

    /// Vector's documented example "Sum" (with a tag expansion).
    #[test]
    fn vector_example_sum() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "counter"
            field = "total"
            name = "order_total"
            increment_by_value = true
            tags."*" = "{{labels}}"
            "#,
        );
        let (metrics, _) = run(
            &mut t,
            json!({"message": "Order placed for $122.20", "labels": {"host": "10.22.11.222", "hostname": "vector-dev"}, "total": 122.2}),
        );
        let expected = Metric::new("order_total", MetricKind::Incremental, MetricValue::Counter { value: 122.2 });
        assert_eq!(metrics, [tagged(expected, &[("host", "10.22.11.222"), ("hostname", "vector-dev")])]);
    }

    /// Vector's documented example "Gauges".
    #[test]
    fn vector_example_gauges() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "gauge"
            field = "1m_load_avg"
            tags.host = "{{host}}"
            [[metrics]]
            type = "gauge"
            field = "5m_load_avg"
            tags.host = "{{host}}"
            [[metrics]]
            type = "gauge"
            field = "15m_load_avg"
            tags.host = "{{host}}"
            "#,
        );
        let (metrics, _) = run(
            &mut t,
            json!({"host": "10.22.11.222", "message": "CPU activity sample", "1m_load_avg": 78.2, "5m_load_avg": 56.2, "15m_load_avg": 48.7}),
        );
        let gauge =
            |name: &str, value| tagged(Metric::new(name, MetricKind::Absolute, MetricValue::Gauge { value }), &[("host", "10.22.11.222")]);
        assert_eq!(metrics, [gauge("1m_load_avg", 78.2), gauge("5m_load_avg", 56.2), gauge("15m_load_avg", 48.7)]);
    }

    /// Vector's documented examples "Histogram distribution" and "Summary
    /// distribution": one sample (54.2, rate 1) of an incremental
    /// distribution, its statistic the metric's type.
    #[test]
    fn vector_examples_histogram_and_summary_distributions() {
        for (kind, statistic) in [("histogram", Statistic::Histogram), ("summary", Statistic::Summary)] {
            let mut t = transform(&format!(
                "[[metrics]]\ntype = \"{kind}\"\nfield = \"time\"\nname = \"time_ms\"\ntags.status = \"{{{{status}}}}\"\ntags.host = \"{{{{host}}}}\""
            ));
            let (metrics, _) = run(&mut t, json!({"host": "10.22.11.222", "message": "Sent 200 in 54.2ms", "status": 200, "time": 54.2}));
            let expected =
                Metric::new("time_ms", MetricKind::Incremental, MetricValue::Distribution { samples: vec![(54.2, 1)], statistic });
            assert_eq!(metrics, [tagged(expected.clone(), &[("status", "200"), ("host", "10.22.11.222")])], "{kind}");
            let written = serde_json::to_value(expected).unwrap();
            assert_eq!(written["value"]["distribution"]["statistic"], kind);
        }
    }

    /// Vector's documented example "Set".
    #[test]
    fn vector_example_set() {
        let mut t = transform("[[metrics]]\ntype = \"set\"\nfield = \"remote_addr\"\nnamespace = \"{{branch}}\"\ntags.host = \"{{host}}\"");
        let (metrics, _) =
            run(&mut t, json!({"host": "10.22.11.222", "message": "Sent 200 in 54.2ms", "remote_addr": "233.221.232.22", "branch": "dev"}));
        let set = MetricValue::Set { values: ["233.221.232.22".to_string()].into() };
        let expected = Metric::new("remote_addr", MetricKind::Incremental, set).with_namespace("dev").with_tag("host", "10.22.11.222");
        assert_eq!(metrics, std::slice::from_ref(&expected));
        // Written as Vector writes a set, under tapline's `value`.
        let written = serde_json::to_value(Metric { timestamp: None, ..expected }).unwrap();
        assert_eq!(written["value"], json!({"set": {"values": ["233.221.232.22"]}}));
    }

    #[test]
    fn counter_kinds_and_values() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "counter"
            field = "bytes"
            increment_by_value = true
            kind = "absolute"
            [[metrics]]
            type = "counter"
            field = "bytes"
            name = "requests_total"
            "#,
        );
        let (metrics, _) = run(&mut t, json!({"bytes": "512"}));
        assert_eq!(
            metrics,
            [
                Metric::new("bytes", MetricKind::Absolute, MetricValue::Counter { value: 512.0 }),
                Metric::new("requests_total", MetricKind::Incremental, MetricValue::Counter { value: 1.0 })
            ]
        );
    }

    #[test]
    fn names_namespaces_and_tags_are_templates() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "counter"
            field = "status"
            name = "{{ kind }}_total"
            namespace = "{{ app.name }}"
            tags."{{ dim }}" = "{{ status }}"
            tags.route = "/{{ route }}"
            tags.absent = "{{ nope }}"
            tags.label_all = "fixed"
            tags."label_*" = "{{ labels }}"
            "#,
        );
        let (metrics, out) = run(
            &mut t,
            json!({"kind": "http", "app": {"name": "kong"}, "dim": "code", "status": 503, "route": "orders",
                   "labels": {"All": "from-labels", "Zone Name": "eu-1", "none": null}}),
        );
        let expected = Metric::new("http_total", MetricKind::Incremental, MetricValue::Counter { value: 1.0 }).with_namespace("kong");
        assert_eq!(
            metrics,
            [tagged(expected, &[("code", "503"), ("route", "/orders"), ("label_all", "fixed"), ("label_zone_name", "eu-1")])]
        );
        // The tag that did not render is an error; the metric is still made.
        assert_eq!((out.errors, out.discarded), (1, 0));
    }

    #[test]
    fn a_log_that_cannot_make_every_metric_makes_none() {
        let mut t = transform(
            r#"
            [[metrics]]
            type = "counter"
            field = "status"
            [[metrics]]
            type = "histogram"
            field = "latency"
            "#,
        );
        for log in [json!({"status": 200}), json!({"status": 200, "latency": null}), json!({"status": 200, "latency": "slow"})] {
            let (metrics, out) = run(&mut t, log.clone());
            assert!(metrics.is_empty(), "{log}");
            assert_eq!((out.errors, out.discarded), (1, 1), "{log}");
        }
        let (metrics, out) = run(&mut t, json!({"status": 200, "latency": "12.5"}));
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[1].value, MetricValue::Distribution { samples: vec![(12.5, 1)], statistic: Statistic::Histogram });
        assert_eq!((out.errors, out.discarded), (0, 0));
    }

    #[test]
    fn a_log_timestamp_and_a_record_time_stamp_the_metrics() {
        let mut t = transform("[[metrics]]\ntype = \"gauge\"\nfield = \"duration_us\"\ntags.service = \"{{ service }}\"");
        let time: DateTime<Utc> = "2024-11-26T09:23:21Z".parse().unwrap();
        let record = RequestRecord { time, service: Some("orders".into()), duration_us: Some(1500), ..Default::default() };
        let mut log = crate::event::ObjectMap::new();
        log.insert("timestamp".into(), Value::Timestamp(time));
        log.insert("duration_us".into(), Value::Integer(7));
        let mut out = TransformOutput::default();
        t.run(vec![Event::record(record), Event::log(Value::Object(log))], Utc::now(), &mut out);
        let metrics = take_metrics(&mut out);
        let gauge = |value| Metric::new("duration_us", MetricKind::Absolute, MetricValue::Gauge { value }).with_timestamp(time);
        assert_eq!(metrics, [gauge(1500.0).with_tag("service", "orders"), gauge(7.0)]);
        // The log without `service` made its metric without that tag (an error counted).
        assert_eq!(out.errors, 1);
    }

    #[test]
    fn bad_options_are_refused() {
        let error = |text: &str| toml_edit::de::from_str::<LogToMetricConfig>(text).unwrap().build().err().unwrap().to_string();
        assert_eq!(error("metrics = []"), "`metrics` lists no metric");
        assert_eq!(
            error("[[metrics]]\ntype = \"gauge\"\nfield = \"a\"\nkind = \"absolute\""),
            "`metrics[0]`: `kind` applies to counters only"
        );
        assert!(toml_edit::de::from_str::<LogToMetricConfig>("[[metrics]]\ntype = \"counter\"\nfield = \"a\"\nbuckets = [1]").is_err());
        assert!(toml_edit::de::from_str::<LogToMetricConfig>("all_metrics = true\nmetrics = []").is_err());
    }
}
