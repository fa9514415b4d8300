//! `filter`: keep the events for which a VRL condition is true.

use serde::Deserialize;

use super::util::{Condition, VrlProgram};
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{EventBatch, Kinds};

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

    fn build(&self) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Filter { condition: self.condition.compile()? }))
    }
}

struct Filter {
    condition: VrlProgram,
}

impl Transform for Filter {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(Filter { condition: self.condition.fork() }))
    }

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
