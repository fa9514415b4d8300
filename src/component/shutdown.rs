//! How a source learns it must stop.

use tokio::sync::watch;

/// Tells a source to stop. The topology holds the sending end.
#[derive(Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// A signal and the switch that triggers it (`send(true)`).
    pub fn new() -> (watch::Sender<bool>, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (tx, ShutdownSignal(rx))
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the source should stop.
    pub async fn triggered(&mut self) {
        // An error means the topology is gone: stop too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
