//! The running graph. The topology owns every channel: each transform and
//! sink has one input buffer, each output a list of the buffers that read it.
//! Components never see each other.
//!
//! Stopping works by closing: a source told to stop ends and drops its
//! outputs; a component whose every upstream is gone drains its buffer and
//! ends in turn. So nothing in flight is lost on shutdown or reload.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::component::buffer::{self, BufferReceiver};
use crate::component::inline::InlineTransform;
use crate::component::output::{Fanout, OutputDef, Target, TargetList};
use crate::component::{
    deliver, ComponentKind, Error, Result, ShutdownSignal, SinkContext, SourceContext, SourceOutputs, Task, Transform, TransformOutput,
};
use crate::config::{Component, Config, GlobalOptions, OutputId};
use crate::enrichment;
use crate::registry::ComponentConfig;
use crate::telemetry::{self, ComponentMetrics};

struct Running {
    kind: ComponentKind,
    type_name: String,
    fingerprint: serde_json::Value,
    /// Transforms and sinks: where senders put batches (an input buffer, or
    /// a transform run inline).
    input: Option<Target>,
    /// Sources and transforms: the targets of each output.
    outputs: BTreeMap<Option<String>, Arc<TargetList>>,
    stop: Option<watch::Sender<bool>>,
    handle: JoinHandle<()>,
}

pub struct RunningTopology {
    running: BTreeMap<String, Running>,
    /// Components replaced or removed on reload, still draining.
    retired: Vec<(String, JoinHandle<()>)>,
    global: GlobalOptions,
    /// Components whose task ended with an error (a sink whose healthcheck failed).
    failed: Arc<AtomicUsize>,
    /// The enrichment tables the running programs were compiled against.
    enrichment_tables: enrichment::Tables,
}

impl RunningTopology {
    /// Build and start every component. Fails, starting nothing, if a
    /// component cannot be built.
    pub fn start(config: &Config) -> Result<Self> {
        let mut topology = RunningTopology {
            running: BTreeMap::new(),
            retired: Vec::new(),
            global: config.global.clone(),
            failed: Default::default(),
            enrichment_tables: config.enrichment_tables.clone(),
        };
        topology.apply(config)?;
        Ok(topology)
    }

    /// Move to a new config: components whose options changed are rebuilt,
    /// new ones started, removed ones drained; the others keep running and
    /// are only rewired. On error the old topology keeps running untouched.
    pub async fn reload(&mut self, config: &Config) -> Result<()> {
        if config.global != self.global {
            return Err("global options (data_dir, acknowledgements, api) changed: restart tapline to apply them".into());
        }
        // Programs compiled against changed enrichment tables are compiled again.
        let tables_changed = config.enrichment_tables != self.enrichment_tables;
        // Compile the new and changed transforms before touching anything.
        for c in config.components.values() {
            if let ComponentConfig::Transform(t) = &c.config {
                if self.changed(c) || tables_changed {
                    enrichment::with_tables(&config.enrichment_tables, || t.build())
                        .map_err(|e| Error::caused_by(format!("transform `{}`", c.id), e))?;
                }
            }
        }
        if tables_changed {
            for running in self.running.values_mut().filter(|r| r.kind == ComponentKind::Transform) {
                running.fingerprint = serde_json::Value::Null;
            }
            self.enrichment_tables = config.enrichment_tables.clone();
        }
        // A changed source must let go of what it holds (ports, files) before its successor starts.
        let stopping: Vec<String> = self
            .running
            .iter()
            .filter(|(id, r)| r.kind == ComponentKind::Source && config.components.get(*id).is_none_or(|c| self.changed(c)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stopping {
            if let Some(old) = self.running.remove(&id) {
                if let Some(stop) = &old.stop {
                    let _ = stop.send(true);
                }
                let _ = old.handle.await;
            }
        }
        let kept: Vec<&String> = self.running.keys().filter(|id| config.components.get(*id).is_some_and(|c| !self.changed(c))).collect();
        let removed: Vec<&String> = self.running.keys().filter(|id| !config.components.contains_key(*id)).collect();
        tracing::info!("reloading: keeping {kept:?}, removing {removed:?}");
        let started = self.apply(config)?;
        tracing::info!("reloaded: started {started:?}");
        Ok(())
    }

    fn changed(&self, c: &Component) -> bool {
        self.running.get(&c.id).is_none_or(|r| r.kind != c.kind || r.type_name != c.type_name || r.fingerprint != c.fingerprint)
    }

    /// Start what is new or changed, rewire every output, retire the rest.
    /// Returns the ids of the components started.
    fn apply(&mut self, config: &Config) -> Result<Vec<String>> {
        self.retired.retain(|(_, handle)| !handle.is_finished());
        let acks = acknowledging_sources(config);
        let mut started = BTreeMap::new();
        // New tasks wait until every output is wired, so nothing is sent into an empty target list.
        let mut gates = Vec::new();
        let mut transforms = BTreeMap::new();
        for c in config.components.values().filter(|c| self.changed(c)) {
            if let ComponentConfig::Transform(t) = &c.config {
                let built = enrichment::with_tables(&config.enrichment_tables, || t.build());
                transforms.insert(c.id.clone(), built.map_err(|e| Error::caused_by(format!("transform `{}`", c.id), e))?);
            }
        }
        for c in config.components.values().filter(|c| self.changed(c)) {
            let metrics = telemetry::component(&c.id, c.kind.as_str(), &c.type_name);
            let outputs: BTreeMap<Option<String>, Arc<TargetList>> = c.outputs().into_iter().map(|o| (o.port, Arc::default())).collect();
            let fanouts = || {
                outputs
                    .iter()
                    .map(|(port, targets)| (port.clone(), Fanout { targets: targets.clone(), metrics: metrics.clone() }))
                    .collect::<BTreeMap<_, _>>()
            };
            let mut input = None;
            let mut stop = None;
            let task: Task = match &c.config {
                ComponentConfig::Source(source) => {
                    let (tx, shutdown) = ShutdownSignal::new();
                    stop = Some(tx);
                    let cx = SourceContext {
                        id: c.id.clone(),
                        out: SourceOutputs { ports: fanouts() },
                        shutdown,
                        metrics: metrics.clone(),
                        acknowledgements: acks.contains(&c.id),
                        data_dir: self.global.data_dir.clone(),
                        pending: Default::default(),
                    };
                    source.build(cx).map_err(|e| Error::caused_by(format!("source `{}`", c.id), e))?
                }
                ComponentConfig::Transform(_) => {
                    let transform = transforms.remove(&c.id).ok_or("transform built above")?;
                    // Transforms that can be forked run on their senders' tasks; the others behind a buffer.
                    match InlineTransform::new(transform, c.outputs(), fanouts(), metrics.clone()) {
                        Ok((inline, task)) => {
                            input = Some(Target::Inline(inline));
                            task
                        }
                        Err(transform) => {
                            let (tx, rx) = buffer::channel(&c.buffer, metrics.clone());
                            input = Some(Target::Buffer(tx));
                            Box::pin(run_transform(transform, rx, fanouts(), c.outputs(), metrics.clone()))
                        }
                    }
                }
                ComponentConfig::Sink(sink) => {
                    let (tx, rx) = buffer::channel(&c.buffer, metrics.clone());
                    input = Some(Target::Buffer(tx));
                    sink.build(SinkContext { id: c.id.clone(), input: rx, metrics: metrics.clone() })
                        .map_err(|e| Error::caused_by(format!("sink `{}`", c.id), e))?
                }
            };
            let (open, gate) = oneshot::channel::<()>();
            gates.push(open);
            let id = c.id.clone();
            let failed = self.failed.clone();
            let handle = tokio::spawn(async move {
                // A closed gate means the start was abandoned: end without running.
                if gate.await.is_ok() {
                    supervise(id, task, metrics, failed).await;
                }
            });
            started.insert(
                c.id.clone(),
                Running { kind: c.kind, type_name: c.type_name.clone(), fingerprint: c.fingerprint.clone(), input, outputs, stop, handle },
            );
        }
        // Retire what is gone or replaced: dropping our ends lets each drain and end.
        let stale: Vec<String> =
            self.running.keys().filter(|id| !config.components.contains_key(*id) || started.contains_key(*id)).cloned().collect();
        for id in stale {
            if let Some(old) = self.running.remove(&id) {
                if let Some(stop) = &old.stop {
                    let _ = stop.send(true);
                }
                self.retired.push((id, old.handle));
            }
        }
        let started_ids: Vec<String> = started.keys().cloned().collect();
        self.running.extend(started);
        // Rewire: each output's target list is replaced whole, so no batch falls between two lists.
        // New components first: a running source must not reach a new inline
        // transform before that transform's own outputs are wired.
        let (new, kept): (Vec<_>, Vec<_>) = self.running.iter().partition(|(id, _)| started_ids.contains(id));
        for (id, running) in new.into_iter().chain(kept) {
            for (port, targets) in &running.outputs {
                let out = OutputId { component: id.clone(), port: port.clone() };
                let list = config
                    .components
                    .values()
                    .filter(|c| c.upstream().any(|u| *u == out))
                    .filter_map(|c| self.running.get(&c.id).and_then(|r| r.input.clone()).map(|target| (c.id.clone(), target)))
                    .collect();
                targets.set(list);
            }
        }
        for open in gates {
            let _ = open.send(());
        }
        Ok(started_ids)
    }

    /// The count of components that have failed, read as it grows (also while stopping).
    pub fn failures(&self) -> Arc<AtomicUsize> {
        self.failed.clone()
    }

    /// Whether every source has ended on its own (stdin at EOF, a finite demo).
    pub fn sources_finished(&self) -> bool {
        self.running.values().filter(|r| r.kind == ComponentKind::Source).all(|r| r.handle.is_finished())
    }

    /// Stop the sources, let everything downstream drain, and wait up to
    /// `deadline`. Returns false if some component had not finished by then.
    pub async fn stop(mut self, deadline: Duration) -> bool {
        let mut handles = std::mem::take(&mut self.retired);
        for (id, running) in std::mem::take(&mut self.running) {
            if let Some(stop) = &running.stop {
                let _ = stop.send(true);
            }
            // Our senders and target lists go with `running`, so the close can cascade.
            handles.push((id, running.handle));
        }
        let waiting = async {
            for (_, handle) in handles.iter_mut() {
                let _ = handle.await;
            }
        };
        if tokio::time::timeout(deadline, waiting).await.is_ok() {
            return true;
        }
        let unfinished: Vec<&str> = handles.iter().filter(|(_, h)| !h.is_finished()).map(|(id, _)| id.as_str()).collect();
        tracing::error!(?unfinished, "graceful shutdown deadline passed; stopping what is left");
        for (_, handle) in &handles {
            handle.abort();
        }
        false
    }
}

/// Sources that must attach finalizers: all when acknowledgements are on
/// globally, else those upstream of a sink that asks for them.
fn acknowledging_sources(config: &Config) -> BTreeSet<String> {
    let mut wanted = BTreeSet::new();
    for sink in config.of_kind(ComponentKind::Sink) {
        if !sink.acknowledgements.unwrap_or(config.global.acknowledgements) {
            continue;
        }
        let mut stack: Vec<&str> = vec![&sink.id];
        let mut seen = BTreeSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(c) = config.components.get(id) {
                if c.kind == ComponentKind::Source {
                    wanted.insert(id.to_string());
                }
                stack.extend(c.upstream().map(|o| o.component.as_str()));
            }
        }
    }
    wanted
}

async fn supervise(id: String, task: Task, metrics: Arc<ComponentMetrics>, failed: Arc<AtomicUsize>) {
    match task.await {
        Ok(()) => tracing::debug!(component = %id, "component finished"),
        Err(e) => {
            failed.fetch_add(1, Ordering::Relaxed);
            ComponentMetrics::add(&metrics.errors, 1);
            tracing::error!(component = %id, error = %e, "component failed");
        }
    }
}

async fn run_transform(
    mut transform: Box<dyn Transform>,
    mut input: BufferReceiver,
    fanouts: BTreeMap<Option<String>, Fanout>,
    ports: Vec<OutputDef>,
    metrics: Arc<ComponentMetrics>,
) -> Result<()> {
    let mut out = TransformOutput::new(&ports);
    transform.start();
    let period = transform.tick_interval();
    let mut ticks = tokio::time::interval(period.unwrap_or(Duration::from_secs(3600)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.reset();
    loop {
        tokio::select! {
            batch = input.recv() => match batch {
                Some(batch) => transform.transform(batch, &mut out),
                None => break,
            },
            _ = ticks.tick(), if period.is_some() => transform.tick(false, &mut out),
        }
        deliver(&mut out, &fanouts, &metrics).await;
    }
    transform.tick(true, &mut out);
    deliver(&mut out, &fanouts, &metrics).await;
    Ok(())
}
