//! What the transforms share: a compiled VRL program with the runtime that
//! runs it, and VRL conditions (`remap`, `filter`, `route`, the config's unit
//! tests).

use serde::Deserialize;
use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::{CompileConfig, Program, SecretTarget, Target, TargetValueRef, TimeZone};
use vrl::path::{OwnedSegment, OwnedTargetPath, OwnedValuePath, PathPrefix};
use vrl::value::{Secrets, Value};

use crate::event::{Event, EventData};

pub struct VrlProgram {
    program: Program,
    runtime: Runtime,
    /// For `run_or_restore`; kept between runs so its buffers are reused.
    undo: UndoLog,
}

impl std::fmt::Debug for VrlProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrlProgram").field("info", self.program.info()).finish()
    }
}

impl VrlProgram {
    /// Compile `source`. A read-only program (a condition) may not change the event.
    pub fn compile(source: &str, read_only: bool) -> Result<Self, String> {
        let mut config = CompileConfig::default();
        if read_only {
            config.set_read_only();
        }
        let state = vrl::compiler::TypeState::default();
        // Some functions panic while compiling on a literal argument they cannot
        // use (`parse_proto` and `encode_proto` with a descriptor file that cannot
        // be read): that is an error in the program, not a reason to crash.
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut functions = vrl::stdlib::all();
            functions.extend(crate::enrichment::vrl::functions());
            vrl::compiler::compile_with_state(source, &functions, &state, config)
        }));
        match compiled {
            Ok(Ok(result)) => Ok(VrlProgram { program: result.program, runtime: Runtime::default(), undo: UndoLog::default() }),
            Ok(Err(diagnostics)) => Err(format!("invalid VRL program:\n{}", vrl::diagnostic::Formatter::new(source, diagnostics))),
            Err(panic) => {
                let message = panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied());
                Err(format!("invalid VRL program: {}", message.unwrap_or("the VRL compiler failed")))
            }
        }
    }

    /// A copy with its own runtime, to run beside this one.
    pub fn fork(&self) -> Self {
        VrlProgram { program: self.program.clone(), runtime: Runtime::default(), undo: UndoLog::default() }
    }

    /// Whether a run can end in an error, or in an abort.
    pub fn info(&self) -> &vrl::compiler::ProgramInfo {
        self.program.info()
    }

    /// Run on a log value in place; the result is the program's last expression.
    pub fn run(&mut self, value: &mut Value) -> Result<Value, Terminate> {
        let mut metadata = Value::Object(Default::default());
        let mut secrets = Secrets::default();
        let mut target = TargetValueRef { value, metadata: &mut metadata, secrets: &mut secrets };
        let result = self.runtime.resolve(&mut target, &self.program, &TimeZone::default());
        self.runtime.clear();
        result
    }

    /// Run as `run` does, but when the program fails or aborts, leave `value`
    /// as it was before. Each change is logged with what it replaced (no copy
    /// of the event up front, which costs as much as the program itself), and
    /// the log is played back on failure.
    pub fn run_or_restore(&mut self, value: &mut Value) -> Result<Value, Terminate> {
        let mut metadata = Value::Object(Default::default());
        let mut target = UndoTarget { value, metadata: &mut metadata, secrets: Secrets::default(), undo: &mut self.undo };
        let result = self.runtime.resolve(&mut target, &self.program, &TimeZone::default());
        self.runtime.clear();
        if result.is_err() {
            self.undo.restore(value);
        }
        self.undo.clear();
        result
    }

    /// Evaluate as a condition on any event: `Ok(true)` only for a boolean true.
    pub fn check(&mut self, event: &mut Event) -> Result<bool, String> {
        // Conditions are read-only: a record is viewed, not converted.
        let result = match &mut event.data {
            EventData::Log(value) => self.run(value),
            _ => self.run(&mut event.to_value()),
        };
        match result {
            Ok(Value::Boolean(b)) => Ok(b),
            Ok(other) => Err(format!("a condition must return a boolean, this one returned {}", other.kind_str())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A VRL target that logs, for each change to the event, the part it
/// replaced, so the event can be put back as it was. VRL changes a target only
/// through `target_insert` and `target_remove`.
#[derive(Debug)]
struct UndoTarget<'a> {
    value: &'a mut Value,
    metadata: &'a mut Value,
    secrets: Secrets,
    undo: &'a mut UndoLog,
}

/// The changes of one run, oldest first: each a path and what was there
/// (`None` for nothing). The paths are written into buffers that outlive the
/// run, so logging a change allocates nothing once they have grown.
#[derive(Debug, Default)]
struct UndoLog {
    /// The field names of all logged paths, one after another.
    names: String,
    segments: Vec<LoggedSegment>,
    /// Each change: its path (a range of `segments`) and the old value.
    changes: Vec<(std::ops::Range<usize>, Option<Value>)>,
}

#[derive(Debug)]
enum LoggedSegment {
    /// A range of `UndoLog::names`.
    Field(std::ops::Range<usize>),
    Index(isize),
}

impl UndoLog {
    fn log(&mut self, path: &[OwnedSegment], old: Option<Value>) {
        let first = self.segments.len();
        for segment in path {
            self.segments.push(match segment {
                OwnedSegment::Field(name) => {
                    let start = self.names.len();
                    self.names.push_str(name);
                    LoggedSegment::Field(start..self.names.len())
                }
                OwnedSegment::Index(i) => LoggedSegment::Index(*i),
            });
        }
        self.changes.push((first..self.segments.len(), old));
    }

    /// Play the changes back, newest first.
    fn restore(&mut self, value: &mut Value) {
        while let Some((segments, old)) = self.changes.pop() {
            let path: Vec<OwnedSegment> = self.segments[segments]
                .iter()
                .map(|segment| match segment {
                    LoggedSegment::Field(name) => OwnedSegment::Field(self.names[name.clone()].into()),
                    LoggedSegment::Index(i) => OwnedSegment::Index(*i),
                })
                .collect();
            match old {
                Some(old) => {
                    value.insert(&path, old);
                }
                None => {
                    value.remove(&path, false);
                }
            }
        }
    }

    fn clear(&mut self) {
        self.names.clear();
        self.segments.clear();
        self.changes.clear();
    }
}

/// Where an insert at `path` changes the shape of `root`: the whole path when
/// every parent exists as the right container (the insert returns what it
/// replaced), else the first parent it creates (nothing was there) or
/// replaces (a copy of it).
enum InsertAt {
    Leaf,
    Created(usize),
    Replaced(usize, Value),
}

fn insert_point(root: &Value, path: &OwnedValuePath) -> InsertAt {
    let mut current = root;
    for (depth, segment) in path.segments.iter().enumerate() {
        if depth + 1 == path.segments.len() {
            // The leaf's own container must exist; an array index out of range pads.
            let fits = match (current, segment) {
                (Value::Object(_), OwnedSegment::Field(_)) => true,
                (Value::Array(items), OwnedSegment::Index(i)) => i.unsigned_abs() < items.len() || (*i >= 0 && *i as usize == items.len()),
                _ => false,
            };
            return if fits { InsertAt::Leaf } else { InsertAt::Replaced(depth, current.clone()) };
        }
        let child = match (current, segment) {
            (Value::Object(fields), OwnedSegment::Field(name)) => fields.get(name.as_str()),
            (Value::Array(items), OwnedSegment::Index(i)) if i.unsigned_abs() < items.len() || *i == -(items.len() as isize) => {
                items.get(if *i < 0 { items.len() - i.unsigned_abs() } else { *i as usize })
            }
            _ => return InsertAt::Replaced(depth, current.clone()),
        };
        match child {
            Some(child) => current = child,
            None => return InsertAt::Created(depth + 1),
        }
    }
    InsertAt::Leaf
}

impl Target for UndoTarget<'_> {
    fn target_insert(&mut self, path: &OwnedTargetPath, value: Value) -> Result<(), String> {
        if path.prefix == PathPrefix::Metadata {
            self.metadata.insert(&path.path, value);
            return Ok(());
        }
        match insert_point(self.value, &path.path) {
            InsertAt::Leaf => {
                let old = self.value.insert(&path.path, value);
                self.undo.log(&path.path.segments, old);
            }
            InsertAt::Created(depth) => {
                self.undo.log(&path.path.segments[..depth], None);
                self.value.insert(&path.path, value);
            }
            InsertAt::Replaced(depth, old) => {
                self.undo.log(&path.path.segments[..depth], Some(old));
                self.value.insert(&path.path, value);
            }
        }
        Ok(())
    }

    fn target_get(&self, path: &OwnedTargetPath) -> Result<Option<&Value>, String> {
        Ok(match path.prefix {
            PathPrefix::Event => self.value.get(&path.path),
            PathPrefix::Metadata => self.metadata.get(&path.path),
        })
    }

    fn target_get_mut(&mut self, path: &OwnedTargetPath) -> Result<Option<&mut Value>, String> {
        // VRL itself never asks for this; a change made through it could not be undone.
        Err(format!("cannot change {path} in place"))
    }

    fn target_remove(&mut self, path: &OwnedTargetPath, compact: bool) -> Result<Option<Value>, String> {
        if path.prefix == PathPrefix::Metadata {
            return Ok(self.metadata.remove(&path.path, compact));
        }
        let depth = path.path.segments.len();
        // Compacting may remove emptied parents too: keep the whole top-level
        // field. Removing an array item shifts the others: keep the array.
        let keep = if compact && depth > 1 {
            Some(1)
        } else if matches!(path.path.segments.last(), Some(OwnedSegment::Index(_))) {
            Some(depth - 1)
        } else {
            None
        };
        if let Some(keep) = keep {
            let whole = &path.path.segments[..keep];
            self.undo.log(whole, self.value.get(whole).cloned());
            return Ok(self.value.remove(&path.path, compact));
        }
        let removed = self.value.remove(&path.path, compact);
        if let Some(removed) = &removed {
            self.undo.log(&path.path.segments, Some(removed.clone()));
        }
        Ok(removed)
    }
}

impl SecretTarget for UndoTarget<'_> {
    fn get_secret(&self, key: &str) -> Option<&str> {
        self.secrets.get_secret(key)
    }

    fn insert_secret(&mut self, key: &str, value: &str) {
        self.secrets.insert_secret(key, value);
    }

    fn remove_secret(&mut self, key: &str) {
        self.secrets.remove_secret(key);
    }
}

/// Whether `event` meets an optional condition (`exclude`, `starts_when` …);
/// none is false. As in Vector, a condition that fails is false: counted as
/// an error, and logged (at most every 10 s) with `what` it was.
pub fn holds(
    condition: &mut Option<VrlProgram>,
    event: &mut Event,
    what: &str,
    log: &crate::telemetry::LogLimiter,
    out: &mut crate::component::TransformOutput,
) -> bool {
    let Some(condition) = condition else { return false };
    condition.check(event).unwrap_or_else(|e| {
        out.errors += 1;
        if let Some(held_back) = log.allow(0) {
            tracing::warn!(error = %e, held_back, "{what} failed; taken as false");
        }
        false
    })
}

/// A field path as Vector's options write one (`a.b`, `.a.b`, `a[0]`,
/// `"key.with.dots"`), for reading logs and request records with
/// `template::field`.
pub fn value_path(text: &str) -> Result<vrl::path::OwnedValuePath, String> {
    let bare = text.strip_prefix('.').unwrap_or(text);
    if bare.is_empty() {
        return Err("a field name is empty".into());
    }
    vrl::path::parse_value_path(bare).map_err(|e| format!("invalid field `{text}`: {e}"))
}

/// A condition: a VRL expression, or Vector's `{ type = "vrl", source = "…" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    Source(String),
    Typed(TypedCondition),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedCondition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub source: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionType {
    Vrl,
}

impl Condition {
    pub fn compile(&self) -> Result<VrlProgram, String> {
        let source = match self {
            Condition::Source(s) | Condition::Typed(TypedCondition { source: s, .. }) => s,
        };
        VrlProgram::compile(source, true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every function of VRL's standard library, as the crate defines them
    /// with all its groups (crypto, env, system, network). A name undefined
    /// after an upgrade or a feature change fails here, not in a user's program.
    const VRL_FUNCTIONS: &str = include_str!("vrl_functions.txt");

    #[test]
    fn every_vrl_function_is_defined() {
        let defined: BTreeSet<&str> = vrl::stdlib::all().iter().map(|f| f.identifier()).collect();
        let missing: Vec<&str> = VRL_FUNCTIONS.lines().filter(|name| !defined.contains(name)).collect();
        assert!(missing.is_empty(), "undefined VRL functions: {missing:?}");
        let listed: BTreeSet<&str> = VRL_FUNCTIONS.lines().collect();
        let unlisted: Vec<&&str> = defined.difference(&listed).collect();
        assert!(unlisted.is_empty(), "VRL functions not in vrl_functions.txt (add them): {unlisted:?}");
    }

    /// Each function runs as its documentation says: every example VRL ships
    /// with it, compiled and run as `remap` does (examples that need the network
    /// are compiled only, as VRL's own harness does).
    #[test]
    fn every_vrl_function_runs_its_examples() {
        let mut failures = Vec::new();
        let mut ran = 0;
        for function in vrl::stdlib::all() {
            for example in function.examples() {
                if let Some((_, why)) = UNRUNNABLE.iter().find(|(title, _)| *title == example.title) {
                    eprintln!("not run: {}: {}: {why}", function.identifier(), example.title);
                    continue;
                }
                // Files of VRL's own tests are named from its crate's root (shipped with it).
                let crate_root = example.file.rsplit_once("/src/").map_or(".", |(root, _)| root);
                let source = example.source.replace("tests/data/", &format!("{crate_root}/tests/data/"));
                let mut program = match VrlProgram::compile(&source, false) {
                    Ok(program) => program,
                    Err(e) => {
                        failures.push(format!("{}: {}: does not compile: {e}", function.identifier(), example.title));
                        continue;
                    }
                };
                if example.skip {
                    continue;
                }
                ran += 1;
                let input = example.input.map(|json| serde_json::from_str::<serde_json::Value>(json).expect("example input is JSON"));
                let mut target = input.map(Value::from).unwrap_or(Value::Object(Default::default()));
                let outcome = match (program.run(&mut target), example.result) {
                    (Ok(got), Ok(want)) => {
                        let (got, want) = (serde_json::to_value(&got).unwrap(), expected(want));
                        let same = if example.deterministic { got == want } else { json_kind(&got) == json_kind(&want) };
                        same.then_some(()).ok_or(format!("got {got}, want {want}"))
                    }
                    (Err(Terminate::Abort(_)), Ok(want)) | (Err(Terminate::Abort(_)), Err(want)) => {
                        let got = serde_json::to_value(&target).unwrap();
                        (got == expected(want)).then_some(()).ok_or(format!("aborted with the event {got}, want {want}"))
                    }
                    (Err(e), Err(want)) => {
                        let same = without_spans(e.to_string().trim()) == without_spans(want.trim());
                        same.then_some(()).ok_or(format!("error {e}, want {want:?}"))
                    }
                    (Err(e), Ok(want)) => Err(format!("error {e}, want {want}")),
                    (Ok(got), Err(want)) => Err(format!("got {got}, want the error {want:?}")),
                };
                if let Err(why) = outcome {
                    failures.push(format!("{}: {}: {why}", function.identifier(), example.title));
                }
            }
        }
        assert!(failures.is_empty(), "{} of {ran} examples failed:\n{}", failures.len(), failures.join("\n"));
        assert!(ran > 500, "only {ran} examples ran");
    }

    /// Examples that cannot run here, by title, and why.
    const UNRUNNABLE: &[(&str, &str)] = &[
        // The file it names is in Vector's repository, not in VRL's crate.
        ("Parse eTLD with custom PSL", "needs lib/tests/tests/functions/custom_public_suffix_list.dat"),
        // The frame header zstd writes depends on the library's version: round trip below.
        ("Encode to Zstd", "the bytes depend on libzstd's version; checked by decoding"),
    ];

    #[test]
    fn zstd_encoding_round_trips() {
        let mut program = VrlProgram::compile(r#"decode_zstd!(encode_zstd("please encode me"))"#, false).unwrap();
        assert_eq!(program.run(&mut Value::Object(Default::default())).unwrap(), Value::from("please encode me"));
    }

    /// A function that panics compiling a bad literal argument gives a config error instead.
    #[test]
    fn a_vrl_function_panicking_at_compile_time_is_an_error() {
        let error = VrlProgram::compile(r#"parse_proto!(.x, "/nonexistent.desc", "a.B")"#, false).unwrap_err();
        assert!(error.starts_with("invalid VRL program: message type not found"), "{error}");
    }

    /// A failed or aborted run leaves the event exactly as it was, whatever the
    /// program changed before (new fields and parents, replaced values, removed
    /// ones, array items, the whole event); a run that ends well gives what `run` gives.
    #[test]
    fn a_failed_run_leaves_the_event_as_it_was() {
        let event = serde_json::json!({
            "a": 1, "s": "text", "x": {"y": [1, 2, {"z": true}], "w": "keep"},
            "arr": [10, 20], "q": {"only": 1}, "nested": {"deep": {"er": {"est": 0}}}
        });
        let changes = [
            ".a = 2",
            ".new.parent.child = 1",
            ".s.field = 1",
            ".arr[1] = 99",
            ".arr[5] = 1",
            ".arr[-1] = 7",
            ".x.y[2].z = false",
            "del(.x.w)",
            "del(.x.y[0])",
            "del(.q.only, compact: true)",
            ".nested.deep = null",
            "del(.nested.deep.er.est, compact: true)",
            ". = {\"replaced\": true}",
            ".a = 2\n.x.y[1] = \"two\"\ndel(.x)\n.x = 3\n.b = .a",
        ];
        for change in changes {
            for end in ["abort", "to_int!(\"not a number\")", "true"] {
                let source = format!("{change}\n{end}");
                let mut program = VrlProgram::compile(&source, false).unwrap();
                let mut restored = Value::from(event.clone());
                let outcome = program.run_or_restore(&mut restored);
                let mut plain = Value::from(event.clone());
                let expected = program.run(&mut plain);
                assert_eq!(outcome.is_ok(), expected.is_ok(), "{source}");
                if outcome.is_ok() {
                    assert_eq!(restored, plain, "{source}");
                } else {
                    assert_eq!(serde_json::to_value(&restored).unwrap(), event, "{source}");
                }
            }
        }
    }

    /// Vector's documented examples of the two enrichment functions, against a
    /// real CSV table (Vector's own documentation runs them against a canned
    /// table that returns the same rows whatever is asked: its "case
    /// insensitive" example of `get_…` asks for John and gets Bob; that one is
    /// asked here for a row that exists). `select` drops `date_of_birth`, which
    /// the documented results leave out.
    #[test]
    fn enrichment_functions_give_vectors_documented_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(
            &path,
            "id,firstname,surname,date_of_birth\n1,Bob,Smith,1985-06-01\n2,Fred,Smith,1985-11-11\n3,John,Jones,1990-01-01\n",
        )
        .unwrap();
        let config: crate::enrichment::TableConfig = toml_edit::de::from_str(&format!(
            "type = \"file\"\nfile.path = \"{}\"\nschema = {{ id = \"integer\", date_of_birth = \"date\" }}\n",
            path.display()
        ))
        .unwrap();
        let tables = [("test".to_string(), std::sync::Arc::new(config.load().unwrap()))].into();
        let run = |source: &str| -> Result<serde_json::Value, String> {
            let mut program = crate::enrichment::with_tables(&tables, || VrlProgram::compile(source, false))?;
            program.run(&mut Value::Object(Default::default())).map(|v| serde_json::to_value(v).unwrap()).map_err(|e| e.to_string())
        };
        let select = r#"select: ["id", "firstname", "surname"]"#;
        let bob = serde_json::json!({"id": 1, "firstname": "Bob", "surname": "Smith"});
        let both = serde_json::json!([bob, {"id": 2, "firstname": "Fred", "surname": "Smith"}]);
        let in_1985 = r#""date_of_birth": {"from": t'1985-01-01T00:00:00Z', "to": t'1985-12-31T00:00:00Z'}"#;
        for (source, want) in [
            (format!(r#"find_enrichment_table_records!("test", {{"surname": "Smith"}}, {select})"#), &both),
            (format!(r#"find_enrichment_table_records!("test", {{"surname": "smith"}}, case_sensitive: false, {select})"#), &both),
            (
                format!(
                    r#"find_enrichment_table_records!("test", {{"firstname": "Bob"}}, wildcard: "fred", case_sensitive: false, {select})"#
                ),
                &both,
            ),
            (format!(r#"find_enrichment_table_records!("test", {{"surname": "Smith", {in_1985}}}, {select})"#), &both),
            (format!(r#"get_enrichment_table_record!("test", {{"id": 1}}, {select})"#), &bob),
            (
                format!(
                    r#"get_enrichment_table_record!("test", {{"surname": "smith", "firstname": "BOB"}}, case_sensitive: false, {select})"#
                ),
                &bob,
            ),
            (
                format!(
                    r#"get_enrichment_table_record!("test", {{"surname": "Smith", "date_of_birth": {{"to": t'1985-07-01T00:00:00Z'}}}}, {select})"#
                ),
                &bob,
            ),
        ] {
            assert_eq!(run(&source).as_ref(), Ok(want), "{source}");
        }
        // The values may come from the event; the row is returned whole without `select`.
        let mut program = crate::enrichment::with_tables(&tables, || {
            VrlProgram::compile(r#"get_enrichment_table_record!("test", {"id": .user_id}).date_of_birth"#, false)
        })
        .unwrap();
        let mut event = Value::from(serde_json::json!({"user_id": 3}));
        assert_eq!(serde_json::to_value(program.run(&mut event).unwrap()).unwrap(), "1990-01-01T00:00:00Z");
        // One row or an error; unknown tables and columns fail the compile.
        let error = run(r#"get_enrichment_table_record!("test", {"surname": "Smith"})"#).unwrap_err();
        assert!(error.ends_with(": 2 rows found where one was expected"), "{error}");
        let error = run(r#"get_enrichment_table_record!("test", {"surname": "Nobody"})"#).unwrap_err();
        assert!(error.ends_with(": no rows found"), "{error}");
        let error = run(r#"get_enrichment_table_record!("nope", {"id": 1})"#).unwrap_err();
        assert!(error.contains("invalid enum variant") && error.contains("test"), "{error}");
        let error = run(r#"get_enrichment_table_record!("test", {"age": 1})"#).unwrap_err();
        assert!(error.contains("has no column `age` (it has: id, firstname, surname, date_of_birth)"), "{error}");
    }

    /// An example's result as VRL's harness reads it: `r'…'` a regex, `t'…'` a
    /// timestamp, `s'…'` a string, else JSON (else the text itself).
    fn expected(want: &str) -> serde_json::Value {
        let quoted = |prefix: &str| want.strip_prefix(prefix).and_then(|w| w.strip_suffix('\''));
        if let Some(regex) = quoted("r'") {
            return serde_json::Value::from(regex.replace("\\'", "'"));
        }
        if let Some(time) = quoted("t'") {
            if let Ok(time) = time.parse::<chrono::DateTime<chrono::Utc>>() {
                return serde_json::to_value(Value::from(time)).unwrap();
            }
        }
        if let Some(text) = quoted("s'") {
            return serde_json::Value::from(text);
        }
        serde_json::from_str(want.trim()).unwrap_or_else(|_| serde_json::Value::from(want))
    }

    /// An error message without where in the source it happened (` at (0:142)`):
    /// a file path rewritten above moves it.
    fn without_spans(message: &str) -> String {
        regex::Regex::new(r" at \(\d+:\d+\)").unwrap().replace_all(message, "").into_owned()
    }

    fn json_kind(value: &serde_json::Value) -> &'static str {
        match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
}
