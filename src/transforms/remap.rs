//! `remap`: run a VRL program on each log.

use serde::Deserialize;
use vrl::compiler::runtime::Terminate;

use super::util::VrlProgram;
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{EventBatch, Kinds};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapConfig {
    /// The VRL program, inline.
    pub source: Option<String>,
    /// Or a file holding it.
    pub file: Option<String>,
    /// On a runtime error, drop the event (else it goes on unchanged).
    #[serde(default)]
    pub drop_on_error: bool,
    /// On `abort`, drop the event (else it goes on unchanged).
    #[serde(default = "crate::defaults::yes")]
    pub drop_on_abort: bool,
    /// Send the events that fail or abort to the `dropped` output instead of losing them.
    #[serde(default)]
    pub reroute_dropped: bool,
}

impl RemapConfig {
    fn program_text(&self) -> Result<String, String> {
        match (&self.source, &self.file) {
            (Some(source), None) => Ok(source.clone()),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| format!("cannot read VRL file `{path}`: {e}")),
            (Some(_), Some(_)) => Err("set `source` or `file`, not both".into()),
            (None, None) => Err("set `source` (a VRL program) or `file` (a path to one)".into()),
        }
    }
}

impl TransformConfig for RemapConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        let mut outputs = vec![OutputDef::default(Kinds::LOG)];
        if self.reroute_dropped {
            outputs.push(OutputDef::named("dropped", Kinds::LOG));
        }
        outputs
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        let program = VrlProgram::compile(&self.program_text()?, false)?;
        // As Vector: the event before the program is needed only if one that
        // fails or aborts goes on (unchanged) rather than being dropped.
        let info = program.info();
        let keep_original = (info.fallible && (!self.drop_on_error || self.reroute_dropped))
            || (info.abortable && (!self.drop_on_abort || self.reroute_dropped));
        Ok(Box::new(Remap { keep_original, program, config: self.clone() }))
    }
}

struct Remap {
    program: VrlProgram,
    config: RemapConfig,
    /// Put an event that failed or aborted back as it came (see `build`).
    keep_original: bool,
}

impl Transform for Remap {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(Remap { program: self.program.fork(), config: self.config.clone(), keep_original: self.keep_original }))
    }

    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        for mut event in batch {
            let Some(value) = event.make_log() else {
                // The config check only wires logs here.
                out.primary.push(event);
                continue;
            };
            let run = if self.keep_original { self.program.run_or_restore(value) } else { self.program.run(value) };
            let (failed, drop) = match run {
                Ok(_) => {
                    out.primary.push(event);
                    continue;
                }
                Err(Terminate::Abort(_)) => ("aborted", self.config.drop_on_abort),
                Err(e) => {
                    out.errors += 1;
                    tracing::warn!(error = %e, "remap: VRL runtime error");
                    ("failed", self.config.drop_on_error)
                }
            };
            if self.config.reroute_dropped {
                out.push_named(0, event);
            } else if drop {
                tracing::debug!(failed, "remap dropped an event");
                out.discarded += 1;
            } else {
                out.primary.push(event);
            }
        }
    }
}
