//! `throttle`: Vector's rate limiter. Each bucket (one per value of the
//! `key_field` template, or one for all) lets through at most `threshold`
//! events at once and then one more every `window_secs / threshold` seconds:
//! the generic cell rate algorithm (GCRA) Vector uses, so a bucket averages
//! `threshold` events per `window_secs`. Events over the limit are dropped
//! and counted (`component_discarded_events_total`,
//! `throttle_discarded_events_total`); events meeting `exclude` are never
//! limited. Buckets fully replenished are forgotten at each window's tick.
//!
//! Request records are keyed through the same template (their fields by
//! name) and go on as records.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::util::{holds, Condition, VrlProgram};
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{EventBatch, Kinds};
use crate::telemetry::LogLimiter;
use crate::template::Template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Events allowed per bucket per window.
    pub threshold: u32,
    pub window_secs: f64,
    /// A template: one bucket per rendered value.
    pub key_field: Option<String>,
    /// Events meeting this condition are never limited.
    pub exclude: Option<Condition>,
    #[serde(default)]
    pub internal_metrics: InternalMetricsConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalMetricsConfig {
    /// Vector's per-key `events_discarded_total`: not offered (unbounded
    /// label values); only `false` is accepted.
    #[serde(default)]
    pub emit_events_discarded_per_key: bool,
}

impl TransformConfig for ThrottleConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Throttle::new(self)?))
    }
}

struct Throttle {
    /// The time one cell takes to come back: `window / threshold`.
    cell: Duration,
    /// How far ahead of now a bucket's theoretical arrival time may run:
    /// `threshold` cells, the burst.
    burst: Duration,
    window: Duration,
    key: Option<Template>,
    exclude: Option<VrlProgram>,
    /// Per key (`None`: no key, or its template did not render): when the
    /// bucket is next empty of debt (GCRA's theoretical arrival time).
    buckets: HashMap<Option<String>, Instant>,
    log: LogLimiter,
}

impl Throttle {
    fn new(config: &ThrottleConfig) -> Result<Throttle, String> {
        if config.threshold == 0 {
            return Err("`threshold` must be at least 1".into());
        }
        if !config.window_secs.is_finite() || config.window_secs <= 0.0 {
            return Err(format!("`window_secs` must be a positive number of seconds, not {}", config.window_secs));
        }
        if config.internal_metrics.emit_events_discarded_per_key {
            return Err("`internal_metrics.emit_events_discarded_per_key` is not supported: tapline counts discarded events per component (`throttle_discarded_events_total`), not per key".into());
        }
        let window = Duration::from_secs_f64(config.window_secs);
        let cell = window / config.threshold;
        Ok(Throttle {
            cell,
            burst: cell * config.threshold,
            window,
            key: config.key_field.as_deref().map(Template::parse).transpose().map_err(|e| format!("`key_field`: {e}"))?,
            exclude: config.exclude.as_ref().map(Condition::compile).transpose().map_err(|e| format!("`exclude`: {e}"))?,
            buckets: HashMap::new(),
            log: LogLimiter::new(Duration::from_secs(10)),
        })
    }

    /// Take a cell from `key`'s bucket at `now`, if it has one.
    fn allow(&mut self, key: Option<String>, now: Instant) -> bool {
        let tat = self.buckets.get(&key).copied().unwrap_or(now).max(now);
        let next = tat + self.cell;
        if next.saturating_duration_since(now) > self.burst {
            return false;
        }
        self.buckets.insert(key, next);
        true
    }

    fn run(&mut self, batch: EventBatch, now: Instant, out: &mut TransformOutput) {
        for mut event in batch {
            if holds(&mut self.exclude, &mut event, "throttle: `exclude`", &self.log, out) {
                out.primary.push(event);
                continue;
            }
            let key = match &self.key {
                None => None,
                Some(template) => match template.render(&event) {
                    Ok(key) => Some(key),
                    Err(e) => {
                        // As Vector: the event goes to the bucket of events without a key.
                        out.errors += 1;
                        if let Some(held_back) = self.log.allow(1) {
                            tracing::warn!(error = %e, held_back, "throttle: `key_field` did not render; the event shares the bucket without a key");
                        }
                        None
                    }
                },
            };
            if self.allow(key, now) {
                out.primary.push(event);
            } else {
                out.discarded += 1;
                out.count("throttle_discarded_events_total", 1);
            }
        }
    }

    /// Forget the buckets whose every cell is back: they act as new ones.
    fn forget_full(&mut self, now: Instant) {
        self.buckets.retain(|_, tat| *tat > now);
    }
}

impl Transform for Throttle {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        self.run(batch, Instant::now(), out);
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.window.max(Duration::from_millis(100)))
    }

    fn tick(&mut self, _last: bool, out: &mut TransformOutput) {
        self.forget_full(Instant::now());
        out.gauge("throttle_buckets", self.buckets.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{Event, RequestRecord, Value};

    fn throttle(config: &str) -> Throttle {
        Throttle::new(&toml_edit::de::from_str(config).unwrap()).unwrap()
    }

    fn run_at(t: &mut Throttle, events: &[serde_json::Value], now: Instant) -> (Vec<serde_json::Value>, TransformOutput) {
        let mut out = TransformOutput::default();
        t.run(events.iter().map(|v| Event::log(Value::from(v.clone()))).collect(), now, &mut out);
        let kept = out.primary.drain(..).map(|e| serde_json::to_value(e.to_value()).unwrap()).collect();
        (kept, out)
    }

    fn own(out: &TransformOutput, name: &str) -> u64 {
        out.counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    /// Vector's documented example "Rate limiting": threshold 1 per 60 s.
    #[test]
    fn vector_example_rate_limiting() {
        let mut t = throttle("threshold = 1\nwindow_secs = 60");
        let first = json!({"timestamp": "2020-10-07T12:33:21.223543Z", "message": "First message", "host": "host-1.hostname.com"});
        let second = json!({"timestamp": "2020-10-07T12:33:21.223543Z", "message": "Second message", "host": "host-1.hostname.com"});
        let (kept, out) = run_at(&mut t, &[first.clone(), second], Instant::now());
        assert_eq!(kept, [first]);
        assert_eq!((out.discarded, own(&out, "throttle_discarded_events_total")), (1, 1));
    }

    #[test]
    fn a_bucket_refills_one_cell_per_window_over_threshold() {
        let mut t = throttle("threshold = 3\nwindow_secs = 60");
        let t0 = Instant::now();
        let events: Vec<_> = (0..5).map(|n| json!({ "n": n })).collect();
        let (kept, out) = run_at(&mut t, &events, t0);
        assert_eq!((kept.len(), out.discarded), (3, 2));
        // 19.9 s on: no cell back yet (one comes back every 20 s).
        assert_eq!(run_at(&mut t, &events[..1], t0 + Duration::from_millis(19_900)).0.len(), 0);
        // 20 s on: one cell.
        assert_eq!(run_at(&mut t, &events[..2], t0 + Duration::from_secs(20)).0.len(), 1);
        // A whole window after the last cell was taken: the full burst again.
        let (kept, out) = run_at(&mut t, &events, t0 + Duration::from_secs(80));
        assert_eq!((kept.len(), out.discarded), (3, 2));
    }

    #[test]
    fn each_key_has_its_own_limit_and_missing_keys_share_one() {
        let mut t = throttle("threshold = 2\nwindow_secs = 3600\nkey_field = \"{{ service }}\"");
        let now = Instant::now();
        let event = |service: &str, n: i64| json!({"service": service, "n": n});
        let mut events: Vec<_> = (0..4).map(|n| event("orders", n)).collect();
        events.extend((0..3).map(|n| event("users", n)));
        events.extend((0..3).map(|n| json!({ "n": n })));
        let (kept, out) = run_at(&mut t, &events, now);
        let kept_of = |service: Option<&str>| kept.iter().filter(|e| e["service"].as_str() == service).count();
        assert_eq!((kept_of(Some("orders")), kept_of(Some("users")), kept_of(None)), (2, 2, 2));
        assert_eq!((out.discarded, own(&out, "throttle_discarded_events_total")), (4, 4));
        // The events without the field count as template errors, as in Vector.
        assert_eq!(out.errors, 3);
        assert_eq!(t.buckets.len(), 3);
    }

    #[test]
    fn excluded_events_are_never_limited() {
        let mut t = throttle("threshold = 1\nwindow_secs = 3600\nexclude = 'to_int!(.status) >= 500'");
        let events: Vec<_> = [200, 200, 500, 503, 200].iter().map(|s| json!({ "status": s })).collect();
        let (kept, out) = run_at(&mut t, &events, Instant::now());
        assert_eq!(kept, [json!({"status": 200}), json!({"status": 500}), json!({"status": 503})]);
        assert_eq!(out.discarded, 2);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut t = throttle("threshold = 2\nwindow_secs = 10\nkey_field = \"{{ k }}\"");
        let t0 = Instant::now();
        run_at(&mut t, &[json!({"k": "a"}), json!({"k": "b"}), json!({"k": "b"})], t0);
        t.forget_full(t0 + Duration::from_secs(5));
        assert_eq!(t.buckets.len(), 1, "b took two cells: one is still out at 5 s");
        t.forget_full(t0 + Duration::from_secs(10));
        assert!(t.buckets.is_empty());
    }

    #[test]
    fn records_are_keyed_by_their_fields() {
        let mut t = throttle("threshold = 1\nwindow_secs = 3600\nkey_field = \"{{ service }}\"");
        let record = |service: &str| Event::record(RequestRecord { service: Some(service.into()), ..Default::default() });
        let mut out = TransformOutput::default();
        t.run(vec![record("a"), record("a"), record("b")], Instant::now(), &mut out);
        assert_eq!((out.primary.len(), out.discarded, out.errors), (2, 1, 0));
    }

    #[test]
    fn bad_options_are_refused() {
        let error = |text: &str| Throttle::new(&toml_edit::de::from_str(text).unwrap()).err().unwrap();
        assert_eq!(error("threshold = 0\nwindow_secs = 1"), "`threshold` must be at least 1");
        assert!(error("threshold = 1\nwindow_secs = 0").starts_with("`window_secs` must be a positive"));
        assert!(error("threshold = 1\nwindow_secs = 1\ninternal_metrics.emit_events_discarded_per_key = true").contains("not supported"));
        assert!(toml_edit::de::from_str::<ThrottleConfig>("threshold = 1\nwindow_secs = 1\nreroute_dropped = true").is_err());
    }
}
