//! Loading `pipeline.toml`: read the files, replace `${VAR}`, parse with
//! positions kept, build each component's typed config, then check the graph.
//! Every error names the file, line and column, and where it can, the nearest
//! valid name.

mod diagnostic;
mod env;
pub mod format;
mod graph;
pub mod unit_test;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml_edit::{ImDocument, Item};

pub use diagnostic::{Diagnostic, Pos, Severity};
pub use format::Format;
pub use graph::OutputId;

use crate::component::{BufferConfig, ComponentKind, OutputDef};
use crate::enrichment;
use crate::registry::{self, ComponentConfig};

/// The embedded default pipeline: runs with no file and no external service.
pub const QUICKSTART: &str = include_str!("../../config/examples/quickstart.toml");

/// One `inputs` entry as written, and the outputs it names once resolved.
#[derive(Debug, Clone)]
pub struct Input {
    pub pattern: String,
    pub pos: Pos,
    pub resolved: Vec<OutputId>,
}

#[derive(Debug)]
pub struct Component {
    pub id: String,
    pub kind: ComponentKind,
    pub type_name: String,
    pub pos: Pos,
    pub config: ComponentConfig,
    pub inputs: Vec<Input>,
    /// The input buffer (sinks may set it; transforms use the default).
    pub buffer: BufferConfig,
    /// A sink's own `acknowledgements` setting.
    pub acknowledgements: Option<bool>,
    /// The config table without `inputs`, to tell on reload whether the
    /// component itself changed or only its wiring.
    pub fingerprint: serde_json::Value,
}

impl Component {
    /// This component's outputs (their ports do not depend on what it receives).
    pub fn outputs(&self) -> Vec<OutputDef> {
        graph::outputs(&self.config, crate::event::Kinds::ALL)
    }

    /// Every output this component reads from.
    pub fn upstream(&self) -> impl Iterator<Item = &OutputId> {
        self.inputs.iter().flat_map(|i| i.resolved.iter())
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "crate::defaults::yes")]
    pub enabled: bool,
    #[serde(default = "api_address")]
    pub address: String,
    /// Set in the config (else the defaults apply, and a taken port only warns).
    #[serde(skip)]
    pub explicit: bool,
}

fn api_address() -> String {
    "127.0.0.1:8686".into()
}

/// `acknowledgements = true` or Vector's `acknowledgements.enabled = true`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AcknowledgementsConfig {
    Flag(bool),
    Table { enabled: bool },
}

impl AcknowledgementsConfig {
    pub fn enabled(self) -> bool {
        match self {
            AcknowledgementsConfig::Flag(b) | AcknowledgementsConfig::Table { enabled: b } => b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalOptions {
    pub data_dir: Option<PathBuf>,
    pub acknowledgements: bool,
    pub api: ApiConfig,
}

impl Default for GlobalOptions {
    fn default() -> Self {
        GlobalOptions { data_dir: None, acknowledgements: false, api: ApiConfig { enabled: true, address: api_address(), explicit: false } }
    }
}

#[derive(Debug, Default)]
pub struct Config {
    pub global: GlobalOptions,
    pub components: BTreeMap<String, Component>,
    pub tests: Vec<unit_test::UnitTestDef>,
    /// `[enrichment_tables.NAME]`, loaded.
    pub enrichment_tables: enrichment::Tables,
    pub warnings: Vec<Diagnostic>,
    /// The files this config came from, for `--watch-config`.
    pub files: Vec<PathBuf>,
}

impl Config {
    pub fn of_kind(&self, kind: ComponentKind) -> impl Iterator<Item = &Component> {
        self.components.values().filter(move |c| c.kind == kind)
    }
}

/// Where the config comes from.
#[derive(Debug, Clone, Default)]
pub struct ConfigPaths {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

/// Where an installed tapline finds its config when given none (as Vector reads /etc/vector).
pub const INSTALLED_CONFIG_DIR: &str = "/etc/tapline";

impl ConfigPaths {
    /// These paths, or when there are none, `dir` if it holds a config file
    /// (an installed tapline); else none, and the embedded quickstart runs.
    pub fn or_installed(self, dir: &Path) -> Self {
        if self.files.is_empty() && self.dirs.is_empty() && config_files(dir).is_ok_and(|found| !found.is_empty()) {
            return ConfigPaths { files: Vec::new(), dirs: vec![dir.to_path_buf()] };
        }
        self
    }

    /// The files to read: `--config` ones in order, then the config files
    /// (`*.toml`, `*.yaml`, `*.yml`, `*.json`) of each `--config-dir` in name order.
    pub fn resolve(&self) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
        let mut files = self.files.clone();
        for dir in &self.dirs {
            let found =
                config_files(dir).map_err(|e| vec![Diagnostic::error(format!("cannot read config directory {}: {e}", dir.display()))])?;
            if found.is_empty() {
                return Err(vec![Diagnostic::error(format!(
                    "config directory {} holds no config file (.toml, .yaml, .yml or .json)",
                    dir.display()
                ))]);
            }
            files.extend(found);
        }
        Ok(files)
    }
}

/// The config files of a directory (by extension), in name order.
fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|x| x.to_str()).is_some_and(|x| Format::EXTENSIONS.contains(&x)) && p.is_file())
        .collect();
    found.sort();
    Ok(found)
}

/// A config file written in another format (`tapline convert`): the same
/// keys in the same order, `${VAR}` kept as written; comments are not carried.
/// Only the syntax is checked (a file may be one part of a split config).
pub fn convert(file: &Path, to: Format) -> Result<String, Diagnostic> {
    let name: Arc<str> = Arc::from(file.display().to_string());
    let text = std::fs::read_to_string(file).map_err(|e| Diagnostic::error(format!("cannot read config file {name}: {e}")))?;
    let from = Format::of(file);
    let toml = match from {
        Format::Toml => text,
        _ => {
            format::to_toml(&text, from)
                .map_err(|e| Diagnostic::error(e.message).at(Pos { file: name.clone(), line: e.at.line, column: e.at.column }))?
                .toml
        }
    };
    let doc = toml.parse::<toml_edit::DocumentMut>().map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        Diagnostic::error(format!("invalid {}: {}", from.name(), e.message().trim())).at(Pos::from_offset(&name, &toml, offset))
    })?;
    Ok(format::render(&doc, to))
}

/// Load and check a config from files. `Err` holds every error found.
pub fn load(paths: &ConfigPaths) -> Result<Config, Vec<Diagnostic>> {
    let files = paths.resolve()?;
    let mut sources = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| vec![Diagnostic::error(format!("cannot read config file {}: {e}", file.display()))])?;
        sources.push((file.display().to_string(), text));
    }
    let mut config = load_from_texts(&sources, &|name| std::env::var(name).ok())?;
    config.files = files;
    Ok(config)
}

/// Load and check a config from (name, text) pairs, as if each were a file.
pub fn load_from_texts(texts: &[(String, String)], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Diagnostic>> {
    let mut loader = Loader::default();
    for (name, text) in texts {
        loader.add_file(name, text, env);
    }
    loader.finish()
}

#[derive(Default)]
struct Loader {
    errors: Vec<Diagnostic>,
    config: Config,
    /// Where each global option was set, to report a conflict between files.
    global_set: BTreeMap<&'static str, Pos>,
}

const TOP_LEVEL: &[&str] = &["data_dir", "acknowledgements", "api", "enrichment_tables", "sources", "transforms", "sinks", "tests"];

impl Loader {
    fn add_file(&mut self, name: &str, raw: &str, env: &dyn Fn(&str) -> Option<String>) {
        let file: Arc<str> = Arc::from(name);
        let text = match env::interpolate(raw, env) {
            Ok(text) => text,
            Err(errors) => {
                for (offset, d) in errors {
                    self.errors.push(d.at(Pos::from_offset(&file, raw, offset)));
                }
                return;
            }
        };
        // YAML and JSON are read as the TOML they translate to, with positions mapped back.
        let format = Format::of(Path::new(name));
        let translated = match format {
            Format::Toml => None,
            _ => match format::to_toml(&text, format) {
                Ok(translated) => Some(translated),
                Err(e) => {
                    self.errors.push(Diagnostic::error(e.message).at(Pos { file, line: e.at.line, column: e.at.column }));
                    return;
                }
            },
        };
        let pos_of = |offset: usize| match &translated {
            None => Pos::from_offset(&file, &text, offset),
            Some(t) => {
                let origin = t.origin(offset);
                Pos { file: file.clone(), line: origin.line, column: origin.column }
            }
        };
        let doc = match ImDocument::parse(translated.as_ref().map_or(text.as_str(), |t| t.toml.as_str())) {
            Ok(doc) => doc,
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                let message = e.message().trim().to_string();
                self.errors.push(Diagnostic::error(format!("invalid {}: {message}", format.name())).at(pos_of(offset)));
                return;
            }
        };
        let at = |span: Option<std::ops::Range<usize>>| pos_of(span.map(|s| s.start).unwrap_or(0));
        let root = doc.as_table();
        for (key, item) in root.iter() {
            let key_span = root.key(key).and_then(|k| k.span());
            let pos = at(key_span.clone());
            match key {
                "sources" => self.add_components(ComponentKind::Source, item, &at),
                "transforms" => self.add_components(ComponentKind::Transform, item, &at),
                "sinks" => self.add_components(ComponentKind::Sink, item, &at),
                "enrichment_tables" => self.add_enrichment_tables(item, &at),
                "tests" => match unit_test::parse(item) {
                    Ok(tests) => self.config.tests.extend(tests.into_iter().map(|t| t.at(pos.clone()))),
                    Err(e) => self.errors.push(de_error(e, &at)),
                },
                "data_dir" => match item.as_str() {
                    Some(dir) => self.set_global(
                        "data_dir",
                        pos,
                        |g| g.data_dir = Some(PathBuf::from(dir)),
                        |g| g.data_dir.as_deref() == Some(Path::new(dir)),
                    ),
                    None => self.errors.push(Diagnostic::error("`data_dir` must be a string (a directory path)").at(at(item.span()))),
                },
                "acknowledgements" => match deserialize::<AcknowledgementsConfig>(item) {
                    Ok(acks) => {
                        let on = acks.enabled();
                        self.set_global("acknowledgements", pos, |g| g.acknowledgements = on, |g| g.acknowledgements == on)
                    }
                    Err(_) => self.errors.push(
                        Diagnostic::error("`acknowledgements` must be `true`, `false` or `{ enabled = true }`")
                            .at(at(item.span().or(key_span))),
                    ),
                },
                "api" => match deserialize::<ApiConfig>(item).map(|api| ApiConfig { explicit: true, ..api }) {
                    Ok(api) => self.set_global("api", pos, |g| g.api = api.clone(), |g| g.api == api),
                    Err(e) => self.errors.push(de_error(e, &at)),
                },
                other => self.errors.push(Diagnostic::unknown("top-level option", other, TOP_LEVEL).at(pos)),
            }
        }
    }

    /// Load each table now: the VRL programs compile against them.
    fn add_enrichment_tables(&mut self, item: &Item, at: &dyn Fn(Option<std::ops::Range<usize>>) -> Pos) {
        let Some(tables) = item.as_table_like() else {
            self.errors.push(Diagnostic::error("`enrichment_tables` must be a table of tables").at(at(item.span())));
            return;
        };
        for (name, table) in tables.iter() {
            let pos = at(tables.key(name).and_then(|k| k.span()));
            if self.config.enrichment_tables.contains_key(name) {
                self.errors.push(Diagnostic::error(format!("enrichment table `{name}` is defined twice")).at(pos));
                continue;
            }
            match deserialize::<enrichment::TableConfig>(table) {
                Ok(config) => match config.load() {
                    Ok(loaded) => {
                        self.config.enrichment_tables.insert(name.to_string(), Arc::new(loaded));
                    }
                    Err(e) => self.errors.push(Diagnostic::error(format!("enrichment table `{name}`: {e}")).at(pos)),
                },
                Err(e) => self.errors.push(de_error(e, at).with_context(format!("in enrichment table `{name}`"))),
            }
        }
    }

    fn set_global(&mut self, name: &'static str, pos: Pos, set: impl FnOnce(&mut GlobalOptions), same: impl Fn(&GlobalOptions) -> bool) {
        if let Some(first) = self.global_set.get(name) {
            if !same(&self.config.global) {
                self.errors.push(Diagnostic::error(format!("`{name}` is set differently in two places (first at {first})")).at(pos));
            }
            return;
        }
        set(&mut self.config.global);
        self.global_set.insert(name, pos);
    }

    fn add_components(&mut self, kind: ComponentKind, item: &Item, at: &dyn Fn(Option<std::ops::Range<usize>>) -> Pos) {
        let Some(table) = item.as_table_like() else {
            self.errors.push(Diagnostic::error(format!("`{}` must be a table of components", kind.table())).at(at(item.span())));
            return;
        };
        for (id, item) in table.iter() {
            let pos = at(table.key(id).and_then(|k| k.span()));
            if let Err(message) = graph::check_id(id) {
                self.errors.push(Diagnostic::error(message).at(pos.clone()));
            }
            if let Some(existing) = self.config.components.get(id) {
                self.errors.push(
                    Diagnostic::error(format!("component id `{id}` is already used by the {} at {}", existing.kind.as_str(), existing.pos))
                        .at(pos),
                );
                continue;
            }
            match build_component(kind, id, item, pos, at) {
                Ok(component) => {
                    self.config.components.insert(id.to_string(), component);
                }
                Err(errors) => self.errors.extend(errors),
            }
        }
    }

    fn finish(mut self) -> Result<Config, Vec<Diagnostic>> {
        if self.errors.is_empty() {
            graph::check(&mut self.config, &mut self.errors);
        }
        if self.errors.is_empty() {
            // Values serde cannot check, and the VRL of every transform: errors here are config errors.
            for c in self.config.components.values() {
                let checked = match &c.config {
                    ComponentConfig::Source(s) => s.check(),
                    ComponentConfig::Transform(t) => enrichment::with_tables(&self.config.enrichment_tables, || t.build()).map(|_| ()),
                    ComponentConfig::Sink(s) => s.check(),
                };
                if let Err(e) = checked {
                    self.errors
                        .push(Diagnostic::error(format!("{} `{}` (type `{}`): {e}", c.kind.as_str(), c.id, c.type_name)).at(c.pos.clone()));
                }
                let warnings = match &c.config {
                    ComponentConfig::Source(s) => s.warnings(),
                    ComponentConfig::Sink(s) => s.warnings(),
                    ComponentConfig::Transform(_) => Vec::new(),
                };
                for w in warnings {
                    let at = c.pos.clone();
                    self.config
                        .warnings
                        .push(Diagnostic::warning(format!("{} `{}` (type `{}`): {w}", c.kind.as_str(), c.id, c.type_name)).at(at));
                }
            }
            if self.config.global.api.enabled && !crate::net::is_loopback(&self.config.global.api.address) {
                self.config.warnings.push(Diagnostic::warning(format!(
                    "the admin API listens on {} without auth: anyone who can reach it reads every component's counters; keep it on 127.0.0.1 or firewall it",
                    self.config.global.api.address
                )));
            }
        }
        if self.errors.is_empty() {
            for test in &self.config.tests {
                test.check(&self.config, &mut self.errors);
            }
        }
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors)
        }
    }
}

/// The options every component of a kind may have beside its own.
fn common_keys(kind: ComponentKind) -> &'static [&'static str] {
    match kind {
        ComponentKind::Source => &["type"],
        ComponentKind::Transform => &["type", "inputs"],
        ComponentKind::Sink => &["type", "inputs", "buffer", "acknowledgements"],
    }
}

fn build_component(
    kind: ComponentKind,
    id: &str,
    item: &Item,
    pos: Pos,
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> Pos,
) -> Result<Component, Vec<Diagnostic>> {
    let Some(table) = item.as_table_like() else {
        return Err(vec![Diagnostic::error(format!("{} `{id}` must be a table", kind.as_str())).at(pos)]);
    };
    let mut errors = Vec::new();
    let component_type = match table.get("type") {
        None => {
            return Err(vec![Diagnostic::error(format!("{} `{id}` has no `type`", kind.as_str()))
                .with_help(format!("one of: {}", registry::names(kind).join(", ")))
                .at(pos)])
        }
        Some(t) => match t.as_str() {
            Some(name) => match registry::find(kind, name) {
                Some(ty) => match ty.missing_feature {
                    None => ty,
                    Some(feature) => {
                        return Err(vec![Diagnostic::error(format!("{} type `{name}` is not in this build of tapline", kind.as_str()))
                            .with_help(format!(
                                "build with the `{feature}` feature (it is in the default set): cargo build --features {feature}"
                            ))
                            .at(at(t.span()))]);
                    }
                },
                None => {
                    return Err(vec![
                        Diagnostic::unknown(&format!("{} type", kind.as_str()), name, &registry::names(kind)).at(at(t.span()))
                    ]);
                }
            },
            None => return Err(vec![Diagnostic::error("`type` must be a string").at(at(t.span()))]),
        },
    };
    let type_name = component_type.name.to_string();

    let mut inputs = Vec::new();
    if kind != ComponentKind::Source {
        match table.get("inputs") {
            None => errors.push(
                Diagnostic::error(format!("{} `{id}` has no `inputs`", kind.as_str()))
                    .with_help("add `inputs = [\"<component id>\"]`")
                    .at(pos.clone()),
            ),
            Some(list) => match list.as_array() {
                Some(array) if !array.is_empty() => {
                    for value in array.iter() {
                        match value.as_str() {
                            Some(pattern) => {
                                inputs.push(Input { pattern: pattern.to_string(), pos: at(value.span()), resolved: Vec::new() })
                            }
                            None => errors.push(Diagnostic::error("each input must be a string").at(at(value.span()))),
                        }
                    }
                }
                Some(_) => {
                    errors.push(Diagnostic::error(format!("{} `{id}` has an empty `inputs` list", kind.as_str())).at(at(list.span())))
                }
                None => errors.push(Diagnostic::error("`inputs` must be an array of strings").at(at(list.span()))),
            },
        }
    }

    let mut buffer = BufferConfig::default();
    let mut acknowledgements = None;
    if kind == ComponentKind::Sink {
        if let Some(b) = table.get("buffer") {
            match deserialize::<BufferConfig>(b) {
                Ok(b) if b.buffer_type == "memory" => buffer = b,
                Ok(_) => errors.push(Diagnostic::error("only `buffer.type = \"memory\"` is supported").at(at(b.span()))),
                Err(e) => errors.push(de_error(e, at)),
            }
        }
        if let Some(a) = table.get("acknowledgements") {
            match deserialize::<AcknowledgementsConfig>(a) {
                Ok(a) => acknowledgements = Some(a.enabled()),
                Err(e) => errors.push(de_error(e, at)),
            }
        }
    }

    // The component's own options: everything but the common keys.
    let mut own = toml_edit::InlineTable::new();
    let mut fingerprint_table = toml_edit::InlineTable::new();
    for (key, value) in table.iter() {
        let Some(value) = value.clone().into_value().ok() else { continue };
        if key != "inputs" {
            fingerprint_table.insert(key, value.clone());
        }
        if !common_keys(kind).contains(&key) {
            let key = table.key(key).cloned().unwrap_or_else(|| toml_edit::Key::new(key));
            own.insert_formatted(&key, value);
        }
    }
    let fingerprint = serde_json::Value::deserialize(toml_edit::Value::InlineTable(fingerprint_table).into_deserializer())
        .unwrap_or(serde_json::Value::Null);
    let config = match component_type.parse(toml_edit::Value::InlineTable(own)) {
        Ok(config) => Some(config),
        Err(e) => {
            errors.push(de_error(e, at).with_context(format!("in {} `{id}` (type `{type_name}`)", kind.as_str())));
            None
        }
    };
    match config {
        Some(config) if errors.is_empty() => {
            Ok(Component { id: id.to_string(), kind, type_name, pos, config, inputs, buffer, acknowledgements, fingerprint })
        }
        _ => Err(errors),
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, toml_edit::de::Error> {
    let value = match item.clone() {
        Item::Table(t) => toml_edit::Value::InlineTable(t.into_inline_table()),
        Item::Value(v) => v,
        other => match other.into_value() {
            Ok(v) => v,
            Err(_) => return Err(serde::de::Error::custom("expected a value or a table")),
        },
    };
    T::deserialize(value.into_deserializer())
}

/// A serde error from a component's options, placed and with a suggestion.
fn de_error(e: toml_edit::de::Error, at: &dyn Fn(Option<std::ops::Range<usize>>) -> Pos) -> Diagnostic {
    let message = e.message().to_string();
    let mut d = Diagnostic::error(message.clone());
    // serde writes "unknown field `x`, expected one of `a`, `b`": suggest the nearest.
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if (message.starts_with("unknown field") || message.starts_with("unknown variant")) && quoted.len() > 1 {
        if let Some(nearest) = diagnostic::nearest(quoted[0], &quoted[1..]) {
            d = d.with_help(format!("did you mean `{nearest}`?"));
        }
    }
    d.at(at(e.span()))
}

#[cfg(test)]
mod tests;
