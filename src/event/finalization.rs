//! End-to-end acknowledgement: a source that wants to know the fate of what it
//! sent attaches a `BatchNotifier` to every event of a batch; each copy of each
//! event holds it; when the last copy is dropped, the source receives the worst
//! status any sink reported.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// What a sink (or the pipeline) reports for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventStatus {
    /// Delivered, or dropped on purpose by a transform (a filter said no).
    Delivered = 0,
    /// Delivery failed for a reason that may pass (network, server 5xx, shutdown).
    Errored = 1,
    /// Refused for good (bad data, a full buffer set to drop).
    Rejected = 2,
}

/// The outcome of a whole batch: the worst status of its events.
pub type BatchStatus = EventStatus;

pub struct BatchNotifier {
    status: AtomicU8,
    sender: Mutex<Option<oneshot::Sender<BatchStatus>>>,
    /// Set when the source gave up waiting and told its sender so: the
    /// events are dropped wherever they wait, rather than delivered twice.
    withdrawn: Arc<AtomicBool>,
}

/// Lets a source withdraw a batch it has stopped waiting for.
#[derive(Debug, Clone)]
pub struct Withdraw(Arc<AtomicBool>);

impl Withdraw {
    pub fn withdraw(&self) {
        self.0.store(true, Ordering::Release);
    }
}

pub type BatchStatusReceiver = oneshot::Receiver<BatchStatus>;

impl BatchNotifier {
    pub fn new() -> (Arc<BatchNotifier>, BatchStatusReceiver) {
        let (sender, receiver) = oneshot::channel();
        let notifier = BatchNotifier {
            status: AtomicU8::new(EventStatus::Delivered as u8),
            sender: Mutex::new(Some(sender)),
            withdrawn: Arc::default(),
        };
        (Arc::new(notifier), receiver)
    }

    /// A handle to withdraw this batch (it does not keep the notifier alive).
    pub fn withdraw_handle(&self) -> Withdraw {
        Withdraw(self.withdrawn.clone())
    }

    fn update(&self, status: EventStatus) {
        self.status.fetch_max(status as u8, Ordering::AcqRel);
    }
}

impl Drop for BatchNotifier {
    fn drop(&mut self) {
        let status = match self.status.load(Ordering::Acquire) {
            0 => EventStatus::Delivered,
            1 => EventStatus::Errored,
            _ => EventStatus::Rejected,
        };
        if let Some(sender) = self.sender.get_mut().ok().and_then(Option::take) {
            // The source may have stopped waiting; that is not an error.
            let _ = sender.send(status);
        }
    }
}

impl std::fmt::Debug for BatchNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNotifier").field("status", &self.status.load(Ordering::Relaxed)).finish()
    }
}

/// The notifiers an event answers to. Empty (no allocation) unless a source
/// asked for acknowledgements.
#[derive(Debug, Clone, Default)]
pub struct Finalizers(Vec<Arc<BatchNotifier>>);

impl Finalizers {
    pub fn new(notifier: Arc<BatchNotifier>) -> Self {
        Finalizers(vec![notifier])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Record a status on every notifier; the worst one wins.
    pub fn update_status(&self, status: EventStatus) {
        for notifier in &self.0 {
            notifier.update(status);
        }
    }

    /// Whether a source withdrew the batch (any of them) this event belongs to.
    pub fn is_withdrawn(&self) -> bool {
        self.0.iter().any(|n| n.withdrawn.load(Ordering::Acquire))
    }

    /// Take over another event's notifiers (when events are merged).
    pub fn merge(&mut self, other: Finalizers) {
        self.0.extend(other.0);
    }
}

impl PartialEq for Finalizers {
    fn eq(&self, _other: &Self) -> bool {
        // Finalizers are bookkeeping, not content.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_arrives_when_last_copy_drops() {
        let (notifier, receiver) = BatchNotifier::new();
        let a = Finalizers::new(notifier);
        let b = a.clone();
        a.update_status(EventStatus::Delivered);
        drop(a);
        b.update_status(EventStatus::Errored);
        drop(b);
        assert_eq!(receiver.await.unwrap(), EventStatus::Errored);
    }

    #[test]
    fn a_withdrawn_batch_is_seen_by_its_events() {
        let (notifier, _receiver) = BatchNotifier::new();
        let withdraw = notifier.withdraw_handle();
        let event = Finalizers::new(notifier);
        assert!(!event.is_withdrawn());
        withdraw.withdraw();
        assert!(event.is_withdrawn());
        assert!(!Finalizers::default().is_withdrawn());
    }

    #[tokio::test]
    async fn untouched_events_count_as_delivered() {
        let (notifier, receiver) = BatchNotifier::new();
        drop(Finalizers::new(notifier));
        assert_eq!(receiver.await.unwrap(), EventStatus::Delivered);
    }
}
