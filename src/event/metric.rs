use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    pub kind: MetricKind,
    pub value: MetricValue,
    /// Example observations (a trace id among their labels), as Prometheus and OTLP carry them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exemplars: Vec<Exemplar>,
    /// Set on a series that is one part of a Prometheus classic histogram or
    /// summary received series by series (remote write): its family, so that
    /// an exposition can put the family back together under one `# TYPE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
}

/// The classic histogram or summary a series belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FamilyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyKind {
    Histogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
}

/// Incremental values are deltas since the last report; absolute values are
/// the current total (a counter's running sum, a gauge's reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Incremental,
    Absolute,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricValue {
    Counter {
        value: f64,
    },
    Gauge {
        value: f64,
    },
    /// Buckets hold non-cumulative counts per upper limit.
    Histogram {
        buckets: Vec<Bucket>,
        count: u64,
        sum: f64,
    },
    Summary {
        quantiles: Vec<Quantile>,
        count: u64,
        sum: f64,
    },
    /// Raw samples with their sample rate.
    Distribution {
        samples: Vec<(f64, u32)>,
        statistic: Statistic,
    },
    /// Distinct values (Vector's set). Incremental sets add up by union;
    /// where a sink has no set type it writes the number of values, a gauge.
    Set {
        values: BTreeSet<String>,
    },
}

/// What a distribution's samples are meant to become (Vector's
/// `statistic`): kept from `log_to_metric`'s `type`; the Prometheus sinks
/// choose by their own options, as Vector's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    Histogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub upper_limit: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

impl Metric {
    pub fn new(name: impl Into<String>, kind: MetricKind, value: MetricValue) -> Self {
        Metric {
            name: name.into(),
            namespace: None,
            tags: BTreeMap::new(),
            timestamp: None,
            kind,
            value,
            exemplars: Vec::new(),
            family: None,
        }
    }

    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}
