//! A transform run on the tasks that send to it, instead of a task of its
//! own behind a buffer: each sender takes an idle copy (`Transform::fork`),
//! runs it on the batch and sends the results on, all on its own thread. So
//! an event is built, changed and handed on by one core, and no buffer or
//! wake-up sits between the source and, say, its `remap`.
//!
//! What it promises, as a buffered transform does: a full target downstream
//! makes the sender wait (or, for `send_within`, the room is taken before the
//! transform runs, so a refused batch comes back untouched); the component's
//! counters count what it received, sent, dropped and failed on. Its task
//! ends once no sender can reach it any more.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::output::{Fanout, FanoutRoom, OutputDef};
use super::transform::{settle, Transform, TransformOutput};
use super::Task;
use crate::event::EventBatch;
use crate::telemetry::ComponentMetrics;

pub struct InlineTransform {
    /// What new copies are forked from when every copy is in use.
    template: Mutex<Box<dyn Transform>>,
    idle: Mutex<Vec<(Box<dyn Transform>, TransformOutput)>>,
    ports: Vec<OutputDef>,
    fanouts: BTreeMap<Option<String>, Fanout>,
    metrics: Arc<ComponentMetrics>,
    /// Dropped with the transform: its task then ends.
    _running: oneshot::Sender<()>,
}

impl InlineTransform {
    /// Run `transform` inline if it can be forked; else hand it back.
    #[allow(clippy::type_complexity)]
    pub fn new(
        transform: Box<dyn Transform>,
        ports: Vec<OutputDef>,
        fanouts: BTreeMap<Option<String>, Fanout>,
        metrics: Arc<ComponentMetrics>,
    ) -> Result<(Arc<Self>, Task), Box<dyn Transform>> {
        let Some(first) = transform.fork() else { return Err(transform) };
        let (running, ended) = oneshot::channel();
        let out = TransformOutput::new(&ports);
        let inline = InlineTransform {
            template: Mutex::new(transform),
            idle: Mutex::new(vec![(first, out)]),
            ports,
            fanouts,
            metrics,
            _running: running,
        };
        let task: Task = Box::pin(async move {
            let _ = ended.await;
            Ok(())
        });
        Ok((Arc::new(inline), task))
    }

    /// Run a copy on the batch; the results by output, counted.
    fn run(&self, batch: EventBatch) -> Vec<(Option<String>, EventBatch)> {
        ComponentMetrics::add(&self.metrics.received_events, batch.len());
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let copy = idle.or_else(|| {
            let template = self.template.lock().unwrap_or_else(|e| e.into_inner());
            template.fork().map(|copy| (copy, TransformOutput::new(&self.ports)))
        });
        let Some((mut transform, mut out)) = copy else {
            // `new` saw it fork; should it stop, the template itself runs, one sender at a time.
            let mut out = TransformOutput::new(&self.ports);
            self.template.lock().unwrap_or_else(|e| e.into_inner()).transform(batch, &mut out);
            return settle(&mut out, &self.metrics);
        };
        transform.transform(batch, &mut out);
        let results = settle(&mut out, &self.metrics);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((transform, out));
        results
    }

    /// Transform and send on, waiting while a target is full.
    pub async fn send(&self, batch: EventBatch) {
        for (port, batch) in self.run(batch) {
            if let Some(fanout) = self.fanouts.get(&port) {
                fanout.send(batch).await;
            }
        }
    }

    /// Room for `events` in every target of every output: each output gets at
    /// most as many events as came in (the contract of `Transform::fork`).
    pub async fn reserve(&self, events: usize, deadline: Instant) -> Option<Vec<(Option<String>, FanoutRoom)>> {
        let mut rooms = Vec::with_capacity(self.fanouts.len());
        for (port, fanout) in &self.fanouts {
            rooms.push((port.clone(), fanout.reserve(events, deadline).await?));
        }
        Some(rooms)
    }

    /// Transform and send into room taken by `reserve`; room an output does
    /// not use is given back.
    pub fn send_reserved(&self, batch: EventBatch, mut rooms: Vec<(Option<String>, FanoutRoom)>) {
        for (port, batch) in self.run(batch) {
            let (Some(fanout), Some(at)) = (self.fanouts.get(&port), rooms.iter().position(|(p, _)| *p == port)) else {
                // `reserve` took room on every output `run` can fill: never lose a batch silently all the same.
                ComponentMetrics::add(&self.metrics.discarded_events, batch.len());
                continue;
            };
            fanout.send_reserved(batch, rooms.swap_remove(at).1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::component::buffer::{channel, BufferConfig, BufferReceiver};
    use crate::component::output::{Target, TargetList};
    use crate::event::{Event, Kinds, Value};
    use crate::telemetry;

    /// Adds one to each integer; drops negative ones.
    struct AddOne;

    impl Transform for AddOne {
        fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
            for mut event in batch {
                match event.make_log() {
                    Some(Value::Integer(n)) if *n >= 0 => {
                        *n += 1;
                        out.primary.push(event);
                    }
                    _ => out.discarded += 1,
                }
            }
        }

        fn fork(&self) -> Option<Box<dyn Transform>> {
            Some(Box::new(AddOne))
        }
    }

    fn batch(values: impl IntoIterator<Item = i64>) -> EventBatch {
        values.into_iter().map(|n| Event::log(Value::from(n))).collect()
    }

    fn values(batch: &EventBatch) -> Vec<i64> {
        batch.iter().map(|e| e.as_log().and_then(Value::as_integer).expect("an integer")).collect()
    }

    /// An `AddOne` run inline in front of a buffer of `room` events; the fanout that sends to it.
    fn wired(name: &str, room: usize) -> (Fanout, Arc<ComponentMetrics>, BufferReceiver, Task) {
        let sink_metrics = telemetry::component(&format!("{name}_sink"), "sink", "test");
        let (tx, rx) = channel(&BufferConfig { max_events: room, ..Default::default() }, sink_metrics);
        let metrics = telemetry::component(name, "transform", "test");
        let own = Fanout { targets: Arc::new(TargetList::default()), metrics: metrics.clone() };
        own.targets.set(vec![("sink".into(), Target::Buffer(tx))]);
        let fanouts = BTreeMap::from([(None, own)]);
        let (inline, task) = match InlineTransform::new(Box::new(AddOne), vec![OutputDef::default(Kinds::LOG)], fanouts, metrics.clone()) {
            Ok(built) => built,
            Err(_) => panic!("AddOne forks"),
        };
        let source =
            Fanout { targets: Arc::new(TargetList::default()), metrics: telemetry::component(&format!("{name}_source"), "source", "test") };
        source.targets.set(vec![(name.into(), Target::Inline(inline))]);
        (source, metrics, rx, task)
    }

    #[tokio::test]
    async fn runs_on_the_sender_and_counts() {
        let (source, metrics, mut rx, _task) = wired("inline_counts", 100);
        source.send(batch([1, 2, -1, 3])).await;
        assert_eq!(values(&rx.recv().await.unwrap()), [2, 3, 4]);
        assert_eq!(metrics.received_events.load(Ordering::Relaxed), 4);
        assert_eq!(metrics.sent_events.load(Ordering::Relaxed), 3);
        assert_eq!(metrics.discarded_events.load(Ordering::Relaxed), 1);
    }

    /// `send_within` takes room before the transform runs: a refused batch
    /// comes back as it was sent, and room an output did not use is given back.
    #[tokio::test]
    async fn a_refused_batch_comes_back_untouched() {
        let (source, metrics, mut rx, _task) = wired("inline_refused", 10);
        source.send_within(batch(0..8), Duration::from_millis(10)).await.unwrap();
        let refused = source.send_within(batch(0..5), Duration::from_millis(50)).await.expect_err("the buffer is full");
        assert_eq!(values(&refused), [0, 1, 2, 3, 4]);
        assert_eq!(metrics.received_events.load(Ordering::Relaxed), 8, "the refused batch was not run");
        assert_eq!(values(&rx.recv().await.unwrap()), [1, 2, 3, 4, 5, 6, 7, 8]);
        // Ten negatives take all the room and give it all back, being dropped.
        source.send_within(batch([-1; 10]), Duration::from_millis(10)).await.unwrap();
        source.send_within(batch(0..10), Duration::from_millis(10)).await.expect("the room was given back");
        assert_eq!(values(&rx.recv().await.unwrap()), (1..=10).collect::<Vec<_>>());
    }

    /// Senders on several threads at once each run their own copy; nothing is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_lose_nothing() {
        let (source, metrics, mut rx, _task) = wired("inline_concurrent", 1000);
        let source = Arc::new(source);
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let source = source.clone();
                tokio::spawn(async move {
                    for round in 0..50 {
                        source.send(batch((0..10).map(|i| sender * 1000 + round * 10 + i))).await;
                    }
                })
            })
            .collect();
        let mut received = Vec::new();
        while received.len() < 8 * 50 * 10 {
            received.extend(values(&rx.recv().await.unwrap()));
        }
        for sender in senders {
            sender.await.unwrap();
        }
        received.sort_unstable();
        let expected: Vec<i64> = (0..8).flat_map(|s| (0..500).map(move |i| s * 1000 + i + 1)).collect();
        assert_eq!(received, expected);
        assert_eq!(metrics.sent_events.load(Ordering::Relaxed), 4000);
    }

    #[tokio::test]
    async fn its_task_ends_when_no_sender_is_left() {
        let (source, _metrics, mut rx, task) = wired("inline_ends", 10);
        let task = tokio::spawn(task);
        source.send(batch([1])).await;
        assert!(!task.is_finished());
        drop(source);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the task ended").unwrap().unwrap();
        assert_eq!(values(&rx.recv().await.unwrap()), [2]);
        assert!(rx.recv().await.is_none(), "the buffer closed with the transform");
    }

    #[test]
    fn a_transform_that_cannot_fork_is_handed_back() {
        struct Counter(u64);
        impl Transform for Counter {
            fn transform(&mut self, batch: EventBatch, _out: &mut TransformOutput) {
                self.0 += batch.len() as u64;
            }
        }
        let metrics = telemetry::component("inline_no_fork", "transform", "test");
        assert!(InlineTransform::new(Box::new(Counter(0)), vec![], BTreeMap::new(), metrics).is_err());
    }
}
