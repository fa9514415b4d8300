//! `filter`: keep the events for which a VRL condition is true.

use serde::Deserialize;

use super::vrl_program::VrlProgram;
use super::{Transform, TransformConfig, TransformOutput};
use crate::config::OutputDef;
use crate::event::{EventBatch, Kinds};

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub condition: Condition,
}

impl TransformConfig for FilterConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn outputs(&self, input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(input)]
    }

    fn build(&self) -> Result<Box<dyn Transform>, String> {
        Ok(Box::new(Filter { condition: self.condition.compile()? }))
    }
}

struct Filter {
    condition: VrlProgram,
}

impl Transform for Filter {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        for mut event in batch {
            match self.condition.check(&mut event) {
                Ok(true) => out.primary.push(event),
                Ok(false) => {}
                Err(e) => {
                    // Vector drops events whose condition errors; so do we, counted.
                    out.errors += 1;
                    out.discarded += 1;
                    tracing::warn!(error = %e, "filter: condition failed; event dropped");
                }
            }
        }
    }
}
