//! `reduce`: Vector's transform that merges many logs into one, per group
//! (`group_by` field values), with Vector's merge strategies and defaults:
//! numbers are summed, a timestamp keeps the first and adds `<field>_end`
//! with the last, anything else keeps the first value. Nested objects are
//! merged field by field; arrays are values.
//!
//! A group is flushed as one log when `ends_when` holds for an event (with
//! it), before an event meeting `starts_when` (without it), when it holds
//! `max_events`, when no event came for `expire_after_ms` (or it is older
//! than `end_every_period_ms`): checked every `flush_period_ms`, counted in
//! `stale_events_flushed_total`. At shutdown every group held is flushed:
//! nothing is lost. A value a strategy cannot take (a string to `sum`) is
//! left out, counted as an error. The merged log answers to the
//! acknowledgements of every event in it, so a source waiting for them waits
//! until the group is flushed.
//!
//! Request records are merged through their fields as a log (the output is
//! a log).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use vrl::path::{OwnedSegment, OwnedValuePath};

use super::util::{holds, value_path, Condition, VrlProgram};
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{Event, EventBatch, EventData, Finalizers, Kinds, ObjectMap, Value};
use crate::telemetry::LogLimiter;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceConfig {
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub merge_strategies: BTreeMap<String, Strategy>,
    #[serde(default = "default_expire_after_ms")]
    pub expire_after_ms: u64,
    #[serde(default = "default_flush_period_ms")]
    pub flush_period_ms: u64,
    pub end_every_period_ms: Option<u64>,
    pub max_events: Option<NonZeroUsize>,
    pub starts_when: Option<Condition>,
    pub ends_when: Option<Condition>,
}

fn default_expire_after_ms() -> u64 {
    30_000
}

fn default_flush_period_ms() -> u64 {
    1_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Keep the first value.
    Discard,
    /// Keep the last value that is not null.
    Retain,
    Sum,
    Max,
    Min,
    /// Every value, in an array.
    Array,
    /// Strings joined by a space (arrays: concatenated).
    Concat,
    ConcatNewline,
    ConcatRaw,
    ShortestArray,
    LongestArray,
    /// The distinct values, arrays and objects flattened one level.
    FlatUnique,
}

impl TransformConfig for ReduceConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Reduce::new(self)?))
    }
}

struct Reduce {
    group_by: Vec<OwnedValuePath>,
    strategies: Vec<(OwnedValuePath, Strategy)>,
    expire_after: Duration,
    flush_period: Duration,
    end_every_period: Option<Duration>,
    max_events: Option<usize>,
    starts_when: Option<VrlProgram>,
    ends_when: Option<VrlProgram>,
    groups: HashMap<Vec<Option<Value>>, Group>,
    /// Groups made so far: flushes at shutdown go in the order groups began.
    made: u64,
    log: LogLimiter,
}

struct Group {
    order: u64,
    events: usize,
    fields: Vec<(OwnedValuePath, Merger)>,
    /// Where each field is in `fields`.
    index: HashMap<OwnedValuePath, usize>,
    finalizers: Finalizers,
    created: Instant,
    last_event: Instant,
}

impl Reduce {
    fn new(config: &ReduceConfig) -> Result<Reduce, String> {
        if config.starts_when.is_some() && config.ends_when.is_some() {
            return Err("set `starts_when` or `ends_when`, not both".into());
        }
        let mut strategies = Vec::new();
        for (field, strategy) in &config.merge_strategies {
            let path = value_path(field).map_err(|e| format!("`merge_strategies`: {e}"))?;
            if path.segments.iter().any(|s| matches!(s, OwnedSegment::Index(_))) {
                return Err(format!("`merge_strategies`: `{field}` names an array element; strategies apply to fields"));
            }
            strategies.push((path, *strategy));
        }
        let condition =
            |name: &str, c: &Option<Condition>| c.as_ref().map(Condition::compile).transpose().map_err(|e| format!("`{name}`: {e}"));
        if config.flush_period_ms == 0 {
            return Err("`flush_period_ms` must be at least 1".into());
        }
        Ok(Reduce {
            group_by: config.group_by.iter().map(|f| value_path(f)).collect::<Result<_, _>>().map_err(|e| format!("`group_by`: {e}"))?,
            strategies,
            expire_after: Duration::from_millis(config.expire_after_ms),
            flush_period: Duration::from_millis(config.flush_period_ms),
            end_every_period: config.end_every_period_ms.map(Duration::from_millis),
            max_events: config.max_events.map(NonZeroUsize::get),
            starts_when: condition("starts_when", &config.starts_when)?,
            ends_when: condition("ends_when", &config.ends_when)?,
            groups: HashMap::new(),
            made: 0,
            log: LogLimiter::new(Duration::from_secs(10)),
        })
    }

    fn add(&mut self, mut event: Event, now: Instant, out: &mut TransformOutput) {
        let starts = holds(&mut self.starts_when, &mut event, "reduce: `starts_when`", &self.log, out);
        let mut ends = holds(&mut self.ends_when, &mut event, "reduce: `ends_when`", &self.log, out);
        let finalizers = std::mem::take(&mut event.finalizers);
        let Some(log) = event.make_log() else { return };
        let log = std::mem::replace(log, Value::Null);
        let key: Vec<Option<Value>> = self.group_by.iter().map(|path| log.get(path).cloned()).collect();
        if let Some(max) = self.max_events {
            let held = self.groups.get(&key).map_or(0, |g| g.events);
            ends |= held + 1 >= max;
        }
        if starts {
            if let Some(group) = self.groups.remove(&key) {
                out.primary.push(group.flush());
            }
            group(&mut self.groups, &mut self.made, key, now).add(log, finalizers, &self.strategies, now, &self.log, out);
        } else if ends {
            let mut group = self.groups.remove(&key).unwrap_or_else(|| Group::new(0, now));
            group.add(log, finalizers, &self.strategies, now, &self.log, out);
            out.primary.push(group.flush());
        } else {
            group(&mut self.groups, &mut self.made, key, now).add(log, finalizers, &self.strategies, now, &self.log, out);
        }
    }

    /// Flush the groups that expired or lived their period by `now`; all of them when `last`.
    fn flush(&mut self, now: Instant, last: bool, out: &mut TransformOutput) {
        let mut due: Vec<(u64, Vec<Option<Value>>)> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                last || now.saturating_duration_since(g.last_event) >= self.expire_after
                    || self.end_every_period.is_some_and(|period| now.saturating_duration_since(g.created) >= period)
            })
            .map(|(key, g)| (g.order, key.clone()))
            .collect();
        due.sort_unstable_by_key(|(order, _)| *order);
        if !last && !due.is_empty() {
            out.count("stale_events_flushed_total", due.len() as u64);
        }
        for (_, key) in due {
            if let Some(group) = self.groups.remove(&key) {
                out.primary.push(group.flush());
            }
        }
        out.gauge("reduce_groups_held", self.groups.len() as u64);
    }
}

/// The group of `key`, made (as the `made`th) if new.
// A `Value` key holds `Bytes`, which clippy takes for interior mutability; nothing mutates it.
#[allow(clippy::mutable_key_type)]
fn group<'a>(groups: &'a mut HashMap<Vec<Option<Value>>, Group>, made: &mut u64, key: Vec<Option<Value>>, now: Instant) -> &'a mut Group {
    groups.entry(key).or_insert_with(|| {
        *made += 1;
        Group::new(*made, now)
    })
}

impl Transform for Reduce {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        let now = Instant::now();
        for event in batch {
            self.add(event, now, out);
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.flush_period)
    }

    fn tick(&mut self, last: bool, out: &mut TransformOutput) {
        self.flush(Instant::now(), last, out);
    }
}

impl Group {
    fn new(order: u64, now: Instant) -> Group {
        Group {
            order,
            events: 0,
            fields: Vec::new(),
            index: HashMap::new(),
            finalizers: Finalizers::default(),
            created: now,
            last_event: now,
        }
    }

    fn add(
        &mut self,
        log: Value,
        finalizers: Finalizers,
        strategies: &[(OwnedValuePath, Strategy)],
        now: Instant,
        limiter: &LogLimiter,
        out: &mut TransformOutput,
    ) {
        self.finalizers.merge(finalizers);
        let mut failed = |e: String| {
            out.errors += 1;
            if let Some(held_back) = limiter.allow(1) {
                tracing::warn!(error = %e, held_back, "reduce: a value could not be merged; it is left out");
            }
        };
        // Fields with a strategy are merged whole (an object too).
        for (path, strategy) in strategies {
            if let Some(value) = log.get(path) {
                if let Err(e) = self.merge(path, value.clone(), Some(*strategy)) {
                    failed(e);
                }
            }
        }
        let mut leaves = Vec::new();
        if let Value::Object(map) = log {
            flatten(OwnedValuePath::root(), map, &mut leaves);
        }
        for (path, value) in leaves {
            let covered = (1..=path.segments.len()).any(|n| strategies.iter().any(|(p, _)| p.segments == path.segments[..n]));
            if covered {
                continue;
            }
            if let Err(e) = self.merge(&path, value, None) {
                failed(e);
            }
        }
        self.events += 1;
        self.last_event = now;
    }

    fn merge(&mut self, path: &OwnedValuePath, value: Value, strategy: Option<Strategy>) -> Result<(), String> {
        match self.index.get(path) {
            Some(&at) => self.fields[at].1.add(value).map_err(|e| format!("`{path}`: {e}")),
            None => {
                let merger = Merger::new(value, strategy).map_err(|e| format!("`{path}`: {e}"))?;
                self.index.insert(path.clone(), self.fields.len());
                self.fields.push((path.clone(), merger));
                Ok(())
            }
        }
    }

    fn flush(self) -> Event {
        let mut log = Value::Object(ObjectMap::new());
        for (path, merger) in self.fields {
            merger.insert_into(&path, &mut log);
        }
        Event { data: EventData::Log(log), finalizers: self.finalizers }
    }
}

/// Every leaf of an object by its path: nested objects are walked, arrays
/// (and empty objects) are leaves.
fn flatten(prefix: OwnedValuePath, map: ObjectMap, out: &mut Vec<(OwnedValuePath, Value)>) {
    for (key, value) in map {
        let mut path = prefix.clone();
        path.segments.push(OwnedSegment::Field(key));
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(path, inner, out),
            other => out.push((path, other)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn of(value: &Value) -> Option<Number> {
        match value {
            Value::Integer(n) => Some(Number::Int(*n)),
            Value::Float(f) => Some(Number::Float(f.into_inner())),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(n) => n as f64,
            Number::Float(f) => f,
        }
    }

    /// Integers stay integers until a float (or an overflow) comes.
    fn plus(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.checked_add(b).map_or(Number::Float(a as f64 + b as f64), Number::Int),
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Number::Int(n) => Value::Integer(n),
            Number::Float(f) => Value::from_f64_or_zero(f),
        }
    }
}

#[derive(Debug)]
enum Merger {
    First(Value),
    Last(Value),
    Sum(Number),
    Max(Number),
    Min(Number),
    Array(Vec<Value>),
    /// Joined text, and what joins it.
    Concat(Vec<u8>, &'static str),
    ConcatArray(Vec<Value>),
    ShortestArray(Vec<Value>),
    LongestArray(Vec<Value>),
    FlatUnique(Vec<Value>, HashSet<Value>),
    Time(DateTime<Utc>, DateTime<Utc>),
}

fn describe(value: &Value) -> String {
    format!("a {} ({})", value.kind_str(), value.to_string_lossy())
}

impl Merger {
    fn new(value: Value, strategy: Option<Strategy>) -> Result<Merger, String> {
        let number = |value: &Value| Number::of(value).ok_or_else(|| format!("expected a number, got {}", describe(value)));
        Ok(match strategy {
            None => match value {
                Value::Integer(_) | Value::Float(_) => Merger::Sum(number(&value)?),
                Value::Timestamp(t) => Merger::Time(t, t),
                other => Merger::First(other),
            },
            Some(Strategy::Discard) => Merger::First(value),
            Some(Strategy::Retain) => Merger::Last(value),
            Some(Strategy::Sum) => Merger::Sum(number(&value)?),
            Some(Strategy::Max) => Merger::Max(number(&value)?),
            Some(Strategy::Min) => Merger::Min(number(&value)?),
            Some(Strategy::Array) => Merger::Array(vec![value]),
            Some(Strategy::Concat) => match value {
                Value::Array(values) => Merger::ConcatArray(values),
                other => {
                    Merger::Concat(text(&other).ok_or_else(|| format!("expected a string or an array, got {}", describe(&other)))?, " ")
                }
            },
            Some(strategy @ (Strategy::ConcatNewline | Strategy::ConcatRaw)) => {
                let joiner = if strategy == Strategy::ConcatNewline { "\n" } else { "" };
                Merger::Concat(text(&value).ok_or_else(|| format!("expected a string, got {}", describe(&value)))?, joiner)
            }
            Some(strategy @ (Strategy::ShortestArray | Strategy::LongestArray)) => match value {
                Value::Array(values) if strategy == Strategy::ShortestArray => Merger::ShortestArray(values),
                Value::Array(values) => Merger::LongestArray(values),
                other => return Err(format!("expected an array, got {}", describe(&other))),
            },
            Some(Strategy::FlatUnique) => {
                let mut merger = Merger::FlatUnique(Vec::new(), HashSet::new());
                merger.add(value)?;
                merger
            }
        })
    }

    fn add(&mut self, value: Value) -> Result<(), String> {
        let want_max = matches!(self, Merger::Max(_));
        let want_shortest = matches!(self, Merger::ShortestArray(_));
        match self {
            Merger::First(_) => {}
            Merger::Last(last) => {
                if value != Value::Null {
                    *last = value;
                }
            }
            Merger::Sum(total) => {
                *total = total.plus(Number::of(&value).ok_or_else(|| format!("expected a number, got {}", describe(&value)))?)
            }
            Merger::Max(best) | Merger::Min(best) => {
                let new = Number::of(&value).ok_or_else(|| format!("expected a number, got {}", describe(&value)))?;
                let better = if want_max { new.as_f64() > best.as_f64() } else { new.as_f64() < best.as_f64() };
                if better {
                    // A float seen keeps the result a float, as Vector's.
                    *best = match (*best, new) {
                        (Number::Float(_), Number::Int(n)) => Number::Float(n as f64),
                        _ => new,
                    };
                }
            }
            Merger::Array(values) => values.push(value),
            Merger::Concat(joined, joiner) => {
                let more = text(&value).ok_or_else(|| format!("expected a string, got {}", describe(&value)))?;
                joined.extend_from_slice(joiner.as_bytes());
                joined.extend_from_slice(&more);
            }
            Merger::ConcatArray(values) => match value {
                Value::Array(more) => values.extend(more),
                other => values.push(other),
            },
            Merger::ShortestArray(kept) | Merger::LongestArray(kept) => {
                let Value::Array(values) = value else { return Err(format!("expected an array, got {}", describe(&value))) };
                if (want_shortest && values.len() < kept.len()) || (!want_shortest && values.len() > kept.len()) {
                    *kept = values;
                }
            }
            Merger::FlatUnique(values, seen) => {
                let items: Vec<Value> = match value {
                    Value::Array(items) => items,
                    Value::Object(map) => map.into_values().collect(),
                    other => vec![other],
                };
                for item in items {
                    if seen.insert(item.clone()) {
                        values.push(item);
                    }
                }
            }
            Merger::Time(_, latest) => match value {
                Value::Timestamp(t) => *latest = t,
                other => return Err(format!("expected a timestamp, got {}", describe(&other))),
            },
        }
        Ok(())
    }

    fn insert_into(self, path: &OwnedValuePath, log: &mut Value) {
        let value = match self {
            Merger::First(v) | Merger::Last(v) => v,
            Merger::Sum(n) | Merger::Max(n) | Merger::Min(n) => n.into_value(),
            Merger::Array(values)
            | Merger::ConcatArray(values)
            | Merger::ShortestArray(values)
            | Merger::LongestArray(values)
            | Merger::FlatUnique(values, _) => Value::Array(values),
            Merger::Concat(joined, _) => Value::Bytes(joined.into()),
            Merger::Time(first, last) => {
                let mut end = path.clone();
                if let Some(OwnedSegment::Field(name)) = end.segments.last_mut() {
                    *name = format!("{name}_end").into();
                }
                log.insert(&end, Value::Timestamp(last));
                Value::Timestamp(first)
            }
        };
        log.insert(path, value);
    }
}

fn text(value: &Value) -> Option<Vec<u8>> {
    value.as_bytes().map(|b| b.to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{BatchNotifier, EventStatus, RequestRecord};

    fn reduce(config: &str) -> Reduce {
        Reduce::new(&toml_edit::de::from_str(config).unwrap()).unwrap()
    }

    fn log(value: serde_json::Value) -> Event {
        Event::log(Value::from(value))
    }

    fn json_of(events: &mut EventBatch) -> Vec<serde_json::Value> {
        events.drain(..).map(|e| serde_json::to_value(e.to_value()).unwrap()).collect()
    }

    /// Feed events at `now`, then stop (the last tick): what came out, in order.
    fn run_to_end(r: &mut Reduce, events: Vec<serde_json::Value>) -> (Vec<serde_json::Value>, TransformOutput) {
        let now = Instant::now();
        let mut out = TransformOutput::default();
        for event in events {
            r.add(log(event), now, &mut out);
        }
        r.flush(now, true, &mut out);
        (json_of(&mut out.primary), out)
    }

    /// Vector's documented example "Merge Ruby exceptions".
    #[test]
    fn vector_example_merge_ruby_exceptions() {
        let mut r = reduce(
            r#"
            group_by = ["host", "pid", "tid"]
            merge_strategies.message = "concat_newline"
            merge_strategies.pid = "discard"
            merge_strategies.tid = "discard"
            starts_when = '''match(string!(.message), r'^[^\s]')'''
            "#,
        );
        let line = |timestamp: &str, message: &str| json!({"timestamp": timestamp, "message": message, "host": "host-1.hostname.com", "pid": 1234, "tid": 5678});
        let input = vec![
            line("2020-10-07T12:33:21.223543Z", "foobar.rb:6:in `/': divided by 0 (ZeroDivisionError)"),
            line("2020-10-07T12:33:21.223543Z", "    from foobar.rb:6:in `bar'"),
            line("2020-10-07T12:33:21.223543Z", "    from foobar.rb:2:in `foo'"),
            line("2020-10-07T12:33:21.223543Z", "    from foobar.rb:9:in `<main>'"),
            line("2020-10-07T12:33:22.123528Z", "Hello world, I am a new log"),
        ];
        let (output, _) = run_to_end(&mut r, input);
        assert_eq!(
            output,
            [
                line(
                    "2020-10-07T12:33:21.223543Z",
                    "foobar.rb:6:in `/': divided by 0 (ZeroDivisionError)\n    from foobar.rb:6:in `bar'\n    from foobar.rb:2:in `foo'\n    from foobar.rb:9:in `<main>'"
                ),
                line("2020-10-07T12:33:22.123528Z", "Hello world, I am a new log"),
            ]
        );
    }

    /// Vector's documented example "Reduce Rails logs into a single transaction".
    #[test]
    fn vector_example_reduce_rails_logs() {
        let mut r = reduce("");
        let input = vec![
            json!({"timestamp": "2020-10-07T12:33:21.223543Z", "message": "Received GET /path", "request_id": "abcd1234", "request_path": "/path", "request_params": {"key": "val"}}),
            json!({"timestamp": "2020-10-07T12:33:21.832345Z", "message": "Executed query in 5.2ms", "request_id": "abcd1234", "query": "SELECT * FROM table", "query_duration_ms": 5.2}),
            json!({"timestamp": "2020-10-07T12:33:22.457423Z", "message": "Rendered partial _partial.erb in 2.3ms", "request_id": "abcd1234", "template": "_partial.erb", "render_duration_ms": 2.3}),
            json!({"timestamp": "2020-10-07T12:33:22.543323Z", "message": "Executed query in 7.8ms", "request_id": "abcd1234", "query": "SELECT * FROM table", "query_duration_ms": 7.8}),
            json!({"timestamp": "2020-10-07T12:33:22.742322Z", "message": "Sent 200 in 15.2ms", "request_id": "abcd1234", "response_status": 200, "response_duration_ms": 5.2}),
        ];
        let (output, _) = run_to_end(&mut r, input);
        assert_eq!(
            output,
            [json!({
                "message": "Received GET /path",
                "timestamp": "2020-10-07T12:33:21.223543Z",
                "request_id": "abcd1234",
                "request_path": "/path",
                "template": "_partial.erb",
                "request_params": {"key": "val"},
                "query": "SELECT * FROM table",
                "query_duration_ms": 13.0,
                "render_duration_ms": 2.3,
                "response_status": 200,
                "response_duration_ms": 5.2
            })]
        );
    }

    #[test]
    fn timestamps_keep_the_first_and_add_the_last_as_end() {
        let t = |s: &str| Value::Timestamp(s.parse().unwrap());
        let mut r = reduce("");
        let now = Instant::now();
        let mut out = TransformOutput::default();
        for (time, n) in [("2024-01-01T00:00:01Z", 1), ("2024-01-01T00:00:05Z", 2), ("2024-01-01T00:00:03Z", 3)] {
            let mut map = ObjectMap::new();
            map.insert("timestamp".into(), t(time));
            map.insert("meta".into(), Value::from(json!({ "n": n, "tag": format!("t{n}") })));
            r.add(Event::log(Value::Object(map)), now, &mut out);
        }
        r.flush(now, true, &mut out);
        let merged = out.primary[0].as_log().unwrap();
        assert_eq!(merged.get(vrl::path!("timestamp")), Some(&t("2024-01-01T00:00:01Z")));
        // The last received, as Vector's (not the latest in time).
        assert_eq!(merged.get(vrl::path!("timestamp_end")), Some(&t("2024-01-01T00:00:03Z")));
        assert_eq!(serde_json::to_value(merged.get(vrl::path!("meta")).unwrap()).unwrap(), json!({"n": 6, "tag": "t1"}));
    }

    #[test]
    fn every_merge_strategy() {
        let mut r = reduce(
            r#"
            [merge_strategies]
            a = "array"
            c = "concat"
            cn = "concat_newline"
            cr = "concat_raw"
            ca = "concat"
            d = "discard"
            r = "retain"
            s = "sum"
            mx = "max"
            mn = "min"
            fu = "flat_unique"
            la = "longest_array"
            sa = "shortest_array"
            obj = "retain"
            "#,
        );
        let input = vec![
            json!({"a": 1, "c": "x", "cn": "x", "cr": "x", "ca": [1], "d": "first", "r": "first", "s": 1, "mx": 1, "mn": 1.5,
                   "fu": [1, 2], "la": [1], "sa": [1, 2], "obj": {"k": 1}}),
            json!({"a": "two", "c": "y", "cn": "y", "cr": "y", "ca": [2, 3], "d": "second", "r": "second", "s": 2.5, "mx": 3.5, "mn": 1,
                   "fu": {"k": 2, "j": 3}, "la": [1, 2, 3], "sa": [1], "obj": {"j": 2}}),
            json!({"a": null, "c": "z", "cn": "z", "cr": "z", "ca": 4, "d": "third", "r": null, "s": 3, "mx": 2, "mn": 7,
                   "fu": 1, "la": [1, 2], "sa": [1, 2, 3], "obj": null}),
        ];
        let (output, out) = run_to_end(&mut r, input);
        assert_eq!(
            output,
            [json!({"a": [1, "two", null], "c": "x y z", "cn": "x\ny\nz", "cr": "xyz", "ca": [1, 2, 3, 4], "d": "first", "r": "second",
                    "s": 6.5, "mx": 3.5, "mn": 1.0, "fu": [1, 2, 3], "la": [1, 2, 3], "sa": [1], "obj": {"j": 2}})]
        );
        assert_eq!(out.errors, 0);
    }

    #[test]
    fn a_value_a_strategy_cannot_take_is_left_out_and_counted() {
        let mut r = reduce("merge_strategies.n = \"sum\"\nmerge_strategies.m = \"concat\"");
        let (output, out) = run_to_end(&mut r, vec![json!({"n": 1, "m": "a"}), json!({"n": "x", "m": 2}), json!({"n": 2, "m": "b"})]);
        assert_eq!(output, [json!({"n": 3, "m": "a b"})]);
        assert_eq!(out.errors, 2);
    }

    #[test]
    fn groups_flush_when_they_expire_or_outlive_their_period() {
        let mut r = reduce("group_by = [\"id\"]\nexpire_after_ms = 1000\nend_every_period_ms = 5000");
        let t0 = Instant::now();
        let mut out = TransformOutput::default();
        r.add(log(json!({"id": "a", "n": 1})), t0, &mut out);
        r.add(log(json!({"id": "b", "n": 1})), t0, &mut out);
        r.add(log(json!({"id": "a", "n": 2})), t0 + Duration::from_millis(600), &mut out);
        r.flush(t0 + Duration::from_millis(999), false, &mut out);
        assert!(out.primary.is_empty());
        // b saw nothing for 1 s; a's last event was 0.4 s ago.
        r.flush(t0 + Duration::from_millis(1000), false, &mut out);
        assert_eq!(json_of(&mut out.primary), [json!({"id": "b", "n": 1})]);
        r.flush(t0 + Duration::from_millis(1600), false, &mut out);
        assert_eq!(json_of(&mut out.primary), [json!({"id": "a", "n": 3})]);
        assert_eq!(out.counts, [("stale_events_flushed_total", 2)]);
        // A group fed more often than it expires still ends every period.
        for ms in (0..=4500).step_by(500) {
            r.add(log(json!({"id": "c", "n": 1})), t0 + Duration::from_millis(2000 + ms), &mut out);
        }
        r.flush(t0 + Duration::from_millis(6999), false, &mut out);
        assert!(out.primary.is_empty());
        r.flush(t0 + Duration::from_millis(7000), false, &mut out);
        assert_eq!(json_of(&mut out.primary), [json!({"id": "c", "n": 10})]);
    }

    #[test]
    fn everything_held_is_flushed_at_shutdown_in_order_with_its_acknowledgements() {
        let mut r = reduce("group_by = [\"id\"]");
        let (notifier, mut status) = BatchNotifier::new();
        let mut out = TransformOutput::default();
        for (id, n) in [("a", 1), ("b", 2), ("a", 3), ("c", 4)] {
            let mut event = log(json!({"id": id, "n": n}));
            event.finalizers = Finalizers::new(notifier.clone());
            r.add(event, Instant::now(), &mut out);
        }
        drop(notifier);
        assert!(status.try_recv().is_err(), "held events are not settled");
        r.tick(true, &mut out);
        let merged = std::mem::take(&mut out.primary);
        assert_eq!(
            merged.iter().map(|e| serde_json::to_value(e.to_value()).unwrap()).collect::<Vec<_>>(),
            [json!({"id": "a", "n": 4}), json!({"id": "b", "n": 2}), json!({"id": "c", "n": 4})]
        );
        assert!(out.counts.is_empty(), "a shutdown flush is not a stale one");
        assert!(r.groups.is_empty());
        for event in &merged {
            event.finalizers.update_status(EventStatus::Delivered);
        }
        drop(merged);
        assert_eq!(status.try_recv().unwrap(), EventStatus::Delivered);
    }

    #[test]
    fn ends_when_flushes_with_the_event() {
        let mut r = reduce("group_by = [\"id\"]\nends_when = 'exists(.last)'");
        let (output, _) = run_to_end(
            &mut r,
            vec![
                json!({"id": "x", "n": 1}),
                json!({"id": "y", "n": 1}),
                json!({"id": "x", "n": 2, "last": true}),
                json!({"id": "x", "n": 5}),
            ],
        );
        assert_eq!(output, [json!({"id": "x", "n": 3, "last": true}), json!({"id": "y", "n": 1}), json!({"id": "x", "n": 5})]);
    }

    #[test]
    fn max_events_ends_a_group() {
        let mut r = reduce("max_events = 3");
        let (output, _) = run_to_end(&mut r, (1..=7).map(|n| json!({ "n": n })).collect());
        assert_eq!(output, [json!({"n": 6}), json!({"n": 15}), json!({"n": 7})]);
        let mut one = reduce("max_events = 1");
        assert_eq!(run_to_end(&mut one, vec![json!({"n": 1}), json!({"n": 2})]).0, [json!({"n": 1}), json!({"n": 2})]);
    }

    #[test]
    fn records_are_merged_as_logs() {
        let mut r = reduce("group_by = [\"service\"]\nmerge_strategies.status = \"array\"");
        let mut out = TransformOutput::default();
        for status in [200, 503] {
            let record =
                RequestRecord { service: Some("orders".into()), status: Some(status), duration_us: Some(1000), ..Default::default() };
            r.add(Event::record(record), Instant::now(), &mut out);
        }
        r.flush(Instant::now(), true, &mut out);
        let merged = out.primary[0].as_log().expect("a log");
        assert_eq!(serde_json::to_value(merged.get(vrl::path!("status")).unwrap()).unwrap(), json!([200, 503]));
        assert_eq!(merged.get(vrl::path!("duration_us")), Some(&Value::Integer(2000)));
        assert_eq!(merged.get(vrl::path!("service")), Some(&Value::from("orders")));
    }

    #[test]
    fn bad_options_are_refused() {
        let error = |text: &str| Reduce::new(&toml_edit::de::from_str(text).unwrap()).err().unwrap();
        assert_eq!(error("starts_when = 'true'\nends_when = 'true'"), "set `starts_when` or `ends_when`, not both");
        assert!(error("merge_strategies.\"a[0]\" = \"sum\"").contains("array element"));
        assert!(error("ends_when = '.a +'").starts_with("`ends_when`: invalid VRL program"));
        assert!(toml_edit::de::from_str::<ReduceConfig>("merge_strategies.a = \"average\"").is_err());
        assert!(toml_edit::de::from_str::<ReduceConfig>("max_events = 0").is_err());
    }
}
