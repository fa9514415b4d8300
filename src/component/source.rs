//! The source contract: a source's config checks and builds it; the running
//! source sends batches to its outputs until told to stop (or its input ends),
//! and with acknowledgements learns what became of each batch.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::output::{Fanout, OutputDef};
use super::{Result, ShutdownSignal, Task};
use crate::event::{BatchNotifier, BatchStatusReceiver, EventBatch, EventStatus, Finalizers, Withdraw};
use crate::telemetry::ComponentMetrics;

pub trait SourceConfig: Debug + Send + Sync {
    fn outputs(&self) -> Vec<OutputDef>;
    /// Check option values that serde cannot (ranges, templates); errors are config errors.
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// Check what the source needs of this machine (`tapline validate` without `--no-environment`).
    fn check_environment(&self) -> Result<()> {
        Ok(())
    }
    /// Choices that work but are risky (a receiver open to every address
    /// without auth or TLS): `validate` and `run` print them.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    fn build(&self, cx: SourceContext) -> Result<Task>;
}

/// What a running source is handed.
pub struct SourceContext {
    pub id: String,
    pub out: SourceOutputs,
    pub shutdown: ShutdownSignal,
    pub metrics: Arc<ComponentMetrics>,
    /// Attach finalizers and learn the fate of each batch.
    pub acknowledgements: bool,
    pub data_dir: Option<PathBuf>,
    /// Batches whose outcome is still awaited.
    pub(crate) pending: tokio::task::JoinSet<()>,
}

pub struct SourceOutputs {
    pub(crate) ports: BTreeMap<Option<String>, Fanout>,
}

impl SourceOutputs {
    /// Send to the default output. Waits while downstream is full.
    pub async fn send(&self, batch: EventBatch) {
        if let Some(fanout) = self.ports.get(&None) {
            fanout.send(batch).await;
        }
    }

    /// Send to the default output if every reader has room within `wait`;
    /// else get the batch back.
    pub async fn send_within(&self, batch: EventBatch, wait: Duration) -> Result<(), EventBatch> {
        match self.ports.get(&None) {
            Some(fanout) => fanout.send_within(batch, wait).await,
            None => Ok(()),
        }
    }

    /// Send to a named output. Waits while downstream is full.
    pub async fn send_to(&self, port: &str, batch: EventBatch) {
        if let Some((_, fanout)) = self.ports.iter().find(|(name, _)| name.as_deref() == Some(port)) {
            fanout.send(batch).await;
        }
    }

    /// Send to a named output if every reader has room within `wait`; else get the batch back.
    pub async fn send_within_to(&self, port: &str, batch: EventBatch, wait: Duration) -> Result<(), EventBatch> {
        match self.ports.iter().find(|(name, _)| name.as_deref() == Some(port)) {
            Some((_, fanout)) => fanout.send_within(batch, wait).await,
            None => Ok(()),
        }
    }
}

/// Make every event of the batch answer to one new notifier.
pub fn attach_finalizers(batch: &mut EventBatch) -> BatchStatusReceiver {
    attach_withdrawable(batch).0
}

/// `attach_finalizers`, and the handle that withdraws the batch when the
/// source stops waiting for it.
pub fn attach_withdrawable(batch: &mut EventBatch) -> (BatchStatusReceiver, Withdraw) {
    let (notifier, receiver) = BatchNotifier::new();
    let withdraw = notifier.withdraw_handle();
    for event in batch.iter_mut() {
        event.finalizers = Finalizers::new(notifier.clone());
    }
    (receiver, withdraw)
}

impl SourceContext {
    /// Attach a notifier to every event of the batch when acknowledgements are on.
    pub fn finalize(&self, batch: &mut EventBatch) -> Option<BatchStatusReceiver> {
        (self.acknowledgements && !batch.is_empty()).then(|| attach_finalizers(batch))
    }

    /// Count the batch's outcome once the last copy of its events is settled.
    pub fn count_acknowledgement(&mut self, receiver: BatchStatusReceiver, events: usize) {
        while self.pending.try_join_next().is_some() {}
        let metrics = self.metrics.clone();
        self.pending.spawn(async move {
            match receiver.await {
                Ok(EventStatus::Delivered) => ComponentMetrics::add(&metrics.acknowledged_events, events),
                Ok(status) => {
                    ComponentMetrics::add(&metrics.errors, 1);
                    tracing::warn!(component = %metrics.id, events, ?status, "a batch was not delivered");
                }
                Err(_) => {}
            }
        });
    }

    /// Wait until every batch sent has an outcome; a source calls this last.
    pub async fn acknowledged_all(&mut self) {
        while self.pending.join_next().await.is_some() {}
    }
}
