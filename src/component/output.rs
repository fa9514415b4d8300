//! A component's outputs: what each carries (`OutputDef`, declared so the
//! config check can refuse a wrong wiring), and the fan-out that feeds every
//! input reading it. The topology owns the list of targets and swaps it on
//! reload; the component only sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::buffer::{BufferSender, Closed, Reservation};
use super::inline::InlineTransform;
use crate::event::{EventBatch, Kinds};
use crate::telemetry::ComponentMetrics;

/// A named output of a component, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDef {
    pub port: Option<String>,
    pub kinds: Kinds,
}

impl OutputDef {
    pub fn default(kinds: Kinds) -> Self {
        OutputDef { port: None, kinds }
    }

    pub fn named(port: impl Into<String>, kinds: Kinds) -> Self {
        OutputDef { port: Some(port.into()), kinds }
    }
}

/// Where an output's batches go: a component's input buffer, or a transform
/// that runs on the sending task (see `inline`).
#[derive(Clone)]
pub enum Target {
    Buffer(BufferSender),
    Inline(Arc<InlineTransform>),
}

impl Target {
    async fn send(&self, batch: EventBatch) -> Result<(), Closed> {
        match self {
            Target::Buffer(buffer) => buffer.send(batch).await,
            // Boxed: an inline transform's own outputs may hold inline transforms.
            Target::Inline(transform) => {
                Box::pin(transform.send(batch)).await;
                Ok(())
            }
        }
    }

    /// Take room for `events` by `deadline`, or give up (`None`).
    async fn reserve(&self, events: usize, deadline: Instant) -> Option<Room> {
        match self {
            Target::Buffer(buffer) => {
                let reservation = tokio::time::timeout_at(deadline, buffer.reserve(events)).await.ok()?;
                Some(Room::Buffer(buffer.clone(), reservation))
            }
            Target::Inline(transform) => {
                let rooms = Box::pin(transform.reserve(events, deadline)).await?;
                Some(Room::Inline(transform.clone(), rooms))
            }
        }
    }
}

/// Room taken in one target, with the target it was taken in.
enum Room {
    Buffer(BufferSender, Reservation),
    /// Room in every target of each output of the transform, by port.
    Inline(Arc<InlineTransform>, Vec<(Option<String>, FanoutRoom)>),
}

/// Room taken in every target of one output, all or none, for a batch of
/// up to the events asked for.
pub struct FanoutRoom(Vec<(String, Room)>);

pub type Targets = Arc<Vec<(String, Target)>>;

/// The targets of one output, shared between the sending component and the topology.
#[derive(Default)]
pub struct TargetList(Mutex<Targets>);

impl TargetList {
    pub fn get(&self) -> Targets {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, targets: Vec<(String, Target)>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(targets);
    }
}

pub struct Fanout {
    pub targets: Arc<TargetList>,
    /// The sending component's counters.
    pub metrics: Arc<ComponentMetrics>,
}

impl Fanout {
    /// Deliver a batch to every target, one after the other; a full target
    /// makes this wait. Waiting here is how backpressure reaches the source.
    pub async fn send(&self, batch: EventBatch) {
        if batch.is_empty() {
            return;
        }
        let targets = self.targets.get();
        let len = batch.len();
        let Some(((last_id, last), rest)) = targets.split_last() else {
            // Validation warned that nothing reads this output.
            ComponentMetrics::add(&self.metrics.discarded_events, len);
            return;
        };
        for (id, target) in rest {
            if target.send(batch.clone()).await.is_err() {
                self.lost(id, len);
            }
        }
        if last.send(batch).await.is_err() {
            self.lost(last_id, len);
        }
        ComponentMetrics::add(&self.metrics.sent_events, len);
    }

    /// Deliver to every target if each has room within `wait`; else hand the
    /// batch back untouched, holding no room (an HTTP source then answers 503).
    pub async fn send_within(&self, batch: EventBatch, wait: Duration) -> Result<(), EventBatch> {
        match self.reserve(batch.len(), Instant::now() + wait).await {
            Some(room) => {
                self.send_reserved(batch, room);
                Ok(())
            }
            None => Err(batch),
        }
    }

    /// Take room for `events` in every target by `deadline`, or none at all.
    pub async fn reserve(&self, events: usize, deadline: Instant) -> Option<FanoutRoom> {
        let targets = self.targets.get();
        let mut rooms = Vec::with_capacity(targets.len());
        for (id, target) in targets.iter() {
            rooms.push((id.clone(), target.reserve(events, deadline).await?));
        }
        Some(FanoutRoom(rooms))
    }

    /// Send into room taken by `reserve`, without waiting.
    pub fn send_reserved(&self, batch: EventBatch, FanoutRoom(mut rooms): FanoutRoom) {
        if batch.is_empty() {
            return;
        }
        let len = batch.len();
        let Some((last_id, last)) = rooms.pop() else {
            ComponentMetrics::add(&self.metrics.discarded_events, len);
            return;
        };
        for (id, room) in rooms {
            if room.send(batch.clone()).is_err() {
                self.lost(&id, len);
            }
        }
        if last.send(batch).is_err() {
            self.lost(&last_id, len);
        }
        ComponentMetrics::add(&self.metrics.sent_events, len);
    }

    fn lost(&self, target: &str, len: usize) {
        ComponentMetrics::add(&self.metrics.discarded_events, len);
        tracing::error!(component = %self.metrics.id, target, events = len, "target stopped; its copy of the batch is lost");
    }
}

impl Room {
    fn send(self, batch: EventBatch) -> Result<(), Closed> {
        match self {
            Room::Buffer(buffer, reservation) => buffer.send_reserved(batch, reservation),
            Room::Inline(transform, rooms) => {
                transform.send_reserved(batch, rooms);
                Ok(())
            }
        }
    }
}
