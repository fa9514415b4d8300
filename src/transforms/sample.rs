//! `sample`: Vector's sampler, deterministic as Vector's is.
//!
//! - `rate = N` keeps the 1st, (N+1)th, (2N+1)th … event of each group
//!   (`group_by`, a template; one group without it);
//! - `ratio = r` keeps a share `r` of each group's events, evenly spread
//!   (Vector's ratio sampler: with 0.5, every other event, the first kept);
//! - with `key_field`, an event holding that field is kept or dropped by the
//!   seahash of the field's text (kept when the hash is a multiple of N, or
//!   below `r` of the hash range): every event with the same value meets the
//!   same fate, here and in Vector.
//!
//! Events meeting `exclude` always pass. Kept events get the rate (`"10"`,
//! `"0.25"`) under `sample_rate_key` (a log field; a request record's tag);
//! the others are dropped and counted (`component_discarded_events_total`,
//! `sample_discarded_events_total`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use vrl::path::OwnedValuePath;

use super::util::{holds, value_path, Condition, VrlProgram};
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{Event, EventBatch, EventData, Kinds, Value};
use crate::telemetry::LogLimiter;
use crate::template::{self, Template};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep 1 event in `rate`.
    pub rate: Option<u64>,
    /// Or keep this share of the events, in (0, 1].
    pub ratio: Option<f64>,
    /// A field whose value decides for every event holding it.
    pub key_field: Option<String>,
    /// A template: each rendered value is sampled on its own.
    pub group_by: Option<String>,
    pub exclude: Option<Condition>,
    /// Where kept events get the rate; `""` for nowhere.
    #[serde(default = "default_sample_rate_key")]
    pub sample_rate_key: String,
}

fn default_sample_rate_key() -> String {
    "sample_rate".into()
}

impl TransformConfig for SampleConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Sample::new(self)?))
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Rate(u64),
    /// The ratio, and the same scaled to the range of a 64-bit hash.
    Ratio(f64, u64),
}

struct Sample {
    mode: Mode,
    /// What kept events are marked with.
    label: Value,
    key_field: Option<OwnedValuePath>,
    group_by: Option<Template>,
    exclude: Option<VrlProgram>,
    rate_key: Option<(OwnedValuePath, String)>,
    /// Per group: events seen (rate), or the ratio sampler's running value.
    groups: HashMap<Option<String>, Group>,
    log: LogLimiter,
}

enum Group {
    Seen(u64),
    Carry(f64),
}

impl Sample {
    fn new(config: &SampleConfig) -> Result<Sample, String> {
        let mode = match (config.rate, config.ratio) {
            (Some(_), Some(_)) => return Err("set `rate` or `ratio`, not both".into()),
            (None, None) => return Err("set `rate` (keep 1 event in N) or `ratio` (keep this share)".into()),
            (Some(0), None) => return Err("`rate` must be at least 1".into()),
            (Some(rate), None) => Mode::Rate(rate),
            (None, Some(ratio)) if !(ratio > 0.0 && ratio <= 1.0) => {
                return Err(format!("`ratio` must be above 0 and at most 1, not {ratio}"));
            }
            (None, Some(ratio)) => Mode::Ratio(ratio, (ratio * u64::MAX as f64) as u64),
        };
        let label = match mode {
            Mode::Rate(rate) => rate.to_string(),
            Mode::Ratio(ratio, _) => ratio.to_string(),
        };
        let rate_key = match config.sample_rate_key.as_str() {
            "" => None,
            key => Some((value_path(key).map_err(|e| format!("`sample_rate_key`: {e}"))?, key.trim_start_matches('.').to_string())),
        };
        Ok(Sample {
            mode,
            label: Value::from(label),
            key_field: config.key_field.as_deref().map(value_path).transpose().map_err(|e| format!("`key_field`: {e}"))?,
            group_by: config.group_by.as_deref().map(Template::parse).transpose().map_err(|e| format!("`group_by`: {e}"))?,
            exclude: config.exclude.as_ref().map(Condition::compile).transpose().map_err(|e| format!("`exclude`: {e}"))?,
            rate_key,
            groups: HashMap::new(),
            log: LogLimiter::new(Duration::from_secs(10)),
        })
    }

    /// Whether to keep `event`; the group's counter moves on either way.
    fn keep(&mut self, event: &Event, out: &mut TransformOutput) -> bool {
        let group = match &self.group_by {
            None => None,
            Some(template) => match template.render(event) {
                Ok(group) => Some(group),
                Err(e) => {
                    out.errors += 1;
                    if let Some(held_back) = self.log.allow(1) {
                        tracing::warn!(error = %e, held_back, "sample: `group_by` did not render; the event is sampled with those without a group");
                    }
                    None
                }
            },
        };
        let by_order = match (self.mode, self.groups.entry(group).or_insert_with(|| Group::new(self.mode))) {
            (Mode::Rate(rate), Group::Seen(seen)) => {
                *seen += 1;
                (*seen - 1) % rate == 0
            }
            (Mode::Ratio(ratio, _), Group::Carry(carry)) => {
                let sum = *carry + ratio;
                *carry = if sum >= 1.0 { sum - 1.0 } else { sum };
                sum >= 1.0
            }
            _ => unreachable!("a group is made for the mode"),
        };
        let key = self.key_field.as_ref().and_then(|path| template::field(event, path));
        match key {
            None => by_order,
            Some(value) => {
                let hash = seahash::hash(value.to_string_lossy().as_bytes());
                match self.mode {
                    Mode::Rate(rate) => hash.is_multiple_of(rate),
                    Mode::Ratio(_, threshold) => hash <= threshold,
                }
            }
        }
    }

    fn mark(&self, event: &mut Event) {
        let Some((path, name)) = &self.rate_key else { return };
        match &mut event.data {
            EventData::Log(log) => {
                log.insert(path, self.label.clone());
            }
            EventData::Record(record) => {
                record.tags.insert(name.clone(), self.label.to_string_lossy().into_owned());
            }
            // Only logs are wired here.
            EventData::Metric(_) | EventData::Span(_) => {}
        }
    }
}

impl Group {
    fn new(mode: Mode) -> Group {
        match mode {
            Mode::Rate(_) => Group::Seen(0),
            // Vector's ratio sampler starts one ratio short of 1: the first event is kept.
            Mode::Ratio(ratio, _) => Group::Carry(1.0 - ratio),
        }
    }
}

impl Transform for Sample {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        for mut event in batch {
            if holds(&mut self.exclude, &mut event, "sample: `exclude`", &self.log, out) {
                out.primary.push(event);
                continue;
            }
            if self.keep(&event, out) {
                self.mark(&mut event);
                out.primary.push(event);
            } else {
                out.discarded += 1;
                out.count("sample_discarded_events_total", 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::RequestRecord;

    fn sample(config: &str) -> Sample {
        Sample::new(&toml_edit::de::from_str(config).unwrap()).unwrap()
    }

    fn run(s: &mut Sample, events: Vec<serde_json::Value>) -> (Vec<serde_json::Value>, TransformOutput) {
        let mut out = TransformOutput::default();
        s.transform(events.into_iter().map(|v| Event::log(Value::from(v))).collect(), &mut out);
        let kept = out.primary.drain(..).map(|e| serde_json::to_value(e.to_value()).unwrap()).collect();
        (kept, out)
    }

    fn numbered(n: usize) -> Vec<serde_json::Value> {
        (0..n).map(|n| json!({ "n": n })).collect()
    }

    fn ns(kept: &[serde_json::Value]) -> Vec<u64> {
        kept.iter().map(|e| e["n"].as_u64().unwrap()).collect()
    }

    #[test]
    fn rate_keeps_every_nth_event_starting_with_the_first() {
        let mut s = sample("rate = 4");
        let (kept, out) = run(&mut s, numbered(10));
        assert_eq!(ns(&kept), [0, 4, 8]);
        assert_eq!(kept[0], json!({"n": 0, "sample_rate": "4"}));
        assert_eq!((out.discarded, out.counts.clone()), (7, vec![("sample_discarded_events_total", 7)]));
        // The count goes on across batches.
        assert_eq!(ns(&run(&mut s, numbered(4)).0), [2]);
    }

    #[test]
    fn ratio_spreads_the_kept_share_evenly() {
        let (kept, _) = run(&mut sample("ratio = 0.5"), numbered(6));
        assert_eq!(ns(&kept), [0, 2, 4]);
        assert_eq!(kept[0]["sample_rate"], "0.5");
        let (kept, _) = run(&mut sample("ratio = 0.25\nsample_rate_key = \"\""), numbered(8));
        assert_eq!(kept, [json!({"n": 0}), json!({"n": 4})]);
        assert_eq!(run(&mut sample("ratio = 1.0"), numbered(5)).0.len(), 5);
    }

    #[test]
    fn groups_are_sampled_apart() {
        let mut s = sample("rate = 2\ngroup_by = \"{{ service }}\"");
        let events = ["a", "a", "b", "a", "b", "b"].iter().enumerate().map(|(n, s)| json!({"service": s, "n": n})).collect();
        let (kept, _) = run(&mut s, events);
        // a: 0 (1st), 3 (3rd); b: 2 (1st), 5 (3rd).
        assert_eq!(ns(&kept), [0, 2, 3, 5]);
    }

    #[test]
    fn a_key_decides_the_same_way_for_every_event_holding_it() {
        let mut s = sample("rate = 3\nkey_field = \"trace_id\"");
        let ids: Vec<String> = (0..300).map(|n| format!("trace-{n}")).collect();
        // Each id three times, interleaved: all copies of an id share a fate.
        let events: Vec<_> = (0..3).flat_map(|_| ids.iter().map(|id| json!({ "trace_id": id }))).collect();
        let (kept, _) = run(&mut s, events);
        let mut copies = std::collections::BTreeMap::new();
        for event in &kept {
            *copies.entry(event["trace_id"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        assert!(copies.values().all(|&n| n == 3));
        // The fate is seahash's, as in Vector: kept when the hash is a multiple of 3.
        let expected: std::collections::BTreeSet<String> =
            ids.iter().filter(|id| seahash::hash(id.as_bytes()).is_multiple_of(3)).cloned().collect();
        assert_eq!(copies.into_keys().collect::<std::collections::BTreeSet<_>>(), expected);
        assert!((80..=120).contains(&expected.len()), "about a third: {}", expected.len());
        // Events without the field are sampled by their order.
        let (kept, _) = run(&mut sample("rate = 3\nkey_field = \"trace_id\""), numbered(6));
        assert_eq!(ns(&kept), [0, 3]);
    }

    #[test]
    fn excluded_events_always_pass_unmarked() {
        let mut s = sample("rate = 10\nexclude = 'to_int!(.status) >= 500'");
        let events = [200, 500, 200, 503, 200].iter().map(|s| json!({ "status": s })).collect();
        let (kept, out) = run(&mut s, events);
        assert_eq!(kept, [json!({"status": 200, "sample_rate": "10"}), json!({"status": 500}), json!({"status": 503})]);
        assert_eq!(out.discarded, 2);
    }

    #[test]
    fn records_stay_records_with_the_rate_as_a_tag() {
        let mut s = sample("rate = 2\nkey_field = \"request_id\"");
        let ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let batch = ids.iter().map(|id| Event::record(RequestRecord { request_id: Some(id.to_string()), ..Default::default() })).collect();
        let mut out = TransformOutput::default();
        s.transform(batch, &mut out);
        let kept: Vec<&str> = out
            .primary
            .iter()
            .map(|e| match &e.data {
                EventData::Record(r) => {
                    assert_eq!(r.tags.get("sample_rate").map(String::as_str), Some("2"));
                    r.request_id.as_deref().unwrap()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<&str> = ids.iter().copied().filter(|id| seahash::hash(id.as_bytes()).is_multiple_of(2)).collect();
        assert_eq!(kept, expected);
    }

    #[test]
    fn bad_options_are_refused() {
        let error = |text: &str| Sample::new(&toml_edit::de::from_str(text).unwrap()).err().unwrap();
        assert_eq!(error("rate = 0"), "`rate` must be at least 1");
        assert_eq!(error("rate = 2\nratio = 0.5"), "set `rate` or `ratio`, not both");
        assert!(error("").starts_with("set `rate`"));
        assert!(error("ratio = 1.5").starts_with("`ratio` must be above 0"));
        assert!(toml_edit::de::from_str::<SampleConfig>("rate = 2\nrate_field = \"r\"").is_err());
    }
}
