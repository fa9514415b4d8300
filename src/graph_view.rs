//! `tapline graph`: the topology as Graphviz dot or Mermaid.

use std::fmt::Write as _;

use crate::component::ComponentKind;
use crate::config::Config;

/// Every edge: (upstream component, its output port, downstream component).
fn edges(config: &Config) -> Vec<(&str, Option<&str>, &str)> {
    config
        .components
        .values()
        .flat_map(|c| c.upstream().map(move |up| (up.component.as_str(), up.port.as_deref(), c.id.as_str())))
        .collect()
}

pub fn dot(config: &Config) -> String {
    let mut out = String::from("digraph {\n  rankdir=\"LR\";\n");
    for c in config.components.values() {
        let shape = match c.kind {
            ComponentKind::Source => "trapezium",
            ComponentKind::Transform => "diamond",
            ComponentKind::Sink => "invtrapezium",
        };
        let _ = writeln!(out, "  \"{}\" [shape=\"{shape}\", label=\"{}\\n({})\"];", c.id, c.id, c.type_name);
    }
    for (from, port, to) in edges(config) {
        let _ = match port {
            Some(port) => writeln!(out, "  \"{from}\" -> \"{to}\" [label=\"{port}\"];"),
            None => writeln!(out, "  \"{from}\" -> \"{to}\";"),
        };
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(config: &Config) -> String {
    let mut out = String::from("flowchart LR\n");
    for c in config.components.values() {
        let (open, close) = match c.kind {
            ComponentKind::Source => ("[/", "/]"),
            ComponentKind::Transform => ("{{", "}}"),
            ComponentKind::Sink => ("[\\", "\\]"),
        };
        let _ = writeln!(out, "  {}{open}\"{} ({})\"{close}", c.id, c.id, c.type_name);
    }
    for (from, port, to) in edges(config) {
        let _ = match port {
            Some(port) => writeln!(out, "  {from} -->|{port}| {to}"),
            None => writeln!(out, "  {from} --> {to}"),
        };
    }
    out
}
