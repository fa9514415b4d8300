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
        match vrl::compiler::compile_with_state(source, &vrl::stdlib::all(), &state, config) {
            Ok(result) => Ok(VrlProgram { program: result.program, runtime: Runtime::default() }),
            Err(diagnostics) => Err(format!("invalid VRL program:\n{}", vrl::diagnostic::Formatter::new(source, diagnostics))),
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
