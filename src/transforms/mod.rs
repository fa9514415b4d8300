//! Transforms: plain functions from a batch to batches on named outputs.

pub mod filter;
pub mod remap;
pub mod route;
mod vrl_program;

pub use vrl_program::VrlProgram;

use std::fmt::Debug;

use crate::config::OutputDef;
use crate::event::{Event, EventBatch, Kinds};

pub trait TransformConfig: Debug + Send + Sync {
    fn input_kinds(&self) -> Kinds;
    fn outputs(&self, input: Kinds) -> Vec<OutputDef>;
    /// Compile what can be compiled; errors here are config errors.
    fn build(&self) -> Result<Box<dyn FunctionTransform>, String>;
}

pub trait FunctionTransform: Send {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput);
}

/// Where a transform puts its results, per output, plus what it counted.
#[derive(Default)]
pub struct TransformOutput {
    pub primary: EventBatch,
    /// Named outputs, in the order of the transform's `outputs()`.
    pub named: Vec<(String, EventBatch)>,
    pub errors: usize,
    /// Events dropped on error or abort (not those a filter said no to).
    pub discarded: usize,
}

impl TransformOutput {
    pub fn new(ports: &[OutputDef]) -> Self {
        let named = ports.iter().filter_map(|p| p.port.clone()).map(|p| (p, Vec::new())).collect();
        TransformOutput { named, ..Default::default() }
    }

    pub fn push_named(&mut self, index: usize, event: Event) {
        self.named[index].1.push(event);
    }

    /// Take the results, leaving the buffers empty for the next batch.
    pub fn drain(&mut self) -> impl Iterator<Item = (Option<String>, EventBatch)> + '_ {
        let primary = std::mem::take(&mut self.primary);
        std::iter::once((None, primary)).chain(self.named.iter_mut().map(|(name, batch)| (Some(name.clone()), std::mem::take(batch))))
    }
}
