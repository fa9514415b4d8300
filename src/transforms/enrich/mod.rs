//! `enrich`: add fields to events from lookup tables, applied in order (a
//! `process` table can fill `container_id` that a later table keys on).
//!
//! One module per kind of table: [`file`] (CSV or JSON rows by key), [`cidr`]
//! (IP → row, longest prefix), [`process`] (/proc by pid), [`host`] (this
//! machine), [`kubernetes`] (pods by IP or container id, from a watch of
//! the API server). Enrichment adds, never replaces: every value goes through
//! [`FieldPath::set_if_absent`]. A table that finds nothing for an event
//! counts a miss; the event passes anyway.

pub mod cidr;
pub mod file;
pub mod host;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod process;

use std::time::Duration;

use serde::Deserialize;

use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};

use crate::event::{Event, EventBatch, FieldPath, Kinds};

/// Own counters (`tapline_<name>` on /metrics).
pub const MISSES: &str = "enrich_misses_total";
pub const RELOADS: &str = "enrich_reloads_total";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// How often table files are checked for changes; 0: never.
    #[serde(default = "default_reload_interval")]
    pub reload_interval_secs: u64,
    pub tables: Vec<TableConfig>,
}

fn default_reload_interval() -> u64 {
    5
}

/// One lookup table; one variant per kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TableConfig {
    File(file::FileTableConfig),
    Cidr(cidr::CidrTableConfig),
    Process(process::ProcessTableConfig),
    Host(host::HostTableConfig),
    #[cfg(feature = "kubernetes")]
    Kubernetes(kubernetes::KubernetesConfig),
    /// Read, so that choosing it says which feature the build lacks.
    #[cfg(not(feature = "kubernetes"))]
    Kubernetes(serde::de::IgnoredAny),
}

impl TableConfig {
    fn kind(&self) -> &'static str {
        match self {
            TableConfig::File(_) => "file",
            TableConfig::Cidr(_) => "cidr",
            TableConfig::Process(_) => "process",
            TableConfig::Host(_) => "host",
            TableConfig::Kubernetes(_) => "kubernetes",
        }
    }

    fn build(&self) -> Result<Box<dyn Table>, String> {
        Ok(match self {
            TableConfig::File(c) => Box::new(c.build()?),
            TableConfig::Cidr(c) => Box::new(c.build()?),
            TableConfig::Process(c) => Box::new(c.build()?),
            TableConfig::Host(c) => Box::new(c.build()?),
            #[cfg(feature = "kubernetes")]
            TableConfig::Kubernetes(c) => Box::new(c.build()?),
            #[cfg(not(feature = "kubernetes"))]
            TableConfig::Kubernetes(_) => {
                return Err("`kubernetes` tables are not in this build of tapline: build with the `kubernetes` feature".into())
            }
        })
    }
}

/// A table, running.
pub trait Table: Send {
    /// Add what the table knows about the event; `false` on a miss (no key
    /// in the event, or no row for it).
    fn enrich(&mut self, event: &mut Event) -> bool;

    /// Background work, started with the topology (not at `build`, which
    /// `validate` also runs).
    fn start(&mut self) {}

    /// Look for a newer version of the table (every `reload_interval_secs`).
    fn refresh(&mut self) -> Refresh {
        Refresh::Unchanged
    }

    /// Whether `refresh` has anything to look at.
    fn refreshes(&self) -> bool {
        false
    }
}

#[derive(Debug, PartialEq)]
pub enum Refresh {
    Unchanged,
    Reloaded,
    /// The new version could not be loaded; the old one stays. The message names the file.
    Failed(String),
}

impl TransformConfig for EnrichConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn outputs(&self, input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(input)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        if self.tables.is_empty() {
            return Err("`tables` is empty: give at least one table".into());
        }
        let tables = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| t.build().map_err(|e| format!("table {} (`{}`): {e}", i + 1, t.kind())))
            .collect::<Result<Vec<_>, _>>()?;
        let reload =
            (self.reload_interval_secs > 0 && tables.iter().any(|t| t.refreshes())).then(|| Duration::from_secs(self.reload_interval_secs));
        Ok(Box::new(Enrich { tables, reload }))
    }
}

pub struct Enrich {
    tables: Vec<Box<dyn Table>>,
    reload: Option<Duration>,
}

impl Transform for Enrich {
    fn transform(&mut self, mut batch: EventBatch, out: &mut TransformOutput) {
        let mut misses = 0;
        for event in batch.iter_mut() {
            for table in &mut self.tables {
                if !table.enrich(event) {
                    misses += 1;
                }
            }
        }
        if misses > 0 {
            out.count(MISSES, misses);
        }
        if out.primary.is_empty() {
            out.primary = batch;
        } else {
            out.primary.append(&mut batch);
        }
    }

    fn start(&mut self) {
        for table in &mut self.tables {
            table.start();
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.reload
    }

    fn tick(&mut self, last: bool, out: &mut TransformOutput) {
        if last {
            return;
        }
        for table in &mut self.tables {
            match table.refresh() {
                Refresh::Unchanged => {}
                Refresh::Reloaded => out.count(RELOADS, 1),
                Refresh::Failed(error) => {
                    tracing::warn!(%error, "enrich: table not reloaded; keeping the previous version");
                    out.errors += 1;
                }
            }
        }
    }
}

/// Values for a list of fields, in the same order; `None` is not written.
pub type Row = Box<[Option<Box<str>>]>;

/// Write a row's values under their fields, keeping what the event has.
fn write(fields: &[FieldPath], row: &[Option<Box<str>>], event: &mut Event) {
    for (field, value) in fields.iter().zip(row) {
        if let Some(value) = value {
            field.set_if_absent(event, value);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::RequestRecord;

    pub fn config(toml: &str) -> EnrichConfig {
        toml_edit::de::from_str(toml).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn run(transform: &mut Box<dyn Transform>, events: Vec<Event>) -> (Vec<Event>, u64) {
        let mut out = TransformOutput::new(&[]);
        transform.transform(events, &mut out);
        let misses = out.counts.iter().find(|(n, _)| *n == MISSES).map_or(0, |(_, n)| *n);
        (out.primary, misses)
    }

    pub fn record(record: RequestRecord) -> Event {
        Event::record(record)
    }

    pub fn tags(event: &Event) -> Vec<(String, String)> {
        match &event.data {
            crate::event::EventData::Record(r) => r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => panic!("not a record"),
        }
    }

    #[test]
    fn options_are_checked() {
        let err = toml_edit::de::from_str::<EnrichConfig>("tables = []\nreload = 3\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `reload`"), "{err}");
        let err = toml_edit::de::from_str::<EnrichConfig>("[[tables]]\ntype = \"host\"\nname = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `name`"), "{err}");
        let err = toml_edit::de::from_str::<EnrichConfig>("[[tables]]\ntype = \"nope\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown variant `nope`"), "{err}");
        assert_eq!(config("tables = []").build().err().unwrap().to_string(), "`tables` is empty: give at least one table");
        let err =
            config("[[tables]]\ntype = \"file\"\npath = \"/nonexistent/t.csv\"\nkey = [\"service\"]\n").build().err().unwrap().to_string();
        assert!(err.starts_with("table 1 (`file`): cannot read /nonexistent/t.csv: "), "{err}");
    }

    #[test]
    fn tables_apply_in_order_and_every_event_passes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "service,team\norders,payments\n").unwrap();
        // The second table keys on what the first added.
        std::fs::write(dir.path().join("b.csv"), "team,oncall\npayments,alice\n").unwrap();
        let mut transform = config(&format!(
            "[[tables]]\ntype = \"file\"\npath = \"{0}/a.csv\"\nkey = [\"service\"]\n\
             [[tables]]\ntype = \"file\"\npath = \"{0}/b.csv\"\nkey = {{ team = \"tags.team\" }}\n",
            dir.path().display()
        ))
        .build()
        .unwrap();
        assert_eq!(transform.tick_interval(), Some(Duration::from_secs(5)));
        let log = Event::log(serde_json::json!({"message": "x"}));
        let (out, misses) =
            run(&mut transform, vec![record(RequestRecord { service: Some("orders".into()), ..Default::default() }), log.clone()]);
        assert_eq!(out.len(), 2);
        assert_eq!(tags(&out[0]), vec![("oncall".into(), "alice".into()), ("team".into(), "payments".into())]);
        assert_eq!(out[1].data, log.data, "untouched");
        assert_eq!(misses, 2, "one per table for the log");
    }
}
