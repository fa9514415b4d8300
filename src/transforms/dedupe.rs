//! `dedupe`: Vector's transform of that name. An event whose chosen fields
//! equal those of one of the last `cache.num_events` events seen is a
//! duplicate: it is dropped and counted (`component_discarded_events_total`
//! and `dedupe_duplicates_total`); the others go on unchanged.
//!
//! The cache is an LRU: a duplicate moves its entry back to the newest place,
//! and a new entry beyond `num_events` evicts the least recently seen one.
//! With `time_settings.max_age_ms`, an entry older than that no longer makes
//! an event a duplicate (the event passes and renews the entry), as Vector's
//! timed cache does.
//!
//! Request records go on as records, compared by their fields (read by name
//! with `fields.match`; with `fields.ignore`, through a converted copy).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use vrl::path::OwnedValuePath;

use super::util::value_path;
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{Event, EventBatch, EventData, Kinds, Value};
use crate::template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// `match` (compare only these fields) or `ignore` (all but these);
    /// by default, as Vector: `message`, `host` and `timestamp`.
    pub fields: Option<FieldsConfig>,
    #[serde(default)]
    pub cache: CacheConfig,
    pub time_settings: Option<TimeSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum FieldsConfig {
    #[serde(rename = "match")]
    Match(Vec<String>),
    #[serde(rename = "ignore")]
    Ignore(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub num_events: NonZeroUsize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { num_events: NonZeroUsize::new(5000).expect("not zero") }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSettings {
    pub max_age_ms: u64,
    #[serde(default)]
    pub refresh_on_drop: bool,
}

/// Vector's defaults: its log schema's message, host and timestamp keys.
const DEFAULT_MATCH: &[&str] = &["message", "host", "timestamp"];

impl TransformConfig for DedupeConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Dedupe::new(self)?))
    }
}

#[derive(Debug)]
enum Fields {
    Match(Vec<OwnedValuePath>),
    Ignore(Vec<OwnedValuePath>),
}

/// What two events are compared by.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Each matched field's value, `None` when absent (absent differs from null).
    Match(Vec<Option<Value>>),
    /// The whole event without the ignored fields.
    Ignore(Value),
}

struct Dedupe {
    fields: Fields,
    cache: Lru,
    max_age: Option<Duration>,
    refresh_on_drop: bool,
}

impl Dedupe {
    fn new(config: &DedupeConfig) -> Result<Dedupe, String> {
        let paths = |names: &[String]| names.iter().map(|n| value_path(n)).collect::<Result<Vec<_>, _>>();
        let fields = match &config.fields {
            None => Fields::Match(DEFAULT_MATCH.iter().map(|n| value_path(n)).collect::<Result<_, _>>()?),
            Some(FieldsConfig::Match(names)) if names.is_empty() => return Err("`fields.match` lists no field".into()),
            Some(FieldsConfig::Match(names)) => Fields::Match(paths(names)?),
            Some(FieldsConfig::Ignore(names)) => Fields::Ignore(paths(names)?),
        };
        let time = config.time_settings.as_ref();
        Ok(Dedupe {
            fields,
            cache: Lru::new(config.cache.num_events.get()),
            max_age: time.map(|t| Duration::from_millis(t.max_age_ms)),
            refresh_on_drop: time.is_some_and(|t| t.refresh_on_drop),
        })
    }

    fn key(&self, event: &Event) -> Key {
        match &self.fields {
            Fields::Match(paths) => Key::Match(paths.iter().map(|path| template::field(event, path).map(|v| v.into_owned())).collect()),
            Fields::Ignore(paths) => {
                let mut whole = match &event.data {
                    EventData::Log(value) => value.clone(),
                    _ => event.to_value(),
                };
                for path in paths {
                    whole.remove(path, false);
                }
                Key::Ignore(whole)
            }
        }
    }

    /// Whether `event`, seen at `now`, is a duplicate (and the cache updated).
    fn is_duplicate(&mut self, event: &Event, now: Instant) -> bool {
        let key = self.key(event);
        let Some(max_age) = self.max_age else {
            return self.cache.put(key, now).is_some();
        };
        match self.cache.touch(&key) {
            Some(seen) => {
                let duplicate = now.saturating_duration_since(seen) < max_age;
                if self.refresh_on_drop || !duplicate {
                    self.cache.put(key, now);
                }
                duplicate
            }
            None => {
                self.cache.put(key, now);
                false
            }
        }
    }

    fn run(&mut self, batch: EventBatch, now: Instant, out: &mut TransformOutput) {
        for event in batch {
            if self.is_duplicate(&event, now) {
                out.discarded += 1;
                out.count("dedupe_duplicates_total", 1);
            } else {
                out.primary.push(event);
            }
        }
        out.gauge("dedupe_cache_events", self.cache.len() as u64);
    }
}

impl Transform for Dedupe {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        self.run(batch, Instant::now(), out);
    }
}

/// A least-recently-used map from keys to when each was stored.
struct Lru {
    capacity: usize,
    entries: HashMap<Arc<Key>, (u64, Instant)>,
    /// Keys by their last use, oldest first.
    order: BTreeMap<u64, Arc<Key>>,
    next: u64,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Lru { capacity, entries: HashMap::new(), order: BTreeMap::new(), next: 0 }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Mark a key as just used; its stored time, if present.
    fn touch(&mut self, key: &Key) -> Option<Instant> {
        let next = self.next;
        let (shared, (used, stored)) = self.entries.get_key_value(key).map(|(k, v)| (k.clone(), *v))?;
        self.order.remove(&used);
        self.order.insert(next, shared.clone());
        self.entries.insert(shared, (next, stored));
        self.next += 1;
        Some(stored)
    }

    /// Store a key as the newest, evicting the oldest beyond capacity; the
    /// time it held before, if it was there.
    fn put(&mut self, key: Key, now: Instant) -> Option<Instant> {
        let key = Arc::new(key);
        let before = self.entries.insert(key.clone(), (self.next, now));
        if let Some((used, _)) = before {
            self.order.remove(&used);
        }
        self.order.insert(self.next, key);
        self.next += 1;
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        before.map(|(_, stored)| stored)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::RequestRecord;

    fn dedupe(config: &str) -> Dedupe {
        Dedupe::new(&toml_edit::de::from_str(config).unwrap()).unwrap()
    }

    fn logs(values: &[serde_json::Value]) -> EventBatch {
        values.iter().map(|v| Event::log(Value::from(v.clone()))).collect()
    }

    fn run_at(d: &mut Dedupe, events: EventBatch, now: Instant) -> (Vec<serde_json::Value>, TransformOutput) {
        let mut out = TransformOutput::default();
        d.run(events, now, &mut out);
        let kept = out.primary.drain(..).map(|e| serde_json::to_value(e.to_value()).unwrap()).collect();
        (kept, out)
    }

    fn own(out: &TransformOutput, name: &str) -> u64 {
        out.counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    #[test]
    fn default_fields_are_message_host_and_timestamp() {
        let mut d = dedupe("");
        let a = json!({"message": "hi", "host": "h1", "timestamp": "2020-10-07T12:33:21Z", "other": 1});
        let same_but_other = json!({"message": "hi", "host": "h1", "timestamp": "2020-10-07T12:33:21Z", "other": 2});
        let other_host = json!({"message": "hi", "host": "h2", "timestamp": "2020-10-07T12:33:21Z"});
        let (kept, out) = run_at(&mut d, logs(&[a.clone(), same_but_other, other_host.clone()]), Instant::now());
        assert_eq!(kept, [a, other_host]);
        assert_eq!((out.discarded, own(&out, "dedupe_duplicates_total")), (1, 1));
    }

    #[test]
    fn match_compares_only_the_listed_fields_and_absent_differs_from_null() {
        let mut d = dedupe("fields.match = [\"a\", \"parent.child\"]");
        let events = [
            json!({"a": 1, "parent": {"child": "x"}, "b": 1}),
            json!({"a": 1, "parent": {"child": "x"}, "b": 2}),
            json!({"a": "1", "parent": {"child": "x"}}),
            json!({"a": null, "b": 5}),
            json!({"b": 5}),
            json!({"b": 6}),
        ];
        let (kept, out) = run_at(&mut d, logs(&events), Instant::now());
        assert_eq!(kept, [events[0].clone(), events[2].clone(), events[3].clone(), events[4].clone()]);
        assert_eq!(out.discarded, 2);
    }

    #[test]
    fn ignore_compares_everything_else() {
        let mut d = dedupe("fields.ignore = [\"timestamp\", \"meta.seq\"]");
        let events = [
            json!({"message": "m", "timestamp": 1, "meta": {"seq": 1, "zone": "a"}}),
            json!({"message": "m", "timestamp": 2, "meta": {"seq": 2, "zone": "a"}}),
            json!({"message": "m", "timestamp": 3, "meta": {"seq": 3, "zone": "b"}}),
        ];
        let (kept, _) = run_at(&mut d, logs(&events), Instant::now());
        assert_eq!(kept, [events[0].clone(), events[2].clone()]);
    }

    #[test]
    fn the_cache_evicts_the_least_recently_seen() {
        let mut d = dedupe("fields.match = [\"id\"]\ncache.num_events = 2");
        let now = Instant::now();
        let id = |n: i64| json!({ "id": n });
        // 1 and 2 fill the cache; 1 again is a duplicate and becomes the newest,
        // so 3 evicts 2; 2 then passes and evicts 1; 3 is a duplicate; 1 passes.
        let (kept, out) = run_at(&mut d, logs(&[id(1), id(2), id(1), id(3), id(2), id(3), id(1)]), now);
        assert_eq!(kept, [id(1), id(2), id(3), id(2), id(1)]);
        assert_eq!(out.discarded, 2);
        assert_eq!(d.cache.len(), 2);
    }

    #[test]
    fn max_age_lets_an_old_duplicate_through() {
        let mut d = dedupe("fields.match = [\"id\"]\ntime_settings.max_age_ms = 1000");
        let t0 = Instant::now();
        let id = json!({"id": 1});
        assert_eq!(run_at(&mut d, logs(&[id.clone(), id.clone()]), t0).0.len(), 1);
        // 0.9 s later: still a duplicate, and (no refresh_on_drop) its age is kept.
        assert_eq!(run_at(&mut d, logs(std::slice::from_ref(&id)), t0 + Duration::from_millis(900)).0.len(), 0);
        // 1 s after it was stored: passes, and is stored anew.
        assert_eq!(run_at(&mut d, logs(std::slice::from_ref(&id)), t0 + Duration::from_millis(1000)).0.len(), 1);
        assert_eq!(run_at(&mut d, logs(std::slice::from_ref(&id)), t0 + Duration::from_millis(1900)).0.len(), 0);

        let mut refreshing = dedupe("fields.match = [\"id\"]\ntime_settings = { max_age_ms = 1000, refresh_on_drop = true }");
        assert_eq!(run_at(&mut refreshing, logs(std::slice::from_ref(&id)), t0).0.len(), 1);
        assert_eq!(run_at(&mut refreshing, logs(std::slice::from_ref(&id)), t0 + Duration::from_millis(900)).0.len(), 0);
        // The drop at 0.9 s renewed the entry: at 1.5 s it is still a duplicate.
        assert_eq!(run_at(&mut refreshing, logs(std::slice::from_ref(&id)), t0 + Duration::from_millis(1500)).0.len(), 0);
    }

    #[test]
    fn records_are_compared_by_field_and_stay_records() {
        let mut d = dedupe("fields.match = [\"request_id\", \"status\"]");
        let record =
            |id: &str, status| Event::record(RequestRecord { request_id: Some(id.into()), status: Some(status), ..Default::default() });
        let mut out = TransformOutput::default();
        d.run(vec![record("a", 200), record("a", 200), record("a", 500), record("b", 200)], Instant::now(), &mut out);
        assert_eq!(out.primary.len(), 3);
        assert!(out.primary.iter().all(|e| matches!(e.data, EventData::Record(_))));
    }

    #[test]
    fn bad_options_are_refused() {
        let refused = |text: &str| toml_edit::de::from_str::<DedupeConfig>(text).is_err();
        assert!(refused("cache.num_events = 0"));
        assert!(refused("fields = { match = [\"a\"], ignore = [\"b\"] }"));
        assert!(refused("cache.size = 3"));
        let empty: DedupeConfig = toml_edit::de::from_str("fields.match = []").unwrap();
        assert_eq!(empty.build().err().unwrap().to_string(), "`fields.match` lists no field");
    }
}
