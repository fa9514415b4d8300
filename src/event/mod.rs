//! The event model: what flows between components.
//!
//! Events cross channels in batches (`EventBatch`), never one by one. Each event
//! carries the finalizers of the sources that asked to learn its fate.

mod field;
mod finalization;
mod metric;
mod record;
mod span;

pub use field::FieldPath;
pub use finalization::{BatchNotifier, BatchStatus, BatchStatusReceiver, EventStatus, Finalizers, Withdraw};
pub use metric::{Bucket, Exemplar, Family, FamilyKind, Metric, MetricKind, MetricValue, Quantile, Statistic};
pub use record::{FieldRef, ObservationPoint, RequestRecord, SignalSource};
pub use span::{
    from_hex, parse_traceparent, trace_id_of, Attributes, Span, SpanEvent, SpanIds, SpanKind, SpanLink, SpanStatus, StatusCode,
};
pub use vrl::value::{KeyString, ObjectMap, Value};

use serde::Serialize;

/// A batch is the unit that crosses channels.
pub type EventBatch = Vec<Event>;

#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// A log: a VRL object, so `remap` runs on it without conversion.
    Log(Value),
    /// A log too, kept typed: a request record is encoded straight from the
    /// struct, and turned into a VRL object only when a VRL program needs one.
    Record(Box<RequestRecord>),
    Metric(Metric),
    Span(Box<Span>),
}

#[derive(Debug, Clone)]
pub struct Event {
    pub data: EventData,
    pub finalizers: Finalizers,
}

impl Event {
    pub fn log(value: impl Into<Value>) -> Self {
        Self { data: EventData::Log(value.into()), finalizers: Finalizers::default() }
    }

    pub fn metric(metric: Metric) -> Self {
        Self { data: EventData::Metric(metric), finalizers: Finalizers::default() }
    }

    pub fn span(span: Span) -> Self {
        Self { data: EventData::Span(Box::new(span)), finalizers: Finalizers::default() }
    }

    /// A request record, boxed already or not.
    pub fn record(record: impl Into<Box<RequestRecord>>) -> Self {
        Self { data: EventData::Record(record.into()), finalizers: Finalizers::default() }
    }

    pub fn kind(&self) -> Kinds {
        match self.data {
            EventData::Log(_) | EventData::Record(_) => Kinds::LOG,
            EventData::Metric(_) => Kinds::METRIC,
            EventData::Span(_) => Kinds::SPAN,
        }
    }

    pub fn as_log(&self) -> Option<&Value> {
        match &self.data {
            EventData::Log(v) => Some(v),
            _ => None,
        }
    }

    /// Serialize the payload as one JSON object (logs as they are, metrics and
    /// spans with their typed fields).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.data {
            EventData::Log(v) => serde_json::to_writer(out, v),
            EventData::Record(r) => serde_json::to_writer(out, r),
            EventData::Metric(m) => serde_json::to_writer(out, m),
            EventData::Span(s) => serde_json::to_writer(out, s),
        }
    }

    /// The event as a plain VRL log, for a program that changes it: a typed
    /// record is converted once. `None` for metrics and spans.
    pub fn make_log(&mut self) -> Option<&mut Value> {
        if let EventData::Record(record) = &self.data {
            self.data = EventData::Log(record.to_value());
        }
        match &mut self.data {
            EventData::Log(value) => Some(value),
            _ => None,
        }
    }

    /// A VRL view of any event, for conditions that read any event kind.
    pub fn to_value(&self) -> Value {
        match &self.data {
            EventData::Log(v) => v.clone(),
            EventData::Record(r) => r.to_value(),
            EventData::Metric(m) => serialize_to_value(m),
            EventData::Span(s) => serialize_to_value(s.as_ref()),
        }
    }
}

pub(crate) fn serialize_to_value<T: Serialize>(item: &T) -> Value {
    // Both types serialize infallibly to JSON (no maps with non-string keys).
    serde_json::to_value(item).map(Value::from).unwrap_or(Value::Null)
}

/// The event kinds a component takes or gives, as a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub const LOG: Kinds = Kinds(1);
    pub const METRIC: Kinds = Kinds(2);
    pub const SPAN: Kinds = Kinds(4);
    pub const ALL: Kinds = Kinds(7);
    pub const NONE: Kinds = Kinds(0);

    pub fn contains(self, other: Kinds) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }

    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    pub fn minus(self, other: Kinds) -> Kinds {
        Kinds(self.0 & !other.0)
    }
}

impl std::fmt::Display for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [(Kinds::LOG, "logs"), (Kinds::METRIC, "metrics"), (Kinds::SPAN, "spans")]
            .into_iter()
            .filter(|(k, _)| self.contains(*k))
            .map(|(_, n)| n)
            .collect();
        if names.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}
