//! Config files in YAML and JSON, read through the TOML loader: each file is
//! translated to TOML text with a map from every key and value back to its
//! line and column in the original, so every diagnostic the loader gives a
//! TOML file (unknown field, wrong type, bad input name) points into the YAML
//! or JSON file the user wrote. Also the way back: any config shown as TOML,
//! YAML or JSON (`tapline convert`).

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput};
use toml_edit::{Item, Value};

/// A config file's format, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
    Json,
}

impl Format {
    pub const EXTENSIONS: &'static [&'static str] = &["toml", "yaml", "yml", "json"];

    /// By extension; anything else is TOML (as `pipeline.toml` always was).
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            _ => Format::Toml,
        }
    }

    pub fn by_name(name: &str) -> Option<Format> {
        match name {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// A 1-based place in the original file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// A YAML or JSON file as TOML text, with where each part of it came from.
#[derive(Debug)]
pub struct Translated {
    pub toml: String,
    /// (offset in `toml`, place in the original), by offset.
    marks: Vec<(usize, LineColumn)>,
}

impl Translated {
    /// Where the TOML text at `offset` came from: the nearest key or value at or before it.
    pub fn origin(&self, offset: usize) -> LineColumn {
        let i = self.marks.partition_point(|(at, _)| *at <= offset);
        self.marks.get(i.saturating_sub(1)).map(|(_, place)| *place).unwrap_or(LineColumn { line: 1, column: 1 })
    }
}

/// Why a file could not be read: the message and where.
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub at: LineColumn,
}

/// Translate a YAML or JSON config to TOML. JSON is checked as JSON first (a
/// YAML parser would accept comments and bare words), then read as the YAML it
/// also is.
pub fn to_toml(text: &str, format: Format) -> Result<Translated, SyntaxError> {
    if format == Format::Json {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            let message = e.to_string();
            // serde_json appends " at line L column C"; the place is given apart.
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            return Err(SyntaxError {
                message: format!("invalid JSON: {message}"),
                at: LineColumn { line: e.line().max(1), column: e.column().max(1) },
            });
        }
    }
    let mut translator = Translator { events: Parser::new_from_str(text), out: String::new(), marks: Vec::new(), anchors: HashMap::new() };
    translator.document().map_err(|e| SyntaxError { message: format!("invalid {}: {}", format.name(), e.message), at: e.at })?;
    Ok(Translated { toml: translator.out, marks: translator.marks })
}

/// What an anchored node was translated to, for its aliases.
#[derive(Clone)]
enum Anchored {
    Null,
    Text(String),
}

struct Translator<'a> {
    events: Parser<'a, StrInput<'a>>,
    out: String,
    marks: Vec<(usize, LineColumn)>,
    anchors: HashMap<usize, Anchored>,
}

fn place(span: &Span) -> LineColumn {
    LineColumn { line: span.start.line(), column: span.start.col() + 1 }
}

fn error(message: impl Into<String>, span: &Span) -> SyntaxError {
    SyntaxError { message: message.into(), at: place(span) }
}

impl<'a> Translator<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.events.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                Err(SyntaxError { message: e.info().to_string(), at: LineColumn { line: e.marker().line(), column: e.marker().col() + 1 } })
            }
            None => Err(SyntaxError { message: "unexpected end of file".into(), at: LineColumn { line: 1, column: 1 } }),
        }
    }

    fn mark(&mut self, span: &Span) {
        self.marks.push((self.out.len(), place(span)));
    }

    /// The whole stream: no document (an empty file), or one whose root is a mapping.
    fn document(&mut self) -> Result<(), SyntaxError> {
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart => {}
                Event::StreamEnd => return Ok(()),
                Event::DocumentStart(_) => break,
                _ => return Err(error("expected a document", &span)),
            }
        }
        let (root, span) = self.next()?;
        match root {
            Event::MappingStart(..) => self.root_mapping()?,
            Event::Scalar(text, ScalarStyle::Plain, ..) if is_null(&text) => {}
            _ => return Err(error("a config file must be a mapping (sources, transforms, sinks, …)", &span)),
        }
        match self.next()? {
            (Event::DocumentEnd, _) => {}
            (_, span) => return Err(error("expected the end of the document", &span)),
        }
        match self.next()? {
            (Event::StreamEnd, _) => Ok(()),
            (_, span) => Err(error("a config file holds one document; split the others into their own files", &span)),
        }
    }

    /// The root: one `key = value` line per entry.
    fn root_mapping(&mut self) -> Result<(), SyntaxError> {
        loop {
            let (event, span) = self.next()?;
            let start = (self.out.len(), self.marks.len());
            match event {
                Event::MappingEnd => return Ok(()),
                Event::Scalar(key, ..) => {
                    self.mark(&span);
                    write_string(&mut self.out, &key);
                    self.out.push_str(" = ");
                }
                _ => return Err(error("a key must be a string", &span)),
            }
            if self.value()? {
                self.out.push('\n');
            } else {
                self.forget(start);
            }
        }
    }

    /// Drop what was written since `start` (a key whose value is null).
    fn forget(&mut self, (len, marks): (usize, usize)) {
        self.out.truncate(len);
        self.marks.truncate(marks);
    }

    /// Translate the next node; false when it is null (written as nothing).
    fn value(&mut self) -> Result<bool, SyntaxError> {
        let (event, span) = self.next()?;
        let start = self.out.len();
        let (anchor, written) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let as_string = style != ScalarStyle::Plain || tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                if !as_string && is_null(&text) {
                    (anchor, false)
                } else {
                    self.mark(&span);
                    if as_string {
                        write_string(&mut self.out, &text);
                    } else {
                        write_plain(&mut self.out, &text);
                    }
                    (anchor, true)
                }
            }
            Event::MappingStart(anchor, _) => {
                self.mark(&span);
                self.mapping()?;
                (anchor, true)
            }
            Event::SequenceStart(anchor, _) => {
                self.mark(&span);
                self.sequence()?;
                (anchor, true)
            }
            Event::Alias(id) => {
                return match self.anchors.get(&id).cloned() {
                    Some(Anchored::Null) => Ok(false),
                    Some(Anchored::Text(text)) => {
                        self.mark(&span);
                        self.out.push_str(&text);
                        Ok(true)
                    }
                    None => Err(error("an alias to an unknown anchor", &span)),
                };
            }
            _ => return Err(error("expected a value", &span)),
        };
        if anchor > 0 {
            let anchored = if written { Anchored::Text(self.out[start..].to_string()) } else { Anchored::Null };
            self.anchors.insert(anchor, anchored);
        }
        Ok(written)
    }

    /// A mapping as an inline table.
    fn mapping(&mut self) -> Result<(), SyntaxError> {
        self.out.push('{');
        let mut first = true;
        loop {
            let (event, span) = self.next()?;
            let start = (self.out.len(), self.marks.len());
            match event {
                Event::MappingEnd => break,
                Event::Scalar(key, ..) => {
                    if !first {
                        self.out.push_str(", ");
                    }
                    self.mark(&span);
                    write_string(&mut self.out, &key);
                    self.out.push_str(" = ");
                }
                _ => return Err(error("a key must be a string", &span)),
            }
            if self.value()? {
                first = false;
            } else {
                self.forget(start);
            }
        }
        self.out.push('}');
        Ok(())
    }

    fn sequence(&mut self) -> Result<(), SyntaxError> {
        self.out.push('[');
        let mut first = true;
        loop {
            let (end, span) = match self.events.peek() {
                Some(Ok((event, span))) => (matches!(event, Event::SequenceEnd), *span),
                _ => (false, Span::default()),
            };
            if end {
                self.next()?;
                break;
            }
            if !first {
                self.out.push_str(", ");
            }
            if !self.value()? {
                return Err(error("a list cannot hold null", &span));
            }
            first = false;
        }
        self.out.push(']');
        Ok(())
    }
}

fn is_null(plain: &str) -> bool {
    matches!(plain, "" | "~" | "null" | "Null" | "NULL")
}

/// A plain YAML scalar by the core schema: bool, integer, float, else a string.
fn write_plain(out: &mut String, text: &str) {
    match text {
        "true" | "True" | "TRUE" => return out.push_str("true"),
        "false" | "False" | "FALSE" => return out.push_str("false"),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return out.push_str("inf"),
        "-.inf" | "-.Inf" | "-.INF" => return out.push_str("-inf"),
        ".nan" | ".NaN" | ".NAN" => return out.push_str("nan"),
        _ => {}
    }
    let integer = if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(octal) = text.strip_prefix("0o") {
        i64::from_str_radix(octal, 8).ok()
    } else if text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && (b == b'-' || b == b'+'))) {
        text.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(n) = integer {
        let _ = write!(out, "{n}");
        return;
    }
    let float_like = text.bytes().any(|b| b.is_ascii_digit()) && text.bytes().all(|b| b.is_ascii_digit() || b".eE+-".contains(&b));
    match text.parse::<f64>() {
        Ok(x) if float_like && x.is_finite() => {
            let _ = write!(out, "{x:?}");
        }
        _ => write_string(out, text),
    }
}

/// A TOML basic string (also a valid JSON and YAML double-quoted string).
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A parsed TOML config written in `format`, keys in their order. Tables
/// become `[section]` headers in TOML, block mappings in YAML.
pub fn render(doc: &toml_edit::DocumentMut, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Toml => {
            let mut fresh = toml_edit::DocumentMut::new();
            for (key, item) in doc.as_table() {
                fresh.insert(key, toml_item(item, 0));
            }
            out = fresh.to_string();
        }
        Format::Json => {
            json_item(&mut out, doc.as_item(), 0);
            out.push('\n');
        }
        Format::Yaml => yaml_entries(&mut out, entries(doc.as_item()).unwrap_or_default(), 0),
    }
    out
}

/// An item laid out as a person writes TOML (whatever the layout it was read
/// in): tables as `[section]`s, lists of tables as `[[section]]`s, other
/// values inline with default quoting (programs as multi-line strings).
fn toml_item(item: &Item, depth: usize) -> Item {
    if let Some(fields) = entries(item) {
        let mut table = toml_edit::Table::new();
        table.set_implicit(depth == 0);
        for (key, value) in fields {
            table.insert(key, toml_item(&value, depth + 1));
        }
        return Item::Table(table);
    }
    let tables: Option<Vec<Item>> = match item {
        Item::ArrayOfTables(tables) => Some(tables.iter().map(|t| Item::Table(t.clone())).collect()),
        Item::Value(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_inline_table) => {
            Some(a.iter().map(|v| Item::Value(v.clone())).collect())
        }
        _ => None,
    };
    if let Some(tables) = tables {
        let mut list = toml_edit::ArrayOfTables::new();
        for t in tables {
            if let Item::Table(table) = toml_item(&t, depth + 1) {
                list.push(table);
            }
        }
        return Item::ArrayOfTables(list);
    }
    match item.as_value() {
        Some(v) => Item::Value(toml_value(v)),
        None => Item::None,
    }
}

fn toml_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::from(s.value().as_str()),
        Value::Integer(n) => Value::from(*n.value()),
        Value::Float(x) => Value::from(*x.value()),
        Value::Boolean(b) => Value::from(*b.value()),
        Value::Datetime(d) => Value::from(*d.value()),
        Value::Array(a) => Value::Array(a.iter().map(toml_value).collect()),
        Value::InlineTable(t) => Value::InlineTable(t.iter().map(|(k, v)| (k, toml_value(v))).collect()),
    }
}

/// The entries of a table, whatever form it was written in.
fn entries(item: &Item) -> Option<Vec<(&str, Item)>> {
    item.as_table_like().map(|t| t.iter().map(|(k, v)| (k, v.clone())).collect())
}

fn json_entries(out: &mut String, entries: Vec<(&str, Item)>, indent: usize) {
    if entries.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{\n");
    for (i, (key, item)) in entries.iter().enumerate() {
        out.push_str(&"  ".repeat(indent + 1));
        write_string(out, key);
        out.push_str(": ");
        json_item(out, item, indent + 1);
        out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
    }
    out.push_str(&"  ".repeat(indent));
    out.push('}');
}

fn json_item(out: &mut String, item: &Item, indent: usize) {
    match item {
        Item::Value(Value::Array(array)) => json_list(out, array.iter().map(|v| Item::Value(v.clone())).collect(), indent),
        Item::ArrayOfTables(tables) => json_list(out, tables.iter().map(|t| Item::Table(t.clone())).collect(), indent),
        Item::Value(v) if !v.is_inline_table() => scalar(out, v),
        _ => json_entries(out, entries(item).unwrap_or_default(), indent),
    }
}

fn json_list(out: &mut String, items: Vec<Item>, indent: usize) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_item(out, item, indent);
    }
    out.push(']');
}

/// A scalar as JSON, which YAML reads the same.
fn scalar(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => write_string(out, s.value()),
        Value::Integer(n) => {
            let _ = write!(out, "{}", n.value());
        }
        Value::Float(x) => match x.value() {
            x if x.is_nan() => out.push_str(".nan"),
            x if x.is_infinite() => out.push_str(if *x > 0.0 { ".inf" } else { "-.inf" }),
            x => {
                let _ = write!(out, "{x:?}");
            }
        },
        Value::Boolean(b) => {
            let _ = write!(out, "{}", b.value());
        }
        Value::Datetime(d) => write_string(out, &d.value().to_string()),
        Value::Array(_) | Value::InlineTable(_) => {}
    }
}

fn yaml_entries(out: &mut String, entries: Vec<(&str, Item)>, indent: usize) {
    for (key, item) in entries {
        out.push_str(&"  ".repeat(indent));
        yaml_key(out, key);
        out.push(':');
        yaml_item(out, &item, indent);
    }
}

/// A value after `key:` or `- `: inline when a scalar, else on the next lines.
fn yaml_item(out: &mut String, item: &Item, indent: usize) {
    let list: Option<Vec<Item>> = match item {
        Item::Value(Value::Array(array)) => Some(array.iter().map(|v| Item::Value(v.clone())).collect()),
        Item::ArrayOfTables(tables) => Some(tables.iter().map(|t| Item::Table(t.clone())).collect()),
        _ => None,
    };
    match (list, item) {
        (Some(items), _) if items.is_empty() => out.push_str(" []\n"),
        (Some(items), _) if items.iter().all(|i| i.as_value().is_some_and(|v| !v.is_array() && !v.is_inline_table())) => {
            // A list of scalars fits one line, as `inputs` always is.
            out.push(' ');
            json_list(out, items, indent);
            out.push('\n');
        }
        (Some(items), _) => {
            out.push('\n');
            for item in items {
                out.push_str(&"  ".repeat(indent));
                out.push_str("- ");
                match entries(&item) {
                    // The first key of a mapping in a list goes on the `- ` line.
                    Some(fields) if !fields.is_empty() => {
                        let mut nested = String::new();
                        yaml_entries(&mut nested, fields, indent + 1);
                        out.push_str(nested.trim_start());
                    }
                    _ => {
                        let mut nested = String::new();
                        yaml_item(&mut nested, &item, indent + 1);
                        out.push_str(nested.trim_start());
                    }
                }
            }
        }
        (None, Item::Value(Value::String(s))) if s.value().contains('\n') => {
            // Programs (VRL) as literal blocks, the way people write them.
            out.push_str(if s.value().ends_with('\n') { " |\n" } else { " |-\n" });
            for line in s.value().lines() {
                if !line.is_empty() {
                    out.push_str(&"  ".repeat(indent + 1));
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        (None, Item::Value(Value::String(s))) if plain_yaml_string(s.value()) => {
            out.push(' ');
            out.push_str(s.value());
            out.push('\n');
        }
        (None, Item::Value(v)) if !v.is_inline_table() => {
            out.push(' ');
            scalar(out, v);
            out.push('\n');
        }
        (None, _) => match entries(item) {
            Some(fields) if !fields.is_empty() => {
                out.push('\n');
                yaml_entries(out, fields, indent + 1);
            }
            _ => out.push_str(" {}\n"),
        },
    }
}

/// A key plain when YAML reads it back as the same string, else quoted.
fn yaml_key(out: &mut String, key: &str) {
    if plain_yaml_string(key) {
        out.push_str(key);
    } else {
        write_string(out, key);
    }
}

/// Whether `text` written bare reads back in YAML as this very string: safe
/// characters only, and not a word the core schema reads as a number, a
/// boolean or null.
fn plain_yaml_string(text: &str) -> bool {
    let safe = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./@".contains(&b) || b == b':')
        && !text.contains(": ")
        && !text.ends_with(':')
        && !text.starts_with(['-', '.', ':', '@']);
    let mut probe = String::new();
    write_plain(&mut probe, text);
    safe && !is_null(text) && probe.starts_with('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(yaml: &str) -> String {
        to_toml(yaml, Format::Yaml).unwrap().toml
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let text = "a: 8080\nb: 1.5\nc: true\nd: '8080'\ne: 0.0.0.0:80\nf: ~\ng: .5\nh: 0x1F\ni: -3\nj: 1e3\nk: !!str 12\nl: yes\n";
        assert_eq!(toml(text), "\"a\" = 8080\n\"b\" = 1.5\n\"c\" = true\n\"d\" = \"8080\"\n\"e\" = \"0.0.0.0:80\"\n\"g\" = 0.5\n\"h\" = 31\n\"i\" = -3\n\"j\" = 1000.0\n\"k\" = \"12\"\n\"l\" = \"yes\"\n");
    }

    #[test]
    fn yaml_nesting_lists_blocks_and_aliases() {
        let text = "sources:\n  in:\n    type: http_server\n    tags: &t [a, \"b\\\"\"]\n    other: *t\n    empty: {}\nsource: |\n  .a = 1\n  .b = \"x\"\n";
        assert_eq!(
            toml(text),
            "\"sources\" = {\"in\" = {\"type\" = \"http_server\", \"tags\" = [\"a\", \"b\\\"\"], \"other\" = [\"a\", \"b\\\"\"], \"empty\" = {}}}\n\"source\" = \".a = 1\\n.b = \\\"x\\\"\\n\"\n"
        );
    }

    #[test]
    fn every_key_and_value_maps_back_to_its_place() {
        let text = "sources:\n  in:\n    type: http_server\n    adress: x\n";
        let t = to_toml(text, Format::Yaml).unwrap();
        let at = |needle: &str| t.origin(t.toml.find(needle).unwrap());
        assert_eq!(at("\"adress\""), LineColumn { line: 4, column: 5 });
        assert_eq!(at("\"x\""), LineColumn { line: 4, column: 13 });
        assert_eq!(at("\"http_server\""), LineColumn { line: 3, column: 11 });
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = to_toml("sources:\n  in:\n    type: [a, b\n", Format::Yaml).unwrap_err();
        assert!(e.message.starts_with("invalid YAML: "), "{e:?}");
        assert_eq!(e.at.line, 4, "{e:?}");
        let e = to_toml("{\n  \"sources\": {\n    \"in\": {\"type\": \"x\"},\n  }\n}\n", Format::Json).unwrap_err();
        assert_eq!(e, SyntaxError { message: "invalid JSON: key must be a string".into(), at: LineColumn { line: 4, column: 3 } });
        let e = to_toml("a: 1\n---\nb: 2\n", Format::Yaml).unwrap_err();
        assert_eq!(e.at, LineColumn { line: 2, column: 1 });
        assert!(to_toml("- a\n", Format::Yaml).unwrap_err().message.contains("must be a mapping"));
        assert_eq!(toml(""), "");
        assert_eq!(toml("# only a comment\n"), "");
    }

    #[test]
    fn null_values_are_left_out_but_not_in_lists() {
        assert_eq!(toml("a:\nb: 1\nc: {d: null, e: 2}\n"), "\"b\" = 1\n\"c\" = {\"e\" = 2}\n");
        let e = to_toml("a: [1, null]\n", Format::Yaml).unwrap_err();
        assert_eq!(e.at, LineColumn { line: 1, column: 8 });
    }

    #[test]
    fn render_round_trips_through_every_format() {
        let original = "[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:80\"\ndecoding.codec = \"json\"\n\n[transforms.t]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = \"\"\"\n.a = 1\n.b = \"x\"\n\"\"\"\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"t\"]\npath = \"/tmp/x\"\nbatch = { max_events = 10, ratio = 0.5 }\n\n[[tests]]\nname = \"n\"\n";
        let doc: toml_edit::DocumentMut = original.parse().unwrap();
        let value = |text: &str| -> serde_json::Value { toml_edit::de::from_str(text).unwrap() };
        let expected = value(original);
        for format in [Format::Yaml, Format::Json] {
            let rendered = render(&doc, format);
            let back = to_toml(&rendered, format).unwrap_or_else(|e| panic!("{rendered}\n{e:?}"));
            assert_eq!(value(&back.toml), expected, "{rendered}");
            let again = render(&back.toml.parse().unwrap(), Format::Toml);
            assert_eq!(value(&again), expected, "{again}");
            assert!(again.contains("[sources.in]\n"), "{again}");
        }
        let yaml = render(&doc, Format::Yaml);
        assert!(yaml.starts_with("sources:\n  in:\n    type: http_server\n    address: 127.0.0.1:80\n"), "{yaml}");
        assert!(yaml.contains("    inputs: [\"in\"]\n    source: |\n      .a = 1\n      .b = \"x\"\n"), "{yaml}");
    }
}
