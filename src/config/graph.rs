//! The graph checks: every input names an output that exists, no cycles, each
//! component takes the event kinds it is given, and every output is read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Config, Diagnostic};
use crate::component::{ComponentKind, OutputDef};
use crate::event::Kinds;
use crate::registry::ComponentConfig;

/// An output of a component: `id` (its default output) or `id.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputId {
    pub component: String,
    pub port: Option<String>,
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(port) => write!(f, "{}.{port}", self.component),
            None => f.write_str(&self.component),
        }
    }
}

pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("invalid component id `{id}`: use letters, digits, `_` and `-` (a `.` would read as a named output)"));
    }
    Ok(())
}

/// The outputs of a component, given the kinds it receives.
pub fn outputs(config: &ComponentConfig, input: Kinds) -> Vec<OutputDef> {
    match config {
        ComponentConfig::Source(s) => s.outputs(),
        ComponentConfig::Transform(t) => t.outputs(input),
        ComponentConfig::Sink(_) => Vec::new(),
    }
}

/// What a consumer accepts.
pub fn accepts(config: &ComponentConfig) -> Kinds {
    match config {
        ComponentConfig::Source(_) => Kinds::NONE,
        ComponentConfig::Transform(t) => t.input_kinds(),
        ComponentConfig::Sink(s) => s.input_kinds(),
    }
}

pub fn check(config: &mut Config, errors: &mut Vec<Diagnostic>) {
    for kind in [ComponentKind::Source, ComponentKind::Sink] {
        if config.of_kind(kind).next().is_none() {
            errors.push(Diagnostic::error(format!(
                "the config has no {}: add a `[{}.<id>]` table",
                kind.table().trim_end_matches('s'),
                kind.table()
            )));
        }
    }
    resolve_inputs(config, errors);
    if !errors.is_empty() {
        return;
    }
    let Some(order) = topological_order(config, errors) else { return };
    check_kinds(config, &order, errors);
    warn_unread(config);
}

fn resolve_inputs(config: &mut Config, errors: &mut Vec<Diagnostic>) {
    // Every output that exists, by its written name.
    let mut all: BTreeMap<String, OutputId> = BTreeMap::new();
    for c in config.components.values() {
        for out in outputs(&c.config, Kinds::ALL) {
            let id = OutputId { component: c.id.clone(), port: out.port };
            all.insert(id.to_string(), id);
        }
    }
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    let mut resolved_all = Vec::new();
    for c in config.components.values() {
        let mut resolved = Vec::new();
        for input in &c.inputs {
            let pattern = input.pattern.as_str();
            let found: Vec<OutputId> = if pattern.contains(['*', '?', '[']) {
                match glob::Pattern::new(pattern) {
                    Err(e) => {
                        errors.push(Diagnostic::error(format!("invalid input pattern `{pattern}`: {e}")).at(input.pos.clone()));
                        resolved.push(Vec::new());
                        continue;
                    }
                    // Without a `.`, a pattern matches component ids (their default output).
                    Ok(glob) => all
                        .iter()
                        .filter(|(name, id)| id.component != c.id && (id.port.is_some() == pattern.contains('.')) && glob.matches(name))
                        .map(|(_, id)| id.clone())
                        .collect(),
                }
            } else {
                all.get(pattern).cloned().into_iter().collect()
            };
            if found.is_empty() {
                errors.push(missing_input(config, c.id.as_str(), pattern, &names).at(input.pos.clone()));
            }
            resolved.push(found);
        }
        resolved_all.push((c.id.clone(), resolved));
    }
    for (id, resolved) in resolved_all {
        if let Some(c) = config.components.get_mut(&id) {
            for (input, found) in c.inputs.iter_mut().zip(resolved) {
                input.resolved = found;
            }
        }
    }
}

fn missing_input(config: &Config, consumer: &str, pattern: &str, names: &[&str]) -> Diagnostic {
    let (component, port) = pattern.split_once('.').map_or((pattern, None), |(c, p)| (c, Some(p)));
    match config.components.get(component) {
        Some(target) if target.kind == ComponentKind::Sink => {
            Diagnostic::error(format!("input `{pattern}` of `{consumer}` is a sink; sinks have no output to read"))
        }
        Some(target) => {
            let ports: Vec<String> = outputs(&target.config, Kinds::ALL).into_iter().filter_map(|o| o.port).collect();
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            match port {
                Some(port) => Diagnostic::unknown(&format!("output of `{component}`"), port, &ports),
                None => Diagnostic::error(format!("`{component}` has no default output; read one of its named outputs"))
                    .with_help(ports.iter().map(|p| format!("`{component}.{p}`")).collect::<Vec<_>>().join(", ")),
            }
        }
        None if pattern.contains(['*', '?', '[']) => {
            Diagnostic::error(format!("input pattern `{pattern}` of `{consumer}` matches no component"))
        }
        None => Diagnostic::unknown(&format!("input of `{consumer}`:"), pattern, names),
    }
}

/// Transforms in an order where each comes after what it reads; `None` on a cycle.
fn topological_order(config: &Config, errors: &mut Vec<Diagnostic>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        id: &str,
        config: &Config,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks.get(id) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| s == id).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(id.to_string());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(id.to_string(), Mark::Visiting);
        stack.push(id.to_string());
        if let Some(c) = config.components.get(id) {
            let upstream: BTreeSet<&str> = c.upstream().map(|o| o.component.as_str()).collect();
            for up in upstream {
                visit(up, config, marks, stack, order)?;
            }
        }
        stack.pop();
        marks.insert(id.to_string(), Mark::Done);
        order.push(id.to_string());
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    for id in config.components.keys() {
        let mut stack = Vec::new();
        if let Err(mut cycle) = visit(id, config, &mut marks, &mut stack, &mut order) {
            cycle.reverse();
            let first = &config.components[&cycle[0]];
            errors.push(
                Diagnostic::error(format!("cycle: {}", cycle.join(" -> ")))
                    .with_help("a component cannot read, directly or not, its own output")
                    .at(first.pos.clone()),
            );
            return None;
        }
    }
    Some(order)
}

fn check_kinds(config: &Config, order: &[String], errors: &mut Vec<Diagnostic>) {
    let mut given: BTreeMap<OutputId, Kinds> = BTreeMap::new();
    for id in order {
        let c = &config.components[id];
        let mut input = Kinds::NONE;
        for i in &c.inputs {
            for out in &i.resolved {
                let kinds = given.get(out).copied().unwrap_or(Kinds::NONE);
                input = input.union(kinds);
                let refused = kinds.minus(accepts(&c.config));
                if refused != Kinds::NONE {
                    errors.push(
                        Diagnostic::error(format!(
                            "{} `{}` (type `{}`) takes {}, but its input `{out}` gives {refused}",
                            c.kind.as_str(),
                            c.id,
                            c.type_name,
                            accepts(&c.config)
                        ))
                        .at(i.pos.clone()),
                    );
                }
            }
        }
        for out in outputs(&c.config, input) {
            given.insert(OutputId { component: c.id.clone(), port: out.port }, out.kinds);
        }
    }
}

fn warn_unread(config: &mut Config) {
    let read: BTreeSet<OutputId> = config.components.values().flat_map(|c| c.upstream().cloned()).collect();
    let mut warnings = Vec::new();
    for c in config.components.values() {
        for out in outputs(&c.config, Kinds::ALL) {
            let id = OutputId { component: c.id.clone(), port: out.port };
            if !read.contains(&id) {
                warnings.push(
                    Diagnostic::warning(format!(
                        "nothing reads output `{id}` of {} `{}`: its events will be discarded (and counted)",
                        c.kind.as_str(),
                        c.id
                    ))
                    .at(c.pos.clone()),
                );
            }
        }
    }
    config.warnings.extend(warnings);
}
