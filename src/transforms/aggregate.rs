//! `aggregate`: Vector's transform that turns the metrics of each series
//! (name, namespace, tags) seen during `interval_ms` into one, emitted when
//! the interval ends (and at shutdown). `mode`, as Vector's:
//!
//! - `Auto`: incremental metrics summed, absolute ones the latest;
//! - `Sum`: incremental summed, absolute passed on at once;
//! - `Latest`, `Diff`, `Max`, `Min`, `Mean`, `Stdev`: for absolute metrics
//!   (incremental ones passed on at once): the latest; the latest minus the
//!   previous interval's; the largest or smallest gauge; the mean or
//!   (population) standard deviation of the gauges;
//! - `Count`: how many metrics came, as a counter.
//!
//! Summing adds counters and gauges, concatenates distributions' samples and
//! adds histograms with the same buckets; values that cannot be added (two
//! kinds, other buckets, summaries) replace the aggregate so far, counted in
//! `aggregate_failed_updates`. Under `Mean`/`Stdev` an absolute metric that is
//! not a gauge has no mean: it is dropped and counted as discarded. Also
//! counted: `aggregate_events_recorded_total`, `aggregate_flushes_total`.
//! The aggregate keeps the latest timestamp of its metrics, and their
//! acknowledgements. Series come out in the order they were first seen.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{Event, EventBatch, EventData, Finalizers, Kinds, Metric, MetricKind, MetricValue};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default)]
    pub mode: Mode,
}

fn default_interval_ms() -> u64 {
    10_000
}

/// Vector writes these capitalized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Mode {
    #[default]
    Auto,
    Sum,
    Latest,
    Count,
    Diff,
    Max,
    Min,
    Mean,
    Stdev,
}

impl TransformConfig for AggregateConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::METRIC
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::METRIC)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        if self.interval_ms == 0 {
            return Err("`interval_ms` must be at least 1".into());
        }
        Ok(Box::new(Aggregate::new(self)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Series {
    name: String,
    namespace: Option<String>,
    tags: BTreeMap<String, String>,
}

impl Series {
    fn of(metric: &Metric) -> Series {
        Series { name: metric.name.clone(), namespace: metric.namespace.clone(), tags: metric.tags.clone() }
    }
}

/// A series' aggregate: when the series was first seen, its metric (or,
/// for `Mean`/`Stdev`, every gauge), and the acknowledgements it answers to.
struct Entry {
    order: u64,
    metrics: Vec<Metric>,
    finalizers: Finalizers,
}

struct Aggregate {
    mode: Mode,
    interval: Duration,
    entries: HashMap<Series, Entry>,
    /// `Diff`: the previous interval's values.
    previous: HashMap<Series, Metric>,
    seen: u64,
}

impl Aggregate {
    fn new(config: &AggregateConfig) -> Aggregate {
        Aggregate {
            mode: config.mode,
            interval: Duration::from_millis(config.interval_ms),
            entries: HashMap::new(),
            previous: HashMap::new(),
            seen: 0,
        }
    }

    fn record(&mut self, event: Event, out: &mut TransformOutput) {
        let Event { data: EventData::Metric(metric), finalizers } = event else {
            // Only metrics are wired here.
            out.primary.push(event);
            return;
        };
        use MetricKind::{Absolute, Incremental};
        use Mode::*;
        match (self.mode, metric.kind) {
            (Sum, Absolute) | (Latest | Diff | Max | Min | Mean | Stdev, Incremental) => {
                out.primary.push(Event { data: EventData::Metric(metric), finalizers });
                return;
            }
            (Auto | Sum, Incremental) => {
                let entry = self.slot(&metric, finalizers);
                match entry.metrics.first_mut() {
                    None => entry.metrics.push(metric),
                    Some(existing) => {
                        if !(existing.kind == metric.kind && update(existing, &metric)) {
                            out.count("aggregate_failed_updates", 1);
                            *existing = metric;
                        }
                    }
                }
            }
            (Auto | Latest | Diff, Absolute) => {
                let entry = self.slot(&metric, finalizers);
                entry.metrics = vec![metric];
            }
            (Count, _) => {
                let one = Metric { value: MetricValue::Counter { value: 1.0 }, ..metric };
                let entry = self.slot(&one, finalizers);
                match entry.metrics.first_mut() {
                    None => entry.metrics.push(one),
                    Some(existing) => {
                        if !(existing.kind == one.kind && update(existing, &one)) {
                            out.count("aggregate_failed_updates", 1);
                        }
                    }
                }
            }
            (Max | Min, Absolute) => {
                let max = self.mode == Max;
                let entry = self.slot(&metric, finalizers);
                match entry.metrics.first_mut() {
                    None => entry.metrics.push(metric),
                    Some(existing) => {
                        if let (MetricValue::Gauge { value: old }, MetricValue::Gauge { value: new }) = (&existing.value, &metric.value) {
                            if (max && new > old) || (!max && new < old) {
                                *existing = metric;
                            }
                        }
                    }
                }
            }
            (Mean | Stdev, Absolute) => {
                if matches!(metric.value, MetricValue::Gauge { .. }) {
                    self.slot(&metric, finalizers).metrics.push(metric);
                } else {
                    // As Vector: it has no mean, and is dropped (here, counted).
                    out.discarded += 1;
                }
            }
        }
        out.count("aggregate_events_recorded_total", 1);
    }

    /// The entry of `metric`'s series, made if new, now also answering to `finalizers`.
    fn slot(&mut self, metric: &Metric, finalizers: Finalizers) -> &mut Entry {
        let seen = &mut self.seen;
        let entry = self.entries.entry(Series::of(metric)).or_insert_with(|| {
            *seen += 1;
            Entry { order: *seen, metrics: Vec::new(), finalizers: Finalizers::default() }
        });
        entry.finalizers.merge(finalizers);
        entry
    }

    fn flush(&mut self, out: &mut TransformOutput) {
        let mut entries: Vec<(Series, Entry)> = self.entries.drain().collect();
        entries.sort_unstable_by_key(|(_, entry)| entry.order);
        let mut current = HashMap::new();
        for (series, entry) in entries {
            let metric = match self.mode {
                Mode::Mean | Mode::Stdev => spread(entry.metrics, self.mode),
                Mode::Diff => entry.metrics.into_iter().next().map(|mut metric| {
                    current.insert(series.clone(), metric.clone());
                    if let Some(previous) = self.previous.get(&series).filter(|p| p.kind == metric.kind) {
                        if !subtract(&mut metric.value, &previous.value) {
                            out.count("aggregate_failed_updates", 1);
                        }
                    }
                    metric
                }),
                _ => entry.metrics.into_iter().next(),
            };
            if let Some(metric) = metric {
                out.primary.push(Event { data: EventData::Metric(metric), finalizers: entry.finalizers });
            }
        }
        if self.mode == Mode::Diff {
            self.previous = current;
        }
        out.count("aggregate_flushes_total", 1);
    }
}

impl Transform for Aggregate {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        for event in batch {
            self.record(event, out);
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn tick(&mut self, _last: bool, out: &mut TransformOutput) {
        self.flush(out);
    }
}

/// The mean (or standard deviation) of gauges, as a gauge with the first's
/// series and the latest timestamp.
fn spread(gauges: Vec<Metric>, mode: Mode) -> Option<Metric> {
    let values: Vec<f64> = gauges
        .iter()
        .filter_map(|m| match m.value {
            MetricValue::Gauge { value } => Some(value),
            _ => None,
        })
        .collect();
    let timestamp = gauges.iter().filter_map(|m| m.timestamp).max();
    let mut metric = gauges.into_iter().next()?;
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let value = match mode {
        Mode::Stdev => (values.iter().map(|v| (mean - v) * (mean - v)).sum::<f64>() / n).sqrt(),
        _ => mean,
    };
    metric.value = MetricValue::Gauge { value };
    metric.timestamp = timestamp;
    Some(metric)
}

/// Add `new` into `existing` (values and time), if they can be added.
fn update(existing: &mut Metric, new: &Metric) -> bool {
    if !add(&mut existing.value, &new.value) {
        return false;
    }
    existing.timestamp = existing.timestamp.max(new.timestamp);
    if !new.exemplars.is_empty() {
        existing.exemplars.clone_from(&new.exemplars);
    }
    true
}

fn add(value: &mut MetricValue, other: &MetricValue) -> bool {
    match (value, other) {
        (MetricValue::Counter { value }, MetricValue::Counter { value: more })
        | (MetricValue::Gauge { value }, MetricValue::Gauge { value: more }) => {
            *value += more;
            true
        }
        (MetricValue::Distribution { samples, statistic }, MetricValue::Distribution { samples: more, statistic: other })
            if statistic == other =>
        {
            samples.extend_from_slice(more);
            true
        }
        (MetricValue::Set { values }, MetricValue::Set { values: more }) => {
            values.extend(more.iter().cloned());
            true
        }
        (MetricValue::Histogram { buckets, count, sum }, MetricValue::Histogram { buckets: more, count: more_count, sum: more_sum })
            if same_bounds(buckets, more) =>
        {
            buckets.iter_mut().zip(more).for_each(|(b, m)| b.count += m.count);
            *count += more_count;
            *sum += more_sum;
            true
        }
        _ => false,
    }
}

/// `value - other`, as Vector's: a counter or a histogram that went
/// backwards (a restart) cannot be subtracted.
fn subtract(value: &mut MetricValue, other: &MetricValue) -> bool {
    match (value, other) {
        (MetricValue::Counter { value }, MetricValue::Counter { value: less }) if *value >= *less => {
            *value -= less;
            true
        }
        (MetricValue::Gauge { value }, MetricValue::Gauge { value: less }) => {
            *value -= less;
            true
        }
        (MetricValue::Distribution { samples, statistic }, MetricValue::Distribution { samples: less, statistic: other })
            if statistic == other =>
        {
            samples.retain(|sample| !less.contains(sample));
            true
        }
        (MetricValue::Set { values }, MetricValue::Set { values: less }) => {
            values.retain(|value| !less.contains(value));
            true
        }
        (MetricValue::Histogram { buckets, count, sum }, MetricValue::Histogram { buckets: less, count: less_count, sum: less_sum })
            if *count >= *less_count && same_bounds(buckets, less) && buckets.iter().zip(less).all(|(b, l)| b.count >= l.count) =>
        {
            buckets.iter_mut().zip(less).for_each(|(b, l)| b.count -= l.count);
            *count -= less_count;
            *sum -= less_sum;
            true
        }
        _ => false,
    }
}

fn same_bounds(a: &[crate::event::Bucket], b: &[crate::event::Bucket]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.upper_limit == y.upper_limit)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::event::{BatchNotifier, Bucket, EventStatus, Statistic};

    fn aggregate(mode: &str) -> Aggregate {
        Aggregate::new(&toml_edit::de::from_str(&format!("mode = \"{mode}\"")).unwrap())
    }

    fn at(time: &str) -> DateTime<Utc> {
        time.parse().unwrap()
    }

    fn metric(name: &str, kind: MetricKind, value: MetricValue) -> Metric {
        Metric::new(name, kind, value)
    }

    fn counter(kind: MetricKind, value: f64) -> Metric {
        metric("c", kind, MetricValue::Counter { value })
    }

    fn gauge(value: f64) -> Metric {
        metric("g", MetricKind::Absolute, MetricValue::Gauge { value })
    }

    /// Record `metrics` (what passes through at once is returned first), then flush.
    fn interval(a: &mut Aggregate, metrics: Vec<Metric>) -> (Vec<Metric>, Vec<Metric>, TransformOutput) {
        let mut out = TransformOutput::default();
        a.transform(metrics.into_iter().map(Event::metric).collect(), &mut out);
        let passed = take(&mut out);
        a.tick(false, &mut out);
        let flushed = take(&mut out);
        (passed, flushed, out)
    }

    fn take(out: &mut TransformOutput) -> Vec<Metric> {
        out.primary
            .drain(..)
            .map(|e| match e.data {
                EventData::Metric(m) => m,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn own(out: &TransformOutput, name: &str) -> u64 {
        out.counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    /// Vector's documented example "Aggregate over 5 seconds".
    #[test]
    fn vector_example_aggregate_over_5_seconds() {
        let mut a = Aggregate::new(&toml_edit::de::from_str("interval_ms = 5000").unwrap());
        assert_eq!(a.tick_interval(), Some(Duration::from_secs(5)));
        let m = |kind, name: &str, time: &str, host: &str, value| {
            metric(name, kind, MetricValue::Counter { value }).with_timestamp(at(time)).with_tag("host", host)
        };
        use MetricKind::{Absolute, Incremental};
        let input = vec![
            m(Incremental, "counter.1", "2021-07-12T07:58:44.223543Z", "my.host.com", 1.1),
            m(Incremental, "counter.1", "2021-07-12T07:58:45.223543Z", "my.host.com", 2.2),
            m(Incremental, "counter.1", "2021-07-12T07:58:45.223543Z", "different.host.com", 1.1),
            m(Absolute, "gauge.1", "2021-07-12T07:58:47.223543Z", "my.host.com", 22.33),
            m(Absolute, "gauge.1", "2021-07-12T07:58:45.223543Z", "my.host.com", 44.55),
        ];
        let (passed, flushed, out) = interval(&mut a, input);
        assert!(passed.is_empty());
        assert_eq!(
            flushed,
            [
                // The documentation prints 3.3: the f64 sum of 1.1 and 2.2, in Vector as here.
                m(Incremental, "counter.1", "2021-07-12T07:58:45.223543Z", "my.host.com", 1.1 + 2.2),
                m(Incremental, "counter.1", "2021-07-12T07:58:45.223543Z", "different.host.com", 1.1),
                m(Absolute, "gauge.1", "2021-07-12T07:58:45.223543Z", "my.host.com", 44.55),
            ]
        );
        assert_eq!((own(&out, "aggregate_events_recorded_total"), own(&out, "aggregate_flushes_total")), (5, 1));
    }

    #[test]
    fn auto_sums_incremental_and_keeps_the_latest_absolute() {
        use MetricKind::Incremental;
        let mut a = aggregate("Auto");
        let (_, flushed, out) = interval(
            &mut a,
            vec![
                counter(Incremental, 10.0),
                counter(Incremental, 13.0),
                gauge(93.0),
                gauge(95.0),
                metric("x", Incremental, MetricValue::Gauge { value: 2.0 }),
            ],
        );
        assert_eq!(flushed, [counter(Incremental, 23.0), gauge(95.0), metric("x", Incremental, MetricValue::Gauge { value: 2.0 })]);
        assert_eq!(own(&out, "aggregate_failed_updates"), 0);
        // The next interval starts empty.
        assert_eq!(interval(&mut a, vec![]).1, []);
    }

    #[test]
    fn sum_adds_distributions_and_like_histograms_and_replaces_what_does_not_add() {
        use MetricKind::{Absolute, Incremental};
        let histogram = |counts: [u64; 2], bounds: [f64; 2]| {
            let buckets = bounds.iter().zip(counts).map(|(&upper_limit, count)| Bucket { upper_limit, count }).collect();
            metric("h", Incremental, MetricValue::Histogram { buckets, count: counts.iter().sum(), sum: 1.5 })
        };
        let distribution =
            |samples: Vec<(f64, u32)>| metric("d", Incremental, MetricValue::Distribution { samples, statistic: Statistic::Histogram });
        let mut a = aggregate("Sum");
        let (passed, flushed, out) = interval(
            &mut a,
            vec![
                histogram([1, 2], [0.1, f64::INFINITY]),
                histogram([3, 4], [0.1, f64::INFINITY]),
                distribution(vec![(1.0, 1)]),
                distribution(vec![(2.0, 1), (3.0, 2)]),
                gauge(7.0),
                counter(Incremental, 1.0),
                // Another bucket layout: replaces, counted.
                histogram([5, 6], [0.5, f64::INFINITY]),
                // The same series, now absolute: passes through under Sum.
                counter(Absolute, 100.0),
            ],
        );
        assert_eq!(passed, [gauge(7.0), counter(Absolute, 100.0)]);
        assert_eq!(
            flushed,
            [histogram([5, 6], [0.5, f64::INFINITY]), distribution(vec![(1.0, 1), (2.0, 1), (3.0, 2)]), counter(Incremental, 1.0)]
        );
        assert_eq!(own(&out, "aggregate_failed_updates"), 1);

        // Samples meant for a summary do not join those meant for a histogram.
        let summary_samples =
            metric("d", Incremental, MetricValue::Distribution { samples: vec![(9.0, 1)], statistic: Statistic::Summary });
        let mut a = aggregate("Sum");
        let (_, flushed, out) = interval(&mut a, vec![distribution(vec![(1.0, 1)]), summary_samples.clone()]);
        assert_eq!(flushed, [summary_samples]);
        assert_eq!(own(&out, "aggregate_failed_updates"), 1);

        // Sets unite.
        let set = |values: &[&str]| metric("u", Incremental, MetricValue::Set { values: values.iter().map(|v| v.to_string()).collect() });
        let mut a = aggregate("Sum");
        let (_, flushed, _) = interval(&mut a, vec![set(&["a", "b"]), set(&["b", "c"])]);
        assert_eq!(flushed, [set(&["a", "b", "c"])]);

        let mut a = aggregate("Sum");
        let summary = |n| metric("s", Incremental, MetricValue::Summary { quantiles: vec![], count: n, sum: 1.0 });
        let (_, flushed, out) = interval(&mut a, vec![summary(1), summary(2)]);
        assert_eq!(flushed, [summary(2)], "summaries do not add: the latest replaces");
        assert_eq!(own(&out, "aggregate_failed_updates"), 1);
    }

    #[test]
    fn latest_keeps_the_last_absolute_and_passes_incremental() {
        use MetricKind::Incremental;
        let mut a = aggregate("Latest");
        let (passed, flushed, _) = interval(&mut a, vec![gauge(1.0), counter(Incremental, 5.0), gauge(3.0), gauge(2.0)]);
        assert_eq!((passed, flushed), (vec![counter(Incremental, 5.0)], vec![gauge(2.0)]));
    }

    #[test]
    fn count_counts_metrics_of_either_kind() {
        use MetricKind::{Absolute, Incremental};
        let mut a = aggregate("Count");
        let (passed, flushed, _) =
            interval(&mut a, vec![gauge(1.0), gauge(9.0), gauge(4.0), counter(Incremental, 50.0), counter(Incremental, 7.0)]);
        assert!(passed.is_empty());
        assert_eq!(flushed, [metric("g", Absolute, MetricValue::Counter { value: 3.0 }), counter(Incremental, 2.0)]);
    }

    #[test]
    fn diff_subtracts_the_previous_interval() {
        use MetricKind::{Absolute, Incremental};
        let mut a = aggregate("Diff");
        let (passed, flushed, _) = interval(&mut a, vec![gauge(10.0), counter(Absolute, 100.0), counter(Incremental, 1.0)]);
        assert_eq!((passed, flushed), (vec![counter(Incremental, 1.0)], vec![gauge(10.0), counter(Absolute, 100.0)]));
        let (_, flushed, out) = interval(&mut a, vec![gauge(12.0), gauge(15.0), counter(Absolute, 130.0)]);
        assert_eq!(flushed, [gauge(5.0), counter(Absolute, 30.0)]);
        assert_eq!(own(&out, "aggregate_failed_updates"), 0);
        // A counter that went back (a restart) is not subtracted: its value goes out, counted.
        let (_, flushed, out) = interval(&mut a, vec![counter(Absolute, 20.0)]);
        assert_eq!(flushed, [counter(Absolute, 20.0)]);
        assert_eq!(own(&out, "aggregate_failed_updates"), 1);
    }

    #[test]
    fn max_and_min_keep_the_extreme_gauge() {
        use MetricKind::Incremental;
        let values = [4.0, 9.0, 1.0, 6.0];
        for (mode, want) in [("Max", 9.0), ("Min", 1.0)] {
            let mut a = aggregate(mode);
            let mut input: Vec<Metric> = values.iter().map(|&v| gauge(v)).collect();
            input.push(counter(Incremental, 3.0));
            let (passed, flushed, _) = interval(&mut a, input);
            assert_eq!((passed, flushed), (vec![counter(Incremental, 3.0)], vec![gauge(want)]), "{mode}");
        }
    }

    #[test]
    fn mean_and_stdev_of_gauges() {
        use MetricKind::Absolute;
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        for (mode, want) in [("Mean", 5.0), ("Stdev", 2.0)] {
            let mut a = aggregate(mode);
            let mut input: Vec<Metric> = values
                .iter()
                .enumerate()
                .map(|(n, &v)| gauge(v).with_timestamp(DateTime::from_timestamp(1_700_000_000 + n as i64, 0).unwrap()))
                .collect();
            input.push(counter(Absolute, 3.0));
            let (passed, flushed, out) = interval(&mut a, input);
            assert!(passed.is_empty());
            assert_eq!(flushed, [gauge(want).with_timestamp(DateTime::from_timestamp(1_700_000_007, 0).unwrap())], "{mode}");
            // The absolute counter has no mean: dropped, counted.
            assert_eq!(out.discarded, 1, "{mode}");
        }
    }

    #[test]
    fn an_aggregate_answers_to_every_metric_in_it() {
        use MetricKind::Incremental;
        let mut a = aggregate("Auto");
        let (notifier, mut status) = BatchNotifier::new();
        let mut out = TransformOutput::default();
        for n in 0..3 {
            let mut event = Event::metric(counter(Incremental, n as f64));
            event.finalizers = Finalizers::new(notifier.clone());
            a.transform(vec![event], &mut out);
        }
        drop(notifier);
        assert!(status.try_recv().is_err());
        a.tick(true, &mut out);
        assert_eq!(out.primary.len(), 1);
        out.primary[0].finalizers.update_status(EventStatus::Errored);
        out.primary.clear();
        assert_eq!(status.try_recv().unwrap(), EventStatus::Errored);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(toml_edit::de::from_str::<AggregateConfig>("mode = \"average\"").is_err());
        assert!(toml_edit::de::from_str::<AggregateConfig>("mode = \"auto\"").is_err());
        assert!(toml_edit::de::from_str::<AggregateConfig>("window_ms = 5").is_err());
        let zero: AggregateConfig = toml_edit::de::from_str("interval_ms = 0").unwrap();
        assert_eq!(zero.build().err().unwrap().to_string(), "`interval_ms` must be at least 1");
    }
}
