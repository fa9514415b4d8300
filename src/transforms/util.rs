//! What the transforms share: a compiled VRL program with the runtime that
//! runs it, and VRL conditions (`remap`, `filter`, `route`, the config's unit
//! tests).

use serde::Deserialize;
use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::{CompileConfig, Program, TargetValueRef, TimeZone};
use vrl::value::{Secrets, Value};

use crate::event::{Event, EventData};

pub struct VrlProgram {
    program: Program,
    runtime: Runtime,
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
            vrl::compiler::compile_with_state(source, &vrl::stdlib::all(), &state, config)
        }));
        match compiled {
            Ok(Ok(result)) => Ok(VrlProgram { program: result.program, runtime: Runtime::default() }),
            Ok(Err(diagnostics)) => Err(format!("invalid VRL program:\n{}", vrl::diagnostic::Formatter::new(source, diagnostics))),
            Err(panic) => {
                let message = panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied());
                Err(format!("invalid VRL program: {}", message.unwrap_or("the VRL compiler failed")))
            }
        }
    }

    /// Whether a run can end in an error or an abort (so the input must be kept).
    pub fn can_fail(&self) -> bool {
        self.program.info().fallible || self.program.info().abortable
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
