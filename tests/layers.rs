//! The layers of `src/` (see src/lib.rs), kept by reading every `crate::`
//! path in every source file: a module may name only its own layer and those
//! below. A component (a module of `sources`, `transforms` or `sinks`) may
//! also not name another family, nor another component of its own family:
//! only its family's `util`.

use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    &["component", "event", "telemetry"],
    &["net", "otlp", "prometheus", "codec", "template", "process", "defaults", "enrichment"],
    &["sources", "transforms", "sinks"],
    &["registry"],
    &["config", "topology"],
    &["admin", "app", "graph_view", "main"],
];

const FAMILIES: &[&str] = &["sources", "transforms", "sinks"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Where a file sits: its top-level module and, inside a family, its component.
fn place(src: &Path, file: &Path) -> (String, Option<String>) {
    let relative = file.strip_prefix(src).unwrap();
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    let top = if parts[0] == "lib" { "main".to_string() } else { parts[0].clone() };
    let component = parts.get(1).filter(|c| *c != "mod").cloned();
    (top, component)
}

/// Every `crate::a::b` path a file names, as (line, [a, b]), including each
/// name of a `use crate::{a, b::c}` group.
fn crate_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let path: Vec<String> = item.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    if !path.is_empty() {
                        found.push((number + 1, path));
                    }
                }
            } else {
                let path: Vec<String> = after
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if !path.is_empty() {
                    found.push((number + 1, path));
                }
            }
            rest = after;
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// What `file` (with `text`) names that its layer may not.
fn violations(src: &Path, file: &Path, text: &str) -> Vec<String> {
    let (top, component) = place(src, file);
    let Some(own) = layer_of(&top) else { return vec![format!("{}: module `{top}` has no layer in tests/layers.rs", file.display())] };
    let mut bad = Vec::new();
    for (line, path) in crate_paths(text) {
        let target = path[0].as_str();
        let Some(layer) = layer_of(target) else { continue };
        let why = if layer > own {
            Some(format!("`{top}` is below `{target}`"))
        } else if FAMILIES.contains(&top.as_str()) && FAMILIES.contains(&target) {
            let other_family = target != top;
            let other_component = component.as_deref().is_some_and(|c| c != "util")
                && path.get(1).is_some_and(|c| c != "util" && Some(c.as_str()) != component.as_deref());
            (other_family || other_component).then(|| format!("a component may use its family's `util`, not `crate::{}`", path.join("::")))
        } else {
            None
        };
        if let Some(why) = why {
            bad.push(format!("{}:{line}: names `crate::{}`: {why}", file.display(), path.join("::")));
        }
    }
    bad
}

#[test]
fn every_module_imports_only_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files under {}", files.len(), src.display());
    let bad: Vec<String> = files.iter().flat_map(|f| violations(&src, f, &std::fs::read_to_string(f).unwrap())).collect();
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn a_planted_bad_import_is_caught() {
    let src = Path::new("/src");
    let cases = [
        ("sinks/file.rs", "use crate::config::Config;\n", "`sinks` is below `config`"),
        ("sinks/file.rs", "use crate::topology::RunningTopology;\n", "`sinks` is below `topology`"),
        ("sources/kong/mod.rs", "use crate::{event::Event, sinks::util::BatchConfig};\n", "its family's `util`"),
        ("sources/ebpf/session.rs", "let x = crate::sources::kong::decode(b);\n", "its family's `util`"),
        ("event/span.rs", "use crate::component::Task;\n", ""),
        ("component/sink.rs", "use crate::net::client::gzip;\n", "`component` is below `net`"),
        ("net/server.rs", "use crate::sources::util::http::serve;\n", "`net` is below `sources`"),
        ("registry.rs", "use crate::config::Config;\n", "`registry` is below `config`"),
    ];
    for (file, text, expected) in cases {
        let found = violations(src, &src.join(file), text);
        if expected.is_empty() {
            assert!(found.is_empty(), "{file}: {text}: {found:?}");
        } else {
            assert!(found.iter().any(|v| v.contains(expected)), "{file}: {text}: expected `{expected}`, got {found:?}");
        }
    }
    // A component may use its own modules and its family's util.
    assert!(violations(src, &src.join("sources/kong/file_log.rs"), "use crate::sources::util::tail;\nuse crate::sources::kong::decode;\n")
        .is_empty());
}
