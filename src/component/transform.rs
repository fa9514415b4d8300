//! The transform contract: a function from a batch to batches on named
//! outputs; those with state and timers (`red`, `enrich`'s table reloads)
//! also tick, and flush what they hold on the last tick.

use std::fmt::Debug;
use std::time::Duration;

use std::collections::BTreeMap;

use super::output::{Fanout, OutputDef};
use super::Result;
use crate::event::{Event, EventBatch, Kinds};
use crate::telemetry::ComponentMetrics;

pub trait TransformConfig: Debug + Send + Sync {
    fn input_kinds(&self) -> Kinds;
    fn outputs(&self, input: Kinds) -> Vec<OutputDef>;
    /// Compile what can be compiled; errors here are config errors.
    fn build(&self) -> Result<Box<dyn Transform>>;
}

pub trait Transform: Send {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput);

    /// Called once in the running topology before the first batch: start
    /// background work here (not in `build`, which `validate` also calls).
    fn start(&mut self) {}

    /// How often `tick` runs; `None` for transforms without timers.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Runs every `tick_interval`, and once more with `last = true` after the
    /// input has ended, to flush what is held.
    fn tick(&mut self, _last: bool, _out: &mut TransformOutput) {}

    /// An independent copy, for a transform that keeps nothing from one batch
    /// to the next, has no timers or background work (`start` is not called
    /// on it), and gives each output at most as many
    /// events as it was handed (`remap`, `filter`, `route`). The topology then
    /// runs copies on the tasks that send to it (`inline`) instead of a task
    /// of its own: the events are changed on the thread that built them.
    fn fork(&self) -> Option<Box<dyn Transform>> {
        None
    }
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
    /// The transform's own counters (see `ComponentMetrics::own`).
    pub counts: Vec<(&'static str, u64)>,
    /// The transform's own gauges, as of now.
    pub gauges: Vec<(&'static str, u64)>,
}

impl TransformOutput {
    pub fn new(ports: &[OutputDef]) -> Self {
        let named = ports.iter().filter_map(|p| p.port.clone()).map(|p| (p, Vec::new())).collect();
        TransformOutput { named, ..Default::default() }
    }

    /// Add to one of the transform's own counters.
    pub fn count(&mut self, name: &'static str, n: u64) {
        match self.counts.iter_mut().find(|(known, _)| *known == name) {
            Some((_, total)) => *total += n,
            None => self.counts.push((name, n)),
        }
    }

    /// Set one of the transform's own gauges.
    pub fn gauge(&mut self, name: &'static str, value: u64) {
        self.gauges.retain(|(known, _)| *known != name);
        self.gauges.push((name, value));
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

/// Count what a transform counted, and take its results by output.
pub(crate) fn settle(out: &mut TransformOutput, metrics: &ComponentMetrics) -> Vec<(Option<String>, EventBatch)> {
    ComponentMetrics::add(&metrics.errors, std::mem::take(&mut out.errors));
    ComponentMetrics::add(&metrics.discarded_events, std::mem::take(&mut out.discarded));
    for (name, n) in out.counts.drain(..) {
        metrics.add_own(name, n);
    }
    for (name, value) in out.gauges.drain(..) {
        metrics.set_own_gauge(name, value);
    }
    out.drain().filter(|(_, batch)| !batch.is_empty()).collect()
}

/// `settle`, then send each output's batch on, waiting while a target is full.
pub(crate) async fn deliver(out: &mut TransformOutput, fanouts: &BTreeMap<Option<String>, Fanout>, metrics: &ComponentMetrics) {
    for (port, batch) in settle(out, metrics) {
        if let Some(fanout) = fanouts.get(&port) {
            fanout.send(batch).await;
        }
    }
}
