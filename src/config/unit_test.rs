//! Config unit tests, as Vector writes them: `[[tests]]` insert events at a
//! transform, run them through the transforms downstream, and check what
//! comes out with VRL conditions.

use std::collections::{BTreeMap, VecDeque};

use serde::de::IntoDeserializer;
use serde::Deserialize;

use super::{ComponentConfig, ComponentKind, Config, Diagnostic, OutputId, Pos};
use crate::component::{Transform, TransformOutput};
use crate::event::{Event, EventBatch, Value};
use crate::transforms::util::{Condition, VrlProgram};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTestDef {
    pub name: String,
    #[serde(default)]
    pub inputs: Vec<TestInput>,
    #[serde(default)]
    pub outputs: Vec<TestOutput>,
    #[serde(default)]
    pub no_outputs_from: Vec<String>,
    #[serde(skip)]
    pub pos: Option<Pos>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    pub insert_at: String,
    #[serde(rename = "type", default)]
    pub kind: InputType,
    /// `raw`: the `message` field.
    pub value: Option<String>,
    /// `log`: the fields, dotted keys nest.
    pub log_fields: Option<BTreeMap<String, serde_json::Value>>,
    /// `vrl`: a program whose result is the event.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    #[default]
    Log,
    Raw,
    Vrl,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestOutput {
    pub extract_from: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

pub fn parse(item: &toml_edit::Item) -> Result<Vec<UnitTestDef>, toml_edit::de::Error> {
    let value = item
        .clone()
        .into_value()
        .map_err(|_| <toml_edit::de::Error as serde::de::Error>::custom("`tests` must be an array of tables: [[tests]]"))?;
    Vec::<UnitTestDef>::deserialize(value.into_deserializer())
}

impl UnitTestDef {
    pub fn at(mut self, pos: Pos) -> Self {
        self.pos = Some(pos);
        self
    }

    fn error(&self, message: String) -> Diagnostic {
        let d = Diagnostic::error(format!("test `{}`: {message}", self.name));
        match &self.pos {
            Some(pos) => d.at(pos.clone()),
            None => d,
        }
    }

    /// Every component a test names must be a transform (or one of its outputs).
    pub fn check(&self, config: &Config, errors: &mut Vec<Diagnostic>) {
        let transforms: Vec<&str> = config.of_kind(ComponentKind::Transform).map(|c| c.id.as_str()).collect();
        let mut names: Vec<(&str, &str)> = self.inputs.iter().map(|i| ("insert_at", i.insert_at.as_str())).collect();
        names.extend(self.outputs.iter().map(|o| ("extract_from", o.extract_from.as_str())));
        names.extend(self.no_outputs_from.iter().map(|n| ("no_outputs_from", n.as_str())));
        for (option, name) in names {
            let (component, port) = name.split_once('.').map_or((name, None), |(c, p)| (c, Some(p)));
            match config.components.get(component) {
                Some(c) if c.kind == ComponentKind::Transform => {
                    let ports: Vec<Option<String>> = c.outputs().into_iter().map(|o| o.port).collect();
                    if option != "insert_at" && !ports.contains(&port.map(str::to_string)) {
                        errors.push(self.error(format!("`{option}`: `{component}` has no output `{name}`")));
                    }
                }
                _ => errors.push(
                    Diagnostic::unknown("transform", component, &transforms)
                        .with_context(format!("`{option}` in test `{}`", self.name))
                        .at_opt(self.pos.clone()),
                ),
            }
        }
        for input in &self.inputs {
            let ok = match input.kind {
                InputType::Log => input.log_fields.is_some(),
                InputType::Raw => input.value.is_some(),
                InputType::Vrl => input.source.is_some(),
            };
            if !ok {
                let needed = match input.kind {
                    InputType::Log => "log_fields",
                    InputType::Raw => "value",
                    InputType::Vrl => "source",
                };
                errors.push(self.error(format!("an input of type `{:?}` needs `{needed}`", input.kind).to_lowercase()));
            }
        }
    }

    /// Run the test; `Err` lists what failed.
    pub fn run(&self, config: &Config) -> Result<(), Vec<String>> {
        let mut transforms: BTreeMap<String, (Box<dyn Transform>, TransformOutput)> = BTreeMap::new();
        for c in config.of_kind(ComponentKind::Transform) {
            if let ComponentConfig::Transform(t) = &c.config {
                let built = crate::enrichment::with_tables(&config.enrichment_tables, || t.build())
                    .map_err(|e| vec![format!("transform `{}`: {e}", c.id)])?;
                transforms.insert(c.id.clone(), (built, TransformOutput::new(&c.outputs())));
            }
        }
        let mut queue: VecDeque<(String, EventBatch)> = VecDeque::new();
        for input in &self.inputs {
            queue.push_back((input.insert_at.clone(), vec![make_event(input).map_err(|e| vec![e])?]));
        }
        let mut produced: BTreeMap<OutputId, Vec<Event>> = BTreeMap::new();
        while let Some((id, batch)) = queue.pop_front() {
            let Some((transform, out)) = transforms.get_mut(&id) else { continue };
            transform.transform(batch, out);
            let results: Vec<_> = out.drain().collect();
            for (port, batch) in results {
                let output = OutputId { component: id.clone(), port };
                for c in config.components.values().filter(|c| c.kind == ComponentKind::Transform && c.upstream().any(|u| *u == output)) {
                    queue.push_back((c.id.clone(), batch.clone()));
                }
                produced.entry(output).or_default().extend(batch);
            }
        }
        let mut failures = Vec::new();
        for output in &self.outputs {
            let events = produced.get(&output_id(&output.extract_from)).map(Vec::as_slice).unwrap_or_default();
            if events.is_empty() {
                failures.push(format!("no events came out of `{}`", output.extract_from));
                continue;
            }
            for (i, condition) in output.conditions.iter().enumerate() {
                let mut program = condition.compile().map_err(|e| vec![format!("condition {i} on `{}`: {e}", output.extract_from)])?;
                let mut reasons = Vec::new();
                let passed = events.iter().any(|event| match program.check(&mut event.clone()) {
                    Ok(true) => true,
                    Ok(false) => {
                        reasons.push("returned false".to_string());
                        false
                    }
                    Err(e) => {
                        reasons.push(e);
                        false
                    }
                });
                if !passed {
                    let payloads: Vec<String> = events.iter().map(|e| e.to_value().to_string()).collect();
                    failures.push(format!(
                        "condition {i} on `{}` held for no event: {}\n    events: {}",
                        output.extract_from,
                        reasons.join("; "),
                        payloads.join("\n            ")
                    ));
                }
            }
        }
        for name in &self.no_outputs_from {
            let count = produced.get(&output_id(name)).map(Vec::len).unwrap_or(0);
            if count > 0 {
                failures.push(format!("`{name}` gave {count} event(s), expected none"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

fn output_id(name: &str) -> OutputId {
    match name.split_once('.') {
        Some((c, p)) => OutputId { component: c.into(), port: Some(p.into()) },
        None => OutputId { component: name.into(), port: None },
    }
}

fn make_event(input: &TestInput) -> Result<Event, String> {
    match input.kind {
        InputType::Raw => {
            Ok(Event::log(Value::Object([("message".into(), Value::from(input.value.clone().unwrap_or_default()))].into_iter().collect())))
        }
        InputType::Log => {
            let mut value = Value::Object(Default::default());
            for (path, field) in input.log_fields.iter().flatten() {
                let path = vrl::path::parse_value_path(path).map_err(|e| format!("invalid field path `{path}`: {e}"))?;
                value.insert(&path, Value::from(field.clone()));
            }
            Ok(Event::log(value))
        }
        InputType::Vrl => {
            let source = input.source.as_deref().unwrap_or_default();
            let mut program = VrlProgram::compile(source, false)?;
            let mut target = Value::Object(Default::default());
            let result = program.run(&mut target).map_err(|e| format!("input program failed: {e}"))?;
            Ok(Event::log(result))
        }
    }
}
