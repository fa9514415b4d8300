//! `tapline graph`: the topology as Graphviz dot or Mermaid.

use std::fmt::Write as _;

use crate::config::{ComponentKind, Config};

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
    for c in config.components.values() {
        for up in c.upstream() {
            match &up.port {
                Some(port) => {
                    let _ = writeln!(out, "  \"{}\" -> \"{}\" [label=\"{port}\"];", up.component, c.id);
                }
                None => {
                    let _ = writeln!(out, "  \"{}\" -> \"{}\";", up.component, c.id);
                }
            }
        }
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
    for c in config.components.values() {
        for up in c.upstream() {
            match &up.port {
                Some(port) => {
                    let _ = writeln!(out, "  {} -->|{port}| {}", up.component, c.id);
                }
                None => {
                    let _ = writeln!(out, "  {} --> {}", up.component, c.id);
                }
            }
        }
    }
    out
}
