//! A component's input buffer: a channel bounded in events, not in batches.
//! A full buffer makes the sender wait (`block`, the default), and the wait
//! reaches the source; or, when asked, drops the new batch and counts it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::event::{EventBatch, EventStatus};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Block,
    DropNewest,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Vector's option: the type of buffer. Only `memory` exists here.
    #[serde(default = "memory", rename = "type")]
    pub buffer_type: String,
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    #[serde(default)]
    pub when_full: WhenFull,
}

fn memory() -> String {
    "memory".into()
}

fn default_max_events() -> usize {
    1000
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig { buffer_type: memory(), max_events: default_max_events(), when_full: WhenFull::Block }
    }
}

/// Room taken in a buffer ahead of a send, so that several buffers can be
/// filled all or none.
pub enum Reservation {
    Ready(OwnedSemaphorePermit),
    /// Full, and set to drop: the batch will be dropped and counted.
    Drop,
    Full,
}

type Item = (EventBatch, OwnedSemaphorePermit);

#[derive(Clone)]
pub struct BufferSender {
    tx: mpsc::UnboundedSender<Item>,
    space: Arc<Semaphore>,
    max_events: u32,
    when_full: WhenFull,
    /// The receiving component's counters.
    metrics: Arc<ComponentMetrics>,
}

pub struct BufferReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    space: Arc<Semaphore>,
    metrics: Arc<ComponentMetrics>,
}

/// The receiver is gone; the batch was not taken.
#[derive(Debug)]
pub struct Closed(pub EventBatch);

pub fn channel(config: &BufferConfig, metrics: Arc<ComponentMetrics>) -> (BufferSender, BufferReceiver) {
    let max_events = config.max_events.clamp(1, u32::MAX as usize >> 3) as u32;
    let space = Arc::new(Semaphore::new(max_events as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = BufferSender { tx, space: space.clone(), max_events, when_full: config.when_full, metrics: metrics.clone() };
    (sender, BufferReceiver { rx, space, metrics })
}

impl BufferSender {
    /// Wait for room, then enqueue. A batch larger than the whole buffer waits
    /// for the buffer to be empty, then goes in alone.
    pub async fn send(&self, batch: EventBatch) -> Result<(), Closed> {
        let reservation = match self.when_full {
            WhenFull::Block => match self.space.clone().acquire_many_owned(self.needed(batch.len())).await {
                Ok(permit) => Reservation::Ready(permit),
                Err(_) => return Err(Closed(batch)),
            },
            WhenFull::DropNewest => self.try_reserve(batch.len()),
        };
        self.send_reserved(batch, reservation)
    }

    fn needed(&self, events: usize) -> u32 {
        (events as u32).clamp(1, self.max_events)
    }

    /// Take room for `events`, waiting for it (a drop_newest buffer never waits).
    pub async fn reserve(&self, events: usize) -> Reservation {
        match self.when_full {
            WhenFull::Block => match self.space.clone().acquire_many_owned(self.needed(events)).await {
                Ok(permit) => Reservation::Ready(permit),
                Err(_) => Reservation::Drop,
            },
            WhenFull::DropNewest => self.try_reserve(events),
        }
    }

    /// Take room for `events` without waiting.
    pub fn try_reserve(&self, events: usize) -> Reservation {
        match self.space.clone().try_acquire_many_owned(self.needed(events)) {
            Ok(permit) => Reservation::Ready(permit),
            Err(tokio::sync::TryAcquireError::NoPermits) if self.when_full == WhenFull::Block => Reservation::Full,
            // Closed buffers and drop_newest both let the batch go, counted.
            Err(_) => Reservation::Drop,
        }
    }

    /// Send into room taken by `try_reserve`.
    pub fn send_reserved(&self, batch: EventBatch, reservation: Reservation) -> Result<(), Closed> {
        match reservation {
            Reservation::Ready(permit) => {
                let len = batch.len();
                self.tx.send((batch, permit)).map_err(|e| Closed(e.0 .0))?;
                ComponentMetrics::add(&self.metrics.buffer_events, len);
                Ok(())
            }
            Reservation::Drop | Reservation::Full => {
                tracing::warn!(component = %self.metrics.id, events = batch.len(), "buffer full or closed: batch dropped");
                ComponentMetrics::add(&self.metrics.discarded_events, batch.len());
                for event in &batch {
                    event.finalizers.update_status(EventStatus::Rejected);
                }
                Ok(())
            }
        }
    }
}

impl BufferReceiver {
    /// The next batch; `None` once every sender is gone and the buffer is empty.
    /// Events of a batch their source withdrew (it answered the sender
    /// "retry" after `ack_timeout_secs`) are dropped here, and counted as discarded.
    pub async fn recv(&mut self) -> Option<EventBatch> {
        loop {
            let (mut batch, _permit) = self.rx.recv().await?;
            self.metrics.buffer_events.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            if batch.iter().any(|e| e.finalizers.is_withdrawn()) {
                let before = batch.len();
                batch.retain(|e| !e.finalizers.is_withdrawn());
                ComponentMetrics::add(&self.metrics.discarded_events, before - batch.len());
                tracing::debug!(component = %self.metrics.id, events = before - batch.len(), "dropped events their source withdrew");
                if batch.is_empty() {
                    continue;
                }
            }
            ComponentMetrics::add(&self.metrics.received_events, batch.len());
            return Some(batch);
        }
    }
}

impl Drop for BufferReceiver {
    fn drop(&mut self) {
        // Wake senders waiting for room: nobody will make any.
        self.space.close();
        // A component that failed leaves events behind: count them, never lose them silently.
        self.rx.close();
        let mut left = 0;
        while let Ok((batch, _permit)) = self.rx.try_recv() {
            left += batch.len();
            for event in &batch {
                event.finalizers.update_status(EventStatus::Rejected);
            }
        }
        if left > 0 {
            self.metrics.buffer_events.fetch_sub(left as u64, Ordering::Relaxed);
            ComponentMetrics::add(&self.metrics.discarded_events, left);
            tracing::error!(component = %self.metrics.id, events = left, "component stopped with events in its buffer; they are lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{BatchNotifier, Event, Finalizers, Value};
    use crate::telemetry;

    fn batch(n: usize) -> EventBatch {
        (0..n).map(|i| Event::log(Value::from(i as i64))).collect()
    }

    #[tokio::test]
    async fn block_waits_for_room() {
        let metrics = telemetry::component("buffer_block_test", "sink", "test");
        let config = BufferConfig { max_events: 10, ..Default::default() };
        let (tx, mut rx) = channel(&config, metrics.clone());
        tx.send(batch(8)).await.unwrap();
        // 8 + 5 > 10: the second send must wait until the first batch is taken.
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(batch(5))).await;
        assert!(blocked.is_err());
        assert_eq!(metrics.buffer_events.load(Ordering::Relaxed), 8);
        assert_eq!(rx.recv().await.unwrap().len(), 8);
        tx.send(batch(5)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 5);
        assert_eq!(metrics.discarded_events.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn drop_newest_counts_and_rejects() {
        let metrics = telemetry::component("buffer_drop_test", "sink", "test");
        let config = BufferConfig { max_events: 10, when_full: WhenFull::DropNewest, ..Default::default() };
        let (tx, mut rx) = channel(&config, metrics.clone());
        tx.send(batch(8)).await.unwrap();
        let (notifier, status) = BatchNotifier::new();
        let mut dropped = batch(5);
        for e in &mut dropped {
            e.finalizers = Finalizers::new(notifier.clone());
        }
        drop(notifier);
        tx.send(dropped).await.unwrap();
        assert_eq!(status.await.unwrap(), EventStatus::Rejected);
        assert_eq!(metrics.discarded_events.load(Ordering::Relaxed), 5);
        assert_eq!(rx.recv().await.unwrap().len(), 8);
    }

    #[tokio::test]
    async fn closed_receiver_returns_the_batch() {
        let metrics = telemetry::component("buffer_closed_test", "sink", "test");
        let (tx, rx) = channel(&BufferConfig::default(), metrics);
        drop(rx);
        let Err(Closed(batch)) = tx.send(batch(3)).await else { panic!("send to a closed buffer succeeded") };
        assert_eq!(batch.len(), 3);
    }
}
