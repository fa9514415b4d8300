//! `route`: each named route is a VRL condition; an event goes to every route
//! it matches, and to `_unmatched` when it matches none.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::util::Condition;
use super::util::VrlProgram;
use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{EventBatch, Kinds};

pub const UNMATCHED: &str = "_unmatched";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub route: BTreeMap<String, Condition>,
    /// Vector's option: whether to add the `_unmatched` output.
    #[serde(default = "crate::defaults::yes")]
    pub reroute_unmatched: bool,
}

impl TransformConfig for RouteConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn outputs(&self, input: Kinds) -> Vec<OutputDef> {
        let mut outputs: Vec<OutputDef> = self.route.keys().map(|name| OutputDef::named(name.clone(), input)).collect();
        if self.reroute_unmatched {
            outputs.push(OutputDef::named(UNMATCHED, input));
        }
        outputs
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        let mut routes = Vec::new();
        for (name, condition) in &self.route {
            if name == UNMATCHED {
                return Err(format!("`{UNMATCHED}` is reserved for events no route matches").into());
            }
            routes.push(condition.compile().map_err(|e| format!("route `{name}`: {e}"))?);
        }
        Ok(Box::new(Route { routes, reroute_unmatched: self.reroute_unmatched }))
    }
}

struct Route {
    /// In the order of `outputs()`: route i is named output i.
    routes: Vec<VrlProgram>,
    reroute_unmatched: bool,
}

impl Transform for Route {
    fn fork(&self) -> Option<Box<dyn Transform>> {
        let routes = self.routes.iter().map(VrlProgram::fork).collect();
        Some(Box::new(Route { routes, reroute_unmatched: self.reroute_unmatched }))
    }

    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        for mut event in batch {
            let mut matched: Vec<usize> = Vec::new();
            for (index, condition) in self.routes.iter_mut().enumerate() {
                match condition.check(&mut event) {
                    Ok(true) => matched.push(index),
                    Ok(false) => {}
                    Err(e) => {
                        out.errors += 1;
                        tracing::warn!(error = %e, "route: condition failed; treated as not matched");
                    }
                }
            }
            match matched.split_last() {
                Some((&last, rest)) => {
                    for &index in rest {
                        out.push_named(index, event.clone());
                    }
                    out.push_named(last, event);
                }
                None if self.reroute_unmatched => out.push_named(self.routes.len(), event),
                None => out.discarded += 1,
            }
        }
    }
}
